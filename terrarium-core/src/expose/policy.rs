//! The one policy `check`, `add` and `sync` apply to an exposure item:
//! management hosts, host ports the host needs (sshd's configured ports
//! among them), ports something else listens on, and ports a UFW rule
//! Terrarium does not own names. Conflicts between instances are the
//! planner's (`claims`). The host is read once into a `Context`; judging
//! is pure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde_json::Value;

use crate::expose::labels::Item;
use crate::settings::{ExposeSettings, Settings};
use crate::traefik::{self, RouteOptions};
use crate::ufw;

/// What the planner needs besides the labels.
#[derive(Debug, Clone)]
pub struct Context {
    pub project: String,
    pub route: RouteOptions,
    /// Hosts of the management dashboards; no label may claim them.
    pub management_hosts: BTreeSet<String>,
    /// Ports the host itself needs, with what needs them.
    pub reserved_ports: BTreeMap<u16, String>,
    /// (udp, port) something other than Traefik listens on now, with its
    /// process where known.
    pub busy: BTreeMap<(bool, u16), String>,
    /// `ufw show added` lines, to find rules Terrarium does not own.
    pub ufw_added: Vec<String>,
    /// The claims on file (`claims::load`), every project's.
    pub claims: Vec<super::claims::Record>,
    /// When this plan is made (RFC 3339 UTC): the time of a new claim.
    pub now: String,
}

fn port_of(address: &str) -> Option<u16> {
    traefik::address_port(address).map(|(port, _)| port)
}

impl Context {
    /// The context from the settings alone (no host reads).
    pub fn from_settings(s: &Settings) -> crate::error::Result<Context> {
        let e = &s.expose;
        let base = super::base_domain(e)?;
        let mut reserved = BTreeMap::new();
        reserved.insert(22, "SSH".to_string());
        for (addr, what) in [
            (e.http_address.as_str(), "Traefik's HTTP entrypoint"),
            (e.https_address.as_str(), "Traefik's HTTPS entrypoint"),
            (e.api_address.as_str(), "Traefik's API"),
            (crate::baseline::HTTPS_ADDRESS, "the LXD API"),
            (e.auth_address.as_str(), "the single-sign-on gate"),
        ] {
            if let Some(p) = port_of(addr) {
                reserved.entry(p).or_insert_with(|| what.to_string());
            }
        }
        // The standard ports stay the host's even when Traefik moved.
        reserved.entry(80).or_insert_with(|| "HTTP".into());
        reserved.entry(443).or_insert_with(|| "HTTPS".into());
        Ok(Context {
            project: s.project.clone(),
            route: RouteOptions {
                cert_resolver: e.cert_resolver.clone(),
                auth_address: e.auth_address.clone(),
                https_port: port_of(&e.https_address).filter(|p| *p != 443),
            },
            management_hosts: crate::harden::gate::MANAGEMENT_HOSTS
                .iter()
                .map(|h| format!("{h}.{base}"))
                .collect(),
            reserved_ports: reserved,
            busy: BTreeMap::new(),
            ufw_added: Vec::new(),
            claims: Vec::new(),
            now: crate::time::utc(&chrono::Utc::now()),
        })
    }

    /// Add what the host says: sshd's configured ports, listening sockets
    /// that are not Traefik's entrypoints (those in the live static file),
    /// and the UFW rules (`ufw_added`, read by the caller when UFW is on).
    /// Only `wanted` ports (those labels ask for) get their process named:
    /// that walks /proc, which a steady sync must not pay for.
    pub fn with_host(
        mut self,
        live_static: Option<&Value>,
        ufw_added: Vec<String>,
        wanted: &BTreeSet<(bool, u16)>,
    ) -> Context {
        for p in sshd_ports(Path::new(&sshd_config())) {
            self.reserved_ports.entry(p).or_insert_with(|| "SSH".into());
        }
        let ours: BTreeSet<(bool, u16)> = live_static
            .map(traefik::supervise::entrypoint_ports)
            .unwrap_or_default()
            .into_iter()
            .map(|(_, udp, port)| (udp, port))
            .collect();
        let busy: Vec<crate::net::Socket> = [false, true]
            .into_iter()
            .flat_map(crate::net::sockets)
            .filter(|s| !ours.contains(&(s.udp, s.port)))
            .collect();
        let owners = if busy.iter().any(|s| wanted.contains(&(s.udp, s.port))) {
            crate::net::socket_owners()
        } else {
            Default::default()
        };
        for s in busy {
            let who = owners
                .get(&s.inode)
                .map(|(_, name)| name.clone())
                .unwrap_or_default();
            self.busy.entry((s.udp, s.port)).or_insert(who);
        }
        self.ufw_added = ufw_added;
        self
    }

    /// Why this item may not be exposed on this host, if it may not.
    pub fn refusal(&self, item: &Item) -> Option<String> {
        if let Some(host) = item.host() {
            return self
                .management_hosts
                .contains(host)
                .then(|| format!("{host} is a management hostname"));
        }
        let (udp, port) = item.host_port()?;
        let proto = if udp { "udp" } else { "tcp" };
        if let Some(what) = self.reserved_ports.get(&port) {
            return Some(format!(
                "{proto} port {port} is one the host itself needs ({what})"
            ));
        }
        if let Some(who) = self.busy.get(&(udp, port)) {
            let who = if who.is_empty() {
                String::new()
            } else {
                format!(" ({who})")
            };
            return Some(format!(
                "something on this host already listens on {proto} port {port}{who}"
            ));
        }
        ufw::foreign_rule_for(&self.ufw_added, port, udp).map(|rule| {
            format!(
                "{proto} port {port} is named by a UFW rule Terrarium does not own (`ufw {rule}`)"
            )
        })
    }
}

