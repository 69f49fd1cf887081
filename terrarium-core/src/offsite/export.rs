//! `trm-snap export`: snapshot -> LXD export -> zstd -> age -> S3
//! multipart upload -> manifest, streamed end to end.
//!
//! Disk: LXD builds the backup tarball in its own backups directory
//! before it streams it (LXD's behaviour, cleaned up by LXD); the
//! snapshot is copied to a temporary stopped instance (a copy-on-write
//! clone on btrfs and ZFS, a full copy on `dir`), which is deleted
//! afterwards. Terrarium itself writes nothing to disk.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;

use super::manifest::{Encryption, LxdExport, Manifest, Marker, Objects, ZfsLink, FORMAT_VERSION};
use super::settings::fingerprint;
use super::upload::{MultipartWriter, Progress};
use super::{
    backup_dir, catalog, data_key, hostname, manifest_key, signing, S3Settings, MANIFEST_NAME,
    MARKER_NAME,
};
use crate::error::{Error, Result};
use crate::fs::{Lock, OnBusy};
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::offsite::s3::Client;
use crate::output::Human;
use crate::snapshots;

const MIB: u64 = 1024 * 1024;
/// Markers from other hosts are swept only when this old: they may
/// belong to an export still running there.
const FOREIGN_MARKER_AGE_HOURS: i64 = 24;

#[derive(Debug, Clone, Default)]
pub struct Request {
    pub name: String,
    pub snapshot: Option<String>,
    pub optimized: bool,
    pub part_size_mib: Option<u32>,
    pub parallel: Option<u32>,
    pub on_busy: OnBusy,
    /// On a ZFS pool, send incremental streams with a full one every N
    /// (`[offsite] zfs_full_every`); 0 exports through LXD.
    pub zfs_full_every: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub instance: String,
    pub id: String,
    pub snapshot: String,
    /// The snapshot was taken for this export (and removed after it).
    pub fresh_snapshot: bool,
    pub tarball_size: u64,
    pub size: u64,
    pub sha256: String,
    pub parts: u32,
    pub part_size: u64,
    pub seconds: f64,
    pub mib_per_second: f64,
    pub manifest: String,
    pub data: String,
    /// Leftovers of crashed exports removed first.
    pub swept: Vec<String>,
    pub timings: Timings,
    /// The chain link, for a `zfs send` export.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zfs: Option<ZfsLink>,
}

/// Where the time went, in seconds: Terrarium's own pipeline is `stream`
/// (first byte from LXD to manifest written); the rest is LXD's work.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub snapshot: f64,
    pub copy: f64,
    /// LXD building its backup tarball before the first byte arrives.
    pub lxd_prepare: f64,
    pub stream: f64,
    /// Uploaded MiB per second of `stream`.
    pub stream_mib_per_second: f64,
    /// Part of `stream`: the server assembling the parts and the manifest
    /// written, after the last byte was sent (AWS assembles in place;
    /// s3s-fs copies every part).
    pub complete: f64,
}

impl Human for Exported {
    fn human(&self) -> String {
        let mut s = format!(
            "exported {} (snapshot {}) as backup {}\n  {} tarball -> {} uploaded in {} part(s) in {:.1}s ({:.1} MiB/s)\n  sha256 {}\n  manifest {}",
            self.instance,
            self.snapshot,
            self.id,
            indicatif::HumanBytes(self.tarball_size),
            indicatif::HumanBytes(self.size),
            self.parts,
            self.seconds,
            self.mib_per_second,
            self.sha256,
            self.manifest,
        );
        s.push_str(&format!(
                        "\n  time: snapshot {:.1}s, copy {:.1}s, LXD preparing {:.1}s, streaming {:.1}s ({:.1} MiB/s uploaded; the server assembling the parts {:.1}s of it)",
            self.timings.snapshot,
            self.timings.copy,
            self.timings.lxd_prepare,
            self.timings.stream,
            self.timings.stream_mib_per_second,
            self.timings.complete
        ));
        if let Some(l) = &self.zfs {
            s.push_str(&match &l.parent {
                Some(p) => format!(
                    "\n  zfs send -i: incremental after backup {}, link {} of its chain",
                    p.id, l.depth
                ),
                None => "\n  zfs send: a full stream, the start of a chain".into(),
            });
        }
        for w in &self.swept {
            s.push_str(&format!("\n  swept: {w}"));
        }
        s
    }
}

