//! The LXD profiles Terrarium manages, what each setting buys, and how a
//! live profile differs from Terrarium's definition (drift).
//!
//! - `default`: what `lxc launch IMAGE NAME` gets. Unprivileged,
//!   Docker-friendly, the locked `terrarium` user without sudo.
//! - `terrarium`: `default` plus a uid range of its own per container.
//! - `strict`: an add-on (stack it after `default`) that turns nesting and
//!   syscall interception off, isolates the uid range and caps processes.
//! - `dev`: standalone; Docker-friendly and `terrarium` gets passwordless sudo.
//! - `agent`: `dev` with limits (CPU, memory, processes) and no NIC: `trm
//!   launch` gives each agent box a bridge of its own with an egress
//!   policy (`agents::sandbox`), so a box launched by hand is offline.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::lxd::{Config, Devices, Profile};

pub mod managed;
pub mod reports;

/// Config key marking a profile as Terrarium's. Profiles without it are
/// the owner's and are never touched (LXD's stock `default` excepted: the
/// baseline adopts it, since it is what every launch gets).
pub const MANAGED_KEY: &str = "user.terrarium.managed";
pub const VENDOR_DATA_KEY: &str = "cloud-init.vendor-data";
/// The first comment line of Terrarium's vendor-data script; its presence
/// in an instance's expanded config means the instance needs cloud-init.
pub const USER_SCRIPT_MARKER: &str = "# terrarium-user";
/// Process cap of the `strict` profile: room for real services, not for a
/// fork bomb.
pub const STRICT_MAX_PROCESSES: u32 = 2000;

/// Defaults of the `agent` profile: room for an agent's builds, not for
/// starving the host (2 cores, 24 GiB here).
pub const AGENT_CPUS: u32 = 2;
pub const AGENT_MEMORY: &str = "2GiB";

pub const NAMES: [&str; 5] = ["default", "terrarium", "strict", "dev", "agent"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Sudo {
    None,
    Passwordless,
}

#[derive(Debug, Clone, Serialize)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub why: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Definition {
    pub name: String,
    /// Standalone profiles carry a root disk and a NIC; add-ons do not.
    pub standalone: bool,
    pub summary: String,
    pub sudo: Option<Sudo>,
    pub settings: Vec<Setting>,
    pub devices: Vec<Setting>,
    #[serde(skip)]
    device_map: Devices,
}

fn s(key: &str, value: &str, why: &str) -> Setting {
    Setting {
        key: key.into(),
        value: value.into(),
        why: why.into(),
    }
}

const WHY_UNPRIVILEGED: &str =
    "Root inside the container is an unprivileged uid on the host (a user namespace): \
     a process that escapes the container holds no host privilege.";
const WHY_NESTING: &str =
    "Lets the container mount its own proc and sysfs for nested containers, so Docker \
     runs inside. It weakens LXD's AppArmor confinement where AppArmor exists; the user namespace \
     stays the boundary either way.";
const WHY_MKNOD: &str =
    "LXD creates the few safe device nodes (e.g. overlay whiteouts) that Docker's \
     overlay2 storage asks for; an unprivileged container cannot mknod them itself.";
const WHY_SETXATTR: &str =
    "LXD performs the trusted.overlay.* xattr writes overlay2 needs, which an \
     unprivileged container is otherwise denied.";
const WHY_ISOLATED: &str = "Gives this container a uid/gid range of its own: container A's root is not \
     the same host uid as container B's root, so an escape from one cannot touch the other's files.";

fn user_setting(sudo: Sudo) -> Setting {
    let why = match sudo {
        Sudo::None => {
            "cloud-init creates the `terrarium` user: home /home/terrarium, bash, password \
            locked, no sudo. It is a vendor-data script, so the container's own user-data \
            (its users: or write_files:) cannot drop it."
        }
        Sudo::Passwordless => {
            "cloud-init creates the `terrarium` user with passwordless sudo, so \
            `sudo apt-get install` just works in a dev or agent box. The password stays \
            locked; root is still reachable only through LXD."
        }
    };
    s(VENDOR_DATA_KEY, &user_script(sudo), why)
}

