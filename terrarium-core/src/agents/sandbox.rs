//! An agent box's own bridge and the ACL on it: created before the box,
//! changed by `trm policy set`, removed after the box. Root inside the box
//! controls none of it: the ACL lives on the host side of the bridge, and
//! the record of the policy is the ACL's own config, which no `user.*` key
//! of the instance can change.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::egress::{self, Acl, Action, Egress};
use crate::error::{Error, Result};
use crate::lxd::{Config, Lxd};
use crate::net::{self, Subnet};

/// The standalone profile whose boxes get a bridge of their own.
pub const PROFILE: &str = "agent";
/// On the ACL: the policy it enforces (JSON).
const POLICY_KEY: &str = "user.terrarium.egress";
/// On the ACL and the bridge: `project/instance` they belong to.
const OWNER_KEY: &str = "user.terrarium.instance";

/// What every agent box's bridge (and ACL) name starts with.
const BRIDGE_PREFIX: &str = "trma";

/// The bridge and ACL of one box: `trma` and 10 hex digits of its
/// project and name (interface names have at most 15 characters).
pub fn bridge_of(project: &str, instance: &str) -> String {
    let digest = Sha256::digest(format!("{project}/{instance}").as_bytes());
    let hex: String = digest.iter().take(5).map(|b| format!("{b:02x}")).collect();
    format!("{BRIDGE_PREFIX}{hex}")
}

fn owner(project: &str, instance: &str) -> String {
    format!("{project}/{instance}")
}

/// Is `n` the bridge Terrarium made for this box (by its record, not
/// only its name)?
pub fn is_own_bridge(n: &crate::lxd::Network, project: &str, instance: &str) -> bool {
    n.name == bridge_of(project, instance)
        && n.config.get(OWNER_KEY).map(String::as_str) == Some(owner(project, instance).as_str())
}

