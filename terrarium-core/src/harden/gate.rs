//! Dashboards behind single sign-on: Traefik's management routes in a file
//! of their own, the oauth2-proxy gate they ask, the OIDC issuer check, and
//! keeping Cockpit on loopback.
//!
//! Management names start `trm_`: per-instance names start `trm-` and
//! instance names never contain `_`, so no workload route can collide.

use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{Error, Result};

/// The management dynamic file, beside (never among) the `trm-*.yml`
/// per-instance files `trm-expose` owns and prunes.
pub const MANAGEMENT_FILE: &str = "terrarium-management.yml";
pub const COCKPIT: &str = "127.0.0.1:9090";
pub const GATE_LISTEN: &str = "127.0.0.1:4180";
/// The default gate configuration file.
pub const GATE_CONFIG: &str = "/etc/oauth2-proxy/oauth2-proxy.cfg";
/// Cockpit's socket unit drop-in (relative to the systemd unit directory).
pub const COCKPIT_DROP_IN: &str = "cockpit.socket.d/terrarium-loopback.conf";

/// Traefik's dynamic configuration for the dashboards on `domain`.
pub fn management_config(domain: &str, cert_resolver: &str, gate: &str, lxd: &str) -> Value {
    let tls = json!({"certResolver": cert_resolver});
    let gated = |host: &str, service: &str| {
        json!({
            "rule": format!("Host(`{host}.{domain}`)"),
            "entryPoints": ["websecure"],
            "service": service,
            "middlewares": ["trm_gate"],
            "tls": tls,
        })
    };
    json!({
        "http": {
            "routers": {
                "trm_manage": gated("manage", "trm_cockpit"),
                "trm_proxy": gated("proxy", "api@internal"),
                // Sign-in and the OIDC callback: the gate itself, ungated.
                "trm_auth": {
                    "rule": format!("Host(`auth.{domain}`)"),
                    "entryPoints": ["websecure"],
                    "service": "trm_gate",
                    "tls": tls,
                },
            },
            "services": {
                "trm_cockpit": {"loadBalancer": {"servers": [{"url": format!("http://{COCKPIT}")}]}},
                "trm_gate": {"loadBalancer": {"servers": [{"url": gate.trim_end_matches('/')}]}},
            },
            "middlewares": {
                "trm_gate": {"forwardAuth": {
                    "address": format!("{}/", gate.trim_end_matches('/')),
                    "trustForwardHeader": true,
                    "authResponseHeaders": ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"],
                }},
            },
        },
        // LXD terminates TLS itself and does its own OIDC: passthrough.
        "tcp": {
            "routers": {
                "trm_lxd": {
                    "rule": format!("HostSNI(`lxd.{domain}`)"),
                    "entryPoints": ["websecure"],
                    "service": "trm_lxd",
                    "tls": {"passthrough": true},
                },
            },
            "services": {
                "trm_lxd": {"loadBalancer": {"servers": [{"address": lxd}]}},
            },
        },
    })
}

/// Cockpit listens on loopback only: clear the socket's list, add ours.
pub fn cockpit_drop_in() -> String {
    format!("# Written by trm-harden: Cockpit on loopback only, reached through Traefik.\n[Socket]\nListenStream=\nListenStream={COCKPIT}\n")
}

/// What `trm-harden oidc set` was given.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Oidc {
    pub issuer: String,
    pub client_id: String,
    pub admin_group: String,
}

/// Fetch the issuer's discovery document and check it names this issuer.
pub fn discover(issuer: &str) -> Result<Value> {
    let url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let body = agent
        .get(&url)
        .call()
        .map_err(|e| Error::Unavailable(format!("the OIDC issuer does not answer at {url}: {e}")))?
        .into_string()
        .map_err(|e| Error::Unavailable(format!("reading {url}: {e}")))?;
    let doc: Value = serde_json::from_str(&body)
        .map_err(|e| Error::Usage(format!("{url} is not a JSON discovery document: {e}")))?;
    let named = doc["issuer"].as_str().unwrap_or_default();
    // OIDC Discovery 1.0 §4.3: the document's issuer must be the one asked.
    if named.trim_end_matches('/') != issuer.trim_end_matches('/') {
        return Err(Error::Usage(format!(
            "the discovery document at {url} names issuer '{named}', not '{issuer}': refusing a mismatching issuer"
        )));
    }
    for key in ["authorization_endpoint", "token_endpoint", "jwks_uri"] {
        if doc[key].as_str().map_or(true, str::is_empty) {
            return Err(Error::Usage(format!(
                "the discovery document at {url} has no {key}"
            )));
        }
    }
    Ok(doc)
}

