//! A `Write` that turns a stream into an S3 multipart upload with bounded
//! memory: one part fills while at most `parallel` others upload, so the
//! buffers never exceed (parallel + 1) x part size. It hashes what it
//! sends, so the manifest can carry the SHA-256 without a second read.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::offsite::s3::Client;

/// S3 allows 10,000 parts.
pub const MAX_PARTS: u32 = 10_000;
/// Parts up to this number use the base size; past it the size doubles
/// every `GROWTH_EVERY` parts, so an object of any size still fits in
/// 10,000 parts, and a small one never pays for large buffers.
const GROWTH_FROM: u32 = 4_000;
const GROWTH_EVERY: u32 = 500;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
const ATTEMPTS: u32 = 3;

/// Size of part `n` (from 1) for a base size.
pub fn part_size(base: u64, n: u32) -> u64 {
    let doublings = if n <= GROWTH_FROM {
        0
    } else {
        (n - GROWTH_FROM - 1) / GROWTH_EVERY + 1
    };
    (base << doublings.min(20)).min(MAX_PART)
}

/// The largest object that fits in 10,000 parts of this base size.
pub fn capacity(base: u64) -> u64 {
    (1..=MAX_PARTS).map(|n| part_size(base, n)).sum()
}

/// Told as parts finish (from upload threads).
pub trait Progress: Send + Sync {
    fn part_done(&self, part: u32, bytes: u64, uploaded_total: u64);
}

pub struct NoProgress;
impl Progress for NoProgress {
    fn part_done(&self, _: u32, _: u64, _: u64) {}
}

struct Shared {
    etags: Mutex<BTreeMap<u32, String>>,
    failure: Mutex<Option<Error>>,
    uploaded: AtomicU64,
}

pub struct Uploaded {
    pub size: u64,
    pub sha256: String,
    pub parts: u32,
    pub etags: Vec<String>,
}

pub struct MultipartWriter {
    base: u64,
    buf: Vec<u8>,
    next: u32,
    tx: Option<SyncSender<(u32, Vec<u8>)>>,
    workers: Vec<JoinHandle<()>>,
    shared: Arc<Shared>,
    /// Uploaded parts' buffers come back here to be filled again: a fresh
    /// allocation per part costs a page fault every 4 KiB. At most
    /// `parallel + 1` buffers ever exist.
    free: Receiver<Vec<u8>>,
    allocated: usize,
    max_buffers: usize,
    hasher: Sha256,
    total: u64,
}

impl MultipartWriter {
    pub fn new(
        client: Arc<Client>,
        key: String,
        upload_id: String,
        base: u64,
        parallel: u32,
        progress: Arc<dyn Progress>,
    ) -> MultipartWriter {
        // A rendezvous channel: a filled part waits for a free uploader.
        let (tx, rx) = sync_channel::<(u32, Vec<u8>)>(0);
        let rx = Arc::new(Mutex::new(rx));
        let max_buffers = parallel.max(1) as usize + 1;
        let (free_tx, free) = sync_channel::<Vec<u8>>(max_buffers);
        let shared = Arc::new(Shared {
            etags: Mutex::new(BTreeMap::new()),
            failure: Mutex::new(None),
            uploaded: AtomicU64::new(0),
        });
        let workers = (0..parallel.max(1))
            .map(|_| {
                let (client, key, id, rx, shared, progress, free_tx) = (
                    client.clone(),
                    key.clone(),
                    upload_id.clone(),
                    rx.clone(),
                    shared.clone(),
                    progress.clone(),
                    free_tx.clone(),
                );
                std::thread::spawn(move || {
                    worker(&client, &key, &id, &rx, &shared, &*progress, &free_tx)
                })
            })
            .collect();
        MultipartWriter {
            base,
            buf: Vec::with_capacity(part_size(base, 1) as usize),
            next: 1,
            tx: Some(tx),
            workers,
            shared,
            free,
            allocated: 1,
            max_buffers,
            hasher: Sha256::new(),
            total: 0,
        }
    }

    fn failure(&self) -> Option<String> {
        self.shared
            .failure
            .lock()
            .expect("no panics while locked")
            .as_ref()
            .map(|e| e.to_string())
    }

    /// Hand the filled part to an uploader, then take the next buffer.
    fn send(&mut self) -> io::Result<()> {
        self.hand_over()?;
        self.buf = self.next_buffer()?;
        Ok(())
    }

