//! The cluster benchmark (scripts/bench-cluster.sh), in one run on a real
//! three-member cluster of LXD nodes (the e2e test bed):
//! - `trm-expose sync --dry-run` on member1 against one `lxc list` of the
//!   cluster, with N boxes per member, and how many LXD calls sync makes;
//! - how long a route takes to follow a box an evacuation moved;
//! - the mesh's throughput and round trip against the members' raw link
//!   (iperf3, and TCP round trips).

use std::process::Command;
use std::time::{Duration, Instant};

use terrarium_tests::cluster::TestCluster;
use terrarium_tests::e2e::{self, Bed, Names, BUSYBOX_IMAGE};

const N: Names = Names {
    project: "trm-bench-clu",
    bridge: "trmbenc",
    pool: "trm-bench-clu",
};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Wall time of a script in node `i`, in seconds (the `lxc exec` around it
/// excluded: the script times itself).
fn timed(c: &TestCluster, i: usize, script: &str) -> f64 {
    let out = c.sh_ok(
        i,
        &format!(
            "s=$(date +%s%N); {script} >/dev/null; e=$(date +%s%N); echo $(( (e - s) / 1000 ))"
        ),
    );
    out.trim().parse::<f64>().expect("microseconds") / 1e6
}

fn main() {
    let per: usize = std::env::var("PER_MEMBER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let bed = Bed::new(N);
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| bench(&bed, per, runs)));
    bed.teardown();
    if result.is_err() {
        std::process::exit(1);
    }
}

