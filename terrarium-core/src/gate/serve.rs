//! The gate's HTTP server (to be written).

use super::GateSettings;
use crate::error::{Error, Result};

pub fn run(_g: &GateSettings) -> Result<()> {
    Err(Error::Usage("not yet".into()))
}
