//! Incremental off-site exports where the pool is ZFS: each backup is one
//! `zfs send` stream, full every N, otherwise incremental (`send -i`)
//! from the snapshot the previous backup sent. The stream goes through
//! the same stages as an LXD export (zstd, age, SHA-256, multipart) and
//! its manifest records the link: parent id, the parent's SHA-256 and
//! snapshot, and the depth since the full one.
//!
//! Host side, only the newest sent snapshot (`trm-offsite-<id>`) is kept:
//! it is the base of the next increment. When it is gone (destroyed by
//! hand, a rollback past it), the next export is full.
//!
//! Restore walks the chain from the chosen backup back to its full
//! stream, refuses it before creating anything when a link is missing,
//! untrusted, or not the one its child names, then receives the links
//! oldest first into a new dataset. LXD cannot use a zfs-fuse pool (its
//! driver loads the kernel module), so the restore targets a dataset; the
//! chain is the data, not an LXD instance.

use std::collections::BTreeMap;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use super::catalog::{self, Backup};
use super::export::{Exported, Job, ReadProgress, Timings};
use super::import::{check_key, download, plaintext};
use super::manifest::{LxdExport, Parent, ZfsLink};
use super::settings::read_identities;
use super::{data_key, S3Settings};
use crate::error::{Error, Result};
use crate::fs::{Lock, OnBusy};
use crate::output::Human;
use crate::zfs;

/// The snapshots this module takes; only these are ever destroyed here.
pub const SNAPSHOT_PREFIX: &str = "trm-offsite-";

/// What is sent: the dataset holding `instance`'s data in `project`.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub instance: String,
    pub project: String,
    pub dataset: String,
    /// The export's own part size and uploads [default: the settings'].
    pub part_size_mib: Option<u32>,
    pub parallel: Option<u32>,
}

/// The link to send next. Incremental when the newest trusted link of
/// this dataset has its snapshot still on the host and the chain is
/// shorter than `full_every`; full otherwise.
pub fn next_link(
    previous: Option<&Backup>,
    present: &[String],
    dataset: &str,
    snapshot: &str,
    full_every: u32,
) -> ZfsLink {
    let parent = previous.and_then(|b| {
        let m = b.manifest.as_ref()?;
        let link = m.zfs.as_ref()?;
        let usable = link.dataset == dataset
            && present.contains(&link.snapshot)
            && link.depth + 1 < full_every.max(1);
        usable.then(|| {
            (
                Parent {
                    id: m.id.clone(),
                    sha256: m.sha256.clone(),
                    snapshot: link.snapshot.clone(),
                },
                link.depth + 1,
            )
        })
    });
    let (parent, depth) = match parent {
        Some((p, d)) => (Some(p), d),
        None => (None, 0),
    };
    ZfsLink {
        dataset: dataset.to_string(),
        snapshot: snapshot.to_string(),
        parent,
        depth,
    }
}

/// The newest complete link of `dataset` among `instance`'s backups.
fn newest_link<'a>(backups: &'a [Backup], instance: &str, dataset: &str) -> Option<&'a Backup> {
    backups
        .iter()
        .filter(|b| b.instance == instance)
        .filter(|b| {
            b.manifest
                .as_ref()
                .and_then(|m| m.zfs.as_ref())
                .is_some_and(|l| l.dataset == dataset)
        })
        .max_by(|a, b| (a.created_at(), &a.id).cmp(&(b.created_at(), &b.id)))
}

