//! `trm-snap import` and `verify`: pick a backup whose manifest this
//! host signed, download it (never more than its size), check size and
//! SHA-256 before anything is created, decrypt, decompress (never more
//! than the recorded tarball), `lxc import` as a new stopped instance,
//! then apply Terrarium's policy to what LXD created (`policy`) and take
//! the original's exposure away. The instance is never started here.
//!
//! Disk: the encrypted object is downloaded to a temporary file (under
//! $TMPDIR, default /tmp) so it is checked whole before LXD sees a byte;
//! it is deleted when the import ends.

use std::io::{self, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::catalog::{self, Backup};
use super::manifest::Manifest;
use super::settings::read_identities;
use super::{data_key, S3Settings};
use crate::error::{Error, Result};
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::offsite::s3::Client;
use crate::output::Human;
use crate::policy::{self, Removal};
use crate::snapshots;

/// Where an imported instance came from (instance config key).
pub const ORIGIN_KEY: &str = "user.terrarium.imported-from";

#[derive(Debug, Clone)]
pub struct Request {
    pub name: String,
    pub new: String,
    pub at: Option<String>,
    /// [default: the identity file in s3.toml]
    pub identity: Option<PathBuf>,
    /// The storage pool for the new instance.
    pub pool: Option<String>,
    /// The host's Terrarium bridge: the only network a restored NIC keeps.
    pub bridge: String,
    /// The cluster member to restore onto (LXD's choice if unset).
    pub target: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Imported {
    pub instance: String,
    pub from: String,
    pub backup: String,
    pub created: String,
    pub size: u64,
    pub sha256: String,
    pub stripped: Vec<String>,
    /// What Terrarium's policy removed from the restored config and devices.
    pub removed_by_policy: Vec<Removal>,
    /// Backups of this instance that were not considered, and why
    /// (unsigned, signed by another key, not matching their folder...).
    pub refused: Vec<String>,
    pub seconds: f64,
}

impl Human for Imported {
    fn human(&self) -> String {
        format!(
            "imported {} from backup {} of {} ({}, made {}), stopped\n  sha256 checked: {}\n  removed: {}{}{}",
            self.instance,
            self.backup,
            self.from,
            indicatif::HumanBytes(self.size),
            self.created,
            self.sha256,
            if self.stripped.is_empty() { "nothing".into() } else { self.stripped.join(", ") },
            self.removed_by_policy
                .iter()
                .map(|r| format!("\n  removed by policy: {}", r.describe()))
                .collect::<String>(),
            self.refused
                .iter()
                .map(|r| format!("\n  refused backup {r}"))
                .collect::<String>(),
        )
    }
}

pub fn import(lxd: &Lxd, s: &S3Settings, req: &Request) -> Result<Imported> {
    validate_instance_name(&req.name)?;
    validate_instance_name(&req.new)?;
    crate::cluster::plan::check_target(lxd, req.target.as_deref())?;
    if lxd.instance(&req.new).is_ok() {
        return Err(Error::Usage(format!(
            "instance '{}' already exists; choose another name with --as",
            req.new
        )));
    }
    let identity = s.identity(req.identity.as_deref())?;
    let identities = read_identities(&identity)?;
    let started = Instant::now();
    let client = s.client()?;
    let backups = catalog::scan(&client, s, Some(&req.name), lxd.project())?;
    let backup = catalog::select(&backups, &req.name, req.at.as_deref())?;
    let m = backup
        .manifest
        .as_ref()
        .expect("selected backups are complete");
    if m.zfs.is_some() {
        return Err(Error::Usage(format!(
            "backup {} of {} is a link of a ZFS stream chain, not an LXD export: restore it \
             onto a dataset with `trm-snap import {} --to-dataset POOL/NAME`; nothing was created",
            m.id, m.instance, m.instance
        )));
    }
    check_key(m, &identities, &identity)?;
    let mut file = download(&client, &data_key(&backup.dir), m)?;
    restore(
        lxd,
        &mut file,
        &identities,
        m.tarball_size,
        &req.new,
        req.pool.as_deref(),
        req.target.as_deref(),
    )?;
    let confined = confine(lxd, &req.new, &req.bridge).and_then(|removed| {
        let st = snapshots::strip_identity(lxd, &req.new)?;
        lxd.set_config(&req.new, ORIGIN_KEY, &format!("{}/{}", m.instance, m.id))?;
        Ok((removed, st))
    });
    let (removed_by_policy, stripped) = match confined {
        Ok(x) => x,
        Err(e) => {
            // Never leave an instance that could take the original's
            // traffic, or that kept what the policy refuses.
            let _ = lxd.delete(&req.new, true);
            let _ = crate::agents::sandbox::teardown(lxd, &req.new);
            return Err(e);
        }
    };
    Ok(Imported {
        instance: req.new.clone(),
        from: m.instance.clone(),
        backup: m.id.clone(),
        created: m.created.clone(),
        size: m.size,
        sha256: m.sha256.clone(),
        stripped,
        removed_by_policy,
        refused: catalog::refused(&backups, &req.name),
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Apply the policy to what LXD created from the backup: remove what it
/// plans, drop any snapshots (Terrarium exports carry none, and a
/// snapshot's config would come back on rollback), then read again: the
/// instance's own config must now pass, and so must what it runs with,
/// its profiles included (a backup names its profiles, and an existing
/// profile with a host disk or privileged mode would otherwise come along
/// whole); else the import fails and the caller deletes the instance.
fn confine(lxd: &Lxd, new: &str, bridge: &str) -> Result<Vec<Removal>> {
    let i = lxd.instance_full(new)?;
    let plan = policy::import_plan(&i.config, &i.devices, bridge);
    for r in &plan {
        match (r.kind, &r.key) {
            ("device", _) => lxd.remove_device(new, &r.name)?,
            (_, Some(key)) => lxd.unset_device_key(new, &r.name, key)?,
            _ => lxd.unset_config(new, &r.name)?,
        }
    }
    let mut removed = plan;
    for snap in i.snapshots.iter().flatten() {
        lxd.delete_snapshot(new, &snap.name)?;
        removed.push(Removal {
            kind: "snapshot",
            name: snap.name.clone(),
            key: None,
            value: String::new(),
            why: "backups made by Terrarium carry no snapshots, and a snapshot's config returns on rollback".into(),
        });
    }
    let again = lxd.instance_full(new)?;
    let left = policy::import_plan(&again.config, &again.devices, bridge);
    if !left.is_empty() || again.snapshots.iter().flatten().next().is_some() {
        return Err(Error::Integrity(format!(
            "the restored instance still carries what Terrarium's policy refuses ({}); it was deleted",
            left.iter().map(Removal::describe).collect::<Vec<_>>().join("; ")
        )));
    }
    let mut profiles = Vec::new();
    for name in &again.profiles {
        profiles.extend(lxd.profile(name)?);
    }
    let found = policy::import_findings(
        &again.config,
        &again.devices,
        &again.expanded_config,
        &again.expanded_devices,
        &profiles,
    );
    if !found.is_empty() {
        return Err(Error::Integrity(format!(
            "the restored instance would run with what Terrarium's policy refuses: {}; \
             it was deleted (give it profiles without these, then import again)",
            found.join("; ")
        )));
    }
    Ok(removed)
}

/// The identity must match the recipient the backup was encrypted to:
/// said before anything is downloaded.
pub(super) fn check_key(m: &Manifest, ids: &[age::x25519::Identity], file: &Path) -> Result<()> {
    if ids
        .iter()
        .any(|i| i.to_public().to_string() == m.encryption.recipient)
    {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "wrong key: {} holds no identity for {} (backup {} was encrypted to it); nothing was created",
        file.display(),
        m.encryption.recipient,
        m.id
    )))
}

/// Download to a temporary file, checking size and SHA-256 as it comes;
/// a byte past the manifest's size stops the download.
pub(super) fn download(client: &Client, key: &str, m: &Manifest) -> Result<std::fs::File> {
    let mut file = tempfile::tempfile().map_err(|e| Error::io("creating a temporary file", e))?;
    let reader = client.get(key)?;
    let (size, digest) = copy_hashed(reader, &mut file, m.size)
        .map_err(|e| Error::Remote(format!("downloading {key}: {e}")))?;
    if size != m.size {
        return Err(Error::Integrity(format!(
            "backup {} of {} is truncated or padded: {key} holds {}{size} bytes, the manifest says {}; nothing was created",
            m.id,
            m.instance,
            if size > m.size { "more than " } else { "" },
            m.size
        )));
    }
    if digest != m.sha256 {
        return Err(Error::Integrity(format!(
            "backup {} of {} is corrupted: SHA-256 of {key} is {digest}, the manifest says {}; nothing was created",
            m.id, m.instance, m.sha256
        )));
    }
    file.rewind()
        .map_err(|e| Error::io("rewinding the download", e))?;
    Ok(file)
}

/// Copy at most `limit + 1` bytes (one more tells "padded" from "exact"),
/// hashing them. Returns the bytes copied and the SHA-256.
fn copy_hashed(reader: impl Read, out: &mut impl Write, limit: u64) -> io::Result<(u64, String)> {
    let mut reader = reader.take(limit.saturating_add(1));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        out.write_all(&buf[..n])?;
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}

/// A reader that fails once more than `limit` bytes came through, and
/// at the end when fewer did: the decompressed tarball must be exactly
/// the size the manifest recorded.
struct Bounded<R> {
    inner: R,
    limit: u64,
    seen: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let room = self.limit.saturating_sub(self.seen).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.seen += n as u64;
        if self.seen > self.limit {
            return Err(io::Error::other(format!(
                "the backup decompresses to more than the {} bytes its manifest records",
                self.limit
            )));
        }
        if n == 0 && want > 0 && self.seen != self.limit {
            return Err(io::Error::other(format!(
                "the backup decompresses to {} bytes, its manifest records {}",
                self.seen, self.limit
            )));
        }
        Ok(n)
    }
}

/// A checked download, decrypted and decompressed: never more, and
/// never fewer, bytes than the manifest records.
pub(super) fn plaintext<'f>(
    file: &'f mut std::fs::File,
    ids: &[age::x25519::Identity],
    size: u64,
) -> Result<impl Read + 'f> {
    let decryptor = age::Decryptor::new_buffered(io::BufReader::new(file))
        .map_err(|e| Error::Integrity(format!("not an age file: {e}")))?;
    let plain = decryptor
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| Error::Integrity(format!("cannot decrypt the backup: {e}")))?;
    let inner = zstd::Decoder::new(plain).map_err(|e| Error::Integrity(format!("zstd: {e}")))?;
    Ok(Bounded {
        inner,
        limit: size,
        seen: 0,
    })
}

