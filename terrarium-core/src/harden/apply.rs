//! Making a hardening plan's changes, exactly those, and the report of
//! what each did.

use std::path::Path;

use serde::Serialize;

use super::plan::Step;
use super::{lockout_guard, ssh, Change, Options, Plan};
use crate::error::{Error, Result};
use crate::fs::{atomic_write, lock_wait, Lock};
use crate::lxd::Lxd;
use crate::output::Human;
use crate::settings::Settings;
use crate::{expose, systemd};

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub applied: Vec<Change>,
    pub kept: Vec<String>,
    /// What reloading sshd did, when the drop-in changed.
    pub ssh_reload: Option<String>,
    /// sshd's effective settings after the change (`sshd -T`).
    pub ssh_effective: Option<Vec<String>>,
    pub traefik_restart: Option<expose::Restarted>,
    pub notes: Vec<String>,
}

impl Human for ApplyReport {
    fn human(&self) -> String {
        let mut out = vec![if self.applied.is_empty() {
            "nothing to change".to_string()
        } else {
            format!("applied {} change(s):", self.applied.len())
        }];
        out.extend(
            self.applied
                .iter()
                .map(|c| format!("  {:9} {} {}", c.area, c.action, c.target)),
        );
        out.extend(self.ssh_reload.iter().map(|s| format!("ssh: {s}")));
        out.extend(
            self.traefik_restart
                .iter()
                .map(|s| format!("traefik restart: {s}")),
        );
        out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        out.join("\n")
    }
}

/// Make the planned changes, in order, under the harden and expose locks
/// (both write the firewall and Traefik's directory).
pub fn apply(
    plan: Plan,
    settings: &Settings,
    opts: &Options,
    lxd: &Lxd,
    force: bool,
) -> Result<ApplyReport> {
    lockout_guard(&plan, force)?;
    let _harden = Lock::acquire(crate::fs::Resource::Harden, lock_wait())?;
    let _expose = Lock::acquire(crate::fs::Resource::Expose, lock_wait())?;
    let mut report = ApplyReport {
        applied: Vec::new(),
        kept: plan.kept,
        ssh_reload: None,
        ssh_effective: None,
        traefik_restart: None,
        notes: plan.notes,
    };
    for c in plan.changes {
        match &c.step {
            Step::SshDropIn(path, content) => {
                let sshd = opts.sshd();
                sshd.install(path, content)?;
                report.ssh_reload = Some(ssh::reload(&opts.sshd_pid_file));
                let eff = sshd.effective()?;
                let wrong = ssh::mismatches(&eff);
                if !wrong.is_empty() {
                    return Err(Error::WrongState(format!(
                        "{} is in place but sshd's effective settings differ: {} (does {} Include {}/*.conf before its own settings?)",
                        path.display(),
                        wrong.join("; "),
                        opts.sshd_config.display(),
                        opts.ssh_dir.display()
                    )));
                }
                report.ssh_effective = Some(
                    ssh::EFFECTIVE
                        .iter()
                        .map(|(k, _)| {
                            format!(
                                "{k} {}",
                                eff.get(*k)
                                    .and_then(|v| v.first())
                                    .cloned()
                                    .unwrap_or_default()
                            )
                        })
                        .collect(),
                );
            }
            Step::Write(path, content) => atomic_write(path, content.as_bytes(), 0o644)?,
            Step::TraefikStatic(path, content) => {
                atomic_write(path, content.as_bytes(), 0o644)?;
                report.traefik_restart =
                    Some(expose::restart_after_static_change(&settings.expose)?);
            }
            Step::Ufw(args) => drop(opts.ufw.run(args)?),
            Step::LxdServer(key, value) => lxd.set_server_config(key, value)?,
            Step::Cockpit(path, content) => {
                let dir = path.parent().unwrap_or(Path::new("."));
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let unit = systemd::Unit {
                    name,
                    content: content.clone(),
                    enable: false,
                };
                let r = systemd::install(&[unit], dir, false)?;
                report.notes.push(if r.systemd {
                    "Cockpit: restart cockpit.socket (`systemctl restart cockpit.socket`) for it to listen on loopback only".into()
                } else {
                    "Cockpit: the socket drop-in is written; this host has no systemd to reload".into()
                });
            }
        }
        report.applied.push(c);
    }
    Ok(report)
}
