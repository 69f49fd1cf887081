//! What the bucket holds: complete backups (those with a manifest) and,
//! on request, what incomplete uploads left behind.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::manifest::Manifest;
use super::{S3Settings, DATA_NAME, MANIFEST_NAME, MARKER_NAME};
use crate::error::{Error, Result};
use crate::output::Row;
use crate::s3::Client;

/// Manifests are small; anything bigger is not ours.
const MANIFEST_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Serialize)]
pub struct Backup {
    pub instance: String,
    pub id: String,
    /// `complete`, or `incomplete` (no manifest: failed or still uploading).
    pub state: String,
    pub created: String,
    pub snapshot: String,
    pub size: u64,
    pub sha256: String,
    pub dir: String,
    #[serde(skip)]
    pub manifest: Option<Manifest>,
    #[serde(skip)]
    pub keys: Vec<String>,
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
            self.state.clone(),
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

pub fn folders(client: &Client, s: &S3Settings, instance: Option<&str>) -> Result<Folders> {
    let root = s.key_prefix();
    let under = match instance {
        Some(i) => format!("{root}{i}/"),
        None => root.clone(),
    };
    let mut dirs = Folders::new();
    for o in client.list(&under)? {
        let Some(rest) = o.key.strip_prefix(&root) else {
            continue;
        };
        let parts: Vec<&str> = rest.split('/').collect();
        if let [inst, id, _file] = parts[..] {
            dirs.entry((inst.to_string(), id.to_string()))
                .or_default()
                .push((o.key.clone(), o.size));
        }
    }
    Ok(dirs)
}

/// Every backup folder under the prefix (or one instance's), oldest
/// first, complete ones with their manifest read.
pub fn scan(client: &Client, s: &S3Settings, instance: Option<&str>) -> Result<Vec<Backup>> {
    let root = s.key_prefix();
    let dirs = folders(client, s, instance)?;
    let mut out = Vec::new();
    for ((inst, id), files) in dirs {
        let has = |name: &str| find(&files, name);
        let dir = format!("{root}{inst}/{id}/");
        let manifest = match has(MANIFEST_NAME) {
            Some((k, _)) => Some(Manifest::parse(k, &client.get_bytes(k, MANIFEST_LIMIT)?)?),
            None => None,
        };
        let data_size = has(DATA_NAME).map(|(_, n)| *n).unwrap_or(0);
        let b = match &manifest {
            Some(m) => Backup {
                instance: inst,
                id,
                state: "complete".into(),
                created: m.created.clone(),
                snapshot: m.snapshot.clone(),
                size: m.size,
                sha256: m.sha256.clone(),
                dir,
                manifest: manifest.clone(),
                keys: files.iter().map(|(k, _)| k.clone()).collect(),
            },
            None => Backup {
                instance: inst,
                created: id_time(&id).map(|t| t.to_rfc3339()).unwrap_or_default(),
                id,
                state: if has(MARKER_NAME).is_some() {
                    "incomplete (upload marker)".into()
                } else {
                    "incomplete".into()
                },
                snapshot: String::new(),
                size: data_size,
                sha256: String::new(),
                dir,
                manifest: None,
                keys: files.iter().map(|(k, _)| k.clone()).collect(),
            },
        };
        out.push(b);
    }
    out.sort_by(|a, b| (a.created_at(), &a.id).cmp(&(b.created_at(), &b.id)));
    Ok(out)
}

/// Backup ids are UTC stamps: `20261129T014000Z`.
pub fn id_time(id: &str) -> Option<DateTime<Utc>> {
    chrono::NaiveDateTime::parse_from_str(id.get(..16)?, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc())
}

/// Pick a complete backup of `instance`: by id, by time (the newest made
/// at or before it), or the newest.
pub fn select<'a>(backups: &'a [Backup], instance: &str, at: Option<&str>) -> Result<&'a Backup> {
    let complete: Vec<&Backup> = backups
        .iter()
        .filter(|b| b.instance == instance && b.is_complete())
        .collect();
    let none = || Error::NotFound {
        kind: "complete off-site backup of",
        name: instance.to_string(),
    };
    match at {
        None => complete.last().copied().ok_or_else(none),
        Some(at) => {
            if let Some(b) = complete.iter().find(|b| b.id == at) {
                return Ok(b);
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
            manifest: complete.then(|| Manifest {
                format_version: 1,
                id: id.into(),
                instance: "web".into(),
                project: "default".into(),
                snapshot: "s".into(),
                created,
                host: "h".into(),
                size: 0,
                sha256: String::new(),
                tarball_size: 0,
                compression: "zstd".into(),
                compression_level: 3,
                encryption: super::super::manifest::Encryption {
                    scheme: "age".into(),
                    recipient: String::new(),
                    recipient_fingerprint: String::new(),
                },
                objects: super::super::manifest::Objects {
                    data: String::new(),
                    manifest: String::new(),
                },
                parts: 1,
                part_size: 0,
                lxd_export: super::super::manifest::LxdExport {
                    instance_only: true,
                    optimized_storage: false,
                    storage_driver: String::new(),
                },
                terrarium_version: String::new(),
            }),
            keys: vec![],
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
}
