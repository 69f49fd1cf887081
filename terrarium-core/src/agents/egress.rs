//! An agent box's egress policy, and the LXD network ACL that enforces it
//! on the host side of the box's own bridge, where root inside the box
//! cannot undo it.
//!
//! What LXD 5.0's bridge ACLs can and cannot express (nftables here):
//! - rules match destination CIDRs, protocol and ports; they cannot be
//!   ordered: LXD applies every `drop`, then every `reject`, then every
//!   `allow`, then the default action. So an `allow` never punches a hole
//!   in a `reject`: the `public` policy is "reject the private ranges,
//!   allow the rest by default", never "allow DNS, reject the rest";
//! - the bridge's own DHCP, DNS and ICMPv6 service rules come before any
//!   ACL and cannot be blocked: a box with `--egress none` still gets an
//!   address and asks the host's resolver, which forwards upstream, so
//!   DNS stays a (narrow) channel out even then;
//! - bridge ACLs filter only between the bridge and the host; they cannot
//!   filter between boxes on one bridge, and a NIC-level ACL is refused on
//!   a bridged NIC. Hence one bridge per agent box: its policy is its own,
//!   and no box shares a link with another;
//! - no DNS names, only addresses: an allow-list of names is not possible.
//!
//! Planning is pure: [`acl`] turns a policy and the host's addresses into
//! the ACL's rules, tested from tables below.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// What a box may reach, besides its bridge's DHCP and DNS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "policy", content = "allow")]
pub enum Egress {
    /// The public internet; no private, CGNAT, link-local (cloud metadata)
    /// or loopback range, and none of the host's own addresses.
    Public,
    /// Nothing.
    None,
    /// Only these destinations.
    AllowList(Vec<Allow>),
}

/// One allowed destination: a network, optionally one TCP/UDP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allow {
    pub net: IpNet,
    pub port: Option<u16>,
}

impl std::fmt::Display for Allow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.port, self.net) {
            (None, n) => write!(f, "{n}"),
            (Some(p), IpNet::V4(n)) => write!(f, "{n}:{p}"),
            (Some(p), IpNet::V6(n)) => write!(f, "[{n}]:{p}"),
        }
    }
}

/// Ranges no `public` box reaches: RFC 1918, CGNAT, link-local (every
/// cloud's metadata service), loopback, "this network", multicast and
/// broadcast (host services such as mDNS), reserved and benchmarking
/// ranges, and the IPv6 equivalents, with the NAT64 and 6to4 prefixes
/// that lead back into IPv4.
pub const DENIED: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "127.0.0.0/8",
    "0.0.0.0/8",
    "192.0.0.0/24",
    "198.18.0.0/15",
    "224.0.0.0/4",
    "240.0.0.0/4",
    "255.255.255.255/32",
    "fc00::/7",
    "fe80::/10",
    "::1/128",
    "ff00::/8",
    "64:ff9b::/96",
    "2002::/16",
];

/// What even an allow-list never opens: the metadata service and the
/// host itself (rejects win over allows in LXD, so a wide `--allow`
/// cannot reach them).
pub const ALWAYS_DENIED: &[&str] = &["169.254.0.0/16", "127.0.0.0/8", "fe80::/10", "::1/128"];

/// Parse `CIDR[:PORT]` (`203.0.113.0/24:443`, `[2001:db8::/32]:443`, or a
/// bare address for one host).
pub fn parse_allow(s: &str) -> Result<Allow> {
    let bad = |why: &str| Error::Usage(format!("--allow '{s}': {why}"));
    let (net, port) = if let Some(rest) = s.strip_prefix('[') {
        let (net, tail) = rest
            .split_once(']')
            .ok_or_else(|| bad("an IPv6 network in brackets needs its closing ]"))?;
        let port = match tail {
            "" => None,
            t => Some(
                t.strip_prefix(':')
                    .ok_or_else(|| bad("expected [IPV6/PREFIX]:PORT"))?,
            ),
        };
        (net, port)
    } else if s.contains("::") || s.matches(':').count() > 1 {
        (s, None)
    } else {
        match s.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        }
    };
    let net: IpNet = match net.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => net
            .parse::<IpAddr>()
            .map(IpNet::from)
            .map_err(|_| bad("expected a network like 203.0.113.0/24, or one address"))?,
    };
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(0) | Err(_) => return Err(bad("the port must be 1-65535")),
            Ok(p) => Some(p),
        },
    };
    Ok(Allow {
        net: net.trunc(),
        port,
    })
}

