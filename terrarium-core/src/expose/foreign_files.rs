//! Files in Traefik's watched directory that Terrarium did not write. One
//! that Traefik's file provider cannot read stops the whole provider (no
//! new routes; none at all after a restart), so `sync` moves it out of
//! Traefik's sight, judging it the way Traefik reads the directory:
//! recursively, extensions in any case, links followed by Traefik (and so
//! not by us: a link is left alone), Go templates rendered first (a file
//! with `{{` is left alone: we cannot render it).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::traefik;

#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    /// Relative to the watched directory.
    pub file: String,
    pub moved_to: String,
    pub reason: String,
}

/// A file this young may be mid-write by its owner: judge it next time.
const SETTLE: Duration = Duration::from_secs(2);
const MAX_DEPTH: usize = 4;
const MAX_SIZE: u64 = 4 << 20;

/// Move unreadable provider files aside (`NAME.rejected`, never over an
/// older one). `skip` are top-level names this sync rewrites or deletes.
/// Returns what was moved, and files that could not be moved (with why).
pub fn reject_unreadable(
    dir: &Path,
    skip: &BTreeSet<String>,
    dry_run: bool,
) -> (Vec<Rejected>, Vec<(String, String)>) {
    let mut rejected = Vec::new();
    let mut stuck = Vec::new();
    for (path, rel) in provider_files(dir) {
        if skip.contains(&rel) {
            continue;
        }
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        let young = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_none_or(|age| age < SETTLE);
        if young || meta.len() > MAX_SIZE {
            continue;
        }
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        if text.contains("{{") {
            continue;
        }
        let Err(reason) = traefik::check_provider_file(&rel, &text) else {
            continue;
        };
        let target = free_name(&path);
        let moved_to = rel_of(dir, &target);
        if !dry_run {
            if let Err(err) = std::fs::rename(&path, &target) {
                stuck.push((
                    rel.clone(),
                    format!("Traefik cannot read {rel} ({reason}) and it could not be moved aside: {err}"),
                ));
                continue;
            }
        }
        rejected.push(Rejected {
            file: rel,
            moved_to,
            reason,
        });
    }
    (rejected, stuck)
}

/// Regular provider files below `dir` (links and deep trees left alone),
/// sorted, with their path relative to `dir`.
fn provider_files(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), 0usize)];
    while let Some((d, depth)) = todo.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let path = entry.path();
            if kind.is_dir() && depth < MAX_DEPTH {
                todo.push((path, depth + 1));
            } else if kind.is_file()
                && traefik::is_provider_file(&entry.file_name().to_string_lossy())
            {
                out.push((path.clone(), rel_of(dir, &path)));
            }
        }
    }
    out.sort();
    out
}

fn rel_of(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn free_name(path: &Path) -> PathBuf {
    let base = format!("{}.rejected", path.display());
    let mut candidate = PathBuf::from(&base);
    let mut n = 1;
    while candidate.exists() {
        candidate = PathBuf::from(format!("{base}.{n}"));
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    fn age(path: &Path) {
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(old)
            .unwrap();
    }

    #[test]
    fn unreadable_files_move_aside_and_everything_else_stays() {
        let d = tempfile::tempdir().unwrap();
        let p = |f: &str| d.path().join(f);
        std::fs::create_dir(p("sub")).unwrap();
        let files = [
            ("bad.yml", "http: {routers: ["),
            ("sub/BAD.YAML", "http:\n  routers: 5\n"),
            ("good.yml", "http:\n  routers: {}\n"),
            ("templated.yml", "http: {{ .Something }"),
            ("trm-x.yml", "broken, but this sync rewrites it"),
            ("notes.txt", "not a provider file"),
        ];
        for (f, text) in files {
            std::fs::write(p(f), text).unwrap();
            age(&p(f));
        }
        std::fs::write(p("fresh.yml"), "half-writ").unwrap();
        std::fs::write(p("bad.yml.rejected"), "an older one").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", p("link.yml")).unwrap();
        let skip: BTreeSet<String> = ["trm-x.yml".to_string()].into();
        let (moved, stuck) = reject_unreadable(d.path(), &skip, false);
        assert!(stuck.is_empty(), "{stuck:?}");
        let names: Vec<(&str, &str)> = moved
            .iter()
            .map(|r| (r.file.as_str(), r.moved_to.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("bad.yml", "bad.yml.rejected.1"),
                ("sub/BAD.YAML", "sub/BAD.YAML.rejected")
            ]
        );
        assert_eq!(
            std::fs::read_to_string(p("bad.yml.rejected")).unwrap(),
            "an older one"
        );
        for kept in [
            "good.yml",
            "templated.yml",
            "trm-x.yml",
            "fresh.yml",
            "link.yml",
        ] {
            assert!(std::fs::symlink_metadata(p(kept)).is_ok(), "{kept} stays");
        }
        // A dry run says the same and moves nothing.
        std::fs::write(p("bad2.yml"), "[").unwrap();
        age(&p("bad2.yml"));
        let (moved, _) = reject_unreadable(d.path(), &skip, true);
        assert_eq!(moved.len(), 1);
        assert!(p("bad2.yml").exists());
    }
}
