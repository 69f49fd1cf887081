//! The gate as a supervised part of the host, the way Traefik is. Where
//! systemd is the init it is a hardened unit (its own user, no capability
//! at all, a read-only system with its state and log directories
//! writable; egress stays open: it must reach the OIDC issuer). Elsewhere
//! (containers, CI) Terrarium runs `trm-gate serve` itself: detached,
//! under `setpriv` as the gate's user with no capability, a pid file in
//! `state_dir`, its output in `log_dir`. Every start is verified: `/ping`
//! answers, from the process just started.
//!
//! The binary run is the `trm-gate` beside the running executable: the
//! one just invoked when `trm-gate start` runs (installed, `$PREFIX/bin`,
//! or a build tree in tests), and the sibling of any other Terrarium tool
//! that starts the gate, since they are installed together. A fixed
//! `/usr/local/bin/trm-gate` would ignore `PREFIX` and test builds.

use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::GateSettings;
use crate::daemon::{self, Daemon, Supervisor};
use crate::error::{Error, Result};
use crate::output::Human;
use crate::systemd;

pub const UNIT: &str = "trm-gate.service";

/// The first line of the unit Terrarium writes: a unit without it is
/// someone else's and is never overwritten.
const UNIT_MARK: &str = "# Written by Terrarium (trm-gate); edits are replaced.";

/// How long a start may take before it counts as failed.
const READY_WITHIN: Duration = Duration::from_secs(10);

/// What `status` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub supervisor: Supervisor,
    pub running: bool,
    pub pid: Option<u32>,
    /// `GET /ping` on `listen` answers 200 `OK`.
    pub answering: bool,
    pub listen: String,
    /// Where the gate's output goes.
    pub log: String,
}

impl Status {
    pub fn healthy(&self) -> bool {
        self.running && self.answering
    }
}

impl Human for Status {
    fn human(&self) -> String {
        let ping = if self.answering {
            "answers"
        } else {
            "does not answer"
        };
        format!(
            "trm-gate: {}\nlistens on {} (/ping {ping})\nlog {}",
            daemon::describe(self.running, self.supervisor, self.pid),
            self.listen,
            self.log,
        )
    }
}

/// The settings file the gate runs on, absolute: its `--config=` argument
/// is what tells our gate from any other process.
fn config_file() -> PathBuf {
    let p = super::settings::path();
    std::path::absolute(&p).unwrap_or(p)
}

fn ours(g: &GateSettings) -> Daemon {
    Daemon::new(
        format!("--config={}", config_file().display()),
        Path::new(&g.state_dir).join("trm-gate.pid"),
    )
}

fn output_log(g: &GateSettings) -> PathBuf {
    Path::new(&g.log_dir).join("trm-gate.log")
}

/// The `trm-gate` beside the running executable (see the module's note).
pub fn binary() -> Result<PathBuf> {
    let me = std::env::current_exe().map_err(|e| Error::io("finding the running executable", e))?;
    let bin = me.with_file_name("trm-gate");
    if !bin.is_file() {
        return Err(Error::ToolMissing {
            tool: bin.display().to_string(),
            hint: "install trm-gate beside the other Terrarium tools (scripts/install.sh)".into(),
        });
    }
    Ok(bin)
}

/// TRM_CONFIG_DIR, when set: the gate must read the settings we read.
fn config_dir_env() -> Option<String> {
    std::env::var_os("TRM_CONFIG_DIR").map(|_| crate::settings::config_dir().display().to_string())
}

/// The hardened unit for hosts with systemd.
pub fn unit(g: &GateSettings, bin: &Path) -> systemd::Unit {
    let env = config_dir_env()
        .map(|d| format!("Environment=TRM_CONFIG_DIR={d}\n"))
        .unwrap_or_default();
    let log = output_log(g).display().to_string();
    systemd::Unit {
        name: UNIT.into(),
        content: format!(
            "{UNIT_MARK}\n[Unit]\nDescription=trm-gate, Terrarium's single sign-on (OIDC forward-auth)\n\
             After=network-online.target\nWants=network-online.target\n\n\
             [Service]\n{user}ExecStart={bin} serve {mark}\n{env}Restart=on-failure\nRestartSec=2\n\
             StandardOutput=append:{log}\nStandardError=append:{log}\n\
             AmbientCapabilities=\nCapabilityBoundingSet=\nNoNewPrivileges=true\n{sandbox}\n\
             [Install]\nWantedBy=multi-user.target\n",
            user = daemon::unit_user(&g.user),
            bin = bin.display(),
            mark = ours(g).mark,
            sandbox = daemon::unit_sandbox(&format!("{} {}", g.state_dir, g.log_dir)),
        ),
        enable: true,
    }
}

pub fn status(g: &GateSettings) -> Status {
    let sup = daemon::supervisor(&g.supervisor);
    let pid = match sup {
        Supervisor::Systemd => daemon::unit_pid(UNIT),
        Supervisor::Terrarium => ours(g).pid(),
    };
    Status {
        supervisor: sup,
        running: pid.is_some(),
        pid,
        answering: ping(&g.listen),
        listen: g.listen.clone(),
        log: output_log(g).display().to_string(),
    }
}

