//! `trm status`: the whole host on one screen. The facts are read at once
//! (one LXD query for every instance and its snapshots, the server and the
//! pool beside it, Traefik's and the gate's own pings), then judged by a
//! pure function against what the baseline promises: LXD, Traefik and the
//! gate up, the snapshot tick and the exposure sync on time, the pool not
//! full. Anything broken is a problem, and problems end the command with
//! the "found problems" exit code.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::gate::{self, GateSettings};
use crate::lxd::{Instance, Lxd};
use crate::output::Human;
use crate::runs::{self, Job, Run};
use crate::settings::Settings;
use crate::snapshots::retention::{Policy, Tier};
use crate::traefik;

/// The watcher's backstop sync runs this often (`trm-expose watch
/// --interval`, the sync timer): its default.
const SYNC_EVERY: i64 = 300;
/// A pool this full soon fails snapshots and writes.
const POOL_FULL_PERCENT: u64 = 90;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Nothing the baseline promises is down or overdue.
    pub ok: bool,
    pub now: String,
    pub project: String,
    /// Each broken promise, one line each.
    pub problems: Vec<String>,
    pub lxd: LxdStatus,
    pub traefik: traefik::supervise::Status,
    /// `None` when the gate was never set up (`trm-gate start` does it).
    pub gate: Option<gate::supervise::Status>,
    pub timers: Vec<Timer>,
    /// What the last exposure sync could not do.
    pub sync_problems: Vec<String>,
    pub instances: Vec<InstanceStatus>,
    pub pools: Vec<PoolUsage>,
    /// Every member of the cluster; empty on a lone server.
    pub members: Vec<MemberStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LxdStatus {
    pub reachable: bool,
    pub version: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Timer {
    pub job: Job,
    /// How often it must run; `None`: nothing promises it (exports until
    /// they have a schedule).
    pub every_seconds: Option<i64>,
    pub last_run: Option<String>,
    pub last_ok: Option<bool>,
    pub age_seconds: Option<i64>,
    /// Not run within twice its period (one missed run is forgiven).
    pub overdue: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct InstanceStatus {
    pub name: String,
    pub status: String,
    pub newest_snapshot: Option<String>,
    pub snapshot_age_seconds: Option<i64>,
    /// The newest off-site backup this host made of it.
    pub newest_backup: Option<String>,
    pub backup_age_seconds: Option<i64>,
}

/// One cluster member, as any member sees it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberStatus {
    pub name: String,
    pub online: bool,
    /// online, offline, evacuated...
    pub status: String,
    /// Its LXD's version (null when it does not answer).
    pub version: Option<String>,
    /// 1, 5 and 15 minute load, from its last heartbeat.
    pub load: Option<[f64; 3]>,
    pub heartbeat_age_seconds: Option<i64>,
    /// This project's instances placed on it.
    pub instances: usize,
    /// The newest off-site backup it made.
    pub backup_age_seconds: Option<i64>,
}

/// A member's heartbeat older than this means its mesh timer stopped.
const HEARTBEAT_STALE: i64 = 300;

#[derive(Debug, Clone, Serialize)]
pub struct PoolUsage {
    pub name: String,
    pub used_bytes: Option<u64>,
    pub total_bytes: Option<u64>,
    pub error: Option<String>,
}

/// What LXD says of a pool's space (`GET /1.0/storage-pools/NAME/resources`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PoolResources {
    #[serde(default)]
    pub space: Space,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct Space {
    #[serde(default)]
    pub used: u64,
    #[serde(default)]
    pub total: u64,
}

/// Everything status reads, before any judgement.
pub struct Facts {
    pub project: String,
    pub policy: Policy,
    pub lxd: Result<String, String>,
    pub instances: Result<Vec<Instance>, String>,
    pub pool: (String, Result<PoolResources, String>),
    pub traefik: traefik::supervise::Status,
    pub gate: Option<gate::supervise::Status>,
    pub runs: Vec<(Job, Option<Run>)>,
    /// The periods the schedulers noted (`runs::note_period`).
    pub periods: Vec<(Job, Option<u64>)>,
    /// `gate.toml` could not be read.
    pub gate_error: Option<String>,
    pub backups: std::collections::BTreeMap<String, runs::Backup>,
    /// The cluster's members and each one's LXD version (None: no answer).
    pub members: Result<Vec<(crate::lxd::cluster::Member, Option<String>)>, String>,
}

/// Read the host: the slow reads run side by side, so status costs about
/// what its one instance query costs.
pub fn read(lxd: &Lxd, settings: &Settings) -> Facts {
    let project = lxd.project().to_string();
    let (gate_settings, gate_error) = match GateSettings::load() {
        Ok(g) => (g, None),
        Err(e) => (None, Some(e.to_string())),
    };
    std::thread::scope(|s| {
        let server = s.spawn(|| lxd.server().map(|v| v.environment.server_version));
        let pool = s.spawn(|| lxd.pool_resources(&settings.storage_pool));
        let traefik = s.spawn(|| traefik::supervise::status(&settings.expose));
        let gate = s.spawn(|| gate_settings.as_ref().map(gate::supervise::status));
        let members = s.spawn(|| members(lxd));
        let instances = lxd.instances().map_err(|e| e.to_string());
        Facts {
            members: joined(members),
            policy: settings.snapshots,
            lxd: joined(server).map_err(|e: crate::Error| e.to_string()),
            instances,
            pool: (
                settings.storage_pool.clone(),
                joined(pool).map_err(|e: crate::Error| e.to_string()),
            ),
            traefik: joined(traefik),
            gate: joined(gate),
            runs: Job::ALL
                .iter()
                .map(|&j| (j, runs::last(&project, j)))
                .collect(),
            periods: Job::ALL
                .iter()
                .map(|&j| (j, runs::period(&project, j)))
                .collect(),
            gate_error,
            backups: runs::backups(&project),
            project,
        }
    })
}

/// The members and their versions, one query each (none on a lone server).
type MemberFacts = Result<Vec<(crate::lxd::cluster::Member, Option<String>)>, String>;

fn members(lxd: &Lxd) -> MemberFacts {
    let list = lxd.cluster_members().map_err(|e| e.to_string())?;
    // Each member answers for its own version, side by side.
    Ok(std::thread::scope(|s| {
        let asks: Vec<_> = list
            .iter()
            .map(|m| s.spawn(|| lxd.member_version(&m.server_name).ok()))
            .collect();
        list.iter()
            .cloned()
            .zip(asks.into_iter().map(joined))
            .collect()
    }))
}

fn joined<T>(h: std::thread::ScopedJoinHandle<'_, T>) -> T {
    h.join().expect("a status reader panicked")
}

/// How often the snapshot tick must run: the period of the finest tier
/// the policy keeps; `None` when it keeps no automatic snapshots.
fn tick_period(p: &Policy) -> Option<Duration> {
    Tier::ALL
        .into_iter()
        .find(|&t| p.count(t) > 0)
        .map(|t| t.period().min(Duration::hours(1)))
}

fn age(now: DateTime<Utc>, t: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| (now - t.with_timezone(&Utc)).num_seconds())
}

