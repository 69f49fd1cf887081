//! `trm-expose`: Expose a container's service publicly through Traefik, explicitly. Designed, not built yet (issue #4).

pub fn command() -> clap::Command {
    terrarium_core::cli::placeholder_command(
        "trm-expose",
        "Expose a container's service publicly through Traefik, explicitly",
    )
}

pub fn main() -> ! {
    terrarium_core::cli::placeholder_main(command(), 4)
}