/// The chain that restores `target`, oldest (the full stream) first.
/// Every parent must be a complete, trusted backup of the same instance,
/// with the SHA-256 and snapshot its child recorded, one link shallower.
pub fn chain<'a>(backups: &'a [Backup], target: &'a Backup) -> Result<Vec<&'a Backup>> {
    let mut out = vec![target];
    let mut cur = target;
    loop {
        let link = cur
            .manifest
            .as_ref()
            .and_then(|m| m.zfs.as_ref())
            .ok_or_else(|| {
                Error::Usage(format!(
                    "backup {} of {} is not a ZFS stream (restore it with `trm-snap import`)",
                    cur.id, cur.instance
                ))
            })?;
        let Some(p) = &link.parent else {
            if link.depth != 0 {
                return Err(broken(
                    target,
                    &cur.id,
                    "says it is incremental but names no parent",
                ));
            }
            break;
        };
        let parent = backups
            .iter()
            .find(|b| b.instance == cur.instance && b.id == p.id)
            .ok_or_else(|| {
                broken(
                    target,
                    &p.id,
                    &format!(
                        "is not in the bucket (backup {} is incremental from it)",
                        cur.id
                    ),
                )
            })?;
        let Some(pm) = parent.manifest.as_ref() else {
            let why = parent
                .refused
                .clone()
                .unwrap_or_else(|| parent.state.clone());
            return Err(broken(target, &p.id, &format!("cannot be used: {why}")));
        };
        let plink = pm.zfs.as_ref();
        let mismatch = if pm.sha256 != p.sha256 {
            Some(format!(
                "has SHA-256 {}, its child {} recorded {}",
                pm.sha256, cur.id, p.sha256
            ))
        } else if plink.map(|l| (&l.snapshot, &l.dataset)) != Some((&p.snapshot, &link.dataset)) {
            Some(format!(
                "is not a stream of {}@{}",
                link.dataset, p.snapshot
            ))
        } else if plink.map(|l| l.depth + 1) != Some(link.depth) {
            Some("is not the link before its child".into())
        } else {
            None
        };
        if let Some(m) = mismatch {
            return Err(broken(target, &p.id, &m));
        }
        out.push(parent);
        cur = parent;
    }
    out.reverse();
    Ok(out)
}

fn broken(target: &Backup, link: &str, why: &str) -> Error {
    Error::Integrity(format!(
        "the chain of backup {} of {} is broken: link {link} {why}; nothing was created",
        target.id, target.instance
    ))
}

/// For retention: every backup a kept one needs to be restored, with the
/// kept backup it is needed by. Walks parents by id within an instance.
pub fn needed_links(
    backups: &[Backup],
    kept: &[(&str, &str)],
) -> BTreeMap<(String, String), String> {
    let parent_of = |inst: &str, id: &str| -> Option<String> {
        let b = backups.iter().find(|b| b.instance == inst && b.id == id)?;
        Some(
            b.manifest
                .as_ref()?
                .zfs
                .as_ref()?
                .parent
                .as_ref()?
                .id
                .clone(),
        )
    };
    let mut out = BTreeMap::new();
    for (inst, id) in kept {
        let mut cur = id.to_string();
        // A chain's depth bounds the walk; the cap guards a planted loop.
        for _ in 0..10_000 {
            let Some(p) = parent_of(inst, &cur) else {
                break;
            };
            out.entry((inst.to_string(), p.clone()))
                .or_insert_with(|| id.to_string());
            cur = p;
        }
    }
    out
}