/// sshd's main configuration (`TRM_SSHD_CONFIG`, as for trm-harden).
fn sshd_config() -> String {
    std::env::var("TRM_SSHD_CONFIG").unwrap_or_else(|_| "/etc/ssh/sshd_config".into())
}

/// Every port sshd's configuration names (`Port`, `ListenAddress h:p`),
/// in the main file and the files it includes: a superset of what sshd
/// uses, read without running sshd (a sync must stay as cheap as `lxc list`).
pub fn sshd_ports(main: &Path) -> BTreeSet<u16> {
    let mut out = BTreeSet::new();
    let mut files = vec![main.to_path_buf()];
    let mut seen = 0;
    while seen < files.len() && seen < 64 {
        let text = std::fs::read_to_string(&files[seen]).unwrap_or_default();
        seen += 1;
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(key), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            match key.to_ascii_lowercase().as_str() {
                "port" => out.extend(value.parse::<u16>().ok()),
                "listenaddress" => {
                    if let Some((_, p)) = value.rsplit_once("]:").or_else(|| {
                        (value.matches(':').count() == 1)
                            .then(|| value.split_once(':'))
                            .flatten()
                    }) {
                        out.extend(p.parse::<u16>().ok());
                    }
                }
                "include" => files.extend(expand_include(main, value)),
                _ => {}
            }
        }
    }
    out
}

/// An `Include` pattern: relative to /etc/ssh, with a `*` in the file name.
fn expand_include(main: &Path, pattern: &str) -> Vec<std::path::PathBuf> {
    let base = main.parent().unwrap_or(Path::new("/etc/ssh"));
    let full = if pattern.starts_with('/') {
        std::path::PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let (Some(dir), Some(name)) = (full.parent(), full.file_name().and_then(|n| n.to_str())) else {
        return Vec::new();
    };
    let (pre, post) = name.split_once('*').unwrap_or((name, ""));
    let star = name.contains('*');
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                if star {
                    n.starts_with(pre) && n.ends_with(post) && n.len() >= pre.len() + post.len()
                } else {
                    n == name
                }
            })
        })
        .collect();
    v.sort();
    v
}

/// The settings' static-file options.
pub fn static_options(e: &ExposeSettings) -> traefik::StaticOptions {
    traefik::StaticOptions {
        dynamic_dir: e.dynamic_dir.clone(),
        cert_resolver: e.cert_resolver.clone(),
        acme_email: e.acme_email.clone(),
        acme_storage: e.acme_storage.clone(),
        acme_ca_server: e.acme_ca_server.clone(),
        http_address: e.http_address.clone(),
        https_address: e.https_address.clone(),
        api_address: e.api_address.clone(),
        log_dir: e.log_dir.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::labels::parse;

    fn ctx() -> Context {
        let mut s = Settings::default();
        s.expose.root_domain = "example.com".into();
        s.expose.https_address = ":18443".into();
        Context::from_settings(&s).unwrap()
    }

    fn one(text: &str) -> Item {
        parse(text).0.remove(0)
    }

    #[test]
    fn every_reason_is_named() {
        let mut c = ctx();
        c.busy.insert((true, 53), "dnsmasq".into());
        c.busy.insert((false, 6000), String::new());
        c.ufw_added = vec!["allow 7000/tcp comment 'mine'".into()];
        let cases = [
            ("https://manage.example.com", "management hostname"),
            ("share://auth.example.com/x", "management hostname"),
            ("tcp://22:22", "host itself needs (SSH)"),
            ("tcp://443:8443", "host itself needs (HTTPS)"),
            ("tcp://18443:1", "Traefik's HTTPS entrypoint"),
            ("tcp://8082:1", "Traefik's API"),
            ("udp://4180:1", "single-sign-on gate"),
            ("tcp://8443:1", "the LXD API"),
            ("udp://53", "listens on udp port 53 (dnsmasq)"),
            ("tcp://6000:1", "listens on tcp port 6000"),
            ("tcp://7000:1", "UFW rule Terrarium does not own"),
        ];
        for (label, want) in cases {
            let why = c
                .refusal(&one(label))
                .unwrap_or_else(|| panic!("{label} accepted"));
            assert!(why.contains(want), "{label}: {why}");
        }
        assert_eq!(
            c.refusal(&one("tcp://53")),
            None,
            "udp 53 busy, tcp 53 free"
        );
        assert_eq!(c.refusal(&one("https://app.example.com")), None);
        assert_eq!(c.route.https_port, Some(18443));
    }

    #[test]
    fn sshd_ports_come_from_the_config_and_its_includes() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sshd_config.d")).unwrap();
        std::fs::write(
            d.path().join("sshd_config"),
            "Include sshd_config.d/*.conf\nPort 22\n# Port 9\nListenAddress 0.0.0.0:2200\nListenAddress [::1]:2201\n",
        )
        .unwrap();
        std::fs::write(d.path().join("sshd_config.d/10-x.conf"), "port 2222\n").unwrap();
        std::fs::write(d.path().join("sshd_config.d/ignored.txt"), "Port 1\n").unwrap();
        let p = sshd_ports(&d.path().join("sshd_config"));
        assert_eq!(p, [22, 2200, 2201, 2222].into());
    }
}
