//! A server a test starts, waits for and stops by its pid: its output goes
//! to a log file a failing test shows, and it is killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestChild {
    what: &'static str,
    child: Option<Child>,
    log: tempfile::NamedTempFile,
}

impl TestChild {
    pub fn new(what: &'static str) -> TestChild {
        TestChild {
            what,
            child: None,
            log: tempfile::NamedTempFile::new().unwrap(),
        }
    }

    /// Start `cmd` (stdin closed, stdout and stderr to the log), then wait
    /// up to `secs` until `answers`; panics with the log if it exits first
    /// or never answers.
    pub fn start(&mut self, mut cmd: Command, secs: u64, mut answers: impl FnMut() -> bool) {
        assert!(self.child.is_none(), "{} is already running", self.what);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(crate::append_to(self.log.path()))
            .stderr(crate::append_to(self.log.path()))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.what));
        self.child = Some(child);
        let until = Instant::now() + Duration::from_secs(secs);
        while !answers() {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("{} exited ({status}): {}", self.what, self.log_text());
            }
            assert!(
                Instant::now() < until,
                "{} did not answer within {secs}s: {}",
                self.what,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Stop it by its pid (an outage or a crash, as a client sees it).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Started, and not exited on its own since.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// What it printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        self.log.path()
    }
}

impl Drop for TestChild {
    fn drop(&mut self) {
        self.kill();
    }
}
