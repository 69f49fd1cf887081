//! Public exposure: from the `user.proxy` labels LXD holds to Traefik
//! files, static entrypoints and UFW rules. `plan` is pure (labels in,
//! desired state out); `sync` reads LXD once, then brings the files, the
//! firewall and Traefik in line, under the `expose` lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::fs::{atomic_write, Lock};
use crate::lxd::{Instance, Lxd};
use crate::names::validate_instance_name;
use crate::output::{Human, Row};
use crate::settings::{ExposeSettings, Settings};
use crate::traefik::{self, EntryPoint};
use crate::ufw::{self, PortRule, Ufw};
use labels::Item;

mod check;
pub mod claims;
mod foreign_files;
pub mod labels;
pub mod policy;
pub use check::{check, CheckReport};
pub use foreign_files::Rejected;
pub use policy::{static_options, Context};

/// The domain public hosts hang off: the configured root domain
/// (lowercased, checked as a DNS name, so `Example.com` cannot slip past
/// the management hosts), else `<dashed public IPv4>.traefik.me` (a
/// wildcard DNS service). With neither a root domain nor a public
/// address, there is nothing to hang hosts off: refuse, rather than plan
/// management hosts on some other machine's name.
pub fn base_domain(e: &ExposeSettings) -> Result<String> {
    base_domain_of(e, crate::net::default_source_ipv4)
}

fn base_domain_of(
    e: &ExposeSettings,
    default_source: impl Fn() -> Option<std::net::Ipv4Addr>,
) -> Result<String> {
    if !e.root_domain.is_empty() {
        return labels::normalize_host(e.root_domain.trim_end_matches('.'))
            .map_err(|why| Error::Usage(format!("expose.root_domain: {why}")));
    }
    let ip = if e.public_ipv4.is_empty() {
        default_source().ok_or_else(|| {
            Error::Usage(
                "no expose.root_domain is set and this host has no default route to take a \
                 public address from: set expose.root_domain (or expose.public_ipv4) in the settings"
                    .into(),
            )
        })?
    } else {
        e.public_ipv4.parse().map_err(|_| {
            Error::Usage(format!(
                "expose.public_ipv4 '{}' is not an IPv4 address",
                e.public_ipv4
            ))
        })?
    };
    if ip.is_loopback() || ip.is_unspecified() || ip.is_link_local() {
        return Err(Error::Usage(format!(
            "expose.public_ipv4 {ip} is not a public address: set expose.root_domain"
        )));
    }
    Ok(format!("{}.traefik.me", ip.to_string().replace('.', "-")))
}

/// One instance as exposure sees it.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub created_at: String,
    pub running: bool,
    /// The backend address, as the host assigned it (never as reported).
    pub ipv4: Option<String>,
    /// Why the instance may not receive traffic at all (its NIC is not
    /// protected against spoofing, or the host's records disagree).
    pub unroutable: Option<String>,
    pub label: String,
}

/// Which address a route may send traffic to. Root inside a container
/// controls what the container reports (`ip addr flush`, then a
/// neighbour's address, the bridge's own address or any other), so the
/// backend comes from the host's side only: the NIC's pinned
/// `ipv4.address`, else the lease the host's DHCP server gave the NIC's
/// MAC. It must be a host address of the bridge subnet (never the
/// gateway) held by no one else, and the NIC must have LXD's MAC and
/// IPv4 filters on, so the container cannot answer for any other address.
#[derive(Debug, Clone)]
pub struct Backends {
    bridge: String,
    subnet: Option<crate::net::Subnet>,
    /// Every project's leases on the bridge: a tenant of one project must
    /// not be routed to an address the host gave another project's box.
    leases: Vec<crate::lxd::Lease>,
    /// The project routes are planned for; `sources` returns its instances.
    project: String,
}

/// The NIC filters that pin a container to its own MAC and addresses.
pub const NIC_FILTERS: [&str; 2] = ["security.mac_filtering", "security.ipv4_filtering"];

impl Backends {
    pub fn of(s: &Settings, leases: Vec<crate::lxd::Lease>) -> Backends {
        Backends {
            bridge: s.bridge.clone(),
            subnet: crate::net::Subnet::parse(&s.subnet).ok(),
            leases,
            project: s.project.clone(),
        }
    }

    pub fn allows(&self, ip: &str) -> bool {
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
    pub fn address(&self, i: &Instance) -> std::result::Result<Option<String>, String> {
        let Some((dev, nic)) = on_bridge(i, &self.bridge) else {
            return Err(format!(
                "it has no NIC on Terrarium's bridge {}",
                self.bridge
            ));
        };
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

    /// Every project's instances and the leases on the bridge of every
    /// project that has an instance there (LXD lists leases per project),
    /// for routes planned in `lxd`'s project. This project's leases are
    /// read beside the instance list; other projects' after it, in
    /// parallel, only when there are any.
    pub fn read_with_instances(lxd: &Lxd, s: &Settings) -> Result<(Vec<Instance>, Backends)> {
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
        b.project = project;
        Ok((instances, b))
    }

    /// The sources of this project, judged against the instances of every
    /// project given: an address or a MAC two instances share (a pinned
    /// `ipv4.address`, a `hwaddr` or `volatile.*.hwaddr` set to a
    /// neighbour's) goes to neither.
    pub fn sources(&self, instances: &[Instance]) -> Vec<Source> {
        // (instance, its MAC, its address, why it may not be routed)
        type Judged<'a> = (&'a Instance, Option<String>, Option<String>, Option<String>);
        let judged: Vec<Judged> = instances
            .iter()
            .map(|i| {
                let mac = on_bridge(i, &self.bridge).and_then(|(dev, nic)| nic_mac(i, dev, nic));
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
                }
            })
            .collect()
    }
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouteState {
    /// Carrying traffic to the instance.
    Active,
    /// The instance is stopped: no traffic, claim held.
    Stopped,
    /// Running without an IPv4 on its LXD NIC yet: no traffic, claim held.
    NoAddress,
    /// Another instance holds the host/path or port.
    Conflict,
    /// Refused (management host, reserved port, invalid item or file).
    Refused,
}

#[derive(Debug, Clone, Serialize)]
pub struct Route {
    pub instance: String,
    pub item: String,
    pub public: String,
    pub backend: Option<String>,
    pub state: RouteState,
    pub auth: Option<Vec<String>>,
    pub problem: Option<String>,
}

impl Row for Route {
    fn headers() -> &'static [&'static str] {
        &["INSTANCE", "PUBLIC", "BACKEND", "STATE", "AUTH", "PROBLEM"]
    }

