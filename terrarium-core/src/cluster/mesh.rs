//! The private network across members: a WireGuard mesh between the
//! members (kernel WireGuard where present, `wireguard-go` where not)
//! carrying one VXLAN that joins every member's Terrarium bridge. Nothing
//! between members travels outside WireGuard.
//!
//! LXD gives the bridge the same gateway address and MAC on every member.
//! Containers keep their own member's gateway: ARP for the gateway and DHCP
//! never cross the overlay. Each member's bridge gets a MAC of its own and
//! a host address of its own at the top of the subnet (outside the DHCP
//! range), which the host uses as source, so Traefik on one member reaches
//! a container on another directly.
//!
//! Each member publishes its WireGuard public key and mesh index in its own
//! cluster member config (`user.terrarium.mesh.*`); every member builds
//! its peers from those. [`plan`] is pure; [`read`] and [`apply`] touch the
//! host.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lxd::cluster::Member;
use crate::lxd::Lxd;
use crate::net::Subnet;
use crate::output::Human;
use crate::process::{find, Cmd};

pub const WG_IF: &str = "trmwg0";
pub const VX_IF: &str = "trmvx0";
pub const WG_PORT: u16 = 51820;
const VXLAN_ID: u32 = 4242;
pub const VXLAN_PORT: u16 = 4789;
/// The members' WireGuard addresses: `172.31.254.INDEX`.
pub const OVERLAY_NET: Ipv4Addr = Ipv4Addr::new(172, 31, 254, 0);
pub const OVERLAY_PREFIX: u8 = 24;
/// Mesh indexes run 1..=MAX_MEMBERS; as many host addresses at the top of
/// the bridge's subnet stay out of its DHCP range.
pub const MAX_MEMBERS: u32 = 32;
pub const PUBKEY_KEY: &str = "user.terrarium.mesh.pubkey";
pub const INDEX_KEY: &str = "user.terrarium.mesh.index";
const NFT_TABLE: &str = "terrarium_mesh";
/// The host side: VXLAN's port, and what boxes may not reach.
const NFT_HOST_TABLE: &str = "terrarium_mesh_host";

/// Where this member's WireGuard private key lives (0600, never printed).
pub fn key_path() -> PathBuf {
    crate::settings::config_dir().join("cluster").join("wg.key")
}

/// A member as the mesh sees it, from its published config.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Peer {
    pub name: String,
    pub index: u32,
    pub overlay: Ipv4Addr,
    /// `HOST:51820`, the member's cluster address.
    pub endpoint: String,
    #[serde(skip)]
    pub pubkey: String,
}

/// This host's links as `ip`, `wg`, `bridge` and `nft` report them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Links {
    pub wg_exists: bool,
    pub wg_pubkey: String,
    pub wg_port: u16,
    /// Public key -> (endpoint, allowed-ips).
    pub wg_peers: BTreeMap<String, (String, String)>,
    /// Public key -> seconds since the epoch of the latest handshake (0: none).
    pub handshakes: BTreeMap<String, u64>,
    pub wg_addrs: Vec<String>,
    /// (VXLAN id, local address, master), if the device exists.
    pub vxlan: Option<(u32, String, String)>,
    pub flood: Vec<String>,
    pub bridge_mac: String,
    pub bridge_addrs: Vec<String>,
    pub route_src: String,
    /// The loaded filter's comment (its version), if loaded.
    pub nft: Option<String>,
}

