//! Instances as Terrarium shows and handles them: summaries for `list` and
//! `info`, lifecycle that reports whether anything changed, launch that
//! waits for cloud-init, and exec as the unprivileged `terrarium` user.

use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fs::{Lock, OnBusy};
use crate::lxd::{ExecSpec, Instance, LaunchSpec, Lxd};
use crate::names::validate_instance_name;
use crate::output::{Human, Row};
use crate::process::{exit_code_of, Cmd};
use crate::profiles;

/// Launches queue behind each other's creation step for at most this long.
const LAUNCH_LOCK_WAIT: Duration = Duration::from_secs(600);
use crate::time::rfc3339_utc;

/// The account workloads run as inside a container.
pub const USER: &str = "terrarium";
pub const HOME: &str = "/home/terrarium";

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub name: String,
    pub project: String,
    pub state: String,
    /// container or virtual-machine (`kind`, as every `type` field of
    /// JSON Lines says what the line is).
    pub kind: String,
    pub profiles: Vec<String>,
    /// First IPv4 of the LXD-managed NIC (never docker0 and the like).
    pub ipv4: Option<String>,
    pub image: String,
    /// RFC 3339 UTC; `created` everywhere Terrarium prints a time of making.
    pub created: String,
    pub snapshots: usize,
    /// An agent box's egress policy, as its ACL on the host enforces it;
    /// null for every other instance.
    pub egress: Option<crate::agents::egress::Egress>,
    /// Stopped after this long idle (`user.terrarium.idle`), if set.
    pub idle: Option<String>,
    /// Deleted at this time (`trm launch --ttl`), if set.
    pub expires: Option<String>,
    /// The cluster member it runs on; null on a lone server.
    pub location: Option<String>,
}

impl Summary {
    pub fn of(i: &Instance, project: &str) -> Summary {
        let c = &i.config;
        let image = c
            .get("image.description")
            .cloned()
            .or_else(|| {
                let os = c.get("image.os")?;
                Some(
                    format!("{os} {}", c.get("image.release").map_or("", |s| s))
                        .trim()
                        .to_string(),
                )
            })
            .unwrap_or_default();
        Summary {
            name: i.name.clone(),
            project: if i.project.is_empty() {
                project.to_string()
            } else {
                i.project.clone()
            },
            state: i.status.to_ascii_lowercase(),
            kind: i.kind.clone(),
            profiles: i.profiles.clone(),
            ipv4: i.ipv4().into_iter().next(),
            image,
            created: rfc3339_utc(&i.created_at),
            snapshots: i.snapshot_count(),
            egress: None,
            idle: c.get(crate::agents::lifetime::IDLE_KEY).cloned(),
            expires: None,
            location: Some(i.location.clone()).filter(|l| !l.is_empty() && l != "none"),
        }
    }
}

impl Row for Summary {
    fn headers() -> &'static [&'static str] {
        &[
            "NAME",
            "STATE",
            "IPV4",
            "PROFILES",
            "IMAGE",
            "SNAPSHOTS",
            "CREATED",
            "LOCATION",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.state.clone(),
            self.ipv4.clone().unwrap_or_default(),
            self.profiles.join(","),
            self.image.clone(),
            self.snapshots.to_string(),
            self.created.clone(),
            self.location.clone().unwrap_or_default(),
        ]
    }
}

