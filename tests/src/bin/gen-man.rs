//! Regenerate man/ from the clap definitions: `cargo run -p terrarium-tests --bin gen-man`.

fn main() {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../man").to_string());
    if let Err(e) = terrarium_tests::write_man_pages(std::path::Path::new(&dir)) {
        eprintln!("error: writing man pages to {dir}: {e}");
        std::process::exit(1);
    }
}
