//! Terrarium's core: the only code that talks to the outside world (LXD,
//! host tools, files). The tool crates parse arguments, call in here, print.

pub mod agents;
pub mod baseline;
pub mod cli;
pub mod cluster;
pub mod confirm;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod expose;
pub mod files;
pub mod fs;
pub mod gate;
pub mod harden;
pub mod hostconfig;
pub mod image;
pub mod instances;
pub mod lxd;
pub mod names;
pub mod net;
pub mod offsite;
pub mod output;
pub mod policy;
pub mod process;
pub mod profiles;
pub mod random;
pub mod recipe;
pub mod runs;
pub mod settings;
pub mod snapshots;
pub mod status;
pub mod sysctl;
pub mod systemd;
pub mod time;
pub mod traefik;
pub mod ufw;
pub mod verdict;
pub mod zfs;

pub use error::{Error, Result};

/// The Terrarium version every tool reports.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
