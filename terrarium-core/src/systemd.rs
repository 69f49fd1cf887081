//! systemd units for Terrarium's background work (the exposure watcher and
//! its periodic backstop sync). On a host without systemd the units are
//! still written, and the report says plainly that nothing was enabled.

use std::path::Path;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fs::atomic_write;
use crate::output::Human;
use crate::process::{Cmd, Tool};

const SYSTEMCTL: Tool = Tool {
    names: &["systemctl"],
    env: "TRM_SYSTEMCTL",
    hint: "this host has no systemd",
};

#[derive(Debug, Clone)]
pub struct Unit {
    pub name: String,
    pub content: String,
    /// Enable and start it (timers, long-running services).
    pub enable: bool,
}

pub const DEFAULT_UNIT_DIR: &str = "/etc/systemd/system";

/// Is systemd the running init (the test systemd itself uses)?
pub fn is_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub unit_dir: String,
    pub units: Vec<String>,
    pub action: &'static str,
    pub dry_run: bool,
    pub systemd: bool,
    pub enabled: Vec<String>,
    pub note: String,
}

impl Human for Report {
    fn human(&self) -> String {
        format!(
            "{} {} in {}{}\n{}",
            if self.dry_run { "would" } else { "done:" },
            self.action,
            self.unit_dir,
            if self.units.is_empty() {
                String::new()
            } else {
                format!(" ({})", self.units.join(", "))
            },
            self.note
        )
    }
}

pub fn systemctl(args: &[&str]) -> Result<()> {
    systemctl_output(args).map(drop)
}

/// `systemctl ARGS`, checked, with its output.
pub fn systemctl_output(args: &[&str]) -> Result<String> {
    Ok(Cmd::tool(&SYSTEMCTL)?.args(args).run()?.stdout_str())
}

pub fn install(units: &[Unit], dir: &Path, dry_run: bool) -> Result<Report> {
    let systemd = is_running();
    let mut enabled = Vec::new();
    if !dry_run {
        for u in units {
            atomic_write(&dir.join(&u.name), u.content.as_bytes(), 0o644)?;
        }
        if systemd {
            systemctl(&["daemon-reload"])?;
            for u in units.iter().filter(|u| u.enable) {
                systemctl(&["enable", "--now", &u.name])?;
                enabled.push(u.name.clone());
            }
        }
    }
    Ok(Report {
        unit_dir: dir.display().to_string(),
        units: units.iter().map(|u| u.name.clone()).collect(),
        action: "install",
        dry_run,
        systemd,
        enabled,
        note: if systemd {
            "enabled and started".into()
        } else {
            "this host has no systemd: the units are written but nothing was enabled; run the command yourself (e.g. under your init system)".into()
        },
    })
}

pub fn remove(units: &[Unit], dir: &Path, dry_run: bool) -> Result<Report> {
    let systemd = is_running();
    if !dry_run {
        if systemd {
            for u in units.iter().filter(|u| u.enable) {
                // Not enabled is fine: we are removing it anyway.
                let _ = systemctl(&["disable", "--now", &u.name]);
            }
        }
        for u in units {
            match std::fs::remove_file(dir.join(&u.name)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::io(
                        format!("removing {}", dir.join(&u.name).display()),
                        e,
                    ))
                }
            }
        }
        if systemd {
            systemctl(&["daemon-reload"])?;
        }
    }
    Ok(Report {
        unit_dir: dir.display().to_string(),
        units: units.iter().map(|u| u.name.clone()).collect(),
        action: "remove",
        dry_run,
        systemd,
        enabled: Vec::new(),
        note: "removed".into(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct UnitStatus {
    pub name: String,
    pub installed: bool,
    /// `systemctl is-active`, or `unknown` without systemd.
    pub active: String,
}

pub fn status(units: &[Unit], dir: &Path) -> Vec<UnitStatus> {
    units
        .iter()
        .map(|u| UnitStatus {
            name: u.name.clone(),
            installed: dir.join(&u.name).is_file(),
            active: if is_running() {
                Cmd::tool(&SYSTEMCTL)
                    .and_then(|c| c.args(["is-active", &u.name]).output())
                    .map(|o| o.stdout_str().trim().to_string())
                    .unwrap_or_else(|_| "unknown".into())
            } else {
                "unknown (no systemd)".into()
            },
        })
        .collect()
}

impl crate::output::Row for UnitStatus {
    fn headers() -> &'static [&'static str] {
        &["UNIT", "INSTALLED", "ACTIVE"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            if self.installed { "yes" } else { "no" }.into(),
            self.active.clone(),
        ]
    }
}
