//! `trm init`: read this host and LXD (`facts`), compare them with the
//! Terrarium baseline and plan the steps that close the gap (`plan`, pure),
//! and apply exactly those steps (`apply`). Planning only reads, so
//! `--dry-run` and a second run are honest about what would change.

mod apply;
mod facts;
mod plan;

pub use apply::{apply, Report};
pub use facts::{read, Host};
pub use plan::{plan_from, Action, Step};

use crate::error::Result;
use crate::lxd::Lxd;
use crate::net::Subnet;

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

/// Read the host and LXD, and list what `apply` must do. `lxd` is scoped
/// to `opts.project`.
pub fn plan(lxd: &Lxd, opts: &InitOptions) -> Result<Vec<Step>> {
    plan_from(&read(lxd, opts)?, opts)
}

/// `trm init`: the root check and both turns (the baseline's, and the
/// profiles' it shares with `trm-profile apply`), the plan, and with
/// `dry_run` false exactly that plan applied.
pub fn init(lxd: &Lxd, opts: &InitOptions, dry_run: bool) -> Result<Report> {
    use crate::fs::{Lock, Resource};
    if !dry_run && !crate::fs::is_root() {
        return Err(crate::Error::NotRoot("trm init".into()));
    }
    let _lock = Lock::for_change(Resource::Baseline, dry_run)?;
    let _profiles = Lock::for_change(Resource::Profiles, dry_run)?;
    let steps = plan(lxd, opts)?;
    let changed = steps.iter().any(|s| s.action != Action::None);
    if !dry_run {
        apply(lxd, &steps)?;
    }
    Ok(Report {
        changed,
        dry_run,
        steps,
    })
}
