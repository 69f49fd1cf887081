//! The audit: one check per promise of the security model, each read from
//! the machine's real state (sshd -T, ufw status, /proc/net sockets, LXD,
//! file modes), never from what Terrarium believes it wrote.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use super::facts::wan;
use super::{firewall, gate, ssh, Options};
use crate::gate::GateSettings;
use crate::lxd::{Instance, Lxd};
use crate::output::Row;
use crate::process::{Cmd, Tool};
use crate::profiles::{self, managed as managed_profiles};
use crate::settings::Settings;
use crate::verdict::Status;
use crate::{net, policy, traefik, ufw};

const DOCKER: Tool = Tool {
    names: &["docker"],
    env: "TRM_DOCKER",
    hint: "",
};

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: &'static str,
    pub promise: &'static str,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

impl Row for Check {
    fn headers() -> &'static [&'static str] {
        &["CHECK", "STATUS", "DETAIL", "FIX"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.check.into(),
            self.status.cell().into(),
            self.detail.clone(),
            self.fix.clone().unwrap_or_default(),
        ]
    }
}

pub fn failures(checks: &[Check]) -> usize {
    crate::verdict::failures(checks.iter().map(|c| c.status))
}

struct Audit(Vec<Check>);

impl Audit {
    fn push(
        &mut self,
        check: &'static str,
        promise: &'static str,
        status: Status,
        detail: impl Into<String>,
        fix: Option<&str>,
    ) {
        self.0.push(Check {
            check,
            promise,
            status,
            detail: detail.into(),
            fix: fix.map(String::from),
        });
    }

    /// Pass when `problems` is empty, else `bad` with the problems as evidence.
    fn verdict(
        &mut self,
        check: &'static str,
        promise: &'static str,
        problems: &[String],
        bad: Status,
        good: impl Into<String>,
        fix: &str,
    ) {
        if problems.is_empty() {
            self.push(check, promise, Status::Pass, good, None);
        } else {
            self.push(check, promise, bad, problems.join("; "), Some(fix));
        }
    }
}

const APPLY: &str = "`trm-harden apply`";

/// Run every check. `project`: LXD checks in that project only, else in all.
pub fn run(settings: &Settings, opts: &Options, lxd: &Lxd, project: Option<&str>) -> Vec<Check> {
    let mut a = Audit(Vec::new());
    let eff = ssh_checks(&mut a, opts);
    let ssh_ports = eff.as_ref().map(ssh::ports).unwrap_or_else(|| vec![22]);
    let static_file = traefik_checks(&mut a, settings);
    let added = firewall_checks(&mut a, settings, opts, &ssh_ports, static_file.as_ref());
    let networks = lxd.networks().unwrap_or_default();
    let cluster = ClusterPorts::of(lxd);
    listener_checks(
        &mut a,
        &ssh_ports,
        static_file.as_ref(),
        &added,
        &networks,
        &cluster,
    );
    management_checks(&mut a, lxd);
    gate_checks(&mut a, settings, lxd);
    lxd_checks(&mut a, settings, lxd, project);
    docker_check(&mut a);
    secret_checks(&mut a, settings, eff.as_ref());
    a.0
}

fn ssh_checks(a: &mut Audit, opts: &Options) -> Option<ssh::Effective> {
    const PROMISE: &str = "SSH is key-only";
    if ssh::SSHD.resolve().is_err() {
        a.push(
            "ssh",
            PROMISE,
            Status::Warn,
            "sshd is not installed: no SSH server to check",
            None,
        );
        return None;
    }
    let eff = match opts.sshd().effective() {
        Ok(e) => e,
        Err(e) => {
            a.push(
                "ssh",
                PROMISE,
                Status::Fail,
                format!("sshd -T failed: {e}"),
                Some("fix the sshd configuration (`sshd -t` names the problem)"),
            );
            return None;
        }
    };
    let wrong = ssh::mismatches(&eff);
    let is_auth = |w: &&String| !w.starts_with("maxauthtries") && !w.starts_with("logingracetime");
    let auth: Vec<String> = wrong.iter().filter(is_auth).cloned().collect();
    let limits: Vec<String> = wrong.iter().filter(|w| !is_auth(w)).cloned().collect();
    a.verdict(
        "ssh key-only",
        PROMISE,
        &auth,
        Status::Fail,
        "sshd -T: passwordauthentication no, kbdinteractiveauthentication no, permitemptypasswords no, permitrootlogin without-password, authenticationmethods publickey",
        APPLY,
    );
    a.verdict(
        "ssh limits",
        PROMISE,
        &limits,
        Status::Warn,
        "sshd -T: maxauthtries 3, logingracetime 30",
        APPLY,
    );
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    let shells = std::fs::read_to_string("/etc/shells").unwrap_or_default();
    let keys = ssh::authorized_keys(&eff, &passwd, &shells);
    if keys.with_keys.is_empty() {
        a.push(
            "ssh keys",
            PROMISE,
            Status::Warn,
            format!(
                "no account that can log in has an authorized key (looked at {})",
                keys.looked_at.join(", ")
            ),
            Some("add your public key before you lose the session you are in"),
        );
    } else {
        a.push(
            "ssh keys",
            PROMISE,
            Status::Pass,
            format!("accounts with keys: {}", keys.with_keys.join(", ")),
            None,
        );
    }
    Some(eff)
}

