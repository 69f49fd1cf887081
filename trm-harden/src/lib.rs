//! `trm-harden`: Harden the host: key-only SSH, default-deny firewall, dashboards behind SSO. Designed, not built yet (issue #7).

pub fn command() -> clap::Command {
    terrarium_core::cli::placeholder_command(
        "trm-harden",
        "Harden the host: key-only SSH, default-deny firewall, dashboards behind SSO",
    )
}

pub fn main() -> ! {
    terrarium_core::cli::placeholder_main(command(), 7)
}
