//! End-to-end tests of `trm-harden` (TRM_E2E=1). Everything the host side
//! does to networking happens inside network namespaces this suite
//! creates: an "outside" namespace (203.0.113.0/24, a documentation range)
//! joined by a veth pair to a "host" namespace that runs ufw and plays the
//! public host; the host namespace reaches the suite's own LXD bridge
//! through a second veth, so a real container sits behind it. The machine's
//! own firewall is never touched. sshd runs as a child on a loopback port
//! with a configuration of the test's own; the OIDC issuer is a discovery
//! document served on loopback by this process.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;
use terrarium_core::error::exit;

use serde_json::Value;
use terrarium_core::traefik;
use terrarium_tests::e2e::{
    self, eventually, lxc, lxc_ok, Bed, Names, Runner, BUSYBOX_IMAGE, HARDEN_SUITE,
};

const N: Names = HARDEN_SUITE;
const HOST_NS: &str = "trme2e5-host";
const OUT_NS: &str = "trme2e5-out";
/// The public interface inside the host namespace.
const WAN: &str = "trme2e5w";
const HOST_PUBLIC: &str = "203.0.113.1";
const OUTSIDE: &str = "203.0.113.2";
/// Root-namespace end of the veth plugged into the suite's LXD bridge.
const BRIDGE_PORT: &str = "trme2e5p";
const BOX: &str = "h-box";
const EXPOSED: u16 = 15432;
const UNEXPOSED: u16 = 15433;
const STRAY_ADDR: &str = "198.51.100.7";

/// This suite's files: firewall copy, Traefik side, sshd, gate.
struct Side {
    dir: tempfile::TempDir,
}

impl Side {
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn ssh_dir(&self) -> PathBuf {
        self.p("ssh/sshd_config.d")
    }
    fn drop_in(&self) -> PathBuf {
        self.ssh_dir().join("00-terrarium.conf")
    }
    fn sshd_config(&self) -> PathBuf {
        self.p("ssh/sshd_config")
    }
    fn keys(&self) -> PathBuf {
        self.p("ssh/keys/root")
    }
    fn static_file(&self) -> PathBuf {
        self.p("traefik/traefik.yml")
    }
    fn management(&self) -> PathBuf {
        self.p("traefik/dynamic/terrarium-management.yml")
    }
    fn ufw_root(&self) -> PathBuf {
        self.p("ufw")
    }
}

