//! Traefik file-provider files: one dynamic file per exposed instance, the
//! static file's entrypoints, and validation of both against the official
//! Traefik v3 schemas (copies in `schemas/`) before anything is written.
//! Running Traefik is `supervise`; asking the running one is `api`.
//!
//! The files are JSON in `*.yml`: JSON is YAML, and Traefik's file provider
//! reads only `.yml`, `.yaml` and `.toml`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::expose::labels::Item;

pub mod api;
pub mod supervise;

const FILE_PROVIDER_SCHEMA: &str = include_str!("../../schemas/traefik-v3-file-provider.json");
const STATIC_SCHEMA: &str = include_str!("../../schemas/traefik-v3.json");

/// Prefix of every file, router, service and middleware Terrarium writes.
pub const PREFIX: &str = "trm-";

#[derive(Debug, Clone)]
pub struct RouteOptions {
    /// ACME resolver for `https://` items.
    pub cert_resolver: String,
    /// The single-sign-on gate, e.g. `http://127.0.0.1:4180` (oauth2-proxy).
    pub auth_address: String,
    /// The public HTTPS port when it is not 443, so redirects land on it.
    pub https_port: Option<u16>,
}

/// Where a withdrawn route points: nothing can listen on port 0, so
/// Traefik answers 502 at once. The route keeps shadowing its host and
/// path (a stopped tenant's `/api` never falls through to another
/// tenant's `/`), and the schema wants one server per service.
pub const NO_BACKEND: &str = "127.0.0.1:0";

/// A TCP or UDP entrypoint (`tcp-5432`, `udp-5353`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct EntryPoint {
    pub udp: bool,
    pub port: u16,
}

impl EntryPoint {
    pub fn name(&self) -> String {
        format!("{}-{}", if self.udp { "udp" } else { "tcp" }, self.port)
    }

    /// Parse an entrypoint name this module wrote.
    pub fn from_name(name: &str) -> Option<EntryPoint> {
        let (proto, port) = name.split_once('-')?;
        let udp = match proto {
            "tcp" => false,
            "udp" => true,
            _ => return None,
        };
        Some(EntryPoint {
            udp,
            port: port.parse().ok()?,
        })
    }
}

/// Whose a file or a router is: `<project>_<instance>`. LXD refuses `_`
/// in project and instance names, so two owners never share an id, and
/// the same instance name in two projects never shares a router name.
pub fn owner_id(project: &str, instance: &str) -> String {
    format!("{project}_{instance}")
}

/// The dynamic file name for an instance of a project.
pub fn file_name(project: &str, instance: &str) -> String {
    format!("{PREFIX}{}.yml", owner_id(project, instance))
}

/// Whose instance file a name in the watched directory is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileOwner {
    Project {
        project: String,
        instance: String,
    },
    /// `trm-<instance>.yml`, from before names carried the project.
    Legacy {
        instance: String,
    },
}

pub fn owner_of_file(name: &str) -> Option<FileOwner> {
    let id = name.strip_prefix(PREFIX)?.strip_suffix(".yml")?;
    if id.is_empty() || name.starts_with('.') {
        return None;
    }
    Some(match id.split_once('_') {
        Some((project, instance)) => FileOwner::Project {
            project: project.into(),
            instance: instance.into(),
        },
        None => FileOwner::Legacy {
            instance: id.into(),
        },
    })
}

/// Is this an instance file Terrarium wrote (of any project)?
pub fn is_our_file(name: &str) -> bool {
    owner_of_file(name).is_some()
}

/// A project whose name can go into router and file names: Traefik
/// reads `@` as a provider suffix, so letters, digits and hyphens only.
pub fn check_project_name(project: &str) -> Result<(), String> {
    if !project.is_empty()
        && project
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        Ok(())
    } else {
        Err(format!(
            "project '{project}' cannot be exposed: Traefik names need letters, digits and hyphens only"
        ))
    }
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())[..12].to_string()
}

/// Names are `trm-<owner>_<what>` (`owner_id`): neither part of the id
/// nor `what` contains another `_`, so two owners never produce one name.
fn name(owner: &str, what: &str) -> String {
    format!("{PREFIX}{owner}_{what}")
}

fn rule(host: &str, path: Option<&str>) -> String {
    match path {
        Some(p) => format!("Host(`{host}`) && PathPrefix(`{p}`)"),
        None => format!("Host(`{host}`)"),
    }
}

