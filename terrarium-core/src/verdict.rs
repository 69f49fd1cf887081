//! One vocabulary for every judgement a tool prints (`trm doctor`,
//! `trm-harden audit`): each row says its `status` and a `detail`, and a
//! report with failures ends the command with the one "found problems"
//! exit code.

use serde::Serialize;

use crate::error::{exit, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Pass,
    /// Worth knowing; nothing to fix.
    Info,
    Warn,
    Fail,
}

impl Status {
    /// The table cell: what needs attention shouts.
    pub fn cell(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Info => "info",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

/// How many of these failed.
pub fn failures(statuses: impl IntoIterator<Item = Status>) -> usize {
    statuses.into_iter().filter(|s| *s == Status::Fail).count()
}

/// The status of a command that printed a report judging something: 0,
/// or [`Error::Problems`] naming what it found, so the error line and
/// exit code 5 come from `main` like every other failure's.
pub fn exit_status(problems: usize, what: &str) -> Result<i32> {
    match problems {
        0 => Ok(exit::OK),
        n => Err(Error::Problems(format!(
            "{what}: {n} problem(s); the report says which"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_failures_are_problems() {
        use Status::*;
        assert_eq!(failures([Pass, Info, Warn, Fail, Fail]), 2);
        assert_eq!(exit_status(0, "audit").unwrap(), 0);
        let e = exit_status(2, "audit").unwrap_err();
        assert_eq!(e.exit_code(), exit::PROBLEMS);
        assert_eq!(e.kind(), "problems");
        assert_eq!(e.to_string(), "audit: 2 problem(s); the report says which");
        assert_eq!(serde_json::to_value(Warn).unwrap(), "warn");
    }
}
