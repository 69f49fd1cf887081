//! Exports that happen by themselves: each tick of the time machine
//! exports every instance whose newest off-site backup is older than the
//! schedule's interval, from its newest snapshot that is not a frequent
//! one (upstream makes the same choice: 15-minute snapshots stay local),
//! then applies off-site retention to what it exported. A failed export is
//! said (its outcome, the tick's exit code, `trm status`) and tried again
//! at the next tick.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::lxd::Instance;
use crate::runs::Backup;
use crate::snapshots::retention::{kind_of, Kind, Tier};
use crate::snapshots::Tick;

/// `user.terrarium.offsite=off` keeps an instance out of scheduled exports.
pub const OPT_OUT_KEY: &str = "user.terrarium.offsite";
/// Exports' own temporary copies are never exported.
const TEMPORARY: &[&str] = &["trm-export-", "trm-golden-", "trm-verify-"];

/// `[offsite]` in terrarium.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Schedule {
    /// An instance is exported once its newest backup is this old; 0 turns
    /// scheduled exports off.
    pub every_minutes: u32,
    /// On ZFS pools, export `zfs send -i` chains with a full stream every
    /// N; 0 (the default) exports through LXD everywhere. A chain restores
    /// onto a dataset (`trm-snap import --to-dataset`), not as an instance.
    pub zfs_full_every: u32,
    /// Restore drills (`trm-snap verify --all`) every N days; 0: none.
    pub verify_every_days: u32,
}

impl Default for Schedule {
    fn default() -> Self {
        Schedule {
            every_minutes: 60,
            zfs_full_every: 0,
            verify_every_days: 0,
        }
    }
}

impl Schedule {
    pub fn every(&self) -> Option<Duration> {
        (self.every_minutes > 0).then(|| Duration::minutes(i64::from(self.every_minutes)))
    }
}

/// What a tick decides for one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Export {
        snapshot: String,
    },
    NotDue,
    OptedOut,
    /// No snapshot newer than the last backup that may be exported.
    NothingNew,
}

impl Decision {
    pub fn outcome(&self) -> String {
        match self {
            Decision::Export { snapshot } => format!("export_due: {snapshot}"),
            Decision::NotDue => "export_not_due".into(),
            Decision::OptedOut => "export_opted_out".into(),
            Decision::NothingNew => "export_nothing_new".into(),
        }
    }
}

/// An export's or a golden image's own temporary copy.
pub fn is_temporary(name: &str) -> bool {
    TEMPORARY.iter().any(|p| name.starts_with(p))
}

