//! Where a route may send traffic: the host-assigned address of each
//! instance's NIC on Terrarium's bridge, read from LXD's instances and
//! DHCP leases, never from what the container reports.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::labels;
use super::Source;
use crate::error::Result;
use crate::lxd::{Instance, Lxd};
use crate::settings::Settings;

/// Which address a route may send traffic to. Root inside a container
/// controls what the container reports (`ip addr flush`, then a
/// neighbour's address, the bridge's own address or any other), so the
/// backend comes from the host's side only: the NIC's pinned
/// `ipv4.address`, else the lease the host's DHCP server gave the NIC's
/// MAC. It must be a host address of the bridge subnet (never the
/// gateway) held by no one else, and the NIC must have LXD's MAC and
/// IPv4 filters on, so the container cannot answer for any other address.
#[derive(Debug, Clone)]
pub(super) struct Backends {
    /// Terrarium's bridge.
    main: Net,
    /// This project's agent boxes' own bridges, by instance name.
    agents: BTreeMap<String, Net>,
    /// The project routes are planned for; `sources` returns its instances.
    project: String,
}

/// One bridge routes may reach instances on.
#[derive(Debug, Clone)]
struct Net {
    bridge: String,
    subnet: Option<crate::net::Subnet>,
    /// Every project's leases on the bridge: a tenant of one project must
    /// not be routed to an address the host gave another project's box.
    leases: Vec<crate::lxd::Lease>,
    /// On an agent box's own bridge: another instance seated there too
    /// (it could answer for the box's address), so the box is not routed.
    shared_with: Option<String>,
}

/// The NIC filters that pin a container to its own MAC and addresses.
pub const NIC_FILTERS: [&str; 2] = ["security.mac_filtering", "security.ipv4_filtering"];

impl Backends {
    fn of(s: &Settings, leases: Vec<crate::lxd::Lease>) -> Backends {
        Backends {
            main: Net {
                bridge: s.bridge.clone(),
                subnet: crate::net::Subnet::parse(&s.subnet).ok(),
                leases,
                shared_with: None,
            },
            agents: BTreeMap::new(),
            project: s.project.clone(),
        }
    }

    #[cfg(test)]
    fn allows(&self, ip: &str) -> bool {
        self.main.allows(ip)
    }

    /// The bridge `i` is routed on: an agent box of this project on its
    /// own, every other instance on Terrarium's.
    fn net_of(&self, i: &Instance) -> &Net {
        let ours = i.project.is_empty() || i.project == self.project;
        match self.agents.get(&i.name) {
            Some(net) if ours => net,
            _ => &self.main,
        }
    }

    fn address(&self, i: &Instance) -> std::result::Result<Option<String>, String> {
        self.net_of(i).address(i)
    }
}

impl Net {
    fn allows(&self, ip: &str) -> bool {
        let Ok(ip) = ip.parse::<std::net::Ipv4Addr>() else {
            return false;
        };
        match &self.subnet {
            Some(net) => net.holds_host(ip),
            // No bridge recorded (settings from before `trm init` kept it):
            // at least never loopback, link-local or a public address.
            None => ip.is_private(),
        }
    }

    /// The host-assigned address of `i`'s NIC on the bridge: Ok(None)
    /// while there is none yet, Err(why) when it may not be used.
    fn address(&self, i: &Instance) -> std::result::Result<Option<String>, String> {
        let Some((dev, nic)) = on_bridge(i, &self.bridge) else {
            return Err(format!(
                "it has no NIC on Terrarium's bridge {}",
                self.bridge
            ));
        };
        if let Some(other) = &self.shared_with {
            return Err(format!(
                "its own bridge {} has another instance on it too ({other})",
                self.bridge
            ));
        }
        if let Some(off) = NIC_FILTERS
            .iter()
            .find(|k| nic.get(**k).map(String::as_str) != Some("true"))
        {
            return Err(format!(
                "its NIC {dev} lets it use any address ({off} is off); \
                 run `trm-profile apply` or set the filters on the device"
            ));
        }
        let mac = nic_mac(i, dev, nic);
        let ip = match nic.get("ipv4.address").filter(|a| !a.is_empty()) {
            Some(pinned) => pinned.clone(),
            None => {
                let Some(mac) = mac.clone() else {
                    return Ok(None);
                };
                let mut found: Vec<&str> = self
                    .leases
                    .iter()
                    .filter(|l| l.hwaddr.eq_ignore_ascii_case(&mac))
                    .map(|l| l.address.as_str())
                    .filter(|a| a.parse::<std::net::Ipv4Addr>().is_ok())
                    .collect();
                found.sort_unstable();
                found.dedup();
                match found.as_slice() {
                    [] => return Ok(None),
                    [one] => one.to_string(),
                    many => {
                        return Err(format!(
                            "the host leased several addresses to its MAC {mac}: {}",
                            many.join(", ")
                        ))
                    }
                }
            }
        };
        if !self.allows(&ip) {
            return Err(format!(
                "its address {ip} is not a host address of the bridge subnet"
            ));
        }
        if let Some(other) = self.leases.iter().find(|l| {
            l.address == ip
                && !l.hwaddr.is_empty()
                && mac.as_deref() != Some(&l.hwaddr.to_ascii_lowercase())
        }) {
            return Err(format!(
                "its address {ip} is also leased to MAC {}",
                other.hwaddr
            ));
        }
        Ok(Some(ip))
    }
}

