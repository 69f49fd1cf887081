//! The members' firewall, through ufw: LXD's cluster port and the mesh's
//! ports open to the other members' addresses only, and closed again when
//! a member leaves. Rules are owned by their comment (`terrarium-cluster
//! MEMBER ...`), so re-applying is a no-op and nobody else's rule is
//! touched.

use super::mesh::{Peer, VXLAN_PORT, WG_IF, WG_PORT};

pub const TAG: &str = "terrarium-cluster";
/// LXD's cluster port (members' `cluster.https_address`).
pub const LXD_PORT: u16 = super::plan::CLUSTER_PORT;

/// Rules are `trm-harden`'s kind, under this module's tag.
pub use crate::harden::firewall::Rule;

fn rule(words: String, comment: String) -> Rule {
    Rule::tagged(&words, comment)
}

/// LXD's port from one address (a member, or a server about to join).
pub fn lxd_from(name: &str, host: &str) -> Rule {
    rule(
        format!("allow from {host} to any port {LXD_PORT} proto tcp"),
        format!("{TAG} {name} lxd"),
    )
}

/// What every member allows: each other member's LXD and WireGuard from
/// its address, VXLAN only inside WireGuard from its overlay address, and
/// the private bridge's traffic (boxes on any member reach each other).
pub fn desired(bridge: &str, members: &[(String, String)], peers: &[Peer]) -> Vec<Rule> {
    let mut rules = vec![rule(
        format!("route allow in on {bridge} out on {bridge}"),
        format!("{TAG} private network"),
    )];
    for (name, host) in members {
        rules.push(lxd_from(name, host));
        rules.push(rule(
            format!("allow from {host} to any port {WG_PORT} proto udp"),
            format!("{TAG} {name} wireguard"),
        ));
    }
    for p in peers {
        rules.push(rule(
            format!(
                "allow in on {WG_IF} from {} to any port {VXLAN_PORT} proto udp",
                p.overlay
            ),
            format!("{TAG} {} vxlan", p.name),
        ));
    }
    rules
}

/// The member a rule line is for, from its comment.
fn member_of(line: &str) -> Option<&str> {
    let c = line.split(&format!(" comment '{TAG} ")).nth(1)?;
    c.split_whitespace().next()
}

/// (rules to add, lines to delete) to go from `added` to `want`; the rules
/// of a server holding an unused join token (`pending`) stay.
pub fn diff(want: &[Rule], added: &[String], pending: &[String]) -> (Vec<Rule>, Vec<String>) {
    let have = crate::harden::firewall::owned_by(added, TAG);
    let add = want
        .iter()
        .filter(|r| !have.contains(&r.line()))
        .cloned()
        .collect();
    let del = have
        .into_iter()
        .filter(|l| !want.iter().any(|r| r.line() == *l))
        .filter(|l| !member_of(l).is_some_and(|m| pending.iter().any(|p| p == m)))
        .collect();
    (add, del)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn peer(name: &str, i: u8) -> Peer {
        Peer {
            name: name.into(),
            index: i.into(),
            overlay: Ipv4Addr::new(172, 31, 254, i),
            endpoint: format!("10.9.0.{i}:51820"),
            pubkey: String::new(),
        }
    }

    #[test]
    fn members_get_their_ports_and_nobody_else() {
        let want = desired(
            "trmbr0",
            &[("m2".into(), "10.9.0.2".into())],
            &[peer("m2", 2)],
        );
        let lines: Vec<String> = want.iter().map(Rule::line).collect();
        assert_eq!(
            lines,
            [
                "route allow in on trmbr0 out on trmbr0 comment 'terrarium-cluster private network'",
                "allow from 10.9.0.2 to any port 8443 proto tcp comment 'terrarium-cluster m2 lxd'",
                "allow from 10.9.0.2 to any port 51820 proto udp comment 'terrarium-cluster m2 wireguard'",
                "allow in on trmwg0 from 172.31.254.2 to any port 4789 proto udp comment 'terrarium-cluster m2 vxlan'",
            ]
        );
    }

    #[test]
    fn a_member_gone_loses_its_rules_and_others_rules_stay() {
        let added: Vec<String> = [
            "allow from 10.9.0.3 to any port 8443 proto tcp comment 'terrarium-cluster m3 lxd'",
            "allow 22/tcp comment 'an admin rule'",
            "route allow in on trmbr0 out on trmbr0 comment 'terrarium-cluster private network'",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let want = desired("trmbr0", &[("m2".into(), "10.9.0.2".into())], &[]);
        let (add, del) = diff(&want, &added, &[]);
        assert_eq!(add.len(), 2, "m2's lxd and wireguard");
        assert_eq!(del, vec![added[0].clone()]);
        let all = [&added[..], &want.iter().map(Rule::line).collect::<Vec<_>>()].concat();
        let (add, del) = diff(&want, &all, &[]);
        assert!(add.is_empty());
        assert_eq!(del.len(), 1);
        // m3 holds a join token: the port opened for its join stays.
        assert!(diff(&want, &all, &["m3".into()]).1.is_empty());
    }
}
