//! Test support: man page generation (from the clap definitions) and the
//! end-to-end test bed against a real LXD.

pub mod browser;
pub mod child;
pub mod cluster;
pub mod cockpit;
pub mod e2e;
pub mod idp;
pub mod proxy;
pub mod s3s;
pub mod zpool;

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

/// The shells completions are generated for, and where each one's file
/// goes below `dir` (and below the system's prefix when installed).
pub const SHELLS: [(clap_complete::Shell, &str); 3] = [
    (clap_complete::Shell::Bash, "bash-completion/completions/{}"),
    (clap_complete::Shell::Zsh, "zsh/site-functions/_{}"),
    (
        clap_complete::Shell::Fish,
        "fish/vendor_completions.d/{}.fish",
    ),
];

/// Write every tool's completions for every shell below `dir`.
pub fn write_completions(dir: &Path) -> std::io::Result<()> {
    for mut cmd in commands() {
        let name = cmd.get_name().to_string();
        for (shell, layout) in SHELLS {
            let path = dir.join(layout.replace("{}", &name));
            std::fs::create_dir_all(path.parent().expect("a layout has a folder"))?;
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut cmd, &name, &mut out);
            if shell == clap_complete::Shell::Bash {
                out = bash_hyphen_fix(&name, &String::from_utf8_lossy(&out)).into_bytes();
            }
            std::fs::write(&path, out)?;
        }
    }
    Ok(())
}

/// clap_complete's bash script spells a hyphenated binary's states two
/// ways (`trm__gate__subcmd__keys` in the loop, `trm__subcmd__gate__...`
/// in the arms), so nothing past the first word completes
/// (clap-rs/clap#6421): spell the arms as the loop does.
fn bash_hyphen_fix(name: &str, script: &str) -> String {
    if !name.contains('-') {
        return script.to_string();
    }
    let wrong = name.replace('-', "__subcmd__");
    let right = name.replace('-', "__");
    script
        .replace(&format!("        {wrong}__"), &format!("        {right}__"))
        .replace(&format!("        {wrong})"), &format!("        {right})"))
}

/// The files (relative paths) that differ between a freshly generated
/// directory and the committed one, either way: empty when fresh.
pub fn stale_files(generated: &Path, committed: &Path) -> Vec<std::path::PathBuf> {
    fn files(dir: &Path) -> std::collections::BTreeMap<std::path::PathBuf, Vec<u8>> {
        let mut out = std::collections::BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(dir).expect("below dir").to_path_buf();
                    out.insert(rel, std::fs::read(&p).expect("readable"));
                }
            }
        }
        out
    }
    let (want, have) = (files(generated), files(committed));
    want.keys()
        .chain(have.keys().filter(|k| !want.contains_key(*k)))
        .filter(|k| want.get(*k) != have.get(*k))
        .cloned()
        .collect()
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
