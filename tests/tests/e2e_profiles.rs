//! End-to-end tests of the Terrarium profiles and `trm-profile` on real
//! containers (TRM_E2E=1): each profile's promises (unprivileged, nesting
//! as stated, sudo only under dev, locked password, landing as terrarium),
//! isolated uid ranges, strict's process cap, Docker inside default and
//! dev, cloud-init that survives the user's own, drift and its repair.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use terrarium_core::error::exit;

use serde_json::Value;
use terrarium_tests::e2e::{
    self, lxc, lxc_json, lxc_ok, Bed, Names, Runner, BUSYBOX_IMAGE, PROFILES_SUITE,
};

const N: Names = PROFILES_SUITE;
const DOCKER_IMAGE: &str = "terrarium/debian12-docker";

/// Containers this suite launches: name and profiles.
const BOXES: &[(&str, &[&str])] = &[
    ("p-default", &["default"]),
    ("p-terrarium", &["terrarium"]),
    ("p-terrarium2", &["terrarium"]),
    ("p-strict", &["default", "strict"]),
    ("p-dev", &["dev"]),
];

/// The user's own cloud-init, declaring other users and files. cloud-init
/// lets these lists replace vendor-data's; the terrarium user must survive.
const OWN_USER_DATA: &str = "#cloud-config\nusers:\n  - name: alice\n    shell: /bin/sh\n    sudo: ALL=(ALL) NOPASSWD:ALL\nwrite_files:\n  - path: /etc/owner-was-here\n    content: hello\n";

