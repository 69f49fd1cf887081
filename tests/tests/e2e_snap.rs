//! End-to-end tests of `trm-snap` against real LXD on btrfs (TRM_E2E=1):
//! rollback that keeps newer snapshots and is undone by its safety
//! snapshot, copy-and-swap, restore as new without the original's traffic,
//! retention with a controlled clock, the automatic tick, holds, locking.

use std::process::{Command, Stdio};

use chrono::{Duration, Utc};
use serde_json::Value;
use terrarium_tests::e2e::{self, lxc, lxc_json, lxc_ok, Bed, Names, Runner, SNAP_SUITE};

const N: Names = SNAP_SUITE;
const MAIN: &str = "s-main";

fn snap(bed: &Bed, args: &[&str]) -> Value {
    bed.trm_json_with("trm-snap", args)
}

fn marker(name: &str) -> String {
    lxc_ok(&[
        "exec",
        "--project",
        N.project,
        name,
        "--",
        "cat",
        "/root/marker",
    ])
    .trim()
    .to_string()
}

fn set_marker(text: &str) {
    lxc_ok(&[
        "exec",
        "--project",
        N.project,
        MAIN,
        "--",
        "sh",
        "-c",
        &format!("echo {text} > /root/marker"),
    ]);
}

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

fn status(name: &str) -> String {
    lxc_json(&format!("/1.0/instances/{name}?project={}", N.project))["status"]
        .as_str()
        .unwrap()
        .to_string()
}

