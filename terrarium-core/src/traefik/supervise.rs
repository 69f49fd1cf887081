//! Traefik as a supervised part of the host. Where systemd is the init it
//! is a hardened unit (its own user, only the bind capability, a read-only
//! system with ACME storage and logs writable). Elsewhere (containers, CI)
//! Terrarium runs it itself, the way LXD is started there: a detached
//! process under `setpriv` with the same user and capability, a pid file
//! and a log. Every start and restart is verified: ping answers and every
//! entrypoint of the static file listens.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use super::api::{self, Api, Loaded};
use crate::daemon::{self, Daemon};
use crate::error::{Error, Result};
use crate::output::Human;
use crate::process::Cmd;
use crate::settings::ExposeSettings;
use crate::systemd;

pub const UNIT: &str = "traefik.service";

/// How long a start may take before it counts as failed.
const READY_WITHIN: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Supervisor {
    Systemd,
    Terrarium,
    /// `expose.restart_command` names how this host restarts Traefik.
    Command,
}

/// `restart_command` wins; then `expose.supervisor` (`systemd`,
/// `terrarium`, or `auto`: systemd when it is the running init).
pub fn supervisor(e: &ExposeSettings) -> Supervisor {
    choose(e, systemd::is_running())
}

fn choose(e: &ExposeSettings, systemd_runs: bool) -> Supervisor {
    if !e.restart_command.is_empty() {
        return Supervisor::Command;
    }
    match daemon::choose(&e.supervisor, systemd_runs) {
        daemon::Supervisor::Systemd => Supervisor::Systemd,
        daemon::Supervisor::Terrarium => Supervisor::Terrarium,
    }
}

/// The first line of the unit Terrarium writes: a unit without it is
/// someone else's and is never overwritten.
const UNIT_MARK: &str = "# Written by Terrarium (trm-expose proxy); edits are replaced.";

/// The Traefik Terrarium runs itself: the one on our static file.
fn ours(e: &ExposeSettings) -> Daemon {
    Daemon::new(
        format!("--configFile={}", e.static_file),
        Path::new(&e.state_dir).join("traefik.pid"),
    )
}

fn output_log(e: &ExposeSettings) -> PathBuf {
    Path::new(&e.log_dir).join("traefik.out")
}

/// The hardened unit for hosts with systemd.
pub fn unit(e: &ExposeSettings) -> systemd::Unit {
    let mut env = String::new();
    if !e.acme_ca_certificates.is_empty() {
        env = format!(
            "Environment=LEGO_CA_CERTIFICATES={}\n",
            e.acme_ca_certificates
        );
    }
    let user = daemon::unit_user(&e.traefik_user);
    let sandbox = daemon::unit_sandbox(&format!("{} {}", parent_of(&e.acme_storage), e.log_dir));
    systemd::Unit {
        name: UNIT.into(),
        content: format!(
            "{UNIT_MARK}\n[Unit]\nDescription=Traefik, Terrarium's public proxy\nAfter=network-online.target\nWants=network-online.target\n\n\
             [Service]\n{user}ExecStart={bin} --configFile={cfg}\n{env}Restart=on-failure\nRestartSec=2\n\
             AmbientCapabilities=CAP_NET_BIND_SERVICE\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nNoNewPrivileges=true\n\
             {sandbox}LimitNOFILE=1048576\n\n\
             [Install]\nWantedBy=multi-user.target\n",
            bin = e.traefik_binary,
            cfg = e.static_file,
        ),
        enable: true,
    }
}

fn parent_of(path: &str) -> String {
    Path::new(path)
        .parent()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "/".into())
}

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub supervisor: Supervisor,
    pub running: bool,
    pub pid: Option<u32>,
    /// Ping on the loopback API answers.
    pub answering: bool,
    pub version: Option<String>,
    pub api_address: String,
    pub static_file: String,
    /// Traefik's view of Terrarium's files (None when it does not answer).
    pub files: Option<Loaded>,
    pub log: String,
}

impl Status {
    /// Up, answering, and running every router of Terrarium's files.
    pub fn healthy(&self) -> bool {
        self.running
            && self.answering
            && self
                .files
                .as_ref()
                .is_some_and(|f| f.missing.is_empty() && f.errors.is_empty())
    }
}

