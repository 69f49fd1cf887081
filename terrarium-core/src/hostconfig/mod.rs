//! `trm config export` and `import`: a host's Terrarium configuration as
//! one document, to carry to a new server. It holds the settings, the
//! project's profiles, each instance's label and snapshot opt-out, the
//! sign-on gate's and the bucket's settings: never a secret. What needs
//! one (the bucket's keys, the backup identity and signing key, the gate's
//! client secret) is named in the document, and import ends by saying
//! which command takes each.
//!
//! Only the settings in [`CARRIED_SETTINGS`] travel: the new host keeps
//! its own names, paths and ways of running things, and profiles' devices
//! are pointed at its pool and bridge. Profiles that would weaken the boxes
//! using them are refused on import, and profile keys that may hold a
//! secret (`environment.*`, user-data) are left out on export.

mod import;

pub use import::{apply, plan, Change, Plan};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lxd::{Lxd, Profile};
use crate::output::Human;
use crate::settings::Settings;

/// The document's format; import refuses any other.
pub const FORMAT: &str = "terrarium-config/1";

/// The settings a new host takes from the old one: where its public names
/// live, how certificates are had, the default image, the retention
/// policy. Everything else (its LXD names, network, install paths, who
/// runs Traefik and how it restarts, the loopback API) belongs to the host
/// it is on: a document could otherwise hand the new host a root command.
pub const CARRIED_SETTINGS: &[&str] = &[
    "image",
    "expose.root_domain",
    "expose.acme_email",
    "expose.cert_resolver",
    "expose.acme_ca_server",
    "expose.http_address",
    "expose.https_address",
];

/// Profile keys that may hold a secret (a token in the environment, a
/// password in user-data, the owner's own vendor-data): never exported;
/// import keeps what the new host has under them.
pub fn may_hold_secret(key: &str, value: &str) -> bool {
    key.starts_with("environment.")
        || key == "cloud-init.user-data"
        || key == "user.user-data"
        || ((key == crate::profiles::VENDOR_DATA_KEY || key == "user.vendor-data")
            && !value.contains(crate::profiles::USER_SCRIPT_MARKER))
}

/// Is this `section.key` setting carried between hosts?
pub fn is_carried(key: &str) -> bool {
    CARRIED_SETTINGS.contains(&key) || key.starts_with("snapshots.") || key.starts_with("offsite.")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub format: String,
    pub exported: String,
    pub from_host: String,
    pub from_project: String,
    /// The source's pool and bridge, for pointing profiles at the new host's.
    pub storage_pool: String,
    pub bridge: String,
    /// `terrarium.toml` as flat `section.key` values: the [`is_carried`] ones.
    pub settings: BTreeMap<String, serde_json::Value>,
    pub profiles: Vec<Profile>,
    /// Profile keys left out because they may hold a secret, by profile:
    /// import keeps what the new host has under them.
    pub withheld: BTreeMap<String, Vec<String>>,
    pub instances: Vec<InstanceFacts>,
    pub gate: Option<GateFacts>,
    pub s3: Option<S3Facts>,
    /// What was left out because it is secret, in words.
    pub secrets_left_out: Vec<String>,
}

/// What an instance carries that the owner chose: its label and whether
/// it opts out of automatic snapshots.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceFacts {
    pub name: String,
    pub proxy: Option<String>,
    pub snapshots: Option<String>,
}

/// The gate's settings without the client secret (a file on the host).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateFacts {
    pub issuer: String,
    pub client_id: String,
    pub admin_group: String,
    pub groups_claim: String,
    pub auth_url: String,
    pub session_hours: u32,
}

/// The bucket's settings without its keys, the identity or the signing key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Facts {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    pub prefix: String,
    pub recipient: String,
    /// Public: the new host trusts the old host's backups by it.
    pub signing_public_key: String,
    pub part_size_mib: u32,
    pub parallel: u32,
    pub compression_level: i32,
    /// Absent in documents from before the export's memory budget.
    #[serde(default = "crate::offsite::memory::default_mib")]
    pub memory_mib: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
}

impl Human for Document {
    fn human(&self) -> String {
        serde_json::to_string_pretty(self).expect("a document serializes")
    }
}

