//! Regenerate man/ and completions/ from the clap definitions:
//! `cargo run -p terrarium-tests --bin gen-man [MAN_DIR [COMPLETIONS_DIR]]`.

fn main() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let man = std::env::args()
        .nth(1)
        .unwrap_or_else(|| format!("{root}/man"));
    let completions = std::env::args()
        .nth(2)
        .unwrap_or_else(|| format!("{root}/completions"));
    if let Err(e) = terrarium_tests::write_man_pages(std::path::Path::new(&man)) {
        eprintln!("error: writing man pages to {man}: {e}");
        std::process::exit(1);
    }
    if let Err(e) = terrarium_tests::write_completions(std::path::Path::new(&completions)) {
        eprintln!("error: writing completions to {completions}: {e}");
        std::process::exit(1);
    }
}
