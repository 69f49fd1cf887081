//! Restore as new: an instance made from a snapshot, or imported, that
//! cannot take the original's traffic.

use std::collections::BTreeSet;

use serde::Serialize;

use super::{retention::Snap, snaps_with};
use crate::error::{Error, Result};
use crate::expose::labels;
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::output::Human;

/// Where holds used to be kept (comma-separated). Not read any more: a
/// rollback wiped it and any `user.*` writer could forge it; holds now
/// live on the host ([`super::holds`]). Copies and imports still have it removed.
const HOLDS_KEY: &str = "user.terrarium.holds";

#[derive(Debug, Clone, Serialize)]
pub struct Restored {
    pub instance: String,
    pub from: String,
    pub started: bool,
    pub stripped: Vec<String>,
}

impl Human for Restored {
    fn human(&self) -> String {
        format!(
            "{} created from {} ({}); stripped: {}",
            self.instance,
            self.from,
            if self.started { "started" } else { "stopped" },
            if self.stripped.is_empty() {
                "nothing".into()
            } else {
                self.stripped.join(", ")
            }
        )
    }
}

/// Take from a copied or imported instance what would let it take the
/// original's traffic: exposure labels, proxy devices, the MAC address,
/// the old holds key, and an agent box's seat on the original's bridge
/// (it gets its own). Returns what was removed, in words.
pub fn strip_identity(lxd: &Lxd, new: &str) -> Result<Vec<String>> {
    let mut stripped = strip_exposure(lxd, new)?;
    let copy = lxd.instance(new)?;
    for key in copy
        .config
        .keys()
        .filter(|k| k.starts_with("volatile.") && k.ends_with(".hwaddr"))
    {
        lxd.unset_config(new, key)?;
        stripped.push(format!("{key} (a fresh MAC is generated)"));
    }
    if let Some(note) = crate::cluster::addresses::repin_copy(lxd, new)? {
        stripped.push(note);
    }
    if copy.config.contains_key(HOLDS_KEY) {
        lxd.unset_config(new, HOLDS_KEY)?;
        stripped.push(HOLDS_KEY.to_string());
    }
    // Last: the MAC is already gone, so a copy that stays behind after a
    // failure here cannot stand in for the original on any bridge.
    stripped.extend(crate::agents::sandbox::rehome(lxd, new)?);
    Ok(stripped)
}

/// Take an instance's exposure: its `user.proxy` labels (and so its
/// claims on public hosts) and its proxy devices. Returns what was
/// removed, in words.
pub(crate) fn strip_exposure(lxd: &Lxd, new: &str) -> Result<Vec<String>> {
    let copy = lxd.instance(new)?;
    let mut stripped = Vec::new();
    if copy.config.contains_key(labels::KEY) {
        lxd.unset_config(new, labels::KEY)?;
        stripped.push(format!(
            "{} ({})",
            labels::KEY,
            copy.config[labels::KEY].replace('\n', ", ")
        ));
    }
    for (dev, d) in &copy.devices {
        if d.get("type").map(String::as_str) == Some("proxy") {
            lxd.remove_device(new, dev)?;
            stripped.push(format!("proxy device {dev}"));
        }
    }
    Ok(stripped)
}

/// A new instance from a snapshot, without the original's exposure, proxy
/// devices or MAC address.
pub fn restore_as(
    lxd: &Lxd,
    name: &str,
    new: &str,
    from: Option<&str>,
    start: bool,
    target: Option<&str>,
) -> Result<Restored> {
    validate_instance_name(name)?;
    validate_instance_name(new)?;
    crate::cluster::plan::check_target(lxd, target)?;
    let i = lxd.instance_full(name)?;
    if lxd.instance(new).is_ok() {
        return Err(Error::Usage(format!("instance '{new}' already exists")));
    }
    let snaps: Vec<Snap> = snaps_with(&i, &BTreeSet::new());
    let from = match from {
        Some(f) if snaps.iter().any(|s| s.name == f) => f.to_string(),
        Some(f) => {
            return Err(Error::NotFound {
                kind: "snapshot",
                name: format!("{name}/{f}"),
            })
        }
        None => snaps
            .iter()
            .max_by(|a, b| (a.created, &a.name).cmp(&(b.created, &b.name)))
            .map(|s| s.name.clone())
            .ok_or_else(|| Error::WrongState(format!("instance '{name}' has no snapshot")))?,
    };
    lxd.copy_to(&format!("{name}/{from}"), new, target)?;
    let stripped = strip_identity(lxd, new).inspect_err(|_| {
        // A half-made copy could take the original's traffic: it goes.
        let _ = lxd.delete(new, true);
        let _ = crate::agents::sandbox::teardown(lxd, new);
    })?;
    if start {
        lxd.start(new)?;
    }
    Ok(Restored {
        instance: new.into(),
        from: format!("{name}/{from}"),
        started: start,
        stripped,
    })
}