    /// A buffer for the next part: a new one while fewer than `parallel +
    /// 1` exist, else the first an uploader gives back.
    fn next_buffer(&mut self) -> io::Result<Vec<u8>> {
        let size = part_size(self.base, self.next) as usize;
        if self.allocated < self.max_buffers {
            self.allocated += 1;
            return Ok(Vec::with_capacity(size));
        }
        match self.free.recv() {
            Ok(b) if b.capacity() >= size => Ok(b),
            // Parts grow past 4,000: the old buffer goes, a larger comes.
            Ok(_) => Ok(Vec::with_capacity(size)),
            Err(_) => Err(io::Error::other(
                self.failure()
                    .unwrap_or_else(|| "the upload stopped".into()),
            )),
        }
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.next > MAX_PARTS {
            return Err(io::Error::other("more than 10,000 parts"));
        }
        // One part failed for good: the backup cannot complete, so the
        // stream stops now rather than after the rest was sent.
        if let Some(f) = self.failure() {
            return Err(io::Error::other(f));
        }
        // The next buffer is taken only once this part is handed over:
        // while it waits for an uploader, the parts in flight plus this
        // one are all there is ((parallel + 1) x part size).
        let full = std::mem::take(&mut self.buf);
        let tx = self.tx.as_ref().expect("sending before finish");
        if tx.send((self.next, full)).is_err() {
            return Err(io::Error::other(
                self.failure()
                    .unwrap_or_else(|| "the upload stopped".into()),
            ));
        }
        self.next += 1;
        Ok(())
    }

    /// Send the last part, wait for every upload, and return the ETags in
    /// part order with the size and digest of what was sent.
    pub fn finish(mut self) -> Result<Uploaded> {
        let last = self.hand_over();
        drop(self.tx.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
        if let Some(e) = self.shared.failure.lock().expect("no panics").take() {
            return Err(e);
        }
        last.map_err(|e| Error::Remote(e.to_string()))?;
        let etags: Vec<String> = std::mem::take(&mut *self.shared.etags.lock().expect("no panics"))
            .into_values()
            .collect();
        Ok(Uploaded {
            size: self.total,
            sha256: format!("{:x}", self.hasher.finalize_reset()),
            parts: etags.len() as u32,
            etags,
        })
    }
}

impl Drop for MultipartWriter {
    fn drop(&mut self) {
        // Dropped without finish (an error upstream): stop the uploaders.
        drop(self.tx.take());
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

impl Write for MultipartWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = part_size(self.base, self.next) as usize - self.buf.len();
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        self.hasher.update(&data[..n]);
        self.total += n as u64;
        if self.buf.len() == part_size(self.base, self.next) as usize {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn worker(
    client: &Client,
    key: &str,
    upload_id: &str,
    rx: &Mutex<Receiver<(u32, Vec<u8>)>>,
    shared: &Shared,
    progress: &dyn Progress,
    free: &SyncSender<Vec<u8>>,
) {
    loop {
        let next = rx.lock().expect("no panics while locked").recv();
        let Ok((n, mut body)) = next else { return };
        match upload_with_retries(client, key, upload_id, n, &body) {
            Ok(etag) => {
                shared.etags.lock().expect("no panics").insert(n, etag);
                let total = shared
                    .uploaded
                    .fetch_add(body.len() as u64, Ordering::Relaxed)
                    + body.len() as u64;
                progress.part_done(n, body.len() as u64, total);
                body.clear();
                // Never blocks: the queue holds as many as can exist.
                let _ = free.try_send(body);
            }
            Err(e) => {
                shared.failure.lock().expect("no panics").get_or_insert(e);
                // Returning drops our receiver share; the writer's next
                // send fails once every worker has stopped.
                return;
            }
        }
    }
}

/// A part is retried a few times: a dropped connection should not cost
/// the whole export. A refusal (credentials, permission) is not retried.
fn upload_with_retries(
    client: &Client,
    key: &str,
    id: &str,
    n: u32,
    body: &[u8],
) -> Result<String> {
    let part = u16::try_from(n).map_err(|_| Error::Remote(format!("part {n} > 10,000")))?;
    let mut attempt = 1;
    loop {
        match client.upload_part(key, id, part, body) {
            Ok(etag) => return Ok(etag),
            Err(e @ (Error::Unavailable(_) | Error::Remote(_)))
                if attempt < ATTEMPTS && retryable(&e) =>
            {
                std::thread::sleep(Duration::from_millis(500 << attempt));
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

fn retryable(e: &Error) -> bool {
    match e {
        Error::Unavailable(_) => true,
        Error::Remote(m) => m.contains("answered 5"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn parts_keep_their_base_size_until_growth() {
        assert_eq!(part_size(8 * MIB, 1), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 4000), 8 * MIB);
        assert_eq!(part_size(8 * MIB, 4001), 16 * MIB);
        assert_eq!(part_size(8 * MIB, 4500), 16 * MIB);
        assert_eq!(part_size(8 * MIB, 4501), 32 * MIB);
    }

    #[test]
    fn any_s3_object_fits_in_ten_thousand_parts() {
        // S3's largest object is 5 TiB; the smallest allowed base fits it.
        assert!(capacity(5 * MIB) >= 5 * 1024 * 1024 * MIB);
        assert!(part_size(5 * MIB, 10_000) <= MAX_PART);
    }
}