/// Everything the plan needs.
#[derive(Debug, Clone, Default)]
pub struct MeshFacts {
    pub me: String,
    pub my_pubkey: String,
    /// A private key made for this run, when the member has none on disk
    /// yet: the plan writes exactly the key whose public half it publishes.
    pub new_key: Option<PrivateKey>,
    pub members: Vec<Member>,
    pub bridge: String,
    /// The bridge's gateway address and prefix (`10.100.0.1/24`).
    pub subnet: Option<Subnet>,
    pub dhcp_ranges: String,
    pub links: Links,
    /// `ufw show added`, or None where ufw is not installed.
    pub ufw_added: Option<Vec<String>>,
    /// Servers holding an unused join token (their opened port stays).
    pub pending: Vec<String>,
    pub ufw: crate::ufw::Ufw,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `ip link add trmwg0 type wireguard`, else `wireguard-go trmwg0`.
    CreateWireguard,
    Run {
        argv: Vec<String>,
        stdin: Option<String>,
    },
    MemberConfig {
        key: String,
        value: String,
    },
    NetworkConfig {
        key: String,
        value: String,
    },
    /// Write this member's first WireGuard private key (mode 0600).
    WriteKey {
        private: PrivateKey,
    },
    /// `ufw ARGS`.
    Ufw {
        args: Vec<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub what: String,
    pub detail: String,
    #[serde(skip)]
    pub op: Op,
}

#[derive(Debug, Clone, Serialize)]
pub struct PeerView {
    pub name: String,
    pub overlay: Ipv4Addr,
    pub endpoint: String,
    /// Seconds since the last WireGuard handshake; null if none yet.
    pub handshake_age_s: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct MeshPlan {
    pub member: String,
    pub index: u32,
    pub overlay: Ipv4Addr,
    /// This member's own address on the bridge (the source of its traffic
    /// to containers).
    pub host_address: Ipv4Addr,
    pub peers: Vec<PeerView>,
    /// Members not peers yet: no valid key, index or address published,
    /// or an index another member holds first (they run `trm cluster mesh`).
    pub waiting: Vec<String>,
    pub steps: Vec<Step>,
    pub dry_run: bool,
    pub changed: bool,
}

fn step(what: &str, detail: impl Into<String>, op: Op) -> Step {
    Step {
        what: what.into(),
        detail: detail.into(),
        op,
    }
}

fn run(argv: &[&str]) -> Op {
    Op::Run {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        stdin: None,
    }
}

/// A WireGuard public key: base64 of 32 bytes, nothing else.
pub fn valid_pubkey(k: &str) -> bool {
    use base64::Engine;
    k.len() == 44
        && base64::engine::general_purpose::STANDARD
            .decode(k)
            .is_ok_and(|b| b.len() == 32)
}

fn published_index(m: &Member) -> Option<u32> {
    m.config
        .get(INDEX_KEY)?
        .parse()
        .ok()
        .filter(|i| (1..=MAX_MEMBERS).contains(i))
}

/// This member's index: the one it published unless a member whose name
/// sorts first claims it too, else the lowest free one.
pub fn my_index(me: &str, members: &[Member]) -> Result<u32> {
    let mine = members
        .iter()
        .find(|m| m.server_name == me)
        .and_then(published_index);
    let taken: Vec<(u32, &str)> = members
        .iter()
        .filter(|m| m.server_name != me)
        .filter_map(|m| Some((published_index(m)?, m.server_name.as_str())))
        .collect();
    if let Some(i) = mine {
        if !taken.iter().any(|(t, n)| *t == i && *n < me) {
            return Ok(i);
        }
    }
    (1..=MAX_MEMBERS)
        .find(|i| !taken.iter().any(|(t, _)| t == i))
        .ok_or_else(|| Error::WrongState(format!("the mesh holds at most {MAX_MEMBERS} members")))
}

pub fn overlay_address(index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(OVERLAY_NET) + index)
}

fn broadcast(s: &Subnet) -> u32 {
    s.network() | !s.mask()
}

/// This member's own address on the bridge: counted down from the top.
pub fn host_address(s: &Subnet, index: u32) -> Ipv4Addr {
    Ipv4Addr::from(broadcast(s) - index)
}

/// Whether `ip` is one of the members' host addresses on the bridge.
fn is_host_address(s: &Subnet, ip: Ipv4Addr) -> bool {
    let ip = u32::from(ip);
    ip < broadcast(s) && ip >= broadcast(s) - MAX_MEMBERS
}

/// The DHCP range that leaves the members' host addresses out.
pub fn dhcp_ranges(s: &Subnet) -> Result<String> {
    let first = s.network() + 2;
    let last = broadcast(s) - MAX_MEMBERS - 1;
    if last <= first {
        return Err(Error::WrongState(format!(
            "the bridge's subnet /{} is too small for a mesh of {MAX_MEMBERS} members; use a /24 or larger",
            s.prefix
        )));
    }
    Ok(format!(
        "{}-{}",
        Ipv4Addr::from(first),
        Ipv4Addr::from(last)
    ))
}

/// A MAC of this member's own for the bridge (locally administered).
pub fn bridge_mac(index: u32) -> String {
    format!("02:74:72:6d:{:02x}:{:02x}", index >> 8, index & 0xff)
}

/// The peers: every other member that published a valid key and the
/// index it keeps (one that another member claims first renumbers at
/// its next run, and waits till then). A key or index published twice
/// makes one peer, not two fighting for one overlay address.
pub fn peers(me: &str, members: &[Member]) -> (Vec<Peer>, Vec<String>) {
    let (mut ok, mut waiting): (Vec<Peer>, Vec<String>) = (vec![], vec![]);
    let mut sorted: Vec<&Member> = members.iter().filter(|m| m.server_name != me).collect();
    sorted.sort_by(|a, b| a.server_name.cmp(&b.server_name));
    for m in sorted {
        let key = m.config.get(PUBKEY_KEY).map(String::as_str).unwrap_or("");
        let kept = published_index(m)
            .filter(|i| my_index(&m.server_name, members).ok() == Some(*i))
            .filter(|i| !ok.iter().any(|p| p.index == *i || p.pubkey == key));
        match kept {
            Some(index) if valid_pubkey(key) && !m.host().is_empty() => ok.push(Peer {
                name: m.server_name.clone(),
                index,
                overlay: overlay_address(index),
                endpoint: match m.host().parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{WG_PORT}"),
                    _ => format!("{}:{WG_PORT}", m.host()),
                },
                pubkey: key.to_string(),
            }),
            _ => waiting.push(m.server_name.clone()),
        }
    }
    (ok, waiting)
}

/// What the mesh's filters are drawn from.
#[derive(Debug, Clone)]
pub struct Filter<'a> {
    pub bridge: &'a str,
    pub gateway: Ipv4Addr,
    /// The peers' overlay addresses (VXLAN comes only from them).
    pub peers: Vec<Ipv4Addr>,
    /// Every member's cluster address, this one's included.
    pub members: Vec<String>,
}

/// The mesh's filters, in one transaction:
/// - on the bridge: DHCP answers and the gateway's ARP stay on their
///   member (a box's own DHCP request still floods the overlay, so every
///   member learns where a box that moved is now);
/// - on the host, whatever the firewall: VXLAN only inside WireGuard from
///   a peer, and boxes never reach LXD's cluster port, WireGuard, or any
///   member's own address (their traffic out is masqueraded to this
///   member's address, which the other members let in).
pub fn render_nft(f: &Filter) -> String {
    let (gateway, br) = (f.gateway, f.bridge);
    let bridge = format!(
        r#"  chain forward {{
    type filter hook forward priority 0; policy accept;
    oifname "{VX_IF}" udp sport 67 drop
    iifname "{VX_IF}" udp sport 67 drop
    oifname "{VX_IF}" arp saddr ip {gateway} drop
    oifname "{VX_IF}" arp daddr ip {gateway} drop
    iifname "{VX_IF}" arp saddr ip {gateway} drop
    iifname "{VX_IF}" arp daddr ip {gateway} drop
  }}
  chain output {{
    type filter hook output priority 0; policy accept;
    oifname "{VX_IF}" udp sport 67 drop
    oifname "{VX_IF}" arp saddr ip {gateway} drop
  }}
  chain input {{
    type filter hook input priority 0; policy accept;
    iifname "{VX_IF}" udp dport {{ 67, 68 }} drop
    iifname "{VX_IF}" arp saddr ip {gateway} drop
    iifname "{VX_IF}" arp daddr ip {gateway} drop
  }}