/// Decrypt and decompress into `lxc import`; on any failure the new
/// instance, if LXD got as far as creating it, is removed.
fn restore(
    lxd: &Lxd,
    file: &mut std::fs::File,
    ids: &[age::x25519::Identity],
    tarball_size: u64,
    new: &str,
    pool: Option<&str>,
    member: Option<&str>,
) -> Result<()> {
    let mut tar = plaintext(file, ids, tarball_size)?;
    let mut child = lxd.import_stream(new, pool, member)?;
    let mut stdin = child.child.stdin.take().expect("stdin is piped");
    let copied = io::copy(&mut tar, &mut stdin);
    drop(stdin);
    let result = match copied {
        Ok(_) => child.finish(),
        Err(e) => {
            child.kill();
            Err(Error::Integrity(format!(
                "decrypting or decompressing the backup: {e}"
            )))
        }
    };
    if result.is_err() && lxd.instance(new).is_ok() {
        let _ = lxd.delete(new, true);
    }
    result
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
    pub instance: String,
    pub backup: String,
    pub created: String,
    pub size: u64,
    pub sha256: String,
    /// The throwaway instance it was restored into (deleted).
    pub restored_as: String,
    /// Entries in the restored root filesystem's top directory.
    pub root_entries: usize,
    pub checks: Vec<String>,
    /// Backups of this instance that were not considered, and why.
    pub refused: Vec<String>,
    pub seconds: f64,
    pub ok: bool,
}

