//! Traefik file-provider files: one dynamic file per exposed instance, the
//! static file's entrypoints, and validation of both against the official
//! Traefik v3 schemas (copies in `schemas/`) before anything is written.
//!
//! The files are JSON in `*.yml`: JSON is YAML, and Traefik's file provider
//! reads only `.yml`, `.yaml` and `.toml`.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::labels::Item;

const FILE_PROVIDER_SCHEMA: &str = include_str!("../schemas/traefik-v3-file-provider.json");
const STATIC_SCHEMA: &str = include_str!("../schemas/traefik-v3.json");

/// Prefix of every file, router, service and middleware Terrarium writes.
pub const PREFIX: &str = "trm-";

#[derive(Debug, Clone)]
pub struct RouteOptions {
    /// ACME resolver for `https://` items.
    pub cert_resolver: String,
    /// The single-sign-on gate, e.g. `http://127.0.0.1:4180` (oauth2-proxy).
    pub auth_address: String,
}

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

/// The dynamic file name for an instance.
pub fn file_name(instance: &str) -> String {
    format!("{PREFIX}{instance}.yml")
}

/// Is this a file Terrarium wrote (and may delete)?
pub fn is_our_file(name: &str) -> bool {
    name.starts_with(PREFIX) && name.ends_with(".yml") && !name.starts_with('.')
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    format!("{:x}", h.finalize())[..12].to_string()
}

/// Names are `trm-<instance>_<what>`: instance names never contain `_`,
/// so two instances can never produce the same name.
fn name(instance: &str, what: &str) -> String {
    format!("{PREFIX}{instance}_{what}")
}

fn rule(host: &str, path: Option<&str>) -> String {
    match path {
        Some(p) => format!("Host(`{host}`) && PathPrefix(`{p}`)"),
        None => format!("Host(`{host}`)"),
    }
}

/// The dynamic configuration routing `items` to `backend_ip`.
pub fn instance_config(
    instance: &str,
    backend_ip: &str,
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
                let svc = name(instance, &format!("svc-{id}"));
                services.insert(
                    svc.clone(),
                    json!({"loadBalancer": {"servers": [{"url": format!("http://{backend_ip}:{cport}")}]}}),
                );
                let mut mws: Vec<String> = Vec::new();
                if let Some(groups) = auth {
                    let mw = name(
                        instance,
                        &format!("auth-{}", short_hash(&[&groups.join(",")])),
                    );
                    let mut address =
                        format!("{}/oauth2/auth", opts.auth_address.trim_end_matches('/'));
                    if !groups.is_empty() {
                        address.push_str(&format!("?allowed_groups={}", groups.join(",")));
                    }
                    middlewares.insert(
                        mw.clone(),
                        json!({"forwardAuth": {
                            "address": address,
                            "trustForwardHeader": true,
                            "authResponseHeaders": ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"],
                        }}),
                    );
                    mws.push(mw);
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
                    routers.insert(name(instance, &format!("https-{id}")), router);
                    let redirect = name(instance, "to-https");
                    middlewares.insert(
                        redirect.clone(),
                        json!({"redirectScheme": {"scheme": "https", "permanent": true}}),
                    );
                    routers.insert(
                        name(instance, &format!("http-{id}")),
                        json!({"rule": r, "entryPoints": ["web"], "service": svc, "middlewares": [redirect]}),
                    );
                } else {
                    let mut router = json!({"rule": r, "entryPoints": ["web"], "service": svc});
                    if !mws.is_empty() {
                        router["middlewares"] = json!(mws);
                    }
                    routers.insert(name(instance, &format!("http-{id}")), router);
                }
            }
            Item::Tcp { host_port, cport } => {
                let ep = EntryPoint {
                    udp: false,
                    port: *host_port,
                }
                .name();
                let n = name(instance, &ep);
                tcp_routers.insert(
                    n.clone(),
                    json!({"rule": "HostSNI(`*`)", "entryPoints": [ep], "service": n}),
                );
                tcp_services.insert(n, json!({"loadBalancer": {"servers": [{"address": format!("{backend_ip}:{cport}")}]}}));
            }
            Item::Udp { host_port, cport } => {
                let ep = EntryPoint {
                    udp: true,
                    port: *host_port,
                }
                .name();
                let n = name(instance, &ep);
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

/// Static configuration Terrarium owns: web and websecure, the ACME
/// resolver, the file provider on the dynamic directory, the dashboard
/// without the insecure API, and one entrypoint per exposed raw port.
#[derive(Debug, Clone)]
pub struct StaticOptions {
    pub dynamic_dir: String,
    pub cert_resolver: String,
    pub acme_email: String,
    pub acme_storage: String,
}

pub fn static_config(opts: &StaticOptions, entrypoints: &BTreeSet<EntryPoint>) -> Value {
    let mut eps = Map::new();
    eps.insert(
        "web".into(),
        json!({"address": ":80", "http": {"redirections": {"entryPoint": {"to": "websecure", "scheme": "https", "permanent": true}}}}),
    );
    eps.insert("websecure".into(), json!({"address": ":443"}));
    for ep in entrypoints {
        let proto = if ep.udp { "udp" } else { "tcp" };
        eps.insert(
            ep.name(),
            json!({"address": format!(":{}/{proto}", ep.port)}),
        );
    }
    let mut acme = json!({"storage": opts.acme_storage, "httpChallenge": {"entryPoint": "web"}});
    if !opts.acme_email.is_empty() {
        acme["email"] = json!(opts.acme_email);
    }
    json!({
        "entryPoints": eps,
        "providers": {"file": {"directory": opts.dynamic_dir, "watch": true}},
        "certificatesResolvers": {opts.cert_resolver.clone(): {"acme": acme}},
        "api": {"dashboard": true, "insecure": false},
        "log": {"level": "INFO"},
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labels::parse;

    fn opts() -> RouteOptions {
        RouteOptions {
            cert_resolver: "letsencrypt".into(),
            auth_address: "http://127.0.0.1:4180".into(),
        }
    }

    fn render(instance: &str, label: &str) -> Value {
        let (items, errs) = parse(label);
        assert!(errs.is_empty(), "{errs:?}");
        instance_config(instance, "10.100.0.5", &items, &opts())
    }

    #[test]
    fn https_route_with_groups_renders_and_validates() {
        let v = render("app", "https://app.example.com:3000/api@auth:admins,ops");
        validate_dynamic(&v).unwrap();
        let routers = v["http"]["routers"].as_object().unwrap();
        assert_eq!(routers.len(), 2, "websecure route and its http redirect");
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
        assert_eq!(
            v["http"]["middlewares"][mw]["forwardAuth"]["address"],
            "http://127.0.0.1:4180/oauth2/auth?allowed_groups=admins,ops"
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
            },
            &eps,
        );
        validate_static(&v).unwrap();
        assert_eq!(v["entryPoints"]["udp-5353"]["address"], ":5353/udp");
        assert_eq!(entrypoints_of(&v), eps);
        assert_eq!(v["api"]["insecure"], false);
    }
}
