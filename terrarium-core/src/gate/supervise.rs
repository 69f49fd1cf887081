//! The gate as a supervised part of the host (to be written).

use serde::Serialize;

use super::GateSettings;
use crate::error::{Error, Result};
use crate::output::Human;

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub running: bool,
}

impl Status {
    pub fn healthy(&self) -> bool {
        self.running
    }
}

impl Human for Status {
    fn human(&self) -> String {
        format!("running: {}", self.running)
    }
}

pub fn status(_g: &GateSettings) -> Status {
    Status { running: false }
}

pub fn start(_g: &GateSettings) -> Result<Status> {
    Err(Error::Usage("not yet".into()))
}

pub fn restart(g: &GateSettings) -> Result<Status> {
    start(g)
}

pub fn stop(_g: &GateSettings) -> Result<Status> {
    Err(Error::Usage("not yet".into()))
}
