//! Long-running helpers Terrarium supervises (Traefik, the gate). Where
//! systemd is the init each is a hardened unit Terrarium writes; elsewhere
//! (containers, CI) Terrarium runs it itself: a detached process under
//! `setpriv` with its own user and capability set, a pid file and a log.
//! Such a process is known by one element of its argv (pids are reused,
//! pid files outlive their process), checked again before every signal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::process::Cmd;
use crate::systemd;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Supervisor {
    Systemd,
    Terrarium,
}

/// A `supervisor` setting (`systemd`, `terrarium`, or `auto`: systemd
/// when it is the running init).
pub fn supervisor(setting: &str) -> Supervisor {
    choose(setting, systemd::is_running())
}

pub fn choose(setting: &str, systemd_runs: bool) -> Supervisor {
    match setting {
        "systemd" => Supervisor::Systemd,
        "terrarium" => Supervisor::Terrarium,
        _ if systemd_runs => Supervisor::Systemd,
        _ => Supervisor::Terrarium,
    }
}

/// `running (supervisor: terrarium, pid 42)`, for status reports;
/// `supervisor` is any snake_case enum (Traefik's has a third kind).
pub fn describe(running: bool, supervisor: impl Serialize, pid: Option<u32>) -> String {
    format!(
        "{} (supervisor: {}{})",
        if running { "running" } else { "not running" },
        serde_json::to_value(supervisor)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
    )
}

/// A helper's unauthenticated endpoint stays on loopback: `setting`
/// names it in the error, `example` shows a good value.
pub fn require_loopback(setting: &str, address: &str, example: &str) -> Result<()> {
    if crate::traefik::is_loopback_address(address) {
        return Ok(());
    }
    Err(Error::Usage(format!(
        "{setting} {address:?} must be a loopback address such as {example}"
    )))
}

/// A process Terrarium runs itself: every process whose argv holds `mark`
/// (e.g. `--configFile=/etc/traefik/traefik.yml`) is it, and its pid is
/// recorded in `pid_file`.
#[derive(Debug, Clone)]
pub struct Daemon {
    pub mark: String,
    pub pid_file: PathBuf,
}

/// How long each of SIGTERM and SIGKILL is given.
const SIGNAL_WAIT: Duration = Duration::from_secs(5);

impl Daemon {
    pub fn new(mark: impl Into<String>, pid_file: impl Into<PathBuf>) -> Daemon {
        Daemon {
            mark: mark.into(),
            pid_file: pid_file.into(),
        }
    }

    /// Is `pid` alive and carrying our mark (itself, or the setpriv that
    /// is about to exec it)?
    pub fn is_ours(&self, pid: u32) -> bool {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == self.mark.as_bytes()))
            && alive(pid)
    }

    /// The recorded pid, if that process is alive and really ours.
    pub fn recorded(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(&self.pid_file)
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.is_ours(pid).then_some(pid)
    }

    /// Every process carrying our mark, recorded or not (one whose pid
    /// file was lost would hold what the next one needs).
    pub fn all(&self) -> Vec<u32> {
        let me = std::process::id();
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|d| d.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| *pid != me && self.is_ours(*pid))
            .collect()
    }

    /// The recorded pid, else any process of ours (it still counts, and
    /// is stopped).
    pub fn pid(&self) -> Option<u32> {
        self.recorded().or_else(|| self.all().first().copied())
    }

    /// SIGTERM, then SIGKILL, each given 5 s; the pid is checked to still
    /// be ours before each signal (pids are reused), and waits are bounded.
    pub fn terminate(&self, pid: u32) {
        use nix::sys::signal::{kill, Signal};
        let p = nix::unistd::Pid::from_raw(pid as i32);
        for signal in [Signal::SIGTERM, Signal::SIGKILL] {
            if !self.is_ours(pid) {
                return;
            }
            let _ = kill(p, signal);
            let until = Instant::now() + SIGNAL_WAIT;
            while alive(pid) && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Terminate every process of ours and forget the pid file; the pids
    /// that were running.
    pub fn stop_all(&self) -> Vec<u32> {
        let pids = self.all();
        for pid in &pids {
            self.terminate(*pid);
        }
        let _ = std::fs::remove_file(&self.pid_file);
        pids
    }

    /// Start `cmd` detached, its output appended to `log`; the pid is
    /// recorded.
    pub fn spawn(&self, cmd: &Cmd, log: &Path) -> Result<u32> {
        let pid = cmd.spawn_daemon(log)?;
        crate::fs::atomic_write(&self.pid_file, format!("{pid}\n").as_bytes(), 0o644)?;
        Ok(pid)
    }
}

/// Has `pid` not exited? A zombie has: /proc/PID/stat's third field says so.
pub fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next().map(|st| st != "Z"))
        })
        .unwrap_or(false)
}

