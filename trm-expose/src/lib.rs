//! `trm-expose`: make a container's service public through Traefik, by
//! explicit choice. The truth is the instance's `user.proxy` label in LXD;
//! this tool edits it and reconciles Traefik's files and the firewall.

mod json_docs;

use std::time::Duration;

use clap::{Parser, Subcommand};
use terrarium_core::cli::{after_help, CommonArgs, ToolArgs};
use terrarium_core::expose::labels::{self, Item};
use terrarium_core::expose::{self, Selector};
use terrarium_core::lxd::Lxd;
use terrarium_core::output::Printer;
use terrarium_core::settings::Settings;
use terrarium_core::systemd;
use terrarium_core::verdict;
use terrarium_core::Error;

#[derive(Debug, Parser)]
#[command(
    name = "trm-expose",
    version,
    about = "Expose a container's service publicly through Traefik, explicitly",
    long_about = "Expose a container's service publicly through Traefik, explicitly.\n\n\
Containers are private by default. An exposure lives in the instance's LXD key user.proxy \
(set by this tool or by hand), one item per line:\n  \
https://HOST[:CPORT][/PATH][@auth[:GROUP,...]]   http://...   tcp://HOSTPORT:CPORT   udp://HOSTPORT:CPORT   share://HOST/PATH\n\n\
A host belongs to its first holder, all its paths included; its holder lets other instances route a path \
(and the paths below it) with share://HOST/PATH in its own label. Claims are recorded on the host and go to \
whoever held them first; they are released when the holder's label drops them or the holder is gone.\n\n\
Every change is serialised with other Terrarium writers, --dry-run-able, and reported as JSON.",
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
    /// Expose a port of an instance: an HTTP(S) route or a raw TCP/UDP port
    Add(AddArgs),
    /// Take an exposure away
    Remove(RemoveArgs),
    /// Every public route and port: instance, public address, backend, state, auth
    #[command(alias = "ls")]
    List,
    /// Everything sync would say of a label, without setting it: grammar,
    /// reserved and busy host ports, management hosts, other instances' claims
    ///
    /// Exits 5 (found problems) when sync would refuse any item.
    Check {
        label: String,
        /// Judge it as this instance's whole label [default: a new instance,
        /// which loses every contested claim]
        #[arg(long)]
        instance: Option<String>,
    },
    /// Reconcile Traefik files, entrypoints and firewall rules from LXD now
    ///
    /// Exits 5 (found problems) when any label has a problem (conflict, refusal, invalid item),
    /// after applying everything else.
    Sync {
        /// Print what would change; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Follow LXD's lifecycle events and re-sync after starts, stops and label changes
    Watch {
        /// Seconds between full syncs (a backstop for missed events)
        #[arg(long, default_value_t = 300)]
        interval: u64,
    },
    /// Run Traefik as a supervised service: start, stop, restart, or status
    /// (up, version, and whether it loaded Terrarium's routes)
    ///
    /// systemd hosts get a hardened unit; elsewhere Terrarium runs Traefik
    /// itself with a pid file and a log. Start and restart are verified:
    /// ping answers and every entrypoint listens. `status` exits 5 unless
    /// Traefik runs, answers and runs every router of Terrarium's files.
    Proxy {
        #[arg(value_parser = ["start", "stop", "restart", "status"])]
        action: String,
    },
    /// Install, remove or report the watcher service and its periodic sync timer
    Service {
        #[arg(value_parser = ["install", "remove", "status"])]
        action: String,
        /// Where unit files go
        #[arg(long, default_value = systemd::DEFAULT_UNIT_DIR)]
        unit_dir: std::path::PathBuf,
        /// Minutes between backstop full syncs
        #[arg(long, default_value_t = 5)]
        every: u32,
        /// Print what would be done; change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("what").required(true).args(["port", "tcp", "udp", "share"])))]
#[command(group(clap::ArgGroup::new("on_host").args(["port", "share"])))]
pub struct AddArgs {
    pub name: String,
    /// Container port of an HTTP service (routed by host name through Traefik)
    #[arg(long)]
    pub port: Option<u16>,
    /// Public host name [default: NAME.<root domain>, or NAME.<dashed IPv4>.traefik.me]
    #[arg(long, requires = "on_host")]
    pub host: Option<String>,
    /// Route only this path prefix
    #[arg(long, requires = "port")]
    pub path: Option<String>,
    /// Plain HTTP instead of HTTPS
    #[arg(long, requires = "port")]
    pub http: bool,
    /// Behind single sign-on; with groups, only their members pass
    #[arg(long, requires = "port", num_args = 0..=1, require_equals = true, default_missing_value = "", value_name = "GROUPS")]
    pub auth: Option<String>,
    /// Let other instances route this path of the host, and the paths
    /// below it (share://HOST/PATH); a host is otherwise all its holder's
    #[arg(long, value_name = "PATH")]
    pub share: Option<String>,
    /// Raw TCP port on the host: HOSTPORT[:CPORT]
    #[arg(long, value_name = "HOSTPORT[:CPORT]")]
    pub tcp: Option<String>,
    /// Raw UDP port on the host: HOSTPORT[:CPORT]
    #[arg(long, value_name = "HOSTPORT[:CPORT]")]
    pub udp: Option<String>,
    /// Print the new label; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["host", "tcp", "udp", "all"])))]
pub struct RemoveArgs {
    pub name: String,
    /// The HTTP(S) routes of this host
    #[arg(long)]
    pub host: Option<String>,
    /// The raw TCP host port
    #[arg(long)]
    pub tcp: Option<u16>,
    /// The raw UDP host port
    #[arg(long)]
    pub udp: Option<u16>,
    /// Every exposure of the instance
    #[arg(long)]
    pub all: bool,
    /// Print the new label; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

pub fn command() -> clap::Command {
    Cli::documented()
}

/// The one item `add` asks for, written as label text and parsed by the
/// label grammar, so flags and hand-written labels are checked alike.
fn item_of(a: &AddArgs, settings: &Settings) -> Result<Item, Error> {
    let host = || -> Result<String, Error> {
        Ok(match &a.host {
            Some(h) => h.clone(),
            None => format!("{}.{}", a.name, expose::base_domain(&settings.expose)?),
        })
    };
    let text = if let Some(path) = &a.share {
        format!("share://{}{path}", host()?)
    } else if let Some(cport) = a.port {
        let host = host()?;
        let auth = match &a.auth {
            None => String::new(),
            Some(g) if g.is_empty() => "@auth".into(),
            Some(g) => format!("@auth:{g}"),
        };
        format!(
            "{}://{host}:{cport}{}{auth}",
            if a.http { "http" } else { "https" },
            a.path.as_deref().unwrap_or("")
        )
    } else if let Some(t) = &a.tcp {
        format!("tcp://{t}")
    } else {
        format!("udp://{}", a.udp.as_deref().unwrap_or_default())
    };
    let (items, errors) = labels::parse(&text);
    match (items.into_iter().next(), errors.first()) {
        (Some(i), None) => Ok(i),
        (_, Some(e)) => Err(Error::Usage(format!("invalid exposure {e}"))),
        (None, None) => Err(Error::Usage("nothing to expose".into())),
    }
}

pub fn run(cli: Cli, out: Printer) -> anyhow::Result<i32> {
    let project = cli.common.project()?;
    if let Command::Check { label, instance } = &cli.command {
        // Without `trm init` or a daemon, still the grammar and host ports.
        let settings = Settings::load_or_default()?;
        let lxd = Lxd::new(&project).ok();
        let report = expose::check(lxd.as_ref(), &settings, instance.as_deref(), label)?;
        out.one(&report)?;
        return Ok(verdict::exit_status(
            report.problems(),
            "the label would not be routed as written",
        )?);
    }
    let settings = Settings::require()?;
    if let Command::Proxy { action } = &cli.command {
        let st = expose::proxy(&settings, action)?;
        out.one(&st)?;
        return Ok(verdict::exit_status(
            usize::from(action == "status" && !st.healthy()),
            "Traefik is not healthy",
        )?);
    }
    let lxd = Lxd::new(&project)?;
    match cli.command {
        Command::Add(a) => {
            let item = item_of(&a, &settings)?;
            out.one(&expose::add(&lxd, &settings, &a.name, item, a.dry_run)?)?;
        }
        Command::Remove(a) => {
            let sel = match (&a.host, a.tcp, a.udp) {
                (Some(h), _, _) => Selector::Host(h.clone()),
                (_, Some(p), _) => Selector::Tcp(p),
                (_, _, Some(p)) => Selector::Udp(p),
                _ => Selector::All,
            };
            out.one(&expose::remove(&lxd, &settings, &a.name, &sel, a.dry_run)?)?;
        }
        Command::List => out.one(&expose::list(&lxd, &settings)?)?,
        Command::Sync { dry_run } => {
            let report = expose::sync(&lxd, &settings, dry_run)?;
            out.one(&report)?;
            return Ok(verdict::exit_status(
                report.problems.len() + usize::from(report.restart == expose::Restart::Failed),
                "sync",
            )?);
        }
        Command::Watch { interval } => {
            terrarium_core::runs::note_period(
                lxd.project(),
                terrarium_core::runs::Job::Sync,
                interval.max(1),
            );
            // A stream: one event per sync that changed or found trouble.
            expose::watch(
                &lxd,
                &settings,
                Duration::from_secs(interval.max(1)),
                &mut |r| match r {
                    Ok(rep) if rep.changed() || !rep.problems.is_empty() => out.event(&rep),
                    Ok(_) => Ok(()),
                    Err(e) => {
                        out.error(&anyhow::Error::new(e));
                        Ok(())
                    }
                },
            )?;
        }
        Command::Service {
            action,
            unit_dir,
            every,
            dry_run,
        } => {
            let bin = std::env::current_exe()?;
            let units = expose::units(&bin, every.max(1));
            match action.as_str() {
                "install" => {
                    let report = systemd::install(&units, &unit_dir, dry_run)?;
                    if !dry_run {
                        use terrarium_core::runs;
                        runs::note_period(
                            lxd.project(),
                            runs::Job::Sync,
                            u64::from(every.max(1)) * 60,
                        );
                    }
                    out.one(&report)?
                }
                "remove" => out.one(&systemd::remove(&units, &unit_dir, dry_run)?)?,
                _ => out.list(&systemd::status(&units, &unit_dir))?,
            }
        }
        Command::Check { .. } | Command::Proxy { .. } => unreachable!("handled above"),
    }
    Ok(0)
}
