//! Agent sandboxes against a real LXD: an agent box's own bridge and ACL
//! keep it from the cloud metadata address, private services and the
//! host, while the public internet (a TEST-NET address in a namespace the
//! test made) stays reachable; root inside cannot get around it, a box's
//! policy change touches no other box, and a default box is unaffected.

use std::process::{Child, Command, Stdio};

use serde_json::{json, Value};
use terrarium_core::agents::sandbox;
use terrarium_core::error::exit;
use terrarium_tests::e2e::{self, lxc, lxc_json, Bed, Names, Runner, AGENT_SUITE};

const N: Names = AGENT_SUITE;
const AGENT: &str = "a-box";
const PLAIN: &str = "d-box";
/// Launched by an agent through `trm mcp`.
const MCP_BOX: &str = "m-box";
/// The "outside": a namespace joined to the host by a veth.
const NS: &str = "trm-e2e-agt";
const VETH: &str = "trmagtv0";
const PORT: u16 = 8080;
/// What the namespace holds: the public internet, the cloud's metadata
/// service and a private service.
const PUBLIC: &str = "203.0.113.5";
const METADATA: &str = "169.254.169.254";
const PRIVATE: &str = "10.66.0.5";
/// A host service on each bridge's own address (not DNS, not DHCP).
const HOST_PORT: u16 = 18099;

/// Can `name` open a TCP connection to ip:port? (bash's /dev/tcp: no
/// client program needed in the image.)
fn reaches(name: &str, ip: &str, port: u16) -> bool {
    let script = format!("timeout 4 bash -c 'exec 3<>/dev/tcp/{ip}/{port}' && echo open");
    String::from_utf8_lossy(&sh_in(name, &script).stdout).contains("open")
}

/// A script as root in a box, whatever its outcome.
fn sh_in(name: &str, script: &str) -> std::process::Output {
    e2e::sh_in(N.project, name, script)
}

/// The box takes execs again (a rollback restarts it).
fn wait_for_execs() {
    e2e::eventually("the box running again", 60, || {
        lxc(&["exec", "--project", N.project, AGENT, "--", "true"])
            .status
            .success()
    });
}

/// `trm exec AGENT OPTS --format json -- CMD`. Every CMD here may run
/// twice: one LXD lost track of ([`e2e::outcome_unknown`]) is run again, as
/// [`Bed::trm_again_if_lost`] does, but after rolling
/// back to the checkpoint it took first, if any (it ran, and a second
/// checkpoint would be of its result).
fn exec_out(bed: &Bed, opts: &[&str], cmd: &[&str]) -> std::process::Output {
    let run = || {
        bed.tool("trm")
            .args(["exec", AGENT, "--format", "json"])
            .args(opts)
            .arg("--")
            .args(cmd)
            .output()
            .unwrap()
    };
    let mut out = run();
    for _ in 0..3 {
        if !e2e::outcome_unknown(&out) {
            break;
        }
        if opts.contains(&"--checkpoint") {
            bed.snap(&["rollback", AGENT, "--to", "last-checkpoint", "--yes"]);
            wait_for_execs();
        }
        out = run();
    }
    out
}

