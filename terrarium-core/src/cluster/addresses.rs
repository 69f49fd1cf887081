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
/// project, on every member), leased by any member, or reported.
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
        used.extend(i.ipv4().iter().filter_map(|a| a.parse::<Ipv4Addr>().ok()));
    }
    used
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
    let net = lxd
        .networks()?
        .into_iter()
        .find(|n| n.name == network)
        .ok_or_else(|| Error::NotFound {
            kind: "network",
            name: network.clone(),
        })?;
    let Some(subnet) = net
        .config
        .get("ipv4.address")
        .and_then(|a| Subnet::parse(a).ok())
    else {
        return Ok(None);
    };
    let ranges = net
        .config
        .get("ipv4.dhcp.ranges")
        .cloned()
        .unwrap_or_default();
    let leases: Vec<String> = lxd
        .network_leases(&network, lxd.project())?
        .into_iter()
        .map(|l| l.address)
        .collect();
    let used = taken(&lxd.instances_all_projects()?, &leases, &network);
    let addr = choose(&candidates(&subnet, &ranges)?, &used, subnet.addr).ok_or_else(|| {
        Error::WrongState(format!(
            "no free address left on {network} across the cluster"
        ))
    })?;
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
    let subnet = lxd
        .networks()?
        .into_iter()
        .find(|n| n.name == network)
        .and_then(|n| {
            let s = Subnet::parse(n.config.get("ipv4.address")?).ok()?;
            Some((
                s,
                n.config
                    .get("ipv4.dhcp.ranges")
                    .cloned()
                    .unwrap_or_default(),
            ))
        });
    match subnet.filter(|_| lxd.cluster().map(|c| c.enabled).unwrap_or(false)) {
        Some((s, ranges)) => {
            let leases: Vec<String> = lxd
                .network_leases(&network, lxd.project())?
                .into_iter()
                .map(|l| l.address)
                .collect();
            let used = taken(&lxd.instances_all_projects()?, &leases, &network);
            let new = choose(&candidates(&s, &ranges)?, &used, s.addr).ok_or_else(|| {
                Error::WrongState(format!(
                    "no free address left on {network} across the cluster"
                ))
            })?;
            lxd.set_device_key(name, dev, "ipv4.address", &new.to_string())?;
            Ok(Some(format!(
                "{dev} ipv4.address {old} (the original's; the copy has {new})"
            )))
        }
        None => {
            lxd.unset_device_key(name, dev, "ipv4.address")?;
            Ok(Some(format!(
                "{dev} ipv4.address {old} (the original's; LXD gives the copy one)"
            )))
        }
    }
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