/// Terrarium's definitions, for the pool and bridge `trm init` set up.
pub fn definitions(pool: &str, bridge: &str) -> Vec<Definition> {
    let unprivileged = s("security.privileged", "false", WHY_UNPRIVILEGED);
    let docker = vec![
        s("security.nesting", "true", WHY_NESTING),
        s("security.syscalls.intercept.mknod", "true", WHY_MKNOD),
        s("security.syscalls.intercept.setxattr", "true", WHY_SETXATTR),
    ];
    let devices = vec![
        s("root", &format!("disk on pool {pool}"), "The container's root filesystem lives on the Terrarium pool (snapshots, the time machine)."),
        s("eth0", &format!("nic on network {bridge}"), "The only NIC is on Terrarium's private bridge: outbound NAT, nothing routes in. Public exposure goes through Traefik, by choice. LXD's MAC, IPv4 and IPv6 filters pin it to the MAC and address the host assigned, so root inside cannot pose as a neighbour or the host."),
    ];
    let device_map: Devices = [
        (
            "root",
            vec![("type", "disk"), ("path", "/"), ("pool", pool)],
        ),
        (
            "eth0",
            vec![
                ("type", "nic"),
                ("name", "eth0"),
                ("network", bridge),
                ("security.mac_filtering", "true"),
                ("security.ipv4_filtering", "true"),
                ("security.ipv6_filtering", "true"),
            ],
        ),
    ]
    .into_iter()
    .map(|(n, kv)| {
        (
            n.to_string(),
            kv.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    })
    .collect();
    let with = |extra: Vec<Setting>| {
        let mut v = vec![unprivileged.clone()];
        v.extend(extra);
        v
    };
    vec![
        Definition {
            name: "default".into(),
            standalone: true,
            summary: "Terrarium default: unprivileged, Docker-friendly, locked terrarium user without sudo".into(),
            sudo: Some(Sudo::None),
            settings: with([docker.clone(), vec![user_setting(Sudo::None)]].concat()),
            devices: devices.clone(),
            device_map: device_map.clone(),
        },
        Definition {
            name: "terrarium".into(),
            standalone: true,
            summary: "Terrarium: the default baseline plus a host uid range of its own per container".into(),
            sudo: Some(Sudo::None),
            settings: with(
                [
                    docker.clone(),
                    vec![s("security.idmap.isolated", "true", WHY_ISOLATED), user_setting(Sudo::None)],
                ]
                .concat(),
            ),
            devices: devices.clone(),
            device_map: device_map.clone(),
        },
        Definition {
            name: "strict".into(),
            standalone: false,
            summary: "Terrarium strict add-on (stack after default): no nesting, no syscall interception, isolated uids, process cap".into(),
            sudo: None,
            settings: with(vec![
                s("security.nesting", "false", "No nested containers: the container cannot mount its own proc/sysfs for Docker. Choose it for workloads that need no Docker."),
                s("security.syscalls.intercept.mknod", "false", "LXD does not create device nodes on the container's behalf."),
                s("security.syscalls.intercept.setxattr", "false", "LXD does not write privileged xattrs on the container's behalf."),
                s("security.idmap.isolated", "true", WHY_ISOLATED),
                s("limits.processes", &STRICT_MAX_PROCESSES.to_string(), "A fork bomb stops at this many processes instead of exhausting the host's process table."),
            ]),
            devices: Vec::new(),
            device_map: Devices::new(),
        },
        Definition {
            name: "dev".into(),
            standalone: true,
            summary: "Terrarium dev: standalone, Docker-friendly, terrarium user with passwordless sudo".into(),
            sudo: Some(Sudo::Passwordless),
            settings: with([docker.clone(), vec![user_setting(Sudo::Passwordless)]].concat()),
            devices: devices.clone(),
            device_map: device_map.clone(),
        },
        Definition {
            name: crate::agents::sandbox::PROFILE.into(),
            standalone: true,
            summary: "Terrarium agent: dev with CPU, memory and process limits; `trm launch` gives each box its own bridge and egress policy".into(),
            sudo: Some(Sudo::Passwordless),
            settings: with(
                [
                    docker,
                    vec![
                        user_setting(Sudo::Passwordless),
                        s("limits.cpu", &AGENT_CPUS.to_string(), "At most this many CPUs: a runaway build or loop slows its own box, not the host."),
                        s("limits.memory", AGENT_MEMORY, "A memory hog is OOM-killed inside its box before the host runs short."),
                        s("limits.processes", &STRICT_MAX_PROCESSES.to_string(), "A fork bomb stops at this many processes instead of exhausting the host's process table."),
                    ],
                ]
                .concat(),
            ),
            devices: devices.into_iter().filter(|d| d.key == "root").collect(),
            device_map: device_map.into_iter().filter(|(n, _)| n == "root").collect(),
        },
    ]
}

pub fn definition(name: &str, pool: &str, bridge: &str) -> Option<Definition> {
    definitions(pool, bridge)
        .into_iter()
        .find(|d| d.name == name)
}

impl Definition {
    /// The LXD profile this definition installs.
    pub fn profile(&self) -> Profile {
        let mut config: Config = self
            .settings
            .iter()
            .map(|s| (s.key.clone(), s.value.clone()))
            .collect();
        config.insert(MANAGED_KEY.into(), "true".into());
        Profile {
            name: self.name.clone(),
            description: self.summary.clone(),
            config,
            devices: self.device_map.clone(),
            used_by: Vec::new(),
        }
    }
}

pub fn is_managed(p: &Profile) -> bool {
    p.config.get(MANAGED_KEY).map(String::as_str) == Some("true")
}

/// Where `trm launch --file` stages files before the first boot (as
/// root: the user does not exist yet); the user script moves them into
/// the home, owned by the user, before the user's own scripts run.
pub const FILES_INBOX: &str = "/var/lib/terrarium/files";

/// The cloud-init vendor-data that creates the `terrarium` user.
///
/// A shell script rather than cloud-config: cloud-init lets user-data
/// replace vendor-data's top-level lists (`users:`, `write_files:`,
/// `runcmd:`), so a container launched with its own user-data would lose a
/// cloud-config user. Vendor scripts always run (unless user-data turns
/// vendor-data off on purpose), after the users module, so they also get
/// the last word on the sudo policy.
pub fn user_script(sudo: Sudo) -> String {
    let policy = match sudo {
        Sudo::None => "none",
        Sudo::Passwordless => "passwordless",
    };
    let sudo_rule = match sudo {
        Sudo::None => "rm -f /etc/sudoers.d/90-terrarium\n".to_string(),
        Sudo::Passwordless => {
            "printf '%s ALL=(ALL) NOPASSWD:ALL\\n' \"$user\" > /etc/sudoers.d/.90-terrarium\n\
chmod 0440 /etc/sudoers.d/.90-terrarium\n\
mv /etc/sudoers.d/.90-terrarium /etc/sudoers.d/90-terrarium\n"
                .to_string()
        }
    };
    format!(
        "#!/bin/sh\n\
{USER_SCRIPT_MARKER} sudo={policy}\n\
# Written by Terrarium (cloud-init vendor-data). Creates the unprivileged\n\
# terrarium user and applies this profile's sudo policy.\n\
set -eu\n\
user=terrarium\n\
if ! getent passwd \"$user\" >/dev/null; then\n\
    useradd --create-home --home-dir /home/$user --shell /bin/bash --user-group \"$user\"\n\
fi\n\
usermod --shell /bin/bash \"$user\"\n\
passwd --lock \"$user\" >/dev/null\n\
# Exactly this profile's policy: no sudo through groups or other rules.\n\
for group in sudo admin wheel; do\n\
    gpasswd --delete \"$user\" \"$group\" >/dev/null 2>&1 || true\n\
done\n\
if [ -f /etc/sudoers.d/90-cloud-init-users ]; then\n\
    sed -i \"/^$user[[:space:]]/d\" /etc/sudoers.d/90-cloud-init-users\n\
fi\n\
{sudo_rule}\
# Files staged by `trm launch --file`: extracted by the user itself, so\n\
# they and the directories above them are its own.\n\
# The staging's entries, not its `.`: the home keeps its own mode.\n\
if [ -d {FILES_INBOX} ]; then\n\
    find {FILES_INBOX} -mindepth 1 -maxdepth 1 -printf '%P\\0' |\n\
        tar -C {FILES_INBOX} --null -T - -cf - |\n\
        runuser -u \"$user\" -- sh -c \"umask 077; exec tar -C /home/$user -xf - --no-same-owner\"\n\
    rm -rf {FILES_INBOX}\n\
fi\n"
    )
}

/// Where a live profile and its definition part.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    /// `config`, `device` or `description`.
    pub what: &'static str,
    pub key: String,
    /// What LXD has (`null`: absent).
    pub live: Option<serde_json::Value>,
    /// What Terrarium's definition says (`null`: should be absent).
    pub want: Option<serde_json::Value>,
}

