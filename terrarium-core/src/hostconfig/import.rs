//! `trm config import FILE`: plan what the document changes on this host
//! (settings, profiles, labels, snapshot opt-outs), confirm, apply exactly
//! that plan, and name each secret still to give with the command that
//! takes it. A document that would not apply as a whole (an unknown or
//! ill-typed setting, a profile on a network this host lacks, a label the
//! exposure policy refuses) changes nothing.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{flatten, is_carried, read, Document};
use crate::error::{Error, Result};
use crate::lxd::{Lxd, Profile};
use crate::output::Human;
use crate::process::shell_quote;
use crate::settings::Settings;

const SNAPSHOTS_KEY: &str = "user.terrarium.snapshots";

/// One thing import changes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// `setting`, `profile`, `label` or `snapshots`.
    pub kind: &'static str,
    pub name: String,
    /// `create` or `update`.
    pub action: &'static str,
    pub detail: String,
}

/// A secret import could not bring, and the command that takes it.
#[derive(Debug, Clone, Serialize)]
pub struct Pending {
    pub what: String,
    pub command: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub file: String,
    pub from_host: String,
    pub dry_run: bool,
    pub applied: bool,
    pub changes: Vec<Change>,
    /// Labels of instances this host does not have (yet).
    pub waiting: Vec<String>,
    pub needs_secret: Vec<Pending>,
    #[serde(skip)]
    settings: Option<Settings>,
    #[serde(skip)]
    profiles: Vec<Profile>,
    #[serde(skip)]
    keys: Vec<(String, &'static str, String)>,
}

impl Human for Plan {
    fn human(&self) -> String {
        let mut s = format!(
            "{} from {} ({}):\n",
            if self.changes.is_empty() {
                "nothing to import"
            } else if self.applied {
                "imported"
            } else {
                "would import"
            },
            self.file,
            self.from_host
        );
        if self.changes.is_empty() {
            s.push_str("  nothing to change\n");
        }
        for c in &self.changes {
            s.push_str(&format!(
                "  {} {} {}: {}\n",
                c.action, c.kind, c.name, c.detail
            ));
        }
        for w in &self.waiting {
            s.push_str(&format!("  waiting: {w}\n"));
        }
        if !self.needs_secret.is_empty() {
            s.push_str("still needs a secret:\n");
            for p in &self.needs_secret {
                s.push_str(&format!("  {}:\n    {}\n", p.what, p.command));
            }
        }
        s.trim_end().to_string()
    }
}

/// Point a profile's devices at this host's pool and bridge.
pub(crate) fn rehome_profile(mut p: Profile, doc: &Document, host: &Settings) -> Profile {
    for d in p.devices.values_mut() {
        for (key, from, to) in [
            ("network", &doc.bridge, &host.bridge),
            ("parent", &doc.bridge, &host.bridge),
            ("pool", &doc.storage_pool, &host.storage_pool),
        ] {
            if d.get(key) == Some(from) {
                d.insert(key.into(), to.clone());
            }
        }
    }
    p.used_by.clear();
    p
}

/// What changes from `now` to `want`, key by key (long values cut):
/// empty when nothing does.
pub(crate) fn profile_diff(now: &Profile, want: &Profile) -> String {
    fn short(v: &str) -> String {
        let one = v.replace('\n', "\\n");
        match one.char_indices().nth(60) {
            Some((i, _)) => format!("{}...", &one[..i]),
            None => one,
        }
    }
    let mut out = Vec::new();
    if now.description != want.description {
        out.push(format!("description {:?}", short(&want.description)));
    }
    let keys: BTreeSet<&String> = now.config.keys().chain(want.config.keys()).collect();
    for k in keys {
        match (now.config.get(k), want.config.get(k)) {
            (a, b) if a == b => {}
            (None, Some(b)) => out.push(format!("+{k}={}", short(b))),
            (Some(_), None) => out.push(format!("-{k}")),
            (Some(a), Some(b)) => out.push(format!("{k}: {} -> {}", short(a), short(b))),
            (None, None) => {}
        }
    }
    let devs: BTreeSet<&String> = now.devices.keys().chain(want.devices.keys()).collect();
    for d in devs {
        match (now.devices.get(d), want.devices.get(d)) {
            (a, b) if a == b => {}
            (_, Some(b)) => out.push(format!(
                "device {d}: {}",
                b.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )),
            (Some(_), None) => out.push(format!("-device {d}")),
            (None, None) => {}
        }
    }
    out.join("; ")
}

/// The host's settings with the document's carried values set; each
/// difference is a change.
pub(crate) fn merge_settings(host: &Settings, doc: &Document) -> Result<(Settings, Vec<Change>)> {
    let mut value = serde_json::to_value(host).expect("settings serialize");
    let flat = flatten(&value);
    let mut changes = Vec::new();
    for (key, v) in &doc.settings {
        let Some(current) = flat.get(key) else {
            return Err(Error::Usage(format!(
                "setting '{key}' is not one this Terrarium has (nothing was imported)"
            )));
        };
        if !is_carried(key) {
            return Err(Error::Usage(format!(
                "setting '{key}' belongs to the host it is on and is not carried between hosts \
                 (nothing was imported)"
            )));
        }
        if current == v {
            continue;
        }
        let mut at = &mut value;
        for part in key.split('.') {
            at = &mut at[part];
        }
        *at = v.clone();
        changes.push(Change {
            kind: "setting",
            name: key.clone(),
            action: "update",
            detail: format!("{current} -> {v}"),
        });
    }
    let merged: Settings = serde_json::from_value(value)
        .map_err(|e| Error::Usage(format!("the document's settings do not apply: {e}")))?;
    Ok((merged, changes))
}

pub fn plan(lxd: &Lxd, path: &std::path::Path, dry_run: bool) -> Result<Plan> {
    let doc = read(path)?;
    let host = Settings::require()?;
    let (settings, mut changes) = merge_settings(&host, &doc)?;
    let networks: BTreeSet<String> = lxd.networks()?.into_iter().map(|n| n.name).collect();
    let pools: BTreeSet<String> = lxd.storage_pools()?.into_iter().map(|p| p.name).collect();
    let mut profiles = Vec::new();
    // The security values Terrarium's own profiles set are the only ones
    // an imported profile may relax.
    let terrarium_sets: BTreeSet<(String, String)> =
        crate::profiles::definitions(&host.storage_pool, &host.bridge)
            .iter()
            .flat_map(|d| d.profile().config.into_iter())
            .filter(|(k, _)| k.starts_with("security."))
            .collect();
    for p in &doc.profiles {
        crate::names::validate_instance_name(&p.name)
            .map_err(|e| Error::Usage(format!("profile name: {e}")))?;
        let p = rehome_profile(p.clone(), &doc, &host);
        for (dev, d) in &p.devices {
            for (key, have) in [("network", &networks), ("pool", &pools)] {
                if let Some(x) = d.get(key).filter(|x| !have.contains(*x)) {
                    return Err(Error::Usage(format!(
                        "profile {} device {dev} uses {key} '{x}', which this host does not have \
                         (nothing was imported)",
                        p.name
                    )));
                }
            }
        }
        let refused =
            crate::policy::profile_refusals(&p.config, &p.devices, &host.bridge, &terrarium_sets);
        if !refused.is_empty() {
            return Err(Error::Usage(format!(
                "profile {} would weaken every box using it (nothing was imported): {}",
                p.name,
                refused
                    .iter()
                    .map(|r| r.describe())
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        let now = lxd.profile(&p.name)?.unwrap_or_default();
        // What export withheld stays as this host has it.
        let mut p = p;
        for k in doc.withheld.get(&p.name).into_iter().flatten() {
            match now.config.get(k) {
                Some(v) => p.config.insert(k.clone(), v.clone()),
                None => p.config.remove(k),
            };
        }
        let detail = profile_diff(&now, &p);
        if detail.is_empty() {
            continue;
        }
        changes.push(Change {
            kind: "profile",
            name: p.name.clone(),
            action: if now.name.is_empty() {
                "create"
            } else {
                "update"
            },
            detail,
        });
        profiles.push(p);
    }
    let here: std::collections::BTreeMap<String, crate::lxd::Instance> = lxd
        .instances()?
        .into_iter()
        .map(|i| (i.name.clone(), i))
        .collect();
    let mut keys = Vec::new();
    let mut waiting = Vec::new();
    for f in &doc.instances {
        crate::names::validate_instance_name(&f.name)?;
        let Some(i) = here.get(&f.name) else {
            waiting.push(format!(
                "{} (not on this host: restore it, e.g. `trm-snap import`, then import again)",
                f.name
            ));
            continue;
        };
        if let Some(label) = f
            .proxy
            .as_ref()
            .filter(|l| i.config.get(crate::expose::labels::KEY) != Some(*l))
        {
            // The new host's policy judges it, as `trm-expose check` would.
            let report = crate::expose::check(Some(lxd), &settings, Some(&f.name), label)?;
            if report.problems() > 0 {
                return Err(Error::Usage(format!(
                    "the label of {} would not be routed here (nothing was imported): {}",
                    f.name,
                    report
                        .errors
                        .iter()
                        .map(|e| format!("{}: {}", e.item, e.message))
                        .chain(report.items.iter().filter_map(|i| {
                            Some(format!("{}: {}", i.item, i.problem.as_ref()?))
                        }))
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            keys.push((f.name.clone(), crate::expose::labels::KEY, label.clone()));
            changes.push(Change {
                kind: "label",
                name: f.name.clone(),
                action: if i.config.contains_key(crate::expose::labels::KEY) {
                    "update"
                } else {
                    "create"
                },
                detail: label.replace('\n', ", "),
            });
        }
        if let Some(v) = f
            .snapshots
            .as_ref()
            .filter(|v| i.config.get(SNAPSHOTS_KEY) != Some(*v))
        {
            if v != "off" && v != "on" {
                return Err(Error::Usage(format!(
                    "{}: {SNAPSHOTS_KEY} is on or off, not '{v}' (nothing was imported)",
                    f.name
                )));
            }
            keys.push((f.name.clone(), SNAPSHOTS_KEY, v.clone()));
            changes.push(Change {
                kind: "snapshots",
                name: f.name.clone(),
                action: "update",
                detail: format!("automatic snapshots {v}"),
            });
        }
    }
    doc_claims_apart(&doc)?;
    let needs_secret = pending(&doc)?;
    let settings_changed = changes.iter().any(|c| c.kind == "setting");
    Ok(Plan {
        file: path.display().to_string(),
        from_host: doc.from_host.clone(),
        dry_run,
        applied: false,
        changes,
        waiting,
        needs_secret,
        settings: settings_changed.then_some(settings),
        profiles,
        keys,
    })
}

/// Each label is judged against this host above; against each other, two
/// of the document's own may not claim the same host (and path) or port.
fn doc_claims_apart(doc: &Document) -> Result<()> {
    use crate::expose::labels::{self, Item};
    let mut seen: std::collections::BTreeMap<String, &str> = Default::default();
    for f in &doc.instances {
        let Some(label) = &f.proxy else { continue };
        let (items, _) = labels::parse(label);
        for item in items {
            let claim = match &item {
                Item::Http { host, path, .. } => format!("{host}{}", path.as_deref().unwrap_or("")),
                Item::Tcp { host_port, .. } => format!("tcp port {host_port}"),
                Item::Udp { host_port, .. } => format!("udp port {host_port}"),
                // A share routes nothing: it claims no host of its own.
                Item::Share { .. } => continue,
            };
            match seen.get(&claim) {
                Some(other) if *other != f.name => {
                    return Err(Error::Usage(format!(
                        "the labels of {other} and {} both claim {claim} (nothing was imported)",
                        f.name
                    )))
                }
                _ => {
                    seen.insert(claim, &f.name);
                }
            }
        }
    }
    Ok(())
}

/// Each secret still to give, unless this host already has what it is for.
fn pending(doc: &Document) -> Result<Vec<Pending>> {
    let mut out = Vec::new();
    if let Some(g) = doc.gate.as_ref().filter(|g| !g.issuer.is_empty()) {
        let here = crate::gate::GateSettings::load()?;
        if !here
            .is_some_and(|h| h.issuer == g.issuer && h.client_id == g.client_id && h.configured())
        {
            let mut flags = vec![
                ("--issuer", g.issuer.clone()),
                ("--client-id", g.client_id.clone()),
                ("--admin-group", g.admin_group.clone()),
                ("--groups-claim", g.groups_claim.clone()),
            ];
            if !g.auth_url.is_empty() {
                flags.push(("--auth-url", g.auth_url.clone()));
            }
            out.push(Pending {
                what: "the gate's OIDC client secret (a file holding it)".into(),
                command: command_line("trm-harden oidc set", &flags, "--client-secret-file <FILE>"),
            });
        }
    }
    if let Some(s) = &doc.s3 {
        let here = crate::offsite::S3Settings::load()?;
        if !here.is_some_and(|h| {
            h.endpoint == s.endpoint && h.bucket == s.bucket && h.prefix == s.prefix
        }) {
            let n = |v: i64| v.to_string();
            let flags = vec![
                ("--endpoint", s.endpoint.clone()),
                ("--bucket", s.bucket.clone()),
                ("--region", s.region.clone()),
                // Empty is the bucket's root, not the default prefix.
                ("--prefix", s.prefix.clone()),
                ("--recipient", s.recipient.clone()),
                ("--part-size", n(s.part_size_mib.into())),
                ("--parallel", n(s.parallel.into())),
                ("--compression-level", n(s.compression_level.into())),
                ("--memory-mib", n(s.memory_mib.into())),
                ("--keep-daily", n(s.keep_daily.into())),
                ("--keep-weekly", n(s.keep_weekly.into())),
                ("--keep-monthly", n(s.keep_monthly.into())),
            ];
            out.push(Pending {
                what: "the bucket's access and secret key, and the old host's signing key (its \
                       backups are trusted by it); keep its age identity to restore them"
                    .into(),
                command: command_line(
                    "trm-snap s3 set",
                    &flags,
                    "--access-key <ACCESS KEY> --secret-key-file <FILE> \
                     --signing-key-file <THE OLD HOST'S SIGNING KEY FILE>",
                ),
            });
        }
    }
    Ok(out)
}

/// A command to paste into a shell: every value from the document quoted
/// (a document is not trusted to be free of `;` or `$(...)`), then the
/// placeholders for what only the owner has.
fn command_line(base: &str, flags: &[(&str, String)], placeholders: &str) -> String {
    let mut out = base.to_string();
    for (flag, value) in flags {
        out.push_str(&format!(" {flag} {}", shell_quote(value)));
    }
    format!("{out} {placeholders}")
}

/// Apply exactly the confirmed plan: profiles and instance keys first (LXD
/// checks each), the settings file last. Should LXD refuse one midway, the
/// error says what was applied; the same import can be run again.
pub fn apply(lxd: &Lxd, plan: &Plan) -> Result<Plan> {
    let mut done: Vec<String> = Vec::new();
    let failed = |e: Error, done: &[String]| {
        if done.is_empty() {
            e
        } else {
            Error::WrongState(format!(
                "{e}; applied before it failed: {}; run the import again once fixed",
                done.join(", ")
            ))
        }
    };
    for p in &plan.profiles {
        lxd.put_profile(p).map_err(|e| failed(e, &done))?;
        done.push(format!("profile {}", p.name));
    }
    for (name, key, value) in &plan.keys {
        lxd.set_config(name, key, value)
            .map_err(|e| failed(e, &done))?;
        done.push(format!("{name} {key}"));
    }
    if let Some(s) = &plan.settings {
        s.save().map_err(|e| failed(e, &done))?;
    }
    Ok(Plan {
        applied: true,
        dry_run: false,
        ..plan.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc() -> Document {
        Document {
            format: super::super::FORMAT.into(),
            exported: "2026-12-02T00:00:00Z".into(),
            from_host: "old".into(),
            from_project: "default".into(),
            storage_pool: "oldpool".into(),
            bridge: "oldbr".into(),
            settings: Default::default(),
            profiles: vec![],
            withheld: Default::default(),
            instances: vec![],
            gate: None,
            s3: None,
            secrets_left_out: vec![],
        }
    }

    #[test]
    fn carried_settings_change_and_local_ones_stay() {
        let host = Settings {
            bridge: "newbr".into(),
            ..Settings::default()
        };
        let mut d = doc();
        d.settings
            .insert("expose.root_domain".into(), "example.test".into());
        d.settings.insert("snapshots.hourly".into(), 12.into());

        d.settings
            .insert("image".into(), Settings::default().image.into());
        let (s, changes) = merge_settings(&host, &d).unwrap();
        assert_eq!(s.expose.root_domain, "example.test");
        assert_eq!(s.snapshots.hourly, 12);

        let names: Vec<&str> = changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["expose.root_domain", "snapshots.hourly"],
            "unchanged values are no change"
        );
    }

    #[test]
    fn bad_settings_change_nothing() {
        let host = Settings::default();
        for (k, v, says) in [
            (
                "expose.nonsense",
                serde_json::json!(1),
                "not one this Terrarium has",
            ),
            (
                "snapshots.hourly",
                serde_json::json!("many"),
                "do not apply",
            ),
            ("bridge", serde_json::json!("oldbr"), "not carried"),
            (
                "expose.restart_command",
                serde_json::json!(["sh", "-c", "x"]),
                "not carried",
            ),
        ] {
            let mut d = doc();
            d.settings.insert(k.into(), v);
            let e = merge_settings(&host, &d).unwrap_err().to_string();
            assert!(e.contains(says), "{k}: {e}");
        }
    }

    #[test]
    fn pasted_commands_quote_what_the_document_says() {
        assert_eq!(
            shell_quote("https://idp.example.test/realm"),
            "https://idp.example.test/realm"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("x; rm -rf /"), "'x; rm -rf /'");
        assert_eq!(shell_quote("it's $(id)"), "'it'\\''s $(id)'");
        let c = command_line(
            "trm-snap s3 set",
            &[("--prefix", String::new()), ("--bucket", "b".into())],
            "<K>",
        );
        assert_eq!(c, "trm-snap s3 set --prefix '' --bucket b <K>");
    }

    #[test]
    fn two_labels_of_one_document_never_claim_one_host() {
        let mut d = doc();
        let box_ = |name: &str, label: &str| super::super::InstanceFacts {
            name: name.into(),
            proxy: Some(label.into()),
            snapshots: None,
        };
        d.instances = vec![
            box_("a", "https://app.example.test:8000"),
            box_("b", "https://other.example.test:8000"),
        ];
        doc_claims_apart(&d).unwrap();
        d.instances.push(box_("c", "https://app.example.test:9000"));
        let e = doc_claims_apart(&d).unwrap_err().to_string();
        assert!(e.contains("a and c both claim app.example.test"), "{e}");
    }

    #[test]
    fn a_profile_diff_names_each_key() {
        let now = Profile {
            name: "dev".into(),
            config: [
                ("limits.cpu".to_string(), "1".to_string()),
                ("a".into(), "x".into()),
            ]
            .into(),
            ..Profile::default()
        };
        let want = Profile {
            config: [
                ("limits.cpu".to_string(), "2".to_string()),
                ("b".into(), "y".into()),
            ]
            .into(),
            ..now.clone()
        };
        assert_eq!(profile_diff(&now, &want), "-a; +b=y; limits.cpu: 1 -> 2");
        assert_eq!(profile_diff(&now, &now), "");
    }

    #[test]
    fn profiles_point_at_this_hosts_pool_and_bridge() {
        let host = Settings {
            bridge: "newbr".into(),
            storage_pool: "newpool".into(),
            ..Settings::default()
        };
        let dev = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let p = Profile {
            name: "default".into(),
            devices: [
                (
                    "eth0".to_string(),
                    dev(&[("type", "nic"), ("network", "oldbr")]),
                ),
                (
                    "eth1".to_string(),
                    dev(&[("type", "nic"), ("network", "other")]),
                ),
                (
                    "root".to_string(),
                    dev(&[("type", "disk"), ("pool", "oldpool"), ("path", "/")]),
                ),
            ]
            .into(),
            ..Profile::default()
        };
        let p = rehome_profile(p, &doc(), &host);
        assert_eq!(p.devices["eth0"]["network"], "newbr");
        assert_eq!(
            p.devices["eth1"]["network"], "other",
            "only the source's own bridge moves"
        );
        assert_eq!(p.devices["root"]["pool"], "newpool");
    }
}