/// Judge the facts as of `now`.
pub fn assess(f: Facts, now: DateTime<Utc>) -> Status {
    let mut problems = Vec::new();
    let lxd = match &f.lxd {
        Ok(v) => LxdStatus {
            reachable: true,
            version: Some(v.clone()),
            error: None,
        },
        Err(e) => {
            problems.push(format!("LXD does not answer: {e}"));
            LxdStatus {
                reachable: false,
                version: None,
                error: Some(e.clone()),
            }
        }
    };
    if !f.traefik.running {
        problems.push("Traefik is not running (trm-expose proxy start)".into());
    } else if !f.traefik.answering {
        problems.push(format!(
            "Traefik runs but its API on {} does not answer",
            f.traefik.api_address
        ));
    } else if let Some(l) = f
        .traefik
        .files
        .as_ref()
        .filter(|l| !l.missing.is_empty() || !l.errors.is_empty())
    {
        problems.push(format!(
            "Traefik runs {} of Terrarium's {} routes (not loaded: {}{})",
            l.loaded,
            l.expected,
            l.missing.join(", "),
            if l.errors.is_empty() {
                String::new()
            } else {
                format!("; errors: {}", l.errors.join("; "))
            }
        ));
    }
    match &f.gate {
        None if f.gate_error.is_some() => problems.push(format!(
            "the sign-on gate's settings cannot be read: {}",
            f.gate_error.as_deref().unwrap_or_default()
        )),
        None => problems.push("the sign-on gate was never set up (trm-gate start)".into()),
        Some(g) if !g.healthy() => problems.push(format!(
            "the sign-on gate is {} (trm-gate start)",
            if g.running {
                "running but not answering"
            } else {
                "not running"
            }
        )),
        Some(_) => {}
    }
    let mut timers = Vec::new();
    let mut sync_problems = Vec::new();
    for (job, run) in &f.runs {
        let noted = f
            .periods
            .iter()
            .find(|(j, _)| j == job)
            .and_then(|(_, p)| *p)
            .map(|p| p as i64);
        let every = match job {
            Job::Snapshots => noted.or_else(|| tick_period(&f.policy).map(|d| d.num_seconds())),
            Job::Sync => noted.or(Some(SYNC_EVERY)),
            // Scheduled once a tick noted its interval; judged per
            // instance below (a tick with nothing due exports nothing).
            Job::Export => noted,
            // Scheduled once a tick noted `verify_every_days`.
            Job::Verify => noted,
        };
        let age_seconds = run.as_ref().and_then(|r| age(now, &r.finished));
        let overdue =
            *job != Job::Export && every.is_some_and(|e| age_seconds.is_none_or(|a| a > 2 * e));
        if overdue {
            problems.push(match &age_seconds {
                None => format!(
                    "the {} job never ran here ({})",
                    job.name(),
                    how_to_run(*job)
                ),
                Some(a) => format!(
                    "the {} job is overdue: last ran {} ago, due every {}",
                    job.name(),
                    span(*a),
                    span(every.unwrap_or_default())
                ),
            });
        }
        if let Some(r) = run.as_ref().filter(|_| every.is_some()) {
            if !r.ok {
                problems.push(format!(
                    "the last {} run failed: {}",
                    job.name(),
                    r.problems.join("; ")
                ));
            } else if *job == Job::Snapshots || *job == Job::Verify {
                problems.extend(r.problems.iter().map(|p| format!("{}: {p}", job.name())));
            }
        }
        if *job == Job::Sync {
            if let Some(r) = run.as_ref().filter(|r| r.ok) {
                sync_problems = r.problems.clone();
                problems.extend(r.problems.iter().map(|p| format!("sync: {p}")));
            }
        }
        timers.push(Timer {
            job: *job,
            every_seconds: every,
            last_run: run.as_ref().map(|r| r.finished.clone()),
            last_ok: run.as_ref().map(|r| r.ok),
            age_seconds,
            overdue,
        });
    }
    let export_every = timers
        .iter()
        .find(|t| t.job == Job::Export)
        .and_then(|t| t.every_seconds);
    let instances = match &f.instances {
        Ok(list) => list
            .iter()
            .map(|i| {
                let newest = i
                    .snapshots
                    .iter()
                    .flatten()
                    .max_by(|a, b| a.created_at.cmp(&b.created_at));
                let backup = f.backups.get(&i.name);
                let backup_age = backup.and_then(|b| age(now, &b.created));
                use crate::offsite::scheduled;
                let opted_out = i.config.get(scheduled::OPT_OUT_KEY).map(String::as_str)
                    == Some("off")
                    || scheduled::is_temporary(&i.name);
                if let Some(e) = export_every.filter(|_| !opted_out) {
                    match backup_age {
                        Some(a) if a > 2 * e => problems.push(format!(
                            "{}'s newest off-site backup is {} old (exported every {})",
                            i.name,
                            span(a),
                            span(e)
                        )),
                        None => problems.push(format!("{} has no off-site backup yet", i.name)),
                        Some(_) => {}
                    }
                }
                InstanceStatus {
                    name: i.name.clone(),
                    status: i.status.to_ascii_lowercase(),
                    newest_snapshot: newest.map(|s| s.name.clone()),
                    snapshot_age_seconds: newest.and_then(|s| age(now, &s.created_at)),
                    newest_backup: backup.map(|b| b.id.clone()),
                    backup_age_seconds: backup_age,
                }
            })
            .collect(),
        Err(e) => {
            if f.lxd.is_ok() {
                problems.push(format!("LXD could not list the instances: {e}"));
            }
            Vec::new()
        }
    };
    let (pool_name, pool) = &f.pool;
    let pools = vec![match pool {
        Ok(r) => {
            if r.space.total > 0 && r.space.used * 100 / r.space.total >= POOL_FULL_PERCENT {
                problems.push(format!(
                    "storage pool {pool_name} is {}% full",
                    r.space.used * 100 / r.space.total
                ));
            }
            PoolUsage {
                name: pool_name.clone(),
                used_bytes: Some(r.space.used),
                total_bytes: Some(r.space.total),
                error: None,
            }
        }
        Err(e) => {
            if f.lxd.is_ok() {
                problems.push(format!("storage pool {pool_name}: {e}"));
            }
            PoolUsage {
                name: pool_name.clone(),
                used_bytes: None,
                total_bytes: None,
                error: Some(e.clone()),
            }
        }
    }];
    if let (Err(e), Ok(_)) = (&f.members, &f.lxd) {
        problems.push(format!("the cluster's members cannot be read: {e}"));
    }
    let members = f
        .members
        .iter()
        .flatten()
        .map(|(m, version)| {
            let hb = crate::cluster::heartbeat::of(m);
            let heartbeat_age = hb.as_ref().and_then(|h| age(now, &h.at));
            let online = m.status.eq_ignore_ascii_case("online");
            if !online && !m.status.eq_ignore_ascii_case("evacuated") {
                problems.push(format!(
                    "cluster member {} is {}: {}",
                    m.server_name,
                    m.status.to_ascii_lowercase(),
                    m.message
                ));
            } else if heartbeat_age.is_none_or(|a| a > HEARTBEAT_STALE) {
                problems.push(format!(
                    "cluster member {}'s mesh has not run for {} (trm-cluster-mesh.timer)",
                    m.server_name,
                    opt_span(heartbeat_age)
                ));
            }
            MemberStatus {
                name: m.server_name.clone(),
                online,
                status: m.status.to_ascii_lowercase(),
                version: version.clone(),
                load: hb.as_ref().and_then(|h| h.load),
                heartbeat_age_seconds: heartbeat_age,
                instances: f.instances.as_ref().map_or(0, |l| {
                    l.iter().filter(|i| i.location == m.server_name).count()
                }),
                backup_age_seconds: hb
                    .as_ref()
                    .and_then(|h| h.last_backup.as_deref())
                    .and_then(|b| age(now, b)),
            }
        })
        .collect();
    Status {
        members,
        ok: problems.is_empty(),
        now: crate::time::utc(&now),
        project: f.project,
        problems,
        lxd,
        traefik: f.traefik,
        gate: f.gate,
        timers,
        sync_problems,
        instances,
        pools,
    }
}

