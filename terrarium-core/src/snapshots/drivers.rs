//! What LXD's storage drivers do when an instance is restored in place to
//! a snapshot that is not its newest, and so how a rollback must go.
//!
//! A rollback always takes its safety snapshot first, so the target is
//! never the newest snapshot by the time LXD restores it. From LXD's
//! storage driver documentation ("Restore from older snapshots (not
//! latest)"): `dir`, `btrfs`, `lvm` and `cephfs` restore any snapshot and
//! keep the newer ones. ZFS (and Ceph RBD) can only roll back to the
//! newest: LXD refuses, or, with `zfs.remove_snapshots`, deletes every
//! newer snapshot, the safety snapshot (the undo) included.

/// An in-place restore to an older snapshot, per driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOlder {
    /// The restore works and newer snapshots stay.
    KeepsNewer,
    /// LXD refuses while newer snapshots exist.
    Refuses,
    /// LXD deletes the newer snapshots to restore.
    DeletesNewer,
}

/// `remove_snapshots` is the volume's effective `zfs.remove_snapshots`.
pub fn restore_older(driver: &str, remove_snapshots: bool) -> RestoreOlder {
    match driver {
        "dir" | "btrfs" | "lvm" | "cephfs" => RestoreOlder::KeepsNewer,
        "zfs" if remove_snapshots => RestoreOlder::DeletesNewer,
        // ZFS, Ceph RBD, and any driver not known here: never trust an
        // in-place restore with the undo.
        _ => RestoreOlder::Refuses,
    }
}

/// Restore in place only where that keeps every snapshot (the safety one
/// included); everywhere else, or when asked, copy and swap.
pub fn method(behaviour: RestoreOlder, swap: bool) -> super::Method {
    if swap || behaviour != RestoreOlder::KeepsNewer {
        super::Method::CopyAndSwap
    } else {
        super::Method::Restore
    }
}

#[cfg(test)]
mod tests {
    use super::super::Method;
    use super::*;

    /// LXD as its documentation describes it, on one instance's snapshots
    /// (oldest first): take the safety snapshot, then carry out `method`.
    /// Returns the snapshots of (the instance, the kept original), or the
    /// error LXD would give.
    fn simulate(
        behaviour: RestoreOlder,
        method: Method,
        mut snaps: Vec<&'static str>,
        target: &str,
    ) -> Result<(Vec<&'static str>, Vec<&'static str>), String> {
        snaps.push("safety");
        match method {
            Method::CopyAndSwap => Ok((Vec::new(), snaps)),
            Method::Restore => {
                let at = snaps.iter().position(|s| *s == target).unwrap();
                let newer = snaps.len() - at - 1;
                match behaviour {
                    RestoreOlder::KeepsNewer => Ok((snaps, Vec::new())),
                    RestoreOlder::Refuses if newer > 0 => {
                        Err("snapshot cannot be restored due to subsequent snapshot(s)".into())
                    }
                    RestoreOlder::DeletesNewer => {
                        snaps.truncate(at + 1);
                        Ok((snaps, Vec::new()))
                    }
                    RestoreOlder::Refuses => Ok((snaps, Vec::new())),
                }
            }
        }
    }

    #[test]
    fn every_driver_keeps_every_snapshot_and_the_undo() {
        let drivers = [
            ("dir", false),
            ("btrfs", false),
            ("lvm", false),
            ("cephfs", false),
            ("zfs", false),
            ("zfs", true),
            ("ceph", false),
            ("some-future-driver", false),
        ];
        let before = vec!["one", "two", "three"];
        for (driver, remove) in drivers {
            let behaviour = restore_older(driver, remove);
            for target in ["one", "three"] {
                for swap in [false, true] {
                    let m = method(behaviour, swap);
                    let what =
                        format!("{driver} remove_snapshots={remove} to {target} swap={swap}");
                    let (inst, kept) = simulate(behaviour, m, before.clone(), target)
                        .unwrap_or_else(|e| panic!("{what}: LXD refused: {e}"));
                    // The undo the report offers lives where it says.
                    let undo_at = if m == Method::CopyAndSwap {
                        &kept
                    } else {
                        &inst
                    };
                    assert!(undo_at.contains(&"safety"), "{what}: the undo is gone");
                    for s in &before {
                        assert!(inst.contains(s) || kept.contains(s), "{what}: {s} lost");
                    }
                }
            }
        }
    }

    #[test]
    fn zfs_always_swaps_because_the_safety_snapshot_is_newer() {
        // Even a rollback to the newest snapshot: by then the safety one is newer.
        assert_eq!(
            method(restore_older("zfs", false), false),
            Method::CopyAndSwap
        );
        assert_eq!(
            method(restore_older("zfs", true), false),
            Method::CopyAndSwap
        );
        assert_eq!(
            method(restore_older("btrfs", false), false),
            Method::Restore
        );
        assert_eq!(
            method(restore_older("btrfs", false), true),
            Method::CopyAndSwap
        );
    }
}