impl Human for Summary {
    fn human(&self) -> String {
        let rows = [
            ("name", self.name.clone()),
            ("project", self.project.clone()),
            ("state", self.state.clone()),
            ("type", self.kind.clone()),
            ("ipv4", self.ipv4.clone().unwrap_or_else(|| "-".into())),
            ("profiles", self.profiles.join(", ")),
            ("image", self.image.clone()),
            ("created", self.created.clone()),
            ("snapshots", self.snapshots.to_string()),
            (
                "location",
                self.location.clone().unwrap_or_else(|| "-".into()),
            ),
            (
                "egress",
                self.egress
                    .as_ref()
                    .map_or("-".into(), crate::agents::sandbox::describe),
            ),
        ];
        rows.iter()
            .map(|(k, v)| format!("{k:<10} {v}"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

pub fn list(lxd: &Lxd) -> Result<Vec<Summary>> {
    let policies = crate::agents::sandbox::policies(lxd)?;
    let deadlines = crate::agents::lifetime::deadlines(lxd.project())?;
    Ok(lxd
        .instances()?
        .iter()
        .map(|i| {
            let mut s = Summary::of(i, lxd.project());
            s.egress = policies.get(&i.name).cloned();
            s.expires = deadlines.get(&i.name).map(|d| crate::time::utc(&d.at));
            s
        })
        .collect())
}

pub fn info(lxd: &Lxd, name: &str) -> Result<Summary> {
    validate_instance_name(name)?;
    let i = lxd.instance_full(name)?;
    let mut s = Summary::of(&i, lxd.project());
    s.egress = crate::agents::sandbox::policy_of(lxd, name)?;
    s.expires = crate::agents::lifetime::deadlines(lxd.project())?
        .get(name)
        .map(|d| crate::time::utc(&d.at));
    Ok(s)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Start,
    Stop,
    Restart,
    Delete,
}

/// What a lifecycle command did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub name: String,
    pub action: Verb,
    pub changed: bool,
    pub dry_run: bool,
    pub state_before: String,
    pub detail: String,
}

impl Human for Change {
    fn human(&self) -> String {
        let verb = match self.action {
            Verb::Start => "start",
            Verb::Stop => "stop",
            Verb::Restart => "restart",
            Verb::Delete => "delete",
        };
        match (self.dry_run, self.changed) {
            (true, true) => format!("would {verb} {}: {}", self.name, self.detail),
            (false, true) => format!("{verb}: {} ({})", self.name, self.detail),
            (_, false) => format!("{}: nothing to do ({})", self.name, self.detail),
        }
    }
}

/// Plan a lifecycle change from the instance's current state; nothing is
/// changed here. Refusals (a running instance to delete without force)
/// are errors.
pub fn plan_change(lxd: &Lxd, name: &str, verb: Verb, force: bool) -> Result<(Change, Instance)> {
    validate_instance_name(name)?;
    let i = lxd.instance(name)?;
    let running = i.is_running();
    let (changed, detail) = match verb {
        Verb::Start if running => (false, "already running".to_string()),
        Verb::Start => (true, "start the instance".into()),
        Verb::Stop if !running => (false, format!("already {}", i.status.to_ascii_lowercase())),
        Verb::Stop => (
            true,
            if force {
                "stop it forcibly"
            } else {
                "stop it cleanly"
            }
            .into(),
        ),
        Verb::Restart if !running => {
            return Err(Error::WrongState(format!(
                "instance '{name}' is {}; use `trm start {name}`",
                i.status.to_ascii_lowercase()
            )))
        }
        Verb::Restart => (true, "restart the instance".into()),
        Verb::Delete if running && !force => {
            return Err(Error::WrongState(format!(
                "instance '{name}' is running; stop it first or pass --force"
            )))
        }
        Verb::Delete => {
            let snaps = lxd.snapshot_count(name)?;
            (
                true,
                format!(
                    "delete the instance{} and its {snaps} snapshot(s); this cannot be undone",
                    if running {
                        " (running: it is stopped first)"
                    } else {
                        ""
                    }
                ),
            )
        }
    };
    Ok((
        Change {
            name: name.to_string(),
            action: verb,
            changed,
            dry_run: false,
            state_before: i.status.to_ascii_lowercase(),
            detail,
        },
        i,
    ))
}

pub fn apply_change(lxd: &Lxd, change: &Change, force: bool) -> Result<()> {
    if !change.changed {
        return Ok(());
    }
    // The instance's turn, shared with snapshots, rollback and export: a
    // stop or delete never lands in the middle of one.
    let _turn = crate::snapshots::lock_instance(lxd, &change.name, OnBusy::Wait)?;
    match change.action {
        Verb::Start => lxd.start(&change.name),
        Verb::Stop => lxd.stop(&change.name, force),
        Verb::Restart => lxd.restart(&change.name, force),
        Verb::Delete => {
            lxd.delete(&change.name, force)?;
            // An agent box's own bridge and ACL go with it, and a deadline.
            crate::agents::sandbox::teardown(lxd, &change.name)?;
            crate::agents::lifetime::set_deadline(lxd.project(), &change.name, None)
        }
    }
}

/// Outcome of `trm launch`.
#[derive(Debug, Clone, Serialize)]
pub struct Launched {
    #[serde(flatten)]
    pub spec: LaunchSpec,
    pub dry_run: bool,
    /// `done`, `disabled` (image without cloud-init), `not_waited`.
    pub cloud_init: String,
    pub instance: Option<Summary>,
    /// What a recipe did once the box was up (compose, exposure).
    #[serde(flatten)]
    pub done: crate::recipe::Done,
}

impl Human for Launched {
    fn human(&self) -> String {
        if self.dry_run {
            return format!(
                "would launch {} from {} with profiles [{}]",
                self.spec.name,
                self.spec.image,
                self.spec.profiles.join(", ")
            );
        }
        let mut s = format!(
            "launched {} (cloud-init: {})",
            self.spec.name, self.cloud_init
        );
        for f in &self.spec.files {
            s.push_str(&format!("\nfile {} -> {}", f.from.display(), f.to));
        }
        if let Some(c) = &self.done.compose {
            s.push_str(&format!(
                "\ncompose: {} up ({})",
                c.services.join(", "),
                c.command
            ));
        }
        if let Some(e) = &self.done.exposure {
            s.push_str(&format!(
                "\nexposed: {}{}",
                e.change.label_after.replace('\n', ", "),
                e.answered_after
                    .map(|t| format!(" (answered after {t:.1}s)"))
                    .unwrap_or_default()
            ));
        }
        if let Some(i) = &self.instance {
            s.push('\n');
            s.push_str(&i.human());
        }
        s
    }
}

/// `--cpu`, `--memory`, `--disk` of a launch: LXD's own limits, so the
/// kernel enforces them (cgroups; the pool's quota for the disk).
#[derive(Debug, Clone, Default)]
pub struct Limits {
    pub cpu: Option<u32>,
    pub memory: Option<String>,
    pub disk: Option<String>,
}

/// A size as LXD takes it: a number and a unit (`512MiB`, `2GiB`, `10GB`).
fn check_size(flag: &str, v: &str) -> Result<()> {
    let digits = v.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &v[digits.len()..];
    let units = ["B", "kB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"];
    if digits.parse::<u64>().is_ok_and(|n| n > 0) && units.contains(&unit) {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "{flag} '{v}': expected a size such as 512MiB, 2GiB or 10GB"
        )))
    }
}

