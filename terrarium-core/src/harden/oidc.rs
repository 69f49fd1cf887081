//! `trm-harden oidc set`: the single-sign-on gate's settings, its secret
//! and keys, the management routes with the admin group, and LXD's own
//! OIDC keys.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{gate, pretty};
use crate::error::{Error, Result};
use crate::fs::{atomic_write, lock_wait, Lock};
use crate::lxd::Lxd;
use crate::output::Human;
use crate::settings::Settings;
use crate::{baseline, expose};

/// The file at `path` is missing or holds something else.
fn differs(path: &Path, content: &str) -> bool {
    std::fs::read_to_string(path).ok().as_deref() != Some(content)
}

/// What `oidc set` did.
#[derive(Debug, Clone, Serialize)]
pub struct OidcReport {
    pub issuer: String,
    pub client_id: String,
    pub admin_group: String,
    pub groups_claim: String,
    pub auth_url: String,
    /// The gate's settings file.
    pub gate_config: String,
    pub client_secret_file: String,
    pub keys_file: String,
    pub changed: bool,
    /// The running gate was restarted onto the new settings.
    pub gate_restarted: bool,
    /// `set`, or why LXD's own OIDC keys were not set.
    pub lxd: String,
    pub lxd_keys: Vec<String>,
}

impl Human for OidcReport {
    fn human(&self) -> String {
        format!(
            "gate: {} ({}{}) for issuer {}, client {}, admins: group {}, sign-in at {}\nlxd: {}",
            self.gate_config,
            if self.changed { "written" } else { "unchanged" },
            if self.gate_restarted {
                ", gate restarted"
            } else {
                ""
            },
            self.issuer,
            self.client_id,
            self.admin_group,
            self.auth_url,
            self.lxd
        )
    }
}

/// Check the issuer, then write the gate's settings, its client secret
/// (0600) and cookie keys, the management routes with the admin group,
/// and LXD's OIDC keys. A refused issuer saves nothing.
pub fn oidc_set(
    settings: &Settings,
    lxd: &Lxd,
    oidc: &gate::Oidc,
    secret_file: &Path,
) -> Result<OidcReport> {
    let secret = std::fs::read_to_string(secret_file).map_err(|e| {
        Error::Usage(format!(
            "cannot read the client secret file {}: {e}",
            secret_file.display()
        ))
    })?;
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(Error::Usage(format!(
            "the client secret file {} is empty",
            secret_file.display()
        )));
    }
    for (what, v) in [
        ("--client-id", &oidc.client_id),
        ("--admin-group", &oidc.admin_group),
        ("--groups-claim", &oidc.groups_claim),
    ] {
        if v.trim().is_empty() {
            return Err(Error::Usage(format!("{what} must not be empty")));
        }
    }
    if oidc.admin_group.contains(',') {
        return Err(Error::Usage(format!(
            "--admin-group {:?}: one group, without commas",
            oidc.admin_group
        )));
    }
    let e = &settings.expose;
    let existing = crate::gate::GateSettings::load()?;
    let mut g = existing.clone().unwrap_or_default();
    crate::gate::settings::follow_host(&mut g, e)?;
    if let Some(u) = &oidc.auth_url {
        // Only auth.<root>: the host the management routes give the gate
        // and no label may claim (any other could be a tenant's).
        let want = format!("auth.{}", expose::base_domain(e)?);
        let host = url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(crate::gate::hosts::bare_host));
        if host.as_deref() != Some(want.as_str()) {
            return Err(Error::Usage(format!(
                "--auth-url {u:?}: the sign-in host must be {want} (only its port may differ)"
            )));
        }
        g.auth_url = u.trim_end_matches('/').to_string();
    }
    g.issuer = oidc.issuer.clone();
    g.client_id = oidc.client_id.clone();
    g.admin_group = oidc.admin_group.clone();
    g.groups_claim = oidc.groups_claim.clone();
    crate::gate::serve::auth_url(&g)?;
    gate::discover(&oidc.issuer)?;
    let server = lxd.server()?;

    let _lock = Lock::acquire(crate::fs::Resource::Harden, lock_wait())?;
    let secret_path = PathBuf::from(&g.client_secret_file);
    let changed = existing.as_ref() != Some(&g) || differs(&secret_path, &format!("{secret}\n"));
    if let Some(dir) = secret_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|err| Error::io(format!("creating {}", dir.display()), err))?;
    }
    atomic_write(&secret_path, format!("{secret}\n").as_bytes(), 0o600)?;
    crate::gate::keys::ensure(&g)?;
    g.save()?;
    let mgmt = gate::management_file(e, &expose::base_domain(e)?, Some(&g))?;
    let mgmt_path = Path::new(&e.dynamic_dir).join(gate::MANAGEMENT_FILE);
    if differs(&mgmt_path, &pretty(&mgmt)) {
        std::fs::create_dir_all(&e.dynamic_dir)
            .map_err(|err| Error::io(format!("creating {}", e.dynamic_dir), err))?;
        atomic_write(&mgmt_path, pretty(&mgmt).as_bytes(), 0o644)?;
    }
    let gate_restarted = changed && crate::gate::supervise::status(&g).running && {
        crate::gate::supervise::restart(&g)?;
        true
    };

    let has = |ext: &str| server.api_extensions.iter().any(|x| x == ext);
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let lxd_status = if has("oidc") {
        keys.push(("oidc.issuer", &oidc.issuer));
        keys.push(("oidc.client.id", &oidc.client_id));
        if has("oidc_groups_claim") {
            keys.push(("oidc.groups.claim", &oidc.groups_claim));
            "set".to_string()
        } else {
            "set oidc.issuer and oidc.client.id; this LXD has no oidc.groups.claim (API extension 'oidc_groups_claim' missing)".to_string()
        }
    } else {
        format!(
            "not set: LXD {} does not support OIDC (API extension 'oidc' missing, it rejects oidc.* keys); LXD stays on {} behind its TLS client certificates",
            server.environment.server_version,
            baseline::HTTPS_ADDRESS
        )
    };
    for (k, v) in &keys {
        lxd.set_server_config(k, v)?;
    }
    Ok(OidcReport {
        issuer: oidc.issuer.clone(),
        client_id: oidc.client_id.clone(),
        admin_group: oidc.admin_group.clone(),
        groups_claim: g.groups_claim.clone(),
        auth_url: g.auth_url.clone(),
        gate_config: crate::gate::settings::path().display().to_string(),
        client_secret_file: secret_path.display().to_string(),
        keys_file: g.keys_file.clone(),
        changed,
        gate_restarted,
        lxd: lxd_status,
        lxd_keys: keys.iter().map(|(k, _)| k.to_string()).collect(),
    })
}
