//! Everything `trm init` needs to know about the host and LXD, read in one
//! go into plain data, so the planner only decides.

use std::path::PathBuf;

use super::InitOptions;
use crate::error::Result;
use crate::lxd::{Lxd, Network, Profile, StoragePool};
use crate::net::{self, Subnet};
use crate::profiles::{self, managed as managed_profiles};
use crate::settings::{self, Settings};
use crate::sysctl;

#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The storage drivers this LXD can use.
    pub drivers: Vec<String>,
    /// LXD's `core.https_address` (empty when unset).
    pub https_address: String,
    /// LXD's project names (read only for a project other than `default`).
    pub projects: Vec<String>,
    pub pools: Vec<StoragePool>,
    pub networks: Vec<Network>,
    /// The kernel's routes, by interface; read only while the bridge is
    /// missing (they decide its subnet).
    pub routes: Vec<(String, Subnet)>,
    /// The live values of the recommended kernel limits.
    pub sysctl: Vec<(&'static str, u64)>,
    pub sysctl_file: PathBuf,
    /// Its content, `None` when it cannot be read.
    pub sysctl_text: Option<String>,
    /// Terrarium's profiles as the project has them.
    pub profiles: Vec<Profile>,
    pub settings_file: PathBuf,
    /// The saved host settings, `None` before the first `trm init`.
    pub settings: Option<Settings>,
}

/// Read what planning `opts` needs. `lxd` is scoped to `opts.project`.
pub fn read(lxd: &Lxd, opts: &InitOptions) -> Result<Host> {
    let server = lxd.ping()?;
    let projects: Vec<String> = if opts.project == "default" {
        Vec::new()
    } else {
        lxd.projects()?.into_iter().map(|p| p.name).collect()
    };
    let project_missing = opts.project != "default" && !projects.contains(&opts.project);
    let pools = lxd.storage_pools()?;
    let networks = lxd.networks()?;
    let routes = if networks.iter().any(|n| n.name == opts.bridge) {
        Vec::new()
    } else {
        net::host_routes()?
    };
    let sysctl_file = sysctl::conf_dir().join(sysctl::FILE_NAME);
    let sysctl_text = std::fs::read_to_string(&sysctl_file).ok();
    // A project this plan creates has no profiles to read yet.
    let profiles = if project_missing {
        Vec::new()
    } else {
        managed_profiles::read(lxd, &profiles::definitions(&opts.pool, &opts.bridge))?
    };
    Ok(Host {
        https_address: server.config_str("core.https_address").to_string(),
        drivers: server
            .environment
            .storage_supported_drivers
            .into_iter()
            .map(|d| d.name)
            .collect(),
        projects,
        pools,
        networks,
        routes,
        sysctl: sysctl::live(),
        sysctl_file,
        sysctl_text,
        profiles,
        settings: Settings::load()?,
        settings_file: settings::config_path(),
    })
}
