//! `trm cp`: files to and from a box's home. The box side is always a
//! path below `/home/terrarium` (relative paths start there; `..` is
//! refused), read and written by the `terrarium` user itself, so a copy
//! never lands in the box's system files, whatever links are planted.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::instances::{exec_cmd, HOME};
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::process::Pipe;

/// One side of a copy: `NAME:PATH` in a box, anything else on the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    Host(PathBuf),
    Box { name: String, path: String },
}

/// `NAME:PATH` names a box when NAME is a valid instance name; a host
/// path with a colon can be written `./a:b`.
pub fn side(s: &str) -> Result<Side> {
    match s.split_once(':') {
        Some((name, path)) if !name.contains('/') && validate_instance_name(name).is_ok() => {
            Ok(Side::Box {
                name: name.into(),
                path: home_path(path)?,
            })
        }
        _ => Ok(Side::Host(PathBuf::from(s))),
    }
}

/// The absolute path below the home a box path names, or why not.
pub fn home_path(p: &str) -> Result<String> {
    let bad = |why: &str| Error::Usage(format!("box path '{p}': {why}"));
    let rel = match p.strip_prefix(HOME) {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => rest.trim_start_matches('/'),
        Some(_) => return Err(bad(&format!("must be below {HOME}"))),
        None if p.starts_with('/') => return Err(bad(&format!("must be below {HOME}"))),
        None => p,
    };
    let mut parts = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::Normal(x) => {
                parts.push(x.to_str().ok_or_else(|| bad("is not UTF-8"))?.to_string())
            }
            Component::CurDir => {}
            _ => return Err(bad(&format!("must stay below {HOME}: '..' could leave it"))),
        }
    }
    if parts.is_empty() {
        return Err(bad("names the home directory itself, not a file"));
    }
    Ok(format!("{HOME}/{}", parts.join("/")))
}

#[derive(Debug, Clone, Serialize)]
pub struct Copied {
    pub from: String,
    pub to: String,
    pub bytes: u64,
}

impl crate::output::Human for Copied {
    fn human(&self) -> String {
        format!("{} -> {} ({} bytes)", self.from, self.to, self.bytes)
    }
}

/// Writes stdin to `$1` as the user it runs as, making the directories
/// above it; the path is an argument, never part of the script.
const WRITE: &str = "mkdir -p -- \"$(dirname -- \"$1\")\" && cat > \"$1\"";

/// Copy one file between the host and a box (exactly one side a box).
/// Both directions run as the box's `terrarium` user, never as root: a
/// link a tenant planted in its home leads only where that user may
/// write or read anyway.
pub fn copy(lxd: &Lxd, from: &Side, to: &Side) -> Result<Copied> {
    use std::io::Write;
    let shown = |s: &Side| match s {
        Side::Host(p) => p.display().to_string(),
        Side::Box { name, path } => format!("{name}:{path}"),
    };
    let bytes = match (from, to) {
        (Side::Host(local), Side::Box { name, path }) => {
            let mut file = std::fs::File::open(local)
                .map_err(|e| Error::io(format!("reading {}", local.display()), e))?;
            let meta = file
                .metadata()
                .map_err(|e| Error::io(format!("reading {}", local.display()), e))?;
            if !meta.is_file() {
                return Err(Error::Usage(format!(
                    "{} is not a regular file (trm cp copies one file)",
                    local.display()
                )));
            }
            let argv: Vec<String> = ["sh", "-c", WRITE, "sh", path.as_str()]
                .map(String::from)
                .to_vec();
            let mut child = exec_cmd(lxd, name, &argv, false)?.spawn_streaming(Pipe::Stdin)?;
            let mut stdin = child.child.stdin.take().expect("piped");
            let sent = std::io::copy(&mut file, &mut stdin).and_then(|n| stdin.flush().map(|_| n));
            drop(stdin);
            let done = child.finish();
            let sent = sent.map_err(|e| Error::io(format!("sending {}", local.display()), e))?;
            done.map_err(|e| not_copied(lxd, name, e))?;
            sent
        }
        (Side::Box { name, path }, Side::Host(local)) => {
            let argv: Vec<String> = ["cat", "--", path.as_str()].map(String::from).to_vec();
            let mut child = exec_cmd(lxd, name, &argv, false)?.spawn_streaming(Pipe::Stdout)?;
            let mut stdout = child.child.stdout.take().expect("piped");
            let mut file = std::fs::File::create(local)
                .map_err(|e| Error::io(format!("writing {}", local.display()), e))?;
            let got = std::io::copy(&mut stdout, &mut file);
            drop(stdout);
            let done = child.finish();
            if got.is_err() || done.is_err() {
                let _ = std::fs::remove_file(local);
            }
            done.map_err(|e| not_copied(lxd, name, e))?;
            got.map_err(|e| Error::io(format!("writing {}", local.display()), e))?
        }
        _ => {
            return Err(Error::Usage(
                "one side of trm cp is a box (NAME:PATH), the other a host path".into(),
            ))
        }
    };
    Ok(Copied {
        from: shown(from),
        to: shown(to),
        bytes,
    })
}

