//! The committed man pages must match the clap definitions.

use std::collections::BTreeMap;
use std::path::Path;

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".1"))
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[test]
fn man_pages_are_fresh() {
    let fresh = tempfile::tempdir().unwrap();
    terrarium_tests::write_man_pages(fresh.path()).unwrap();
    let committed = Path::new(env!("CARGO_MANIFEST_DIR")).join("../man");
    let want = read_dir(fresh.path());
    let have = read_dir(&committed);
    let stale: Vec<&String> = want
        .keys()
        .chain(have.keys())
        .filter(|k| want.get(*k) != have.get(*k))
        .collect();
    assert!(
        stale.is_empty(),
        "man pages out of date: {stale:?}; run `cargo run -p terrarium-tests --bin gen-man`"
    );
    assert!(want.contains_key("trm.1") && want.contains_key("trm-init.1"));
}
