//! What LXD does not give for ZFS-backed instances: space used per
//! snapshot, holds (a held snapshot cannot be destroyed, even by hand),
//! and `zfs send` streams for off-site export. Written for the command set
//! that both OpenZFS and Debian's older zfs-fuse understand (no `list -p`,
//! no `get -t`, no `holds`).

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::process::{Cmd, Tool};

pub const ZFS: Tool = Tool {
    names: &["zfs"],
    env: "TRM_ZFS",
    hint: "install zfsutils-linux (or zfs-fuse)",
};

/// The hold tag Terrarium puts on snapshots it must keep.
pub const HOLD_TAG: &str = "terrarium";

fn zfs() -> Result<Cmd> {
    Cmd::tool(&ZFS)
}

/// The dataset under which a ZFS storage pool keeps its volumes: its
/// `zfs.pool_name`, else the pool's name (LXD's own default).
pub fn pool_root(pool: &crate::lxd::StoragePool) -> String {
    pool.config
        .get("zfs.pool_name")
        .cloned()
        .unwrap_or_else(|| pool.name.clone())
}

/// The dataset LXD keeps an instance's root in, given the pool's
/// `zfs.pool_name` (or source) and the project.
pub fn instance_dataset(zpool_dataset: &str, project: &str, instance: &str) -> String {
    if project == "default" {
        format!("{zpool_dataset}/containers/{instance}")
    } else {
        format!("{zpool_dataset}/containers/{project}_{instance}")
    }
}

/// LXD's name for an instance snapshot's ZFS snapshot.
pub fn snapshot_of(dataset: &str, snapshot: &str) -> String {
    format!("{dataset}@snapshot-{snapshot}")
}

/// Bytes used by each snapshot of `dataset` (keyed by the part after `@`).
pub fn snapshot_used(dataset: &str) -> Result<BTreeMap<String, u64>> {
    let out = zfs()?
        .args(["get", "-H", "-p", "-r", "-o", "name,value", "used", dataset])
        .run()?;
    Ok(parse_used(&out.stdout_str(), dataset))
}

fn parse_used(text: &str, dataset: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (name, value) = l.split_once('\t')?;
            let snap = name.strip_prefix(dataset)?.strip_prefix('@')?;
            Some((snap.to_string(), value.trim().parse().ok()?))
        })
        .collect()
}

/// How many user holds a snapshot has.
pub fn user_refs(snapshot: &str) -> Result<u64> {
    let out = zfs()?
        .args(["get", "-H", "-p", "-o", "value", "userrefs", snapshot])
        .run()?;
    out.stdout_str()
        .trim()
        .parse()
        .map_err(|e| Error::parse(format!("userrefs of {snapshot}"), e))
}

pub fn hold(snapshot: &str) -> Result<()> {
    zfs()?.args(["hold", HOLD_TAG, snapshot]).run().map(drop)
}

/// Release Terrarium's hold; `false` when there was none.
pub fn release(snapshot: &str) -> Result<bool> {
    let cmd = zfs()?.args(["release", HOLD_TAG, snapshot]);
    let out = cmd.output()?;
    if out.status.success() {
        Ok(true)
    } else if String::from_utf8_lossy(&out.stderr).contains("no such tag") {
        Ok(false)
    } else {
        Err(cmd.failure(&out))
    }
}

/// Snapshots under `root` that some clone was made from (their `origin`):
/// they cannot be destroyed while the clone lives. (`clones` is not a
/// property zfs-fuse knows; `origin` is.)
pub fn origins(root: &str) -> Result<std::collections::BTreeSet<String>> {
    let out = zfs()?
        .args(["get", "-H", "-r", "-o", "value", "origin", root])
        .run()?;
    Ok(out
        .stdout_str()
        .lines()
        .map(str::trim)
        .filter(|v| v.contains('@'))
        .map(String::from)
        .collect())
}

/// A `zfs send` stream of `snapshot` (incremental from `from` when given),
/// on the child's stdout; `finish` says whether it all went.
pub fn send(snapshot: &str, from: Option<&str>) -> Result<crate::process::Streaming> {
    let mut cmd = zfs()?.arg("send");
    if let Some(f) = from {
        cmd = cmd.args(["-i", f]);
    }
    cmd.arg(snapshot)
        .spawn_streaming(crate::process::Pipe::Stdout)
}

pub fn snapshot(name: &str) -> Result<()> {
    zfs()?.args(["snapshot", name]).run().map(drop)
}

/// Destroy one snapshot (never recursive: only the name given goes).
pub fn destroy_snapshot(name: &str) -> Result<()> {
    if !name.contains('@') {
        return Err(Error::Usage(format!("{name} is not a snapshot")));
    }
    zfs()?.args(["destroy", name]).run().map(drop)
}

/// Destroy a dataset this run created, with its snapshots.
pub fn destroy_dataset(name: &str) -> Result<()> {
    zfs()?.args(["destroy", "-r", name]).run().map(drop)
}

pub fn exists(dataset: &str) -> Result<bool> {
    let cmd = zfs()?.args(["list", "-H", "-o", "name", dataset]);
    Ok(cmd.output()?.status.success())
}

/// The snapshots of `dataset` itself (the part after `@`), oldest first.
pub fn snapshots(dataset: &str) -> Result<Vec<String>> {
    let out = zfs()?
        .args([
            "list", "-H", "-o", "name", "-t", "snapshot", "-s", "creation", "-r", dataset,
        ])
        .run()?;
    Ok(parse_snapshots(&out.stdout_str(), dataset))
}

fn parse_snapshots(text: &str, dataset: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(dataset)?.strip_prefix('@'))
        .map(String::from)
        .collect()
}

/// `zfs receive -u` into `dataset` from the child's stdin: never
/// mounted, so nothing touches it between links, and never `-F`, so a
/// full stream is refused onto a dataset that exists.
pub fn receive(dataset: &str) -> Result<crate::process::Streaming> {
    zfs()?
        .args(["receive", "-u", dataset])
        .spawn_streaming(crate::process::Pipe::Stdin)
}

/// `zfs set` of `prop=value` pairs, one call each (older zfs takes one).
pub fn set(dataset: &str, props: &[&str]) -> Result<()> {
    for p in props {
        zfs()?.args(["set", p, dataset]).run()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lxd_dataset_names() {
        assert_eq!(
            instance_dataset("tank/lxd", "default", "web"),
            "tank/lxd/containers/web"
        );
        assert_eq!(
            instance_dataset("tank/lxd", "dev", "web"),
            "tank/lxd/containers/dev_web"
        );
        assert_eq!(
            snapshot_of("tank/lxd/containers/web", "trm-manual-x"),
            "tank/lxd/containers/web@snapshot-trm-manual-x"
        );
    }

    #[test]
    fn snapshots_are_those_of_that_dataset_only() {
        let text = "p/c1@a\np/c1/child@b\np/c10@c\np/c1@d\n";
        assert_eq!(parse_snapshots(text, "p/c1"), ["a", "d"]);
    }

    #[test]
    fn used_is_read_for_snapshots_of_that_dataset_only() {
        let text = "p/c1\t5455872\np/c1@s1\t3235840\np/c1@s2\t0\np/c10@x\t7\n";
        let m = parse_used(text, "p/c1");
        assert_eq!(m.len(), 2);
        assert_eq!(m["s1"], 3235840);
    }
}
