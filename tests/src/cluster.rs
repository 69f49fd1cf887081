//! A real three-member LXD cluster for end-to-end tests: LXD nodes in
//! unprivileged containers on the suite's bridge (NAT off), each at a
//! pinned address, built from an image with Debian's lxd. The host drives
//! the cluster over LXD's HTTPS API, as a remote in a config directory of
//! its own; `trm` runs inside each node as it would on a member server.
//!
//! Two fixes each node needs on these machines (HOST-NOTES): real cgroup-v1
//! `cpu` and `cpuacct` mounts before lxd starts, and a uid range that fits
//! inside the node's own.

use std::path::Path;
use std::process::{Command, Output};

use crate::e2e::{self, lxc, lxc_ok, Bed};

/// The node image: Debian 12 with lxd (scripts/test.sh builds it).
pub const NODE_IMAGE: &str = "terrarium-test/lxd-node";
/// The name the host's client knows the cluster by.
pub const REMOTE: &str = "cluster";

const FIX_CGROUPS: &str = r#"#!/bin/sh
# Some cgroup-v1 hosts mount cpu and cpuacct as separate hierarchies;
# systemd then leaves cpu and cpuacct as links to a cpu,cpuacct that is
# no cgroup, and nested containers fail. Mount the real ones.
[ -f /sys/fs/cgroup/cgroup.controllers ] && exit 0
broken=
for c in cpu cpuacct; do [ -f /sys/fs/cgroup/$c/cgroup.procs ] || broken=1; done
[ -n "$broken" ] || exit 0
mount -o remount,rw /sys/fs/cgroup
for c in cpu cpuacct; do
    [ -f /sys/fs/cgroup/$c/cgroup.procs ] && continue
    rm -f /sys/fs/cgroup/$c
    mkdir -p /sys/fs/cgroup/$c
    mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c
done
mount -o remount,ro /sys/fs/cgroup
"#;
const DROP_IN: &str = "[Service]\nExecStartPre=/usr/local/sbin/fix-cgroups\n";
const SUBIDS: &str = "root:1000000:9000000\n_lxd:1000000:9000000\n";

#[derive(Debug, Clone)]
pub struct Node {
    /// The container on the host (`node1`).
    pub container: String,
    /// Its name as a cluster member (`member1`).
    pub member: String,
    pub address: String,
}

pub struct TestCluster {
    pub project: &'static str,
    pub nodes: Vec<Node>,
    /// The host client's own config: the cluster as its default remote.
    pub conf: tempfile::TempDir,
}

impl TestCluster {
    /// Launch `count` nodes on the bed's bridge (after `trm init` on the
    /// host), with LXD answering inside each; no cluster yet.
    pub fn launch(bed: &Bed, count: usize) -> TestCluster {
        let n = bed.names;
        let subnet = lxc_ok(&["network", "get", n.bridge, "ipv4.address"]);
        let prefix = subnet
            .trim()
            .rsplit_once('.')
            .map(|(p, _)| p.to_string())
            .expect("the bridge has an IPv4 subnet");
        let files = tempfile::tempdir().unwrap();
        for (name, text) in [("fix", FIX_CGROUPS), ("dropin", DROP_IN), ("subid", SUBIDS)] {
            std::fs::write(files.path().join(name), text).unwrap();
        }
        let nodes: Vec<Node> = (1..=count)
            .map(|i| Node {
                container: format!("node{i}"),
                member: format!("member{i}"),
                address: format!("{prefix}.{}", 10 + i),
            })
            .collect();
        for node in &nodes {
            let c = node.container.as_str();
            lxc_ok(&[
                "init",
                "--project",
                n.project,
                NODE_IMAGE,
                c,
                "-c",
                "security.nesting=true",
                "-c",
                "security.syscalls.intercept.mknod=true",
                "-c",
                "security.syscalls.intercept.setxattr=true",
            ]);
            lxc_ok(&[
                "config",
                "device",
                "override",
                "--project",
                n.project,
                c,
                "eth0",
                &format!("ipv4.address={}", node.address),
            ]);
            let push = |from: &Path, to: &str, mode: &str| {
                lxc_ok(&[
                    "file",
                    "push",
                    "--project",
                    n.project,
                    "-p",
                    "--mode",
                    mode,
                    from.to_str().unwrap(),
                    &format!("{c}{to}"),
                ]);
            };
            push(
                &files.path().join("fix"),
                "/usr/local/sbin/fix-cgroups",
                "0755",
            );
            push(
                &files.path().join("dropin"),
                "/etc/systemd/system/lxd.service.d/terrarium.conf",
                "0644",
            );
            push(&files.path().join("subid"), "/etc/subuid", "0644");
            push(&files.path().join("subid"), "/etc/subgid", "0644");
            for tool in ["trm", "trm-expose", "trm-snap", "trm-harden"] {
                push(
                    &bed.bins.join(tool),
                    &format!("/usr/local/bin/{tool}"),
                    "0755",
                );
            }
            push(
                Path::new("/usr/local/bin/traefik"),
                "/usr/local/bin/traefik",
                "0755",
            );
            // WireGuard in userspace needs the tun device, as on a VPS.
            lxc_ok(&[
                "config",
                "device",
                "add",
                "--project",
                n.project,
                c,
                "tun",
                "unix-char",
                "source=/dev/net/tun",
                "path=/dev/net/tun",
            ]);
            lxc_ok(&["start", "--project", n.project, c]);
        }
        let cluster = TestCluster {
            project: n.project,
            nodes,
            conf: tempfile::tempdir().unwrap(),
        };
        for i in 0..count {
            cluster.sh_ok(i, "lxd waitready --timeout 120");
        }
        cluster
    }

