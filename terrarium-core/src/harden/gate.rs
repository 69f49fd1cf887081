//! Dashboards behind single sign-on: Traefik's management routes in a file
//! of their own, the gate (`trm-gate`) they ask, the OIDC issuer check,
//! and keeping Cockpit on loopback.
//!
//! Management names start `trm_`: per-instance names start `trm-` and
//! instance names never contain `_`, so no workload route can collide.

use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::gate::GateSettings;
use crate::settings::ExposeSettings;
use crate::traefik::{forward_auth, oauth2_router, validate_dynamic};

/// The management dynamic file, beside (never among) the `trm-*.yml`
/// per-instance files `trm-expose` owns and prunes.
pub const MANAGEMENT_FILE: &str = "terrarium-management.yml";
pub const COCKPIT: &str = "127.0.0.1:9090";
/// Cockpit's socket unit drop-in (relative to the systemd unit directory).
pub const COCKPIT_DROP_IN: &str = "cockpit.socket.d/terrarium-loopback.conf";
/// The hosts of the gated dashboards, under the root domain.
pub const DASHBOARDS: [&str; 2] = ["manage", "proxy"];
/// Every host the management file routes (no tenant label may claim one).
pub const MANAGEMENT_HOSTS: [&str; 4] = ["manage", "proxy", "lxd", "auth"];

/// Traefik's dynamic configuration for the dashboards on `domain`: only
/// members of `admin_group` pass the gate at `gate` to manage. and proxy.
pub fn management_config(
    domain: &str,
    cert_resolver: &str,
    gate: &str,
    lxd: &str,
    admin_group: &str,
) -> Value {
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
    let mut routers = json!({
        "trm_manage": gated("manage", "trm_cockpit"),
        "trm_proxy": gated("proxy", "api@internal"),
        // Sign-in and the OIDC callback: the gate itself, ungated.
        "trm_auth": {
            "rule": format!("Host(`auth.{domain}`)"),
            "entryPoints": ["websecure"],
            "service": "trm_gate",
            "tls": tls,
        },
    });
    for d in DASHBOARDS {
        routers[format!("trm_{d}_oauth2")] =
            oauth2_router(&format!("{d}.{domain}"), "trm_gate", cert_resolver);
    }
    let groups = if admin_group.is_empty() {
        Vec::new()
    } else {
        vec![admin_group.to_string()]
    };
    json!({
        "http": {
            "routers": routers,
            "services": {
                "trm_cockpit": {"loadBalancer": {"servers": [{"url": format!("http://{COCKPIT}")}]}},
                "trm_gate": {"loadBalancer": {"servers": [{"url": gate.trim_end_matches('/')}]}},
            },
            "middlewares": {
                "trm_gate": forward_auth(gate, &groups),
            },
        },
        // LXD terminates TLS itself and checks client certificates: passthrough.
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

/// The management routes for these settings, validated: the admin group
/// comes from the gate's settings (none yet: the gate is not configured,
/// and does not run, so the dashboards answer no one).
pub fn management_file(
    e: &ExposeSettings,
    domain: &str,
    g: Option<&GateSettings>,
) -> Result<Value> {
    let mgmt = management_config(
        domain,
        &e.cert_resolver,
        &e.auth_address,
        crate::baseline::HTTPS_ADDRESS,
        g.map(|g| g.admin_group.as_str()).unwrap_or_default(),
    );
    validate_dynamic(&mgmt)
        .map_err(|errs| Error::parse("the generated management routes", errs.join("; ")))?;
    Ok(mgmt)
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
    /// The ID token claim listing a user's groups.
    pub groups_claim: String,
    /// The auth host's URL [default: https://auth.<root domain>].
    pub auth_url: Option<String>,
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
        if doc[key].as_str().is_none_or(str::is_empty) {
            return Err(Error::Usage(format!(
                "the discovery document at {url} has no {key}"
            )));
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_file_validates_and_gates_all_but_lxd() {
        let v = management_config(
            "example.test",
            "letsencrypt",
            "http://127.0.0.1:4180",
            "127.0.0.1:8443",
            "admins",
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
        let fa = &v["http"]["middlewares"]["trm_gate"]["forwardAuth"];
        assert_eq!(
            fa["address"],
            "http://127.0.0.1:4180/oauth2/auth?allowed_groups=admins"
        );
        assert_eq!(fa["trustForwardHeader"], false);
        for d in ["manage", "proxy"] {
            let o = &r[format!("trm_{d}_oauth2")];
            assert_eq!(
                o["rule"],
                format!("Host(`{d}.example.test`) && PathPrefix(`/oauth2/`)")
            );
            assert_eq!(o["service"], "trm_gate");
        }
        let lxd = &v["tcp"]["routers"]["trm_lxd"];
        assert_eq!(lxd["tls"]["passthrough"], true);
        assert!(lxd.get("middlewares").is_none());
        assert_eq!(
            v["tcp"]["services"]["trm_lxd"]["loadBalancer"]["servers"][0]["address"],
            "127.0.0.1:8443"
        );
    }
}
