//! A real Cockpit for tests: Debian's `cockpit-ws` on a loopback port,
//! plain HTTP (`--no-tls`), without systemd: the web console an SSO gate
//! puts a login in front of.
//!
//! What a test can assert about its login page (cockpit-ws 287.1): the
//! HTML at `/` answers 200 with `Content-Type: text/html` and a
//! `Set-Cookie: cockpit=deleted` header, and holds the login form
//! `#login` with `#login-user-input` (user name), `#login-password-input`
//! and `#login-button`. [`LOGIN_MARKER`] is the one to look for in a
//! browser's DOM or a plain `GET`. The served `<title>` is `Loading...`
//! until the page's script sets it (to the machine's host name, or
//! `LoginTitle` from the configuration). Its `Content-Security-Policy`
//! names the origin it was asked at (`http://127.0.0.1:PORT`, or the
//! proxied host): it follows the request's Host header.
//!
//! Configuration (`cockpit.conf`) is read from `$XDG_CONFIG_DIRS/cockpit/`;
//! [`Cockpit::start_with_config`] writes one of the test's own into a temp
//! dir and points `XDG_CONFIG_DIRS` there (e.g. `[WebService]` `Origins =`
//! for a console served under another host name, or `LoginTitle =`).

use std::process::Command;
use std::time::Duration;

use crate::child::TestChild;

pub const COCKPIT_WS: &str = "/usr/lib/cockpit/cockpit-ws";

/// The id of the user-name field of Cockpit's login form.
pub const LOGIN_MARKER: &str = "login-user-input";

/// cockpit-ws on `127.0.0.1:port`; killed (by pid) on drop.
pub struct Cockpit {
    child: TestChild,
    pub port: u16,
    /// `XDG_CONFIG_DIRS` for it: holds `cockpit/cockpit.conf`.
    config: tempfile::TempDir,
}

impl Cockpit {
    /// Start cockpit-ws with an empty configuration on `port` (pick one
    /// with [`crate::free_port`]) and wait until its login page answers.
    pub fn start(port: u16) -> Cockpit {
        Cockpit::start_with_config(port, "")
    }

    /// Start with `conf` as its `cockpit.conf` (INI text).
    pub fn start_with_config(port: u16, conf: &str) -> Cockpit {
        assert!(
            std::path::Path::new(COCKPIT_WS).exists(),
            "{COCKPIT_WS} is missing: run scripts/setup-host.sh (Debian's cockpit-ws)"
        );
        let config = tempfile::Builder::new()
            .prefix("trm-cockpit-")
            .tempdir()
            .unwrap();
        std::fs::create_dir_all(config.path().join("cockpit")).unwrap();
        std::fs::write(config.path().join("cockpit/cockpit.conf"), conf).unwrap();
        let mut c = Cockpit {
            child: TestChild::new("cockpit-ws"),
            port,
            config,
        };
        c.run();
        c
    }

    /// Start (again) on the same port and configuration.
    pub fn run(&mut self) {
        let mut cmd = Command::new(COCKPIT_WS);
        cmd.args(["--no-tls", "--address", "127.0.0.1", "--port"])
            .arg(self.port.to_string())
            .env("XDG_CONFIG_DIRS", self.config.path());
        let url = self.url();
        self.child.start(cmd, 20, || {
            ureq::get(&url)
                .timeout(Duration::from_secs(5))
                .call()
                .is_ok_and(|r| r.status() == 200)
        });
    }

    /// Stop it by its pid.
    pub fn kill(&mut self) {
        self.child.kill()
    }

    /// `http://127.0.0.1:PORT/`: its login page.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    pub fn log_text(&self) -> String {
        self.child.log_text()
    }
}
