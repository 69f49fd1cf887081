//! Idle stop and time-to-live for boxes, done by the time machine's tick
//! (`trm-snap auto`).
//!
//! - `user.terrarium.idle` (`30m`, `2h`): a running box with no `lxc exec`
//!   session and under 5% of one CPU since the last tick, for that long,
//!   is stopped (frozen with `user.terrarium.idle.action=freeze`). Whoever
//!   sets `user.*` keys can at most make an idle box stop: nothing is lost.
//! - `trm launch --ttl 8h`: the box is deleted at its deadline. The
//!   deadline lives on the host (`<settings>/agents/<project>/ttl.json`,
//!   root only), never in a `user.*` key, since a key writer must not be
//!   able to delete a box. With `--ttl-export` it is first exported
//!   off-site; when that fails the box is kept, stopped, and the next
//!   tick tries again: a deadline never loses data silently.
//!
//! What a box did between ticks is kept in `<settings>/agents/<project>/
//! idle.json`; the decision is a pure function of that and the sample.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lxd::Lxd;

pub const IDLE_KEY: &str = "user.terrarium.idle";
pub const IDLE_ACTION_KEY: &str = "user.terrarium.idle.action";
/// Busier than this share of one CPU between ticks is not idle.
const BUSY_SHARE: f64 = 0.05;

/// `30m`, `2h`, `1d`, `90s`.
pub fn parse_duration(flag: &str, s: &str) -> Result<Duration> {
    let bad = || {
        Error::Usage(format!(
            "{flag} '{s}': expected a duration such as 90s, 30m, 8h or 2d"
        ))
    };
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    if n <= 0 {
        return Err(bad());
    }
    match unit {
        "s" => Ok(Duration::seconds(n)),
        "m" => Ok(Duration::minutes(n)),
        "h" => Ok(Duration::hours(n)),
        "d" => Ok(Duration::days(n)),
        _ => Err(bad()),
    }
}

/// What the last tick saw of a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    pub at: DateTime<Utc>,
    pub cpu_ns: i64,
    /// The last time it was seen busy (or first seen).
    pub busy_at: DateTime<Utc>,
}

/// What this tick sees.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub cpu_ns: i64,
    pub exec_sessions: usize,
}

/// The new record, and whether the box has now been idle for `idle`.
pub fn judge(before: Option<Seen>, now: Sample, idle: Duration) -> (Seen, bool) {
    let busy = match before {
        None => true,
        Some(b) => {
            let wall = (now.at - b.at).num_nanoseconds().unwrap_or(i64::MAX).max(1);
            let used = (now.cpu_ns - b.cpu_ns).max(0);
            // A restart resets the counter: lower than before is busy.
            now.exec_sessions > 0 || now.cpu_ns < b.cpu_ns || used as f64 / wall as f64 > BUSY_SHARE
        }
    };
    let busy_at = match (busy, before) {
        (false, Some(b)) => b.busy_at,
        _ => now.at,
    };
    let seen = Seen {
        at: now.at,
        cpu_ns: now.cpu_ns,
        busy_at,
    };
    (seen, !busy && now.at - busy_at >= idle)
}

fn dir(project: &str) -> PathBuf {
    crate::settings::config_dir().join("agents").join(project)
}

fn read<T: serde::de::DeserializeOwned + Default>(path: &std::path::Path) -> Result<T> {
    Ok(crate::fs::read_json(path)?.unwrap_or_default())
}

fn write<T: Serialize>(path: &std::path::Path, v: &T) -> Result<()> {
    let parent = path.parent().expect("a file in a directory");
    std::fs::create_dir_all(parent)
        .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
    crate::fs::atomic_write(path, &serde_json::to_vec_pretty(v).expect("json"), 0o600)
}

/// A box's deadline as the host records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "Stored")]
pub struct Deadline {
    pub at: DateTime<Utc>,
    /// Export it off-site before it goes (`--ttl-export`).
    pub export: bool,
}