/// What schedules a job, for a problem that says it never ran.
fn how_to_run(job: Job) -> &'static str {
    match job {
        Job::Snapshots => "`trm-snap schedule install`; without systemd `trm-snap auto --every 15`",
        Job::Sync => "`trm-expose service install`; without systemd `trm-expose watch`",
        Job::Export => "`trm-snap export`",
        Job::Verify => "`trm-snap verify --all`, or `verify_every_days` in [offsite]",
    }
}

/// `95s`, `12m`, `3h`, `2d`: an age at a glance.
fn span(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

fn opt_span(s: Option<i64>) -> String {
    s.map(span).unwrap_or_else(|| "-".into())
}

fn gib(b: u64) -> String {
    format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
}

impl Human for Status {
    fn human(&self) -> String {
        let up = |b: bool| if b { "up" } else { "DOWN" };
        let mut s = format!(
            "{}  (project {}, {})\n\n",
            if self.ok { "OK" } else { "PROBLEMS" },
            self.project,
            self.now
        );
        for p in &self.problems {
            s.push_str(&format!("  ! {p}\n"));
        }
        if !self.problems.is_empty() {
            s.push('\n');
        }
        s.push_str(&format!(
            "LXD      {} {}\n",
            up(self.lxd.reachable),
            self.lxd.version.as_deref().unwrap_or("")
        ));
        let t = &self.traefik;
        let why = if !t.running {
            "(not running)"
        } else if !t.answering {
            "(its API does not answer)"
        } else {
            ""
        };
        s.push_str(&format!(
            "Traefik  {} {why}{}{}\n",
            up(t.running && t.answering),
            t.version.as_deref().unwrap_or(""),
            t.files
                .as_ref()
                .map(|f| format!(", routes loaded {} of {}", f.loaded, f.expected))
                .unwrap_or_default()
        ));
        s.push_str(&format!(
            "Gate     {}\n",
            match &self.gate {
                None => "not set up".to_string(),
                Some(g) => format!("{} on {}", up(g.healthy()), g.listen),
            }
        ));
        for p in &self.pools {
            s.push_str(&format!(
                "Pool     {} {}\n",
                p.name,
                match (p.used_bytes, p.total_bytes) {
                    (Some(u), Some(t)) if t > 0 =>
                        format!("{} of {} ({}%)", gib(u), gib(t), u * 100 / t),
                    _ => p.error.clone().unwrap_or_default(),
                }
            ));
        }
        s.push('\n');
        let timers: Vec<Vec<String>> = self
            .timers
            .iter()
            .map(|t| {
                vec![
                    t.job.name().to_string(),
                    t.every_seconds
                        .map(span)
                        .unwrap_or_else(|| "unscheduled".into()),
                    t.last_run.clone().unwrap_or_else(|| "never".into()),
                    match t.last_ok {
                        Some(true) => "ok".into(),
                        Some(false) => "FAILED".into(),
                        None => "-".into(),
                    },
                    if t.overdue {
                        "OVERDUE".into()
                    } else {
                        String::new()
                    },
                ]
            })
            .collect();
        s.push_str(&crate::output::table(
            &["JOB", "EVERY", "LAST RUN", "RESULT", "STATE"],
            timers,
        ));
        if !self.members.is_empty() {
            s.push('\n');
            let rows = self
                .members
                .iter()
                .map(|m| {
                    vec![
                        m.name.clone(),
                        m.status.clone(),
                        m.version.clone().unwrap_or_else(|| "-".into()),
                        m.load.map_or("-".into(), |l| {
                            format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2])
                        }),
                        m.instances.to_string(),
                        opt_span(m.backup_age_seconds),
                    ]
                })
                .collect();
            s.push_str(&crate::output::table(
                &[
                    "MEMBER",
                    "STATUS",
                    "VERSION",
                    "LOAD",
                    "INSTANCES",
                    "LAST BACKUP",
                ],
                rows,
            ));
        }
        if !self.instances.is_empty() {
            s.push('\n');
            let rows = self
                .instances
                .iter()
                .map(|i| {
                    vec![
                        i.name.clone(),
                        i.status.clone(),
                        opt_span(i.snapshot_age_seconds),
                        opt_span(i.backup_age_seconds),
                    ]
                })
                .collect();
            s.push_str(&crate::output::table(
                &["INSTANCE", "STATUS", "SNAPSHOT AGE", "BACKUP AGE"],
                rows,
            ));
        }
        s.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traefik::supervise::Status as TraefikStatus;

    fn traefik(running: bool) -> TraefikStatus {
        TraefikStatus {
            supervisor: crate::traefik::supervise::Supervisor::Terrarium,
            running,
            pid: running.then_some(42),
            answering: running,
            version: running.then(|| "3.7.15".into()),
            api_address: "127.0.0.1:8082".into(),
            static_file: "/etc/traefik/traefik.yml".into(),
            files: running.then(Default::default),
            log: String::new(),
        }
    }

    fn gate() -> gate::supervise::Status {
        gate::supervise::Status {
            supervisor: crate::daemon::Supervisor::Terrarium,
            running: true,
            pid: Some(43),
            answering: true,
            listen: "127.0.0.1:4180".into(),
            log: String::new(),
        }
    }

    fn run(job: Job, finished: DateTime<Utc>, ok: bool, problems: &[&str]) -> (Job, Option<Run>) {
        let t = crate::time::utc(&finished);
        (
            job,
            Some(Run {
                job,
                started: t.clone(),
                finished: t,
                ok,
                problems: problems.iter().map(|p| p.to_string()).collect(),
            }),
        )
    }

    fn healthy(now: DateTime<Utc>) -> Facts {
        Facts {
            project: "default".into(),
            policy: Policy::default(),
            lxd: Ok("5.0.2".into()),
            instances: Ok(Vec::new()),
            pool: (
                "terrarium".into(),
                Ok(PoolResources {
                    space: Space {
                        used: 1 << 30,
                        total: 4 << 30,
                    },
                }),
            ),
            traefik: traefik(true),
            gate: Some(gate()),
            runs: vec![
                run(Job::Snapshots, now - Duration::minutes(10), true, &[]),
                run(Job::Sync, now - Duration::minutes(3), true, &[]),
                (Job::Export, None),
                (Job::Verify, None),
            ],
            periods: vec![],
            gate_error: None,
            backups: Default::default(),
            members: Ok(vec![]),
        }
    }

    #[test]
    fn every_member_is_shown_and_a_dead_or_silent_one_is_a_problem() {
        use crate::cluster::heartbeat::{Heartbeat, KEY};
        let now: DateTime<Utc> = "2026-12-02T08:00:00Z".parse().unwrap();
        let member = |name: &str, status: &str, beat: Option<&str>| {
            let config = beat
                .map(|at| {
                    let hb = Heartbeat {
                        at: at.into(),
                        load: Some([0.5, 0.25, 0.1]),
                        last_backup: Some("2026-12-02T07:00:00Z".into()),
                    };
                    [(KEY.to_string(), serde_json::to_string(&hb).unwrap())]
                        .into_iter()
                        .collect()
                })
                .unwrap_or_default();
            crate::lxd::cluster::Member {
                server_name: name.into(),
                url: String::new(),
                roles: vec![],
                status: status.into(),
                message: "no heartbeat".into(),
                architecture: String::new(),
                config,
            }
        };
        let mut f = healthy(now);
        f.members = Ok(vec![
            (
                member("m1", "Online", Some("2026-12-02T07:59:30Z")),
                Some("5.0.2".into()),
            ),
            (member("m2", "Offline", None), None),
            (
                member("m3", "Online", Some("2026-12-02T07:30:00Z")),
                Some("5.0.2".into()),
            ),
        ]);
        f.instances = Ok(vec![serde_json::from_value(serde_json::json!(
            {"name": "a", "status": "Running", "location": "m1"}
        ))
        .unwrap()]);
        let st = assess(f, now);
        let m1 = &st.members[0];
        assert!(m1.online);
        assert_eq!(m1.load, Some([0.5, 0.25, 0.1]));
        assert_eq!(m1.instances, 1);
        assert_eq!(m1.backup_age_seconds, Some(3600));
        assert_eq!(st.members[1].version, None);
        assert!(
            st.problems.iter().any(|p| p.contains("m2 is offline")),
            "{:?}",
            st.problems
        );
        assert!(
            st.problems
                .iter()
                .any(|p| p.contains("m3's mesh has not run for 30m")),
            "{:?}",
            st.problems
        );
        assert!(
            !st.problems.iter().any(|p| p.contains("m1")),
            "{:?}",
            st.problems
        );
        assert!(st.human().contains("MEMBER"));
    }

    #[test]
    fn a_healthy_host_has_no_problems_and_unscheduled_exports_are_not_one() {
        let now = Utc::now();
        let s = assess(healthy(now), now);
        assert!(s.ok, "{:?}", s.problems);
        assert!(!s.timers[2].overdue);
        assert_eq!(s.timers[0].every_seconds, Some(900));
    }

    #[test]
    fn each_broken_promise_is_a_problem_naming_it() {
        let now = Utc::now();
        type Break = Box<dyn Fn(&mut Facts)>;
        let cases: Vec<(&str, Break, &str)> = vec![
            (
                "old tick",
                Box::new(move |f| {
                    f.runs[0] = run(Job::Snapshots, now - Duration::minutes(31), true, &[])
                }),
                "snapshots job is overdue: last ran 31m ago, due every 15m",
            ),
            (
                "never ticked",
                Box::new(|f| f.runs[0] = (Job::Snapshots, None)),
                "snapshots job never ran",
            ),
            (
                "failed tick",
                Box::new(move |f| f.runs[0] = run(Job::Snapshots, now, false, &["LXD gone"])),
                "last snapshots run failed: LXD gone",
            ),
            (
                "a box's snapshot failed",
                Box::new(move |f| {
                    f.runs[0] = run(Job::Snapshots, now, true, &["web: failed: quota"])
                }),
                "snapshots: web: failed: quota",
            ),
            (
                "a failed drill, scheduled monthly",
                Box::new(move |f| {
                    f.periods = vec![(Job::Verify, Some(30 * 86_400))];
                    f.runs[3] = run(
                        Job::Verify,
                        now,
                        true,
                        &["web: restore drill failed: corrupted"],
                    )
                }),
                "verify: web: restore drill failed: corrupted",
            ),
            (
                "a drill overdue",
                Box::new(move |f| {
                    f.periods = vec![(Job::Verify, Some(30 * 86_400))];
                    f.runs[3] = run(Job::Verify, now - Duration::days(61), true, &[])
                }),
                "verify job is overdue",
            ),
            (
                "stale sync",
                Box::new(move |f| {
                    f.runs[1] = run(Job::Sync, now - Duration::minutes(11), true, &[])
                }),
                "sync job is overdue",
            ),
            (
                "a refused label",
                Box::new(move |f| f.runs[1] = run(Job::Sync, now, true, &["web proxy: refused"])),
                "sync: web proxy: refused",
            ),
            (
                "traefik stopped",
                Box::new(|f| f.traefik = traefik(false)),
                "Traefik is not running",
            ),
            (
                "gate missing",
                Box::new(|f| f.gate = None),
                "gate was never set up",
            ),
            (
                "a box's backup is late",
                Box::new(move |f| {
                    f.periods = vec![(Job::Export, Some(3600))];
                    f.instances = Ok(vec![serde_json::from_value(
                        serde_json::json!({"name": "web", "status": "Running"}),
                    )
                    .unwrap()]);
                    f.backups = [(
                        "web".to_string(),
                        crate::runs::Backup {
                            id: "b".into(),
                            created: crate::time::utc(&(now - Duration::hours(3))),
                        },
                    )]
                    .into();
                }),
                "web's newest off-site backup is 3h old (exported every 60m)",
            ),
            (
                "a box never backed up",
                Box::new(move |f| {
                    f.periods = vec![(Job::Export, Some(3600))];
                    f.instances = Ok(vec![serde_json::from_value(
                        serde_json::json!({"name": "web", "status": "Running"}),
                    )
                    .unwrap()]);
                }),
                "web has no off-site backup yet",
            ),
            (
                "gate.toml damaged",
                Box::new(|f| {
                    f.gate = None;
                    f.gate_error = Some("bad toml".into())
                }),
                "cannot be read: bad toml",
            ),
            (
                "a 45-minute timer, late",
                Box::new(move |f| {
                    f.periods = vec![(Job::Snapshots, Some(2700))];
                    f.runs[0] = run(Job::Snapshots, now - Duration::minutes(91), true, &[]);
                }),
                "due every 45m",
            ),
            (
                "gate down",
                Box::new(|f| f.gate.as_mut().unwrap().running = false),
                "gate is not running",
            ),
            (
                "lxd down",
                Box::new(|f| f.lxd = Err("connection refused".into())),
                "LXD does not answer",
            ),
            (
                "pool full",
                Box::new(|f| {
                    f.pool.1 = Ok(PoolResources {
                        space: Space {
                            used: 95,
                            total: 100,
                        },
                    })
                }),
                "terrarium is 95% full",
            ),
        ];
        for (what, change, needle) in cases {
            let mut f = healthy(now);
            change(&mut f);
            let s = assess(f, now);
            assert!(!s.ok, "{what}");
            assert!(
                s.problems.iter().any(|p| p.contains(needle)),
                "{what}: {:?}",
                s.problems
            );
        }
    }

    #[test]
    fn a_policy_without_frequent_snapshots_ticks_hourly() {
        let p = Policy {
            frequent: 0,
            ..Policy::default()
        };
        assert_eq!(tick_period(&p), Some(Duration::hours(1)));
        let none = Policy {
            frequent: 0,
            hourly: 0,
            daily: 0,
            monthly: 0,
            ..Policy::default()
        };
        assert_eq!(tick_period(&none), None);
    }
}