/// Does `GET /ping` on `listen` answer 200 `OK`?
fn ping(listen: &str) -> bool {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(2))
        .build()
        .get(&format!("http://{listen}/ping"))
        .call()
        .ok()
        .filter(|r| r.status() == 200)
        .and_then(|r| r.into_string().ok())
        .is_some_and(|b| b.trim() == "OK")
}

/// Traefik is the gate's only client: it listens on loopback.
pub fn check_settings(g: &GateSettings) -> Result<()> {
    daemon::require_loopback("gate.toml's listen", &g.listen, "127.0.0.1:4180")
}

/// Start the gate unless it runs and answers. Verified.
pub fn start(g: &GateSettings) -> Result<Status> {
    check_settings(g)?;
    let st = status(g);
    if st.running && st.answering {
        return Ok(st);
    }
    restart(g)
}

/// (Re)start it (new settings or keys), then verify.
pub fn restart(g: &GateSettings) -> Result<Status> {
    check_settings(g)?;
    let marks = daemon::log_marks(&[output_log(g)]);
    let spawned = launch(g)?;
    verify(g, &marks, spawned)
}

/// Stop the gate; what runs afterwards (nothing).
pub fn stop(g: &GateSettings) -> Result<Status> {
    match daemon::supervisor(&g.supervisor) {
        Supervisor::Systemd => {
            daemon::stop_unit(UNIT)?;
        }
        Supervisor::Terrarium => {
            ours(g).stop_all();
        }
    }
    Ok(status(g))
}

/// Start it; the pid when Terrarium spawned the process itself.
fn launch(g: &GateSettings) -> Result<Option<u32>> {
    let bin = binary()?;
    prepare(g)?;
    match daemon::supervisor(&g.supervisor) {
        Supervisor::Systemd => {
            daemon::restart_unit(
                &unit(g, &bin),
                UNIT_MARK,
                "remove it, or set supervisor = \"terrarium\" in gate.toml",
            )?;
            Ok(None)
        }
        Supervisor::Terrarium => {
            let d = ours(g);
            if !d.stop_all().is_empty() {
                wait_port_free(&g.listen);
            }
            let argv = [bin.display().to_string(), "serve".into(), d.mark.clone()];
            let mut cmd = daemon::command(&g.user, &[], &argv);
            if let Some(dir) = config_dir_env() {
                cmd = cmd.env("TRM_CONFIG_DIR", dir);
            }
            d.spawn(&cmd, &output_log(g)).map(Some)
        }
    }
}

/// The gate's directories and secrets, ready for its user: the user must
/// exist (scripts/setup-host.sh creates it), the directories are handed
/// over (never through a link), and so are the secret files.
fn prepare(g: &GateSettings) -> Result<()> {
    for dir in [&g.state_dir, &g.log_dir] {
        std::fs::create_dir_all(dir).map_err(|err| Error::io(format!("creating {dir}"), err))?;
    }
    let configured = g.configured();
    if configured && !Path::new(&g.client_secret_file).exists() {
        return Err(Error::WrongState(format!(
            "the gate's client secret {} is missing: run `trm-harden oidc set`",
            g.client_secret_file
        )));
    }
    super::keys::ensure(g)?;
    let Some(user) = daemon::run_as("gate", &g.user)? else {
        return Ok(());
    };
    daemon::chown_dirs(&[&g.state_dir, &g.log_dir], &user)?;
    give_secret(Path::new(&g.keys_file), &user)?;
    if configured {
        give_secret(Path::new(&g.client_secret_file), &user)?;
    }
    Ok(())
}

/// Make the secret `path` the user's, mode 0600. Opened without following
/// a link, then changed through that descriptor: a link, or a file owned
/// by anyone but root and the user, is refused.
pub fn give_secret(path: &Path, user: &nix::unistd::User) -> Result<()> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)
        .map_err(|err| {
            if err.raw_os_error() == Some(nix::libc::ELOOP) {
                Error::WrongState(format!(
                    "the gate's secret {} is a symbolic link: replace it with the file itself",
                    path.display()
                ))
            } else {
                Error::io(format!("opening {}", path.display()), err)
            }
        })?;
    let meta = f
        .metadata()
        .map_err(|err| Error::io(format!("reading {}", path.display()), err))?;
    if !meta.is_file() {
        return Err(Error::WrongState(format!(
            "the gate's secret {} is not a regular file",
            path.display()
        )));
    }
    if meta.uid() != 0 && meta.uid() != user.uid.as_raw() {
        return Err(Error::WrongState(format!(
            "the gate's secret {} belongs to uid {}, neither root nor {}: refusing to hand it over",
            path.display(),
            meta.uid(),
            user.name
        )));
    }
    std::os::unix::fs::fchown(&f, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .and_then(|()| f.set_permissions(std::fs::Permissions::from_mode(0o600)))
        .map_err(|err| Error::io(format!("handing {} to {}", path.display(), user.name), err))
}

