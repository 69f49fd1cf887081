//! `trm-snap import` and `verify`: download, check size and SHA-256
//! before anything is created, decrypt, decompress, `lxc import` as a
//! new stopped instance without the original's exposure.
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
use super::S3Settings;
use crate::error::{Error, Result};
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::output::Human;
use crate::s3::Client;
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
    pub seconds: f64,
}

impl Human for Imported {
    fn human(&self) -> String {
        format!(
            "imported {} from backup {} of {} ({}, made {}), stopped\n  sha256 checked: {}\n  removed: {}",
            self.instance,
            self.backup,
            self.from,
            indicatif::HumanBytes(self.size),
            self.created,
            self.sha256,
            if self.stripped.is_empty() { "nothing".into() } else { self.stripped.join(", ") }
        )
    }
}

pub fn import(lxd: &Lxd, s: &S3Settings, req: &Request) -> Result<Imported> {
    validate_instance_name(&req.name)?;
    validate_instance_name(&req.new)?;
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
    let backups = catalog::scan(&client, s, Some(&req.name))?;
    let backup = catalog::select(&backups, &req.name, req.at.as_deref())?;
    let m = backup
        .manifest
        .as_ref()
        .expect("selected backups are complete");
    check_key(m, &identities, &identity)?;
    let mut file = download(&client, m)?;
    restore(lxd, &mut file, &identities, &req.new, req.pool.as_deref())?;
    let stripped = snapshots::strip_identity(lxd, &req.new).and_then(|st| {
        lxd.set_config(&req.new, ORIGIN_KEY, &format!("{}/{}", m.instance, m.id))?;
        Ok(st)
    });
    let stripped = match stripped {
        Ok(st) => st,
        Err(e) => {
            // Never leave an instance that could take the original's traffic.
            let _ = lxd.delete(&req.new, true);
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
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The identity must match the recipient the backup was encrypted to:
/// said before anything is downloaded.
fn check_key(m: &Manifest, ids: &[age::x25519::Identity], file: &Path) -> Result<()> {
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

/// Download to a temporary file, checking size and SHA-256 as it comes.
fn download(client: &Client, m: &Manifest) -> Result<std::fs::File> {
    let mut file = tempfile::tempfile().map_err(|e| Error::io("creating a temporary file", e))?;
    let mut hasher = Sha256::new();
    let mut reader = client.get(&m.objects.data)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut size: u64 = 0;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(Error::Remote(format!(
                    "downloading {}: {e}",
                    m.objects.data
                )))
            }
        };
        hasher.update(&buf[..n]);
        size += n as u64;
        file.write_all(&buf[..n])
            .map_err(|e| Error::io("writing the temporary download", e))?;
    }
    let digest = format!("{:x}", hasher.finalize());
    if size != m.size {
        return Err(Error::Integrity(format!(
            "backup {} of {} is truncated or padded: {} holds {size} bytes, the manifest says {}; nothing was created",
            m.id, m.instance, m.objects.data, m.size
        )));
    }
    if digest != m.sha256 {
        return Err(Error::Integrity(format!(
            "backup {} of {} is corrupted: SHA-256 of {} is {digest}, the manifest says {}; nothing was created",
            m.id, m.instance, m.objects.data, m.sha256
        )));
    }
    file.rewind()
        .map_err(|e| Error::io("rewinding the download", e))?;
    Ok(file)
}

/// Decrypt and decompress into `lxc import`; on any failure the new
/// instance, if LXD got as far as creating it, is removed.
fn restore(
    lxd: &Lxd,
    file: &mut std::fs::File,
    ids: &[age::x25519::Identity],
    new: &str,
    pool: Option<&str>,
) -> Result<()> {
    let decryptor = age::Decryptor::new_buffered(io::BufReader::new(file))
        .map_err(|e| Error::Integrity(format!("not an age file: {e}")))?;
    let plain = decryptor
        .decrypt(ids.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| Error::Integrity(format!("cannot decrypt the backup: {e}")))?;
    let mut tar = zstd::Decoder::new(plain).map_err(|e| Error::Integrity(format!("zstd: {e}")))?;
    let mut child = lxd.import_stream(new, pool)?;
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

#[derive(Debug, Clone, Serialize)]
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
) -> Result<Verified> {
    let tmp = format!("trm-verify-{}", crate::random::hex(4)?);
    let req = Request {
        name: name.to_string(),
        new: tmp.clone(),
        at: at.map(String::from),
        identity: identity.map(Path::to_path_buf),
        pool: pool.map(String::from),
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
    checks.insert(1, "decrypted and decompressed; LXD imported it".into());
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
        seconds: started.elapsed().as_secs_f64(),
        ok,
    })
}

fn inspect(lxd: &Lxd, name: &str) -> Result<(usize, Vec<String>)> {
    let i = lxd.instance(name)?;
    let mut checks = vec![format!("{name} exists, {}", i.status.to_lowercase())];
    let root: Vec<String> = lxd.query(&format!("/1.0/instances/{name}/files?path=/"))?;
    checks.push(format!(
        "root filesystem has {} top-level entries ({})",
        root.len(),
        root.iter().take(6).cloned().collect::<Vec<_>>().join(" ")
    ));
    Ok((root.len(), checks))
}

/// The backups `s3 list` shows.
pub fn list(s: &S3Settings, name: Option<&str>, all: bool) -> Result<Vec<Backup>> {
    if let Some(n) = name {
        validate_instance_name(n)?;
    }
    let client = s.client()?;
    let mut b = catalog::scan(&client, s, name)?;
    if !all {
        b.retain(Backup::is_complete);
    }
    Ok(b)
}