fn launch(bed: &Bed, name: &str, profiles: &[&str], extra: &[&str]) -> Child {
    let mut args = vec!["launch", name, "--format", "json"];
    for p in profiles {
        args.extend(["--profile", p]);
    }
    args.extend(extra);
    bed.tool("trm")
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_ok(name: &str, child: Child) {
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "launch {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["cloud_init"], "done", "{name}: {v}");
}

fn instance(name: &str) -> Value {
    lxc_json(&format!("/1.0/instances/{name}?project={}", N.project))
}

fn root_exec(name: &str, cmd: &[&str]) -> std::process::Output {
    lxc(&[&["exec", "--project", N.project, name, "--"], cmd].concat())
}

/// Host uid that container root maps to.
fn host_root_uid(name: &str) -> u64 {
    let state = lxc_json(&format!(
        "/1.0/instances/{name}/state?project={}",
        N.project
    ));
    let pid = state["pid"].as_u64().expect("running");
    let map = std::fs::read_to_string(format!("/proc/{pid}/uid_map")).unwrap();
    let f: Vec<u64> = map
        .split_whitespace()
        .take(2)
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(f[0], 0, "{map}");
    f[1]
}

fn trm_exec(bed: &Bed, name: &str, cmd: &[&str]) -> (i32, String) {
    let out = bed.trm(&[&["exec", name, "--"], cmd].concat());
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
    )
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_profiles") {
        return std::process::ExitCode::SUCCESS;
    }
    let bed = Bed::new(N);
    let mut t = Runner::new();

    t.setup("init_installs_the_four_profiles", || {
        bed.trm_json(&bed.init_args());
        let list = bed.trm_json_with("trm-profile", &["list"]);
        for name in ["default", "terrarium", "strict", "dev"] {
            let e = list
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == name)
                .unwrap();
            assert_eq!(e["managed"], true, "{e}");
            assert_eq!(e["status"], "in_sync", "{e}");
        }
    });

    t.setup("launch_one_box_per_profile", || {
        let mut children: Vec<(&str, Child)> = BOXES
            .iter()
            .map(|(n, p)| (*n, launch(&bed, n, p, &[])))
            .collect();
        let ud = format!("cloud-init.user-data={OWN_USER_DATA}");
        children.push((
            "p-own-ci",
            launch(&bed, "p-own-ci", &["default"], &["-c", &ud]),
        ));
        children.push((
            "p-own-ci-dev",
            launch(&bed, "p-own-ci-dev", &["dev"], &["-c", &ud]),
        ));
        for (name, child) in children {
            wait_ok(name, child);
        }
    });

    t.case("every_profile_keeps_its_promises", || {
        for (name, profiles) in BOXES {
            let dev = profiles.contains(&"dev");
            let strict = profiles.contains(&"strict");
            assert_ne!(
                host_root_uid(name),
                0,
                "{name}: root inside is root outside"
            );
            let cfg = &instance(name)["expanded_config"];
            assert_eq!(cfg["security.privileged"], "false", "{name}");
            let nesting = if strict { "false" } else { "true" };
            assert_eq!(cfg["security.nesting"], nesting, "{name}");
            // The kernel agrees: container root holds no capability over
            // the host's user namespace.
            let status =
                String::from_utf8_lossy(&root_exec(name, &["cat", "/proc/self/uid_map"]).stdout)
                    .to_string();
            assert!(status.trim().starts_with('0'), "{name}: {status}");
            assert_eq!(
                trm_exec(&bed, name, &["id", "-un"]),
                (0, "terrarium".into()),
                "{name}"
            );
            assert_eq!(
                trm_exec(&bed, name, &["pwd"]),
                (0, "/home/terrarium".into()),
                "{name}"
            );
            let sudo = trm_exec(&bed, name, &["sudo", "-n", "true"]).0;
            assert_eq!(sudo == 0, dev, "{name}: sudo -n true exited {sudo}");
            let passwd =
                String::from_utf8_lossy(&root_exec(name, &["passwd", "-S", "terrarium"]).stdout)
                    .to_string();
            assert_eq!(
                passwd.split_whitespace().nth(1),
                Some("L"),
                "{name}: {passwd}"
            );
            let shell = String::from_utf8_lossy(
                &root_exec(name, &["getent", "passwd", "terrarium"]).stdout,
            )
            .to_string();
            assert!(
                shell.trim().ends_with(":/home/terrarium:/bin/bash"),
                "{name}: {shell}"
            );
        }
    });

    t.case("dev_box_installs_packages_with_sudo", || {
        // The bridge has no NAT and no mirror is reachable, so install a
        // local package: the same apt-get path `apt-get install git` takes.
        let work = tempfile::tempdir().unwrap();
        let deb = build_deb(work.path());
        for name in ["p-dev", "p-default"] {
            lxc_ok(&[
                "file",
                "push",
                "--project",
                N.project,
                deb.to_str().unwrap(),
                &format!("{name}/tmp/trm-hello.deb"),
            ]);
        }
        let (code, _) = trm_exec(
            &bed,
            "p-dev",
            &[
                "sudo",
                "-n",
                "apt-get",
                "install",
                "-y",
                "/tmp/trm-hello.deb",
            ],
        );
        assert_eq!(code, 0, "apt-get install with sudo failed under dev");
        assert!(root_exec("p-dev", &["dpkg", "-s", "trm-hello"])
            .status
            .success());
        let (code, _) = trm_exec(
            &bed,
            "p-default",
            &[
                "sudo",
                "-n",
                "apt-get",
                "install",
                "-y",
                "/tmp/trm-hello.deb",
            ],
        );
        assert_ne!(code, 0, "default's terrarium user must not sudo");
        assert!(!root_exec("p-default", &["dpkg", "-s", "trm-hello"])
            .status
            .success());
    });

    t.case(
        "isolated_profiles_map_root_to_different_host_ranges",
        || {
            let a = host_root_uid("p-terrarium");
            let b = host_root_uid("p-terrarium2");
            let s = host_root_uid("p-strict");
            let d = host_root_uid("p-default");
            assert_ne!(a, b, "two terrarium containers share a uid range");
            assert_ne!(a, s);
            assert_ne!(b, s);
            assert!(
                ![a, b, s].contains(&d),
                "isolated ranges overlap the shared default range {d}"
            );
        },
    );

    t.case("own_cloud_init_does_not_drop_the_terrarium_user", || {
        for (name, sudo_ok) in [("p-own-ci", false), ("p-own-ci-dev", true)] {
            // The owner's own cloud-init took effect ...
            assert!(
                root_exec(name, &["test", "-f", "/etc/owner-was-here"])
                    .status
                    .success(),
                "{name}"
            );
            assert!(
                root_exec(name, &["getent", "passwd", "alice"])
                    .status
                    .success(),
                "{name}"
            );
            // ... and the profile's user is there with exactly its sudo policy.
            assert_eq!(
                trm_exec(&bed, name, &["id", "-un"]),
                (0, "terrarium".into()),
                "{name}"
            );
            assert_eq!(
                trm_exec(&bed, name, &["sudo", "-n", "true"]).0 == 0,
                sudo_ok,
                "{name}"
            );
        }
    });

    t.case("strict_caps_processes_and_turns_interception_off", || {
        let cfg = &instance("p-strict")["expanded_config"];
        assert_eq!(cfg["security.syscalls.intercept.mknod"], "false");
        assert_eq!(cfg["security.syscalls.intercept.setxattr"], "false");
        assert_eq!(cfg["security.idmap.isolated"], "true");
        let limit: u64 = cfg["limits.processes"].as_str().unwrap().parse().unwrap();
        let mut bomb = Command::new("lxc")
            .args([
                "exec",
                "-T",
                "--project",
                N.project,
                "p-strict",
                "--",
                "bash",
                "-c",
                "f() { f | f & }; f",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let mut peak = 0u64;
        while started.elapsed() < Duration::from_secs(8) {
            std::thread::sleep(Duration::from_millis(500));
            let st = lxc_json(&format!(
                "/1.0/instances/p-strict/state?project={}",
                N.project
            ));
            peak = peak.max(st["processes"].as_u64().unwrap_or(0));
        }
        // The host still starts processes and LXD still answers.
        assert!(Command::new("true").status().unwrap().success());
        let list = bed.trm(&["list", "--format", "json"]);
        assert!(list.status.success(), "host unresponsive under the bomb");
        lxc_ok(&["stop", "--force", "--project", N.project, "p-strict"]);
        let _ = bomb.kill();
        let _ = bomb.wait();
        assert!(peak > 100, "the bomb never got going ({peak})");
        assert!(
            peak <= limit,
            "{peak} processes, above limits.processes={limit}"
        );
    });

    t.case("drift_is_shown_and_restored_after_confirmation", || {
        lxc_ok(&[
            "profile",
            "set",
            "--project",
            N.project,
            "strict",
            "limits.processes",
            "99999",
        ]);
        lxc_ok(&["profile", "create", "--project", N.project, "mine"]);
        lxc_ok(&[
            "profile",
            "set",
            "--project",
            N.project,
            "mine",
            "limits.cpu",
            "1",
        ]);
        let list = bed.trm_json_with("trm-profile", &["list"]);
        let find = |n: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"] == n)
                .cloned()
                .unwrap()
        };
        assert_eq!(find("strict")["status"], "drifted");
        assert_eq!(find("mine")["status"], "unmanaged");
        assert_eq!(find("mine")["managed"], false);
        assert_eq!(
            find("default")["used_by"],
            3,
            "p-default, p-strict, p-own-ci"
        );

        let diff = bed.trm_json_with("trm-profile", &["diff", "strict"]);
        let d = &diff[0]["differences"];
        assert_eq!(d.as_array().unwrap().len(), 1, "{diff}");
        assert_eq!(d[0]["key"], "limits.processes");
        assert_eq!(d[0]["live"], "99999");
        assert_eq!(d[0]["want"], "2000");

        // trm init reports the drift but leaves hand edits to the owner.
        let init = bed.trm_json(&bed.init_args());
        assert_eq!(init["changed"], false);
        let live = || {
            lxc_json(&format!("/1.0/profiles/strict?project={}", N.project))["config"]
                ["limits.processes"]
                .clone()
        };
        assert_eq!(live(), "99999");

        bed.refused("trm-profile", &["apply", "strict"], 2, "pass --yes");
        let dry = bed.trm_json_with("trm-profile", &["apply", "strict", "--dry-run"]);
        assert_eq!(dry["profiles"][0]["action"], "restore");
        assert_eq!(live(), "99999");

        let mine_before = lxc_json(&format!("/1.0/profiles/mine?project={}", N.project));
        let done = bed.trm_json_with("trm-profile", &["apply", "--all", "--yes"]);
        assert_eq!(done["changed"], true);
        assert_eq!(live(), "2000");
        assert_eq!(
            lxc_json(&format!("/1.0/profiles/mine?project={}", N.project)),
            mine_before,
            "unmanaged profile touched"
        );
        let again = bed.trm_json_with("trm-profile", &["apply", "--all"]);
        assert_eq!(again["changed"], false, "apply is idempotent");

        bed.refused(
            "trm-profile",
            &["apply", "mine"],
            2,
            "not a Terrarium profile",
        );
    });

    t.case("explain_says_what_each_setting_buys", || {
        let e = bed.trm_json_with("trm-profile", &["explain", "strict"]);
        assert_eq!(e["standalone"], false);
        let keys: Vec<&str> = e["settings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].as_str().unwrap())
            .collect();
        assert!(
            keys.contains(&"limits.processes") && keys.contains(&"security.nesting"),
            "{keys:?}"
        );
        assert!(e["kernel_note"].as_str().unwrap().contains("AppArmor"));
        let human = bed
            .tool("trm-profile")
            .args(["explain", "dev", "--format", "human"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&human.stdout);
        assert!(
            text.contains("passwordless sudo") && text.contains("security.nesting = true"),
            "{text}"
        );
    });

    t.case("launch_refuses_unknown_profiles", || {
        bed.refused(
            "trm",
            &["launch", "p-x", "--profile", "nope"],
            3,
            "profile 'nope' does not exist",
        );
        assert!(!lxc(&["info", "--project", N.project, "p-x"])
            .status
            .success());
    });

    t.case("image_without_cloud_init_is_refused_and_removed", || {
        e2e::ensure_busybox_image();
        let msg = bed.refused(
            "trm",
            &["launch", "p-nocloud", "--image", BUSYBOX_IMAGE],
            4,
            "has no cloud-init",
        );
        assert!(msg.contains("was removed"), "{msg}");
        assert!(
            !lxc(&["info", "--project", N.project, "p-nocloud"])
                .status
                .success(),
            "left behind"
        );
    });

    t.case("docker_runs_inside_default_and_dev", || {
        if !lxc(&["image", "info", DOCKER_IMAGE]).status.success() {
            let out = bed.trm(&[
                "image",
                "build",
                "--alias",
                DOCKER_IMAGE,
                "--package",
                "docker.io",
                "--package",
                "docker-compose",
                "--format",
                "json",
            ]);
            e2e::assert_ok(&out, "building the Docker image variant");
        }
        let work = tempfile::tempdir().unwrap();
        e2e::busybox_rootfs(&work.path().join("rootfs"));
        let tarball = work.path().join("busybox.tar.gz");
        e2e::tar_gz(&work.path().join("rootfs"), &tarball);
        let boxes = [("p-docker", "default"), ("p-docker-dev", "dev")];
        let children: Vec<(&str, Child)> = boxes
            .iter()
            .map(|(n, p)| (*n, launch(&bed, n, &[p], &["--image", DOCKER_IMAGE])))
            .collect();
        for (name, child) in children {
            wait_ok(name, child);
        }
        for (name, profile) in boxes {
            lxc_ok(&[
                "file",
                "push",
                "--project",
                N.project,
                tarball.to_str().unwrap(),
                &format!("{name}/tmp/busybox.tar.gz"),
            ]);
            wait_for_docker(name);
            // dev: the terrarium user drives Docker through sudo; default: root.
            let prefix: Vec<&str> = if profile == "dev" {
                vec!["exec", name, "--", "sudo", "-n"]
            } else {
                vec!["exec", "--root", name, "--"]
            };
            let run = |cmd: &[&str]| bed.trm(&[&prefix[..], cmd].concat());
            let import = run(&["docker", "import", "/tmp/busybox.tar.gz", "trm-busybox"]);
            e2e::assert_ok(&import, &format!("docker import in {name}"));
            let out = run(&[
                "docker",
                "run",
                "--rm",
                "trm-busybox",
                "/bin/echo",
                "hello-from-docker",
            ]);
            e2e::assert_ok(&out, &format!("docker run in {name}"));
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "hello-from-docker",
                "{name}"
            );
        }
    });

    t.case("a_compose_launch_answers_on_the_box_address", || {
        let work = tempfile::tempdir().unwrap();
        let p = |n: &str| work.path().join(n);
        e2e::busybox_rootfs(&p("rootfs"));
        e2e::tar_gz(&p("rootfs"), &p("busybox.tar.gz"));
        // Offline: the service's image comes from the user's own data.
        std::fs::write(
            p("user-data"),
            "#cloud-config\nruncmd:\n  - [sh, -c, 'until docker info >/dev/null 2>&1; do sleep 1; done; \
             docker import /home/terrarium/busybox.tar.gz trm-busybox']\n",
        )
        .unwrap();
        std::fs::write(
            p("compose.yaml"),
            "services:\n  web:\n    image: trm-busybox\n    network_mode: host\n    \
             command: [sh, -c, 'mkdir -p /www && echo compose-ok > /www/index.html && exec httpd -f -p 8080 -h /www']\n",
        )
        .unwrap();
        let path = |n: &str| p(n).to_str().unwrap().to_string();
        let compose = path("compose.yaml");
        // Refused before anything is made: no Docker in the image, no nesting.
        for (extra, says) in [
            (vec![], "has no Docker"),
            (vec!["--image", DOCKER_IMAGE, "--profile", "strict"], "nesting"),
        ] {
            let mut args = vec!["launch", "p-compose-no", "--docker-compose", &compose];
            args.extend(extra);
            bed.refused("trm", &args, 2, says);
            assert!(!lxc(&["info", "--project", N.project, "p-compose-no"]).status.success());
        }
        let file = format!("{}:busybox.tar.gz", path("busybox.tar.gz"));
        let out = bed.trm_json(&[
            "launch", "p-compose", "--image", DOCKER_IMAGE,
            "--cloud-init", &path("user-data"),
            "--file", &file,
            "--docker-compose", &compose,
        ]);
        assert_eq!(out["cloud_init"], "done", "{out:#}");
        assert_eq!(out["compose"]["services"], serde_json::json!(["web"]), "{out:#}");
        assert_eq!(out["compose"]["file"], "/home/terrarium/compose/compose.yaml");
        let ip = out["instance"]["ipv4"].as_str().expect("an address").to_string();
        let mut body = String::new();
        e2e::eventually("the compose service answers", 60, || {
            match ureq::get(&format!("http://{ip}:8080/")).call() {
                Ok(r) => {
                    body = r.into_string().unwrap();
                    true
                }
                Err(_) => false,
            }
        });
        assert_eq!(body, "compose-ok\n");
        // terrarium's project: its file, and it drives Docker.
        let who = root_exec(
            "p-compose",
            &["sh", "-c", "stat -c %U /home/terrarium/compose/compose.yaml; id -nG terrarium"],
        );
        let who = String::from_utf8_lossy(&who.stdout).to_string();
        assert!(who.starts_with("terrarium\n") && who.contains("docker"), "{who}");
        lxc_ok(&["delete", "--force", "--project", N.project, "p-compose"]);

        // A project that cannot come up is reported like a failed
        // cloud-init; --rm-on-failure leaves nothing.
        std::fs::write(p("broken.yaml"), "services:\n  web:\n    image: trm-not-here\n").unwrap();
        bed.refused(
            "trm",
            &["launch", "p-compose-bad", "--image", DOCKER_IMAGE, "--docker-compose", &path("broken.yaml"), "--rm-on-failure"],
            4,
            "docker compose failed in 'p-compose-bad'",
        );
        assert!(!lxc(&["info", "--project", N.project, "p-compose-bad"]).status.success(), "removed");
    });

    t.case("doctor_checks_a_docker_box", || {
        let level = |findings: &Value, check: &str| {
            findings
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["check"] == check)
                .unwrap_or_else(|| panic!("no {check} finding in {findings}"))["status"]
                .clone()
        };
        let healthy = bed
            .tool("trm")
            .args(["doctor", "p-docker-dev", "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(
            healthy.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&healthy.stdout)
        );
        let f: Value = serde_json::from_slice(&healthy.stdout).unwrap();
        for check in ["nesting", "cloud-init", "terrarium user", "docker"] {
            assert_eq!(level(&f, check), "pass", "{check}: {f}");
        }
        // strict turns nesting off and the bomb test left it stopped.
        let sick = bed
            .tool("trm")
            .args(["doctor", "p-strict", "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(sick.status.code(), Some(exit::PROBLEMS));
        let f: Value = serde_json::from_slice(&sick.stdout).unwrap();
        assert_eq!(level(&f, "nesting"), "fail");
        assert_eq!(level(&f, "running"), "fail");
        assert!(
            f.as_array()
                .unwrap()
                .iter()
                .all(|x| x["status"] != "fail" || x["fix"].is_string()),
            "every failure has a fix"
        );
    });

    bed.teardown();
    t.finish()
}

/// A minimal .deb built with the host's dpkg-deb.
fn build_deb(dir: &std::path::Path) -> std::path::PathBuf {
    let root = dir.join("pkg");
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/trm-hello")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        "Package: trm-hello\nVersion: 1.0\nArchitecture: all\nMaintainer: Terrarium tests <tests@terrarium.invalid>\nDescription: test package\n",
    )
    .unwrap();
    std::fs::write(root.join("usr/share/trm-hello/README"), "hello\n").unwrap();
    let deb = dir.join("trm-hello.deb");
    let out = Command::new("dpkg-deb")
        .args(["--build", "--root-owner-group"])
        .arg(&root)
        .arg(&deb)
        .output()
        .unwrap();
    e2e::assert_ok(&out, "dpkg-deb --build");
    deb
}

fn wait_for_docker(name: &str) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        if root_exec(name, &["docker", "info"]).status.success() {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!("dockerd never answered in {name}");
}
