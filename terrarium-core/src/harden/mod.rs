//! Host hardening: `read` the host into `Facts`, `plan_from` them every
//! change (SSH, firewall, Traefik's management routes, LXD and Cockpit on
//! loopback), `apply` makes exactly those; `audit` proves each promise from
//! the machine's real state, and `oidc_set` configures the single-sign-on
//! gate.

mod apply;
pub mod audit;
mod facts;
pub mod firewall;
pub mod gate;
mod oidc;
mod plan;
pub mod ssh;

pub use apply::{apply, ApplyReport};
pub use facts::{read, Facts, SshdFacts};
pub use oidc::{oidc_set, OidcReport};
pub use plan::{lockout_guard, plan_from, Change, Plan};

use std::path::PathBuf;

use crate::error::Result;
use crate::lxd::Lxd;
use crate::settings::Settings;
use crate::ufw::Ufw;

/// Where the hardened pieces live; every path can be moved (tests, odd hosts).
#[derive(Debug, Clone)]
pub struct Options {
    /// The public interface [default: the default route's].
    pub wan: Option<String>,
    /// sshd's drop-in directory.
    pub ssh_dir: PathBuf,
    /// sshd's main configuration (it must Include the drop-in directory).
    pub sshd_config: PathBuf,
    pub sshd_pid_file: PathBuf,
    pub ufw: Ufw,
    /// systemd's unit directory (Cockpit's socket drop-in goes below it).
    pub systemd_dir: PathBuf,
}

impl Options {
    fn sshd(&self) -> ssh::Sshd {
        ssh::Sshd {
            config: self.sshd_config.clone(),
        }
    }

    fn drop_in(&self) -> PathBuf {
        self.ssh_dir.join(ssh::DROP_IN)
    }

    fn cockpit_drop_in(&self) -> PathBuf {
        self.systemd_dir.join(gate::COCKPIT_DROP_IN)
    }
}

/// Every change `apply` would make, from the host's current state.
pub fn plan(settings: &Settings, opts: &Options, lxd: &Lxd) -> Result<Plan> {
    plan_from(&read(settings, opts, lxd)?, settings, opts)
}

/// A JSON document as Terrarium writes it (Traefik reads JSON as YAML).
fn pretty(doc: &serde_json::Value) -> String {
    serde_json::to_string_pretty(doc).expect("json") + "\n"
}
