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
/// directory, fsync it, rename it over the target, fsync the directory.
/// The temporary file is created exclusively under a fresh random name
/// (O_EXCL: a planted file or symlink is never opened, so root never
/// writes through it), and its name ends in `.tmp`, which watchers such
/// A JSON record Terrarium keeps on the host: `None` when the file does
/// not exist yet. A file that does not parse is an error, never a guess.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::parse(path.display().to_string(), e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", path.display()), e)),
    }
}

/// as Traefik (which reads dot-files too) ignore.
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
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".tmp")
            .tempfile_in(dir)?;
        // Exactly `mode`, whatever the umask.
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))?;
        tmp.write_all(contents)?;
        tmp.as_file().sync_all()?;
        // On failure the temporary file is removed when dropped.
        tmp.persist(path).map_err(|e| e.error)?;
        File::open(dir)?.sync_all()
    };
    write().map_err(|e| Error::io(format!("writing {}", path.display()), e))
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

/// The lock directory, created 0700 if missing, and refused unless it is
/// a real directory of ours that no one else can write: /run/lock is
/// world-writable, and whoever made the directory first would otherwise
/// hold every lock, or plant symlinks for root to create files through.
fn checked_lock_dir() -> Result<PathBuf> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let dir = lock_dir();
    match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(Error::io(
                format!("creating lock directory {}", dir.display()),
                e,
            ))
        }
    }
    let meta = std::fs::symlink_metadata(&dir)
        .map_err(|e| Error::io(format!("reading lock directory {}", dir.display()), e))?;
    let uid = nix::unistd::geteuid().as_raw();
    if let Some(why) = lock_dir_problem(meta.file_type().is_dir(), meta.uid(), meta.mode(), uid) {
        return Err(Error::WrongState(format!(
            "lock directory {} {why}; remove it (Terrarium recreates it 0700)",
            dir.display()
        )));
    }
    Ok(dir)
}

/// Why a lock directory may not be trusted (pure, for the tests).
fn lock_dir_problem(is_dir: bool, owner: u32, mode: u32, euid: u32) -> Option<String> {
    if !is_dir {
        Some("is not a directory (a symlink or a file)".into())
    } else if owner != euid {
        Some(format!("is owned by uid {owner}, not {euid}"))
    } else if mode & 0o022 != 0 {
        Some(format!("is writable by others (mode {:o})", mode & 0o777))
    } else {
        None
    }
}

/// Every resource Terrarium writers take turns on: each lock is named in
/// this one place (its file is `<lock dir>/<name>.lock`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    /// The host baseline (`trm init`).
    Baseline,
    /// Terrarium's LXD profiles (`trm init`, `trm-profile apply`).
    Profiles,
    /// Traefik's files, claims and the exposure firewall rules.
    Expose,
    /// sshd, the firewall defaults, the gate's settings.
    Harden,
    /// Instance creation (LXD 5.0 hands overlapping idmaps to simultaneous ones).
    Launch,
    /// One image alias being built.
    Image(&'a str),
    /// One instance's snapshots and lifecycle.
    Instance { project: &'a str, name: &'a str },
    /// Off-site exports (one at a time on a host).
    S3Export,
    /// This member's part of the cluster mesh.
    Mesh,
    #[cfg(test)]
    UnitTest,
}

impl Resource<'_> {
    /// The lock file's name without `.lock`.
    pub fn name(&self) -> String {
        match self {
            Resource::Baseline => "baseline".into(),
            Resource::Profiles => "profiles".into(),
            Resource::Expose => "expose".into(),
            Resource::Harden => "harden".into(),
            Resource::Launch => "launch".into(),
            Resource::Image(alias) => format!("image-{}", alias.replace('/', "_")),
            Resource::Instance { project, name } => format!("instance-{project}-{name}"),
            Resource::S3Export => "s3-export".into(),
            Resource::Mesh => "cluster-mesh".into(),
            #[cfg(test)]
            Resource::UnitTest => "unit-test".into(),
        }
    }
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
    pub fn acquire(resource: Resource, wait: Duration) -> Result<Lock> {
        let resource = resource.name();
        let resource = resource.as_str();
        let dir = checked_lock_dir()?;
        let path = dir.join(format!("{resource}.lock"));
        let deadline = Instant::now() + wait;
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW)
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
    pub fn for_change(resource: Resource, dry_run: bool) -> Result<Option<Lock>> {
        (!dry_run)
            .then(|| Lock::acquire(resource, lock_wait()))
            .transpose()
    }
}

/// What a caller does when another Terrarium process has the lock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnBusy {
    /// Report it busy (exit 75) at once.
    #[default]
    Fail,
    /// Wait for it, up to [`lock_wait`].
    Wait,
}

impl OnBusy {
    /// How long [`Lock::acquire`] waits.
    pub fn timeout(self) -> Duration {
        match self {
            OnBusy::Fail => Duration::ZERO,
            OnBusy::Wait => lock_wait(),
        }
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
    #[test]
    fn each_lock_has_one_stable_file_name() {
        let all = [
            (Resource::Baseline, "baseline"),
            (Resource::Profiles, "profiles"),
            (Resource::Expose, "expose"),
            (Resource::Harden, "harden"),
            (Resource::Launch, "launch"),
            (
                Resource::Image("terrarium/debian12"),
                "image-terrarium_debian12",
            ),
            (
                Resource::Instance {
                    project: "p",
                    name: "web",
                },
                "instance-p-web",
            ),
            (Resource::S3Export, "s3-export"),
        ];
        let names: std::collections::BTreeSet<String> = all.iter().map(|(r, _)| r.name()).collect();
        assert_eq!(names.len(), all.len(), "no two resources share a lock");
        for (r, want) in all {
            assert_eq!(r.name(), want, "the file other Terrarium versions lock too");
        }
    }

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
    fn atomic_write_never_writes_through_a_planted_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        let p = dir.path().join("settings.toml");
        // The old temporary names, planted as symlinks to the victim.
        for n in [
            format!(".settings.toml.tmp-{}", std::process::id()),
            ".settings.toml.tmp".to_string(),
        ] {
            std::os::unix::fs::symlink(&victim, dir.path().join(n)).unwrap();
        }
        atomic_write(&p, b"new", 0o644).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        let mode = std::fs::metadata(&victim).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the victim's mode is untouched");
        assert_eq!(std::fs::read(&p).unwrap(), b"new");
        // A symlink at the target itself is replaced, never followed.
        std::fs::remove_file(&p).unwrap();
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        atomic_write(&p, b"mine", 0o600).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(!std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn a_lock_directory_someone_else_controls_is_refused() {
        for (is_dir, owner, mode, ok) in [
            (true, 0, 0o40700, true),
            (true, 0, 0o40755, true),
            (false, 0, 0o120777, false),
            (true, 1000, 0o40700, false),
            (true, 0, 0o41777, false),
            (true, 0, 0o40770, false),
        ] {
            assert_eq!(
                lock_dir_problem(is_dir, owner, mode, 0).is_none(),
                ok,
                "{is_dir} {owner} {mode:o}"
            );
        }
    }

    #[test]
    fn second_lock_holder_is_told_busy() {
        let dir = tempfile::tempdir().unwrap();
        std::env::set_var("TRM_LOCK_DIR", dir.path());
        let first = Lock::acquire(Resource::UnitTest, Duration::from_secs(1)).unwrap();
        let err = Lock::acquire(Resource::UnitTest, Duration::from_millis(100)).unwrap_err();
        assert_eq!(err.exit_code(), 75);
        drop(first);
        Lock::acquire(Resource::UnitTest, Duration::from_millis(100)).unwrap();
    }
}