/// Called by `export::export` (which records the run) for an instance on
/// a ZFS pool when chains are on (`[offsite] zfs_full_every`); reports
/// like an LXD export.
pub fn export(
    s: &S3Settings,
    src: &Source,
    full_every: u32,
    on_busy: OnBusy,
    progress: Arc<dyn ReadProgress>,
) -> Result<Exported> {
    if full_every == 0 {
        return Err(Error::Usage(
            "a full export every 0 links: at least 1".into(),
        ));
    }
    let recipient = s.recipient()?;
    let signer = s.signing_key()?;
    let (part_mib, parallel, plan) = super::export::tuning(s, src.part_size_mib, src.parallel)?;
    let _lock = Lock::acquire(crate::fs::Resource::S3Export, on_busy.timeout())?;
    let client = Arc::new(s.client()?);
    let mut swept = super::export::sweep(&client, s)?;
    let backups = catalog::scan(&client, s, Some(&src.instance), &src.project)?;
    let present = zfs::snapshots(&src.dataset)?;
    let started = Instant::now();
    let id = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    if backups
        .iter()
        .any(|b| b.instance == src.instance && b.id == id)
    {
        return Err(Error::WrongState(format!(
            "backup {id} of {} already exists: one export per second",
            src.instance
        )));
    }
    let snapshot = format!("{SNAPSHOT_PREFIX}{id}");
    let link = next_link(
        newest_link(&backups, &src.instance, &src.dataset),
        &present,
        &src.dataset,
        &snapshot,
        full_every,
    );
    let full = format!("{}@{snapshot}", src.dataset);
    zfs::snapshot(&full)?;
    let job = Job {
        s,
        client: &client,
        instance: &src.instance,
        project: &src.project,
        recipient: &recipient,
        signer: &signer,
        part_mib,
        parallel,
        plan,
        progress: &progress,
    };
    let lxd_export = LxdExport {
        instance_only: true,
        optimized_storage: false,
        storage_driver: "zfs".into(),
    };
    let base = link
        .parent
        .as_ref()
        .map(|p| format!("{}@{}", src.dataset, p.snapshot));
    let sent = job.upload(&id, &snapshot, lxd_export, Some(link.clone()), || {
        zfs::send(&full, base.as_deref())
    });
    let (manifest, data, first_byte, streamed) = match sent {
        Ok(x) => x,
        Err(e) => {
            // The previous base stays: the next tick sends from it.
            let _ = zfs::destroy_snapshot(&full);
            return Err(e);
        }
    };
    let stream_done = Instant::now();
    // Only the newest sent snapshot is a base; older ones of ours go.
    for old in present.iter().filter(|n| n.starts_with(SNAPSHOT_PREFIX)) {
        let name = format!("{}@{old}", src.dataset);
        swept.push(match zfs::destroy_snapshot(&name) {
            Ok(()) => format!("chain base {name}, now superseded"),
            Err(e) => format!("could not destroy the superseded chain base {name}: {e}"),
        });
    }
    let timings = Timings {
        snapshot: (first_byte - started).as_secs_f64(),
        complete: (stream_done - streamed).as_secs_f64(),
        ..Timings::default()
    };
    Ok(Exported::new(
        manifest,
        // Kept on the host as the next link's base, not removed.
        (full, false),
        data,
        swept,
        (started, first_byte, stream_done),
        timings,
    ))
}

#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub instance: String,
    pub backup: String,
    pub dataset: String,
    /// The ZFS snapshot the dataset now holds, the backup's.
    pub snapshot: String,
    /// Backups applied, oldest (the full stream) first.
    pub links: Vec<String>,
    pub seconds: f64,
}

impl Human for Restored {
    fn human(&self) -> String {
        format!(
            "restored backup {} of {} into {}@{} from {} link(s): {} in {:.1}s",
            self.backup,
            self.instance,
            self.dataset,
            self.snapshot,
            self.links.len(),
            self.links.join(" -> "),
            self.seconds
        )
    }
}

#[derive(Debug, Clone)]
pub struct RestoreRequest {
    pub instance: String,
    pub project: String,
    pub at: Option<String>,
    pub identity: Option<PathBuf>,
    /// A dataset that must not exist yet.
    pub dataset: String,
}

/// `POOL/NAME...`: what `zfs` accepts, never an option or a snapshot.
fn validate_dataset(name: &str) -> Result<()> {
    let ok = name.contains('/')
        && !name.starts_with(['-', '/'])
        && !name.ends_with('/')
        && !name.contains("//")
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-.:/".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "'{name}' is not a dataset name (POOL/NAME, letters, digits and _-.:)"
        )))
    }
}

