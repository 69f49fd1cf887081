//! The end-to-end test bed: a real LXD, an LXD project of our own
//! (`trm-e2e`), a bridge with NAT off, a throwaway settings directory, and
//! cleanup of everything created, whatever the outcome.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The LXD resources one test suite owns (and deletes at its end).
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub project: &'static str,
    pub bridge: &'static str,
    pub pool: &'static str,
}

pub const TRM_SUITE: Names = Names {
    project: "trm-e2e",
    bridge: "trme2e0",
    pool: "trm-e2e",
};

pub const EXPOSE_SUITE: Names = Names {
    project: "trm-e2e-exp",
    bridge: "trme2e3",
    pool: "trm-e2e-exp",
};

pub const SNAP_SUITE: Names = Names {
    project: "trm-e2e-snap",
    bridge: "trme2e4",
    pool: "trm-e2e-snap",
};

pub const HARDEN_SUITE: Names = Names {
    project: "trm-e2e-hard",
    bridge: "trme2e5",
    pool: "trm-e2e-hard",
};

pub const S3_SUITE: Names = Names {
    project: "trm-e2e-s3",
    bridge: "trme2e6",
    pool: "trm-e2e-s3",
};

pub const ATTACKS_SUITE: Names = Names {
    project: "trm-e2e-atk",
    bridge: "trme2e7",
    pool: "trm-e2e-atk",
};

pub const GATE_SUITE: Names = Names {
    project: "trm-e2e-gate",
    bridge: "trme2e8",
    pool: "trm-e2e-gate",
};

pub const AGENT_SUITE: Names = Names {
    project: "trm-e2e-agent",
    bridge: "trme2e9",
    pool: "trm-e2e-agent",
};

pub const CLUSTER_SUITE: Names = Names {
    project: "trm-e2e-clu",
    bridge: "trme2ec",
    pool: "trm-e2e-clu",
};

pub const PROFILES_SUITE: Names = Names {
    project: "trm-e2e-prof",
    bridge: "trme2e2",
    pool: "trm-e2e-prof",
};

/// True when end-to-end tests should run; otherwise says so where the
/// person running `cargo test` sees it (not captured by the harness).
pub fn enabled(what: &str) -> bool {
    if std::env::var("TRM_E2E").as_deref() == Ok("1") {
        return true;
    }
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {what}: end-to-end tests need a real LXD; run them with TRM_E2E=1 (see README)"
    );
    false
}

/// Where cargo put the workspace binaries (next to this test's deps dir).
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("TRM_BIN_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf()
}

pub struct Bed {
    pub names: Names,
    /// LXD's `core.https_address` before the suite (`trm init` sets it).
    https_before: String,
    pub config_dir: tempfile::TempDir,
    pub lock_dir: tempfile::TempDir,
    /// Run records (`trm status` reads them).
    pub state_dir: tempfile::TempDir,
    pub bins: PathBuf,
    /// More environment for every tool run (e.g. TRM_UFW).
    pub extra_env: Vec<(String, String)>,
}

impl Bed {
    /// Clean up what an earlier run may have left, then set up.
    pub fn new(names: Names) -> Bed {
        clean_lxd(&names);
        let https_before = lxc_json("/1.0")["config"]["core.https_address"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let bins = bin_dir();
        assert!(
            bins.join("trm").is_file(),
            "{} has no trm binary: build first with `cargo build --workspace`",
            bins.display()
        );
        Bed {
            names,
            https_before,
            config_dir: tempfile::tempdir().unwrap(),
            lock_dir: tempfile::tempdir().unwrap(),
            state_dir: tempfile::tempdir().unwrap(),
            bins,
            extra_env: Vec::new(),
        }
    }

    /// A Terrarium tool with a hermetic environment: only PATH and the
    /// TRM_* settings of this bed.
    pub fn tool(&self, name: &str) -> Command {
        self.command(self.bins.join(name))
    }

    /// Any program, in the same hermetic environment as the tools.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", "/root")
            .env("TRM_PROJECT", self.names.project)
            .env("TRM_CONFIG_DIR", self.config_dir.path())
            .env("TRM_LOCK_DIR", self.lock_dir.path())
            .env("TRM_STATE_DIR", self.state_dir.path())
            .env("TRM_SYSCTL_DIR", self.config_dir.path())
            .stdin(Stdio::null());
        if let Some(v) = std::env::var_os("TRM_CACHE_DIR") {
            c.env("TRM_CACHE_DIR", v);
        }
        c.envs(self.extra_env.iter().map(|(k, v)| (k, v)));
        c
    }