impl Human for Status {
    fn human(&self) -> String {
        let mut s = format!(
            "Traefik {}: {}\nAPI {} ({})\nstatic file {}\nlog {}",
            self.version.as_deref().unwrap_or("?"),
            daemon::describe(self.running, self.supervisor, self.pid),
            self.api_address,
            if self.answering {
                "answers"
            } else {
                "does not answer"
            },
            self.static_file,
            self.log,
        );
        if let Some(f) = &self.files {
            s.push_str(&format!(
                "\nTerrarium's routes loaded: {} of {}",
                f.loaded, f.expected
            ));
            for m in &f.missing {
                s.push_str(&format!("\n  not loaded: {m}"));
            }
            for e in &f.errors {
                s.push_str(&format!("\n  error: {e}"));
            }
        }
        s
    }
}

fn api_of(e: &ExposeSettings) -> Api {
    Api::new(&e.api_address)
}

pub fn status(e: &ExposeSettings) -> Status {
    let sup = supervisor(e);
    let pid = match sup {
        Supervisor::Systemd => daemon::unit_pid(UNIT),
        // A process whose pid file was lost still counts (and is stopped).
        _ => ours(e).pid(),
    };
    let api = api_of(e);
    let answering = api.ping();
    let files = answering
        .then(|| api.routers().ok())
        .flatten()
        .map(|running| {
            api::compare(
                &api::routers_in_files(Path::new(&e.dynamic_dir), None),
                &running,
            )
        });
    Status {
        supervisor: sup,
        // Under a restart command Terrarium knows no pid; answering is up.
        running: pid.is_some() || (sup == Supervisor::Command && answering),
        pid,
        answering,
        version: answering.then(|| api.version().ok()).flatten(),
        api_address: e.api_address.clone(),
        static_file: e.static_file.clone(),
        files,
        log: Path::new(&e.log_dir)
            .join("traefik.log")
            .display()
            .to_string(),
    }
}

/// The API address must be loopback: it is read-only but unauthenticated.
pub fn check_settings(e: &ExposeSettings) -> Result<()> {
    daemon::require_loopback("expose.api_address", &e.api_address, "127.0.0.1:8082")
}

/// Directories Traefik writes, owned by its user. Only the directories
/// are handed over, never through a link: files inside are Traefik's own,
/// and a link planted there must not make root chown /etc/shadow.
fn prepare_dirs(e: &ExposeSettings) -> Result<()> {
    let dirs = [e.log_dir.clone(), parent_of(&e.acme_storage)];
    // The watched directory must exist when Traefik starts: its file
    // provider gives up for good on a missing one.
    for dir in dirs.iter().chain([&e.state_dir, &e.dynamic_dir]) {
        std::fs::create_dir_all(dir).map_err(|err| Error::io(format!("creating {dir}"), err))?;
    }
    match daemon::run_as("Traefik", &e.traefik_user)? {
        Some(user) => daemon::chown_dirs(&dirs, &user),
        None => Ok(()),
    }
}

/// The argv that runs Traefik as its own user with only the capability to
/// bind low ports (when we are root and a user is set).
fn traefik_cmd(e: &ExposeSettings) -> Cmd {
    let mut cmd = daemon::command(
        &e.traefik_user,
        &["net_bind_service"],
        &[e.traefik_binary.clone(), ours(e).mark],
    );
    if !e.acme_ca_certificates.is_empty() {
        cmd = cmd.env("LEGO_CA_CERTIFICATES", &e.acme_ca_certificates);
    }
    cmd
}

fn require_static(e: &ExposeSettings) -> Result<Value> {
    let bytes = std::fs::read(&e.static_file).map_err(|err| {
        Error::WrongState(format!(
            "Traefik's static file {} cannot be read ({err}): run `trm-expose sync` first",
            e.static_file
        ))
    })?;
    serde_json::from_slice(&bytes).map_err(|err| Error::parse(e.static_file.clone(), err))
}

/// Start Traefik unless it already runs and answers. Verified.
pub fn start(e: &ExposeSettings) -> Result<Status> {
    check_settings(e)?;
    let st = status(e);
    if st.running && st.answering {
        return Ok(st);
    }
    let marks = log_marks(e);
    let spawned = launch(e)?;
    verify(e, &marks, spawned)
}