/// A random cookie secret: 32 characters oauth2-proxy takes as 32 bytes.
pub fn cookie_secret() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::new();
    while out.len() < 32 {
        for b in crate::random::bytes(64)? {
            // Rejection sampling keeps every character equally likely.
            if out.len() < 32 && usize::from(b) < 256 - 256 % ALPHABET.len() {
                out.push(ALPHABET[usize::from(b) % ALPHABET.len()] as char);
            }
        }
    }
    Ok(out)
}

/// The oauth2-proxy configuration (TOML): OIDC against `oidc`, only the
/// admin group passes, listening on loopback, cookies for `domain`.
pub fn gate_config(oidc: &Oidc, secret_file: &str, cookie_secret: &str, domain: &str) -> String {
    let mut t = toml::Table::new();
    let s = |v: &str| toml::Value::String(v.to_string());
    let list = |v: &[&str]| toml::Value::Array(v.iter().map(|x| s(x)).collect());
    t.insert("http_address".into(), s(GATE_LISTEN));
    t.insert("provider".into(), s("oidc"));
    t.insert("oidc_issuer_url".into(), s(&oidc.issuer));
    t.insert("client_id".into(), s(&oidc.client_id));
    t.insert("client_secret_file".into(), s(secret_file));
    t.insert("cookie_secret".into(), s(cookie_secret));
    t.insert("cookie_secure".into(), toml::Value::Boolean(true));
    t.insert("cookie_domains".into(), list(&[&format!(".{domain}")]));
    t.insert("whitelist_domains".into(), list(&[&format!(".{domain}")]));
    t.insert(
        "redirect_url".into(),
        s(&format!("https://auth.{domain}/oauth2/callback")),
    );
    t.insert("allowed_groups".into(), list(&[&oidc.admin_group]));
    t.insert("oidc_groups_claim".into(), s("groups"));
    t.insert("email_domains".into(), list(&["*"]));
    // forwardAuth asks "/": 202 for a signed-in admin, else a sign-in redirect.
    t.insert("upstreams".into(), list(&["static://202"]));
    t.insert("reverse_proxy".into(), toml::Value::Boolean(true));
    t.insert("set_xauthrequest".into(), toml::Value::Boolean(true));
    t.insert("skip_provider_button".into(), toml::Value::Boolean(true));
    crate::settings::render_toml(
        "Written by `trm-harden oidc set`: the single-sign-on gate (oauth2-proxy).",
        &t,
    )
}

/// The cookie secret of an existing gate configuration (kept across runs).
pub fn existing_cookie_secret(text: &str) -> Option<String> {
    let t: toml::Table = text.parse().ok()?;
    t.get("cookie_secret")?.as_str().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traefik::validate_dynamic;

    #[test]
    fn management_file_validates_and_gates_all_but_lxd() {
        let v = management_config(
            "example.test",
            "letsencrypt",
            "http://127.0.0.1:4180",
            "127.0.0.1:8443",
        );
        validate_dynamic(&v).unwrap();
        let r = &v["http"]["routers"];
        assert_eq!(r["trm_manage"]["rule"], "Host(`manage.example.test`)");
        assert_eq!(r["trm_manage"]["middlewares"][0], "trm_gate");
        assert_eq!(r["trm_proxy"]["service"], "api@internal");
        assert_eq!(r["trm_proxy"]["middlewares"][0], "trm_gate");
        assert_eq!(
            v["http"]["services"]["trm_cockpit"]["loadBalancer"]["servers"][0]["url"],
            "http://127.0.0.1:9090"
        );
        assert_eq!(
            v["http"]["middlewares"]["trm_gate"]["forwardAuth"]["address"],
            "http://127.0.0.1:4180/"
        );
        let lxd = &v["tcp"]["routers"]["trm_lxd"];
        assert_eq!(lxd["tls"]["passthrough"], true);
        assert!(lxd.get("middlewares").is_none());
        assert_eq!(
            v["tcp"]["services"]["trm_lxd"]["loadBalancer"]["servers"][0]["address"],
            "127.0.0.1:8443"
        );
    }

    #[test]
    fn gate_config_is_toml_on_loopback_with_the_admin_group() {
        let oidc = Oidc {
            issuer: "https://id.example.test/realms/x".into(),
            client_id: "terrarium".into(),
            admin_group: "admins \"quoted\"".into(),
        };
        let secret = cookie_secret().unwrap();
        assert_eq!(secret.len(), 32);
        assert_ne!(secret, cookie_secret().unwrap());
        let text = gate_config(
            &oidc,
            "/etc/oauth2-proxy/client-secret",
            &secret,
            "example.test",
        );
        let t: toml::Table = text.parse().unwrap();
        assert_eq!(t["http_address"].as_str(), Some("127.0.0.1:4180"));
        assert_eq!(t["allowed_groups"][0].as_str(), Some("admins \"quoted\""));
        assert_eq!(t["oidc_issuer_url"].as_str(), Some(oidc.issuer.as_str()));
        assert_eq!(existing_cookie_secret(&text), Some(secret));
    }
}