impl Human for Verified {
    fn human(&self) -> String {
        format!(
            "{}: backup {} of {} ({}), restore drill {} in {:.1}s\n  {}",
            if self.ok { "ok" } else { "FAILED" },
            self.backup,
            self.instance,
            indicatif::HumanBytes(self.size),
            if self.ok { "passed" } else { "failed" },
            self.seconds,
            self.checks.join("\n  ")
        )
    }
}

/// A restore drill: import into a throwaway instance, look inside, delete it.
pub fn verify(
    lxd: &Lxd,
    s: &S3Settings,
    name: &str,
    at: Option<&str>,
    identity: Option<&Path>,
    pool: Option<&str>,
    bridge: &str,
) -> Result<Verified> {
    let client = s.client()?;
    let backups = catalog::scan(&client, s, Some(name), lxd.project())?;
    let chosen = catalog::select(&backups, name, at)?;
    if chosen.manifest.as_ref().is_some_and(|m| m.zfs.is_some()) {
        return verify_chain(&client, s, &backups, chosen, identity);
    }
    let tmp = format!("trm-verify-{}", crate::random::hex(4)?);
    let req = Request {
        name: name.to_string(),
        new: tmp.clone(),
        at: at.map(String::from),
        identity: identity.map(Path::to_path_buf),
        pool: pool.map(String::from),
        bridge: bridge.to_string(),
        target: None,
    };
    let started = Instant::now();
    let imported = import(lxd, s, &req)?;
    let inspected = inspect(lxd, &tmp);
    let deleted = lxd.delete(&tmp, true);
    let (entries, mut checks) = inspected?;
    deleted?;
    checks.insert(
        0,
        format!(
            "downloaded {} and checked its SHA-256",
            indicatif::HumanBytes(imported.size)
        ),
    );
    checks.insert(
        1,
        "its manifest is signed by this host's key; decrypted and decompressed; LXD imported it"
            .into(),
    );
    for r in &imported.removed_by_policy {
        checks.push(format!("removed by policy: {}", r.describe()));
    }
    for r in &imported.refused {
        checks.push(format!("refused backup {r}"));
    }
    checks.push(format!("deleted {tmp}"));
    let ok = entries > 0;
    Ok(Verified {
        instance: name.to_string(),
        backup: imported.backup,
        created: imported.created,
        size: imported.size,
        sha256: imported.sha256,
        restored_as: tmp,
        root_entries: entries,
        checks,
        refused: imported.refused,
        seconds: started.elapsed().as_secs_f64(),
        ok,
    })
}