"#
    );
    let set = |v: Vec<String>| format!("{{ {} }}", v.join(", "));
    let vxlan_from = if f.peers.is_empty() {
        format!("    udp dport {VXLAN_PORT} drop\n")
    } else {
        format!(
            "    udp dport {VXLAN_PORT} ip saddr != {} drop\n",
            set(f.peers.iter().map(|p| p.to_string()).collect())
        )
    };
    let v4: Vec<String> = f
        .members
        .iter()
        .filter(|m| m.parse::<Ipv4Addr>().is_ok())
        .cloned()
        .collect();
    let v6: Vec<String> = f
        .members
        .iter()
        .filter(|m| m.parse::<std::net::Ipv6Addr>().is_ok())
        .cloned()
        .collect();
    let mut to_members =
        format!("    iifname \"{br}\" ip daddr {OVERLAY_NET}/{OVERLAY_PREFIX} drop\n");
    if !v4.is_empty() {
        to_members.push_str(&format!("    iifname \"{br}\" ip daddr {} drop\n", set(v4)));
    }
    if !v6.is_empty() {
        to_members.push_str(&format!(
            "    iifname \"{br}\" ip6 daddr {} drop\n",
            set(v6)
        ));
    }
    let host = format!(
        r#"  chain input {{
    type filter hook input priority -5; policy accept;
    udp dport {VXLAN_PORT} iifname != "{WG_IF}" drop
{vxlan_from}    iifname "{br}" tcp dport {} drop
    iifname "{br}" udp dport {WG_PORT} drop
  }}
  chain forward {{
    type filter hook forward priority -5; policy accept;
{to_members}  }}
"#,
        super::firewall::LXD_PORT
    );
    let version = nft_version(&format!("{bridge}{host}"));
    format!(
        "table bridge {NFT_TABLE}\ndelete table bridge {NFT_TABLE}\ntable bridge {NFT_TABLE} {{\n  comment \"{version}\"\n{bridge}}}\n\
         table inet {NFT_HOST_TABLE}\ndelete table inet {NFT_HOST_TABLE}\ntable inet {NFT_HOST_TABLE} {{\n  comment \"{version}\"\n{host}}}\n"
    )
}

/// The loaded filters' comment: a digest of what they say, so any change
/// (a peer, a member's address) reloads them.
pub fn nft_version(rules: &str) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(rules.as_bytes());
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("terrarium mesh v3 {hex}")
}

/// The version a rendered ruleset carries.
fn version_of(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("comment \"")?.strip_suffix('"'))
}

