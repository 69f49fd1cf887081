//! The committed shell completions match the clap definitions, and bash
//! really completes with them.

use std::path::{Path, PathBuf};
use std::process::Command;

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../completions")
}

#[test]
fn completions_are_fresh() {
    let fresh = tempfile::tempdir().unwrap();
    terrarium_tests::write_completions(fresh.path()).unwrap();
    let stale = terrarium_tests::stale_files(fresh.path(), &committed());
    assert!(
        stale.is_empty(),
        "completions out of date: {stale:?}; run `cargo run -p terrarium-tests --bin gen-man`"
    );
    // Every tool, every shell: all of it differs from nothing.
    let none = tempfile::tempdir().unwrap();
    let generated = terrarium_tests::stale_files(fresh.path(), none.path());
    assert_eq!(generated.len(), terrarium_tests::commands().len() * 3);
}

/// What bash offers after `words` (the last one being completed).
fn bash_complete(tool: &str, words: &[&str]) -> Vec<String> {
    let file = committed().join(format!("bash-completion/completions/{tool}"));
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source {file}\nCOMP_WORDS=({words})\nCOMP_CWORD={cword}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         f=$(complete -p {tool} | sed 's/.*-F \\([^ ]*\\).*/\\1/')\n\"$f\" {tool} \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"\n\
         printf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        file = file.display(),
        words = quoted.join(" "),
        cword = words.len() - 1,
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn bash_completes_subcommands_and_options() {
    let subs = bash_complete("trm", &["trm", "l"]);
    assert!(
        subs.contains(&"launch".to_string()) && subs.contains(&"list".to_string()),
        "{subs:?}"
    );
    assert!(!subs.contains(&"init".to_string()), "{subs:?}");
    let keys = bash_complete("trm-gate", &["trm-gate", "keys", ""]);
    assert!(keys.contains(&"rotate".to_string()), "{keys:?}");
    let fmt = bash_complete("trm-expose", &["trm-expose", "list", "--format", ""]);
    for f in ["json", "jsonl", "human"] {
        assert!(fmt.contains(&f.to_string()), "{fmt:?}");
    }
}
