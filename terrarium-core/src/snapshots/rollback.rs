//! Rollback that is itself undoable: a safety snapshot of the current
//! state comes first, and newer snapshots are never destroyed (restored
//! in place where the driver keeps them, else through a copy that takes
//! the instance's name while the original is kept, stopped, beside it).

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::restore::strip_exposure;
use super::{
    drivers, holds, lock_instance, parse_time, retention, root_pool, snapshot_names, take,
    unique_name,
};
use crate::error::{Error, Result};
use crate::expose::labels;
use crate::fs::OnBusy;
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::output::Human;

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
    on_busy: OnBusy,
) -> Result<Rollback> {
    validate_instance_name(name)?;
    let _lock = if dry_run {
        None
    } else {
        Some(lock_instance(lxd.project(), name, on_busy)?)
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
    take(lxd, &i, &safety)?;
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
