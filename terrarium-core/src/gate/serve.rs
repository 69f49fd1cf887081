//! The gate's HTTP server: `tiny_http` on loopback, a few worker threads
//! over the request handler, the cookie keys re-read when their file
//! changes, sign-outs kept in the state directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use url::Url;

use super::handler::{Gate, GateParts, Request, Response};
use super::hosts::gated_hosts;
use super::oidc::{Begun, Identity, Issuer, Oidc, SignInError};
use super::session::KeyRing;
use super::{keys, GateSettings};
use crate::error::{Error, Result};

/// Worker threads: forward-auth answers take microseconds; a sign-in
/// waits on the issuer, so a few of them keep the rest flowing.
const WORKERS: usize = 4;
/// Threads for sign-ins (which wait on the issuer), and how many may queue.
const SIGNIN_WORKERS: usize = 4;
const SIGNIN_QUEUE: usize = 64;

pub fn revoked_file(g: &GateSettings) -> PathBuf {
    Path::new(&g.state_dir).join("signed-out.json")
}

/// The settings' auth URL, checked: https, a host, no path.
pub fn auth_url(g: &GateSettings) -> Result<Url> {
    let url = Url::parse(&g.auth_url)
        .map_err(|e| Error::Usage(format!("gate auth_url {:?}: {e}", g.auth_url)))?;
    if url.scheme() != "https" || url.host_str().is_none() || url.path() != "/" {
        return Err(Error::Usage(format!(
            "gate auth_url {:?} must be https://HOST[:PORT] (the auth host, no path)",
            g.auth_url
        )));
    }
    Ok(url)
}

/// The gate as the settings describe it.
pub fn gate(g: &GateSettings) -> Result<Gate> {
    if !crate::traefik::is_loopback_address(&g.listen) {
        return Err(Error::Usage(format!(
            "gate listen {:?} must be a loopback address: Traefik is its only client",
            g.listen
        )));
    }
    let auth = auth_url(g)?;
    let issuer: Box<dyn Issuer> = if g.configured() {
        for (what, v) in [("client_id", &g.client_id), ("admin_group", &g.admin_group)] {
            if v.is_empty() {
                return Err(Error::Usage(format!(
                    "gate {what} is not set: run `trm-harden oidc set`"
                )));
            }
        }
        let secret = std::fs::read_to_string(&g.client_secret_file).map_err(|e| {
            Error::io(
                format!("reading the client secret {}", g.client_secret_file),
                e,
            )
        })?;
        let callback = format!("{}oauth2/callback", auth.as_str());
        Box::new(Oidc::new(
            &g.issuer,
            &g.client_id,
            secret.trim(),
            &callback,
            &g.groups_claim,
        ))
    } else {
        Box::new(NotConfigured)
    };
    // Sign-outs must survive a restart: a file that is there but cannot
    // be read would bring signed-out sessions back, so the gate refuses.
    let revoked: HashMap<String, u64> = match std::fs::read(revoked_file(g)) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| Error::parse(revoked_file(g).display().to_string(), e))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
        Err(e) => {
            return Err(Error::io(
                format!("reading the sign-outs {}", revoked_file(g).display()),
                e,
            ))
        }
    };
    let dynamic_dir = PathBuf::from(&g.dynamic_dir);
    let keep = revoked_file(g);
    Ok(Gate::new(GateParts {
        auth_url: auth,
        admin_group: g.admin_group.clone(),
        session_secs: u64::from(g.session_hours.max(1)) * 3600,
        keys: KeyRing::new(&keys::read(Path::new(&g.keys_file))?),
        issuer,
        gated: Box::new(move || gated_hosts(&dynamic_dir)),
        revoked,
        on_revoke: Box::new(move |r| {
            let body = serde_json::to_vec(r).expect("a map of strings to numbers");
            if let Err(e) = crate::fs::atomic_write(&keep, &body, 0o600) {
                eprintln!(
                    "trm-gate: could not keep the sign-outs in {}: {e}",
                    keep.display()
                );
            }
        }),
        random: Box::new(|| crate::random::hex(32).expect("/dev/urandom")),
    }))
}

/// The issuer of a gate `trm-harden oidc set` has not configured yet:
/// every sign-in is refused, with a page saying why.
struct NotConfigured;

