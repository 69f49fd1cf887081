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
    /// `config`, `device`, `device key` or `snapshot`.
    pub kind: &'static str,
    /// The config key or device name.
    pub name: String,
    /// For `device key`: the key removed from device `name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: String,
    pub why: String,
}

impl Removal {
    /// In words, for reports: `security.privileged=true (why)`.
    pub fn describe(&self) -> String {
        match (self.kind, &self.key) {
            ("device", _) => format!("device {} ({}): {}", self.name, self.value, self.why),
            (_, Some(key)) => format!(
                "device {} key {key}={}: {}",
                self.name, self.value, self.why
            ),
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
    if key.starts_with("nvidia.") {
        return Some("hands the host's GPU driver to the container");
    }
    if key.starts_with("boot.autostart") {
        return Some("a restored instance starts only when its owner starts it");
    }
    if key.starts_with("snapshots.schedule") {
        return Some("snapshot schedules are Terrarium's (`trm-snap schedule`)");
    }
    None
}

/// The root disk on a storage pool, with nothing from the host.
fn is_pool_root(d: &std::collections::BTreeMap<String, String>) -> bool {
    d.get("path").map(String::as_str) == Some("/")
        && d.get("pool").is_some_and(|p| !p.is_empty())
        && d.get("source").is_none_or(|s| s.is_empty())
}

/// A NIC keeps only these keys, and `security.*_filtering=true`: an
/// address, a MAC or routes of its own could take a neighbour's traffic.
const NIC_KEYS: &[&str] = &["type", "name", "network"];

fn is_kept_nic_key(key: &str, value: &str) -> bool {
    NIC_KEYS.contains(&key)
        || (key.starts_with("security.") && key.ends_with("_filtering") && value == "true")
}

/// Why a NIC goes whole: not on Terrarium's bridge, or without LXD's MAC
/// and IPv4 filters once its other keys are stripped (the profile's NIC
/// of that name, which has them, shows through instead).
fn nic_reason(d: &Device, bridge: &str) -> Option<&'static str> {
    if bridge.is_empty() || d.get("network").map(String::as_str) != Some(bridge) {
        return Some("a NIC off Terrarium's bridge bypasses the bridge's rules");
    }
    let filtered = crate::expose::NIC_FILTERS
        .iter()
        .all(|k| d.get(*k).map(String::as_str) == Some("true"));
    (!filtered).then_some("a NIC without LXD's MAC and IPv4 filters could pose as a neighbour")
}

type Device = std::collections::BTreeMap<String, String>;

fn device_reason(d: &Device, bridge: &str) -> Option<&'static str> {
    match d.get("type").map(String::as_str).unwrap_or("") {
        // `none` hides a profile's device: it takes nothing from the host.
        "none" => None,
        "disk" if is_pool_root(d) => None,
        "disk" if d.get("source").is_some_and(|s| s.starts_with('/')) => {
            Some("a disk from a host path gives the container the host's files")
        }
        "disk" => Some("only the root disk on a pool is kept; attach volumes again by hand"),
        "nic" => nic_reason(d, bridge),
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

/// The config keys [`config_reason`] refuses, except those `allowed`.
fn config_removals(config: &Config, allowed: impl Fn(&str, &str) -> bool) -> Vec<Removal> {
    config
        .iter()
        .filter(|(k, v)| !allowed(k, v))
        .filter_map(|(k, v)| {
            config_reason(k, v).map(|why| Removal {
                kind: "config",
                name: k.clone(),
                key: None,
                value: v.clone(),
                why: why.into(),
            })
        })
        .collect()
}

/// What to remove from a restored instance's own config and devices;
/// `bridge` is the host's Terrarium bridge, the only network a NIC keeps.
pub fn import_plan(config: &Config, devices: &Devices, bridge: &str) -> Vec<Removal> {
    let mut out = config_removals(config, |_, _| false);
    for (name, d) in devices {
        if let Some(why) = device_reason(d, bridge) {
            out.push(Removal {
                kind: "device",
                name: name.clone(),
                key: None,
                value: describe_device(d),
                why: why.into(),
            });
        } else if d.get("type").map(String::as_str) == Some("nic") {
            out.extend(
                d.iter()
                    .filter(|(k, v)| !is_kept_nic_key(k, v))
                    .map(|(k, v)| Removal {
                        kind: "device key",
                        name: name.clone(),
                        key: Some(k.clone()),
                        value: v.clone(),
                        why: "a NIC keeps only its name, Terrarium's bridge and filters: \
                              an address, MAC or route of its own could take a neighbour's traffic"
                            .into(),
                    }),
            );
        }
    }
    out
}

/// What a profile brought from elsewhere (`trm config import`) may not
/// carry. A profile applies to every box using it at once, so it gets the
/// instance rules, except the `security.*` values one of Terrarium's own
/// profiles sets (`terrarium_sets`), and NICs without filters keys of
/// their own (Terrarium's profiles name the bridge only).
pub fn profile_refusals(
    config: &Config,
    devices: &Devices,
    bridge: &str,
    terrarium_sets: &std::collections::BTreeSet<(String, String)>,
) -> Vec<Removal> {
    let mut out = config_removals(config, |k, v| {
        terrarium_sets.contains(&(k.to_string(), v.to_string()))
    });
    for (name, d) in devices {
        let why = match d.get("type").map(String::as_str) {
            Some("nic") if d.get("network").map(String::as_str) != Some(bridge) => {
                Some("a NIC off Terrarium's bridge bypasses the bridge's rules")
            }
            Some("nic") => d
                .iter()
                .any(|(k, v)| !is_kept_nic_key(k, v))
                .then_some("a NIC keeps only its name, Terrarium's bridge and filters: an address, MAC or route could take a neighbour's traffic"),
            _ => device_reason(d, bridge),
        };
        if let Some(why) = why {
            out.push(Removal {
                kind: "device",
                name: name.clone(),
                key: None,
                value: describe_device(d),
                why: why.into(),
            });
        }
    }
    out
}

fn describe_device(d: &std::collections::BTreeMap<String, String>) -> String {
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// What an audit finding is about: a config key or a device.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Subject {
    Config(String),
    Device(String),
}

/// What the audit flags on a running host, from the expanded config and
/// devices (profiles included): privileged mode, raw.* keys, host-path
/// disks, NICs without LXD's MAC and IPv4 filters (root inside could pose
/// as a neighbour or the host). Each as (check name, what).
pub fn audit_findings(
    expanded_config: &Config,
    expanded_devices: &Devices,
) -> Vec<(&'static str, String)> {
    audit_items(expanded_config, expanded_devices)
        .into_iter()
        .map(|(check, what, _)| (check, what))
        .collect()
}

fn audit_items(
    expanded_config: &Config,
    expanded_devices: &Devices,
) -> Vec<(&'static str, String, Subject)> {
    let mut out = Vec::new();
    if expanded_config
        .get("security.privileged")
        .map(String::as_str)
        == Some("true")
    {
        out.push((
            "privileged",
            "security.privileged=true".to_string(),
            Subject::Config("security.privileged".into()),
        ));
    }
    for (k, v) in expanded_config
        .iter()
        .filter(|(k, _)| k.starts_with("raw."))
    {
        let first = v.lines().next().unwrap_or_default();
        out.push((
            "raw config",
            format!("{k}={first}"),
            Subject::Config(k.clone()),
        ));
    }
    for (name, d) in expanded_devices {
        let subject = || Subject::Device(name.clone());
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
                    subject(),
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
                subject(),
            ));
        }
    }
    out
}

