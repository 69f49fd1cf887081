//! `trm-profile`: list, inspect, diff, restore and explain the LXD
//! profiles Terrarium manages. Glue only; the work is in terrarium-core.

use clap::{CommandFactory, Parser, Subcommand};
use serde::Serialize;
use terrarium_core::cli::{after_help, CommonArgs, ToolArgs};
use terrarium_core::confirm::confirm;
use terrarium_core::fs::Lock;
use terrarium_core::lxd::{Config, Devices, Lxd};
use terrarium_core::managed_profiles::{self, Action, Plan, Status};
use terrarium_core::output::{Human, Printer};
use terrarium_core::profiles::{self, Definition, Difference};
use terrarium_core::settings::Settings;
use terrarium_core::Error;

#[derive(Debug, Parser)]
#[command(
    name = "trm-profile",
    version,
    about = "Manage Terrarium's LXD profiles (default, terrarium, strict, dev)",
    long_about = "Manage Terrarium's LXD profiles.\n\n\
default: unprivileged, Docker-friendly, locked terrarium user without sudo.\n\
terrarium: default plus a host uid range of its own per container.\n\
strict: add-on after default: no nesting, no syscall interception, isolated uids, process cap.\n\
dev: standalone, Docker-friendly, terrarium user with passwordless sudo.\n\n\
Profiles Terrarium does not manage are listed and never touched.",
    after_help = after_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl ToolArgs for Cli {
    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List profiles: managed or not, in sync or drifted, how many instances use each
    #[command(alias = "ls")]
    List,
    /// Show one profile as LXD has it
    Show { name: String },
    /// Show how live profiles differ from Terrarium's definitions
    Diff {
        /// One profile [default: every Terrarium profile]
        name: Option<String>,
    },
    /// Create missing profiles and restore drifted ones (asks before overwriting hand edits)
    Apply(ApplyArgs),
    /// Explain each setting of a profile and why it is there
    Explain { name: String },
}

#[derive(Debug, clap::Args)]
pub struct ApplyArgs {
    /// Profiles to apply
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Every Terrarium profile
    #[arg(long)]
    pub all: bool,
    /// Do not ask before overwriting hand edits
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn command() -> clap::Command {
    Cli::command()
}

pub fn run(cli: Cli, out: Printer) -> anyhow::Result<i32> {
    let settings = Settings::require()?;
    let project = cli.common.project()?;
    let lxd = Lxd::new(&project)?;
    let defs = profiles::definitions(&settings.storage_pool, &settings.bridge);
    match cli.command {
        Command::List => out.list(&managed_profiles::list(&lxd, &defs)?)?,
        Command::Show { name } => out.one(&show(&lxd, &defs, &name)?)?,
        Command::Diff { name } => out.one(&DiffReports(diff(&lxd, defs, name)?))?,
        Command::Apply(a) => out.one(&apply(&lxd, defs, a)?)?,
        Command::Explain { name } => {
            let def = managed_profiles::select(defs, &[name])?.remove(0);
            let note = profiles::nesting_note(profiles::kernel_has_apparmor());
            out.one(&Explained {
                def,
                kernel_note: note,
            })?;
        }
    }
    Ok(0)
}

#[derive(Serialize)]
struct Shown {
    name: String,
    managed: bool,
    status: Status,
    description: String,
    config: Config,
    devices: Devices,
    used_by: Vec<String>,
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

fn show(lxd: &Lxd, defs: &[Definition], name: &str) -> anyhow::Result<Shown> {
    let live = lxd.profile(name)?.ok_or_else(|| Error::NotFound {
        kind: "profile",
        name: name.to_string(),
    })?;
    let entry = managed_profiles::list(lxd, defs)?
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

#[derive(Serialize)]
struct DiffReport {
    name: String,
    status: Status,
    differences: Vec<Difference>,
}

/// All diffs; JSON is the plain array, people get a unified-diff-like view.
#[derive(Serialize)]
#[serde(transparent)]
struct DiffReports(Vec<DiffReport>);

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

fn diff(lxd: &Lxd, defs: Vec<Definition>, name: Option<String>) -> anyhow::Result<Vec<DiffReport>> {
    let names: Vec<String> = name.into_iter().collect();
    let defs = managed_profiles::select(defs, &names)?;
    Ok(managed_profiles::plan(lxd, &defs)?
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
        .collect())
}

#[derive(Serialize)]
struct ApplyReport {
    dry_run: bool,
    changed: bool,
    profiles: Vec<Plan>,
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

fn apply(lxd: &Lxd, defs: Vec<Definition>, a: ApplyArgs) -> anyhow::Result<ApplyReport> {
    let defs = managed_profiles::select(defs, &a.names)?;
    let _lock = Lock::for_change("profiles", a.dry_run)?;
    let plans = managed_profiles::plan(lxd, &defs)?;
    if !a.names.is_empty() {
        if let Some(p) = plans.iter().find(|p| p.action == Action::Skip) {
            return Err(Error::Usage(format!(
                "profile '{}' exists and is not managed by Terrarium, which never touches it; \
                 rename or delete it to let Terrarium install its own",
                p.name
            ))
            .into());
        }
    }
    let changed = plans
        .iter()
        .any(|p| !matches!(p.action, Action::None | Action::Skip));
    if !a.dry_run && changed {
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
                a.yes,
            )?;
        }
        managed_profiles::apply(lxd, &plans)?;
    }
    Ok(ApplyReport {
        dry_run: a.dry_run,
        changed,
        profiles: plans,
    })
}

#[derive(Serialize)]
struct Explained {
    #[serde(flatten)]
    def: Definition,
    kernel_note: String,
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