/// Every difference: changed, missing and added keys and devices.
pub fn diff(live: &Profile, want: &Profile) -> Vec<Difference> {
    let mut out = Vec::new();
    if live.description != want.description {
        out.push(Difference {
            what: "description",
            key: "description".into(),
            live: Some(live.description.clone().into()),
            want: Some(want.description.clone().into()),
        });
    }
    out.extend(differ("config", &live.config, &want.config, |v| {
        v.clone().into()
    }));
    out.extend(differ("device", &live.devices, &want.devices, |v| {
        serde_json::to_value(v).expect("device maps serialize")
    }));
    out
}

fn differ<V: PartialEq>(
    what: &'static str,
    live: &BTreeMap<String, V>,
    want: &BTreeMap<String, V>,
    json: impl Fn(&V) -> serde_json::Value,
) -> Vec<Difference> {
    let mut keys: Vec<&String> = live.keys().chain(want.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| live.get(*k) != want.get(*k))
        .map(|k| Difference {
            what,
            key: k.clone(),
            live: live.get(k).map(&json),
            want: want.get(k).map(&json),
        })
        .collect()
}

/// Does this host's kernel have AppArmor (where `security.nesting` changes
/// LXD's confinement profile)?
pub fn kernel_has_apparmor() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .map(|s| s.trim() == "Y")
        .unwrap_or(false)
}