    fn cells(&self) -> Vec<String> {
        let state = serde_json::to_value(self.state).expect("state");
        vec![
            self.instance.clone(),
            self.public.clone(),
            self.backend.clone().unwrap_or_default(),
            state.as_str().unwrap_or_default().replace('_', " "),
            match &self.auth {
                None => String::new(),
                Some(g) if g.is_empty() => "sso".into(),
                Some(g) => format!("sso:{}", g.join(",")),
            },
            self.problem.clone().unwrap_or_default(),
        ]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub instance: String,
    pub item: String,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Dynamic files to have, by file name.
    pub files: BTreeMap<String, Value>,
    /// Files whose new content failed validation: left as they are.
    pub keep: BTreeSet<String>,
    pub entrypoints: BTreeSet<EntryPoint>,
    pub rules: BTreeSet<PortRule>,
    pub routes: Vec<Route>,
    pub problems: Vec<Problem>,
    /// The LXD project planned for.
    pub project: String,
    /// Every recorded claim after this plan (`claims::settle`).
    pub claims: Vec<claims::Record>,
}

fn public_address(item: &Item) -> String {
    match item {
        Item::Http {
            tls, host, path, ..
        } => format!(
            "{}://{host}{}",
            if *tls { "https" } else { "http" },
            path.as_deref().unwrap_or("")
        ),
        Item::Tcp { host_port, .. } => format!("tcp://:{host_port}"),
        Item::Udp { host_port, .. } => format!("udp://:{host_port}"),
        Item::Share { host, path } => format!("share://{host}{path}"),
    }
}

fn backend(item: &Item, ip: &str) -> String {
    match item {
        Item::Http { cport, .. } => format!("http://{ip}:{cport}"),
        Item::Tcp { cport, .. } | Item::Udp { cport, .. } => format!("{ip}:{cport}"),
        Item::Share { .. } => String::new(),
    }
}

/// Desired state from the labels and the recorded claims (`ctx.claims`):
/// each contested host, shared path or raw port goes to whoever held it
/// first; claims first asked for in the same sync go to the instance
/// created first, so a copy never steals its original's routes. Only
/// `ctx.project`'s files and firewall rules are planned; the other
/// projects' claims stand, and their raw ports stay entrypoints.
pub fn plan(sources: &[Source], ctx: &Context) -> Plan {
    let mut order: Vec<&Source> = sources
        .iter()
        .filter(|s| !s.label.trim().is_empty())
        .collect();
    order.sort_by(|a, b| (&a.created_at, &a.name).cmp(&(&b.created_at, &b.name)));
    let mut plan = Plan::default();
    // Per instance, its items in label order with the policy's verdict.
    type Judged = Vec<(Item, Option<(RouteState, String)>)>;
    let mut judged: Vec<(&Source, Judged)> = Vec::new();
    for src in order {
        let (items, errors) = labels::parse(&src.label);
        for e in errors {
            plan.problems.push(Problem {
                instance: src.name.clone(),
                item: e.item.clone(),
                message: e.message.clone(),
            });
            plan.routes.push(Route {
                instance: src.name.clone(),
                item: e.item,
                public: String::new(),
                backend: None,
                state: RouteState::Refused,
                auth: None,
                problem: Some(e.message),
            });
        }
        let mut mine: Judged = Vec::new();
        for item in items {
            // One route per host and path, one backend per port: a second
            // item for the same claim would silently replace the first.
            let twin = mine
                .iter()
                .find(|(a, ok)| ok.is_none() && a.claim() == item.claim())
                .map(|(a, _)| a);
            let refusal = match (ctx.refusal(&item), twin) {
                (Some(why), _) => Some((RouteState::Refused, why)),
                (None, Some(first)) if *first == item => continue,
                (None, Some(first)) => Some((
                    RouteState::Conflict,
                    format!(
                        "{} is already routed by `{first}` of this instance",
                        item.claim()
                    ),
                )),
                (None, None) => None,
            };
            mine.push((item, refusal));
        }
        judged.push((src, mine));
    }
    let wants: Vec<(&str, Vec<Item>)> = judged
        .iter()
        .map(|(src, items)| {
            let ok = items.iter().filter(|(_, r)| r.is_none());
            (src.name.as_str(), ok.map(|(i, _)| i.clone()).collect())
        })
        .collect();
    let settled = claims::settle(&ctx.project, &wants, &ctx.claims, &ctx.now);
    for ((src, items), verdicts) in judged.into_iter().zip(settled.refusals) {
        let mut verdicts = verdicts.into_iter();
        let mut accepted: Vec<Item> = Vec::new();
        for (item, policy) in items {
            let refusal = match policy {
                Some(r) => Some(r),
                None => verdicts
                    .next()
                    .flatten()
                    .map(|why| (RouteState::Conflict, why)),
            };
            if let Some((state, message)) = refusal {
                plan.problems.push(Problem {
                    instance: src.name.clone(),
                    item: item.to_string(),
                    message: message.clone(),
                });
                plan.routes.push(route(src, &item, state, Some(message)));
                continue;
            }
            accepted.push(item);
        }
        plan_instance(&mut plan, src, &accepted, ctx);
    }
    // Another project's raw ports keep their entrypoints in the one static file.
    for r in settled.records.iter().filter(|r| r.project != ctx.project) {
        match r.held {
            claims::Held::Tcp { port } => plan.entrypoints.insert(EntryPoint { udp: false, port }),
            claims::Held::Udp { port } => plan.entrypoints.insert(EntryPoint { udp: true, port }),
            _ => false,
        };
    }
    plan.claims = settled.records;
    plan.project = ctx.project.clone();
    plan
}

/// One instance's file, entrypoints, firewall rules and route rows, from
/// the items it may have.
fn plan_instance(plan: &mut Plan, src: &Source, accepted: &[Item], ctx: &Context) {
    for (udp, port) in accepted.iter().filter_map(Item::host_port) {
        plan.entrypoints.insert(EntryPoint { udp, port });
        plan.rules.insert(PortRule {
            port,
            udp,
            comment: ufw::expose_comment(&ctx.project, &src.name),
        });
    }
    if accepted.is_empty() {
        return;
    }
    let mut problem = None;
    let state = match (&src.ipv4, src.running, &src.unroutable) {
        (_, false, _) => RouteState::Stopped,
        (_, true, Some(why)) => {
            let message = format!("not routed: {why}");
            plan.problems.push(Problem {
                instance: src.name.clone(),
                item: String::new(),
                message: message.clone(),
            });
            problem = Some(message);
            RouteState::Refused
        }
        (None, true, None) => RouteState::NoAddress,
        (Some(_), true, None) => RouteState::Active,
    };
    // A stopped or unroutable instance keeps routes that answer 502, so
    // its hosts and paths never fall through to another tenant's.
    let backend = match state {
        RouteState::Active => src.ipv4.as_deref(),
        _ => None,
    };
    // A label of shares alone holds its hosts and routes nothing.
    if accepted.iter().any(|i| !matches!(i, Item::Share { .. })) {
        let owner = traefik::owner_id(&ctx.project, &src.name);
        let file = traefik::instance_config(&owner, backend, accepted, &ctx.route);
        let name = traefik::file_name(&ctx.project, &src.name);
        match traefik::validate_dynamic(&file) {
            Ok(()) => {
                plan.files.insert(name, file);
            }
            Err(errs) => {
                let message = format!("generated file does not validate: {}", errs.join("; "));
                plan.problems.push(Problem {
                    instance: src.name.clone(),
                    item: String::new(),
                    message: message.clone(),
                });
                plan.keep.insert(name);
                problem = Some(message);
            }
        }
    }
    for item in accepted {
        let st = if problem.is_some() {
            RouteState::Refused
        } else {
            state
        };
        plan.routes.push(route(src, item, st, problem.clone()));
    }
}

fn route(src: &Source, item: &Item, state: RouteState, problem: Option<String>) -> Route {
    Route {
        instance: src.name.clone(),
        item: item.to_string(),
        public: public_address(item),
        backend: match (state, &src.ipv4, item) {
            (_, _, Item::Share { .. }) => None,
            (RouteState::Active, Some(ip), _) => Some(backend(item, ip)),
            _ => None,
        },
        state,
        auth: match item {
            Item::Http { auth, .. } => auth.clone(),
            _ => None,
        },
        problem,
    }
}

// ---- applying ----

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    restart_pending: bool,
    last_restart_error: Option<String>,
}

