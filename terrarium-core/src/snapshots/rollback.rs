//! Rollback that is itself undoable: a safety snapshot of the current
//! state comes first, and newer snapshots are never destroyed (restored
//! in place where the driver keeps them, else through a copy that takes
//! the instance's name while the original is kept, stopped, beside it).

use std::collections::BTreeSet;

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

/// What a rollback is decided from, as read from LXD.
struct Facts {
    name: String,
    /// (created, name), oldest first.
    snaps: Vec<(DateTime<Utc>, String)>,
    running: bool,
    restore_older: drivers::RestoreOlder,
}

fn read(lxd: &Lxd, name: &str) -> Result<Facts> {
    let i = lxd.instance_full(name)?;
    let mut snaps: Vec<(DateTime<Utc>, String)> = i
        .snapshots
        .iter()
        .flatten()
        .map(|s| (parse_time(&s.created_at), s.name.clone()))
        .collect();
    snaps.sort();
    let pool = root_pool(lxd, &i)?;
    let driver = pool.as_ref().map(|p| p.driver.as_str()).unwrap_or_default();
    let remove_snapshots = pool
        .as_ref()
        .and_then(|p| p.config.get("volume.zfs.remove_snapshots"))
        .is_some_and(|v| v == "true");
    Ok(Facts {
        name: name.into(),
        snaps,
        running: i.is_running(),
        restore_older: drivers::restore_older(driver, remove_snapshots),
    })
}

/// Decide a rollback to `to` (default: the newest snapshot): the method,
/// the safety snapshot's name and, with copy-and-swap, the name the
/// current instance is kept under (`free` tells whether one is unused).
/// `--to last-checkpoint`: the newest snapshot `trm exec --checkpoint` took.
pub const LAST_CHECKPOINT: &str = "last-checkpoint";