/// What the nesting switch buys on this kernel, in plain words.
pub fn nesting_note(apparmor: bool) -> String {
    if apparmor {
        "This kernel has AppArmor: security.nesting=true loads LXD's nesting-permissive AppArmor \
         profile, so nesting really relaxes confinement; strict keeps it tight."
            .into()
    } else {
        "This kernel has no AppArmor: LXD's nesting switch changes little a process inside can \
         observe (Docker may run even without it). The real boundaries here are the user \
         namespace (unprivileged root), the isolated uid range, syscall interception being off, \
         and limits.processes."
            .into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defs() -> Vec<Definition> {
        definitions("terrarium", "trmbr0")
    }

    #[test]
    fn the_four_profiles_say_what_the_security_model_promises() {
        let by = |n: &str| defs().into_iter().find(|d| d.name == n).unwrap().profile();
        let get = |p: &Profile, k: &str| p.config.get(k).cloned();
        for p in [by("default"), by("terrarium"), by("dev"), by("strict")] {
            assert_eq!(
                get(&p, "security.privileged").as_deref(),
                Some("false"),
                "{}",
                p.name
            );
            assert!(is_managed(&p));
        }
        for n in ["default", "terrarium", "dev"] {
            let p = by(n);
            assert_eq!(get(&p, "security.nesting").as_deref(), Some("true"));
            assert_eq!(
                get(&p, "security.syscalls.intercept.mknod").as_deref(),
                Some("true")
            );
            assert!(p.devices.contains_key("root") && p.devices.contains_key("eth0"));
        }
        let strict = by("strict");
        assert_eq!(get(&strict, "security.nesting").as_deref(), Some("false"));
        assert_eq!(
            get(&strict, "security.idmap.isolated").as_deref(),
            Some("true")
        );
        assert!(get(&strict, "limits.processes").is_some());
        assert!(strict.devices.is_empty(), "an add-on carries no devices");
        assert!(get(&strict, VENDOR_DATA_KEY).is_none());
        assert_eq!(
            get(&by("terrarium"), "security.idmap.isolated").as_deref(),
            Some("true")
        );
        assert!(get(&by("default"), "security.idmap.isolated").is_none());
        assert!(get(&by("dev"), VENDOR_DATA_KEY)
            .unwrap()
            .contains("NOPASSWD"));
        assert!(!get(&by("default"), VENDOR_DATA_KEY)
            .unwrap()
            .contains("NOPASSWD"));
        assert_eq!(by("default").devices["eth0"]["network"], "trmbr0");
        let agent = by("agent");
        assert!(get(&agent, VENDOR_DATA_KEY).unwrap().contains("NOPASSWD"));
        for key in ["limits.cpu", "limits.memory", "limits.processes"] {
            assert!(get(&agent, key).is_some(), "{key}");
        }
        assert_eq!(
            agent.devices.keys().collect::<Vec<_>>(),
            vec!["root"],
            "no NIC: trm launch gives the box its own bridge"
        );
    }

    #[test]
    fn every_setting_is_explained() {
        for d in defs() {
            for s in d.settings.iter().chain(&d.devices) {
                assert!(s.why.len() > 20, "{}: {} lacks a reason", d.name, s.key);
            }
        }
    }

    #[test]
    fn user_script_is_a_shell_script_with_the_marker() {
        let script = user_script(Sudo::None);
        assert!(script.starts_with("#!/bin/sh\n# terrarium-user sudo=none\n"));
        assert!(script.contains("passwd --lock"));
        assert!(script.contains("rm -f /etc/sudoers.d/90-terrarium"));
        let dev = user_script(Sudo::Passwordless);
        assert!(dev.contains("ALL=(ALL) NOPASSWD:ALL\\n"));
    }

    #[test]
    fn diff_finds_changed_added_and_missing() {
        let want = defs()[0].profile();
        assert!(diff(&want, &want).is_empty());
        let mut live = want.clone();
        live.config
            .insert("security.nesting".into(), "false".into());
        live.config.insert("limits.cpu".into(), "2".into());
        live.config.remove("security.syscalls.intercept.mknod");
        live.devices.remove("eth0");
        let d = diff(&live, &want);
        let keys: Vec<(&str, &str)> = d.iter().map(|x| (x.what, x.key.as_str())).collect();
        assert_eq!(
            keys,
            [
                ("config", "limits.cpu"),
                ("config", "security.nesting"),
                ("config", "security.syscalls.intercept.mknod"),
                ("device", "eth0")
            ]
        );
        assert_eq!(d[0].want, None);
        assert_eq!(d[1].live, Some("false".into()));
        assert_eq!(d[3].live, None);
    }
}
