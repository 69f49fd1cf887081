//! The off-site commands of `trm-snap`: export, import, verify, s3 ...
//! Glue: arguments in, core calls, progress and results out.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use terrarium_core::confirm::confirm;
use terrarium_core::error::exit;
use terrarium_core::fs::OnBusy;
use terrarium_core::lxd::Lxd;
use terrarium_core::offsite::settings::{self, KeyChoice, SecretSource, SetRequest};
use terrarium_core::offsite::upload::Progress;
use terrarium_core::offsite::{export, import, prune, S3Settings};
use terrarium_core::output::{Format, Printer};

#[derive(Debug, Clone, clap::Args)]
pub struct ExportArgs {
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub name: Option<String>,
    /// Every instance of the project, one after the other
    #[arg(long)]
    pub all: bool,
    /// Export this snapshot [default: a fresh one, removed afterwards]
    #[arg(long, conflicts_with = "all")]
    pub snapshot: Option<String>,
    /// LXD's storage-driver-native stream (restores only onto the same driver)
    #[arg(long)]
    pub optimized: bool,
    /// Part size in MiB (5-5120) [default: from s3.toml, 8]; memory is about (parallel + 1) x this
    #[arg(long, value_name = "MIB")]
    pub part_size: Option<u32>,
    /// Parts uploaded at once (1-16) [default: from s3.toml, 2]
    #[arg(long, value_name = "N")]
    pub parallel: Option<u32>,
}

