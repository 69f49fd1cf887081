//! What the gate answers, as a function of the request, its state and the
//! time: no sockets here, so every decision is unit-tested.
//!
//! - `/oauth2/auth` (Traefik's forwardAuth): 200 with the user's headers
//!   for a valid session of this host in an allowed group; 403 for a
//!   signed-in user outside the groups; else a redirect to sign in
//!   (navigations) or 401.
//! - `/oauth2/start` on the auth host: straight on when the auth host has a
//!   session, else off to the issuer with state, nonce and PKCE sealed in
//!   a sign-in cookie.
//! - `/oauth2/callback` on the auth host: the issuer's answer, checked;
//!   a session for the auth host, then on to the target.
//! - `/oauth2/handoff` on a gated host: a one-time code (60 s, that host
//!   only) becomes that host's own session cookie.
//! - `/oauth2/sign_out`: the sign-in is revoked on every host, this
//!   host's cookie cleared, then the auth host's.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, RwLock};

use url::Url;

use super::hosts::{bare_host, redirect_target};
use super::oidc::{Issuer, SignInError};
use super::pages::page;
use super::session::{
    clear_cookie, cookie_values, set_cookie, KeyRing, Refused, Session, SignIn, BIND_COOKIE,
    SESSION_COOKIE, SIGNIN_COOKIE,
};

/// A one-time hand-off code lives this long (seconds).
pub const HANDOFF_TTL: u64 = 60;
/// A sign-in at the issuer may take this long (seconds).
pub const SIGNIN_TTL: u64 = 600;
/// Hand-off codes waiting at once; beyond, new ones wait (a signed-in
/// user looping over /oauth2/start cannot grow the gate without bound).
pub const MAX_HANDOFFS: usize = 10_000;
/// Codes one sign-in may have waiting (a browser opening a few hosts).
pub const MAX_HANDOFFS_PER_SIGNIN: usize = 8;
/// The longest path and query a sign-in carries to its target.
pub const MAX_TARGET: usize = 2048;

/// The parts of an HTTP request the gate reads.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    /// Path and query as received (`/oauth2/auth?allowed_groups=a`).
    pub target: String,
    /// `Host`.
    pub host: String,
    /// `X-Forwarded-*`, set by Traefik (from the request it received, not
    /// from the client: `trustForwardHeader` is off).
    pub forwarded_host: Option<String>,
    pub forwarded_proto: Option<String>,
    pub forwarded_uri: Option<String>,
    pub forwarded_method: Option<String>,
    pub cookie: Option<String>,
    pub accept: Option<String>,
    /// `Sec-Fetch-Site`, which browsers set and pages cannot.
    pub sec_fetch_site: Option<String>,
}