    pub fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }

    /// A shell script in node `i`, as root (idempotent scripts only: LXD
    /// 5.0's exec is run again when it loses track of its child).
    pub fn sh(&self, i: usize, script: &str) -> Output {
        e2e::sh_in(self.project, &self.nodes[i].container, script)
    }

    pub fn sh_ok(&self, i: usize, script: &str) -> String {
        let out = self.sh(i, script);
        e2e::assert_ok(&out, &format!("{}: {script}", self.nodes[i].container));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A Terrarium tool with `ARGS --format json` inside node `i`, run
    /// once (it may change things), with its output.
    pub fn tool_in(&self, i: usize, tool: &str, args: &[&str]) -> Output {
        Command::new("lxc")
            .args([
                "exec",
                "--project",
                self.project,
                &self.nodes[i].container,
                "--",
                tool,
            ])
            .args(args)
            .args(["--format", "json"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run lxc exec")
    }

    /// [`TestCluster::tool_in`] for a command that may run twice without
    /// harm (a read, or an idempotent step), run again when LXD 5.0's exec
    /// lost track of its child.
    pub fn tool_in_again(&self, i: usize, tool: &str, args: &[&str]) -> Output {
        for _ in 0..3 {
            let out = self.tool_in(i, tool, args);
            if !String::from_utf8_lossy(&out.stderr).contains("Failed to retrieve PID") {
                return out;
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
        self.tool_in(i, tool, args)
    }

    pub fn trm_in(&self, i: usize, args: &[&str]) -> Output {
        self.tool_in(i, "trm", args)
    }

    pub fn trm_in_again(&self, i: usize, args: &[&str]) -> Output {
        self.tool_in_again(i, "trm", args)
    }

    /// `trm ARGS` in node `i` (idempotent: see [`TestCluster::trm_in_again`]),
    /// asserted to succeed, its JSON.
    pub fn trm_in_json(&self, i: usize, args: &[&str]) -> serde_json::Value {
        let out = self.trm_in_again(i, args);
        e2e::assert_ok(
            &out,
            &format!("{}: trm {}", self.nodes[i].container, args.join(" ")),
        );
        serde_json::from_slice(&out.stdout).expect("trm printed JSON")
    }

    /// Form the cluster through `trm cluster`: init on the first node,
    /// then `add` there and `join` on each other node.
    pub fn form(&self, bed_init: &[&str]) {
        for i in 0..self.nodes.len() {
            self.trm_in_json(i, bed_init);
        }
        let first = self.node(0);
        self.trm_in_json(
            0,
            &[
                "cluster",
                "init",
                "--name",
                &first.member,
                "--address",
                &first.address,
            ],
        );
        for i in 1..self.nodes.len() {
            self.join(i);
        }
    }

    /// `add` on member1 (opening its firewall to the new server) and
    /// `join` on node `i`.
    pub fn join(&self, i: usize) -> serde_json::Value {
        let node = self.node(i);
        let added = self.trm_in_json(
            0,
            &["cluster", "add", &node.member, "--address", &node.address],
        );
        let token = added["token"]
            .as_str()
            .expect("add prints a token")
            .to_string();
        self.trm_in_json(
            i,
            &[
                "cluster",
                "join",
                &token,
                "--address",
                &node.address,
                "--yes",
            ],
        )
    }

    /// Trust the host's client (a config of its own) over HTTPS, with a
    /// trust token from member1, and make the cluster its default remote.
    pub fn trust_host(&self) {
        let token = self.sh_ok(0, "lxc config trust add --name terrarium-e2e-host --quiet");
        let token = token.trim().lines().last().unwrap_or("").to_string();
        let url = format!("https://{}:8443", self.node(0).address);
        let out = self
            .client()
            .args([
                "remote",
                "add",
                REMOTE,
                &url,
                "--accept-certificate",
                "--password",
                &token,
            ])
            .output()
            .unwrap();
        e2e::assert_ok(&out, "lxc remote add (trust token)");
        let out = self
            .client()
            .args(["remote", "switch", REMOTE])
            .output()
            .unwrap();
        e2e::assert_ok(&out, "lxc remote switch");
    }

    /// The host's `lxc`, talking to the cluster over HTTPS.
    pub fn client(&self) -> Command {
        let mut c = Command::new("lxc");
        c.env("LXD_CONF", self.conf.path())
            .stdin(std::process::Stdio::null());
        c
    }

    pub fn client_ok(&self, args: &[&str]) -> String {
        let out = self.client().args(args).output().unwrap();
        e2e::assert_ok(&out, &format!("lxc {} (cluster)", args.join(" ")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `lxc query PATH` against the cluster.
    pub fn query(&self, path: &str) -> serde_json::Value {
        serde_json::from_str(&self.client_ok(&["query", path])).expect("LXD answers JSON")
    }

    /// A Terrarium tool on the host, driving the cluster over HTTPS in its
    /// default project.
    pub fn tool(&self, bed: &Bed, name: &str) -> Command {
        let mut c = bed.tool(name);
        c.env("LXD_CONF", self.conf.path())
            .env("TRM_PROJECT", "default");
        c
    }

    /// Copy one of the host's images to the cluster, under the same alias.
    pub fn copy_image(&self, alias: &str) {
        self.client_ok(&[
            "image",
            "copy",
            &format!("local:{alias}"),
            &format!("{REMOTE}:"),
            "--alias",
            alias,
            "--mode",
            "push",
        ]);
    }

    /// Each member's status, by name (as the cluster reports it).
    pub fn statuses(&self) -> std::collections::BTreeMap<String, String> {
        self.query("/1.0/cluster/members?recursion=1")
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["server_name"].as_str().unwrap().to_string(),
                    m["status"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// Where an instance lives, as the cluster says.
    pub fn location(&self, instance: &str) -> String {
        self.query(&format!("/1.0/instances/{instance}"))["location"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Each node's firewall as a hardened member's: ufw denying what comes
    /// in and what is routed, LXD's API open to the host's client on the
    /// first node only (an admin's rule), and web on the first node.
    pub fn firewall_on(&self, host: &str) {
        for i in 0..self.nodes.len() {
            let mut script = String::from("ufw default deny incoming && ufw default deny routed");
            if i == 0 {
                script.push_str(&format!(
                    " && ufw allow from {host} to any port 8443 proto tcp comment 'e2e admin' && ufw allow 80/tcp comment 'e2e web'"
                ));
            }
            script.push_str(" && ufw --force enable");
            self.sh_ok(i, &script);
        }
    }

    /// `lxc exec BOX -- sh -c SCRIPT` on the cluster, over HTTPS.
    pub fn box_sh(&self, instance: &str, script: &str) -> Output {
        self.client()
            .args(["exec", instance, "--", "sh", "-c", script])
            .output()
            .unwrap()
    }

    /// The address `trm launch` pinned on a box's NIC.
    pub fn pinned(&self, instance: &str) -> String {
        self.client_ok(&["config", "device", "get", instance, "eth0", "ipv4.address"])
            .trim()
            .to_string()
    }

    /// A busybox box's network and web server (it has no init scripts):
    /// its pinned address, an unsolicited ARP announcing where it is (what
    /// a DHCP client's request does for a full image), and `httpd` on port
    /// 8080 serving `body`. Idempotent.
    pub fn serve(&self, instance: &str, body: &str) {
        let addr = self.pinned(instance);
        let out = self.box_sh(
            instance,
            &format!(
                "ip link set eth0 up && ip addr flush dev eth0 && ip addr add {addr}/24 dev eth0 && \
                 mkdir -p /srv && echo '{body}' > /srv/index.html && \
                 (pidof httpd >/dev/null || httpd -p 8080 -h /srv) && arping -U -c 1 -I eth0 {addr} >/dev/null"
            ),
        );
        e2e::assert_ok(&out, &format!("serve on {instance}"));
    }

    /// Stop a node's container hard: the member dies.
    pub fn kill(&self, i: usize) {
        lxc_ok(&[
            "stop",
            "--force",
            "--project",
            self.project,
            &self.nodes[i].container,
        ]);
    }

    /// Start a node's container; its LXD comes up on its own at boot.
    pub fn start(&self, i: usize) {
        lxc_ok(&["start", "--project", self.project, &self.nodes[i].container]);
    }
}

/// Nothing of the suite's may be left: the nodes go with its project
/// (`Bed::teardown`), and the cluster with them.
pub fn assert_gone(project: &str) {
    let left = lxc(&["query", &format!("/1.0/instances?project={project}")]);
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.contains("/1.0/instances/"),
        "left behind in {project}: {left}"
    );
}
