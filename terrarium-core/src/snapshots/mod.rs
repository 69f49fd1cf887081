//! The time machine: snapshots through LXD (so LXD's database always
//! agrees with the disk), rollback that is itself undoable, restore as a
//! new instance that cannot take the original's traffic, and the
//! automatic tick that snapshots and prunes by the retention policy.

mod auto;
mod checkpoint;
pub mod drivers;
pub mod holds;
mod prune;
mod restore;
pub mod retention;
mod rollback;

pub use auto::{auto, units, until_next_tick, Tick};
pub use checkpoint::{checkpoint, Checkpoint};
pub use holds::{set_hold, Hold};
pub use prune::{prune_apply, prune_plan, Pruned};
pub(crate) use restore::strip_exposure;
pub use restore::{restore_as, strip_identity, Restored};
pub use rollback::{rollback_apply, rollback_plan, Method, Rollback, LAST_CHECKPOINT};

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::fs::{Lock, OnBusy};
use crate::lxd::{Instance, Lxd};
use crate::names::validate_instance_name;
use crate::output::Row;
use retention::{Kind, Snap};

/// An instance's turn: this host's file lock and, on a cluster, the
/// instance's lease in LXD's database, so one member at a time works on it.
#[derive(Debug)]
pub struct Turn {
    _lease: Option<crate::cluster::lease::Lease>,
    _lock: Lock,
}

/// The per-instance lock every Terrarium writer of snapshots shares.
pub fn lock_instance(lxd: &Lxd, name: &str, on_busy: OnBusy) -> Result<Turn> {
    let lock = Lock::acquire(
        crate::fs::Resource::Instance {
            project: lxd.project(),
            name,
        },
        on_busy.timeout(),
    )?;
    Ok(Turn {
        _lease: crate::cluster::lease::acquire(lxd, name, on_busy.timeout())?,
        _lock: lock,
    })
}

fn parse_time(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// The instance's snapshots for the retention plan, holds from the host's record.
fn snaps_of(lxd: &Lxd, i: &Instance) -> Result<Vec<Snap>> {
    let held = holds::load(lxd.project(), &i.name)?;
    Ok(snaps_with(i, &held))
}

fn snaps_with(i: &Instance, held: &BTreeSet<String>) -> Vec<Snap> {
    i.snapshots
        .iter()
        .flatten()
        .map(|s| Snap {
            name: s.name.clone(),
            created: parse_time(&s.created_at),
            held: held.contains(&s.name),
            depended_on: false,
        })
        .collect()
}

fn snapshot_names(i: &Instance) -> BTreeSet<String> {
    i.snapshots
        .iter()
        .flatten()
        .map(|s| s.name.clone())
        .collect()
}

/// `base`, else `base-2`, `base-3`, ...: the first name not taken. Two
/// snapshots asked for in the same second get different names instead of
/// LXD's database error.
pub fn unique_name(base: &str, taken: impl Fn(&str) -> bool) -> String {
    if !taken(base) {
        return base.to_string();
    }
    (2u32..)
        .map(|n| format!("{base}-{n}"))
        .find(|c| !taken(c))
        .expect("a free name")
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub instance: String,
    pub name: String,
    pub kind: String,
    pub created: String,
    /// Bytes, where the storage driver reports it.
    pub size: Option<u64>,
    pub held: bool,
}

impl Row for Entry {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "SNAPSHOT", "KIND", "CREATED", "SIZE", "HELD"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.instance.clone(),
            self.name.clone(),
            self.kind.clone(),
            self.created.clone(),
            self.size.map(|s| s.to_string()).unwrap_or_default(),
            if self.held {
                "held".into()
            } else {
                String::new()
            },
        ]
    }
}

fn kind_label(name: &str) -> String {
    match retention::kind_of(name) {
        Kind::Auto(t) => format!("auto:{}", t.as_str()),
        Kind::Manual => "manual".into(),
        Kind::Safety => "safety".into(),
        Kind::Checkpoint => "checkpoint".into(),
        Kind::Foreign => "other".into(),
    }
}

/// One named instance or all of the project, snapshots included, in one query.
fn one_or_all(lxd: &Lxd, name: Option<&str>) -> Result<Vec<Instance>> {
    match name {
        Some(n) => {
            validate_instance_name(n)?;
            Ok(vec![lxd.instance_full(n)?])
        }
        None => lxd.instances(),
    }
}

/// Snapshots of one instance or all, from one LXD query.
pub fn list(lxd: &Lxd, name: Option<&str>) -> Result<Vec<Entry>> {
    let instances = one_or_all(lxd, name)?;
    let mut out = Vec::new();
    for i in &instances {
        let held = holds::load(lxd.project(), &i.name)?;
        for s in i.snapshots.iter().flatten() {
            out.push(Entry {
                instance: i.name.clone(),
                name: s.name.clone(),
                kind: kind_label(&s.name),
                created: crate::time::rfc3339_utc(&s.created_at),
                size: s.size.and_then(|b| u64::try_from(b).ok()),
                held: held.contains(&s.name),
            });
        }
    }
    Ok(out)
}

