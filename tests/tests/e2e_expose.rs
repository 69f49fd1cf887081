//! End-to-end tests of `trm-expose` against real LXD (TRM_E2E=1): a web
//! server in a container made public by label, files that validate
//! against Traefik's schemas and point at an answering backend, address
//! changes followed by `watch`, stops that withdraw routes, conflicts,
//! raw ports with UFW rules inside a network namespace, crash safety and
//! concurrency.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use terrarium_core::traefik;
use terrarium_tests::e2e::{
    self, eventually, lxc, lxc_json, lxc_ok, Bed, Names, Runner, EXPOSE_SUITE,
};

const N: Names = EXPOSE_SUITE;
const NETNS: &str = "trm-e2e-exp";
const APP: &str = "x-app";
const OTHER: &str = "x-other";
const HOST: &str = "app.example.test";

/// Paths of this suite's Traefik side, firewall copy and restart log.
struct Side {
    dir: tempfile::TempDir,
}

impl Side {
    fn dynamic(&self) -> PathBuf {
        self.dir.path().join("dynamic")
    }
    fn static_file(&self) -> PathBuf {
        self.dir.path().join("traefik.yml")
    }
    fn restart_log(&self) -> PathBuf {
        self.dir.path().join("restarts.log")
    }
    fn restart_fails(&self) -> PathBuf {
        self.dir.path().join("restart-must-fail")
    }
    fn ufw_root(&self) -> PathBuf {
        self.dir.path().join("ufw")
    }
    fn file(&self, instance: &str) -> PathBuf {
        self.dynamic().join(format!("trm-{instance}.yml"))
    }
    fn restarts(&self) -> usize {
        std::fs::read_to_string(self.restart_log())
            .map(|s| s.lines().count())
            .unwrap_or(0)
    }
}

fn sh(script: &str) {
    let st = Command::new("sh").args(["-c", script]).status().unwrap();
    assert!(st.success(), "{script}");
}

/// A hermetic copy of ufw's configuration, and a wrapper that runs ufw in
/// our network namespace: the machine's own firewall is never touched.
fn setup_firewall(side: &Side) -> PathBuf {
    let root = side.ufw_root();
    e2e::ufw_copy(&root);
    let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    sh(&format!("ip netns add {NETNS}"));
    let wrapper = side.dir.path().join("ufw-in-netns");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec ip netns exec {NETNS} ufw \"$@\"\n"),
    )
    .unwrap();
    sh(&format!("chmod +x {}", wrapper.display()));
    let r = root.display();
    sh(&format!(
        "{} --rootdir={r} --datadir={r} --force enable >/dev/null 2>&1",
        wrapper.display()
    ));
    wrapper
}