impl Limits {
    /// Check the values and put them on the spec (they override the
    /// profile's, as instance config does).
    pub fn apply(&self, spec: &mut LaunchSpec) -> Result<()> {
        if let Some(cpu) = self.cpu {
            if cpu == 0 {
                return Err(Error::Usage("--cpu must be at least 1".into()));
            }
            spec.config.insert("limits.cpu".into(), cpu.to_string());
        }
        if let Some(m) = &self.memory {
            check_size("--memory", m)?;
            spec.config.insert("limits.memory".into(), m.clone());
        }
        if let Some(d) = &self.disk {
            check_size("--disk", d)?;
            spec.root_size = Some(d.clone());
        }
        Ok(())
    }
}

/// `--idle` and `--ttl` of a launch (see `agents::lifetime`).
#[derive(Debug, Clone, Default)]
pub struct Lifetime {
    pub idle: Option<String>,
    pub ttl: Option<chrono::Duration>,
    /// Export off-site before the deadline's delete (`--ttl-export`).
    pub export: bool,
}

impl Lifetime {
    pub fn parse(idle: Option<&str>, ttl: Option<&str>, export: bool) -> Result<Lifetime> {
        use crate::agents::lifetime::parse_duration;
        if let Some(i) = idle {
            parse_duration("--idle", i)?;
        }
        if export && ttl.is_none() {
            return Err(Error::Usage("--ttl-export needs a --ttl".into()));
        }
        if export {
            // Refused now rather than found at the deadline.
            crate::offsite::settings::S3Settings::require()?;
        }
        Ok(Lifetime {
            idle: idle.map(String::from),
            ttl: ttl.map(|t| parse_duration("--ttl", t)).transpose()?,
            export,
        })
    }

    /// The idle time is the instance's own setting.
    pub fn apply(&self, spec: &mut LaunchSpec) {
        if let Some(i) = &self.idle {
            spec.config
                .insert(crate::agents::lifetime::IDLE_KEY.into(), i.clone());
        }
    }

    /// The deadline is the host's record, written once the box exists
    /// (and any a former box of that name left, cleared).
    pub fn record(&self, lxd: &Lxd, name: &str) -> Result<()> {
        let at = self.ttl.map(|ttl| crate::agents::lifetime::Deadline {
            at: chrono::Utc::now() + ttl,
            export: self.export,
        });
        crate::agents::lifetime::set_deadline(lxd.project(), name, at)
    }
}

