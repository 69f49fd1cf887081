//! End-to-end test of the gate's supervision without systemd, LXD or an
//! IdP (TRM_E2E=1): `trm-gate start` runs the real `trm-gate serve` on a
//! free loopback port from a throwaway settings directory; status is
//! healthy, the process runs as the right user (as the test's user, and,
//! when root, as `trm-gate` with no capability and no new privileges);
//! stop leaves nothing behind. A gate that cannot listen is reported with
//! what it logged.

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use terrarium_core::error::exit;

use serde_json::Value;
use terrarium_tests::e2e::{self, Runner};

/// A settings directory of its own, with a gate.toml, secrets, and state
/// and log directories.
struct Gate {
    dir: tempfile::TempDir,
    port: u16,
}

impl Gate {
    fn new(user: &str) -> Gate {
        let dir = tempfile::tempdir().unwrap();
        // The gate's user must reach its settings (tempdir makes it 0700).
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let g = Gate { dir, port };
        std::fs::create_dir_all(g.path("etc/gate")).unwrap();
        std::fs::write(g.path("etc/gate/client-secret"), "not-a-real-secret\n").unwrap();
        let toml = format!(
            "listen = \"127.0.0.1:{port}\"\n\
             issuer = \"https://issuer.example.test\"\n\
             client_id = \"terrarium-test\"\n\
             client_secret_file = \"{secret}\"\n\
             admin_group = \"admins\"\n\
             auth_url = \"https://auth.example.test\"\n\
             keys_file = \"{keys}\"\n\
             dynamic_dir = \"{dynamic}\"\n\
             state_dir = \"{state}\"\n\
             log_dir = \"{log}\"\n\
             user = \"{user}\"\n\
             supervisor = \"terrarium\"\n",
            secret = g.path("etc/gate/client-secret").display(),
            keys = g.path("etc/gate/cookie-keys").display(),
            dynamic = g.path("dynamic").display(),
            state = g.path("state").display(),
            log = g.path("log").display(),
        );
        std::fs::create_dir_all(g.path("dynamic")).unwrap();
        std::fs::write(g.path("etc/gate.toml"), toml).unwrap();
        g
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn tool(&self, args: &[&str]) -> Output {
        Command::new(e2e::bin_dir().join("trm-gate"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("TRM_CONFIG_DIR", self.path("etc"))
            .args(["--format", "json"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.tool(args);
        e2e::assert_ok(&out, &format!("trm-gate {args:?}"));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Every process on this gate's settings (none must outlive stop).
    fn processes(&self) -> Vec<u32> {
        let mark = format!("--config={}", self.path("etc/gate.toml").display());
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|d| d.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a == mark.as_bytes()))
                    && !exited(*pid)
            })
            .collect()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = self.tool(&["stop"]);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Gone, or a zombie.
fn exited(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

/// A field of /proc/PID/status, e.g. `Uid` (its first value).
fn proc_status(pid: u32, field: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// start → healthy status → runs as `uid` → stop → nothing left.
fn supervised_round(user: &str, uid: u32) {
    let g = Gate::new(user);
    let st = g.json(&["start"]);
    assert_eq!(st["running"], true, "{st}");
    assert_eq!(st["answering"], true, "{st}");
    assert_eq!(st["supervisor"], "terrarium", "{st}");
    assert_eq!(st["listen"], format!("127.0.0.1:{}", g.port));
    let pid = st["pid"].as_u64().expect("a pid") as u32;

    let out = g.tool(&["status"]);
    assert_eq!(out.status.code(), Some(0), "status is healthy: {out:?}");
    let status: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["pid"], pid, "{status}");
    let body = ureq::get(&format!("http://127.0.0.1:{}/ping", g.port))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert_eq!(body.trim(), "OK");

    assert_eq!(proc_status(pid, "Uid"), uid.to_string(), "runs as {user:?}");
    if uid != 0 && user == "trm-gate" {
        assert_eq!(proc_status(pid, "CapEff"), "0000000000000000");
        assert_eq!(proc_status(pid, "CapBnd"), "0000000000000000");
        assert_eq!(proc_status(pid, "NoNewPrivs"), "1");
        let keys = std::fs::metadata(g.path("etc/gate/cookie-keys")).unwrap();
        use std::os::unix::fs::MetadataExt;
        assert_eq!((keys.uid(), keys.mode() & 0o777), (uid, 0o600));
    }
    assert_eq!(
        g.json(&["start"])["pid"],
        pid,
        "a healthy gate is left running"
    );

    let st = g.json(&["stop"]);
    assert_eq!(st["running"], false, "{st}");
    assert_eq!(st["answering"], false, "{st}");
    assert!(exited(pid), "pid {pid} is gone");
    assert!(g.processes().is_empty(), "left: {:?}", g.processes());
    assert!(!g.path("state/trm-gate.pid").exists());
    let out = g.tool(&["status"]);
    assert_eq!(
        out.status.code(),
        Some(exit::PROBLEMS),
        "stopped is not healthy"
    );
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("gate_supervise") {
        return std::process::ExitCode::SUCCESS;
    }
    assert!(
        e2e::bin_dir().join("trm-gate").is_file(),
        "build first with `cargo build --workspace`"
    );
    let mut t = Runner::new();

    t.case("start_status_stop_as_the_callers_user", || {
        supervised_round("", nix_euid());
    });

    if nix_euid() == 0 {
        t.case("start_status_stop_as_the_gate_user", || {
            let uid = user_uid("trm-gate")
                .expect("the trm-gate user is missing: scripts/setup-host.sh creates it");
            supervised_round("trm-gate", uid);
        });
    }

    t.case("a_gate_that_cannot_listen_is_reported_with_its_log", || {
        let g = Gate::new("");
        // Something holds the port and never answers /ping.
        let _holder = std::net::TcpListener::bind(("127.0.0.1", g.port)).unwrap();
        let out = g.tool(&["start"]);
        assert!(!out.status.success(), "{out:?}");
        let err = e2e::stderr_json(&out);
        let msg = err["message"].as_str().unwrap_or_default();
        assert!(msg.contains("logged since"), "{err}");
        assert!(msg.contains("trm-gate.log"), "the log is quoted: {err}");
        assert!(g.processes().is_empty(), "left: {:?}", g.processes());
    });

    t.finish()
}

fn nix_euid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(u32::MAX)
}

fn user_uid(name: &str) -> Option<u32> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.first() == Some(&name)).then(|| f.get(2)?.parse().ok())?
    })
}
