//! A zfs-fuse pool on a file for a test: the daemon started if needed,
//! the pool destroyed when dropped (a failing test included).

use std::process::Command;

pub struct TestPool {
    pub name: String,
    /// Holds the pool's file and mountpoints.
    pub dir: tempfile::TempDir,
}

fn run(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

/// Run, asserting success; its stdout, trimmed.
pub fn ok(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl TestPool {
    pub fn create(name: &str, size: &str) -> TestPool {
        if !run(&["zpool", "list"]).status.success() {
            // zfs-fuse daemonises itself.
            ok(&["zfs-fuse"]);
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("pool.img");
        ok(&["truncate", "-s", size, img.to_str().unwrap()]);
        // A pool left by a killed run of this test.
        let _ = run(&["zpool", "destroy", name]);
        let mnt = dir.path().join("mnt");
        ok(&[
            "zpool",
            "create",
            "-m",
            mnt.to_str().unwrap(),
            name,
            img.to_str().unwrap(),
        ]);
        TestPool {
            name: name.to_string(),
            dir,
        }
    }

    pub fn mountpoint(ds: &str) -> String {
        ok(&["zfs", "get", "-H", "-o", "value", "mountpoint", ds])
    }
}

impl Drop for TestPool {
    fn drop(&mut self) {
        let _ = run(&["zpool", "destroy", &self.name]);
    }
}
