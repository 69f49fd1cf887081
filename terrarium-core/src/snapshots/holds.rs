//! Holds: the snapshots an administrator asked Terrarium to keep.
//!
//! They are recorded on the host, one root-owned file per instance
//! (`<config dir>/holds/<project>/<instance>.json`), not in the
//! instance's config:
//! - LXD restores an instance's config from the snapshot on rollback, so
//!   a hold kept in `user.*` vanished and the next prune deleted the
//!   snapshot it was meant to keep;
//! - whoever may set `user.*` keys (a user restricted to one project, or
//!   a backup from the bucket) could pin snapshots forever.
//!
//! Only `trm-snap hold` (as root) adds one, at most [`MAX_PER_INSTANCE`]
//! per instance. Holds follow their snapshots: a copy-and-swap rollback
//! moves them to the instance that keeps the snapshots. The old
//! `user.terrarium.holds` key is not read any more.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{lock_instance, snapshot_names, zfs_snapshot};
use crate::error::{Error, Result};
use crate::fs::OnBusy;
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::output::Human;

/// Holds per instance, so a forged or runaway caller cannot keep an
/// unbounded number of snapshots out of retention.
pub const MAX_PER_INSTANCE: usize = 16;

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    snapshots: BTreeSet<String>,
}

/// LXD project and instance names never hold a `/`; refuse anything that
/// would leave the holds directory.
fn part(s: &str) -> Result<&str> {
    if s.is_empty() || s.starts_with('.') || s.contains('/') || s.contains('\0') {
        return Err(Error::Usage(format!(
            "'{s}' is not a valid project or instance name"
        )));
    }
    Ok(s)
}

fn path(project: &str, instance: &str) -> Result<PathBuf> {
    Ok(crate::settings::config_dir()
        .join("holds")
        .join(part(project)?)
        .join(format!("{}.json", part(instance)?)))
}

/// The snapshots held for an instance (empty when none).
pub fn load(project: &str, instance: &str) -> Result<BTreeSet<String>> {
    let p = path(project, instance)?;
    Ok(crate::fs::read_json::<Record>(&p)?.map_or_else(BTreeSet::new, |r| r.snapshots))
}

fn save(project: &str, instance: &str, snapshots: BTreeSet<String>) -> Result<()> {
    let p = path(project, instance)?;
    if snapshots.is_empty() {
        return match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io(format!("removing {}", p.display()), e))
            }
            _ => Ok(()),
        };
    }
    let text = serde_json::to_vec_pretty(&Record { snapshots }).expect("serializes");
    crate::fs::atomic_write(&p, &text, 0o600)
}

/// What holding or releasing changes, decided from the current record and
/// the snapshots the instance really has: holds on snapshots that are
/// gone are dropped (they neither count toward the limit nor come back).
#[derive(Debug, PartialEq, Eq)]
pub struct Change {
    pub held: BTreeSet<String>,
    pub changed: bool,
    pub dropped: Vec<String>,
}

/// What `trm-snap hold` and `trm-snap release` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Hold,
    Release,
}