impl Issuer for NotConfigured {
    fn begin(&self) -> std::result::Result<Begun, SignInError> {
        Err(SignInError::Unavailable(
            "single sign-on is not configured on this host yet (`trm-harden oidc set`)".into(),
        ))
    }
    fn finish(&self, _: &str, _: &str, _: &str) -> std::result::Result<Identity, SignInError> {
        self.begin().map(|_| unreachable!("begin always refuses"))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn request(r: &tiny_http::Request) -> Request {
    let mut req = Request {
        method: r.method().as_str().to_string(),
        target: r.url().to_string(),
        ..Request::default()
    };
    for h in r.headers() {
        let v = h.value.as_str().to_string();
        match h.field.as_str().as_str().to_ascii_lowercase().as_str() {
            "host" => req.host = v,
            "x-forwarded-host" => req.forwarded_host = Some(v),
            "x-forwarded-proto" => req.forwarded_proto = Some(v),
            "x-forwarded-uri" => req.forwarded_uri = Some(v),
            "x-forwarded-method" => req.forwarded_method = Some(v),
            // Several Cookie headers are one list.
            "cookie" => {
                req.cookie = Some(match req.cookie.take() {
                    Some(c) => format!("{c}; {v}"),
                    None => v,
                })
            }
            "accept" => req.accept = Some(v),
            "sec-fetch-site" => req.sec_fetch_site = Some(v),
            _ => {}
        }
    }
    req
}

fn respond(r: tiny_http::Request, resp: Response) {
    let mut out = tiny_http::Response::from_string(resp.body).with_status_code(resp.status);
    for (n, v) in resp.headers {
        if let Ok(h) = tiny_http::Header::from_bytes(n.as_bytes(), v.as_bytes()) {
            out.add_header(h);
        }
    }
    let _ = r.respond(out);
}

/// Re-read the keys when their file changes (a rotation needs no restart).
fn follow_keys(gate: Arc<Gate>, path: PathBuf) {
    // A rotation renames a new file in place (a new inode), then hands it
    // to the gate's user: any change of these, and a read that fails is
    // tried again next second rather than taken as seen.
    let stamp = |p: &Path| {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(p).ok().map(|m| {
            (
                m.ino(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
                m.uid(),
            )
        })
    };
    let mut seen = stamp(&path);
    let mut said = false;
    loop {
        std::thread::sleep(Duration::from_secs(1));
        let now = stamp(&path);
        if now == seen {
            continue;
        }
        match keys::read(&path) {
            Ok(k) => {
                gate.set_keys(KeyRing::new(&k));
                eprintln!("trm-gate: cookie keys re-read ({} key(s))", k.len());
                seen = now;
                said = false;
            }
            Err(e) => {
                if !said {
                    eprintln!("trm-gate: keeping the current cookie keys for now: {e}");
                    said = true;
                }
            }
        }
    }
}

/// Serve until killed.
pub fn run(g: &GateSettings) -> Result<()> {
    let gate = Arc::new(gate(g)?);
    let server =
        Arc::new(tiny_http::Server::http(&g.listen).map_err(|e| {
            Error::Unavailable(format!("the gate cannot listen on {}: {e}", g.listen))
        })?);
    eprintln!(
        "trm-gate: listening on {} for issuer {}, auth host {}",
        g.listen, g.issuer, g.auth_url
    );
    {
        let gate = gate.clone();
        let path = PathBuf::from(&g.keys_file);
        std::thread::spawn(move || follow_keys(gate, path));
    }
    // Sign-ins wait on the issuer; they get threads of their own, so
    // forward-auth answers never queue behind a slow or dead issuer.
    let (to_signin, signins) = std::sync::mpsc::sync_channel::<tiny_http::Request>(SIGNIN_QUEUE);
    let signins = Arc::new(std::sync::Mutex::new(signins));
    let mut threads: Vec<std::thread::JoinHandle<()>> = (0..SIGNIN_WORKERS)
        .map(|_| {
            let signins = signins.clone();
            let gate = gate.clone();
            std::thread::spawn(move || loop {
                let next = signins.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok(r) = next else { return };
                answer(&gate, r);
            })
        })
        .collect();
    threads.extend((0..WORKERS).map(|_| {
        let server = server.clone();
        let gate = gate.clone();
        let to_signin = to_signin.clone();
        std::thread::spawn(move || {
            while let Ok(r) = server.recv() {
                let path = r.url().split('?').next().unwrap_or_default();
                if path == "/oauth2/start" || path == "/oauth2/callback" {
                    if let Err(std::sync::mpsc::TrySendError::Full(r)) = to_signin.try_send(r) {
                        respond(r, busy());
                    }
                    continue;
                }
                answer(&gate, r);
            }
        })
    }));
    for t in threads {
        let _ = t.join();
    }
    // The workers only end when the server does: say so (a supervisor
    // restarts a gate that exits non-zero).
    Err(Error::Unavailable("the gate's server stopped".into()))
}

fn busy() -> Response {
    let mut r = Response {
        status: 503,
        headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
        body: "too many sign-ins at once; try again in a moment\n".into(),
    };
    r.headers.push(("Retry-After".into(), "5".into()));
    r
}

/// Answer one request; a panic in the handler costs that request (a 500),
/// never the worker.
fn answer(gate: &Gate, r: tiny_http::Request) {
    let req = request(&r);
    let resp = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| gate.handle(&req, now())))
        .unwrap_or_else(|_| Response {
            status: 500,
            headers: vec![("Content-Type".into(), "text/plain; charset=utf-8".into())],
            body: "internal error\n".into(),
        });
    respond(r, resp);
}
