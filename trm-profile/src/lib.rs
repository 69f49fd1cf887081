//! `trm-profile`: list, inspect, diff, restore and explain the LXD
//! profiles Terrarium manages. Glue only; the work is in terrarium-core.

mod json_docs;

use clap::{Parser, Subcommand};
use terrarium_core::cli::{after_help, CommonArgs, ToolArgs};
use terrarium_core::lxd::Lxd;
use terrarium_core::output::Printer;
use terrarium_core::profiles::{self, managed as managed_profiles, reports};
use terrarium_core::settings::Settings;

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
    const JSON: &'static [(&'static str, &'static str)] = json_docs::DOCS;

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
    Cli::documented()
}

pub fn run(cli: Cli, out: Printer) -> anyhow::Result<i32> {
    let settings = Settings::require()?;
    let project = cli.common.project()?;
    let lxd = Lxd::new(&project)?;
    let defs = profiles::definitions(&settings.storage_pool, &settings.bridge);
    match cli.command {
        Command::List => out.list(&managed_profiles::list(&lxd, &defs)?)?,
        Command::Show { name } => out.one(&reports::show(&lxd, &defs, &name)?)?,
        Command::Diff { name } => out.one(&reports::diff(&lxd, defs, name)?)?,
        Command::Apply(a) => out.one(&reports::apply(&lxd, defs, &a.names, a.yes, a.dry_run)?)?,
        Command::Explain { name } => out.one(&reports::explain(defs, &name)?)?,
    }
    Ok(0)
}
