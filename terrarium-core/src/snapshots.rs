//! The time machine: snapshots through LXD (so LXD's database always
//! agrees with the disk), rollback that is itself undoable, restore as a
//! new instance that cannot take the original's traffic, and the
//! automatic tick that snapshots and prunes by the retention policy.

pub mod drivers;
pub mod holds;
pub mod retention;

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::expose::labels;
use crate::fs::{lock_wait, Lock};
use crate::lxd::{Instance, Lxd};
use crate::names::validate_instance_name;
use crate::output::{Human, Row};
use retention::{Decision, Kind, Policy, Snap};

/// Where holds used to be kept (comma-separated). Not read any more: a
/// rollback wiped it and any `user.*` writer could forge it; holds now
/// live on the host ([`holds`]). Copies and imports still have it removed.
pub const HOLDS_KEY: &str = "user.terrarium.holds";
/// `off` opts an instance out of automatic snapshots.
pub const OPT_OUT_KEY: &str = "user.terrarium.snapshots";

/// The per-instance lock every Terrarium writer of snapshots shares.
/// Without `wait` a second caller is told "busy" (exit 75) at once.
pub fn lock_instance(project: &str, name: &str, wait: bool) -> Result<Lock> {
    let wait = if wait { lock_wait() } else { Duration::ZERO };
    Lock::acquire(crate::fs::Resource::Instance { project, name }, wait)
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
    pub created_at: String,
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
            self.created_at.clone(),
            self.size.map(|s| s.to_string()).unwrap_or_default(),
            if self.held {
                "held".into()
            } else {
                String::new()
            },
        ]
    }
}