/// Records written before `--ttl-export` hold the time alone.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    At(DateTime<Utc>),
    Full { at: DateTime<Utc>, export: bool },
}

impl From<Stored> for Deadline {
    fn from(s: Stored) -> Deadline {
        match s {
            Stored::At(at) => Deadline { at, export: false },
            Stored::Full { at, export } => Deadline { at, export },
        }
    }
}

/// The deadlines of a project's boxes.
pub fn deadlines(project: &str) -> Result<BTreeMap<String, Deadline>> {
    read(&dir(project).join("ttl.json"))
}

/// Record (or with `None` clear) a box's deadline. Clearing one there is
/// not writes nothing: a deleted box's name must not keep a deadline for
/// the next box of that name, and a box without one needs no file.
pub fn set_deadline(project: &str, instance: &str, at: Option<Deadline>) -> Result<()> {
    let path = dir(project).join("ttl.json");
    let mut all: BTreeMap<String, Deadline> = read(&path)?;
    match at {
        Some(t) => {
            all.insert(instance.into(), t);
        }
        None if all.remove(instance).is_none() => return Ok(()),
        None => {}
    }
    write(&path, &all)
}

/// What the tick did to one box for its idle time or deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifetime {
    StoppedIdle,
    FrozenIdle,
    DeletedAtDeadline,
    /// Exported off-site (this backup id), then deleted.
    ExportedAndDeleted(String),
    /// Past its deadline, but the final export failed: kept (stopped,
    /// unless stopping it failed too).
    ExportFailed(String),
}

impl Lifetime {
    /// The tick's `outcome` word (and why, for a failure).
    pub fn outcome(&self) -> String {
        match self {
            Lifetime::StoppedIdle => "stopped_idle".into(),
            Lifetime::FrozenIdle => "frozen_idle".into(),
            Lifetime::DeletedAtDeadline => "deleted_at_deadline".into(),
            Lifetime::ExportedAndDeleted(id) => format!("exported_and_deleted: {id}"),
            Lifetime::ExportFailed(why) => format!("kept_export_failed: {why}"),
        }
    }
}

/// The off-site export a `--ttl-export` box gets before it goes: of the
/// box stopped first, so nothing written after the snapshot is lost.
fn final_export(lxd: &Lxd, name: &str) -> Result<String> {
    use crate::offsite::{export, settings::S3Settings, upload::NoProgress};
    if lxd.instance(name)?.is_running() {
        lxd.stop(name, false)?;
    }
    let s = S3Settings::require()?;
    let req = export::Request {
        name: name.into(),
        snapshot: None,
        optimized: false,
        part_size_mib: None,
        parallel: None,
        on_busy: crate::fs::OnBusy::Fail,
        // The last backup of a box about to go stands alone.
        zfs_full_every: 0,
    };
    Ok(export::export(lxd, &s, &req, std::sync::Arc::new(NoProgress))?.id)
}

