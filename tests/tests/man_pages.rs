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

/// Every command a script can run says what JSON it prints.
#[test]
fn every_leaf_command_documents_its_json() {
    fn leaves(cmd: &clap::Command, path: String, out: &mut Vec<(String, bool)>) {
        let subs: Vec<&clap::Command> = cmd
            .get_subcommands()
            .filter(|s| s.get_name() != "help")
            .collect();
        if subs.is_empty() {
            let documented = cmd
                .get_after_long_help()
                .is_some_and(|h| h.to_string().starts_with("JSON OUTPUT:"));
            out.push((path.clone(), documented));
        }
        for s in subs {
            leaves(s, format!("{path} {}", s.get_name()), out);
        }
    }
    let mut all = Vec::new();
    for cmd in terrarium_tests::commands() {
        leaves(&cmd, cmd.get_name().to_string(), &mut all);
    }
    assert!(all.len() > 40, "{all:?}");
    let missing: Vec<&String> = all.iter().filter(|(_, d)| !d).map(|(p, _)| p).collect();
    assert!(missing.is_empty(), "no JSON OUTPUT section: {missing:?}");
}
