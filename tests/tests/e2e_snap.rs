//! End-to-end tests of `trm-snap` against real LXD on btrfs (TRM_E2E=1):
//! rollback that keeps newer snapshots and is undone by its safety
//! snapshot, copy-and-swap, restore as new without the original's traffic,
//! retention with a controlled clock, the automatic tick, holds, locking.

use std::process::{Command, Stdio};

use chrono::{Duration, Utc};
use serde_json::Value;
use terrarium_tests::e2e::{self, lxc, lxc_json, lxc_ok, Bed, Names, Runner, SNAP_SUITE};
use terrarium_tests::s3s::{self, S3Server};

const N: Names = SNAP_SUITE;
const MAIN: &str = "s-main";

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

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_snap") {
        return std::process::ExitCode::SUCCESS;
    }
    let bed = Bed::new(N);
    let mut t = Runner::new();
    // The off-site cases' S3 server: s3s-fs on a free loopback port.
    let server = S3Server::start();
    let first = std::cell::RefCell::new(String::new());
    // A free port: a fixed one collides with other suites' listeners.
    let px_listen = format!(
        "listen=tcp:127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let safety = std::cell::RefCell::new(String::new());

    t.setup("setup", || {
        bed.trm_json(&bed.init_args());
        // Retention counts small enough to see in a test.
        let path = bed.config_dir.path().join("terrarium.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let base = text.split("[snapshots]").next().unwrap().to_string();
        std::fs::write(&path, base + "[snapshots]\nfrequent = 1\nhourly = 2\ndaily = 1\nmonthly = 1\nsafety_grace_days = 7\n").unwrap();
        e2e::assert_ok(&bed.tool("trm").args(["launch", MAIN, "--format", "json"]).output().unwrap(), "launch");
        expose_main(&px_listen);
    });

    t.case(
        "rollback_restores_keeps_newer_and_is_undone_by_its_safety_snapshot",
        || {
            set_marker("one");
            let a = bed.snap(&["create", MAIN, "--label", "first"]);
            *first.borrow_mut() = a[0]["snapshot"].as_str().unwrap().to_string();
            set_marker("two");
            let b = bed.snap(&["create", MAIN, "--label", "second"]);
            let second = b[0]["snapshot"].as_str().unwrap().to_string();
            set_marker("three");

            let before = names(&bed.snap(&["list", MAIN]));
            let dry = bed.snap(&["rollback", MAIN, "--to", &first.borrow(), "--dry-run"]);
            assert_eq!(dry["dry_run"], true);
            assert!(dry["steps"].as_array().unwrap().len() >= 4, "{dry}");
            assert_eq!(marker(MAIN), "three", "dry run changed nothing");
            assert_eq!(names(&bed.snap(&["list", MAIN])), before);

            let r = bed.snap(&["rollback", MAIN, "--to", &first.borrow(), "--yes"]);
            assert_eq!(r["method"], "restore");
            *safety.borrow_mut() = r["safety_snapshot"].as_str().unwrap().to_string();
            assert_eq!(marker(MAIN), "one");
            assert_eq!(status(MAIN), "Running", "started again as it was running");
            let after = names(&bed.snap(&["list", MAIN]));
            assert!(
                after.contains(&second),
                "the newer snapshot survives: {after:?}"
            );
            assert!(after.contains(&safety.borrow()));

            bed.snap(&["rollback", MAIN, "--to", &second, "--yes"]);
            assert_eq!(
                marker(MAIN),
                "two",
                "later snapshots can still be rolled back to"
            );
            let s = safety.borrow().clone();
            bed.snap(&["rollback", MAIN, "--to", &s, "--yes"]);
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
        let r = bed.snap(&["rollback", MAIN, "--to", &first.borrow(), "--swap", "--yes"]);
        assert_eq!(r["method"], "copy_and_swap");
        let kept = r["kept_as"].as_str().unwrap().to_string();
        assert_eq!(marker(MAIN), "one");
        assert_eq!(status(&kept), "Stopped");
        let kept_snaps = names(&bed.snap(&["list", &kept]));
        assert!(
            kept_snaps.contains(&first.borrow())
                && kept_snaps.contains(&r["safety_snapshot"].as_str().unwrap().to_string())
        );
        lxc_ok(&["delete", "--project", N.project, &kept]);
    });

    t.case("restore_as_new_cannot_take_the_originals_traffic", || {
        // The swap made a fresh MAIN from a copy; give it a snapshot to restore from.
        bed.snap(&["create", MAIN, "--label", "src"]);
        let r = bed.snap(&["restore", MAIN, "--as", "s-copy", "--start"]);
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
        let stopped = bed.snap(&["restore", MAIN, "--as", "s-copy2"]);
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
        bed.snap(&["hold", MAIN, "trm-auto-hourly-20260101T000000Z"]);
        let later = (Utc::now() + Duration::days(3)).to_rfc3339();
        let plan = bed.snap(&["prune", MAIN, "--dry-run", "--now", &later]);
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
        bed.snap(&["prune", MAIN, "--yes", "--now", &later]);
        let left = names(&bed.snap(&["list", MAIN]));
        for d in &doomed {
            assert!(!left.contains(d), "{d} survived");
        }
        assert!(left.contains(&"trm-auto-hourly-20260101T000000Z".to_string()));
        bed.snap(&["release", MAIN, "trm-auto-hourly-20260101T000000Z"]);
    });

    t.case("auto_snapshots_what_is_due_and_respects_opt_out", || {
        config_set("s-copy", "user.terrarium.snapshots", "off");
        let ticks = bed.snap(&["auto"]);
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
        let again = bed.snap(&["auto"]);
        assert_eq!(of(&again, MAIN)["outcome"], "not_due");
        let kinds: Vec<String> = bed
            .snap(&["list", MAIN])
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
        let lock = bed.lock_dir.path().join(format!(
            "{}.lock",
            terrarium_core::fs::Resource::Instance {
                project: N.project,
                name: MAIN
            }
            .name()
        ));
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

    t.case(
        "a_held_snapshot_survives_a_rollback_and_the_next_prune",
        || {
            // The attack: hold an automatic snapshot, roll back to one taken
            // before the hold. LXD puts the config back from that snapshot; a
            // hold kept there vanished and the next prune deleted the snapshot.
            for d in 1..=4 {
                lxc_ok(&["snapshot", "--project", N.project, MAIN, &hourly(2025, d)]);
            }
            let held = hourly(2025, 1);
            let h = bed.snap(&["hold", MAIN, &held]);
            assert_eq!(
                (h["held"].clone(), h["changed"].clone()),
                (true.into(), true.into())
            );
            let r = bed.snap(&["rollback", MAIN, "--to", &hourly(2025, 2), "--yes"]);
            assert_eq!(r["method"], "restore", "btrfs restores in place: {r}");
            assert!(
                entry(&bed, MAIN, &held)["held"] == true,
                "still held after the rollback"
            );
            let later = (Utc::now() + Duration::days(3)).to_rfc3339();
            bed.snap(&["prune", MAIN, "--yes", "--now", &later]);
            let left = names(&bed.snap(&["list", MAIN]));
            assert!(
                left.contains(&held),
                "the held snapshot survived the prune: {left:?}"
            );
            assert!(
                !left.contains(&hourly(2025, 2)),
                "the prune did run (an unheld old hourly went): {left:?}"
            );
        },
    );

    t.case(
        "swap_moves_holds_with_the_snapshots_and_the_kept_instance_serves_no_route",
        || {
            let label = LABEL;
            expose_main(&px_listen);
            let src = bed.snap(&["create", MAIN, "--label", "swapsrc"])[0]["snapshot"]
                .as_str()
                .unwrap()
                .to_string();
            let held = hourly(2025, 1);
            let r = bed.snap(&["rollback", MAIN, "--to", &src, "--swap", "--yes"]);
            let kept = r["kept_as"].as_str().unwrap().to_string();
            let stripped = r["kept_stripped"].to_string();
            assert!(
                stripped.contains("user.proxy") && stripped.contains("proxy device px"),
                "{r}"
            );
            let k = lxc_json(&format!("/1.0/instances/{kept}?project={}", N.project));
            assert!(k["config"].get("user.proxy").is_none(), "{k}");
            assert!(k["devices"].get("px").is_none(), "{k}");
            let m = lxc_json(&format!("/1.0/instances/{MAIN}?project={}", N.project));
            assert_eq!(
                m["config"]["user.proxy"], label,
                "the copy keeps the routes"
            );
            assert_eq!(
                entry(&bed, &kept, &held)["held"],
                true,
                "the hold went with its snapshot"
            );
            assert!(names(&bed.snap(&["list", &kept]))
                .contains(&r["safety_snapshot"].as_str().unwrap().to_string()));
            let later = (Utc::now() + Duration::days(3)).to_rfc3339();
            bed.snap(&["prune", &kept, "--yes", "--now", &later]);
            assert!(names(&bed.snap(&["list", &kept])).contains(&held));
            lxc_ok(&["delete", "--project", N.project, &kept]);
        },
    );

    t.case(
        "a_forged_holds_key_pins_nothing_and_holds_are_bounded",
        || {
            // Start from no holds, whatever earlier cases left.
            for e in bed.snap(&["list", MAIN]).as_array().unwrap() {
                if e["held"] == true {
                    bed.snap(&["release", MAIN, e["name"].as_str().unwrap()]);
                }
            }
            let snaps: Vec<String> = (1..=17).map(|d| hourly(2024, d)).collect();
            for n in &snaps {
                lxc_ok(&["snapshot", "--project", N.project, MAIN, n]);
            }
            // What any writer of user.* keys can do (a project-restricted user,
            // an imported backup): it must not keep a single snapshot.
            config_set(MAIN, "user.terrarium.holds", &snaps.join(","));
            for n in &snaps {
                assert_eq!(entry(&bed, MAIN, n)["held"], false, "{n}");
            }
            let later = (Utc::now() + Duration::days(3)).to_rfc3339();
            let plan = bed.snap(&["prune", MAIN, "--dry-run", "--now", &later]);
            let d = plan
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["name"] == snaps[0])
                .cloned()
                .unwrap();
            assert_eq!(d["keep"], false, "{d}");
            for n in &snaps[..16] {
                bed.snap(&["hold", MAIN, n]);
            }
            bed.refused(
                "trm-snap",
                &["hold", MAIN, &snaps[16]],
                2,
                "release one first",
            );
            let held: Vec<Value> = bed
                .snap(&["list", MAIN])
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["held"] == true)
                .cloned()
                .collect();
            assert_eq!(held.len(), 16, "the refused hold changed nothing");
            for n in &snaps[..16] {
                bed.snap(&["release", MAIN, n]);
            }
        },
    );

    t.case("two_creates_in_the_same_second_get_different_names", || {
        // Every name a create in the next few seconds could pick is taken,
        // so it must find another; two at once must not take the same one.
        let now = Utc::now();
        let taken: Vec<String> = (0..=10)
            .map(|s| {
                let at = now + Duration::seconds(s);
                format!("trm-manual-{}-same", at.format("%Y%m%dT%H%M%SZ"))
            })
            .collect();
        for n in &taken {
            lxc_ok(&["snapshot", "--project", N.project, MAIN, n]);
        }
        let run = || {
            bed.tool("trm-snap")
                .args([
                    "--wait", "create", MAIN, "--label", "same", "--format", "json",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (a, b) = (run(), run());
        let made: Vec<String> = [a, b]
            .into_iter()
            .map(|c| {
                let out = c.wait_with_output().unwrap();
                e2e::assert_ok(&out, "create --label same");
                let v: Value = serde_json::from_slice(&out.stdout).unwrap();
                v[0]["snapshot"].as_str().unwrap().to_string()
            })
            .collect();
        assert_ne!(made[0], made[1]);
        let list = bed.snap(&["list", MAIN]);
        for m in &made {
            assert!(!taken.contains(m), "{m} was taken");
            assert!(m.starts_with("trm-manual-") && m.contains("-same"), "{m}");
            let e = entry(&bed, MAIN, m);
            assert_eq!(e["kind"], "manual", "{e}");
        }
        assert_eq!(
            names(&list).iter().filter(|n| n.contains("-same")).count(),
            taken.len() + 2
        );
    });

    t.case(
        "export_into_a_closed_pipe_finishes_and_leaves_nothing_behind",
        || {
            let work = tempfile::tempdir().unwrap();
            let secret = work.path().join("secret");
            std::fs::write(&secret, format!("{}\n", s3s::SECRET)).unwrap();
            let mut set = server.set_args(&secret);
            set.push("--generate-key".into());
            bed.snap(&set.iter().map(String::as_str).collect::<Vec<_>>());
            let instances_before = instance_names();
            let export = || {
                let mut c = bed.tool("trm-snap");
                c.args(["export", MAIN, "--format", "jsonl", "--part-size", "5"])
                    .stderr(Stdio::piped());
                c
            };
            // `| head -1`: read one line, then close the pipe.
            let mut child = export().stdout(Stdio::piped()).spawn().unwrap();
            let mut first = String::new();
            {
                use std::io::BufRead;
                let mut r = std::io::BufReader::new(child.stdout.take().unwrap());
                r.read_line(&mut first).unwrap();
            }
            let out = child.wait_with_output().unwrap();
            let line: Value = serde_json::from_str(&first).unwrap();
            assert_eq!(line["type"], "progress", "{first}");
            // A pipe closed before the first line: every write fails.
            // (The write end of a pipe whose only reader, `true`, has exited.)
            let mut gone = Command::new("true").stdin(Stdio::piped()).spawn().unwrap();
            let writer = gone.stdin.take().unwrap();
            gone.wait().unwrap();
            let closed = export().stdout(writer).output().unwrap();
            for (what, out) in [("| head -1", &out), ("closed pipe", &closed)] {
                assert_eq!(
                    out.status.code(),
                    Some(0),
                    "{what}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert!(
                    out.stderr.is_empty(),
                    "{what} exits quietly: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            assert_eq!(
                instance_names(),
                instances_before,
                "no trm-export-* instance is left"
            );
            let left = export_snapshots(&bed);
            assert!(left.is_empty(), "no export snapshot is left: {left:?}");
            assert!(
                server.pending_parts().is_empty(),
                "no unfinished upload: {:?}",
                server.pending_parts()
            );
            let backups = bed.snap(&["s3", "list", MAIN]);
            assert_eq!(
                backups.as_array().unwrap().len(),
                2,
                "both exports finished: {backups}"
            );
        },
    );

    t.case("what_a_killed_export_left_is_swept_by_the_next", || {
        // What SIGKILL in mid-export leaves: its temporary copy and its
        // fresh snapshot (kind other, which retention never prunes).
        let src = bed.snap(&["create", MAIN, "--label", "killed"])[0]["snapshot"]
            .as_str()
            .unwrap()
            .to_string();
        let copy = "trm-export-0123456789ab";
        let fresh = "trm-export-20200101T000000Z";
        lxc_ok(&[
            "copy",
            "--project",
            N.project,
            &format!("{MAIN}/{src}"),
            copy,
        ]);
        lxc_ok(&["snapshot", "--project", N.project, MAIN, fresh]);
        assert_eq!(entry(&bed, MAIN, fresh)["kind"], "other");
        let x = bed.snap(&["export", MAIN, "--part-size", "5"]);
        let swept = x["swept"].to_string();
        assert!(swept.contains(copy) && swept.contains(fresh), "{x}");
        assert!(!instance_names().contains(&copy.to_string()));
        let left = export_snapshots(&bed);
        assert!(left.is_empty(), "{left:?}");
        assert!(
            names(&bed.snap(&["list", MAIN])).contains(&src),
            "a snapshot of another name is untouched"
        );
    });

    t.case("schedule_writes_units", || {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let rep = bed.snap(&["schedule", "install", "--unit-dir", d]);
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
        bed.snap(&["schedule", "remove", "--unit-dir", d]);
        assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
    });

    // s3s-fs stopped by its pid before the project goes.
    drop(server);
    bed.teardown();
    let _ = lxc(&["list"]);
    t.finish()
}

/// `lxc config set` on an instance of the suite, as any writer of its keys could.
fn config_set(name: &str, key: &str, value: &str) {
    lxc_ok(&["config", "set", "--project", N.project, name, key, value]);
}

const LABEL: &str = "https://main.example.test:3000";

/// MAIN's exposure: a label and a proxy device (added unless it has one).
fn expose_main(px_listen: &str) {
    config_set(MAIN, "user.proxy", LABEL);
    let main = lxc_json(&format!("/1.0/instances/{MAIN}?project={}", N.project));
    if main["devices"].get("px").is_none() {
        lxc_ok(&[
            "config",
            "device",
            "add",
            "--project",
            N.project,
            MAIN,
            "px",
            "proxy",
            px_listen,
            "connect=tcp:127.0.0.1:80",
        ]);
    }
}

/// An automatic hourly snapshot's name for day `d` of January `year`.
fn hourly(year: i32, d: u32) -> String {
    format!("trm-auto-hourly-{year}01{d:02}T000000Z")
}

/// One snapshot's entry in `trm-snap list`.
fn entry(bed: &Bed, instance: &str, snapshot: &str) -> Value {
    bed.trm_json_with("trm-snap", &["list", instance])
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == snapshot)
        .cloned()
        .unwrap_or_else(|| panic!("{instance}/{snapshot} is listed"))
}

/// MAIN's snapshots named like an export's fresh one.
fn export_snapshots(bed: &Bed) -> Vec<String> {
    names(&bed.trm_json_with("trm-snap", &["list", MAIN]))
        .into_iter()
        .filter(|n| n.starts_with("trm-export-"))
        .collect()
}

fn instance_names() -> Vec<String> {
    let mut v: Vec<String> = lxc_json(&format!("/1.0/instances?project={}", N.project))
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            u.as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .split('?')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    v.sort();
    v
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