fn ufw(side: &Side, wrapper: &Path, args: &[&str]) -> String {
    let r = side.ufw_root();
    let out = Command::new(wrapper)
        .arg(format!("--rootdir={}", r.display()))
        .arg(format!("--datadir={}", r.display()))
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Replace the [expose] table of the bed's settings with this suite's.
fn configure(bed: &Bed, side: &Side) {
    let path = bed.config_dir.path().join("terrarium.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let base = text.split("[expose]").next().unwrap().to_string();
    let restart = side.dir.path().join("restart-traefik");
    std::fs::write(
        &restart,
        format!(
            "#!/bin/sh\n[ -e {fail} ] && {{ echo 'traefik: restart refused' >&2; exit 1; }}\necho restarted >> {log}\n",
            fail = side.restart_fails().display(),
            log = side.restart_log().display()
        ),
    )
    .unwrap();
    sh(&format!("chmod +x {}", restart.display()));
    let r = side.ufw_root();
    let expose = format!(
        "[expose]\ndynamic_dir = \"{}\"\nstatic_file = \"{}\"\nroot_domain = \"example.test\"\nrestart_command = [\"{}\"]\nufw = true\nufw_rootdir = \"{}\"\nufw_datadir = \"{}\"\nstate_dir = \"{}\"\n",
        side.dynamic().display(),
        side.static_file().display(),
        restart.display(),
        r.display(),
        r.display(),
        side.dir.path().join("state").display(),
    );
    std::fs::write(&path, base + &expose).unwrap();
}

/// Set a label by hand, as an owner would with `lxc config set`.
fn set_label(instance: &str, label: &str) {
    lxc_ok(&[
        "config",
        "set",
        "--project",
        N.project,
        instance,
        "user.proxy",
        label,
    ]);
}

fn expose(bed: &Bed, args: &[&str]) -> std::process::Output {
    bed.tool("trm-expose")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap()
}

fn expose_json(bed: &Bed, args: &[&str]) -> Value {
    bed.trm_json_with("trm-expose", args)
}

/// The file must parse and validate against Traefik's file-provider schema.
fn valid_file(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
    traefik::validate_dynamic(&v)
        .unwrap_or_else(|e| panic!("{} does not validate: {e:?}", path.display()));
    v
}

fn backend_url(file: &Value) -> String {
    let services = file["http"]["services"].as_object().unwrap();
    services.values().next().unwrap()["loadBalancer"]["servers"][0]["url"]
        .as_str()
        .unwrap()
        .to_string()
}

fn http_status(url: &str) -> String {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "5",
            "-w",
            "%{http_code}",
            url,
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn ipv4(name: &str) -> String {
    let st = lxc_json(&format!(
        "/1.0/instances/{name}/state?project={}",
        N.project
    ));
    st["network"]["eth0"]["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["family"] == "inet")
        .map(|a| a["address"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

fn start_web_server(name: &str) {
    // A real service on 0.0.0.0:3000 that comes back after restarts.
    let unit = "[Unit]\nDescription=test web\n[Service]\nExecStart=/usr/bin/python3 -m http.server 3000 --directory /srv/www\n[Install]\nWantedBy=multi-user.target\n";
    let script = format!(
        "mkdir -p /srv/www && echo 'hello from {name}' > /srv/www/index.html && printf '{}' > /etc/systemd/system/web.service && systemctl daemon-reload && systemctl enable --now web.service",
        unit.replace('\n', "\\n")
    );
    lxc_ok(&[
        "exec",
        "--project",
        N.project,
        name,
        "--",
        "sh",
        "-c",
        &script,
    ]);
    eventually("the web server", 30, || {
        lxc(&[
            "exec",
            "--project",
            N.project,
            name,
            "--",
            "python3",
            "-c",
            "import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/')",
        ])
        .status
        .success()
    });
}

fn main() {
    if !e2e::enabled("e2e_expose") {
        return;
    }
    let mut bed = Bed::new(N);
    let side = Side {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(side.dynamic()).unwrap();
    let wrapper = setup_firewall(&side);
    bed.extra_env
        .push(("TRM_UFW".into(), wrapper.display().to_string()));
    bed.extra_env
        .push(("TRM_LOCK_WAIT_SECS".into(), "300".into()));
    let bed = bed;
    let mut t = Runner::new();

    t.case("setup_two_containers_with_a_web_server", || {
        bed.trm_json(&bed.init_args());
        configure(&bed, &side);
        let a = bed
            .tool("trm")
            .args(["launch", APP, "--format", "json"])
            .output()
            .unwrap();
        e2e::assert_ok(&a, "launch x-app");
        let b = bed
            .tool("trm")
            .args(["launch", OTHER, "--format", "json"])
            .output()
            .unwrap();
        e2e::assert_ok(&b, "launch x-other");
        start_web_server(APP);
        start_web_server(OTHER);
    });

    t.case("add_writes_a_valid_file_whose_backend_answers", || {
        let out = expose_json(&bed, &["add", APP, "--port", "3000", "--host", HOST]);
        assert_eq!(out["changed"], true);
        assert_eq!(
            lxc_ok(&["config", "get", "--project", N.project, APP, "user.proxy"]).trim(),
            "https://app.example.test:3000"
        );
        let file = valid_file(&side.file(APP));
        let url = backend_url(&file);
        assert_eq!(url, format!("http://{}:3000", ipv4(APP)));
        assert_eq!(http_status(&url), "200");
        let rule = file["http"]["routers"]
            .as_object()
            .unwrap()
            .values()
            .map(|r| r["rule"].as_str().unwrap().to_string())
            .collect::<Vec<_>>();
        assert!(rule.contains(&format!("Host(`{HOST}`)")), "{rule:?}");
        // Adding the same thing again changes nothing.
        assert_eq!(
            expose_json(&bed, &["add", APP, "--port", "3000", "--host", HOST])["changed"],
            false
        );
        let list = expose_json(&bed, &["list"]);
        let r = &list["routes"][0];
        assert_eq!(
            (r["instance"].as_str(), r["state"].as_str()),
            (Some(APP), Some("active"))
        );
        assert_eq!(r["public"], format!("https://{HOST}"));
    });

    t.case("a_second_instance_cannot_take_the_host", || {
        let before = std::fs::read(side.file(APP)).unwrap();
        bed.refused(
            "trm-expose",
            &["add", OTHER, "--port", "3000", "--host", HOST],
            2,
            "held by instance 'x-app'",
        );
        assert!(
            lxc_ok(&["config", "get", "--project", N.project, OTHER, "user.proxy"])
                .trim()
                .is_empty()
        );
        assert!(!side.file(OTHER).exists());
        assert_eq!(std::fs::read(side.file(APP)).unwrap(), before);
        bed.refused(
            "trm-expose",
            &[
                "add",
                OTHER,
                "--port",
                "3000",
                "--host",
                "manage.example.test",
            ],
            2,
            "management hostname",
        );
        bed.refused(
            "trm-expose",
            &["add", OTHER, "--port", "3000", "--host", "bad_host.example"],
            2,
            "invalid exposure",
        );
    });

    t.case(
        "hand_set_conflicts_and_bad_labels_block_only_themselves",
        || {
            set_label(
                OTHER,
                "https://app.example.test\nhttps://{{ .Env.X }}\nhttps://other.example.test:3000",
            );
            let out = expose(&bed, &["sync"]);
            assert_eq!(
                out.status.code(),
                Some(1),
                "problems make sync exit non-zero"
            );
            let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
            let problems = rep["problems"].as_array().unwrap();
            assert_eq!(problems.len(), 2, "{problems:?}");
            assert!(problems.iter().all(|p| p["instance"] == OTHER));
            valid_file(&side.file(APP));
            assert!(
                backend_url(&valid_file(&side.file(APP))).contains(&ipv4(APP)),
                "x-app keeps its route"
            );
            let other = valid_file(&side.file(OTHER));
            assert!(
                other.to_string().contains("other.example.test"),
                "x-other's good item is routed"
            );
            assert_eq!(http_status(&backend_url(&other)), "200");
            lxc_ok(&[
                "config",
                "unset",
                "--project",
                N.project,
                OTHER,
                "user.proxy",
            ]);
            assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
            assert!(!side.file(OTHER).exists(), "no exposure left, no file");
        },
    );

    t.case("a_copy_never_steals_its_originals_route", || {
        lxc_ok(&["copy", "--project", N.project, APP, "x-copy"]);
        lxc_ok(&["start", "--project", N.project, "x-copy"]);
        let out = expose(&bed, &["sync"]);
        assert_eq!(out.status.code(), Some(1));
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            rep["problems"][0]["message"]
                .as_str()
                .unwrap()
                .contains("held by instance 'x-app'"),
            "{rep}"
        );
        assert!(!side.file("x-copy").exists());
        assert!(backend_url(&valid_file(&side.file(APP))).contains(&ipv4(APP)));
        lxc_ok(&["delete", "--force", "--project", N.project, "x-copy"]);
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
    });

    t.case("watch_follows_a_restart_to_the_new_address", || {
        let mut watch = bed.spawn_quiet("trm-expose", &["watch", "--format", "jsonl"]);
        let old = ipv4(APP);
        // A different fixed address, so the restart really moves it.
        let last: u8 = old.rsplit('.').next().unwrap().parse().unwrap();
        let new = format!(
            "{}.{}",
            old.rsplit_once('.').unwrap().0,
            if last < 200 { last + 50 } else { last - 50 }
        );
        lxc_ok(&["stop", "--project", N.project, APP]);
        lxc_ok(&[
            "config",
            "device",
            "override",
            "--project",
            N.project,
            APP,
            "eth0",
            &format!("ipv4.address={new}"),
        ]);
        lxc_ok(&["start", "--project", N.project, APP]);
        eventually("the file to follow the new address", 60, || {
            std::fs::read_to_string(side.file(APP))
                .is_ok_and(|t| t.contains(&format!("http://{new}:3000")))
        });
        let _ = watch.kill();
        let _ = watch.wait();
        let url = backend_url(&valid_file(&side.file(APP)));
        eventually("the backend to answer", 30, || http_status(&url) == "200");
    });

    t.case("stopping_withdraws_routes_but_keeps_the_claim", || {
        lxc_ok(&["stop", "--project", N.project, APP]);
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
        assert!(
            !side.file(APP).exists(),
            "a stopped instance's routes carry no traffic"
        );
        let list = expose_json(&bed, &["list"]);
        assert_eq!(list["routes"][0]["state"], "stopped");
        bed.refused(
            "trm-expose",
            &["add", OTHER, "--port", "3000", "--host", HOST],
            2,
            "held by instance 'x-app'",
        );
        lxc_ok(&["start", "--project", N.project, APP]);
        eventually("the route to come back", 60, || {
            expose(&bed, &["sync"]);
            side.file(APP).exists()
        });
        valid_file(&side.file(APP));
    });

    t.case(
        "tcp_exposure_adds_entrypoint_and_firewall_rule_and_remove_takes_both",
        || {
            let restarts = side.restarts();
            let out = expose_json(&bed, &["add", APP, "--tcp", "15432:3000"]);
            assert_eq!(out["changed"], true);
            let st: Value =
                serde_json::from_str(&std::fs::read_to_string(side.static_file()).unwrap())
                    .unwrap();
            traefik::validate_static(&st).unwrap();
            assert_eq!(st["entryPoints"]["tcp-15432"]["address"], ":15432/tcp");
            assert_eq!(
                side.restarts(),
                restarts + 1,
                "entrypoints changed: one restart"
            );
            let file = valid_file(&side.file(APP));
            assert_eq!(
                file["tcp"]["services"]["trm-x-app_tcp-15432"]["loadBalancer"]["servers"][0]
                    ["address"],
                format!("{}:3000", ipv4(APP))
            );
            let rules = ufw(&side, &wrapper, &["show", "added"]);
            assert!(
                rules.contains(&format!(
                    "allow 15432/tcp comment 'terrarium-expose {}/x-app'",
                    N.project
                )),
                "{rules}"
            );
            let ipt = Command::new("ip")
                .args(["netns", "exec", NETNS, "iptables", "-S", "ufw-user-input"])
                .output()
                .unwrap();
            assert!(
                String::from_utf8_lossy(&ipt.stdout).contains("--dport 15432 -j ACCEPT"),
                "the rule is live in the namespace"
            );
            // A sync with nothing new restarts nothing.
            assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
            assert_eq!(side.restarts(), restarts + 1);

            expose_json(&bed, &["remove", APP, "--tcp", "15432"]);
            let st: Value =
                serde_json::from_str(&std::fs::read_to_string(side.static_file()).unwrap())
                    .unwrap();
            assert!(st["entryPoints"].get("tcp-15432").is_none());
            assert!(!ufw(&side, &wrapper, &["show", "added"]).contains("15432"));
            assert_eq!(side.restarts(), restarts + 2);
            assert!(valid_file(&side.file(APP)).get("tcp").is_none());
        },
    );

    t.case("ports_the_host_needs_or_others_own_are_refused", || {
        bed.refused(
            "trm-expose",
            &["add", APP, "--tcp", "22"],
            2,
            "the host itself needs",
        );
        bed.refused(
            "trm-expose",
            &["add", APP, "--tcp", "443:3000"],
            2,
            "the host itself needs",
        );
        bed.refused(
            "trm-expose",
            &["add", APP, "--udp", "70000"],
            2,
            "between 1 and 65535",
        );
        ufw(
            &side,
            &wrapper,
            &["allow", "16000/tcp", "comment", "my own rule"],
        );
        bed.refused(
            "trm-expose",
            &["add", APP, "--tcp", "16000:3000"],
            2,
            "UFW rule Terrarium does not own",
        );
        let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port().to_string();
        bed.refused(
            "trm-expose",
            &["add", APP, "--tcp", &format!("{port}:3000")],
            2,
            "already listens",
        );
        // Syncs never touch someone else's rule.
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
        assert!(ufw(&side, &wrapper, &["show", "added"])
            .contains("allow 16000/tcp comment 'my own rule'"));
    });

    t.case("a_failed_restart_is_remembered_and_retried", || {
        std::fs::write(side.restart_fails(), "").unwrap();
        let out = expose(&bed, &["add", APP, "--udp", "15353:3000"]);
        assert!(
            out.status.success(),
            "the label change itself lands: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rep["sync"]["restart"], "failed");
        let list = expose_json(&bed, &["list"]);
        assert_eq!(list["traefik"]["restart_pending"], true);
        assert!(list["traefik"]["last_restart_error"]
            .as_str()
            .unwrap()
            .contains("restart refused"));
        std::fs::remove_file(side.restart_fails()).unwrap();
        let restarts = side.restarts();
        let rep = expose_json(&bed, &["sync"]);
        assert_eq!(rep["restart"], "ok");
        assert_eq!(side.restarts(), restarts + 1);
        assert_eq!(
            expose_json(&bed, &["list"])["traefik"]["restart_pending"],
            false
        );
        expose_json(&bed, &["remove", APP, "--udp", "15353"]);
    });

    t.case("lxd_unreachable_changes_nothing", || {
        let snapshot = || -> BTreeMap<String, Vec<u8>> {
            std::fs::read_dir(side.dynamic())
                .unwrap()
                .flatten()
                .map(|e| {
                    (
                        e.file_name().to_string_lossy().into_owned(),
                        std::fs::read(e.path()).unwrap(),
                    )
                })
                .collect()
        };
        let before = snapshot();
        assert!(!before.is_empty());
        let out = bed
            .tool("trm-expose")
            .args(["sync", "--format", "json"])
            .env("LXD_DIR", "/nonexistent-lxd")
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(69));
        assert_eq!(
            snapshot(),
            before,
            "no route withdrawn for a missing daemon"
        );
    });

    t.case("kill_9_mid_sync_never_leaves_a_broken_file", || {
        for round in 0..20u64 {
            let path = if round % 2 == 0 { "/a" } else { "/b" };
            set_label(APP, &format!("https://app.example.test:3000{path}"));
            let mut child = bed.spawn_quiet("trm-expose", &["sync", "--format", "json"]);
            std::thread::sleep(Duration::from_millis(20 + (round * 37) % 200));
            let _ = Command::new("kill")
                .args(["-9", &child.id().to_string()])
                .status();
            let _ = child.wait();
            for e in std::fs::read_dir(side.dynamic()).unwrap().flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if traefik::is_our_file(&name) {
                    valid_file(&e.path());
                }
            }
        }
        set_label(APP, "https://app.example.test:3000");
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
        // Leftover temporary files are dot-files Traefik ignores.
        for e in std::fs::read_dir(side.dynamic()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                traefik::is_our_file(&name) || name.starts_with('.'),
                "{name}"
            );
        }
    });

    t.case("fifty_concurrent_adds_all_land", || {
        for i in 0..50 {
            lxc_ok(&[
                "init",
                "--project",
                N.project,
                "terrarium/debian12",
                &format!("x-many-{i}"),
            ]);
        }
        let children: Vec<_> = (0..50)
            .map(|i| {
                bed.tool("trm-expose")
                    .args([
                        "add",
                        &format!("x-many-{i}"),
                        "--port",
                        "80",
                        "--host",
                        &format!("many-{i}.example.test"),
                        "--format",
                        "json",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for (i, c) in children.into_iter().enumerate() {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "add {i}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let list = expose_json(&bed, &["list"]);
        let many = list["routes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["instance"].as_str().unwrap().starts_with("x-many-"))
            .count();
        assert_eq!(many, 50);
        for i in 0..50 {
            let label = lxc_ok(&[
                "config",
                "get",
                "--project",
                N.project,
                &format!("x-many-{i}"),
                "user.proxy",
            ]);
            assert_eq!(label.trim(), format!("https://many-{i}.example.test"));
        }
    });

    t.case(
        "service_units_are_written_and_the_missing_systemd_is_said",
        || {
            let dir = tempfile::tempdir().unwrap();
            let d = dir.path().to_str().unwrap();
            let rep = expose_json(&bed, &["service", "install", "--unit-dir", d]);
            let units = std::fs::read_dir(d).unwrap().count();
            assert_eq!(units, 3);
            let watch =
                std::fs::read_to_string(dir.path().join("trm-expose-watch.service")).unwrap();
            assert!(watch.contains("trm-expose watch"), "{watch}");
            let timer = std::fs::read_to_string(dir.path().join("trm-expose-sync.timer")).unwrap();
            assert!(timer.contains("OnUnitActiveSec=5min"), "{timer}");
            if !Path::new("/run/systemd/system").is_dir() {
                assert_eq!(rep["systemd"], false);
                assert!(rep["note"].as_str().unwrap().contains("no systemd"));
            }
            let st = expose_json(&bed, &["service", "status", "--unit-dir", d]);
            assert!(st
                .as_array()
                .unwrap()
                .iter()
                .all(|u| u["installed"] == true));
            expose_json(&bed, &["service", "remove", "--unit-dir", d]);
            assert_eq!(std::fs::read_dir(d).unwrap().count(), 0);
        },
    );

    bed.teardown();
    let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    t.finish()
}