/// The dynamic configuration routing `items` to `backend_ip`, its names
/// carrying `owner` (`owner_id`); with no backend (stopped, no address
/// yet) HTTP routes answer 502 and raw ports get no router, so their
/// traffic goes nowhere. `share://` items route nothing.
pub fn instance_config(
    owner: &str,
    backend_ip: Option<&str>,
    items: &[Item],
    opts: &RouteOptions,
) -> Value {
    let mut routers = Map::new();
    let mut services = Map::new();
    let mut middlewares = Map::new();
    let mut tcp_routers = Map::new();
    let mut tcp_services = Map::new();
    let mut udp_routers = Map::new();
    let mut udp_services = Map::new();
    for item in items {
        match item {
            Item::Http {
                tls,
                host,
                cport,
                path,
                auth,
            } => {
                let id = short_hash(&[host, path.as_deref().unwrap_or("/")]);
                let svc = name(owner, &format!("svc-{id}"));
                let url = match backend_ip {
                    Some(ip) => format!("http://{ip}:{cport}"),
                    None => format!("http://{NO_BACKEND}"),
                };
                services.insert(
                    svc.clone(),
                    json!({"loadBalancer": {"servers": [{"url": url}]}}),
                );
                let mut mws: Vec<String> = Vec::new();
                if let Some(groups) = auth {
                    let mw = name(owner, &format!("auth-{}", short_hash(&[&groups.join(",")])));
                    middlewares.insert(mw.clone(), forward_auth(&opts.auth_address, groups));
                    mws.push(mw);
                    // The gate's own paths on this host: hand-off, sign-out.
                    let gate_svc = name(owner, "gate");
                    services.insert(
                        gate_svc.clone(),
                        json!({"loadBalancer": {"servers": [{"url": opts.auth_address.trim_end_matches('/')}]}}),
                    );
                    routers.insert(
                        name(owner, &format!("oauth2-{}", short_hash(&[host]))),
                        oauth2_router(host, &gate_svc, &opts.cert_resolver),
                    );
                }
                let r = rule(host, path.as_deref());
                if *tls {
                    let mut router = json!({
                        "rule": r, "entryPoints": ["websecure"], "service": svc,
                        "tls": {"certResolver": opts.cert_resolver},
                    });
                    if !mws.is_empty() {
                        router["middlewares"] = json!(mws);
                    }
                    routers.insert(name(owner, &format!("https-{id}")), router);
                    let redirect = name(owner, "to-https");
                    let mut to_https = json!({"scheme": "https", "permanent": true});
                    if let Some(port) = opts.https_port {
                        to_https["port"] = json!(port.to_string());
                    }
                    middlewares.insert(redirect.clone(), json!({ "redirectScheme": to_https }));
                    routers.insert(
                        name(owner, &format!("http-{id}")),
                        json!({"rule": r, "entryPoints": ["web"], "service": svc, "middlewares": [redirect]}),
                    );
                } else {
                    let mut router = json!({"rule": r, "entryPoints": ["web"], "service": svc});
                    if !mws.is_empty() {
                        router["middlewares"] = json!(mws);
                    }
                    routers.insert(name(owner, &format!("http-{id}")), router);
                }
            }
            Item::Share { .. } => {}
            Item::Tcp { .. } | Item::Udp { .. } if backend_ip.is_none() => {}
            Item::Tcp { host_port, cport } => {
                let backend_ip = backend_ip.unwrap_or(NO_BACKEND);
                let ep = EntryPoint {
                    udp: false,
                    port: *host_port,
                }
                .name();
                let n = name(owner, &ep);
                tcp_routers.insert(
                    n.clone(),
                    json!({"rule": "HostSNI(`*`)", "entryPoints": [ep], "service": n}),
                );
                tcp_services.insert(n, json!({"loadBalancer": {"servers": [{"address": format!("{backend_ip}:{cport}")}]}}));
            }
            Item::Udp { host_port, cport } => {
                let backend_ip = backend_ip.unwrap_or(NO_BACKEND);
                let ep = EntryPoint {
                    udp: true,
                    port: *host_port,
                }
                .name();
                let n = name(owner, &ep);
                udp_routers.insert(n.clone(), json!({"entryPoints": [ep], "service": n}));
                udp_services.insert(n, json!({"loadBalancer": {"servers": [{"address": format!("{backend_ip}:{cport}")}]}}));
            }
        }
    }
    let mut out = Map::new();
    if !routers.is_empty() {
        let mut http = json!({"routers": routers, "services": services});
        if !middlewares.is_empty() {
            http["middlewares"] = Value::Object(middlewares);
        }
        out.insert("http".into(), http);
    }
    if !tcp_routers.is_empty() {
        out.insert(
            "tcp".into(),
            json!({"routers": tcp_routers, "services": tcp_services}),
        );
    }
    if !udp_routers.is_empty() {
        out.insert(
            "udp".into(),
            json!({"routers": udp_routers, "services": udp_services}),
        );
    }
    Value::Object(out)
}