fn state_path(e: &ExposeSettings) -> PathBuf {
    Path::new(&e.state_dir).join("expose-state.json")
}

fn load_state(e: &ExposeSettings) -> State {
    std::fs::read(state_path(e))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

#[derive(Debug, Clone, Serialize)]
pub struct TraefikStatus {
    pub restart_pending: bool,
    pub last_restart_error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SyncReport {
    pub dry_run: bool,
    pub written: Vec<String>,
    pub deleted: Vec<String>,
    pub kept_last_good: Vec<String>,
    pub firewall_added: Vec<PortRule>,
    pub firewall_removed: Vec<PortRule>,
    pub static_changed: bool,
    /// `not_needed`, `ok`, `failed`, or `would_restart` on a dry run.
    pub restart: String,
    /// After a failed restart, Traefik runs again with the previous static
    /// file (the old entrypoints): everything but the new ports works.
    pub rolled_back: bool,
    pub traefik: TraefikStatus,
    /// Files in the watched directory Traefik could not read, moved out of
    /// its sight (renamed `NAME.rejected`) so every other route keeps working.
    pub rejected: Vec<Rejected>,
    pub problems: Vec<Problem>,
    pub routes: Vec<Route>,
}

impl SyncReport {
    pub fn changed(&self) -> bool {
        !(self.written.is_empty()
            && self.deleted.is_empty()
            && self.rejected.is_empty()
            && self.firewall_added.is_empty()
            && self.firewall_removed.is_empty()
            && !self.static_changed)
    }
}

impl Human for SyncReport {
    fn human(&self) -> String {
        let mut lines = Vec::new();
        let verb = if self.dry_run { "would " } else { "" };
        for f in &self.written {
            lines.push(format!("{verb}write {f}"));
        }
        for f in &self.deleted {
            lines.push(format!("{verb}delete {f}"));
        }
        for r in &self.rejected {
            lines.push(format!(
                "{verb}move {} out of Traefik's sight to {}: {}",
                r.file, r.moved_to, r.reason
            ));
        }
        for r in &self.firewall_added {
            lines.push(format!("{verb}allow {} ({})", r.spec(), r.comment));
        }
        for r in &self.firewall_removed {
            lines.push(format!("{verb}remove rule {} ({})", r.spec(), r.comment));
        }
        if self.static_changed {
            lines.push(format!(
                "{verb}rewrite the static file (entrypoints changed); restart: {}",
                self.restart
            ));
        }
        if self.traefik.restart_pending {
            lines.push(format!(
                "Traefik restart pending: {}",
                self.traefik.last_restart_error.as_deref().unwrap_or("")
            ));
        }
        for p in &self.problems {
            lines.push(format!("problem: {} {}: {}", p.instance, p.item, p.message));
        }
        if lines.is_empty() {
            lines.push("In sync.".into());
        }
        lines.join("\n")
    }
}

fn ufw_of(e: &ExposeSettings) -> Ufw {
    Ufw::from_settings(e)
}

/// Read LXD once and bring Traefik's files, the firewall and Traefik in
/// line. LXD failing means nothing is touched.
pub fn sync(lxd: &Lxd, settings: &Settings, dry_run: bool) -> Result<SyncReport> {
    let _lock = Lock::for_change(crate::fs::Resource::Expose, dry_run)?;
    sync_locked(lxd, settings, dry_run)
}

fn sync_locked(lxd: &Lxd, settings: &Settings, dry_run: bool) -> Result<SyncReport> {
    // Before anything is written: the static file serves the API there.
    traefik::supervise::check_settings(&settings.expose)?;
    traefik::check_project_name(lxd.project()).map_err(Error::Usage)?;
    let (instances, backends) = Backends::read_with_instances(lxd, settings)?;
    let sources = backends.sources(&instances);
    let host = HostView::read(&settings.expose)?;
    let plan = plan(&sources, &host.context(settings, &sources, lxd.project())?);
    let (legacy, legacy_problems) =
        legacy_files(lxd.project(), &settings.expose, &sources, &instances);
    let mut report = apply(settings, &host, plan, &legacy, dry_run)?;
    report.problems.extend(legacy_problems);
    Ok(report)
}

/// Files from before names carried the project (`trm-<instance>.yml`)
/// that this sync deletes: see `legacy_fate`. The others stay, each with
/// a problem saying why.
fn legacy_files(
    project: &str,
    e: &ExposeSettings,
    sources: &[Source],
    all_instances: &[Instance],
) -> (BTreeSet<String>, Vec<Problem>) {
    let old: Vec<(String, String)> = std::fs::read_dir(&e.dynamic_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|x| {
            let name = x.file_name().to_string_lossy().into_owned();
            match traefik::owner_of_file(&name)? {
                traefik::FileOwner::Legacy { instance } => Some((name, instance)),
                traefik::FileOwner::Project { .. } => None,
            }
        })
        .collect();
    if old.is_empty() {
        return (BTreeSet::new(), Vec::new());
    }
    // For each instance name, the other projects that have one (from the
    // every-project read the sync already made).
    let mut elsewhere: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for i in all_instances.iter().filter(|i| i.project != project) {
        elsewhere
            .entry(i.name.as_str())
            .or_default()
            .insert(i.project.clone());
    }
    let mut delete = BTreeSet::new();
    let mut problems = Vec::new();
    for (name, instance) in old {
        let mine = sources.iter().any(|s| s.name == instance);
        let others = elsewhere
            .get(instance.as_str())
            .cloned()
            .unwrap_or_default();
        match legacy_fate(&name, &instance, project, mine, &others) {
            None => {
                delete.insert(name);
            }
            Some(message) => problems.push(Problem {
                instance,
                item: name,
                message,
            }),
        }
    }
    (delete, problems)
}

/// Whether this sync of `project` deletes the old file `name` of
/// `instance` (`None`) or leaves it, and why. `mine`: this project has an
/// instance of that name; `others`: the other projects that do. The old name says no project, so the file is
/// this project's only when no other project has such an instance: one
/// project's sync must never drop another's routes.
fn legacy_fate(
    name: &str,
    instance: &str,
    project: &str,
    mine: bool,
    others: &BTreeSet<String>,
) -> Option<String> {
    if others.is_empty() {
        return None;
    }
    let old = format!("{name} is from before file names carried the project");
    let names: Vec<String> = others.iter().map(|p| format!("'{p}'")).collect();
    let s = if names.len() > 1 { "s" } else { "" };
    let others = format!("project{s} {}", names.join(", "));
    Some(if mine {
        format!(
            "{old}, and both this project ('{project}') and {others} have an instance '{instance}', so whose it is is ambiguous: it is left in place. Delete it by hand once each of them has synced (their routes now live in trm-<project>_{instance}.yml)"
        )
    } else {
        format!(
            "{old}, and instance '{instance}' is another project's ({others}): that project's sync replaces it"
        )
    })
}

/// What the host says, read once per change: the live static file (its
/// entrypoints are Traefik's own listeners), UFW's rules and the claims.
pub struct HostView {
    live_static: Option<Value>,
    ufw_added: Vec<String>,
    claims: Vec<claims::Record>,
}

impl HostView {
    pub fn read(e: &ExposeSettings) -> Result<HostView> {
        Ok(HostView {
            live_static: Self::live_static(e),
            ufw_added: if e.ufw {
                ufw_of(e).added()?
            } else {
                Vec::new()
            },
            claims: claims::load(e)?,
        })
    }

    /// For reports that change nothing (`check`, `list`): UFW's rules and
    /// the claims when they can be read, else none and why not.
    pub fn read_lenient(e: &ExposeSettings) -> (HostView, Option<String>) {
        let mut notes = Vec::new();
        let ufw_added = match e.ufw.then(|| ufw_of(e).added()) {
            Some(Ok(rules)) => rules,
            Some(Err(err)) => {
                notes.push(format!("UFW's rules were not read: {err}"));
                Vec::new()
            }
            None => Vec::new(),
        };
        let claims = claims::load(e).unwrap_or_else(|err| {
            notes.push(format!("the recorded claims were not read: {err}"));
            Vec::new()
        });
        (
            HostView {
                live_static: Self::live_static(e),
                ufw_added,
                claims,
            },
            (!notes.is_empty()).then(|| notes.join("; ")),
        )
    }

    fn live_static(e: &ExposeSettings) -> Option<Value> {
        std::fs::read(&e.static_file)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// The policy context for judging these sources' labels in `project`.
    pub fn context(
        &self,
        settings: &Settings,
        sources: &[Source],
        project: &str,
    ) -> Result<Context> {
        let wanted = sources
            .iter()
            .flat_map(|s| labels::parse(&s.label).0)
            .filter_map(|i| i.host_port())
            .collect();
        let mut ctx = Context::from_settings(settings)?.with_host(
            self.live_static.as_ref(),
            self.ufw_added.clone(),
            &wanted,
        );
        ctx.project = project.to_string();
        ctx.claims = self.claims.clone();
        Ok(ctx)
    }
}

/// Bring the host in line with `plan` for its project: only that
/// project's files and firewall rules are written or deleted (and the
/// `legacy` files), the claims file and the shared static file updated.
fn apply(
    settings: &Settings,
    host: &HostView,
    plan: Plan,
    legacy: &BTreeSet<String>,
    dry_run: bool,
) -> Result<SyncReport> {
    let e = &settings.expose;
    // The claims first: a route written without its record would let the
    // next sync hand its host to an older instance.
    if plan.claims != host.claims && !dry_run {
        claims::save(e, &plan.claims)?;
    }
    let project = plan.project.clone();
    let dir = Path::new(&e.dynamic_dir);
    let mut written = Vec::new();
    let mut deleted = Vec::new();
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|x| x.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    let existing: BTreeSet<String> = names
        .iter()
        .filter(|n| {
            matches!(traefik::owner_of_file(n),
                Some(traefik::FileOwner::Project { project: p, .. }) if p == project)
        })
        .cloned()
        .collect();
    // Terrarium's instance files, every project's, are validated before
    // they are written: never the foreign-file sweep's to move.
    let skip: BTreeSet<String> = names
        .iter()
        .filter(|n| traefik::is_our_file(n))
        .cloned()
        .chain(plan.files.keys().cloned())
        .collect();
    let (rejected, stuck) = foreign_files::reject_unreadable(dir, &skip, dry_run);
    let mut problems = plan.problems;
    problems.extend(rejected.iter().map(|r| Problem {
        instance: String::new(),
        item: r.file.clone(),
        message: format!(
            "Traefik cannot read {} ({}); moved to {} so the other routes keep working",
            r.file, r.reason, r.moved_to
        ),
    }));
    problems.extend(stuck.into_iter().map(|(file, message)| Problem {
        instance: String::new(),
        item: file,
        message,
    }));
    for (name, doc) in &plan.files {
        let text = serde_json::to_string_pretty(doc).expect("json") + "\n";
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            if !dry_run {
                atomic_write(&path, text.as_bytes(), 0o644)?;
            }
            written.push(name.clone());
        }
    }
    let stale: Vec<String> = existing
        .into_iter()
        .filter(|n| !plan.files.contains_key(n) && !plan.keep.contains(n))
        .chain(legacy.iter().cloned())
        .collect();
    for name in stale {
        if !dry_run {
            std::fs::remove_file(dir.join(&name))
                .map_err(|err| Error::io(format!("deleting {}", dir.join(&name).display()), err))?;
        }
        deleted.push(name);
    }

    let (mut firewall_added, mut firewall_removed) = (Vec::new(), Vec::new());
    if e.ufw {
        let fw = ufw_of(e);
        // Rules of other projects' instances are theirs.
        let mine = ufw::expose_comment(&project, "");
        let owned: BTreeSet<PortRule> = ufw::owned_rules(&host.ufw_added)
            .into_iter()
            .filter(|r| r.comment.starts_with(&mine))
            .collect();
        for r in owned.difference(&plan.rules) {
            if !dry_run {
                fw.delete(r)?;
            }
            firewall_removed.push(r.clone());
        }
        for r in plan.rules.difference(&owned) {
            if !dry_run {
                fw.allow(r)?;
            }
            firewall_added.push(r.clone());
        }
    }

    let static_path = Path::new(&e.static_file);
    let doc = traefik::static_config(&static_options(e), &plan.entrypoints);
    let static_changed = host.live_static.as_ref() != Some(&doc);
    let mut state = load_state(e);
    let mut restart = "not_needed".to_string();
    let mut rolled_back = false;
    // The file Traefik ran with, to go back to when the new one fails.
    let previous = std::fs::read(static_path).ok();
    if static_changed {
        traefik::validate_static(&doc)
            .map_err(|errs| Error::parse("the generated Traefik static file", errs.join("; ")))?;
        if !dry_run {
            let text = serde_json::to_string_pretty(&doc).expect("json") + "\n";
            atomic_write(static_path, text.as_bytes(), 0o644)?;
            state.restart_pending = true;
        }
    }
    if dry_run {
        if static_changed || state.restart_pending {
            restart = "would_restart".into();
        }
    } else if state.restart_pending {
        match traefik::supervise::restart(e) {
            Ok(_) => {
                state = State::default();
                restart = "ok".into();
            }
            Err(err) => {
                state.last_restart_error = Some(err.to_string());
                restart = "failed".into();
                // Keep the routes Traefik had: back to the last file it
                // ran with. The new one is retried by the next sync.
                if let (true, Some(old)) = (static_changed, previous) {
                    atomic_write(static_path, &old, 0o644)?;
                    rolled_back = traefik::supervise::restart(e).is_ok();
                }
            }
        }
        save_state(e, &state)?;
    }
    Ok(SyncReport {
        dry_run,
        written,
        deleted,
        kept_last_good: plan.keep.into_iter().collect(),
        firewall_added,
        firewall_removed,
        static_changed,
        restart,
        rolled_back,
        traefik: TraefikStatus {
            restart_pending: state.restart_pending,
            last_restart_error: state.last_restart_error,
        },
        rejected,
        problems,
        routes: plan.routes,
    })
}

/// Restart Traefik after another tool (trm-harden) rewrote its static
/// file. A failure is remembered, so the next sync retries it.
pub fn restart_after_static_change(e: &ExposeSettings) -> Result<String> {
    let mut state = load_state(e);
    let outcome = match traefik::supervise::restart(e) {
        Ok(_) => {
            state = State::default();
            "ok".to_string()
        }
        Err(err) => {
            state.restart_pending = true;
            state.last_restart_error = Some(err.to_string());
            format!("failed: {err}")
        }
    };
    save_state(e, &state)?;
    Ok(outcome)
}

fn save_state(e: &ExposeSettings, s: &State) -> Result<()> {
    let text = serde_json::to_vec_pretty(s).expect("json");
    atomic_write(&state_path(e), &text, 0o644)
}

/// `trm-expose proxy start|stop|restart|status`, serialised with syncs
/// (which restart Traefik too).
pub fn proxy(settings: &Settings, action: &str) -> Result<traefik::supervise::Status> {
    use traefik::supervise;
    let e = &settings.expose;
    let _lock = Lock::for_change(crate::fs::Resource::Expose, action == "status")?;
    match action {
        "start" => supervise::start(e),
        "restart" => supervise::restart(e),
        "stop" => {
            supervise::stop(e)?;
            Ok(supervise::status(e))
        }
        "status" => Ok(supervise::status(e)),
        other => Err(Error::Usage(format!("unknown proxy action '{other}'"))),
    }
}

// ---- add / remove / list ----

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub instance: String,
    pub label_before: String,
    pub label_after: String,
    pub changed: bool,
    pub sync: Option<SyncReport>,
}

impl Human for Change {
    fn human(&self) -> String {
        let mut s = if self.changed {
            format!(
                "{}: user.proxy is now\n  {}",
                self.instance,
                self.label_after.replace('\n', "\n  ")
            )
        } else {
            format!("{}: nothing to change", self.instance)
        };
        if let Some(r) = &self.sync {
            s.push('\n');
            s.push_str(&r.human());
        }
        s
    }
}

/// Add one item to an instance's label after checking it can be held.
pub fn add(
    lxd: &Lxd,
    settings: &Settings,
    instance: &str,
    item: Item,
    dry_run: bool,
) -> Result<Change> {
    validate_instance_name(instance)?;
    let _lock = Lock::for_change(crate::fs::Resource::Expose, dry_run)?;
    let (instances, backends) = Backends::read_with_instances(lxd, settings)?;
    let target = instances
        .iter()
        .find(|i| i.name == instance && i.project == lxd.project())
        .ok_or_else(|| Error::NotFound {
            kind: "instance",
            name: instance.to_string(),
        })?;
    let before = target.config.get(labels::KEY).cloned().unwrap_or_default();
    let (items, _) = labels::parse(&before);
    if items.contains(&item) {
        return Ok(Change {
            instance: instance.into(),
            label_before: before.clone(),
            label_after: before,
            changed: false,
            sync: None,
        });
    }
    // Keep the owner's own spelling of bad items: they stay visible.
    let after = append_item(&before, &item);
    let mut sources = backends.sources(&instances);
    if let Some(s) = sources.iter_mut().find(|s| s.name == instance) {
        s.label = after.clone();
    }
    traefik::check_project_name(lxd.project()).map_err(Error::Usage)?;
    let ctx = HostView::read(&settings.expose)?.context(settings, &sources, lxd.project())?;
    let p = plan(&sources, &ctx);
    if let Some(problem) = p
        .problems
        .iter()
        .find(|x| x.instance == instance && x.item == item.to_string())
    {
        return Err(Error::Usage(format!(
            "cannot expose {item} on '{instance}': {}",
            problem.message
        )));
    }
    if dry_run {
        return Ok(Change {
            instance: instance.into(),
            label_before: before,
            label_after: after,
            changed: true,
            sync: None,
        });
    }
    lxd.set_config(instance, labels::KEY, &after)?;
    let report = sync_locked(lxd, settings, false)?;
    Ok(Change {
        instance: instance.into(),
        label_before: before,
        label_after: after,
        changed: true,
        sync: Some(report),
    })
}

fn append_item(label: &str, item: &Item) -> String {
    let label = label.trim();
    if label.is_empty() {
        item.to_string()
    } else {
        format!("{label}\n{item}")
    }
}

/// What `remove` takes away.
#[derive(Debug, Clone)]
pub enum Selector {
    Host(String),
    Tcp(u16),
    Udp(u16),
    All,
}

pub fn remove(
    lxd: &Lxd,
    settings: &Settings,
    instance: &str,
    sel: &Selector,
    dry_run: bool,
) -> Result<Change> {
    validate_instance_name(instance)?;
    let _lock = Lock::for_change(crate::fs::Resource::Expose, dry_run)?;
    let i = lxd.instance(instance)?;
    let before = i.config.get(labels::KEY).cloned().unwrap_or_default();
    let (items, errors) = labels::parse(&before);
    let host = match sel {
        Selector::Host(h) => Some(labels::normalize_host(h).map_err(Error::Usage)?),
        _ => None,
    };
    let keep: Vec<&Item> = items
        .iter()
        .filter(|it| match (sel, it) {
            (Selector::All, _) => false,
            (Selector::Host(_), Item::Http { host: h, .. } | Item::Share { host: h, .. }) => {
                Some(h) != host.as_ref()
            }
            (Selector::Tcp(p), Item::Tcp { host_port, .. }) => host_port != p,
            (Selector::Udp(p), Item::Udp { host_port, .. }) => host_port != p,
            _ => true,
        })
        .collect();
    if keep.len() == items.len() && !matches!(sel, Selector::All) {
        return Err(Error::Usage(format!(
            "instance '{instance}' has no exposure matching that"
        )));
    }
    // Unparsable items go with --all; otherwise they stay for the owner to fix.
    let mut after_items: Vec<String> = keep.iter().map(|i| i.to_string()).collect();
    if !matches!(sel, Selector::All) {
        after_items.extend(errors.into_iter().map(|e| e.item));
    }
    let after = after_items.join("\n");
    let changed = after != before;
    if dry_run || !changed {
        return Ok(Change {
            instance: instance.into(),
            label_before: before,
            label_after: after,
            changed,
            sync: None,
        });
    }
    if after.is_empty() {
        lxd.unset_config(instance, labels::KEY)?;
    } else {
        lxd.set_config(instance, labels::KEY, &after)?;
    }
    let report = sync_locked(lxd, settings, false)?;
    Ok(Change {
        instance: instance.into(),
        label_before: before,
        label_after: after,
        changed,
        sync: Some(report),
    })
}

/// Every public route and port, with Traefik's restart status.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub routes: Vec<Route>,
    pub traefik: TraefikStatus,
}

