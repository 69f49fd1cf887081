//! `trm-snap`: the time machine. Snapshots through LXD, rollback that is
//! itself undoable, restore as a new instance, and a scheduled tick that
//! snapshots and prunes by tiered retention; off-site exports to S3.
//! Glue only.

mod json_docs;
mod offsite;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use terrarium_core::cli::{after_help, CommonArgs, ToolArgs};
use terrarium_core::confirm::confirm;
use terrarium_core::fs::OnBusy;
use terrarium_core::lxd::Lxd;
use terrarium_core::offsite::{import, scheduled, zfs_chain, S3Settings};
use terrarium_core::output::Printer;
use terrarium_core::settings::Settings;
use terrarium_core::snapshots::{self, holds::Action};
use terrarium_core::verdict;
use terrarium_core::{runs, systemd, Error};

#[derive(Debug, Parser)]
#[command(
    name = "trm-snap",
    version,
    about = "The time machine: snapshots, rollback, retention",
    long_about = "The time machine: snapshots, safe rollback, restore as new, tiered retention.\n\n\
Snapshots go through LXD. A rollback first snapshots the current state (trm-safety-...), so it can be \
undone with one more rollback, and never destroys newer snapshots. Retention tiers (frequent, hourly, \
daily, monthly; counts in /etc/terrarium/terrarium.toml [snapshots]) delete only Terrarium's automatic \
snapshots; manual, held, safety (for 7 days) and the newest snapshot are never pruned.\n\n\
Off-site: `export` streams an instance's LXD backup through zstd and age encryption into an S3 multipart \
upload and writes a manifest last (no manifest, no backup), signed with this host's Ed25519 key; \
`import` uses only backups whose manifest that key signed and that lie in their own folder, checks size \
and SHA-256 before anything is created, and strips from the restored instance what Terrarium's policy \
refuses (privileged mode, raw.*, security.* relaxations, host-path disks, host devices, proxy devices); \
`verify` is a restore drill. Settings and the secret key live in /etc/terrarium/s3.toml (mode 0600); see \
`trm-snap s3 set --help`.\n\n\
Keys to save off the server: the age identity (/etc/terrarium/s3-identity.txt) and the signing key \
(/etc/terrarium/s3-signing-key.txt). On a new server: `trm-snap s3 set --endpoint URL --bucket B \
--access-key K --secret-key-file F --identity-file SAVED-IDENTITY --signing-key-file SAVED-SIGNING-KEY`, \
then `trm-snap import NAME --as NEW`. Decrypt by hand with \
`age -d -i IDENTITY data.tar.zst.age | zstd -d > backup.tar` (an LXD backup for `lxc import`; no \
signature check and no policy: only for a backup you know is yours).",
    after_help = after_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Wait for another Terrarium process working on the same instance instead of failing with exit 75
    #[arg(long, global = true)]
    pub wait: bool,
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
    /// Take a manual snapshot (never pruned automatically)
    Create {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Every instance
        #[arg(long)]
        all: bool,
        /// A word to remember it by, appended to the name
        #[arg(long)]
        label: Option<String>,
    },
    /// List snapshots: instance, name, kind, created (UTC), size, held
    #[command(alias = "ls")]
    List { name: Option<String> },
    /// Step an instance back to a snapshot (default: its newest); undoable
    Rollback {
        name: String,
        /// The snapshot to return to; `last-checkpoint` for the one `trm exec --checkpoint` took last [default: the newest]
        #[arg(long)]
        to: Option<String>,
        /// Restore through a copy and keep the current instance, stopped, under another name
        #[arg(long)]
        swap: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
        /// List exactly what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Create a new, stopped instance from a snapshot, without the original's exposure or MAC
    Restore {
        name: String,
        /// Name of the new instance
        #[arg(long = "as", value_name = "NEW")]
        new: String,
        /// The snapshot [default: the newest]
        #[arg(long)]
        from: Option<String>,
        /// Start the new instance
        #[arg(long)]
        start: bool,
        /// On a cluster, the member to restore onto [default: LXD's choice]
        #[arg(long, value_name = "MEMBER")]
        target: Option<String>,
    },
    /// One tick of the time machine: idle stops and deadlines, the due snapshot for every instance, retention, then the due off-site exports
    Auto {
        /// Evaluate as of this time (RFC 3339) instead of now
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        /// Tick now and then every MINUTES, on the clock, until stopped: the
        /// timer for hosts without systemd (one event line per instance a tick)
        #[arg(long, value_name = "MINUTES", conflicts_with = "now", value_parser = clap::value_parser!(u32).range(1..=59))]
        every: Option<u32>,
    },
    /// Apply retention now; with --dry-run, print every decision and its rule
    Prune {
        name: Option<String>,
        /// Print every snapshot with keep or delete and why; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
        /// Evaluate the policy as of this time (RFC 3339), for what-ifs
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
    },
    /// Hold a snapshot: it is never pruned (root only; recorded on the host, at most 16 per instance)
    Hold { name: String, snapshot: String },
    /// Release a held snapshot (root only)
    Release { name: String, snapshot: String },
    /// Back an instance up to S3: LXD export -> zstd -> age -> multipart upload -> manifest
    Export(offsite::ExportArgs),
    /// Restore an off-site backup (signed by this host's key) as a new, stopped instance without the original's exposure
    Import {
        /// The instance the backup was made of
        name: String,
        /// Name of the new instance
        #[arg(
            long = "as",
            value_name = "NEW",
            required_unless_present = "to_dataset"
        )]
        new: Option<String>,
        /// Receive a ZFS stream chain (`[offsite] zfs_full_every`) into this new dataset instead: every link is checked first
        #[arg(long, value_name = "POOL/NAME", conflicts_with = "new")]
        to_dataset: Option<String>,
        /// Backup id, RFC 3339 time or date: the newest backup made at or before it [default: newest]
        #[arg(long, value_name = "TIME|ID")]
        at: Option<String>,
        /// The age identity file (AGE-SECRET-KEY-...) [default: the generated one, if any]
        #[arg(long, value_name = "FILE")]
        identity: Option<std::path::PathBuf>,
        /// On a cluster, the member to restore onto [default: LXD's choice]
        #[arg(long, value_name = "MEMBER", conflicts_with = "to_dataset")]
        target: Option<String>,
    },
    /// Restore drill: import a backup into a throwaway instance, check it, delete it (a ZFS chain: every link checked)
    Verify {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        name: Option<String>,
        /// Drill the newest backup of every instance in the bucket; recorded for `trm status`
        #[arg(long)]
        all: bool,
        #[arg(long, value_name = "TIME|ID", conflicts_with = "all")]
        at: Option<String>,
        #[arg(long, value_name = "FILE")]
        identity: Option<std::path::PathBuf>,
    },
    /// Off-site settings, listing and retention
    S3 {
        #[command(subcommand)]
        command: offsite::S3Command,
    },
    /// Install, remove or report the systemd timer for `trm-snap auto`
    Schedule {
        #[arg(value_parser = ["install", "remove", "status"])]
        action: String,
        /// Where unit files go
        #[arg(long, default_value = systemd::DEFAULT_UNIT_DIR)]
        unit_dir: std::path::PathBuf,
        /// Minutes between ticks
        #[arg(long, default_value_t = 15)]
        every: u32,
        /// Print what would be done; change nothing
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("not an RFC 3339 time: {e}"))
}

