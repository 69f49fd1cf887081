//! Typed errors and the exit codes they map to.
//!
//! Exit codes follow sysexits(3) where one fits, so scripts can tell a
//! missing daemon (retry later) from bad input (fix the call).

use std::fmt;

/// Documented exit codes of every Terrarium tool.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FAILURE: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NOT_FOUND: i32 = 3;
    pub const WRONG_STATE: i32 = 4;
    /// The command ran and judged something: the report found problems.
    pub const PROBLEMS: i32 = 5;
    pub const UNAVAILABLE: i32 = 69;
    /// LXD lost a command it started: whether it ran to the end, and how,
    /// is unknown (EX_SOFTWARE: the fault is LXD's).
    pub const OUTCOME_UNKNOWN: i32 = 70;
    pub const LOCK_BUSY: i32 = 75;
    pub const NOT_ROOT: i32 = 77;
    pub const TIMEOUT: i32 = 124;

    /// The table printed in every tool's `--help` and man page.
    pub const TABLE: &str = "\
EXIT STATUS:
  0    success
  1    failure (a command Terrarium ran failed; the message names it)
  2    usage error or bad input (nothing was changed)
  3    the named instance, image or resource does not exist
  4    the instance is in the wrong state (e.g. stopped for exec)
  5    it ran and found problems: a check, audit, doctor, verify or status
       whose report (on stdout) says what is wrong
  69   a required tool is missing or the LXD daemon does not answer
  70   LXD lost track of a command it had started in a box: it may have
       run, and its exit status and output are unknown
  75   another Terrarium process holds the lock; try again
  77   this command must run as root
  124  a command timed out
  trm exec returns the exit status of the command it ran.";
}

/// A command that ran and failed; carries what a reader needs to act.
#[derive(Debug, Clone)]
pub struct CommandFailure {
    pub command_line: String,
    /// `None` when killed by a signal.
    pub status: Option<i32>,
    pub stderr_tail: String,
}

impl fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some(code) => write!(f, "`{}` exited with status {code}", self.command_line)?,
            None => write!(f, "`{}` was killed by a signal", self.command_line)?,
        }
        if !self.stderr_tail.is_empty() {
            write!(f, ": {}", self.stderr_tail)?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input caught before anything was changed.
    #[error("{0}")]
    Usage(String),
    #[error("{kind} '{name}' does not exist")]
    NotFound { kind: &'static str, name: String },
    #[error("{0}")]
    WrongState(String),
    #[error("`{tool}` is not installed: {hint}")]
    ToolMissing { tool: String, hint: String },
    #[error("{0}")]
    Unavailable(String),
    #[error("{0} is locked by another Terrarium process; try again")]
    LockBusy(String),
    #[error("{0} must run as root")]
    NotRoot(String),
    #[error("{0}; pass --yes to proceed without a prompt")]
    NeedsConfirmation(String),
    /// Outside what the owner allowed (an MCP server's scope).
    #[error("{0}")]
    NotAllowed(String),
    #[error("cancelled: {0}")]
    Cancelled(String),
    #[error("{0}")]
    Command(CommandFailure),
    #[error("`{command_line}` timed out after {seconds}s")]
    Timeout { command_line: String, seconds: u64 },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}: {message}")]
    Parse { context: String, message: String },
    /// A remote service (S3) answered with an error or not at all.
    #[error("{0}")]
    Remote(String),
    /// Data that failed its check (size, digest, decryption): nothing was created.
    #[error("{0}")]
    Integrity(String),
    /// The command ran and its report (already printed) found problems.
    #[error("{0}")]
    Problems(String),
    /// LXD started the command and lost it: it may have run (or still
    /// be running); its exit status and output are gone.
    #[error("{0}")]
    OutcomeUnknown(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::NeedsConfirmation(_) | Error::NotAllowed(_) => exit::USAGE,
            Error::NotFound { .. } => exit::NOT_FOUND,
            Error::WrongState(_) => exit::WRONG_STATE,
            Error::Problems(_) => exit::PROBLEMS,
            Error::ToolMissing { .. } | Error::Unavailable(_) => exit::UNAVAILABLE,
            Error::LockBusy(_) => exit::LOCK_BUSY,
            Error::NotRoot(_) => exit::NOT_ROOT,
            Error::Timeout { .. } => exit::TIMEOUT,
            Error::OutcomeUnknown(_) => exit::OUTCOME_UNKNOWN,
            Error::Cancelled(_)
            | Error::Command(_)
            | Error::Io { .. }
            | Error::Parse { .. }
            | Error::Remote(_)
            | Error::Integrity(_) => exit::FAILURE,
        }
    }

    /// A stable snake_case name for the JSON error line.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Usage(_) => "usage",
            Error::NotFound { .. } => "not_found",
            Error::WrongState(_) => "wrong_state",
            Error::ToolMissing { .. } => "tool_missing",
            Error::Unavailable(_) => "unavailable",
            Error::LockBusy(_) => "lock_busy",
            Error::NotRoot(_) => "not_root",
            Error::NeedsConfirmation(_) => "needs_confirmation",
            Error::NotAllowed(_) => "not_allowed",
            Error::Cancelled(_) => "cancelled",
            Error::Command(_) => "command_failed",
            Error::Timeout { .. } => "timeout",
            Error::Io { .. } => "io",
            Error::Parse { .. } => "parse",
            Error::Remote(_) => "remote",
            Error::Integrity(_) => "integrity",
            Error::Problems(_) => "problems",
            Error::OutcomeUnknown(_) => "outcome_unknown",
        }
    }

    /// Our stdout's reader went away (`| head -1`).
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::BrokenPipe)
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub fn parse(context: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Parse {
            context: context.into(),
            message: message.to_string(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod exit_table_tests {
    use super::exit;

    #[test]
    fn every_exit_code_is_in_the_documented_table() {
        for code in [
            exit::OK,
            exit::FAILURE,
            exit::USAGE,
            exit::NOT_FOUND,
            exit::WRONG_STATE,
            exit::PROBLEMS,
            exit::UNAVAILABLE,
            exit::OUTCOME_UNKNOWN,
            exit::LOCK_BUSY,
            exit::NOT_ROOT,
            exit::TIMEOUT,
        ] {
            assert!(
                exit::TABLE
                    .lines()
                    .any(|l| l.trim_start().starts_with(&format!("{code} "))),
                "exit code {code} is not documented"
            );
        }
        // And the table documents nothing else.
        let documented = exit::TABLE
            .lines()
            .filter(|l| {
                l.trim_start()
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
            .count();
        assert_eq!(documented, 11);
    }
}