/// Every address of this host's interfaces.
pub fn host_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = addrs
        .filter_map(|a| a.address)
        .filter_map(|a| {
            a.as_sockaddr_in()
                .map(|s| IpAddr::V4(s.ip()))
                .or_else(|| a.as_sockaddr_in6().map(|s| IpAddr::V6(s.ip())))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn action(a: Action) -> &'static str {
    match a {
        Action::Allow => "allow",
        Action::Reject => "reject",
    }
}

/// The ACL's body for LXD, its policy recorded in its own config.
fn acl_body(project: &str, instance: &str, policy: &Egress, acl: &Acl) -> serde_json::Value {
    serde_json::json!({
        "description": format!("Terrarium: egress of agent box {}", owner(project, instance)),
        "egress": acl.egress,
        "ingress": acl.ingress,
        "config": {
            POLICY_KEY: serde_json::to_string(policy).expect("json"),
            OWNER_KEY: owner(project, instance),
        },
    })
}

/// The bridge's default actions, for what no rule of the ACL matches.
fn defaults(acl: &Acl) -> Config {
    [
        (
            "security.acls.default.egress.action",
            action(acl.default_egress),
        ),
        (
            "security.acls.default.ingress.action",
            action(acl.default_ingress),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// The box's only NIC: on its own bridge, pinned to the MAC and address
/// the host gives it.
pub fn nic(bridge: &str) -> BTreeMap<String, String> {
    [
        ("type", "nic"),
        ("name", "eth0"),
        ("network", bridge),
        ("security.mac_filtering", "true"),
        ("security.ipv4_filtering", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A free private /24 for a new bridge: clear of every LXD network and
/// every route this host has.
fn free_subnet(lxd: &Lxd) -> Result<Subnet> {
    let mut taken: Vec<Subnet> = net::host_routes()?.into_iter().map(|(_, s)| s).collect();
    for n in lxd.networks()? {
        if let Some(s) = n
            .config
            .get("ipv4.address")
            .and_then(|a| Subnet::parse(a).ok())
        {
            taken.push(s);
        }
    }
    net::choose_free(&taken).ok_or_else(|| {
        Error::WrongState("no free private /24 is left for an agent box's bridge".into())
    })
}

/// Create the ACL and the bridge of a new agent box (NAT as the host's
/// Terrarium bridge has it), and return the bridge's name.
pub fn provision(lxd: &Lxd, instance: &str, policy: &Egress, nat: bool) -> Result<String> {
    let project = lxd.project();
    let name = bridge_of(project, instance);
    if lxd.networks()?.iter().any(|n| n.name == name) {
        return Err(Error::WrongState(format!(
            "network {name} (agent box {}) already exists; `trm delete {instance}` removes a \
             leftover one",
            owner(project, instance)
        )));
    }
    let subnet = free_subnet(lxd)?.gateway();
    let acl = egress::acl(policy, IpAddr::V4(subnet.addr), &host_addresses());
    let mut body = acl_body(project, instance, policy, &acl);
    body["name"] = name.clone().into();
    lxd.create_network_acl(&body)?;
    let mut config: Config = defaults(&acl);
    config.extend(
        [
            ("ipv4.address", subnet.to_string()),
            ("ipv4.nat", nat.to_string()),
            ("ipv6.address", "none".to_string()),
            ("security.acls", name.clone()),
            (OWNER_KEY, owner(project, instance)),
        ]
        .map(|(k, v)| (k.to_string(), v)),
    );
    if let Err(e) = lxd.create_network(&name, &config) {
        let _ = lxd.delete_network_acl(&name);
        return Err(e);
    }
    Ok(name)
}

/// What `trm policy set` changed.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySet {
    pub instance: String,
    pub bridge: String,
    #[serde(flatten)]
    pub policy: Egress,
    pub changed: bool,
}

impl crate::output::Human for PolicySet {
    fn human(&self) -> String {
        let verb = if self.changed { "now" } else { "already" };
        format!(
            "{}: egress {verb} {} (bridge {})",
            self.instance,
            describe(&self.policy),
            self.bridge
        )
    }
}

/// One line for people.
pub fn describe(policy: &Egress) -> String {
    match policy {
        Egress::Public => "public (no private ranges, no host)".into(),
        Egress::None => "none".into(),
        Egress::AllowList(l) => format!(
            "allow-list {}",
            l.iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Replace one box's policy: its own ACL and its own bridge's defaults,
/// nothing another box uses.
pub fn set_policy(lxd: &Lxd, instance: &str, policy: &Egress) -> Result<PolicySet> {
    crate::names::validate_instance_name(instance)?;
    let project = lxd.project();
    // The instance's turn, as every other change to it takes.
    let _turn = crate::snapshots::lock_instance(lxd, instance, Default::default())?;
    lxd.instance(instance)?;
    let name = bridge_of(project, instance);
    let Some(network) = lxd.networks()?.into_iter().find(|n| n.name == name) else {
        return Err(Error::WrongState(format!(
            "'{instance}' is not an agent box (launched with --profile {PROFILE}): it has no \
             bridge of its own, so no egress policy"
        )));
    };
    let gateway = network
        .config
        .get("ipv4.address")
        .and_then(|a| Subnet::parse(a).ok())
        .map(|s| IpAddr::V4(s.addr))
        .ok_or_else(|| Error::WrongState(format!("network {name} has no IPv4 address")))?;
    let before = policy_of(lxd, instance)?;
    let acl = egress::acl(policy, gateway, &host_addresses());
    lxd.put_network_acl(&name, &acl_body(project, instance, policy, &acl))?;
    lxd.patch_network(&name, &defaults(&acl))?;
    Ok(PolicySet {
        instance: instance.to_string(),
        bridge: name,
        policy: policy.clone(),
        changed: before.as_ref() != Some(policy),
    })
}

/// The policy an agent box's ACL enforces; `None` for other instances.
pub fn policy_of(lxd: &Lxd, instance: &str) -> Result<Option<Egress>> {
    let name = bridge_of(lxd.project(), instance);
    Ok(lxd
        .network_acl(&name)?
        .and_then(|a| a.config.get(POLICY_KEY).cloned())
        .and_then(|p| serde_json::from_str(&p).ok()))
}

/// The policies of this project's agent boxes, by instance name.
pub fn policies(lxd: &Lxd) -> Result<BTreeMap<String, Egress>> {
    let prefix = format!("{}/", lxd.project());
    Ok(lxd
        .network_acls()?
        .into_iter()
        .filter_map(|a| {
            let instance = a.config.get(OWNER_KEY)?.strip_prefix(&prefix)?.to_string();
            // Only the ACL named for that box counts: another one naming
            // it as its owner enforces nothing on it.
            (a.name == bridge_of(lxd.project(), &instance)).then_some(())?;
            let policy = serde_json::from_str(a.config.get(POLICY_KEY)?).ok()?;
            Some((instance, policy))
        })
        .collect())
}

fn is_nic(d: &Config) -> bool {
    d.get("type").map(String::as_str) == Some("nic")
}

/// The instance's own NICs on agent bridges: (device, bridge).
fn agent_nics(i: &crate::lxd::Instance) -> impl Iterator<Item = (String, String)> + '_ {
    i.devices
        .iter()
        .filter(|(_, d)| is_nic(d))
        .filter_map(|(dev, d)| Some((dev.clone(), d.get("network")?.clone())))
        .filter(|(_, net)| net.starts_with(BRIDGE_PREFIX))
}

/// Take an agent box's NIC off the copy an export sends: its bridge is
/// this host's and this box's, and LXD refuses to import an instance
/// whose NIC names a network that is not there (the box's own bridge is
/// gone once a `--ttl-export` box is deleted). The import gives it a
/// bridge of its own again ([`rehome`]).
pub fn unseat(lxd: &Lxd, instance: &str) -> Result<()> {
    for (dev, _) in agent_nics(&lxd.instance(instance)?).collect::<Vec<_>>() {
        lxd.remove_device(instance, &dev)?;
    }
    Ok(())
}

/// Give a copy of an agent box (restored under another name, kept by a
/// copy-and-swap rollback, or imported) a bridge of its own: sharing the
/// original's would leave each box's policy and teardown pulling at the
/// other's, and a bucket-borne config must not seat a box on another
/// box's bridge. A NIC on another agent box's bridge moves, with that
/// box's policy; an agent-profile box left with no NIC at all (an import,
/// whose foreign NICs the import policy removed) gets one. Where the
/// source's policy is unknown the copy gets `none`: the owner opens it
/// with `trm policy set`. Returns what was done, in words; on failure the
/// new bridge and ACL are removed again.
pub fn rehome(lxd: &Lxd, instance: &str) -> Result<Vec<String>> {
    let own = bridge_of(lxd.project(), instance);
    let copy = lxd.instance(instance)?;
    let mut moving: Vec<(String, Option<String>)> = agent_nics(&copy)
        .filter(|(_, net)| *net != own)
        .map(|(dev, net)| (dev, Some(net)))
        .collect();
    let source = moving.first().and_then(|(_, net)| net.clone());
    if moving.is_empty() {
        let agent = copy.profiles.iter().any(|p| p == PROFILE);
        if !agent || copy.expanded_devices.values().any(is_nic) {
            return Ok(Vec::new());
        }
        moving.push(("eth0".into(), None));
    }
    let known = match &source {
        Some(net) => lxd
            .network_acl(net)?
            .and_then(|a| serde_json::from_str(a.config.get(POLICY_KEY)?).ok()),
        None => None,
    };
    let policy = known.unwrap_or(Egress::None);
    let nat = crate::settings::Settings::load_or_default()?.nat;
    let bridge = provision(lxd, instance, &policy, nat)?;
    let mut said = Vec::new();
    for (dev, from) in &moving {
        let step = match from {
            Some(_) => lxd
                .remove_device(instance, dev)
                .and_then(|()| lxd.add_device(instance, dev, &nic(&bridge))),
            None => lxd.add_device(instance, dev, &nic(&bridge)),
        };
        if let Err(e) = step {
            let _ = teardown(lxd, instance);
            return Err(e);
        }
        said.push(format!(
            "{dev} {} a bridge of its own, {bridge} (egress {})",
            match from {
                Some(net) => format!("moved from {net} to"),
                None => "put on".into(),
            },
            describe(&policy)
        ));
    }
    Ok(said)
}

/// After the box is gone: its bridge, then its ACL. Nothing to do for an
/// instance that had none.
pub fn teardown(lxd: &Lxd, instance: &str) -> Result<()> {
    let name = bridge_of(lxd.project(), instance);
    if lxd.networks()?.iter().any(|n| n.name == name) {
        lxd.delete_network(&name)?;
    }
    if lxd.network_acl(&name)?.is_some() {
        lxd.delete_network_acl(&name)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_box_has_its_own_short_bridge_name() {
        let a = bridge_of("dev", "agent-1");
        assert!(a.len() <= 15 && a.starts_with("trma"), "{a}");
        assert_ne!(a, bridge_of("dev", "agent-2"));
        assert_ne!(a, bridge_of("other", "agent-1"));
        assert_eq!(a, bridge_of("dev", "agent-1"));
    }

    #[test]
    fn the_policy_record_round_trips() {
        for p in [
            Egress::Public,
            Egress::None,
            egress::parse("allow-list", &["203.0.113.0/24:443".into()]).unwrap(),
        ] {
            let text = serde_json::to_string(&p).unwrap();
            assert_eq!(serde_json::from_str::<Egress>(&text).unwrap(), p, "{text}");
            assert!(!text.contains('_'), "the CLI's words: {text}");
        }
    }

    #[test]
    fn defaults_follow_the_policy() {
        let gw: IpAddr = "10.99.0.1".parse().unwrap();
        let of = |p: &Egress| defaults(&egress::acl(p, gw, &[]));
        assert_eq!(
            of(&Egress::Public)["security.acls.default.egress.action"],
            "allow"
        );
        assert_eq!(
            of(&Egress::None)["security.acls.default.egress.action"],
            "reject"
        );
        assert_eq!(
            of(&Egress::Public)["security.acls.default.ingress.action"],
            "reject"
        );
    }
}
