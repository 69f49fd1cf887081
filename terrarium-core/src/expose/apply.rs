//! Bringing the host in line with a plan: `sync` reads LXD and the host
//! once, plans, then writes exactly that plan's Traefik files, claims,
//! UFW rules and static file, and restarts Traefik when its entrypoints
//! changed, under the `expose` lock.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::backends::Backends;
use super::foreign_files::{self, Rejected};
use super::labels;
use super::{claims, plan, static_options, Context, Plan, Problem, Route, Source};
use crate::error::{Error, Result};
use crate::fs::{atomic_write, Lock};
use crate::lxd::{Instance, Lxd};
use crate::output::Human;
use crate::settings::{ExposeSettings, Settings};
use crate::traefik;
use crate::ufw::{self, PortRule, Ufw};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    restart_pending: bool,
    last_restart_error: Option<String>,
}

fn state_path(e: &ExposeSettings) -> PathBuf {
    Path::new(&e.state_dir).join("expose-state.json")
}

fn load_state(e: &ExposeSettings) -> State {
    std::fs::read(state_path(e))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Serialize)]
pub struct TraefikStatus {
    pub restart_pending: bool,
    pub last_restart_error: Option<String>,
}

impl From<State> for TraefikStatus {
    fn from(s: State) -> TraefikStatus {
        TraefikStatus {
            restart_pending: s.restart_pending,
            last_restart_error: s.last_restart_error,
        }
    }
}

/// Traefik's restart status as the last sync or restart left it.
pub(super) fn traefik_status(e: &ExposeSettings) -> TraefikStatus {
    load_state(e).into()
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub written: Vec<String>,
    pub deleted: Vec<String>,
    pub kept_last_good: Vec<String>,
    pub firewall_added: Vec<PortRule>,
    pub firewall_removed: Vec<PortRule>,
    pub static_changed: bool,
    pub restart: Restart,
    /// After a failed restart, Traefik runs again with the previous static
    /// file (the old entrypoints): everything but the new ports works.
    pub rolled_back: bool,
    pub traefik: TraefikStatus,
    /// Files in the watched directory Traefik could not read, moved out of
    /// its sight (renamed `NAME.rejected`) so every other route keeps working.
    pub rejected: Vec<Rejected>,
    pub problems: Vec<Problem>,
    pub routes: Vec<Route>,
}

impl SyncReport {
    pub fn changed(&self) -> bool {
        !(self.written.is_empty()
            && self.deleted.is_empty()
            && self.rejected.is_empty()
            && self.firewall_added.is_empty()
            && self.firewall_removed.is_empty()
            && !self.static_changed)
    }
}

impl Human for SyncReport {
    fn human(&self) -> String {
        let mut lines = Vec::new();
        let verb = if self.dry_run { "would " } else { "" };
        for f in &self.written {
            lines.push(format!("{verb}write {f}"));
        }
        for f in &self.deleted {
            lines.push(format!("{verb}delete {f}"));
        }
        for r in &self.rejected {
            lines.push(format!(
                "{verb}move {} out of Traefik's sight to {}: {}",
                r.file, r.moved_to, r.reason
            ));
        }
        for r in &self.firewall_added {
            lines.push(format!("{verb}allow {} ({})", r.spec(), r.comment));
        }
        for r in &self.firewall_removed {
            lines.push(format!("{verb}remove rule {} ({})", r.spec(), r.comment));
        }
        if self.static_changed {
            lines.push(format!(
                "{verb}rewrite the static file (entrypoints changed); restart: {}",
                self.restart
            ));
        }
        if self.traefik.restart_pending {
            lines.push(format!(
                "Traefik restart pending: {}",
                self.traefik.last_restart_error.as_deref().unwrap_or("")
            ));
        }
        for p in &self.problems {
            lines.push(format!("problem: {} {}: {}", p.instance, p.item, p.message));
        }
        if lines.is_empty() {
            lines.push("In sync.".into());
        }
        lines.join("\n")
    }
}

fn ufw_of(e: &ExposeSettings) -> Ufw {
    Ufw::from_settings(e)
}

