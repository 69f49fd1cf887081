//! What the bucket holds: complete backups (those with a trusted
//! manifest) and, on request, refused ones and what incomplete uploads
//! left behind.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use ed25519_dalek::VerifyingKey;

use super::manifest::Manifest;
use super::{backup_dir, manifest_key, signing, S3Settings, DATA_NAME, MANIFEST_NAME, MARKER_NAME};
use crate::error::{Error, Result};
use crate::names::validate_instance_name;
use crate::offsite::s3::Client;
use crate::output::Row;

/// Manifests are small; anything bigger is not ours.
const MANIFEST_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub instance: String,
    pub id: String,
    /// `complete`; `refused` (a manifest this host does not trust: see
    /// `refused`); or `incomplete` (no manifest: failed or still uploading).
    pub state: String,
    pub created: String,
    pub snapshot: String,
    pub size: u64,
    pub sha256: String,
    pub dir: String,
    /// Why the manifest is not trusted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
    /// Only for a trusted (signed, matching) manifest.
    #[serde(skip)]
    pub manifest: Option<Manifest>,
    /// The data object's size in the listing.
    #[serde(skip)]
    pub listed_size: Option<u64>,
}

impl Backup {
    pub fn is_complete(&self) -> bool {
        self.manifest.is_some()
    }

    pub fn created_at(&self) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(&self.created)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or(DateTime::<Utc>::MIN_UTC)
    }
}

impl Row for Backup {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "ID", "STATE", "CREATED", "SNAPSHOT", "SIZE"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.instance.clone(),
            self.id.clone(),
            match &self.refused {
                Some(why) => format!("refused: {why}"),
                None => self.state.clone(),
            },
            self.created.clone(),
            self.snapshot.clone(),
            indicatif::HumanBytes(self.size).to_string(),
        ]
    }
}

/// The objects of each backup folder, by (instance, id): one listing,
/// no reads.
pub type Folders = BTreeMap<(String, String), Vec<(String, u64)>>;

/// The (key, size) of a folder's object called `name`.
pub fn find<'a>(files: &'a [(String, u64)], name: &str) -> Option<&'a (String, u64)> {
    files
        .iter()
        .find(|(k, _)| k.rsplit('/').next() == Some(name))
}