/// The forwardAuth middleware asking the gate at `gate` for members of
/// `groups` (any signed-in user when empty). The gate learns the host
/// from the `X-Forwarded-*` Traefik sets from the request it received
/// (`trustForwardHeader` off: a client's own are never believed), and
/// sees only the headers it needs (`Sec-Fetch-Site`: a write to a
/// dashboard from a tenant's page is refused).
pub fn forward_auth(gate: &str, groups: &[String]) -> Value {
    let mut address = format!("{}/oauth2/auth", gate.trim_end_matches('/'));
    if !groups.is_empty() {
        address.push_str(&format!("?allowed_groups={}", groups.join(",")));
    }
    json!({"forwardAuth": {
        "address": address,
        "trustForwardHeader": false,
        "authRequestHeaders": ["Accept", "Cookie", "Sec-Fetch-Site"],
        "authResponseHeaders": ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"],
    }})
}

/// The router that gives the gate `/oauth2/` on a gated host, above any
/// route a tenant has there.
pub fn oauth2_router(host: &str, gate_service: &str, cert_resolver: &str) -> Value {
    json!({
        "rule": crate::gate::hosts::oauth2_rule(host),
        "entryPoints": ["websecure"],
        "service": gate_service,
        "priority": crate::gate::hosts::OAUTH2_PRIORITY,
        "tls": {"certResolver": cert_resolver},
    })
}

/// Static configuration Terrarium owns: web and websecure, the ACME
/// resolver, the file provider on the dynamic directory, ping and the
/// read-only API on a loopback-only entrypoint, logs, no phoning home,
/// and one entrypoint per exposed raw port.
#[derive(Debug, Clone)]
pub struct StaticOptions {
    pub dynamic_dir: String,
    pub cert_resolver: String,
    pub acme_email: String,
    pub acme_storage: String,
    /// ACME directory URL; empty: Let's Encrypt.
    pub acme_ca_server: String,
    pub http_address: String,
    pub https_address: String,
    /// Ping and the API (`traefik` entrypoint); must be loopback.
    pub api_address: String,
    pub log_dir: String,
}

/// The name of the loopback entrypoint for ping and the API.
pub const API_ENTRYPOINT: &str = "traefik";

/// How long Traefik waits after a file change before applying it (its
/// default of 2 s is most of the time a new route takes to go live).
pub const PROVIDERS_THROTTLE: &str = "100ms";

/// How long a stopping Traefik waits for open connections.
pub const GRACE: &str = "3s";

pub fn static_config(opts: &StaticOptions, entrypoints: &BTreeSet<EntryPoint>) -> Value {
    let mut eps = Map::new();
    // No entrypoint-wide redirect: `http://` items serve plain HTTP, and
    // each `https://` item carries its own redirect router.
    eps.insert("web".into(), json!({"address": opts.http_address}));
    eps.insert("websecure".into(), json!({"address": opts.https_address}));
    eps.insert(API_ENTRYPOINT.into(), json!({"address": opts.api_address}));
    for ep in entrypoints {
        let proto = if ep.udp { "udp" } else { "tcp" };
        eps.insert(
            ep.name(),
            json!({"address": format!(":{}/{proto}", ep.port)}),
        );
    }
    // A restart (new raw ports) drains open connections for this long,
    // not Traefik's default 10 s, which idle keep-alive clients always use up.
    for (name, ep) in eps.iter_mut() {
        if !name.starts_with("udp-") {
            ep["transport"] = json!({"lifeCycle": {"graceTimeOut": GRACE}});
        }
    }
    let mut acme = json!({"storage": opts.acme_storage, "httpChallenge": {"entryPoint": "web"}});
    if !opts.acme_email.is_empty() {
        acme["email"] = json!(opts.acme_email);
    }
    if !opts.acme_ca_server.is_empty() {
        acme["caServer"] = json!(opts.acme_ca_server);
    }
    let log = |file: &str| format!("{}/{file}", opts.log_dir.trim_end_matches('/'));
    json!({
        "global": {"checkNewVersion": false, "sendAnonymousUsage": false},
        "entryPoints": eps,
        "providers": {
            "providersThrottleDuration": PROVIDERS_THROTTLE,
            "file": {"directory": opts.dynamic_dir, "watch": true},
        },
        "certificatesResolvers": {opts.cert_resolver.clone(): {"acme": acme}},
        // "insecure" only means served on the `traefik` entrypoint without
        // a router; that entrypoint is loopback, so containers never see it.
        "api": {"dashboard": true, "insecure": true},
        "ping": {"entryPoint": API_ENTRYPOINT},
        "log": {"level": "INFO", "filePath": log("traefik.log")},
        "accessLog": {"filePath": log("access.log")},
    })
}

