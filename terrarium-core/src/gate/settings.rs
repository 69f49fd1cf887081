//! The gate's settings, `/etc/terrarium/gate.toml`, written by
//! `trm-harden oidc set`. No secret is in it: the client secret and the
//! cookie keys are 0600 files it names.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::settings::{config_dir, load_toml, render_toml, ExposeSettings};

pub const FILE_NAME: &str = "gate.toml";

pub fn path() -> PathBuf {
    config_dir().join(FILE_NAME)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateSettings {
    /// Loopback only: Traefik is the gate's only client.
    pub listen: String,
    pub issuer: String,
    pub client_id: String,
    /// 0600, owned by the gate's user.
    pub client_secret_file: String,
    /// Members pass the management hosts (manage., proxy.).
    pub admin_group: String,
    /// The ID token claim that lists a user's groups.
    pub groups_claim: String,
    /// The sign-in host's URL, e.g. `https://auth.example.com`; the IdP
    /// redirects to `<auth_url>/oauth2/callback`.
    pub auth_url: String,
    /// How long a session lasts.
    pub session_hours: u32,
    /// The cookie keys, newest first (0600): `trm-gate keys rotate`.
    pub keys_file: String,
    /// Traefik's watched directory: the hosts routed through the gate are
    /// the only redirect targets.
    pub dynamic_dir: String,
    /// Sign-outs are remembered here until the sessions would have expired.
    pub state_dir: String,
    /// The gate's own directory (handed to its user, so never one where
    /// root writes other logs).
    pub log_dir: String,
    /// The unprivileged user the gate runs as; empty: the user starting it.
    pub user: String,
    /// Who runs the gate: `auto`, `systemd` or `terrarium` (as for Traefik).
    pub supervisor: String,
}

impl Default for GateSettings {
    fn default() -> Self {
        GateSettings {
            listen: "127.0.0.1:4180".into(),
            issuer: String::new(),
            client_id: String::new(),
            // Beside gate.toml (TRM_CONFIG_DIR moves them all).
            client_secret_file: config_dir()
                .join("gate/client-secret")
                .display()
                .to_string(),
            admin_group: String::new(),
            groups_claim: "groups".into(),
            auth_url: String::new(),
            session_hours: 12,
            keys_file: config_dir().join("gate/cookie-keys").display().to_string(),
            dynamic_dir: "/etc/traefik/dynamic".into(),
            state_dir: "/var/lib/terrarium/gate".into(),
            log_dir: "/var/log/terrarium/gate".into(),
            user: "trm-gate".into(),
            supervisor: "auto".into(),
        }
    }
}

/// The auth host's URL: `auth.<root domain>` on the public HTTPS port.
pub fn default_auth_url(e: &ExposeSettings) -> Result<String> {
    let domain = crate::expose::base_domain(e)?;
    Ok(match crate::traefik::address_port(&e.https_address) {
        Some((p, _)) if p != 443 => format!("https://auth.{domain}:{p}"),
        _ => format!("https://auth.{domain}"),
    })
}

/// What the gate takes from the host's settings: where the routes ask it
/// (a loopback `auth_address`; one elsewhere is someone else's gate, an
/// oauth2-proxy, and changes nothing here), the auth host, and Traefik's
/// watched directory.
pub fn follow_host(g: &mut GateSettings, e: &ExposeSettings) -> Result<()> {
    if let Some(listen) = url::Url::parse(&e.auth_address)
        .ok()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
    {
        if crate::traefik::is_loopback_address(&listen) {
            g.listen = listen;
        }
    }
    g.auth_url = default_auth_url(e)?;
    g.dynamic_dir = e.dynamic_dir.clone();
    Ok(())
}

impl GateSettings {
    /// The saved settings; without any, a gate for this host that signs no
    /// one in (saved, so the supervisor and the gate read the same file)
    /// until `trm-harden oidc set` names an issuer.
    pub fn load_or_initial() -> Result<GateSettings> {
        if let Some(g) = Self::load()? {
            return Ok(g);
        }
        let host = crate::settings::Settings::require()?;
        let mut g = GateSettings::default();
        follow_host(&mut g, &host.expose)?;
        g.save()?;
        Ok(g)
    }

    /// No issuer yet: the gate runs and refuses every sign-in.
    pub fn configured(&self) -> bool {
        !self.issuer.is_empty()
    }

    pub fn load() -> Result<Option<GateSettings>> {
        load_toml(&path())
    }

    /// The saved settings, or an error saying how to make them.
    pub fn require() -> Result<GateSettings> {
        Self::require_from(&path())
    }

    /// The settings in `file` (what `trm-gate serve --config` names).
    pub fn require_from(file: &std::path::Path) -> Result<GateSettings> {
        load_toml(file)?.ok_or_else(|| {
            Error::Unavailable(format!(
                "the single-sign-on gate is not configured ({} is missing): run `trm-harden oidc set`",
                file.display()
            ))
        })
    }

    pub fn render(&self) -> String {
        render_toml(
            "Terrarium's single-sign-on gate (trm-gate), written by `trm-harden oidc set`.",
            self,
        )
    }

    pub fn save(&self) -> Result<()> {
        crate::fs::atomic_write(&path(), self.render().as_bytes(), 0o644)
    }
}