/// `--egress none|public|allow-list` with its `--allow` entries.
pub fn parse(egress: &str, allow: &[String]) -> Result<Egress> {
    let allow: Vec<Allow> = allow
        .iter()
        .map(|a| parse_allow(a))
        .collect::<Result<_>>()?;
    match (egress, allow.is_empty()) {
        ("public", true) => Ok(Egress::Public),
        ("none", true) => Ok(Egress::None),
        ("allow-list", false) => Ok(Egress::AllowList(allow)),
        ("allow-list", true) => Err(Error::Usage(
            "--egress allow-list needs at least one --allow CIDR[:PORT]".into(),
        )),
        ("public" | "none", false) => Err(Error::Usage(format!(
            "--allow goes with --egress allow-list, not {egress}"
        ))),
        (other, _) => Err(Error::Usage(format!(
            "--egress '{other}': expected none, public or allow-list"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Allow,
    Reject,
}

/// One rule of an LXD network ACL, as LXD's API takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub action: Action,
    /// Comma-separated CIDRs; empty for any.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub source: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub protocol: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub destination_port: String,
    pub description: String,
    pub state: &'static str,
}

fn rule(action: Action, destination: String, description: &str) -> Rule {
    Rule {
        action,
        source: String::new(),
        destination,
        protocol: String::new(),
        destination_port: String::new(),
        description: description.into(),
        state: "enabled",
    }
}

/// The ACL for one box: egress rules and default, and ingress that lets
/// only the host (Traefik, on the bridge's own address) in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Acl {
    pub egress: Vec<Rule>,
    pub ingress: Vec<Rule>,
    pub default_egress: Action,
    pub default_ingress: Action,
}

/// The ACL enforcing `policy` for a box whose bridge address is
/// `gateway`, on a host with `host_addresses` (every interface's).
pub fn acl(policy: &Egress, gateway: IpAddr, host_addresses: &[IpAddr]) -> Acl {
    let mut own: Vec<String> = host_addresses
        .iter()
        .chain(std::iter::once(&gateway))
        .map(|a| IpNet::from(*a).to_string())
        .collect();
    own.sort();
    own.dedup();
    let host = rule(
        Action::Reject,
        own.join(","),
        "the host's own addresses (its bridge's DHCP and DNS stay open)",
    );
    let mut egress = Vec::new();
    let default_egress = match policy {
        Egress::Public => {
            egress.push(rule(
                Action::Reject,
                DENIED.join(","),
                "private, CGNAT, link-local (metadata), loopback, multicast and reserved ranges",
            ));
            egress.push(host);
            Action::Allow
        }
        Egress::None => Action::Reject,
        Egress::AllowList(list) => {
            egress.push(rule(
                Action::Reject,
                ALWAYS_DENIED.join(","),
                "link-local (metadata) and loopback, whatever is allowed",
            ));
            egress.push(host);
            for a in list {
                match a.port {
                    None => egress.push(rule(Action::Allow, a.net.to_string(), "allowed")),
                    Some(p) => {
                        for proto in ["tcp", "udp"] {
                            let mut r = rule(Action::Allow, a.net.to_string(), "allowed");
                            r.protocol = proto.into();
                            r.destination_port = p.to_string();
                            egress.push(r);
                        }
                    }
                }
            }
            Action::Reject
        }
    };
    let mut from_host = rule(
        Action::Allow,
        String::new(),
        "the host (Traefik) may connect in",
    );
    from_host.source = IpNet::from(gateway).to_string();
    Acl {
        egress,
        ingress: vec![from_host],
        default_egress,
        default_ingress: Action::Reject,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allow_entries_parse_with_and_without_ports() {
        for (input, net, port) in [
            ("203.0.113.0/24", "203.0.113.0/24", None),
            ("203.0.113.7:443", "203.0.113.7/32", Some(443)),
            ("203.0.113.9/24:8080", "203.0.113.0/24", Some(8080)),
            ("2001:db8::/32", "2001:db8::/32", None),
            ("[2001:db8::/32]:443", "2001:db8::/32", Some(443)),
            ("2001:db8::1", "2001:db8::1/128", None),
        ] {
            let a = parse_allow(input).unwrap();
            assert_eq!((a.net.to_string().as_str(), a.port), (net, port), "{input}");
        }
        for bad in [
            "example.com",
            "203.0.113.0/33",
            "203.0.113.0/24:0",
            "203.0.113.0/24:http",
            "[2001:db8::/32",
            "[2001:db8::/32]443",
            "",
        ] {
            let e = parse_allow(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::USAGE, "{bad}");
            assert!(e.to_string().contains(bad), "{e}");
        }
    }

    #[test]
    fn egress_choices_and_their_refusals() {
        assert_eq!(parse("public", &[]).unwrap(), Egress::Public);
        assert_eq!(parse("none", &[]).unwrap(), Egress::None);
        let list = parse("allow-list", &["203.0.113.0/24:443".into()]).unwrap();
        assert_eq!(
            list,
            Egress::AllowList(vec![parse_allow("203.0.113.0/24:443").unwrap()])
        );
        for (egress, allow, says) in [
            ("allow-list", vec![], "needs at least one --allow"),
            ("public", vec!["203.0.113.0/24".to_string()], "not public"),
            ("open", vec![], "expected none, public or allow-list"),
        ] {
            let e = parse(egress, &allow).unwrap_err().to_string();
            assert!(e.contains(says), "{egress}: {e}");
        }
    }

    #[test]
    fn public_rejects_every_private_range_and_the_host_and_allows_the_rest() {
        let gw = ip("10.99.0.1");
        let a = acl(
            &Egress::Public,
            gw,
            &[ip("192.0.2.10"), ip("10.99.0.1"), ip("2001:db8::5")],
        );
        assert_eq!(a.default_egress, Action::Allow);
        assert!(a.egress.iter().all(|r| r.action == Action::Reject));
        let denied: Vec<&str> = a
            .egress
            .iter()
            .flat_map(|r| r.destination.split(','))
            .collect();
        for must in [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "fc00::/7",
            "fe80::/10",
            "192.0.2.10/32",
            "10.99.0.1/32",
            "2001:db8::5/128",
        ] {
            assert!(denied.contains(&must), "{must} not denied: {denied:?}");
        }
        assert_eq!(
            denied.iter().filter(|d| **d == "10.99.0.1/32").count(),
            1,
            "the gateway once"
        );
        // Only the host comes in.
        assert_eq!(a.default_ingress, Action::Reject);
        assert_eq!(a.ingress.len(), 1);
        assert_eq!(a.ingress[0].source, "10.99.0.1/32");
        assert_eq!(a.ingress[0].action, Action::Allow);
    }

    #[test]
    fn none_allows_nothing_and_an_allow_list_only_its_entries() {
        let gw = ip("10.99.0.1");
        let none = acl(&Egress::None, gw, &[]);
        assert!(none.egress.is_empty());
        assert_eq!(none.default_egress, Action::Reject);

        let list = parse(
            "allow-list",
            &["203.0.113.0/24".into(), "198.51.100.7:443".into()],
        )
        .unwrap();
        let a = acl(&list, gw, &[]);
        assert_eq!(a.default_egress, Action::Reject);
        // Even a wide allow never reaches the metadata service or the host.
        let rejected: Vec<&str> = a
            .egress
            .iter()
            .filter(|r| r.action == Action::Reject)
            .flat_map(|r| r.destination.split(','))
            .collect();
        assert!(
            rejected.contains(&"169.254.0.0/16") && rejected.contains(&"10.99.0.1/32"),
            "{rejected:?}"
        );
        let rules: Vec<(Action, &str, &str, &str)> = a
            .egress
            .iter()
            .filter(|r| r.action == Action::Allow)
            .map(|r| {
                (
                    r.action,
                    r.destination.as_str(),
                    r.protocol.as_str(),
                    r.destination_port.as_str(),
                )
            })
            .collect();
        assert_eq!(
            rules,
            vec![
                (Action::Allow, "203.0.113.0/24", "", ""),
                (Action::Allow, "198.51.100.7/32", "tcp", "443"),
                (Action::Allow, "198.51.100.7/32", "udp", "443"),
            ]
        );
    }

    #[test]
    fn rules_serialize_as_lxd_takes_them() {
        let a = acl(&Egress::None, ip("10.99.0.1"), &[]);
        let v = serde_json::to_value(&a.ingress[0]).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "action": "allow", "source": "10.99.0.1/32",
                "description": "the host (Traefik) may connect in", "state": "enabled"
            })
        );
    }
}