impl Backends {
    /// Every project's instances and the leases on the bridge of every
    /// project that has an instance there (LXD lists leases per project),
    /// for routes planned in `lxd`'s project. This project's leases are
    /// read beside the instance list; other projects' after it, in
    /// parallel, only when there are any.
    pub(super) fn read_with_instances(
        lxd: &Lxd,
        s: &Settings,
    ) -> Result<(Vec<Instance>, Backends)> {
        let project = lxd.project().to_string();
        let bridge = s.bridge.clone();
        let leases_of = |p: &str| -> Result<Vec<crate::lxd::Lease>> {
            if bridge.is_empty() {
                Ok(Vec::new())
            } else {
                lxd.network_leases(&bridge, p)
            }
        };
        let (instances, own) = std::thread::scope(|scope| {
            let own = scope.spawn(|| leases_of(&project));
            let all = lxd.instances_all_projects();
            (all, own.join().expect("lease reader panicked"))
        });
        let (instances, mut leases) = (instances?, own?);
        let others: BTreeSet<&str> = instances
            .iter()
            .filter(|i| i.project != project && on_bridge(i, &bridge).is_some())
            .map(|i| i.project.as_str())
            .collect();
        let more: Vec<Result<Vec<crate::lxd::Lease>>> = std::thread::scope(|scope| {
            let handles: Vec<_> = others
                .iter()
                .map(|p| scope.spawn(|| leases_of(p)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("lease reader panicked"))
                .collect()
        });
        for l in more {
            leases.extend(l?);
        }
        let mut b = Backends::of(s, leases);
        b.agents = agent_nets(lxd, &project, &instances)?;
        b.project = project;
        Ok((instances, b))
    }

    /// The sources of this project, judged against the instances of every
    /// project given: an address or a MAC two instances share (a pinned
    /// `ipv4.address`, a `hwaddr` or `volatile.*.hwaddr` set to a
    /// neighbour's) goes to neither.
    pub(super) fn sources(&self, instances: &[Instance]) -> Vec<Source> {
        // (instance, its MAC, its address, why it may not be routed)
        type Judged<'a> = (&'a Instance, Option<String>, Option<String>, Option<String>);
        let judged: Vec<Judged> = instances
            .iter()
            .map(|i| {
                let mac = on_bridge(i, &self.net_of(i).bridge)
                    .and_then(|(dev, nic)| nic_mac(i, dev, nic));
                match self.address(i) {
                    Ok(a) => (i, mac, a, None),
                    Err(why) => (i, mac, None, Some(why)),
                }
            })
            .collect();
        let mut ips: HashMap<&str, usize> = HashMap::new();
        let mut macs: HashMap<&str, usize> = HashMap::new();
        for (_, mac, ip, _) in &judged {
            if let Some(ip) = ip {
                *ips.entry(ip.as_str()).or_default() += 1;
            }
            if let Some(mac) = mac {
                *macs.entry(mac.as_str()).or_default() += 1;
            }
        }
        judged
            .iter()
            .filter(|(i, ..)| i.project.is_empty() || i.project == self.project)
            .map(|(i, mac, ip, why)| {
                let shared = match (ip, mac) {
                    (Some(ip), _) if ips[ip.as_str()] > 1 => Some(format!(
                        "its address {ip} is claimed by another instance too"
                    )),
                    (_, Some(mac)) if macs[mac.as_str()] > 1 => {
                        Some(format!("its MAC {mac} is another instance's too"))
                    }
                    _ => None,
                };
                let (ipv4, unroutable) = match shared {
                    Some(s) => (None, Some(s)),
                    None => (ip.clone(), why.clone()),
                };
                Source {
                    name: i.name.clone(),
                    created_at: i.created_at.clone(),
                    running: i.is_running(),
                    ipv4,
                    unroutable,
                    label: i.config.get(labels::KEY).cloned().unwrap_or_default(),
                    location: Some(i.location.clone()).filter(|l| !l.is_empty() && l != "none"),
                }
            })
            .collect()
    }
}