fn decide(
    f: &Facts,
    to: Option<&str>,
    swap: bool,
    now: DateTime<Utc>,
    free: impl Fn(&str) -> bool,
) -> Result<Rollback> {
    let name = f.name.as_str();
    let target = match to {
        Some(LAST_CHECKPOINT) => f
            .snaps
            .iter()
            .rev()
            .find(|(_, n)| retention::kind_of(n) == retention::Kind::Checkpoint)
            .map(|(_, n)| n.clone())
            .ok_or_else(|| {
                Error::WrongState(format!(
                    "instance '{name}' has no checkpoint (`trm exec --checkpoint {name} -- CMD` takes one)"
                ))
            })?,
        Some(t) if f.snaps.iter().any(|(_, n)| n == t) => t.to_string(),
        Some(t) => {
            return Err(Error::NotFound {
                kind: "snapshot",
                name: format!("{name}/{t}"),
            })
        }
        None => f.snaps.last().map(|(_, n)| n.clone()).ok_or_else(|| {
            Error::WrongState(format!("instance '{name}' has no snapshot to roll back to"))
        })?,
    };
    let newer: Vec<&str> = f
        .snaps
        .iter()
        .skip_while(|(_, n)| *n != target)
        .skip(1)
        .map(|(_, n)| n.as_str())
        .collect();
    // The safety snapshot is taken first, so it is always newer than the
    // target: the method is chosen with that in mind (see `drivers`).
    let method = drivers::method(f.restore_older, swap);
    let safety = unique_name(&retention::safety_name(now), |n| {
        f.snaps.iter().any(|(_, s)| s == n)
    });
    let was_running = f.running;
    let kept_as = match method {
        Method::CopyAndSwap => Some(free_before_name(name, now, free)),
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
    Ok(Rollback {
        instance: name.into(),
        target,
        method,
        dry_run: true,
        was_running,
        safety_snapshot: safety,
        kept_as,
        kept_stripped: Vec::new(),
        steps,
    })
}

/// Plan stepping the instance back to `to` (default: its newest
/// snapshot), changing nothing: what `--dry-run` prints and the user
/// confirms. A safety snapshot comes first; newer snapshots are never
/// destroyed: on ZFS, where LXD would have to delete them, or with
/// `swap`, restore through a copy.
pub fn rollback_plan(lxd: &Lxd, name: &str, to: Option<&str>, swap: bool) -> Result<Rollback> {
    validate_instance_name(name)?;
    let facts = read(lxd, name)?;
    decide(&facts, to, swap, Utc::now(), |c| lxd.instance(c).is_err())
}

/// Why a plan no longer fits the instance as read again under its lock.
fn changed_since(
    plan: &Rollback,
    snapshots: &BTreeSet<String>,
    running: bool,
    kept_as_free: bool,
) -> Option<String> {
    if running != plan.was_running {
        Some(
            if running {
                "it was started"
            } else {
                "it was stopped"
            }
            .into(),
        )
    } else if snapshots.contains(&plan.safety_snapshot) {
        Some(format!("a snapshot {} exists now", plan.safety_snapshot))
    } else if !kept_as_free {
        Some(format!(
            "an instance {} exists now",
            plan.kept_as.as_deref().unwrap_or_default()
        ))
    } else {
        None
    }
}

/// Carry out a plan from [`rollback_plan`], exactly that plan, under the
/// instance's lock; if the instance changed since in a way the plan did
/// not foresee, nothing is done.
pub fn rollback_apply(lxd: &Lxd, plan: &Rollback, on_busy: OnBusy) -> Result<Rollback> {
    let name = plan.instance.as_str();
    validate_instance_name(name)?;
    let _lock = lock_instance(lxd, name, on_busy)?;
    let i = lxd.instance_full(name)?;
    let existing = snapshot_names(&i);
    let target = plan.target.as_str();
    if !existing.contains(target) {
        return Err(Error::NotFound {
            kind: "snapshot",
            name: format!("{name}/{target}"),
        });
    }
    let kept_as = plan.kept_as.as_deref();
    let kept_as_free = kept_as.is_none_or(|k| lxd.instance(k).is_err());
    if let Some(why) = changed_since(plan, &existing, i.is_running(), kept_as_free) {
        return Err(Error::WrongState(format!(
            "'{name}' changed since the rollback was planned ({why}); nothing was done: run the rollback again"
        )));
    }
    let safety = plan.safety_snapshot.as_str();
    let was_running = plan.was_running;
    let mut report = Rollback {
        dry_run: false,
        ..plan.clone()
    };
    take(lxd, &i, safety)?;
    if was_running {
        lxd.stop(name, false).map_err(|e| {
            Error::WrongState(format!(
                "could not stop '{name}' ({e}); nothing was rolled back (the safety snapshot {safety} was taken)"
            ))
        })?;
    }
    let restored = match (plan.method, kept_as) {
        (Method::CopyAndSwap, Some(old)) => swap_in(lxd, name, target, old),
        _ => lxd.restore(name, target),
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
    // An agent box's kept original leaves the bridge to the copy.
    let kept = kept_as.map(|old| {
        holds::rename(lxd.project(), name, old)
            .and_then(|()| strip_exposure(lxd, old))
            .and_then(|mut s| {
                s.extend(crate::agents::sandbox::rehome(lxd, old)?);
                Ok(s)
            })
    });
    if was_running {
        lxd.start(name)?;
    }
    report.kept_stripped = kept.transpose()?.unwrap_or_default();
    // The undo the report offers must exist: never claim one LXD removed.
    let undo_on = kept_as.unwrap_or(name);
    if !snapshot_names(&lxd.instance_full(undo_on)?).contains(safety) {
        return Err(Error::WrongState(format!(
            "'{name}' was rolled back to {target}, but the storage driver removed the safety snapshot {undo_on}/{safety}: this rollback cannot be undone"
        )));
    }
    Ok(report)
}

/// A name for the instance a copy-and-swap keeps: one not in use.
fn free_before_name(name: &str, now: DateTime<Utc>, free: impl Fn(&str) -> bool) -> String {
    (1u32..)
        .map(|n| before_name(name, now, n))
        .find(|c| free(c))
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

    fn facts(snaps: &[&str], running: bool, restore_older: drivers::RestoreOlder) -> Facts {
        let day = |d: usize| parse_time(&format!("2026-01-{:02}T00:00:00Z", d + 1));
        Facts {
            name: "web".into(),
            snaps: snaps
                .iter()
                .enumerate()
                .map(|(d, n)| (day(d), n.to_string()))
                .collect(),
            running,
            restore_older,
        }
    }

    #[test]
    fn last_checkpoint_is_the_newest_checkpoint_not_the_newest_snapshot() {
        let now = parse_time("2026-11-28T23:00:00Z");
        let f = facts(
            &[
                "trm-checkpoint-20260101T000000Z",
                "trm-checkpoint-20260102T000000Z",
                "trm-auto-hourly-20260103T000000Z",
            ],
            false,
            drivers::RestoreOlder::KeepsNewer,
        );
        let plan = decide(&f, Some(LAST_CHECKPOINT), false, now, |_| true).unwrap();
        assert_eq!(plan.target, "trm-checkpoint-20260102T000000Z");
        let none = facts(&["trm-manual-x"], false, drivers::RestoreOlder::KeepsNewer);
        let e = decide(&none, Some(LAST_CHECKPOINT), false, now, |_| true).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::WRONG_STATE);
        assert!(e.to_string().contains("no checkpoint"), "{e}");
    }

    /// One row: what was read, what was asked, what the plan must say.
    struct Case {
        snaps: &'static [&'static str],
        running: bool,
        driver: drivers::RestoreOlder,
        to: Option<&'static str>,
        swap: bool,
        target: &'static str,
        method: Method,
        /// Between the safety snapshot and the stop, and the start.
        middle: Vec<String>,
    }

    #[test]
    fn a_plan_says_every_step_and_names_the_undo() {
        use drivers::RestoreOlder::{KeepsNewer, Refuses};
        let now = parse_time("2026-11-28T23:00:00Z");
        let safety = retention::safety_name(now);
        let kept = before_name("web", now, 1);
        let swap_via = |target: &str| {
            vec![
                format!("copy web/{target} to a new instance"),
                format!("rename web (with all its snapshots and holds, {safety} included) to {kept}, kept stopped"),
                "rename the copy to web".into(),
                format!("take the exposure ({} and proxy devices) from {kept}, so only web serves its routes", labels::KEY),
            ]
        };
        let cases = [
            Case {
                snaps: &["a", "b", "c"],
                running: true,
                driver: KeepsNewer,
                to: Some("a"),
                swap: false,
                target: "a",
                method: Method::Restore,
                middle: vec![format!(
                    "restore web to a (newer snapshots kept: b, c, {safety})"
                )],
            },
            Case {
                snaps: &["a", "b"],
                running: false,
                driver: KeepsNewer,
                to: None,
                swap: false,
                target: "b",
                method: Method::Restore,
                middle: vec![format!("restore web to b (newer snapshots kept: {safety})")],
            },
            // ZFS: even to the newest, the safety snapshot is newer by then.
            Case {
                snaps: &["a", "b"],
                running: false,
                driver: Refuses,
                to: Some("b"),
                swap: false,
                target: "b",
                method: Method::CopyAndSwap,
                middle: swap_via("b"),
            },
            Case {
                snaps: &["a"],
                running: true,
                driver: KeepsNewer,
                to: Some("a"),
                swap: true,
                target: "a",
                method: Method::CopyAndSwap,
                middle: swap_via("a"),
            },
        ];
        for c in cases {
            let what = format!(
                "{:?} running={} {:?} to={:?} swap={}",
                c.snaps, c.running, c.driver, c.to, c.swap
            );
            let f = facts(c.snaps, c.running, c.driver);
            let p = decide(&f, c.to, c.swap, now, |_| true).unwrap();
            assert_eq!(
                (p.target.as_str(), p.method),
                (c.target, c.method),
                "{what}"
            );
            let mut steps = vec![format!("snapshot the current state as web/{safety}")];
            if c.running {
                steps.push("stop web".into());
            }
            steps.extend(c.middle);
            if c.running {
                steps.push("start web".into());
            }
            assert_eq!(p.steps, steps, "{what}");
            assert!(p.dry_run && p.kept_stripped.is_empty(), "{what}");
            assert_eq!(p.was_running, c.running, "{what}");
            assert_eq!(p.safety_snapshot, safety, "{what}");
            let want_kept = (c.method == Method::CopyAndSwap).then(|| kept.clone());
            assert_eq!(p.kept_as, want_kept, "{what}");
        }
    }

    #[test]
    fn a_plan_takes_free_names_and_refuses_a_missing_target() {
        let now = parse_time("2026-11-28T23:00:00Z");
        let safety = retention::safety_name(now);
        let f = facts(&["a", &safety], false, drivers::RestoreOlder::Refuses);
        let first = before_name("web", now, 1);
        let p = decide(&f, Some("a"), false, now, |c| c != first).unwrap();
        assert_eq!(p.safety_snapshot, format!("{safety}-2"));
        assert_eq!(p.kept_as, Some(before_name("web", now, 2)));

        let err = decide(&f, Some("nope"), false, now, |_| true).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
        assert!(err.to_string().contains("web/nope"), "{err}");
        let none = facts(&[], false, drivers::RestoreOlder::KeepsNewer);
        let err = decide(&none, None, false, now, |_| true).unwrap_err();
        assert!(
            err.to_string().contains("no snapshot to roll back to"),
            "{err}"
        );
    }

    #[test]
    fn a_confirmed_plan_is_applied_only_while_it_still_fits() {
        let now = parse_time("2026-11-28T23:00:00Z");
        let f = facts(&["a"], true, drivers::RestoreOlder::Refuses);
        let plan = decide(&f, None, false, now, |_| true).unwrap();
        let safety = plan.safety_snapshot.clone();
        let snaps = |extra: &[&str]| -> BTreeSet<String> {
            ["a"].iter().chain(extra).map(|s| s.to_string()).collect()
        };
        // (snapshots now, running now, kept-as name free) -> why it no longer fits
        let cases = [
            (snaps(&[]), true, true, None),
            (snaps(&["b"]), true, true, None),
            (snaps(&[]), false, true, Some("it was stopped".to_string())),
            (
                snaps(&[&safety]),
                true,
                true,
                Some(format!("a snapshot {safety} exists now")),
            ),
            (
                snaps(&[]),
                true,
                false,
                Some(format!(
                    "an instance {} exists now",
                    before_name("web", now, 1)
                )),
            ),
        ];
        for (existing, running, free, want) in cases {
            let got = changed_since(&plan, &existing, running, free);
            assert_eq!(got, want, "{existing:?} running={running} free={free}");
        }
        let stopped = Rollback {
            was_running: false,
            ..plan.clone()
        };
        assert_eq!(
            changed_since(&stopped, &snaps(&[]), true, true).as_deref(),
            Some("it was started")
        );
    }
}
