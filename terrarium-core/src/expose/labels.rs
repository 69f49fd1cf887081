//! The `user.proxy` label: an instance's public exposure, as its owner (or
//! `trm-expose`) wrote it. Parsing is strict so nothing a label says can
//! change the meaning of a Traefik rule.
//!
//! ```text
//! https://HOST[:CPORT][/PATH][@auth[:GROUP,GROUP...]]   TLS at Traefik, http->https redirect
//! http://HOST[:CPORT][/PATH]                             plain HTTP (no @auth: the sign-on cookie is HTTPS-only)
//! tcp://HOSTPORT[:CPORT]    udp://HOSTPORT[:CPORT]      a raw host port
//! share://HOST/PATH                                     the holder of HOST lets other
//!                                                       instances route PATH and below
//! ```
//! Items are separated by commas or newlines; a comma inside an `@auth:`
//! group list belongs to that item.

use std::fmt;

use serde::Serialize;

/// The LXD config key holding the label.
pub const KEY: &str = "user.proxy";

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    Http {
        tls: bool,
        host: String,
        /// Port inside the container.
        cport: u16,
        /// `None` for the whole host.
        path: Option<String>,
        /// `None`: public; `Some([])`: any signed-in user; else these groups.
        auth: Option<Vec<String>>,
    },
    Tcp {
        host_port: u16,
        cport: u16,
    },
    Udp {
        host_port: u16,
        cport: u16,
    },
    /// Routes nothing: the holder of `host` lets other instances route
    /// `path` and the paths below it (a host is otherwise all its holder's).
    Share {
        host: String,
        path: String,
    },
}

/// What an item holds exclusively: a host and path, or a host port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Claim {
    Route { host: String, path: String },
    Tcp { port: u16 },
    Udp { port: u16 },
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Claim::Route { host, path } if path == "/" => write!(f, "{host}"),
            Claim::Route { host, path } => write!(f, "{host}{path}"),
            Claim::Tcp { port } => write!(f, "tcp port {port}"),
            Claim::Udp { port } => write!(f, "udp port {port}"),
        }
    }
}

impl Item {
    pub fn claim(&self) -> Claim {
        match self {
            Item::Http { host, path, .. } => Claim::Route {
                host: host.clone(),
                path: path.clone().unwrap_or_else(|| "/".into()),
            },
            Item::Share { host, path } => Claim::Route {
                host: host.clone(),
                path: path.clone(),
            },
            Item::Tcp { host_port, .. } => Claim::Tcp { port: *host_port },
            Item::Udp { host_port, .. } => Claim::Udp { port: *host_port },
        }
    }

    /// The public host an `http(s)://` or `share://` item is on.
    pub fn host(&self) -> Option<&str> {
        match self {
            Item::Http { host, .. } | Item::Share { host, .. } => Some(host),
            Item::Tcp { .. } | Item::Udp { .. } => None,
        }
    }

    /// The raw host port a `tcp://` or `udp://` item takes: (udp, port).
    pub fn host_port(&self) -> Option<(bool, u16)> {
        match self {
            Item::Tcp { host_port, .. } => Some((false, *host_port)),
            Item::Udp { host_port, .. } => Some((true, *host_port)),
            Item::Http { .. } | Item::Share { .. } => None,
        }
    }
}

impl fmt::Display for Item {
    /// The canonical label text of the item.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Http {
                tls,
                host,
                cport,
                path,
                auth,
            } => {
                write!(f, "{}://{host}", if *tls { "https" } else { "http" })?;
                if *cport != 80 {
                    write!(f, ":{cport}")?;
                }
                if let Some(p) = path {
                    write!(f, "{p}")?;
                }
                match auth {
                    None => Ok(()),
                    Some(g) if g.is_empty() => write!(f, "@auth"),
                    Some(g) => write!(f, "@auth:{}", g.join(",")),
                }
            }
            Item::Tcp { host_port, cport } => write!(f, "tcp://{host_port}:{cport}"),
            Item::Udp { host_port, cport } => write!(f, "udp://{host_port}:{cport}"),
            Item::Share { host, path } => write!(f, "share://{host}{path}"),
        }
    }
}

/// One item that could not be parsed, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ItemError {
    pub item: String,
    pub message: String,
}

impl fmt::Display for ItemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}': {}", self.item, self.message)
    }
}

/// Parse a whole label. Good items are kept even when others are bad, so
/// one typo never takes down an instance's other routes.
pub fn parse(label: &str) -> (Vec<Item>, Vec<ItemError>) {
    let mut items = Vec::new();
    let mut errors = Vec::new();
    for text in split_items(label) {
        match parse_item(&text) {
            Ok(item) if items.contains(&item) => {}
            Ok(item) => items.push(item),
            Err(message) => errors.push(ItemError {
                item: text,
                message,
            }),
        }
    }
    (items, errors)
}