/// [`exec_out`], asserting it ran, parsed.
fn exec_json(bed: &Bed, opts: &[&str], cmd: &[&str]) -> Value {
    let out = exec_out(bed, opts, cmd);
    e2e::assert_ok(&out, &format!("trm exec {opts:?} -- {cmd:?}"));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A real MCP client (the SDK's own) talking to `trm mcp` over stdio.
struct Mcp {
    rt: tokio::runtime::Runtime,
    client: Option<rmcp::service::RunningService<rmcp::RoleClient, ()>>,
}

impl Mcp {
    fn start(bed: &Bed, args: &[&str]) -> Mcp {
        use rmcp::ServiceExt;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut cmd = bed.tool("trm");
        cmd.arg("mcp").args(args).stderr(Stdio::inherit());
        let client = rt.block_on(async {
            let transport =
                rmcp::transport::TokioChildProcess::new(tokio::process::Command::from(cmd))
                    .unwrap();
            ().serve(transport).await.expect("the MCP handshake")
        });
        Mcp {
            rt,
            client: Some(client),
        }
    }

    fn tools(&mut self) -> Vec<String> {
        let client = self.client.as_ref().unwrap();
        let tools = self.rt.block_on(client.list_all_tools()).unwrap();
        tools.iter().map(|t| t.name.to_string()).collect()
    }

    /// A tool call the server may refuse at the protocol level: did it
    /// answer with a result at all (and not an error)?
    fn call_raw(&mut self, tool: &str, args: Value) -> bool {
        let client = self.client.as_ref().unwrap();
        let params = rmcp::model::CallToolRequestParams::new(tool.to_string())
            .with_arguments(args.as_object().unwrap().clone());
        self.rt
            .block_on(client.call_tool(params))
            .is_ok_and(|r| r.is_error != Some(true))
    }

    /// A tool call: (succeeded, its structured content).
    fn call(&mut self, tool: &str, args: Value) -> (bool, Value) {
        let client = self.client.as_ref().unwrap();
        let params = rmcp::model::CallToolRequestParams::new(tool.to_string())
            .with_arguments(args.as_object().unwrap().clone());
        let r = self.rt.block_on(client.call_tool(params)).unwrap();
        (
            r.is_error != Some(true),
            r.structured_content.unwrap_or(Value::Null),
        )
    }
}

impl Mcp {
    /// An `exec` of a command that may run twice, run again when LXD 5.0
    /// lost track of it once started: the server says so (outcome_unknown,
    /// the command may have run), and only the caller knows a retry is
    /// safe. With a checkpoint, the box is rolled back to it first (the
    /// server must allow rollback).
    fn exec_again_if_lost(&mut self, args: Value) -> (bool, Value) {
        let mut r = self.call("exec", args.clone());
        for _ in 0..3 {
            if r.0 || r.1["kind"] != "outcome_unknown" {
                break;
            }
            if args["checkpoint"] == true {
                let (ok, back) = self.call("rollback", json!({"name": AGENT}));
                assert!(ok, "{back}");
                wait_for_execs();
            }
            r = self.call("exec", args.clone());
        }
        r
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self.rt.block_on(c.cancel());
        }
    }
}

fn gateway_of(bridge: &str) -> String {
    let net = lxc_json(&format!("/1.0/networks/{bridge}"));
    let a = net["config"]["ipv4.address"].as_str().unwrap();
    a.split('/').next().unwrap().to_string()
}

/// The namespace with the three "outside" addresses, each serving PORT.
struct Outside {
    servers: Vec<Child>,
}

impl Outside {
    fn start() -> Outside {
        Outside::stop_leftovers();
        e2e::sh(&format!(
            "ip netns add {NS} && ip link add {VETH} type veth peer name veth0 netns {NS} && \
             ip addr add 198.51.100.1/30 dev {VETH} && ip link set {VETH} up && \
             ip -n {NS} addr add 198.51.100.2/30 dev veth0 && ip -n {NS} link set veth0 up && \
             ip -n {NS} link set lo up && \
             ip -n {NS} addr add {PUBLIC}/32 dev lo && ip -n {NS} addr add {METADATA}/32 dev lo && \
             ip -n {NS} addr add {PRIVATE}/32 dev lo && \
             ip -n {NS} route add default via 198.51.100.1 && \
             ip route add {PUBLIC}/32 via 198.51.100.2 && ip route add {METADATA}/32 via 198.51.100.2 && \
             ip route add {PRIVATE}/32 via 198.51.100.2"
        ));
        let server = Command::new("ip")
            .args([
                "netns",
                "exec",
                NS,
                "python3",
                "-m",
                "http.server",
                "--bind",
                "0.0.0.0",
            ])
            .arg(PORT.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let o = Outside {
            servers: vec![server],
        };
        e2e::eventually("the namespace's server", 20, || {
            Command::new("ip")
                .args(["netns", "exec", NS, "python3", "-c"])
                .arg(format!(
                    "import socket; socket.create_connection(('{PUBLIC}', {PORT}), 2)"
                ))
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        o
    }

    /// A host service on `ip`, as something private on the host would be.
    fn serve_on_host(&mut self, ip: &str) {
        let server = Command::new("python3")
            .args(["-m", "http.server", "--bind", ip])
            .arg(HOST_PORT.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.servers.push(server);
        e2e::eventually("the host service", 20, || {
            std::net::TcpStream::connect((ip, HOST_PORT)).is_ok()
        });
    }

    /// What a killed earlier run left; quiet, since usually nothing.
    fn stop_leftovers() {
        let quiet = |args: &[&str]| {
            let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
        };
        for r in [PUBLIC, METADATA, PRIVATE] {
            quiet(&["route", "del", &format!("{r}/32")]);
        }
        quiet(&["link", "del", VETH]);
        quiet(&["netns", "del", NS]);
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        Outside::stop_leftovers();
    }
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_agent") {
        return std::process::ExitCode::SUCCESS;
    }
    let bed = Bed::new(N);
    let mut t = Runner::new();
    let mut outside = Outside::start();
    let agent_bridge = sandbox::bridge_of(N.project, AGENT);

    t.setup("setup_an_agent_box_and_a_default_box", || {
        bed.trm_json(&bed.init_args());
        let launched = bed.trm_json(&[
            "launch",
            AGENT,
            "--profile",
            "agent",
            "--memory",
            "512MiB",
            "--cpu",
            "1",
        ]);
        assert_eq!(launched["config"]["limits.memory"], "512MiB");
        assert_eq!(
            launched["devices"]["eth0"]["network"],
            agent_bridge.as_str()
        );
        assert_eq!(
            launched["instance"]["egress"]["policy"], "public",
            "{launched}"
        );
        bed.trm_json(&["launch", PLAIN]);
        outside.serve_on_host(&gateway_of(&agent_bridge));
        outside.serve_on_host(&gateway_of(N.bridge));
    });

    t.case(
        "an_agent_box_reaches_the_internet_and_nothing_private",
        || {
            assert!(reaches(AGENT, PUBLIC, PORT), "the public address");
            assert!(!reaches(AGENT, METADATA, PORT), "the metadata service");
            assert!(!reaches(AGENT, PRIVATE, PORT), "a private service");
            let gw = gateway_of(&agent_bridge);
            assert!(!reaches(AGENT, &gw, HOST_PORT), "the host's own service");
            // Another tenant's bridge is private too.
            assert!(!reaches(AGENT, &gateway_of(N.bridge), HOST_PORT));
            // Its resolver still answers (DNS is a baseline service of the bridge).
            assert!(reaches(AGENT, &gw, 53), "DNS");
        },
    );

    t.case("a_default_box_is_unaffected", || {
        assert!(reaches(PLAIN, PUBLIC, PORT));
        assert!(reaches(PLAIN, PRIVATE, PORT), "no policy on a default box");
        assert!(reaches(PLAIN, &gateway_of(N.bridge), HOST_PORT));
        let info = bed.trm_json(&["info", PLAIN]);
        assert_eq!(info["egress"], Value::Null);
    });

    t.case("policy_none_then_an_allow_list_touch_only_that_box", || {
        let set = bed.trm_json(&["policy", "set", AGENT, "--egress", "none"]);
        assert_eq!(set["policy"], "none", "{set}");
        assert_eq!(set["changed"], true);
        assert!(!reaches(AGENT, PUBLIC, PORT), "nothing after --egress none");
        assert_eq!(bed.trm_json(&["info", AGENT])["egress"]["policy"], "none");
        assert!(
            reaches(PLAIN, PUBLIC, PORT),
            "the other box keeps its way out"
        );

        let allow = format!("{PUBLIC}:{PORT}");
        let set = bed.trm_json(&[
            "policy",
            "set",
            AGENT,
            "--egress",
            "allow-list",
            "--allow",
            &allow,
        ]);
        assert_eq!(set["allow"][0]["port"], PORT, "{set}");
        assert!(reaches(AGENT, PUBLIC, PORT), "the allowed entry");
        assert!(!reaches(AGENT, PUBLIC, HOST_PORT), "only its port");
        assert!(!reaches(AGENT, METADATA, PORT));

        let set = bed.trm_json(&["policy", "set", AGENT, "--egress", "public"]);
        assert_eq!(set["policy"], "public");
        assert!(reaches(AGENT, PUBLIC, PORT));
        let list = bed.trm_json(&["list"]);
        let row = list
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == AGENT)
            .unwrap()
            .clone();
        assert_eq!(row["egress"]["policy"], "public", "{row}");
    });

    t.case("bad_policies_are_refused_and_change_nothing", || {
        let before = lxc_json(&format!("/1.0/network-acls/{agent_bridge}"));
        for (args, code, says) in [
            (
                vec!["policy", "set", PLAIN, "--egress", "none"],
                exit::WRONG_STATE,
                "not an agent box",
            ),
            (
                vec![
                    "policy",
                    "set",
                    AGENT,
                    "--egress",
                    "allow-list",
                    "--allow",
                    "example.com",
                ],
                exit::USAGE,
                "example.com",
            ),
            (
                vec!["policy", "set", AGENT, "--egress", "allow-list"],
                exit::USAGE,
                "needs at least one --allow",
            ),
            (
                vec!["policy", "set", "no-such-box", "--egress", "none"],
                exit::NOT_FOUND,
                "no-such-box",
            ),
        ] {
            bed.refused("trm", &args, code, says);
        }
        assert_eq!(
            lxc_json(&format!("/1.0/network-acls/{agent_bridge}")),
            before
        );
    });

    t.case("root_inside_cannot_get_around_the_policy", || {
        // Flush whatever firewall the box has, take a neighbour's address
        // and route out by hand: the ACL and the address filter are on the
        // host's side of the bridge.
        let gw = gateway_of(&agent_bridge);
        let prefix = gw.rsplit_once('.').unwrap().0.to_string();
        let script = format!(
            "(nft flush ruleset || iptables -F || true) 2>/dev/null; \
             ip addr flush dev eth0 && ip addr add {prefix}.250/24 dev eth0 && \
             ip route add default via {gw} || true"
        );
        sh_in(AGENT, &script);
        assert!(!reaches(AGENT, METADATA, PORT));
        assert!(!reaches(AGENT, PRIVATE, PORT));
        assert!(!reaches(AGENT, &gw, HOST_PORT));
        // Back to its own address: a restart asks DHCP again.
        lxc(&["restart", "--project", N.project, AGENT, "--force"]);
        e2e::eventually("the box's own address again", 60, || {
            reaches(AGENT, PUBLIC, PORT)
        });
        assert!(!reaches(AGENT, METADATA, PORT));
    });

    t.case("limits_hold_under_a_memory_hog_and_a_fork_bomb", || {
        let box_config = lxc_json(&format!("/1.0/instances/{AGENT}?project={}", N.project));
        let expanded = &box_config["expanded_config"];
        assert_eq!(expanded["limits.memory"], "512MiB");
        assert_eq!(expanded["limits.cpu"], "1");
        let cap: usize = expanded["limits.processes"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        // A gigabyte in a 512 MiB box: the kernel kills the hog, inside.
        let hog = e2e::lxc_again_if_lost(&[
            "exec",
            "--project",
            N.project,
            AGENT,
            "--",
            "perl",
            "-e",
            "my $x = 'a' x (1024 * 1024 * 1024); print qq(survived\n)",
        ]);
        assert_eq!(hog.status.code(), Some(137), "OOM-killed: {hog:?}");
        assert!(!String::from_utf8_lossy(&hog.stdout).contains("survived"));
        // Forks until the cap, then the parent reaps them all.
        let bomb = e2e::lxc_again_if_lost(&[
            "exec",
            "--project",
            N.project,
            AGENT,
            "--",
            "perl",
            "-e",
            "my @k; while (@k < 5000) { my $p = fork(); last unless defined $p; \
             if ($p == 0) { sleep 30; exit 0 } push @k, $p } \
             print scalar(@k), qq(\n); kill 'KILL', @k; 1 while wait() != -1",
        ]);
        let forked: usize = String::from_utf8_lossy(&bomb.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("the bomb's count: {bomb:?}"));
        assert!(
            forked < cap && forked > 100,
            "stopped at the cap {cap}: {forked}"
        );
        // The box and the host carry on.
        assert!(reaches(AGENT, PUBLIC, PORT));
        assert!(lxc(&["query", "/1.0"]).status.success());
    });

    t.case("exec_as_data_says_exit_code_output_and_duration", || {
        let out = exec_out(&bed, &[], &["sh", "-c", "echo out; echo err >&2; exit 3"]);
        assert_eq!(
            out.status.code(),
            Some(3),
            "trm exits with the command's status"
        );
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["exit_code"], 3, "{r}");
        assert_eq!(r["stdout"], "out\n");
        assert_eq!(r["stderr"], "err\n");
        assert_eq!(r["truncated"], false);
        assert!(r["duration_ms"].as_u64().is_some(), "{r}");
        assert_eq!(r["checkpoint"], Value::Null);
        // A flood is cut at the limit, and says so.
        let r = exec_json(&bed, &[], &["head", "-c", "3000000", "/dev/zero"]);
        assert_eq!(r["truncated"], true);
        assert_eq!(r["stdout"].as_str().unwrap().len(), 1 << 20);
    });

    t.case(
        "a_checkpointed_rm_rf_home_is_undone_by_one_rollback",
        || {
            let marker = "/home/terrarium/precious";
            e2e::exec_ok(N.project, AGENT, &format!("echo kept > {marker}"));
            let r = exec_json(
                &bed,
                &["--root", "--checkpoint"],
                &["rm", "-rf", "/home/terrarium"],
            );
            assert_eq!(r["exit_code"], 0, "{r}");
            let snap = r["checkpoint"]["snapshot"].as_str().unwrap().to_string();
            assert!(snap.starts_with("trm-checkpoint-"), "{r}");
            assert_eq!(r["checkpoint"]["command"][0], "rm");
            let gone = e2e::lxc_again_if_lost(&[
                "exec",
                "--project",
                N.project,
                AGENT,
                "--",
                "test",
                "-e",
                marker,
            ]);
            assert!(!gone.status.success(), "the command ran");
            let listed = bed.snap(&["list", AGENT]);
            assert!(
                listed
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["name"] == snap.as_str() && s["kind"] == "checkpoint"),
                "{listed}"
            );
            let back = bed.snap(&["rollback", AGENT, "--to", "last-checkpoint", "--yes"]);
            assert_eq!(back["target"], snap.as_str(), "{back}");
            wait_for_execs();
            assert_eq!(
                e2e::exec_ok(N.project, AGENT, &format!("cat {marker}")).trim(),
                "kept",
                "one rollback undid it"
            );
        },
    );

    t.case("cp_copies_as_terrarium_and_never_leaves_the_home", || {
        let dir = tempfile::tempdir().unwrap();
        let local = dir.path().join("notes.txt");
        std::fs::write(&local, "from the host\n").unwrap();
        let to = format!("{AGENT}:work/notes.txt");
        let r = bed.trm_json(&["cp", local.to_str().unwrap(), &to]);
        assert_eq!(
            r["to"],
            format!("{AGENT}:/home/terrarium/work/notes.txt"),
            "{r}"
        );
        assert_eq!(r["bytes"], 14);
        let owner = e2e::exec_ok(
            N.project,
            AGENT,
            "stat -c %U:%G /home/terrarium/work/notes.txt /home/terrarium/work",
        );
        assert_eq!(owner, "terrarium:terrarium\nterrarium:terrarium\n");
        let back = dir.path().join("back.txt");
        bed.trm_json(&["cp", &to, back.to_str().unwrap()]);
        assert_eq!(std::fs::read_to_string(&back).unwrap(), "from the host\n");
        // Out of the home: refused before the box is asked.
        for bad in ["../../etc/passwd", "/etc/passwd"] {
            bed.refused(
                "trm",
                &["cp", local.to_str().unwrap(), &format!("{AGENT}:{bad}")],
                exit::USAGE,
                "below /home/terrarium",
            );
        }
        // A link the tenant planted leads only where terrarium may write.
        e2e::exec_ok(
            N.project,
            AGENT,
            "su terrarium -s /bin/sh -c 'ln -sf /etc/passwd /home/terrarium/evil'",
        );
        let passwd = e2e::exec_ok(N.project, AGENT, "sha256sum /etc/passwd");
        let out = bed
            .tool("trm")
            .args([
                "cp",
                local.to_str().unwrap(),
                &format!("{AGENT}:evil"),
                "--format",
                "json",
            ])
            .output()
            .unwrap();
        assert!(!out.status.success(), "{out:?}");
        assert_eq!(
            e2e::exec_ok(N.project, AGENT, "sha256sum /etc/passwd"),
            passwd
        );
    });

    t.case("mcp_serves_exactly_the_safe_verbs_to_a_real_client", || {
        let mut mcp = Mcp::start(&bed, &["--box", AGENT, "--box", MCP_BOX, "--ttl", "1h"]);
        let mut names = mcp.tools();
        names.sort();
        assert_eq!(
            names,
            [
                "checkpoint",
                "exec",
                "expose",
                "launch",
                "list_boxes",
                "read_file",
                "rollback",
                "start",
                "write_file"
            ]
        );
        let (ok, r) = mcp.exec_again_if_lost(json!({"name": AGENT, "command": ["id", "-un"]}));
        assert!(ok, "{r}");
        assert_eq!(r["stdout"], "terrarium\n", "as the unprivileged user: {r}");
        assert_eq!(r["exit_code"], 0);

        let (ok, r) = mcp.call(
            "write_file",
            json!({"name": AGENT, "path": "mcp/plan.md", "content": "step 1\n"}),
        );
        assert!(ok, "{r}");
        assert_eq!(r["to"], format!("{AGENT}:/home/terrarium/mcp/plan.md"));
        assert_eq!(
            e2e::exec_ok(N.project, AGENT, "stat -c %U /home/terrarium/mcp/plan.md"),
            "terrarium\n"
        );
        let (ok, r) = mcp.call("read_file", json!({"name": AGENT, "path": "mcp/plan.md"}));
        assert!(ok, "{r}");
        assert_eq!(r["content"], "step 1\n");

        // Bounded: a command past its timeout is killed in the box; output
        // is cut where asked.
        let (ok, r) = mcp.exec_again_if_lost(
            json!({"name": AGENT, "command": ["sleep", "30"], "timeout_seconds": 1}),
        );
        assert!(ok && r["exit_code"] == 124, "{r}");
        assert!(r["duration_ms"].as_u64().unwrap() < 20_000, "{r}");
        let (ok, r) = mcp.exec_again_if_lost(
            json!({"name": AGENT, "command": ["seq", "100000"], "max_output_bytes": 100}),
        );
        assert!(ok && r["truncated"] == true, "{r}");
        assert_eq!(r["stdout"].as_str().unwrap().len(), 100);

        // Refusals: a path out of the home, a file that never ends, a box
        // outside the scope, a destructive verb the owner did not allow,
        // an argument the tool does not have.
        e2e::exec_ok(
            N.project,
            AGENT,
            "su terrarium -s /bin/sh -c 'ln -sf /dev/zero /home/terrarium/zero'",
        );
        let (ok, r) = mcp.call("read_file", json!({"name": AGENT, "path": "zero"}));
        assert!(!ok && r["kind"] == "usage", "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("not a regular file"),
            "{r}"
        );
        let (ok, r) = mcp.call("read_file", json!({"name": AGENT, "path": "no/such"}));
        assert!(!ok && r["kind"] == "not_found", "{r}");
        let big = "x".repeat((1 << 20) + 1);
        let (ok, r) = mcp.call(
            "write_file",
            json!({"name": AGENT, "path": "big", "content": big}),
        );
        assert!(!ok && r["kind"] == "usage", "{r}");
        let (ok, r) = mcp.call(
            "expose",
            json!({"name": AGENT, "host": "a.example.test", "port": 80}),
        );
        assert!(!ok && r["kind"] == "not_allowed", "{r}");
        assert!(
            !mcp.call_raw(
                "exec",
                json!({"name": AGENT, "command": ["id"], "user": "root"})
            ),
            "an unknown argument is refused"
        );
        for path in ["../../etc/shadow", "/etc/passwd"] {
            let (ok, r) = mcp.call("read_file", json!({"name": AGENT, "path": path}));
            assert!(!ok, "{path}: {r}");
            assert_eq!(r["kind"], "usage");
            assert!(
                r["message"]
                    .as_str()
                    .unwrap()
                    .contains("below /home/terrarium"),
                "{r}"
            );
        }
        let (ok, r) = mcp.call(
            "exec",
            json!({"name": PLAIN, "command": ["touch", "/home/terrarium/reached"]}),
        );
        assert!(!ok, "{r}");
        assert_eq!(r["kind"], "not_allowed", "{r}");
        assert_eq!(bed.trm_json(&["info", PLAIN])["state"], "running");
        assert!(
            e2e::sh_in(N.project, PLAIN, "test -e /home/terrarium/reached")
                .status
                .code()
                != Some(0)
        );
        let (ok, r) = mcp.call("rollback", json!({"name": AGENT}));
        assert!(!ok, "{r}");
        assert!(
            r["message"]
                .as_str()
                .unwrap()
                .contains("--allow-destructive rollback"),
            "{r}"
        );
        let (ok, r) = mcp.call("launch", json!({"name": MCP_BOX, "profile": "dev"}));
        assert!(!ok && r["kind"] == "not_allowed", "{r}");

        // Launch from the allowed profile: an agent box of its own.
        let (ok, r) = mcp.call("launch", json!({"name": MCP_BOX}));
        assert!(ok, "{r}");
        assert_eq!(r["instance"]["egress"]["policy"], "public", "{r}");
        assert!(
            r["instance"]["expires"].is_string(),
            "the owner's --ttl: {r}"
        );
        let (ok, r) = mcp.call("list_boxes", json!({}));
        assert!(ok, "{r}");
        let boxes = r["boxes"].as_array().unwrap_or_else(|| panic!("{r}"));
        assert_eq!(boxes.len(), 2, "{r}");
        assert!(
            boxes.iter().all(|b| b["instance"]["state"] == "running"),
            "{r}"
        );
        drop(mcp);

        // With rollback allowed: the recipe, checkpoint then undo.
        let mut mcp = Mcp::start(&bed, &["--box", AGENT, "--allow-destructive", "rollback"]);
        let (ok, r) = mcp.exec_again_if_lost(json!({"name": AGENT, "checkpoint": true,
                   "command": ["rm", "-rf", "/home/terrarium/mcp"]}));
        assert!(ok && r["checkpoint"]["snapshot"].is_string(), "{r}");
        let (ok, r) = mcp.call("read_file", json!({"name": AGENT, "path": "mcp/plan.md"}));
        assert!(!ok, "removed: {r}");
        let (ok, r) = mcp.call("rollback", json!({"name": AGENT}));
        assert!(ok, "{r}");
        e2e::eventually("the box running again", 60, || {
            mcp.call("read_file", json!({"name": AGENT, "path": "mcp/plan.md"}))
                .1["content"]
                == "step 1\n"
        });
        drop(mcp);
        bed.trm_json(&["delete", MCP_BOX, "--force", "--yes"]);
    });

    t.case(
        "a_restored_copy_gets_a_bridge_and_policy_of_its_own",
        || {
            let copy = "c-box";
            bed.trm_json(&["policy", "set", AGENT, "--egress", "none"]);
            bed.snap(&["create", AGENT]);
            let r = bed.snap(&["restore", AGENT, "--as", copy, "--start"]);
            assert!(
                r["stripped"].to_string().contains("a bridge of its own"),
                "{r}"
            );
            let own = sandbox::bridge_of(N.project, copy);
            let conf = lxc_json(&format!("/1.0/instances/{copy}?project={}", N.project));
            assert_eq!(conf["devices"]["eth0"]["network"], own.as_str(), "{conf}");
            assert_eq!(bed.trm_json(&["info", copy])["egress"]["policy"], "none");
            // Each box's policy is its own from now on.
            bed.trm_json(&["policy", "set", AGENT, "--egress", "public"]);
            e2e::eventually("the copy's own address", 60, || {
                !e2e::exec_ok(N.project, copy, "hostname -I")
                    .trim()
                    .is_empty()
            });
            assert!(!reaches(copy, PUBLIC, PORT), "the copy kept 'none'");
            assert!(reaches(AGENT, PUBLIC, PORT));
            bed.trm_json(&["delete", copy, "--force", "--yes"]);
            assert!(!lxc_json("/1.0/networks").to_string().contains(&own));
            assert!(reaches(AGENT, PUBLIC, PORT), "the original's bridge stays");
        },
    );

    t.case("an_idle_box_stops_and_a_box_past_its_deadline_goes", || {
        use chrono::{Duration, SecondsFormat, Utc};
        let at = |d: Duration| (Utc::now() + d).to_rfc3339_opts(SecondsFormat::Secs, true);
        e2e::lxc_ok(&[
            "config",
            "set",
            "--project",
            N.project,
            PLAIN,
            "user.terrarium.idle",
            "1m",
        ]);
        let short = bed.trm_json(&["launch", "t-box", "--ttl", "1h", "--no-wait"]);
        let expires = short["instance"]["expires"].as_str().unwrap().to_string();
        assert!(expires.ends_with('Z'), "{short}");
        let listed = bed.trm_json(&["list"]);
        let row = |name: &str| {
            listed
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["name"] == name)
                .cloned()
                .unwrap()
        };
        assert_eq!(row(PLAIN)["idle"], "1m");
        assert_eq!(row("t-box")["expires"], expires.as_str());
        // First seen now; quiet for half an hour: stopped. Before its
        // deadline the short-lived box stays; after it, it goes.
        let first = bed.snap(&["auto", "--now", &at(Duration::zero())]);
        let outcome = e2e::outcomes;
        assert!(
            !outcome(&first, PLAIN).contains(&"stopped_idle".to_string()),
            "{first}"
        );
        let later = bed.snap(&["auto", "--now", &at(Duration::minutes(30))]);
        assert!(
            outcome(&later, PLAIN).contains(&"stopped_idle".to_string()),
            "{later}"
        );
        let state = lxc_json(&format!("/1.0/instances/{PLAIN}?project={}", N.project));
        assert_eq!(state["status"], "Stopped");
        assert_eq!(
            bed.trm_json(&["info", AGENT])["state"],
            "running",
            "no idle setting, no stop"
        );
        assert!(e2e::lxc(&["info", "--project", N.project, "t-box"])
            .status
            .success());
        let past = bed.snap(&["auto", "--now", &at(Duration::hours(2))]);
        assert!(
            outcome(&past, "t-box").contains(&"deleted_at_deadline".to_string()),
            "{past}"
        );
        assert!(!e2e::lxc(&["info", "--project", N.project, "t-box"])
            .status
            .success());
        assert!(bed
            .trm_json(&["list"])
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["name"] != "t-box"));
    });

    t.case("delete_removes_the_boxs_bridge_and_acl", || {
        bed.trm_json(&["delete", AGENT, "--force", "--yes"]);
        let nets = lxc_json("/1.0/networks");
        assert!(
            !nets.to_string().contains(&agent_bridge),
            "bridge gone: {nets}"
        );
        let acls = lxc_json("/1.0/network-acls");
        assert!(
            !acls.to_string().contains(&agent_bridge),
            "ACL gone: {acls}"
        );
    });

    drop(outside);
    bed.teardown();
    t.finish()
}
