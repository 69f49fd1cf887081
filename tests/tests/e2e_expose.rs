//! End-to-end tests of `trm-expose` against real LXD, a real Traefik and
//! a real ACME CA (pebble), all on loopback or the suite's own bridge
//! (TRM_E2E=1). Every route is checked the way a user would: a request
//! through Traefik, the body from the right container, the certificate
//! chain verified against pebble's root. Also: address changes followed
//! by `watch`, stops that withdraw routes, conflicts, raw TCP and UDP
//! ports with UFW rules inside a network namespace, verified restarts,
//! a broken file planted in the watched directory, crash safety and
//! concurrency.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use terrarium_core::error::exit;

use serde_json::Value;
use terrarium_core::traefik;
use terrarium_tests::e2e::{self, eventually, lxc, lxc_ok, Bed, Names, Runner, EXPOSE_SUITE};
use terrarium_tests::proxy::{Pebble, Ports};

const N: Names = EXPOSE_SUITE;
const NETNS: &str = "trm-e2e-exp";
const APP: &str = "x-app";
const OTHER: &str = "x-other";
const HOST: &str = "app.example.test";
/// A second LXD project on the suite's bridge and pool (another tenant).
const PROJECT_B: &str = "trm-e2e-exp-b";
const PORTS: Ports = Ports {
    http: 18080,
    https: 18443,
    api: 18082,
    acme: 14000,
    acme_mgmt: 15001,
    dns: 18053,
};
/// The single-sign-on gate's address: nothing listens there, so `@auth`
/// routes must fail closed.
const GATE: &str = "http://127.0.0.1:14180";

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
    fn restart_fails(&self) -> PathBuf {
        self.dir.path().join("traefik-must-fail")
    }
    fn sshd_config(&self) -> PathBuf {
        self.dir.path().join("sshd_config")
    }
    fn ufw_root(&self) -> PathBuf {
        self.dir.path().join("ufw")
    }
    fn file(&self, instance: &str) -> PathBuf {
        self.file_in(N.project, instance)
    }
    fn file_in(&self, project: &str, instance: &str) -> PathBuf {
        self.dynamic().join(traefik::file_name(project, instance))
    }
    /// The instance files of one project, by name, with their bytes.
    fn files_of(&self, project: &str) -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(self.dynamic())
            .unwrap()
            .flatten()
            .filter(|e| {
                matches!(traefik::owner_of_file(&e.file_name().to_string_lossy()),
                    Some(traefik::FileOwner::Project { project: p, .. }) if p == project)
            })
            .map(|e| {
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect()
    }
    fn claims(&self) -> Value {
        serde_json::from_slice(
            &std::fs::read(self.dir.path().join("state/expose-claims.json")).unwrap(),
        )
        .unwrap()
    }
    /// Traefik's pid, from the pid file Terrarium's supervision keeps.
    fn traefik_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("state/traefik.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// A hermetic copy of ufw's configuration, and a wrapper that runs ufw in
/// our network namespace: the machine's own firewall is never touched.
fn setup_firewall(side: &Side) -> PathBuf {
    let root = side.ufw_root();
    e2e::ufw_copy(&root);
    let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    e2e::sh(&format!("ip netns add {NETNS}"));
    let wrapper = side.dir.path().join("ufw-in-netns");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec ip netns exec {NETNS} ufw \"$@\"\n"),
    )
    .unwrap();
    e2e::sh(&format!("chmod +x {}", wrapper.display()));
    let r = root.display();
    e2e::sh(&format!(
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

/// Replace the [expose] table of the bed's settings with this suite's:
/// Traefik on loopback ports of its own, ACME from pebble, and a wrapper
/// around the pinned binary that refuses to start while a flag file
/// exists, or with an entrypoint udp-15355 (to prove a failed restart is
/// remembered, retried, and rolled back to the last working file).
fn configure(bed: &Bed, side: &Side, pebble: &Pebble) {
    let path = bed.config_dir.path().join("terrarium.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let base = text.split("[expose]").next().unwrap().to_string();
    let wrapper = side.dir.path().join("traefik");
    std::fs::write(
        &wrapper,
        format!(
            "#!/bin/sh\n[ -e {fail} ] && {{ echo 'traefik: refusing to start (test flag)' >&2; exit 1; }}\n\
             grep -q '\"udp-15355\"' \"${{1#--configFile=}}\" && {{ echo 'traefik: refusing udp-15355 (test)' >&2; exit 1; }}\n\
             exec /usr/local/bin/traefik \"$@\"\n",
            fail = side.restart_fails().display(),
        ),
    )
    .unwrap();
    e2e::sh(&format!(
        "chmod 0755 {} {}",
        wrapper.display(),
        side.dir.path().display()
    ));
    let r = side.ufw_root();
    let d = side.dir.path();
    let expose = format!(
        "[expose]\ndynamic_dir = \"{}\"\nstatic_file = \"{}\"\nroot_domain = \"example.test\"\nufw = true\nufw_rootdir = \"{r}\"\nufw_datadir = \"{r}\"\nstate_dir = \"{}\"\n\
         acme_storage = \"{}\"\nacme_ca_server = \"{}\"\nacme_ca_certificates = \"{}\"\n\
         http_address = \"127.0.0.1:{}\"\nhttps_address = \"127.0.0.1:{}\"\napi_address = \"127.0.0.1:{}\"\n\
         auth_address = \"{GATE}\"\ntraefik_binary = \"{}\"\nlog_dir = \"{}\"\nsupervisor = \"terrarium\"\n",
        side.dynamic().display(),
        side.static_file().display(),
        d.join("state").display(),
        d.join("acme/acme.json").display(),
        pebble.directory_url(),
        pebble.ca().display(),
        PORTS.http,
        PORTS.https,
        PORTS.api,
        wrapper.display(),
        d.join("log").display(),
        r = r.display(),
    );
    std::fs::write(&path, base + &expose).unwrap();
}

fn unset_label(instance: &str) {
    lxc_ok(&[
        "config",
        "unset",
        "--project",
        N.project,
        instance,
        "user.proxy",
    ]);
}

fn expose(bed: &Bed, args: &[&str]) -> std::process::Output {
    bed.tool("trm-expose")
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap()
}

/// A sync that finds problems (exit 5), and those of one instance.
fn sync_problems_of(bed: &Bed, instance: &str) -> Vec<Value> {
    let out = expose(bed, &["sync"]);
    assert_eq!(
        out.status.code(),
        Some(exit::PROBLEMS),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
    rep["problems"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["instance"] == instance)
        .cloned()
        .collect()
}

/// `trm-expose` working in another project.
fn expose_in(bed: &Bed, project: &str, args: &[&str]) -> std::process::Output {
    bed.tool("trm-expose")
        .env("TRM_PROJECT", project)
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap()
}

/// Project B and its instances, gone.
fn clean_project_b() {
    let list = lxc(&["list", "--project", PROJECT_B, "--format", "csv", "-c", "n"]);
    for name in String::from_utf8_lossy(&list.stdout).lines() {
        lxc(&["delete", "--force", "--project", PROJECT_B, name.trim()]);
    }
    lxc(&["project", "delete", PROJECT_B]);
}

fn expose_json(bed: &Bed, args: &[&str]) -> Value {
    bed.trm_json_with("trm-expose", args)
}

/// The file must parse and validate against Traefik's file-provider schema.
fn valid_file(path: &Path) -> Value {
    let v = e2e::read_json(path);
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

fn ipv4(name: &str) -> String {
    ipv4_in(N.project, name)
}

fn ipv4_in(project: &str, name: &str) -> String {
    e2e::reported_ipv4(project, name)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// A sync refuses exactly one of `instance`'s items, `item`, saying `why`.
fn the_one_problem_of(bed: &Bed, instance: &str, item: &str, why: &str) {
    let problems = sync_problems_of(bed, instance);
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0]["item"], item);
    let message = problems[0]["message"].as_str().unwrap();
    assert!(message.contains(why), "{problems:?}");
}

fn in_container(name: &str, script: &str) {
    in_project(N.project, name, script)
}

/// Run an idempotent script as root in a container (retried when LXD
/// loses track of the exec's child, as `e2e::exec_ok` says).
fn in_project(project: &str, name: &str, script: &str) {
    e2e::exec_ok(project, name, script);
}

/// Real services that come back after restarts: HTTP on 0.0.0.0:3000
/// saying whose it is, and a UDP echo on 5353 doing the same.
fn start_services(name: &str) {
    start_services_in(N.project, name)
}

fn start_services_in(project: &str, name: &str) {
    in_project(
        project,
        name,
        &format!(
            "mkdir -p /srv/www/shared && echo 'hello from {name}' > /srv/www/index.html && echo 'shared of {name}' > /srv/www/shared/index.html && \
             printf 'import socket\\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\\ns.bind((\"0.0.0.0\", 5353))\\nwhile True:\\n    d, a = s.recvfrom(2048)\\n    s.sendto(b\"echo from {name}: \" + d, a)\\n' > /srv/echo.py"
        ),
    );
    e2e::service(
        project,
        name,
        "web",
        "/usr/bin/python3 -m http.server 3000 --directory /srv/www",
    );
    e2e::service(project, name, "echo", "/usr/bin/python3 /srv/echo.py");
    eventually("the web server", 30, || {
        lxc(&[
            "exec",
            "--project",
            project,
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

/// Wait until `https://host/` through Traefik verifies against pebble's
/// root (the ACME certificate is there) and answers from `instance`.
fn serves(pebble: &Pebble, scheme: &str, host: &str, instance: &str) {
    let want = format!("hello from {instance}");
    let mut last = None;
    let start = std::time::Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let r = pebble.get(scheme, host, "/");
        if r.ok_from(&want) {
            return;
        }
        last = Some(r);
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{scheme}://{host} never served {want:?}: last {last:?}");
}

/// One UDP datagram to Traefik's entrypoint on loopback; the reply, if any.
fn udp_echo(port: u16, text: &str) -> String {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.send_to(text.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 2048];
    match s.recv_from(&mut buf) {
        Ok((n, _)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        Err(_) => String::new(),
    }
}

/// A plain HTTP/1.0 request over a TCP entrypoint on loopback.
fn tcp_get(port: u16) -> String {
    use std::io::{Read, Write};
    let Ok(mut c) = std::net::TcpStream::connect_timeout(
        &format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(2),
    ) else {
        return String::new();
    };
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = c.write_all(b"GET / HTTP/1.0\r\n\r\n");
    let mut out = String::new();
    let _ = c.read_to_string(&mut out);
    out
}

fn proxy_status(bed: &Bed) -> Value {
    let out = expose(bed, &["proxy", "status"]);
    serde_json::from_slice(&out.stdout).unwrap()
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_expose") {
        return std::process::ExitCode::SUCCESS;
    }
    let mut bed = Bed::new(N);
    let side = Side {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(side.dynamic()).unwrap();
    let pebble = Pebble::start(&side.dir.path().join("pebble"), PORTS);
    let wrapper = setup_firewall(&side);
    std::fs::write(side.sshd_config(), "Port 22\nPort 2299\n").unwrap();
    bed.extra_env
        .push(("TRM_UFW".into(), wrapper.display().to_string()));
    bed.extra_env.push((
        "TRM_SSHD_CONFIG".into(),
        side.sshd_config().display().to_string(),
    ));
    bed.extra_env
        .push(("TRM_LOCK_WAIT_SECS".into(), "300".into()));
    let bed = bed;
    let mut t = Runner::new();

    t.setup("setup_traefik_and_two_containers_with_services", || {
        bed.trm_json(&bed.init_args());
        configure(&bed, &side, &pebble);
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
        start_services(APP);
        start_services(OTHER);
        // The first sync writes the static file; Traefik starts, verified.
        expose_json(&bed, &["sync"]);
        let st = expose_json(&bed, &["proxy", "start"]);
        assert_eq!(st["running"], true, "{st}");
        assert_eq!(st["answering"], true, "{st}");
        assert_eq!(st["version"], "3.7.15");
        assert_eq!(
            st["supervisor"], "terrarium",
            "no systemd here: Terrarium supervises"
        );
        let pid = side.traefik_pid().expect("a pid file");
        let user = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid_line = user
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .unwrap()
            .to_string();
        assert!(
            !uid_line.split_whitespace().skip(1).any(|u| u == "0"),
            "Traefik runs unprivileged: {uid_line}"
        );
        let cap_eff = user.lines().find(|l| l.starts_with("CapEff:")).unwrap();
        assert!(
            cap_eff.ends_with("0000000000000400"),
            "only CAP_NET_BIND_SERVICE: {cap_eff}"
        );
        let st: Value =
            serde_json::from_str(&std::fs::read_to_string(side.static_file()).unwrap()).unwrap();
        assert_eq!(st["global"]["checkNewVersion"], false, "no phoning home");
        assert_eq!(st["global"]["sendAnonymousUsage"], false);
        // Nothing routed: an unknown host answers 404 over HTTP; over
        // HTTPS it gets Traefik's default certificate, which does not
        // verify, and never a container's page.
        let r = pebble.get("http", "nobody.example.test", "/");
        assert_eq!(r.status, 404, "{r:?}");
        assert!(!r.body.contains("hello from"));
        let r = pebble.get("https", "nobody.example.test", "/");
        assert_eq!(
            r.curl_exit, 60,
            "no certificate for a host nobody routes: {r:?}"
        );
    });

    t.case(
        "https_route_serves_the_right_container_with_a_pebble_certificate",
        || {
            let out = expose_json(&bed, &["add", APP, "--port", "3000", "--host", HOST]);
            assert_eq!(out["changed"], true);
            assert_eq!(
                lxc_ok(&["config", "get", "--project", N.project, APP, "user.proxy"]).trim(),
                "https://app.example.test:3000"
            );
            let file = valid_file(&side.file(APP));
            assert_eq!(backend_url(&file), format!("http://{}:3000", ipv4(APP)));
            // Through Traefik, TLS verified against pebble's root: the ACME
            // certificate came through the HTTP-01 challenge Traefik answered.
            serves(&pebble, "https", HOST, APP);
            // HTTP redirects to HTTPS, on the HTTPS entrypoint's port.
            let r = pebble.get("http", HOST, "/x");
            assert!(matches!(r.status, 301 | 308), "{r:?}");
            assert_eq!(r.redirect, format!("https://{HOST}:{}/x", PORTS.https));
            // A host with no route: 404, and never a container's page.
            for scheme in ["http", "https"] {
                let r = pebble.get(scheme, "unrouted.example.test", "/");
                assert!(!r.body.contains("hello from"), "{r:?}");
            }
            assert_eq!(pebble.get("http", "unrouted.example.test", "/").status, 404);
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
            let st = proxy_status(&bed);
            assert_eq!(
                st["files"]["missing"],
                serde_json::json!([]),
                "Traefik loaded every Terrarium router: {st}"
            );
            assert!(st["files"]["loaded"].as_u64().unwrap() >= 2);
        },
    );

    t.case("http_route_serves_plain_http", || {
        expose_json(
            &bed,
            &[
                "add",
                OTHER,
                "--port",
                "3000",
                "--host",
                "plain.example.test",
                "--http",
            ],
        );
        serves(&pebble, "http", "plain.example.test", OTHER);
        let r = pebble.get("http", "plain.example.test", "/");
        assert_eq!(r.status, 200, "no redirect for an http:// item: {r:?}");
        expose_json(&bed, &["remove", OTHER, "--host", "plain.example.test"]);
        eventually("the removed route to 404", 10, || {
            pebble.get("http", "plain.example.test", "/").status == 404
        });
    });

    t.case("an_agent_box_behind_its_own_bridge_is_served_too", || {
        // Its ACL lets only the host in: Traefik, from the bridge's address.
        let agent = "x-agent";
        let host = "agent.example.test";
        let launched = bed.trm_json(&["launch", agent, "--profile", "agent"]);
        assert_eq!(launched["instance"]["egress"]["policy"], "public");
        start_services(agent);
        let file = {
            expose_json(&bed, &["add", agent, "--port", "3000", "--host", host]);
            valid_file(&side.file(agent))
        };
        assert_eq!(backend_url(&file), format!("http://{}:3000", ipv4(agent)));
        serves(&pebble, "https", host, agent);
        expose_json(&bed, &["remove", agent, "--host", host]);
        bed.trm_json(&["delete", agent, "--force", "--yes"]);
        eventually("the removed route to 404", 10, || {
            pebble.get("http", host, "/").status == 404
        });
    });

    t.case("a_recipe_exposes_only_once_the_service_answers", || {
        let name = "x-recipe";
        let host = "recipe.example.test";
        let dir = tempfile::tempdir().unwrap();
        let ud = dir.path().join("user-data.yaml");
        // The app comes up a few seconds after first boot is done.
        std::fs::write(
            &ud,
            format!(
                "#cloud-config\nwrite_files:\n  - path: /srv/www/index.html\n    content: hello from {name}\n\
                 runcmd:\n  - [sh, -c, 'nohup sh -c \"sleep 6; exec python3 -m http.server 3000 --directory /srv/www\" >/dev/null 2>&1 &']\n"
            ),
        )
        .unwrap();
        // Whenever the label is there, the app must already answer.
        let done = std::sync::atomic::AtomicBool::new(false);
        let early = std::thread::scope(|s| {
            let watcher = s.spawn(|| {
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let label = lxc(&["config", "get", "--project", N.project, name, "user.proxy"]);
                    if label.status.success() && !String::from_utf8_lossy(&label.stdout).trim().is_empty() {
                        let up = e2e::sh_in(
                            N.project,
                            name,
                            "python3 -c \"import urllib.request; urllib.request.urlopen('http://127.0.0.1:3000/')\"",
                        );
                        return !up.status.success();
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                false
            });
            let out = bed.trm_json(&[
                "launch",
                name,
                "--cloud-init",
                ud.to_str().unwrap(),
                "--proxy",
                &format!("https://{host}:3000"),
                "--wait-http",
                "3000",
            ]);
            done.store(true, std::sync::atomic::Ordering::Relaxed);
            assert!(out["exposure"]["answered_after"].as_f64().is_some(), "{out}");
            assert_eq!(out["exposure"]["change"]["changed"], true, "{out}");
            watcher.join().unwrap()
        });
        assert!(!early, "the label was set before the app answered");
        serves(&pebble, "https", host, name);
        bed.trm_json(&["delete", name, "--force", "--yes"]);

        // A label the policy refuses (plain HTTP cannot carry sign-on):
        // nothing is made.
        bed.refused(
            "trm",
            &["launch", "x-nope", "--proxy", "http://nope.example.test:3000@auth"],
            2,
            "nothing was created",
        );
        assert!(!lxc(&["info", "--project", N.project, "x-nope"]).status.success());
        // An app that never answers: the box is left, never exposed; or,
        // with --rm-on-failure, gone.
        let never = |rm: bool| {
            let mut args = vec![
                "launch", "x-never", "--proxy", "https://never.example.test:3001",
                "--wait-http", "3001", "--timeout", "20",
            ];
            if rm {
                args.push("--rm-on-failure");
            }
            bed.refused("trm", &args, 4, if rm { "was removed" } else { "not exposed" })
        };
        never(false);
        let label = lxc(&["config", "get", "--project", N.project, "x-never", "user.proxy"]);
        assert!(label.status.success(), "the box is left: {label:?}");
        assert_eq!(String::from_utf8_lossy(&label.stdout).trim(), "");
        bed.trm_json(&["delete", "x-never", "--force", "--yes"]);
        never(true);
        assert!(!lxc(&["info", "--project", N.project, "x-never"]).status.success());
    });

    t.case("auth_routes_fail_closed_while_the_gate_is_down", || {
        expose_json(
            &bed,
            &[
                "add",
                OTHER,
                "--port",
                "3000",
                "--host",
                "secret.example.test",
                "--auth=admins",
            ],
        );
        eventually("the auth route to be loaded", 60, || {
            let r = pebble.get("https", "secret.example.test", "/");
            r.curl_exit == 0 && r.status != 404
        });
        let r = pebble.get("https", "secret.example.test", "/");
        assert!(
            r.status >= 500,
            "a down gate must not let anyone through: {r:?}"
        );
        assert!(!r.body.contains("hello from"), "{r:?}");
        expose_json(&bed, &["remove", OTHER, "--host", "secret.example.test"]);
    });

    t.case("a_second_instance_cannot_take_the_host", || {
        let before = std::fs::read(side.file(APP)).unwrap();
        bed.refused(
            "trm-expose",
            &["add", OTHER, "--port", "3000", "--host", HOST],
            2,
            "held by instance 'x-app'",
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
        serves(&pebble, "https", HOST, APP);
    });

    t.case("check_tells_everything_sync_would_refuse", || {
        let label = format!(
            "tcp://22:22, tcp://443:8443, https://manage.example.test, tcp://2299:22, udp://67, https://{HOST}, https://fine.example.test:3000, https://fine.example.test:3001"
        );
        let out = expose(&bed, &["check", &label, "--instance", OTHER]);
        assert_eq!(out.status.code(), Some(exit::PROBLEMS), "{}", String::from_utf8_lossy(&out.stderr));
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rep["valid"], false);
        assert_eq!(rep["conflicts_checked"], true);
        let problem = |item: &str| -> String {
            rep["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["item"].as_str().unwrap().starts_with(item))
                .unwrap_or_else(|| panic!("{item} in {rep}"))["problem"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        assert!(problem("tcp://22").contains("host itself needs"));
        assert!(problem("tcp://443").contains("host itself needs"));
        assert!(problem("https://manage.").contains("management hostname"));
        assert!(problem("tcp://2299").contains("(SSH)"), "sshd's configured port");
        assert!(problem("udp://67").contains("already listens"), "dnsmasq's DHCP port");
        assert!(problem(&format!("https://{HOST}")).contains("held by instance 'x-app'"));
        assert_eq!(problem("https://fine.example.test:3000"), "");
        assert!(
            problem("https://fine.example.test:3001").contains("already routed by"),
            "a second port for the same host replaces nothing silently"
        );
        // The same label set by hand: sync refuses exactly those items.
        e2e::set_label(N.project, OTHER, &label);
        let out = expose(&bed, &["sync"]);
        assert_eq!(out.status.code(), Some(exit::PROBLEMS));
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        let refused: Vec<String> = rep["problems"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["instance"] == OTHER)
            .map(|p| p["item"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(refused.len(), 7, "{refused:?}");
        let st: Value = serde_json::from_str(&std::fs::read_to_string(side.static_file()).unwrap()).unwrap();
        for ep in ["tcp-22", "tcp-443", "tcp-2299", "udp-67"] {
            assert!(st["entryPoints"].get(ep).is_none(), "{ep} must not become an entrypoint");
        }
        serves(&pebble, "https", "fine.example.test", OTHER);
        serves(&pebble, "https", HOST, APP);
        lxc_ok(&["config", "unset", "--project", N.project, OTHER, "user.proxy"]);
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
        assert!(!side.file(OTHER).exists(), "no exposure left, no file");
        // A label check needs no instance: a new one loses every claim.
        let out = expose(&bed, &["check", &format!("https://{HOST}")]);
        assert_eq!(out.status.code(), Some(exit::PROBLEMS));
    });

    t.case("hand_set_bad_labels_block_only_themselves", || {
        e2e::set_label(
            N.project,
            OTHER,
            "https://{{ .Env.X }}\nhttps://other.example.test:3000",
        );
        let out = expose(&bed, &["sync"]);
        assert_eq!(
            out.status.code(),
            Some(exit::PROBLEMS),
            "problems make sync exit non-zero"
        );
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        let problems = rep["problems"].as_array().unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        serves(&pebble, "https", "other.example.test", OTHER);
        serves(&pebble, "https", HOST, APP);
        lxc_ok(&[
            "config",
            "unset",
            "--project",
            N.project,
            OTHER,
            "user.proxy",
        ]);
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
    });

    t.case("a_copy_never_steals_its_originals_route", || {
        lxc_ok(&["copy", "--project", N.project, APP, "x-copy"]);
        lxc_ok(&["start", "--project", N.project, "x-copy"]);
        in_container("x-copy", "echo 'hello from x-copy' > /srv/www/index.html");
        let out = expose(&bed, &["sync"]);
        assert_eq!(out.status.code(), Some(exit::PROBLEMS));
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            rep["problems"][0]["message"]
                .as_str()
                .unwrap()
                .contains("held by instance 'x-app'"),
            "{rep}"
        );
        assert!(!side.file("x-copy").exists());
        serves(&pebble, "https", HOST, APP);
        lxc_ok(&["delete", "--force", "--project", N.project, "x-copy"]);
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
    });

    t.case(
        "a_sub_path_of_a_held_host_is_refused_unless_its_holder_shares_it",
        || {
            in_container(
                OTHER,
                "mkdir -p /srv/www/api && echo 'api of x-other' > /srv/www/api/index.html",
            );
            // The attack: x-app holds the host behind single sign-on, and a
            // later instance asks for /api of it, without auth.
            e2e::set_label(N.project, APP, &format!("https://{HOST}:3000@auth:admins"));
            assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
            eventually("x-app's host behind the (down) gate", 30, || {
                pebble.get("https", HOST, "/").status >= 500
            });
            let label = format!("https://{HOST}:3000/api");
            let out = expose(&bed, &["check", &label, "--instance", OTHER]);
            assert_eq!(out.status.code(), Some(exit::PROBLEMS));
            let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(
                rep["items"][0]["problem"]
                    .as_str()
                    .unwrap_or("")
                    .contains("does not share /api"),
                "{rep}"
            );
            e2e::set_label(N.project, OTHER, &label);
            the_one_problem_of(
                &bed,
                OTHER,
                &label,
                "app.example.test is held by instance 'x-app', whose label does not share /api",
            );
            assert!(!side.file(OTHER).exists(), "no route is written for it");
            // Through Traefik, /api is the holder's like the rest of the host:
            // it asks the (down) gate, and x-other never answers.
            for path in ["/api/", "/api", "/"] {
                let r = pebble.get("https", HOST, path);
                assert!(
                    r.status >= 500 && !r.body.contains("x-other"),
                    "{path}: {r:?}"
                );
            }
            // The holder's own label shares /api: x-other serves it, and only it.
            let rep = expose_json(&bed, &["add", APP, "--host", HOST, "--share", "/api"]);
            assert_eq!(
                rep["label_after"],
                format!("https://{HOST}:3000@auth:admins\nshare://{HOST}/api")
            );
            assert_eq!(rep["sync"]["problems"], serde_json::json!([]), "{rep}");
            eventually("x-other's shared /api", 30, || {
                pebble.get("https", HOST, "/api/").ok_from("api of x-other")
            });
            let r = pebble.get("https", HOST, "/");
            assert!(r.status >= 500 && !r.body.contains("hello from"), "{r:?}");
            bed.refused(
                "trm-expose",
                &[
                    "add", OTHER, "--port", "3000", "--host", HOST, "--path", "/admin",
                ],
                2,
                "does not share /admin",
            );
            // The holder routes /api/admin itself, behind its sign-on: no
            // path touching it is shared, or x-other's deeper rule would
            // outrank the holder's and skip the gate. A sibling stays open.
            in_container(
                OTHER,
                "for d in admin/x other; do mkdir -p /srv/www/api/$d && echo \"$d of x-other\" > /srv/www/api/$d/index.html; done",
            );
            e2e::set_label(
                N.project,
                APP,
                &format!(
                    "https://{HOST}:3000@auth:admins\nshare://{HOST}/api\nhttps://{HOST}:3000/api/admin@auth:admins"
                ),
            );
            let deep = format!("https://{HOST}:3000/api/admin/x");
            e2e::set_label(
                N.project,
                OTHER,
                &format!("{deep}\nhttps://{HOST}:3000/api/other"),
            );
            the_one_problem_of(
                &bed,
                OTHER,
                &deep,
                "overlaps app.example.test/api/admin, routed by instance 'x-app', the holder",
            );
            // Both new files loaded: the holder's /api/admin and, with
            // x-other's old /api gone, /api itself ask the gate.
            let to_the_gate = |path: &str| {
                let r = pebble.get("https", HOST, path);
                r.status >= 500 && !r.body.contains("x-other")
            };
            eventually("/api and /api/admin at the gate", 30, || {
                to_the_gate("/api/") && to_the_gate("/api/admin/")
            });
            let r = pebble.get("https", HOST, "/api/admin/x/");
            assert!(r.status >= 500 && !r.body.contains("x-other"), "{r:?}");
            assert!(pebble
                .get("https", HOST, "/api/other/")
                .ok_from("other of x-other"));
            // No longer shared: the route goes with the share.
            e2e::set_label(N.project, APP, &format!("https://{HOST}:3000"));
            assert_eq!(expose(&bed, &["sync"]).status.code(), Some(exit::PROBLEMS));
            assert!(!side.file(OTHER).exists());
            serves(&pebble, "https", HOST, APP);
            eventually("/api back with its holder", 30, || {
                let r = pebble.get("https", HOST, "/api/");
                r.curl_exit == 0 && !r.body.contains("x-other")
            });
            unset_label(OTHER);
            assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
        },
    );

    t.case("an_old_instance_cannot_take_what_a_newer_one_holds", || {
        // x-app was created before x-other: the oldest instance used to win
        // every contested claim, whenever it asked.
        expose_json(
            &bed,
            &[
                "add",
                OTHER,
                "--port",
                "3000",
                "--host",
                "taken.example.test",
            ],
        );
        expose_json(&bed, &["add", OTHER, "--tcp", "15440:3000"]);
        serves(&pebble, "https", "taken.example.test", OTHER);
        let holder = |kind: &str, key: &str, value: Value| -> Option<String> {
            side.claims()["claims"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["kind"] == kind && c[key] == value)
                .map(|c| c["instance"].as_str().unwrap().to_string())
        };
        assert_eq!(
            holder("host", "host", "taken.example.test".into()).as_deref(),
            Some(OTHER)
        );
        // The older instance's label, set by hand as anyone who may write
        // user.* keys could.
        e2e::set_label(
            N.project,
            APP,
            &format!("https://{HOST}:3000\nhttps://taken.example.test:3000\ntcp://15440:3000"),
        );
        let problems = sync_problems_of(&bed, APP);
        let msgs: Vec<&str> = problems
            .iter()
            .map(|p| p["message"].as_str().unwrap())
            .collect();
        assert_eq!(msgs.len(), 2, "{problems:?}");
        assert!(
            msgs.iter()
                .all(|m| m.contains("held by instance 'x-other'")),
            "{msgs:?}"
        );
        serves(&pebble, "https", "taken.example.test", OTHER);
        assert!(tcp_get(15440).contains("hello from x-other"));
        serves(&pebble, "https", HOST, APP);
        // The holder lets go: the claims are released, and the waiting
        // label takes them.
        expose_json(&bed, &["remove", OTHER, "--all"]);
        assert_eq!(
            holder("host", "host", "taken.example.test".into()).as_deref(),
            Some(APP)
        );
        assert_eq!(holder("tcp", "port", 15440.into()).as_deref(), Some(APP));
        serves(&pebble, "https", "taken.example.test", APP);
        eventually("the port to follow its new holder", 30, || {
            tcp_get(15440).contains("hello from x-app")
        });
        e2e::set_label(N.project, APP, &format!("https://{HOST}:3000"));
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
        assert_eq!(holder("host", "host", "taken.example.test".into()), None);
    });

    t.case("one_projects_sync_never_touches_another_projects_routes", || {
        clean_project_b();
        // Project B shares the suite's bridge: it goes even when a step fails.
        let steps = std::panic::AssertUnwindSafe(|| {
            lxc_ok(&["project", "create", PROJECT_B, "-c", "features.images=false"]);
            lxc_ok(&[
                "launch", "terrarium/debian12", "x-b", "--project", PROJECT_B, "-s", N.pool, "-n",
                N.bridge,
            ]);
            // The same name as project A's x-app, stopped: a file of its own,
            // and routers that never collide with A's.
            lxc_ok(&[
                "init", "terrarium/debian12", APP, "--project", PROJECT_B, "-s", N.pool, "-n", N.bridge,
            ]);
            // `-n` gives a bare NIC: pin x-b's the way Terrarium's profiles
            // do, or it would not be routed at all. (Not the stopped twin:
            // LXD 5.0 refuses the filters on a second "x-app" on one
            // bridge, "Instance DNS name already used on network".)
            lxc_ok(&[
                "config", "device", "set", "--project", PROJECT_B, "x-b", "eth0",
                "security.mac_filtering=true", "security.ipv4_filtering=true",
            ]);
            // Launched by hand, not by `trm launch`: wait for its boot.
            eventually("x-b's systemd and address", 90, || {
                let st = lxc(&[
                    "exec", "--project", PROJECT_B, "x-b", "--", "systemctl", "is-system-running",
                ]);
                let st = String::from_utf8_lossy(&st.stdout);
                (st.contains("running") || st.contains("degraded"))
                    && !ipv4_in(PROJECT_B, "x-b").is_empty()
            });
            start_services_in(PROJECT_B, "x-b");
            let set_b = |instance: &str, label: &str| {
                lxc_ok(&[
                    "config", "set", "--project", PROJECT_B, instance, "user.proxy", label,
                ]);
            };
            set_b(
                "x-b",
                &format!("https://b.example.test:3000\ntcp://15450:3000\nhttps://{HOST}:3000/b"),
            );
            set_b(APP, "https://twin.example.test:3000");
            let a_before = side.files_of(N.project);
            assert!(!a_before.is_empty());
            let out = expose_in(&bed, PROJECT_B, &["sync"]);
            assert_eq!(out.status.code(), Some(exit::PROBLEMS), "{}", String::from_utf8_lossy(&out.stderr));
            let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(rep["deleted"], serde_json::json!([]), "{rep}");
            let problems = rep["problems"].as_array().unwrap();
            assert_eq!(problems.len(), 1, "{rep}");
            assert!(
                problems[0]["message"]
                    .as_str()
                    .unwrap()
                    .contains("held by instance 'x-app' of project 'trm-e2e-exp'"),
                "{rep}"
            );
            assert_eq!(side.files_of(N.project), a_before, "A's files byte-identical");
            assert!(side.file_in(PROJECT_B, "x-b").exists());
            assert!(side.file_in(PROJECT_B, APP).exists());
            serves(&pebble, "https", "b.example.test", "x-b");
            eventually("B's raw port", 30, || tcp_get(15450).contains("hello from x-b"));
            let b_rule = format!("allow 15450/tcp comment 'terrarium-expose {PROJECT_B}/x-b'");
            assert!(ufw(&side, &wrapper, &["show", "added"]).contains(&b_rule));

            // Files from before names carried the project: A's own, one of
            // x-app (serving), which both projects have, another project's,
            // and one of an instance gone.
            let legacy = |name: &str, host: &str, url: &str| {
                let f = serde_json::json!({"http": {
                    "routers": {format!("trm-{name}_http-old"): {"rule": format!("Host(`{host}`)"), "entryPoints": ["web"], "service": format!("trm-{name}_svc-old")}},
                    "services": {format!("trm-{name}_svc-old"): {"loadBalancer": {"servers": [{"url": url}]}}},
                }});
                std::fs::write(side.dynamic().join(format!("trm-{name}.yml")), f.to_string()).unwrap();
            };
            legacy(APP, "dup.example.test", &format!("http://{}:3000", ipv4(APP)));
            legacy(OTHER, "old-other.example.test", "http://127.0.0.1:9");
            legacy("x-b", "old-b.example.test", "http://127.0.0.1:9");
            legacy("x-gone-before-upgrade", "gone.example.test", "http://127.0.0.1:9");
            eventually("the old duplicate serving", 30, || {
                pebble.get("http", "dup.example.test", "/").ok_from("hello from x-app")
            });

            // A's sync: B's files byte-identical, B's port and rule stay.
            let b_before = side.files_of(PROJECT_B);
            let out = expose(&bed, &["sync"]);
            let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(side.files_of(PROJECT_B), b_before, "B's files byte-identical");
            let deleted: std::collections::BTreeSet<&str> = rep["deleted"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect();
            assert_eq!(
                deleted,
                ["trm-x-other.yml", "trm-x-gone-before-upgrade.yml"].into(),
                "{rep}"
            );
            assert!(side.dynamic().join("trm-x-b.yml").exists(), "B's to replace");
            // x-app's may be either project's: left, and said so.
            let ambiguous = format!(
                "both this project ('{}') and project '{PROJECT_B}' have an instance 'x-app', so whose it is is ambiguous",
                N.project
            );
            // The problems about old files (each names its file).
            let legacy_problems = |rep: &Value| -> Vec<(String, String)> {
                rep["problems"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| {
                        let s = |k: &str| p[k].as_str().unwrap().to_string();
                        (s("item"), s("message"))
                    })
                    .filter(|(item, _)| item.ends_with(".yml"))
                    .collect()
            };
            let problems = legacy_problems(&rep);
            assert_eq!(problems.len(), 2, "{rep}");
            let about = |file: &str| {
                problems
                    .iter()
                    .find(|p| p.0 == file)
                    .map(|p| p.1.clone())
                    .unwrap_or_default()
            };
            assert!(about("trm-x-b.yml").contains("another project's"), "{rep}");
            assert!(about("trm-x-app.yml").contains(&ambiguous), "{rep}");
            assert!(side.dynamic().join("trm-x-app.yml").exists());
            assert!(pebble
                .get("http", "dup.example.test", "/")
                .ok_from("hello from x-app"));
            assert!(ufw(&side, &wrapper, &["show", "added"]).contains(&b_rule));
            let st: Value =
                serde_json::from_str(&std::fs::read_to_string(side.static_file()).unwrap()).unwrap();
            assert_eq!(st["entryPoints"]["tcp-15450"]["address"], ":15450/tcp");
            assert!(tcp_get(15450).contains("hello from x-b"));
            serves(&pebble, "https", "b.example.test", "x-b");
            serves(&pebble, "https", HOST, APP);
            // Neither can A take B's host or port.
            bed.refused(
                "trm-expose",
                &["add", OTHER, "--port", "3000", "--host", "b.example.test"],
                2,
                "held by instance 'x-b' of project 'trm-e2e-exp-b'",
            );
            bed.refused(
                "trm-expose",
                &["add", OTHER, "--tcp", "15450:3000"],
                2,
                "held by instance 'x-b' of project 'trm-e2e-exp-b'",
            );
            // B's sync replaces its old file; every router of both x-apps loads.
            let rep: Value =
                serde_json::from_slice(&expose_in(&bed, PROJECT_B, &["sync"]).stdout).unwrap();
            assert_eq!(rep["deleted"], serde_json::json!(["trm-x-b.yml"]), "{rep}");
            let problems = legacy_problems(&rep);
            assert_eq!(problems.len(), 1, "{rep}");
            assert_eq!(problems[0].0, "trm-x-app.yml");
            assert!(problems[0].1.contains("have an instance 'x-app'"), "{rep}");
            assert_eq!(side.files_of(N.project).len(), a_before.len());
            eventually("every router of both projects loaded", 30, || {
                proxy_status(&bed)["files"]["missing"] == serde_json::json!([])
            });
            // Deleted by hand, as the problem says: the stale duplicate goes.
            std::fs::remove_file(side.dynamic().join("trm-x-app.yml")).unwrap();
            eventually("the stale duplicate gone", 30, || {
                pebble.get("http", "dup.example.test", "/").status == 404
            });

            // B's instances go: its sync takes away its files, rule and port.
            for name in ["x-b", APP] {
                lxc_ok(&["delete", "--force", "--project", PROJECT_B, name]);
            }
            let rep: Value =
                serde_json::from_slice(&expose_in(&bed, PROJECT_B, &["sync"]).stdout).unwrap();
            assert_eq!(rep["deleted"].as_array().unwrap().len(), 2, "{rep}");
            assert!(side.files_of(PROJECT_B).is_empty());
            assert!(!ufw(&side, &wrapper, &["show", "added"]).contains("15450"));
            assert_eq!(tcp_get(15450), "", "the port is closed");
            assert_eq!(side.files_of(N.project), a_before);
            assert!(!side.claims().to_string().contains(PROJECT_B), "released");
        });
        let outcome = std::panic::catch_unwind(steps);
        clean_project_b();
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        serves(&pebble, "https", HOST, APP);
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
        serves(&pebble, "https", HOST, APP);
        // A label set by hand goes live through watch alone.
        e2e::set_label(N.project, OTHER, "https://by-hand.example.test:3000");
        serves(&pebble, "https", "by-hand.example.test", OTHER);
        lxc_ok(&[
            "config",
            "unset",
            "--project",
            N.project,
            OTHER,
            "user.proxy",
        ]);
        eventually("the hand-removed route to 404", 30, || {
            pebble.get("https", "by-hand.example.test", "/").status == 404
        });
        let _ = watch.kill();
        let _ = watch.wait();
    });

    t.case(
        "a_stopped_instance_answers_5xx_and_never_another_tenant",
        || {
            // x-app shares /shared of its host, and x-other serves it: when
            // x-app stops, its "/" must not fall through to x-other.
            e2e::set_label(
                N.project,
                APP,
                &format!("https://{HOST}:3000\nshare://{HOST}/shared"),
            );
            e2e::set_label(N.project, OTHER, &format!("https://{HOST}:3000/shared"));
            assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
            eventually("x-other's path route", 30, || {
                pebble
                    .get("https", HOST, "/shared/")
                    .ok_from("shared of x-other")
            });
            lxc_ok(&["stop", "--project", N.project, APP]);
            assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
            let list = expose_json(&bed, &["list"]);
            let app_route = list["routes"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["instance"] == APP)
                .unwrap()
                .clone();
            assert_eq!(app_route["state"], "stopped");
            eventually("the stopped route to answer 5xx", 10, || {
                let r = pebble.get("https", HOST, "/");
                r.status >= 500 && !r.body.contains("from x-")
            });
            assert!(pebble
                .get("https", HOST, "/shared/")
                .ok_from("shared of x-other"));
            bed.refused(
                "trm-expose",
                &["add", OTHER, "--port", "3000", "--host", HOST],
                2,
                "held by instance 'x-app'",
            );
            lxc_ok(&[
                "config",
                "unset",
                "--project",
                N.project,
                OTHER,
                "user.proxy",
            ]);
            e2e::set_label(N.project, APP, &format!("https://{HOST}:3000"));
            lxc_ok(&["start", "--project", N.project, APP]);
            eventually("the route to come back", 60, || {
                expose(&bed, &["sync"]);
                pebble.get("https", HOST, "/").ok_from("hello from x-app")
            });
        },
    );

    t.case(
        "tcp_and_udp_ports_forward_bytes_and_remove_closes_them",
        || {
            let pid_before = side.traefik_pid();
            let out = expose_json(&bed, &["add", APP, "--tcp", "15432:3000"]);
            assert_eq!(out["changed"], true);
            assert_eq!(
                out["sync"]["restart"], "ok",
                "new entrypoint: verified restart"
            );
            assert_ne!(side.traefik_pid(), pid_before, "Traefik was restarted");
            let st: Value =
                serde_json::from_str(&std::fs::read_to_string(side.static_file()).unwrap())
                    .unwrap();
            traefik::validate_static(&st).unwrap();
            assert_eq!(st["entryPoints"]["tcp-15432"]["address"], ":15432/tcp");
            let page = tcp_get(15432);
            assert!(
                page.contains("hello from x-app"),
                "bytes through the TCP entrypoint: {page:?}"
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
            assert!(String::from_utf8_lossy(&ipt.stdout).contains("--dport 15432 -j ACCEPT"));
            expose_json(&bed, &["add", OTHER, "--udp", "15353:5353"]);
            assert_eq!(udp_echo(15353, "ping"), "echo from x-other: ping");
            // A sync with nothing new restarts nothing.
            let pid = side.traefik_pid();
            assert_eq!(expose_json(&bed, &["sync"])["restart"], "not_needed");
            assert_eq!(side.traefik_pid(), pid);

            expose_json(&bed, &["remove", APP, "--tcp", "15432"]);
            expose_json(&bed, &["remove", OTHER, "--udp", "15353"]);
            let st: Value =
                serde_json::from_str(&std::fs::read_to_string(side.static_file()).unwrap())
                    .unwrap();
            assert!(st["entryPoints"].get("tcp-15432").is_none());
            assert!(!ufw(&side, &wrapper, &["show", "added"]).contains("15432"));
            assert_eq!(tcp_get(15432), "", "the port is closed");
            assert_eq!(udp_echo(15353, "ping"), "");
            serves(&pebble, "https", HOST, APP);
        },
    );

    t.case("ports_the_host_needs_or_others_own_are_refused", || {
        for (args, why) in [
            (vec!["--tcp", "22"], "the host itself needs"),
            (vec!["--tcp", "443:3000"], "the host itself needs"),
            (vec!["--tcp", "2299:22"], "(SSH)"),
            (vec!["--udp", "67"], "already listens"),
            (vec!["--udp", "70000"], "between 1 and 65535"),
        ] {
            let mut a = vec!["add", APP];
            a.extend(args);
            bed.refused("trm-expose", &a, 2, why);
        }
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
        let out = expose(&bed, &["add", APP, "--udp", "15354:5353"]);
        assert!(
            out.status.success(),
            "the label change itself lands: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(rep["sync"]["restart"], "failed");
        let list = expose_json(&bed, &["list"]);
        assert_eq!(list["traefik"]["restart_pending"], true);
        assert!(
            list["traefik"]["last_restart_error"]
                .as_str()
                .unwrap()
                .contains("refusing to start"),
            "{list}"
        );
        assert_eq!(
            expose(&bed, &["proxy", "status"]).status.code(),
            Some(exit::PROBLEMS),
            "status says it is down"
        );
        std::fs::remove_file(side.restart_fails()).unwrap();
        let rep = expose_json(&bed, &["sync"]);
        assert_eq!(rep["restart"], "ok");
        assert_eq!(
            expose_json(&bed, &["list"])["traefik"]["restart_pending"],
            false
        );
        assert_eq!(udp_echo(15354, "again"), "echo from x-app: again");
        serves(&pebble, "https", HOST, APP);
        expose_json(&bed, &["remove", APP, "--udp", "15354"]);
        // A new file Traefik refuses: the last working one comes back, so
        // every other route keeps serving; the new one is still pending.
        let rep = expose_json(&bed, &["add", OTHER, "--udp", "15355:5353"]);
        assert_eq!(rep["sync"]["restart"], "failed");
        assert_eq!(rep["sync"]["rolled_back"], true, "{rep}");
        serves(&pebble, "https", HOST, APP);
        let st: Value =
            serde_json::from_str(&std::fs::read_to_string(side.static_file()).unwrap()).unwrap();
        assert!(
            st["entryPoints"].get("udp-15355").is_none(),
            "the previous file is back"
        );
        assert_eq!(
            expose_json(&bed, &["list"])["traefik"]["restart_pending"],
            true
        );
        expose_json(&bed, &["remove", OTHER, "--udp", "15355"]);
        assert_eq!(
            expose_json(&bed, &["list"])["traefik"]["restart_pending"],
            false
        );
        serves(&pebble, "https", HOST, APP);
    });

    t.case("a_broken_file_in_the_watched_directory_takes_nothing_down", || {
        std::fs::create_dir_all(side.dynamic().join("hand")).unwrap();
        std::fs::write(side.dynamic().join("hand/zz-hand-made.yml"), "http: {routers: [\n").unwrap();
        std::fs::write(
            side.dynamic().join("hand-typo.yml"),
            "http:\n  routers:\n    mine:\n      rule: Host(`mine.example.test`)\n      service: nothing\n      bogusKey: 1\n",
        )
        .unwrap();
        let good = "http:\n  routers:\n    mine:\n      rule: Host(`mine.example.test`)\n      service: mine\n      entrypoints: [web]\n  services:\n    mine:\n      loadBalancer:\n        servers:\n          - url: http://127.0.0.1:9\n";
        std::fs::write(side.dynamic().join("hand-good.yml"), good).unwrap();
        // Files younger than 2 s may be mid-write and are judged later.
        e2e::sh(&format!(
            "cd {} && touch -d '1 minute ago' hand/zz-hand-made.yml hand-typo.yml hand-good.yml",
            side.dynamic().display()
        ));
        let out = expose(&bed, &["add", OTHER, "--port", "3000", "--host", "after.example.test"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let rep: Value = serde_json::from_slice(&out.stdout).unwrap();
        let rejected: std::collections::BTreeSet<&str> = rep["sync"]["rejected"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["file"].as_str().unwrap())
            .collect();
        assert_eq!(
            rejected,
            ["hand-typo.yml", "hand/zz-hand-made.yml"].into(),
            "in subdirectories too, as Traefik reads them: {rep}"
        );
        assert!(side.dynamic().join("hand/zz-hand-made.yml.rejected").exists());
        assert!(side.dynamic().join("hand-good.yml").exists(), "a good file of someone else's stays");
        // The new route goes live and the old ones stay, also after a restart.
        serves(&pebble, "https", "after.example.test", OTHER);
        expose_json(&bed, &["proxy", "restart"]);
        serves(&pebble, "https", HOST, APP);
        serves(&pebble, "https", "after.example.test", OTHER);
        let st = proxy_status(&bed);
        assert_eq!(st["files"]["missing"], serde_json::json!([]), "{st}");
        expose_json(&bed, &["remove", OTHER, "--all"]);
        for f in ["hand-typo.yml.rejected", "hand-good.yml"] {
            std::fs::remove_file(side.dynamic().join(f)).unwrap();
        }
        std::fs::remove_dir_all(side.dynamic().join("hand")).unwrap();
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
        serves(&pebble, "https", HOST, APP);
    });

    t.case("kill_9_mid_sync_never_leaves_a_broken_file", || {
        for round in 0..20u64 {
            let path = if round % 2 == 0 { "/a" } else { "/b" };
            e2e::set_label(
                N.project,
                APP,
                &format!("https://app.example.test:3000{path}"),
            );
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
        e2e::set_label(N.project, APP, "https://app.example.test:3000");
        assert_eq!(expose(&bed, &["sync"]).status.code(), Some(0));
        // Leftover temporary files are names Traefik does not read.
        for e in std::fs::read_dir(side.dynamic()).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            assert!(
                traefik::is_our_file(&name) || !traefik::is_provider_file(&name),
                "{name}"
            );
        }
        serves(&pebble, "https", HOST, APP);
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
        // Stopped instances: their routes answer 502 (over verified TLS:
        // their certificates were issued all the same), never a page.
        eventually("many-7's withdrawn route over TLS", 90, || {
            let r = pebble.get("https", "many-7.example.test", "/");
            r.curl_exit == 0 && r.status == 502
        });
        serves(&pebble, "https", HOST, APP);
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
            // Both ways: the report says whether this host runs systemd.
            let systemd = Path::new("/run/systemd/system").is_dir();
            assert_eq!(rep["systemd"], systemd, "{rep}");
            if !systemd {
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

    t.case("proxy_stop_stops_traefik", || {
        let pid = side.traefik_pid().expect("running");
        expose_json(&bed, &["proxy", "stop"]);
        assert!(
            !Path::new(&format!("/proc/{pid}/cmdline")).exists()
                || std::fs::read(format!("/proc/{pid}/cmdline"))
                    .unwrap()
                    .is_empty(),
            "Traefik is gone"
        );
        let r = pebble.get("https", HOST, "/");
        assert_eq!(r.status, 0, "nothing listens: {r:?}");
    });

    clean_project_b();
    // Traefik is stopped by pid whatever happened above.
    let _ = bed.tool("trm-expose").args(["proxy", "stop"]).output();
    if let Some(pid) = side.traefik_pid() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    bed.teardown();
    let _ = Command::new("ip").args(["netns", "del", NETNS]).status();
    drop(pebble);
    t.finish()
}