/// Start it; the pid when Terrarium spawned the process itself.
fn launch(e: &ExposeSettings) -> Result<Option<u32>> {
    require_static(e)?;
    if !Path::new(&e.traefik_binary).is_file() {
        return Err(Error::ToolMissing {
            tool: e.traefik_binary.clone(),
            hint: "scripts/setup-host.sh installs the pinned Traefik".into(),
        });
    }
    prepare_dirs(e)?;
    match supervisor(e) {
        Supervisor::Systemd => daemon::restart_unit(
            &unit(e),
            UNIT_MARK,
            "set expose.restart_command to how this host restarts Traefik, or remove the unit",
        )?,
        Supervisor::Terrarium => {
            let old = ours(e).stop_all();
            if !old.is_empty() {
                wait_ports_free(e);
            }
            return ours(e).spawn(&traefik_cmd(e), &output_log(e)).map(Some);
        }
        Supervisor::Command => {
            let (prog, args) = e.restart_command.split_first().expect("non-empty");
            Cmd::new(crate::process::find(
                prog,
                "expose.restart_command names it",
            )?)
            .args(args)
            .timeout(Duration::from_secs(60))
            .run()?;
        }
    }
    Ok(None)
}

/// Restart (a new static file: new entrypoints), then verify.
pub fn restart(e: &ExposeSettings) -> Result<Status> {
    check_settings(e)?;
    let marks = log_marks(e);
    let spawned = launch(e)?;
    verify(e, &marks, spawned)
}

/// Stop the Traefik Terrarium supervises. True when one was stopped.
pub fn stop(e: &ExposeSettings) -> Result<bool> {
    match supervisor(e) {
        Supervisor::Systemd => daemon::stop_unit(UNIT),
        Supervisor::Terrarium => Ok(!ours(e).stop_all().is_empty()),
        Supervisor::Command => Err(Error::Usage(
            "expose.restart_command manages Traefik on this host; stop it the same way".into(),
        )),
    }
}

/// Until the static file's ports are free (the old process's sockets
/// can outlive it for a moment), at most 5 s: the new one must bind them.
fn wait_ports_free(e: &ExposeSettings) {
    let Ok(doc) = require_static(e) else {
        return;
    };
    let want: std::collections::BTreeSet<(bool, u16)> = entrypoint_ports(&doc)
        .into_iter()
        .map(|(_, udp, port)| (udp, port))
        .collect();
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until
        && [false, true]
            .into_iter()
            .flat_map(crate::net::sockets)
            .any(|s| want.contains(&(s.udp, s.port)))
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The ports the static file's entrypoints bind (address `[host]:port[/proto]`).
pub fn entrypoint_ports(static_file: &Value) -> Vec<(String, bool, u16)> {
    static_file["entryPoints"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, ep)| {
            let (port, udp) = super::address_port(ep["address"].as_str()?)?;
            Some((name.clone(), udp, port))
        })
        .collect()
}