impl Request {
    /// The public host the browser asked for, with its port if any.
    fn public_host(&self) -> &str {
        self.forwarded_host.as_deref().unwrap_or(&self.host)
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    fn query(&self, key: &str) -> Option<String> {
        let q = self.target.split_once('?')?.1;
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    }

    /// A browser finding its way (worth a redirect), not an API call.
    fn is_navigation(&self) -> bool {
        let m = self.forwarded_method.as_deref().unwrap_or(&self.method);
        (m == "GET" || m == "HEAD")
            && self
                .accept
                .as_deref()
                .is_some_and(|a| a.contains("text/html"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    fn new(status: u16, body: String) -> Response {
        let ctype = if body.starts_with("<!doctype") {
            "text/html; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        };
        Response {
            status,
            headers: vec![
                ("Content-Type".into(), ctype.into()),
                ("Cache-Control".into(), "no-store".into()),
            ],
            body,
        }
    }

    fn page(status: u16, title: &str, text: &str, link: Option<(&str, &str)>) -> Response {
        Response::new(status, page(title, text, link))
    }

    fn redirect(to: &str) -> Response {
        let mut r = Response::new(302, String::new());
        r.headers.push(("Location".into(), to.to_string()));
        r
    }

    fn with(mut self, name: &str, value: String) -> Response {
        self.headers.push((name.to_string(), value));
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Keeps the sign-outs (sid -> expiry) after each one.
pub type OnRevoke = Box<dyn Fn(&HashMap<String, u64>) + Send + Sync>;

struct Handoff {
    session: Session,
    /// The bind cookie the target host's browser must carry.
    bind: String,
    /// Path and query on the session's host.
    then: String,
    exp: u64,
}

/// What the gate knows beyond the request.
pub struct Gate {
    pub auth_url: Url,
    pub admin_group: String,
    pub session_secs: u64,
    keys: RwLock<KeyRing>,
    issuer: Box<dyn Issuer>,
    /// The hosts routed through the gate, read when needed.
    gated: Box<dyn Fn() -> BTreeSet<String> + Send + Sync>,
    handoffs: Mutex<HashMap<String, Handoff>>,
    /// Signed-out sign-ins (sid → when their sessions expire anyway).
    revoked: Mutex<HashMap<String, u64>>,
    /// Called with the revocations after each sign-out, to keep them.
    on_revoke: OnRevoke,
    persisting: Mutex<()>,
    random: Box<dyn Fn() -> String + Send + Sync>,
}

pub struct GateParts {
    pub auth_url: Url,
    pub admin_group: String,
    pub session_secs: u64,
    pub keys: KeyRing,
    pub issuer: Box<dyn Issuer>,
    pub gated: Box<dyn Fn() -> BTreeSet<String> + Send + Sync>,
    pub revoked: HashMap<String, u64>,
    pub on_revoke: OnRevoke,
    /// 32 random bytes as hex, for session ids and hand-off codes.
    pub random: Box<dyn Fn() -> String + Send + Sync>,
}

fn same(a: &str, b: &str) -> bool {
    // Constant time in the contents: the state is a secret of the sign-in.
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Gate {
    pub fn new(p: GateParts) -> Gate {
        Gate {
            auth_url: p.auth_url,
            admin_group: p.admin_group,
            session_secs: p.session_secs,
            keys: RwLock::new(p.keys),
            issuer: p.issuer,
            gated: p.gated,
            handoffs: Mutex::new(HashMap::new()),
            revoked: Mutex::new(p.revoked),
            on_revoke: p.on_revoke,
            persisting: Mutex::new(()),
            random: p.random,
        }
    }

    pub fn set_keys(&self, keys: KeyRing) {
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = keys;
    }

    fn auth_host(&self) -> String {
        self.auth_url.host_str().map(bare_host).unwrap_or_default()
    }

    /// `manage.` and `proxy.` beside the auth host.
    fn is_dashboard(&self, host: &str) -> bool {
        let auth = self.auth_host();
        let Some(domain) = auth.strip_prefix("auth.") else {
            return false;
        };
        crate::harden::gate::DASHBOARDS
            .iter()
            .any(|d| host == format!("{d}.{domain}"))
    }

    /// `https://HOST[:port]PATH` on the public HTTPS port.
    fn url_on(&self, host: &str, path: &str) -> String {
        match self.auth_url.port() {
            Some(p) => format!("https://{host}:{p}{path}"),
            None => format!("https://{host}{path}"),
        }
    }

    fn start_url(&self, rd: &str) -> String {
        self.start_url_bound(rd, None)
    }

    fn start_url_bound(&self, rd: &str, bind: Option<&str>) -> String {
        let mut q = url::form_urlencoded::Serializer::new(String::new());
        q.append_pair("rd", rd);
        if let Some(b) = bind {
            q.append_pair("bind", b);
        }
        format!(
            "{}/oauth2/start?{}",
            self.url_on(&self.auth_host(), ""),
            q.finish()
        )
    }

    /// Off to sign in from an app host: a fresh bind cookie on this host,
    /// its value carried to the auth host with the target.
    fn sign_in_from_here(&self, rd: &str) -> Response {
        let bind = (self.random)();
        Response::redirect(&self.start_url_bound(rd, Some(&bind)))
            .with("Set-Cookie", set_cookie(BIND_COOKIE, &bind, SIGNIN_TTL))
    }

    fn is_revoked(&self, sid: &str) -> bool {
        self.revoked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(sid)
    }

    /// The valid, unrevoked session for `host`.
    fn session(&self, req: &Request, host: &str, now: u64) -> Result<Session, Refused> {
        let s = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .session(req.cookie.as_deref(), host, now)?;
        if self.is_revoked(&s.sid) {
            return Err(Refused::Missing);
        }
        Ok(s)
    }

    pub fn handle(&self, req: &Request, now: u64) -> Response {
        match req.path() {
            "/ping" => Response::new(200, "OK".into()),
            "/oauth2/auth" => self.auth(req, now),
            "/oauth2/start" => self.start(req, now),
            "/oauth2/callback" => self.callback(req, now),
            "/oauth2/handoff" => self.handoff(req, now),
            "/oauth2/sign_out" => self.sign_out(req, now),
            "/" if bare_host(req.public_host()) == self.auth_host() => self.home(req, now),
            _ => Response::page(404, "Not found", "The gate has no such page.", None),
        }
    }

    fn home(&self, req: &Request, now: u64) -> Response {
        match self.session(req, &self.auth_host(), now) {
            Ok(s) => Response::page(
                200,
                "Signed in",
                &format!("Signed in as {} ({}).", s.sub, s.groups.join(", ")),
                Some(("/oauth2/sign_out", "Sign out")),
            ),
            Err(_) => Response::page(
                200,
                "Not signed in",
                "You are not signed in.",
                Some(("/oauth2/start?rd=%2F", "Sign in")),
            ),
        }
    }

    fn auth(&self, req: &Request, now: u64) -> Response {
        let raw_host = req.public_host().to_string();
        let host = bare_host(&raw_host);
        let allowed: Vec<String> = req
            .query("allowed_groups")
            .map(|g| {
                g.split(',')
                    .map(str::trim)
                    .filter(|g| !g.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        let dashboard = self.is_dashboard(&host);
        let method = req.forwarded_method.as_deref().unwrap_or(&req.method);
        if dashboard
            && !matches!(method, "GET" | "HEAD" | "OPTIONS")
            && !matches!(
                req.sec_fetch_site.as_deref(),
                None | Some("same-origin") | Some("none")
            )
        {
            // Tenant hosts share the site with the dashboards, so SameSite
            // lets a tenant page's form post to them: refused here.
            return Response::page(
                403,
                "Access refused",
                "A write to a dashboard from another site is refused.",
                None,
            );
        }
        // The dashboards need the admin group whatever the route asks:
        // a route file without it (or no admin group at all) opens nothing.
        let allowed = if dashboard {
            vec![self.admin_group.clone()]
        } else {
            allowed
        };
        match self.session(req, &host, now) {
            Ok(s) if dashboard && self.admin_group.is_empty() => Response::page(
                403,
                "Access refused",
                &format!(
                    "{} is signed in, but no admin group is configured for the dashboards.",
                    s.sub
                ),
                None,
            ),
            Ok(s) if allowed.is_empty() || s.groups.iter().any(|g| allowed.contains(g)) => {
                Response::new(200, String::new())
                    .with("X-Auth-Request-User", s.sub.clone())
                    .with("X-Auth-Request-Email", s.email.clone())
                    .with("X-Auth-Request-Groups", s.groups.join(","))
            }
            Ok(s) => Response::page(
                403,
                "Access refused",
                &format!(
                    "You are signed in as {}, who is not in a group allowed here ({}).",
                    s.sub,
                    allowed.join(", ")
                ),
                Some(("/oauth2/sign_out", "Sign out")),
            ),
            Err(why) => {
                let mut r = if req.is_navigation() {
                    let uri = req.forwarded_uri.as_deref().unwrap_or("/");
                    let uri = if uri.starts_with('/') { uri } else { "/" };
                    self.sign_in_from_here(&format!("https://{raw_host}{uri}"))
                } else {
                    Response::new(401, "sign-in required\n".into())
                };
                if why != Refused::Missing {
                    r = r.with("Set-Cookie", clear_cookie(SESSION_COOKIE));
                }
                r
            }
        }
    }

    fn refused_target(&self, why: &str) -> Response {
        Response::page(400, "Redirect refused", why, None)
    }

    fn start(&self, req: &Request, now: u64) -> Response {
        let host = bare_host(req.public_host());
        let rd = req.query("rd").unwrap_or_else(|| "/".into());
        if host != self.auth_host() {
            // Sign-in happens on the auth host; relative targets mean this host.
            let rd = if rd.starts_with('/') && !rd.starts_with("//") {
                self.url_on(&host, &rd)
            } else {
                rd
            };
            return self.sign_in_from_here(&rd);
        }
        let bind = req.query("bind");
        let target = match redirect_target(&rd, &self.auth_url, &(self.gated)()) {
            Ok(t) => t,
            Err(why) => return self.refused_target(&why),
        };
        if let Ok(s) = self.session(req, &host, now) {
            return self.go_on(&target, &s, bind.as_deref(), now);
        }
        match self.issuer.begin() {
            Err(e) => self.issuer_down(&e),
            Ok(b) => {
                let signin = SignIn {
                    state: b.state,
                    nonce: b.nonce,
                    verifier: b.verifier,
                    rd: target.to_string(),
                    bind,
                    exp: now + SIGNIN_TTL,
                };
                let sealed = self
                    .keys
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .seal(SIGNIN_COOKIE, &signin);
                Response::redirect(&b.authorize_url)
                    .with("Set-Cookie", set_cookie(SIGNIN_COOKIE, &sealed, SIGNIN_TTL))
            }
        }
    }

    fn issuer_down(&self, e: &SignInError) -> Response {
        match e {
            SignInError::Unavailable(m) => Response::page(
                503,
                "Sign-in unavailable",
                &format!("{m}. Access stays refused meanwhile; try again later."),
                None,
            ),
            SignInError::Rejected(m) => Response::page(
                403,
                "Sign-in refused",
                m,
                Some((&self.start_url("/"), "Sign in again")),
            ),
        }
    }

    fn callback(&self, req: &Request, now: u64) -> Response {
        let host = bare_host(req.public_host());
        if host != self.auth_host() {
            return Response::page(404, "Not found", "Sign-in ends on the auth host.", None);
        }
        if let Some(err) = req.query("error") {
            let detail = req.query("error_description").unwrap_or_default();
            return Response::page(
                403,
                "Sign-in refused",
                &format!("The sign-in service said: {err} {detail}"),
                Some((&self.start_url("/"), "Sign in again")),
            )
            .with("Set-Cookie", clear_cookie(SIGNIN_COOKIE));
        }
        let again = Some((self.start_url("/"), "Sign in again"));
        let again = again.as_ref().map(|(u, l)| (u.as_str(), *l));
        let signin = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .signin(req.cookie.as_deref(), now);
        let Some(signin) = signin else {
            return Response::page(
                400,
                "No sign-in under way",
                "This browser started no sign-in here, or it took longer than 10 minutes.",
                again,
            );
        };
        let (Some(code), Some(state)) = (req.query("code"), req.query("state")) else {
            return Response::page(
                400,
                "Sign-in incomplete",
                "The answer carries no code.",
                again,
            );
        };
        if !same(&state, &signin.state) {
            return Response::page(
                400,
                "Sign-in refused",
                "The answer belongs to another sign-in (state mismatch).",
                again,
            );
        }
        let identity = match self.issuer.finish(&code, &signin.verifier, &signin.nonce) {
            Ok(i) => i,
            Err(e) => {
                return self
                    .issuer_down(&e)
                    .with("Set-Cookie", clear_cookie(SIGNIN_COOKIE))
            }
        };
        let session = Session {
            sid: (self.random)(),
            host: host.clone(),
            sub: identity.sub,
            email: identity.email,
            groups: identity.groups,
            exp: now + self.session_secs,
        };
        let target = match Url::parse(&signin.rd) {
            Ok(t) => t,
            Err(e) => return self.refused_target(&e.to_string()),
        };
        let sealed = self
            .keys
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .seal(SESSION_COOKIE, &session);
        self.go_on(&target, &session, signin.bind.as_deref(), now)
            .with(
                "Set-Cookie",
                set_cookie(SESSION_COOKIE, &sealed, self.session_secs),
            )
            .with("Set-Cookie", clear_cookie(SIGNIN_COOKIE))
    }

    /// Signed in on the auth host: to the target, through a hand-off code
    /// bound to the browser that started there. A target with no bind
    /// (a start on the auth host itself) first goes by that host's own
    /// `/oauth2/start`, which sets one.
    fn go_on(
        &self,
        target: &Url,
        auth_session: &Session,
        bind: Option<&str>,
        now: u64,
    ) -> Response {
        let host = target.host_str().map(bare_host).unwrap_or_default();
        if host == self.auth_host() {
            return Response::redirect(target.as_str());
        }
        // One leading slash: `//evil.example` in a Location is another site.
        let path = format!("/{}", target.path().trim_start_matches('/'));
        let then = match target.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        if then.len() > MAX_TARGET {
            return self.refused_target("refusing redirect target: too long");
        }
        let Some(bind) = bind.filter(|b| b.len() <= 128) else {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("rd", &then)
                .finish();
            return Response::redirect(&self.url_on(&host, &format!("/oauth2/start?{q}")));
        };
        let code = (self.random)();
        let mut handoffs = self.handoffs.lock().unwrap_or_else(|p| p.into_inner());
        handoffs.retain(|_, h| h.exp > now);
        let mine = handoffs
            .values()
            .filter(|h| h.session.sid == auth_session.sid)
            .count();
        if handoffs.len() >= MAX_HANDOFFS || mine >= MAX_HANDOFFS_PER_SIGNIN {
            return Response::page(
                503,
                "Too many sign-ins",
                "Too many sign-ins are under way; try again in a minute.",
                None,
            );
        }
        handoffs.insert(
            code.clone(),
            Handoff {
                session: Session {
                    host: host.clone(),
                    ..auth_session.clone()
                },
                bind: bind.to_string(),
                then,
                exp: now + HANDOFF_TTL,
            },
        );
        Response::redirect(&self.url_on(&host, &format!("/oauth2/handoff?code={code}")))
    }

    fn handoff(&self, req: &Request, now: u64) -> Response {
        let host = bare_host(req.public_host());
        let code = req.query("code").unwrap_or_default();
        // One use, whatever happens next.
        let h = self
            .handoffs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&code);
        let again = self.start_url(&self.url_on(&host, "/"));
        let binds = cookie_values(req.cookie.as_deref(), BIND_COOKIE);
        match h {
            Some(h)
                if h.exp > now
                    && h.session.host == host
                    && binds.iter().any(|b| same(b, &h.bind))
                    && !self.is_revoked(&h.session.sid) =>
            {
                let max_age = h.session.exp.saturating_sub(now);
                let sealed = self
                    .keys
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .seal(SESSION_COOKIE, &h.session);
                Response::redirect(&self.url_on(&host, &h.then))
                    .with("Set-Cookie", set_cookie(SESSION_COOKIE, &sealed, max_age))
                    .with("Set-Cookie", clear_cookie(BIND_COOKIE))
            }
            _ => Response::page(
                400,
                "Sign-in link not valid",
                "This sign-in link was used already, has expired, is for another host, or was started in another browser.",
                Some((&again, "Sign in again")),
            ),
        }
    }

    fn sign_out(&self, req: &Request, now: u64) -> Response {
        let host = bare_host(req.public_host());
        if let Ok(s) = self.session(req, &host, now) {
            // Written outside the lock every forward-auth answer takes;
            // one writer at a time, each with the latest set.
            let _writing = self.persisting.lock().unwrap_or_else(|p| p.into_inner());
            let copy = {
                let mut revoked = self.revoked.lock().unwrap_or_else(|p| p.into_inner());
                revoked.retain(|_, exp| *exp > now);
                revoked.insert(s.sid, s.exp);
                revoked.clone()
            };
            (self.on_revoke)(&copy);
        }
        let clear = clear_cookie(SESSION_COOKIE);
        if host != self.auth_host() {
            return Response::redirect(&self.url_on(&self.auth_host(), "/oauth2/sign_out"))
                .with("Set-Cookie", clear);
        }
        Response::page(
            200,
            "Signed out",
            "You are signed out of every Terrarium host.",
            Some(("/oauth2/start?rd=%2F", "Sign in again")),
        )
        .with("Set-Cookie", clear)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::oidc::{Begun, Identity};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    /// An issuer that signs in whoever it is told, or is down.
    struct FakeIssuer {
        user: Mutex<Option<Identity>>,
        down: Arc<Mutex<bool>>,
    }

    impl Issuer for FakeIssuer {
        fn begin(&self) -> Result<Begun, SignInError> {
            if *self.down.lock().unwrap() {
                return Err(SignInError::Unavailable(
                    "the sign-in service X does not answer".into(),
                ));
            }
            Ok(Begun {
                authorize_url: "https://idp.test/authorize?state=st".into(),
                state: "st".into(),
                nonce: "n".into(),
                verifier: "v".into(),
            })
        }
        fn finish(&self, code: &str, verifier: &str, nonce: &str) -> Result<Identity, SignInError> {
            assert_eq!((code, verifier, nonce), ("c", "v", "n"));
            self.user
                .lock()
                .unwrap()
                .clone()
                .ok_or_else(|| SignInError::Rejected("no".into()))
        }
    }

    fn gate(user: &str, groups: &[&str]) -> (Gate, Arc<Mutex<bool>>) {
        let down = Arc::new(Mutex::new(false));
        let n = AtomicU32::new(0);
        let g = Gate::new(GateParts {
            auth_url: Url::parse("https://auth.example.test").unwrap(),
            admin_group: "admins".into(),
            session_secs: 3600,
            keys: KeyRing::new(&[vec![7; 64]]),
            issuer: Box::new(FakeIssuer {
                user: Mutex::new(Some(Identity {
                    sub: user.into(),
                    email: format!("{user}@example.test"),
                    groups: groups.iter().map(|g| g.to_string()).collect(),
                })),
                down: down.clone(),
            }),
            gated: Box::new(|| {
                [
                    "app-a.example.test",
                    "app-b.example.test",
                    "manage.example.test",
                ]
                .iter()
                .map(|h| h.to_string())
                .collect()
            }),
            revoked: HashMap::new(),
            on_revoke: Box::new(|_| {}),
            random: Box::new(move || format!("r{}", n.fetch_add(1, Ordering::SeqCst))),
        });
        (g, down)
    }

    /// A browser: one cookie jar per host, following the gate's redirects.
    #[derive(Default)]
    struct Browser {
        jars: HashMap<String, HashMap<String, String>>,
    }

    impl Browser {
        fn cookie(&self, host: &str) -> Option<String> {
            let jar = self.jars.get(host)?;
            Some(
                jar.iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        }

        fn keep(&mut self, host: &str, r: &Response) {
            for (n, v) in &r.headers {
                if n == "Set-Cookie" {
                    let c = cookie::Cookie::parse(v.clone()).unwrap();
                    let jar = self.jars.entry(host.to_string()).or_default();
                    if c.max_age() == Some(cookie::time::Duration::ZERO) {
                        jar.remove(c.name());
                    } else {
                        jar.insert(c.name().to_string(), c.value().to_string());
                    }
                }
            }
        }

        /// A direct request to the gate on `url` (routed to it by Traefik).
        fn get(&mut self, g: &Gate, url: &str) -> Response {
            let u = Url::parse(url).unwrap();
            let host = u.host_str().unwrap().to_string();
            let target = match u.query() {
                Some(q) => format!("{}?{q}", u.path()),
                None => u.path().to_string(),
            };
            let r = g.handle(
                &Request {
                    method: "GET".into(),
                    target,
                    host: host.clone(),
                    forwarded_host: Some(host.clone()),
                    cookie: self.cookie(&host),
                    accept: Some("text/html".into()),
                    ..Request::default()
                },
                1000,
            );
            self.keep(&host, &r);
            r
        }

        /// Traefik's forwardAuth question for a request to `host` `uri`.
        fn ask(&mut self, g: &Gate, host: &str, uri: &str, groups: &str) -> Response {
            let target = if groups.is_empty() {
                "/oauth2/auth".to_string()
            } else {
                format!("/oauth2/auth?allowed_groups={groups}")
            };
            let r = g.handle(
                &Request {
                    method: "GET".into(),
                    target,
                    host: "127.0.0.1:4180".into(),
                    forwarded_host: Some(host.into()),
                    forwarded_uri: Some(uri.into()),
                    forwarded_method: Some("GET".into()),
                    cookie: self.cookie(host),
                    accept: Some("text/html".into()),
                    ..Request::default()
                },
                1000,
            );
            self.keep(host, &r);
            r
        }

        /// Follow redirects handled by the gate; stop at the issuer or a page.
        fn follow(&mut self, g: &Gate, mut r: Response) -> (Response, Vec<String>) {
            let mut at = Vec::new();
            for _ in 0..10 {
                if r.status != 302 {
                    break;
                }
                let to = r.header("Location").unwrap().to_string();
                at.push(to.clone());
                if to.starts_with("https://idp.test/") {
                    // The issuer signs the user in and sends them back.
                    r = self.get(
                        g,
                        "https://auth.example.test/oauth2/callback?code=c&state=st",
                    );
                    continue;
                }
                // The target page itself: the gate is done.
                if !to.contains("/oauth2/") {
                    break;
                }
                r = self.get(g, &to);
            }
            (r, at)
        }

        fn sign_in(&mut self, g: &Gate, host: &str) {
            let r = self.ask(g, host, "/x?y=1", "");
            assert_eq!(r.status, 302);
            let (r, _) = self.follow(g, r);
            assert_eq!(r.status, 302, "{r:?}");
            assert_eq!(
                r.header("Location"),
                Some(format!("https://{host}/x?y=1").as_str())
            );
        }
    }

    #[test]
    fn a_sign_in_hands_each_host_its_own_cookie() {
        let (g, _) = gate("alice", &["devs"]);
        let mut b = Browser::default();
        let r = b.ask(&g, "app-a.example.test", "/x?y=1", "devs");
        assert_eq!(r.status, 302);
        assert_eq!(
            r.header("Location"),
            Some("https://auth.example.test/oauth2/start?rd=https%3A%2F%2Fapp-a.example.test%2Fx%3Fy%3D1&bind=r0")
        );
        b.sign_in(&g, "app-a.example.test");
        let ok = b.ask(&g, "app-a.example.test", "/x", "devs");
        assert_eq!(ok.status, 200);
        assert_eq!(ok.header("X-Auth-Request-User"), Some("alice"));
        assert_eq!(ok.header("X-Auth-Request-Groups"), Some("devs"));
        // Outside the allowed groups: refused, not asked to sign in again.
        assert_eq!(b.ask(&g, "app-a.example.test", "/", "admins").status, 403);
        // app-b has no cookie yet: a sign-in, which needs no issuer now.
        let r = b.ask(&g, "app-b.example.test", "/", "devs");
        assert_eq!(r.status, 302);
        let (r, at) = b.follow(&g, r);
        assert!(
            !at.iter().any(|u| u.starts_with("https://idp.test/")),
            "the auth host's session is reused: {at:?}"
        );
        assert!(
            at.iter()
                .any(|u| u.starts_with("https://app-b.example.test/oauth2/handoff?code=")),
            "{at:?}"
        );
        assert_eq!(r.header("Location"), Some("https://app-b.example.test/"));
        assert_eq!(b.ask(&g, "app-b.example.test", "/", "devs").status, 200);
    }

    #[test]
    fn a_cookie_opens_only_the_host_it_was_made_for() {
        let (g, _) = gate("bob", &["admins"]);
        let mut b = Browser::default();
        b.sign_in(&g, "app-a.example.test");
        let stolen = b.jars["app-a.example.test"].clone();
        let mut thief = Browser::default();
        for host in [
            "app-b.example.test",
            "manage.example.test",
            "auth.example.test",
        ] {
            thief.jars.insert(host.into(), stolen.clone());
            let r = thief.ask(&g, host, "/", "");
            assert_eq!(r.status, 302, "{host}");
            assert!(
                r.headers.iter().any(|(n, v)| n == "Set-Cookie"
                    && v.starts_with(&format!("{SESSION_COOKIE}="))
                    && v.contains("Max-Age=0")),
                "the bad cookie is cleared: {r:?}"
            );
        }
        // And a non-navigation gets 401, not a redirect.
        let mut api = Request {
            method: "GET".into(),
            target: "/oauth2/auth".into(),
            forwarded_host: Some("app-b.example.test".into()),
            forwarded_method: Some("POST".into()),
            accept: Some("text/html".into()),
            ..Request::default()
        };
        assert_eq!(g.handle(&api, 1000).status, 401);
        api.forwarded_method = Some("GET".into());
        api.accept = Some("application/json".into());
        assert_eq!(g.handle(&api, 1000).status, 401);
    }

    #[test]
    fn hand_off_codes_are_one_time_for_one_host_and_one_browser() {
        let (g, _) = gate("bob", &["admins"]);
        let mut b = Browser::default();
        b.sign_in(&g, "manage.example.test");
        // The hand-off URL app-a's sign-in leads to, not yet followed.
        let handoff_url = |b: &mut Browser| {
            let mut r = b.ask(&g, "app-a.example.test", "/", "");
            loop {
                let to = r.header("Location").unwrap().to_string();
                if to.contains("/oauth2/handoff?code=") {
                    return to;
                }
                r = b.get(&g, &to);
            }
        };
        let to = handoff_url(&mut b);
        let code = to.split("code=").nth(1).unwrap().to_string();
        // Replayed on another host: refused, and the code is spent.
        let other = format!("https://app-b.example.test/oauth2/handoff?code={code}");
        assert_eq!(b.get(&g, &other).status, 400);
        assert_eq!(b.get(&g, &to).status, 400);
        // A fresh one works once, in this browser.
        let to = handoff_url(&mut b);
        assert_eq!(b.get(&g, &to).status, 302);
        assert_eq!(b.get(&g, &to).status, 400, "used");
        // An attacker's own code, sent to a victim, plants nothing: it is
        // bound to the attacker's browser.
        let mut attacker = Browser::default();
        attacker.sign_in(&g, "manage.example.test");
        let planted = handoff_url(&mut attacker);
        let mut victim = Browser::default();
        victim.ask(&g, "app-a.example.test", "/", ""); // the victim's own bind
        let r = victim.get(&g, &planted);
        assert_eq!(r.status, 400);
        assert!(r.body.contains("another browser"), "{}", r.body);
        assert!(!victim.jars["app-a.example.test"].contains_key(SESSION_COOKIE));
    }

    #[test]
    fn open_redirects_are_refused() {
        let (g, _) = gate("bob", &["admins"]);
        let mut b = Browser::default();
        for rd in [
            "https://evil.example/",
            "https://evil.example@app-a.example.test/",
            "//evil.example",
        ] {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("rd", rd)
                .finish();
            let r = b.get(&g, &format!("https://auth.example.test/oauth2/start?{q}"));
            assert_eq!(r.status, 400, "{rd}");
            assert!(r.body.contains("refusing redirect target"), "{rd}");
        }
    }

    #[test]
    fn sign_out_ends_the_sign_in_on_every_host() {
        let (g, _) = gate("bob", &["admins"]);
        let mut b = Browser::default();
        b.sign_in(&g, "app-a.example.test");
        let (r, _) = {
            let r = b.ask(&g, "app-b.example.test", "/", "");
            b.follow(&g, r)
        };
        assert_eq!(r.status, 302);
        assert_eq!(b.ask(&g, "app-b.example.test", "/", "").status, 200);
        let kept = b.jars["app-b.example.test"].clone();
        let r = b.get(&g, "https://app-a.example.test/oauth2/sign_out");
        assert_eq!(
            r.header("Location"),
            Some("https://auth.example.test/oauth2/sign_out")
        );
        assert!(!b.jars["app-a.example.test"].contains_key(SESSION_COOKIE));
        let r = b.get(&g, "https://auth.example.test/oauth2/sign_out");
        assert_eq!(r.status, 200);
        assert!(!b.jars["auth.example.test"].contains_key(SESSION_COOKIE));
        // app-b's cookie was never sent back, but its sign-in is revoked.
        b.jars.insert("app-b.example.test".into(), kept);
        assert_eq!(b.ask(&g, "app-b.example.test", "/", "").status, 302);
    }

    #[test]
    fn an_issuer_that_does_not_answer_means_no_access() {
        let (g, down) = gate("bob", &["admins"]);
        *down.lock().unwrap() = true;
        let mut b = Browser::default();
        let r = b.ask(&g, "manage.example.test", "/", "admins");
        let (r, _) = b.follow(&g, r);
        assert_eq!(r.status, 503);
        assert!(r.body.contains("does not answer"), "{}", r.body);
        assert_eq!(b.ask(&g, "manage.example.test", "/", "admins").status, 302);
    }

    #[test]
    fn a_callback_without_this_browsers_sign_in_is_refused() {
        let (g, _) = gate("bob", &["admins"]);
        let mut b = Browser::default();
        let r = b.get(
            &g,
            "https://auth.example.test/oauth2/callback?code=c&state=st",
        );
        assert_eq!(r.status, 400);
        // Started here, but the state that comes back is another one.
        b.get(&g, "https://auth.example.test/oauth2/start?rd=%2F");
        let r = b.get(
            &g,
            "https://auth.example.test/oauth2/callback?code=c&state=other",
        );
        assert_eq!(r.status, 400);
        assert!(r.body.contains("state mismatch"));
        let r = b.get(
            &g,
            "https://auth.example.test/oauth2/callback?error=access_denied",
        );
        assert_eq!(r.status, 403);
    }

    #[test]
    fn a_double_slash_path_never_becomes_another_site() {
        let (g, _) = gate("bob", &["admins"]);
        let mut b = Browser::default();
        let r = b.ask(&g, "app-a.example.test", "//evil.example/x", "");
        let (r, _) = b.follow(&g, r);
        assert_eq!(
            r.header("Location"),
            Some("https://app-a.example.test/evil.example/x"),
            "{r:?}"
        );
    }

    #[test]
    fn dashboards_need_the_admin_group_whatever_the_route_asks() {
        let (g, _) = gate("alice", &["devs"]);
        let mut b = Browser::default();
        b.sign_in(&g, "manage.example.test");
        // A route file asking for no group, or for devs, still refuses her.
        assert_eq!(b.ask(&g, "manage.example.test", "/", "").status, 403);
        assert_eq!(b.ask(&g, "manage.example.test", "/", "devs").status, 403);
        // On her app, the route's groups decide.
        b.sign_in(&g, "app-a.example.test");
        assert_eq!(b.ask(&g, "app-a.example.test", "/", "devs").status, 200);
    }

    #[test]
    fn a_write_to_a_dashboard_from_another_site_is_refused() {
        let (g, _) = gate("bob", &["admins"]);
        let mut b = Browser::default();
        b.sign_in(&g, "manage.example.test");
        let post = |site: Option<&str>| {
            g.handle(
                &Request {
                    method: "GET".into(),
                    target: "/oauth2/auth".into(),
                    forwarded_host: Some("manage.example.test".into()),
                    forwarded_method: Some("POST".into()),
                    cookie: b.cookie("manage.example.test"),
                    sec_fetch_site: site.map(String::from),
                    ..Request::default()
                },
                1000,
            )
            .status
        };
        assert_eq!(post(Some("same-site")), 403, "a tenant page's form");
        assert_eq!(post(Some("cross-site")), 403);
        assert_eq!(post(Some("same-origin")), 200, "Cockpit's own page");
        assert_eq!(post(None), 200, "a non-browser client");
    }

    #[test]
    fn one_sign_in_cannot_fill_the_hand_off_table() {
        let (g, _) = gate("bob", &["admins"]);
        let mut b = Browser::default();
        b.sign_in(&g, "manage.example.test");
        let start =
            "https://auth.example.test/oauth2/start?rd=https%3A%2F%2Fapp-a.example.test%2F&bind=x";
        for _ in 0..MAX_HANDOFFS_PER_SIGNIN {
            assert_eq!(b.get(&g, start).status, 302);
        }
        let r = b.get(&g, start);
        assert_eq!(r.status, 503, "{r:?}");
        // Someone else still signs in.
        let mut other = Browser::default();
        other.sign_in(&g, "app-b.example.test");
    }
}