/// Restore drills of every instance with a backup in the bucket (this
/// project's), one after the other; one failing never stops the others.
/// A ZFS chain is drilled link by link: downloaded, SHA-256 checked,
/// decrypted and decompressed to its recorded size (there is no dataset
/// to receive it into). Recorded as the `verify` run, for `trm status`.
pub fn verify_all(
    lxd: &Lxd,
    s: &S3Settings,
    identity: Option<&Path>,
    pool: Option<&str>,
    bridge: &str,
) -> Result<Vec<Verified>> {
    crate::runs::recorded(
        lxd.project(),
        crate::runs::Job::Verify,
        || {
            let client = s.client()?;
            let backups = catalog::scan(&client, s, None, lxd.project())?;
            let names = drilled(&backups);
            Ok(names
                .into_iter()
                .map(|name| {
                    let started = Instant::now();
                    verify(lxd, s, name, None, identity, pool, bridge).unwrap_or_else(|e| {
                        Verified {
                            instance: name.to_string(),
                            checks: vec![e.to_string()],
                            seconds: started.elapsed().as_secs_f64(),
                            ok: false,
                            ..Verified::default()
                        }
                    })
                })
                .collect())
        },
        |drills: &Vec<Verified>| {
            drills
                .iter()
                .filter(|d| !d.ok)
                .map(|d| {
                    format!(
                        "{}: restore drill failed: {}",
                        d.instance,
                        d.checks.last().map(String::as_str).unwrap_or("")
                    )
                })
                .collect()
        },
    )
}

/// The instances a drill covers: each with a complete backup, once,
/// whatever order the catalog lists them in.
fn drilled(backups: &[Backup]) -> std::collections::BTreeSet<&str> {
    backups
        .iter()
        .filter(|b| b.is_complete())
        .map(|b| b.instance.as_str())
        .collect()
}

fn verify_chain(
    client: &Client,
    s: &S3Settings,
    backups: &[Backup],
    target: &Backup,
    identity: Option<&Path>,
) -> Result<Verified> {
    let started = Instant::now();
    let file = s.identity(identity)?;
    let ids = read_identities(&file)?;
    let links = super::zfs_chain::chain(backups, target)?;
    let mut checks = Vec::new();
    for b in &links {
        let m = b.manifest.as_ref().expect("chain links are complete");
        check_key(m, &ids, &file)?;
        let mut f = download(client, &data_key(&b.dir), m)?;
        let n = io::copy(
            &mut plaintext(&mut f, &ids, m.tarball_size)?,
            &mut io::sink(),
        )
        .map_err(|e| Error::Integrity(format!("backup {}: {e}", m.id)))?;
        checks.push(format!(
            "link {}: {} checked (SHA-256), decrypted, {} decompressed",
            m.id,
            indicatif::HumanBytes(m.size),
            indicatif::HumanBytes(n)
        ));
    }
    let m = target.manifest.as_ref().expect("complete");
    checks.push(format!(
        "the whole chain of {} link(s) is in the bucket and sound; not received (no dataset to receive into)",
        links.len()
    ));
    Ok(Verified {
        instance: target.instance.clone(),
        backup: m.id.clone(),
        created: m.created.clone(),
        size: links
            .iter()
            .filter_map(|b| Some(b.manifest.as_ref()?.size))
            .sum(),
        sha256: m.sha256.clone(),
        checks,
        refused: catalog::refused(backups, &target.instance),
        seconds: started.elapsed().as_secs_f64(),
        ok: true,
        ..Verified::default()
    })
}

