//! Terrarium on a real three-member LXD cluster (TRM_E2E=1): LXD nodes in
//! containers on the suite's bridge, formed through `trm cluster` run in
//! each node, driven from the host over LXD's HTTPS API.

use std::time::{Duration, Instant};

use serde_json::Value;
use terrarium_core::error::exit;
use terrarium_tests::cluster::{self, TestCluster, NODE_IMAGE};
use terrarium_tests::e2e::{self, eventually, Bed, Names, Runner, BUSYBOX_IMAGE, CLUSTER_SUITE};

const N: Names = CLUSTER_SUITE;
/// What `trm init` runs inside each node: a dir pool (nodes have no loop
/// devices) and a bridge without NAT.
const NODE_INIT: &[&str] = &["init", "--storage", "dir", "--no-nat"];

fn json(out: &std::process::Output, what: &str) -> Value {
    e2e::assert_ok(out, what);
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{what}: no JSON ({e})"))
}

/// A node's own server settings and clustering state, as its LXD says.
fn server_state(c: &TestCluster, i: usize) -> (Value, Value) {
    let q = |path: &str| -> Value {
        serde_json::from_str(&c.sh_ok(i, &format!("lxc query {path}"))).unwrap()
    };
    let mut cluster = q("/1.0/cluster");
    // What a joining server would have to fill in is not its state.
    cluster.as_object_mut().unwrap().remove("member_config");
    (q("/1.0")["config"].clone(), cluster)
}

/// The host's address on the suite's bridge (the nodes' gateway).
fn host_address(c: &TestCluster) -> String {
    let a = &c.node(0).address;
    format!("{}.1", a.rsplit_once('.').unwrap().0)
}

/// Can the host open a TCP connection to `addr:port` (two seconds)?
fn tcp_open(addr: &str, port: u16) -> bool {
    let sa: std::net::SocketAddr = format!("{addr}:{port}").parse().unwrap();
    std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(2)).is_ok()
}

/// Terrarium's rules in node `i`'s firewall (`ufw show added`).
fn cluster_rules(c: &TestCluster, i: usize) -> Vec<String> {
    c.sh_ok(i, "ufw show added")
        .lines()
        .filter(|l| l.contains("'terrarium-cluster "))
        .map(|l| l.trim().to_string())
        .collect()
}

/// The first three octets of the members' bridge (`10.100.1`).
fn bridge_prefix(c: &TestCluster) -> String {
    let net = c.query("/1.0/networks/trmbr0");
    let gw = net["config"]["ipv4.address"].as_str().unwrap();
    gw.rsplit_once('.').unwrap().0.to_string()
}

/// `GET path` with `Host: host` from the host to `addr:80`: the status
/// and body, or None when nothing answers within five seconds.
fn get(addr: &str, host: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let sa: std::net::SocketAddr = format!("{addr}:80").parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&sa, Duration::from_secs(5)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(40))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .trim()
        .to_string();
    Some((status, body))
}