fn traefik_checks(a: &mut Audit, settings: &Settings) -> Option<serde_json::Value> {
    const PROMISE: &str = "dashboards are behind single sign-on";
    let e = &settings.expose;
    let read = |p: &Path| -> Result<serde_json::Value, String> {
        let b = std::fs::read(p).map_err(|err| format!("{}: {err}", p.display()))?;
        serde_json::from_slice(&b).map_err(|err| format!("{} does not parse: {err}", p.display()))
    };
    let mut problems = Vec::new();
    let stat = read(Path::new(&e.static_file));
    match &stat {
        Ok(v) => {
            if let Err(errs) = traefik::validate_static(v) {
                problems.push(format!(
                    "{} does not validate: {}",
                    e.static_file,
                    errs.join("; ")
                ));
            }
            // The API without a router is served on the `traefik`
            // entrypoint: fine on loopback, an open door anywhere else.
            let api_local =
                traefik::api_address_of(v).is_some_and(|a| traefik::is_loopback_address(&a));
            if v["api"]["insecure"] == true && !api_local {
                problems.push(format!(
                    "{} serves Traefik's API on an entrypoint that is not loopback-only",
                    e.static_file
                ));
            }
        }
        Err(err) => problems.push(err.clone()),
    }
    let mgmt_path = Path::new(&e.dynamic_dir).join(gate::MANAGEMENT_FILE);
    match read(&mgmt_path) {
        Ok(v) => {
            if let Err(errs) = traefik::validate_dynamic(&v) {
                problems.push(format!(
                    "{} does not validate: {}",
                    mgmt_path.display(),
                    errs.join("; ")
                ));
            }
            for r in ["trm_manage", "trm_proxy"] {
                if v["http"]["routers"][r]["middlewares"][0] != "trm_gate" {
                    problems.push(format!("router {r} is not behind the gate"));
                }
            }
        }
        Err(err) => problems.push(err),
    }
    a.verdict(
        "traefik files",
        PROMISE,
        &problems,
        Status::Fail,
        format!(
            "{} and {} validate; manage. and proxy. go through the gate",
            e.static_file,
            mgmt_path.display()
        ),
        APPLY,
    );
    stat.ok()
}

