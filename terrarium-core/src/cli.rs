//! What every tool's `main` shares: parsing with usage errors in the
//! chosen format, the common options, and the exit code of a run.

use std::io::{IsTerminal, Write};

use clap::Parser;

use crate::output::{Format, OutputArgs, Printer};

/// Options every Terrarium tool takes.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CommonArgs {
    #[command(flatten)]
    pub output: OutputArgs,
    /// LXD project to work in [default: the project `trm init` set up]
    #[arg(long, global = true, env = "TRM_PROJECT", hide_env_values = true)]
    pub project: Option<String>,
}

impl CommonArgs {
    /// The project: `--project`, else the one in the host settings.
    pub fn project(&self) -> crate::Result<String> {
        match &self.project {
            Some(p) => Ok(p.clone()),
            None => Ok(crate::settings::Settings::load_or_default()?.project),
        }
    }
}

pub trait ToolArgs: Parser {
    fn common(&self) -> &CommonArgs;

    /// The JSON each leaf command prints, as (its subcommand words, a
    /// description), shown by `--help` and in its man page.
    const JSON: &'static [(&'static str, &'static str)] = &[];

    /// The clap command with each command's JSON documented.
    fn documented() -> clap::Command {
        document_json(Self::command(), Self::JSON)
    }
}

/// Add a `JSON OUTPUT` section to the named subcommands (`"image build"`).
/// A name that is no subcommand panics: the man page test catches it.
pub fn document_json(mut cmd: clap::Command, docs: &[(&str, &str)]) -> clap::Command {
    fn apply(cmd: clap::Command, words: &[&str], text: &str) -> clap::Command {
        match words.split_first() {
            None => cmd.after_long_help(format!("JSON OUTPUT:\n{text}")),
            Some((w, rest)) => {
                assert!(
                    cmd.find_subcommand(w).is_some(),
                    "`{}` has no subcommand `{w}`",
                    cmd.get_name()
                );
                cmd.mut_subcommand(*w, |s| apply(s, rest, text))
            }
        }
    }
    for (path, text) in docs {
        let words: Vec<&str> = path.split_whitespace().collect();
        cmd = apply(cmd, &words, text);
    }
    cmd
}

/// Parse, run, report: exits with the run's code, or the error's. The
/// one place a Terrarium tool exits: a closed stdout (`| head -1`) comes
/// back here as an error, after the command cleaned up, and ends the
/// program quietly with status 0, as ripgrep does.
pub fn main<T: ToolArgs>(run: fn(T, Printer) -> anyhow::Result<i32>) -> ! {
    let parsed = T::documented()
        .try_get_matches()
        .and_then(|m| T::from_arg_matches(&m));
    let code = match parsed {
        Ok(args) => {
            let printer = args.common().output.printer();
            match run(args, printer) {
                Ok(code) => code,
                Err(e) if crate::output::is_broken_pipe(&e) => crate::error::exit::OK,
                Err(e) => printer.error(&e),
            }
        }
        Err(e) => usage_error(e),
    };
    std::process::exit(code)
}

fn usage_error(e: clap::Error) -> i32 {
    use clap::error::ErrorKind::*;
    let code = e.exit_code();
    if matches!(e.kind(), DisplayHelp | DisplayVersion) || !wants_json() {
        let _ = e.print();
        return code;
    }
    let message = clap_message(&e.render().to_string());
    let line = crate::output::error_line("usage", &message, code);
    let _ = writeln!(std::io::stderr(), "{line}");
    code
}

/// clap's error as one line: its first paragraph (the problem and, for a
/// missing argument, which one), without the usage and help hints.
fn clap_message(rendered: &str) -> String {
    rendered
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string()
}

/// Before parsing succeeded we still honour `--format` and the terminal rule.
fn wants_json() -> bool {
    let args: Vec<String> = std::env::args().collect();
    let explicit = args
        .iter()
        .position(|a| a == "--format")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| {
            args.iter()
                .find_map(|a| a.strip_prefix("--format=").map(str::to_string))
        })
        .or_else(|| std::env::var("TRM_FORMAT").ok());
    match explicit.as_deref() {
        Some("human") => false,
        Some(_) => true,
        None => !std::io::stdout().is_terminal(),
    }
}

/// A printer for code paths that run before arguments are known.
pub fn default_printer() -> Printer {
    Printer {
        format: if wants_json() {
            Format::Json
        } else {
            Format::Human
        },
    }
}

/// Help text appended to every tool: the exit codes.
pub fn after_help() -> &'static str {
    crate::error::exit::TABLE
}

/// The command of a tool that is designed but not built yet: `--help`
/// says what it will do; running it says clearly that it is not there.
pub fn placeholder_command(name: &'static str, about: &'static str) -> clap::Command {
    clap::Command::new(name)
        .version(crate::VERSION)
        .about(about)
        .after_help(after_help())
        .arg(
            clap::Arg::new("args")
                .num_args(0..)
                .trailing_var_arg(true)
                .allow_hyphen_values(true)
                .help("Reserved for the subcommands to come"),
        )
}

pub fn placeholder_main(cmd: clap::Command, issue: u32) -> ! {
    let name = cmd.get_name().to_string();
    if let Err(e) = cmd.try_get_matches() {
        std::process::exit(usage_error(e));
    }
    let err = anyhow::Error::new(crate::Error::Unavailable(format!(
        "{name} is not yet implemented (tracked in issue #{issue})"
    )));
    std::process::exit(default_printer().error(&err))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_usage_error_names_what_is_missing_on_one_line() {
        let rendered = "error: the following required arguments were not provided:\n  \
                        --box <NAME>\n\nUsage: trm mcp --box <NAME>\n\nFor more information, \
                        try '--help'.\n";
        assert_eq!(
            super::clap_message(rendered),
            "the following required arguments were not provided: --box <NAME>"
        );
        assert_eq!(
            super::clap_message("error: unexpected argument '--x' found\n\nUsage: trm\n"),
            "unexpected argument '--x' found"
        );
    }
}