/// Read LXD once and bring Traefik's files, the firewall and Traefik in
/// line. LXD failing means nothing is touched.
pub fn sync(lxd: &Lxd, settings: &Settings, dry_run: bool) -> Result<SyncReport> {
    let run = || {
        let _lock = Lock::for_change(crate::fs::Resource::Expose, dry_run)?;
        sync_locked(lxd, settings, dry_run)
    };
    if dry_run {
        return run();
    }
    // `trm status` shows the last sync and what it found.
    crate::runs::recorded(lxd.project(), crate::runs::Job::Sync, run, |r| {
        r.problems
            .iter()
            .map(|p| format!("{} {}: {}", p.instance, p.item, p.message))
            .chain((r.restart == Restart::Failed).then(|| "Traefik's restart failed".to_string()))
            .collect()
    })
}

pub(super) fn sync_locked(lxd: &Lxd, settings: &Settings, dry_run: bool) -> Result<SyncReport> {
    // Before anything is written: the static file serves the API there.
    traefik::supervise::check_settings(&settings.expose)?;
    traefik::check_project_name(lxd.project()).map_err(Error::Usage)?;
    let (instances, backends) = Backends::read_with_instances(lxd, settings)?;
    let sources = backends.sources(&instances);
    let host = HostView::read(&settings.expose)?;
    let plan = plan(&sources, &host.context(settings, &sources, lxd.project())?);
    let (legacy, legacy_problems) =
        legacy_files(lxd.project(), &settings.expose, &sources, &instances);
    let mut report = apply(settings, &host, plan, &legacy, dry_run)?;
    report.problems.extend(legacy_problems);
    Ok(report)
}

/// Files from before names carried the project (`trm-<instance>.yml`)
/// that this sync deletes: see `legacy_fate`. The others stay, each with
/// a problem saying why.
fn legacy_files(
    project: &str,
    e: &ExposeSettings,
    sources: &[Source],
    all_instances: &[Instance],
) -> (BTreeSet<String>, Vec<Problem>) {
    let old: Vec<(String, String)> = std::fs::read_dir(&e.dynamic_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|x| {
            let name = x.file_name().to_string_lossy().into_owned();
            match traefik::owner_of_file(&name)? {
                traefik::FileOwner::Legacy { instance } => Some((name, instance)),
                traefik::FileOwner::Project { .. } => None,
            }
        })
        .collect();
    if old.is_empty() {
        return (BTreeSet::new(), Vec::new());
    }
    // For each instance name, the other projects that have one (from the
    // every-project read the sync already made).
    let mut elsewhere: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for i in all_instances.iter().filter(|i| i.project != project) {
        elsewhere
            .entry(i.name.as_str())
            .or_default()
            .insert(i.project.clone());
    }
    let mut delete = BTreeSet::new();
    let mut problems = Vec::new();
    for (name, instance) in old {
        let mine = sources.iter().any(|s| s.name == instance);
        let others = elsewhere
            .get(instance.as_str())
            .cloned()
            .unwrap_or_default();
        match legacy_fate(&name, &instance, project, mine, &others) {
            None => {
                delete.insert(name);
            }
            Some(message) => problems.push(Problem {
                instance,
                item: name,
                message,
            }),
        }
    }
    (delete, problems)
}

/// Whether this sync of `project` deletes the old file `name` of
/// `instance` (`None`) or leaves it, and why. `mine`: this project has an
/// instance of that name; `others`: the other projects that do. The old name says no project, so the file is
/// this project's only when no other project has such an instance: one
/// project's sync must never drop another's routes.
fn legacy_fate(
    name: &str,
    instance: &str,
    project: &str,
    mine: bool,
    others: &BTreeSet<String>,
) -> Option<String> {
    if others.is_empty() {
        return None;
    }
    let old = format!("{name} is from before file names carried the project");
    let names: Vec<String> = others.iter().map(|p| format!("'{p}'")).collect();
    let s = if names.len() > 1 { "s" } else { "" };
    let others = format!("project{s} {}", names.join(", "));
    Some(if mine {
        format!(
            "{old}, and both this project ('{project}') and {others} have an instance '{instance}', so whose it is is ambiguous: it is left in place. Delete it by hand once each of them has synced (their routes now live in trm-<project>_{instance}.yml)"
        )
    } else {
        format!(
            "{old}, and instance '{instance}' is another project's ({others}): that project's sync replaces it"
        )
    })
}