/// Write `data` to a box path (from [`home_path`]) as the `terrarium`
/// user, making the directories above it; for programs that hold the
/// content, not a host file (the MCP server).
pub fn write(lxd: &Lxd, name: &str, path: &str, data: &[u8]) -> Result<u64> {
    let argv: Vec<String> = ["sh", "-c", WRITE, "sh", path].map(String::from).to_vec();
    exec_cmd(lxd, name, &argv, false)?
        .stdin_bytes(data)
        .run()
        .map_err(|e| not_copied(lxd, name, e))?;
    Ok(data.len() as u64)
}

/// Read at most `cap` bytes of a box path as the `terrarium` user; true
/// when the file was longer.
pub fn read(lxd: &Lxd, name: &str, path: &str, cap: usize) -> Result<(Vec<u8>, bool)> {
    let argv: Vec<String> = ["cat", "--", path].map(String::from).to_vec();
    let cmd = exec_cmd(lxd, name, &argv, false)?;
    let (out, cut) = cmd.output_capped(cap)?;
    if !out.status.success() {
        return Err(not_copied(lxd, name, cmd.failure(&out)));
    }
    Ok((out.stdout, cut))
}

/// A failed copy says why: no such box, a stopped one, no user, or the
/// box's own error (no such file, permission denied).
fn not_copied(lxd: &Lxd, name: &str, e: Error) -> Error {
    match crate::instances::diagnose_exec(lxd, name, false) {
        Err(why) => why,
        Ok(()) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn box_paths_stay_below_the_home() {
        for (p, want) in [
            ("notes.txt", "/home/terrarium/notes.txt"),
            ("./src/main.rs", "/home/terrarium/src/main.rs"),
            ("/home/terrarium/a/b", "/home/terrarium/a/b"),
            ("a//b", "/home/terrarium/a/b"),
        ] {
            assert_eq!(home_path(p).unwrap(), want, "{p}");
        }
        for p in [
            "../etc/shadow",
            "a/../../etc/passwd",
            "/etc/passwd",
            "/home/terrariumX/f",
            "/home/terrarium",
            "",
            ".",
        ] {
            let e = home_path(p).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::USAGE, "{p}");
        }
    }

    #[test]
    fn a_side_is_a_box_only_when_it_names_one() {
        assert_eq!(
            side("web:notes.txt").unwrap(),
            Side::Box {
                name: "web".into(),
                path: "/home/terrarium/notes.txt".into()
            }
        );
        assert_eq!(side("./a:b").unwrap(), Side::Host("./a:b".into()));
        assert_eq!(side("/tmp/x").unwrap(), Side::Host("/tmp/x".into()));
        assert!(side("web:../x").is_err());
    }
}
