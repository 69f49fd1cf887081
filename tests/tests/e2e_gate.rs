//! Single sign-on for real (issue 13): trm-gate in front of Cockpit,
//! Traefik's dashboard and two tenants' `@auth` routes, with a real OIDC
//! provider (oidc-provider-mock), a real Traefik (ACME from pebble) and a
//! real headless Chromium that resolves only this test's hosts. All on
//! loopback and this suite's own LXD project and bridge.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use terrarium_core::gate::keys;
use terrarium_core::gate::session::{KeyRing, Session, SESSION_COOKIE};
use terrarium_tests::browser::Browser;
use terrarium_tests::cockpit::{Cockpit, LOGIN_MARKER};
use terrarium_tests::e2e::{self, eventually, lxc, lxc_ok, Bed, Names, Runner, GATE_SUITE};
use terrarium_tests::idp::Idp;
use terrarium_tests::proxy::{Pebble, Ports};

const N: Names = GATE_SUITE;
const PORTS: Ports = Ports {
    http: 29080,
    https: 29443,
    api: 29082,
    acme: 14000,
    acme_mgmt: 15001,
    dns: 29053,
};
const GATE: &str = "127.0.0.1:29180";
/// The management routes send manage. to Cockpit here.
const COCKPIT_PORT: u16 = 9090;
const DOMAIN: &str = "example.test";
const APP_A: &str = "app-a";
const APP_B: &str = "app-b";

fn host(name: &str) -> String {
    format!("{name}.{DOMAIN}")
}

fn url(name: &str, path: &str) -> String {
    format!("https://{}:{}{path}", host(name), PORTS.https)
}

struct Side {
    dir: tempfile::TempDir,
}

impl Side {
    fn p(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn dynamic(&self) -> PathBuf {
        self.p("traefik/dynamic")
    }
}

/// What curl saw of one request through Traefik.
#[derive(Debug)]
struct Reply {
    status: u16,
    location: String,
    body: String,
    headers: String,
}

/// A GET through Traefik as a browser from outside would send it
/// (certificate not checked: the browser ignores it too).
fn get(name: &str, path: &str, cookie: Option<&str>, extra: &[&str]) -> Reply {
    let hdr = tempfile::NamedTempFile::new().unwrap();
    let mut c = Command::new("curl");
    c.args(["-sk", "-m", "10", "-o", "-", "-D"])
        .arg(hdr.path())
        .args(["-w", "\n%{http_code} %{redirect_url}"])
        .arg("--resolve")
        .arg(format!("{}:{}:127.0.0.1", host(name), PORTS.https))
        .args(["-H", "Accept: text/html"]);
    if let Some(v) = cookie {
        c.args(["-H", &format!("Cookie: {SESSION_COOKIE}={v}")]);
    }
    for h in extra {
        c.args(["-H", h]);
    }
    let out = c.arg(url(name, path)).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, last) = text.rsplit_once('\n').unwrap_or(("", &text));
    let (code, location) = last.split_once(' ').unwrap_or((last, ""));
    Reply {
        status: code.parse().unwrap_or(0),
        location: location.to_string(),
        body: body.to_string(),
        headers: std::fs::read_to_string(hdr.path()).unwrap_or_default(),
    }
}

/// Refused: sent to sign in (302 to the auth host), never the page.
fn assert_sent_to_sign_in(r: &Reply, what: &str) {
    assert_eq!(r.status, 302, "{what}: {r:?}");
    assert!(
        r.location.starts_with(&url("auth", "/oauth2/start?rd=")),
        "{what}: {r:?}"
    );
    assert!(!r.body.contains("\"headers\""), "{what}: no backend page");
}

