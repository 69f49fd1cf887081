//! The time machine's scheduled tick: the due snapshot for every instance
//! that opts in, then retention; and the systemd timer that runs it.

use chrono::{DateTime, Timelike, Utc};
use serde::Serialize;

use super::prune::{prune_instance, PruneMode};
use super::retention::{self, Policy};
use super::{lock_instance, snaps_of, take};
use crate::error::{Error, Result};
use crate::fs::OnBusy;
use crate::lxd::Lxd;
use crate::output::Row;

/// `off` opts an instance out of automatic snapshots.
const OPT_OUT_KEY: &str = "user.terrarium.snapshots";

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub instance: String,
    /// The snapshot taken, if one was due.
    pub snapshot: Option<String>,
    /// `snapshotted`, `not_due`, `opted_out`, `busy` or `failed: ...`; for
    /// a box's lifetime `stopped_idle`, `frozen_idle` or `deleted_at_deadline`.
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

/// One tick of the time machine for every instance that opts in. With
/// [`OnBusy::Fail`], an instance another Terrarium process is working on
/// (a rollback, say) is skipped this tick and reported busy.
pub fn auto(lxd: &Lxd, policy: &Policy, now: DateTime<Utc>, on_busy: OnBusy) -> Result<Vec<Tick>> {
    crate::runs::recorded(
        lxd.project(),
        crate::runs::Job::Snapshots,
        || tick_all(lxd, policy, now, on_busy),
        |ticks| {
            ticks
                .iter()
                .filter(|t| {
                    t.outcome.starts_with("failed") || t.outcome.starts_with("kept_export_failed")
                })
                .map(|t| format!("{}: {}", t.instance, t.outcome))
                .collect()
        },
    )
}

fn tick_all(lxd: &Lxd, policy: &Policy, now: DateTime<Utc>, on_busy: OnBusy) -> Result<Vec<Tick>> {
    // On a cluster every member's timer ticks; one member does the work.
    if let Some(leader) = crate::cluster::schedule_elsewhere(lxd)? {
        return Ok(vec![Tick {
            instance: String::new(),
            snapshot: None,
            outcome: format!(
                "{}: {leader} runs the cluster's schedule",
                crate::cluster::ELSEWHERE
            ),
            deleted: vec![],
        }]);
    }
    // Idle stops and deadlines first: a box deleted now is not snapshotted.
    let mut out: Vec<Tick> = crate::agents::lifetime::tick(lxd, now)?
        .into_iter()
        .map(|(instance, done)| Tick {
            instance,
            snapshot: None,
            outcome: done.outcome(),
            deleted: Vec::new(),
        })
        .collect();
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
        let _lock = match lock_instance(lxd, &i.name, on_busy) {
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
            match take(lxd, &i, &name) {
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

impl crate::output::Human for Tick {
    fn human(&self) -> String {
        self.cells().join("  ").trim_end().to_string()
    }
}

/// How long until the next tick of a timer every `minutes` on the clock
/// (`*:0/N`, as the systemd timer): never zero, so a tick that ends on a
/// boundary does not run twice.
pub fn until_next_tick(now: DateTime<Utc>, minutes: u32) -> std::time::Duration {
    let period = i64::from(minutes.max(1)) * 60;
    let into_hour = i64::from(now.minute()) * 60 + i64::from(now.second());
    // The hour's last slot may be short (every 7: :56, then :00).
    let next = ((into_hour / period + 1) * period).min(3600);
    std::time::Duration::from_secs((next - into_hour).max(1) as u64)
}

/// The timer and service for `trm-snap auto` (every 15 minutes by default).
pub fn units(binary: &std::path::Path, every_minutes: u32) -> Vec<crate::systemd::Unit> {
    let bin = binary.display();
    vec![
        crate::systemd::Unit {
            name: "trm-snap-auto.service".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium time machine: scheduled snapshots, retention, off-site exports and restore drills\n\n[Service]\nType=oneshot\nExecStart={bin} auto --format json\n"
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
    fn the_next_tick_is_on_the_clock() {
        let at = |h, m, s| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 2, h, m, s).unwrap();
        assert_eq!(until_next_tick(at(10, 0, 0), 15).as_secs(), 900);
        assert_eq!(until_next_tick(at(10, 14, 59), 15).as_secs(), 1);
        assert_eq!(until_next_tick(at(10, 52, 0), 15).as_secs(), 480);
        assert_eq!(
            until_next_tick(at(10, 56, 30), 7).as_secs(),
            210,
            "the hour's short slot"
        );
    }
}
