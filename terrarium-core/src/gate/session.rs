//! Sessions in cookies, sealed with AES-256-GCM (the `cookie` crate's
//! private jar: the cookie's name is bound in, so a sign-in cookie cannot
//! pose as a session). Each session names the one host it opens; the
//! `__Host-` prefix makes browsers keep it host-only, Secure, on `/`.

use cookie::{Cookie, CookieJar, Key, SameSite};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// A signed-in user's session on one host.
pub const SESSION_COOKIE: &str = "__Host-trm_gate";
/// A sign-in under way on the auth host (state, nonce, PKCE verifier).
pub const SIGNIN_COOKIE: &str = "__Host-trm_gate_signin";
/// Set on an app host when its sign-in starts; its hand-off code only
/// works in the browser that carries it (no one else's session planted).
pub const BIND_COOKIE: &str = "__Host-trm_gate_bind";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// One sign-in: every host's session from it shares the id, so a sign-out revokes them all.
    pub sid: String,
    /// The only host this session opens (lowercase, no port).
    pub host: String,
    pub sub: String,
    pub email: String,
    pub groups: Vec<String>,
    /// Unix seconds.
    pub exp: u64,
}

/// A sign-in sent to the issuer, checked when it comes back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignIn {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
    /// Where to go once signed in (already checked).
    pub rd: String,
    /// The target host's bind cookie value, when the sign-in began there.
    #[serde(default)]
    pub bind: Option<String>,
    pub exp: u64,
}

/// Why a cookie did not open a session, for the log (the user sees a sign-in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    Missing,
    /// No key opens it: tampered, forged, or sealed with a retired key.
    Unsealed,
    Expired,
    OtherHost(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Missing => write!(f, "no session cookie"),
            Refused::Unsealed => write!(f, "a session cookie no key opens (tampered or retired)"),
            Refused::Expired => write!(f, "an expired session"),
            Refused::OtherHost(h) => write!(f, "a session for another host ({h})"),
        }
    }
}

/// The cookie keys, newest first.
pub struct KeyRing(Vec<Key>);

impl KeyRing {
    pub fn new(keys: &[Vec<u8>]) -> KeyRing {
        KeyRing(
            keys.iter()
                .map(|k| Key::try_from(k.as_slice()).expect("keys::parse checks the length"))
                .collect(),
        )
    }

    /// Seal `value` as cookie `name` with the newest key.
    pub fn seal<T: Serialize>(&self, name: &str, value: &T) -> String {
        let mut jar = CookieJar::new();
        let json = serde_json::to_string(value).expect("serializable");
        jar.private_mut(&self.0[0])
            .add(Cookie::new(name.to_string(), json));
        jar.get(name).expect("just added").value().to_string()
    }

    /// Open a sealed value with any key of the ring.
    pub fn open<T: DeserializeOwned>(&self, name: &str, sealed: &str) -> Option<T> {
        let jar = CookieJar::new();
        self.0.iter().find_map(|key| {
            let plain = jar
                .private(key)
                .decrypt(Cookie::new(name.to_string(), sealed.to_string()))?;
            serde_json::from_str(plain.value()).ok()
        })
    }

    /// The session the request's cookies hold for `host` at `now`.
    pub fn session(
        &self,
        cookie_header: Option<&str>,
        host: &str,
        now: u64,
    ) -> Result<Session, Refused> {
        let mut best = Refused::Missing;
        // A browser may send several cookies of one name; any valid one counts.
        for sealed in cookie_values(cookie_header, SESSION_COOKIE) {
            let Some(s) = self.open::<Session>(SESSION_COOKIE, &sealed) else {
                best = Refused::Unsealed;
                continue;
            };
            if s.host != host {
                best = Refused::OtherHost(s.host);
            } else if s.exp <= now {
                best = Refused::Expired;
            } else {
                return Ok(s);
            }
        }
        Err(best)
    }

    pub fn signin(&self, cookie_header: Option<&str>, now: u64) -> Option<SignIn> {
        cookie_values(cookie_header, SIGNIN_COOKIE)
            .into_iter()
            .filter_map(|v| self.open::<SignIn>(SIGNIN_COOKIE, &v))
            .find(|s| s.exp > now)
    }
}

/// The values of every cookie called `name` in a `Cookie:` header.
pub fn cookie_values(header: Option<&str>, name: &str) -> Vec<String> {
    let Some(h) = header else {
        return Vec::new();
    };
    Cookie::split_parse(h.to_string())
        .filter_map(|c| c.ok())
        .filter(|c| c.name() == name)
        .map(|c| c.value().to_string())
        .collect()
}

