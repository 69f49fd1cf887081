//! The tools as a script sees them, without LXD: exit codes, the one
//! error line on stderr, JSON on stdout, and golden JSON where a snapshot
//! says more than a list of asserts.

use assert_cmd::prelude::*;
use serde_json::Value;
use std::process::Command;
use terrarium_core::error::exit;
use terrarium_tests::e2e::bin_dir;

/// A tool with no host settings, and an `lxc` that is not there, so what
/// it prints depends on nothing on this machine.
fn tool(name: &str, config: &tempfile::TempDir) -> Command {
    let mut c = Command::new(bin_dir().join(name));
    c.env("TRM_CONFIG_DIR", config.path())
        .env("TRM_LXC", "/nonexistent/lxc")
        .env_remove("TRM_FORMAT")
        .env_remove("TRM_PROJECT");
    c
}

/// The single JSON line on stderr.
fn error_line(stderr: &[u8]) -> Value {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {text}");
    assert!(lines[0].starts_with(r#"{"type":"error","#), "{text}");
    serde_json::from_str(lines[0]).expect("the error line is JSON")
}

#[test]
fn a_label_that_would_not_be_routed_is_found_problems_with_its_report() {
    let config = tempfile::tempdir().unwrap();
    let out = tool("trm-expose", &config)
        .args([
            "check",
            "nonsense, https://app.example.test:3000/api@auth:devs",
            "--instance",
            "web",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::PROBLEMS));
    let err = error_line(&out.stderr);
    assert_eq!(err["kind"], "problems");
    assert_eq!(err["exit_code"], exit::PROBLEMS);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    insta::assert_json_snapshot!(report, @r#"
    {
      "conflicts_checked": false,
      "errors": [
        {
          "item": "nonsense",
          "message": "expected https://, http://, tcp://, udp:// or share://"
        }
      ],
      "instance": "web",
      "items": [
        {
          "auth": [
            "devs"
          ],
          "cport": 3000,
          "holds": "app.example.test/api",
          "host": "app.example.test",
          "item": "https://app.example.test:3000/api@auth:devs",
          "kind": "http",
          "path": "/api",
          "problem": null,
          "tls": true
        }
      ],
      "note": null,
      "valid": false
    }
    "#);
}

#[test]
fn a_good_label_passes_and_json_lines_say_summary() {
    let config = tempfile::tempdir().unwrap();
    let out = tool("trm-expose", &config)
        .args([
            "check",
            "https://app.example.test:3000",
            "--format",
            "jsonl",
        ])
        .assert()
        .success()
        .get_output()
        .clone();
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert_eq!(lines[0]["type"], "summary");
    assert_eq!(lines[0]["valid"], true);
}

#[test]
fn usage_errors_are_exit_2_with_one_json_line_and_nothing_on_stdout() {
    let config = tempfile::tempdir().unwrap();
    for (name, args) in [
        ("trm", &["launch", "bad name!"][..]),
        ("trm", &["no-such-command"][..]),
        ("trm-snap", &["create"][..]),
        ("trm-expose", &["add", "web"][..]),
    ] {
        let out = tool(name, &config)
            .args(args)
            .args(["--format", "json"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(exit::USAGE), "{name} {args:?}");
        assert!(out.stdout.is_empty(), "{name} {args:?}");
        let err = error_line(&out.stderr);
        assert_eq!(err["kind"], "usage", "{name} {args:?}: {err}");
        assert_eq!(err["exit_code"], exit::USAGE);
    }
}

#[test]
fn a_missing_lxc_is_exit_69_naming_the_tool() {
    let config = tempfile::tempdir().unwrap();
    let out = tool("trm", &config)
        .args(["list", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::UNAVAILABLE));
    let err = error_line(&out.stderr);
    assert_eq!(err["kind"], "tool_missing");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("/nonexistent/lxc"),
        "{err}"
    );
}

#[test]
fn human_errors_are_one_plain_line() {
    let config = tempfile::tempdir().unwrap();
    tool("trm", &config)
        .args(["launch", "bad name!", "--format", "human"])
        .assert()
        .code(exit::USAGE)
        .stdout("")
        .stderr(predicates::str::starts_with("error: "));
}

#[test]
fn every_tool_documents_the_exit_codes_in_its_help() {
    let config = tempfile::tempdir().unwrap();
    for name in [
        "trm",
        "trm-expose",
        "trm-snap",
        "trm-harden",
        "trm-profile",
        "trm-gate",
    ] {
        let out = tool(name, &config).arg("--help").assert().success();
        let help = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
        assert!(help.contains(exit::TABLE), "{name} --help lacks the table");
    }
}

/// LXD 5.0's whole answer when its exec lost track of the command.
const LOST: &str = "Error: Failed to retrieve PID of executing child process";

/// An `lxc` that logs each call to `calls` and runs `body` (sh); trm is
/// pointed at it with `TRM_LXC`.
fn fake_lxc(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let fake = dir.join("lxc");
    let calls = dir.join("calls");
    let script = format!("#!/bin/sh\necho \"$@\" >> {}\n{body}\n", calls.display());
    std::fs::write(&fake, script).unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    fake
}

/// An `lxc` whose box `web` is running, answers `getent passwd` with
/// `getent` (0: the user exists, 2: it does not), and loses every other
/// exec.
fn losing_lxc(dir: &std::path::Path, getent: i32) -> std::path::PathBuf {
    fake_lxc(
        dir,
        &format!(
            r#"case "$*" in
  query*) echo '{{"name":"web","status":"Running","type":"container","config":{{}},"devices":{{}},"expanded_config":{{}},"expanded_devices":{{}},"profiles":[]}}' ;;
  *getent*) exit {getent} ;;
  exec*) echo '{LOST}' >&2; exit 255 ;;
  *) exit 1 ;;
esac"#
        ),
    )
}

