//! The baseline planner: from what was read of the host, the steps that
//! bring it to the Terrarium baseline, in the order `apply` takes them.
//! It reads nothing itself.

use std::path::PathBuf;

use serde::Serialize;

use super::{Host, InitOptions, HTTPS_ADDRESS};
use crate::error::{Error, Result};
use crate::lxd::Config;
use crate::net::{self, Subnet};
use crate::profiles::{self, managed as managed_profiles};
use crate::settings::Settings;
use crate::sysctl;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub resource: &'static str,
    pub name: String,
    pub action: Action,
    pub detail: String,
    #[serde(skip)]
    pub(super) op: Op,
}

/// What `apply` does for a step.
#[derive(Debug, Clone)]
pub(super) enum Op {
    Nothing,
    CreateProject(Config),
    CreatePool { driver: String, config: Config },
    CreateNetwork(Config),
    PatchNetwork(Config),
    SetServer { key: String, value: String },
    PutProfile(crate::lxd::Profile),
    WriteSettings(Box<Settings>),
    RaiseSysctl { key: &'static str, value: u64 },
    WriteSysctlFile(PathBuf),
}

fn step(resource: &'static str, name: &str, action: Action, detail: String, op: Op) -> Step {
    Step {
        resource,
        name: name.to_string(),
        action,
        detail,
        op,
    }
}

fn config(pairs: &[(&str, &str)]) -> Config {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The steps that bring `host` to the baseline `opts` describe.
pub fn plan_from(host: &Host, opts: &InitOptions) -> Result<Vec<Step>> {
    let mut steps = Vec::new();
    if opts.project != "default" {
        steps.push(project_step(host, opts));
    }
    let (pool, pool_driver) = pool_step(host, opts)?;
    steps.push(pool);
    let (network, subnet) = network_step(host, opts)?;
    steps.push(network);
    steps.extend(sysctl_steps(host));
    steps.push(server_step(host));
    steps.extend(profile_steps(host, opts));
    steps.push(settings_step(host, opts, pool_driver, subnet));
    Ok(steps)
}

fn project_step(host: &Host, opts: &InitOptions) -> Step {
    if host.projects.contains(&opts.project) {
        return step(
            "project",
            &opts.project,
            Action::None,
            "present".into(),
            Op::Nothing,
        );
    }
    // Own profiles and volumes, but the host's images: one base image
    // serves every project.
    let cfg = config(&[
        ("features.images", "false"),
        ("features.profiles", "true"),
        ("features.storage.volumes", "true"),
    ]);
    step(
        "project",
        &opts.project,
        Action::Create,
        "own profiles and volumes, shared images".into(),
        Op::CreateProject(cfg),
    )
}

/// The pool's step and the driver it has or will have.
fn pool_step(host: &Host, opts: &InitOptions) -> Result<(Step, String)> {
    if let Some(pool) = host.pools.iter().find(|p| p.name == opts.pool) {
        if let Some(want) = opts.storage.as_deref().filter(|w| *w != pool.driver) {
            return Err(Error::Usage(format!(
                "storage pool '{}' exists with driver {}, not {want}; drop --storage or choose another --pool",
                pool.name, pool.driver
            )));
        }
        let s = step(
            "storage_pool",
            &opts.pool,
            Action::None,
            format!("present ({})", pool.driver),
            Op::Nothing,
        );
        return Ok((s, pool.driver.clone()));
    }
    let driver = choose_driver(opts.storage.as_deref(), &host.drivers)?;
    let mut cfg = Config::new();
    if let Some(size) = &opts.size {
        if driver == "dir" {
            return Err(Error::Usage(
                "--size applies to loop-file zfs and btrfs pools, not dir".into(),
            ));
        }
        cfg.insert("size".into(), size.clone());
    }
    let detail = match &opts.size {
        Some(s) => format!("{driver}, {s}"),
        None => driver.clone(),
    };
    let s = step(
        "storage_pool",
        &opts.pool,
        Action::Create,
        detail,
        Op::CreatePool {
            driver: driver.clone(),
            config: cfg,
        },
    );
    Ok((s, driver))
}

/// The bridge's step and the subnet it has or will have.
fn network_step(host: &Host, opts: &InitOptions) -> Result<(Step, String)> {
    let nat = opts.nat.to_string();
    let Some(n) = host.networks.iter().find(|n| n.name == opts.bridge) else {
        let subnet = new_subnet(host, opts)?;
        let cfg = config(&[
            ("ipv4.address", &subnet.to_string()),
            ("ipv4.nat", &nat),
            ("ipv4.dhcp", "true"),
            ("ipv6.address", "none"),
        ]);
        let s = step(
            "network",
            &opts.bridge,
            Action::Create,
            format!("bridge {subnet}, nat {nat}, no IPv6"),
            Op::CreateNetwork(cfg),
        );
        return Ok((s, subnet.to_string()));
    };
    if n.kind != "bridge" || !n.managed {
        return Err(Error::Usage(format!(
            "network '{}' exists but is not an LXD-managed bridge; choose another --bridge",
            n.name
        )));
    }
    let live = n.config.get("ipv4.address").cloned().unwrap_or_default();
    if let Some(want) = opts.subnet.map(|s| s.gateway().to_string()) {
        if want != live {
            return Err(Error::Usage(format!(
                "bridge '{}' already uses {live}, not {want}; changing a live bridge's subnet \
                 would cut its containers off, so Terrarium leaves it",
                n.name
            )));
        }
    }
    let mut drift = Config::new();
    for (k, v) in [("ipv4.nat", nat.as_str()), ("ipv6.address", "none")] {
        if n.config.get(k).map(String::as_str) != Some(v) {
            drift.insert(k.to_string(), v.to_string());
        }
    }
    let s = if drift.is_empty() {
        step(
            "network",
            &opts.bridge,
            Action::None,
            format!("present ({live}, nat {nat})"),
            Op::Nothing,
        )
    } else {
        let detail = drift
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(", ");
        step(
            "network",
            &opts.bridge,
            Action::Update,
            detail,
            Op::PatchNetwork(drift),
        )
    };
    Ok((s, live))
}

/// A subnet for a new bridge: `--subnet` if free and private, else the
/// first free /24; what the host routes and other networks use is taken.
fn new_subnet(host: &Host, opts: &InitOptions) -> Result<Subnet> {
    let mut taken: Vec<Subnet> = host
        .routes
        .iter()
        .filter(|(iface, _)| iface != &opts.bridge)
        .map(|(_, s)| *s)
        .collect();
    taken.extend(
        host.networks
            .iter()
            .filter_map(|n| n.config.get("ipv4.address"))
            .filter_map(|a| Subnet::parse(a).ok()),
    );
    match opts.subnet {
        Some(s) => {
            let s = s.gateway();
            if !s.is_private() {
                return Err(Error::Usage(format!(
                    "subnet {s} is not a private (RFC 1918) range"
                )));
            }
            if let Some(t) = taken.iter().find(|t| t.overlaps(&s)) {
                return Err(Error::Usage(format!(
                    "subnet {s} collides with {t}, which this host already routes; choose another --subnet"
                )));
            }
            Ok(s)
        }
        None => net::choose_free(&taken).ok_or_else(|| {
            Error::Usage("no free /24 in 10.100.0.0/16–10.254.0.0/16; pass --subnet".into())
        }),
    }
}

fn sysctl_steps(host: &Host) -> Vec<Step> {
    let mut steps: Vec<Step> = sysctl::too_low(&host.sysctl)
        .into_iter()
        .map(|(key, live, want)| {
            step(
                "sysctl",
                key,
                Action::Update,
                format!("{live} -> {want} (room for many containers)"),
                Op::RaiseSysctl { key, value: want },
            )
        })
        .collect();
    let name = host.sysctl_file.display().to_string();
    let write = Op::WriteSysctlFile(host.sysctl_file.clone());
    steps.push(match &host.sysctl_text {
        Some(t) if *t == sysctl::render() => step(
            "sysctl_file",
            &name,
            Action::None,
            "present".into(),
            Op::Nothing,
        ),
        Some(_) => step(
            "sysctl_file",
            &name,
            Action::Update,
            "persistent limits".into(),
            write,
        ),
        None => step(
            "sysctl_file",
            &name,
            Action::Create,
            "persistent limits".into(),
            write,
        ),
    });
    steps
}

fn server_step(host: &Host) -> Step {
    if host.https_address == HTTPS_ADDRESS {
        return step(
            "server_config",
            "core.https_address",
            Action::None,
            HTTPS_ADDRESS.into(),
            Op::Nothing,
        );
    }
    let was = if host.https_address.is_empty() {
        "unset"
    } else {
        &host.https_address
    };
    step(
        "server_config",
        "core.https_address",
        Action::Update,
        format!("{was} -> {HTTPS_ADDRESS} (loopback only)"),
        Op::SetServer {
            key: "core.https_address".into(),
            value: HTTPS_ADDRESS.into(),
        },
    )
}

fn profile_steps(host: &Host, opts: &InitOptions) -> Vec<Step> {
    use managed_profiles::Action as P;
    let defs = profiles::definitions(&opts.pool, &opts.bridge);
    managed_profiles::plan_from(&defs, &host.profiles)
        .into_iter()
        .map(|p| match p.action {
            P::Create => step(
                "profile",
                &p.name,
                Action::Create,
                p.detail,
                Op::PutProfile(p.want),
            ),
            P::Adopt => step(
                "profile",
                &p.name,
                Action::Update,
                p.detail,
                Op::PutProfile(p.want),
            ),
            P::None | P::Skip => step("profile", &p.name, Action::None, p.detail, Op::Nothing),
            // Hand edits are the owner's to throw away, not the baseline's.
            P::Restore => step(
                "profile",
                &p.name,
                Action::None,
                format!(
                    "drifted ({} hand edit(s)); `trm-profile diff {name}` shows them, \
                     `trm-profile apply {name}` restores it",
                    p.differences.len(),
                    name = p.name
                ),
                Op::Nothing,
            ),
        })
        .collect()
}

/// Settings `trm init` does not own ([expose], [snapshots]) are kept.
fn settings_step(host: &Host, opts: &InitOptions, driver: String, subnet: String) -> Step {
    let mut settings = host.settings.clone().unwrap_or_default();
    settings.project = opts.project.clone();
    settings.storage_pool = opts.pool.clone();
    settings.storage_driver = driver;
    settings.bridge = opts.bridge.clone();
    settings.subnet = subnet;
    settings.nat = opts.nat;
    settings.image = opts.image.clone();
    let (action, op) = match &host.settings {
        Some(live) if *live == settings => (Action::None, Op::Nothing),
        Some(_) => (Action::Update, Op::WriteSettings(Box::new(settings))),
        None => (Action::Create, Op::WriteSettings(Box::new(settings))),
    };
    step(
        "settings",
        &host.settings_file.display().to_string(),
        action,
        "host settings".into(),
        op,
    )
}

fn choose_driver(requested: Option<&str>, supported: &[String]) -> Result<String> {
    if let Some(r) = requested {
        if !["zfs", "btrfs", "dir", "lvm"].contains(&r) {
            return Err(Error::Usage(format!(
                "unknown storage driver '{r}'; use zfs, btrfs, lvm or dir"
            )));
        }
        if !supported.iter().any(|s| s == r) {
            return Err(Error::Usage(format!(
                "this LXD cannot use storage driver '{r}' (it supports {})",
                supported.join(", ")
            )));
        }
        return Ok(r.to_string());
    }
    // LXD lists zfs only when the kernel module is loaded.
    ["zfs", "btrfs", "dir"]
        .into_iter()
        .find(|d| supported.iter().any(|s| s == d))
        .map(str::to_string)
        .ok_or_else(|| Error::Unavailable("LXD supports none of zfs, btrfs or dir".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::exit;
    use crate::lxd::{Network, Profile, StoragePool};
    use crate::profiles::Definition;

    const SYSCTL_FILE: &str = "/etc/sysctl.d/60-terrarium.conf";
    const SETTINGS_FILE: &str = "/etc/terrarium/terrarium.toml";

    fn opts() -> InitOptions {
        InitOptions {
            project: "trm-test".into(),
            pool: "terrarium".into(),
            storage: None,
            size: None,
            bridge: "trmbr0".into(),
            subnet: None,
            nat: true,
            image: "terrarium/debian12".into(),
        }
    }

    fn subnet(s: &str) -> Subnet {
        Subnet::parse(s).unwrap()
    }

    fn bridge(name: &str, pairs: &[(&str, &str)]) -> Network {
        Network {
            name: name.into(),
            kind: "bridge".into(),
            managed: true,
            config: config(pairs),
        }
    }

    fn defs() -> Vec<Definition> {
        profiles::definitions("terrarium", "trmbr0")
    }

    /// A host nothing has touched: LXD with btrfs and dir, its LAN routed,
    /// two of the kernel limits at their stock values.
    fn fresh() -> Host {
        Host {
            drivers: vec!["btrfs".into(), "dir".into()],
            projects: vec!["default".into()],
            routes: vec![("eth0".into(), subnet("192.168.1.0/24"))],
            sysctl: vec![
                ("fs.inotify.max_user_instances", 128),
                ("vm.max_map_count", 65_530),
            ],
            sysctl_file: SYSCTL_FILE.into(),
            settings_file: SETTINGS_FILE.into(),
            ..Host::default()
        }
    }

    /// What `fresh()` looks like once `opts()` was applied.
    fn at_baseline() -> Host {
        let o = opts();
        Host {
            https_address: HTTPS_ADDRESS.into(),
            projects: vec!["default".into(), o.project.clone()],
            pools: vec![StoragePool {
                name: o.pool.clone(),
                driver: "btrfs".into(),
                config: Config::new(),
                status: "Created".into(),
            }],
            networks: vec![bridge(
                &o.bridge,
                &[
                    ("ipv4.address", "10.100.0.1/24"),
                    ("ipv4.nat", "true"),
                    ("ipv4.dhcp", "true"),
                    ("ipv6.address", "none"),
                ],
            )],
            routes: Vec::new(),
            sysctl: sysctl::RECOMMENDED.to_vec(),
            sysctl_text: Some(sysctl::render()),
            profiles: defs().iter().map(Definition::profile).collect(),
            settings: Some(Settings {
                project: o.project,
                storage_pool: o.pool,
                storage_driver: "btrfs".into(),
                bridge: o.bridge,
                subnet: "10.100.0.1/24".into(),
                nat: true,
                image: o.image,
                ..Settings::default()
            }),
            ..fresh()
        }
    }

    type Row = (&'static str, String, Action, String);
    /// Something changed on the host since it was at the baseline.
    type Drift = Box<dyn Fn(&mut Host)>;
    /// What the owner asks for (options) on which host.
    type Choose = fn(&mut Host, &mut InitOptions);

    fn rows(steps: &[Step]) -> Vec<Row> {
        steps
            .iter()
            .map(|s| (s.resource, s.name.clone(), s.action, s.detail.clone()))
            .collect()
    }

    fn row(resource: &'static str, name: &str, action: Action, detail: &str) -> Row {
        (resource, name.into(), action, detail.into())
    }

    fn changes(steps: &[Step]) -> Vec<Row> {
        rows(steps)
            .into_iter()
            .filter(|r| r.2 != Action::None)
            .collect()
    }

    fn planned(host: &Host) -> Vec<Step> {
        plan_from(host, &opts()).unwrap()
    }

    #[test]
    fn a_fresh_host_gets_every_piece_created_in_order() {
        let mut want = vec![
            row(
                "project",
                "trm-test",
                Action::Create,
                "own profiles and volumes, shared images",
            ),
            row("storage_pool", "terrarium", Action::Create, "btrfs"),
            row(
                "network",
                "trmbr0",
                Action::Create,
                "bridge 10.100.0.1/24, nat true, no IPv6",
            ),
            row(
                "sysctl",
                "fs.inotify.max_user_instances",
                Action::Update,
                "128 -> 1048576 (room for many containers)",
            ),
            row(
                "sysctl",
                "vm.max_map_count",
                Action::Update,
                "65530 -> 262144 (room for many containers)",
            ),
            row(
                "sysctl_file",
                SYSCTL_FILE,
                Action::Create,
                "persistent limits",
            ),
            row(
                "server_config",
                "core.https_address",
                Action::Update,
                "unset -> 127.0.0.1:8443 (loopback only)",
            ),
        ];
        want.extend(
            defs()
                .iter()
                .map(|d| row("profile", &d.name, Action::Create, &d.summary)),
        );
        want.push(row(
            "settings",
            SETTINGS_FILE,
            Action::Create,
            "host settings",
        ));
        assert_eq!(rows(&planned(&fresh())), want);
    }

    #[test]
    fn a_host_at_the_baseline_has_nothing_to_do() {
        let steps = planned(&at_baseline());
        assert_eq!(changes(&steps), Vec::<Row>::new());
        let mut want = vec![
            row("project", "trm-test", Action::None, "present"),
            row("storage_pool", "terrarium", Action::None, "present (btrfs)"),
            row(
                "network",
                "trmbr0",
                Action::None,
                "present (10.100.0.1/24, nat true)",
            ),
            row("sysctl_file", SYSCTL_FILE, Action::None, "present"),
            row(
                "server_config",
                "core.https_address",
                Action::None,
                HTTPS_ADDRESS,
            ),
        ];
        want.extend(
            defs()
                .iter()
                .map(|d| row("profile", &d.name, Action::None, "in sync")),
        );
        want.push(row(
            "settings",
            SETTINGS_FILE,
            Action::None,
            "host settings",
        ));
        assert_eq!(rows(&steps), want);
    }

    #[test]
    fn one_drifted_piece_is_exactly_one_step() {
        let stock_default = Profile {
            name: "default".into(),
            description: "Default LXD profile".into(),
            ..Profile::default()
        };
        let adopt = format!(
            "LXD's default profile becomes Terrarium's ({} change(s))",
            profiles::diff(&stock_default, &defs()[0].profile()).len()
        );
        let dev = defs().into_iter().find(|d| d.name == "dev").unwrap();
        let cases: Vec<(&str, Drift, Row)> = vec![
            (
                "NAT switched off by hand",
                Box::new(|h| {
                    h.networks[0]
                        .config
                        .insert("ipv4.nat".into(), "false".into());
                }),
                row("network", "trmbr0", Action::Update, "ipv4.nat=true"),
            ),
            (
                "IPv6 turned on",
                Box::new(|h| {
                    h.networks[0]
                        .config
                        .insert("ipv6.address".into(), "fd42::1/64".into());
                }),
                row("network", "trmbr0", Action::Update, "ipv6.address=none"),
            ),
            (
                "LXD's API on every address",
                Box::new(|h| h.https_address = "[::]:8443".into()),
                row(
                    "server_config",
                    "core.https_address",
                    Action::Update,
                    "[::]:8443 -> 127.0.0.1:8443 (loopback only)",
                ),
            ),
            (
                "a kernel limit back at its stock value",
                Box::new(|h| h.sysctl[2].1 = 8192),
                row(
                    "sysctl",
                    "fs.inotify.max_user_watches",
                    Action::Update,
                    "8192 -> 1048576 (room for many containers)",
                ),
            ),
            (
                "the sysctl file edited",
                Box::new(|h| h.sysctl_text = Some("vm.max_map_count = 1\n".into())),
                row(
                    "sysctl_file",
                    SYSCTL_FILE,
                    Action::Update,
                    "persistent limits",
                ),
            ),
            (
                "the sysctl file removed",
                Box::new(|h| h.sysctl_text = None),
                row(
                    "sysctl_file",
                    SYSCTL_FILE,
                    Action::Create,
                    "persistent limits",
                ),
            ),
            (
                "a profile deleted",
                Box::new(|h| h.profiles.retain(|p| p.name != "dev")),
                row("profile", "dev", Action::Create, &dev.summary),
            ),
            (
                "LXD's stock default profile",
                Box::new(move |h| h.profiles[0] = stock_default.clone()),
                row("profile", "default", Action::Update, &adopt),
            ),
            (
                "settings of another image",
                Box::new(|h| h.settings.as_mut().unwrap().image = "debian/13".into()),
                row("settings", SETTINGS_FILE, Action::Update, "host settings"),
            ),
            (
                "settings removed",
                Box::new(|h| h.settings = None),
                row("settings", SETTINGS_FILE, Action::Create, "host settings"),
            ),
        ];
        for (what, drift, want) in cases {
            let mut host = at_baseline();
            drift(&mut host);
            assert_eq!(changes(&planned(&host)), vec![want], "{what}");
        }
    }

    #[test]
    fn hand_edits_and_foreign_profiles_are_reported_never_overwritten() {
        let mut host = at_baseline();
        host.profiles[2]
            .config
            .insert("limits.cpu".into(), "2".into());
        let foreign = host.profiles.iter_mut().find(|p| p.name == "dev").unwrap();
        foreign.config.remove(profiles::MANAGED_KEY);
        let steps = planned(&host);
        assert_eq!(changes(&steps), Vec::<Row>::new());
        let detail = |name: &str| {
            steps
                .iter()
                .find(|s| s.resource == "profile" && s.name == name)
                .map(|s| s.detail.clone())
                .unwrap()
        };
        let edited = &defs()[2].name;
        assert_eq!(
            detail(edited),
            format!(
                "drifted (1 hand edit(s)); `trm-profile diff {edited}` shows them, \
                 `trm-profile apply {edited}` restores it"
            )
        );
        assert_eq!(
            detail("dev"),
            "exists and is not managed by Terrarium; left alone"
        );
    }

    #[test]
    fn choices_show_in_the_steps() {
        let cases: Vec<(&str, Choose, Row)> = vec![
            (
                "the default project is LXD's own: no project step",
                |_, o| o.project = "default".into(),
                row("storage_pool", "terrarium", Action::Create, "btrfs"),
            ),
            (
                "zfs is preferred where LXD has it",
                |h, _| h.drivers.insert(0, "zfs".into()),
                row("storage_pool", "terrarium", Action::Create, "zfs"),
            ),
            (
                "a loop-file size",
                |_, o| o.size = Some("20GiB".into()),
                row("storage_pool", "terrarium", Action::Create, "btrfs, 20GiB"),
            ),
            (
                "--storage dir",
                |_, o| o.storage = Some("dir".into()),
                row("storage_pool", "terrarium", Action::Create, "dir"),
            ),
        ];
        for (what, choose, want) in cases {
            let (mut host, mut o) = (fresh(), opts());
            choose(&mut host, &mut o);
            let steps = plan_from(&host, &o).unwrap();
            assert!(rows(&steps).contains(&want), "{what}: {:?}", rows(&steps));
            assert_eq!(
                steps.iter().any(|s| s.resource == "project"),
                o.project != "default",
                "{what}"
            );
        }
    }

    #[test]
    fn a_new_bridge_takes_a_subnet_nothing_else_uses() {
        let cases: Vec<(&str, Choose, &str)> = vec![
            (
                "other networks and routes are taken",
                |h, _| {
                    h.networks
                        .push(bridge("lxdbr0", &[("ipv4.address", "10.100.0.1/24")]));
                    h.routes.push(("eth1".into(), subnet("10.100.1.0/24")));
                },
                "bridge 10.100.2.1/24, nat true, no IPv6",
            ),
            (
                "a stale route of the bridge itself is not",
                |h, _| h.routes.push(("trmbr0".into(), subnet("10.100.0.0/24"))),
                "bridge 10.100.0.1/24, nat true, no IPv6",
            ),
            (
                "--subnet, given as its network",
                |_, o| o.subnet = Some(subnet("10.87.0.0/24")),
                "bridge 10.87.0.1/24, nat true, no IPv6",
            ),
            (
                "--no-nat",
                |_, o| o.nat = false,
                "bridge 10.100.0.1/24, nat false, no IPv6",
            ),
        ];
        for (what, choose, want) in cases {
            let (mut host, mut o) = (fresh(), opts());
            choose(&mut host, &mut o);
            let steps = plan_from(&host, &o).unwrap();
            let net = steps.iter().find(|s| s.resource == "network").unwrap();
            assert_eq!(
                (net.action, net.detail.as_str()),
                (Action::Create, want),
                "{what}"
            );
            let settings = steps.last().unwrap();
            let Op::WriteSettings(s) = &settings.op else {
                panic!("{what}: settings are written");
            };
            assert_eq!(
                s.subnet,
                want.split(' ').nth(1).unwrap().trim_end_matches(','),
                "{what}: the settings record the bridge's subnet"
            );
        }
    }

    #[test]
    fn settings_init_does_not_own_are_kept() {
        let mut host = at_baseline();
        let live = host.settings.as_mut().unwrap();
        live.expose.root_domain = "example.org".into();
        live.snapshots.daily = 11;
        let mut o = opts();
        o.image = "debian/13".into();
        let steps = plan_from(&host, &o).unwrap();
        let Op::WriteSettings(s) = &steps.last().unwrap().op else {
            panic!("the settings are rewritten");
        };
        assert_eq!(s.image, "debian/13");
        assert_eq!(s.expose.root_domain, "example.org");
        assert_eq!(s.snapshots.daily, 11);
    }

    #[test]
    fn impossible_choices_are_refused_with_what_to_do() {
        let cases: Vec<(&str, Choose, i32, &str)> = vec![
            (
                "the pool exists with another driver",
                |h, o| {
                    *h = at_baseline();
                    h.pools[0].driver = "zfs".into();
                    o.storage = Some("btrfs".into());
                },
                exit::USAGE,
                "storage pool 'terrarium' exists with driver zfs, not btrfs; drop --storage or choose another --pool",
            ),
            (
                "a driver this LXD lacks",
                |_, o| o.storage = Some("zfs".into()),
                exit::USAGE,
                "this LXD cannot use storage driver 'zfs' (it supports btrfs, dir)",
            ),
            (
                "a driver Terrarium does not know",
                |_, o| o.storage = Some("ext4".into()),
                exit::USAGE,
                "unknown storage driver 'ext4'; use zfs, btrfs, lvm or dir",
            ),
            (
                "a size for a dir pool",
                |_, o| {
                    o.storage = Some("dir".into());
                    o.size = Some("20GiB".into());
                },
                exit::USAGE,
                "--size applies to loop-file zfs and btrfs pools, not dir",
            ),
            (
                "an LXD with no usable driver",
                |h, _| h.drivers = vec!["lvm".into()],
                exit::UNAVAILABLE,
                "LXD supports none of zfs, btrfs or dir",
            ),
            (
                "the bridge's name taken by an unmanaged network",
                |h, _| {
                    *h = at_baseline();
                    h.networks[0].managed = false;
                },
                exit::USAGE,
                "network 'trmbr0' exists but is not an LXD-managed bridge; choose another --bridge",
            ),
            (
                "the bridge's name taken by a physical interface",
                |h, _| {
                    *h = at_baseline();
                    h.networks[0].kind = "physical".into();
                },
                exit::USAGE,
                "network 'trmbr0' exists but is not an LXD-managed bridge; choose another --bridge",
            ),
            (
                "another subnet for a live bridge",
                |h, o| {
                    *h = at_baseline();
                    o.subnet = Some(subnet("10.87.0.1/24"));
                },
                exit::USAGE,
                "bridge 'trmbr0' already uses 10.100.0.1/24, not 10.87.0.1/24; changing a live bridge's subnet would cut its containers off, so Terrarium leaves it",
            ),
            (
                "a public subnet",
                |_, o| o.subnet = Some(subnet("8.8.8.0/24")),
                exit::USAGE,
                "subnet 8.8.8.1/24 is not a private (RFC 1918) range",
            ),
            (
                "a subnet the host routes",
                |_, o| o.subnet = Some(subnet("192.168.1.0/24")),
                exit::USAGE,
                "subnet 192.168.1.1/24 collides with 192.168.1.0/24, which this host already routes; choose another --subnet",
            ),
        ];
        for (what, choose, code, message) in cases {
            let (mut host, mut o) = (fresh(), opts());
            choose(&mut host, &mut o);
            let e = plan_from(&host, &o).unwrap_err();
            assert_eq!(
                (e.exit_code(), e.to_string()),
                (code, message.to_string()),
                "{what}"
            );
        }
    }

    #[test]
    fn driver_preference_and_validation() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(choose_driver(None, &s(&["btrfs", "dir"])).unwrap(), "btrfs");
        assert_eq!(
            choose_driver(None, &s(&["zfs", "btrfs", "dir"])).unwrap(),
            "zfs"
        );
        assert_eq!(choose_driver(None, &s(&["dir"])).unwrap(), "dir");
        assert_eq!(
            choose_driver(Some("dir"), &s(&["btrfs", "dir"])).unwrap(),
            "dir"
        );
        let e = choose_driver(Some("zfs"), &s(&["btrfs", "dir"])).unwrap_err();
        assert!(
            e.to_string().contains("cannot use storage driver 'zfs'"),
            "{e}"
        );
        assert!(choose_driver(Some("ext4"), &s(&["dir"])).is_err());
    }
}