/// The canonical label for a list of items (one per line).
pub fn render(items: &[Item]) -> String {
    items
        .iter()
        .map(Item::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

fn split_items(label: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in label.lines() {
        let mut in_groups = false;
        for token in line.split(',').map(str::trim) {
            if token.is_empty() {
                continue;
            }
            match out.last_mut() {
                // A bare word after `@auth:` is one more group of that item.
                Some(prev) if in_groups && !token.contains("://") => {
                    prev.push(',');
                    prev.push_str(token);
                }
                _ => {
                    out.push(token.to_string());
                    in_groups = token.contains("@auth:");
                }
            }
        }
    }
    out
}

fn parse_item(text: &str) -> Result<Item, String> {
    if text.contains("{{") || text.contains("}}") {
        return Err(
            "template braces are not allowed (Traefik renders its files as Go templates)".into(),
        );
    }
    if let Some(c) = text.chars().find(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!("unexpected character {c:?}"));
    }
    let (scheme, rest) = text
        .split_once("://")
        .ok_or("expected https://, http://, tcp://, udp:// or share://")?;
    match scheme.to_ascii_lowercase().as_str() {
        "https" => parse_http(true, rest),
        "http" => parse_http(false, rest),
        "tcp" => parse_ports(rest).map(|(host_port, cport)| Item::Tcp { host_port, cport }),
        "udp" => parse_ports(rest).map(|(host_port, cport)| Item::Udp { host_port, cport }),
        "share" => parse_share(rest),
        other => Err(format!(
            "unknown scheme '{other}' (use https, http, tcp, udp or share)"
        )),
    }
}

fn parse_http(tls: bool, rest: &str) -> Result<Item, String> {
    let (target, auth) = match rest.split_once('@') {
        None => (rest, None),
        Some((t, a)) => (t, Some(parse_auth(a)?)),
    };
    let (hostport, path) = match target.find('/') {
        None => (target, None),
        Some(i) => (&target[..i], Some(normalize_path(&target[i..])?)),
    };
    let (host, cport) = match hostport.rsplit_once(':') {
        None => (hostport, 80),
        Some((h, p)) => (h, parse_port(p, "container port")?),
    };
    if !tls && auth.is_some() {
        return Err(format!(
            "'http://{rest}': @auth needs https:// (the sign-on cookie is only ever sent over HTTPS)"
        ));
    }
    Ok(Item::Http {
        tls,
        host: normalize_host(host)?,
        cport,
        path: path.filter(|p| p != "/"),
        auth,
    })
}

/// `share://HOST/PATH`: a path is required (sharing `/` would give the
/// whole host away), and nothing else: no port, no auth.
fn parse_share(rest: &str) -> Result<Item, String> {
    let Some(i) = rest.find('/') else {
        return Err("share:// needs a path: share://HOST/PATH".into());
    };
    let path = normalize_path(&rest[i..])?;
    if path == "/" {
        return Err("share:// needs a path other than /: share://HOST/PATH".into());
    }
    let host = &rest[..i];
    if host.contains([':', '@']) {
        return Err(format!(
            "'{host}': share:// takes a host and a path only (no port, no @auth)"
        ));
    }
    Ok(Item::Share {
        host: normalize_host(host)?,
        path,
    })
}

fn parse_auth(a: &str) -> Result<Vec<String>, String> {
    let groups = match a.split_once(':') {
        None if a == "auth" => return Ok(Vec::new()),
        Some(("auth", g)) => g,
        _ => return Err(format!("'@{a}': expected @auth or @auth:GROUP,GROUP")),
    };
    let mut out: Vec<String> = Vec::new();
    for g in groups.split(',').map(str::trim) {
        let ok = !g.is_empty()
            && g.len() <= 128
            && g.chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c));
        if !ok {
            return Err(format!(
                "invalid group '{g}' (letters, digits, _ . - / only)"
            ));
        }
        if !out.iter().any(|x| x == g) {
            out.push(g.to_string());
        }
    }
    Ok(out)
}

fn parse_port(p: &str, what: &str) -> Result<u16, String> {
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(format!("{what} '{p}' is not a port between 1 and 65535")),
    }
}

fn parse_ports(rest: &str) -> Result<(u16, u16), String> {
    let (h, c) = match rest.split_once(':') {
        None => (rest, rest),
        Some((h, c)) => (h, c),
    };
    Ok((
        parse_port(h, "host port")?,
        parse_port(c, "container port")?,
    ))
}

/// Lowercase, IDNs to punycode, then RFC 1123: labels of letters, digits
/// and inner hyphens, 1-63 characters each, 253 in all.
pub fn normalize_host(host: &str) -> Result<String, String> {
    let bad = |why: &str| format!("host '{host}' {why}");
    if host.is_empty() {
        return Err(bad("is empty"));
    }
    let ascii = idna::domain_to_ascii_strict(host)
        .map_err(|_| bad("is not a valid domain name"))?
        .to_ascii_lowercase();
    if ascii.len() > 253 {
        return Err(bad("is longer than 253 characters"));
    }
    for label in ascii.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(bad("has an empty or over-long label"));
        }
        if !label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(bad("may contain only letters, digits, hyphens and dots"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(bad("has a label starting or ending with a hyphen"));
        }
    }
    Ok(ascii)
}