/// The audit's findings on an imported instance, each naming where it
/// comes from: the instance itself, or the last of its profiles (in the
/// order LXD applies them) that sets it.
pub fn import_findings(
    local_config: &Config,
    local_devices: &Devices,
    expanded_config: &Config,
    expanded_devices: &Devices,
    profiles: &[crate::lxd::Profile],
) -> Vec<String> {
    audit_items(expanded_config, expanded_devices)
        .into_iter()
        .map(|(check, what, subject)| {
            let (local, in_profile) = match &subject {
                Subject::Config(k) => (
                    local_config.contains_key(k),
                    profiles.iter().rev().find(|p| p.config.contains_key(k)),
                ),
                Subject::Device(n) => (
                    local_devices.contains_key(n),
                    profiles.iter().rev().find(|p| p.devices.contains_key(n)),
                ),
            };
            let from = if local {
                "the instance itself".to_string()
            } else {
                match in_profile {
                    Some(p) => format!("profile {}", p.name),
                    None => "an unknown source".to_string(),
                }
            };
            format!("{check}: {what} (from {from})")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_imported_profile_may_relax_only_what_terrarium_profiles_do() {
        let defs = crate::profiles::definitions("pool", "br0");
        let sets: std::collections::BTreeSet<(String, String)> = defs
            .iter()
            .flat_map(|d| d.profile().config.into_iter())
            .filter(|(k, _)| k.starts_with("security."))
            .collect();
        for d in &defs {
            let p = d.profile();
            assert_eq!(
                profile_refusals(&p.config, &p.devices, "br0", &sets),
                vec![],
                "{}",
                p.name
            );
        }
        let kv = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        for (config, devices, what) in [
            (
                kv(&[("security.privileged", "true")]),
                Devices::new(),
                "privileged",
            ),
            (
                kv(&[("raw.lxc", "lxc.apparmor.profile=unconfined")]),
                Devices::new(),
                "raw",
            ),
            (
                Config::new(),
                [(
                    "h".to_string(),
                    kv(&[("type", "disk"), ("source", "/"), ("path", "/host")]),
                )]
                .into(),
                "host disk",
            ),
            (
                Config::new(),
                [(
                    "eth1".to_string(),
                    kv(&[("type", "nic"), ("nictype", "macvlan"), ("parent", "eth0")]),
                )]
                .into(),
                "macvlan",
            ),
            (
                Config::new(),
                [(
                    "eth0".to_string(),
                    kv(&[
                        ("type", "nic"),
                        ("network", "br0"),
                        ("hwaddr", "00:16:3e:00:00:01"),
                    ]),
                )]
                .into(),
                "a MAC of its own",
            ),
        ] {
            assert_eq!(
                profile_refusals(&config, &devices, "br0", &sets).len(),
                1,
                "{what}"
            );
        }
    }

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
            ("boot.autostart", "true", true),
            ("boot.autostart.delay", "5", true),
            ("boot.stop.priority", "1", false),
            ("snapshots.schedule", "@hourly", true),
            ("snapshots.expiry", "1w", false),
            ("nvidia.runtime", "true", true),
            ("nvidia.driver.capabilities", "all", true),
            ("image.os", "debian", false),
            ("volatile.base_image", "abc", false),
        ];
        for (k, v, removed) in table {
            let plan = import_plan(&cfg(&[(k, v)]), &Devices::new(), "br");
            assert_eq!(!plan.is_empty(), *removed, "{k}={v}: {plan:?}");
            if *removed {
                assert_eq!(plan[0].kind, "config");
                assert_eq!(plan[0].name, *k);
            }
        }
    }

    const FILTERS: [(&str, &str); 2] = [
        ("security.mac_filtering", "true"),
        ("security.ipv4_filtering", "true"),
    ];

    #[test]
    fn import_keeps_only_the_pool_root_and_filtered_nics_on_the_bridge() {
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
            // No filters: the profile's eth0, which has them, shows through.
            (
                &[("type", "nic"), ("name", "eth0"), ("network", "br")],
                true,
            ),
            (
                &[
                    ("type", "nic"),
                    ("name", "eth0"),
                    ("network", "br"),
                    FILTERS[0],
                    FILTERS[1],
                ],
                false,
            ),
            (
                &[
                    ("type", "nic"),
                    ("network", "other"),
                    FILTERS[0],
                    FILTERS[1],
                ],
                true,
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
                    FILTERS[1],
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
            let plan = import_plan(&Config::new(), &devs(&[("dev", d)]), "br");
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
            "br",
        );
        let names: Vec<&str> = plan.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["security.privileged", "host"]);
        assert!(plan[1].describe().contains("source=/"), "{:?}", plan[1]);
    }

    #[test]
    fn a_nic_on_the_bridge_loses_every_key_but_name_network_and_filters() {
        let nic = [
            ("type", "nic"),
            ("name", "eth0"),
            ("network", "br"),
            FILTERS[0],
            FILTERS[1],
            ("security.ipv6_filtering", "true"),
            ("hwaddr", "00:16:3e:00:00:01"),
            ("ipv4.address", "10.87.0.2"),
            ("ipv4.routes", "0.0.0.0/0"),
            ("ipv6.address", "fd00::2"),
            ("host_name", "veth-neighbour"),
            ("security.acls", "open"),
        ];
        let plan = import_plan(&Config::new(), &devs(&[("eth0", &nic)]), "br");
        let keys: Vec<(&str, &str, Option<&str>)> = plan
            .iter()
            .map(|r| (r.kind, r.name.as_str(), r.key.as_deref()))
            .collect();
        let want: Vec<(&str, &str, Option<&str>)> = [
            "host_name",
            "hwaddr",
            "ipv4.address",
            "ipv4.routes",
            "ipv6.address",
            "security.acls",
        ]
        .iter()
        .map(|k| ("device key", "eth0", Some(*k)))
        .collect();
        assert_eq!(keys, want);
        assert_eq!(
            plan[1]
                .describe()
                .split(':')
                .take(6)
                .collect::<Vec<_>>()
                .join(":"),
            "device eth0 key hwaddr=00:16:3e:00:00:01"
        );
        // On another network, or with no bridge configured, the NIC goes whole.
        for bridge in ["lxdbr0", ""] {
            let plan = import_plan(&Config::new(), &devs(&[("eth0", &nic)]), bridge);
            assert_eq!(plan.len(), 1, "{plan:?}");
            assert_eq!((plan[0].kind, plan[0].key.as_deref()), ("device", None));
        }
    }

    #[test]
    fn import_findings_name_the_profile_they_come_from() {
        let profile = |name: &str, c: &[(&str, &str)], d: Devices| crate::lxd::Profile {
            name: name.into(),
            description: String::new(),
            config: cfg(c),
            devices: d,
            used_by: Vec::new(),
        };
        let host = [("type", "disk"), ("source", "/srv"), ("path", "/mnt")];
        let eth0 = [("type", "nic"), ("network", "br"), FILTERS[0], FILTERS[1]];
        let profiles = [
            profile("default", &[], devs(&[("eth0", &eth0)])),
            profile(
                "evil",
                &[("security.privileged", "true")],
                devs(&[("host", &host)]),
            ),
            profile("late", &[], devs(&[("host", &host)])),
        ];
        let local_cfg = cfg(&[("raw.lxc", "x")]);
        let found = import_findings(
            &local_cfg,
            &Devices::new(),
            &cfg(&[("security.privileged", "true"), ("raw.lxc", "x")]),
            &devs(&[("host", &host), ("eth0", &eth0)]),
            &profiles,
        );
        assert_eq!(
            found,
            [
                "privileged: security.privileged=true (from profile evil)",
                "raw config: raw.lxc=x (from the instance itself)",
                "host-path disk: disk host mounts host /srv at /mnt (from profile late)",
            ]
        );
        assert!(import_findings(
            &Config::new(),
            &Devices::new(),
            &Config::new(),
            &devs(&[("eth0", &eth0)]),
            &profiles
        )
        .is_empty());
        let unknown = import_findings(
            &Config::new(),
            &Devices::new(),
            &Config::new(),
            &devs(&[("eth1", &[("type", "nic"), ("network", "br")])]),
            &[],
        );
        assert_eq!(
            unknown,
            ["nic filters: nic eth1 can use any address (security.mac_filtering, security.ipv4_filtering off) (from an unknown source)"]
        );
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
