//! Terrarium's profiles as they stand in LXD: which exist, which drifted,
//! what `apply` (and `trm init`) would do, and doing it.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lxd::{Lxd, Profile};
use crate::output::Row;
use crate::profiles::{self, Definition, Difference};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Managed and identical to Terrarium's definition.
    InSync,
    /// Managed, but hand edits made it differ.
    Drifted,
    /// Terrarium defines it; LXD does not have it.
    Missing,
    /// Not Terrarium's: listed, never touched.
    Unmanaged,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: String,
    pub managed: bool,
    pub status: Status,
    pub used_by: usize,
    pub description: String,
}

impl Row for Entry {
    fn headers() -> &'static [&'static str] {
        &["NAME", "MANAGED", "STATUS", "USED BY", "DESCRIPTION"]
    }

    fn cells(&self) -> Vec<String> {
        let status = serde_json::to_value(self.status).expect("status serializes");
        vec![
            self.name.clone(),
            if self.managed { "yes" } else { "no" }.into(),
            status.as_str().unwrap_or_default().replace('_', " "),
            self.used_by.to_string(),
            self.description.clone(),
        ]
    }
}

fn status(live: Option<&Profile>, want: Option<&Profile>) -> Status {
    match (live, want) {
        (None, _) => Status::Missing,
        (Some(l), _) if !profiles::is_managed(l) => Status::Unmanaged,
        (Some(l), Some(w)) if profiles::diff(l, w).is_empty() => Status::InSync,
        (Some(_), Some(_)) => Status::Drifted,
        // Marked managed but Terrarium no longer defines it.
        (Some(_), None) => Status::Drifted,
    }
}

/// Every profile in the project, plus Terrarium's that are missing.
pub fn list(lxd: &Lxd, defs: &[Definition]) -> Result<Vec<Entry>> {
    let live = lxd.profiles()?;
    let want = |name: &str| {
        defs.iter()
            .find(|d| d.name == name)
            .map(Definition::profile)
    };
    let mut out: Vec<Entry> = live
        .iter()
        .map(|p| Entry {
            name: p.name.clone(),
            managed: profiles::is_managed(p),
            status: status(Some(p), want(&p.name).as_ref()),
            used_by: p.used_by.len(),
            description: p.description.clone(),
        })
        .collect();
    for d in defs {
        if !live.iter().any(|p| p.name == d.name) {
            out.push(Entry {
                name: d.name.clone(),
                managed: false,
                status: Status::Missing,
                used_by: 0,
                description: d.summary.clone(),
            });
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    /// Put a drifted managed profile back to its definition.
    Restore,
    /// Take over LXD's stock `default` profile.
    Adopt,
    None,
    /// An unmanaged profile of the same name: left alone.
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub name: String,
    pub action: Action,
    pub detail: String,
    pub differences: Vec<Difference>,
    #[serde(skip)]
    pub want: Profile,
}

impl Plan {
    /// Restoring and adopting overwrite what someone set by hand.
    pub fn overwrites(&self) -> bool {
        matches!(self.action, Action::Restore | Action::Adopt)
    }
}

/// What applying `defs` would do, without changing anything.
pub fn plan(lxd: &Lxd, defs: &[Definition]) -> Result<Vec<Plan>> {
    Ok(plan_from(defs, &read(lxd, defs)?))
}

/// The profiles of `defs`' names that LXD has.
pub fn read(lxd: &Lxd, defs: &[Definition]) -> Result<Vec<Profile>> {
    let mut live = Vec::new();
    for d in defs {
        live.extend(lxd.profile(&d.name)?);
    }
    Ok(live)
}

/// What applying `defs` would do to the `live` profiles.
pub fn plan_from(defs: &[Definition], live: &[Profile]) -> Vec<Plan> {
    defs.iter()
        .map(|d| {
            let want = d.profile();
            let live = live.iter().find(|p| p.name == d.name);
            let differences = live.map(|l| profiles::diff(l, &want)).unwrap_or_default();
            let (action, detail) = match status(live, Some(&want)) {
                Status::Missing => (Action::Create, d.summary.clone()),
                Status::InSync => (Action::None, "in sync".into()),
                Status::Drifted => (
                    Action::Restore,
                    format!("{} hand edit(s) undone", differences.len()),
                ),
                Status::Unmanaged if d.name == "default" => (
                    Action::Adopt,
                    format!(
                        "LXD's default profile becomes Terrarium's ({} change(s))",
                        differences.len()
                    ),
                ),
                Status::Unmanaged => (
                    Action::Skip,
                    "exists and is not managed by Terrarium; left alone".into(),
                ),
            };
            Plan {
                name: d.name.clone(),
                action,
                detail,
                differences,
                want,
            }
        })
        .collect()
}

pub fn apply(lxd: &Lxd, plans: &[Plan]) -> Result<()> {
    for p in plans {
        if matches!(p.action, Action::Create | Action::Restore | Action::Adopt) {
            lxd.put_profile(&p.want)?;
        }
    }
    Ok(())
}

/// The definitions named (all of them for `None`), or a usage error naming
/// the unknown one.
pub fn select(defs: Vec<Definition>, names: &[String]) -> Result<Vec<Definition>> {
    if names.is_empty() {
        return Ok(defs);
    }
    names
        .iter()
        .map(|n| {
            defs.iter().find(|d| &d.name == n).cloned().ok_or_else(|| {
                Error::Usage(format!(
                    "'{n}' is not a Terrarium profile (they are: {})",
                    profiles::NAMES.join(", ")
                ))
            })
        })
        .collect()
}
