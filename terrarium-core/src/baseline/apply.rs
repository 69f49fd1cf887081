//! Carrying out a baseline plan, and the report of what it did.

use super::plan::Op;
use super::{Action, Step};
use crate::error::Result;
use crate::lxd::Lxd;
use crate::sysctl;

/// Carry out the planned steps in order.
pub fn apply(lxd: &Lxd, steps: &[Step]) -> Result<()> {
    for s in steps {
        match &s.op {
            Op::Nothing => {}
            Op::CreateProject(cfg) => lxd.create_project(&s.name, cfg)?,
            Op::CreatePool { driver, config } => {
                lxd.create_storage_pool(&s.name, driver, config)?
            }
            Op::CreateNetwork(cfg) => lxd.create_network(&s.name, cfg)?,
            Op::PatchNetwork(cfg) => lxd.patch_network(&s.name, cfg)?,
            Op::SetServer { key, value } => lxd.set_server_config(key, value)?,
            Op::PutProfile(p) => lxd.put_profile(p)?,
            Op::WriteSettings(settings) => settings.save()?,
            Op::RaiseSysctl { key, value } => sysctl::raise(key, *value)?,
            Op::WriteSysctlFile(path) => {
                crate::fs::atomic_write(path, sysctl::render().as_bytes(), 0o644)?
            }
        }
    }
    Ok(())
}

/// What `trm init` planned or did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    pub changed: bool,
    pub dry_run: bool,
    pub steps: Vec<Step>,
}

impl crate::output::Human for Report {
    fn human(&self) -> String {
        let mut lines: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                let mark = match (s.action, self.dry_run) {
                    (Action::None, _) => "ok     ",
                    (Action::Create, true) => "create?",
                    (Action::Update, true) => "update?",
                    (Action::Create, false) => "created",
                    (Action::Update, false) => "updated",
                };
                format!(
                    "{mark}  {} {}: {}",
                    s.resource.replace('_', " "),
                    s.name,
                    s.detail
                )
            })
            .collect();
        lines.push(match (self.changed, self.dry_run) {
            (false, _) => "Nothing to change: this host is at the Terrarium baseline.".into(),
            (true, true) => "Dry run: nothing was changed.".into(),
            (true, false) => "This host is now at the Terrarium baseline.".into(),
        });
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_says_what_changed_or_would() {
        use crate::output::Human;
        let step = |action| Step {
            resource: "storage_pool",
            name: "terrarium".into(),
            action,
            detail: "btrfs".into(),
            op: Op::Nothing,
        };
        let r = |action, changed, dry_run| {
            Report {
                changed,
                dry_run,
                steps: vec![step(action)],
            }
            .human()
        };
        assert_eq!(
            r(Action::None, false, false),
            "ok       storage pool terrarium: btrfs\nNothing to change: this host is at the Terrarium baseline."
        );
        assert!(r(Action::Create, true, true).starts_with("create?  storage pool"));
        assert!(r(Action::Create, true, true).ends_with("Dry run: nothing was changed."));
        assert!(r(Action::Update, true, false).starts_with("updated  storage pool"));
    }
}
