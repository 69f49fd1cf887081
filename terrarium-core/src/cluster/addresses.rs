//! Addresses on a cluster. Every member's DHCP server allocates on its own
//! and LXD checks a pinned address only on one member, so two boxes on two
//! members would get the same address. `trm launch` on a cluster pins each
//! new box's address (its NIC's `ipv4.address`), free across the whole
//! cluster; the address moves with the box when it moves.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::error::{Error, Result};
use crate::lxd::{Config, Instance, LaunchSpec, Lxd};
use crate::net::Subnet;

/// The addresses a range offers, from LXD's `ipv4.dhcp.ranges`
/// (`A-B[,C-D]`), else the subnet's hosts below the members' block.
pub fn candidates(subnet: &Subnet, ranges: &str) -> Result<Vec<Ipv4Addr>> {
    let default;
    let ranges = if ranges.trim().is_empty() {
        default = super::mesh::dhcp_ranges(subnet)?;
        &default
    } else {
        ranges
    };
    let mut out = vec![];
    for r in ranges.split(',') {
        let (a, b) = r
            .split_once('-')
            .and_then(|(a, b)| {
                Some((
                    a.trim().parse::<Ipv4Addr>().ok()?,
                    b.trim().parse::<Ipv4Addr>().ok()?,
                ))
            })
            .ok_or_else(|| Error::Parse {
                context: "the bridge's ipv4.dhcp.ranges".into(),
                message: format!("'{r}' is not FIRST-LAST"),
            })?;
        out.extend((u32::from(a)..=u32::from(b)).map(Ipv4Addr::from));
    }
    Ok(out)
}

/// Addresses taken on `network`: pinned on any instance's NIC (in every
/// project, on every member) or leased by any member. What a container
/// reports is never asked: its root could claim any address.
pub fn taken(instances: &[Instance], leases: &[String], network: &str) -> BTreeSet<Ipv4Addr> {
    let mut used: BTreeSet<Ipv4Addr> = leases.iter().filter_map(|a| a.parse().ok()).collect();
    for i in instances {
        for d in i.expanded_devices.values().chain(i.devices.values()) {
            if d.get("network").map(String::as_str) == Some(network) {
                if let Some(a) = d.get("ipv4.address").and_then(|a| a.parse().ok()) {
                    used.insert(a);
                }
            }
        }
    }
    used
}

/// Instances whose devices the cluster could not say (every instance has
/// a root disk: none at all means its member is offline). Their pins are
/// unknown, so no address is chosen while they are.
pub fn unknown(instances: &[Instance]) -> Vec<String> {
    instances
        .iter()
        .filter(|i| i.expanded_devices.is_empty() && i.devices.is_empty())
        .map(|i| format!("{} (on {})", i.name, i.location))
        .collect()
}

/// A managed network's subnet and DHCP ranges, if it has IPv4.
fn subnet_of(lxd: &Lxd, network: &str) -> Result<Option<(Subnet, String)>> {
    let net = lxd
        .networks()?
        .into_iter()
        .find(|n| n.name == network)
        .ok_or_else(|| Error::NotFound {
            kind: "network",
            name: network.to_string(),
        })?;
    Ok(net
        .config
        .get("ipv4.address")
        .and_then(|a| Subnet::parse(a).ok())
        .map(|s| {
            (
                s,
                net.config
                    .get("ipv4.dhcp.ranges")
                    .cloned()
                    .unwrap_or_default(),
            )
        }))
}

/// The lowest address on `network` free across the whole cluster.
fn free_address(lxd: &Lxd, network: &str, subnet: &Subnet, ranges: &str) -> Result<Ipv4Addr> {
    let instances = lxd.instances_all_projects()?;
    let unknown = unknown(&instances);
    if !unknown.is_empty() {
        return Err(Error::WrongState(format!(
            "the cluster cannot say which addresses {} hold (their member does not answer): \
             no address is chosen until it is back, or removed",
            unknown.join(", ")
        )));
    }
    // Every project's leases: another project's box may sit on the bridge.
    let projects: BTreeSet<&str> = instances
        .iter()
        .map(|i| i.project.as_str())
        .chain([lxd.project()])
        .filter(|p| !p.is_empty())
        .collect();
    let mut leases = vec![];
    for p in projects {
        leases.extend(
            lxd.network_leases(network, p)?
                .into_iter()
                .map(|l| l.address),
        );
    }
    let used = taken(&instances, &leases, network);
    choose(&candidates(subnet, ranges)?, &used, subnet.addr).ok_or_else(|| {
        Error::WrongState(format!(
            "no free address left on {network} across the cluster"
        ))
    })
}

