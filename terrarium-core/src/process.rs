//! The one way Terrarium runs other programs: by argv, never through a
//! shell, with the exit status checked, a timeout, and children that die
//! with us. Failures carry the command line and the tail of stderr.

use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{CommandFailure, Error, Result};

/// An outside program, found on PATH, overridable by an environment variable.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// Names tried in order; the first found wins.
    pub names: &'static [&'static str],
    /// Environment variable holding a name or path that replaces the search.
    pub env: &'static str,
    /// What to tell a user who lacks it.
    pub hint: &'static str,
}

pub mod tools {
    use super::Tool;
    pub const LXC: Tool = Tool {
        names: &["lxc", "incus"],
        env: "TRM_LXC",
        hint: "install LXD (`apt-get install lxd lxd-client`) or Incus",
    };
    /// The daemon's own binary: `lxd init --preseed` joins a cluster.
    pub const LXD: Tool = Tool {
        names: &["lxd", "incusd"],
        env: "TRM_LXD",
        hint: "install LXD (`apt-get install lxd`)",
    };
    pub const DEBOOTSTRAP: Tool = Tool {
        names: &["debootstrap"],
        env: "TRM_DEBOOTSTRAP",
        hint: "install it with `apt-get install debootstrap`",
    };
    pub const CHROOT: Tool = Tool {
        names: &["chroot"],
        env: "TRM_CHROOT",
        hint: "it is part of coreutils",
    };
    pub const MOUNT: Tool = Tool {
        names: &["mount"],
        env: "TRM_MOUNT",
        hint: "it is part of util-linux (`apt-get install mount`)",
    };
    pub const UMOUNT: Tool = Tool {
        names: &["umount"],
        env: "TRM_UMOUNT",
        hint: "it is part of util-linux (`apt-get install mount`)",
    };
    pub const TAR: Tool = Tool {
        names: &["tar"],
        env: "TRM_TAR",
        hint: "install it with `apt-get install tar`",
    };
}

/// A program named at run time (a setting), found the way every tool is.
pub fn find(program: impl AsRef<OsStr>, hint: impl Into<String>) -> Result<PathBuf> {
    let program = program.as_ref();
    which::which(program).map_err(|_| Error::ToolMissing {
        tool: program.to_string_lossy().into_owned(),
        hint: hint.into(),
    })
}

impl Tool {
    pub fn resolve(&self) -> Result<PathBuf> {
        if let Some(v) = std::env::var_os(self.env).filter(|v| !v.is_empty()) {
            return find(
                &v,
                format!("{} names a program that was not found", self.env),
            );
        }
        self.names
            .iter()
            .find_map(|n| which::which(n).ok())
            .ok_or_else(|| Error::ToolMissing {
                tool: self.names[0].to_string(),
                hint: self.hint.to_string(),
            })
    }
}

/// Captured result of a finished command.
#[derive(Debug, Clone)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

const STDERR_TAIL_LINES: usize = 8;

/// The last non-empty lines of some output, joined with ` | `.
pub fn tail(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(STDERR_TAIL_LINES);
    lines[start..].join(" | ")
}

/// A command to run. Build it, then `run` (checked), `output` (unchecked),
/// `interactive` (inherits the terminal) or `spawn_streaming` (streams).
#[derive(Debug, Clone)]
pub struct Cmd {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    stdin: Option<Vec<u8>>,
    timeout: Option<Duration>,
}

impl Cmd {
    pub fn new(program: impl Into<PathBuf>) -> Self {
        Cmd {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            stdin: None,
            timeout: None,
        }
    }