pub fn plan(
    current: &BTreeSet<String>,
    existing: &BTreeSet<String>,
    snap: &str,
    action: Action,
) -> Result<Change> {
    let (mut held, dropped): (BTreeSet<String>, BTreeSet<String>) =
        current.iter().cloned().partition(|s| existing.contains(s));
    let changed = if action == Action::Hold {
        if !held.contains(snap) && held.len() >= MAX_PER_INSTANCE {
            return Err(Error::Usage(format!(
                "{} snapshots are held already, the most one instance may have; release one first ({})",
                held.len(),
                held.iter().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        held.insert(snap.to_string())
    } else {
        held.remove(snap)
    };
    Ok(Change {
        held,
        changed,
        dropped: dropped.into_iter().collect(),
    })
}

/// Write what [`plan`] decided (the caller holds the instance lock).
pub fn apply(project: &str, instance: &str, change: &Change) -> Result<()> {
    if change.changed || !change.dropped.is_empty() {
        save(project, instance, change.held.clone())?;
    }
    Ok(())
}

/// The instance's snapshots now live under another name (a copy-and-swap
/// rollback renamed it): its holds go with them.
pub fn rename(project: &str, from: &str, to: &str) -> Result<()> {
    let held = load(project, from)?;
    if held.is_empty() {
        return Ok(());
    }
    let mut target = load(project, to)?;
    target.extend(held);
    save(project, to, target)?;
    save(project, from, BTreeSet::new())
}

#[derive(Debug, Clone, Serialize)]
pub struct Hold {
    pub instance: String,
    pub snapshot: String,
    pub held: bool,
    pub changed: bool,
}

impl Human for Hold {
    fn human(&self) -> String {
        format!(
            "{}/{}: {}{}",
            self.instance,
            self.snapshot,
            if self.held { "held" } else { "released" },
            if self.changed { "" } else { " (already)" }
        )
    }
}

/// Hold or release a snapshot. Root only: the record is the host's, and
/// at most [`MAX_PER_INSTANCE`] per instance.
pub fn set_hold(
    lxd: &Lxd,
    name: &str,
    snap: &str,
    action: Action,
    on_busy: OnBusy,
) -> Result<Hold> {
    validate_instance_name(name)?;
    if !crate::fs::is_root() {
        return Err(Error::NotRoot("holding or releasing a snapshot".into()));
    }
    let _lock = lock_instance(lxd, name, on_busy)?;
    let i = lxd.instance_full(name)?;
    let existing = snapshot_names(&i);
    if !existing.contains(snap) {
        return Err(Error::NotFound {
            kind: "snapshot",
            name: format!("{name}/{snap}"),
        });
    }
    let change = plan(&load(lxd.project(), name)?, &existing, snap, action)?;
    // On ZFS the hold goes into the pool too, so not even a hand-run
    // `zfs destroy` can take the snapshot.
    if let Some(zsnap) = zfs_snapshot(lxd, &i, snap)? {
        if action == Action::Hold {
            if crate::zfs::user_refs(&zsnap)? == 0 {
                crate::zfs::hold(&zsnap)?;
            }
        } else {
            crate::zfs::release(&zsnap)?;
        }
    }
    apply(lxd.project(), name, &change)?;
    Ok(Hold {
        instance: name.into(),
        snapshot: snap.into(),
        held: action == Action::Hold,
        changed: change.changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// One row: the record, the call, and what it must decide.
    struct Case {
        current: &'static [&'static str],
        snap: &'static str,
        action: Action,
        held: &'static [&'static str],
        changed: bool,
        dropped: &'static [&'static str],
    }

    #[test]
    fn hold_release_and_stale_holds() {
        let existing = set(&["a", "b", "c"]);
        let row = |current, snap, action, held, changed, dropped| Case {
            current,
            snap,
            action,
            held,
            changed,
            dropped,
        };
        let cases = [
            row(&[], "a", Action::Hold, &["a"], true, &[]),
            row(&["a"], "a", Action::Hold, &["a"], false, &[]),
            row(&["a"], "a", Action::Release, &[], true, &[]),
            row(&["b"], "a", Action::Release, &["b"], false, &[]),
            // A hold whose snapshot is gone is dropped on the next write.
            row(
                &["gone", "b"],
                "a",
                Action::Hold,
                &["a", "b"],
                true,
                &["gone"],
            ),
        ];
        for c in cases {
            let what = format!("{:?} {} {:?}", c.current, c.snap, c.action);
            let got = plan(&set(c.current), &existing, c.snap, c.action).unwrap();
            assert_eq!(got.held, set(c.held), "{what}");
            assert_eq!(got.changed, c.changed, "{what}");
            assert_eq!(got.dropped, c.dropped, "{what}");
        }
    }

    #[test]
    fn holds_are_bounded_per_instance() {
        let names: Vec<String> = (0..=MAX_PER_INSTANCE).map(|i| format!("s{i:02}")).collect();
        let existing: BTreeSet<String> = names.iter().cloned().collect();
        let full: BTreeSet<String> = names[..MAX_PER_INSTANCE].iter().cloned().collect();
        let err = plan(&full, &existing, &names[MAX_PER_INSTANCE], Action::Hold).unwrap_err();
        assert!(err.to_string().contains("release one first"), "{err}");
        // Holding one that is held already, or releasing, still works.
        assert!(
            !plan(&full, &existing, &names[0], Action::Hold)
                .unwrap()
                .changed
        );
        assert!(
            plan(&full, &existing, &names[0], Action::Release)
                .unwrap()
                .changed
        );
        // Stale holds do not count toward the limit.
        let mut stale = full.clone();
        stale.remove(&names[0]);
        stale.insert("gone".into());
        let c = plan(&stale, &existing, &names[MAX_PER_INSTANCE], Action::Hold).unwrap();
        assert!(c.changed && c.dropped == ["gone"]);
    }

    #[test]
    fn names_cannot_leave_the_holds_directory() {
        for bad in ["", "..", ".x", "a/b"] {
            assert!(path("p", bad).is_err(), "{bad}");
            assert!(path(bad, "i").is_err(), "{bad}");
        }
    }
}
