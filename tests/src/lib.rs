//! Test support: man page generation (from the clap definitions) and the
//! end-to-end test bed against a real LXD.

pub mod e2e;
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
