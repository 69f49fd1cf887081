//! `trm`: bring a host to the Terrarium baseline and manage containers.
//! Argument parsing and glue only; the work happens in terrarium-core.

mod json_docs;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use terrarium_core::baseline::{self, InitOptions};
use terrarium_core::cli::{after_help, CommonArgs, ToolArgs};
use terrarium_core::confirm::confirm;
use terrarium_core::fs::{lock_wait, Lock, Resource};
use terrarium_core::image::{self, BuildOptions};
use terrarium_core::instances::{self, Verb};
use terrarium_core::lxd::Lxd;
use terrarium_core::names::validate_instance_name;
use terrarium_core::net::Subnet;
use terrarium_core::output::{Format, Printer};
use terrarium_core::verdict;

#[derive(Debug, Parser)]
#[command(
    name = "trm",
    version,
    about = "Bring a host to the Terrarium baseline and manage its containers",
    long_about = "Bring a host to the Terrarium baseline and manage its containers.\n\n\
Output is JSON when stdout is not a terminal and a table when it is; \
--format overrides. Errors go to stderr (one JSON line in JSON modes).",
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

// Parsed once per run: the size of its largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring this host to the Terrarium baseline (idempotent)
    ///
    /// Checks that LXD answers, then creates what is missing: the storage
    /// pool, the private bridge, LXD's API on loopback only, the Terrarium
    /// profiles, and /etc/terrarium/terrarium.toml. A second run changes
    /// nothing and says so.
    Init(InitArgs),
    /// Build and import the Debian 12 base image
    #[command(subcommand)]
    Image(ImageCommand),
    /// Launch a container and wait for cloud-init to finish
    Launch(LaunchArgs),
    /// Run a shell or a command in a container as the `terrarium` user
    ///
    /// The command runs in /home/terrarium with a login environment; its
    /// exit status is trm's. --root runs as root instead, for recovery.
    Exec(ExecArgs),
    /// List containers
    #[command(alias = "ls")]
    List,
    /// Show one container
    Info { name: String },
    /// Start a container
    Start(LifecycleArgs),
    /// Stop a container
    Stop(LifecycleArgs),
    /// Restart a running container
    Restart(LifecycleArgs),
    /// Delete a container and its snapshots (asks first)
    Delete(DeleteArgs),
    /// Check what a nested-Docker box needs; print each finding with a fix
    ///
    /// Exits 5 (found problems) when any check fails.
    Doctor { name: String },
    /// An agent box's egress policy (what it may reach besides its DNS)
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Copy one file between the host and a box's home, as the terrarium user
    ///
    /// One side is NAME:PATH, a path below /home/terrarium (relative paths
    /// start there; `..` is refused); the other a host path. The box side is
    /// read and written by the box's terrarium user, never root, so no link
    /// planted in the home leads anywhere that user could not go.
    Cp { from: String, to: String },
    /// Serve an agent over MCP (stdio), limited to the boxes named here
    ///
    /// The agent gets exactly these tools: list_boxes, launch (from
    /// --launch-profile), exec (as terrarium, optionally after a checkpoint),
    /// read_file and write_file (below /home/terrarium), checkpoint, and the
    /// destructive rollback and expose (https behind sign-on only), which
    /// run only when allowed here with --allow-destructive. Any other box
    /// name is refused. Point an MCP client at `trm mcp --box NAME`.
    Mcp(McpArgs),
    /// This host's configuration as one document, to carry to a new server
    #[command(subcommand)]
    Config(ConfigCommand),
    /// More than one server: this host as a member of an LXD cluster
    ///
    /// LXD does the clustering (placement, evacuation, moves); each step
    /// here is planned and shown first, asks before it moves or removes
    /// anything, and does nothing when it is already done.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// The whole host at a glance: LXD, Traefik, the gate, the timers, the
    /// last sync's problems, each box's newest snapshot and backup, the pool
    ///
    /// One LXD query lists every instance with its snapshots. Exits 5
    /// (found problems) when anything the baseline promises is down or
    /// overdue: LXD, Traefik or the gate not answering, the snapshot tick
    /// or the exposure sync not run within twice its period, a failed
    /// snapshot or a refused label in the last run, the pool 90% full.
    Status {
        /// Judge as of this time (RFC 3339) instead of now, for what-ifs
        #[arg(long, value_parser = parse_time)]
        now: Option<chrono::DateTime<chrono::Utc>>,
    },
}