/// Download one link (size and SHA-256 checked), decrypt and decompress
/// it into `zfs receive -u`; the receive's own error wins over the
/// broken pipe it causes.
fn receive_link(
    client: &super::s3::Client,
    b: &Backup,
    ids: &[age::x25519::Identity],
    dataset: &str,
) -> Result<()> {
    let m = b.manifest.as_ref().expect("chain links are complete");
    let mut file = download(client, &data_key(&b.dir), m)?;
    let mut stream = plaintext(&mut file, ids, m.tarball_size)?;
    let mut child = zfs::receive(dataset)?;
    let mut stdin = child.child.stdin.take().expect("stdin is piped");
    let copied = io::copy(&mut stream, &mut stdin);
    drop(stdin);
    match copied {
        Ok(_) => child.finish(),
        Err(e) => {
            let received = child.finish();
            received?;
            Err(Error::Integrity(format!(
                "backup {} of {}: decrypting or decompressing: {e}",
                m.id, m.instance
            )))
        }
    }
}

pub fn restore(s: &S3Settings, req: &RestoreRequest) -> Result<Restored> {
    validate_dataset(&req.dataset)?;
    if zfs::exists(&req.dataset)? {
        return Err(Error::Usage(format!(
            "dataset {} already exists; choose another with --to-dataset",
            req.dataset
        )));
    }
    let identity = s.identity(req.identity.as_deref())?;
    let ids = read_identities(&identity)?;
    let started = Instant::now();
    let client = s.client()?;
    let backups = catalog::scan(&client, s, Some(&req.instance), &req.project)?;
    let target = catalog::select(&backups, &req.instance, req.at.as_deref())?;
    let links = chain(&backups, target)?;
    for b in &links {
        check_key(
            b.manifest.as_ref().expect("chain links are complete"),
            &ids,
            &identity,
        )?;
    }
    let snapshot = target
        .manifest
        .as_ref()
        .and_then(|m| m.zfs.as_ref())
        .map(|l| l.snapshot.clone())
        .unwrap_or_default();
    // Set once the first link made the dataset: only then is it ours to
    // destroy on failure.
    let mut created = false;
    let whole = links
        .iter()
        .try_for_each(|b| {
            receive_link(&client, b, &ids, &req.dataset)?;
            if !created {
                created = true;
                // What a container wrote is never run or trusted as a
                // device or setuid file on the host, and never mounted by
                // itself (`receive -u` kept it unmounted so far).
                zfs::set(
                    &req.dataset,
                    &["canmount=noauto", "setuid=off", "devices=off", "exec=off"],
                )?;
            }
            Ok(())
        })
        .and_then(|()| {
            if zfs::snapshots(&req.dataset)?.contains(&snapshot) {
                Ok(())
            } else {
                Err(Error::Integrity(format!(
                    "the chain was received but {}@{snapshot} is not there",
                    req.dataset
                )))
            }
        });
    if let Err(e) = whole {
        // Nothing half-restored stays behind, or the error says it did.
        if created {
            if let Err(d) = zfs::destroy_dataset(&req.dataset) {
                return Err(Error::WrongState(format!(
                    "{e}; and {} could not be destroyed, destroy it by hand: {d}",
                    req.dataset
                )));
            }
        }
        return Err(e);
    }
    Ok(Restored {
        instance: req.instance.clone(),
        backup: target.id.clone(),
        dataset: req.dataset.clone(),
        snapshot,
        links: links.iter().map(|b| b.id.clone()).collect(),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A complete backup of `c1` that is a chain link (its SHA-256 is
    /// `sha-<id>`, as its child records).
    pub fn link(id: &str, parent: Option<&str>, depth: u32) -> Backup {
        let mut m = crate::offsite::manifest::tests::sample("c1", id);
        m.sha256 = format!("sha-{id}");
        m.zfs = Some(ZfsLink {
            dataset: "p/c1".into(),
            snapshot: format!("{SNAPSHOT_PREFIX}{id}"),
            parent: parent.map(|p| Parent {
                id: p.into(),
                sha256: format!("sha-{p}"),
                snapshot: format!("{SNAPSHOT_PREFIX}{p}"),
            }),
            depth,
        });
        Backup {
            instance: "c1".into(),
            id: id.into(),
            state: "complete".into(),
            created: m.created.clone(),
            snapshot: String::new(),
            size: 1,
            sha256: m.sha256.clone(),
            dir: String::new(),
            refused: None,
            manifest: Some(m),
            listed_size: Some(1),
        }
    }

    fn three() -> Vec<Backup> {
        vec![
            link("A", None, 0),
            link("B", Some("A"), 1),
            link("C", Some("B"), 2),
        ]
    }

    #[test]
    fn a_chain_is_walked_back_to_its_full_stream() {
        let bs = three();
        let ids: Vec<&str> = chain(&bs, &bs[2])
            .unwrap()
            .iter()
            .map(|b| b.id.as_str())
            .collect();
        assert_eq!(ids, ["A", "B", "C"]);
    }

    #[test]
    fn a_missing_refused_or_swapped_link_breaks_the_chain() {
        let mut bs = three();
        bs.remove(1);
        let e = chain(&bs, &bs[1]).unwrap_err().to_string();
        assert!(
            e.contains("link B is not in the bucket") && e.contains("nothing was created"),
            "{e}"
        );

        let mut bs = three();
        bs[1].manifest = None;
        bs[1].refused = Some("its manifest is not signed".into());
        let e = chain(&bs, &bs[2]).unwrap_err().to_string();
        assert!(e.contains("not signed"), "{e}");

        // Another stream put in B's place: its hash is not what C recorded.
        let mut bs = three();
        bs[1].manifest.as_mut().unwrap().sha256 = "sha-other".into();
        let e = chain(&bs, &bs[2]).unwrap_err().to_string();
        assert!(e.contains("recorded sha-B"), "{e}");

        // A parent claiming to be deeper than it is cannot make a loop.
        let mut bs = three();
        bs[0].manifest.as_mut().unwrap().zfs.as_mut().unwrap().depth = 5;
        assert!(chain(&bs, &bs[2]).is_err());
    }

    #[test]
    fn the_next_link_is_incremental_while_its_base_is_here_and_the_chain_short() {
        let bs = three();
        let here = vec![format!("{SNAPSHOT_PREFIX}C")];
        let l = next_link(Some(&bs[2]), &here, "p/c1", "new", 7);
        assert_eq!(
            (l.parent.as_ref().map(|p| p.id.as_str()), l.depth),
            (Some("C"), 3)
        );
        assert_eq!(l.parent.unwrap().sha256, "sha-C");
        // A full one every 3: C is link 2, so the next starts over.
        assert!(next_link(Some(&bs[2]), &here, "p/c1", "new", 3)
            .parent
            .is_none());
        // Its base snapshot is gone from the host.
        assert!(next_link(Some(&bs[2]), &[], "p/c1", "new", 7)
            .parent
            .is_none());
        // Another dataset (the instance was recreated elsewhere).
        assert!(next_link(Some(&bs[2]), &here, "q/c1", "new", 7)
            .parent
            .is_none());
        assert_eq!(next_link(None, &here, "p/c1", "new", 7).depth, 0);
    }

    #[test]
    fn retention_keeps_every_link_a_kept_backup_needs() {
        let bs = three();
        let needed = needed_links(&bs, &[("c1", "C")]);
        assert_eq!(needed.len(), 2);
        assert_eq!(needed[&("c1".to_string(), "A".to_string())], "C");
        assert!(needed_links(&bs, &[("c1", "A")]).is_empty());
    }

    #[test]
    fn dataset_names_are_checked() {
        for ok in ["pool/restored", "tank/lxd/c1-2026"] {
            assert!(validate_dataset(ok).is_ok(), "{ok}");
        }
        for bad in ["pool", "-o/x", "pool/x@s", "pool//x", "/pool/x", "pool/x y"] {
            assert!(validate_dataset(bad).is_err(), "{bad}");
        }
    }
}
