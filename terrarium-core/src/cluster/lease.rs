//! One lock per instance across the whole cluster. A file lock holds on
//! one member only, so on a cluster the instance's turn is also a lease in
//! LXD's database: a cluster group named for the instance, which LXD
//! creates at most once (names are unique cluster-wide). Its description
//! holds who took it and until when; a lease left by a process that died
//! is broken once it has expired.

use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::lxd::Lxd;

/// A lease outlives a crashed holder by this much at most.
const TTL: Duration = Duration::from_secs(1800);
/// A live holder renews well before then, so a long export keeps its turn.
const RENEW_EVERY: Duration = Duration::from_secs(600);

/// Held while alive, renewed in the background; the group goes on drop.
#[derive(Debug)]
pub struct Lease {
    lxd: Lxd,
    group: String,
    /// What we last wrote: the group is ours only while it says so.
    description: Arc<Mutex<String>>,
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl Lease {
    fn held(lxd: &Lxd, group: String, holder: String, text: String) -> Lease {
        let description = Arc::new(Mutex::new(text));
        let (stop, stopped) = mpsc::channel::<()>();
        let renewer = {
            let (lxd, group, description) = (lxd.clone(), group.clone(), description.clone());
            std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(RENEW_EVERY) {
                    if !renew(&lxd, &group, &holder, &description) {
                        return;
                    }
                }
            })
        };
        Lease {
            lxd: lxd.clone(),
            group,
            description,
            stop: Some(stop),
            renewer: Some(renewer),
        }
    }
}

/// Push the lease's end out, if it is still ours; false once it is not.
fn renew(lxd: &Lxd, group: &str, holder: &str, description: &Mutex<String>) -> bool {
    let mut mine = description.lock().unwrap_or_else(|p| p.into_inner());
    match lxd.cluster_group_description(group) {
        Ok(d) if d == *mine => {
            let next = self::description(holder, Utc::now() + ttl());
            // A write whose answer was lost may still have landed.
            let landed = lxd.set_cluster_group_description(group, &next).is_ok()
                || lxd.cluster_group_description(group).ok().as_ref() == Some(&next);
            if landed {
                *mine = next;
            }
            true
        }
        // LXD unreachable for now: try again at the next turn.
        Err(e) if !crate::lxd::is_not_found(&e) => true,
        _ => false,
    }
}

fn ttl() -> chrono::Duration {
    chrono::Duration::from_std(TTL).expect("a short TTL")
}

impl Drop for Lease {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(r) = self.renewer.take() {
            let _ = r.join();
        }
        let mine = self
            .description
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if self.lxd.cluster_group_description(&self.group).ok() == Some(mine) {
            let _ = self.lxd.delete_cluster_group(&self.group);
        }
    }
}

/// The group's name: a digest, so any project and instance name fits
/// LXD's naming rules.
pub fn group_name(project: &str, instance: &str) -> String {
    let d = Sha256::digest(format!("{project}/{instance}").as_bytes());
    let hex: String = d[..10].iter().map(|b| format!("{b:02x}")).collect();
    format!("trm-lock-{hex}")
}

/// `HOLDER until RFC3339`.
fn description(holder: &str, until: DateTime<Utc>) -> String {
    format!(
        "terrarium lock on {holder} until {}",
        crate::time::utc(&until)
    )
}

/// When a lease's description says it ends (None: not one of ours).
pub fn until(description: &str) -> Option<DateTime<Utc>> {
    let at = description
        .strip_prefix("terrarium lock on ")?
        .rsplit_once(" until ")?
        .1;
    DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Is this LXD a cluster? Asked once per process (an error is not an
/// answer: it is asked again, and it fails the lock).
fn clustered(lxd: &Lxd) -> Result<bool> {
    static CLUSTERED: OnceLock<bool> = OnceLock::new();
    if let Some(c) = CLUSTERED.get() {
        return Ok(*c);
    }
    let c = lxd.cluster()?.enabled;
    Ok(*CLUSTERED.get_or_init(|| c))
}

/// Take the instance's cluster-wide lease, waiting up to `wait`; None on a
/// lone server (the file lock is enough there).
pub fn acquire(lxd: &Lxd, instance: &str, wait: Duration) -> Result<Option<Lease>> {
    if !clustered(lxd)? {
        return Ok(None);
    }
    let group = group_name(lxd.project(), instance);
    let holder = format!(
        "{}/{}",
        crate::cluster::host_name().unwrap_or_default(),
        std::process::id()
    );
    let deadline = Instant::now() + wait;
    loop {
        let now = Utc::now();
        let text = description(&holder, now + ttl());
        match lxd.create_cluster_group(&group, &text) {
            Ok(()) => return Ok(Some(Lease::held(lxd, group, holder, text))),
            Err(e)
                if !e
                    .to_string()
                    .to_ascii_lowercase()
                    .contains("already exists") =>
            {
                return Err(e)
            }
            Err(_) => {}
        }
        // Held: by someone alive, or left by one that died.
        match lxd.cluster_group_description(&group) {
            Ok(d) if until(&d).is_some_and(|u| u <= now) => {
                let _ = lxd.delete_cluster_group(&group);
                continue;
            }
            Ok(_) => {}
            // Gone between the two calls: take it again.
            Err(e) if crate::lxd::is_not_found(&e) => continue,
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Err(Error::LockBusy(format!(
                "instance '{instance}' (its cluster-wide lease {group})"
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_names_its_holder_and_end_and_fits_lxds_names() {
        let at: DateTime<Utc> = "2026-12-02T09:00:00Z".parse().unwrap();
        let d = description("member2/4242", at);
        assert_eq!(until(&d), Some(at));
        assert_eq!(until("someone's group"), None);
        let g = group_name(
            "default",
            "a-very-long-instance-name-that-goes-on-and-on-and-on",
        );
        assert_eq!(g.len(), 29);
        assert!(g.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
        assert_ne!(group_name("p1", "a"), group_name("p2", "a"));
    }
}
