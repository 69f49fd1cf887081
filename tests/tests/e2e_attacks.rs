//! Root inside a container against exposure (TRM_E2E=1), on real LXD and
//! a real Traefik on loopback: the attacker flushes eth0 and takes a
//! neighbour's address, the bridge's own address, or one outside the
//! subnet, hoping `trm-expose sync` routes public traffic there. The
//! backend must stay the address the host assigned, and the spoofed
//! source must get no answer from the host or from a neighbour.

use std::process::Command;
use terrarium_core::error::exit;

use serde_json::Value;
use terrarium_tests::e2e::{self, eventually, lxc_json, lxc_ok, Bed, Names, Runner, ATTACKS_SUITE};

const N: Names = ATTACKS_SUITE;
/// The tenant that attacks, and the neighbour it wants to reach.
const APP: &str = "s-app";
const OTHER: &str = "s-other";
/// A box whose NIC has the filters turned off by an owner.
const LOOSE: &str = "s-loose";
const HOST: &str = "app.example.test";
const HTTP: u16 = 19080;
/// The neighbour's never-exposed port, and the host-only service's port
/// on the bridge address (both say whose they are).
const SECRET_PORT: u16 = 9000;
const APP_PORT: u16 = 3000;

/// Run an idempotent script in a box (retried as `e2e::sh_in` says).
fn in_box(name: &str, script: &str) -> std::process::Output {
    e2e::sh_in(N.project, name, script)
}

/// A Python HTTP server in the box, detached, serving one line of text.
fn serve(name: &str, port: u16, text: &str) {
    let out = in_box(
        name,
        &format!(
            "mkdir -p /srv/{port} && echo '{text}' > /srv/{port}/index.html && \
             (setsid python3 -m http.server {port} --directory /srv/{port} >/dev/null 2>&1 &)"
        ),
    );
    e2e::assert_ok(&out, &format!("serve on {name}:{port}"));
    eventually(&format!("{name}:{port} to answer"), 30, || {
        in_box(name, &probe_cmd("127.0.0.1", port))
            .stdout
            .starts_with(b"answered")
    });
}

/// A TCP connect and HTTP GET from inside a box, two seconds at most.
fn probe_cmd(ip: &str, port: u16) -> String {
    format!(
        "python3 -c 'import socket\ns=socket.socket(); s.settimeout(2)\ntry:\n    s.connect((\"{ip}\", {port})); s.send(b\"GET / HTTP/1.0\\r\\n\\r\\n\"); b=b\"\".join(iter(lambda: s.recv(4096), b\"\")); print(\"answered\", b)\nexcept Exception as e: print(\"no answer\", e)'"
    )
}

fn probe(from: &str, ip: &str, port: u16) -> String {
    String::from_utf8_lossy(&in_box(from, &probe_cmd(ip, port)).stdout).into_owned()
}