/// A launch as asked, by `trm launch` or an agent through `trm mcp`:
/// [`plan_launch`] checks it and makes the spec, [`launch_planned`] does
/// exactly that spec.
#[derive(Debug, Clone, Default)]
pub struct LaunchRequest {
    pub name: String,
    /// `None`: the image `trm init` set.
    pub image: Option<String>,
    /// Empty: `default`.
    pub profiles: Vec<String>,
    pub config: crate::lxd::Config,
    pub limits: Limits,
    pub idle: Option<String>,
    pub ttl: Option<String>,
    pub ttl_export: bool,
    pub recipe: crate::recipe::Recipe,
    /// The cluster member to place it on (LXD's scheduler chooses if unset).
    pub target: Option<String>,
}

/// A checked launch, ready to do.
#[derive(Debug, Clone)]
pub struct PlannedLaunch {
    pub spec: LaunchSpec,
    pub lifetime: Lifetime,
    /// What runs once the box is up.
    pub ready: crate::recipe::Ready,
}

impl PlannedLaunch {
    /// What a dry run reports.
    pub fn dry_run(&self) -> Launched {
        Launched {
            spec: self.spec.clone(),
            dry_run: true,
            cloud_init: "not_waited".into(),
            instance: None,
            done: Default::default(),
        }
    }
}

/// Check a launch request against the host and turn it into a spec;
/// nothing is changed.
pub fn plan_launch(lxd: &Lxd, req: &LaunchRequest) -> Result<PlannedLaunch> {
    let image = match &req.image {
        Some(i) => i.clone(),
        None => crate::settings::Settings::load_or_default()?.image,
    };
    let mut spec = LaunchSpec {
        name: req.name.clone(),
        image,
        profiles: if req.profiles.is_empty() {
            vec!["default".into()]
        } else {
            req.profiles.clone()
        },
        config: req.config.clone(),
        target: req.target.clone(),
        ..Default::default()
    };
    req.limits.apply(&mut spec)?;
    let lifetime = Lifetime::parse(req.idle.as_deref(), req.ttl.as_deref(), req.ttl_export)?;
    lifetime.apply(&mut spec);
    check_launch(lxd, &spec)?;
    let ready = crate::recipe::prepare(lxd, &req.recipe, &mut spec)?;
    crate::cluster::addresses::pin(lxd, &mut spec)?;
    Ok(PlannedLaunch {
        spec,
        lifetime,
        ready,
    })
}

/// Launch as planned, record its deadline, and report the new box.
pub fn launch_planned(
    lxd: &Lxd,
    planned: &PlannedLaunch,
    wait: Option<Duration>,
) -> Result<Launched> {
    let name = &planned.spec.name;
    // Recorded first: a box whose first boot fails (or whose cloud-init
    // its root reports as failed) still goes at its deadline.
    planned.lifetime.record(lxd, name)?;
    let timeout = wait.unwrap_or(Duration::from_secs(600));
    launch(lxd, &planned.spec, wait)
        .and_then(|mut launched| {
            launched.done = crate::recipe::finish(lxd, name, &planned.ready, timeout)?;
            launched.instance = Some(info(lxd, name)?);
            Ok(launched)
        })
        .map_err(|e| crate::recipe::failed(lxd, name, &planned.ready, e))
}