impl crate::output::Row for Exported {
    fn headers() -> &'static [&'static str] {
        &[
            "INSTANCE", "ID", "SNAPSHOT", "TARBALL", "UPLOADED", "SECONDS",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.instance.clone(),
            self.id.clone(),
            self.snapshot.clone(),
            indicatif::HumanBytes(self.tarball_size).to_string(),
            indicatif::HumanBytes(self.size).to_string(),
            format!("{:.1}", self.seconds),
        ]
    }
}

/// Told as the export reads LXD's stream (bytes so far).
pub trait ReadProgress: Progress {
    fn read(&self, total: u64);
}

impl ReadProgress for super::upload::NoProgress {
    fn read(&self, _: u64) {}
}

struct Counting<'a, R> {
    inner: R,
    total: u64,
    first_byte: Option<Instant>,
    progress: &'a dyn ReadProgress,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 && self.first_byte.is_none() {
            self.first_byte = Some(Instant::now());
        }
        self.total += n as u64;
        self.progress.read(self.total);
        Ok(n)
    }
}

/// One export runs at a time on a host: the sweep must never take an
/// upload that is still running here for an abandoned one.
fn lock(on_busy: OnBusy) -> Result<Lock> {
    Lock::acquire(crate::fs::Resource::S3Export, on_busy.timeout())
}

pub fn export(
    lxd: &Lxd,
    s: &S3Settings,
    req: &Request,
    progress: Arc<dyn ReadProgress>,
) -> Result<Exported> {
    let done = crate::runs::recorded(
        lxd.project(),
        crate::runs::Job::Export,
        || match zfs_source(lxd, req)? {
            Some(src) => {
                super::zfs_chain::export(s, &src, req.zfs_full_every, req.on_busy, progress)
            }
            None => export_once(lxd, s, req, progress),
        },
        |_| Vec::new(),
    )?;
    crate::runs::record_backup(lxd.project(), &done.instance, &done.id);
    Ok(done)
}