impl Human for Listing {
    fn human(&self) -> String {
        let rows = self.routes.iter().map(Row::cells).collect();
        let mut s = crate::output::table(Route::headers(), rows);
        if self.traefik.restart_pending {
            s.push_str(&format!(
                "\nTraefik restart pending (last error: {})",
                self.traefik.last_restart_error.as_deref().unwrap_or("none")
            ));
        }
        s
    }
}

pub fn list(lxd: &Lxd, settings: &Settings) -> Result<Listing> {
    let (instances, backends) = Backends::read_with_instances(lxd, settings)?;
    let sources = backends.sources(&instances);
    let ctx =
        HostView::read_lenient(&settings.expose)
            .0
            .context(settings, &sources, lxd.project())?;
    let p = plan(&sources, &ctx);
    let st = load_state(&settings.expose);
    Ok(Listing {
        routes: p.routes,
        traefik: TraefikStatus {
            restart_pending: st.restart_pending,
            last_restart_error: st.last_restart_error,
        },
    })
}

// ---- background service ----

/// The watcher service, and a timer-driven full sync as its backstop.
pub fn units(binary: &Path, interval_minutes: u32) -> Vec<crate::systemd::Unit> {
    let bin = binary.display();
    vec![
        crate::systemd::Unit {
            name: "trm-expose-watch.service".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium: follow LXD and keep Traefik routes in sync\nAfter=lxd.service snap.lxd.daemon.service\n\n\
                 [Service]\nExecStart={bin} watch --format jsonl\nRestart=always\nRestartSec=2\n\n\
                 [Install]\nWantedBy=multi-user.target\n"
            ),
            enable: true,
        },
        crate::systemd::Unit {
            name: "trm-expose-sync.service".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium: full sync of public exposure\n\n[Service]\nType=oneshot\nExecStart={bin} sync --format json\n"
            ),
            enable: false,
        },
        crate::systemd::Unit {
            name: "trm-expose-sync.timer".into(),
            content: format!(
                "[Unit]\nDescription=Terrarium: periodic full sync of public exposure\n\n\
                 [Timer]\nOnBootSec=2min\nOnUnitActiveSec={interval_minutes}min\n\n[Install]\nWantedBy=timers.target\n"
            ),
            enable: true,
        },
    ]
}