/// The port (and whether UDP) of a Traefik address: `:80`,
/// `127.0.0.1:8082`, `[::1]:8082`, `:5353/udp`, `http://127.0.0.1:4180/`.
pub fn address_port(address: &str) -> Option<(u16, bool)> {
    let a = address.trim_end_matches('/');
    let (a, udp) = match a.rsplit_once('/') {
        Some((rest, "udp")) => (rest, true),
        Some((rest, "tcp")) => (rest, false),
        _ => (a, false),
    };
    Some((a.rsplit_once(':')?.1.parse().ok()?, udp))
}

/// Is this `host:port` address on loopback only?
pub fn is_loopback_address(address: &str) -> bool {
    address
        .rsplit_once(':')
        .map(|(h, _)| h.trim_start_matches('[').trim_end_matches(']'))
        .and_then(|h| h.parse::<std::net::IpAddr>().ok())
        .is_some_and(|ip| ip.is_loopback())
}

/// The address of the API entrypoint a static file declares.
pub fn api_address_of(static_file: &Value) -> Option<String> {
    static_file["entryPoints"][API_ENTRYPOINT]["address"]
        .as_str()
        .map(str::to_string)
}

/// The raw-port entrypoints a static file declares.
pub fn entrypoints_of(static_file: &Value) -> BTreeSet<EntryPoint> {
    static_file["entryPoints"]
        .as_object()
        .map(|m| m.keys().filter_map(|k| EntryPoint::from_name(k)).collect())
        .unwrap_or_default()
}

fn compiled(
    cell: &'static OnceLock<jsonschema::Validator>,
    schema: &str,
) -> &'static jsonschema::Validator {
    cell.get_or_init(|| {
        let schema: Value = serde_json::from_str(schema).expect("bundled schema is JSON");
        jsonschema::validator_for(&schema).expect("bundled schema compiles")
    })
}

fn errors(v: &jsonschema::Validator, doc: &Value) -> Result<(), Vec<String>> {
    let errs: Vec<String> = v
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

/// Check a dynamic file against Traefik's file-provider schema.
pub fn validate_dynamic(doc: &Value) -> Result<(), Vec<String>> {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    errors(compiled(&V, FILE_PROVIDER_SCHEMA), doc)
}

/// Check a static file against Traefik's static-configuration schema.
pub fn validate_static(doc: &Value) -> Result<(), Vec<String>> {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    errors(compiled(&V, STATIC_SCHEMA), doc)
}

/// Would Traefik's file provider read this file (`name` gives the format)?
/// One file it cannot read stops the whole provider: no new routes, and
/// none at all after a restart. Traefik matches keys case-insensitively
/// and applies YAML merge keys, so the schema is checked after merging,
/// with every key lower-cased on both sides. The reason names a place in
/// the file, never its content (the file may be anyone's).
pub fn check_provider_file(name: &str, text: &str) -> Result<(), String> {
    let doc: Value = if name.to_ascii_lowercase().ends_with(".toml") {
        let v: toml::Value = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!("not valid TOML (at byte {})", span.start),
            None => "not valid TOML".to_string(),
        })?;
        serde_json::to_value(v).map_err(|_| "not valid TOML".to_string())?
    } else {
        let mut v: serde_yaml_ng::Value =
            serde_yaml_ng::from_str(text).map_err(|e| match e.location() {
                Some(l) => format!("not valid YAML (line {}, column {})", l.line(), l.column()),
                None => "not valid YAML".to_string(),
            })?;
        v.apply_merge()
            .map_err(|_| "a YAML merge key that cannot be applied".to_string())?;
        serde_json::to_value(v).map_err(|_| "YAML that is not a configuration".to_string())?
    };
    if doc.is_null() {
        return Ok(());
    }
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    let v = V.get_or_init(|| {
        let schema: Value = serde_json::from_str(FILE_PROVIDER_SCHEMA).expect("bundled schema");
        jsonschema::validator_for(&lower_schema(schema)).expect("bundled schema compiles")
    });
    let doc = lower_keys(doc);
    let first = v
        .iter_errors(&doc)
        .next()
        .map(|e| e.instance_path().to_string());
    match first {
        None => Ok(()),
        Some(p) => Err(format!(
            "not a Traefik dynamic configuration at {}",
            if p.is_empty() { "its top level" } else { &p }
        )),
    }
}