impl crate::output::Row for Verified {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "BACKUP", "DRILL", "SECONDS", "LAST CHECK"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.instance.clone(),
            self.backup.clone(),
            if self.ok { "passed" } else { "FAILED" }.into(),
            format!("{:.1}", self.seconds),
            self.checks.last().cloned().unwrap_or_default(),
        ]
    }
}

fn inspect(lxd: &Lxd, name: &str) -> Result<(usize, Vec<String>)> {
    let i = lxd.instance(name)?;
    let mut checks = vec![format!("{name} exists, {}", i.status.to_lowercase())];
    let root = lxd.list_dir(name, "/")?;
    checks.push(format!(
        "root filesystem has {} top-level entries ({})",
        root.len(),
        root.iter().take(6).cloned().collect::<Vec<_>>().join(" ")
    ));
    Ok((root.len(), checks))
}

/// The backups `s3 list` shows (another project's as refused, with --all).
pub fn list(s: &S3Settings, name: Option<&str>, all: bool, project: &str) -> Result<Vec<Backup>> {
    if let Some(n) = name {
        validate_instance_name(n)?;
    }
    let client = s.client()?;
    let mut b = catalog::scan(&client, s, name, project)?;
    if !all {
        b.retain(Backup::is_complete);
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what was read from it, to show a download stops early.
    struct Endless {
        served: u64,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            buf.fill(7);
            self.served += buf.len() as u64;
            Ok(buf.len())
        }
    }

    #[test]
    fn a_download_stops_one_byte_past_the_manifest_size() {
        let mut src = Endless { served: 0 };
        let mut out = Vec::new();
        let (n, _) = copy_hashed(&mut src, &mut out, 1000).unwrap();
        assert_eq!(n, 1001, "one byte more says padded");
        assert_eq!(out.len(), 1001);
        assert!(src.served <= 1 << 20, "read {} bytes", src.served);
        let (n, digest) = copy_hashed(&b"abc"[..], &mut Vec::new(), 1000).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            digest,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn decompression_is_bounded_by_the_recorded_tarball_size() {
        let read_all = |data: &[u8], limit: u64| {
            let mut b = Bounded {
                inner: data,
                limit,
                seen: 0,
            };
            let mut out = Vec::new();
            b.read_to_end(&mut out).map(|_| out.len())
        };
        assert_eq!(read_all(&[1; 5000], 5000).unwrap(), 5000);
        let e = read_all(&[1; 5001], 5000).unwrap_err();
        assert!(e.to_string().contains("more than the 5000 bytes"), "{e}");
        let e = read_all(&[1; 10], 5000).unwrap_err();
        assert!(
            e.to_string()
                .contains("10 bytes, its manifest records 5000"),
            "{e}"
        );
        // A bomb is cut off after the limit, not read to its end.
        let mut bomb = Bounded {
            inner: Endless { served: 0 },
            limit: 4096,
            seen: 0,
        };
        assert!(io::copy(&mut bomb, &mut io::sink()).is_err());
        assert!(
            bomb.inner.served <= 4097 + (1 << 16),
            "{}",
            bomb.inner.served
        );
    }

    #[test]
    fn a_drill_covers_each_instance_once_whatever_the_order() {
        let b = |inst: &str, id: &str, complete: bool| {
            let mut x = crate::offsite::zfs_chain::tests::link(id, None, 0);
            x.instance = inst.into();
            if !complete {
                x.manifest = None;
            }
            x
        };
        let backups = vec![
            b("a", "1", true),
            b("b", "2", true),
            b("a", "3", true),
            b("b", "4", true),
            b("c", "5", false),
        ];
        assert_eq!(
            drilled(&backups).into_iter().collect::<Vec<_>>(),
            ["a", "b"]
        );
    }
}