/// What the host says, read once per change: the live static file (its
/// entrypoints are Traefik's own listeners), UFW's rules and the claims.
pub(super) struct HostView {
    live_static: Option<Value>,
    ufw_added: Vec<String>,
    claims: Vec<claims::Record>,
}

impl HostView {
    pub(super) fn read(e: &ExposeSettings) -> Result<HostView> {
        Ok(HostView {
            live_static: Self::live_static(e),
            ufw_added: if e.ufw {
                ufw_of(e).added()?
            } else {
                Vec::new()
            },
            claims: claims::load(e)?,
        })
    }

    /// For reports that change nothing (`check`, `list`): UFW's rules and
    /// the claims when they can be read, else none and why not.
    pub(super) fn read_lenient(e: &ExposeSettings) -> (HostView, Option<String>) {
        let mut notes = Vec::new();
        let ufw_added = match e.ufw.then(|| ufw_of(e).added()) {
            Some(Ok(rules)) => rules,
            Some(Err(err)) => {
                notes.push(format!("UFW's rules were not read: {err}"));
                Vec::new()
            }
            None => Vec::new(),
        };
        let claims = claims::load(e).unwrap_or_else(|err| {
            notes.push(format!("the recorded claims were not read: {err}"));
            Vec::new()
        });
        (
            HostView {
                live_static: Self::live_static(e),
                ufw_added,
                claims,
            },
            (!notes.is_empty()).then(|| notes.join("; ")),
        )
    }