// ---- watch ----

/// Lifecycle actions after which routes may have changed.
const WATCHED: &[&str] = &[
    "instance-started",
    "instance-stopped",
    "instance-restarted",
    "instance-shutdown",
    "instance-updated",
    "instance-deleted",
    "instance-renamed",
    "instance-created",
];

/// Follow LXD's lifecycle events and sync after each relevant one, plus a
/// full sync every `interval` as a backstop. A started instance gets its
/// address from DHCP a moment later, so until every running labelled
/// instance has one, ask LXD for those instances every 100 ms (up to
/// 30 s) and sync as soon as one has it.
pub fn watch(
    lxd: &Lxd,
    settings: &Settings,
    interval: Duration,
    report: &mut dyn FnMut(Result<SyncReport>) -> Result<()>,
) -> Result<()> {
    use std::io::BufRead;
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel::<String>();
    let spawn_monitor = |tx: mpsc::Sender<String>| -> Result<std::process::Child> {
        let mut child = lxd.monitor_lifecycle()?;
        let out = child.stdout.take().expect("piped");
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(child)
    };
    let mut monitor = spawn_monitor(tx.clone())?;
    let mut last_full = std::time::Instant::now();
    // A report that cannot be delivered (our reader went away) ends the
    // watch: the error goes back to the caller, the monitor is stopped.
    let run = |report: &mut dyn FnMut(Result<SyncReport>) -> Result<()>,
               monitor: &mut std::process::Child|
     -> Result<Vec<String>> {
        let r = sync(lxd, settings, false);
        let mut w: Vec<String> = match &r {
            Ok(rep) => rep
                .routes
                .iter()
                .filter(|x| x.state == RouteState::NoAddress)
                .map(|x| x.instance.clone())
                .collect(),
            Err(_) => Vec::new(),
        };
        w.dedup();
        if let Err(e) = report(r) {
            let _ = monitor.kill();
            let _ = monitor.wait();
            return Err(e);
        }
        Ok(w)
    };
    let settle =
        |w: &[String]| (!w.is_empty()).then(|| std::time::Instant::now() + Duration::from_secs(30));
    // The running labelled instances still without an address.
    let mut waiting = run(report, &mut monitor)?;
    let mut settle_until = settle(&waiting);
    loop {
        // While an address is awaited, ask LXD for just those instances
        // often (cheap), and sync the moment one has its address.
        let tick = if settle_until.is_some() {
            Duration::from_millis(100)
        } else {
            Duration::from_secs(1)
        };
        match rx.recv_timeout(tick) {
            Ok(line) => {
                let relevant = serde_json::from_str::<Value>(&line)
                    .ok()
                    .and_then(|v| v["metadata"]["action"].as_str().map(str::to_string))
                    .is_some_and(|a| WATCHED.contains(&a.as_str()));
                if relevant {
                    waiting = run(report, &mut monitor)?;
                    settle_until = settle(&waiting);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => unreachable!("we hold a sender"),
        }
        if let Ok(Some(_)) = monitor.try_wait() {
            // LXD restarted or the monitor died: follow again, and resync
            // in case events were missed meanwhile.
            std::thread::sleep(Duration::from_secs(1));
            monitor = spawn_monitor(tx.clone())?;
            waiting = run(report, &mut monitor)?;
            settle_until = settle(&waiting);
        }
        if let Some(until) = settle_until {
            let arrived = waiting.iter().any(|name| {
                lxd.instance(name)
                    // What the container reports is only a hint to look
                    // again: the sync itself reads the host's leases.
                    .is_ok_and(|i| !i.ipv4().is_empty() || !i.is_running())
            });
            if std::time::Instant::now() > until {
                settle_until = None;
            } else if arrived {
                waiting = run(report, &mut monitor)?;
                settle_until = settle(&waiting);
            }
        }
        if last_full.elapsed() >= interval {
            waiting = run(report, &mut monitor)?;
            settle_until = settle(&waiting).or(settle_until);
            last_full = std::time::Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> Context {
        let mut s = Settings::default();
        s.expose.root_domain = "example.com".into();
        Context::from_settings(&s).unwrap()
    }

    fn fname(instance: &str) -> String {
        traefik::file_name("default", instance)
    }

    fn src(name: &str, created: &str, label: &str) -> Source {
        Source {
            name: name.into(),
            created_at: created.into(),
            running: true,
            ipv4: Some("10.100.0.9".into()),
            unroutable: None,
            label: label.into(),
        }
    }

    #[test]
    fn an_old_file_is_deleted_only_when_no_other_project_has_its_instance() {
        type Others = BTreeSet<String>;
        let set = |ps: &[&str]| -> Others { ps.iter().map(|p| p.to_string()).collect() };
        // (this project has it, the other projects', a word of why it stays)
        let cases: Vec<(bool, Others, Option<&str>)> = vec![
            (true, set(&[]), None),
            (false, set(&[]), None),
            (
                true,
                set(&["acc-a"]),
                Some("this project ('default') and project 'acc-a' have an instance 'web', so whose it is is ambiguous"),
            ),
            (true, set(&["acc-a", "acc-b"]), Some("projects 'acc-a', 'acc-b'")),
            (false, set(&["acc-a"]), Some("another project's (project 'acc-a')")),
        ];
        for (mine, others, want) in cases {
            let got = legacy_fate("trm-web.yml", "web", "default", mine, &others);
            match (want, &got) {
                (None, None) => {}
                (Some(word), Some(why)) => {
                    assert!(why.contains(word), "{mine} {others:?}: {why}");
                    assert!(why.starts_with("trm-web.yml "), "{why}");
                }
                _ => panic!("{mine} {others:?}: {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn claims_are_saved_before_any_route_and_a_dry_run_saves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let dynamic = d.path().join("dynamic");
        std::fs::create_dir(&dynamic).unwrap();
        let mut s = Settings::default();
        s.expose.root_domain = "example.com".into();
        s.expose.dynamic_dir = dynamic.display().to_string();
        s.expose.static_file = d.path().join("traefik.json").display().to_string();
        let host = HostView {
            live_static: None,
            ufw_added: Vec::new(),
            claims: Vec::new(),
        };
        let planned = || {
            plan(
                &[src("web", "2026-01-01", "https://web.example.com")],
                &ctx(),
            )
        };
        assert!(!planned().files.is_empty() && !planned().claims.is_empty());
        let routes = || std::fs::read_dir(&dynamic).unwrap().count();

        // The claims cannot be saved (a directory is in their way): no route.
        let state = d.path().join("state");
        s.expose.state_dir = state.display().to_string();
        std::fs::create_dir_all(claims::path(&s.expose)).unwrap();
        let Err(err) = apply(&s, &host, planned(), &BTreeSet::new(), false) else {
            panic!("the claims cannot be saved, yet apply went on");
        };
        let err = err.to_string();
        assert!(err.contains("expose-claims.json"), "{err}");
        assert_eq!(routes(), 0, "no route without its claim on file");

        // A dry run writes neither, even where it could.
        std::fs::remove_dir(claims::path(&s.expose)).unwrap();
        let rep = apply(&s, &host, planned(), &BTreeSet::new(), true).unwrap();
        assert!(!rep.written.is_empty(), "it reports what it would write");
        assert_eq!(routes(), 0);
        assert!(
            !claims::path(&s.expose).exists(),
            "a dry run saves no claim"
        );
    }

    #[test]
    fn the_base_domain_is_checked_and_never_guessed() {
        let route = || Some(std::net::Ipv4Addr::new(203, 0, 113, 7));
        let no_route = || None;
        let e = |root: &str, ip: &str| ExposeSettings {
            root_domain: root.into(),
            public_ipv4: ip.into(),
            ..ExposeSettings::default()
        };
        for (root, ip, has_route, want) in [
            ("Example.COM", "", true, Ok("example.com")),
            ("example.com.", "", true, Ok("example.com")),
            (
                "exa mple.com",
                "",
                true,
                Err("expose.root_domain: host 'exa mple.com'"),
            ),
            ("-x.com", "", true, Err("expose.root_domain")),
            ("", "198.51.100.4", false, Ok("198-51-100-4.traefik.me")),
            ("", "", true, Ok("203-0-113-7.traefik.me")),
            ("", "", false, Err("no expose.root_domain is set")),
            ("", "127.0.0.1", true, Err("not a public address")),
            ("", "nope", true, Err("is not an IPv4 address")),
        ] {
            let got = if has_route {
                base_domain_of(&e(root, ip), route)
            } else {
                base_domain_of(&e(root, ip), no_route)
            };
            match (want, got) {
                (Ok(w), Ok(g)) => assert_eq!(g, w),
                (Err(w), Err(g)) => assert!(g.to_string().contains(w), "{root:?}/{ip:?}: {g}"),
                (w, g) => panic!("{root:?}/{ip:?}: want {w:?}, got {g:?}"),
            }
        }
    }

    #[test]
    fn uppercase_root_domain_still_guards_the_management_hosts() {
        let mut s = Settings::default();
        s.expose.root_domain = "Example.com".into();
        let ctx = Context::from_settings(&s).unwrap();
        let p = plan(&[src("a", "1", "https://manage.example.com:3000")], &ctx);
        assert_eq!(p.routes[0].state, RouteState::Refused, "{:?}", p.routes);
    }

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

    #[test]
    fn an_unroutable_running_instance_holds_its_claims_without_a_backend() {
        let mut a = src("a", "1", "http://h.example.com:3000");
        a.ipv4 = None;
        a.unroutable = Some("its NIC eth0 lets it use any address".into());
        let b = src("b", "2", "http://h.example.com:3000");
        let p = plan(&[a, b], &ctx());
        let states: Vec<(&str, RouteState)> = p
            .routes
            .iter()
            .map(|r| (r.instance.as_str(), r.state))
            .collect();
        assert_eq!(
            states,
            [("a", RouteState::Refused), ("b", RouteState::Conflict)]
        );
        assert!(p.routes[0].backend.is_none());
        assert!(p
            .problems
            .iter()
            .any(|x| x.instance == "a" && x.message.contains("any address")));
        let file = serde_json::to_string(&p.files[&fname("a")]).unwrap();
        assert!(!file.contains("10.100.0.9"), "{file}");
    }

    #[test]
    fn one_instance_cannot_route_one_claim_twice() {
        let sources = vec![src(
            "a",
            "1",
            "http://h.example.com:3000, http://h.example.com:3001, tcp://15000:3000, tcp://15000:3001, http://h.example.com:3000",
        )];
        let p = plan(&sources, &ctx());
        let msgs: Vec<&str> = p.problems.iter().map(|x| x.item.as_str()).collect();
        assert_eq!(
            msgs,
            ["http://h.example.com:3001", "tcp://15000:3001"],
            "{:?}",
            p.problems
        );
        assert!(p.problems[0]
            .message
            .contains("already routed by `http://h.example.com:3000`"));
        let file = p.files[&fname("a")].to_string();
        assert!(file.contains(":3000") && !file.contains(":3001"), "{file}");
    }

    #[test]
    fn the_first_created_keeps_a_contested_claim() {
        let sources = vec![
            src(
                "copy",
                "2026-02-01T00:00:00Z",
                "https://app.example.com, tcp://2222:22",
            ),
            src(
                "original",
                "2026-01-01T00:00:00Z",
                "https://app.example.com\ntcp://2222:22",
            ),
        ];
        let p = plan(&sources, &ctx());
        assert!(p.files.contains_key(&fname("original")));
        assert!(!p.files.contains_key(&fname("copy")));
        assert_eq!(p.problems.len(), 2);
        assert!(p
            .problems
            .iter()
            .all(|x| x.instance == "copy" && x.message.contains("held by instance 'original'")));
        assert_eq!(p.rules.len(), 1);
        assert!(p
            .rules
            .iter()
            .next()
            .unwrap()
            .comment
            .ends_with("/original"));
    }

    #[test]
    fn management_hosts_and_host_ports_are_refused() {
        let mut c = ctx();
        c.busy.insert((true, 67), "dnsmasq".into());
        let sources = vec![src("a", "1", "https://manage.example.com, tcp://22:22, tcp://8443:1, udp://4180:1, udp://67, https://ok.example.com")];
        let p = plan(&sources, &c);
        assert_eq!(p.problems.len(), 5, "{:?}", p.problems);
        let file = &p.files[&fname("a")];
        assert!(file.to_string().contains("ok.example.com"));
        assert!(p.entrypoints.is_empty());
    }

    #[test]
    fn stopped_instances_route_nothing_but_keep_their_claims() {
        let mut stopped = src("a", "1", "https://app.example.com, tcp://2222:22");
        stopped.running = false;
        let sources = vec![stopped, src("b", "2", "https://app.example.com")];
        let p = plan(&sources, &ctx());
        let file = p.files[&fname("a")].to_string();
        assert!(
            file.contains("http://127.0.0.1:0") && !file.contains("10.100.0.9"),
            "a stopped instance's routes point nowhere: {file}"
        );
        assert!(!p.files.contains_key(&fname("b")));
        assert_eq!(p.entrypoints.len(), 1, "the port stays claimed");
        assert!(p.problems.iter().any(|x| x.instance == "b"));
        assert!(p
            .routes
            .iter()
            .filter(|r| r.instance == "a")
            .all(|r| r.state == RouteState::Stopped));
    }

    #[test]
    fn one_bad_label_never_blocks_the_others() {
        let sources = vec![
            src("bad", "1", "https://{{evil}}, ftp://x"),
            src("good", "2", "https://good.example.com"),
        ];
        let p = plan(&sources, &ctx());
        assert!(p.files.contains_key(&fname("good")));
        assert_eq!(p.problems.len(), 2);
    }

    fn rec(held: claims::Held, project: &str, instance: &str) -> claims::Record {
        claims::Record::new(held, project, instance, "2026-01-01T00:00:00Z")
    }

    /// What a user of the planned files would see: which instance's file
    /// routes which rule, and what was refused and why.
    #[test]
    fn hosts_paths_and_ports_go_to_their_first_holder() {
        type Case<'a> = (
            &'a str,
            Vec<claims::Record>,
            Vec<(&'a str, &'a str, &'a str)>,
            Vec<(&'a str, &'a str)>,
            Vec<(&'a str, &'a str)>,
        );
        use claims::Held;
        let host = |h: &str| Held::Host { host: h.into() };
        let cases: Vec<Case> = vec![
            (
                "B cannot route /api under A's host behind A's back",
                vec![],
                vec![
                    ("a", "1", "https://app.example.com@auth:admins"),
                    ("b", "2", "https://app.example.com/api"),
                ],
                vec![("a", "Host(`app.example.com`)")],
                vec![("b", "whose label does not share /api")],
            ),
            (
                "A shares /api: B routes it, and nothing else of A's",
                vec![],
                vec![
                    (
                        "a",
                        "1",
                        "https://app.example.com@auth:admins, share://app.example.com/api",
                    ),
                    (
                        "b",
                        "2",
                        "https://app.example.com/api, https://app.example.com/admin",
                    ),
                ],
                vec![
                    ("a", "Host(`app.example.com`)"),
                    ("b", "Host(`app.example.com`) && PathPrefix(`/api`)"),
                ],
                vec![("b", "does not share /admin")],
            ),
            (
                "an older instance cannot take a host a newer one holds",
                vec![rec(host("app.example.com"), "default", "new")],
                vec![
                    ("old", "1", "https://app.example.com"),
                    ("new", "2", "https://app.example.com"),
                ],
                vec![("new", "Host(`app.example.com`)")],
                vec![("old", "held by instance 'new'")],
            ),
            (
                "another project's host and port are refused, its files not planned",
                vec![
                    rec(host("app.example.com"), "acc-a", "web"),
                    rec(Held::Tcp { port: 2222 }, "acc-a", "db"),
                ],
                vec![(
                    "web",
                    "1",
                    "https://app.example.com, tcp://2222:22, https://own.example.com",
                )],
                vec![("web", "Host(`own.example.com`)")],
                vec![
                    ("web", "held by instance 'web' of project 'acc-a'"),
                    ("web", "held by instance 'db' of project 'acc-a'"),
                ],
            ),
        ];
        for (what, recorded, sources, files, refused) in cases {
            let mut c = ctx();
            c.claims = recorded;
            let sources: Vec<Source> = sources.iter().map(|(n, t, l)| src(n, t, l)).collect();
            let p = plan(&sources, &c);
            let rules: Vec<(String, String)> = p
                .files
                .iter()
                .flat_map(|(f, v)| {
                    v["http"]["routers"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        // The gate's /oauth2/ router on an @auth host is no route of its own.
                        .filter(|(n, r)| {
                            r["entryPoints"][0] == "websecure" && !n.contains("_oauth2-")
                        })
                        .map(move |(_, r)| (f.clone(), r["rule"].as_str().unwrap().to_string()))
                })
                .collect();
            let want: Vec<(String, String)> = files
                .iter()
                .map(|(i, r)| (fname(i), r.to_string()))
                .collect();
            assert_eq!(rules, want, "{what}");
            let got: Vec<(&str, &str)> = p
                .problems
                .iter()
                .map(|x| (x.instance.as_str(), x.message.as_str()))
                .collect();
            assert_eq!(got.len(), refused.len(), "{what}: {got:?}");
            for ((gi, gm), (wi, wm)) in got.iter().zip(&refused) {
                assert!(gi == wi && gm.contains(wm), "{what}: {gi}: {gm}");
            }
            assert!(
                p.routes
                    .iter()
                    .filter(|r| r.state == RouteState::Conflict)
                    .count()
                    == refused.len(),
                "{what}: every refusal is a conflict row"
            );
        }
    }

    #[test]
    fn another_projects_ports_stay_entrypoints_and_its_rules_are_not_planned() {
        let mut c = ctx();
        c.claims = vec![rec(claims::Held::Udp { port: 5353 }, "acc-a", "dns")];
        let p = plan(&[src("db", "1", "tcp://15432:5432")], &c);
        let eps: Vec<String> = p.entrypoints.iter().map(EntryPoint::name).collect();
        assert_eq!(eps, ["tcp-15432", "udp-5353"]);
        let rules: Vec<&str> = p.rules.iter().map(|r| r.comment.as_str()).collect();
        assert_eq!(rules, ["terrarium-expose default/db"]);
        assert!(p
            .claims
            .iter()
            .any(|r| r.project == "acc-a" && r.instance == "dns"));
        assert!(p
            .claims
            .iter()
            .any(|r| r.project == "default" && r.instance == "db"));
    }

    #[test]
    fn a_thousand_instances_plan_quickly_and_every_file_validates() {
        let sources: Vec<Source> = (0..1000)
            .map(|i| {
                src(
                    &format!("c{i}"),
                    &format!("{i:06}"),
                    &format!(
                        "https://c{i}.example.com:3000@auth:devs, tcp://{}:22",
                        10000 + i
                    ),
                )
            })
            .collect();
        let p = plan(&sources, &ctx());
        assert_eq!(p.files.len(), 1000);
        assert!(p.problems.is_empty());
        assert_eq!(p.entrypoints.len(), 1000);
    }
}