fn parse_time(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| format!("not an RFC 3339 time ({e}): {s}"))
}

#[derive(Debug, clap::Args)]
pub struct McpArgs {
    /// A box the agent may use (launch, exec, files...); repeat for several
    #[arg(long = "box", value_name = "NAME", required = true)]
    pub boxes: Vec<String>,
    /// A profile `launch` may use; the first is the default
    #[arg(
        long = "launch-profile",
        value_name = "PROFILE",
        default_value = "agent"
    )]
    pub profiles: Vec<String>,
    /// Let the agent run this destructive verb without asking you (repeatable)
    #[arg(long = "allow-destructive", value_enum, value_name = "VERB")]
    pub allowed: Vec<terrarium_core::agents::mcp::Destructive>,
    /// Every box the agent launches stops after this long idle (as trm launch --idle)
    #[arg(long, value_name = "DURATION")]
    pub idle: Option<String>,
    /// Every box the agent launches is deleted this long after (as trm launch --ttl)
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print (or write) settings, profiles, labels, snapshot opt-outs and the gate's and bucket's settings; never a secret
    ///
    /// This host's own names and paths (project, pool, bridge, subnet,
    /// install directories) are left out: the new host keeps its own.
    /// Secrets (the bucket's keys, the backup identity and signing key,
    /// the gate's client secret) are named in secrets_left_out, not written.
    Export {
        /// Write the document here (mode 0600) instead of stdout
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Plan what a document changes here, then apply it (asks first); says which secrets are still needed
    ///
    /// Run `trm init` on the new host first. Profiles are pointed at this
    /// host's pool and bridge; labels go on the instances of the same name
    /// that exist here (the others wait, listed). A document that would
    /// not apply as a whole changes nothing. Secrets are never in the
    /// document: each one still needed is listed with the command that
    /// takes it.
    Import {
        file: PathBuf,
        /// Print the plan; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Replace an agent box's egress policy; no other box is touched
    ///
    /// public: the internet, but no private, CGNAT, link-local (cloud
    /// metadata), loopback, multicast or reserved range and none of the
    /// host's addresses. none: nothing. allow-list: only the --allow
    /// entries (never the metadata service or the host). Enforced by an LXD
    /// network ACL on the box's own bridge, where root inside cannot undo it.
    Set(PolicySetArgs),
}

#[derive(Debug, clap::Args)]
pub struct PolicySetArgs {
    pub name: String,
    #[arg(long, value_parser = ["public", "none", "allow-list"])]
    pub egress: String,
    /// With --egress allow-list: CIDR[:PORT], e.g. 203.0.113.0/24:443 or [2001:db8::/32]:443
    #[arg(long = "allow", value_name = "CIDR[:PORT]")]
    pub allow: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Storage driver for a new pool [default: zfs if the kernel has it, else btrfs, else dir]
    #[arg(long, value_parser = ["zfs", "btrfs", "dir", "lvm"])]
    pub storage: Option<String>,
    /// Size of a new loop-file pool (zfs, btrfs), e.g. 30GiB [default: LXD's choice]
    #[arg(long)]
    pub size: Option<String>,
    /// Name of the storage pool
    #[arg(long, default_value = "terrarium")]
    pub pool: String,
    /// Name of the private bridge
    #[arg(long, default_value = "trmbr0")]
    pub bridge: String,
    /// Bridge address and prefix, e.g. 10.87.0.1/24 [default: a free /24 in 10.100-254.x.0]
    #[arg(long, value_parser = parse_subnet)]
    pub subnet: Option<Subnet>,
    /// Give containers no outbound NAT (they reach only the host and each other)
    #[arg(long)]
    pub no_nat: bool,
    /// Image `trm launch` uses by default
    #[arg(long, default_value = terrarium_core::settings::DEFAULT_IMAGE_ALIAS)]
    pub image: String,
    /// Print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_subnet(s: &str) -> Result<Subnet, String> {
    Subnet::parse(s).map_err(|e| e.to_string())
}

#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Build the base image with debootstrap and import it (cached)
    Build(ImageBuildArgs),
    /// Publish a configured box as a golden image, from a wiped temporary copy
    ///
    /// The box is never stopped or changed: a copy of it (or of one of its
    /// snapshots) sheds user.proxy, every user.terrarium.* key, its proxy
    /// devices, MAC and NICs, boots once offline to wipe SSH host keys,
    /// cloud-init's state (it runs again on each new box), shell histories
    /// and authorized keys (unless --keep-keys), gets an empty machine-id,
    /// and is published, then deleted. Launch from it with
    /// `trm launch NAME --image IMAGE`.
    Create(ImageCreateArgs),
    /// List the images boxes launch from: base, golden (with their source) and others
    #[command(alias = "ls")]
    List,
    /// Delete an image (asks first); boxes launched from it keep running
    Delete(ImageDeleteArgs),
}