    fn live_static(e: &ExposeSettings) -> Option<Value> {
        std::fs::read(&e.static_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// The policy context for judging these sources' labels in `project`.
    pub(super) fn context(
        &self,
        settings: &Settings,
        sources: &[Source],
        project: &str,
    ) -> Result<Context> {
        let wanted = sources
            .iter()
            .flat_map(|s| labels::parse(&s.label).0)
            .filter_map(|i| i.host_port())
            .collect();
        let mut ctx = Context::from_settings(settings)?.with_host(
            self.live_static.as_ref(),
            self.ufw_added.clone(),
            &wanted,
        );
        ctx.project = project.to_string();
        ctx.claims = self.claims.clone();
        Ok(ctx)
    }
}

/// Bring the host in line with `plan` for its project: only that
/// project's files and firewall rules are written or deleted (and the
/// `legacy` files), the claims file and the shared static file updated.
fn apply(
    settings: &Settings,
    host: &HostView,
    plan: Plan,
    legacy: &BTreeSet<String>,
    dry_run: bool,
) -> Result<SyncReport> {
    let e = &settings.expose;
    // The claims first: a route written without its record would let the
    // next sync hand its host to an older instance.
    if plan.claims != host.claims && !dry_run {
        claims::save(e, &plan.claims)?;
    }
    let project = plan.project.clone();
    let dir = Path::new(&e.dynamic_dir);
    let mut written = Vec::new();
    let mut deleted = Vec::new();
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|x| x.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let existing: BTreeSet<String> = names
        .iter()
        .filter(|n| {
            matches!(traefik::owner_of_file(n),
                Some(traefik::FileOwner::Project { project: p, .. }) if p == project)
        })
        .cloned()
        .collect();
    // Terrarium's instance files, every project's, are validated before
    // they are written: never the foreign-file sweep's to move.
    let skip: BTreeSet<String> = names
        .iter()
        .filter(|n| traefik::is_our_file(n))
        .cloned()
        .chain(plan.files.keys().cloned())
        .collect();
    let (rejected, stuck) = foreign_files::reject_unreadable(dir, &skip, dry_run);
    let mut problems = plan.problems;
    problems.extend(rejected.iter().map(|r| Problem {
        instance: String::new(),
        item: r.file.clone(),
        message: format!(
            "Traefik cannot read {} ({}); moved to {} so the other routes keep working",
            r.file, r.reason, r.moved_to
        ),
    }));
    problems.extend(stuck.into_iter().map(|(file, message)| Problem {
        instance: String::new(),
        item: file,
        message,
    }));
    for (name, doc) in &plan.files {
        let text = serde_json::to_string_pretty(doc).expect("json") + "\n";
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            if !dry_run {
                atomic_write(&path, text.as_bytes(), 0o644)?;
            }
            written.push(name.clone());
        }
    }
    let stale: Vec<String> = existing
        .into_iter()
        .filter(|n| !plan.files.contains_key(n) && !plan.keep.contains(n))
        .chain(legacy.iter().cloned())
        .collect();
    for name in stale {
        if !dry_run {
            std::fs::remove_file(dir.join(&name))
                .map_err(|err| Error::io(format!("deleting {}", dir.join(&name).display()), err))?;
        }
        deleted.push(name);
    }

    let (mut firewall_added, mut firewall_removed) = (Vec::new(), Vec::new());
    if e.ufw {
        let fw = ufw_of(e);
        // Rules of other projects' instances are theirs.
        let mine = ufw::expose_comment(&project, "");
        let owned: BTreeSet<PortRule> = ufw::owned_rules(&host.ufw_added)
            .into_iter()
            .filter(|r| r.comment.starts_with(&mine))
            .collect();
        for r in owned.difference(&plan.rules) {
            if !dry_run {
                fw.delete(r)?;
            }
            firewall_removed.push(r.clone());
        }
        for r in plan.rules.difference(&owned) {
            if !dry_run {
                fw.allow(r)?;
            }
            firewall_added.push(r.clone());
        }
    }

    let static_path = Path::new(&e.static_file);
    let doc = traefik::static_config(&static_options(e), &plan.entrypoints);
    let static_changed = host.live_static.as_ref() != Some(&doc);
    let mut state = load_state(e);
    let mut restart = Restart::NotNeeded;
    let mut rolled_back = false;
    // The file Traefik ran with, to go back to when the new one fails.
    let previous = std::fs::read(static_path).ok();
    if static_changed {
        traefik::validate_static(&doc)
            .map_err(|errs| Error::parse("the generated Traefik static file", errs.join("; ")))?;
        if !dry_run {
            let text = serde_json::to_string_pretty(&doc).expect("json") + "\n";
            atomic_write(static_path, text.as_bytes(), 0o644)?;
            state.restart_pending = true;
        }
    }
    if dry_run {
        if static_changed || state.restart_pending {
            restart = Restart::WouldRestart;
        }
    } else if state.restart_pending {
        match traefik::supervise::restart(e) {
            Ok(_) => {
                state = State::default();
                restart = Restart::Ok;
            }
            Err(err) => {
                state.last_restart_error = Some(err.to_string());
                restart = Restart::Failed;
                // Keep the routes Traefik had: back to the last file it
                // ran with. The new one is retried by the next sync.
                if let (true, Some(old)) = (static_changed, previous) {
                    atomic_write(static_path, &old, 0o644)?;
                    rolled_back = traefik::supervise::restart(e).is_ok();
                }
            }
        }
        save_state(e, &state)?;
    }
    Ok(SyncReport {
        dry_run,
        written,
        deleted,
        kept_last_good: plan.keep.into_iter().collect(),
        firewall_added,
        firewall_removed,
        static_changed,
        restart,
        rolled_back,
        traefik: state.into(),
        rejected,
        problems,
        routes: plan.routes,
    })
}

/// What a sync did to Traefik for a new static file (new entrypoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    NotNeeded,
    /// On a dry run: the static file would change, or a restart is pending.
    WouldRestart,
    Ok,
    /// Remembered: the next sync retries it.
    Failed,
}

/// A restart another tool asked for, and why it failed if it did.
#[derive(Debug, Clone, Serialize)]
pub struct Restarted {
    pub restart: Restart,
    pub error: Option<String>,
}

impl std::fmt::Display for Restart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Restart::NotNeeded => "not_needed",
            Restart::WouldRestart => "would_restart",
            Restart::Ok => "ok",
            Restart::Failed => "failed",
        })
    }
}

impl std::fmt::Display for Restarted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(e) => write!(f, "{}: {e}", self.restart),
            None => write!(f, "{}", self.restart),
        }
    }
}