/// The address LXD's DHCP server leased to the box's NIC (host side).
fn lease(name: &str) -> String {
    let leases = lxc_json(&format!(
        "/1.0/networks/{}/leases?project={}",
        N.bridge, N.project
    ));
    let mac = lxc_ok(&[
        "config",
        "get",
        "--project",
        N.project,
        name,
        "volatile.eth0.hwaddr",
    ]);
    leases
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["hwaddr"] == mac.trim())
        .and_then(|l| l["address"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// What the container itself reports on eth0.
fn reported(name: &str) -> Vec<String> {
    e2e::reported_ipv4(N.project, name)
}

/// Root inside `name` flushes eth0 and adds `ip`, then `keep` after it
/// if given (a default route through the bridge, so replies would have
/// somewhere to go). The container then reports `ip` first.
fn take_address(name: &str, ip: &str, keep: Option<&str>, gateway: &str) {
    let keep_cmd = keep
        .map(|k| format!(" && ip addr add {k}/24 dev eth0"))
        .unwrap_or_default();
    let out = in_box(
        name,
        &format!(
            "ip addr flush dev eth0 && ip addr add {ip}/24 dev eth0{keep_cmd} && \
             (ip route replace default via {gateway} 2>/dev/null || true)"
        ),
    );
    e2e::assert_ok(&out, &format!("{name} takes {ip}"));
    let want: Vec<String> = std::iter::once(ip).chain(keep).map(String::from).collect();
    eventually(&format!("LXD to see {name} report {want:?}"), 30, || {
        reported(name) == want
    });
}

/// Put the app back on its own address and route, served as before.
fn restore(name: &str, own: &str, gw: &str) {
    let back = in_box(
        name,
        &format!("ip addr flush dev eth0 && ip addr add {own}/24 dev eth0 && ip route replace default via {gw}"),
    );
    e2e::assert_ok(&back, "restore the app's address");
    e2e::set_label(N.project, name, &format!("http://{HOST}:{APP_PORT}"));
    eventually("its own address to work again", 30, || {
        probe(name, gw, APP_PORT).contains("host private")
    });
}

/// The app's Traefik file (its name carries the project).
fn app_file(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("dynamic")
        .join(terrarium_core::traefik::file_name(N.project, APP))
}

fn label_of(name: &str) -> String {
    lxc_ok(&["config", "get", "--project", N.project, name, "user.proxy"])
}

fn http_get(host: &str) -> (u32, String) {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "5", "-o", "-", "-w", "\n%{http_code}"])
        .arg("--resolve")
        .arg(format!("{host}:{HTTP}:127.0.0.1"))
        .arg(format!("http://{host}:{HTTP}/"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn sync(bed: &Bed) -> Value {
    bed.trm_json_with("trm-expose", &["sync"])
}

fn backend_of(bed: &Bed, instance: &str) -> Option<String> {
    let l = bed.trm_json_with("trm-expose", &["list"]);
    l["routes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["instance"] == instance)
        .and_then(|r| r["backend"].as_str())
        .map(str::to_string)
}

/// The suite's settings: Traefik on loopback, no UFW, ACME pointed at a
/// port nobody serves (only http:// routes here).
fn configure(bed: &Bed, dir: &std::path::Path) {
    configure_with(bed, dir, "root_domain = \"example.test\"\n");
}

/// The suite's settings with `extra` for the root domain line(s).
fn configure_with(bed: &Bed, dir: &std::path::Path, extra: &str) {
    let path = bed.config_dir.path().join("terrarium.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let base = text.split("[expose]").next().unwrap().to_string();
    e2e::sh(&format!("chmod 0755 {}", dir.display()));
    let p = |x: &str| dir.join(x).display().to_string();
    let expose = format!(
        "[expose]\ndynamic_dir = \"{}\"\nstatic_file = \"{}\"\n{extra}ufw = false\nstate_dir = \"{}\"\n\
         acme_storage = \"{}\"\nacme_ca_server = \"https://127.0.0.1:9/dir\"\nsupervisor = \"terrarium\"\n\
         http_address = \"127.0.0.1:{HTTP}\"\nhttps_address = \"127.0.0.1:19443\"\napi_address = \"127.0.0.1:19082\"\n\
         traefik_binary = \"/usr/local/bin/traefik\"\nlog_dir = \"{}\"\n",
        p("dynamic"),
        p("traefik.yml"),
        p("state"),
        p("acme/acme.json"),
        p("log"),
    );
    std::fs::create_dir_all(dir.join("dynamic")).unwrap();
    std::fs::write(&path, base + &expose).unwrap();
}

fn gateway(bed: &Bed) -> String {
    let _ = bed;
    lxc_json(&format!("/1.0/networks/{}", N.bridge))["config"]["ipv4.address"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string()
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_attacks") {
        return std::process::ExitCode::SUCCESS;
    }
    let mut bed = Bed::new(N);
    bed.extra_env
        .push(("TRM_LOCK_WAIT_SECS".into(), "300".into()));
    let bed = bed;
    let dir = tempfile::tempdir().unwrap();
    // The host-only service on the bridge address: a stand-in for the
    // gate, Cockpit or Traefik's API. Stopped by pid at the end.
    let mut host_service: Option<std::process::Child> = None;
    let mut t = Runner::new();

    t.setup("setup_traefik_two_tenants_and_a_host_only_service", || {
        bed.trm_json(&bed.init_args());
        configure(&bed, dir.path());
        for name in [APP, OTHER] {
            e2e::assert_ok(
                &bed.tool("trm")
                    .args(["launch", name, "--format", "json"])
                    .output()
                    .unwrap(),
                &format!("launch {name}"),
            );
        }
        // Terrarium's profile pins each NIC to its MAC and address.
        let nic = &lxc_json(&format!("/1.0/instances/{APP}?project={}", N.project))
            ["expanded_devices"]["eth0"];
        for key in [
            "security.mac_filtering",
            "security.ipv4_filtering",
            "security.ipv6_filtering",
        ] {
            assert_eq!(nic[key], "true", "{key} on eth0: {nic}");
        }
        serve(APP, APP_PORT, &format!("hello from {APP}"));
        serve(
            APP,
            SECRET_PORT,
            &format!("hello from {APP} on {SECRET_PORT}"),
        );
        serve(OTHER, SECRET_PORT, "secret of s-other");
        let site = dir.path().join("host-site");
        std::fs::create_dir_all(&site).unwrap();
        std::fs::write(site.join("index.html"), "host private\n").unwrap();
        host_service = Some(
            Command::new("python3")
                .args(["-m", "http.server", &APP_PORT.to_string(), "--bind"])
                .arg(gateway(&bed))
                .arg("--directory")
                .arg(&site)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        // Before any attack, both the host service and the neighbour's
        // port answer the app: the probes can succeed.
        eventually("the host-only service to answer the app", 30, || {
            probe(APP, &gateway(&bed), APP_PORT).contains("host private")
        });
        eventually("the neighbour's port to answer the app", 30, || {
            probe(APP, &lease(OTHER), SECRET_PORT).contains("secret of s-other")
        });
        e2e::set_label(N.project, APP, &format!("http://{HOST}:{APP_PORT}"));
        sync(&bed);
        let st = bed.trm_json_with("trm-expose", &["proxy", "start"]);
        assert_eq!(st["answering"], true, "{st}");
        assert_eq!(
            backend_of(&bed, APP),
            Some(format!("http://{}:{APP_PORT}", lease(APP)))
        );
        eventually("the app to be served through Traefik", 30, || {
            http_get(HOST).1.contains(&format!("hello from {APP}"))
        });
    });

    // Each attack: the app's root takes an address, relabels if it
    // likes, syncs; the route's backend stays its lease, and nothing
    // Traefik serves comes from the neighbour or the host.
    type Attack = (&'static str, fn(&Bed) -> String, u16);
    let attacks: [Attack; 3] = [
        (
            "a_neighbours_address_never_becomes_the_backend",
            |_| lease(OTHER),
            SECRET_PORT,
        ),
        (
            "the_bridge_address_never_becomes_the_backend",
            gateway,
            APP_PORT,
        ),
        (
            "an_address_outside_the_subnet_never_becomes_the_backend",
            |_| "10.254.77.5".into(),
            APP_PORT,
        ),
    ];
    for (name, address, port) in attacks {
        t.case(name, || {
            let own = lease(APP);
            let spoofed = address(&bed);
            // The chosen address first, its own kept after it: what it
            // reports first was what sync used to route to.
            take_address(APP, &spoofed, Some(&own), &gateway(&bed));
            e2e::set_label(N.project, APP, &format!("http://{HOST}:{port}"));
            let report = sync(&bed);
            assert!(report.is_object(), "{report}");
            assert_eq!(
                backend_of(&bed, APP),
                Some(format!("http://{own}:{port}")),
                "the backend is the host's lease, not the reported {spoofed}"
            );
            let file = std::fs::read_to_string(app_file(dir.path())).unwrap();
            assert!(!file.contains(&format!("{spoofed}:")), "{file}");
            let gw = gateway(&bed);
            if spoofed == gw {
                // Holding the bridge's address, the app cannot answer the
                // host at all (replies to it stay inside): it only hurts
                // itself. Traefik is up, and serves no one else.
                let st = bed.trm_json_with("trm-expose", &["proxy", "status"]);
                assert_eq!(st["answering"], true, "{st}");
                let (code, body) = http_get(HOST);
                assert!(
                    !body.contains("secret of s-other") && !body.contains("host private"),
                    "served someone else's service: {code}: {body}"
                );
                restore(APP, &own, &gw);
                return;
            }
            // Traefik serves the app itself, on the port it asked for.
            let want = if port == APP_PORT {
                format!("hello from {APP}")
            } else {
                format!("hello from {APP} on {port}")
            };
            eventually("Traefik to serve the app's own port", 30, || {
                let (code, body) = http_get(HOST);
                assert!(
                    !body.contains("secret of s-other") && !body.contains("host private"),
                    "served someone else's service: {code}: {body}"
                );
                code == 200 && body.contains(&want)
            });
            restore(APP, &own, &gw);
        });
    }

    t.case(
        "a_spoofed_source_gets_no_answer_from_the_host_or_a_neighbour",
        || {
            let own = lease(APP);
            let other = lease(OTHER);
            let gw = gateway(&bed);
            // Posing as the neighbour, and as an unused address of the subnet.
            let unused = format!("{}.77", own.rsplit_once('.').unwrap().0);
            for spoofed in [other.clone(), unused] {
                take_address(APP, &spoofed, None, &gw);
                let to_host = probe(APP, &gw, APP_PORT);
                assert!(
                    to_host.starts_with("no answer"),
                    "as {spoofed}, the host answered: {to_host}"
                );
                if spoofed != other {
                    let to_other = probe(APP, &other, SECRET_PORT);
                    assert!(
                        to_other.starts_with("no answer"),
                        "as {spoofed}, the neighbour answered: {to_other}"
                    );
                }
            }
            restore(APP, &own, &gw);
            assert!(probe(APP, &gw, APP_PORT).contains("host private"));
        },
    );

    t.case("a_nic_without_filters_is_not_routed", || {
        e2e::assert_ok(
            &bed.tool("trm")
                .args(["launch", LOOSE, "--format", "json"])
                .output()
                .unwrap(),
            "launch s-loose",
        );
        lxc_ok(&[
            "config",
            "device",
            "override",
            "--project",
            N.project,
            LOOSE,
            "eth0",
            "security.ipv4_filtering=false",
            "security.mac_filtering=false",
            "security.ipv6_filtering=false",
        ]);
        serve(LOOSE, APP_PORT, "hello from s-loose");
        // The control for the spoofing case: without the filters, the same
        // probe from an unused address of the subnet IS answered by the
        // host, so "no answer" there is the filters' doing.
        let gw = gateway(&bed);
        let own = lease(LOOSE);
        let unused = format!("{}.78", own.rsplit_once('.').unwrap().0);
        take_address(LOOSE, &unused, None, &gw);
        eventually("the host to answer an unfiltered spoofed source", 30, || {
            probe(LOOSE, &gw, APP_PORT).contains("host private")
        });
        e2e::set_label(N.project, LOOSE, &format!("http://loose.example.test:{APP_PORT}"));
        let out = bed
            .tool("trm-expose")
            .args(["sync", "--format", "json"])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(exit::PROBLEMS),
            "a sync with a refusal found problems"
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        let route = report["routes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["instance"] == LOOSE)
            .cloned()
            .unwrap_or_else(|| panic!("no route for {LOOSE}: {report}"));
        assert_eq!(route["state"], "refused", "{route}");
        assert!(route["backend"].is_null(), "{route}");
        assert!(
            route["problem"]
                .as_str()
                .unwrap()
                .contains("security.mac_filtering is off"),
            "{route}"
        );
        // The host is held (no other tenant falls in), but nothing is
        // served: Traefik answers 502 for it.
        eventually(
            "Traefik to hold loose.example.test without a backend",
            30,
            || {
                let (code, body) = http_get("loose.example.test");
                assert!(!body.contains("hello from s-loose"), "{code}: {body}");
                code == 502
            },
        );
        // The app's own route is untouched.
        assert!(http_get(HOST).1.contains(&format!("hello from {APP}")));
        // And the audit names the box whose NIC can pose as anyone.
        let out = bed
            .tool("trm-harden")
            .args(["audit", "--project", N.project, "--format", "json"])
            .output()
            .unwrap();
        let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
        let nic = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == "nic filters")
            .cloned()
            .unwrap_or_else(|| panic!("no nic filters check: {checks}"));
        assert_eq!(nic["status"], "fail", "{nic}");
        let evidence = nic["detail"].as_str().unwrap();
        assert_eq!(
            evidence,
            format!("{}/{LOOSE}: nic eth0 can use any address (security.mac_filtering, security.ipv4_filtering off)", N.project),
            "only the loose box: {nic}"
        );
    });

    t.case(
        "an_uppercase_root_domain_still_guards_the_management_hosts",
        || {
            configure_with(&bed, dir.path(), "root_domain = \"Example.TEST\"\n");
            let msg = bed.refused(
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
                "management",
            );
            assert!(msg.contains("manage.example.test"), "{msg}");
            let label = label_of(OTHER);
            assert_eq!(label.trim(), "", "nothing was labelled");
            configure(&bed, dir.path());
        },
    );

    t.case("a_label_that_looks_like_a_flag_stays_a_value", || {
        // A label writer's text that lxc would read as flags if passed
        // bare: Terrarium appends to it and keeps it verbatim.
        let planted = "--project=default --force";
        e2e::set_label(N.project, OTHER, planted);
        let out = bed.trm_json_with(
            "trm-expose",
            &[
                "add",
                OTHER,
                "--port",
                "3000",
                "--host",
                "other.example.test",
            ],
        );
        assert_eq!(out["changed"], true, "{out}");
        let label = label_of(OTHER);
        assert_eq!(
            label.trim_end(),
            format!("{planted}\nhttps://other.example.test:3000")
        );
        lxc_ok(&[
            "config",
            "unset",
            "--project",
            N.project,
            OTHER,
            "user.proxy",
        ]);
    });

    t.case(
        "a_lock_directory_planted_by_someone_else_is_refused",
        || {
            // /run/lock is world-writable: a local user could create the
            // lock directory first. Terrarium refuses it and changes nothing.
            let planted = tempfile::tempdir().unwrap();
            e2e::sh(&format!(
                "chown 65534:65534 {0} && chmod 0777 {0}",
                planted.path().display()
            ));
            let label_before = label_of(APP);
            let mut c = bed.tool("trm-expose");
            c.env("TRM_LOCK_DIR", planted.path()).args([
                "--format",
                "json",
                "add",
                APP,
                "--port",
                "3001",
                "--host",
                "lock.example.test",
            ]);
            let out = c.output().unwrap();
            e2e::assert_refused(
                &out,
                "add under a planted lock dir",
                4,
                "is owned by uid 65534",
            );
            assert_eq!(label_of(APP), label_before);
            assert_eq!(
                std::fs::read_dir(planted.path()).unwrap().count(),
                0,
                "no lock file made in it"
            );
        },
    );

    t.case(
        "no_root_domain_and_no_default_route_refuses_to_plan",
        || {
            // A namespace of our own with no routes at all: no public address
            // to name hosts after. The sync refuses, and no file changes.
            let ns = "trm-e2e-atk";
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            e2e::sh(&format!("ip netns add {ns}"));
            configure_with(&bed, dir.path(), "");
            let before = std::fs::read(app_file(dir.path())).unwrap();
            let out = bed
                .command("ip")
                .args(["netns", "exec", ns])
                .arg(bed.bins.join("trm-expose"))
                .args(["--format", "json", "sync"])
                .output()
                .unwrap();
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
            configure(&bed, dir.path());
            e2e::assert_refused(
                &out,
                "sync without a base",
                2,
                "no expose.root_domain is set",
            );
            assert_eq!(std::fs::read(app_file(dir.path())).unwrap(), before);
        },
    );

    let _ = bed.tool("trm-expose").args(["proxy", "stop"]).output();
    if let Some(mut c) = host_service.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    bed.teardown();
    t.finish()
}