    pub fn tool(tool: &Tool) -> Result<Self> {
        Ok(Cmd::new(tool.resolve()?))
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.args.push(a.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Self {
        self.env
            .push((k.as_ref().to_owned(), v.as_ref().to_owned()));
        self
    }

    pub fn stdin_bytes(mut self, data: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(data.into());
        self
    }

    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = Some(t);
        self
    }

    pub fn argv(&self) -> Vec<String> {
        std::iter::once(self.program.to_string_lossy().into_owned())
            .chain(self.args.iter().map(|a| a.to_string_lossy().into_owned()))
            .collect()
    }

    /// The command line as a user could retype it (for messages only).
    pub fn command_line(&self) -> String {
        let mut v = self.argv();
        if let Some(first) = v.first_mut() {
            if let Some(name) = std::path::Path::new(first.as_str()).file_name() {
                *first = name.to_string_lossy().into_owned();
            }
        }
        shell_line(&v)
    }

    /// Program, arguments and environment; nothing about the process.
    fn base_command(&self) -> Command {
        let mut c = Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn command(&self) -> Command {
        let mut c = self.base_command();
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to
        // kill the child when the thread that spawned it exits, so a killed
        // `trm` never leaves an `lxc exec` or `debootstrap` behind.
        unsafe {
            c.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        c
    }

    fn spawn_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::ToolMissing {
                tool: self.program.to_string_lossy().into_owned(),
                hint: "the program was not found".into(),
            }
        } else {
            Error::io(format!("cannot run `{}`", self.command_line()), e)
        }
    }

    /// Run with captured output; a non-zero status is not an error here.
    pub fn output(&self) -> Result<Output> {
        self.output_capped(usize::MAX).map(|(out, _)| out)
    }

    /// As [`Cmd::output`], keeping at most `cap` bytes of each stream (the
    /// rest is read and dropped, so the child never blocks on a full
    /// pipe); true when something was dropped.
    pub fn output_capped(&self, cap: usize) -> Result<(Output, bool)> {
        let mut c = self.command();
        c.stdin(if self.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = c.spawn().map_err(|e| self.spawn_error(e))?;
        let feeder = child
            .stdin
            .take()
            .zip(self.stdin.clone())
            .map(|(mut w, data)| {
                std::thread::spawn(move || {
                    // A child that exits without reading is not our failure.
                    let _ = w.write_all(&data);
                })
            });
        let out_reader = capped_reader(child.stdout.take(), cap);
        let err_reader = capped_reader(child.stderr.take(), cap);
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait());
        });
        let status = match self.timeout {
            None => rx.recv().expect("waiter thread sends once"),
            Some(t) => match rx.recv_timeout(t) {
                Ok(s) => s,
                Err(_) => {
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                    let _ = rx.recv();
                    return Err(Error::Timeout {
                        command_line: self.command_line(),
                        seconds: t.as_secs(),
                    });
                }
            },
        }
        .map_err(|e| Error::io(format!("waiting for `{}`", self.command_line()), e))?;
        if let Some(f) = feeder {
            let _ = f.join();
        }
        let (stdout, cut_out) = out_reader.join().unwrap_or_default();
        let (stderr, cut_err) = err_reader.join().unwrap_or_default();
        Ok((
            Output {
                status,
                stdout,
                stderr,
            },
            cut_out || cut_err,
        ))
    }

    /// Run with captured output and fail on a non-zero status.
    pub fn run(&self) -> Result<Output> {
        let out = self.output()?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failure(&out))
        }
    }

    pub fn failure(&self, out: &Output) -> Error {
        failure(self.command_line(), &out.status, &out.stderr)
    }

    /// Run attached to our terminal and return its exit status. While it
    /// runs we ignore the terminal's interrupt: the child gets it too, and
    /// its exit status becomes ours.
    pub fn interactive(&self) -> Result<ExitStatus> {
        let mut child = self
            .command()
            .stdin(Stdio::inherit())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        ignore_interrupts();
        child
            .wait()
            .map_err(|e| Error::io(format!("waiting for `{}`", self.command_line()), e))
    }
}

impl Cmd {
    /// Start a long-running daemon that outlives us: its own session (no
    /// terminal signals), no parent-death signal, stdin closed, stdout and
    /// stderr appended to `log`. A thread reaps it if it dies while we run,
    /// so a crashed daemon never lingers as a zombie that looks alive.
    pub fn spawn_daemon(&self, log: &std::path::Path) -> Result<u32> {
        use std::os::unix::fs::OpenOptionsExt;
        // The log may sit in a directory the daemon's user owns: never
        // follow a link it planted there.
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .custom_flags(nix::libc::O_NOFOLLOW)
            .open(log)
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        let mut c = Command::new(&self.program);
        c.args(&self.args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        // SAFETY: setsid is async-signal-safe.
        unsafe {
            c.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = c.spawn().map_err(|e| self.spawn_error(e))?;
        let pid = child.id();
        std::thread::spawn(move || {
            let _ = child.wait();
        });
        Ok(pid)
    }
}

/// Which end of a streaming child we write or read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pipe {
    /// We feed its stdin (`lxc import`).
    Stdin,
    /// We read its stdout (`lxc export`, `lxc monitor`, `zfs send`).
    Stdout,
}

/// A child whose stdin or stdout we stream through, its stderr kept
/// for the error message. `finish` reaps it and checks its status.
pub struct Streaming {
    pub child: std::process::Child,
    command_line: String,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Cmd {
    /// Start it with one end piped (the other closed) and stderr captured.
    pub fn spawn_streaming(&self, pipe: Pipe) -> Result<Streaming> {
        let (stdin, stdout) = (pipe == Pipe::Stdin, pipe == Pipe::Stdout);
        let pipe = |on: bool| if on { Stdio::piped() } else { Stdio::null() };
        let mut child = self
            .command()
            .stdin(pipe(stdin))
            .stdout(pipe(stdout))
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| self.spawn_error(e))?;
        let stderr = reader(child.stderr.take());
        Ok(Streaming {
            child,
            command_line: self.command_line(),
            stderr: Some(stderr),
        })
    }
}

impl Streaming {
    /// Wait for it; a non-zero status is an error carrying its stderr.
    pub fn finish(mut self) -> Result<()> {
        drop(self.child.stdin.take());
        drop(self.child.stdout.take());
        let status = self
            .child
            .wait()
            .map_err(|e| Error::io(format!("waiting for `{}`", self.command_line), e))?;
        self.verdict(&status)
    }