/// The lowest candidate not taken.
pub fn choose(
    candidates: &[Ipv4Addr],
    taken: &BTreeSet<Ipv4Addr>,
    gateway: Ipv4Addr,
) -> Option<Ipv4Addr> {
    candidates
        .iter()
        .copied()
        .find(|a| *a != gateway && !taken.contains(a))
}

/// The NIC a launch gets from its profiles (the last profile wins, as in
/// LXD) that sits on a managed bridge: (device name, its config).
fn profile_nic(lxd: &Lxd, spec: &LaunchSpec) -> Result<Option<(String, Config)>> {
    let mut devices = std::collections::BTreeMap::new();
    for p in &spec.profiles {
        if let Some(p) = lxd.profile(p)? {
            devices.extend(p.devices);
        }
    }
    Ok(devices.into_iter().find(|(_, d)| {
        d.get("type").map(String::as_str) == Some("nic") && d.contains_key("network")
    }))
}

/// Pin the new box's address when the server is a cluster member; returns
/// the address, or None on a lone server (or for a NIC the launch already
/// sets itself, such as an agent box's own bridge).
pub fn pin(lxd: &Lxd, spec: &mut LaunchSpec) -> Result<Option<Ipv4Addr>> {
    if !lxd.cluster()?.enabled {
        return Ok(None);
    }
    let Some((name, mut nic)) = profile_nic(lxd, spec)? else {
        return Ok(None);
    };
    if spec.devices.contains_key(&name) || nic.contains_key("ipv4.address") {
        return Ok(None);
    }
    let network = nic["network"].clone();
    let Some((subnet, ranges)) = subnet_of(lxd, &network)? else {
        return Ok(None);
    };
    let addr = free_address(lxd, &network, &subnet, &ranges)?;
    nic.insert("ipv4.address".into(), addr.to_string());
    spec.devices.insert(name, nic);
    Ok(Some(addr))
}

/// A copy (a restore or an import) keeps its original's pinned address on
/// its own NIC: on a cluster it gets one of its own, free cluster-wide; on
/// a lone server the pin goes and LXD allocates. Returns what was done.
pub fn repin_copy(lxd: &Lxd, name: &str) -> Result<Option<String>> {
    let copy = lxd.instance(name)?;
    let Some((dev, nic)) = copy.devices.iter().find(|(_, d)| {
        d.get("type").map(String::as_str) == Some("nic") && d.contains_key("ipv4.address")
    }) else {
        return Ok(None);
    };
    let old = nic["ipv4.address"].clone();
    let network = nic.get("network").cloned().unwrap_or_default();
    if lxd.cluster()?.enabled {
        if let Some((subnet, ranges)) = subnet_of(lxd, &network)? {
            let new = free_address(lxd, &network, &subnet, &ranges)?;
            lxd.set_device_key(name, dev, "ipv4.address", &new.to_string())?;
            return Ok(Some(format!(
                "{dev} ipv4.address {old} (the original's; the copy has {new})"
            )));
        }
    }
    lxd.unset_device_key(name, dev, "ipv4.address")?;
    Ok(Some(format!(
        "{dev} ipv4.address {old} (the original's; LXD gives the copy one)"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_the_ranges_or_stop_below_the_members_block() {
        let s = Subnet::parse("10.100.0.1/24").unwrap();
        let c = candidates(&s, "10.100.0.10-10.100.0.12,10.100.0.20-10.100.0.20").unwrap();
        assert_eq!(c.len(), 4);
        let d = candidates(&s, "").unwrap();
        assert_eq!(d.first(), Some(&Ipv4Addr::new(10, 100, 0, 2)));
        assert_eq!(d.last(), Some(&Ipv4Addr::new(10, 100, 0, 222)));
        assert!(candidates(&s, "nonsense").is_err());
    }

    #[test]
    fn an_address_pinned_or_leased_on_any_member_is_not_given_again() {
        let i: Instance = serde_json::from_value(serde_json::json!({
            "name": "a", "status": "Running", "location": "m3",
            "expanded_devices": {"eth0": {"type": "nic", "network": "trmbr0", "ipv4.address": "10.100.0.2"}},
            "devices": {"eth1": {"type": "nic", "network": "other", "ipv4.address": "10.100.0.4"}}
        }))
        .unwrap();
        let used = taken(&[i], &["10.100.0.3".into()], "trmbr0");
        assert!(used.contains(&Ipv4Addr::new(10, 100, 0, 2)));
        assert!(used.contains(&Ipv4Addr::new(10, 100, 0, 3)));
        assert!(
            !used.contains(&Ipv4Addr::new(10, 100, 0, 4)),
            "another network's"
        );
        let s = Subnet::parse("10.100.0.1/24").unwrap();
        let c = candidates(&s, "").unwrap();
        assert_eq!(
            choose(&c, &used, s.addr),
            Some(Ipv4Addr::new(10, 100, 0, 4))
        );
    }
}