/// `GET /PATH` from inside a box to `ip:8080` (busybox nc): the reply.
fn box_get(c: &TestCluster, from: &str, ip: &str, path: &str) -> String {
    let out = c.box_sh(
        from,
        &format!("printf 'GET /{path} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {ip} 8080"),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `GET /` from a node's own host (bash's /dev/tcp): the reply.
fn node_get(c: &TestCluster, node: usize, ip: &str) -> String {
    let out = c.sh(
        node,
        &format!(
            "timeout 5 bash -c 'exec 3<>/dev/tcp/{ip}/8080; printf \"GET / HTTP/1.0\\r\\n\\r\\n\" >&3; cat <&3'"
        ),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_cluster") {
        return std::process::ExitCode::SUCCESS;
    }
    let bed = Bed::new(N);
    let mut t = Runner::new();
    let mut c: Option<TestCluster> = None;

    t.setup("three_nodes_answer", || {
        let mut init = bed.init_args();
        // Three nodes with a nested LXD each need more than the default.
        let size = init.iter().position(|a| *a == "--size").unwrap() + 1;
        init[size] = "12GiB";
        bed.trm_json(&init);
        e2e::ensure_busybox_image();
        assert!(
            e2e::lxc(&["image", "info", NODE_IMAGE]).status.success(),
            "{NODE_IMAGE} is missing: scripts/test.sh builds it"
        );
        let cl = TestCluster::launch(&bed, 3);
        for i in 0..3 {
            cl.trm_in_json(i, NODE_INIT);
        }
        // Members are hardened hosts: the cluster forms through their firewalls.
        cl.firewall_on(&host_address(&cl));
        c = Some(cl);
    });
    let Some(c) = c.as_ref() else {
        bed.teardown();
        return t.finish();
    };

    t.setup("init_is_planned_shown_and_idempotent", || {
        let m1 = c.node(0);
        let args = [
            "cluster",
            "init",
            "--name",
            &m1.member,
            "--address",
            &m1.address,
        ];
        let plan = c.trm_in_json(0, &[&args[..], &["--dry-run"]].concat());
        assert_eq!(plan["changed"], false, "{plan}");
        let whats: Vec<&str> = plan["steps"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["what"].as_str().unwrap())
            .collect();
        assert_eq!(whats, ["server_config", "cluster", "mesh"], "{plan}");
        let state: Value = serde_json::from_str(&c.sh_ok(0, "lxc query /1.0/cluster")).unwrap();
        assert_eq!(state["enabled"], false, "a dry run enables nothing");
        let done = c.trm_in_json(0, &args);
        assert_eq!(done["changed"], true, "{done}");
        let again = c.trm_in_json(0, &args);
        assert_eq!(again["changed"], false, "{again}");
        assert_eq!(again["steps"], Value::Array(vec![]), "{again}");
        // The API for this host stays on loopback; members talk on the cluster address.
        let (config, _) = server_state(c, 0);
        assert_eq!(config["core.https_address"], "127.0.0.1:8443", "{config}");
        assert_eq!(
            config["cluster.https_address"],
            format!("{}:8443", m1.address)
        );
    });

    t.case(
        "a_join_token_that_is_not_one_is_refused_before_lxd_is_asked",
        || {
            let before = server_state(c, 1);
            let out = c.trm_in(
                1,
                &[
                    "cluster",
                    "join",
                    "bm90IGEgdG9rZW4=",
                    "--address",
                    &c.node(1).address,
                ],
            );
            e2e::assert_refused(&out, "join with garbage", exit::USAGE, "not a join token");
            assert_eq!(server_state(c, 1), before, "nothing changed on node2");
        },
    );

    t.case(
        "a_wrong_join_token_is_refused_with_nothing_changed_on_either_side",
        || {
            let added = c.trm_in_json(0, &["cluster", "add", "member2"]);
            let token = added["token"].as_str().unwrap().to_string();
            // The same fields with another secret: a token someone guessed.
            use base64::Engine;
            let b64 = base64::engine::general_purpose::STANDARD;
            let mut fields: Value = serde_json::from_slice(&b64.decode(&token).unwrap()).unwrap();
            fields["secret"] = Value::String("0".repeat(64));
            let forged = b64.encode(fields.to_string());
            let members_before = c.trm_in_json(0, &["cluster", "list"]);
            let node_before = server_state(c, 1);
            let out = c.trm_in(
                1,
                &[
                    "cluster",
                    "join",
                    &forged,
                    "--address",
                    &c.node(1).address,
                    "--yes",
                ],
            );
            e2e::assert_refused(
                &out,
                "join with a forged token",
                exit::WRONG_STATE,
                "refused the join",
            );
            assert_eq!(server_state(c, 1), node_before, "node2's LXD is as it was");
            assert_eq!(c.trm_in_json(0, &["cluster", "list"]), members_before);
            // The real token still works: asking again gives it back unchanged.
            let again = c.trm_in_json(0, &["cluster", "add", "member2"]);
            assert_eq!(again["token"], added["token"], "{again}");
            assert_eq!(again["changed"], false, "{again}");
        },
    );

    t.setup(
        "members_join_through_trm_and_a_second_join_does_nothing",
        || {
            for i in 1..3 {
                let joined = c.join(i);
                assert_eq!(joined["changed"], true, "{joined}");
            }
            let token = c.trm_in_json(0, &["cluster", "add", "spare"])["token"]
                .as_str()
                .unwrap()
                .to_string();
            // Joined already (as member3, not spare): refused, nothing changed.
            let out = c.trm_in(
                2,
                &["cluster", "join", &token, "--address", &c.node(2).address],
            );
            e2e::assert_refused(
                &out,
                "join twice",
                exit::WRONG_STATE,
                "already the cluster member 'member3'",
            );
            let out = c.trm_in(0, &["cluster", "add", "member2"]);
            e2e::assert_refused(&out, "add a name taken", exit::USAGE, "already a member");
            c.trust_host();
            // The others open their firewall to a new member at their next
            // mesh run (their timer's, within a minute): run it now.
            for i in 0..3 {
                c.trm_in_json(i, &["cluster", "mesh"]);
            }
            eventually("every member online", 120, || {
                c.statuses().values().all(|s| s == "Online")
            });
            let list = json(
                &c.tool(&bed, "trm")
                    .args(["cluster", "list", "--format", "json"])
                    .output()
                    .unwrap(),
                "cluster list",
            );
            let names: Vec<(&str, &str)> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|m| (m["name"].as_str().unwrap(), m["status"].as_str().unwrap()))
                .collect();
            assert_eq!(
                names,
                [
                    ("member1", "online"),
                    ("member2", "online"),
                    ("member3", "online")
                ]
            );
            assert_eq!(list[2]["address"], c.node(2).address.as_str());
        },
    );

    t.setup("the_mesh_joins_every_member_over_wireguard", || {
        // A member that joined after another learns of it on its next run
        // (the timer's, every minute): run each once more to be sure.
        for round in 0..2 {
            for i in 0..3 {
                let m = c.trm_in_json(i, &["cluster", "mesh"]);
                assert_eq!(m["index"], i + 1, "round {round}: {m}");
            }
        }
        for i in 0..3 {
            let m = c.trm_in_json(i, &["cluster", "mesh"]);
            assert_eq!(m["changed"], false, "in line already: {m}");
            let peers = m["peers"].as_array().unwrap();
            assert_eq!(peers.len(), 2, "{m}");
            for p in peers {
                assert!(p["handshake_age_s"].is_u64(), "a handshake with {p}");
            }
            assert_eq!(m["waiting"], serde_json::json!([]), "{m}");
        }
        // `trm status` on the host shows every member, from their heartbeats.
        let out = c
            .tool(&bed, "trm")
            .args(["status", "--format", "json"])
            .output()
            .unwrap();
        let st: Value = serde_json::from_slice(&out.stdout).expect("status prints JSON");
        let members = st["members"].as_array().unwrap();
        assert_eq!(members.len(), 3, "{st}");
        for m in members {
            assert_eq!(m["online"], true, "{m}");
            assert_eq!(m["version"], "5.0.2", "{m}");
            assert!(m["load"].is_array(), "{m}");
            assert!(m["heartbeat_age_seconds"].as_i64().unwrap() < 300, "{m}");
        }
        // The members' host addresses stay out of DHCP, on every member.
        let net = c.query("/1.0/networks/trmbr0");
        let p = bridge_prefix(c);
        assert_eq!(
            net["config"]["ipv4.dhcp.ranges"],
            format!("{p}.2-{p}.222").as_str()
        );
    });

    t.case("the_members_ports_open_to_the_other_members_only", || {
        // A stranger (the host, on node2 and node3 where no admin opened
        // anything) gets nowhere; the admin's rule on node1 holds.
        assert!(tcp_open(&c.node(0).address, 8443), "the admin's client reaches member1");
        for i in 1..3 {
            assert!(!tcp_open(&c.node(i).address, 8443), "LXD's port on node{} is closed to strangers", i + 1);
        }
        let rules = cluster_rules(c, 0);
        for (m, a) in [("member2", &c.node(1).address), ("member3", &c.node(2).address)] {
            assert!(
                rules.contains(&format!("ufw allow from {a} to any port 8443 proto tcp comment 'terrarium-cluster {m} lxd'")),
                "{rules:?}"
            );
            assert!(
                rules.contains(&format!("ufw allow from {a} to any port 51820 proto udp comment 'terrarium-cluster {m} wireguard'")),
                "{rules:?}"
            );
        }
        assert!(!rules.iter().any(|r| r.contains("member1")), "no rule for itself: {rules:?}");
        assert!(!rules.iter().any(|r| r.contains("'terrarium-cluster join")), "the join's rules are replaced: {rules:?}");
        assert_eq!(rules.len(), 7, "lxd, wireguard and vxlan for two members, and the private network: {rules:?}");
    });

    t.case("the_audit_runs_on_every_member_and_says_which_fails_what", || {
        // member2 alone gets a service listening on its public address.
        c.sh_ok(1, "(setsid python3 -m http.server 9999 --bind 0.0.0.0 >/dev/null 2>&1 &) ; sleep 1; true");
        for i in 0..3 {
            let out = c.tool_in_again(i, "trm-harden", &["audit"]);
            let checks: Value = serde_json::from_slice(&out.stdout).expect("audit prints JSON");
            let listeners = checks.as_array().unwrap().iter().find(|c| c["check"] == "listeners").unwrap();
            let detail = listeners["detail"].as_str().unwrap();
            // The cluster's own ports are explained, on every member.
            assert!(!detail.contains(":8443/tcp is not explained"), "node{}: {detail}", i + 1);
            assert!(!detail.contains(":51820/udp is not explained"), "node{}: {detail}", i + 1);
            assert_eq!(listeners["status"] == "fail", i == 1, "node{}: {listeners}", i + 1);
        }
        let out = c.tool(&bed, "trm-harden").args(["audit", "--members", "--format", "json"]).output().unwrap();
        assert_eq!(out.status.code(), Some(exit::PROBLEMS), "{}", String::from_utf8_lossy(&out.stderr));
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        let rows = list.as_array().unwrap();
        assert_eq!(rows.len(), 3, "{list}");
        let failed = |m: &str| -> Vec<String> {
            let r = rows.iter().find(|r| r["member"] == m).unwrap();
            assert!(r["age_seconds"].as_i64().unwrap() < 600, "{r}");
            r["failed"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        assert!(failed("member2").contains(&"listeners".to_string()), "{list}");
        assert!(!failed("member1").contains(&"listeners".to_string()), "{list}");
        assert!(!failed("member3").contains(&"listeners".to_string()), "{list}");
        c.sh(1, "pkill -f 'http.server 9999'; true");
    });

    t.case("the_baseline_holds_on_every_member", || {
        for i in 0..3 {
            let report = c.trm_in_json(i, NODE_INIT);
            assert_eq!(report["changed"], false, "node{}: {report}", i + 1);
            for kind in ["storage-pools/terrarium", "networks/trmbr0"] {
                let v: Value = c.query(&format!("/1.0/{kind}?target={}", c.node(i).member));
                assert_eq!(v["status"], "Created", "{kind} on member{}: {v}", i + 1);
            }
        }
        let profiles = c.query("/1.0/profiles?recursion=1");
        let names: Vec<&str> = profiles
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        for p in ["default", "terrarium", "strict", "dev", "agent"] {
            assert!(names.contains(&p), "{p} is cluster-wide: {names:?}");
        }
    });

    t.setup(
        "launch_target_places_each_box_at_an_address_free_cluster_wide",
        || {
            c.copy_image(BUSYBOX_IMAGE);
            let out = c
                .tool(&bed, "trm")
                .args([
                    "launch",
                    "box3",
                    "--image",
                    BUSYBOX_IMAGE,
                    "--no-wait",
                    "--target",
                    "nowhere",
                    "--format",
                    "json",
                ])
                .output()
                .unwrap();
            e2e::assert_refused(
                &out,
                "launch on no member",
                exit::NOT_FOUND,
                "cluster member 'nowhere'",
            );
            assert!(
                c.client()
                    .args(["info", "box3"])
                    .output()
                    .unwrap()
                    .status
                    .code()
                    != Some(0)
            );
            for i in 1..=3 {
                let out = c
                    .tool(&bed, "trm")
                    .args([
                        "launch",
                        &format!("box{i}"),
                        "--image",
                        BUSYBOX_IMAGE,
                        "--no-wait",
                        "--target",
                        &format!("member{i}"),
                        "--format",
                        "json",
                    ])
                    .output()
                    .unwrap();
                json(&out, &format!("launch box{i}"));
            }
            let list = json(
                &c.tool(&bed, "trm")
                    .args(["list", "--format", "json"])
                    .output()
                    .unwrap(),
                "list",
            );
            let placed: Vec<(&str, &str, &str)> = list
                .as_array()
                .unwrap()
                .iter()
                .map(|b| {
                    (
                        b["name"].as_str().unwrap(),
                        b["location"].as_str().unwrap(),
                        b["state"].as_str().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                placed,
                [
                    ("box1", "member1", "running"),
                    ("box2", "member2", "running"),
                    ("box3", "member3", "running")
                ]
            );
            // Each member's DHCP server would have handed out the same first
            // address; the pinned ones differ.
            let pins: std::collections::BTreeSet<String> =
                (1..=3).map(|i| c.pinned(&format!("box{i}"))).collect();
            assert_eq!(pins.len(), 3, "{pins:?}");
            for i in 1..=3 {
                c.serve(&format!("box{i}"), &format!("box{i} on member{i}"));
            }
        },
    );

    t.case(
        "the_schedule_runs_once_per_cluster_for_every_box_wherever_it_lives",
        || {
            let leader = c
                .query("/1.0/cluster/members?recursion=1")
                .as_array()
                .unwrap()
                .iter()
                .find(|m| {
                    m["roles"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r == "database-leader")
                })
                .map(|m| m["server_name"].as_str().unwrap().to_string())
                .expect("a leader");
            let snaps = |b: &str| {
                c.query(&format!("/1.0/instances/{b}/snapshots"))
                    .as_array()
                    .unwrap()
                    .len()
            };
            let before: Vec<usize> = (1..=3).map(|i| snaps(&format!("box{i}"))).collect();
            // A member that is not the leader ticks and leaves the work to it.
            let follower = (0..3).find(|i| c.node(*i).member != leader).unwrap();
            let out = c.tool_in_again(follower, "trm-snap", &["auto"]);
            let ticks = json(&out, "auto on a follower");
            assert_eq!(ticks.as_array().unwrap().len(), 1, "{ticks}");
            assert_eq!(
                ticks[0]["outcome"],
                format!("elsewhere: {leader} runs the cluster's schedule").as_str()
            );
            let same: Vec<usize> = (1..=3).map(|i| snaps(&format!("box{i}"))).collect();
            assert_eq!(same, before, "no snapshot from a follower");
            // The leader's tick (through its API, as its timer would) takes one
            // of every box, on every member.
            if leader == c.node(0).member {
                let out = c
                    .tool(&bed, "trm-snap")
                    .args(["auto", "--format", "json"])
                    .output()
                    .unwrap();
                let ticks = json(&out, "auto on the leader");
                for i in 1..=3 {
                    let t = ticks
                        .as_array()
                        .unwrap()
                        .iter()
                        .find(|t| t["instance"] == format!("box{i}"))
                        .unwrap();
                    assert_eq!(t["outcome"], "snapshotted", "{t}");
                    assert_eq!(snaps(&format!("box{i}")), before[i - 1] + 1);
                }
            }
        },
    );

    t.case(
        "restore_as_takes_a_target_member_and_an_address_of_its_own",
        || {
            let snap = |args: &[&str]| {
                c.tool(&bed, "trm-snap")
                    .args(args)
                    .args(["--format", "json"])
                    .output()
                    .unwrap()
            };
            json(&snap(&["create", "box1"]), "snapshot box1");
            let out = snap(&["restore", "box1", "--as", "box1b", "--target", "nowhere"]);
            e2e::assert_refused(
                &out,
                "restore onto no member",
                exit::NOT_FOUND,
                "cluster member 'nowhere'",
            );
            assert!(
                c.client()
                    .args(["info", "box1b"])
                    .output()
                    .unwrap()
                    .status
                    .code()
                    != Some(0),
                "nothing made"
            );
            let r = json(
                &snap(&["restore", "box1", "--as", "box1b", "--target", "member2"]),
                "restore --target",
            );
            assert_eq!(c.location("box1b"), "member2");
            let (a, b) = (c.pinned("box1"), c.pinned("box1b"));
            assert_ne!(a, b, "the copy has an address of its own");
            assert!(r["stripped"].to_string().contains(&a), "{r}");
            c.client_ok(&["delete", "--force", "box1b"]);
        },
    );

    t.case(
        "boxes_on_different_members_reach_each_other_over_the_mesh",
        || {
            let (ip1, ip3) = (c.pinned("box1"), c.pinned("box3"));
            assert!(box_get(c, "box1", &ip3, "").contains("box3 on member3"));
            assert!(box_get(c, "box3", &ip1, "").contains("box1 on member1"));
            // Member1's host (where Traefik runs) reaches a box on member3 too.
            assert!(node_get(c, 0, &ip3).contains("box3 on member3"));
        },
    );

    t.case("the_overlay_is_encrypted_on_the_members_link", || {
        let pcap = tempfile::NamedTempFile::new().unwrap();
        let mut dump = std::process::Command::new("tcpdump")
            .args(["-i", N.bridge, "-U", "-n", "-w"])
            .arg(pcap.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("tcpdump (scripts/setup-host.sh installs it)");
        std::thread::sleep(Duration::from_secs(2));
        let marker = "plaintext-marker-7f3a";
        let reply = box_get(c, "box1", &c.pinned("box3"), marker);
        assert!(reply.contains("404"), "the request went through: {reply}");
        std::thread::sleep(Duration::from_secs(1));
        e2e::sh(&format!("kill {}", dump.id()));
        let _ = dump.wait();
        let bytes = std::fs::read(pcap.path()).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains(marker),
            "the test request crossed the members' link in clear"
        );
        let read = |filter: &str| -> usize {
            let out = std::process::Command::new("tcpdump")
                .args(["-n", "-r"])
                .arg(pcap.path())
                .arg(filter)
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).lines().count()
        };
        let (a1, a3) = (&c.node(0).address, &c.node(2).address);
        assert!(
            read(&format!("udp port 51820 and host {a1} and host {a3}")) > 0,
            "it went over WireGuard"
        );
        assert_eq!(
            read("tcp port 8080 or udp port 4789"),
            0,
            "no HTTP or bare VXLAN on the link"
        );
    });

    t.case(
        "a_spoofed_source_on_member2_reaches_nobody_on_member1",
        || {
            let ip1 = c.pinned("box1");
            let host1 = &format!("{}.254", bridge_prefix(c));
            assert!(
                box_get(c, "box2", &ip1, "").contains("box1 on member1"),
                "reachable before"
            );
            let ping = |to: &str| {
                c.box_sh("box2", &format!("ping -c 2 -W 2 {to}"))
                    .status
                    .success()
            };
            assert!(ping(host1), "member1's host answers box2 before");
            // Root in box2 takes an address that is not its own.
            let out = c.box_sh(
                "box2",
                "ip addr flush dev eth0 && ip addr add 10.100.0.60/24 dev eth0",
            );
            e2e::assert_ok(&out, "spoof");
            assert!(
                !box_get(c, "box2", &ip1, "").contains("box1"),
                "box1 answered a spoofed source"
            );
            assert!(!ping(host1), "member1's host answered a spoofed source");
            assert!(!ping(&ip1));
            c.serve("box2", "box2 on member2");
            assert!(
                box_get(c, "box2", &ip1, "").contains("box1 on member1"),
                "its own address works again"
            );
        },
    );

    t.setup("traefik_on_member1_routes_to_a_box_on_member3", || {
        // Member1 exposes: Traefik in its node, plain HTTP, no ACME.
        c.sh_ok(
            0,
            "id traefik >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin traefik; \
             sed -i 's|^acme_ca_server = \"\"|acme_ca_server = \"https://127.0.0.1:14000/dir\"|; s|^ufw = true|ufw = false|' /etc/terrarium/terrarium.toml",
        );
        for (b, host) in [("box3", "app3.example.test"), ("box2", "app2.example.test")] {
            c.client_ok(&["config", "set", b, "user.proxy", &format!("http://{host}:8080")]);
        }
        let expose = |args: &[&str]| -> Value {
            let out = c.tool_in_again(0, "trm-expose", args);
            json(&out, &format!("trm-expose {}", args.join(" ")))
        };
        expose(&["sync"]);
        let st = expose(&["proxy", "start"]);
        assert_eq!(st["running"], true, "{st}");
        expose(&["sync"]);
        let list = expose(&["list"]);
        let rows = list["routes"].as_array().or(list.as_array()).cloned().unwrap_or_default();
        assert!(rows.iter().any(|r| r.to_string().contains("app3.example.test")), "{list}");
        let app3 = rows.iter().find(|r| r["instance"] == "box3").expect("box3's route");
        assert_eq!(app3["location"], "member3", "the route says where its box lives: {app3}");
        assert_eq!(app3["backend"], format!("http://{}:8080", c.pinned("box3")).as_str());
        let m1 = c.node(0).address.clone();
        eventually("app3 through member1's Traefik", 30, || {
            get(&m1, "app3.example.test", "/").is_some_and(|(s, b)| s == 200 && b == "box3 on member3")
        });
        assert_eq!(get(&m1, "app2.example.test", "/"), Some((200, "box2 on member2".into())));
        assert_eq!(get(&m1, "nobody.example.test", "/").map(|r| r.0), Some(404));
    });

    t.case("evacuate_moves_the_box_and_its_route_follows", || {
        let m1 = c.node(0).address.clone();
        let trm = |args: &[&str]| {
            json(
                &c.tool(&bed, "trm")
                    .args(args)
                    .args(["--format", "json"])
                    .output()
                    .unwrap(),
                &args.join(" "),
            )
        };
        let plan = trm(&["cluster", "evacuate", "member3", "--dry-run"]);
        assert_eq!(
            plan["instances"],
            serde_json::json!(["default/box3"]),
            "{plan}"
        );
        assert_eq!(c.location("box3"), "member3", "a dry run moves nothing");
        // Without --yes and no terminal to ask on, nothing moves.
        let out = c
            .tool(&bed, "trm")
            .args(["cluster", "evacuate", "member3", "--format", "json"])
            .output()
            .unwrap();
        e2e::assert_refused(&out, "evacuate unconfirmed", exit::USAGE, "--yes");
        assert_eq!(c.location("box3"), "member3");
        let done = trm(&["cluster", "evacuate", "member3", "--yes"]);
        assert_eq!(done["changed"], true, "{done}");
        let moved = c.location("box3");
        assert_ne!(moved, "member3");
        assert_eq!(c.query("/1.0/instances/box3")["status"], "Running");
        assert_eq!(c.statuses()["member3"], "Evacuated");
        assert_eq!(
            trm(&["cluster", "evacuate", "member3", "--yes"])["changed"],
            false
        );
        // The box restarted elsewhere: its service comes up, and the route
        // (the same pinned address) serves from its new member.
        c.serve("box3", "box3 on member3");
        let up = Instant::now();
        eventually("app3 from its new member", 30, || {
            get(&m1, "app3.example.test", "/").is_some_and(|(s, _)| s == 200)
        });
        println!(
            "    route followed box3 to {moved} {:.2}s after its service came up",
            up.elapsed().as_secs_f32()
        );
        let back = trm(&["cluster", "restore", "member3"]);
        assert_eq!(back["changed"], true, "{back}");
        assert_eq!(c.location("box3"), "member3");
        assert_eq!(c.statuses()["member3"], "Online");
        assert_eq!(trm(&["cluster", "restore", "member3"])["changed"], false);
        c.serve("box3", "box3 on member3");
        eventually("app3 back on member3", 30, || {
            get(&m1, "app3.example.test", "/").is_some_and(|(s, _)| s == 200)
        });
    });

    t.case(
        "a_killed_members_routes_fail_the_others_serve_and_it_rejoins_by_itself",
        || {
            let m1 = c.node(0).address.clone();
            c.kill(1);
            eventually("member2 to be offline", 120, || {
                c.statuses()["member2"] == "Offline"
            });
            let dead = get(&m1, "app2.example.test", "/");
            assert!(
                dead.as_ref().is_some_and(|(s, _)| (500..600).contains(s)),
                "member2's route: {dead:?}"
            );
            assert_eq!(
                get(&m1, "app3.example.test", "/"),
                Some((200, "box3 on member3".into()))
            );
            let list = json(
                &c.tool(&bed, "trm")
                    .args(["cluster", "list", "--format", "json"])
                    .output()
                    .unwrap(),
                "list",
            );
            assert_eq!(list[1]["status"], "offline", "{list}");
            c.start(1);
            eventually("member2 to be online again", 180, || {
                c.statuses()["member2"] == "Online"
            });
            // Its mesh comes back by its timer at boot; box2 starts again with LXD.
            eventually("member2's mesh back", 120, || {
                let out = c.trm_in_again(1, &["cluster", "mesh", "--dry-run"]);
                out.status.success()
                    && serde_json::from_slice::<Value>(&out.stdout)
                        .is_ok_and(|m| m["steps"] == Value::Array(vec![]))
            });
            eventually("box2 running again", 120, || {
                c.query("/1.0/instances/box2")["status"] == "Running"
            });
            c.serve("box2", "box2 on member2");
            eventually("app2 serving again", 60, || {
                get(&m1, "app2.example.test", "/") == Some((200, "box2 on member2".into()))
            });
        },
    );

    t.case("remove_refuses_a_member_with_boxes_then_removes_it", || {
        let out = c
            .tool(&bed, "trm")
            .args(["cluster", "remove", "member3", "--yes", "--format", "json"])
            .output()
            .unwrap();
        e2e::assert_refused(
            &out,
            "remove a member with a box",
            exit::WRONG_STATE,
            "still holds default/box3",
        );
        assert_eq!(c.statuses().len(), 3);
        let del = c
            .tool(&bed, "trm")
            .args(["delete", "box3", "--force", "--yes", "--format", "json"])
            .output()
            .unwrap();
        json(&del, "delete box3");
        let done = json(
            &c.tool(&bed, "trm")
                .args(["cluster", "remove", "member3", "--yes", "--format", "json"])
                .output()
                .unwrap(),
            "remove",
        );
        assert_eq!(done["changed"], true, "{done}");
        assert!(!c.statuses().contains_key("member3"));
        // The others close member3's ports at their next mesh run: the
        // timer's service, started now rather than waited for.
        for i in 0..2 {
            c.sh_ok(i, "systemctl start trm-cluster-mesh.service");
            let rules = cluster_rules(c, i);
            assert!(
                !rules.iter().any(|r| r.contains("member3")),
                "node{}: {rules:?}",
                i + 1
            );
            assert!(
                rules.iter().any(|r| r.contains("member")),
                "the others' stay: {rules:?}"
            );
        }
        let again = json(
            &c.tool(&bed, "trm")
                .args(["cluster", "remove", "member3", "--yes", "--format", "json"])
                .output()
                .unwrap(),
            "remove again",
        );
        assert_eq!(again["changed"], false, "{again}");
    });

    bed.teardown();
    t.case("clean_up_leaves_nothing", || {
        cluster::assert_gone(N.project)
    });
    t.finish()
}