fn firewall_checks(
    a: &mut Audit,
    settings: &Settings,
    opts: &Options,
    ssh_ports: &[u16],
    static_file: Option<&serde_json::Value>,
) -> Vec<String> {
    const PROMISE: &str = "the firewall denies incoming traffic by default";
    let status = opts
        .ufw
        .run(&["status".into(), "verbose".into()])
        .map(|t| firewall::parse_status(&t));
    let added = opts.ufw.added();
    let (status, added) = match (status, added) {
        (Ok(s), Ok(a)) => (s, a),
        (Err(e), _) | (_, Err(e)) => {
            a.push(
                "firewall",
                PROMISE,
                Status::Fail,
                format!("cannot read ufw: {e}"),
                Some("install ufw, then `trm-harden apply`"),
            );
            return Vec::new();
        }
    };
    let mut problems: Vec<String> = status
        .wrong_defaults()
        .iter()
        .map(|(dir, want)| format!("default {dir} is '{}' (want {want})", status.policy(dir)))
        .collect();
    if !status.active {
        problems.insert(0, "ufw is inactive".into());
    }
    a.verdict(
        "firewall defaults",
        PROMISE,
        &problems,
        Status::Fail,
        "ufw active: deny (incoming), allow (outgoing), deny (routed)",
        APPLY,
    );

    let missing: Vec<String> = match wan(opts) {
        Ok(w) => firewall::desired(ssh_ports, &settings.bridge, &w)
            .iter()
            .map(firewall::Rule::line)
            .filter(|l| !added.contains(l))
            .map(|l| format!("missing `ufw {l}`"))
            .collect(),
        Err(e) => vec![e.to_string()],
    };
    a.verdict(
        "firewall rules",
        PROMISE,
        &missing,
        Status::Fail,
        "SSH limited, 80 and 443 in, DHCP and DNS from the bridge, routed egress only",
        APPLY,
    );

    let owned: BTreeSet<String> = ufw::owned_rules(&added).iter().map(|r| r.spec()).collect();
    let unallowed: Vec<String> = static_file
        .map(traefik::entrypoints_of)
        .unwrap_or_default()
        .iter()
        .map(|ep| format!("{}/{}", ep.port, if ep.udp { "udp" } else { "tcp" }))
        .filter(|spec| !owned.contains(spec))
        .map(|spec| format!("exposed port {spec} has no UFW rule"))
        .collect();
    a.verdict(
        "firewall exposed ports",
        PROMISE,
        &unallowed,
        Status::Fail,
        format!(
            "every raw port trm-expose publishes is allowed ({})",
            owned.len()
        ),
        "`trm-expose sync`",
    );
    added
}

fn is_loopback(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

fn is_link_local(ip: &IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
    }
}

/// Ports (and protocol) Traefik's static file declares: web, websecure
/// and every raw entrypoint.
fn traefik_ports(static_file: Option<&serde_json::Value>) -> BTreeSet<(u16, bool)> {
    static_file
        .and_then(|v| v["entryPoints"].as_object())
        .into_iter()
        .flatten()
        .filter_map(|(_, ep)| traefik::address_port(ep["address"].as_str()?))
        .collect()
}

/// A cluster member's own listeners: LXD's cluster address, and the
/// mesh's WireGuard and VXLAN (its firewall opens them to members only).
#[derive(Debug, Default)]
struct ClusterPorts {
    lxd: Option<std::net::SocketAddr>,
    mesh: bool,
}

impl ClusterPorts {
    fn of(lxd: &Lxd) -> ClusterPorts {
        let enabled = lxd.cluster().map(|c| c.enabled).unwrap_or(false);
        if !enabled {
            return ClusterPorts::default();
        }
        ClusterPorts {
            lxd: lxd
                .server()
                .ok()
                .and_then(|s| s.config_str("cluster.https_address").parse().ok()),
            mesh: true,
        }
    }

    fn explains(&self, s: &net::Socket) -> Option<&'static str> {
        use crate::cluster::mesh;
        if !s.udp
            && self
                .lxd
                .is_some_and(|a| a.ip() == s.addr && a.port() == s.port)
        {
            Some("LXD's cluster port (the other members only, by the firewall)")
        } else if self.mesh && s.udp && s.port == mesh::WG_PORT {
            Some("the cluster mesh's WireGuard (the other members only, by the firewall)")
        } else if self.mesh && s.udp && s.port == mesh::VXLAN_PORT {
            Some(
                "the cluster mesh's VXLAN (its filter takes it only inside WireGuard, from a peer)",
            )
        } else {
            None
        }
    }
}

/// Programs that hold UDP 68 to get this host's own address.
const DHCP_CLIENTS: &[&str] = &[
    "dhclient",
    "dhcpcd",
    "systemd-network",
    "udhcpc",
    "NetworkManager",
];