fn export_once(
    lxd: &Lxd,
    s: &S3Settings,
    req: &Request,
    progress: Arc<dyn ReadProgress>,
) -> Result<Exported> {
    validate_instance_name(&req.name)?;
    let inst = lxd.instance_full(&req.name)?;
    if let Some(snap) = &req.snapshot {
        if !inst.snapshots.iter().flatten().any(|x| &x.name == snap) {
            return Err(Error::NotFound {
                kind: "snapshot",
                name: format!("{}/{snap}", req.name),
            });
        }
    }
    let recipient = s.recipient()?;
    let signer = s.signing_key()?;
    let (part_mib, parallel, plan) = tuning(s, req.part_size_mib, req.parallel)?;
    let _lock = lock(req.on_busy)?;
    let client = Arc::new(s.client()?);
    let mut swept = sweep(&client, s)?;
    swept.extend(sweep_local(lxd)?);

    let tmp = format!("{EXPORT_PREFIX}{}", crate::random::hex(6)?);
    let started = Instant::now();
    let now = Utc::now();
    let id = now.format("%Y%m%dT%H%M%SZ").to_string();
    let (snapshot, fresh) = match &req.snapshot {
        Some(x) => (x.clone(), false),
        None => {
            let _l = snapshots::lock_instance(lxd, &req.name, req.on_busy)?;
            let now = lxd.instance_full(&req.name)?;
            let name = snapshots::unique_name(&format!("{EXPORT_PREFIX}{id}"), |n| {
                now.snapshots.iter().flatten().any(|x| x.name == n)
            });
            if let Err(e) = snapshots::take(lxd, &now, &name) {
                // Taken but not thawed, say: it must not stay behind
                // (its kind, other, is never pruned).
                let _ = lxd.delete_snapshot(&req.name, &name);
                return Err(e);
            }
            (name, true)
        }
    };
    let snapshotted = Instant::now();
    // A stopped copy of the snapshot is what LXD exports (it exports
    // instances, not snapshots). Removed whatever happens.
    let copied = lxd
        .copy(&format!("{}/{snapshot}", req.name), &tmp)
        .and_then(|()| crate::agents::sandbox::unseat(lxd, &tmp));
    let copy_done = Instant::now();
    let job = Job {
        s,
        client: &client,
        instance: &req.name,
        project: lxd.project(),
        recipient: &recipient,
        signer: &signer,
        part_mib,
        parallel,
        plan,
        progress: &progress,
    };
    let lxd_export = LxdExport {
        instance_only: true,
        optimized_storage: req.optimized,
        storage_driver: storage_driver(lxd, tmp_pool_of(lxd, &req.name).as_deref()),
    };
    let result = copied.and_then(|()| {
        job.upload(&id, &snapshot, lxd_export, None, || {
            lxd.export_stream(&tmp, req.optimized)
        })
    });
    let stream_done = Instant::now();
    // Cleanup runs whatever happened above; what it could not remove is
    // said, never left silently (the snapshot's kind, other, is never pruned).
    let mut left = Vec::new();
    if let Err(e) = lxd.delete(&tmp, true) {
        left.push(format!("temporary instance {tmp} ({e})"));
    }
    if fresh {
        if let Err(e) = lxd.delete_snapshot(&req.name, &snapshot) {
            left.push(format!("snapshot {}/{snapshot} ({e})", req.name));
        }
    }
    let (manifest, data, first_byte, streamed) = result?;
    if !left.is_empty() {
        return Err(Error::WrongState(format!(
            "backup {id} of {} was uploaded, but cleaning up failed; delete by hand: {}",
            req.name,
            left.join("; ")
        )));
    }
    let timings = Timings {
        snapshot: (snapshotted - started).as_secs_f64(),
        copy: (copy_done - snapshotted).as_secs_f64(),
        lxd_prepare: (first_byte - copy_done).as_secs_f64(),
        complete: (stream_done - streamed).as_secs_f64(),
        ..Timings::default()
    };
    Ok(Exported::new(
        manifest,
        (snapshot, fresh),
        data,
        swept,
        (started, first_byte, stream_done),
        timings,
    ))
}

impl Exported {
    /// The report of an upload: sizes and hash from its manifest, speeds
    /// from (started, first byte, stream done); `timings` brings the
    /// source's own stages.
    pub(super) fn new(
        m: Manifest,
        (snapshot, fresh_snapshot): (String, bool),
        data: String,
        swept: Vec<String>,
        (started, first_byte, stream_done): (Instant, Instant, Instant),
        timings: Timings,
    ) -> Exported {
        let mib = MIB as f64;
        let seconds = started.elapsed().as_secs_f64();
        let stream = (stream_done - first_byte).as_secs_f64();
        Exported {
            instance: m.instance,
            id: m.id,
            snapshot,
            fresh_snapshot,
            tarball_size: m.tarball_size,
            size: m.size,
            sha256: m.sha256,
            parts: m.parts,
            part_size: m.part_size,
            seconds,
            mib_per_second: m.tarball_size as f64 / mib / seconds.max(0.001),
            manifest: m.objects.manifest,
            data,
            swept,
            timings: Timings {
                stream,
                stream_mib_per_second: m.size as f64 / mib / stream.max(0.001),
                ..timings
            },
            zfs: m.zfs,
        }
    }
}