    /// `None` while it runs; once it has ended, how (a failure carries
    /// its stderr: why `lxc monitor` died, say).
    pub fn exited(&mut self) -> Option<Result<()>> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(self.verdict(&status)),
            Ok(None) => None,
            Err(e) => Some(Err(Error::io(
                format!("waiting for `{}`", self.command_line),
                e,
            ))),
        }
    }

    fn verdict(&mut self, status: &ExitStatus) -> Result<()> {
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        if status.success() {
            return Ok(());
        }
        Err(failure(self.command_line.clone(), status, &stderr))
    }

    /// Stop it (after a failure on our side) and reap it.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The error of a command that exited non-zero: its command line, its
/// status and the tail of what it said on stderr.
fn failure(command_line: String, status: &ExitStatus, stderr: &[u8]) -> Error {
    Error::Command(CommandFailure {
        command_line,
        status: status.code(),
        stderr_tail: tail(stderr),
    })
}

fn ignore_interrupts() {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: SIG_IGN runs no handler code. Set after spawning, so the
    // child keeps the default disposition.
    unsafe {
        let _ = signal(Signal::SIGINT, SigHandler::SigIgn);
        let _ = signal(Signal::SIGQUIT, SigHandler::SigIgn);
    }
}

/// Exit code a shell would report for this status (128+signal when killed).
pub fn exit_code_of(status: &ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

fn reader<R: Read + Send + 'static>(r: Option<R>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        buf
    })
}

/// The first `cap` bytes, and whether more came (read and dropped).
fn capped_reader<R: Read + Send + 'static>(
    r: Option<R>,
    cap: usize,
) -> std::thread::JoinHandle<(Vec<u8>, bool)> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let Some(r) = r else {
            return (buf, false);
        };
        let mut r = r.take(cap as u64);
        let _ = r.read_to_end(&mut buf);
        let dropped = std::io::copy(&mut r.into_inner(), &mut std::io::sink()).unwrap_or(0);
        (buf, dropped > 0)
    })
}

/// An argv as one line to show or paste (each word quoted where a shell
/// would split or expand it).
pub(crate) fn shell_line<S: AsRef<str>>(argv: &[S]) -> String {
    argv.iter()
        .map(|a| shell_quote(a.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word, quoted for a shell only where it needs it.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_command_line_and_stderr_tail() {
        let err = Cmd::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("sh -c 'echo boom >&2; exit 3'"), "{msg}");
        assert!(msg.contains("status 3"), "{msg}");
        assert!(msg.ends_with("boom"), "{msg}");
        assert_eq!(err.exit_code(), 1);
    }

    #[test]
    fn arguments_are_not_interpreted_by_a_shell() {
        let out = Cmd::new("echo").arg("$(id) ; rm -rf /").run().unwrap();
        assert_eq!(out.stdout_str(), "$(id) ; rm -rf /\n");
    }

    #[test]
    fn timeout_kills_the_child() {
        let start = std::time::Instant::now();
        let err = Cmd::new("sleep")
            .arg("30")
            .timeout(Duration::from_millis(200))
            .run()
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_stream_that_ends_says_why_from_its_stderr() {
        let mut s = Cmd::new("sh")
            .args(["-c", "echo 'monitor lost LXD' >&2; exit 3"])
            .spawn_streaming(Pipe::Stdout)
            .unwrap();
        let ended = loop {
            if let Some(r) = s.exited() {
                break r;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let e = ended.unwrap_err().to_string();
        assert!(
            e.contains("status 3") && e.contains("monitor lost LXD"),
            "{e}"
        );
    }

    #[test]
    fn capped_output_keeps_the_head_and_says_so() {
        let (out, cut) = Cmd::new("sh")
            .args(["-c", "head -c 100000 /dev/zero; echo done >&2"])
            .output_capped(1000)
            .unwrap();
        assert!(out.status.success());
        assert_eq!(out.stdout.len(), 1000);
        assert!(cut);
        assert_eq!(out.stderr, b"done\n");
        let (_, cut) = Cmd::new("true").output_capped(10).unwrap();
        assert!(!cut);
    }

    #[test]
    fn stdin_is_fed() {
        let out = Cmd::new("cat").stdin_bytes("hello").run().unwrap();
        assert_eq!(out.stdout, b"hello");
    }

    #[test]
    fn missing_program_is_tool_missing() {
        let err = Cmd::new("/nonexistent/trm-nope").run().unwrap_err();
        assert_eq!(err.exit_code(), 69);
    }

    #[test]
    fn env_override_selects_the_tool() {
        const T: Tool = Tool {
            names: &["definitely-not-a-real-tool"],
            env: "TRM_TEST_TOOL_OVERRIDE",
            hint: "",
        };
        assert!(T.resolve().is_err());
        std::env::set_var("TRM_TEST_TOOL_OVERRIDE", "true");
        assert!(T.resolve().unwrap().ends_with("true"));
        std::env::remove_var("TRM_TEST_TOOL_OVERRIDE");
    }
}