/// Until nothing listens on `listen`'s port (an old gate's socket can
/// outlive it for a moment), at most 5 s.
fn wait_port_free(listen: &str) {
    let Some(port) = crate::traefik::address_port(listen).map(|(p, _)| p) else {
        return;
    };
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until && crate::net::listening_ports(false).contains(&port) {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Is `listen`'s port held by `pid` (an old gate, or anything else,
/// answering there would pass for the new one)?
fn listens(pid: u32, listen: &str) -> bool {
    let Some(port) = crate::traefik::address_port(listen).map(|(p, _)| p) else {
        return false;
    };
    let owners = crate::net::socket_owners();
    crate::net::sockets(false)
        .iter()
        .any(|s| s.port == port && owners.get(&s.inode).is_some_and(|(p, _)| *p == pid))
}

/// Wait until `/ping` answers from the process just started; one that
/// exited, or a gate that never answers, is an error with the log's tail.
fn verify(g: &GateSettings, marks: &[(PathBuf, u64)], spawned: Option<u32>) -> Result<Status> {
    let until = Instant::now() + READY_WITHIN;
    loop {
        let st = status(g);
        let theirs = match spawned {
            Some(pid) => listens(pid, &g.listen),
            None => true,
        };
        if st.answering && theirs {
            return Ok(st);
        }
        let dead = match spawned {
            Some(pid) => !daemon::alive(pid),
            None => !st.running,
        };
        if dead || Instant::now() >= until {
            let why = if dead {
                "trm-gate exited".to_string()
            } else if st.answering {
                format!(
                    "something else answers on {}, not the trm-gate just started",
                    g.listen
                )
            } else {
                format!(
                    "trm-gate did not answer /ping on {} within {}s",
                    g.listen,
                    READY_WITHIN.as_secs()
                )
            };
            return Err(Error::Unavailable(format!(
                "{why}; what it logged since:\n{}",
                daemon::log_since(marks)
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_is_hardened_without_capabilities_and_keeps_egress() {
        let g = GateSettings::default();
        let u = unit(&g, Path::new("/usr/local/bin/trm-gate"));
        let config = config_file();
        let exec = format!(
            "ExecStart=/usr/local/bin/trm-gate serve --config={}",
            config.display()
        );
        daemon::assert_unit_lines(
            &u,
            UNIT_MARK,
            &[
                "User=trm-gate",
                "Group=trm-gate",
                exec.as_str(),
                "AmbientCapabilities=",
                "CapabilityBoundingSet=",
                "NoNewPrivileges=true",
                "ProtectSystem=strict",
                "ReadWritePaths=/var/lib/terrarium/gate /var/log/terrarium/gate",
                "ProtectHome=true",
                "PrivateTmp=true",
                "PrivateDevices=true",
                "ProtectKernelTunables=true",
                "ProtectKernelModules=true",
                "ProtectKernelLogs=true",
                "ProtectControlGroups=true",
                "ProtectClock=true",
                "ProtectHostname=true",
                "RestrictNamespaces=true",
                "RestrictSUIDSGID=true",
                "LockPersonality=true",
                "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
                "StandardOutput=append:/var/log/terrarium/gate/trm-gate.log",
                "WantedBy=multi-user.target",
            ],
        );
        // It must reach the issuer; and no secret is ever on its command line.
        assert!(!u.content.contains("IPAddressDeny"), "{}", u.content);
        assert!(!u.content.contains(&g.client_secret_file));
        assert!(!u.content.contains("LimitNOFILE"));
        let root = GateSettings {
            user: String::new(),
            ..GateSettings::default()
        };
        assert!(!unit(&root, Path::new("/x")).content.contains("User="));
    }

    #[test]
    fn the_gate_listens_on_loopback_only() {
        check_settings(&GateSettings::default()).unwrap();
        let open = GateSettings {
            listen: "0.0.0.0:4180".into(),
            ..GateSettings::default()
        };
        let err = check_settings(&open).unwrap_err().to_string();
        assert!(err.contains("listen \"0.0.0.0:4180\""), "{err}");
    }

    #[test]
    fn secrets_are_handed_over_only_as_plain_files_of_root_or_the_user() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
            .unwrap()
            .unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, "s").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        give_secret(&file, &me).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.uid(), me.uid.as_raw());
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = give_secret(&link, &me).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        let err = give_secret(dir.path(), &me).unwrap_err().to_string();
        assert!(err.contains("not a regular file"), "{err}");
        if crate::fs::is_root() {
            // A file someone else planted is not root's to give away.
            std::os::unix::fs::chown(&file, Some(4242), None).unwrap();
            let err = give_secret(&file, &me).unwrap_err().to_string();
            assert!(err.contains("uid 4242"), "{err}");
        }
    }
}