/// From the facts to the steps that bring this member's mesh in line.
pub fn plan(f: &MeshFacts) -> Result<MeshPlan> {
    let subnet = f.subnet.ok_or_else(|| {
        Error::WrongState(format!(
            "the bridge {} has no IPv4 subnet; run `trm init` first",
            f.bridge
        ))
    })?;
    if !valid_pubkey(&f.my_pubkey) {
        return Err(Error::WrongState(format!(
            "{} does not hold a WireGuard key",
            key_path().display()
        )));
    }
    let me = f
        .members
        .iter()
        .find(|m| m.server_name == f.me)
        .ok_or_else(|| Error::WrongState(format!("'{}' is not a member of this cluster", f.me)))?;
    let index = my_index(&f.me, &f.members)?;
    let overlay = overlay_address(index);
    let host = host_address(&subnet, index);
    let (mut peers, mut waiting) = peers(&f.me, &f.members);
    // A member with this one's key (a copied config directory) is no peer.
    peers.retain(|p| {
        let other = p.pubkey != f.my_pubkey;
        if !other {
            waiting.push(p.name.clone());
        }
        other
    });
    let l = &f.links;
    let mut steps = vec![];
    if let Some(private) = &f.new_key {
        steps.push(step(
            "key",
            format!("a new WireGuard key in {}", key_path().display()),
            Op::WriteKey {
                private: private.clone(),
            },
        ));
    }

    // Published first: the other members build their peer from these.
    let index_s = index.to_string();
    for (key, value) in [
        (PUBKEY_KEY, f.my_pubkey.as_str()),
        (INDEX_KEY, index_s.as_str()),
    ] {
        if me.config.get(key).map(String::as_str) != Some(value) {
            steps.push(step(
                "publish",
                format!("{key}={value} on member {}", f.me),
                Op::MemberConfig {
                    key: key.into(),
                    value: value.into(),
                },
            ));
        }
    }
    let ranges = dhcp_ranges(&subnet)?;
    if f.dhcp_ranges != ranges {
        steps.push(step(
            "dhcp_range",
            format!(
                "{} ipv4.dhcp.ranges={ranges}: the members' host addresses stay out",
                f.bridge
            ),
            Op::NetworkConfig {
                key: "ipv4.dhcp.ranges".into(),
                value: ranges,
            },
        ));
    }

    // WireGuard.
    if !l.wg_exists {
        steps.push(step(
            "wireguard",
            format!("create {WG_IF}"),
            Op::CreateWireguard,
        ));
    }
    let key = key_path();
    let key = key.to_string_lossy();
    if !l.wg_exists || l.wg_pubkey != f.my_pubkey || l.wg_port != WG_PORT {
        steps.push(step(
            "wireguard",
            format!("{WG_IF}: this member's key, listening on UDP {WG_PORT}"),
            run(&[
                "wg",
                "set",
                WG_IF,
                "private-key",
                &key,
                "listen-port",
                &WG_PORT.to_string(),
            ]),
        ));
    }
    let cidr = format!("{overlay}/{OVERLAY_PREFIX}");
    if l.wg_addrs != [cidr.clone()] {
        steps.push(step(
            "wireguard",
            format!("{WG_IF} address {cidr}"),
            run(&["ip", "addr", "replace", &cidr, "dev", WG_IF]),
        ));
        for stale in l.wg_addrs.iter().filter(|a| **a != cidr) {
            steps.push(step(
                "wireguard",
                format!("{WG_IF}: drop {stale}"),
                run(&["ip", "addr", "del", stale, "dev", WG_IF]),
            ));
        }
    }
    if !l.wg_exists {
        steps.push(step(
            "wireguard",
            format!("{WG_IF} up"),
            run(&["ip", "link", "set", WG_IF, "up"]),
        ));
    }
    for p in &peers {
        let allowed = format!("{}/32", p.overlay);
        if l.wg_peers.get(&p.pubkey) != Some(&(p.endpoint.clone(), allowed.clone())) {
            steps.push(step(
                "peer",
                format!("{} at {} ({})", p.name, p.endpoint, p.overlay),
                run(&[
                    "wg",
                    "set",
                    WG_IF,
                    "peer",
                    &p.pubkey,
                    "endpoint",
                    &p.endpoint,
                    "allowed-ips",
                    &allowed,
                    "persistent-keepalive",
                    "25",
                ]),
            ));
        }
    }
    for stale in l
        .wg_peers
        .keys()
        .filter(|k| !peers.iter().any(|p| &p.pubkey == *k))
    {
        steps.push(step(
            "peer",
            format!(
                "remove a peer no member publishes ({}...)",
                &stale[..8.min(stale.len())]
            ),
            run(&["wg", "set", WG_IF, "peer", stale, "remove"]),
        ));
    }

    // The VXLAN over WireGuard, in the bridge.
    let local = overlay.to_string();
    let want_vx = (VXLAN_ID, local.clone(), f.bridge.clone());
    match &l.vxlan {
        Some(v) if *v == want_vx => {}
        Some((id, loc, _)) if *id == VXLAN_ID && *loc == local => steps.push(step(
            "vxlan",
            format!("{VX_IF} into {}", f.bridge),
            run(&["ip", "link", "set", VX_IF, "master", &f.bridge, "up"]),
        )),
        other => {
            if other.is_some() {
                steps.push(step(
                    "vxlan",
                    format!("{VX_IF}: recreate"),
                    run(&["ip", "link", "del", VX_IF]),
                ));
            }
            steps.push(step(
                "vxlan",
                format!("{VX_IF}: VXLAN {VXLAN_ID} from {local}, inside WireGuard only"),
                run(&[
                    "ip",
                    "link",
                    "add",
                    VX_IF,
                    "type",
                    "vxlan",
                    "id",
                    &VXLAN_ID.to_string(),
                    "local",
                    &local,
                    "dstport",
                    &VXLAN_PORT.to_string(),
                ]),
            ));
            steps.push(step(
                "vxlan",
                format!("{VX_IF} into {}", f.bridge),
                run(&["ip", "link", "set", VX_IF, "master", &f.bridge, "up"]),
            ));
        }
    }
    let fresh_vx = !matches!(&l.vxlan, Some((id, loc, _)) if *id == VXLAN_ID && *loc == local);
    for p in &peers {
        let dst = p.overlay.to_string();
        if fresh_vx || !l.flood.contains(&dst) {
            steps.push(step(
                "vxlan",
                format!("flood to {} ({dst})", p.name),
                run(&[
                    "bridge",
                    "fdb",
                    "append",
                    "00:00:00:00:00:00",
                    "dev",
                    VX_IF,
                    "dst",
                    &dst,
                ]),
            ));
        }
    }
    if !fresh_vx {
        for stale in l
            .flood
            .iter()
            .filter(|d| !peers.iter().any(|p| p.overlay.to_string() == **d))
        {
            steps.push(step(
                "vxlan",
                format!("stop flooding to {stale}"),
                run(&[
                    "bridge",
                    "fdb",
                    "del",
                    "00:00:00:00:00:00",
                    "dev",
                    VX_IF,
                    "dst",
                    stale,
                ]),
            ));
        }
    }

    // The bridge: a MAC and a source address of this member's own.
    let mac = bridge_mac(index);
    if !l.bridge_mac.eq_ignore_ascii_case(&mac) {
        steps.push(step(
            "bridge",
            format!("{} MAC {mac} (LXD gives every member the same)", f.bridge),
            run(&["ip", "link", "set", &f.bridge, "address", &mac]),
        ));
    }
    let host_cidr = format!("{host}/{}", subnet.prefix);
    if !l.bridge_addrs.contains(&host_cidr) {
        steps.push(step(
            "bridge",
            format!("{} host address {host_cidr}", f.bridge),
            run(&["ip", "addr", "add", &host_cidr, "dev", &f.bridge]),
        ));
    }
    if l.route_src != host.to_string() {
        let net = format!("{}/{}", Ipv4Addr::from(subnet.network()), subnet.prefix);
        steps.push(step(
            "bridge",
            format!("{net} from {host}: replies from containers on any member come back here"),
            run(&[
                "ip",
                "route",
                "replace",
                &net,
                "dev",
                &f.bridge,
                "proto",
                "kernel",
                "scope",
                "link",
                "src",
                &host.to_string(),
            ]),
        ));
    }
    // The address of an index this member held before renumbering; after
    // the route's source moved, or the kernel drops the route with it.
    for stale in l.bridge_addrs.iter().filter(|a| {
        **a != host_cidr
            && a.split('/')
                .next()
                .and_then(|ip| ip.parse::<Ipv4Addr>().ok())
                .is_some_and(|ip| ip != subnet.addr && is_host_address(&subnet, ip))
    }) {
        steps.push(step(
            "bridge",
            format!("{}: drop {stale}, a former host address", f.bridge),
            run(&["ip", "addr", "del", stale, "dev", &f.bridge]),
        ));
    }
    let rules = render_nft(&Filter {
        bridge: &f.bridge,
        gateway: subnet.addr,
        peers: peers.iter().map(|p| p.overlay).collect(),
        members: f
            .members
            .iter()
            .map(|m| m.host().to_string())
            .filter(|h| !h.is_empty())
            .collect(),
    });
    if l.nft.as_deref() != version_of(&rules) {
        steps.push(step(
            "filter",
            format!(
                "filters {NFT_TABLE} and {NFT_HOST_TABLE}: DHCP and gateway ARP stay on this member, VXLAN only inside WireGuard, boxes never reach a member"
            ),
            Op::Run {
                argv: vec!["nft".into(), "-f".into(), "-".into()],
                stdin: Some(rules),
            },
        ));
    }

    // The firewall, where there is one: the members' ports, to members only.
    if let Some(added) = &f.ufw_added {
        let others: Vec<(String, String)> = f
            .members
            .iter()
            .filter(|m| m.server_name != f.me && !m.host().is_empty())
            .map(|m| (m.server_name.clone(), m.host().to_string()))
            .collect();
        let want = super::firewall::desired(&f.bridge, &others, &peers);
        let (add, del) = super::firewall::diff(&want, added, &f.pending);
        for r in add {
            steps.push(step(
                "firewall",
                format!("ufw {}", r.line()),
                Op::Ufw { args: r.args },
            ));
        }
        for line in del {
            steps.push(step(
                "firewall",
                format!("ufw delete {line}"),
                Op::Ufw {
                    args: crate::harden::firewall::delete_args(&line),
                },
            ));
        }
    }

    let peer_views = peers
        .iter()
        .map(|p| PeerView {
            name: p.name.clone(),
            overlay: p.overlay,
            endpoint: p.endpoint.clone(),
            handshake_age_s: None,
        })
        .collect();
    Ok(MeshPlan {
        member: f.me.clone(),
        index,
        overlay,
        host_address: host,
        peers: peer_views,
        waiting,
        steps,
        dry_run: false,
        changed: false,
    })
}