/// Part size and uploads in flight (the request's, else the settings'),
/// checked, with the memory plan they leave.
pub(super) fn tuning(
    s: &S3Settings,
    part_mib: Option<u32>,
    parallel: Option<u32>,
) -> Result<(u32, u32, super::memory::Plan)> {
    let part_mib = part_mib.unwrap_or(s.part_size_mib);
    if !(super::settings::MIN_PART_MIB..=super::settings::MAX_PART_MIB).contains(&part_mib) {
        return Err(Error::Usage(format!(
            "part size {part_mib} MiB: S3 needs 5 to 5120 MiB"
        )));
    }
    let parallel = parallel.unwrap_or(s.parallel).clamp(1, 16);
    let plan = super::memory::plan(s.memory_mib, part_mib, parallel, super::memory::cores())?;
    Ok((part_mib, parallel, plan))
}

/// One export's fixed inputs: whatever the stream's source (LXD's
/// export, a `zfs send`), the stages, upload and manifest are these.
pub(super) struct Job<'a> {
    pub s: &'a S3Settings,
    pub client: &'a Arc<Client>,
    pub instance: &'a str,
    pub project: &'a str,
    pub recipient: &'a age::x25519::Recipient,
    pub signer: &'a ed25519_dalek::SigningKey,
    pub part_mib: u32,
    pub parallel: u32,
    pub plan: super::memory::Plan,
    pub progress: &'a Arc<dyn ReadProgress>,
}

impl Job<'_> {
    /// Upload the data, then the manifest; returns the manifest, the data
    /// key, when the source's first byte arrived and when its last was sent.
    pub fn upload(
        &self,
        id: &str,
        snapshot: &str,
        lxd_export: LxdExport,
        zfs: Option<ZfsLink>,
        source: impl FnOnce() -> Result<crate::process::Streaming>,
    ) -> Result<(Manifest, String, Instant, Instant)> {
        let Job {
            s,
            client,
            instance,
            recipient,
            part_mib,
            ..
        } = *self;
        let dir = backup_dir(s, instance, id);
        let data_key = data_key(&dir);
        let marker_key = format!("{dir}{MARKER_NAME}");
        let manifest_key = manifest_key(&dir);
        let upload_id = client.create_multipart(&data_key)?;
        let marker = Marker {
            upload_id: upload_id.clone(),
            data: data_key.clone(),
            host: hostname(),
            started: Utc::now().to_rfc3339(),
        };
        let streamed = client
            .put(
                &marker_key,
                &serde_json::to_vec_pretty(&marker).expect("serializes"),
            )
            .and_then(|()| self.stream(source()?, &data_key, &upload_id));
        let (tarball, first_byte, up) = match streamed {
            Ok(x) => x,
            Err(e) => {
                // No manifest, no backup. If the abort fails too (the server
                // is gone), the marker stays for the next export's sweep.
                if client.abort_multipart(&data_key, &upload_id).is_ok() {
                    let _ = client.delete(&marker_key);
                }
                return Err(e);
            }
        };
        let mut manifest = Manifest {
            format_version: if zfs.is_some() { FORMAT_VERSION } else { 1 },
            id: id.to_string(),
            instance: instance.to_string(),
            project: self.project.to_string(),
            snapshot: snapshot.to_string(),
            created: crate::time::utc(&Utc::now()),
            host: hostname(),
            size: up.size,
            sha256: up.sha256,
            tarball_size: tarball,
            compression: "zstd".into(),
            compression_level: s.compression_level,
            encryption: Encryption {
                scheme: "age".into(),
                recipient: recipient.to_string(),
                recipient_fingerprint: fingerprint(&recipient.to_string()),
            },
            objects: Objects {
                data: data_key.clone(),
                manifest: manifest_key.clone(),
            },
            parts: up.parts,
            part_size: u64::from(part_mib) * MIB,
            lxd_export,
            zfs,
            terrarium_version: crate::VERSION.to_string(),
            signature: None,
        };
        signing::sign(&mut manifest, self.signer);
        let streamed = Instant::now();
        let written = client
            .complete_multipart(&data_key, &upload_id, &up.etags)
            .and_then(|()| {
                client.put(
                    &manifest_key,
                    &serde_json::to_vec_pretty(&manifest).expect("serializes"),
                )
            });
        if let Err(e) = written {
            let _ = client.abort_multipart(&data_key, &upload_id);
            if client.delete(&data_key).is_ok() {
                let _ = client.delete(&marker_key);
            }
            return Err(e);
        }
        let _ = client.delete(&marker_key);
        Ok((manifest, data_key, first_byte, streamed))
    }

    /// The source's stream through zstd and age into the multipart writer.
    /// Returns the stream's size, its first byte's arrival, and what was uploaded.
    fn stream(
        &self,
        mut child: crate::process::Streaming,
        key: &str,
        upload_id: &str,
    ) -> Result<(u64, Instant, super::upload::Uploaded)> {
        let Job {
            client,
            recipient,
            part_mib,
            parallel,
            progress,
            ..
        } = *self;
        let stdout = child.child.stdout.take().expect("stdout is piped");
        let writer = MultipartWriter::new(
            client.clone(),
            key.to_string(),
            upload_id.to_string(),
            u64::from(part_mib) * MIB,
            parallel,
            Arc::new(Parts(progress.clone())),
        );
        let piped = pipe(
            stdout,
            writer,
            self.s.compression_level,
            self.plan,
            recipient,
            progress.as_ref(),
        );
        match piped {
            Ok((tarball, first, writer)) => {
                // The source's exit status decides whether the stream was whole.
                child.finish()?;
                Ok((tarball, first, writer.finish()?))
            }
            Err(e) => {
                child.kill();
                Err(e)
            }
        }
    }
}