    /// A tool run that must fail with exit `code` and one JSON error line
    /// on stderr whose message contains `needle`; nothing on stdout.
    /// Returns the message for further checks.
    pub fn refused(&self, tool: &str, args: &[&str], code: i32, needle: &str) -> String {
        let out = self
            .tool(tool)
            .args(["--format", "json"])
            .args(args)
            .output()
            .expect("run a Terrarium tool");
        assert_refused(&out, &format!("{tool} {args:?}"), code, needle)
    }

    /// `trm init` for this suite: its own pool and NAT-less bridge.
    pub fn init_args(&self) -> Vec<&'static str> {
        vec![
            "init",
            "--no-nat",
            "--bridge",
            self.names.bridge,
            "--pool",
            self.names.pool,
            "--storage",
            "btrfs",
            "--size",
            "4GiB",
        ]
    }

    /// Delete everything the suite created and put back the server key.
    pub fn teardown(&self) {
        clean_lxd(&self.names);
        if self.https_before != "127.0.0.1:8443" {
            if self.https_before.is_empty() {
                lxc(&["config", "unset", "core.https_address"]);
            } else {
                lxc(&["config", "set", "core.https_address", &self.https_before]);
            }
        }
    }

    /// Start a tool in the background with its output discarded.
    pub fn spawn_quiet(&self, tool: &str, args: &[&str]) -> std::process::Child {
        self.tool(tool)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a Terrarium tool")
    }

    pub fn trm(&self, args: &[&str]) -> Output {
        self.tool("trm").args(args).output().expect("run trm")
    }

    /// [`Bed::trm`], run again (up to three times) when trm says LXD lost
    /// the command it ran ([`outcome_unknown`]): for commands that may run
    /// twice.
    pub fn trm_again_if_lost(&self, args: &[&str]) -> Output {
        let mut out = self.trm(args);
        for _ in 0..3 {
            if !outcome_unknown(&out) {
                break;
            }
            out = self.trm(args);
        }
        out
    }

    /// `trm-snap ... --format json`, asserting success, parsed.
    pub fn snap(&self, args: &[&str]) -> serde_json::Value {
        self.trm_json_with("trm-snap", args)
    }

    /// `trm ... --format json`, asserting success, parsed.
    pub fn trm_json(&self, args: &[&str]) -> serde_json::Value {
        self.trm_json_with("trm", args)
    }

    /// Any Terrarium tool with `--format json`, asserting success, parsed.
    pub fn trm_json_with(&self, tool: &str, args: &[&str]) -> serde_json::Value {
        let out = self
            .tool(tool)
            .args(args)
            .args(["--format", "json"])
            .output()
            .expect("run a Terrarium tool");
        assert_ok(&out, &format!("{tool} {}", args.join(" ")));
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "trm {args:?} printed no JSON ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// The raw LXD client, for checking what Terrarium did.
pub fn lxc(args: &[&str]) -> Output {
    Command::new("lxc")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run lxc")
}

/// `lxc ARGS`, asserted to succeed; its stdout. An exec LXD lost track
/// of is run again (see [`sh_in`]): the setup steps tests run this way
/// are idempotent.
pub fn lxc_ok(args: &[&str]) -> String {
    let out = lxc_again_if_lost(args);
    assert_ok(&out, &format!("lxc {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `lxc ARGS`; an exec that failed with LXD 5.0's "Failed to retrieve PID
/// of executing child process" (sometimes after the command ran, see
/// HOST-NOTES) is run again, up to three times: for commands that may run
/// twice.
pub fn lxc_again_if_lost(args: &[&str]) -> Output {
    let mut out = lxc(args);
    for _ in 0..3 {
        let lost = args.first() == Some(&"exec")
            && String::from_utf8_lossy(&out.stderr).contains("Failed to retrieve PID");
        if !lost {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
        out = lxc(args);
    }
    out
}

/// `lxc exec` of an idempotent `sh -c` script as root, whatever its
/// outcome, run again when LXD lost track of it.
pub fn sh_in(project: &str, name: &str, script: &str) -> Output {
    lxc_again_if_lost(&["exec", "--project", project, name, "--", "sh", "-c", script])
}

/// [`sh_in`], asserted to succeed; its stdout.
pub fn exec_ok(project: &str, name: &str, script: &str) -> String {
    let out = sh_in(project, name, script);
    assert_ok(&out, &format!("lxc exec {name} -- sh -c {script}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn lxc_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&lxc_ok(&["query", path])).unwrap()
}

/// Did a Terrarium tool say LXD lost the command it ran in a box (exit 70
/// with an `outcome_unknown` error line; a command's own 70 has none)?
pub fn outcome_unknown(out: &Output) -> bool {
    out.status.code() == Some(terrarium_core::error::exit::OUTCOME_UNKNOWN)
        && String::from_utf8_lossy(&out.stderr).contains(r#""kind":"outcome_unknown""#)
}

/// The one JSON error line a failed command wrote to stderr (other tools'
/// own lines, such as lxc's, are not JSON and are skipped).
pub fn stderr_json(out: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with('{')).collect();
    assert_eq!(
        lines.len(),
        1,
        "want one JSON error line on stderr, got: {text}"
    );
    serde_json::from_str(lines[0]).unwrap()
}

/// A finished tool run (started with `--format json`) that must have
/// failed with exit `code` and one JSON error line whose message contains
/// `needle`, with nothing on stdout. Returns the message.
pub fn assert_refused(out: &Output, what: &str, code: i32, needle: &str) -> String {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let err = stderr_json(out);
    let msg = err["message"].as_str().unwrap_or_default().to_string();
    assert!(
        msg.contains(needle),
        "{what}: message {msg:?} lacks {needle:?}"
    );
    assert_eq!(err["exit_code"], code);
    assert!(out.stdout.is_empty(), "nothing on stdout for an error");
    msg
}

/// The IPv4 addresses an instance's eth0 reports (the container's own
/// word, which root inside controls), in its order.
pub fn reported_ipv4(project: &str, name: &str) -> Vec<String> {
    let st = lxc_json(&format!("/1.0/instances/{name}/state?project={project}"));
    st["network"]["eth0"]["addresses"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|a| a["family"] == "inet")
                .filter_map(|a| a["address"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// A shell one-liner of the test's own (never with untrusted input);
/// panics with its stderr when it fails.
pub fn sh(script: &str) {
    let out = Command::new("sh").args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Set `user.proxy` by hand, as an owner (or a label writer) would with
/// `lxc config set`; `--` so a label starting with `--` is a value.
/// A file's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A JSON file, parsed, or a panic naming the file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()))
}

/// A systemd service in the container from a one-line ExecStart.
pub fn service(project: &str, name: &str, unit: &str, exec: &str) {
    let text = format!(
        "[Unit]\nDescription={unit}\n[Service]\nExecStart={exec}\nRestart=always\n[Install]\nWantedBy=multi-user.target\n"
    );
    // Idempotent, so LXD 5.0's lost execs are simply run again.
    exec_ok(
        project,
        name,
        &format!(
            "printf '{}' > /etc/systemd/system/{unit}.service && systemctl daemon-reload && systemctl enable --now {unit}.service",
            text.replace('\n', "\\n")
        ),
    );
}

pub fn set_label(project: &str, instance: &str, label: &str) {
    lxc_ok(&[
        "config",
        "set",
        "--project",
        project,
        "--",
        instance,
        "user.proxy",
        label,
    ]);
}

pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Remove everything a run may have left: instances, the project, the
/// bridge and the pool. Safe to call when none of it exists.
pub fn clean_lxd(n: &Names) {
    for name in names_at(&format!("/1.0/instances?project={}", n.project)) {
        lxc(&["delete", "--force", "--project", n.project, &name]);
    }
    for name in names_at(&format!("/1.0/profiles?project={}", n.project)) {
        if name != "default" {
            lxc(&["profile", "delete", "--project", n.project, &name]);
        }
    }
    // Images are shared with the default project: a suite names its own
    // `PROJECT/...`.
    let images: Vec<serde_json::Value> =
        serde_json::from_slice(&lxc(&["query", "/1.0/images/aliases?recursion=1"]).stdout)
            .unwrap_or_default();
    for a in images {
        if let Some(name) = a["name"]
            .as_str()
            .filter(|x| x.starts_with(&format!("{}/", n.project)))
        {
            lxc(&["image", "delete", a["target"].as_str().unwrap_or(name)]);
        }
    }
    lxc(&["project", "delete", n.project]);
    // Agent boxes' own bridges and ACLs, named for their project.
    let owner = format!("{}/", n.project);
    for kind in ["networks", "network-acls"] {
        let all: Vec<serde_json::Value> =
            serde_json::from_slice(&lxc(&["query", &format!("/1.0/{kind}?recursion=1")]).stdout)
                .unwrap_or_default();
        for x in all {
            let mine = x["config"]["user.terrarium.instance"]
                .as_str()
                .is_some_and(|o| o.starts_with(&owner));
            if let (true, Some(name)) = (mine, x["name"].as_str()) {
                // Bridges first: an ACL in use cannot go.
                let what: &[&str] = if kind == "networks" {
                    &["network", "delete", name]
                } else {
                    &["network", "acl", "delete", name]
                };
                lxc(what);
            }
        }
    }
    lxc(&["network", "delete", n.bridge]);
    lxc(&["storage", "delete", n.pool]);
}

/// The names in an LXD collection (`["/1.0/instances/a?project=p", ...]`).
fn names_at(path: &str) -> Vec<String> {
    serde_json::from_slice::<Vec<String>>(&lxc(&["query", path]).stdout)
        .unwrap_or_default()
        .iter()
        .filter_map(|url| url.rsplit('/').next()?.split('?').next().map(String::from))
        .collect()
}

/// A minimal test runner (harness = false): named cases sharing one bed,
/// each isolated by catch_unwind, cleanup guaranteed, a summary at the end.
pub struct Runner {
    filter: Option<String>,
    failed: Vec<String>,
    passed: usize,
}

impl Default for Runner {
    fn default() -> Self {
        Self::new()
    }
}

impl Runner {
    pub fn new() -> Runner {
        let filter = std::env::args().skip(1).find(|a| !a.starts_with('-'));
        Runner {
            filter,
            failed: Vec::new(),
            passed: 0,
        }
    }

    /// A case the others build on: it runs even when a filter names
    /// only one later case (`cargo test --test e2e_expose -- watch`).
    pub fn setup(&mut self, name: &str, f: impl FnOnce()) {
        self.run(name, f)
    }

    /// A case that runs when no filter is given or its name contains it.
    pub fn case(&mut self, name: &str, f: impl FnOnce()) {
        if self.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            return;
        }
        self.run(name, f)
    }

    fn run(&mut self, name: &str, f: impl FnOnce()) {
        let started = std::time::Instant::now();
        let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let secs = started.elapsed().as_secs_f32();
        match res {
            Ok(()) => {
                self.passed += 1;
                println!("test {name} ... ok ({secs:.1}s)");
            }
            Err(_) => {
                self.failed.push(name.to_string());
                println!("test {name} ... FAILED ({secs:.1}s)");
            }
        }
    }

    /// Print the summary and exit non-zero if any case failed.
    /// The exit code, returned from `main` so its locals (temporary
    /// directories, servers) are dropped before the process ends.
    pub fn finish(self) -> std::process::ExitCode {
        println!(
            "\ntest result: {}. {} passed; {} failed",
            if self.failed.is_empty() {
                "ok"
            } else {
                "FAILED"
            },
            self.passed,
            self.failed.len()
        );
        for f in &self.failed {
            println!("    failed: {f}");
        }
        if self.failed.is_empty() {
            std::process::ExitCode::SUCCESS
        } else {
            std::process::ExitCode::FAILURE
        }
    }
}

/// What one `trm-snap auto` tick says it did to `name` (its outcomes).
pub fn outcomes(ticks: &serde_json::Value, name: &str) -> Vec<String> {
    ticks
        .as_array()
        .expect("auto prints an array")
        .iter()
        .filter(|t| t["instance"] == name)
        .map(|t| t["outcome"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Wait (bounded) for a condition that depends on DHCP, an event or a
/// process starting; panics naming `what` when it never holds.
pub fn eventually(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(secs) {
        if f() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    panic!("timed out waiting for {what}");
}

/// A private copy of ufw's configuration below `root`, for
/// `ufw --rootdir=ROOT --datadir=ROOT` inside a test's network namespace.
pub fn ufw_copy(root: &Path) {
    for (from, to) in [
        ("/etc/ufw", "etc"),
        ("/lib/ufw", "lib"),
        ("/usr/share/ufw", "usr/share"),
    ] {
        std::fs::create_dir_all(root.join(to)).unwrap();
        let st = Command::new("cp")
            .args(["-a", from])
            .arg(root.join(to))
            .status()
            .unwrap();
        assert!(st.success(), "copy {from}");
    }
    std::fs::create_dir_all(root.join("etc/default")).unwrap();
    std::fs::copy("/etc/default/ufw", root.join("etc/default/ufw")).unwrap();
}

pub const BUSYBOX_IMAGE: &str = "terrarium-test/busybox";

/// A tiny root filesystem: the host's static busybox and its applet links.
/// It is an image without cloud-init, and a `docker import` source.
pub fn busybox_rootfs(dir: &Path) {
    let busybox = ["/bin/busybox", "/usr/bin/busybox"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("busybox-static is installed (scripts/setup-host.sh)");
    for d in [
        "bin", "sbin", "etc", "dev", "proc", "sys", "tmp", "root", "run", "var",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    let list = Command::new(dir.join("bin/busybox"))
        .arg("--list")
        .output()
        .unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" {
            let _ = std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet));
        }
    }
    std::os::unix::fs::symlink("../bin/busybox", dir.join("sbin/init")).unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(dir.join("etc/group"), "root:x:0:\n").unwrap();
}

pub fn tar_gz(dir: &Path, out: &Path) {
    let st = Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--numeric-owner", "-czf"])
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(st.success(), "tar {}", dir.display());
}

/// Import the busybox image once; later runs reuse it.
pub fn ensure_busybox_image() {
    if lxc(&["image", "info", BUSYBOX_IMAGE]).status.success() {
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("rootfs");
    busybox_rootfs(&root);
    let meta = work.path().join("meta");
    std::fs::create_dir_all(&meta).unwrap();
    std::fs::write(
        meta.join("metadata.yaml"),
        format!(
            "architecture: {}\ncreation_date: 1700000000\nproperties:\n  description: busybox test image (no cloud-init)\n",
            std::env::consts::ARCH
        ),
    )
    .unwrap();
    tar_gz(&meta, &work.path().join("meta.tar.gz"));
    tar_gz(&root, &work.path().join("rootfs.tar.gz"));
    let m = work.path().join("meta.tar.gz");
    let r = work.path().join("rootfs.tar.gz");
    lxc_ok(&[
        "image",
        "import",
        m.to_str().unwrap(),
        r.to_str().unwrap(),
        "--alias",
        BUSYBOX_IMAGE,
    ]);
}
