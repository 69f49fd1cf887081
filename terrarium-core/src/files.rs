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

/// Reads `$1` only when it is a regular file (a link the tenant planted
/// to /dev/zero or a FIFO would never end), at most `$2` bytes; exits 3
/// when there is nothing there, 4 when it is not a regular file.
const READ: &str = "if [ ! -e \"$1\" ]; then exit 3; elif [ ! -f \"$1\" ]; then exit 4; fi; \
                    exec head -c \"$2\" -- \"$1\"";

fn write_argv(path: &str) -> Vec<String> {
    ["sh", "-c", WRITE, "sh", path].map(String::from).to_vec()
}

fn read_argv(path: &str, limit: u64) -> Vec<String> {
    ["sh", "-c", READ, "sh", path, &limit.to_string()]
        .map(String::from)
        .to_vec()
}

/// A failed read, said plainly: the script's own exit codes, else the
/// box's message (permission denied...) without our command line.
fn read_failed(lxd: &Lxd, name: &str, path: &str, e: Error) -> Error {
    match &e {
        Error::Command(f) if f.status == Some(3) => Error::NotFound {
            kind: "file",
            name: format!("{name}:{path}"),
        },
        Error::Command(f) if f.status == Some(4) => Error::Usage(format!(
            "{name}:{path} is not a regular file (a device, a FIFO, a directory, or a link to one)"
        )),
        Error::Command(f) => match crate::instances::diagnose_exec(lxd, name, false) {
            Err(why) => why,
            Ok(()) => Error::WrongState(format!("reading {name}:{path}: {}", f.stderr_tail.trim())),
        },
        _ => e,
    }
}

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
            let mut child =
                exec_cmd(lxd, name, &write_argv(path), false)?.spawn_streaming(Pipe::Stdin)?;
            let mut stdin = child.child.stdin.take().expect("piped");
            let sent = std::io::copy(&mut file, &mut stdin).and_then(|n| stdin.flush().map(|_| n));
            drop(stdin);
            let done = child.finish();
            let sent = sent.map_err(|e| Error::io(format!("sending {}", local.display()), e))?;
            done.map_err(|e| not_copied(lxd, name, e))?;
            sent
        }
        (Side::Box { name, path }, Side::Host(local)) => {
            // A read: when LXD loses track of its child, it is read again
            // from the start (as `Lxd::output_idempotent` does).
            let mut tries = 1;
            loop {
                match copy_out(lxd, name, path, local) {
                    Err(Error::Command(f))
                        if tries < crate::lxd::EXEC_READ_TRIES && crate::lxd::lost_track_in(&f) =>
                    {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(300));
                    }
                    Err(e) => return Err(read_failed(lxd, name, path, e)),
                    Ok(n) => break n,
                }
            }
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

/// Stream a box file to a host file; a failed copy leaves no file.
fn copy_out(lxd: &Lxd, name: &str, path: &str, local: &std::path::Path) -> Result<u64> {
    let argv = read_argv(path, u64::MAX >> 1);
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
    done?;
    got.map_err(|e| Error::io(format!("writing {}", local.display()), e))
}

/// Write `data` to a box path (from [`home_path`]) as the `terrarium`
/// user, making the directories above it; for programs that hold the
/// content, not a host file (the MCP server).
pub fn write(lxd: &Lxd, name: &str, path: &str, data: &[u8]) -> Result<u64> {
    let cmd = exec_cmd(lxd, name, &write_argv(path), false)?.stdin_bytes(data);
    let out = Lxd::output_idempotent(&cmd)?;
    if !out.status.success() {
        return Err(not_copied(lxd, name, cmd.failure(&out)));
    }
    Ok(data.len() as u64)
}

/// Read at most `cap` bytes of a regular file at a box path as the
/// `terrarium` user; true when the file was longer.
pub fn read(lxd: &Lxd, name: &str, path: &str, cap: usize) -> Result<(Vec<u8>, bool)> {
    let cmd = exec_cmd(lxd, name, &read_argv(path, cap as u64 + 1), false)?;
    let out = Lxd::output_idempotent(&cmd)?;
    if !out.status.success() {
        return Err(read_failed(lxd, name, path, cmd.failure(&out)));
    }
    let mut out = out.stdout;
    let cut = out.len() > cap;
    out.truncate(cap);
    Ok((out, cut))
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