fn listener_checks(
    a: &mut Audit,
    ssh_ports: &[u16],
    static_file: Option<&serde_json::Value>,
    added: &[String],
    networks: &[crate::lxd::Network],
    cluster: &ClusterPorts,
) {
    const PROMISE: &str = "nothing listens publicly unless explained";
    let traefik = traefik_ports(static_file);
    let exposed: BTreeSet<(u16, bool)> = ufw::owned_rules(added)
        .iter()
        .map(|r| (r.port, r.udp))
        .collect();
    let bridges: Vec<IpAddr> = networks
        .iter()
        .filter(|n| n.managed)
        .filter_map(|n| n.config.get("ipv4.address"))
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    let owners = net::socket_owners();
    let mut explained = Vec::new();
    let mut unexplained = Vec::new();
    for s in net::sockets(false).into_iter().chain(net::sockets(true)) {
        if is_loopback(&s.addr) || is_link_local(&s.addr) {
            continue;
        }
        let why = if !s.udp && ssh_ports.contains(&s.port) {
            Some("sshd")
        } else if let Some(w) = cluster.explains(&s) {
            Some(w)
        } else if s.udp
            && s.port == 68
            && owners
                .get(&s.inode)
                .is_some_and(|(_, comm)| DHCP_CLIENTS.contains(&comm.as_str()))
        {
            Some("this host's own DHCP client")
        } else if traefik.contains(&(s.port, s.udp)) {
            Some("a Traefik entrypoint")
        } else if exposed.contains(&(s.port, s.udp)) {
            Some("a port trm-expose publishes")
        } else if bridges.contains(&s.addr) {
            Some("the private bridge (DNS for containers)")
        } else if s.udp && s.port == 67 && !bridges.is_empty() {
            Some("DHCP for the private bridge")
        } else {
            None
        };
        let who = owners
            .get(&s.inode)
            .map(|(pid, comm)| format!(" ({comm}, pid {pid})"))
            .unwrap_or_default();
        let addr = match s.addr {
            IpAddr::V6(v6) => format!("[{v6}]"),
            v4 => v4.to_string(),
        };
        let text = format!(
            "{addr}:{}/{}{who}",
            s.port,
            if s.udp { "udp" } else { "tcp" }
        );
        match why {
            Some(w) => explained.push(format!("{text}: {w}")),
            None => unexplained.push(format!("{text} is not explained")),
        }
    }
    let good = if explained.is_empty() {
        "no socket listens on a non-loopback address".to_string()
    } else {
        explained.join("; ")
    };
    a.verdict(
        "listeners",
        PROMISE,
        &unexplained,
        Status::Fail,
        good,
        "stop it, bind it to 127.0.0.1, or publish it on purpose with trm-expose",
    );
}

fn management_checks(a: &mut Audit, lxd: &Lxd) {
    const PROMISE: &str = "management services listen on loopback only";
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    match lxd.server() {
        Ok(s) => {
            let https = s.config_str("core.https_address").to_string();
            let host = https.rsplit_once(':').map(|(h, _)| h).unwrap_or(&https);
            let ip: Option<IpAddr> = host.trim_matches(|c| c == '[' || c == ']').parse().ok();
            if https.is_empty() || ip.as_ref().is_some_and(is_loopback) {
                evidence.push(format!("LXD core.https_address '{https}'"));
            } else {
                problems.push(format!("LXD core.https_address is '{https}'"));
            }
        }
        Err(e) => problems.push(format!("LXD does not answer: {e}")),
    }
    let ports = [(8443, "LXD"), (9090, "Cockpit"), (4180, "the gate")];
    for s in net::sockets(false) {
        if let Some((_, what)) = ports.iter().find(|(p, _)| *p == s.port) {
            if is_loopback(&s.addr) {
                evidence.push(format!("{what} on {}:{}", s.addr, s.port));
            } else {
                problems.push(format!("{what} listens on {}:{}", s.addr, s.port));
            }
        }
    }
    a.verdict(
        "management on loopback",
        PROMISE,
        &problems,
        Status::Fail,
        evidence.join("; "),
        APPLY,
    );
}

