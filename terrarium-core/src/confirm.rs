//! One confirmation policy for destructive steps: `--yes` proceeds; a
//! prompt only when a person is at the terminal; otherwise refuse.

use std::io::IsTerminal;

use crate::error::{Error, Result};

/// Ask before `what` unless `yes`. Fails with a "pass --yes" error when
/// nobody can answer (stdin or stderr is not a terminal).
pub fn confirm(what: &str, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Error::NeedsConfirmation(format!(
            "{what}: confirmation needed and no terminal to ask on"
        )));
    }
    let ok = dialoguer::Confirm::new()
        .with_prompt(what)
        .default(false)
        .interact()
        .map_err(|e| Error::io("reading the confirmation", std::io::Error::other(e)))?;
    if ok {
        Ok(())
    } else {
        Err(Error::Cancelled(what.to_string()))
    }
}
