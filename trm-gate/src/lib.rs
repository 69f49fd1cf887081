//! `trm-gate`: the single-sign-on gate Traefik asks before every request
//! to a dashboard or an `@auth` route. Glue only.

mod json_docs;

use clap::{Parser, Subcommand};
use terrarium_core::cli::{after_help, CommonArgs, ToolArgs};
use terrarium_core::gate::{self, GateSettings};
use terrarium_core::output::Printer;
use terrarium_core::verdict;

#[derive(Debug, Parser)]
#[command(
    name = "trm-gate",
    version,
    about = "Single sign-on for Terrarium's dashboards and @auth routes (OIDC forward-auth)",
    long_about = "Single sign-on for Terrarium's dashboards and @auth routes: an OIDC forward-auth \
server Traefik asks before every gated request.\n\n\
It keeps oauth2-proxy's endpoints (/oauth2/auth[?allowed_groups=a,b], /oauth2/start, \
/oauth2/callback, /oauth2/sign_out). Sign-in is the OIDC code flow with PKCE, state and nonce; \
the ID token is verified against the issuer's keys. Each session cookie is bound to one host \
(host-only, Secure, HttpOnly, SameSite=Lax): a sign-in on the auth host hands each app host its \
own session through a one-time code. An issuer that does not answer means no access.\n\n\
`trm-harden oidc set` writes its settings (/etc/terrarium/gate.toml); start runs it under \
systemd, or under Terrarium's own supervision where systemd is not the init.",
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
    /// Run the gate in the foreground (what its supervisor runs)
    Serve {
        /// The settings file (default: gate.toml in the settings directory);
        /// the supervisor names it, which is how it knows its gate
        #[arg(long, value_name = "FILE")]
        config: Option<std::path::PathBuf>,
    },
    /// Start the gate under supervision unless it runs; verified
    Start,
    /// Stop the gate
    Stop,
    /// Restart the gate (new settings or keys); verified
    Restart,
    /// Whether the gate runs and answers
    Status,
    /// The cookie keys
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new key for new sessions; sessions under the previous key stay valid until the next rotation
    Rotate,
}

pub fn command() -> clap::Command {
    Cli::documented()
}

pub fn run(cli: Cli, out: Printer) -> anyhow::Result<i32> {
    let settings = match &cli.command {
        Command::Serve { config: Some(file) } => GateSettings::require_from(file)?,
        // Started before `trm-harden oidc set`: a gate that signs no one in.
        Command::Start | Command::Restart => GateSettings::load_or_initial()?,
        _ => GateSettings::require()?,
    };
    match cli.command {
        Command::Serve { .. } => gate::serve::run(&settings)?,
        Command::Start => out.one(&gate::supervise::start(&settings)?)?,
        Command::Restart => out.one(&gate::supervise::restart(&settings)?)?,
        Command::Stop => out.one(&gate::supervise::stop(&settings)?)?,
        Command::Status => {
            let st = gate::supervise::status(&settings);
            out.one(&st)?;
            return Ok(verdict::exit_status(
                usize::from(!st.healthy()),
                "the gate is not answering",
            )?);
        }
        Command::Keys {
            command: KeysCommand::Rotate,
        } => out.one(&gate::keys::rotate(&settings)?)?,
    }
    Ok(0)
}