/// `Set-Cookie` for `name`: host-only (no Domain), `/`, Secure, HttpOnly,
/// SameSite=Lax (the issuer's redirect back is a top-level GET, which Lax
/// lets through), living `max_age` seconds.
pub fn set_cookie(name: &str, value: &str, max_age: u64) -> String {
    Cookie::build((name.to_string(), value.to_string()))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(cookie::time::Duration::seconds(
            i64::try_from(max_age).unwrap_or(i64::MAX),
        ))
        .build()
        .to_string()
}

/// `Set-Cookie` that removes `name` (same attributes, expired).
pub fn clear_cookie(name: &str) -> String {
    set_cookie(name, "", 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> Vec<u8> {
        vec![b; crate::gate::keys::KEY_BYTES]
    }

    fn session(host: &str, exp: u64) -> Session {
        Session {
            sid: "s1".into(),
            host: host.into(),
            sub: "bob".into(),
            email: "bob@example.test".into(),
            groups: vec!["admins".into()],
            exp,
        }
    }

    fn header(value: &str) -> String {
        format!("other=1; {SESSION_COOKIE}={value}")
    }

    #[test]
    fn a_session_opens_only_its_host_until_it_expires() {
        let ring = KeyRing::new(&[key(1)]);
        let sealed = ring.seal(SESSION_COOKIE, &session("app-a.example.test", 100));
        let h = header(&sealed);
        assert_eq!(
            ring.session(Some(&h), "app-a.example.test", 99).unwrap(),
            session("app-a.example.test", 100)
        );
        assert_eq!(
            ring.session(Some(&h), "app-b.example.test", 99),
            Err(Refused::OtherHost("app-a.example.test".into()))
        );
        assert_eq!(
            ring.session(Some(&h), "app-a.example.test", 100),
            Err(Refused::Expired)
        );
        assert_eq!(
            ring.session(None, "app-a.example.test", 1),
            Err(Refused::Missing)
        );
    }

    #[test]
    fn tampered_or_renamed_cookies_do_not_open() {
        let ring = KeyRing::new(&[key(1)]);
        let sealed = ring.seal(SESSION_COOKIE, &session("h", 100));
        let mut bytes = sealed.clone().into_bytes();
        let mid = bytes.len() / 2;
        bytes[mid] = if bytes[mid] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(bytes).unwrap();
        assert_eq!(
            ring.session(Some(&header(&tampered)), "h", 1),
            Err(Refused::Unsealed)
        );
        // The name is bound in: a sign-in cookie's value is no session.
        let other = ring.seal(SIGNIN_COOKIE, &session("h", 100));
        assert_eq!(
            ring.session(Some(&header(&other)), "h", 1),
            Err(Refused::Unsealed)
        );
        // A forged plain-JSON value is no session either.
        let forged = serde_json::to_string(&session("h", 100)).unwrap();
        assert_eq!(
            ring.session(Some(&header(&forged)), "h", 1),
            Err(Refused::Unsealed)
        );
    }

    #[test]
    fn rotation_keeps_sessions_of_the_previous_key_only() {
        let old = KeyRing::new(&[key(1)]);
        let sealed = old.seal(SESSION_COOKIE, &session("h", 100));
        let rotated = KeyRing::new(&[key(2), key(1)]);
        assert!(rotated.session(Some(&header(&sealed)), "h", 1).is_ok());
        let retired = KeyRing::new(&[key(3), key(2)]);
        assert_eq!(
            retired.session(Some(&header(&sealed)), "h", 1),
            Err(Refused::Unsealed)
        );
        // New sessions are sealed with the newest key.
        let fresh = rotated.seal(SESSION_COOKIE, &session("h", 100));
        assert!(KeyRing::new(&[key(2)])
            .session(Some(&header(&fresh)), "h", 1)
            .is_ok());
    }

    #[test]
    fn cookies_are_host_only_secure_http_only_lax() {
        let c = set_cookie(SESSION_COOKIE, "v", 3600);
        for part in [
            "Path=/",
            "Secure",
            "HttpOnly",
            "SameSite=Lax",
            "Max-Age=3600",
        ] {
            assert!(c.contains(part), "{c} lacks {part}");
        }
        assert!(!c.to_ascii_lowercase().contains("domain"), "{c}");
        assert!(clear_cookie(SESSION_COOKIE).contains("Max-Age=0"));
    }
}