#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Make this host the first member of a new cluster
    ///
    /// LXD listens for the other members on --address (cluster.https_address);
    /// its API for this host stays on loopback.
    Init {
        /// This member's name [default: the host name]
        #[arg(long)]
        name: Option<String>,
        /// This host's address the other members reach it at (IP[:PORT], port 8443)
        #[arg(long)]
        address: String,
        /// Print what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Print a join token for a new member NAME (again, if one is unused)
    Add {
        name: String,
        /// The new server's address: LXD's port is opened to it here for its join
        #[arg(long)]
        address: Option<String>,
        /// Print what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Join this host to a cluster, with a token from `trm cluster add`
    ///
    /// Run on the new server after its own install. A token that is
    /// malformed or expired is refused before anything is asked of LXD; one
    /// the cluster refuses leaves this server as it was. Asks first: the
    /// cluster's profiles, pools and networks replace this server's.
    Join {
        /// The token, or `-` to read it from stdin (kept off the command line)
        token: String,
        /// This host's address the other members reach it at (IP[:PORT], port 8443)
        #[arg(long)]
        address: String,
        /// Do not ask for confirmation (needed with a token on stdin)
        #[arg(long, short = 'y')]
        yes: bool,
        /// Print what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// List the members: address, status, roles, instances
    #[command(alias = "ls")]
    List,
    /// Bring this member's part of the private mesh in line (idempotent)
    ///
    /// A WireGuard mesh between the members (kernel WireGuard, else
    /// wireguard-go) carries one VXLAN that joins the members' bridges.
    /// Publishes this member's key and index, adds every member that has
    /// published its own, and shows each peer's last handshake. Run it on
    /// every member after a join (the timer does). Before a member's first
    /// run, --dry-run shows a key made for the plan only; nothing is kept.
    Mesh {
        /// Print what would happen; change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Move a member's instances to the other members (asks first)
    Evacuate(MemberArgs),
    /// Bring a member's evacuated instances back
    Restore(MemberArgs),
    /// Remove a member that holds no instances (asks first)
    Remove {
        #[command(flatten)]
        member: MemberArgs,
        /// Remove a member that is gone for good, with whatever it held
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct MemberArgs {
    pub name: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print what would happen; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImageCreateArgs {
    /// The image's name (alias), e.g. golden/web
    pub name: String,
    /// The configured box to publish
    #[arg(long, value_name = "INSTANCE")]
    pub from: String,
    /// Publish this snapshot of it instead of its current state
    #[arg(long, value_name = "SNAPSHOT")]
    pub snapshot: Option<String>,
    /// Keep the authorized SSH keys (of root and every user) in the image
    #[arg(long)]
    pub keep_keys: bool,
    /// Print the plan; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImageDeleteArgs {
    pub name: String,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print what would be deleted; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct ImageBuildArgs {
    /// Debian release to build from
    #[arg(long, value_enum, default_value_t)]
    pub release: image::Release,
    /// Alias to import the image under [default: terrarium/debian12, or terrarium/debian13 for trixie]
    #[arg(long)]
    pub alias: Option<String>,
    /// Debian mirror [default: the one in this host's apt sources]
    #[arg(long)]
    pub mirror: Option<String>,
    /// Extra Debian package to install (repeatable), e.g. docker.io for a Docker-ready variant
    #[arg(long = "package", value_name = "PACKAGE")]
    pub packages: Vec<String>,
    /// Where built tarballs are kept for reuse
    #[arg(
        long,
        env = "TRM_CACHE_DIR",
        hide_env_values = true,
        default_value = image::DEFAULT_CACHE_DIR
    )]
    pub cache_dir: PathBuf,
    /// Build anew even if the image or cached tarballs exist
    #[arg(long)]
    pub rebuild: bool,
    /// Print what would happen; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct LaunchArgs {
    pub name: String,
    /// Image alias or fingerprint [default: the image set by `trm init`]
    #[arg(long)]
    pub image: Option<String>,
    /// Profile to apply (repeat for several; order matters) [default: default]
    #[arg(long = "profile", short = 'p')]
    pub profiles: Vec<String>,
    /// Instance config KEY=VALUE, e.g. cloud-init.user-data=... (repeatable)
    #[arg(long = "config", short = 'c', value_parser = parse_key_value)]
    pub config: Vec<(String, String)>,
    /// Return once started, without waiting for cloud-init
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for cloud-init
    #[arg(long, default_value_t = 600)]
    pub timeout: u64,
    /// Print what would be launched; change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// At most this many CPUs (LXD's limits.cpu) [default: the profile's]
    #[arg(long, value_name = "N")]
    pub cpu: Option<u32>,
    /// At most this much memory, e.g. 512MiB, 2GiB (limits.memory); a hog is OOM-killed inside
    #[arg(long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// A root disk quota, e.g. 10GiB, where the pool's driver has quotas (btrfs, zfs, lvm)
    #[arg(long, value_name = "SIZE")]
    pub disk: Option<String>,
    /// Stop the box after this long with no exec session and little CPU (30m, 2h), at the next `trm-snap auto` tick
    #[arg(long, value_name = "DURATION")]
    pub idle: Option<String>,
    /// Delete the box this long after launch (8h, 2d), at the first `trm-snap auto` tick after it
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    /// Export the box off-site (trm-snap export) before its --ttl delete; if that fails it is kept, stopped
    #[arg(long, requires = "ttl")]
    pub ttl_export: bool,
    /// Your own cloud-init user-data (#cloud-config or a #! script); the profile's terrarium user still applies
    #[arg(long = "cloud-init", value_name = "FILE")]
    pub cloud_init: Option<PathBuf>,
    /// A host file placed below /home/terrarium before the first boot, owned by terrarium (repeatable)
    #[arg(long = "file", value_name = "SRC:DST")]
    pub files: Vec<String>,
    /// A compose file brought up as terrarium once cloud-init is done (needs Docker in the image and nesting)
    #[arg(
        long = "docker-compose",
        value_name = "FILE",
        conflicts_with = "no_wait"
    )]
    pub docker_compose: Option<PathBuf>,
    /// Expose the box with this label (as user.proxy), checked first, applied once it is up
    #[arg(long, value_name = "LABEL", conflicts_with = "no_wait")]
    pub proxy: Option<String>,
    /// Expose only once http://BOX:PORT/ answers (any HTTP status), within --timeout
    #[arg(long, value_name = "PORT", requires = "proxy")]
    pub wait_http: Option<u16>,
    /// If a step fails once the box exists, delete it instead of leaving it to inspect
    #[arg(long)]
    pub rm_on_failure: bool,
    /// On a cluster, the member to place it on [default: LXD's choice]
    #[arg(long, value_name = "MEMBER")]
    pub target: Option<String>,
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got '{s}'"))
}

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    pub name: String,
    /// Run as root (recovery) instead of the terrarium user
    #[arg(long)]
    pub root: bool,
    /// Snapshot the box first (`trm-snap rollback NAME --to last-checkpoint` undoes the command); prints the result as data
    #[arg(long)]
    pub checkpoint: bool,
    /// The command and its arguments [default: a login shell]
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct LifecycleArgs {
    pub name: String,
    /// Stop without waiting for a clean shutdown (stop, restart)
    #[arg(long)]
    pub force: bool,
    /// Print what would happen; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    pub name: String,
    /// Delete even if running (it is stopped first)
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Print what would happen; change nothing
    #[arg(long)]
    pub dry_run: bool,
}

/// The clap definition, for man pages and completions.
pub fn command() -> clap::Command {
    Cli::documented()
}

impl Command {
    /// The instance a command names, checked before LXD is asked anything.
    fn instance_name(&self) -> Option<&str> {
        match self {
            Command::Launch(a) => Some(&a.name),
            Command::Exec(a) => Some(&a.name),
            Command::Info { name } => Some(name),
            Command::Start(a) | Command::Stop(a) | Command::Restart(a) => Some(&a.name),
            Command::Delete(a) => Some(&a.name),
            Command::Doctor { name } => Some(name),
            Command::Policy(PolicyCommand::Set(a)) => Some(&a.name),
            Command::Cp { .. } | Command::Mcp(_) => None,
            Command::Init(_)
            | Command::Image(_)
            | Command::List
            | Command::Status { .. }
            | Command::Config(_)
            | Command::Cluster(_) => None,
        }
    }
}

pub fn run(cli: Cli, out: Printer) -> anyhow::Result<i32> {
    if let Some(name) = cli.command.instance_name() {
        validate_instance_name(name)?;
    }
    let project = cli.common.project()?;
    let lxd = || Lxd::new(&project);
    match cli.command {
        Command::Init(a) => init(lxd()?, &project, a, out),
        Command::Image(ImageCommand::Build(a)) => image_build(lxd()?, a, out),
        Command::Image(ImageCommand::Create(a)) => {
            use terrarium_core::image::golden;
            let lxd = lxd()?;
            let plan = golden::plan_create(
                &lxd,
                &golden::CreateRequest {
                    alias: a.name,
                    from: a.from,
                    snapshot: a.snapshot,
                    keep_keys: a.keep_keys,
                },
                a.dry_run,
            )?;
            if a.dry_run {
                out.one(&plan)?;
                return Ok(0);
            }
            let bar = spinner();
            let made = golden::create(&lxd, &plan, &mut |stage| bar.set_message(stage.to_string()));
            bar.finish_and_clear();
            out.one(&made?)?;
            Ok(0)
        }
        Command::Image(ImageCommand::List) => {
            out.list(&terrarium_core::image::golden::list(&lxd()?)?)?;
            Ok(0)
        }
        Command::Image(ImageCommand::Delete(a)) => {
            use terrarium_core::image::golden;
            let lxd = lxd()?;
            let default_image = terrarium_core::settings::Settings::load_or_default()?.image;
            let d = golden::plan_delete(&lxd, &a.name, &default_image, a.dry_run)?;
            if a.dry_run {
                out.one(&d)?;
                return Ok(0);
            }
            confirm(&format!("Delete image {}? {}", d.alias, d.detail), a.yes)?;
            out.one(&golden::delete(&lxd, &d)?)?;
            Ok(0)
        }
        Command::Launch(a) => launch(lxd()?, a, out),
        // Output passes through, unless a program asked for data: an
        // explicit --format json|jsonl, or a checkpoint to report.
        Command::Exec(a)
            if a.checkpoint || cli.common.output.format.is_some_and(|f| f != Format::Human) =>
        {
            let r = instances::exec_captured(
                &lxd()?,
                &a.name,
                &a.command,
                instances::Capture::new(a.root, a.checkpoint),
            )?;
            out.one(&r)?;
            Ok(r.exit_code)
        }
        Command::Exec(a) => Ok(instances::exec(&lxd()?, &a.name, &a.command, a.root)?),
        Command::List => {
            out.list(&instances::list(&lxd()?)?)?;
            Ok(0)
        }
        Command::Info { name } => {
            out.one(&instances::info(&lxd()?, &name)?)?;
            Ok(0)
        }
        Command::Start(a) => lifecycle(lxd()?, a.asking(Verb::Start), out),
        Command::Stop(a) => lifecycle(lxd()?, a.asking(Verb::Stop), out),
        Command::Restart(a) => lifecycle(lxd()?, a.asking(Verb::Restart), out),
        Command::Cp { from, to } => {
            use terrarium_core::files;
            let (from, to) = (files::side(&from)?, files::side(&to)?);
            out.one(&files::copy(&lxd()?, &from, &to)?)?;
            Ok(0)
        }
        Command::Policy(PolicyCommand::Set(a)) => {
            let policy = terrarium_core::agents::egress::parse(&a.egress, &a.allow)?;
            out.one(&terrarium_core::agents::sandbox::set_policy(
                &lxd()?,
                &a.name,
                &policy,
            )?)?;
            Ok(0)
        }
        Command::Mcp(a) => {
            use terrarium_core::agents::mcp;
            let scope = mcp::Scope {
                project,
                boxes: a.boxes.into_iter().collect(),
                profiles: a.profiles,
                allowed: a.allowed.into_iter().collect(),
                idle: a.idle,
                ttl: a.ttl,
            };
            // The owner's record: one event line per call, on stderr.
            let audit: mcp::Audit = std::sync::Arc::new(|call: &mcp::Call| {
                use terrarium_core::output::{line, Line};
                eprintln!("{}", line(Line::Event, call));
            });
            mcp::serve(scope, audit)?;
            Ok(0)
        }
        Command::Config(ConfigCommand::Export { output }) => {
            let doc = terrarium_core::hostconfig::export(&lxd()?)?;
            match output {
                None => out.one(&doc)?,
                Some(path) => {
                    let text = serde_json::to_vec_pretty(&doc)?;
                    terrarium_core::fs::atomic_write(&path, &text, 0o600)?;
                    eprintln!("wrote {}", path.display());
                }
            }
            Ok(0)
        }
        Command::Config(ConfigCommand::Import { file, dry_run, yes }) => {
            use terrarium_core::hostconfig;
            let lxd = lxd()?;
            let plan = hostconfig::plan(&lxd, &file, dry_run)?;
            if dry_run || plan.changes.is_empty() {
                out.one(&plan)?;
                return Ok(0);
            }
            confirm(
                &format!(
                    "Apply {} change(s) from {}",
                    plan.changes.len(),
                    file.display()
                ),
                yes,
            )?;
            out.one(&hostconfig::apply(&lxd, &plan)?)?;
            Ok(0)
        }
        Command::Cluster(c) => cluster(lxd()?, c, out),
        Command::Status { now } => {
            use terrarium_core::status;
            let settings = terrarium_core::settings::Settings::require()?;
            let st = status::assess(
                status::read(&lxd()?, &settings),
                now.unwrap_or_else(chrono::Utc::now),
            );
            out.one(&st)?;
            Ok(verdict::exit_status(st.problems.len(), "status")?)
        }
        Command::Doctor { name } => {
            let findings = terrarium_core::doctor::diagnose(&lxd()?, &name)?;
            out.list(&findings)?;
            Ok(verdict::exit_status(
                terrarium_core::doctor::failures(&findings),
                "doctor",
            )?)
        }
        Command::Delete(a) => lifecycle(
            lxd()?,
            Lifecycle {
                verb: Verb::Delete,
                name: &a.name,
                force: a.force,
                dry_run: a.dry_run,
                yes: a.yes,
            },
            out,
        ),
    }
}

fn cluster(lxd: Lxd, c: ClusterCommand, out: Printer) -> anyhow::Result<i32> {
    use terrarium_core::cluster::{self, plan, token::JoinToken};
    match c {
        ClusterCommand::List => {
            out.list(&cluster::list(&lxd)?)?;
            return Ok(0);
        }
        ClusterCommand::Mesh { dry_run } => {
            out.one(&cluster::mesh::converge(&lxd, dry_run)?)?;
            return Ok(0);
        }
        _ => {}
    }
    // The token is read before LXD is asked anything.
    // `-` reads it from stdin, so it is not on the command line for `ps`.
    let token_text = match &c {
        ClusterCommand::Join { token, .. } if token == "-" => {
            let mut t = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut t)?;
            Some(t.trim().to_string())
        }
        ClusterCommand::Join { token, .. } => Some(token.clone()),
        _ => None,
    };
    let token = match &token_text {
        Some(t) => Some(JoinToken::decode(t)?),
        None => None,
    };
    let facts = match &c {
        ClusterCommand::Add {
            address: Some(_), ..
        }
        | ClusterCommand::Join { .. } => cluster::with_firewall(cluster::facts(&lxd)?)?,
        _ => cluster::facts(&lxd)?,
    };
    let (planned, dry_run, ask) = match &c {
        ClusterCommand::Init {
            name,
            address,
            dry_run,
        } => {
            let name = match name {
                Some(n) => n.clone(),
                None => cluster::host_name()?,
            };
            (plan::init(&facts, &name, address)?, *dry_run, None)
        }
        ClusterCommand::Add {
            name,
            address,
            dry_run,
        } => (plan::add(&facts, name, address.as_deref())?, *dry_run, None),
        ClusterCommand::Join {
            address,
            dry_run,
            yes,
            ..
        } => {
            let t = token.as_ref().expect("decoded above");
            let text = token_text.as_deref().expect("read above");
            let p = plan::join(&facts, text, t, address, chrono::Utc::now())?;
            // The cluster's profiles, pools and networks replace this server's.
            (p, *dry_run, Some(*yes))
        }
        ClusterCommand::Evacuate(m) => (
            plan::member_state(&facts, &m.name, true)?,
            m.dry_run,
            Some(m.yes),
        ),
        ClusterCommand::Restore(m) => {
            (plan::member_state(&facts, &m.name, false)?, m.dry_run, None)
        }
        ClusterCommand::Remove { member, force } => (
            plan::remove(&facts, &member.name, *force)?,
            member.dry_run,
            Some(member.yes),
        ),
        ClusterCommand::List | ClusterCommand::Mesh { .. } => unreachable!("handled above"),
    };
    let mut planned = planned;
    planned.dry_run = dry_run;
    if dry_run || planned.steps.is_empty() {
        out.one(&planned)?;
        return Ok(0);
    }
    if let Some(yes) = ask {
        use terrarium_core::output::Human;
        confirm(&format!("{}\nGo ahead?", planned.human()), yes)?;
    }
    out.one(&cluster::apply(&lxd, planned)?)?;
    Ok(0)
}

fn init(lxd: Lxd, project: &str, a: InitArgs, out: Printer) -> anyhow::Result<i32> {
    let opts = InitOptions {
        project: project.to_string(),
        pool: a.pool,
        storage: a.storage,
        size: a.size,
        bridge: a.bridge,
        subnet: a.subnet,
        nat: !a.no_nat,
        image: a.image,
    };
    out.one(&baseline::init(&lxd, &opts, a.dry_run)?)?;
    Ok(0)
}

fn image_build(lxd: Lxd, a: ImageBuildArgs, out: Printer) -> anyhow::Result<i32> {
    let opts = BuildOptions {
        alias: a.alias.unwrap_or_else(|| a.release.default_alias()),
        release: a.release,
        mirror: a.mirror,
        extra_packages: a.packages,
        cache_dir: a.cache_dir,
        rebuild: a.rebuild,
    };
    lxd.ping()?;
    if a.dry_run {
        out.one(&image::plan(&lxd, &opts)?)?;
        return Ok(0);
    }
    let _lock = Lock::acquire(Resource::Image(&opts.alias), lock_wait())?;
    let bar = spinner();
    let report = image::build(&lxd, &opts, &mut |stage| bar.set_message(stage.to_string()))?;
    bar.finish_and_clear();
    out.one(&report)?;
    Ok(0)
}

/// A spinner on stderr; hidden when stderr is not a terminal.
fn spinner() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

fn launch(lxd: Lxd, a: LaunchArgs, out: Printer) -> anyhow::Result<i32> {
    let planned = instances::plan_launch(
        &lxd,
        &instances::LaunchRequest {
            name: a.name,
            image: a.image,
            profiles: a.profiles,
            config: a.config.into_iter().collect(),
            limits: instances::Limits {
                cpu: a.cpu,
                memory: a.memory,
                disk: a.disk,
            },
            idle: a.idle,
            ttl: a.ttl,
            ttl_export: a.ttl_export,
            recipe: terrarium_core::recipe::Recipe {
                user_data: a.cloud_init,
                files: a.files,
                proxy: a.proxy,
                wait_http: a.wait_http,
                compose: a.docker_compose,
                rm_on_failure: a.rm_on_failure,
            },
            target: a.target,
        },
    )?;
    if a.dry_run {
        out.one(&planned.dry_run())?;
        return Ok(0);
    }
    let bar = spinner();
    bar.set_message(format!("launching {}", planned.spec.name));
    let wait = (!a.no_wait).then(|| Duration::from_secs(a.timeout));
    let launched = instances::launch_planned(&lxd, &planned, wait);
    bar.finish_and_clear();
    out.one(&launched?)?;
    Ok(0)
}

/// One lifecycle command, as asked.
struct Lifecycle<'a> {
    verb: Verb,
    name: &'a str,
    force: bool,
    dry_run: bool,
    /// Only delete asks first.
    yes: bool,
}

impl LifecycleArgs {
    fn asking(&self, verb: Verb) -> Lifecycle<'_> {
        Lifecycle {
            verb,
            name: &self.name,
            force: self.force,
            dry_run: self.dry_run,
            yes: true,
        }
    }
}

fn lifecycle(lxd: Lxd, l: Lifecycle, out: Printer) -> anyhow::Result<i32> {
    let Lifecycle {
        verb,
        name,
        force,
        dry_run,
        yes,
    } = l;
    let (mut change, _) = instances::plan_change(&lxd, name, verb, force)?;
    change.dry_run = dry_run;
    if !dry_run && change.changed {
        if verb == Verb::Delete {
            confirm(&format!("{name}: {}?", change.detail), yes)?;
        }
        instances::apply_change(&lxd, &change, force)?;
    }
    out.one(&change)?;
    Ok(0)
}