/// `section.key` values of a settings struct, scalars and lists as they are.
pub fn flatten(v: &serde_json::Value) -> BTreeMap<String, serde_json::Value> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
        match v.as_object() {
            Some(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            None => {
                out.insert(prefix.to_string(), v.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", v, &mut out);
    out
}

/// Read this host's configuration into one document.
pub fn export(lxd: &Lxd) -> Result<Document> {
    let settings = Settings::require()?;
    let flat = flatten(&serde_json::to_value(&settings).expect("settings serialize"));
    let instances = lxd
        .instances()?
        .into_iter()
        .filter_map(|i| {
            let proxy = i.config.get(crate::expose::labels::KEY).cloned();
            let snapshots = i.config.get("user.terrarium.snapshots").cloned();
            (proxy.is_some() || snapshots.is_some()).then_some(InstanceFacts {
                name: i.name,
                proxy,
                snapshots,
            })
        })
        .collect();
    let mut secrets_left_out = Vec::new();
    let gate = crate::gate::GateSettings::load()?.map(|g| {
        if g.configured() {
            secrets_left_out.push("the gate's OIDC client secret".to_string());
        }
        GateFacts {
            issuer: g.issuer,
            client_id: g.client_id,
            admin_group: g.admin_group,
            groups_claim: g.groups_claim,
            auth_url: g.auth_url,
            session_hours: g.session_hours,
        }
    });
    let s3 = crate::offsite::S3Settings::load()?.map(|s| {
        secrets_left_out.push("the bucket's access key and secret key".into());
        if !s.identity_file.is_empty() {
            secrets_left_out.push(format!(
                "the backup identity (age secret key) in {}",
                s.identity_file
            ));
        }
        if !s.signing_key_file.is_empty() {
            secrets_left_out.push(format!(
                "the manifest signing key in {}",
                s.signing_key_file
            ));
        }
        S3Facts {
            endpoint: s.endpoint,
            bucket: s.bucket,
            region: s.region,
            prefix: s.prefix,
            recipient: s.recipient,
            signing_public_key: s.signing_public_key,
            part_size_mib: s.part_size_mib,
            parallel: s.parallel,
            compression_level: s.compression_level,
            memory_mib: s.memory_mib,
            keep_daily: s.retention.daily,
            keep_weekly: s.retention.weekly,
            keep_monthly: s.retention.monthly,
        }
    });
    let mut profiles = lxd.profiles()?;
    profiles.sort_by(|a, b| a.name.cmp(&b.name));
    let mut withheld = BTreeMap::new();
    for p in &mut profiles {
        let keys: Vec<String> = p
            .config
            .iter()
            .filter(|(k, v)| may_hold_secret(k, v))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &keys {
            p.config.remove(k);
            secrets_left_out.push(format!(
                "profile {}: {k} (may hold a secret; set it again there)",
                p.name
            ));
        }
        if !keys.is_empty() {
            withheld.insert(p.name.clone(), keys);
        }
    }
    Ok(Document {
        format: FORMAT.into(),
        exported: crate::time::utc(&chrono::Utc::now()),
        from_host: crate::offsite::hostname(),
        from_project: lxd.project().to_string(),
        storage_pool: settings.storage_pool.clone(),
        bridge: settings.bridge.clone(),
        settings: flat.into_iter().filter(|(k, _)| is_carried(k)).collect(),
        profiles,
        withheld,
        instances,
        gate,
        s3,
        secrets_left_out,
    })
}

/// Read a document from a file, refusing another format or damage.
pub fn read(path: &std::path::Path) -> Result<Document> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| crate::recipe::input_error("config import", path, e))?;
    let probe: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::Usage(format!("{shown}: not JSON: {e}")))?;
    match probe["format"].as_str() {
        Some(FORMAT) => {}
        Some(f) if f.starts_with("terrarium-config/") => {
            return Err(Error::Usage(format!(
                "{shown}: format {f} is not one this Terrarium reads ({FORMAT})"
            )))
        }
        _ => {
            return Err(Error::Usage(format!(
                "{shown}: not a Terrarium configuration ({FORMAT}; `trm config export` writes one)"
            )))
        }
    }
    serde_json::from_value(probe).map_err(|e| Error::Usage(format!("{shown}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_flatten_to_section_keys() {
        let flat = flatten(&serde_json::to_value(Settings::default()).unwrap());
        assert_eq!(flat["expose.root_domain"], "");
        assert_eq!(flat["snapshots.hourly"], 24);
        assert!(
            flat.contains_key("expose.restart_command"),
            "lists stay whole"
        );
        for k in CARRIED_SETTINGS {
            assert!(flat.contains_key(*k), "{k} is a real setting");
        }
        assert!(is_carried("snapshots.hourly"));
        for local in [
            "bridge",
            "expose.restart_command",
            "expose.api_address",
            "expose.supervisor",
        ] {
            assert!(!is_carried(local), "{local}");
        }
    }
}