fn parse(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// May this snapshot go off-site? Hourly, daily, monthly and manual ones;
/// never frequent ones, safety snapshots or checkpoints.
fn exportable(name: &str) -> bool {
    matches!(
        kind_of(name),
        Kind::Auto(Tier::Hourly | Tier::Daily | Tier::Monthly) | Kind::Manual
    )
}

/// Decide, as of `now`, what each instance's tick does (pure).
pub fn decide(
    instances: &[Instance],
    backups: &std::collections::BTreeMap<String, Backup>,
    every: Duration,
    now: DateTime<Utc>,
) -> Vec<(String, Decision)> {
    instances
        .iter()
        .filter(|i| !is_temporary(&i.name))
        .map(|i| {
            let last = backups.get(&i.name).and_then(|b| parse(&b.created));
            let d = if i.config.get(OPT_OUT_KEY).map(String::as_str) == Some("off") {
                Decision::OptedOut
            } else if last.is_some_and(|t| now - t < every) {
                Decision::NotDue
            } else {
                let newest = i
                    .snapshots
                    .iter()
                    .flatten()
                    .filter(|s| exportable(&s.name))
                    .filter_map(|s| Some((parse(&s.created_at)?, s)))
                    .filter(|(t, _)| last.is_none_or(|l| *t > l))
                    .max_by_key(|(t, _)| *t);
                match newest {
                    Some((_, s)) => Decision::Export {
                        snapshot: s.name.clone(),
                    },
                    None => Decision::NothingNew,
                }
            };
            (i.name.clone(), d)
        })
        .collect()
}

/// One whole tick of the time machine: snapshots, retention and
/// lifetimes (`snapshots::auto`), then, where a bucket is set up and the
/// schedule is on, each due export and the bucket's retention for it.
pub fn tick(
    lxd: &crate::lxd::Lxd,
    settings: &crate::settings::Settings,
    now: DateTime<Utc>,
    on_busy: crate::fs::OnBusy,
) -> crate::Result<Vec<Tick>> {
    let mut ticks = crate::snapshots::auto(lxd, &settings.snapshots, now, on_busy)?;
    if ticks
        .iter()
        .any(|t| t.outcome.starts_with(crate::cluster::ELSEWHERE))
    {
        return Ok(ticks);
    }
    let Some(s3) = super::S3Settings::load()? else {
        return Ok(ticks);
    };
    if let Some(every) = settings.offsite.every() {
        ticks.extend(exports(lxd, settings, &s3, every, now, on_busy)?);
    }
    ticks.extend(drills(lxd, settings, &s3, now));
    Ok(ticks)
}

/// The due exports, each followed by the bucket's retention for it.
fn exports(
    lxd: &crate::lxd::Lxd,
    settings: &crate::settings::Settings,
    s3: &super::S3Settings,
    every: Duration,
    now: DateTime<Utc>,
    on_busy: crate::fs::OnBusy,
) -> crate::Result<Vec<Tick>> {
    let mut ticks = Vec::new();
    crate::runs::note_period(
        lxd.project(),
        crate::runs::Job::Export,
        every.num_seconds() as u64,
    );
    let instances = lxd.instances()?;
    let backups = crate::runs::backups(lxd.project());
    for (name, d) in decide(&instances, &backups, every, now) {
        let Decision::Export { snapshot } = d else {
            continue;
        };
        let req = super::export::Request {
            name: name.clone(),
            snapshot: Some(snapshot.clone()),
            optimized: false,
            part_size_mib: None,
            parallel: None,
            on_busy,
            // A chain link is a snapshot of its own, taken now.
            zfs_full_every: settings.offsite.zfs_full_every,
        };
        let progress = std::sync::Arc::new(super::upload::NoProgress);
        let mut t = Tick {
            instance: name.clone(),
            snapshot: Some(snapshot),
            outcome: String::new(),
            deleted: Vec::new(),
        };
        match super::export::export(lxd, s3, &req, progress) {
            Ok(e) => {
                t.outcome = format!("exported: {}", e.id);
                // The bucket's retention, for this instance only.
                match super::prune::prune_plan(s3, Some(&name), lxd.project()).and_then(
                    |(backups, decisions)| {
                        super::prune::apply(s3, &backups, &decisions)?;
                        Ok(decisions
                            .into_iter()
                            .filter(|d| !d.keep)
                            .map(|d| d.id)
                            .collect())
                    },
                ) {
                    Ok(gone) => t.deleted = gone,
                    Err(e) => t
                        .outcome
                        .push_str(&format!("; off-site retention failed: {e}")),
                }
            }
            // Another export holds the bucket: this one comes next tick.
            Err(crate::Error::LockBusy(_)) => t.outcome = "export_busy".into(),
            Err(e) => t.outcome = format!("export_failed: {e}"),
        }
        ticks.push(t);
    }
    Ok(ticks)
}

/// The restore drills, when `verify_every_days` is on and the last drill
/// is that old (or there was none): one row an instance. A drill run
/// that could not start (the bucket down) is a failed row, never the
/// tick's error.
fn drills(
    lxd: &crate::lxd::Lxd,
    settings: &crate::settings::Settings,
    s3: &super::S3Settings,
    now: DateTime<Utc>,
) -> Vec<Tick> {
    let days = settings.offsite.verify_every_days;
    let project = lxd.project();
    if days == 0 {
        crate::runs::forget_period(project, crate::runs::Job::Verify);
        return Vec::new();
    }
    crate::runs::note_period(project, crate::runs::Job::Verify, u64::from(days) * 86_400);
    let last = crate::runs::last(project, crate::runs::Job::Verify)
        .map(|r| (r.started, r.ok && r.problems.is_empty()));
    if !drill_due(last.as_ref().map(|(t, ok)| (t.as_str(), *ok)), days, now) {
        return Vec::new();
    }
    let drills = match super::import::verify_all(
        lxd,
        s3,
        None,
        Some(&settings.storage_pool),
        &settings.bridge,
    ) {
        Ok(d) => d,
        Err(e) => {
            return vec![Tick {
                instance: String::new(),
                snapshot: None,
                outcome: format!("verify_failed: {e}"),
                deleted: Vec::new(),
            }]
        }
    };
    drills
        .into_iter()
        .map(|d| Tick {
            instance: d.instance.clone(),
            snapshot: None,
            outcome: if d.ok {
                format!("verified: {}", d.backup)
            } else {
                format!(
                    "verify_failed: {}",
                    d.checks.last().map(String::as_str).unwrap_or("")
                )
            },
            deleted: Vec::new(),
        })
        .collect()
}

/// One row of `trm-snap schedule status`: a unit file, or a job the
/// tick runs (snapshots, exports, drills) with its interval and last run.
#[derive(Debug, Clone, Serialize)]
pub struct ScheduleRow {
    pub name: String,
    /// `unit` or `job`.
    pub kind: String,
    pub every: String,
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// Unit rows: the unit file is there, and `systemctl is-active`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub installed: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active: Option<String>,
}

impl crate::output::Row for ScheduleRow {
    fn headers() -> &'static [&'static str] {
        &["NAME", "KIND", "EVERY", "STATE", "LAST RUN"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.kind.clone(),
            self.every.clone(),
            self.state.clone(),
            self.last_run.clone().unwrap_or_else(|| "-".into()),
        ]
    }
}

