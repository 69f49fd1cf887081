//! Which hosts the gate serves, and which redirect targets it accepts.
//!
//! A host is gated when Terrarium's Traefik files give it a `/oauth2/`
//! router to the gate (every `@auth` host and every dashboard has one).
//! Those hosts, and the auth host, are the only places a sign-in sends a
//! browser: `rd=https://evil.example` is refused.

use std::collections::BTreeSet;
use std::path::Path;

use url::Url;

/// The path prefix the gate owns on every gated host.
pub const OAUTH2_PREFIX: &str = "/oauth2/";

/// Routers to the gate on gated hosts win over any tenant route there.
pub const OAUTH2_PRIORITY: u64 = 1_000_000;

/// The rule of a gated host's router to the gate.
pub fn oauth2_rule(host: &str) -> String {
    format!("Host(`{host}`) && PathPrefix(`{OAUTH2_PREFIX}`)")
}

/// The host of a rule `oauth2_rule` wrote.
pub fn host_of_oauth2_rule(rule: &str) -> Option<&str> {
    let host = rule
        .strip_prefix("Host(`")?
        .strip_suffix(&format!("`) && PathPrefix(`{OAUTH2_PREFIX}`)"))?;
    (!host.is_empty() && !host.contains('`')).then_some(host)
}

/// A request's host, lowercase and without a port.
pub fn bare_host(host: &str) -> String {
    let h = host.trim();
    let h = match h.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name,
        _ => h,
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Every host with a `/oauth2/` router in Terrarium's files (per-instance
/// files and the management file) in Traefik's watched directory.
pub fn gated_hosts(dynamic_dir: &Path) -> BTreeSet<String> {
    let mut hosts = BTreeSet::new();
    let Ok(entries) = std::fs::read_dir(dynamic_dir) else {
        return hosts;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !(crate::traefik::is_our_file(&name) || name == crate::harden::gate::MANAGEMENT_FILE) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        // Terrarium writes JSON (which is YAML); read YAML for hand edits.
        let doc: Option<serde_json::Value> = serde_json::from_str(&text)
            .ok()
            .or_else(|| serde_yaml_ng::from_str(&text).ok());
        let Some(routers) = doc
            .as_ref()
            .and_then(|d| d.pointer("/http/routers"))
            .and_then(|r| r.as_object())
        else {
            continue;
        };
        for r in routers.values() {
            if let Some(h) = r["rule"].as_str().and_then(host_of_oauth2_rule) {
                hosts.insert(bare_host(h));
            }
        }
    }
    hosts
}

/// The URL a sign-in may send the browser to: `rd` when it is an https
/// URL on the auth host or a gated host, on the auth URL's port, with no
/// user part; a bare path means the auth host. Anything else is refused.
pub fn redirect_target(rd: &str, auth_url: &Url, gated: &BTreeSet<String>) -> Result<Url, String> {
    if rd.len() > 2048 || rd.contains('\\') || rd.chars().any(char::is_control) {
        return Err(format!("refusing redirect target {rd:?}"));
    }
    let url = if rd.starts_with('/') && !rd.starts_with("//") {
        auth_url
            .join(rd)
            .map_err(|e| format!("refusing redirect target {rd:?}: {e}"))?
    } else {
        Url::parse(rd).map_err(|e| format!("refusing redirect target {rd:?}: {e}"))?
    };
    let host = url.host_str().map(bare_host).unwrap_or_default();
    let auth_host = auth_url.host_str().map(bare_host).unwrap_or_default();
    if url.scheme() != "https" {
        return Err(format!(
            "refusing redirect target {rd:?}: only https targets"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!(
            "refusing redirect target {rd:?}: it carries a user name"
        ));
    }
    if host != auth_host && !gated.contains(&host) {
        return Err(format!(
            "refusing redirect target {rd:?}: {host} is not a host Terrarium routes through the gate"
        ));
    }
    if url.port() != auth_url.port() {
        return Err(format!(
            "refusing redirect target {rd:?}: not on the public HTTPS port"
        ));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gated() -> BTreeSet<String> {
        [
            "app-a.example.test".to_string(),
            "manage.example.test".into(),
        ]
        .into()
    }

    fn auth() -> Url {
        Url::parse("https://auth.example.test").unwrap()
    }

    #[test]
    fn only_gated_hosts_and_the_auth_host_are_targets() {
        for ok in [
            "https://app-a.example.test/x?y=1",
            "https://APP-A.example.test/",
            "https://manage.example.test",
            "https://auth.example.test/",
            "/signed-in",
        ] {
            assert!(redirect_target(ok, &auth(), &gated()).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("https://evil.example", "not a host Terrarium routes"),
            ("https://app-a.example.test.evil.example/", "not a host"),
            ("http://app-a.example.test/", "only https"),
            ("//evil.example/", "refusing"),
            ("/\\evil.example", "refusing"),
            ("https://bob@app-a.example.test/", "user name"),
            ("https://app-a.example.test:8443/", "port"),
            ("javascript:alert(1)", "only https"),
            ("https://evil.example\t/", "refusing"),
        ] {
            let e = redirect_target(bad, &auth(), &gated()).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let with_port = Url::parse("https://auth.example.test:19443").unwrap();
        assert!(redirect_target("https://app-a.example.test:19443/", &with_port, &gated()).is_ok());
        assert!(redirect_target("https://app-a.example.test/", &with_port, &gated()).is_err());
    }

    #[test]
    fn gated_hosts_come_from_oauth2_routers_in_our_files_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, host: &str| {
            let doc = serde_json::json!({"http": {"routers": {
                "r": {"rule": oauth2_rule(host), "service": "s"},
                "other": {"rule": "Host(`plain.example.test`)", "service": "s"},
            }}});
            std::fs::write(dir.path().join(name), doc.to_string()).unwrap();
        };
        file("trm-default_web.yml", "app-a.example.test");
        file(crate::harden::gate::MANAGEMENT_FILE, "Manage.example.test");
        file("someone-else.yml", "theirs.example.test");
        assert_eq!(gated_hosts(dir.path()), gated());
        assert_eq!(bare_host("App-A.example.test:19443"), "app-a.example.test");
        assert_eq!(host_of_oauth2_rule("Host(`a`) && PathPrefix(`/x`)"), None);
    }
}