fn main() {
    if !e2e::enabled("e2e_snap") {
        return;
    }
    let bed = Bed::new(N);
    let mut t = Runner::new();
    let first = std::cell::RefCell::new(String::new());
    let safety = std::cell::RefCell::new(String::new());

    t.case("setup", || {
        bed.trm_json(&bed.init_args());
        // Retention counts small enough to see in a test.
        let path = bed.config_dir.path().join("terrarium.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let base = text.split("[snapshots]").next().unwrap().to_string();
        std::fs::write(&path, base + "[snapshots]\nfrequent = 1\nhourly = 2\ndaily = 1\nmonthly = 1\nsafety_grace_days = 7\n").unwrap();
        e2e::assert_ok(&bed.tool("trm").args(["launch", MAIN, "--format", "json"]).output().unwrap(), "launch");
        lxc_ok(&["config", "set", "--project", N.project, MAIN, "user.proxy", "https://main.example.test:3000"]);
        lxc_ok(&["config", "device", "add", "--project", N.project, MAIN, "px", "proxy", "listen=tcp:127.0.0.1:18080", "connect=tcp:127.0.0.1:80"]);
    });

    t.case(
        "rollback_restores_keeps_newer_and_is_undone_by_its_safety_snapshot",
        || {
            set_marker("one");
            let a = snap(&bed, &["create", MAIN, "--label", "first"]);
            *first.borrow_mut() = a[0]["snapshot"].as_str().unwrap().to_string();
            set_marker("two");
            let b = snap(&bed, &["create", MAIN, "--label", "second"]);
            let second = b[0]["snapshot"].as_str().unwrap().to_string();
            set_marker("three");

            let before = names(&snap(&bed, &["list", MAIN]));
            let dry = snap(
                &bed,
                &["rollback", MAIN, "--to", &first.borrow(), "--dry-run"],
            );
            assert_eq!(dry["dry_run"], true);
            assert!(dry["steps"].as_array().unwrap().len() >= 4, "{dry}");
            assert_eq!(marker(MAIN), "three", "dry run changed nothing");
            assert_eq!(names(&snap(&bed, &["list", MAIN])), before);

            let r = snap(&bed, &["rollback", MAIN, "--to", &first.borrow(), "--yes"]);
            assert_eq!(r["method"], "restore");
            *safety.borrow_mut() = r["safety_snapshot"].as_str().unwrap().to_string();
            assert_eq!(marker(MAIN), "one");
            assert_eq!(status(MAIN), "Running", "started again as it was running");
            let after = names(&snap(&bed, &["list", MAIN]));
            assert!(
                after.contains(&second),
                "the newer snapshot survives: {after:?}"
            );
            assert!(after.contains(&safety.borrow()));

            snap(&bed, &["rollback", MAIN, "--to", &second, "--yes"]);
            assert_eq!(
                marker(MAIN),
                "two",
                "later snapshots can still be rolled back to"
            );
            let s = safety.borrow().clone();
            snap(&bed, &["rollback", MAIN, "--to", &s, "--yes"]);
            assert_eq!(
                marker(MAIN),
                "three",
                "the safety snapshot undoes the rollback"
            );
        },
    );

    t.case("rollback_refusals_change_nothing", || {
        bed.refused(
            "trm-snap",
            &["rollback", MAIN, "--to", "nope", "--yes"],
            3,
            "snapshot 's-main/nope' does not exist",
        );
        bed.refused(
            "trm-snap",
            &["rollback", MAIN, "--to", &first.borrow()],
            2,
            "pass --yes",
        );
        assert_eq!(marker(MAIN), "three");
    });

    t.case("swap_keeps_the_current_instance_under_another_name", || {
        let r = snap(
            &bed,
            &["rollback", MAIN, "--to", &first.borrow(), "--swap", "--yes"],
        );
        assert_eq!(r["method"], "copy_and_swap");
        let kept = r["kept_as"].as_str().unwrap().to_string();
        assert_eq!(marker(MAIN), "one");
        assert_eq!(status(&kept), "Stopped");
        let kept_snaps = names(&snap(&bed, &["list", &kept]));
        assert!(
            kept_snaps.contains(&first.borrow())
                && kept_snaps.contains(&r["safety_snapshot"].as_str().unwrap().to_string())
        );
        lxc_ok(&["delete", "--project", N.project, &kept]);
    });

    t.case("restore_as_new_cannot_take_the_originals_traffic", || {
        // The swap made a fresh MAIN from a copy; give it a snapshot to restore from.
        snap(&bed, &["create", MAIN, "--label", "src"]);
        let r = snap(&bed, &["restore", MAIN, "--as", "s-copy", "--start"]);
        let stripped = r["stripped"].to_string();
        assert!(
            stripped.contains("user.proxy")
                && stripped.contains("proxy device px")
                && stripped.contains("hwaddr"),
            "{stripped}"
        );
        let copy = lxc_json(&format!("/1.0/instances/s-copy?project={}", N.project));
        assert!(copy["config"].get("user.proxy").is_none());
        assert!(copy["devices"].get("px").is_none());
        let main = lxc_json(&format!("/1.0/instances/{MAIN}?project={}", N.project));
        assert_ne!(
            copy["config"]["volatile.eth0.hwaddr"],
            main["config"]["volatile.eth0.hwaddr"]
        );
        assert_eq!(status(MAIN), "Running", "the original keeps running");
        assert_eq!(
            main["config"]["user.proxy"],
            "https://main.example.test:3000"
        );
        let stopped = snap(&bed, &["restore", MAIN, "--as", "s-copy2"]);
        assert_eq!(stopped["started"], false);
        assert_eq!(status("s-copy2"), "Stopped");
        bed.refused(
            "trm-snap",
            &["restore", MAIN, "--as", "s-copy"],
            2,
            "already exists",
        );
        lxc_ok(&["delete", "--project", N.project, "s-copy2"]);
    });

    t.case("prune_keeps_exactly_what_the_policy_says", || {
        for h in 1..=5 {
            lxc_ok(&[
                "snapshot",
                "--project",
                N.project,
                MAIN,
                &format!("trm-auto-hourly-2026010{h}T000000Z"),
            ]);
        }
        snap(&bed, &["hold", MAIN, "trm-auto-hourly-20260101T000000Z"]);
        let later = (Utc::now() + Duration::days(3)).to_rfc3339();
        let plan = snap(&bed, &["prune", MAIN, "--dry-run", "--now", &later]);
        let decide = |n: &str| {
            plan.as_array()
                .unwrap()
                .iter()
                .find(|d| d["name"] == n)
                .cloned()
                .unwrap()
        };
        // hourly = 2: the two newest hourlies stay, the held one stays, the rest go.
        for (n, keep) in [
            ("20260105", true),
            ("20260104", true),
            ("20260103", false),
            ("20260102", false),
            ("20260101", true),
        ] {
            let d = decide(&format!("trm-auto-hourly-{n}T000000Z"));
            assert_eq!(d["keep"], keep, "{d}");
        }
        let held = decide("trm-auto-hourly-20260101T000000Z");
        assert_eq!(held["rule"], "held");
        for d in plan.as_array().unwrap() {
            let name = d["name"].as_str().unwrap();
            if name.starts_with("trm-manual-") || name.starts_with("trm-safety-") {
                assert_eq!(d["keep"], true, "{d}");
            }
        }
        let doomed: Vec<String> = plan
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["keep"] == false)
            .map(|d| d["name"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(doomed.len(), 2, "{doomed:?}");
        snap(&bed, &["prune", MAIN, "--yes", "--now", &later]);
        let left = names(&snap(&bed, &["list", MAIN]));
        for d in &doomed {
            assert!(!left.contains(d), "{d} survived");
        }
        assert!(left.contains(&"trm-auto-hourly-20260101T000000Z".to_string()));
        snap(&bed, &["release", MAIN, "trm-auto-hourly-20260101T000000Z"]);
    });

    t.case("auto_snapshots_what_is_due_and_respects_opt_out", || {
        lxc_ok(&[
            "config",
            "set",
            "--project",
            N.project,
            "s-copy",
            "user.terrarium.snapshots",
            "off",
        ]);
        let ticks = snap(&bed, &["auto"]);
        let of = |v: &Value, n: &str| {
            v.as_array()
                .unwrap()
                .iter()
                .find(|x| x["instance"] == n)
                .cloned()
                .unwrap()
        };
        let m = of(&ticks, MAIN);
        assert_eq!(m["outcome"], "snapshotted", "{m}");
        assert!(
            m["snapshot"]
                .as_str()
                .unwrap()
                .starts_with("trm-auto-monthly-"),
            "{m}"
        );
        assert_eq!(of(&ticks, "s-copy")["outcome"], "opted_out");
        let again = snap(&bed, &["auto"]);
        assert_eq!(of(&again, MAIN)["outcome"], "not_due");
        let kinds: Vec<String> = snap(&bed, &["list", MAIN])
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect();
        assert!(
            kinds.contains(&"auto:monthly".into()) && kinds.contains(&"manual".into()),
            "{kinds:?}"
        );
    });

    t.case("a_busy_instance_is_exit_75_or_waited_for", || {
        let lock = bed
            .lock_dir
            .path()
            .join(format!("instance-{}-{MAIN}.lock", N.project));
        let mut holder = Command::new("flock")
            .arg(&lock)
            .args(["sleep", "4"])
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        bed.refused(
            "trm-snap",
            &["create", MAIN],
            75,
            "locked by another Terrarium process",
        );
        let waited = bed
            .tool("trm-snap")
            .args(["--wait", "create", MAIN, "--format", "json"])
            .output()
            .unwrap();
        e2e::assert_ok(&waited, "create --wait");
        holder.wait().unwrap();
    });

    t.case("concurrent_rollback_and_auto_serialise", || {
        let target = first_snapshot(&bed);
        let rb = bed
            .tool("trm-snap")
            .args([
                "--wait", "rollback", MAIN, "--to", &target, "--yes", "--format", "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(200));
        let later = (Utc::now() + Duration::days(40)).to_rfc3339();
        let auto = bed
            .tool("trm-snap")
            .args(["--wait", "auto", "--now", &later, "--format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let rb = rb.wait_with_output().unwrap();
        let auto = auto.wait_with_output().unwrap();
        e2e::assert_ok(&rb, "rollback");
        e2e::assert_ok(&auto, "auto");
        let ticks: Value = serde_json::from_slice(&auto.stdout).unwrap();
        let m = ticks
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["instance"] == MAIN)
            .unwrap();
        assert_eq!(
            m["outcome"], "snapshotted",
            "auto ran after the rollback, not during: {m}"
        );
        assert_eq!(status(MAIN), "Running");
    });

    t.case("schedule_writes_units", || {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let rep = snap(&bed, &["schedule", "install", "--unit-dir", d]);
        let timer = std::fs::read_to_string(dir.path().join("trm-snap-auto.timer")).unwrap();
        assert!(timer.contains("OnCalendar=*:0/15"), "{timer}");
        let svc = std::fs::read_to_string(dir.path().join("trm-snap-auto.service")).unwrap();
        assert!(svc.contains("trm-snap auto"), "{svc}");
        if which("systemd-analyze") {
            let out = Command::new("systemd-analyze")
                .arg("verify")
                .arg(dir.path().join("trm-snap-auto.timer"))
                .output()
                .unwrap();
            e2e::assert_ok(&out, "systemd-analyze verify");
        }
        if !std::path::Path::new("/run/systemd/system").is_dir() {
            assert!(rep["note"].as_str().unwrap().contains("no systemd"));
        }
        snap(&bed, &["schedule", "remove", "--unit-dir", d]);
        assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
    });

    bed.teardown();
    let _ = lxc(&["list"]);
    t.finish()
}

fn first_snapshot(bed: &Bed) -> String {
    let list = bed.trm_json_with("trm-snap", &["list", MAIN]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .find(|n| n.contains("-src"))
        .expect("the src snapshot")
}

fn which(prog: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {prog} >/dev/null")])
        .status()
        .is_ok_and(|s| s.success())
}