/// One pass over the project: stop or freeze what has been idle long
/// enough, delete what is past its deadline. Returns what it did.
pub fn tick(lxd: &Lxd, now: DateTime<Utc>) -> Result<Vec<(String, Lifetime)>> {
    let project = lxd.project().to_string();
    let mut done = Vec::new();
    for (name, d) in deadlines(&project)? {
        if now < d.at {
            continue;
        }
        let gone = match lxd.instance(&name) {
            Ok(_) => false,
            Err(Error::NotFound { .. }) => true,
            Err(e) => return Err(e),
        };
        // Whatever the export says (a "not found" from the bucket
        // included: a bucket writer can abort an upload), only a box
        // that is already gone skips it.
        let exported = match (d.export, gone) {
            (true, false) => match final_export(lxd, &name) {
                Ok(id) => Some(id),
                Err(e) => {
                    done.push((name, Lifetime::ExportFailed(e.to_string())));
                    continue;
                }
            },
            _ => None,
        };
        if !gone {
            use crate::instances::{apply_change, plan_change, Verb};
            let (change, _) = plan_change(lxd, &name, Verb::Delete, true)?;
            apply_change(lxd, &change, true)?;
        }
        set_deadline(&project, &name, None)?;
        done.push((
            name,
            match exported {
                Some(id) => Lifetime::ExportedAndDeleted(id),
                None => Lifetime::DeletedAtDeadline,
            },
        ));
    }
    let path = dir(&project).join("idle.json");
    let before: BTreeMap<String, Seen> = read(&path)?;
    let mut after = BTreeMap::new();
    for i in lxd.instances()? {
        let Some(idle) = i.config.get(IDLE_KEY) else {
            continue;
        };
        let Ok(idle) = parse_duration(IDLE_KEY, idle) else {
            continue;
        };
        if !i.is_running() {
            continue;
        }
        let sample = Sample {
            at: now,
            cpu_ns: i
                .state
                .as_ref()
                .and_then(|s| s.cpu.as_ref())
                .map_or(0, |c| c.usage),
            exec_sessions: lxd.exec_sessions(&i.name)?,
        };
        let (seen, idle_now) = judge(before.get(&i.name).copied(), sample, idle);
        if !idle_now {
            after.insert(i.name.clone(), seen);
            continue;
        }
        let freeze = i.config.get(IDLE_ACTION_KEY).map(String::as_str) == Some("freeze");
        let _turn = crate::snapshots::lock_instance(lxd, &i.name, Default::default())?;
        if freeze {
            lxd.pause(&i.name)?;
            done.push((i.name.clone(), Lifetime::FrozenIdle));
        } else {
            lxd.stop(&i.name, false)?;
            done.push((i.name.clone(), Lifetime::StoppedIdle));
        }
    }
    // A project with no idle setting needs no file.
    if !(before.is_empty() && after.is_empty()) {
        write(&path, &after)?;
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    #[test]
    fn deadline_records_of_either_age_read() {
        let old: BTreeMap<String, Deadline> =
            serde_json::from_str(r#"{"a": "2027-01-01T00:00:00Z"}"#).unwrap();
        assert!(!old["a"].export);
        let new = Deadline {
            at: t(0),
            export: true,
        };
        let text = serde_json::to_string(&new).unwrap();
        assert_eq!(serde_json::from_str::<Deadline>(&text).unwrap(), new);
    }

    #[test]
    fn durations_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_duration("--ttl", "8h").unwrap(), Duration::hours(8));
        assert_eq!(
            parse_duration("--ttl", "90s").unwrap(),
            Duration::seconds(90)
        );
        for bad in ["", "h", "0m", "-1h", "8 h", "8w", "1.5h"] {
            assert!(parse_duration("--ttl", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn idle_means_quiet_for_the_whole_time() {
        let idle = Duration::minutes(30);
        let s = |at: i64, cpu: i64, sessions: usize| Sample {
            at: t(at),
            cpu_ns: cpu,
            exec_sessions: sessions,
        };
        // First seen: busy from now.
        let (a, stop) = judge(None, s(0, 1_000, 0), idle);
        assert!(!stop);
        assert_eq!(a.busy_at, t(0));
        // Quiet for 20 min: not yet.
        let (b, stop) = judge(Some(a), s(1200, 1_000 + 1_000_000, 0), idle);
        assert!(!stop);
        assert_eq!(b.busy_at, t(0));
        // Quiet for 31 min: stop.
        let (_, stop) = judge(Some(b), s(1860, 1_000 + 2_000_000, 0), idle);
        assert!(stop);
        // An exec session keeps it up however quiet.
        let (c, stop) = judge(Some(b), s(1860, 1_000 + 2_000_000, 1), idle);
        assert!(!stop);
        assert_eq!(c.busy_at, t(1860));
        // 10% of a CPU since the last tick is busy.
        let (d, stop) = judge(Some(b), s(1860, 1_000_000 + 66_000_000_000, 0), idle);
        assert!(!stop);
        assert_eq!(d.busy_at, t(1860));
        // A restarted box (counter went back) is busy.
        let (_, stop) = judge(Some(b), s(1860, 10, 0), idle);
        assert!(!stop);
    }
}
