//! What an instance may carry on a Terrarium host, as pure functions:
//! the import plan (what to strip from a restored instance's own config
//! and devices) and the audit's findings (what must never be there,
//! wherever it came from).
//!
//! Terrarium puts every security setting in its profiles (unprivileged,
//! nesting, the syscall intercepts, isolated uids) and every device an
//! instance needs there too (root disk on the pool, eth0 on the bridge).
//! So an instance-local `security.*` key or device in a backup is at best
//! a hand-made change and at worst a forgery: import keeps only what
//! tightens confinement, and says what it removed. Nesting is stripped
//! too when set on the instance itself: it comes back by choosing a
//! Terrarium profile (`trm-profile`), where the owner sees it.

use serde::Serialize;

use crate::lxd::{Config, Devices};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Removal {
    /// `config` or `device`.
    pub kind: &'static str,
    /// The config key or device name.
    pub name: String,
    pub value: String,
    pub why: String,
}

impl Removal {
    /// In words, for reports: `security.privileged=true (why)`.
    pub fn describe(&self) -> String {
        match self.kind {
            "device" => format!("device {} ({}): {}", self.name, self.value, self.why),
            _ => format!("{}={}: {}", self.name, self.value, self.why),
        }
    }
}

/// Instance-local `security.*` settings that only tighten confinement.
const TIGHTENING: &[(&str, &str)] = &[
    ("security.privileged", "false"),
    ("security.nesting", "false"),
    ("security.idmap.isolated", "true"),
    ("security.protection.delete", "true"),
    ("security.protection.shift", "true"),
    ("security.devlxd", "false"),
    ("security.syscalls.intercept.mknod", "false"),
    ("security.syscalls.intercept.setxattr", "false"),
    ("security.syscalls.intercept.mount", "false"),
    ("security.syscalls.intercept.bpf", "false"),
    ("security.syscalls.intercept.sysinfo", "false"),
];

/// Other keys that reach past the container: host kernel modules, raw
/// LXC/AppArmor/seccomp/idmap text.
fn config_reason(key: &str, value: &str) -> Option<&'static str> {
    if key.starts_with("raw.") {
        return Some("raw.* passes text straight to LXC, AppArmor, seccomp or the idmap");
    }
    if key == "security.privileged" && value != "false" {
        return Some("a privileged container's root is root on the host");
    }
    if key.starts_with("security.") && !TIGHTENING.contains(&(key, value)) {
        return Some("security.* relaxations come only from Terrarium's profiles");
    }
    if key == "linux.kernel_modules" {
        return Some("loads modules into the host's kernel");
    }
    None
}

/// The root disk on a storage pool, with nothing from the host.
fn is_pool_root(d: &std::collections::BTreeMap<String, String>) -> bool {
    d.get("path").map(String::as_str) == Some("/")
        && d.get("pool").is_some_and(|p| !p.is_empty())
        && !d.get("source").is_some_and(|s| !s.is_empty())
}

/// A NIC on a managed network, with no host interface named, whose only
/// `security.*` keys turn LXD's anti-spoofing filters on (what Terrarium's
/// profiles set, and what `lxc config device override` copies).
fn is_managed_nic(d: &std::collections::BTreeMap<String, String>) -> bool {
    d.get("network").is_some_and(|n| !n.is_empty())
        && !d.contains_key("parent")
        && !d.contains_key("nictype")
        && d.iter()
            .filter(|(k, _)| k.starts_with("security."))
            .all(|(k, v)| k.ends_with("_filtering") && v == "true")
}

fn device_reason(d: &std::collections::BTreeMap<String, String>) -> Option<&'static str> {
    match d.get("type").map(String::as_str).unwrap_or("") {
        // `none` hides a profile's device: it takes nothing from the host.
        "none" => None,
        "disk" if is_pool_root(d) => None,
        "disk" if d.get("source").is_some_and(|s| s.starts_with('/')) => {
            Some("a disk from a host path gives the container the host's files")
        }
        "disk" => Some("only the root disk on a pool is kept; attach volumes again by hand"),
        "nic" if is_managed_nic(d) => None,
        "nic" => Some(
            "a NIC on a host interface, or with its own filtering, bypasses the bridge's rules",
        ),
        "unix-char" | "unix-block" | "unix-hotplug" => {
            Some("host device nodes reach past the container")
        }
        "proxy" => Some("proxy devices listen on the host; exposure goes through trm-expose"),
        "gpu" | "usb" | "pci" | "infiniband" | "tpm" => {
            Some("hands host hardware to the container")
        }
        _ => Some("a device type Terrarium does not restore"),
    }
}