fn lower_keys(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), lower_keys(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(lower_keys).collect()),
        other => other,
    }
}

/// The schema with its property names (and `required` lists) lower-cased.
fn lower_schema(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = match (k.as_str(), v) {
                        ("properties", Value::Object(props)) => Value::Object(
                            props
                                .into_iter()
                                .map(|(p, s)| (p.to_ascii_lowercase(), lower_schema(s)))
                                .collect(),
                        ),
                        ("required", Value::Array(names)) => Value::Array(
                            names
                                .into_iter()
                                .map(|n| match n {
                                    Value::String(s) => Value::String(s.to_ascii_lowercase()),
                                    other => other,
                                })
                                .collect(),
                        ),
                        (_, v) => lower_schema(v),
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(lower_schema).collect()),
        other => other,
    }
}

/// Files of Traefik's watched directory that its file provider reads
/// (it matches the extension case-insensitively).
pub fn is_provider_file(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [".yml", ".yaml", ".toml"].iter().any(|x| name.ends_with(x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expose::labels::parse;

    fn opts() -> RouteOptions {
        RouteOptions {
            cert_resolver: "letsencrypt".into(),
            auth_address: "http://127.0.0.1:4180".into(),
            https_port: None,
        }
    }

    fn render(instance: &str, label: &str) -> Value {
        let (items, errs) = parse(label);
        assert!(errs.is_empty(), "{errs:?}");
        instance_config(instance, Some("10.100.0.5"), &items, &opts())
    }

    #[test]
    fn https_route_with_groups_renders_and_validates() {
        let v = render("app", "https://app.example.com:3000/api@auth:admins,ops");
        validate_dynamic(&v).unwrap();
        let routers = v["http"]["routers"].as_object().unwrap();
        assert_eq!(
            routers.len(),
            3,
            "websecure route, its http redirect, the gate's /oauth2/"
        );
        let secure = routers
            .iter()
            .find(|(k, _)| k.contains("_https-"))
            .unwrap()
            .1;
        assert_eq!(
            secure["rule"],
            "Host(`app.example.com`) && PathPrefix(`/api`)"
        );
        assert_eq!(secure["tls"]["certResolver"], "letsencrypt");
        let svc = &v["http"]["services"][secure["service"].as_str().unwrap()];
        assert_eq!(
            svc["loadBalancer"]["servers"][0]["url"],
            "http://10.100.0.5:3000"
        );
        let mw = secure["middlewares"][0].as_str().unwrap();
        let fa = &v["http"]["middlewares"][mw]["forwardAuth"];
        assert_eq!(
            fa["address"],
            "http://127.0.0.1:4180/oauth2/auth?allowed_groups=admins,ops"
        );
        assert_eq!(
            fa["trustForwardHeader"], false,
            "a client's X-Forwarded-Host is never believed"
        );
        let gate = routers
            .iter()
            .find(|(k, _)| k.contains("_oauth2-"))
            .unwrap()
            .1;
        assert_eq!(
            gate["rule"],
            "Host(`app.example.com`) && PathPrefix(`/oauth2/`)"
        );
        assert!(
            gate.get("middlewares").is_none(),
            "the gate's own paths are not gated"
        );
        assert_eq!(
            v["http"]["services"][gate["service"].as_str().unwrap()]["loadBalancer"]["servers"][0]
                ["url"],
            "http://127.0.0.1:4180"
        );
    }

    #[test]
    fn every_kind_validates_and_names_carry_the_instance() {
        let label = "http://a.example, https://b.example@auth, tcp://2222:22, udp://5353:53";
        let v = render("web-1", label);
        validate_dynamic(&v).unwrap();
        let text = v.to_string();
        for section in ["http", "tcp", "udp"] {
            for kind in ["routers", "services"] {
                for k in v[section][kind].as_object().unwrap().keys() {
                    assert!(k.starts_with("trm-web-1_"), "{k}");
                }
            }
        }
        assert!(text.contains("\"tcp-2222\"") && text.contains("\"udp-5353\""));
        assert_eq!(
            v["tcp"]["services"]["trm-web-1_tcp-2222"]["loadBalancer"]["servers"][0]["address"],
            "10.100.0.5:22"
        );
    }

    #[test]
    fn names_never_collide_across_instances() {
        // "a" with host "b-x" vs "a-b" with host "x": same text, different owners.
        let one = render("a", "https://b-x.example");
        let two = render("a-b", "https://x.example");
        let keys = |v: &Value| -> BTreeSet<String> {
            v["http"]["routers"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect()
        };
        assert!(keys(&one).is_disjoint(&keys(&two)));
    }

    #[test]
    fn file_names_carry_the_project_and_old_names_are_recognised() {
        let cases = [
            (
                file_name("acc-a", "web"),
                Some(FileOwner::Project {
                    project: "acc-a".into(),
                    instance: "web".into(),
                }),
            ),
            (
                "trm-web.yml".to_string(),
                Some(FileOwner::Legacy {
                    instance: "web".into(),
                }),
            ),
            ("terrarium-management.yml".into(), None),
            (".trm-a_b.yml.tmp-1".into(), None),
            ("trm-a_b.yml.rejected".into(), None),
            ("trm-.yml".into(), None),
        ];
        for (name, want) in cases {
            assert_eq!(owner_of_file(&name), want, "{name}");
        }
        // "a" of project "b-x" and "b" of project "a": never one name.
        assert_ne!(file_name("a", "b-x"), file_name("a-b", "x"));
        assert_ne!(
            render(&owner_id("p", "web"), "https://w.example"),
            render(&owner_id("q", "web"), "https://w.example")
        );
        for (project, ok) in [
            ("default", true),
            ("acc-a", true),
            ("a@b", false),
            ("a_b", false),
            ("", false),
        ] {
            assert_eq!(check_project_name(project).is_ok(), ok, "{project}");
        }
    }

    #[test]
    fn a_broken_file_fails_validation() {
        let mut v = render("app", "https://app.example");
        let r = v["http"]["routers"]
            .as_object_mut()
            .unwrap()
            .values_mut()
            .next()
            .unwrap();
        r.as_object_mut().unwrap().remove("service");
        let errs = validate_dynamic(&v).unwrap_err();
        assert!(errs[0].contains("service"), "{errs:?}");
        let typo = json!({"http": {"routers": {"x": {"rule": "Host(`a`)", "service": "s", "entrypoints": ["web"]}}}});
        assert!(validate_dynamic(&typo).is_err());
    }

    #[test]
    fn foreign_files_are_judged_as_traefik_reads_them() {
        let good = "http:\n  routers:\n    e:\n      rule: Host(`e.test`)\n      service: a\n      entrypoints: [web]\n";
        check_provider_file("mine.yml", good).unwrap();
        check_provider_file("empty.yml", "").unwrap();
        check_provider_file(
            "mine.toml",
            "[http.routers.x]\nrule = \"Host(`x`)\"\nservice = \"a\"\n",
        )
        .unwrap();
        // Merge keys are YAML Traefik applies.
        let merged =
            "x: &r\n  rule: Host(`m`)\n  service: a\nhttp:\n  routers:\n    m:\n      <<: *r\n";
        let e = check_provider_file("merge.yml", merged).unwrap_err();
        assert!(
            e.contains("its top level"),
            "the anchor holder `x` is a key Traefik does not know: {e}"
        );
        let merged = "http:\n  routers:\n    base: &r\n      rule: Host(`m`)\n      service: a\n    m:\n      <<: *r\n";
        check_provider_file("merge.yml", merged).unwrap();
        assert!(is_provider_file("UPPER.YML") && !is_provider_file("x.yml.rejected"));
        for (name, bad, why) in [
            ("a.yml", "http: {routers: [", "not valid YAML (line "),
            (
                "b.yml",
                "http:\n  routers:\n    x:\n      rule: r\n      service: a\n      bogusKey: 1\n",
                "at /http/routers/x",
            ),
            ("c.yml", "http:\n  routers: 5\n", "at /http/routers"),
            ("d.toml", "[http\n", "not valid TOML"),
            (
                "e.yml",
                "root:$6$secret$hash:19000:0:99999:7:::\n",
                "its top level",
            ),
        ] {
            let e = check_provider_file(name, bad).unwrap_err();
            assert!(e.contains(why), "{name}: {e}");
            assert!(
                !e.contains("secret") && !e.to_lowercase().contains("bogus"),
                "no content echoed: {e}"
            );
        }
    }

    #[test]
    fn static_file_validates_and_round_trips_entrypoints() {
        let eps: BTreeSet<EntryPoint> = [
            EntryPoint {
                udp: false,
                port: 2222,
            },
            EntryPoint {
                udp: true,
                port: 5353,
            },
        ]
        .into();
        let v = static_config(
            &StaticOptions {
                dynamic_dir: "/etc/traefik/dynamic".into(),
                cert_resolver: "letsencrypt".into(),
                acme_email: "ops@example.com".into(),
                acme_storage: "/var/lib/traefik/acme.json".into(),
                acme_ca_server: String::new(),
                http_address: ":80".into(),
                https_address: ":443".into(),
                api_address: "127.0.0.1:8082".into(),
                log_dir: "/var/log/traefik".into(),
            },
            &eps,
        );
        validate_static(&v).unwrap();
        assert_eq!(v["entryPoints"]["udp-5353"]["address"], ":5353/udp");
        assert_eq!(
            entrypoints_of(&v),
            eps,
            "web, websecure and traefik are not raw ports"
        );
        assert_eq!(api_address_of(&v).as_deref(), Some("127.0.0.1:8082"));
        assert_eq!(v["global"]["checkNewVersion"], false);
        assert_eq!(v["global"]["sendAnonymousUsage"], false);
        assert_eq!(v["providers"]["providersThrottleDuration"], "100ms");
        assert!(
            v["entryPoints"]["web"].get("http").is_none(),
            "plain http:// routes must not be redirected wholesale"
        );
        assert!(v["certificatesResolvers"]["letsencrypt"]["acme"]
            .get("caServer")
            .is_none());
    }

    #[test]
    fn a_withdrawn_route_keeps_its_rules_and_points_nowhere() {
        let (items, _) = parse("https://app.example/api, tcp://2222:22");
        let v = instance_config("app", None, &items, &opts());
        validate_dynamic(&v).unwrap();
        let urls: Vec<&str> = v["http"]["services"]
            .as_object()
            .unwrap()
            .values()
            .map(|s| s["loadBalancer"]["servers"][0]["url"].as_str().unwrap())
            .collect();
        assert_eq!(urls, ["http://127.0.0.1:0"]);
        assert_eq!(v["http"]["routers"].as_object().unwrap().len(), 2);
        assert!(
            v.get("tcp").is_none(),
            "a raw port without a backend has no router"
        );
    }

    #[test]
    fn addresses_give_their_port_and_protocol() {
        for (a, want) in [
            (":80", Some((80, false))),
            ("127.0.0.1:8082", Some((8082, false))),
            ("[::1]:8082", Some((8082, false))),
            (":5353/udp", Some((5353, true))),
            (":15432/tcp", Some((15432, false))),
            ("http://127.0.0.1:4180/", Some((4180, false))),
            ("nonsense", None),
        ] {
            assert_eq!(address_port(a), want, "{a}");
        }
        assert!(is_loopback_address("127.0.0.1:8082") && is_loopback_address("[::1]:1"));
        assert!(!is_loopback_address(":8082") && !is_loopback_address("0.0.0.0:8082"));
    }

    #[test]
    fn redirects_name_a_non_default_https_port() {
        let (items, _) = parse("https://app.example");
        let mut o = opts();
        o.https_port = Some(18443);
        let v = instance_config("app", Some("10.0.0.2"), &items, &o);
        validate_dynamic(&v).unwrap();
        assert_eq!(
            v["http"]["middlewares"]["trm-app_to-https"]["redirectScheme"]["port"],
            "18443"
        );
    }
}