/// The address a route to `instance` would use: the host's own record
/// (a pinned address or its DHCP lease, filters on), never what the box
/// reports; `Err(why)` when it may not be routed, `Ok(None)` before the
/// host has given it one.
pub fn backend_address(
    lxd: &Lxd,
    settings: &Settings,
    instance: &str,
) -> Result<std::result::Result<Option<String>, String>> {
    let (instances, backends) = Backends::read_with_instances(lxd, settings)?;
    Ok(
        match backends
            .sources(&instances)
            .into_iter()
            .find(|s| s.name == instance)
        {
            None => Ok(None),
            Some(Source {
                unroutable: Some(why),
                ..
            }) => Err(why),
            Some(s) => Ok(s.ipv4),
        },
    )
}

/// The own bridges of this project's agent boxes that have one: the
/// bridge named for the box and recorded as its own (a NIC pointed at
/// another box's bridge is routed on neither), with its subnet and leases.
fn agent_nets(lxd: &Lxd, project: &str, instances: &[Instance]) -> Result<BTreeMap<String, Net>> {
    use crate::agents::sandbox;
    let boxes: Vec<(&str, String)> = instances
        .iter()
        .filter(|i| i.project.is_empty() || i.project == project)
        .map(|i| (i.name.as_str(), sandbox::bridge_of(project, &i.name)))
        .filter(|(name, bridge)| {
            instances
                .iter()
                .any(|i| i.name == *name && on_bridge(i, bridge).is_some())
        })
        .collect();
    if boxes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let networks = lxd.networks()?;
    let mut nets = BTreeMap::new();
    for (name, bridge) in boxes {
        let Some(n) = networks
            .iter()
            .find(|n| n.name == bridge && sandbox::is_own_bridge(n, project, name))
        else {
            continue;
        };
        let shared_with = instances
            .iter()
            .find(|i| {
                !(i.name == name && (i.project.is_empty() || i.project == project))
                    && on_bridge(i, &bridge).is_some()
            })
            .map(|i| format!("{}/{}", i.project, i.name));
        nets.insert(
            name.to_string(),
            Net {
                shared_with,
                subnet: n
                    .config
                    .get("ipv4.address")
                    .and_then(|a| crate::net::Subnet::parse(a).ok()),
                leases: lxd.network_leases(&bridge, project)?,
                bridge,
            },
        );
    }
    Ok(nets)
}

/// The instance's NIC on `bridge`, by device name.
fn on_bridge<'a>(
    i: &'a Instance,
    bridge: &str,
) -> Option<(&'a String, &'a BTreeMap<String, String>)> {
    i.expanded_devices.iter().find(|(_, d)| {
        d.get("type").map(String::as_str) == Some("nic")
            && d.get("network").map(String::as_str) == Some(bridge)
    })
}