/// The units, then what each tick runs and when it last did.
pub fn schedule_rows(
    project: &str,
    offsite: &Schedule,
    bucket: bool,
    units: Vec<crate::systemd::UnitStatus>,
) -> Vec<ScheduleRow> {
    use crate::runs::Job;
    let mut rows: Vec<ScheduleRow> = units
        .into_iter()
        .map(|u| ScheduleRow {
            name: u.name,
            kind: "unit".into(),
            every: String::new(),
            state: format!(
                "{}, {}",
                if u.installed {
                    "installed"
                } else {
                    "not installed"
                },
                u.active
            ),
            last_run: None,
            installed: Some(u.installed),
            active: Some(u.active),
        })
        .collect();
    let tick = crate::runs::period(project, Job::Snapshots)
        .map(|s| format!("{} min", s / 60))
        .unwrap_or_else(|| {
            "not scheduled (install the timer, or `trm-snap auto --every 15`)".into()
        });
    let export = if !bucket {
        "off: no bucket (`trm-snap s3 set`)".to_string()
    } else if offsite.every_minutes == 0 {
        "off ([offsite] every_minutes = 0)".into()
    } else {
        let chains = if offsite.zfs_full_every > 0 {
            format!(
                "; on ZFS pools zfs send -i, a full stream every {}",
                offsite.zfs_full_every
            )
        } else {
            String::new()
        };
        format!(
            "each instance every {} min, checked each tick{chains}",
            offsite.every_minutes
        )
    };
    let verify = if !bucket {
        "off: no bucket".to_string()
    } else if offsite.verify_every_days == 0 {
        "off ([offsite] verify_every_days = 30 for monthly drills)".into()
    } else {
        format!(
            "every {} days, checked each tick",
            offsite.verify_every_days
        )
    };
    for (job, every) in [
        (Job::Snapshots, tick),
        (Job::Export, export),
        (Job::Verify, verify),
    ] {
        let last = crate::runs::last(project, job);
        rows.push(ScheduleRow {
            name: job.name().into(),
            kind: "job".into(),
            every,
            state: match &last {
                None => "never ran".into(),
                Some(r) if !r.ok => format!("last run failed: {}", r.problems.join("; ")),
                Some(r) if !r.problems.is_empty() => format!("last run: {}", r.problems.join("; ")),
                Some(_) => "last run ok".into(),
            },
            last_run: last.map(|r| r.finished),
            installed: None,
            active: None,
        });
    }
    rows
}

/// A drill is due `days` after the last one started, or a day after one
/// that failed (`(started, passed)`); a record that does not parse counts
/// as none.
pub fn drill_due(last: Option<(&str, bool)>, days: u32, now: DateTime<Utc>) -> bool {
    let Some((started, passed)) = last else {
        return days > 0;
    };
    let Ok(t) = DateTime::parse_from_rfc3339(started) else {
        return days > 0;
    };
    let wait = if passed { days.max(1) } else { 1 };
    days > 0 && now - t.with_timezone(&Utc) >= Duration::days(i64::from(wait))
}

