//! The end-to-end test bed: a real LXD, an LXD project of our own
//! (`trm-e2e`), a bridge with NAT off, a throwaway settings directory, and
//! cleanup of everything created, whatever the outcome.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const PROJECT: &str = "trm-e2e";
pub const BRIDGE: &str = "trme2e0";
pub const POOL: &str = "trm-e2e";

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
    pub config_dir: tempfile::TempDir,
    pub lock_dir: tempfile::TempDir,
    pub bins: PathBuf,
}

impl Default for Bed {
    fn default() -> Self {
        Self::new()
    }
}

impl Bed {
    pub fn new() -> Bed {
        let bins = bin_dir();
        assert!(
            bins.join("trm").is_file(),
            "{} has no trm binary: build first with `cargo build --workspace`",
            bins.display()
        );
        Bed {
            config_dir: tempfile::tempdir().unwrap(),
            lock_dir: tempfile::tempdir().unwrap(),
            bins,
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
            .env("TRM_PROJECT", PROJECT)
            .env("TRM_CONFIG_DIR", self.config_dir.path())
            .env("TRM_LOCK_DIR", self.lock_dir.path())
            .stdin(Stdio::null());
        if let Some(v) = std::env::var_os("TRM_CACHE_DIR") {
            c.env("TRM_CACHE_DIR", v);
        }
        c
    }

    pub fn trm(&self, args: &[&str]) -> Output {
        self.tool("trm").args(args).output().expect("run trm")
    }

    /// `trm ... --format json`, asserting success, parsed.
    pub fn trm_json(&self, args: &[&str]) -> serde_json::Value {
        let out = self.trm(&[args, &["--format", "json"]].concat());
        assert_ok(&out, &format!("trm {}", args.join(" ")));
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

pub fn lxc_ok(args: &[&str]) -> String {
    let out = lxc(args);
    assert_ok(&out, &format!("lxc {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn lxc_json(path: &str) -> serde_json::Value {
    serde_json::from_str(&lxc_ok(&["query", path])).unwrap()
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
pub fn clean_lxd() {
    let q = format!("/1.0/instances?project={PROJECT}");
    if let Ok(v) = serde_json::from_slice::<Vec<String>>(&lxc(&["query", &q]).stdout) {
        for url in v {
            let name = url
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .split('?')
                .next()
                .unwrap_or_default();
            lxc(&["delete", "--force", "--project", PROJECT, name]);
        }
    }
    lxc(&["project", "delete", PROJECT]);
    lxc(&["network", "delete", BRIDGE]);
    lxc(&["storage", "delete", POOL]);
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

    pub fn case(&mut self, name: &str, f: impl FnOnce()) {
        if self.filter.as_deref().is_some_and(|f| !name.contains(f)) {
            return;
        }
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
    pub fn finish(self) -> ! {
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
        std::process::exit(if self.failed.is_empty() { 0 } else { 1 })
    }
}
