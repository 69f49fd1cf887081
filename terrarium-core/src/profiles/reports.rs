//! What `trm-profile` reports: one profile as LXD has it, the drift of
//! each, an apply's plan and result, and what each setting buys. Data and
//! their human rendering, beside each other.

use serde::Serialize;

use super::managed::{self, Action, Plan, Status};
use super::{Definition, Difference};
use crate::confirm::confirm;
use crate::error::{Error, Result};
use crate::fs::Lock;
use crate::lxd::{Config, Devices, Lxd};
use crate::output::Human;

/// A profile as LXD has it, and whether Terrarium manages it.
#[derive(Debug, Serialize)]
pub struct Shown {
    pub name: String,
    pub managed: bool,
    pub status: Status,
    pub description: String,
    pub config: Config,
    pub devices: Devices,
    pub used_by: Vec<String>,
}

impl Human for Shown {
    fn human(&self) -> String {
        let mut s = format!(
            "name: {}\nmanaged: {}\nstatus: {}\ndescription: {}\nconfig:\n",
            self.name,
            self.managed,
            status_word(self.status),
            self.description
        );
        for (k, v) in &self.config {
            s.push_str(&format!("  {k}: {}\n", indent(v)));
        }
        s.push_str("devices:\n");
        for (d, kv) in &self.devices {
            let kv: Vec<String> = kv.iter().map(|(k, v)| format!("{k}={v}")).collect();
            s.push_str(&format!("  {d}: {}\n", kv.join(" ")));
        }
        s.push_str(&format!("used by: {}", self.used_by.len()));
        s
    }
}