/// The user a daemon is to run as: `None` when no user is set or we are
/// not root (it runs as whoever starts it); an error naming `what` (e.g.
/// "Traefik") when the user does not exist.
pub fn run_as(what: &str, user: &str) -> Result<Option<nix::unistd::User>> {
    if user.is_empty() || !crate::fs::is_root() {
        return Ok(None);
    }
    nix::unistd::User::from_name(user)
        .ok()
        .flatten()
        .map(Some)
        .ok_or_else(|| {
            Error::Usage(format!(
                "the {what} user '{user}' does not exist (scripts/setup-host.sh creates it)"
            ))
        })
}

/// Hand `dirs` to `user`, never through a link: a link planted there must
/// not make root chown /etc/shadow.
pub fn chown_dirs<S: AsRef<str>>(dirs: &[S], user: &nix::unistd::User) -> Result<()> {
    for dir in dirs {
        let dir = dir.as_ref();
        nix::unistd::fchownat(
            None,
            Path::new(dir),
            Some(user.uid),
            Some(user.gid),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|err| Error::io(format!("chown {dir}"), err.into()))?;
    }
    Ok(())
}

/// `argv` as `user` under `setpriv`, with only the capabilities `caps`
/// (e.g. `net_bind_service`; none: no capability at all) and no new
/// privileges, when we are root and a user is set; otherwise `argv` as is.
pub fn command(user: &str, caps: &[&str], argv: &[String]) -> Cmd {
    let (program, args) = argv.split_first().expect("a program");
    if user.is_empty() || !crate::fs::is_root() {
        return Cmd::new(program).args(args);
    }
    let set: String = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{c}")))
        .collect::<Vec<_>>()
        .join(",");
    Cmd::new("setpriv")
        .args([
            format!("--reuid={user}"),
            format!("--regid={user}"),
            "--init-groups".into(),
            format!("--inh-caps={set}"),
            format!("--ambient-caps={set}"),
            format!("--bounding-set={set}"),
            "--no-new-privs".into(),
            "--".into(),
        ])
        .args(argv)
}

/// A unit's `User=`/`Group=` lines (none for an empty user: root).
pub fn unit_user(user: &str) -> String {
    if user.is_empty() {
        String::new()
    } else {
        format!("User={user}\nGroup={user}\n")
    }
}

/// The sandbox every Terrarium unit runs in: a read-only system but for
/// `read_write` (space-separated paths), no home, private /tmp and
/// devices, the kernel and cgroups out of reach, IP and Unix sockets only.
pub fn unit_sandbox(read_write: &str) -> String {
    format!(
        "ProtectSystem=strict\nReadWritePaths={read_write}\nProtectHome=true\nPrivateTmp=true\nPrivateDevices=true\n\
         ProtectKernelTunables=true\nProtectKernelModules=true\nProtectKernelLogs=true\nProtectControlGroups=true\n\
         ProtectClock=true\nProtectHostname=true\nRestrictNamespaces=true\nRestrictSUIDSGID=true\nLockPersonality=true\n\
         RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX\nSystemCallArchitectures=native\n"
    )
}

/// Write `unit` (marked by its first line `mark`) unless it is already
/// there as is, then enable it. A unit of that name without the mark is
/// someone else's: refused, `not_ours` saying what to do instead.
pub fn install_unit(unit: &systemd::Unit, mark: &str, not_ours: &str) -> Result<()> {
    debug_assert!(unit.content.starts_with(mark));
    let path = Path::new(systemd::DEFAULT_UNIT_DIR).join(&unit.name);
    match std::fs::read_to_string(&path) {
        Ok(have) if have == unit.content => Ok(()),
        Ok(have) if !have.starts_with(mark) => Err(Error::WrongState(format!(
            "{} is not Terrarium's; {not_ours}",
            path.display()
        ))),
        _ => {
            crate::fs::atomic_write(&path, unit.content.as_bytes(), 0o644)?;
            systemd::systemctl(&["daemon-reload"])?;
            systemd::systemctl(&["enable", &unit.name])
        }
    }
}

