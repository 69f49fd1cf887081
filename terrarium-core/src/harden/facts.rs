//! Everything the hardening planner needs to know about the host, read in
//! one go into plain data, so `plan_from` only decides.

use std::path::{Path, PathBuf};

use super::{gate, ssh, Options};
use crate::error::{Error, Result};
use crate::gate::GateSettings;
use crate::harden::firewall;
use crate::lxd::Lxd;
use crate::settings::Settings;
use crate::{expose, net};

#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// What sshd says, `None` where it is not installed.
    pub sshd: Option<SshdFacts>,
    /// The public interface.
    pub wan: String,
    /// `ufw status verbose`.
    pub firewall: firewall::Status,
    /// `ufw show added`, one rule a line.
    pub ufw_added: Vec<String>,
    /// Traefik's static file, `None` when it cannot be read.
    pub traefik_static: Option<String>,
    /// The management routes file, likewise.
    pub management_file: Option<String>,
    /// The sign-on gate's settings, `None` until `trm-harden oidc set`.
    pub gate: Option<GateSettings>,
    pub gate_file: PathBuf,
    /// The root domain the dashboards live under.
    pub base_domain: String,
    /// LXD's `core.https_address` (empty when unset).
    pub lxd_https_address: String,
    /// Cockpit's socket drop-in, `None` when it cannot be read.
    pub cockpit_drop_in: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SshdFacts {
    /// Its effective settings (`sshd -T`).
    pub effective: ssh::Effective,
    /// The key-only drop-in, `None` when it cannot be read.
    pub drop_in: Option<String>,
    /// Who could still log in with a key.
    pub keys: ssh::KeyCheck,
}

fn file(path: &Path) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// The public interface: `--wan`, else the default route's.
pub(super) fn wan(opts: &Options) -> Result<String> {
    opts.wan
        .clone()
        .or_else(net::default_route_interface)
        .ok_or_else(|| {
            Error::Usage(
                "this host has no default route: name the public interface with --wan".into(),
            )
        })
}

/// Read what planning needs, in the order the planner uses it.
pub fn read(settings: &Settings, opts: &Options, lxd: &Lxd) -> Result<Facts> {
    let e = &settings.expose;
    // sshd's own view of its configuration decides.
    let sshd = match ssh::SSHD.resolve() {
        Err(_) => None,
        Ok(_) => {
            let effective = opts.sshd().effective()?;
            let passwd = file(Path::new("/etc/passwd")).unwrap_or_default();
            let shells = file(Path::new("/etc/shells")).unwrap_or_default();
            Some(SshdFacts {
                drop_in: file(&opts.drop_in()),
                keys: ssh::authorized_keys(&effective, &passwd, &shells),
                effective,
            })
        }
    };
    let wan = wan(opts)?;
    let firewall = firewall::parse_status(&opts.ufw.run(&["status".into(), "verbose".into()])?);
    let ufw_added = opts.ufw.added()?;
    let traefik_static = file(Path::new(&e.static_file));
    let gate = GateSettings::load()?;
    let base_domain = expose::base_domain(e)?;
    let management_file = file(&Path::new(&e.dynamic_dir).join(gate::MANAGEMENT_FILE));
    let server = lxd.server()?;
    Ok(Facts {
        sshd,
        wan,
        firewall,
        ufw_added,
        traefik_static,
        management_file,
        gate,
        gate_file: crate::gate::settings::path(),
        base_domain,
        lxd_https_address: server.config_str("core.https_address").to_string(),
        cockpit_drop_in: file(&opts.cockpit_drop_in()),
    })
}
