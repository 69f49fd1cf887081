//! `trm init`: compare this host with the Terrarium baseline, plan the
//! steps that close the gap, and apply them. Planning only reads, so
//! `--dry-run` and a second run are honest about what would change.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lxd::{Config, Lxd};
use crate::net::{self, Subnet};
use crate::profiles::{self, managed as managed_profiles};
use crate::settings::Settings;
use crate::sysctl;

/// LXD's API listens on loopback only; Traefik fronts it when wanted.
pub const HTTPS_ADDRESS: &str = "127.0.0.1:8443";

#[derive(Debug, Clone)]
pub struct InitOptions {
    pub project: String,
    pub pool: String,
    /// `zfs`, `btrfs`, `dir` or `lvm`; `None` picks the best available.
    pub storage: Option<String>,
    /// Loop-file size for zfs/btrfs pools, e.g. `20GiB`.
    pub size: Option<String>,
    pub bridge: String,
    pub subnet: Option<Subnet>,
    pub nat: bool,
    pub image: String,
}

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
    op: Op,
}

#[derive(Debug, Clone)]
enum Op {
    Nothing,
    CreateProject(Config),
    CreatePool { driver: String, config: Config },
    CreateNetwork(Config),
    PatchNetwork(Config),
    SetServer { key: String, value: String },
    PutProfile(crate::lxd::Profile),
    WriteSettings(Box<Settings>),
    RaiseSysctl { key: &'static str, value: u64 },
    WriteSysctlFile,
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

/// Read the host and LXD, and list what `apply` must do. `lxd` is scoped
/// to `opts.project`.
pub fn plan(lxd: &Lxd, opts: &InitOptions) -> Result<Vec<Step>> {
    let server = lxd.ping()?;
    let mut steps = Vec::new();

    if opts.project != "default" {
        let exists = lxd.projects()?.iter().any(|p| p.name == opts.project);
        steps.push(if exists {
            step(
                "project",
                &opts.project,
                Action::None,
                "present".into(),
                Op::Nothing,
            )
        } else {
            // Own profiles and volumes, but the host's images: one base
            // image serves every project.
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
        });
    }

    let supported: Vec<String> = server
        .environment
        .storage_supported_drivers
        .iter()
        .map(|d| d.name.clone())
        .collect();
    let pool_driver;
    match lxd
        .storage_pools()?
        .into_iter()
        .find(|p| p.name == opts.pool)
    {
        Some(pool) => {
            if let Some(want) = opts.storage.as_deref().filter(|w| *w != pool.driver) {
                return Err(Error::Usage(format!(
                    "storage pool '{}' exists with driver {}, not {want}; drop --storage or choose another --pool",
                    pool.name, pool.driver
                )));
            }
            pool_driver = pool.driver.clone();
            steps.push(step(
                "storage_pool",
                &opts.pool,
                Action::None,
                format!("present ({})", pool.driver),
                Op::Nothing,
            ));
        }
        None => {
            let driver = choose_driver(opts.storage.as_deref(), &supported)?;
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
            pool_driver = driver.clone();
            steps.push(step(
                "storage_pool",
                &opts.pool,
                Action::Create,
                detail,
                Op::CreatePool {
                    driver,
                    config: cfg,
                },
            ));
        }
    }

    let networks = lxd.networks()?;
    let nat = opts.nat.to_string();
    let subnet = match networks.iter().find(|n| n.name == opts.bridge) {
        Some(n) => {
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
            steps.push(if drift.is_empty() {
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
            });
            live
        }
        None => {
            let mut taken: Vec<Subnet> = net::host_routes()?
                .into_iter()
                .filter(|(iface, _)| iface != &opts.bridge)
                .map(|(_, s)| s)
                .collect();
            taken.extend(
                networks
                    .iter()
                    .filter_map(|n| n.config.get("ipv4.address"))
                    .filter_map(|a| Subnet::parse(a).ok()),
            );
            let subnet = match opts.subnet {
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
                    s
                }
                None => net::choose_free(&taken).ok_or_else(|| {
                    Error::Usage("no free /24 in 10.100.0.0/16–10.254.0.0/16; pass --subnet".into())
                })?,
            };
            let cfg = config(&[
                ("ipv4.address", &subnet.to_string()),
                ("ipv4.nat", &nat),
                ("ipv4.dhcp", "true"),
                ("ipv6.address", "none"),
            ]);
            steps.push(step(
                "network",
                &opts.bridge,
                Action::Create,
                format!("bridge {subnet}, nat {nat}, no IPv6"),
                Op::CreateNetwork(cfg),
            ));
            subnet.to_string()
        }
    };

    for (key, live, want) in sysctl::too_low() {
        steps.push(step(
            "sysctl",
            key,
            Action::Update,
            format!("{live} -> {want} (room for many containers)"),
            Op::RaiseSysctl { key, value: want },
        ));
    }
    let conf = sysctl::conf_dir().join(sysctl::FILE_NAME);
    let conf_name = conf.display().to_string();
    steps.push(match std::fs::read_to_string(&conf) {
        Ok(t) if t == sysctl::render() => step(
            "sysctl_file",
            &conf_name,
            Action::None,
            "present".into(),
            Op::Nothing,
        ),
        Ok(_) => step(
            "sysctl_file",
            &conf_name,
            Action::Update,
            "persistent limits".into(),
            Op::WriteSysctlFile,
        ),
        Err(_) => step(
            "sysctl_file",
            &conf_name,
            Action::Create,
            "persistent limits".into(),
            Op::WriteSysctlFile,
        ),
    });

    let live_https = server
        .config
        .get("core.https_address")
        .and_then(|v| v.as_str())
        .unwrap_or("")
        .to_string();
    steps.push(if live_https == HTTPS_ADDRESS {
        step(
            "server_config",
            "core.https_address",
            Action::None,
            HTTPS_ADDRESS.into(),
            Op::Nothing,
        )
    } else {
        let was = if live_https.is_empty() {
            "unset".to_string()
        } else {
            live_https
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
    });

    let defs = profiles::definitions(&opts.pool, &opts.bridge);
    // A project created by this very plan has no profiles to read yet.
    let plans = if steps
        .iter()
        .any(|s| s.resource == "project" && s.action == Action::Create)
    {
        defs.iter()
            .map(|d| managed_profiles::Plan {
                name: d.name.clone(),
                action: managed_profiles::Action::Create,
                detail: d.summary.clone(),
                differences: Vec::new(),
                want: d.profile(),
            })
            .collect()
    } else {
        managed_profiles::plan(lxd, &defs)?
    };
    for p in plans {
        use managed_profiles::Action as P;
        steps.push(match p.action {
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
        });
    }

    // Settings `trm init` does not own ([expose], [snapshots]) are kept.
    let live_settings = Settings::load()?;
    let mut settings = live_settings.clone().unwrap_or_default();
    settings.project = opts.project.clone();
    settings.storage_pool = opts.pool.clone();
    settings.storage_driver = pool_driver;
    settings.bridge = opts.bridge.clone();
    settings.subnet = subnet;
    settings.nat = opts.nat;
    settings.image = opts.image.clone();
    let path = crate::settings::config_path();
    steps.push(match live_settings {
        Some(live) if live == settings => settings_step(&path, Action::None, settings),
        Some(_) => settings_step(&path, Action::Update, settings),
        None => settings_step(&path, Action::Create, settings),
    });
    Ok(steps)
}

fn settings_step(path: &Path, action: Action, s: Settings) -> Step {
    let op = if action == Action::None {
        Op::Nothing
    } else {
        Op::WriteSettings(Box::new(s))
    };
    step(
        "settings",
        &path.display().to_string(),
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

/// Carry out the planned steps in order.
pub fn apply(lxd: &Lxd, steps: &[Step]) -> Result<()> {
    for s in steps {
        match &s.op {
            Op::Nothing => {}
            Op::CreateProject(cfg) => lxd.create_project(&s.name, cfg)?,
            Op::CreatePool { driver, config } => {
                lxd.create_storage_pool(&s.name, driver, config)?
            }
            Op::CreateNetwork(cfg) => lxd.create_network(&s.name, cfg)?,
            Op::PatchNetwork(cfg) => lxd.patch_network(&s.name, cfg)?,
            Op::SetServer { key, value } => lxd.set_server_config(key, value)?,
            Op::PutProfile(p) => lxd.put_profile(p)?,
            Op::WriteSettings(settings) => settings.save()?,
            Op::RaiseSysctl { key, value } => sysctl::raise(key, *value)?,
            Op::WriteSysctlFile => crate::fs::atomic_write(
                &sysctl::conf_dir().join(sysctl::FILE_NAME),
                sysctl::render().as_bytes(),
                0o644,
            )?,
        }
    }
    Ok(())
}

/// What `trm init` planned or did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub changed: bool,
    pub dry_run: bool,
    pub steps: Vec<Step>,
}

impl crate::output::Human for Report {
    fn human(&self) -> String {
        let mut lines: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                let mark = match (s.action, self.dry_run) {
                    (Action::None, _) => "ok     ",
                    (Action::Create, true) => "create?",
                    (Action::Update, true) => "update?",
                    (Action::Create, false) => "created",
                    (Action::Update, false) => "updated",
                };
                format!(
                    "{mark}  {} {}: {}",
                    s.resource.replace('_', " "),
                    s.name,
                    s.detail
                )
            })
            .collect();
        lines.push(match (self.changed, self.dry_run) {
            (false, _) => "Nothing to change: this host is at the Terrarium baseline.".into(),
            (true, true) => "Dry run: nothing was changed.".into(),
            (true, false) => "This host is now at the Terrarium baseline.".into(),
        });
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_changed_or_would() {
        use crate::output::Human;
        let step = |action| Step {
            resource: "storage_pool",
            name: "terrarium".into(),
            action,
            detail: "btrfs".into(),
            op: Op::Nothing,
        };
        let r = |action, changed, dry_run| {
            Report {
                changed,
                dry_run,
                steps: vec![step(action)],
            }
            .human()
        };
        assert_eq!(
            r(Action::None, false, false),
            "ok       storage pool terrarium: btrfs\nNothing to change: this host is at the Terrarium baseline."
        );
        assert!(r(Action::Create, true, true).starts_with("create?  storage pool"));
        assert!(r(Action::Create, true, true).ends_with("Dry run: nothing was changed."));
        assert!(r(Action::Update, true, false).starts_with("updated  storage pool"));
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
