//! Host settings in `/etc/terrarium/terrarium.toml` (`TRM_CONFIG_DIR`
//! points elsewhere, for tests and non-default installs).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const FILE_NAME: &str = "terrarium.toml";
pub const DEFAULT_IMAGE_ALIAS: &str = "terrarium/debian12";

pub fn config_dir() -> PathBuf {
    std::env::var_os("TRM_CONFIG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/etc/terrarium"))
}

pub fn config_path() -> PathBuf {
    config_dir().join(FILE_NAME)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// LXD project Terrarium manages.
    pub project: String,
    pub storage_pool: String,
    pub storage_driver: String,
    pub bridge: String,
    /// Gateway address with prefix, e.g. `10.87.0.1/24`.
    pub subnet: String,
    pub nat: bool,
    /// Image `trm launch` uses when none is given.
    pub image: String,
    /// Public exposure through Traefik (`trm-expose`).
    pub expose: ExposeSettings,
    /// The time machine's retention (`trm-snap`).
    pub snapshots: crate::snapshots::retention::Policy,
    /// Scheduled off-site exports (each tick, once a bucket is set up).
    pub offsite: crate::offsite::scheduled::Schedule,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExposeSettings {
    /// Traefik's watched directory for per-instance files.
    pub dynamic_dir: String,
    /// Traefik's static configuration (entrypoints for raw ports).
    pub static_file: String,
    pub cert_resolver: String,
    pub acme_email: String,
    pub acme_storage: String,
    /// The single-sign-on gate (oauth2-proxy) that `@auth` routes ask.
    pub auth_address: String,
    /// Public hosts default to NAME.<root_domain>; empty: NAME.<dashed IPv4>.traefik.me.
    pub root_domain: String,
    /// The host's public IPv4 [default: the source address of the default route].
    pub public_ipv4: String,
    /// ACME directory URL [default: Let's Encrypt]; tests point it at pebble.
    pub acme_ca_server: String,
    /// Extra CA bundle Traefik trusts for the ACME server (LEGO_CA_CERTIFICATES).
    pub acme_ca_certificates: String,
    /// Traefik's public entrypoints.
    pub http_address: String,
    pub https_address: String,
    /// Traefik's ping and read-only API; loopback only.
    pub api_address: String,
    /// The Traefik binary `setup-host.sh` installs (pinned version).
    pub traefik_binary: String,
    /// The unprivileged user Traefik runs as (only the bind capability);
    /// empty: the user running Terrarium.
    pub traefik_user: String,
    /// Traefik's logs (traefik.log, access.log, and its output).
    pub log_dir: String,
    /// Who runs Traefik: `auto` (systemd when it is the init, else
    /// Terrarium itself), `systemd` or `terrarium`.
    pub supervisor: String,
    /// Restarts Traefik instead of Terrarium's own supervision (argv, no
    /// shell) when the static file changes; empty: systemd or Terrarium.
    pub restart_command: Vec<String>,
    /// Manage UFW rules for raw ports.
    pub ufw: bool,
    pub ufw_rootdir: String,
    pub ufw_datadir: String,
    /// Where Terrarium remembers a failed Traefik restart.
    pub state_dir: String,
}

impl Default for ExposeSettings {
    fn default() -> Self {
        ExposeSettings {
            dynamic_dir: "/etc/traefik/dynamic".into(),
            static_file: "/etc/traefik/traefik.yml".into(),
            cert_resolver: "letsencrypt".into(),
            acme_email: String::new(),
            acme_storage: "/var/lib/traefik/acme.json".into(),
            auth_address: "http://127.0.0.1:4180".into(),
            root_domain: String::new(),
            public_ipv4: String::new(),
            acme_ca_server: String::new(),
            acme_ca_certificates: String::new(),
            http_address: ":80".into(),
            https_address: ":443".into(),
            api_address: "127.0.0.1:8082".into(),
            traefik_binary: "/usr/local/bin/traefik".into(),
            traefik_user: "traefik".into(),
            log_dir: "/var/log/traefik".into(),
            supervisor: "auto".into(),
            restart_command: Vec::new(),
            ufw: true,
            ufw_rootdir: String::new(),
            ufw_datadir: String::new(),
            state_dir: "/var/lib/terrarium".into(),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            project: "default".into(),
            storage_pool: "terrarium".into(),
            storage_driver: String::new(),
            bridge: "trmbr0".into(),
            subnet: String::new(),
            nat: true,
            image: DEFAULT_IMAGE_ALIAS.into(),
            expose: ExposeSettings::default(),
            snapshots: crate::snapshots::retention::Policy::default(),
            offsite: crate::offsite::scheduled::Schedule::default(),
        }
    }
}

/// A TOML settings file, or `None` when it does not exist yet.
pub fn load_toml<T: serde::de::DeserializeOwned>(path: &std::path::Path) -> Result<Option<T>> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .map(Some)
            .map_err(|e| Error::parse(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// `# header` then the value as TOML.
pub fn render_toml<T: Serialize>(header: &str, value: &T) -> String {
    format!(
        "# {header}\n{}",
        toml::to_string(value).expect("settings serialize")
    )
}

impl Settings {
    /// The saved settings, or `None` when `trm init` has not run.
    pub fn load() -> Result<Option<Settings>> {
        load_toml(&config_path())
    }

    /// The saved settings, or an error telling the user to run `trm init`.
    pub fn require() -> Result<Settings> {
        Self::load()?.ok_or_else(|| {
            Error::Unavailable(format!(
                "Terrarium is not set up on this host ({} is missing): run `trm init` first",
                config_path().display()
            ))
        })
    }

    pub fn load_or_default() -> Result<Settings> {
        Ok(Self::load()?.unwrap_or_default())
    }

    pub fn render(&self) -> String {
        render_toml("Terrarium host settings, written by `trm init`.", self)
    }

    pub fn save(&self) -> Result<()> {
        crate::fs::atomic_write(&config_path(), self.render().as_bytes(), 0o644)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_round_trips() {
        let s = Settings {
            subnet: "10.87.0.1/24".into(),
            ..Settings::default()
        };
        let back: Settings = toml::from_str(&s.render()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn unknown_keys_are_an_error() {
        assert!(toml::from_str::<Settings>("brige = \"x\"").is_err());
    }
}