/// Wait until Traefik answers ping and every entrypoint listens; a process
/// that died, or a port that never opens, is an error with the log's tail.
fn verify(e: &ExposeSettings, marks: &[(PathBuf, u64)], spawned: Option<u32>) -> Result<Status> {
    let doc = require_static(e)?;
    let ports = entrypoint_ports(&doc);
    let names: std::collections::BTreeSet<String> =
        ports.iter().map(|(name, _, _)| name.clone()).collect();
    let runnable = api::routers_in_files(Path::new(&e.dynamic_dir), Some(&names));
    let api = api_of(e);
    let until = Instant::now() + READY_WITHIN;
    loop {
        let st = status(e);
        // The process we spawned, by pid: its command line is briefly
        // unreadable while setpriv and the binary exec one another.
        let pid = spawned.or(st.pid);
        let dead = match spawned {
            Some(p) => !daemon::alive(p),
            None => !st.running && supervisor(e) != Supervisor::Command,
        };
        let closed: Vec<String> = if st.answering {
            // The ports must be the new process's: an old Traefik still
            // holding them would answer ping while the new one died.
            let owners = pid.map(|_| crate::net::socket_owners());
            let held = |udp: bool| -> std::collections::BTreeSet<u16> {
                crate::net::sockets(udp)
                    .into_iter()
                    .filter(|s| match (&owners, pid) {
                        (Some(o), Some(pid)) => o.get(&s.inode).is_some_and(|(p, _)| *p == pid),
                        _ => true,
                    })
                    .map(|s| s.port)
                    .collect()
            };
            let (tcp, udp) = (held(false), held(true));
            ports
                .iter()
                .filter(|(_, is_udp, port)| !(if *is_udp { &udp } else { &tcp }).contains(port))
                .map(|(name, is_udp, port)| {
                    format!("{name} ({port}/{})", if *is_udp { "udp" } else { "tcp" })
                })
                .collect()
        } else {
            Vec::new()
        };
        // Ping answers before the file provider has applied the routes:
        // wait for every router it can run (its entrypoints exist).
        let unloaded: Vec<String> = if st.answering && closed.is_empty() {
            api.routers()
                .map(|running| api::compare(&runnable, &running).missing)
                .unwrap_or_else(|_| vec!["(the API did not answer)".into()])
        } else {
            Vec::new()
        };
        if st.answering && closed.is_empty() && unloaded.is_empty() {
            return Ok(st);
        }
        if dead || Instant::now() >= until {
            let why = if dead {
                "Traefik exited".to_string()
            } else if !st.answering {
                format!(
                    "Traefik did not answer ping on {} within {}s",
                    e.api_address,
                    READY_WITHIN.as_secs()
                )
            } else if !closed.is_empty() {
                format!("Traefik does not listen on {}", closed.join(", "))
            } else {
                format!("Traefik did not load the routers {}", unloaded.join(", "))
            };
            return Err(Error::Unavailable(format!(
                "{why}; what it logged since:\n{}",
                daemon::log_since(marks)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Where Traefik's logs end now, so a failure quotes only this start.
fn log_marks(e: &ExposeSettings) -> Vec<(PathBuf, u64)> {
    daemon::log_marks(&[output_log(e), Path::new(&e.log_dir).join("traefik.log")])
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_unit_is_hardened_and_runs_the_pinned_binary() {
        let e = ExposeSettings::default();
        let u = unit(&e);
        daemon::assert_unit_lines(
            &u,
            UNIT_MARK,
            &[
                "User=traefik",
                "ExecStart=/usr/local/bin/traefik --configFile=/etc/traefik/traefik.yml",
                "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                "NoNewPrivileges=true",
                "ProtectSystem=strict",
                "ReadWritePaths=/var/lib/traefik /var/log/traefik",
            ],
        );
        assert!(!u.content.contains("LEGO_CA_CERTIFICATES"));
    }

    #[test]
    fn entrypoint_ports_read_every_address_form() {
        let doc = json!({"entryPoints": {
            "web": {"address": ":80"},
            "traefik": {"address": "127.0.0.1:8082"},
            "udp-5353": {"address": ":5353/udp"},
            "tcp-2222": {"address": ":2222/tcp"},
        }});
        let mut p = entrypoint_ports(&doc);
        p.sort();
        assert_eq!(
            p,
            [
                ("tcp-2222".to_string(), false, 2222),
                ("traefik".into(), false, 8082),
                ("udp-5353".into(), true, 5353),
                ("web".into(), false, 80),
            ]
        );
    }

    #[test]
    fn the_api_must_stay_on_loopback() {
        let mut e = ExposeSettings::default();
        check_settings(&e).unwrap();
        e.api_address = "[::1]:8082".into();
        check_settings(&e).unwrap();
        for bad in [":8082", "0.0.0.0:8082", "10.0.0.1:8082"] {
            e.api_address = bad.into();
            assert!(check_settings(&e).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_supervisor_follows_settings_then_the_init() {
        let mut e = ExposeSettings::default();
        assert_eq!(choose(&e, true), Supervisor::Systemd);
        assert_eq!(choose(&e, false), Supervisor::Terrarium);
        e.supervisor = "terrarium".into();
        assert_eq!(
            choose(&e, true),
            Supervisor::Terrarium,
            "tests on a systemd host"
        );
        e.supervisor = "systemd".into();
        assert_eq!(choose(&e, false), Supervisor::Systemd);
        e.restart_command = vec!["true".into()];
        assert_eq!(choose(&e, true), Supervisor::Command);
    }
}
