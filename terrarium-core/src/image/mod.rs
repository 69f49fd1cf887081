//! Images: the Debian base image Terrarium builds itself (`build`), and
//! golden images published from a configured box (`golden`).

mod build;
pub mod golden;

pub use build::*;
