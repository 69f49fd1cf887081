//! Atomic file writes and per-resource advisory locks, so a reader never
//! sees half a file and two Terrarium tools never interleave their writes.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};

/// Replace `path` with `contents`: write a temporary file in the same
/// directory (a dot-name that watchers such as Traefik ignore), fsync it,
/// rename it over the target, fsync the directory.
pub fn atomic_write(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    let name = path
        .file_name()
        .ok_or_else(|| Error::Usage(format!("{} is not a file path", path.display())))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        // The mode given to open is filtered by the umask; set it exactly.
        f.set_permissions(std::fs::Permissions::from_mode(mode))?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("writing {}", path.display()), e)
    })
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Where lock files live; `TRM_LOCK_DIR` overrides (tests, non-root use).
pub fn lock_dir() -> PathBuf {
    std::env::var_os("TRM_LOCK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/lock/terrarium"))
}

/// An exclusive advisory lock on one named resource, released on drop.
#[derive(Debug)]
pub struct Lock {
    _flock: Flock<File>,
    pub resource: String,
}

impl Lock {
    /// Wait up to `wait` for the lock on `resource`, then fail with
    /// `LockBusy` (exit 75).
    pub fn acquire(resource: &str, wait: Duration) -> Result<Lock> {
        let dir = lock_dir();
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::io(format!("creating lock directory {}", dir.display()), e))?;
        let path = dir.join(format!("{resource}.lock"));
        let deadline = Instant::now() + wait;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("opening lock {}", path.display()), e))?;
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(flock) => {
                    return Ok(Lock {
                        _flock: flock,
                        resource: resource.to_string(),
                    })
                }
                Err((f, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                    file = f;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err((_, nix::errno::Errno::EWOULDBLOCK)) => {
                    return Err(Error::LockBusy(format!("{resource} ({})", path.display())))
                }
                Err((_, e)) => {
                    return Err(Error::io(format!("locking {}", path.display()), e.into()))
                }
            }
        }
    }
}

impl Lock {
    /// The lock for a change, or none for a dry run (which only reads).
    pub fn for_change(resource: &str, dry_run: bool) -> Result<Option<Lock>> {
        (!dry_run)
            .then(|| Lock::acquire(resource, lock_wait()))
            .transpose()
    }
}

/// How long tools wait for a lock before reporting it busy.
pub fn lock_wait() -> Duration {
    std::env::var("TRM_LOCK_WAIT_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Duration::from_secs)
        .unwrap_or(Duration::from_secs(30))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_contents_and_sets_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/settings.toml");
        atomic_write(&p, b"one", 0o600).unwrap();
        atomic_write(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(p.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, vec![std::ffi::OsString::from("settings.toml")]);
    }

    #[test]
    fn second_lock_holder_is_told_busy() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("TRM_LOCK_DIR", dir.path());
        let first = Lock::acquire("unit-test", Duration::from_secs(1)).unwrap();
        let err = Lock::acquire("unit-test", Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.exit_code(), 75);
        drop(first);
        Lock::acquire("unit-test", Duration::from_millis(100)).unwrap();
    }
}