/// A backend that answers with the request's headers as JSON and keeps
/// each request's headers in /srv/seen.jsonl (what the tenant saw).
fn start_echo(name: &str) {
    let script = format!(
        "import http.server, json\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_GET(self):\n\
         \x20       seen = {{'backend': '{name}', 'path': self.path, 'headers': [[k, v] for k, v in self.headers.items()]}}\n\
         \x20       body = json.dumps(seen).encode()\n\
         \x20       open('/srv/seen.jsonl', 'a').write(body.decode() + '\\n')\n\
         \x20       self.send_response(200)\n\
         \x20       self.send_header('Content-Type', 'text/plain')\n\
         \x20       self.end_headers()\n\
         \x20       self.wfile.write(body)\n\
         http.server.ThreadingHTTPServer(('0.0.0.0', 3000), H).serve_forever()\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("echo.py");
    std::fs::write(&local, script).unwrap();
    lxc_ok(&[
        "file",
        "push",
        "--project",
        N.project,
        local.to_str().unwrap(),
        &format!("{name}/srv/echo.py"),
    ]);
    e2e::service(N.project, name, "echo", "/usr/bin/python3 /srv/echo.py");
}

/// Every header value the backend `name` received, by header name.
fn seen_by(name: &str, header: &str) -> Vec<String> {
    let out = lxc(&[
        "exec",
        "--project",
        N.project,
        name,
        "--",
        "cat",
        "/srv/seen.jsonl",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| {
            v["headers"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
        })
        .filter(|h| {
            h[0].as_str()
                .is_some_and(|k| k.eq_ignore_ascii_case(header))
        })
        .filter_map(|h| h[1].as_str().map(String::from))
        .collect()
}

/// The values of our session cookie in `Cookie:` header values.
fn session_values(cookie_headers: &[String]) -> Vec<String> {
    cookie_headers
        .iter()
        .flat_map(|h| terrarium_core::gate::session::cookie_values(Some(h), SESSION_COOKIE))
        .collect()
}

fn browser() -> Browser {
    let hosts: Vec<String> = ["auth", "manage", "proxy", APP_A, APP_B, "evil"]
        .iter()
        .map(|h| {
            if *h == "evil" {
                "evil.example".into()
            } else {
                host(h)
            }
        })
        .collect();
    let refs: Vec<&str> = hosts.iter().map(String::as_str).collect();
    Browser::start(&refs)
}

/// At the provider's form: sign in as `sub`.
fn sign_in_at_provider(b: &Browser, idp: &Idp, sub: &str) {
    b.wait_url("the provider's sign-in page", 20, |u| {
        u.starts_with(&idp.authorize_endpoint())
    });
    b.wait_for("input[name=sub]", 10);
    b.fill("input[name=sub]", sub);
    b.click("button[type=submit]");
}

fn configure(bed: &Bed, side: &Side, pebble: &Pebble) {
    let path = bed.config_dir.path().join("terrarium.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let base = text.split("[expose]").next().unwrap().to_string();
    let d = side.dir.path();
    let expose = format!(
        "[expose]\ndynamic_dir = \"{}\"\nstatic_file = \"{}\"\nroot_domain = \"{DOMAIN}\"\nufw = false\nstate_dir = \"{}\"\n\
         acme_storage = \"{}\"\nacme_ca_server = \"{}\"\nacme_ca_certificates = \"{}\"\n\
         http_address = \"127.0.0.1:{}\"\nhttps_address = \"127.0.0.1:{}\"\napi_address = \"127.0.0.1:{}\"\n\
         auth_address = \"http://{GATE}\"\nlog_dir = \"{}\"\nsupervisor = \"terrarium\"\n",
        side.dynamic().display(),
        d.join("traefik/traefik.yml").display(),
        d.join("state").display(),
        d.join("acme/acme.json").display(),
        pebble.directory_url(),
        pebble.ca().display(),
        PORTS.http,
        PORTS.https,
        PORTS.api,
        d.join("log").display(),
    );
    std::fs::write(&path, base + &expose).unwrap();
}

/// A session for `sub` in `groups` on `on`, expiring `secs` from now
/// (negative: already expired), sealed with `ring`.
fn session_for(ring: &KeyRing, on: &str, sub: &str, groups: &[&str], secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let session = Session {
        sid: format!("test-made-{sub}"),
        host: on.into(),
        sub: sub.into(),
        email: format!("{sub}@example.test"),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        exp: now.saturating_add_signed(secs),
    };
    ring.seal(SESSION_COOKIE, &session)
}

/// The cookie keys the running gate seals with.
fn gate_keys(bed: &Bed) -> KeyRing {
    KeyRing::new(&keys::read(Path::new(&gate_settings(bed).keys_file)).unwrap())
}

fn gate_settings(bed: &Bed) -> terrarium_core::gate::GateSettings {
    toml::from_str(&std::fs::read_to_string(bed.config_dir.path().join("gate.toml")).unwrap())
        .unwrap()
}

/// The gate under Terrarium's supervision (no systemd here): verified
/// by `start`, running as its own user when we are root.
fn start_gate(bed: &Bed) -> Value {
    let st = bed.trm_json_with("trm-gate", &["start"]);
    assert_eq!(st["answering"], true, "{st}");
    st
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("e2e_gate") {
        return std::process::ExitCode::SUCCESS;
    }
    let mut bed = Bed::new(N);
    let side = Side {
        dir: tempfile::tempdir().unwrap(),
    };
    std::fs::create_dir_all(side.dynamic()).unwrap();
    // Traefik runs as its own user and reads below here.
    e2e::sh(&format!("chmod 0755 {}", side.dir.path().display()));
    bed.extra_env
        .push(("TRM_LOCK_WAIT_SECS".into(), "300".into()));
    let bed = bed;
    let pebble = Pebble::start(&side.p("pebble"), PORTS);
    let mut idp = Idp::start(&[("bob", &["admins"]), ("alice", &["devs"])]);
    let mut cockpit = Cockpit::start(COCKPIT_PORT);
    // The gate's user reads its settings here (its secrets stay 0600).
    e2e::sh(&format!("chmod 0755 {}", bed.config_dir.path().display()));
    let mut t = Runner::new();

    t.setup("setup_gate_traefik_and_two_tenants", || {
        bed.trm_json(&bed.init_args());
        configure(&bed, &side, &pebble);
        let launches: Vec<Child> = [APP_A, APP_B]
            .iter()
            .map(|n| {
                bed.tool("trm")
                    .args(["launch", n, "--format", "json"])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for l in launches {
            let out = l.wait_with_output().unwrap();
            e2e::assert_ok(
                &std::process::Output {
                    status: out.status,
                    stdout: out.stdout,
                    stderr: out.stderr,
                },
                "launch",
            );
        }
        for n in [APP_A, APP_B] {
            start_echo(n);
            e2e::set_label(N.project, n, &format!("https://{}:3000@auth:devs", host(n)));
        }
        bed.trm_json_with("trm-expose", &["sync"]);
        let st = bed.trm_json_with("trm-expose", &["proxy", "start"]);
        assert_eq!(st["answering"], true, "{st}");
        // Before any issuer is named the gate runs, and signs no one in.
        let st = start_gate(&bed);
        let first_pid = st["pid"].as_u64().expect("a pid");
        let g = gate_settings(&bed);
        assert_eq!(g.listen, GATE, "the gate listens where the routes ask");
        assert_eq!(g.issuer, "");
        // (The management routes come with `oidc set`: ask the gate itself.)
        let r = ureq::get(&format!("http://{GATE}/oauth2/start?rd=%2F"))
            .set("Host", &format!("{}:{}", host("auth"), PORTS.https))
            .call();
        let Err(ureq::Error::Status(503, r)) = r else {
            panic!("an unconfigured gate refuses sign-ins with 503: {r:?}");
        };
        let body = r.into_string().unwrap();
        assert!(body.contains("not configured"), "{body}");
        let secret = side.p("client-secret");
        std::fs::write(&secret, "gate-test-secret\n").unwrap();
        let rep = bed.trm_json_with(
            "trm-harden",
            &[
                "oidc",
                "set",
                "--issuer",
                &idp.issuer(),
                "--client-id",
                "terrarium",
                "--client-secret-file",
                secret.to_str().unwrap(),
                "--admin-group",
                "admins",
            ],
        );
        assert_eq!(rep["auth_url"], url("auth", "").trim_end_matches('/'));
        assert_eq!(
            rep["gate_restarted"], true,
            "the running gate follows: {rep}"
        );
        let st = bed.trm_json_with("trm-gate", &["status"]);
        assert_eq!(st["answering"], true, "{st}");
        let pid = st["pid"].as_u64().expect("a pid");
        assert_ne!(pid, first_pid, "a new gate process");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        if nix::unistd::Uid::effective().is_root() {
            assert!(
                !uid.split_whitespace().skip(1).any(|u| u == "0"),
                "the gate runs unprivileged: {uid}"
            );
            let caps = status.lines().find(|l| l.starts_with("CapEff:")).unwrap();
            assert!(
                caps.ends_with("0000000000000000"),
                "no capabilities: {caps}"
            );
        }
        // Both tenants' routes are live and ask the gate.
        for n in [APP_A, APP_B] {
            eventually(&format!("{n}'s route asks the gate"), 30, || {
                get(n, "/", None, &[]).status == 302
            });
        }
    });

    let mut bob = None;
    t.case("anonymous_is_sent_to_the_provider", || {
        let b = browser();
        b.goto(&url("manage", "/"));
        b.wait_url("the provider", 20, |u| {
            u.starts_with(&idp.authorize_endpoint())
        });
        let at = b.url();
        for part in [
            "code_challenge_method=S256",
            "code_challenge=",
            "state=",
            "nonce=",
            "client_id=terrarium",
        ] {
            assert!(at.contains(part), "{part} in {at}");
        }
        assert!(
            at.contains(&format!(
                "redirect_uri=https%3A%2F%2Fauth.{DOMAIN}%3A{}%2Foauth2%2Fcallback",
                PORTS.https
            )),
            "{at}"
        );
        bob = Some(b);
    });

    t.case("bob_the_admin_reaches_cockpit_and_the_dashboard", || {
        let b = bob.as_ref().expect("the anonymous case left a browser");
        sign_in_at_provider(b, &idp, "bob");
        b.wait_url("Cockpit through manage.", 30, |u| {
            u.starts_with(&url("manage", "/"))
        });
        b.wait_for(&format!("#{LOGIN_MARKER}"), 20);
        // Cockpit's own login stays: the second factor.
        assert!(b.exists("#login-password-input"));
        let c = b
            .cookie(SESSION_COOKIE)
            .expect("manage. has its own session cookie");
        assert!(c.secure && c.http_only, "{c:?}");
        assert_eq!(c.same_site.as_deref(), Some("Lax"), "{c:?}");
        assert_eq!(
            c.domain.as_deref(),
            Some(host("manage").as_str()),
            "host-only: {c:?}"
        );
        assert_eq!(c.path.as_deref(), Some("/"));
        // proxy. needs no second visit to the provider: the auth host hands off.
        b.goto(&url("proxy", "/dashboard/"));
        b.wait_url("the dashboard", 30, |u| {
            u.starts_with(&url("proxy", "/dashboard/"))
        });
        eventually("Traefik's dashboard page", 20, || {
            b.source().to_ascii_lowercase().contains("traefik")
        });
        let api = get(
            "proxy",
            "/api/version",
            b.cookie(SESSION_COOKIE).map(|c| c.value).as_deref(),
            &[],
        );
        assert_eq!(api.status, 200, "{api:?}");
        assert!(api.body.contains("3.7.15"), "{api:?}");
    });

    let mut alice_cookie = String::new();
    t.case(
        "alice_is_refused_on_management_and_allowed_on_her_app",
        || {
            let b = browser();
            b.goto(&url("manage", "/"));
            sign_in_at_provider(&b, &idp, "alice");
            eventually("a refusal page", 30, || b.text().contains("Access refused"));
            assert!(b.text().contains("alice"), "{}", b.text());
            let manage = b
                .cookie(SESSION_COOKIE)
                .expect("a session, of the wrong group")
                .value;
            let r = get("manage", "/", Some(&manage), &[]);
            assert_eq!(r.status, 403, "{r:?}");
            assert!(!r.body.contains(LOGIN_MARKER), "no Cockpit for devs");
            assert_eq!(get("proxy", "/api/version", None, &[]).status, 302);
            // Her app: through the auth host's session, no provider visit.
            b.goto(&url(APP_A, "/hello"));
            eventually("app-a's page", 30, || {
                b.text().contains("\"backend\": \"app-a\"")
            });
            let page: Value = serde_json::from_str(&b.text()).unwrap();
            let headers: Vec<(String, String)> = page["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_lowercase(),
                        h[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            assert!(
                headers.contains(&("x-auth-request-user".into(), "alice".into())),
                "{headers:?}"
            );
            assert!(
                headers.contains(&("x-auth-request-groups".into(), "devs".into())),
                "{headers:?}"
            );
            assert_eq!(
                page["path"], "/hello",
                "the original path survives the sign-in"
            );
            alice_cookie = b.cookie(SESSION_COOKIE).unwrap().value;
            let r = get(APP_A, "/", Some(&alice_cookie), &[]);
            assert_eq!(r.status, 200, "{r:?}");
            // A client's own X-Auth-Request-User never reaches the backend.
            let r = get(
                APP_A,
                "/",
                Some(&alice_cookie),
                &["X-Auth-Request-User: bob"],
            );
            assert!(
                r.body.contains("\"alice\"") && !r.body.contains("\"bob\""),
                "{r:?}"
            );
        },
    );

    t.case(
        "a_backend_never_gets_a_cookie_that_opens_another_host",
        || {
            let received = session_values(&seen_by(APP_A, "cookie"));
            assert!(!received.is_empty(), "app-a saw its own session cookie");
            for v in &received {
                for other in [APP_B, "manage", "proxy"] {
                    assert_sent_to_sign_in(
                        &get(other, "/", Some(v), &[]),
                        &format!("app-a's cookie on {other}"),
                    );
                    // Not even claiming to be app-a through forwarded headers.
                    let forged = format!("X-Forwarded-Host: {}", host(APP_A));
                    assert_sent_to_sign_in(
                        &get(other, "/", Some(v), &[&forged]),
                        &format!("{other} with a forged X-Forwarded-Host"),
                    );
                }
                let r = get("auth", "/", Some(v), &[]);
                assert!(
                    r.body.contains("Not signed in"),
                    "the auth host is not opened: {r:?}"
                );
            }
            // The auth host's and manage.'s cookies never went to a tenant.
            for n in [APP_A, APP_B] {
                for h in seen_by(n, "cookie") {
                    assert!(
                        !h.contains("trm_gate_signin"),
                        "{n} saw a sign-in cookie: {h}"
                    );
                }
            }
        },
    );

    t.case(
        "tampered_expired_and_other_host_cookies_are_refused",
        || {
            // Tampered: one character of the sealed value changed.
            let mut bytes = alice_cookie.clone().into_bytes();
            let i = bytes.len() / 2;
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            let tampered = String::from_utf8(bytes).unwrap();
            let r = get(APP_A, "/", Some(&tampered), &[]);
            assert_sent_to_sign_in(&r, "a tampered cookie");
            assert!(
                r.headers.contains("Max-Age=0"),
                "the bad cookie is cleared: {r:?}"
            );
            // Sealed with the gate's own keys: valid until it expires.
            let ring = gate_keys(&bed);
            let alice = |on: &str, secs| session_for(&ring, on, "alice", &["devs"], secs);
            let fresh = alice(&host(APP_A), 600);
            assert_eq!(
                get(APP_A, "/", Some(&fresh), &[]).status,
                200,
                "the control: a valid cookie opens"
            );
            let expired = alice(&host(APP_A), -1);
            assert_sent_to_sign_in(&get(APP_A, "/", Some(&expired), &[]), "an expired cookie");
            let for_b = alice(&host(APP_B), 600);
            assert_sent_to_sign_in(
                &get(APP_A, "/", Some(&for_b), &[]),
                "app-b's cookie on app-a",
            );
            assert_eq!(
                get(APP_B, "/", Some(&for_b), &[]).status,
                200,
                "on its own host it opens"
            );
            // A key someone else made opens nothing.
            let foreign = session_for(
                &KeyRing::new(&[vec![9; keys::KEY_BYTES]]),
                &host(APP_A),
                "alice",
                &["devs"],
                600,
            );
            assert_sent_to_sign_in(&get(APP_A, "/", Some(&foreign), &[]), "a forged cookie");
        },
    );

    t.case("open_redirects_are_refused", || {
        let b = browser();
        for rd in [
            "https://evil.example/",
            "https%3A%2F%2Fevil.example%2F",
            "//evil.example/",
        ] {
            b.goto(&url("auth", &format!("/oauth2/start?rd={rd}")));
            eventually("the refusal", 10, || b.text().contains("Redirect refused"));
            assert!(
                b.url().starts_with(&url("auth", "/")),
                "stays on the auth host: {}",
                b.url()
            );
        }
        let r = get(
            "auth",
            "/oauth2/start?rd=https%3A%2F%2Fevil.example%2F",
            None,
            &[],
        );
        assert_eq!(r.status, 400, "{r:?}");
    });

    t.case("sign_out_ends_the_session_everywhere", || {
        let b = bob.as_ref().expect("bob's browser");
        let manage = b.cookie(SESSION_COOKIE).map(|c| c.value);
        b.goto(&url("manage", "/"));
        let manage = b
            .cookie(SESSION_COOKIE)
            .map(|c| c.value)
            .or(manage)
            .unwrap();
        assert_eq!(get("manage", "/", Some(&manage), &[]).status, 200);
        b.goto(&url("proxy", "/dashboard/"));
        let proxy = b.cookie(SESSION_COOKIE).unwrap().value;
        b.goto(&url("manage", "/oauth2/sign_out"));
        eventually("signed out", 20, || b.text().contains("Signed out"));
        assert!(
            b.url().starts_with(&url("auth", "/oauth2/sign_out")),
            "{}",
            b.url()
        );
        assert!(
            b.cookie(SESSION_COOKIE).is_none(),
            "the auth host's cookie is gone"
        );
        // Cookies kept from before open nothing now, on any host.
        assert_sent_to_sign_in(
            &get("manage", "/", Some(&manage), &[]),
            "manage. after sign-out",
        );
        assert_sent_to_sign_in(
            &get("proxy", "/", Some(&proxy), &[]),
            "proxy. after sign-out",
        );
        b.goto(&url("proxy", "/dashboard/"));
        b.wait_url("back at the provider", 20, |u| {
            u.starts_with(&idp.authorize_endpoint())
        });
    });

    t.case(
        "with_the_provider_down_access_is_refused_with_a_clear_page",
        || {
            idp.kill();
            let b = browser();
            if let Err(e) = b.try_goto(&url(APP_B, "/")) {
                let log = std::fs::read_to_string(side.p("log/traefik.log")).unwrap_or_default();
                panic!("{e}\n{}", &log[log.len().saturating_sub(3000)..]);
            }
            eventually("the unavailable page", 30, || {
                b.text().contains("Sign-in unavailable")
            });
            assert!(b.text().contains("does not answer"), "{}", b.text());
            assert!(
                b.url().starts_with(&url("auth", "/oauth2/start")),
                "{}",
                b.url()
            );
            let r = get(
                "auth",
                &format!(
                    "/oauth2/start?rd=https%3A%2F%2F{}%3A{}%2F",
                    host(APP_B),
                    PORTS.https
                ),
                None,
                &[],
            );
            assert_eq!(r.status, 503, "{r:?}");
            assert_sent_to_sign_in(
                &get(APP_B, "/", None, &[]),
                "app-b while the provider is down",
            );
            idp.run();
        },
    );

    t.case("a_double_slash_path_stays_on_its_host", || {
        let b = browser();
        b.goto(&url(APP_B, "//evil.example/x"));
        sign_in_at_provider(&b, &idp, "alice");
        let at = b.wait_url("back on app-b", 30, |u| {
            u.starts_with(&url(APP_B, "/")) && !u.contains("/oauth2/")
        });
        assert!(!at.contains("://evil.example"), "{at}");
        assert!(b.text().contains("\"backend\": \"app-b\""), "{}", b.text());
    });

    t.case("a_tenant_page_cannot_post_to_a_dashboard", || {
        let admin = session_for(&gate_keys(&bed), &host("manage"), "bob", &["admins"], 600);
        let post = |site: &str| {
            let out = Command::new("curl")
                .args([
                    "-sk",
                    "-m",
                    "10",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "-X",
                    "POST",
                ])
                .arg("--resolve")
                .arg(format!("{}:{}:127.0.0.1", host("manage"), PORTS.https))
                .args(["-H", &format!("Cookie: {SESSION_COOKIE}={admin}")])
                .args(["-H", &format!("Sec-Fetch-Site: {site}")])
                .arg(url("manage", "/cockpit/login"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .parse::<u16>()
                .unwrap_or(0)
        };
        assert_eq!(post("same-site"), 403, "a form on a tenant's page");
        assert_eq!(post("cross-site"), 403);
        assert_ne!(post("same-origin"), 403, "Cockpit's own page may post");
        assert_eq!(get("manage", "/", Some(&admin), &[]).status, 200);
    });

    t.case("audit_sees_the_dashboards_only_through_the_gate", || {
        let out = bed
            .tool("trm-harden")
            .args(["audit", "--format", "json"])
            .output()
            .unwrap();
        let checks: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
        let check = |name: &str| {
            checks
                .iter()
                .find(|c| c["check"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no {name} check: {checks:#?}"))
        };
        let d = check("dashboards gated");
        assert_eq!(d["status"], "pass", "{d:#}");
        assert!(
            d["detail"].as_str().unwrap().contains("answers 302"),
            "{d:#}"
        );
        assert_eq!(check("gate")["status"], "pass", "{:#}", check("gate"));
        assert_eq!(
            check("gate running")["status"],
            "pass",
            "{:#}",
            check("gate running")
        );
    });

    t.case(
        "status_turns_red_when_the_tick_is_late_or_traefik_stops",
        || {
            // What the timers do: a tick and a sync, leaving their records.
            bed.snap(&["auto"]);
            bed.trm_json_with("trm-expose", &["sync"]);
            let status = |extra: &[&str]| {
                let out = bed
                    .tool("trm")
                    .args(["status", "--format", "json"])
                    .args(extra)
                    .output()
                    .unwrap();
                let st: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                    panic!(
                        "status printed no JSON ({e}): {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                });
                (out.status.code(), st)
            };
            let timer = |st: &Value, job: &str| {
                st["timers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|t| t["job"] == job)
                    .cloned()
                    .unwrap()
            };
            let (code, st) = status(&[]);
            assert_eq!(code, Some(0), "{st:#}");
            assert_eq!(st["ok"], true);
            assert_eq!(st["lxd"]["reachable"], true);
            assert_eq!(st["traefik"]["version"], "3.7.15", "{st:#}");
            assert_eq!(st["gate"]["answering"], true);
            assert_eq!(timer(&st, "snapshots")["last_ok"], true);
            assert_eq!(timer(&st, "snapshots")["every_seconds"], 900);
            let app = st["instances"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["name"] == APP_A)
                .cloned()
                .expect("every instance is listed");
            assert!(
                app["newest_snapshot"]
                    .as_str()
                    .unwrap()
                    .starts_with("trm-auto-"),
                "the tick's snapshot is the newest: {app}"
            );
            assert!(st["pools"][0]["total_bytes"].as_u64().unwrap() > 0);

            // An hour on, with no tick since: the time machine is overdue.
            let later =
                terrarium_core::time::utc(&(chrono::Utc::now() + chrono::Duration::hours(1)));
            let (code, st) = status(&["--now", &later]);
            assert_eq!(code, Some(5), "{st:#}");
            assert_eq!(timer(&st, "snapshots")["overdue"], true);
            let problems = st["problems"].to_string();
            assert!(
                problems.contains("the snapshots job is overdue"),
                "{problems}"
            );
            assert!(!problems.contains("Traefik"), "{problems}");

            // Traefik stopped: red now, green again once it is back.
            bed.trm_json_with("trm-expose", &["proxy", "stop"]);
            let (code, st) = status(&[]);
            assert_eq!(code, Some(5), "{st:#}");
            assert_eq!(st["traefik"]["running"], false);
            assert!(
                st["problems"]
                    .to_string()
                    .contains("Traefik is not running"),
                "{st:#}"
            );
            let human = bed
                .tool("trm")
                .args(["status", "--format", "human"])
                .output()
                .unwrap();
            let screen = String::from_utf8_lossy(&human.stdout);
            assert!(screen.starts_with("PROBLEMS"), "{screen}");
            assert!(screen.contains("Traefik  DOWN"), "{screen}");
            bed.trm_json_with("trm-expose", &["proxy", "start"]);
            eventually("status is green once Traefik is back", 30, || {
                status(&[]).0 == Some(0)
            });
        },
    );

    t.case("the_gate_stops_and_never_logged_a_secret", || {
        let st = bed.trm_json_with("trm-gate", &["status"]);
        let log = std::fs::read_to_string(st["log"].as_str().unwrap()).unwrap();
        assert!(log.contains("listening on"), "{log}");
        assert!(
            !log.contains("gate-test-secret"),
            "the client secret is never logged"
        );
        let pid = st["pid"].as_u64().unwrap();
        let st = bed.trm_json_with("trm-gate", &["stop"]);
        assert_eq!(st["running"], false, "{st}");
        assert!(!terrarium_core::daemon::alive(pid as u32), "gone by pid");
        assert_ne!(
            get("manage", "/", None, &[]).status,
            200,
            "a stopped gate lets no one in"
        );
    });

    // Stopped by pid whatever happened above.
    let _ = bed.tool("trm-gate").args(["stop"]).output();
    let _ = bed.tool("trm-expose").args(["proxy", "stop"]).output();
    drop(bob);
    cockpit.kill();
    idp.kill();
    bed.teardown();
    drop(pebble);
    t.finish()
}
