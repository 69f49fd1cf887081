//! The committed man pages must match the clap definitions.

use std::path::{Path, PathBuf};

#[test]
fn man_pages_are_fresh() {
    let fresh = tempfile::tempdir().unwrap();
    terrarium_tests::write_man_pages(fresh.path()).unwrap();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man");
    let stale = terrarium_tests::stale_files(fresh.path(), &committed);
    assert!(
        stale.is_empty(),
        "man pages out of date: {stale:?}; run `cargo run -p terrarium-tests --bin gen-man`"
    );
    let none = tempfile::tempdir().unwrap();
    let generated = terrarium_tests::stale_files(fresh.path(), none.path());
    assert!(
        generated.contains(&PathBuf::from("trm.1"))
            && generated.contains(&PathBuf::from("trm-init.1"))
    );
}