/// The rows of a tick that failed (an export, a snapshot): the tick's exit
/// code says so.
pub fn failures(ticks: &[Tick]) -> usize {
    ticks
        .iter()
        .filter(|t| {
            t.outcome.starts_with("failed")
                || t.outcome.starts_with("export_failed")
                || t.outcome.starts_with("verify_failed")
                || t.outcome.contains("retention failed")
        })
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(name: &str, snaps: &[(&str, DateTime<Utc>)], config: &[(&str, &str)]) -> Instance {
        serde_json::from_value(serde_json::json!({
            "name": name,
            "status": "Running",
            "config": config.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            "snapshots": snaps
                .iter()
                .map(|(n, t)| serde_json::json!({"name": n, "created_at": crate::time::utc(t)}))
                .collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn due_instances_export_their_newest_non_frequent_snapshot() {
        let now = Utc::now();
        let h = |n: i64| now - Duration::minutes(n);
        let every = Duration::hours(1);
        let backups: std::collections::BTreeMap<String, Backup> = [
            (
                "fresh".to_string(),
                Backup {
                    id: "b1".into(),
                    created: crate::time::utc(&h(10)),
                },
            ),
            (
                "stale".to_string(),
                Backup {
                    id: "b2".into(),
                    created: crate::time::utc(&h(90)),
                },
            ),
            (
                "quiet".to_string(),
                Backup {
                    id: "b3".into(),
                    created: crate::time::utc(&h(90)),
                },
            ),
        ]
        .into();
        let list = vec![
            inst("fresh", &[("trm-auto-hourly-20261202T010000Z", h(5))], &[]),
            // The frequent snapshot is newer, but stays local.
            inst(
                "stale",
                &[
                    ("trm-auto-hourly-20261202T010000Z", h(30)),
                    ("trm-auto-frequent-20261202T014500Z", h(2)),
                ],
                &[],
            ),
            // Nothing new since its backup.
            inst("quiet", &[("trm-auto-daily-20261201T000000Z", h(200))], &[]),
            inst(
                "never",
                &[
                    ("trm-manual-20261202T000000Z", h(60)),
                    ("trm-safety-x", h(1)),
                ],
                &[],
            ),
            inst(
                "off",
                &[("trm-auto-hourly-20261202T020000Z", h(1))],
                &[(OPT_OUT_KEY, "off")],
            ),
            inst(
                "trm-export-abc123",
                &[("trm-auto-hourly-20261202T020000Z", h(1))],
                &[],
            ),
        ];
        let d: std::collections::BTreeMap<String, Decision> =
            decide(&list, &backups, every, now).into_iter().collect();
        assert_eq!(d["fresh"], Decision::NotDue);
        assert_eq!(
            d["stale"],
            Decision::Export {
                snapshot: "trm-auto-hourly-20261202T010000Z".into()
            }
        );
        assert_eq!(d["quiet"], Decision::NothingNew);
        assert_eq!(
            d["never"],
            Decision::Export {
                snapshot: "trm-manual-20261202T000000Z".into()
            }
        );
        assert_eq!(d["off"], Decision::OptedOut);
        assert!(
            !d.contains_key("trm-export-abc123"),
            "temporary copies are never exported"
        );
    }

    #[test]
    fn zero_minutes_turns_the_schedule_off() {
        assert_eq!(
            Schedule {
                every_minutes: 0,
                ..Schedule::default()
            }
            .every(),
            None
        );
        assert_eq!(Schedule::default().every(), Some(Duration::hours(1)));
    }

    #[test]
    fn a_drill_is_due_once_a_period_after_the_last() {
        let now = chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, 12, 1, 3, 0, 0).unwrap();
        assert!(drill_due(None, 30, now), "never drilled");
        assert!(!drill_due(Some(("2026-11-15T03:00:00Z", true)), 30, now));
        assert!(drill_due(Some(("2026-11-01T03:00:00Z", true)), 30, now));
        assert!(drill_due(Some(("garbage", true)), 30, now));
        assert!(!drill_due(None, 0, now), "off");
        // A failed drill is tried again the next day, not next month.
        assert!(!drill_due(Some(("2026-11-30T12:00:00Z", false)), 30, now));
        assert!(drill_due(Some(("2026-11-30T03:00:00Z", false)), 30, now));
    }
}
