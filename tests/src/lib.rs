//! Test support: man page generation (from the clap definitions) and the
//! end-to-end test bed against a real LXD.

pub mod browser;
pub mod cockpit;
pub mod e2e;
pub mod idp;
pub mod proxy;
pub mod s3s;

use std::path::Path;

/// Every tool's clap definition.
pub fn commands() -> Vec<clap::Command> {
    vec![
        trm::command(),
        trm_profile::command(),
        trm_gate::command(),
        trm_expose::command(),
        trm_snap::command(),
        trm_harden::command(),
    ]
}

/// Write `NAME.1` and one page per subcommand (`trm-init.1`, ...) to `dir`.
pub fn write_man_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for cmd in commands() {
        clap_mangen::generate_to(cmd, dir)?;
    }
    Ok(())
}

/// A loopback TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `path` opened for appending: a child's log that survives its restarts.
pub(crate) fn append_to(path: &Path) -> std::fs::File {
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open a log file")
}

/// Wait (bounded) until something answers TCP on 127.0.0.1:`port`.
pub(crate) fn wait_for_port(port: u16, secs: u64, what: &str) {
    let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            std::time::Instant::now() < until,
            "{what} did not listen on 127.0.0.1:{port} within {secs}s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
