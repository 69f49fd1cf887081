//! `trm-harden`: lock the host down (key-only SSH, default-deny firewall,
//! dashboards behind single sign-on) and prove it with an audit. Glue only.

mod json_docs;

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use terrarium_core::cli::{after_help, CommonArgs, ToolArgs};
use terrarium_core::confirm::confirm;
use terrarium_core::harden::{self, audit, gate, Options};
use terrarium_core::lxd::Lxd;
use terrarium_core::output::Printer;
use terrarium_core::settings::Settings;
use terrarium_core::ufw::Ufw;
use terrarium_core::verdict;

#[derive(Debug, Parser)]
#[command(
    name = "trm-harden",
    version,
    about = "Harden the host: key-only SSH, default-deny firewall, dashboards behind SSO",
    long_about = "Harden the host: key-only SSH, default-deny firewall, dashboards behind single sign-on, \
and an audit that proves each promise from the machine's real state.\n\n\
plan lists every change; apply makes them after one confirmation (--yes for scripts) and changes \
nothing when run again; audit checks sshd's effective settings, the firewall, every socket listening \
beyond loopback, LXD proxy devices, privileged containers, Docker-published ports, profile drift, \
secret file modes and the management listeners, and exits 5 (found problems) on any failure.",
    after_help = after_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    #[command(flatten)]
    pub paths: Paths,
    #[command(subcommand)]
    pub command: Command,
}

impl ToolArgs for Cli {
    const JSON: &'static [(&'static str, &'static str)] = json_docs::DOCS;

    fn common(&self) -> &CommonArgs {
        &self.common
    }
}

/// Where the hardened pieces live (defaults: the Debian locations).
#[derive(Debug, Clone, clap::Args)]
pub struct Paths {
    /// The public interface [default: the interface of the default route]
    #[arg(long, global = true, env = "TRM_WAN", value_name = "IFACE")]
    pub wan: Option<String>,
    /// sshd's drop-in directory
    #[arg(
        long,
        global = true,
        env = "TRM_SSHD_DIR",
        default_value = "/etc/ssh/sshd_config.d"
    )]
    pub sshd_dir: PathBuf,
    /// sshd's main configuration file (must Include the drop-in directory)
    #[arg(
        long,
        global = true,
        env = "TRM_SSHD_CONFIG",
        default_value = "/etc/ssh/sshd_config"
    )]
    pub sshd_config: PathBuf,
    /// sshd's pid file (sshd is reloaded with SIGHUP)
    #[arg(
        long,
        global = true,
        env = "TRM_SSHD_PID_FILE",
        default_value = "/run/sshd.pid"
    )]
    pub sshd_pid_file: PathBuf,
    /// ufw --rootdir [default: expose.ufw_rootdir from the settings]
    #[arg(long, global = true, env = "TRM_UFW_ROOTDIR")]
    pub ufw_rootdir: Option<PathBuf>,
    /// ufw --datadir [default: expose.ufw_datadir from the settings]
    #[arg(long, global = true, env = "TRM_UFW_DATADIR")]
    pub ufw_datadir: Option<PathBuf>,
    /// systemd's unit directory (Cockpit's socket drop-in goes below it)
    #[arg(long, global = true, env = "TRM_SYSTEMD_DIR", default_value = terrarium_core::systemd::DEFAULT_UNIT_DIR)]
    pub systemd_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every change apply would make; changes nothing
    Plan,
    /// Make the planned changes after one confirmation; a second run changes nothing
    Apply {
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
        /// Switch SSH passwords off even when no account that can log in has an authorized key
        #[arg(long)]
        force: bool,
    },
    /// Check every promise on the live host: pass, warn or fail, with its detail and a fix; exit 5 on any fail
    ///
    /// On a cluster member the result (which checks failed) is published in
    /// its member config, for `--members` on any member.
    Audit {
        /// Every member's last audit instead: which member fails which check (exit 5 if any, or if one never audited in a day)
        #[arg(long)]
        members: bool,
    },
    /// Configure the single-sign-on gate
    Oidc {
        #[command(subcommand)]
        command: OidcCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OidcCommand {
    /// Check the issuer's discovery document, then write trm-gate's settings, the management routes and LXD's oidc.* keys
    Set {
        /// The OIDC issuer URL (its /.well-known/openid-configuration must name it)
        #[arg(long)]
        issuer: String,
        #[arg(long)]
        client_id: String,
        /// A file holding the client secret (copied to a 0600 file beside the gate's configuration)
        #[arg(long)]
        client_secret_file: PathBuf,
        /// Only members of this group pass the gate to the dashboards (manage., proxy.)
        #[arg(long)]
        admin_group: String,
        /// The ID token claim that lists a user's groups
        #[arg(long, default_value = "groups")]
        groups_claim: String,
        /// The sign-in host's URL, https://auth.<root domain>[:PORT] [default: on the public HTTPS port]
        #[arg(long, value_name = "URL")]
        auth_url: Option<String>,
    },
}

pub fn command() -> clap::Command {
    Cli::documented()
}

fn options(p: Paths, settings: &Settings) -> Options {
    let from_settings = Ufw::from_settings(&settings.expose);
    Options {
        wan: p.wan,
        ssh_dir: p.sshd_dir,
        sshd_config: p.sshd_config,
        sshd_pid_file: p.sshd_pid_file,
        ufw: Ufw {
            rootdir: p.ufw_rootdir.or(from_settings.rootdir),
            datadir: p.ufw_datadir.or(from_settings.datadir),
        },
        systemd_dir: p.systemd_dir,
    }
}

pub fn run(cli: Cli, out: Printer) -> anyhow::Result<i32> {
    let settings = Settings::require()?;
    let project = cli.common.project()?;
    let lxd = Lxd::new(&project)?;
    let opts = options(cli.paths, &settings);
    match cli.command {
        Command::Plan => out.one(&harden::plan(&settings, &opts, &lxd)?)?,
        Command::Apply { yes, force } => {
            let plan = harden::plan(&settings, &opts, &lxd)?;
            harden::lockout_guard(&plan, force)?;
            if !plan.changes.is_empty() {
                confirm(
                    &format!(
                        "apply {} hardening change(s) to this host",
                        plan.changes.len()
                    ),
                    yes,
                )?;
            }
            out.one(&harden::apply(plan, &settings, &opts, &lxd, force)?)?;
        }
        Command::Audit { members: true } => {
            use terrarium_core::cluster::audits;
            let list = audits::members(&lxd, chrono::Utc::now())?;
            out.list(&list)?;
            return Ok(verdict::exit_status(
                list.iter().filter(|m| !m.ok).count(),
                "audit",
            )?);
        }
        Command::Audit { members: false } => {
            // An explicit project narrows the LXD checks; else every project.
            let checks = audit::run(&settings, &opts, &lxd, cli.common.project.as_deref());
            if let Err(e) = terrarium_core::cluster::audits::publish(&lxd, &checks) {
                eprintln!("warning: this member's audit was not published: {e}");
            }
            out.list(&checks)?;
            return Ok(verdict::exit_status(audit::failures(&checks), "audit")?);
        }
        Command::Oidc {
            command:
                OidcCommand::Set {
                    issuer,
                    client_id,
                    client_secret_file,
                    admin_group,
                    groups_claim,
                    auth_url,
                },
        } => {
            let oidc = gate::Oidc {
                issuer,
                client_id,
                admin_group,
                groups_claim,
                auth_url,
            };
            out.one(&harden::oidc_set(
                &settings,
                &lxd,
                &oidc,
                &client_secret_file,
            )?)?;
        }
    }
    Ok(0)
}
