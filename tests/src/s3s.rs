//! A real S3 server for tests: s3s-fs on a free loopback port, which
//! checks request signatures (so wrong credentials are really refused)
//! and keeps objects (and the parts of unfinished multipart uploads) as
//! plain files a test can look at. Restartable on the same port and
//! directory: what a crash and a restart look like to a client.

use std::path::PathBuf;
use std::process::Command;

use crate::child::TestChild;

pub const BUCKET: &str = "backups";
pub const ACCESS: &str = "TRMTESTKEY";
pub const SECRET: &str = "trm-test-secret-0123456789";

pub struct S3Server {
    child: TestChild,
    pub port: u16,
    pub root: tempfile::TempDir,
}

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TRM_S3S_FS") {
        return p.into();
    }
    which::which("s3s-fs")
        .ok()
        .or_else(|| Some(PathBuf::from("/root/.cargo/bin/s3s-fs")).filter(|p| p.exists()))
        .expect("s3s-fs is installed (scripts/test.sh: cargo install s3s-fs --features binary)")
}

impl S3Server {
    pub fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(BUCKET)).unwrap();
        let mut s = S3Server {
            child: TestChild::new("s3s-fs"),
            port,
            root,
        };
        s.run();
        s
    }

    /// Start (again) on the same port and directory.
    pub fn run(&mut self) {
        let mut cmd = Command::new(binary());
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS, "--secret-key", SECRET])
            .arg(self.root.path());
        let port = self.port;
        self.child.start(cmd, 20, || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
    }

    /// Stop it by its pid (a crash, as a client sees it).
    pub fn kill(&mut self) {
        self.child.kill()
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Where s3s-fs keeps an object's bytes.
    pub fn object(&self, key: &str) -> PathBuf {
        self.root.path().join(BUCKET).join(key)
    }

    /// The part files of multipart uploads neither completed nor aborted.
    pub fn pending_parts(&self) -> Vec<String> {
        std::fs::read_dir(self.root.path())
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.starts_with(".upload_id-"))
            .collect()
    }

    /// `trm-snap s3 set` for this server, without a key option.
    pub fn set_args(&self, secret_file: &std::path::Path) -> Vec<String> {
        [
            "s3",
            "set",
            "--endpoint",
            &self.endpoint(),
            "--bucket",
            BUCKET,
            "--access-key",
            ACCESS,
            "--secret-key-file",
            secret_file.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}