pub fn command() -> clap::Command {
    Cli::documented()
}

pub fn run(cli: Cli, out: Printer) -> anyhow::Result<i32> {
    if let Command::S3 { command } = cli.command {
        return offsite::s3(command, &cli.common.project()?, out);
    }
    let settings = Settings::require()?;
    let project = cli.common.project()?;
    let lxd = Lxd::new(&project)?;
    let policy = settings.snapshots;
    let on_busy = if cli.wait { OnBusy::Wait } else { OnBusy::Fail };
    let set_hold =
        |name: &str, snap: &str, action| snapshots::set_hold(&lxd, name, snap, action, on_busy);
    match cli.command {
        Command::Create { name, all, label } => {
            let names: Vec<String> = if all {
                lxd.instances()?.into_iter().map(|i| i.name).collect()
            } else {
                name.into_iter().collect()
            };
            let made = names
                .iter()
                .map(|n| snapshots::create(&lxd, n, label.as_deref(), on_busy))
                .collect::<Result<Vec<_>, Error>>()?;
            out.list(&made)?;
        }
        Command::List { name } => out.list(&snapshots::list(&lxd, name.as_deref())?)?,
        Command::Rollback {
            name,
            to,
            swap,
            yes,
            dry_run,
        } => {
            let plan = snapshots::rollback_plan(&lxd, &name, to.as_deref(), swap)?;
            if dry_run {
                out.one(&plan)?;
                return Ok(0);
            }
            confirm(
                &format!(
                    "Roll {name} back to {} ({} steps, undoable)",
                    plan.target,
                    plan.steps.len()
                ),
                yes,
            )?;
            out.one(&snapshots::rollback_apply(&lxd, &plan, on_busy)?)?;
        }
        Command::Restore {
            name,
            new,
            from,
            start,
            target,
        } => out.one(&snapshots::restore_as(
            &lxd,
            &name,
            &new,
            from.as_deref(),
            start,
            target.as_deref(),
        )?)?,
        Command::Auto {
            every: Some(every), ..
        } => {
            // Runs until stopped: a failed tick is reported and the next
            // one comes on time; the policy is read again each tick.
            runs::note_period(&project, runs::Job::Snapshots, u64::from(every) * 60);
            loop {
                let tick = Settings::require()
                    .map_err(anyhow::Error::new)
                    .and_then(|s| Ok(scheduled::tick(&lxd, &s, Utc::now(), on_busy)?));
                match tick {
                    Ok(ticks) => ticks.iter().try_for_each(|t| out.event(t))?,
                    Err(e) => {
                        out.error(&e);
                    }
                }
                std::thread::sleep(snapshots::until_next_tick(Utc::now(), every));
            }
        }
        Command::Auto { now, .. } => {
            let ticks = scheduled::tick(&lxd, &settings, now.unwrap_or_else(Utc::now), on_busy)?;
            out.list(&ticks)?;
            // Loudly: a failed snapshot or export is the tick's exit code.
            return Ok(verdict::exit_status(scheduled::failures(&ticks), "auto")?);
        }
        Command::Prune {
            name,
            dry_run,
            yes,
            now,
        } => {
            let now = now.unwrap_or_else(Utc::now);
            let plan = snapshots::prune_plan(&lxd, name.as_deref(), &policy, now)?;
            let doomed = plan.iter().filter(|p| !p.decision.keep).count();
            if dry_run || doomed == 0 {
                out.list(&plan)?;
                return Ok(0);
            }
            confirm(
                &format!("Delete {doomed} snapshot(s) by the retention policy"),
                yes,
            )?;
            out.list(&snapshots::prune_apply(&lxd, &plan, &policy, now, on_busy)?)?;
        }
        Command::Hold { name, snapshot } => out.one(&set_hold(&name, &snapshot, Action::Hold)?)?,
        Command::Release { name, snapshot } => {
            out.one(&set_hold(&name, &snapshot, Action::Release)?)?
        }
        Command::Export(a) => {
            return offsite::export(&lxd, a, settings.offsite.zfs_full_every, on_busy, out)
        }
        Command::Import {
            name,
            to_dataset: Some(dataset),
            at,
            identity,
            ..
        } => {
            let s = S3Settings::require()?;
            let req = zfs_chain::RestoreRequest {
                instance: name,
                project,
                at,
                identity,
                dataset,
            };
            out.one(&zfs_chain::restore(&s, &req)?)?;
        }
        Command::Import {
            name,
            new,
            at,
            identity: id,
            target,
            ..
        } => {
            let s = S3Settings::require()?;
            let req = import::Request {
                name,
                new: new.expect("clap requires --as without --to-dataset"),
                at,
                identity: id,
                pool: Some(settings.storage_pool.clone()),
                bridge: settings.bridge.clone(),
                target,
            };
            out.one(&import::import(&lxd, &s, &req)?)?;
        }
        Command::Verify {
            all: true,
            identity: id,
            ..
        } => {
            let s = S3Settings::require()?;
            let drills = import::verify_all(
                &lxd,
                &s,
                id.as_deref(),
                Some(&settings.storage_pool),
                &settings.bridge,
            )?;
            out.list(&drills)?;
            return Ok(verdict::exit_status(
                drills.iter().filter(|d| !d.ok).count(),
                "the restore drills",
            )?);
        }
        Command::Verify {
            name,
            at,
            identity: id,
            ..
        } => {
            let s = S3Settings::require()?;
            let v = import::verify(
                &lxd,
                &s,
                &name.expect("clap requires a name without --all"),
                at.as_deref(),
                id.as_deref(),
                Some(&settings.storage_pool),
                &settings.bridge,
            )?;
            out.one(&v)?;
            return Ok(verdict::exit_status(
                usize::from(!v.ok),
                "the restore drill",
            )?);
        }
        Command::S3 { .. } => unreachable!("handled above"),
        Command::Schedule {
            action,
            unit_dir,
            every,
            dry_run,
        } => {
            let units = snapshots::units(&std::env::current_exe()?, every.clamp(1, 59));
            match action.as_str() {
                "install" => {
                    let report = systemd::install(&units, &unit_dir, dry_run)?;
                    if !dry_run {
                        runs::note_period(
                            &project,
                            runs::Job::Snapshots,
                            u64::from(every.clamp(1, 59)) * 60,
                        );
                    }
                    out.one(&report)?
                }
                "remove" => out.one(&systemd::remove(&units, &unit_dir, dry_run)?)?,
                _ => out.list(&scheduled::schedule_rows(
                    &project,
                    &settings.offsite,
                    // Whether one is set up; reading it needs root.
                    terrarium_core::offsite::settings::path().exists(),
                    systemd::status(&units, &unit_dir),
                ))?,
            }
        }
    }
    Ok(0)
}