/// A folder name Terrarium could have written: an LXD instance name, and
/// an id of letters, digits and `-` (so no `.`, `..` or `/`).
fn is_folder(instance: &str, id: &str) -> bool {
    validate_instance_name(instance).is_ok()
        && !id.is_empty()
        && id.len() <= 64
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Backup folders from one listing: `<prefix>/<instance>/<id>/<file>`
/// only; any other key is ignored.
pub fn folders(client: &Client, s: &S3Settings, instance: Option<&str>) -> Result<Folders> {
    let root = s.key_prefix();
    let under = match instance {
        Some(i) => format!("{root}{i}/"),
        None => root.clone(),
    };
    Ok(group(&root, client.list(&under)?))
}

fn group(root: &str, listed: Vec<crate::offsite::s3::Object>) -> Folders {
    let mut dirs = Folders::new();
    for o in listed {
        let Some(rest) = o.key.strip_prefix(root) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if let [inst, id, file] = parts[..] {
            if is_folder(inst, id) && [DATA_NAME, MANIFEST_NAME, MARKER_NAME].contains(&file) {
                dirs.entry((inst.to_string(), id.to_string()))
                    .or_default()
                    .push((o.key.clone(), o.size));
            }
        }
    }
    dirs
}

/// Every backup folder under the prefix (or one instance's), oldest
/// first, complete ones with their manifest read and checked. Only
/// backups of `project` (the LXD project the command runs in) are
/// trusted: another project's are refused, so never picked or pruned.
pub fn scan(
    client: &Client,
    s: &S3Settings,
    instance: Option<&str>,
    project: &str,
) -> Result<Vec<Backup>> {
    let trusted = s.trusted_signer()?;
    let dirs = folders(client, s, instance)?;
    let mut out = Vec::new();
    for ((inst, id), files) in dirs {
        let has = |name: &str| find(&files, name);
        let dir = backup_dir(s, &inst, &id);
        let listed_size = has(DATA_NAME).map(|(_, n)| *n);
        let id_created = id_time(&id)
            .map(|t| crate::time::utc(&t))
            .unwrap_or_default();
        let mut b = Backup {
            instance: inst.clone(),
            id: id.clone(),
            state: "incomplete".into(),
            created: id_created,
            snapshot: String::new(),
            size: listed_size.unwrap_or(0),
            sha256: String::new(),
            dir: dir.clone(),
            refused: None,
            manifest: None,
            listed_size,
        };
        match has(MANIFEST_NAME) {
            Some((_, manifest_size)) => {
                let read = if *manifest_size > MANIFEST_LIMIT {
                    Err(format!(
                        "its manifest is {manifest_size} bytes, more than a manifest can be"
                    ))
                } else {
                    let key = manifest_key(&dir);
                    let bytes = client.get_bytes(&key, MANIFEST_LIMIT)?;
                    trust(
                        &key,
                        &bytes,
                        &Place {
                            instance: &inst,
                            id: &id,
                            project,
                        },
                        listed_size,
                        trusted.as_ref(),
                    )
                };
                match read {
                    Ok(m) => {
                        b.state = "complete".into();
                        b.created = m.created.clone();
                        b.snapshot = m.snapshot.clone();
                        b.size = m.size;
                        b.sha256 = m.sha256.clone();
                        b.manifest = Some(m);
                    }
                    Err(why) => {
                        b.state = "refused".into();
                        b.refused = Some(why);
                    }
                }
            }
            None if has(MARKER_NAME).is_some() => b.state = "incomplete (upload marker)".into(),
            None => {}
        }
        out.push(b);
    }
    out.sort_by(|a, b| (a.created_at(), &a.id).cmp(&(b.created_at(), &b.id)));
    Ok(out)
}

/// Where a manifest was found: its folder, and the project asking.
pub struct Place<'a> {
    pub instance: &'a str,
    pub id: &'a str,
    pub project: &'a str,
}

/// A manifest is trusted when it parses, belongs to its folder, carries
/// this host's signature, names the project asking (the signed field;
/// folders are not split by project), and its data object is listed at
/// its size.
pub fn trust(
    key: &str,
    bytes: &[u8],
    at: &Place,
    listed_size: Option<u64>,
    trusted: Option<&VerifyingKey>,
) -> std::result::Result<Manifest, String> {
    let m = Manifest::parse(key, bytes).map_err(|e| e.to_string())?;
    m.check_folder(at.instance, at.id)?;
    signing::check(&m, trusted)?;
    if m.project != at.project {
        return Err(format!(
            "it belongs to project {} (this is project {})",
            m.project, at.project
        ));
    }
    match listed_size {
        None => Err("its data object is missing".into()),
        Some(n) if n != m.size => Err(format!(
            "its data object is truncated or padded: {n} bytes in the listing, the manifest says {}",
            m.size
        )),
        Some(_) => Ok(m),
    }
}