fn gate_checks(a: &mut Audit, settings: &Settings, lxd: &Lxd) {
    const PROMISE: &str = "dashboards are behind single sign-on";
    const SET: &str =
        "`trm-harden oidc set --issuer URL --client-id ID --client-secret-file F --admin-group G`";
    let g = match GateSettings::load() {
        Ok(Some(g)) => g,
        Ok(None) => {
            a.push("gate", PROMISE, Status::Warn, format!("{} is missing: no single-sign-on gate is configured, gated dashboards answer no one", crate::gate::settings::path().display()), Some(SET));
            return;
        }
        Err(e) => {
            a.push("gate", PROMISE, Status::Fail, e.to_string(), Some(SET));
            return;
        }
    };
    if !g.configured() {
        a.push(
            "gate",
            PROMISE,
            Status::Warn,
            format!(
                "{} names no issuer: the gate signs no one in, gated dashboards answer no one",
                crate::gate::settings::path().display()
            ),
            Some(SET),
        );
        return;
    }
    let mut problems = Vec::new();
    if let Err(e) = crate::gate::serve::gate(&g) {
        problems.push(e.to_string());
    }
    if let Ok(want) = crate::gate::settings::default_auth_url(&settings.expose) {
        if g.auth_url != want {
            problems.push(format!(
                "the gate signs in at {}, the management routes at {want}",
                g.auth_url
            ));
        }
    }
    a.verdict(
        "gate",
        PROMISE,
        &problems,
        Status::Fail,
        format!(
            "trm-gate for {} on {}, admins: group {}, sign-in at {}",
            g.issuer, g.listen, g.admin_group, g.auth_url
        ),
        SET,
    );
    let st = crate::gate::supervise::status(&g);
    if st.healthy() {
        a.push(
            "gate running",
            PROMISE,
            Status::Pass,
            format!("trm-gate answers on {}", g.listen),
            None,
        );
    } else {
        a.push(
            "gate running",
            PROMISE,
            Status::Warn,
            format!(
                "trm-gate does not answer on {}: gated routes answer no one",
                g.listen
            ),
            Some("`trm-gate start`"),
        );
    }
    dashboard_probe(a, settings);
    if let Ok(s) = lxd.server() {
        let issuer = s.config_str("oidc.issuer");
        if !s.api_extensions.iter().any(|x| x == "oidc") {
            a.push("lxd oidc", PROMISE, Status::Warn, format!("LXD {} does not support OIDC: it stays behind its TLS client certificates on loopback", s.environment.server_version), Some("upgrade LXD (5.14 or later) for single sign-on to LXD itself"));
        } else if issuer == g.issuer {
            a.push(
                "lxd oidc",
                PROMISE,
                Status::Pass,
                format!("LXD oidc.issuer {issuer}"),
                None,
            );
        } else {
            a.push(
                "lxd oidc",
                PROMISE,
                Status::Warn,
                format!(
                    "LXD oidc.issuer is '{issuer}', the gate's is '{}'",
                    g.issuer
                ),
                Some(SET),
            );
        }
    }
}

/// Ask Traefik for each dashboard as a stranger would (no cookie): any
/// 2xx means it answers without the gate.
fn dashboard_probe(a: &mut Audit, settings: &Settings) {
    const PROMISE: &str = "dashboards answer only through the gate";
    let e = &settings.expose;
    let Ok(domain) = crate::expose::base_domain(e) else {
        return;
    };
    let port = traefik::address_port(&e.https_address).map_or(443, |(p, _)| p);
    let mut problems = Vec::new();
    let mut evidence = Vec::new();
    for d in gate::DASHBOARDS {
        let host = format!("{d}.{domain}");
        match crate::net::https_status_via_loopback(&host, port) {
            Ok(code) if (200..300).contains(&code) => {
                problems.push(format!("https://{host}/ answers {code} without a sign-in"))
            }
            Ok(code) => evidence.push(format!("https://{host}/ answers {code} to a stranger")),
            Err(why) => {
                a.push(
                    "dashboards gated",
                    PROMISE,
                    Status::Warn,
                    format!("could not ask Traefik on 127.0.0.1:{port}: {why}"),
                    Some("`trm-expose proxy start`, then audit again"),
                );
                return;
            }
        }
    }
    a.verdict(
        "dashboards gated",
        PROMISE,
        &problems,
        Status::Fail,
        evidence.join("; "),
        APPLY,
    );
}

fn instances(lxd: &Lxd, project: Option<&str>) -> crate::Result<Vec<Instance>> {
    match project {
        Some(p) => Lxd::new(p)?.instances(),
        None => lxd.instances_all_projects(),
    }
}