/// A NIC's MAC as LXD will use it (the device's `hwaddr`, else the one
/// LXD generated into `volatile.DEV.hwaddr`), lowercased.
fn nic_mac(i: &Instance, dev: &str, nic: &BTreeMap<String, String>) -> Option<String> {
    nic.get("hwaddr")
        .or_else(|| i.config.get(&format!("volatile.{dev}.hwaddr")))
        .filter(|m| !m.is_empty())
        .map(|m| m.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_addresses_of_the_bridge_are_backends() {
        let mut s = Settings {
            subnet: "10.87.0.1/24".into(),
            ..Settings::default()
        };
        let b = Backends::of(&s, Vec::new());
        for (ip, ok) in [
            ("10.87.0.5", true),
            ("10.87.0.254", true),
            ("10.87.0.1", false),
            ("10.87.0.0", false),
            ("10.87.0.255", false),
            ("127.0.0.1", false),
            ("10.88.0.5", false),
            ("169.254.1.1", false),
            ("not-an-ip", false),
        ] {
            assert_eq!(b.allows(ip), ok, "{ip}");
        }
        s.subnet.clear();
        let b = Backends::of(&s, Vec::new());
        assert!(b.allows("10.9.9.9") && !b.allows("127.0.0.1") && !b.allows("8.8.8.8"));
    }

    fn lease(mac: &str, ip: &str) -> crate::lxd::Lease {
        crate::lxd::Lease {
            hostname: String::new(),
            hwaddr: mac.into(),
            address: ip.into(),
            kind: "dynamic".into(),
        }
    }

    /// An instance whose eth0 is on `trmbr0` with the given device keys.
    fn nic_instance(name: &str, mac: &str, extra: &[(&str, &str)]) -> Instance {
        let mut nic: BTreeMap<String, String> = [
            ("type", "nic"),
            ("network", "trmbr0"),
            ("security.mac_filtering", "true"),
            ("security.ipv4_filtering", "true"),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        nic.retain(|_, v| !v.is_empty());
        serde_json::from_value(serde_json::json!({
            "name": name, "status": "Running",
            "config": {"volatile.eth0.hwaddr": mac},
            "expanded_devices": {"eth0": nic},
        }))
        .unwrap()
    }

    #[test]
    fn the_backend_is_what_the_host_assigned_never_what_the_container_says() {
        let s = Settings {
            bridge: "trmbr0".into(),
            subnet: "10.87.0.1/24".into(),
            ..Settings::default()
        };
        let leases = vec![
            lease("00:16:3e:00:00:0a", "10.87.0.10"),
            lease("00:16:3e:00:00:0b", "10.87.0.11"),
            lease("00:16:3e:00:00:0c", "10.87.0.1"),
            lease("00:16:3e:00:00:0d", "10.87.0.20"),
            lease("00:16:3e:00:00:0d", "10.87.0.21"),
            lease("00:16:3e:00:00:ff", "10.87.0.30"),
        ];
        let b = Backends::of(&s, leases);
        type Want = std::result::Result<Option<&'static str>, &'static str>;
        type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Want);
        let cases: &[Case] = &[
            ("leased", "00:16:3E:00:00:0A", &[], Ok(Some("10.87.0.10"))),
            ("no lease yet", "00:16:3e:00:00:99", &[], Ok(None)),
            (
                "pinned",
                "00:16:3e:00:00:99",
                &[("ipv4.address", "10.87.0.40")],
                Ok(Some("10.87.0.40")),
            ),
            (
                "gateway lease",
                "00:16:3e:00:00:0c",
                &[],
                Err("not a host address"),
            ),
            (
                "pinned outside",
                "00:16:3e:00:00:99",
                &[("ipv4.address", "10.9.0.4")],
                Err("not a host address"),
            ),
            (
                "two leases",
                "00:16:3e:00:00:0d",
                &[],
                Err("several addresses"),
            ),
            (
                "pinned to a neighbour",
                "00:16:3e:00:00:99",
                &[("ipv4.address", "10.87.0.30")],
                Err("also leased to MAC 00:16:3e:00:00:ff"),
            ),
            (
                "no mac filter",
                "00:16:3e:00:00:0a",
                &[("security.mac_filtering", "")],
                Err("security.mac_filtering is off"),
            ),
            (
                "no ip filter",
                "00:16:3e:00:00:0a",
                &[("security.ipv4_filtering", "false")],
                Err("security.ipv4_filtering is off"),
            ),
            (
                "other bridge",
                "00:16:3e:00:00:0a",
                &[("network", "lxdbr0")],
                Err("no NIC on Terrarium's bridge"),
            ),
        ];
        for (what, mac, extra, want) in cases {
            let got = b.address(&nic_instance("x", mac, extra));
            match (want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(g.as_deref(), *w, "{what}"),
                (Err(w), Err(g)) => assert!(g.contains(w), "{what}: {g}"),
                _ => panic!("{what}: got {got:?}, want {want:?}"),
            }
        }
        // Two instances pinned to one address: neither gets it.
        let two = [
            nic_instance("p", "00:16:3e:00:01:01", &[("ipv4.address", "10.87.0.50")]),
            nic_instance("q", "00:16:3e:00:01:02", &[("ipv4.address", "10.87.0.50")]),
            nic_instance("r", "00:16:3e:00:00:0b", &[]),
        ];
        let got: Vec<(Option<String>, bool)> = b
            .sources(&two)
            .into_iter()
            .map(|s| (s.ipv4, s.unroutable.is_some()))
            .collect();
        assert_eq!(
            got,
            [
                (None, true),
                (None, true),
                (Some("10.87.0.11".into()), false)
            ]
        );
    }

    #[test]
    fn an_agent_box_is_routed_on_its_own_bridge_and_only_it() {
        let s = Settings {
            bridge: "trmbr0".into(),
            subnet: "10.87.0.1/24".into(),
            project: "p".into(),
            ..Settings::default()
        };
        let mut b = Backends::of(&s, Vec::new());
        b.agents.insert(
            "agent".into(),
            Net {
                bridge: "trmaown".into(),
                subnet: crate::net::Subnet::parse("10.99.0.1/24").ok(),
                leases: vec![lease("00:16:3e:00:00:0a", "10.99.0.10")],
                shared_with: None,
            },
        );
        let on = |name: &str, project: &str, bridge: &str| {
            let mut i = nic_instance(name, "00:16:3e:00:00:0a", &[("network", bridge)]);
            i.project = project.into();
            i
        };
        assert_eq!(
            b.address(&on("agent", "p", "trmaown")),
            Ok(Some("10.99.0.10".into()))
        );
        // The same name in another project, or another box seated on
        // that bridge, is judged on Terrarium's bridge: not routed.
        assert!(b.address(&on("agent", "q", "trmaown")).is_err());
        assert!(b.address(&on("other", "p", "trmaown")).is_err());
        // With another instance seated on its bridge, not even the box.
        b.agents.get_mut("agent").unwrap().shared_with = Some("q/intruder".into());
        let e = b.address(&on("agent", "p", "trmaown")).unwrap_err();
        assert!(e.contains("q/intruder"), "{e}");
    }

    #[test]
    fn another_projects_box_cannot_borrow_an_address_or_a_mac() {
        let s = Settings {
            bridge: "trmbr0".into(),
            subnet: "10.87.0.1/24".into(),
            ..Settings::default()
        };
        // The victim's lease (default project) and the attacker's own.
        let b = Backends::of(
            &s,
            vec![
                lease("00:16:3e:00:00:0a", "10.87.0.10"),
                lease("00:16:3e:00:00:0e", "10.87.0.14"),
            ],
        );
        let in_project = |mut i: Instance, p: &str| {
            i.project = p.into();
            i
        };
        let victim = in_project(nic_instance("victim", "00:16:3e:00:00:0a", &[]), "default");
        for (what, attacker, want) in [
            (
                "pins the victim's leased address",
                nic_instance(
                    "evil",
                    "00:16:3e:00:00:0e",
                    &[("ipv4.address", "10.87.0.10")],
                ),
                "also leased to MAC 00:16:3e:00:00:0a",
            ),
            (
                "sets the victim's MAC on its device",
                nic_instance(
                    "evil",
                    "00:16:3e:00:00:0e",
                    &[("hwaddr", "00:16:3E:00:00:0A")],
                ),
                "is claimed by another instance too",
            ),
        ] {
            let all = [victim.clone(), in_project(attacker, "acc-b")];
            let mut b = b.clone();
            b.project = "acc-b".into();
            let evil = b.sources(&all);
            assert_eq!(evil.len(), 1, "only acc-b's own: {what}");
            assert_eq!(evil[0].ipv4, None, "{what}");
            assert!(
                evil[0]
                    .unroutable
                    .as_deref()
                    .unwrap_or_default()
                    .contains(want),
                "{what}: {:?}",
                evil[0].unroutable
            );
        }
        // A MAC cloned into volatile: neither is routed (refused, not misrouted).
        let clone = in_project(nic_instance("evil", "00:16:3e:00:00:0a", &[]), "acc-b");
        let got = b.sources(&[victim.clone(), clone]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "victim");
        assert!(got[0]
            .unroutable
            .as_deref()
            .unwrap_or_default()
            .contains("another instance"));
    }
}