pub fn kind_label(name: &str) -> String {
    match retention::kind_of(name) {
        Kind::Auto(t) => format!("auto:{}", t.as_str()),
        Kind::Manual => "manual".into(),
        Kind::Safety => "safety".into(),
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
                created_at: crate::time::rfc3339_utc(&s.created_at),
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
pub fn manual_name(label: Option<&str>, now: DateTime<Utc>) -> Result<String> {
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

pub fn create(lxd: &Lxd, name: &str, label: Option<&str>, wait: bool) -> Result<Created> {
    validate_instance_name(name)?;
    let base = manual_name(label, Utc::now())?;
    let _lock = lock_instance(lxd.project(), name, wait)?;
    // Named under the lock, against the snapshots there are now.
    let i = lxd.instance_full(name)?;
    let existing = snapshot_names(&i);
    let snapshot = unique_name(&base, |n| existing.contains(n));
    take(lxd, name, &snapshot, i.is_running())?;
    Ok(Created {
        instance: name.into(),
        snapshot,
    })
}

/// Take a snapshot; a running instance is frozen for the moment it takes,
/// so the snapshot is consistent and LXD's walk of the filesystem cannot
/// race a file the workload deletes (seen on btrfs: "lstat ...
/// resolv.conf.dhclient-new: no such file or directory", which also left
/// an orphaned subvolume behind). It is thawed whatever happens.
pub fn take(lxd: &Lxd, name: &str, snap: &str, running: bool) -> Result<()> {
    if !running {
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

// ---- rollback ----

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// LXD restores the snapshot in place; newer snapshots stay.
    Restore,
    /// A copy of the snapshot takes the instance's name; the current
    /// instance, with all its snapshots, is kept stopped under another name.
    CopyAndSwap,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rollback {
    pub instance: String,
    pub target: String,
    pub method: Method,
    pub dry_run: bool,
    pub was_running: bool,
    /// The snapshot of the state before the rollback (roll back to it to undo).
    pub safety_snapshot: String,
    /// With copy-and-swap: where the previous instance now lives.
    pub kept_as: Option<String>,
    /// With copy-and-swap: what was taken from the kept instance so it
    /// cannot serve the routes that now belong to the copy.
    pub kept_stripped: Vec<String>,
    pub steps: Vec<String>,
}

impl Human for Rollback {
    fn human(&self) -> String {
        let mut s = self
            .steps
            .iter()
            .map(|x| format!("{}{x}", if self.dry_run { "would " } else { "" }))
            .collect::<Vec<_>>()
            .join("\n");
        if !self.kept_stripped.is_empty() {
            s.push_str(&format!(
                "\ntaken from {}: {}",
                self.kept_as.as_deref().unwrap_or_default(),
                self.kept_stripped.join(", ")
            ));
        }
        s.push_str(&format!(
            "\nundo with: trm-snap rollback {} --to {}",
            self.kept_as.as_deref().unwrap_or(&self.instance),
            self.safety_snapshot
        ));
        s
    }
}

/// Step the instance back to `to` (default: its newest snapshot). A safety
/// snapshot comes first; newer snapshots are never destroyed: on ZFS, where
/// LXD would have to delete them, or with `swap`, restore through a copy.
pub fn rollback(
    lxd: &Lxd,
    name: &str,
    to: Option<&str>,
    swap: bool,
    dry_run: bool,
    wait: bool,
) -> Result<Rollback> {
    validate_instance_name(name)?;
    let _lock = if dry_run {
        None
    } else {
        Some(lock_instance(lxd.project(), name, wait)?)
    };
    let i = lxd.instance_full(name)?;
    let mut snaps: Vec<(DateTime<Utc>, String)> = i
        .snapshots
        .iter()
        .flatten()
        .map(|s| (parse_time(&s.created_at), s.name.clone()))
        .collect();
    snaps.sort();
    let target = match to {
        Some(t) if snaps.iter().any(|(_, n)| n == t) => t.to_string(),
        Some(t) => {
            return Err(Error::NotFound {
                kind: "snapshot",
                name: format!("{name}/{t}"),
            })
        }
        None => snaps.last().map(|(_, n)| n.clone()).ok_or_else(|| {
            Error::WrongState(format!("instance '{name}' has no snapshot to roll back to"))
        })?,
    };
    let newer: Vec<&str> = snaps
        .iter()
        .skip_while(|(_, n)| *n != target)
        .skip(1)
        .map(|(_, n)| n.as_str())
        .collect();
    let pool = root_pool(lxd, &i)?;
    let driver = pool.as_ref().map(|p| p.driver.as_str()).unwrap_or_default();
    let remove_snapshots = pool
        .as_ref()
        .and_then(|p| p.config.get("volume.zfs.remove_snapshots"))
        .is_some_and(|v| v == "true");
    // The safety snapshot is taken first, so it is always newer than the
    // target: the method is chosen with that in mind (see `drivers`).
    let method = drivers::method(drivers::restore_older(driver, remove_snapshots), swap);
    let now = Utc::now();
    let existing = snapshot_names(&i);
    let safety = unique_name(&retention::safety_name(now), |n| existing.contains(n));
    let was_running = i.is_running();
    let kept_as = match method {
        Method::CopyAndSwap => Some(free_before_name(lxd, name, now)),
        Method::Restore => None,
    };
    let mut steps = vec![format!("snapshot the current state as {name}/{safety}")];
    if was_running {
        steps.push(format!("stop {name}"));
    }
    match (&method, &kept_as) {
        (Method::CopyAndSwap, Some(old)) => {
            steps.push(format!("copy {name}/{target} to a new instance"));
            steps.push(format!(
                "rename {name} (with all its snapshots and holds, {safety} included) to {old}, kept stopped"
            ));
            steps.push(format!("rename the copy to {name}"));
            steps.push(format!(
                "take the exposure ({} and proxy devices) from {old}, so only {name} serves its routes",
                labels::KEY
            ));
        }
        _ => steps.push(format!(
            "restore {name} to {target} (newer snapshots kept: {})",
            newer
                .iter()
                .copied()
                .chain([safety.as_str()])
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
    if was_running {
        steps.push(format!("start {name}"));
    }
    let mut report = Rollback {
        instance: name.into(),
        target: target.clone(),
        method,
        dry_run,
        was_running,
        safety_snapshot: safety.clone(),
        kept_as: kept_as.clone(),
        kept_stripped: Vec::new(),
        steps,
    };
    if dry_run {
        return Ok(report);
    }
    take(lxd, name, &safety, was_running)?;
    if was_running {
        lxd.stop(name, false).map_err(|e| {
            Error::WrongState(format!(
                "could not stop '{name}' ({e}); nothing was rolled back (the safety snapshot {safety} was taken)"
            ))
        })?;
    }
    let restored = match (&method, &kept_as) {
        (Method::CopyAndSwap, Some(old)) => swap_in(lxd, name, &target, old),
        _ => lxd.restore(name, &target),
    };
    if let Err(e) = restored {
        // Leave it as it was: running again if it was.
        let restarted = was_running && lxd.start(name).is_ok();
        return Err(Error::WrongState(format!(
            "rollback of '{name}' to {target} failed ({e}); the instance is unchanged{}; safety snapshot {safety}",
            if restarted { " and running again" } else { "" }
        )));
    }
    // The snapshots, and so their holds, now live under the old name; its
    // exposure belongs to the copy that took the name. Done before the
    // copy starts; a failure here still lets it start, then is reported.
    let kept = kept_as
        .as_deref()
        .map(|old| holds::rename(lxd.project(), name, old).and_then(|()| strip_exposure(lxd, old)));
    if was_running {
        lxd.start(name)?;
    }
    report.kept_stripped = kept.transpose()?.unwrap_or_default();
    // The undo the report offers must exist: never claim one LXD removed.
    let undo_on = kept_as.as_deref().unwrap_or(name);
    if !snapshot_names(&lxd.instance_full(undo_on)?).contains(&safety) {
        return Err(Error::WrongState(format!(
            "'{name}' was rolled back to {target}, but the storage driver removed the safety snapshot {undo_on}/{safety}: this rollback cannot be undone"
        )));
    }
    Ok(report)
}

/// A name for the instance a copy-and-swap keeps: one not in use.
fn free_before_name(lxd: &Lxd, name: &str, now: DateTime<Utc>) -> String {
    (1u32..)
        .map(|n| before_name(name, now, n))
        .find(|c| lxd.instance(c).is_err())
        .expect("a free name")
}

/// `<name>-before-rollback-<stamp>`, with `-<n>` from the second on.
fn before_name(name: &str, now: DateTime<Utc>, n: u32) -> String {
    // Instance names: 63 characters at most.
    let mut suffix = format!("-before-rollback-{}", now.format("%Y%m%d%H%M%S"));
    if n > 1 {
        suffix.push_str(&format!("-{n}"));
    }
    let keep = 63usize.saturating_sub(suffix.len());
    format!(
        "{}{suffix}",
        &name[..name.len().min(keep)].trim_end_matches('-')
    )
}

fn swap_in(lxd: &Lxd, name: &str, target: &str, old: &str) -> Result<()> {
    let tmp = format!("{}-rb-tmp", &name[..name.len().min(50)]);
    lxd.copy(&format!("{name}/{target}"), &tmp)?;
    if let Err(e) = lxd.rename(name, old) {
        let _ = lxd.delete(&tmp, true);
        return Err(e);
    }
    if let Err(e) = lxd.rename(&tmp, name) {
        // Put the original back under its name.
        let _ = lxd.rename(old, name);
        let _ = lxd.delete(&tmp, true);
        return Err(e);
    }
    Ok(())
}

/// The ZFS snapshot behind an instance snapshot, when its pool is ZFS.
fn zfs_snapshot(lxd: &Lxd, i: &Instance, snap: &str) -> Result<Option<String>> {
    let Some(pool) = root_pool(lxd, i)? else {
        return Ok(None);
    };
    if pool.driver != "zfs" {
        return Ok(None);
    }
    let zpool = pool
        .config
        .get("zfs.pool_name")
        .cloned()
        .unwrap_or(pool.name.clone());
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

// ---- restore as new ----

#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub instance: String,
    pub from: String,
    pub started: bool,
    pub stripped: Vec<String>,
}

impl Human for Restored {
    fn human(&self) -> String {
        format!(
            "{} created from {} ({}); stripped: {}",
            self.instance,
            self.from,
            if self.started { "started" } else { "stopped" },
            if self.stripped.is_empty() {
                "nothing".into()
            } else {
                self.stripped.join(", ")
            }
        )
    }
}

/// Take from a copied or imported instance what would let it take the
/// original's traffic: exposure labels, proxy devices, the MAC address,
/// and the old holds key. Returns what was removed, in words.
pub fn strip_identity(lxd: &Lxd, new: &str) -> Result<Vec<String>> {
    let mut stripped = strip_exposure(lxd, new)?;
    let copy = lxd.instance(new)?;
    for key in copy
        .config
        .keys()
        .filter(|k| k.starts_with("volatile.") && k.ends_with(".hwaddr"))
    {
        lxd.unset_config(new, key)?;
        stripped.push(format!("{key} (a fresh MAC is generated)"));
    }
    if copy.config.contains_key(HOLDS_KEY) {
        lxd.unset_config(new, HOLDS_KEY)?;
        stripped.push(HOLDS_KEY.to_string());
    }
    Ok(stripped)
}

/// Take an instance's exposure: its `user.proxy` labels (and so its
/// claims on public hosts) and its proxy devices. Returns what was
/// removed, in words.
pub fn strip_exposure(lxd: &Lxd, new: &str) -> Result<Vec<String>> {
    let copy = lxd.instance(new)?;
    let mut stripped = Vec::new();
    if copy.config.contains_key(labels::KEY) {
        lxd.unset_config(new, labels::KEY)?;
        stripped.push(format!(
            "{} ({})",
            labels::KEY,
            copy.config[labels::KEY].replace('\n', ", ")
        ));
    }
    for (dev, d) in &copy.devices {
        if d.get("type").map(String::as_str) == Some("proxy") {
            lxd.remove_device(new, dev)?;
            stripped.push(format!("proxy device {dev}"));
        }
    }
    Ok(stripped)
}

/// A new instance from a snapshot, without the original's exposure, proxy
/// devices or MAC address.
pub fn restore_as(
    lxd: &Lxd,
    name: &str,
    new: &str,
    from: Option<&str>,
    start: bool,
) -> Result<Restored> {
    validate_instance_name(name)?;
    validate_instance_name(new)?;
    let i = lxd.instance_full(name)?;
    if lxd.instance(new).is_ok() {
        return Err(Error::Usage(format!("instance '{new}' already exists")));
    }
    let snaps: Vec<Snap> = snaps_with(&i, &BTreeSet::new());
    let from = match from {
        Some(f) if snaps.iter().any(|s| s.name == f) => f.to_string(),
        Some(f) => {
            return Err(Error::NotFound {
                kind: "snapshot",
                name: format!("{name}/{f}"),
            })
        }
        None => snaps
            .iter()
            .max_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)))
            .map(|s| s.name.clone())
            .ok_or_else(|| Error::WrongState(format!("instance '{name}' has no snapshot")))?,
    };
    lxd.copy(&format!("{name}/{from}"), new)?;
    let stripped = strip_identity(lxd, new)?;
    if start {
        lxd.start(new)?;
    }
    Ok(Restored {
        instance: new.into(),
        from: format!("{name}/{from}"),
        started: start,
        stripped,
    })
}

// ---- holds ----

#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub instance: String,
    pub snapshot: String,
    pub held: bool,
    pub changed: bool,
}

impl Human for Hold {
    fn human(&self) -> String {
        format!(
            "{}/{}: {}{}",
            self.instance,
            self.snapshot,
            if self.held { "held" } else { "released" },
            if self.changed { "" } else { " (already)" }
        )
    }
}

/// Hold or release a snapshot. Root only: the record is the host's (see
/// [`holds`]), and at most [`holds::MAX_PER_INSTANCE`] per instance.
pub fn set_hold(lxd: &Lxd, name: &str, snap: &str, held: bool, wait: bool) -> Result<Hold> {
    validate_instance_name(name)?;
    if !crate::fs::is_root() {
        return Err(Error::NotRoot("holding or releasing a snapshot".into()));
    }
    let _lock = lock_instance(lxd.project(), name, wait)?;
    let i = lxd.instance_full(name)?;
    let existing = snapshot_names(&i);
    if !existing.contains(snap) {
        return Err(Error::NotFound {
            kind: "snapshot",
            name: format!("{name}/{snap}"),
        });
    }
    let change = holds::plan(&holds::load(lxd.project(), name)?, &existing, snap, held)?;
    // On ZFS the hold goes into the pool too, so not even a hand-run
    // `zfs destroy` can take the snapshot.
    if let Some(zsnap) = zfs_snapshot(lxd, &i, snap)? {
        if held {
            if crate::zfs::user_refs(&zsnap)? == 0 {
                crate::zfs::hold(&zsnap)?;
            }
        } else {
            crate::zfs::release(&zsnap)?;
        }
    }
    holds::apply(lxd.project(), name, &change)?;
    Ok(Hold {
        instance: name.into(),
        snapshot: snap.into(),
        held,
        changed: change.changed,
    })
}

// ---- prune and auto ----

#[derive(Debug, Clone, Serialize)]
pub struct Pruned {
    pub instance: String,
    #[serde(flatten)]
    pub decision: Decision,
    /// Done (false on a dry run or for kept snapshots).
    pub deleted: bool,
}

impl Row for Pruned {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "SNAPSHOT", "DECISION", "RULE"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.instance.clone(),
            self.decision.name.clone(),
            if self.decision.keep {
                "keep".into()
            } else if self.deleted {
                "deleted".into()
            } else {
                "delete".into()
            },
            self.decision.rule.clone(),
        ]
    }
}

fn prune_instance(
    lxd: &Lxd,
    i: &Instance,
    now: DateTime<Utc>,
    policy: &Policy,
    mode: PruneMode,
) -> Result<Vec<Pruned>> {
    let mut snaps = snaps_of(lxd, i)?;
    // On ZFS a snapshot a clone was made from cannot go.
    if let Some(first) = snaps.first() {
        if let Some(zsnap) = zfs_snapshot(lxd, i, &first.name)? {
            let dataset = zsnap.split('@').next().unwrap_or_default().to_string();
            let zpool = dataset.split('/').next().unwrap_or_default().to_string();
            let origins = crate::zfs::origins(&zpool)?;
            for s in &mut snaps {
                s.depended_on = origins.contains(&crate::zfs::snapshot_of(&dataset, &s.name));
            }
        }
    }
    let mut out = Vec::new();
    for mut d in retention::plan(&snaps, now, policy) {
        let mut deleted = false;
        if let PruneMode::Confirmed(set) = &mode {
            let confirmed = set.contains(&(i.name.clone(), d.name.clone()));
            only_if_confirmed(&mut d, confirmed);
        }
        if !d.keep && !matches!(mode, PruneMode::Plan) {
            // One snapshot LXD refuses to delete does not stop the others.
            match lxd.delete_snapshot(&i.name, &d.name) {
                Ok(()) => deleted = true,
                Err(e) => {
                    d.keep = true;
                    d.rule = format!("kept: deleting it failed ({e})");
                }
            }
        }
        out.push(Pruned {
            instance: i.name.clone(),
            decision: d,
            deleted,
        });
    }
    Ok(out)
}

/// Only what the user saw and confirmed goes, and only if the policy,
/// read again under the lock, still lets it go (a hold placed meanwhile
/// wins).
fn only_if_confirmed(d: &mut retention::Decision, confirmed: bool) {
    if !d.keep && !confirmed {
        d.keep = true;
        d.rule = "kept: not in the confirmed plan".into();
    } else if d.keep && confirmed {
        d.rule = format!("kept: {} (changed since the plan was confirmed)", d.rule);
    }
}

/// How a prune treats the policy's verdicts.
enum PruneMode {
    /// Decide only: delete nothing.
    Plan,
    /// Delete what the policy says now (the scheduled tick, unattended).
    Policy,
    /// Delete only these (instance, snapshot) pairs, the plan the user
    /// confirmed, and of them only what the policy still lets go.
    Confirmed(BTreeSet<(String, String)>),
}

/// What retention would delete now (one instance or all), deleting
/// nothing; `now` is injectable so the policy can be exercised against
/// real snapshots with a moved clock.
pub fn prune_plan(
    lxd: &Lxd,
    name: Option<&str>,
    policy: &Policy,
    now: DateTime<Utc>,
) -> Result<Vec<Pruned>> {
    let mut out = Vec::new();
    for i in &one_or_all(lxd, name)? {
        out.extend(prune_instance(lxd, i, now, policy, PruneMode::Plan)?);
    }
    Ok(out)
}

/// Apply a plan from `prune_plan` that the user confirmed: exactly its
/// deletions, each instance under its lock, never a snapshot it did not
/// list (one taken, or one that aged past the policy, since).
pub fn prune_apply(
    lxd: &Lxd,
    confirmed: &[Pruned],
    policy: &Policy,
    now: DateTime<Utc>,
    wait: bool,
) -> Result<Vec<Pruned>> {
    let doomed: BTreeSet<(String, String)> = confirmed
        .iter()
        .filter(|p| !p.decision.keep)
        .map(|p| (p.instance.clone(), p.decision.name.clone()))
        .collect();
    // Every instance the plan showed, in the same shape as the plan.
    let names: BTreeSet<&str> = confirmed.iter().map(|p| p.instance.as_str()).collect();
    let mut out = Vec::new();
    for name in names {
        let _lock = lock_instance(lxd.project(), name, wait)?;
        let i = lxd.instance_full(name)?;
        let mode = PruneMode::Confirmed(doomed.clone());
        out.extend(prune_instance(lxd, &i, now, policy, mode)?);
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub instance: String,
    /// The snapshot taken, if one was due.
    pub snapshot: Option<String>,
    /// `snapshotted`, `not_due`, `opted_out`, `busy` or `failed: ...`.
    pub outcome: String,
    pub deleted: Vec<String>,
}

impl Row for Tick {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "OUTCOME", "SNAPSHOT", "PRUNED"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.instance.clone(),
            self.outcome.clone(),
            self.snapshot.clone().unwrap_or_default(),
            self.deleted.join(","),
        ]
    }
}

/// One tick of the time machine for every instance that opts in.
/// Without `wait`, an instance another Terrarium process is working on
/// (a rollback, say) is skipped this tick and reported busy.
pub fn auto(lxd: &Lxd, policy: &Policy, now: DateTime<Utc>, wait: bool) -> Result<Vec<Tick>> {
    let mut out = Vec::new();
    for i in lxd.instances()? {
        let tick = |outcome: &str| Tick {
            instance: i.name.clone(),
            snapshot: None,
            outcome: outcome.into(),
            deleted: Vec::new(),
        };
        if i.config.get(OPT_OUT_KEY).map(String::as_str) == Some("off") {
            out.push(tick("opted_out"));
            continue;
        }
        // A rollback in progress owns the instance: skip it this tick.
        let _lock = match lock_instance(lxd.project(), &i.name, wait) {
            Ok(l) => l,
            Err(Error::LockBusy(_)) => {
                out.push(tick("busy"));
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut t = tick("not_due");
        // Read again under the lock: a rollback may have just finished.
        let i = lxd.instance_full(&i.name)?;
        // An unreadable holds record stops this instance's tick (nothing
        // is pruned without knowing what is held), not every instance's.
        let snaps = match snaps_of(lxd, &i) {
            Ok(s) => s,
            Err(e) => {
                t.outcome = format!("failed: {e}");
                out.push(t);
                continue;
            }
        };
        if let Some(tier) = retention::due_tier(&snaps, now, policy) {
            let name = retention::auto_name(tier, now);
            match take(lxd, &i.name, &name, i.is_running()) {
                Ok(()) => {
                    t.snapshot = Some(name);
                    t.outcome = "snapshotted".into();
                }
                Err(e) => {
                    t.outcome = format!("failed: {e}");
                    out.push(t);
                    continue;
                }
            }
        }
        let fresh = lxd.instance_full(&i.name)?;
        t.deleted = prune_instance(lxd, &fresh, now, policy, PruneMode::Policy)?
            .into_iter()
            .filter(|p| p.deleted)
            .map(|p| p.decision.name)
            .collect();
        out.push(t);
    }
    Ok(out)
}

/// The timer and service for `trm-snap auto` (every 15 minutes by default).
pub fn units(binary: &std::path::Path, every_minutes: u32) -> Vec<crate::systemd::Unit> {
    let bin = binary.display();
    vec![
        crate::systemd::Unit {
            name: "trm-snap-auto.service".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium time machine: scheduled snapshots and retention\n\n[Service]\nType=oneshot\nExecStart={bin} auto --format json\n"
            ),
            enable: false,
        },
        crate::systemd::Unit {
            name: "trm-snap-auto.timer".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium time machine every {every_minutes} minutes\n\n[Timer]\nOnCalendar=*:0/{every_minutes}\nPersistent=true\n\n[Install]\nWantedBy=timers.target\n"
            ),
            enable: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confirmed_prune_deletes_only_what_was_confirmed_and_is_still_due() {
        let d = |keep: bool| retention::Decision {
            name: "s".into(),
            keep,
            rule: "rule".into(),
        };
        // (policy now says keep?, was it in the confirmed deletions?) -> keep?
        for (keep_now, confirmed, want_keep, rule) in [
            (false, true, false, "rule"),
            (false, false, true, "kept: not in the confirmed plan"),
            (
                true,
                true,
                true,
                "kept: rule (changed since the plan was confirmed)",
            ),
            (true, false, true, "rule"),
        ] {
            let mut x = d(keep_now);
            only_if_confirmed(&mut x, confirmed);
            assert_eq!(
                (x.keep, x.rule.as_str()),
                (want_keep, rule),
                "{keep_now} {confirmed}"
            );
        }
    }

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
    fn before_rollback_names_stay_valid_instance_names() {
        let now = parse_time("2026-11-28T23:00:00Z");
        let long = "a".repeat(63);
        for n in ["web", long.as_str(), "x-"] {
            let b = before_name(n, now, 1);
            validate_instance_name(&b).unwrap();
            assert!(b.ends_with("-before-rollback-20261128230000"), "{b}");
            let b2 = before_name(n, now, 2);
            validate_instance_name(&b2).unwrap();
            assert!(b2.ends_with("-before-rollback-20261128230000-2"), "{b2}");
        }
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
