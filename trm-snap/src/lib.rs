//! `trm-snap`: The time machine: snapshots, rollback, retention and S3 exports. Designed, not built yet (issue #5).

pub fn command() -> clap::Command {
    terrarium_core::cli::placeholder_command(
        "trm-snap",
        "The time machine: snapshots, rollback, retention and S3 exports",
    )
}

pub fn main() -> ! {
    terrarium_core::cli::placeholder_main(command(), 5)
}