// ---- reading and applying (the host) ----

fn tool(name: &str) -> Result<PathBuf> {
    find(
        name,
        match name {
            "wg" => "install it with `apt-get install wireguard-tools`",
            "wireguard-go" => {
                "install it with `apt-get install wireguard-go` (no WireGuard in this kernel)"
            }
            "nft" => "install it with `apt-get install nftables`",
            _ => "install it with `apt-get install iproute2`",
        },
    )
}

fn cmd(argv: &[&str]) -> Result<Cmd> {
    Ok(Cmd::new(tool(argv[0])?).args(&argv[1..]))
}

/// A command's JSON answer, or None when it fails (a device not there).
fn json_of(argv: &[&str]) -> Result<Option<serde_json::Value>> {
    let out = cmd(argv)?.output()?;
    if !out.status.success() {
        return Ok(None);
    }
    Ok(serde_json::from_slice(&out.stdout).ok())
}

fn addrs(dev: &str) -> Result<Vec<String>> {
    let v = json_of(&["ip", "-j", "addr", "show", "dev", dev])?.unwrap_or_default();
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["family"] == "inet")
        .filter_map(|a| {
            Some(format!(
                "{}/{}",
                a["local"].as_str()?,
                a["prefixlen"].as_u64()?
            ))
        })
        .collect())
}

pub fn read_links(bridge: &str, subnet: Option<&Subnet>) -> Result<Links> {
    let mut l = Links::default();
    let dump = cmd(&["wg", "show", WG_IF, "dump"])?.output()?;
    if dump.status.success() {
        l.wg_exists = true;
        let text = String::from_utf8_lossy(&dump.stdout).into_owned();
        let mut lines = text.lines();
        if let Some(first) = lines.next() {
            let f: Vec<&str> = first.split('\t').collect();
            l.wg_pubkey = f.get(1).unwrap_or(&"").to_string();
            l.wg_port = f.get(2).and_then(|p| p.parse().ok()).unwrap_or(0);
        }
        for line in lines {
            let f: Vec<&str> = line.split('\t').collect();
            if f.len() >= 5 {
                l.wg_peers.insert(f[0].into(), (f[2].into(), f[3].into()));
                l.handshakes.insert(f[0].into(), f[4].parse().unwrap_or(0));
            }
        }
        l.wg_addrs = addrs(WG_IF)?;
    }
    if let Some(v) = json_of(&["ip", "-j", "-d", "link", "show", VX_IF])? {
        let d = &v[0];
        let info = &d["linkinfo"]["info_data"];
        l.vxlan = Some((
            info["id"].as_u64().unwrap_or(0) as u32,
            info["local"].as_str().unwrap_or("").to_string(),
            d["master"].as_str().unwrap_or("").to_string(),
        ));
        let fdb = json_of(&["bridge", "-j", "fdb", "show", "dev", VX_IF])?.unwrap_or_default();
        l.flood = fdb
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["mac"] == "00:00:00:00:00:00")
            .filter_map(|e| e["dst"].as_str().map(String::from))
            .collect();
    }
    if let Some(v) = json_of(&["ip", "-j", "link", "show", bridge])? {
        l.bridge_mac = v[0]["address"].as_str().unwrap_or("").to_string();
    }
    l.bridge_addrs = addrs(bridge)?;
    if let Some(s) = subnet {
        let net = format!("{}/{}", Ipv4Addr::from(s.network()), s.prefix);
        if let Some(v) = json_of(&["ip", "-j", "route", "show", &net, "dev", bridge])? {
            l.route_src = v[0]["prefsrc"].as_str().unwrap_or("").to_string();
        }
    }
    // nft 1.0.6 leaves a table's comment out of its JSON: read the text.
    let nft = cmd(&["nft", "list", "table", "bridge", NFT_TABLE])?.output()?;
    if nft.status.success() {
        l.nft = String::from_utf8_lossy(&nft.stdout)
            .lines()
            .find_map(|line| {
                let c = line.trim().strip_prefix("comment \"")?;
                Some(c.strip_suffix('"')?.to_string())
            });
    }
    Ok(l)
}

/// A WireGuard private key: written to its file, never shown (`{:?}`
/// prints no key, and no plan serializes it).
#[derive(Clone, PartialEq)]
pub struct PrivateKey(pub String);

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrivateKey(hidden)")
    }
}

