//! What the background jobs did last, for `trm status`: each run of the
//! snapshot tick, the exposure sync and an off-site export leaves a record
//! under the state directory, and each export the newest backup of its
//! instance. A timer on systemd, a loop elsewhere: the record is the same,
//! so status judges what ran, not what was scheduled.
//!
//! Records are best effort: a job never fails because its record could
//! not be written (a user without write access to the state directory,
//! say). Status then sees an old record and says the job is overdue.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// `TRM_STATE_DIR`, else `/var/lib/terrarium`: Terrarium's host state.
pub fn state_dir() -> PathBuf {
    std::env::var_os("TRM_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/terrarium"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Job {
    /// `trm-snap auto`: due snapshots, retention, idle stops and deadlines.
    Snapshots,
    /// `trm-expose sync`, by hand or the watcher's backstop.
    Sync,
    /// `trm-snap export`.
    Export,
    /// `trm-snap verify --all`: restore drills.
    Verify,
}

impl Job {
    pub const ALL: [Job; 4] = [Job::Snapshots, Job::Sync, Job::Export, Job::Verify];

    pub fn name(self) -> &'static str {
        match self {
            Job::Snapshots => "snapshots",
            Job::Sync => "sync",
            Job::Export => "export",
            Job::Verify => "verify",
        }
    }
}

/// One finished run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub job: Job,
    pub started: String,
    pub finished: String,
    /// The job ran to its end (its own problems may still be listed).
    pub ok: bool,
    /// What went wrong: the error that stopped it, or what it reported.
    pub problems: Vec<String>,
}

/// The newest off-site backup this host made of one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Backup {
    pub id: String,
    pub created: String,
}

fn project_dir(project: &str) -> PathBuf {
    state_dir().join("runs").join(project)
}

fn write_json<T: Serialize>(path: PathBuf, value: &T) {
    let text = serde_json::to_vec_pretty(value).expect("records serialize");
    // Best effort (see the module's note).
    let _ = crate::fs::atomic_write(&path, &text, 0o644);
}

/// Record how a run of `job` in `project` ended.
pub fn record(
    project: &str,
    job: Job,
    started: DateTime<Utc>,
    problems: Result<Vec<String>, String>,
) {
    let (ok, problems) = match problems {
        Ok(p) => (true, p),
        Err(e) => (false, vec![e]),
    };
    let run = Run {
        job,
        started: crate::time::utc(&started),
        finished: crate::time::utc(&Utc::now()),
        ok,
        problems,
    };
    write_json(
        project_dir(project).join(format!("{}.json", job.name())),
        &run,
    );
}

/// Run `f` as a run of `job`, and record how it ended: its error, or the
/// problems `problems` finds in what it returned.
pub fn recorded<T, E: std::fmt::Display>(
    project: &str,
    job: Job,
    f: impl FnOnce() -> Result<T, E>,
    problems: impl FnOnce(&T) -> Vec<String>,
) -> Result<T, E> {
    let started = Utc::now();
    let r = f();
    let seen = match &r {
        Ok(v) => Ok(problems(v)),
        Err(e) => Err(e.to_string()),
    };
    record(project, job, started, seen);
    r
}

/// How often `job` is scheduled to run here, in seconds, as the one who
/// schedules it says (`trm-snap schedule install --every`, `auto --every`,
/// `trm-expose watch --interval`): status judges lateness by it.
pub fn note_period(project: &str, job: Job, seconds: u64) {
    write_json(
        project_dir(project).join(format!("{}.period", job.name())),
        &seconds,
    );
}

/// The job is no longer scheduled here (turned off): status stops
/// expecting it.
pub fn forget_period(project: &str, job: Job) {
    let _ = std::fs::remove_file(project_dir(project).join(format!("{}.period", job.name())));
}

/// The period noted for `job`, if any.
pub fn period(project: &str, job: Job) -> Option<u64> {
    let path = project_dir(project).join(format!("{}.period", job.name()));
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// The last recorded run of `job`; a damaged record counts as none.
pub fn last(project: &str, job: Job) -> Option<Run> {
    let path = project_dir(project).join(format!("{}.json", job.name()));
    let text = std::fs::read(path).ok()?;
    serde_json::from_slice(&text).ok()
}

/// Remember `instance`'s newest backup (one file an instance: two exports
/// at once never overwrite each other's record).
pub fn record_backup(project: &str, instance: &str, id: &str) {
    let b = Backup {
        id: id.to_string(),
        created: crate::time::utc(&Utc::now()),
    };
    write_json(
        project_dir(project)
            .join("backups")
            .join(format!("{instance}.json")),
        &b,
    );
}

/// Every instance's newest recorded backup, by name.
pub fn backups(project: &str) -> BTreeMap<String, Backup> {
    let dir = project_dir(project).join("backups");
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_str()?.strip_suffix(".json")?.to_string();
            let b = serde_json::from_slice(&std::fs::read(e.path()).ok()?).ok()?;
            Some((name, b))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_and_backups_round_trip_per_project() {
        let dir = tempfile::tempdir().unwrap();
        // Tests in this process share the environment: only this one sets it.
        std::env::set_var("TRM_STATE_DIR", dir.path());
        let t = Utc::now();
        record("p1", Job::Snapshots, t, Ok(vec!["a: failed: x".into()]));
        record("p1", Job::Sync, t, Err("LXD does not answer".into()));
        record_backup("p1", "web", "web-20261201");
        let s = last("p1", Job::Snapshots).unwrap();
        assert!(s.ok);
        assert_eq!(s.problems, ["a: failed: x"]);
        let y = last("p1", Job::Sync).unwrap();
        assert!(!y.ok);
        assert_eq!(y.problems, ["LXD does not answer"]);
        assert_eq!(last("p2", Job::Snapshots), None, "projects are apart");
        assert_eq!(last("p1", Job::Export), None);
        assert_eq!(backups("p1")["web"].id, "web-20261201");
        assert_eq!(period("p1", Job::Snapshots), None);
        note_period("p1", Job::Snapshots, 2700);
        assert_eq!(period("p1", Job::Snapshots), Some(2700));
        std::fs::write(dir.path().join("runs/p1/sync.json"), "{garbage").unwrap();
        assert_eq!(last("p1", Job::Sync), None, "a damaged record is no record");
        std::env::remove_var("TRM_STATE_DIR");
    }
}