#[derive(Debug, Clone, Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once per run
pub enum S3Command {
    /// Configure the bucket and the encryption key; a real write and delete checks it before saving
    Set {
        /// S3 endpoint URL, e.g. https://s3.eu-central-1.amazonaws.com
        #[arg(long)]
        endpoint: Option<String>,
        #[arg(long)]
        bucket: Option<String>,
        /// [default: us-east-1]
        #[arg(long)]
        region: Option<String>,
        /// Key prefix for every object [default: terrarium]
        #[arg(long)]
        prefix: Option<String>,
        #[arg(long)]
        access_key: Option<String>,
        /// File holding the secret key (never pass secrets on the command line)
        #[arg(long, value_name = "FILE", conflicts_with = "secret_key_stdin")]
        secret_key_file: Option<PathBuf>,
        /// Read the secret key from stdin
        #[arg(long)]
        secret_key_stdin: bool,
        /// The age public key (age1...) backups are encrypted to
        #[arg(long, value_name = "AGE_PUBLIC_KEY", conflicts_with = "generate_key")]
        recipient: Option<String>,
        /// Generate a key pair; the identity is written 0600 (copy it off this server!)
        #[arg(long)]
        generate_key: bool,
        /// Where --generate-key writes the identity [default: /etc/terrarium/s3-identity.txt];
        /// without --generate-key: an identity you already have (its public key becomes the recipient)
        #[arg(long, value_name = "FILE", conflicts_with = "recipient")]
        identity_file: Option<PathBuf>,
        /// The key every manifest is signed with; import trusts only what it signed.
        /// With --generate-key: where to write it [default: /etc/terrarium/s3-signing-key.txt];
        /// without: a key you saved (a new server after a loss). Generated there when none is set
        #[arg(long, value_name = "FILE")]
        signing_key_file: Option<PathBuf>,
        /// Default part size in MiB (5-5120)
        #[arg(long, value_name = "MIB")]
        part_size: Option<u32>,
        /// Default parts in flight (1-16)
        #[arg(long, value_name = "N")]
        parallel: Option<u32>,
        /// zstd level, 1 (fastest) to 19 [default: 3]
        #[arg(long, value_name = "N")]
        compression_level: Option<i32>,
        /// Memory an export may use: upload buffers, then zstd's workers (32-65536) [default: 64]
        #[arg(long, value_name = "MIB")]
        memory_mib: Option<u32>,
        /// Exports kept by `s3 prune`: newest of each of the last N days
        #[arg(long, value_name = "N")]
        keep_daily: Option<u32>,
        /// ... of each of the last N ISO weeks
        #[arg(long, value_name = "N")]
        keep_weekly: Option<u32>,
        /// ... of each of the last N months
        #[arg(long, value_name = "N")]
        keep_monthly: Option<u32>,
    },
    /// Show the settings (the secret key is never shown)
    Show,
    /// List complete backups (signed by this host's key) from their manifests
    #[command(alias = "ls")]
    List {
        name: Option<String>,
        /// Also show incomplete uploads (no manifest) and refused ones (unsigned, forged, misplaced)
        #[arg(long)]
        all: bool,
    },
    /// Delete exports beyond the retention policy (never the newest complete one)
    Prune {
        name: Option<String>,
        /// Print every export with keep or delete and why; change nothing
        #[arg(long)]
        dry_run: bool,
        /// Do not ask for confirmation
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// `project`: only its backups are listed as complete, imported or pruned.
pub fn s3(cmd: S3Command, project: &str, out: Printer) -> anyhow::Result<i32> {
    match cmd {
        S3Command::Set {
            endpoint,
            bucket,
            region,
            prefix,
            access_key,
            secret_key_file,
            secret_key_stdin,
            recipient,
            generate_key,
            identity_file,
            signing_key_file,
            part_size,
            parallel,
            compression_level,
            memory_mib,
            keep_daily,
            keep_weekly,
            keep_monthly,
        } => {
            let key = if generate_key {
                Some(KeyChoice::Generate(
                    identity_file.unwrap_or_else(settings::default_identity_file),
                ))
            } else if let Some(f) = identity_file {
                Some(KeyChoice::Existing(f))
            } else {
                recipient.map(KeyChoice::Recipient)
            };
            let shown = settings::set(SetRequest {
                endpoint,
                bucket,
                region,
                prefix,
                access_key,
                secret: secret_key_file
                    .map(SecretSource::File)
                    .or(secret_key_stdin.then_some(SecretSource::Stdin)),
                key,
                part_size_mib: part_size,
                parallel,
                keep_daily,
                keep_weekly,
                keep_monthly,
                compression_level,
                memory_mib,
                signing_key_file,
            })?;
            if let (Some(w), Format::Json | Format::Jsonl) = (&shown.warning, out.format) {
                // The warning must reach a person even when stdout is a pipe.
                eprintln!("{w}");
            }
            out.one(&shown)?;
        }
        S3Command::Show => out.one(&S3Settings::require()?.shown())?,
        S3Command::List { name, all } => out.list(&import::list(
            &S3Settings::require()?,
            name.as_deref(),
            all,
            project,
        )?)?,
        S3Command::Prune { name, dry_run, yes } => {
            let s = S3Settings::require()?;
            let (backups, decisions) = prune::prune_plan(&s, name.as_deref(), project)?;
            let doomed = decisions.iter().filter(|d| !d.keep).count();
            if dry_run || doomed == 0 {
                out.list(&decisions)?;
                return Ok(0);
            }
            confirm(
                &format!("Delete {doomed} off-site export(s) by the retention policy"),
                yes,
            )?;
            prune::apply(&s, &backups, &decisions)?;
            out.list(&decisions)?;
        }
    }
    Ok(0)
}

/// Progress lines are a side channel: one that cannot be written (the
/// reader went away: `| head -1`) never stops an export halfway, which
/// would leave its temporary instance, snapshot and upload behind. The
/// first failure is kept, later lines are skipped, and the error goes
/// back to `main` once every export has finished and cleaned up.
#[derive(Default)]
struct ProgressOut {
    failed: Mutex<Option<terrarium_core::Error>>,
}

impl ProgressOut {
    fn emit(&self, out: Printer, progress: &PartProgress) {
        let mut failed = self.failed.lock().expect("no panics while locked");
        if failed.is_none() {
            *failed = out.progress(progress).err();
        }
    }

    fn take(&self) -> Option<terrarium_core::Error> {
        self.failed.lock().expect("no panics while locked").take()
    }
}

/// One uploaded part, as a `progress` line of JSON Lines.
#[derive(serde::Serialize)]
struct PartProgress<'a> {
    instance: &'a str,
    part: u32,
    part_bytes: u64,
    uploaded_bytes: u64,
    read_bytes: u64,
}

/// A bar on a terminal, JSON Lines with `--format jsonl`, silence otherwise.
struct Report {
    instance: String,
    printer: Printer,
    bar: Option<ProgressBar>,
    read: std::sync::atomic::AtomicU64,
    out: Arc<ProgressOut>,
}

impl Report {
    fn new(instance: &str, printer: Printer, out: Arc<ProgressOut>) -> Report {
        let bar = (printer.format == Format::Human && std::io::stderr().is_terminal()).then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} {bytes} read ({bytes_per_sec}) {elapsed} {msg}",
                )
                .expect("valid template"),
            );
            b.set_prefix(instance.to_string());
            b.enable_steady_tick(std::time::Duration::from_millis(200));
            b
        });
        Report {
            instance: instance.to_string(),
            printer,
            bar,
            read: Default::default(),
            out,
        }
    }
}