fn stamp(now: DateTime<Utc>) -> String {
    now.format("%Y%m%dT%H%M%SZ").to_string()
}

/// A manual snapshot: `trm-manual-<stamp>[-<label>]`, never pruned.
fn manual_name(label: Option<&str>, now: DateTime<Utc>) -> Result<String> {
    let base = format!("{}{}", retention::MANUAL_PREFIX, stamp(now));
    match label {
        None => Ok(base),
        Some(l) => {
            let ok = !l.is_empty()
                && l.len() <= 40
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            if !ok {
                return Err(Error::Usage(format!(
                    "invalid label '{l}': 1 to 40 letters, digits, - or _"
                )));
            }
            Ok(format!("{base}-{l}"))
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub instance: String,
    pub snapshot: String,
}

impl Row for Created {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "SNAPSHOT"]
    }

    fn cells(&self) -> Vec<String> {
        vec![self.instance.clone(), self.snapshot.clone()]
    }
}

pub fn create(lxd: &Lxd, name: &str, label: Option<&str>, on_busy: OnBusy) -> Result<Created> {
    validate_instance_name(name)?;
    let base = manual_name(label, Utc::now())?;
    let _lock = lock_instance(lxd, name, on_busy)?;
    // Named under the lock, against the snapshots there are now.
    let i = lxd.instance_full(name)?;
    let existing = snapshot_names(&i);
    let snapshot = unique_name(&base, |n| existing.contains(n));
    take(lxd, &i, &snapshot)?;
    Ok(Created {
        instance: name.into(),
        snapshot,
    })
}

/// Take a snapshot of `i` as last read (under its lock); if it runs, it
/// is frozen for the moment it takes, so the snapshot is consistent and
/// LXD's walk of the filesystem cannot race a file the workload deletes
/// (seen on btrfs: "lstat ... resolv.conf.dhclient-new: no such file or
/// directory", which also left an orphaned subvolume behind). It is
/// thawed whatever happens.
pub fn take(lxd: &Lxd, i: &Instance, snap: &str) -> Result<()> {
    let name = i.name.as_str();
    if !i.is_running() {
        return lxd.snapshot(name, snap);
    }
    lxd.pause(name)?;
    let taken = lxd.snapshot(name, snap);
    // Under load `lxc start` has been seen to time out while LXD went on
    // to thaw the instance: what counts is whether it runs again.
    let thawed = lxd.start(name).or_else(|e| match lxd.instance(name) {
        Ok(i) if i.is_running() => Ok(()),
        _ => Err(e),
    });
    taken?;
    thawed
}

/// The ZFS snapshot behind an instance snapshot, when its pool is ZFS.
fn zfs_snapshot(lxd: &Lxd, i: &Instance, snap: &str) -> Result<Option<String>> {
    let Some(pool) = root_pool(lxd, i)? else {
        return Ok(None);
    };
    if pool.driver != "zfs" {
        return Ok(None);
    }
    let zpool = crate::zfs::pool_root(&pool);
    let dataset = crate::zfs::instance_dataset(&zpool, lxd.project(), &i.name);
    Ok(Some(crate::zfs::snapshot_of(&dataset, snap)))
}

fn root_pool(lxd: &Lxd, i: &Instance) -> Result<Option<crate::lxd::StoragePool>> {
    let pool = i
        .expanded_devices
        .values()
        .find(|d| {
            d.get("type").map(String::as_str) == Some("disk")
                && d.get("path").map(String::as_str) == Some("/")
        })
        .and_then(|d| d.get("pool").cloned())
        .unwrap_or_default();
    Ok(lxd.storage_pools()?.into_iter().find(|p| p.name == pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_names_carry_a_checked_label() {
        let now = parse_time("2026-11-28T23:00:00Z");
        assert_eq!(
            manual_name(None, now).unwrap(),
            "trm-manual-20261128T230000Z"
        );
        assert_eq!(
            manual_name(Some("before-upgrade"), now).unwrap(),
            "trm-manual-20261128T230000Z-before-upgrade"
        );
        assert!(manual_name(Some("a/b"), now).is_err());
        assert!(manual_name(Some(""), now).is_err());
        assert_eq!(kind_label(&manual_name(None, now).unwrap()), "manual");
    }

    #[test]
    fn names_taken_in_the_same_second_get_a_suffix() {
        let taken: BTreeSet<String> = ["x", "x-2", "y-2"].iter().map(|s| s.to_string()).collect();
        let free = |b: &str| unique_name(b, |n| taken.contains(n));
        assert_eq!(free("x"), "x-3");
        assert_eq!(free("y"), "y");
        assert_eq!(free("z"), "z");
        let now = parse_time("2026-11-28T23:00:00Z");
        let base = manual_name(Some("x"), now).unwrap();
        let second = unique_name(&base, |n| n == base);
        assert_eq!(second, "trm-manual-20261128T230000Z-x-2");
        assert_eq!(kind_label(&second), "manual");
        let safety = unique_name(&retention::safety_name(now), |_| false);
        assert_eq!(kind_label(&format!("{safety}-2")), "safety");
    }
}