/// What to remove from a restored instance's own config and devices.
pub fn import_plan(config: &Config, devices: &Devices) -> Vec<Removal> {
    let mut out: Vec<Removal> = config
        .iter()
        .filter_map(|(k, v)| {
            config_reason(k, v).map(|why| Removal {
                kind: "config",
                name: k.clone(),
                value: v.clone(),
                why: why.into(),
            })
        })
        .collect();
    out.extend(devices.iter().filter_map(|(name, d)| {
        device_reason(d).map(|why| Removal {
            kind: "device",
            name: name.clone(),
            value: describe_device(d),
            why: why.into(),
        })
    }));
    out
}

fn describe_device(d: &std::collections::BTreeMap<String, String>) -> String {
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What the audit flags on a running host, from the expanded config and
/// devices (profiles included): privileged mode, raw.* keys, host-path
/// disks, NICs without LXD's MAC and IPv4 filters (root inside could pose
/// as a neighbour or the host). Each as (check name, what).
pub fn audit_findings(
    expanded_config: &Config,
    expanded_devices: &Devices,
) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if expanded_config
        .get("security.privileged")
        .map(String::as_str)
        == Some("true")
    {
        out.push(("privileged", "security.privileged=true".to_string()));
    }
    for (k, v) in expanded_config
        .iter()
        .filter(|(k, _)| k.starts_with("raw."))
    {
        let first = v.lines().next().unwrap_or_default();
        out.push(("raw config", format!("{k}={first}")));
    }
    for (name, d) in expanded_devices {
        if d.get("type").map(String::as_str) == Some("nic") {
            let off: Vec<&str> = crate::expose::NIC_FILTERS
                .iter()
                .copied()
                .filter(|k| d.get(*k).map(String::as_str) != Some("true"))
                .collect();
            if !off.is_empty() {
                out.push((
                    "nic filters",
                    format!("nic {name} can use any address ({} off)", off.join(", ")),
                ));
            }
        }
        if d.get("type").map(String::as_str) == Some("disk")
            && d.get("source").is_some_and(|s| s.starts_with('/'))
        {
            out.push((
                "host-path disk",
                format!(
                    "disk {name} mounts host {} at {}",
                    d["source"],
                    d.get("path").map(String::as_str).unwrap_or("?")
                ),
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(kv: &[(&str, &str)]) -> Config {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn devs(list: &[(&str, &[(&str, &str)])]) -> Devices {
        list.iter()
            .map(|(n, kv)| (n.to_string(), cfg(kv)))
            .collect()
    }

    #[test]
    fn import_strips_what_reaches_the_host_and_keeps_the_rest() {
        // (config key, value, removed?)
        let table: &[(&str, &str, bool)] = &[
            ("security.privileged", "true", true),
            ("security.privileged", "1", true),
            ("security.privileged", "false", false),
            ("raw.lxc", "lxc.apparmor.profile=unconfined", true),
            ("raw.idmap", "both 0 0", true),
            ("raw.apparmor", "mount,", true),
            ("raw.seccomp", "x", true),
            ("security.nesting", "true", true),
            ("security.nesting", "false", false),
            ("security.idmap.isolated", "false", true),
            ("security.idmap.isolated", "true", false),
            ("security.idmap.base", "0", true),
            ("security.syscalls.intercept.mount.allowed", "ext4", true),
            ("security.syscalls.intercept.mknod", "true", true),
            ("security.protection.delete", "true", false),
            ("linux.kernel_modules", "ip_tables", true),
            ("limits.cpu", "2", false),
            ("user.note", "hello", false),
            ("boot.autostart", "true", false),
            ("image.os", "debian", false),
            ("volatile.base_image", "abc", false),
        ];
        for (k, v, removed) in table {
            let plan = import_plan(&cfg(&[(k, v)]), &Devices::new());
            assert_eq!(!plan.is_empty(), *removed, "{k}={v}: {plan:?}");
            if *removed {
                assert_eq!(plan[0].kind, "config");
                assert_eq!(plan[0].name, *k);
            }
        }
    }

    #[test]
    fn import_keeps_only_the_pool_root_and_managed_nics() {
        let table: &[(&[(&str, &str)], bool)] = &[
            (&[("type", "disk"), ("path", "/"), ("pool", "p")], false),
            (
                &[("type", "disk"), ("path", "/mnt/host"), ("source", "/")],
                true,
            ),
            (
                &[
                    ("type", "disk"),
                    ("path", "/"),
                    ("source", "/"),
                    ("pool", "p"),
                ],
                true,
            ),
            (
                &[
                    ("type", "disk"),
                    ("path", "/data"),
                    ("pool", "p"),
                    ("source", "vol"),
                ],
                true,
            ),
            (&[("type", "disk"), ("path", "/"), ("source", "/srv")], true),
            (
                &[("type", "nic"), ("name", "eth0"), ("network", "br")],
                false,
            ),
            (
                &[("type", "nic"), ("nictype", "physical"), ("parent", "eth0")],
                true,
            ),
            (
                &[("type", "nic"), ("nictype", "macvlan"), ("parent", "eth0")],
                true,
            ),
            (
                &[
                    ("type", "nic"),
                    ("network", "br"),
                    ("security.mac_filtering", "false"),
                ],
                true,
            ),
            // What `lxc config device override NAME eth0 ipv4.address=...`
            // leaves: Terrarium's filters, tightening only. Kept.
            (
                &[
                    ("type", "nic"),
                    ("network", "br"),
                    ("ipv4.address", "10.0.0.5"),
                    ("security.mac_filtering", "true"),
                    ("security.ipv4_filtering", "true"),
                    ("security.ipv6_filtering", "true"),
                ],
                false,
            ),
            (
                &[
                    ("type", "nic"),
                    ("network", "br"),
                    ("security.acls", "open"),
                ],
                true,
            ),
            (&[("type", "unix-char"), ("source", "/dev/kmsg")], true),
            (&[("type", "unix-block"), ("source", "/dev/sda")], true),
            (&[("type", "unix-hotplug"), ("vendorid", "1")], true),
            (
                &[
                    ("type", "proxy"),
                    ("listen", "tcp:0.0.0.0:80"),
                    ("connect", "tcp:127.0.0.1:80"),
                ],
                true,
            ),
            (&[("type", "gpu")], true),
            (&[("type", "usb")], true),
            (&[("type", "pci"), ("address", "0000:00:01.0")], true),
            (&[("type", "none")], false),
            (&[("type", "weird")], true),
        ];
        for (d, removed) in table {
            let plan = import_plan(&Config::new(), &devs(&[("dev", d)]));
            assert_eq!(!plan.is_empty(), *removed, "{d:?}: {plan:?}");
            if *removed {
                assert_eq!(plan[0].kind, "device");
                assert!(
                    plan[0].describe().starts_with("device dev ("),
                    "{:?}",
                    plan[0]
                );
            }
        }
    }

    #[test]
    fn the_forged_backup_of_issue_12_is_stripped_whole() {
        let plan = import_plan(
            &cfg(&[("security.privileged", "true"), ("limits.memory", "1GiB")]),
            &devs(&[
                (
                    "host",
                    &[("type", "disk"), ("source", "/"), ("path", "/mnt/host")],
                ),
                ("root", &[("type", "disk"), ("path", "/"), ("pool", "p")]),
            ]),
        );
        let names: Vec<&str> = plan.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["security.privileged", "host"]);
        assert!(plan[1].describe().contains("source=/"), "{:?}", plan[1]);
    }

    #[test]
    fn the_audit_flags_privileged_raw_and_host_paths_but_not_profiles_settings() {
        let f = audit_findings(
            &cfg(&[
                ("security.privileged", "true"),
                ("raw.lxc", "lxc.cap.drop=\nmore"),
                ("security.nesting", "true"),
                ("security.syscalls.intercept.mknod", "true"),
            ]),
            &devs(&[
                (
                    "host",
                    &[("type", "disk"), ("source", "/etc"), ("path", "/mnt")],
                ),
                ("root", &[("type", "disk"), ("path", "/"), ("pool", "p")]),
                ("eth0", &[("type", "nic"), ("network", "br")]),
            ]),
        );
        let checks: Vec<&str> = f.iter().map(|(c, _)| *c).collect();
        assert_eq!(
            checks,
            ["privileged", "raw config", "nic filters", "host-path disk"]
        );
        assert_eq!(f[1].1, "raw.lxc=lxc.cap.drop=");
        assert_eq!(
            f[2].1,
            "nic eth0 can use any address (security.mac_filtering, security.ipv4_filtering off)"
        );
        assert_eq!(f[3].1, "disk host mounts host /etc at /mnt");
        let filtered = [
            ("type", "nic"),
            ("network", "br"),
            ("security.mac_filtering", "true"),
            ("security.ipv4_filtering", "true"),
        ];
        assert!(audit_findings(
            &cfg(&[("security.nesting", "true")]),
            &devs(&[
                ("root", &[("type", "disk"), ("path", "/"), ("pool", "p")]),
                ("eth0", &filtered),
            ])
        )
        .is_empty());
    }
}