/// This member's public key, and a private key made now when none is on
/// disk yet (the plan writes it, so a dry run leaves none behind).
pub fn read_key() -> Result<(String, Option<PrivateKey>)> {
    let path = key_path();
    let (private, new) = match std::fs::read_to_string(&path) {
        Ok(k) => (k, None),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(Error::io(format!("reading {}", path.display()), e))
        }
        Err(_) => {
            let k = cmd(&["wg", "genkey"])?.run()?.stdout_str();
            (k.clone(), Some(PrivateKey(k)))
        }
    };
    let out = cmd(&["wg", "pubkey"])?
        .stdin_bytes(private.trim().to_string())
        .run()?;
    Ok((out.stdout_str().trim().to_string(), new))
}

/// Read this member, its cluster and its links.
pub fn read(lxd: &Lxd, bridge: &str) -> Result<MeshFacts> {
    // The mesh is this host's links: planned against another server's
    // cluster view, it would wire this host as that member.
    if !lxd.is_local()? {
        return Err(Error::WrongState(
            "`trm cluster mesh` runs on a member, against its own LXD (the client's remote is not `local`)".into(),
        ));
    }
    let cluster = lxd.cluster()?;
    if !cluster.enabled {
        return Err(Error::WrongState(
            "this server is not a cluster member; `trm cluster init` or `join` first".into(),
        ));
    }
    let net = lxd
        .networks()?
        .into_iter()
        .find(|n| n.name == bridge)
        .ok_or_else(|| Error::NotFound {
            kind: "network",
            name: bridge.into(),
        })?;
    let subnet = net
        .config
        .get("ipv4.address")
        .and_then(|a| Subnet::parse(a).ok());
    let ufw = super::member_ufw()?;
    let ufw_added = match &ufw {
        Some(u) => Some(u.added()?),
        None => None,
    };
    let ufw = ufw.unwrap_or_default();
    let (my_pubkey, new_key) = read_key()?;
    Ok(MeshFacts {
        me: cluster.server_name,
        my_pubkey,
        new_key,
        members: lxd.cluster_members()?,
        bridge: bridge.into(),
        dhcp_ranges: net
            .config
            .get("ipv4.dhcp.ranges")
            .cloned()
            .unwrap_or_default(),
        links: read_links(bridge, subnet.as_ref())?,
        subnet,
        ufw_added,
        pending: lxd
            .join_tokens()?
            .iter()
            .map(|t| t.server_name().to_string())
            .collect(),
        ufw,
    })
}

pub fn apply(lxd: &Lxd, facts: &MeshFacts, mut plan: MeshPlan) -> Result<MeshPlan> {
    for s in &plan.steps {
        match &s.op {
            Op::CreateWireguard => {
                let kernel = cmd(&["ip", "link", "add", WG_IF, "type", "wireguard"])?.output()?;
                if !kernel.status.success() {
                    // It detaches itself, its output on /dev/null.
                    cmd(&["wireguard-go", WG_IF])?.run()?;
                }
            }
            Op::Run { argv, stdin } => {
                let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
                let mut c = cmd(&argv)?;
                if let Some(text) = stdin {
                    c = c.stdin_bytes(text.clone());
                }
                c.run()?;
            }
            Op::WriteKey { private } => {
                crate::fs::atomic_write(&key_path(), private.0.as_bytes(), 0o600)?
            }
            Op::MemberConfig { key, value } => lxd.set_member_config(&facts.me, key, value)?,
            Op::Ufw { args } => drop(facts.ufw.run(args)?),
            Op::NetworkConfig { key, value } => lxd.patch_network(
                &facts.bridge,
                &[(key.clone(), value.clone())].into_iter().collect(),
            )?,
        }
    }
    plan.changed = !plan.steps.is_empty();
    Ok(plan)
}

/// Read, plan and (unless `dry_run`) apply, one run at a time; the report
/// carries each peer's handshake as it is afterwards.
pub fn converge(lxd: &Lxd, dry_run: bool) -> Result<MeshPlan> {
    let _lock = crate::fs::Lock::acquire(crate::fs::Resource::Mesh, crate::fs::lock_wait())?;
    let settings = crate::settings::Settings::load_or_default()?;
    let bridge = settings.bridge.as_str();
    let facts = read(lxd, bridge)?;
    let mut planned = plan(&facts)?;
    planned.dry_run = dry_run;
    if !dry_run {
        planned = apply(lxd, &facts, planned)?;
        // Not a change to plan: what `trm status` on any member reads.
        super::heartbeat::publish(lxd, &facts.me, &settings.project)?;
    }
    let links = read_links(bridge, facts.subnet.as_ref())?;
    let facts = MeshFacts { links, ..facts };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Ok(with_handshakes(planned, &facts, now))
}

/// The timer that keeps the mesh in line: at boot (LXD resets the
/// bridge, the WireGuard device is gone) and every minute (a member that
/// joined or left).
pub fn units(binary: &std::path::Path) -> Vec<crate::systemd::Unit> {
    let bin = binary.display();
    vec![
        crate::systemd::Unit {
            name: "trm-cluster-mesh.service".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium cluster mesh: WireGuard and VXLAN between the members\nAfter=lxd.service lxd-containers.service network-online.target\n\n[Service]\nType=oneshot\n# wireguard-go, where it is started, outlives this run.\nKillMode=process\nExecStart={bin} cluster mesh --format json\n"
            ),
            enable: false,
        },
        crate::systemd::Unit {
            name: "trm-cluster-mesh.timer".into(),
            content: "[Unit]\nDescription=Terrarium cluster mesh, at boot and every minute\n\n[Timer]\nOnBootSec=20s\nOnUnitActiveSec=60s\n\n[Install]\nWantedBy=timers.target\n".into(),
            enable: true,
        },
    ]
}

