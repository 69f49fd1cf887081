//! The running Traefik, asked on its loopback `traefik` entrypoint: ping,
//! version, and which routers it really loaded from the file provider.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

/// A client for Traefik's API at `address` (`127.0.0.1:8082`; settings
/// keep it on loopback).
pub struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(address: &str) -> Api {
        Api {
            base: format!("http://{address}"),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(3))
                .build(),
        }
    }

    fn get(&self, path: &str) -> Result<String> {
        let url = format!("{}{path}", self.base);
        self.agent
            .get(&url)
            .call()
            .map_err(|e| Error::Unavailable(format!("Traefik's API at {url}: {e}")))?
            .into_string()
            .map_err(|e| Error::io(format!("reading {url}"), e))
    }

    /// Does Traefik answer its health check?
    pub fn ping(&self) -> bool {
        self.get("/ping").is_ok_and(|b| b.trim() == "OK")
    }

    pub fn version(&self) -> Result<String> {
        let v: Value = serde_json::from_str(&self.get("/api/version")?)
            .map_err(|e| Error::parse("Traefik's /api/version", e))?;
        Ok(v["Version"].as_str().unwrap_or_default().to_string())
    }

    /// Every router Traefik runs, unpaginated (`/api/rawdata`).
    pub fn routers(&self) -> Result<Vec<Router>> {
        let v: Value = serde_json::from_str(&self.get("/api/rawdata")?)
            .map_err(|e| Error::parse("Traefik's /api/rawdata", e))?;
        Ok(routers_of(&v))
    }
}

/// One router as Traefik reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Router {
    /// `name@provider`.
    pub name: String,
    pub status: String,
    pub errors: Vec<String>,
}

fn routers_of(raw: &Value) -> Vec<Router> {
    ["routers", "tcpRouters", "udpRouters"]
        .iter()
        .filter_map(|k| raw[*k].as_object())
        .flatten()
        .map(|(name, r)| Router {
            name: name.clone(),
            status: r["status"].as_str().unwrap_or_default().to_string(),
            errors: r["error"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
        })
        .collect()
}

/// The router names (without provider) the Terrarium files in the dynamic
/// directory declare: the instances' `trm-*.yml` and the management file.
/// With `entrypoints`, only routers whose entrypoints all exist there
/// (Traefik runs no router on an entrypoint its static file lacks).
pub fn routers_in_files(dir: &Path, entrypoints: Option<&BTreeSet<String>>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(super::is_our_file(&name) || name == crate::harden::gate::MANAGEMENT_FILE) {
            continue;
        }
        let Some(doc) = std::fs::read(entry.path())
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        else {
            continue;
        };
        for section in ["http", "tcp", "udp"] {
            if let Some(m) = doc[section]["routers"].as_object() {
                out.extend(
                    m.iter()
                        .filter(|(_, r)| {
                            entrypoints.is_none_or(|have| {
                                r["entryPoints"]
                                    .as_array()
                                    .into_iter()
                                    .flatten()
                                    .all(|ep| ep.as_str().is_some_and(|n| have.contains(n)))
                            })
                        })
                        .map(|(k, _)| k.clone()),
                );
            }
        }
    }
    out
}

/// What Traefik loaded of Terrarium's files.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Loaded {
    /// Routers in the files.
    pub expected: usize,
    /// Of those, the ones Traefik runs.
    pub loaded: usize,
    /// In a file but not in Traefik (a file it could not read, or one it
    /// has not picked up yet).
    pub missing: Vec<String>,
    /// Terrarium routers Traefik runs with an error (`name: error`).
    pub errors: Vec<String>,
}

pub fn compare(expected: &BTreeSet<String>, running: &[Router]) -> Loaded {
    let from_file: BTreeSet<&str> = running
        .iter()
        .filter_map(|r| r.name.strip_suffix("@file"))
        .collect();
    let missing: Vec<String> = expected
        .iter()
        .filter(|n| !from_file.contains(n.as_str()))
        .cloned()
        .collect();
    Loaded {
        expected: expected.len(),
        loaded: expected.len() - missing.len(),
        missing,
        errors: running
            .iter()
            .filter(|r| {
                r.name
                    .strip_suffix("@file")
                    .is_some_and(|n| expected.contains(n))
            })
            .flat_map(|r| r.errors.iter().map(move |e| format!("{}: {e}", r.name)))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rawdata_routers_are_compared_with_the_files() {
        let raw = json!({
            "routers": {
                "trm-a_https-1@file": {"status": "enabled"},
                "trm-b_http-2@file": {"status": "disabled", "error": ["the service \"x\" does not exist"]},
                "api@internal": {"status": "enabled"},
            },
            "tcpRouters": {"trm-a_tcp-2222@file": {"status": "enabled"}},
        });
        let running = routers_of(&raw);
        assert_eq!(running.len(), 4);
        let expected: BTreeSet<String> = [
            "trm-a_https-1",
            "trm-a_tcp-2222",
            "trm-b_http-2",
            "trm-c_http-3",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let l = compare(&expected, &running);
        assert_eq!((l.expected, l.loaded), (4, 3));
        assert_eq!(l.missing, ["trm-c_http-3"]);
        assert_eq!(l.errors.len(), 1);
        assert!(l.errors[0].starts_with("trm-b_http-2@file: "));
    }

    #[test]
    fn routers_needing_a_missing_entrypoint_are_not_expected_of_a_restart() {
        let d = tempfile::tempdir().unwrap();
        let doc = json!({
            "http": {"routers": {"trm-a_https-1": {"entryPoints": ["websecure"]}}},
            "udp": {"routers": {"trm-a_udp-53": {"entryPoints": ["udp-53"]}}},
        });
        std::fs::write(d.path().join("trm-a.yml"), doc.to_string()).unwrap();
        std::fs::write(d.path().join("other.yml"), doc.to_string()).unwrap();
        assert_eq!(
            routers_in_files(d.path(), None).len(),
            2,
            "only Terrarium's files"
        );
        let eps: BTreeSet<String> = ["web".to_string(), "websecure".to_string()].into();
        let want: Vec<String> = routers_in_files(d.path(), Some(&eps)).into_iter().collect();
        assert_eq!(want, ["trm-a_https-1"]);
    }
}
