//! Retention applied: what the policy would delete, and deleting exactly
//! the plan the user confirmed.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::retention::{self, Decision, Policy};
use super::{lock_instance, one_or_all, snaps_of, zfs_snapshot};
use crate::error::Result;
use crate::fs::OnBusy;
use crate::lxd::{Instance, Lxd};
use crate::output::Row;

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

pub(super) fn prune_instance(
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
pub(super) enum PruneMode {
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
    on_busy: OnBusy,
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
        let _lock = lock_instance(lxd, name, on_busy)?;
        let i = lxd.instance_full(name)?;
        let mode = PruneMode::Confirmed(doomed.clone());
        out.extend(prune_instance(lxd, &i, now, policy, mode)?);
    }
    Ok(out)
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
}