impl Drop for Report {
    fn drop(&mut self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Report {
    fn part_done(&self, part: u32, bytes: u64, uploaded: u64) {
        if let Some(b) = &self.bar {
            b.set_message(format!(
                "part {part} sent, {} uploaded",
                indicatif::HumanBytes(uploaded)
            ));
        }
        let progress = PartProgress {
            instance: &self.instance,
            part,
            part_bytes: bytes,
            uploaded_bytes: uploaded,
            read_bytes: self.read.load(std::sync::atomic::Ordering::Relaxed),
        };
        self.out.emit(self.printer, &progress);
    }
}

impl export::ReadProgress for Report {
    fn read(&self, total: u64) {
        self.read.store(total, std::sync::atomic::Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.set_position(total);
        }
    }
}

/// `zfs_full_every`: `[offsite]`'s; an explicit `--snapshot` is always
/// exported through LXD (a chain sends a snapshot of its own).
pub fn export(
    lxd: &Lxd,
    a: ExportArgs,
    zfs_full_every: u32,
    on_busy: OnBusy,
    out: Printer,
) -> anyhow::Result<i32> {
    let s = S3Settings::require()?;
    let names: Vec<String> = if a.all {
        lxd.instances()?.into_iter().map(|i| i.name).collect()
    } else {
        a.name.clone().into_iter().collect()
    };
    let mut done = Vec::new();
    // The exit codes of the exports that failed.
    let mut failed = Vec::new();
    let progress = Arc::new(ProgressOut::default());
    for name in &names {
        let req = export::Request {
            name: name.clone(),
            snapshot: a.snapshot.clone(),
            optimized: a.optimized,
            part_size_mib: a.part_size,
            parallel: a.parallel,
            on_busy,
            zfs_full_every: if a.snapshot.is_some() {
                0
            } else {
                zfs_full_every
            },
        };
        let report = Arc::new(Report::new(name, out, progress.clone()));
        match export::export(lxd, &s, &req, report) {
            Ok(x) => done.push(x),
            Err(e) if a.all => {
                failed.push(e.exit_code());
                out.error(&anyhow::Error::new(e).context(format!("exporting {name}")));
            }
            Err(e) => return Err(e.into()),
        }
    }
    let printed = if a.all {
        out.list(&done)
    } else {
        done.first().map_or(Ok(()), |x| out.one(x))
    };
    if let Some(&first) = failed.first() {
        // The failures are on stderr already; the status must say so
        // even when stdout has gone, and keep their kind when they agree
        // (every export timed out: 124).
        let same = failed.iter().all(|&c| c == first);
        return Ok(if same { first } else { exit::FAILURE });
    }
    printed?;
    match progress.take() {
        Some(e) => Err(e.into()),
        None => Ok(0),
    }
}
