//! `trm exec --checkpoint`: a snapshot taken just before a risky command,
//! named `trm-checkpoint-<stamp>`, kept by its own retention count and
//! never pruned while it is the latest; `trm-snap rollback NAME --to
//! last-checkpoint` returns to it.

use chrono::Utc;
use serde::Serialize;

use super::{lock_instance, retention, snapshot_names, take, unique_name};
use crate::error::Result;
use crate::fs::OnBusy;
use crate::lxd::Lxd;
use crate::names::validate_instance_name;

#[derive(Debug, Clone, Serialize)]
pub struct Checkpoint {
    pub instance: String,
    pub snapshot: String,
    /// What it was taken before.
    pub command: Vec<String>,
    /// How to undo that command.
    pub rollback: String,
}

/// Snapshot `name` under its lock, as a checkpoint before `command`.
pub fn checkpoint(
    lxd: &Lxd,
    name: &str,
    command: &[String],
    on_busy: OnBusy,
) -> Result<Checkpoint> {
    validate_instance_name(name)?;
    let _lock = lock_instance(lxd, name, on_busy)?;
    let i = lxd.instance_full(name)?;
    let existing = snapshot_names(&i);
    let snapshot = unique_name(&retention::checkpoint_name(Utc::now()), |n| {
        existing.contains(n)
    });
    take(lxd, &i, &snapshot)?;
    Ok(Checkpoint {
        instance: name.into(),
        rollback: format!(
            "trm-snap rollback {name} --to {}",
            super::rollback::LAST_CHECKPOINT
        ),
        snapshot,
        command: command.to_vec(),
    })
}