#[test]
fn a_command_lxd_lost_is_outcome_unknown_and_never_run_again() {
    let config = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = losing_lxc(dir.path(), 0);
    let out = tool("trm", &config)
        .env("TRM_LXC", &fake)
        .args([
            "exec",
            "web",
            "--format",
            "json",
            "--",
            "touch",
            "/tmp/once",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::OUTCOME_UNKNOWN), "{out:?}");
    assert!(out.stdout.is_empty(), "no result is made up: {out:?}");
    let err = error_line(&out.stderr);
    assert_eq!(err["kind"], "outcome_unknown");
    let message = err["message"].as_str().unwrap();
    assert!(
        message.contains("`touch /tmp/once` in 'web'") && message.contains("it may have run"),
        "{message}"
    );
    let calls = std::fs::read_to_string(dir.path().join("calls")).unwrap();
    assert_eq!(
        calls.lines().filter(|l| l.contains("touch")).count(),
        1,
        "one exec, never again: {calls}"
    );
}

#[test]
fn a_lost_command_in_a_box_without_the_user_is_the_wrong_state_it_is() {
    // The box has no terrarium user: the command cannot have run as it,
    // and that, not an unknown outcome, is the answer.
    let config = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = losing_lxc(dir.path(), 2);
    let out = tool("trm", &config)
        .env("TRM_LXC", &fake)
        .args(["exec", "web", "--format", "json", "--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(exit::WRONG_STATE), "{out:?}");
    let err = error_line(&out.stderr);
    assert_eq!(err["kind"], "wrong_state");
    assert!(
        err["message"]
            .as_str()
            .unwrap()
            .contains("no 'terrarium' user; use `trm exec --root web`"),
        "{err}"
    );
}

#[test]
fn a_command_printing_lxds_words_keeps_its_own_exit_status() {
    let config = tempfile::tempdir().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The words, then the command's own last line: its answer, not LXD's.
    let fake = fake_lxc(
        dir.path(),
        &format!("echo '{LOST}' >&2; echo 'make: *** [all] Error 2' >&2; exit 255"),
    );
    let out = tool("trm", &config)
        .env("TRM_LXC", &fake)
        .args(["exec", "web", "--format", "json", "--", "make"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{out:?}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["exit_code"], 255);
    assert!(r["stderr"].as_str().unwrap().ends_with("Error 2\n"), "{r}");
}