/// The plan with each peer's handshake age, as of `now` (seconds).
pub fn with_handshakes(mut plan: MeshPlan, facts: &MeshFacts, now: u64) -> MeshPlan {
    let (peers, _) = peers(&facts.me, &facts.members);
    for v in &mut plan.peers {
        if let Some(p) = peers.iter().find(|p| p.name == v.name) {
            v.handshake_age_s = facts
                .links
                .handshakes
                .get(&p.pubkey)
                .filter(|t| **t > 0)
                .map(|t| now.saturating_sub(*t));
        }
    }
    plan
}

impl Human for MeshPlan {
    fn human(&self) -> String {
        let mut lines = vec![format!(
            "mesh on {} (#{}, {} / host {})",
            self.member, self.index, self.overlay, self.host_address
        )];
        if self.steps.is_empty() {
            lines.push("  in line: nothing to do".into());
        } else {
            let tense = if self.changed { "did" } else { "would" };
            lines.push(format!("  {tense}:"));
            lines.extend(
                self.steps
                    .iter()
                    .map(|s| format!("    {:<10} {}", s.what, s.detail)),
            );
        }
        for p in &self.peers {
            let hs = p
                .handshake_age_s
                .map_or("no handshake yet".into(), |s| format!("handshake {s}s ago"));
            lines.push(format!(
                "  peer {:<12} {:<16} {:<22} {hs}",
                p.name, p.overlay, p.endpoint
            ));
        }
        if !self.waiting.is_empty() {
            lines.push(format!("  waiting for: {}", self.waiting.join(", ")));
        }
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "SXkWw9ZYOoj97DWB2f18yRQVbn03K2vWL1PbZHFovzM=";
    const K2: &str = "Cf5jMXsOqinn57TjAPhncTqhZKqtpNOf++bjCirO1xw=";

    fn member(name: &str, n: u8, config: &[(&str, &str)]) -> Member {
        Member {
            server_name: name.into(),
            url: format!("https://10.9.0.{n}:8443"),
            roles: vec![],
            status: "Online".into(),
            message: String::new(),
            architecture: String::new(),
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn facts() -> MeshFacts {
        MeshFacts {
            me: "m1".into(),
            my_pubkey: K1.into(),
            members: vec![
                member("m1", 11, &[]),
                member("m2", 12, &[(PUBKEY_KEY, K2), (INDEX_KEY, "2")]),
                member("m3", 13, &[(PUBKEY_KEY, "not a key"), (INDEX_KEY, "3")]),
            ],
            bridge: "trmbr0".into(),
            subnet: Some(Subnet::parse("10.100.0.1/24").unwrap()),
            dhcp_ranges: String::new(),
            links: Links::default(),
            ufw_added: None,
            pending: vec![],
            ufw: Default::default(),
            new_key: None,
        }
    }

    #[test]
    fn indexes_are_kept_unless_a_member_sorting_first_claims_them() {
        let ms = vec![
            member("a", 1, &[(INDEX_KEY, "1")]),
            member("b", 2, &[(INDEX_KEY, "1")]),
        ];
        assert_eq!(my_index("a", &ms).unwrap(), 1);
        assert_eq!(my_index("b", &ms).unwrap(), 2);
        let ms = vec![member("a", 1, &[(INDEX_KEY, "99")]), member("b", 2, &[])];
        assert_eq!(
            my_index("a", &ms).unwrap(),
            1,
            "an index out of range is not kept"
        );
    }

    #[test]
    fn host_addresses_sit_above_the_dhcp_range() {
        let s = Subnet::parse("10.100.0.1/24").unwrap();
        assert_eq!(host_address(&s, 1), Ipv4Addr::new(10, 100, 0, 254));
        assert_eq!(
            host_address(&s, MAX_MEMBERS),
            Ipv4Addr::new(10, 100, 0, 223)
        );
        assert_eq!(dhcp_ranges(&s).unwrap(), "10.100.0.2-10.100.0.222");
        assert!(dhcp_ranges(&Subnet::parse("10.100.0.1/27").unwrap()).is_err());
        assert_eq!(bridge_mac(3), "02:74:72:6d:00:03");
    }

    #[test]
    fn only_members_with_a_valid_key_and_index_are_peers() {
        let (peers, waiting) = peers("m1", &facts().members);
        assert_eq!(peers.len(), 1);
        assert_eq!(peers[0].endpoint, "10.9.0.12:51820");
        assert_eq!(peers[0].overlay, Ipv4Addr::new(172, 31, 254, 2));
        assert_eq!(waiting, vec!["m3"]);
        assert!(valid_pubkey(K1) && !valid_pubkey("abc") && !valid_pubkey(&"A".repeat(44)));
    }

    #[test]
    fn a_fresh_member_gets_the_whole_mesh_and_one_in_line_gets_nothing() {
        let f = facts();
        let plan = plan(&f).unwrap();
        assert_eq!(plan.index, 1);
        let whats: Vec<&str> = plan.steps.iter().map(|s| s.what.as_str()).collect();
        for w in [
            "publish",
            "dhcp_range",
            "wireguard",
            "peer",
            "vxlan",
            "bridge",
            "filter",
        ] {
            assert!(whats.contains(&w), "{w} missing from {whats:?}");
        }
        assert!(plan.steps.iter().any(|s| s.op == Op::CreateWireguard));
        // The same facts once applied: nothing to do.
        let mut done = f.clone();
        done.members[0].config = [(PUBKEY_KEY, K1), (INDEX_KEY, "1")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        done.dhcp_ranges = "10.100.0.2-10.100.0.222".into();
        done.links = Links {
            wg_exists: true,
            wg_pubkey: K1.into(),
            wg_port: WG_PORT,
            wg_peers: [(
                K2.to_string(),
                ("10.9.0.12:51820".to_string(), "172.31.254.2/32".to_string()),
            )]
            .into_iter()
            .collect(),
            handshakes: Default::default(),
            wg_addrs: vec!["172.31.254.1/24".into()],
            vxlan: Some((VXLAN_ID, "172.31.254.1".into(), "trmbr0".into())),
            flood: vec!["172.31.254.2".into()],
            bridge_mac: "02:74:72:6d:00:01".into(),
            bridge_addrs: vec!["10.100.0.1/24".into(), "10.100.0.254/24".into()],
            route_src: "10.100.0.254".into(),
            nft: version_of(&render_nft(&Filter {
                bridge: "trmbr0",
                gateway: Ipv4Addr::new(10, 100, 0, 1),
                peers: vec![Ipv4Addr::new(172, 31, 254, 2)],
                members: vec!["10.9.0.11".into(), "10.9.0.12".into(), "10.9.0.13".into()],
            }))
            .map(String::from),
        };
        assert_eq!(plan_steps(&done), Vec::<String>::new());
        // A peer gone from the cluster is removed, and no longer flooded to.
        done.members.truncate(1);
        let left = plan_steps(&done);
        assert!(
            left.iter().any(|s| s.starts_with("peer remove")),
            "{left:?}"
        );
        assert!(
            left.iter()
                .any(|s| s.contains("stop flooding to 172.31.254.2")),
            "{left:?}"
        );
    }

    #[test]
    fn a_key_or_index_published_twice_makes_one_peer() {
        let ms = vec![
            member("m1", 11, &[]),
            member("m2", 12, &[(PUBKEY_KEY, K2), (INDEX_KEY, "2")]),
            // Claims m2's index: m2 sorts first, so m4 renumbers and waits.
            member("m4", 14, &[(PUBKEY_KEY, K1), (INDEX_KEY, "2")]),
            // m2's key under another index: one peer per key.
            member("m5", 15, &[(PUBKEY_KEY, K2), (INDEX_KEY, "5")]),
        ];
        let (peers, waiting) = peers("m1", &ms);
        let names: Vec<&str> = peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, vec!["m2"]);
        assert_eq!(waiting, vec!["m4", "m5"]);
    }

    #[test]
    fn a_fresh_member_writes_the_key_it_publishes_first() {
        let mut f = facts();
        f.new_key = Some(PrivateKey("private".into()));
        let plan = plan(&f).unwrap();
        assert_eq!(
            plan.steps[0].op,
            Op::WriteKey {
                private: PrivateKey("private".into())
            }
        );
        assert!(!format!("{plan:?}").contains("\"private\""), "nor debugged");
        assert!(plan.steps[1].detail.contains(K1), "{:?}", plan.steps[1]);
        assert!(
            !serde_json::to_string(&plan).unwrap().contains("private\""),
            "the private key is never printed"
        );
    }

    #[test]
    fn a_renumbered_member_drops_its_former_host_address() {
        let mut f = facts();
        f.links.bridge_addrs = vec!["10.100.0.1/24".into(), "10.100.0.252/24".into()];
        f.links.route_src = "10.100.0.252".into();
        let steps = plan_steps(&f);
        let drop = steps
            .iter()
            .position(|s| s.contains("drop 10.100.0.252/24"));
        let route = steps.iter().position(|s| s.contains("from 10.100.0.254"));
        assert!(drop.is_some() && route.is_some(), "{steps:?}");
        assert!(
            route < drop,
            "the route moves before its source goes: {steps:?}"
        );
        assert!(!steps.iter().any(|s| s.contains("drop 10.100.0.1/24")));
        // A gateway set high in the subnet is never taken for one.
        f.subnet = Some(Subnet::parse("10.100.0.240/24").unwrap());
        f.links.bridge_addrs = vec!["10.100.0.240/24".into()];
        assert!(!plan_steps(&f).iter().any(|s| s.contains("drop")));
    }

    fn plan_steps(f: &MeshFacts) -> Vec<String> {
        plan(f)
            .unwrap()
            .steps
            .iter()
            .map(|s| format!("{} {}", s.what, s.detail))
            .collect()
    }

    #[test]
    fn the_filter_keeps_dhcp_and_gateway_arp_off_the_overlay() {
        let f = Filter {
            bridge: "trmbr0",
            gateway: Ipv4Addr::new(10, 100, 0, 1),
            peers: vec![Ipv4Addr::new(172, 31, 254, 2)],
            members: vec!["10.9.0.11".into(), "fd00::12".into()],
        };
        let text = render_nft(&f);
        assert!(text.contains(r#"oifname "trmvx0" arp daddr ip 10.100.0.1 drop"#));
        assert!(text.contains(r#"iifname "trmvx0" udp dport { 67, 68 } drop"#));
        assert!(text.contains(r#"oifname "trmvx0" udp sport 67 drop"#));
        // VXLAN only inside WireGuard, from a peer, whatever the firewall.
        assert!(text.contains(r#"udp dport 4789 iifname != "trmwg0" drop"#));
        assert!(text.contains("udp dport 4789 ip saddr != { 172.31.254.2 } drop"));
        // Boxes reach no member's LXD, WireGuard or address.
        assert!(text.contains(r#"iifname "trmbr0" tcp dport 8443 drop"#));
        assert!(text.contains(r#"iifname "trmbr0" ip daddr { 10.9.0.11 } drop"#));
        assert!(text.contains(r#"iifname "trmbr0" ip6 daddr { fd00::12 } drop"#));
        assert!(text.contains(r#"iifname "trmbr0" ip daddr 172.31.254.0/24 drop"#));
        // Another member's address changes the version: it is reloaded.
        let v = version_of(&text).unwrap().to_string();
        let other = render_nft(&Filter {
            members: vec!["10.9.0.99".into()],
            ..f.clone()
        });
        assert_ne!(version_of(&other), Some(v.as_str()));
        assert!(render_nft(&Filter { peers: vec![], ..f }).contains("    udp dport 4789 drop\n"));
        // Loaded in one transaction: the old table goes with the new one in.
        assert!(
            text.starts_with("table bridge terrarium_mesh\ndelete table bridge terrarium_mesh\n")
        );
    }
}