fn quiet(script: &str) {
    let _ = Command::new("sh")
        .args(["-c", script])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn in_ns(ns: &str, args: &[&str]) -> Output {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn spawn_in_ns(ns: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", ns])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// Can `ns` fetch `url`? (curl with a short timeout; any HTTP answer counts.)
fn reachable(ns: &str, url: &str) -> bool {
    let out = in_ns(
        ns,
        &[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "3",
            "-w",
            "%{http_code}",
            url,
        ],
    );
    String::from_utf8_lossy(&out.stdout) == "200"
}

/// Remove what this suite puts on the machine outside LXD; safe to repeat.
fn clean_network() {
    quiet(&format!("ip netns del {HOST_NS}"));
    quiet(&format!("ip netns del {OUT_NS}"));
    quiet(&format!("ip link del {BRIDGE_PORT}"));
}

/// The subnet `trm init` gave the suite's bridge (`10.X.Y.1/24`).
fn bridge_prefix(bed: &Bed) -> String {
    let text = std::fs::read_to_string(bed.config_dir.path().join("terrarium.toml")).unwrap();
    let subnet = text
        .lines()
        .find_map(|l| l.strip_prefix("subnet = "))
        .unwrap()
        .trim_matches('"')
        .to_string();
    subnet.rsplit_once('.').unwrap().0.to_string()
}

fn build_topology(side: &Side, prefix: &str) {
    clean_network();
    e2e::ufw_copy(&side.ufw_root());
    e2e::sh(&format!(
        "set -e
         ip netns add {HOST_NS}; ip netns add {OUT_NS}
         ip -n {HOST_NS} link set lo up; ip -n {OUT_NS} link set lo up
         ip link add {WAN} netns {HOST_NS} type veth peer name out0 netns {OUT_NS}
         ip -n {HOST_NS} addr add {HOST_PUBLIC}/24 dev {WAN}; ip -n {HOST_NS} link set {WAN} up
         ip -n {OUT_NS} addr add {OUTSIDE}/24 dev out0; ip -n {OUT_NS} link set out0 up
         ip -n {HOST_NS} route add default via {OUTSIDE}
         ip -n {OUT_NS} route add {prefix}.0/24 via {HOST_PUBLIC}
         ip netns exec {HOST_NS} sysctl -qw net.ipv4.ip_forward=1
         ip link add {BRIDGE_PORT} type veth peer name {bridge} netns {HOST_NS}
         ip link set {BRIDGE_PORT} master {bridge} up
         ip -n {HOST_NS} addr add {prefix}.250/24 dev {bridge}; ip -n {HOST_NS} link set {bridge} up",
        bridge = N.bridge
    ));
}

/// A real container on the suite's bridge, serving HTTP on 0.0.0.0:8080,
/// routed through the host namespace.
fn start_box(prefix: &str) {
    e2e::ensure_busybox_image();
    // No DHCP in busybox: the address is pinned on the host side, as
    // Terrarium's NIC filters allow only the address the host assigned.
    lxc_ok(&["init", "--project", N.project, BUSYBOX_IMAGE, BOX]);
    lxc_ok(&[
        "config",
        "device",
        "override",
        "--project",
        N.project,
        BOX,
        "eth0",
        &format!("ipv4.address={prefix}.10"),
    ]);
    lxc_ok(&["start", "--project", N.project, BOX]);
    let script = format!(
        "ip link set eth0 up && ip addr add {prefix}.10/24 dev eth0 && ip route add default via {prefix}.250 \
         && mkdir -p /www && echo hello > /www/index.html && httpd -p 0.0.0.0:8080 -h /www"
    );
    eventually("the container to run its web server", 60, || {
        lxc(&[
            "exec",
            "--project",
            N.project,
            BOX,
            "--",
            "sh",
            "-c",
            &script,
        ])
        .status
        .success()
    });
}

fn write_settings(bed: &Bed, side: &Side) {
    let path = bed.config_dir.path().join("terrarium.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let base = text.split("[expose]").next().unwrap().to_string();
    let r = side.ufw_root();
    // A real Traefik, restarted by apply, on loopback ports of this suite;
    // its ACME resolver points at a loopback port nobody serves, so it
    // never calls a public CA.
    let expose = format!(
        "[expose]\ndynamic_dir = \"{}\"\nstatic_file = \"{}\"\nroot_domain = \"example.test\"\nufw = true\nufw_rootdir = \"{}\"\nufw_datadir = \"{}\"\nstate_dir = \"{}\"\nacme_storage = \"{}\"\n\
         acme_ca_server = \"https://127.0.0.1:9/dir\"\nsupervisor = \"terrarium\"\n\
         http_address = \"127.0.0.1:28080\"\nhttps_address = \"127.0.0.1:28443\"\napi_address = \"127.0.0.1:28082\"\nlog_dir = \"{}\"\n",
        side.p("traefik/dynamic").display(),
        side.static_file().display(),
        r.display(),
        r.display(),
        side.p("state").display(),
        side.p("traefik/acme.json").display(),
        side.p("traefik/log").display(),
    );
    std::fs::write(&path, base + &expose).unwrap();
}

/// sshd's test configuration: passwords on, then the drop-in directory
/// included first (as Debian's sshd_config does) and a cloud image's
/// `50-cloud-init.conf` turning passwords on beside it.
fn write_sshd_config(side: &Side, port: u16) {
    let ssh = side.p("ssh");
    std::fs::create_dir_all(side.ssh_dir()).unwrap();
    std::fs::create_dir_all(ssh.join("keys")).unwrap();
    e2e::sh(&format!(
        "ssh-keygen -q -t ed25519 -N '' -f {0}/host_ed25519 && ssh-keygen -q -t ed25519 -N '' -f {0}/client",
        ssh.display()
    ));
    std::fs::write(
        side.ssh_dir().join("50-cloud-init.conf"),
        "PasswordAuthentication yes\n",
    )
    .unwrap();
    std::fs::write(
        side.sshd_config(),
        format!(
            "Include {dir}/*.conf\nPort {port}\nListenAddress 127.0.0.1\nHostKey {ssh}/host_ed25519\nPidFile {ssh}/sshd.pid\n\
             AuthorizedKeysFile {ssh}/keys/%u\nUsePAM yes\nKbdInteractiveAuthentication yes\nPasswordAuthentication yes\nPermitRootLogin yes\n",
            dir = side.ssh_dir().display(),
            ssh = ssh.display()
        ),
    )
    .unwrap();
}

fn start_sshd(side: &Side, port: u16) -> Child {
    std::fs::create_dir_all("/run/sshd").unwrap();
    let log = std::fs::File::create(side.p("ssh/sshd.log")).unwrap();
    let child = Command::new("/usr/sbin/sshd")
        .args(["-D", "-e", "-f"])
        .arg(side.sshd_config())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    wait_for_sshd(port);
    child
}

fn wait_for_sshd(port: u16) {
    eventually("sshd to accept connections", 20, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            let mut b = [0u8; 4];
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            s.read_exact(&mut b).is_ok() && &b == b"SSH-"
        })
    });
}

fn ssh(port: u16, extra: &[&str]) -> Output {
    Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=no",
        ])
        .args([
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "ConnectTimeout=5",
        ])
        .args(["-p", &port.to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The authentication methods sshd offers: from a password-only attempt
/// it refuses ("Permission denied (publickey,password).").
fn offered_methods(port: u16) -> String {
    let out = ssh(
        port,
        &[
            "-o",
            "PreferredAuthentications=password",
            "-o",
            "PubkeyAuthentication=no",
            "root@127.0.0.1",
            "true",
        ],
    );
    assert!(
        !out.status.success(),
        "a login without a key must not succeed"
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let methods = err
        .split("Permission denied (")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .unwrap_or_else(|| panic!("no 'Permission denied (...)' in: {err}"));
    methods.to_string()
}

fn harden(bed: &Bed, args: &[&str]) -> Output {
    bed.command("ip")
        .args(["netns", "exec", HOST_NS])
        .arg(bed.bins.join("trm-harden"))
        .args(args)
        .args(["--format", "json"])
        .output()
        .unwrap()
}

fn harden_json(bed: &Bed, args: &[&str]) -> Value {
    let out = harden(bed, args);
    e2e::assert_ok(&out, &format!("trm-harden {}", args.join(" ")));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ufw(side: &Side, args: &[&str]) -> String {
    let r = side.ufw_root().display().to_string();
    let rootdir = format!("--rootdir={r}");
    let datadir = format!("--datadir={r}");
    let mut argv = vec!["ufw", rootdir.as_str(), datadir.as_str()];
    argv.extend_from_slice(args);
    String::from_utf8_lossy(&in_ns(HOST_NS, &argv).stdout).into_owned()
}

/// Serve `doc` as an OIDC discovery document on a loopback port.
fn discovery_server(doc: impl Fn(u16) -> Value + Send + 'static) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let req = String::from_utf8_lossy(&buf[..n]);
            let (status, body) = if req.starts_with("GET /.well-known/openid-configuration ") {
                ("200 OK", doc(port).to_string())
            } else {
                ("404 Not Found", "{}".to_string())
            };
            let _ = write!(
                s,
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn discovery(issuer: &str) -> Value {
    serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/auth"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
    })
}

fn audit(bed: &Bed) -> (Option<i32>, Vec<Value>) {
    let out = harden(bed, &["audit"]);
    let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "audit printed no JSON ({e}): {} {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code(), checks)
}

fn add_device(instance: &str, device: &str, kind: &str, options: &[&str]) {
    let mut args = vec![
        "config",
        "device",
        "add",
        "--project",
        N.project,
        instance,
        device,
        kind,
    ];
    args.extend(options);
    lxc_ok(&args);
}

fn check<'a>(checks: &'a [Value], name: &str) -> &'a Value {
    checks
        .iter()
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no check '{name}' in {checks:?}"))
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_harden") {
        return std::process::ExitCode::SUCCESS;
    }
    let mut bed = Bed::new(N);
    clean_network();
    let side = Side {
        // sshd's StrictModes refuses keys below world-writable /tmp.
        dir: tempfile::Builder::new()
            .prefix("trm-e2e-hard")
            .tempdir_in("/run")
            .unwrap(),
    };
    // Traefik runs as its own user and reads its files below here.
    std::fs::set_permissions(
        side.dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let sshd_port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (k, v) in [
        ("TRM_SSHD_DIR", side.ssh_dir()),
        ("TRM_SSHD_CONFIG", side.sshd_config()),
        ("TRM_SSHD_PID_FILE", side.p("ssh/sshd.pid")),
        ("TRM_SYSTEMD_DIR", side.p("systemd")),
    ] {
        bed.extra_env.push((k.into(), v.display().to_string()));
    }
    let bed = bed;
    let mut t = Runner::new();
    let mut sshd: Option<Child> = None;
    let mut prefix = String::new();

    t.setup(
        "setup_namespaces_a_container_sshd_and_an_exposed_port",
        || {
            bed.trm_json(&bed.init_args());
            write_settings(&bed, &side);
            prefix = bridge_prefix(&bed);
            build_topology(&side, &prefix);
            start_box(&prefix);
            write_sshd_config(&side, sshd_port);
            sshd = Some(start_sshd(&side, sshd_port));
            // The one port published on purpose, as an owner would.
            let out = bed
                .command("ip")
                .args(["netns", "exec", HOST_NS])
                .arg(bed.bins.join("trm-expose"))
                .args([
                    "add",
                    BOX,
                    "--tcp",
                    &format!("{EXPOSED}:8080"),
                    "--format",
                    "json",
                ])
                .output()
                .unwrap();
            e2e::assert_ok(&out, "trm-expose add --tcp");
        },
    );

    t.case("before_apply_the_container_is_reachable_from_outside", || {
        let url = format!("http://{prefix}.10:8080/");
        assert!(reachable(HOST_NS, &url), "the host reaches the container");
        let from_outside = reachable(OUT_NS, &url);
        println!("    before apply: container {url} reachable from outside: {from_outside}");
        assert!(from_outside, "without a firewall the routed host forwards to the container; otherwise the test below proves nothing");
        assert!(offered_methods(sshd_port).contains("password"), "sshd offers passwords before apply");
    });

    t.case("plan_lists_every_change_and_changes_nothing", || {
        let plan = harden_json(&bed, &["plan"]);
        let changes = plan["changes"].as_array().unwrap();
        for area in ["ssh", "firewall", "traefik", "cockpit"] {
            assert!(
                changes.iter().any(|c| c["area"] == area),
                "{area} in {plan:#}"
            );
        }
        assert_eq!(
            plan["wan"], WAN,
            "the public interface comes from the default route"
        );
        assert!(
            changes
                .iter()
                .any(|c| c["target"]
                    == format!("limit {sshd_port}/tcp comment 'terrarium-harden ssh'")),
            "SSH on sshd's real port, rate-limited"
        );
        assert!(
            plan["kept"].to_string().contains(&format!("{EXPOSED}/tcp")),
            "trm-expose's rule is kept: {plan:#}"
        );
        assert!(!side.drop_in().exists() && !side.management().exists());
        assert!(ufw(&side, &["status"]).contains("Status: inactive"));
    });

    t.case("apply_refuses_to_lock_the_owner_out", || {
        let out = harden(&bed, &["apply", "--yes"]);
        assert_eq!(
            out.status.code(),
            Some(4),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let err = e2e::stderr_json(&out);
        let msg = err["message"].as_str().unwrap();
        assert!(
            msg.contains("no account that can log in has an authorized key"),
            "{msg}"
        );
        assert!(
            msg.contains(&side.keys().display().to_string()),
            "names the file looked at: {msg}"
        );
        assert!(!side.drop_in().exists(), "nothing written");
        assert!(ufw(&side, &["status"]).contains("Status: inactive"));
    });

    t.case("apply_hardens_and_a_second_apply_changes_nothing", || {
        std::fs::copy(side.p("ssh/client.pub"), side.keys()).unwrap();
        // No terminal and no --yes: refused before anything changes.
        let out = harden(&bed, &["apply"]);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stderr).contains("--yes"));
        assert!(!side.drop_in().exists());
        let rep = harden_json(&bed, &["apply", "--yes"]);
        assert!(!rep["applied"].as_array().unwrap().is_empty());
        let reload = rep["ssh_reload"].as_str().unwrap();
        assert!(reload.starts_with("reloaded sshd"), "{reload}");
        assert!(rep["ssh_effective"]
            .to_string()
            .contains("passwordauthentication no"));
        let again = harden_json(&bed, &["apply", "--yes"]);
        assert_eq!(again["applied"], serde_json::json!([]), "{again:#}");
        assert_eq!(
            harden_json(&bed, &["plan"])["changes"],
            serde_json::json!([])
        );
    });

    t.case("ssh_refuses_passwords_and_accepts_the_key", || {
        wait_for_sshd(sshd_port);
        let methods = offered_methods(sshd_port);
        assert_eq!(
            methods, "publickey",
            "50-cloud-init.conf's PasswordAuthentication yes makes no difference"
        );
        assert!(side.ssh_dir().join("50-cloud-init.conf").exists());
        let key = side.p("ssh/client").display().to_string();
        let out = ssh(
            sshd_port,
            &[
                "-o",
                "IdentitiesOnly=yes",
                "-i",
                &key,
                "root@127.0.0.1",
                "echo key-login-ok",
            ],
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "key-login-ok",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let t = Command::new("/usr/sbin/sshd")
            .arg("-T")
            .arg("-f")
            .arg(side.sshd_config())
            .output()
            .unwrap();
        let eff = String::from_utf8_lossy(&t.stdout);
        for want in [
            "passwordauthentication no",
            "kbdinteractiveauthentication no",
            "permitrootlogin without-password",
            "authenticationmethods publickey",
            "maxauthtries 3",
        ] {
            assert!(eff.lines().any(|l| l == want), "sshd -T lacks '{want}'");
        }
    });

    t.case("firewall_keeps_the_container_private_from_outside", || {
        let status = ufw(&side, &["status", "verbose"]);
        assert!(status.contains("Status: active"), "{status}");
        assert!(
            status.contains("Default: deny (incoming), allow (outgoing), deny (routed)"),
            "{status}"
        );
        let url = format!("http://{prefix}.10:8080/");
        assert!(reachable(HOST_NS, &url), "still reachable from the host");
        let from_outside = reachable(OUT_NS, &url);
        println!("    after apply: container {url} reachable from outside: {from_outside}");
        assert!(
            !from_outside,
            "the container listening on 0.0.0.0 is private after apply"
        );
        // Traefik's part for raw ports, played by a listener per port.
        let www = side.p("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "hi\n").unwrap();
        let w = www.display().to_string();
        let mut listeners: Vec<Child> = [EXPOSED, UNEXPOSED]
            .iter()
            .map(|p| {
                spawn_in_ns(
                    HOST_NS,
                    &[
                        "busybox",
                        "httpd",
                        "-f",
                        "-p",
                        &format!("0.0.0.0:{p}"),
                        "-h",
                        &w,
                    ],
                )
            })
            .collect();
        eventually("the listeners", 10, || {
            reachable(HOST_NS, &format!("http://127.0.0.1:{UNEXPOSED}/"))
        });
        let exposed = reachable(OUT_NS, &format!("http://{HOST_PUBLIC}:{EXPOSED}/"));
        let unexposed = reachable(OUT_NS, &format!("http://{HOST_PUBLIC}:{UNEXPOSED}/"));
        for c in &mut listeners {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(
            exposed,
            "the port trm-expose owns is reachable from outside"
        );
        assert!(!unexposed, "a port nobody exposed is not");
    });

    t.case("traefik_files_validate_and_gate_the_dashboards", || {
        let st = e2e::read_json(&side.static_file());
        traefik::validate_static(&st).unwrap();
        // The API is served only on the loopback `traefik` entrypoint.
        assert_eq!(st["entryPoints"]["traefik"]["address"], "127.0.0.1:28082");
        assert!(
            st["entryPoints"]["web"].get("http").is_none(),
            "no wholesale redirect: plain http:// routes must work"
        );
        assert_eq!(
            st["entryPoints"][format!("tcp-{EXPOSED}")]["address"],
            format!(":{EXPOSED}/tcp"),
            "trm-expose's entrypoint kept"
        );
        assert_eq!(
            st["providers"]["file"]["directory"],
            side.p("traefik/dynamic").display().to_string()
        );
        let m = e2e::read_json(&side.management());
        traefik::validate_dynamic(&m).unwrap();
        // Traefik, running in the host's namespace (where trm-expose and
        // apply run), really loaded the management routes.
        let out = bed
            .command("ip")
            .args(["netns", "exec", HOST_NS])
            .arg(bed.bins.join("trm-expose"))
            .args(["proxy", "status", "--format", "json"])
            .output()
            .unwrap();
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let log =
            std::fs::read_to_string(status["log"].as_str().unwrap_or_default()).unwrap_or_default();
        assert_eq!(status["answering"], true, "{status}\n{log}");
        assert_eq!(
            status["files"]["missing"],
            serde_json::json!([]),
            "{status}"
        );
        assert!(status["files"]["loaded"].as_u64().unwrap() >= 4, "{status}");
        let r = &m["http"]["routers"];
        assert_eq!(r["trm_manage"]["rule"], "Host(`manage.example.test`)");
        assert_eq!(r["trm_proxy"]["rule"], "Host(`proxy.example.test`)");
        assert_eq!(r["trm_proxy"]["service"], "api@internal");
        for gated in ["trm_manage", "trm_proxy"] {
            assert_eq!(r[gated]["middlewares"], serde_json::json!(["trm_gate"]));
        }
        // No gate configured yet: no admin group to ask for.
        assert_eq!(
            m["http"]["middlewares"]["trm_gate"]["forwardAuth"]["address"],
            "http://127.0.0.1:4180/oauth2/auth"
        );
        assert_eq!(
            m["http"]["middlewares"]["trm_gate"]["forwardAuth"]["trustForwardHeader"],
            false
        );
        assert_eq!(
            m["http"]["services"]["trm_cockpit"]["loadBalancer"]["servers"][0]["url"],
            "http://127.0.0.1:9090"
        );
        let lxd = &m["tcp"]["routers"]["trm_lxd"];
        assert_eq!(lxd["rule"], "HostSNI(`lxd.example.test`)");
        assert_eq!(lxd["tls"]["passthrough"], true);
        assert!(
            lxd.get("middlewares").is_none(),
            "LXD does its own authentication"
        );
        assert_eq!(
            m["tcp"]["services"]["trm_lxd"]["loadBalancer"]["servers"][0]["address"],
            "127.0.0.1:8443"
        );
        let cockpit =
            std::fs::read_to_string(side.p("systemd/cockpit.socket.d/terrarium-loopback.conf"))
                .unwrap();
        assert!(
            cockpit.contains("ListenStream=\nListenStream=127.0.0.1:9090\n"),
            "{cockpit}"
        );
        // trm-expose's sync leaves the management file alone.
        let out = bed
            .command("ip")
            .args(["netns", "exec", HOST_NS])
            .arg(bed.bins.join("trm-expose"))
            .args(["sync", "--format", "json"])
            .output()
            .unwrap();
        e2e::assert_ok(&out, "trm-expose sync");
        assert!(side.management().exists());
    });

    t.case(
        "oidc_set_checks_the_issuer_and_saves_nothing_when_refused",
        || {
            let secret = side.p("client-secret-input");
            std::fs::write(&secret, "s3cret-value\n").unwrap();
            let s = secret.display().to_string();
            let args = |issuer: &str| -> Vec<String> {
                [
                    "oidc",
                    "set",
                    "--issuer",
                    issuer,
                    "--client-id",
                    "terrarium",
                    "--client-secret-file",
                    &s,
                    "--admin-group",
                    "admins",
                ]
                .map(String::from)
                .to_vec()
            };
            let server_before = e2e::lxc_json("/1.0")["config"].clone();
            // Nothing answers on a port we just released.
            let dead = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let a = args(&format!("http://127.0.0.1:{dead}"));
            let argv: Vec<&str> = a.iter().map(String::as_str).collect();
            bed.refused("trm-harden", &argv, 69, "does not answer");
            let liar = discovery_server(|_| discovery("https://someone-else.example.test"));
            let a = args(&format!("http://127.0.0.1:{liar}"));
            let argv: Vec<&str> = a.iter().map(String::as_str).collect();
            bed.refused("trm-harden", &argv, 2, "mismatching issuer");
            let gate_toml = bed.config_dir.path().join("gate.toml");
            assert!(!gate_toml.exists(), "a refused issuer saves nothing");
            assert_eq!(
                e2e::lxc_json("/1.0")["config"],
                server_before,
                "nor touches LXD"
            );

            let good = discovery_server(|port| discovery(&format!("http://127.0.0.1:{port}")));
            let issuer = format!("http://127.0.0.1:{good}");
            let a = args(&issuer);
            let argv: Vec<&str> = a.iter().map(String::as_str).collect();
            let rep = bed.trm_json_with("trm-harden", &argv);
            assert_eq!(rep["changed"], true);
            let cfg: toml::Table = std::fs::read_to_string(&gate_toml)
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(cfg["issuer"].as_str(), Some(issuer.as_str()));
            assert_eq!(cfg["listen"].as_str(), Some("127.0.0.1:4180"));
            assert_eq!(cfg["admin_group"].as_str(), Some("admins"));
            assert_eq!(cfg["groups_claim"].as_str(), Some("groups"));
            assert_eq!(
                cfg["auth_url"].as_str(),
                Some("https://auth.example.test:28443")
            );
            let keys_file = PathBuf::from(cfg["keys_file"].as_str().unwrap());
            let keys = std::fs::read_to_string(&keys_file).unwrap();
            assert_eq!(e2e::mode(&keys_file), 0o600);
            let secret_copy = PathBuf::from(cfg["client_secret_file"].as_str().unwrap());
            assert_eq!(
                std::fs::read_to_string(&secret_copy).unwrap(),
                "s3cret-value\n"
            );
            assert_eq!(e2e::mode(&secret_copy), 0o600);
            assert!(
                !std::fs::read_to_string(&gate_toml)
                    .unwrap()
                    .contains("s3cret"),
                "no secret in the settings"
            );
            // The dashboards now ask for the admin group.
            let m = e2e::read_json(&side.management());
            assert_eq!(
                m["http"]["middlewares"]["trm_gate"]["forwardAuth"]["address"],
                "http://127.0.0.1:4180/oauth2/auth?allowed_groups=admins"
            );
            let exts = e2e::lxc_json("/1.0")["api_extensions"].to_string();
            if exts.contains("\"oidc\"") {
                assert_eq!(
                    e2e::lxc_json("/1.0")["config"]["oidc.issuer"],
                    issuer.as_str()
                );
                for k in ["oidc.issuer", "oidc.client.id", "oidc.groups.claim"] {
                    lxc(&["config", "unset", k]);
                }
            } else {
                let lxd = rep["lxd"].as_str().unwrap();
                assert!(lxd.contains("does not support OIDC"), "said clearly: {lxd}");
                println!("    LXD: {lxd}");
            }
            // Again: nothing changes.
            let again = bed.trm_json_with("trm-harden", &argv);
            assert_eq!(again["changed"], false);
            assert_eq!(
                std::fs::read_to_string(&keys_file).unwrap(),
                keys,
                "the cookie keys stay: no one is signed out"
            );
        },
    );

    t.case("audit_flags_a_public_listener_until_it_closes", || {
        let (code, checks) = audit(&bed);
        for c in &checks {
            println!("    {} {}: {}", c["status"], c["check"], c["detail"]);
        }
        assert_eq!(code, Some(0), "a hardened host passes: {checks:#?}");
        assert!(checks.iter().all(|c| c["status"] != "fail"));
        for name in ["ssh key-only", "firewall defaults", "firewall rules", "firewall exposed ports", "listeners", "traefik files", "gate", "management on loopback", "secret file modes", "unprivileged", "raw config", "host-path disks", "nic filters", "lxd proxy devices", "docker published ports", "profiles"] {
            assert_eq!(check(&checks, name)["status"], "pass", "{name}: {:#}", check(&checks, name));
        }

        e2e::sh(&format!(
            "ip -n {HOST_NS} link add stray0 type veth peer name stray1 && ip -n {HOST_NS} addr add {STRAY_ADDR}/32 dev stray0 && ip -n {HOST_NS} link set stray0 up"
        ));
        let www = side.p("www").display().to_string();
        let mut stray = spawn_in_ns(HOST_NS, &["busybox", "httpd", "-f", "-p", &format!("{STRAY_ADDR}:5555"), "-h", &www]);
        eventually("the stray listener", 10, || reachable(HOST_NS, &format!("http://{STRAY_ADDR}:5555/")));
        let (code, checks) = audit(&bed);
        let _ = stray.kill();
        let _ = stray.wait();
        assert_eq!(code, Some(exit::PROBLEMS), "a failing check exits with the found-problems code");
        let l = check(&checks, "listeners");
        assert_eq!(l["status"], "fail");
        let evidence = l["detail"].as_str().unwrap();
        assert!(evidence.contains(&format!("{STRAY_ADDR}:5555/tcp")) && evidence.contains("(busybox, pid "), "names the process: {evidence}");
        assert!(l["fix"].as_str().is_some());

        let (code, checks) = audit(&bed);
        assert_eq!(code, Some(0), "closed again: {:#}", check(&checks, "listeners"));
        assert_eq!(check(&checks, "listeners")["status"], "pass");
    });

    t.case("audit_flags_loose_secrets_and_an_open_default", || {
        let secret = bed.config_dir.path().join("gate/client-secret");
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (code, checks) = audit(&bed);
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(code, Some(exit::PROBLEMS));
        let s = check(&checks, "secret file modes");
        assert_eq!(s["status"], "fail");
        assert!(
            s["detail"]
                .as_str()
                .unwrap()
                .contains("client-secret is 644"),
            "{s}"
        );

        // Stopped instances: LXD keeps their devices and config without
        // binding anything, which is all the audit reads.
        lxc_ok(&[
            "init",
            "--project",
            N.project,
            BUSYBOX_IMAGE,
            "h-idle",
            "-c",
            "security.privileged=true",
        ]);
        add_device(
            "h-idle",
            "pub",
            "proxy",
            &["listen=tcp:0.0.0.0:15999", "connect=tcp:127.0.0.1:80"],
        );
        add_device(
            "h-idle",
            "lo",
            "proxy",
            &["listen=tcp:127.0.0.1:15998", "connect=tcp:127.0.0.1:80"],
        );
        // What a forged import could have left: raw.* and the host's files.
        lxc_ok(&[
            "config",
            "set",
            "--project",
            N.project,
            "h-idle",
            "raw.lxc",
            "lxc.cap.drop = sys_time",
        ]);
        let host_dir = side.dir.path().display().to_string();
        add_device(
            "h-idle",
            "hostfs",
            "disk",
            &[&format!("source={host_dir}"), "path=/mnt/host"],
        );
        let (code, checks) = audit(&bed);
        lxc_ok(&["delete", "--project", N.project, "h-idle"]);
        assert_eq!(code, Some(exit::PROBLEMS));
        let r = check(&checks, "raw config");
        assert_eq!(
            (r["status"].as_str(), r["detail"].as_str()),
            (
                Some("fail"),
                Some("trm-e2e-hard/h-idle: raw.lxc=lxc.cap.drop = sys_time")
            )
        );
        let d = check(&checks, "host-path disks");
        assert_eq!(d["status"], "fail");
        assert_eq!(
            d["detail"].as_str().unwrap(),
            format!("trm-e2e-hard/h-idle: disk hostfs mounts host {host_dir} at /mnt/host")
        );
        assert!(
            d["fix"]
                .as_str()
                .is_some_and(|f| f.contains("device remove")),
            "{d}"
        );
        let p = check(&checks, "lxd proxy devices");
        assert_eq!(p["status"], "fail");
        let ev = p["detail"].as_str().unwrap();
        assert!(
            ev.contains("h-idle device pub listens on tcp:0.0.0.0:15999") && !ev.contains("15998"),
            "{ev}"
        );
        let u = check(&checks, "unprivileged");
        assert_eq!(
            (u["status"].as_str(), u["detail"].as_str()),
            (Some("fail"), Some("trm-e2e-hard/h-idle is privileged"))
        );
        assert_eq!(audit(&bed).0, Some(0));

        ufw(&side, &["default", "allow", "incoming"]);
        let (code, checks) = audit(&bed);
        assert_eq!(code, Some(exit::PROBLEMS));
        assert!(check(&checks, "firewall defaults")["detail"]
            .as_str()
            .unwrap()
            .contains("default incoming is 'allow'"));
        // apply puts it back, and only that.
        let rep = harden_json(&bed, &["apply", "--yes"]);
        let applied: Vec<String> = rep["applied"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["target"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(applied, vec!["default deny incoming"]);
        assert_eq!(audit(&bed).0, Some(0));
    });

    if let Some(mut c) = sshd.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    clean_network();
    // Traefik, started by apply, is stopped by its pid file.
    let _ = bed.tool("trm-expose").args(["proxy", "stop"]).output();
    bed.teardown();
    // Before the summary, so the side directory is gone when it prints.
    drop(side);
    t.finish()
}