/// The stages, each on its own threads: this thread reads LXD's stream
/// and feeds zstd, whose workers compress jobs in parallel; one thread
/// encrypts, hashes and fills parts; the uploaders send them. The stages
/// meet through bounded queues, so memory stays within the plan.
fn pipe(
    stdout: impl Read,
    writer: MultipartWriter,
    level: i32,
    plan: super::memory::Plan,
    recipient: &age::x25519::Recipient,
    progress: &dyn ReadProgress,
) -> Result<(u64, Instant, MultipartWriter)> {
    let io_err = |what: &str, e: io::Error| Error::Remote(format!("{what}: {e}"));
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .map_err(|e| Error::Usage(format!("age recipient: {e}")))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(CHUNKS_QUEUED);
    std::thread::scope(|scope| {
        let sealer = scope.spawn(move || -> io::Result<MultipartWriter> {
            let mut sealed = encryptor.wrap_output(writer)?;
            for chunk in rx {
                sealed.write_all(&chunk)?;
            }
            let mut writer = sealed.finish()?;
            writer.flush()?;
            Ok(writer)
        });
        let mut src = Counting {
            inner: stdout,
            total: 0,
            first_byte: None,
            progress,
        };
        let compressed = compress(&mut src, Chunks::new(tx), level, plan);
        // The sealer's error (an upload refused) is the cause of ours.
        let sealed = sealer.join().expect("the sealing thread does not panic");
        let writer = sealed.map_err(|e| io_err("encrypting and uploading", e))?;
        compressed.map_err(|e| io_err("compressing the export", e))?;
        Ok((
            src.total,
            src.first_byte.unwrap_or_else(Instant::now),
            writer,
        ))
    })
}

/// Compressed bytes in chunks of this size cross to the sealing thread,
/// at most `CHUNKS_QUEUED` waiting.
const CHUNK: usize = 256 * 1024;
/// What one read of the source's pipe may bring.
const READ_SIZE: usize = 1024 * 1024;
const CHUNKS_QUEUED: usize = 4;