fn lxd_checks(a: &mut Audit, settings: &Settings, lxd: &Lxd, project: Option<&str>) {
    let scope = project.map_or("all projects".to_string(), |p| format!("project {p}"));
    let list = match instances(lxd, project) {
        Ok(l) => l,
        Err(e) => {
            a.push(
                "lxd",
                "workloads are unprivileged and private",
                Status::Fail,
                format!("LXD does not answer: {e}"),
                Some("start LXD"),
            );
            return;
        }
    };
    let name = |i: &Instance| {
        if i.project.is_empty() {
            i.name.clone()
        } else {
            format!("{}/{}", i.project, i.name)
        }
    };
    let mut public = Vec::new();
    for i in &list {
        for (dev, d) in &i.expanded_devices {
            if d.get("type").map(String::as_str) != Some("proxy") {
                continue;
            }
            let listen = d.get("listen").cloned().unwrap_or_default();
            // tcp:ADDR:PORT, udp:ADDR:PORT or unix:PATH
            let host = listen
                .split_once(':')
                .and_then(|(_, r)| r.rsplit_once(':'))
                .map(|(h, _)| h.trim_matches(|c| c == '[' || c == ']'));
            let loopback = listen.starts_with("unix:")
                || host
                    .and_then(|h| h.parse::<IpAddr>().ok())
                    .is_some_and(|ip| is_loopback(&ip));
            if !loopback {
                public.push(format!("{} device {dev} listens on {listen}", name(i)));
            }
        }
    }
    a.verdict(
        "lxd proxy devices",
        "containers are private by default",
        &public,
        Status::Fail,
        format!(
            "no proxy device listens beyond loopback ({scope}, {} instances)",
            list.len()
        ),
        "publish through trm-expose instead, or set the device's listen to tcp:127.0.0.1:PORT",
    );
    // What a forged import (or a hand edit) could leave: the same rules
    // `trm-snap import` strips by, on the expanded config (profiles too).
    let findings: Vec<(&str, String, String)> = list
        .iter()
        .flat_map(|i| {
            policy::audit_findings(&i.expanded_config, &i.expanded_devices)
                .into_iter()
                .map(move |(check, what)| (check, name(i), what))
        })
        .collect();
    let of = |check: &str| -> Vec<String> {
        findings
            .iter()
            .filter(|(c, ..)| *c == check)
            .map(|(_, who, what)| format!("{who}: {what}"))
            .collect()
    };
    let privileged: Vec<String> = findings
        .iter()
        .filter(|(c, ..)| *c == "privileged")
        .map(|(_, who, _)| format!("{who} is privileged"))
        .collect();
    a.verdict(
        "unprivileged",
        "workloads are unprivileged",
        &privileged,
        Status::Fail,
        format!("no privileged instance ({scope})"),
        "recreate it with a Terrarium profile (root inside must not be root on the host)",
    );
    a.verdict(
        "raw config",
        "workloads are unprivileged",
        &of("raw config"),
        Status::Fail,
        format!("no instance or profile sets raw.* ({scope})"),
        "`lxc config unset NAME raw.KEY` (raw.* hands text straight to LXC, AppArmor, seccomp or the idmap)",
    );
    a.verdict(
        "host-path disks",
        "tenants are kept from the host",
        &of("host-path disk"),
        Status::Fail,
        format!("no disk device mounts a host path ({scope})"),
        "`lxc config device remove NAME DEVICE`; share data through a storage volume instead",
    );

    a.verdict(
        "nic filters",
        "tenants are kept from each other",
        &of("nic filters"),
        Status::Fail,
        format!("every NIC is pinned to its MAC and address ({scope})"),
        "`trm-profile apply --all` (Terrarium's profiles set security.mac_filtering and ipv4_filtering), or set them on the device",
    );

    let defs = profiles::definitions(&settings.storage_pool, &settings.bridge);
    let project = project.unwrap_or(&settings.project);
    match Lxd::new(project).and_then(|l| managed_profiles::list(&l, &defs)) {
        Ok(entries) => {
            let drifted: Vec<String> = entries
                .iter()
                .filter(|e| e.status == managed_profiles::Status::Drifted)
                .map(|e| format!("profile {} drifted", e.name))
                .collect();
            a.verdict(
                "profiles",
                "workloads are unprivileged",
                &drifted,
                Status::Fail,
                format!("Terrarium's profiles in project {project} match their definitions"),
                "`trm-profile diff`, then `trm-profile apply --all`",
            );
        }
        Err(e) => a.push(
            "profiles",
            "workloads are unprivileged",
            Status::Fail,
            format!("cannot read profiles: {e}"),
            None,
        ),
    }
}

