//! Terrarium on a real three-member LXD cluster (TRM_E2E=1): LXD nodes in
//! containers on the suite's bridge, formed through `trm cluster` run in
//! each node, driven from the host over LXD's HTTPS API.

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
        assert_eq!(whats, ["server_config", "cluster"], "{plan}");
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
                &["cluster", "join", &forged, "--address", &c.node(1).address],
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

    t.setup("launch_target_places_the_box_and_list_shows_where", || {
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
        for (name, member) in [("box3", "member3"), ("box2", "member2")] {
            let out = c
                .tool(&bed, "trm")
                .args([
                    "launch",
                    name,
                    "--image",
                    BUSYBOX_IMAGE,
                    "--no-wait",
                    "--target",
                    member,
                    "--format",
                    "json",
                ])
                .output()
                .unwrap();
            json(&out, &format!("launch {name}"));
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
                ("box2", "member2", "running"),
                ("box3", "member3", "running")
            ]
        );
    });

    t.case(
        "evacuate_moves_the_boxes_and_restore_brings_them_back",
        || {
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
            let back = trm(&["cluster", "restore", "member3"]);
            assert_eq!(back["changed"], true, "{back}");
            assert_eq!(c.location("box3"), "member3");
            assert_eq!(c.statuses()["member3"], "Online");
            assert_eq!(trm(&["cluster", "restore", "member3"])["changed"], false);
        },
    );

    t.case(
        "a_killed_member_goes_offline_the_others_serve_and_it_rejoins_by_itself",
        || {
            c.kill(1);
            eventually("member2 to be offline", 120, || {
                c.statuses()["member2"] == "Offline"
            });
            // The rest of the cluster answers, and what lives elsewhere runs.
            assert_eq!(c.query("/1.0/instances/box3")["status"], "Running");
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
