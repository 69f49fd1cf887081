//! Kernel limits a host full of containers needs (LXD's production-setup
//! advice): each container's systemd takes inotify instances and keys, and
//! the stock limits run out at a few dozen containers (seen here: dnsmasq
//! "failed to create inotify: Too many open files", containers that never
//! got an address). Limits are only ever raised, at runtime through
//! /proc/sys and persistently in /etc/sysctl.d.

use std::path::PathBuf;

use crate::error::{Error, Result};

pub const RECOMMENDED: &[(&str, u64)] = &[
    ("fs.inotify.max_queued_events", 1_048_576),
    ("fs.inotify.max_user_instances", 1_048_576),
    ("fs.inotify.max_user_watches", 1_048_576),
    ("vm.max_map_count", 262_144),
    ("kernel.keys.maxkeys", 2_000),
    ("kernel.keys.maxbytes", 2_000_000),
];

pub const FILE_NAME: &str = "60-terrarium.conf";

/// Where the persistent file goes; `TRM_SYSCTL_DIR` overrides (tests).
pub fn conf_dir() -> PathBuf {
    std::env::var_os("TRM_SYSCTL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/sysctl.d"))
}

fn proc_path(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

pub fn read(key: &str) -> Option<u64> {
    std::fs::read_to_string(proc_path(key))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// The live values of the recommended limits this kernel has.
pub fn live() -> Vec<(&'static str, u64)> {
    RECOMMENDED
        .iter()
        .filter_map(|&(k, _)| read(k).map(|v| (k, v)))
        .collect()
}

/// The recommended limits the `live` values are below: (key, live, wanted).
pub fn too_low(live: &[(&str, u64)]) -> Vec<(&'static str, u64, u64)> {
    RECOMMENDED
        .iter()
        .filter_map(|&(k, want)| {
            live.iter()
                .find(|(key, _)| *key == k)
                .map(|&(_, v)| v)
                .filter(|&v| v < want)
                .map(|v| (k, v, want))
        })
        .collect()
}

pub fn render() -> String {
    let mut s = String::from(
        "# Written by `trm init`: limits for many containers (LXD's production setup).\n",
    );
    for (k, v) in RECOMMENDED {
        s.push_str(&format!("{k} = {v}\n"));
    }
    s
}

/// Raise a limit now; a kernel that keeps a value read-only is reported.
pub fn raise(key: &str, value: u64) -> Result<()> {
    std::fs::write(proc_path(key), value.to_string())
        .map_err(|e| Error::io(format!("raising {key} to {value}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_names_every_key() {
        let text = render();
        for (k, v) in RECOMMENDED {
            assert!(text.contains(&format!("{k} = {v}")));
        }
        assert_eq!(
            proc_path("fs.inotify.max_user_instances"),
            PathBuf::from("/proc/sys/fs/inotify/max_user_instances")
        );
    }

    #[test]
    fn only_limits_below_the_recommendation_are_raised() {
        let live = [
            ("fs.inotify.max_user_instances", 128),
            ("vm.max_map_count", 262_144),
            ("kernel.keys.maxkeys", 5_000),
        ];
        assert_eq!(
            too_low(&live),
            vec![("fs.inotify.max_user_instances", 128, 1_048_576)],
            "equal or higher is left alone, unreadable keys are not guessed"
        );
    }
}