/// A conservative path: `/` then letters, digits and `-._~/`, no empty,
/// `.` or `..` segments, no trailing slash.
pub fn normalize_path(path: &str) -> Result<String, String> {
    let bad = |why: &str| format!("path '{path}' {why}");
    if !path.starts_with('/') {
        return Err(bad("must start with /"));
    }
    if path.len() > 256 {
        return Err(bad("is longer than 256 characters"));
    }
    if !path
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
    {
        return Err(bad("may contain only letters, digits and - . _ ~ /"));
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok("/".into());
    }
    if trimmed[1..]
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        return Err(bad("has an empty, . or .. segment"));
    }
    Ok(trimmed.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(label: &str) -> Item {
        let (items, errors) = parse(label);
        assert!(errors.is_empty(), "{label}: {errors:?}");
        assert_eq!(items.len(), 1, "{label}");
        items.into_iter().next().unwrap()
    }

    #[test]
    fn valid_items_parse_to_their_canonical_form() {
        let cases = [
            ("https://app.example.com", "https://app.example.com"),
            (
                "HTTPS://App.Example.COM:3000/",
                "https://app.example.com:3000",
            ),
            (
                "http://app.example.com:8080/api/v1/",
                "http://app.example.com:8080/api/v1",
            ),
            (
                "https://app.example.com@auth",
                "https://app.example.com@auth",
            ),
            (
                "https://app.example.com/admin@auth:admins,ops",
                "https://app.example.com/admin@auth:admins,ops",
            ),
            ("https://bücher.example", "https://xn--bcher-kva.example"),
            ("tcp://5432:5432", "tcp://5432:5432"),
            ("tcp://2222", "tcp://2222:2222"),
            ("udp://5353:53", "udp://5353:53"),
            (
                "SHARE://App.Example.com/api/",
                "share://app.example.com/api",
            ),
            ("share://a.example/docs/v1", "share://a.example/docs/v1"),
        ];
        for (label, canonical) in cases {
            assert_eq!(one(label).to_string(), canonical, "{label}");
            assert_eq!(
                one(canonical).to_string(),
                canonical,
                "round trip {canonical}"
            );
        }
    }

    #[test]
    fn commas_inside_auth_groups_belong_to_the_item() {
        let (items, errors) = parse("https://a.example@auth:g1,g2, tcp://2222:22\nhttp://b.example,https://c.example@auth:x");
        assert!(errors.is_empty(), "{errors:?}");
        let shown: Vec<String> = items.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            shown,
            [
                "https://a.example@auth:g1,g2",
                "tcp://2222:22",
                "http://b.example",
                "https://c.example@auth:x"
            ]
        );
    }

    #[test]
    fn hostile_and_invalid_items_are_refused_with_a_reason() {
        let cases = [
            (
                "https://app.example.com`) || Host(`evil.example",
                "unexpected character",
            ),
            ("https://a.example/{{ .Env.SECRET }}", "template braces"),
            ("https://{{x}}.example", "template braces"),
            ("https://a.example/x`)", "may contain only"),
            ("https://a.example/../etc", ".. segment"),
            ("https://a.example//x", "empty"),
            ("https://-a.example", "not a valid domain"),
            ("https://a_b.example", "not a valid domain"),
            ("https://*.example.com", "not a valid domain"),
            ("https://", "empty"),
            ("https://a.example:0", "between 1 and 65535"),
            ("https://a.example:70000", "between 1 and 65535"),
            ("tcp://0:22", "between 1 and 65535"),
            ("tcp://22:x", "not a port"),
            ("ftp://a.example", "unknown scheme"),
            ("share://a.example", "needs a path"),
            ("share://a.example/", "other than /"),
            ("share://a.example:80/x", "no port, no @auth"),
            ("share://a.example/x@auth", "may contain only"),
            ("share://a_b.example/x", "not a valid domain"),
            ("a.example", "expected https://"),
            ("https://a.example@admin", "expected @auth"),
            ("http://a.example@auth", "@auth needs https://"),
            ("https://a.example@auth:g;rm", "invalid group"),
            ("https://a.example\u{0}", "unexpected character"),
            (
                &format!("https://{}.example", "a".repeat(64)),
                "not a valid domain",
            ),
        ];
        for (label, why) in cases {
            let (items, errors) = parse(label);
            assert!(items.is_empty(), "{label:?} parsed to {items:?}");
            assert_eq!(errors.len(), 1, "{label:?}: {errors:?}");
            assert!(
                errors[0].message.contains(why),
                "{label:?}: {}",
                errors[0].message
            );
        }
    }

    #[test]
    fn a_bad_item_does_not_hide_the_good_ones() {
        let (items, errors) = parse("https://good.example, ftp://bad, tcp://2222:22");
        assert_eq!(items.len(), 2);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].item, "ftp://bad");
    }

    #[test]
    fn claims_ignore_tls_and_port_but_not_path() {
        let a = one("https://a.example").claim();
        assert_eq!(a, one("http://a.example:8080").claim());
        assert_ne!(a, one("https://a.example/api").claim());
        assert_ne!(one("tcp://53").claim(), one("udp://53").claim());
        assert_eq!(
            render(&[one("tcp://2222:22"), one("https://a.example")]),
            "tcp://2222:22\nhttps://a.example"
        );
    }
}