fn docker_check(a: &mut Audit) {
    const PROMISE: &str = "nothing bypasses the firewall";
    let Ok(cmd) = Cmd::tool(&DOCKER) else {
        a.push(
            "docker published ports",
            PROMISE,
            Status::Pass,
            "Docker is not installed on the host",
            None,
        );
        return;
    };
    let out = cmd
        .args(["ps", "--format", "{{.Names}} {{.Ports}}"])
        .timeout(Duration::from_secs(20))
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let published = docker_published(&o.stdout_str());
            a.verdict(PROMISE_DOCKER, PROMISE, &published, Status::Fail, "no Docker container publishes a port on the host", "publish on 127.0.0.1 (`-p 127.0.0.1:PORT:PORT`) and expose through Traefik, or run Docker inside a container");
        }
        _ => a.push(
            PROMISE_DOCKER,
            PROMISE,
            Status::Pass,
            "Docker is installed but its daemon does not answer: nothing published",
            None,
        ),
    }
}

const PROMISE_DOCKER: &str = "docker published ports";

/// Containers in `docker ps --format '{{.Names}} {{.Ports}}'` that
/// publish a port beyond loopback.
fn docker_published(ps: &str) -> Vec<String> {
    ps.lines()
        .filter(|l| {
            l.split([' ', ','])
                .any(|w| w.contains("->") && !w.starts_with("127.") && !w.starts_with("[::1]"))
        })
        .map(|l| format!("container {l} (Docker's NAT rules bypass UFW)"))
        .collect()
}

fn secret_checks(a: &mut Audit, settings: &Settings, eff: Option<&ssh::Effective>) {
    let mut files: Vec<std::path::PathBuf> = vec![settings.expose.acme_storage.clone().into()];
    if let Ok(Some(g)) = GateSettings::load() {
        files.push(g.client_secret_file.into());
        files.push(g.keys_file.into());
    }
    files.extend(
        eff.and_then(|e| e.get("hostkey"))
            .into_iter()
            .flatten()
            .map(Into::into),
    );
    let mut checked = Vec::new();
    let mut open = Vec::new();
    for f in files {
        let Ok(meta) = std::fs::metadata(&f) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            open.push(format!("{} is {mode:o}", f.display()));
        } else {
            checked.push(format!("{} {mode:o}", f.display()));
        }
    }
    a.verdict(
        "secret file modes",
        "secrets are readable by their owner only",
        &open,
        Status::Fail,
        if checked.is_empty() {
            "no secret files present".to_string()
        } else {
            checked.join(", ")
        },
        "chmod 600 FILE",
    );
}

#[cfg(test)]
mod tests {

    #[test]
    fn docker_ports_beyond_loopback_are_flagged() {
        let ps = "web 0.0.0.0:8080->80/tcp, :::8080->80/tcp\n\
                  db 127.0.0.1:5432->5432/tcp\n\
                  v6local [::1]:6379->6379/tcp\n\
                  api 80/tcp\n\
                  worker \n\
                  mixed 127.0.0.1:9000->9000/tcp, 0.0.0.0:9443->443/tcp\n";
        let flagged = docker_published(ps);
        assert_eq!(flagged.len(), 2, "{flagged:?}");
        assert!(flagged[0].starts_with("container web "));
        assert!(flagged[1].starts_with("container mixed "));
    }

    use super::*;

    #[test]
    fn traefik_ports_come_from_entrypoint_addresses() {
        let v = serde_json::json!({"entryPoints": {
            "web": {"address": ":80"}, "websecure": {"address": ":443"},
            "tcp-15432": {"address": ":15432/tcp"}, "udp-5353": {"address": ":5353/udp"}
        }});
        let got: Vec<(u16, bool)> = traefik_ports(Some(&v)).into_iter().collect();
        assert_eq!(
            got,
            vec![(80, false), (443, false), (5353, true), (15432, false)]
        );
        assert!(traefik_ports(None).is_empty());
    }

    #[test]
    fn loopback_includes_mapped_v4_and_link_local_is_separate() {
        for (a, lo) in [
            ("127.0.0.1", true),
            ("::1", true),
            ("::ffff:127.0.0.1", true),
            ("0.0.0.0", false),
            ("::", false),
            ("198.51.100.7", false),
        ] {
            assert_eq!(is_loopback(&a.parse().unwrap()), lo, "{a}");
        }
        assert!(is_link_local(&"fe80::1".parse().unwrap()));
        assert!(!is_link_local(&"2001:db8::1".parse().unwrap()));
    }
}