fn indent(v: &str) -> String {
    if v.contains('\n') {
        format!(
            "|\n{}",
            v.lines()
                .map(|l| format!("    {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    } else {
        v.to_string()
    }
}

fn status_word(s: Status) -> String {
    serde_json::to_value(s)
        .expect("status")
        .as_str()
        .unwrap_or_default()
        .replace('_', " ")
}

pub fn show(lxd: &Lxd, defs: &[Definition], name: &str) -> Result<Shown> {
    let live = lxd.profile(name)?.ok_or_else(|| Error::NotFound {
        kind: "profile",
        name: name.to_string(),
    })?;
    let entry = managed::list(lxd, defs)?
        .into_iter()
        .find(|e| e.name == name)
        .expect("a live profile is listed");
    Ok(Shown {
        name: live.name,
        managed: entry.managed,
        status: entry.status,
        description: live.description,
        config: live.config,
        devices: live.devices,
        used_by: live.used_by,
    })
}

#[derive(Debug, Serialize)]
pub struct DiffReport {
    pub name: String,
    pub status: Status,
    pub differences: Vec<Difference>,
}

/// All diffs; JSON is the plain array, people get a unified-diff-like view.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct DiffReports(pub Vec<DiffReport>);

impl Human for DiffReports {
    fn human(&self) -> String {
        self.0
            .iter()
            .map(|r| {
                let mut s = format!("{}: {}", r.name, status_word(r.status));
                for d in &r.differences {
                    s.push_str(&format!(
                        "\n  {} {}\n    - live:      {}\n    + terrarium: {}",
                        d.what,
                        d.key,
                        short(&d.live),
                        short(&d.want)
                    ));
                }
                s
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn short(v: &Option<serde_json::Value>) -> String {
    match v {
        None => "(absent)".into(),
        Some(serde_json::Value::String(s)) if s.contains('\n') => {
            format!("{:?}…", s.lines().next().unwrap_or_default())
        }
        Some(serde_json::Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
    }
}

pub fn diff(lxd: &Lxd, defs: Vec<Definition>, name: Option<String>) -> Result<DiffReports> {
    let names: Vec<String> = name.into_iter().collect();
    let defs = managed::select(defs, &names)?;
    Ok(DiffReports(
        managed::plan(lxd, &defs)?
            .into_iter()
            .map(|p| DiffReport {
                status: match p.action {
                    Action::Create => Status::Missing,
                    Action::Restore => Status::Drifted,
                    Action::Adopt | Action::Skip => Status::Unmanaged,
                    Action::None => Status::InSync,
                },
                name: p.name,
                differences: p.differences,
            })
            .collect(),
    ))
}

/// What `trm-profile apply` planned or did.
#[derive(Debug, Serialize)]
pub struct ApplyReport {
    pub dry_run: bool,
    pub changed: bool,
    pub profiles: Vec<Plan>,
}

impl Human for ApplyReport {
    fn human(&self) -> String {
        let mut lines: Vec<String> = self
            .profiles
            .iter()
            .map(|p| {
                let verb = serde_json::to_value(p.action).expect("action");
                format!(
                    "{:<8} {:<10} {}",
                    verb.as_str().unwrap_or_default(),
                    p.name,
                    p.detail
                )
            })
            .collect();
        lines.push(match (self.changed, self.dry_run) {
            (false, _) => "Nothing to change.".into(),
            (true, true) => "Dry run: nothing was changed.".into(),
            (true, false) => "Applied.".into(),
        });
        lines.join("\n")
    }
}

/// Apply `names` (every Terrarium profile when empty): create missing
/// profiles, restore drifted ones after confirming any overwritten edits.
pub fn apply(
    lxd: &Lxd,
    defs: Vec<Definition>,
    names: &[String],
    yes: bool,
    dry_run: bool,
) -> Result<ApplyReport> {
    let defs = managed::select(defs, names)?;
    let _lock = Lock::for_change(crate::fs::Resource::Profiles, dry_run)?;
    let plans = managed::plan(lxd, &defs)?;
    if !names.is_empty() {
        if let Some(p) = plans.iter().find(|p| p.action == Action::Skip) {
            return Err(Error::Usage(format!(
                "profile '{}' exists and is not managed by Terrarium, which never touches it; \
                 rename or delete it to let Terrarium install its own",
                p.name
            )));
        }
    }
    let changed = plans
        .iter()
        .any(|p| !matches!(p.action, Action::None | Action::Skip));
    if !dry_run && changed {
        let overwritten: Vec<&str> = plans
            .iter()
            .filter(|p| p.overwrites())
            .map(|p| p.name.as_str())
            .collect();
        if !overwritten.is_empty() {
            confirm(
                &format!(
                    "Overwrite hand edits to profile(s) {} with Terrarium's definition",
                    overwritten.join(", ")
                ),
                yes,
            )?;
        }
        managed::apply(lxd, &plans)?;
    }
    Ok(ApplyReport {
        dry_run,
        changed,
        profiles: plans,
    })
}

/// A profile's settings and why each is there, on this kernel.
#[derive(Debug, Serialize)]
pub struct Explained {
    #[serde(flatten)]
    pub def: Definition,
    pub kernel_note: String,
}

/// What `trm-profile explain NAME` says.
pub fn explain(defs: Vec<Definition>, name: &str) -> Result<Explained> {
    let def = managed::select(defs, &[name.to_string()])?.remove(0);
    Ok(Explained {
        def,
        kernel_note: super::nesting_note(super::kernel_has_apparmor()),
    })
}

impl Human for Explained {
    fn human(&self) -> String {
        let d = &self.def;
        let mut s = format!(
            "{}: {}\n{}\n\n",
            d.name,
            d.summary,
            if d.standalone {
                "Standalone: use it alone (--profile NAME)."
            } else {
                "Add-on: stack it after a standalone profile (--profile default --profile strict)."
            }
        );
        for set in d.settings.iter().chain(&d.devices) {
            let value = if set.value.contains('\n') {
                "(script, see `trm-profile show`)".to_string()
            } else {
                set.value.clone()
            };
            s.push_str(&format!("{} = {}\n    {}\n", set.key, value, set.why));
        }
        s.push_str(&format!("\nOn this host: {}", self.kernel_note));
        s
    }
}