fn compress(
    src: &mut impl Read,
    out: Chunks,
    level: i32,
    plan: super::memory::Plan,
) -> io::Result<()> {
    let mut zstd = zstd::Encoder::new(out, level)?;
    if plan.workers > 0 {
        zstd.multithread(plan.workers)?;
        zstd.set_parameter(zstd::zstd_safe::CParameter::JobSize(plan.job_size as u32))?;
    }
    // Not io::copy: its 8 KiB reads cost a syscall and a zstd call each.
    let mut buf = vec![0u8; READ_SIZE];
    loop {
        match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => zstd.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    zstd.finish()?.close()
}

/// A `Write` that hands full chunks to the sealing thread.
struct Chunks {
    tx: std::sync::mpsc::SyncSender<Vec<u8>>,
    buf: Vec<u8>,
}

impl Chunks {
    fn new(tx: std::sync::mpsc::SyncSender<Vec<u8>>) -> Chunks {
        Chunks {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }

    fn send(&mut self) -> io::Result<()> {
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .send(full)
            .map_err(|_| io::Error::other("the sealing thread stopped"))
    }

    /// Send what is left; dropping the sender tells the sealer the end.
    fn close(mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.send()?;
        }
        Ok(())
    }
}

impl Write for Chunks {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = (CHUNK - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The upload threads report parts through the caller's progress.
struct Parts(Arc<dyn ReadProgress>);
impl Progress for Parts {
    fn part_done(&self, part: u32, bytes: u64, total: u64) {
        self.0.part_done(part, bytes, total)
    }
}

/// The dataset to send, when chains are on and the instance's root is
/// on a ZFS pool (and no LXD-optimized stream was asked for). A chain
/// sends a snapshot of its own, whatever `snapshot` says.
fn zfs_source(lxd: &Lxd, req: &Request) -> Result<Option<super::zfs_chain::Source>> {
    if req.zfs_full_every == 0 || req.optimized {
        return Ok(None);
    }
    validate_instance_name(&req.name)?;
    let Some(pool) = tmp_pool_of(lxd, &req.name) else {
        return Ok(None);
    };
    let Some(p) = lxd.storage_pools()?.into_iter().find(|p| p.name == pool) else {
        return Ok(None);
    };
    if p.driver != "zfs" {
        return Ok(None);
    }
    let zpool = crate::zfs::pool_root(&p);
    Ok(Some(super::zfs_chain::Source {
        instance: req.name.clone(),
        project: lxd.project().to_string(),
        dataset: crate::zfs::instance_dataset(&zpool, lxd.project(), &req.name),
        part_size_mib: req.part_size_mib,
        parallel: req.parallel,
    }))
}

fn tmp_pool_of(lxd: &Lxd, name: &str) -> Option<String> {
    let i = lxd.instance_full(name).ok()?;
    i.expanded_devices
        .values()
        .find(|d| {
            d.get("type").map(String::as_str) == Some("disk")
                && d.get("path").map(String::as_str) == Some("/")
        })
        .and_then(|d| d.get("pool").cloned())
}

fn storage_driver(lxd: &Lxd, pool: Option<&str>) -> String {
    let Some(pool) = pool else {
        return String::new();
    };
    lxd.storage_pools()
        .ok()
        .and_then(|ps| ps.into_iter().find(|p| p.name == pool))
        .map(|p| p.driver)
        .unwrap_or_default()
}

/// `trm-export-` + 12 hex digits: an export's temporary copy.
fn is_export_copy(name: &str) -> bool {
    name.strip_prefix(EXPORT_PREFIX).is_some_and(|rest| {
        rest.len() == 12
            && rest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// `trm-export-<stamp>[-n]`: an export's fresh snapshot.
fn is_export_snapshot(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(EXPORT_PREFIX) else {
        return false;
    };
    // `get`, not `split_at`: a name is untrusted and may not be ASCII.
    let (Some(stamp), Some(n)) = (rest.get(..16), rest.get(16..)) else {
        return false;
    };
    crate::snapshots::retention::is_stamp(stamp)
        && (n.is_empty()
            || n.strip_prefix('-')
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())))
}

const EXPORT_PREFIX: &str = "trm-export-";

/// Remove what a killed export (SIGKILL, a power cut) left in LXD: its
/// temporary copy and its fresh snapshot, whose kind (other) retention
/// never prunes. Runs under the export lock, so no export of this host is
/// using them; only names Terrarium's exports write are touched.
pub fn sweep_local(lxd: &Lxd) -> Result<Vec<String>> {
    let mut swept = Vec::new();
    for i in lxd.instances()? {
        if is_export_copy(&i.name) {
            lxd.delete(&i.name, true)?;
            swept.push(format!("temporary instance {} of a killed export", i.name));
            continue;
        }
        for snap in i.snapshots.iter().flatten() {
            if is_export_snapshot(&snap.name) {
                lxd.delete_snapshot(&i.name, &snap.name)?;
                swept.push(format!(
                    "snapshot {}/{} of a killed export",
                    i.name, snap.name
                ));
            }
        }
    }
    Ok(swept)
}

/// Remove what crashed exports left: for every backup folder with an
/// upload marker and no manifest, abort the upload and delete the data
/// and the marker. Markers of other hosts wait a day (they may be running).
/// Keys come from the folder; of the marker only the upload id, host and
/// start are read. A folder that cannot be swept is reported and left:
/// whatever a bucket writer plants must not stop the export.
pub fn sweep(client: &Client, s: &S3Settings) -> Result<Vec<String>> {
    let me = hostname();
    let mut swept = Vec::new();
    for ((instance, id), files) in catalog::folders(client, s, None)? {
        let Some((marker_key, _)) = catalog::find(&files, MARKER_NAME) else {
            continue;
        };
        let dir = backup_dir(s, &instance, &id);
        if catalog::find(&files, MANIFEST_NAME).is_some() {
            if let Err(e) = client.delete(marker_key) {
                swept.push(format!(
                    "could not delete the marker of {instance}/{id}: {e}"
                ));
            }
            continue;
        }
        let marker: Marker = match client
            .get_bytes(marker_key, 1 << 16)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        {
            Some(m) => m,
            None => continue,
        };
        let old = chrono::DateTime::parse_from_rfc3339(&marker.started)
            .map(|t| {
                Utc::now() - t.with_timezone(&Utc)
                    > chrono::Duration::hours(FOREIGN_MARKER_AGE_HOURS)
            })
            .unwrap_or(true);
        if marker.host != me && !old {
            continue;
        }
        let data = data_key(&dir);
        let done = client
            .abort_multipart(&data, &marker.upload_id)
            .and_then(|()| client.delete(&data))
            .and_then(|()| client.delete(marker_key));
        swept.push(match done {
            Ok(()) => format!(
                "abandoned upload {} of {instance}/{id} (aborted)",
                marker.upload_id
            ),
            Err(e) => format!("could not sweep the upload of {instance}/{id}: {e}"),
        });
    }
    Ok(swept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_exports_write_are_swept() {
        assert!(is_export_copy("trm-export-0123456789ab"));
        for n in [
            "trm-export-0123456789AB",
            "trm-export-0123456789a",
            "trm-export-web",
            "web",
        ] {
            assert!(!is_export_copy(n), "{n}");
        }
        for n in [
            "trm-export-20261201T120000Z",
            "trm-export-20261201T120000Z-2",
        ] {
            assert!(is_export_snapshot(n), "{n}");
        }
        for n in [
            "trm-export-20261201T120000Z-",
            "trm-export-20261201T120000Z-x",
            "trm-export-2026",
            "trm-export-20261201T12000éZ",
            "trm-manual-20261201T120000Z",
            "before-upgrade",
        ] {
            assert!(!is_export_snapshot(n), "{n}");
        }
    }
}