/// Backup ids are UTC stamps: `20261129T014000Z`.
pub fn id_time(id: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(id.get(..16)?, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Pick a complete backup of `instance`: by id, by time (the newest made
/// at or before it), or the newest. Refused backups are never picked;
/// asked for by id, one says why.
pub fn select<'a>(backups: &'a [Backup], instance: &str, at: Option<&str>) -> Result<&'a Backup> {
    let complete: Vec<&Backup> = backups
        .iter()
        .filter(|b| b.instance == instance && b.is_complete())
        .collect();
    let none = || Error::NotFound {
        kind: "complete off-site backup of",
        name: instance.to_string(),
    };
    let refused = refused(backups, instance);
    let none = || {
        if refused.is_empty() {
            return none();
        }
        Error::Integrity(format!(
            "no backup of {instance} is one this host trusts; refused: {}; nothing was created",
            refused.join("; ")
        ))
    };
    match at {
        None => complete.last().copied().ok_or_else(none),
        Some(at) => {
            if let Some(b) = complete.iter().find(|b| b.id == at) {
                return Ok(b);
            }
            if let Some(why) = backups
                .iter()
                .find(|b| b.instance == instance && b.id == at)
                .and_then(|b| b.refused.as_ref())
            {
                return Err(Error::Integrity(format!(
                    "backup {at} of {instance} is refused: {why}; nothing was created"
                )));
            }
            let t = parse_at(at)?;
            complete
                .iter()
                .rev()
                .find(|b| b.created_at() <= t)
                .copied()
                .ok_or_else(|| Error::NotFound {
                    kind: "off-site backup made at or before",
                    name: format!("{at} for {instance}"),
                })
        }
    }
}

/// The refused backups of `instance`, as `id: why`, for reports.
pub fn refused(backups: &[Backup], instance: &str) -> Vec<String> {
    backups
        .iter()
        .filter(|b| b.instance == instance)
        .filter_map(|b| Some(format!("{}: {}", b.id, b.refused.as_ref()?)))
        .collect()
}

fn parse_at(at: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(at) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(t) = id_time(at) {
        return Ok(t);
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(at, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(23, 59, 59).expect("valid time").and_utc());
    }
    Err(Error::Usage(format!(
        "--at '{at}': give a backup id, an RFC 3339 time or a date (YYYY-MM-DD)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offsite::manifest::tests::sample;

    fn b(id: &str, complete: bool) -> Backup {
        let created = id_time(id).unwrap().to_rfc3339();
        Backup {
            instance: "web".into(),
            id: id.into(),
            state: String::new(),
            created: created.clone(),
            snapshot: String::new(),
            size: 0,
            sha256: String::new(),
            dir: String::new(),
            refused: None,
            manifest: complete.then(|| sample("web", id)),
            listed_size: None,
        }
    }

    #[test]
    fn selection_by_id_time_or_newest_skips_incomplete() {
        let all = vec![
            b("20261101T000000Z", true),
            b("20261110T000000Z", true),
            b("20261120T000000Z", false),
        ];
        assert_eq!(select(&all, "web", None).unwrap().id, "20261110T000000Z");
        assert_eq!(
            select(&all, "web", Some("20261101T000000Z")).unwrap().id,
            "20261101T000000Z"
        );
        assert_eq!(
            select(&all, "web", Some("2026-11-05")).unwrap().id,
            "20261101T000000Z"
        );
        assert_eq!(
            select(&all, "web", Some("2026-11-30T00:00:00Z"))
                .unwrap()
                .id,
            "20261110T000000Z"
        );
        assert_eq!(
            select(&all, "web", Some("2026-10-01"))
                .unwrap_err()
                .exit_code(),
            3
        );
        assert_eq!(select(&all, "db", None).unwrap_err().exit_code(), 3);
        assert_eq!(
            select(&all, "web", Some("yesterday"))
                .unwrap_err()
                .exit_code(),
            2
        );
    }

    #[test]
    fn a_refused_backup_is_never_the_newest_and_says_why_when_asked_for() {
        let mut forged = b("20991231T000000Z", false);
        forged.state = "refused".into();
        forged.refused = Some("its manifest is not signed".into());
        let all = vec![b("20261101T000000Z", true), forged];
        assert_eq!(select(&all, "web", None).unwrap().id, "20261101T000000Z");
        assert_eq!(
            select(&all, "web", Some("2100-01-01")).unwrap().id,
            "20261101T000000Z"
        );
        let e = select(&all, "web", Some("20991231T000000Z")).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string()
                .contains("is refused: its manifest is not signed"),
            "{e}"
        );
        assert_eq!(
            refused(&all, "web"),
            vec!["20991231T000000Z: its manifest is not signed".to_string()]
        );
        let only_forged = &all[1..];
        let e = select(only_forged, "web", None).unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.to_string().contains("no backup of web is one this host trusts; refused: 20991231T000000Z: its manifest is not signed"),
            "{e}"
        );
    }

    #[test]
    fn only_well_formed_folders_are_listed() {
        let o = |k: &str| crate::offsite::s3::Object {
            key: k.into(),
            size: 1,
        };
        let dirs = group(
            "terrarium/",
            vec![
                o("terrarium/web/20261201T000000Z/manifest.json"),
                o("terrarium/web/20261201T000000Z/data.tar.zst.age"),
                o("terrarium/web/20261201T000000Z/other.txt"),
                o("terrarium/../20261201T000000Z/manifest.json"),
                o("terrarium/web/../manifest.json"),
                o("terrarium/web/a.b/manifest.json"),
                o("terrarium/web/x/y/manifest.json"),
                o("terrarium/.terrarium-probe-1"),
                o("keepme.txt"),
            ],
        );
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        assert_eq!(dirs[&("web".into(), "20261201T000000Z".into())].len(), 2);
    }

    #[test]
    fn trust_needs_folder_signature_and_listed_size() {
        let key = signing::generate().unwrap();
        let vk = key.verifying_key();
        let mut m = sample("web", "20261201T000000Z");
        signing::sign(&mut m, &key);
        let bytes = serde_json::to_vec(&m).unwrap();
        fn place<'a>(instance: &'a str, project: &'a str) -> Place<'a> {
            Place {
                instance,
                id: "20261201T000000Z",
                project,
            }
        }
        let t = |inst: &str, listed: Option<u64>| {
            trust("k", &bytes, &place(inst, "default"), listed, Some(&vk))
        };
        assert!(t("web", Some(1000)).is_ok());
        assert!(t("db", Some(1000)).unwrap_err().contains("lies in folder"));
        assert!(t("web", None).unwrap_err().contains("missing"));
        let e = t("web", Some(1 << 30)).unwrap_err();
        assert!(
            e.contains("1073741824 bytes in the listing, the manifest says 1000"),
            "{e}"
        );
        let unsigned = serde_json::to_vec(&sample("web", "20261201T000000Z")).unwrap();
        let e = trust(
            "k",
            &unsigned,
            &place("web", "default"),
            Some(1000),
            Some(&vk),
        )
        .unwrap_err();
        assert!(e.contains("not signed"), "{e}");
        let garbage = Place {
            instance: "web",
            id: "x",
            project: "default",
        };
        assert!(trust("k", b"{", &garbage, Some(1), Some(&vk)).is_err());
    }

    #[test]
    fn another_projects_signed_backup_is_refused() {
        let key = signing::generate().unwrap();
        let vk = key.verifying_key();
        let mut m = sample("web", "20261201T000000Z");
        m.project = "team-a".into();
        signing::sign(&mut m, &key);
        let bytes = serde_json::to_vec(&m).unwrap();
        let in_project = |project| {
            let at = Place {
                instance: "web",
                id: "20261201T000000Z",
                project,
            };
            trust("k", &bytes, &at, Some(1000), Some(&vk))
        };
        assert!(in_project("team-a").is_ok());
        assert_eq!(
            in_project("team-b").unwrap_err(),
            "it belongs to project team-a (this is project team-b)"
        );
        // Rewriting the project field breaks the signature instead.
        let mut moved: Manifest = serde_json::from_slice(&bytes).unwrap();
        moved.project = "team-b".into();
        let moved = serde_json::to_vec(&moved).unwrap();
        let at = Place {
            instance: "web",
            id: "20261201T000000Z",
            project: "team-b",
        };
        let e = trust("k", &moved, &at, Some(1000), Some(&vk)).unwrap_err();
        assert!(!e.contains("belongs to project"), "{e}");
    }
}