/// Restart Traefik after another tool (trm-harden) rewrote its static
/// file. A failure is remembered, so the next sync retries it.
pub fn restart_after_static_change(e: &ExposeSettings) -> Result<Restarted> {
    let mut state = load_state(e);
    let outcome = match traefik::supervise::restart(e) {
        Ok(_) => {
            state = State::default();
            Restarted {
                restart: Restart::Ok,
                error: None,
            }
        }
        Err(err) => {
            state.restart_pending = true;
            state.last_restart_error = Some(err.to_string());
            Restarted {
                restart: Restart::Failed,
                error: state.last_restart_error.clone(),
            }
        }
    };
    save_state(e, &state)?;
    Ok(outcome)
}

fn save_state(e: &ExposeSettings, s: &State) -> Result<()> {
    let text = serde_json::to_vec_pretty(s).expect("json");
    atomic_write(&state_path(e), &text, 0o644)
}

/// `trm-expose proxy start|stop|restart|status`, serialised with syncs
/// (which restart Traefik too).
pub fn proxy(settings: &Settings, action: &str) -> Result<traefik::supervise::Status> {
    use traefik::supervise;
    let e = &settings.expose;
    let _lock = Lock::for_change(crate::fs::Resource::Expose, action == "status")?;
    match action {
        "start" => supervise::start(e),
        "restart" => supervise::restart(e),
        "stop" => {
            supervise::stop(e)?;
            Ok(supervise::status(e))
        }
        "status" => Ok(supervise::status(e)),
        other => Err(Error::Usage(format!("unknown proxy action '{other}'"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::plan::tests::{ctx, src};

    #[test]
    fn an_old_file_is_deleted_only_when_no_other_project_has_its_instance() {
        type Others = BTreeSet<String>;
        let set = |ps: &[&str]| -> Others { ps.iter().map(|p| p.to_string()).collect() };
        // (this project has it, the other projects', a word of why it stays)
        let cases: Vec<(bool, Others, Option<&str>)> = vec![
            (true, set(&[]), None),
            (false, set(&[]), None),
            (
                true,
                set(&["acc-a"]),
                Some("this project ('default') and project 'acc-a' have an instance 'web', so whose it is is ambiguous"),
            ),
            (true, set(&["acc-a", "acc-b"]), Some("projects 'acc-a', 'acc-b'")),
            (false, set(&["acc-a"]), Some("another project's (project 'acc-a')")),
        ];
        for (mine, others, want) in cases {
            let got = legacy_fate("trm-web.yml", "web", "default", mine, &others);
            match (want, &got) {
                (None, None) => {}
                (Some(word), Some(why)) => {
                    assert!(why.contains(word), "{mine} {others:?}: {why}");
                    assert!(why.starts_with("trm-web.yml "), "{why}");
                }
                _ => panic!("{mine} {others:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn claims_are_saved_before_any_route_and_a_dry_run_saves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dynamic = d.path().join("dynamic");
        std::fs::create_dir(&dynamic).unwrap();
        let mut s = Settings::default();
        s.expose.root_domain = "example.com".into();
        s.expose.dynamic_dir = dynamic.display().to_string();
        s.expose.static_file = d.path().join("traefik.json").display().to_string();
        let host = HostView {
            live_static: None,
            ufw_added: Vec::new(),
            claims: Vec::new(),
        };
        let planned = || {
            plan(
                &[src("web", "2026-01-01", "https://web.example.com")],
                &ctx(),
            )
        };
        assert!(!planned().files.is_empty() && !planned().claims.is_empty());
        let routes = || std::fs::read_dir(&dynamic).unwrap().count();

        // The claims cannot be saved (a directory is in their way): no route.
        let state = d.path().join("state");
        s.expose.state_dir = state.display().to_string();
        std::fs::create_dir_all(claims::path(&s.expose)).unwrap();
        let Err(err) = apply(&s, &host, planned(), &BTreeSet::new(), false) else {
            panic!("the claims cannot be saved, yet apply went on");
        };
        let err = err.to_string();
        assert!(err.contains("expose-claims.json"), "{err}");
        assert_eq!(routes(), 0, "no route without its claim on file");

        // A dry run writes neither, even where it could.
        std::fs::remove_dir(claims::path(&s.expose)).unwrap();
        let rep = apply(&s, &host, planned(), &BTreeSet::new(), true).unwrap();
        assert!(!rep.written.is_empty(), "it reports what it would write");
        assert_eq!(routes(), 0);
        assert!(
            !claims::path(&s.expose).exists(),
            "a dry run saves no claim"
        );
    }
}