pub fn check_launch(lxd: &Lxd, spec: &LaunchSpec) -> Result<()> {
    validate_instance_name(&spec.name)?;
    crate::cluster::plan::check_target(lxd, spec.target.as_deref())?;
    for p in &spec.profiles {
        if lxd.profile(p)?.is_none() {
            return Err(Error::NotFound {
                kind: "profile",
                name: p.clone(),
            });
        }
    }
    match lxd.instance(&spec.name) {
        Ok(_) => Err(Error::Usage(format!(
            "instance '{}' already exists",
            spec.name
        ))),
        Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Launch, then wait for cloud-init (unless `wait` is `None`). A profile
/// that creates the `terrarium` user needs cloud-init: an image without it
/// would leave a box without its user, so that launch is undone and said.
pub fn launch(lxd: &Lxd, spec: &LaunchSpec, wait: Option<Duration>) -> Result<Launched> {
    let spec = &{
        // LXD 5.0 hands overlapping uid ranges to isolated-idmap
        // containers created at the same moment (the loser fails to
        // start: "newuidmap ... not allowed"), so creations take turns.
        // Only the creation: waiting for cloud-init runs in parallel.
        let _turn = Lock::acquire(crate::fs::Resource::Launch, LAUNCH_LOCK_WAIT)?;
        // Checked again under the turn: a box another launch made since
        // the plan is never this launch's to start, or to remove.
        if lxd.instance(&spec.name).is_ok() {
            return Err(Error::WrongState(format!(
                "instance '{}' {}",
                spec.name,
                crate::recipe::TAKEN
            )));
        }
        create(lxd, spec)?
    };
    let cloud_init = match wait {
        None => "not_waited".to_string(),
        Some(t) => {
            let (status, user) = wait_cloud_init(lxd, &spec.name, t)?;
            let needs_user = lxd
                .instance(&spec.name)?
                .expanded_config
                .get(profiles::VENDOR_DATA_KEY)
                .is_some_and(|v| v.contains(profiles::USER_SCRIPT_MARKER));
            if needs_user && status == "disabled" {
                lxd.delete(&spec.name, true)?;
                return Err(Error::WrongState(format!(
                    "image '{}' has no cloud-init, which profile(s) {} need to create the \
                     '{USER}' user; the new instance '{}' was removed. Use an image with \
                     cloud-init (`trm image build` makes one) or a profile without the user",
                    spec.image,
                    spec.profiles.join(", "),
                    spec.name
                )));
            }
            // Asked again only when the waiting exec gave no answer.
            let user = match (needs_user, user) {
                (false, _) => true,
                (true, Some(u)) => u,
                (true, None) => has_user(lxd, &spec.name)?,
            };
            if !user {
                return Err(Error::WrongState(format!(
                    "cloud-init finished in '{}' but created no '{USER}' user: the instance's own \
                     cloud-init.vendor-data, or user-data with `vendor_data: {{enabled: false}}`, \
                     replaced the profile's; the instance is left running for you to inspect",
                    spec.name
                )));
            }
            status
        }
    };
    Ok(Launched {
        spec: spec.clone(),
        dry_run: false,
        cloud_init,
        instance: Some(info(lxd, &spec.name)?),
        done: Default::default(),
    })
}

/// Create and start the instance. An agent box first gets a bridge of
/// its own with the `public` egress policy; its only NIC is there, and if
/// the box cannot be made, the bridge goes again. Returns what was made.
fn create(lxd: &Lxd, spec: &LaunchSpec) -> Result<LaunchSpec> {
    use crate::agents::{egress::Egress, sandbox};
    if !spec.profiles.iter().any(|p| p == sandbox::PROFILE) {
        return lxd.launch(spec).map(|()| spec.clone());
    }
    let settings = crate::settings::Settings::load_or_default()?;
    let bridge = sandbox::provision(lxd, &spec.name, &Egress::Public, settings.nat)?;
    let mut spec = spec.clone();
    spec.devices.insert("eth0".into(), sandbox::nic(&bridge));
    match lxd.launch(&spec) {
        Ok(()) => Ok(spec),
        Err(e) => {
            let _ = lxd.delete(&spec.name, true);
            let _ = sandbox::teardown(lxd, &spec.name);
            Err(e)
        }
    }
}

#[cfg(test)]
mod wait_tests {
    use super::parse_wait;

    #[test]
    fn the_waiting_exec_is_read_line_by_line() {
        let (code, long, user) = parse_wait("wait=0\nstatus: done\ndetail: x\nuser=0\n");
        assert_eq!((code, user), (Some(0), Some(true)));
        assert_eq!(long, "status: done\ndetail: x");
        let (code, _, user) = parse_wait("wait=127\nsh: cloud-init: not found\nuser=2\n");
        assert_eq!((code, user), (Some(127), Some(false)));
        let (code, _, user) = parse_wait("");
        assert_eq!((code, user), (None, None), "no answer is not a verdict");
        assert_eq!(parse_wait("user=127\n").2, None, "no getent: ask again");
    }
}

fn has_user(lxd: &Lxd, name: &str) -> Result<bool> {
    let out = lxd.exec_read(name, &["getent", "passwd", USER], Duration::from_secs(30))?;
    // getent says 2 for "no such entry"; anything else is not an answer.
    match out.status.code() {
        Some(0) => Ok(true),
        Some(2) => Ok(false),
        _ => Err(Error::WrongState(format!(
            "could not ask '{name}' for its '{USER}' user: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
    }
}

/// The one exec a launch waits with: cloud-init's wait, then its long
/// status and whether the user exists, so the verdict costs no more
/// round trips to LXD than the wait itself.
const WAIT_SCRIPT: &str = "cloud-init status --wait >/dev/null 2>&1; echo \"wait=$?\"; \
    cloud-init status --long 2>&1; getent passwd terrarium >/dev/null; echo \"user=$?\"";

/// What the waiting exec printed: the wait's exit status, the long status,
/// and whether the user exists (`None`: not an answer).
fn parse_wait(out: &str) -> (Option<i32>, String, Option<bool>) {
    let mut code = None;
    let mut user = None;
    let mut long = Vec::new();
    for line in out.lines() {
        if let Some(c) = line.strip_prefix("wait=") {
            code = c.trim().parse().ok();
        } else if let Some(u) = line.strip_prefix("user=") {
            // getent: 0 found, 2 no such entry; anything else is no answer.
            user = match u.trim() {
                "0" => Some(true),
                "2" => Some(false),
                _ => None,
            };
        } else {
            long.push(line);
        }
    }
    (code, long.join("\n"), user)
}

fn wait_cloud_init(lxd: &Lxd, name: &str, timeout: Duration) -> Result<(String, Option<bool>)> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let out = lxd.exec_read(
            name,
            &["sh", "-c", WAIT_SCRIPT],
            left.max(Duration::from_secs(1)),
        )?;
        let (code, long, user) = parse_wait(&out.stdout_str());
        // 127: the image has no cloud-init; nothing to wait for.
        if code == Some(127) {
            return Ok(("disabled".into(), user));
        }
        let waited = code == Some(0);
        // A waiter started during early boot can end before cloud-init
        // does (seen: non-zero exit while the status said "running");
        // only a finished cloud-init's verdict counts.
        let still_going = long.contains("status: running") || long.contains("status: not run");
        // A zero exit counts only once the status really says done (seen
        // under load: a waiter from early boot exiting 0 before the run).
        if waited && long.contains("status: done") {
            return Ok(("done".into(), user));
        }
        if waited && long.contains("status: disabled") {
            return Ok(("disabled".into(), user));
        }
        if (still_going || waited) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
            continue;
        }
        let detail: Vec<&str> = long
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        return Err(Error::WrongState(format!(
            "cloud-init {} in '{name}': {}; the instance is running, inspect it with \
             `trm exec --root {name} -- cloud-init status --long`",
            if still_going {
                "did not finish in time"
            } else {
                "failed"
            },
            detail.join("; ")
        )));
    }
}

/// The `lxc exec` that runs `command` (a login shell when empty) as the
/// `terrarium` user in its home with a login environment, or as root.
pub fn exec_cmd(lxd: &Lxd, name: &str, command: &[String], root: bool) -> Result<Cmd> {
    validate_instance_name(name)?;
    let command = if command.is_empty() {
        vec!["/bin/bash".to_string(), "-l".to_string()]
    } else {
        command.to_vec()
    };
    let spec = if root {
        ExecSpec {
            command,
            ..ExecSpec::default()
        }
    } else {
        // setpriv (util-linux) switches to the user by name and builds the
        // login environment (HOME, USER, LOGNAME, SHELL, PATH) from its
        // passwd entry in the same exec: no second round trip to look up
        // the uid.
        let mut argv: Vec<String> = [
            "setpriv",
            "--reuid",
            USER,
            "--regid",
            USER,
            "--init-groups",
            "--reset-env",
            "--",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        argv.extend(command);
        ExecSpec {
            cwd: Some(HOME.into()),
            command: argv,
            ..ExecSpec::default()
        }
    };
    Ok(lxd.exec_cmd(name, &spec))
}

/// Run `trm exec` attached to the terminal; returns the command's exit
/// code. When it fails the way a missing instance, a stopped one or a
/// missing user makes it fail, say which.
pub fn exec(lxd: &Lxd, name: &str, command: &[String], root: bool) -> Result<i32> {
    let status = exec_cmd(lxd, name, command, root)?.interactive()?;
    let code = exit_code_of(&status);
    if code == 1 {
        diagnose_exec(lxd, name, root)?;
    }
    Ok(code)
}

/// Most of each stream a captured exec keeps (`truncated` says when
/// more came): a program driving boxes gets an answer it can hold.
pub const CAPTURE_LIMIT: usize = 1 << 20;

/// `trm exec --format json` (and `--checkpoint`): the command's result
/// as data, for programs that drive boxes.
#[derive(Debug, Clone, Serialize)]
pub struct Executed {
    pub instance: String,
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
    /// Either stream was longer than [`CAPTURE_LIMIT`] and was cut.
    pub truncated: bool,
    /// The snapshot taken first, with `--checkpoint`.
    pub checkpoint: Option<crate::snapshots::Checkpoint>,
}

impl Human for Executed {
    fn human(&self) -> String {
        let mut out = format!("{}{}", self.stdout, self.stderr);
        if let Some(c) = &self.checkpoint {
            out.push_str(&format!(
                "checkpoint {}/{}; undo with `{}`\n",
                c.instance, c.snapshot, c.rollback
            ));
        }
        out.push_str(&format!(
            "exit {} after {} ms{}",
            self.exit_code,
            self.duration_ms,
            if self.truncated { " (output cut)" } else { "" }
        ));
        out
    }
}

/// How a captured exec runs: after a checkpoint or not, keeping how much
/// of each stream, for at most how long.
#[derive(Debug, Clone, Copy)]
pub struct Capture {
    pub root: bool,
    pub checkpoint: bool,
    /// Bytes of each stream kept.
    pub limit: usize,
    /// Killed (inside the box, by `timeout`) after this long: exit 124.
    pub timeout: Option<Duration>,
}

impl Capture {
    pub fn new(root: bool, checkpoint: bool) -> Capture {
        Capture {
            root,
            checkpoint,
            limit: CAPTURE_LIMIT,
            timeout: None,
        }
    }
}

/// Run a command with its output captured, after a checkpoint if asked.
pub fn exec_captured(lxd: &Lxd, name: &str, command: &[String], how: Capture) -> Result<Executed> {
    let root = how.root;
    let wrapped: Vec<String>;
    let argv = match how.timeout {
        // In the box, so the command dies there, whatever becomes of us.
        Some(t) => {
            wrapped = ["timeout", "-k", "5", &t.as_secs().max(1).to_string()]
                .into_iter()
                .map(String::from)
                .chain(command.iter().cloned())
                .collect();
            &wrapped
        }
        None => command,
    };
    let cmd = exec_cmd(lxd, name, argv, root)?;
    let checkpoint = match how.checkpoint {
        true => {
            // A checkpoint of a box the command cannot run in would only
            // become the "last checkpoint" for nothing.
            diagnose_exec(lxd, name, root)?;
            Some(crate::snapshots::checkpoint(
                lxd,
                name,
                command,
                crate::fs::OnBusy::Fail,
            )?)
        }
        false => None,
    };
    let started = std::time::Instant::now();
    let (out, truncated) = cmd.output_capped(how.limit)?;
    if !truncated && crate::lxd::lost_track_of_child(&out) {
        // A box that is stopped, or has no user to run it as, is the
        // answer: the command cannot have run. Otherwise it is not run
        // again: it may have run, and only the caller knows whether twice
        // is harmless.
        diagnose_exec(lxd, name, root)?;
        return Err(lost_command(name, command, how, checkpoint.as_ref()));
    }
    let exit_code = exit_code_of(&out.status);
    if exit_code == 1 {
        diagnose_exec(lxd, name, root)?;
    }
    Ok(Executed {
        instance: name.into(),
        exit_code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        truncated,
        checkpoint,
    })
}

/// What a caller needs when LXD lost a command it started: that it may
/// have run (or still run, until its timeout), that nothing of its result
/// is known, and how to undo it when a checkpoint came first.
fn lost_command(
    name: &str,
    command: &[String],
    how: Capture,
    checkpoint: Option<&crate::snapshots::Checkpoint>,
) -> Error {
    let mut msg = format!(
        "LXD lost track of `{}` in '{name}' once it had started it (LXD 5.0 does this now \
         and then in a box with syscall interception): it may have run{}, and its exit \
         status and output are unknown; check what it does before running it again",
        crate::process::shell_line(command),
        match how.timeout {
            Some(t) => format!(" and may run for up to {}s more", t.as_secs().max(1) + 5),
            None => " and may still be running".into(),
        }
    );
    if let Some(c) = checkpoint {
        // This checkpoint by name: a later one may be "last" by then.
        msg.push_str(&format!(
            "; the checkpoint {}/{} was taken first: `trm-snap rollback {} --to {}` undoes it",
            c.instance, c.snapshot, c.instance, c.snapshot
        ));
    }
    Error::OutcomeUnknown(msg)
}

pub(crate) fn diagnose_exec(lxd: &Lxd, name: &str, root: bool) -> Result<()> {
    let i = lxd.instance(name)?;
    if !i.is_running() {
        return Err(Error::WrongState(format!(
            "instance '{name}' is {}; start it with `trm start {name}`",
            i.status.to_ascii_lowercase()
        )));
    }
    if !root && !has_user(lxd, name)? {
        return Err(Error::WrongState(format!(
            "instance '{name}' has no '{USER}' user; use `trm exec --root {name}` \
             (launch with a Terrarium profile to get the user)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_land_on_the_spec_and_bad_ones_are_refused() {
        let mut spec = LaunchSpec::default();
        Limits {
            cpu: Some(1),
            memory: Some("512MiB".into()),
            disk: Some("5GiB".into()),
        }
        .apply(&mut spec)
        .unwrap();
        assert_eq!(spec.config["limits.cpu"], "1");
        assert_eq!(spec.config["limits.memory"], "512MiB");
        assert_eq!(spec.root_size.as_deref(), Some("5GiB"));
        for (l, says) in [
            (
                Limits {
                    cpu: Some(0),
                    ..Default::default()
                },
                "--cpu",
            ),
            (
                Limits {
                    memory: Some("lots".into()),
                    ..Default::default()
                },
                "--memory 'lots'",
            ),
            (
                Limits {
                    memory: Some("0GiB".into()),
                    ..Default::default()
                },
                "--memory",
            ),
            (
                Limits {
                    disk: Some("10 GiB".into()),
                    ..Default::default()
                },
                "--disk",
            ),
            (
                Limits {
                    disk: Some("10gb".into()),
                    ..Default::default()
                },
                "--disk",
            ),
        ] {
            let e = l.apply(&mut LaunchSpec::default()).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::USAGE);
            assert!(e.to_string().contains(says), "{e}");
        }
    }

    #[test]
    fn a_lost_command_says_it_may_have_run_and_how_to_undo_it() {
        let cmd: Vec<String> = ["rm", "-rf", "/home/terrarium/x y"]
            .map(String::from)
            .to_vec();
        let mut how = Capture::new(false, true);
        let e = lost_command("a-box", &cmd, how, None);
        assert_eq!(e.kind(), "outcome_unknown");
        assert_eq!(e.exit_code(), crate::error::exit::OUTCOME_UNKNOWN);
        let m = e.to_string();
        assert!(
            m.contains("`rm -rf '/home/terrarium/x y'` in 'a-box'"),
            "{m}"
        );
        assert!(m.contains("may have run and may still be running"), "{m}");
        assert!(m.contains("exit status and output are unknown"), "{m}");
        how.timeout = Some(Duration::from_secs(1));
        let c = crate::snapshots::Checkpoint {
            instance: "a-box".into(),
            snapshot: "trm-checkpoint-1".into(),
            command: cmd.clone(),
            rollback: "trm-snap rollback a-box --to last-checkpoint".into(),
        };
        let m = lost_command("a-box", &cmd, how, Some(&c)).to_string();
        assert!(m.contains("may run for up to 6s more"), "{m}");
        assert!(
            m.ends_with(
                "the checkpoint a-box/trm-checkpoint-1 was taken first: \
                 `trm-snap rollback a-box --to trm-checkpoint-1` undoes it"
            ),
            "{m}"
        );
    }

    #[test]
    fn summary_takes_image_description_and_normalises_time() {
        let i: Instance = serde_json::from_value(serde_json::json!({
            "name": "web", "status": "Stopped", "type": "container",
            "profiles": ["default"],
            "config": {"image.description": "Terrarium Debian 12 (bookworm) base"},
            "created_at": "2026-11-28T23:00:00.5+02:00",
            "snapshots": [{"name": "a"}, {"name": "b"}]
        }))
        .unwrap();
        let s = Summary::of(&i, "p");
        assert_eq!(s.state, "stopped");
        assert_eq!(s.created, "2026-11-28T21:00:00Z");
        assert_eq!(s.snapshots, 2);
        assert_eq!(s.ipv4, None);
        assert_eq!(s.project, "p");
    }

    #[test]
    fn exec_as_user_switches_by_name_in_the_same_exec() {
        let lxd = Lxd::for_tests("/usr/bin/lxc", "p");
        let argv = exec_cmd(&lxd, "web", &["id".into(), "-un".into()], false)
            .unwrap()
            .argv();
        assert_eq!(
            argv,
            [
                "/usr/bin/lxc",
                "exec",
                "--project",
                "p",
                "web",
                "--cwd",
                "/home/terrarium",
                "--",
                "setpriv",
                "--reuid",
                "terrarium",
                "--regid",
                "terrarium",
                "--init-groups",
                "--reset-env",
                "--",
                "id",
                "-un"
            ]
        );
        let root = exec_cmd(&lxd, "web", &[], true).unwrap().argv();
        assert_eq!(root[5..], ["--", "/bin/bash", "-l"]);
        assert!(exec_cmd(&lxd, "-bad", &[], true).is_err());
    }
}