fn bench(bed: &Bed, per: usize, runs: usize) {
    let mut init = bed.init_args();
    let size = init.iter().position(|a| *a == "--size").unwrap() + 1;
    init[size] = "16GiB";
    bed.trm_json(&init);
    e2e::ensure_busybox_image();
    let c = TestCluster::launch(bed, 3);
    eprintln!("==> forming the cluster");
    c.form(&["init", "--storage", "dir", "--no-nat"]);
    for _ in 0..2 {
        for i in 0..3 {
            c.trm_in_json(i, &["cluster", "mesh"]);
        }
    }
    c.trust_host();
    c.copy_image(BUSYBOX_IMAGE);
    let net = c.query("/1.0/networks/trmbr0");
    let gw = net["config"]["ipv4.address"].as_str().unwrap().to_string();
    let prefix = gw
        .rsplit_once('.')
        .unwrap()
        .0
        .split('.')
        .take(2)
        .collect::<Vec<_>>()
        .join(".");
    let third: u32 = gw.split('.').nth(2).unwrap().parse().unwrap();

    eprintln!("==> {per} boxes on each of 3 members, each exposed");
    let mut names = vec![];
    for m in 1..=3 {
        for k in 0..per {
            let n = (m - 1) * per + k;
            let name = format!("b{n}");
            // Pinned like `trm launch` does, without a launch each.
            let ip = format!("{prefix}.{third}.{}", 10 + n);
            c.client_ok(&[
                "init",
                BUSYBOX_IMAGE,
                &name,
                "--target",
                &format!("member{m}"),
                "-d",
                &format!("eth0,ipv4.address={ip}"),
                "-c",
                &format!("user.proxy=http://{name}.example.test:8080"),
            ]);
            names.push(name);
        }
    }
    let mut start = vec!["start"];
    start.extend(names.iter().map(String::as_str));
    c.client_ok(&start);

    eprintln!("==> sync against one lxc list, {runs} runs each, on member1");
    let list: Vec<f64> = (0..runs)
        .map(|_| timed(&c, 0, "lxc list --format json --project default"))
        .collect();
    let sync: Vec<f64> = (0..runs)
        .map(|_| timed(&c, 0, "trm-expose sync --dry-run --format json"))
        .collect();
    // How many LXD calls one sync makes: lxc behind a counting wrapper.
    c.sh_ok(
        0,
        "printf '#!/bin/sh\\necho \"$*\" >> /tmp/lxc-calls\\nexec /usr/bin/lxc \"$@\"\\n' > /tmp/lxc-count && chmod +x /tmp/lxc-count && rm -f /tmp/lxc-calls",
    );
    c.sh_ok(
        0,
        "TRM_LXC=/tmp/lxc-count trm-expose sync --dry-run --format json >/dev/null",
    );
    let calls = c.sh_ok(0, "cat /tmp/lxc-calls");
    let instance_reads = calls
        .lines()
        .filter(|l| l.contains("/1.0/instances"))
        .count();
    let (l, s) = (median(list), median(sync));
    println!("sync of {} boxes on 3 members: trm-expose sync --dry-run {s:.3}s, lxc list {l:.3}s (medians of {runs})", 3 * per);
    println!("RATIO sync/list = {:.3}x (target <= 1.1x)", s / l);
    println!(
        "LXD calls in one sync: {} ({} reading instances):",
        calls.lines().count(),
        instance_reads
    );
    for line in calls.lines() {
        println!("    lxc {line}");
    }

    eprintln!("==> the mesh against the raw link (node1 -> node3)");
    let n3 = c.node(2).address.clone();
    let h3 = format!("{prefix}.{third}.252");
    c.sh_ok(2, "pkill iperf3; iperf3 -s -D >/dev/null 2>&1; sleep 1");
    let iperf = |to: &str| -> f64 {
        let out = c.sh_ok(0, &format!("iperf3 -c {to} -t 5 -J"));
        let v: serde_json::Value = serde_json::from_str(&out).expect("iperf3 JSON");
        v["end"]["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap()
            / 1e6
    };
    let (raw, mesh) = (iperf(&n3), iperf(&h3));
    println!("throughput: raw link {raw:.0} Mbit/s, mesh {mesh:.0} Mbit/s");
    println!("RATIO mesh/raw throughput = {:.3}x", mesh / raw);
    // Round trips: 500 one-byte echoes over one TCP connection.
    c.sh_ok(
        2,
        // The name in a variable: `pkill -f` must not match this shell.
        "N=trm; pkill -f \"$N-echo\"; (setsid python3 -c 'import socket\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((\"0.0.0.0\", 7777)); s.listen()\nwhile True:\n    c,_=s.accept()\n    while (b:=c.recv(1)): c.send(b)\n    c.close()' \"$N-echo\" >/dev/null 2>&1 &); sleep 1",
    );
    let rtt = |to: &str| -> f64 {
        let out = c.sh_ok(
            0,
            &format!("python3 -c 'import socket,time\ns=socket.create_connection((\"{to}\", 7777)); s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)\nt=time.perf_counter()\nfor _ in range(500):\n    s.send(b\"x\"); s.recv(1)\nprint((time.perf_counter()-t)/500*1e6)'"),
        );
        out.trim().parse().unwrap()
    };
    let (raw_rtt, mesh_rtt) = (rtt(&n3), rtt(&h3));
    println!("round trip: raw link {raw_rtt:.0} us, mesh {mesh_rtt:.0} us");
    println!("RATIO mesh/raw round trip = {:.3}x", mesh_rtt / raw_rtt);

    eprintln!("==> route follow after evacuating member3");
    c.sh_ok(
        0,
        "id traefik >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin traefik; \
         sed -i 's|^acme_ca_server = \"\"|acme_ca_server = \"https://127.0.0.1:14000/dir\"|; s|^ufw = true|ufw = false|' /etc/terrarium/terrarium.toml; \
         trm-expose sync --format json >/dev/null && trm-expose proxy start --format json >/dev/null && trm-expose sync --format json >/dev/null",
    );
    let last = format!("b{}", 3 * per - 1);
    c.serve(&last, "follow me");
    let m1 = c.node(0).address.clone();
    let host = format!("{last}.example.test");
    let ok = || {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-m",
                "2",
                "-H",
                &format!("Host: {host}"),
                &format!("http://{m1}/"),
            ])
            .output()
            .is_ok_and(|o| o.stdout == b"200")
    };
    e2e::eventually("the route before", 30, ok);
    let t = Instant::now();
    c.client_ok(&["cluster", "evacuate", "member3", "--force"]);
    let evac = t.elapsed().as_secs_f64();
    c.serve(&last, "follow me");
    let up = Instant::now();
    while !ok() {
        assert!(
            up.elapsed() < Duration::from_secs(30),
            "the route never followed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let follow = up.elapsed().as_secs_f64();
    let moved = c.location(&last);
    println!("evacuating member3 ({per} boxes) took {evac:.1}s; {last} went to {moved}");
    println!("route follow: the first 200 through member1's Traefik {:.3}s after the box's service was up again", follow);
}