/// Install (as [`install_unit`]) and restart it.
pub fn restart_unit(unit: &systemd::Unit, mark: &str, not_ours: &str) -> Result<()> {
    install_unit(unit, mark, not_ours)?;
    systemd::systemctl(&["restart", &unit.name])
}

/// The unit's main pid, when it runs.
pub fn unit_pid(name: &str) -> Option<u32> {
    systemd::systemctl_output(&["show", "-p", "MainPID", "--value", name])
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|p| *p != 0)
}

/// Stop the unit (when it runs or is installed); true when it ran.
pub fn stop_unit(name: &str) -> Result<bool> {
    let was = unit_pid(name).is_some();
    if was || Path::new(systemd::DEFAULT_UNIT_DIR).join(name).exists() {
        systemd::systemctl(&["stop", name])?;
    }
    Ok(was)
}

/// Where `logs` end now, so a failed start quotes only what it logged.
pub fn log_marks(logs: &[PathBuf]) -> Vec<(PathBuf, u64)> {
    logs.iter()
        .map(|f| {
            let len = std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
            (f.clone(), len)
        })
        .collect()
}

/// The tail of what each log gained since its mark.
pub fn log_since(marks: &[(PathBuf, u64)]) -> String {
    marks
        .iter()
        .filter_map(|(f, from)| {
            let bytes = std::fs::read(f).ok()?;
            let new = bytes.get(*from as usize..).unwrap_or(&bytes);
            (!new.is_empty()).then(|| format!("{}: {}", f.display(), crate::process::tail(new)))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Test support: `unit` has each of `lines`, whole, and Terrarium's mark.
#[cfg(test)]
pub(crate) fn assert_unit_lines(unit: &systemd::Unit, mark: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            unit.content.lines().any(|l| l == *line),
            "missing {line}:\n{}",
            unit.content
        );
    }
    assert!(unit.content.starts_with(mark), "marked as Terrarium's");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_supervisor_follows_the_setting_then_the_init() {
        assert_eq!(choose("auto", true), Supervisor::Systemd);
        assert_eq!(choose("auto", false), Supervisor::Terrarium);
        assert_eq!(choose("terrarium", true), Supervisor::Terrarium);
        assert_eq!(choose("systemd", false), Supervisor::Systemd);
    }

    #[test]
    fn a_process_is_known_by_its_mark_and_a_zombie_is_dead() {
        let dir = tempfile::tempdir().unwrap();
        let mark = format!("--trm-test-mark={}", dir.path().display());
        let d = Daemon::new(mark.clone(), dir.path().join("pid"));
        assert!(d.all().is_empty());
        // `read` is a builtin: no forked child carries the mark (with
        // `sleep`, the fork before its exec briefly did, and was counted).
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read x", &mark])
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        crate::fs::atomic_write(&d.pid_file, format!("{pid}\n").as_bytes(), 0o644).unwrap();
        assert_eq!(d.recorded(), Some(pid));
        assert_eq!(d.all(), [pid]);
        let other = Daemon::new("--trm-test-mark=elsewhere", dir.path().join("pid"));
        assert_eq!(other.recorded(), None, "a pid that is not ours");
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let until = Instant::now() + Duration::from_secs(5);
        while alive(pid) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(pid), "an unreaped child is a zombie: dead");
        assert!(d.all().is_empty());
        child.wait().unwrap();
    }

    #[test]
    fn setpriv_keeps_only_the_named_capabilities() {
        let argv = ["/bin/x".to_string(), "--a".into()];
        let c = command("u", &["net_bind_service"], &argv);
        let c0 = command("u", &[], &argv);
        if !crate::fs::is_root() {
            assert_eq!(c.argv(), argv);
            return;
        }
        let v = c.argv();
        assert_eq!(v[0], "setpriv");
        assert!(v.contains(&"--bounding-set=-all,+net_bind_service".to_string()));
        assert!(v.contains(&"--no-new-privs".to_string()));
        assert_eq!(&v[v.len() - 3..], ["--", "/bin/x", "--a"]);
        let v0 = c0.argv();
        for flag in [
            "--inh-caps=-all",
            "--ambient-caps=-all",
            "--bounding-set=-all",
        ] {
            assert!(v0.contains(&flag.to_string()), "{flag}: {v0:?}");
        }
        assert_eq!(command("", &[], &argv).argv(), argv);
    }
}
