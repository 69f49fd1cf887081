//! `trm-profile`: Manage Terrarium's LXD profiles (default, terrarium, strict, dev). Designed, not built yet (issue #3).

pub fn command() -> clap::Command {
    terrarium_core::cli::placeholder_command(
        "trm-profile",
        "Manage Terrarium's LXD profiles (default, terrarium, strict, dev)",
    )
}

pub fn main() -> ! {
    terrarium_core::cli::placeholder_main(command(), 3)
}
