//! The SSO gate's test fixtures, proved on their own (TRM_E2E=1; no LXD):
//! a real OIDC provider (oidc-provider-mock), a real headless Chromium
//! that resolves only the test's hosts, and a real Cockpit, all on
//! loopback. A browser logs in at the provider for a made-up client (with
//! PKCE, state and nonce) and lands on a tiny callback listener this test
//! runs; the code it brings is exchanged for an ID token with the user's
//! groups.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use sha2::Digest;
use terrarium_tests::browser::{Browser, Cookie};
use terrarium_tests::cockpit::{Cockpit, LOGIN_MARKER};
use terrarium_tests::e2e::{self, Runner};
use terrarium_tests::idp::{jwt_payload, Idp};

/// The made-up relying party's host, resolved by the browser only.
const APP_HOST: &str = "app.gate.test";
const CLIENT_ID: &str = "trm-fixture-client";
const CLIENT_SECRET: &str = "fixture-secret";

/// A tiny HTTP server on loopback: answers every request with a short
/// page that sets an HttpOnly cookie, and reports each request target.
struct Callback {
    port: u16,
    seen: mpsc::Receiver<String>,
}

impl Callback {
    fn start() -> Callback {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, seen) = mpsc::channel();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                // One thread per connection: Chromium opens spare
                // connections that never send a request.
                let tx = tx.clone();
                std::thread::spawn(move || serve(conn, tx));
            }
        });
        Callback { port, seen }
    }

    fn redirect_uri(&self) -> String {
        format!("http://{APP_HOST}:{}/callback", self.port)
    }
}

fn serve(mut conn: std::net::TcpStream, tx: mpsc::Sender<String>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return;
    }
    // Drain the headers.
    let mut h = String::new();
    while reader.read_line(&mut h).is_ok() && h != "\r\n" && !h.is_empty() {
        h.clear();
    }
    let target = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let body = "<html><head><title>callback</title></head><body><p id=\"cb\">callback reached</p></body></html>";
    let _ = write!(
        conn,
        "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
         Set-Cookie: trm_fixture=seen; Path=/; HttpOnly; SameSite=Lax\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tx.send(target);
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn query_of(u: &str) -> Vec<(String, String)> {
    url::Url::parse(u)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn param(q: &[(String, String)], k: &str) -> Option<String> {
    q.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
}

fn authorize_url(
    idp: &Idp,
    cb: &Callback,
    state: &str,
    nonce: Option<&str>,
    challenge: &str,
) -> String {
    let mut u = url::Url::parse(&idp.authorize_endpoint()).unwrap();
    {
        let mut q = u.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", CLIENT_ID)
            .append_pair("redirect_uri", &cb.redirect_uri())
            .append_pair("scope", "openid email")
            .append_pair("state", state)
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        if let Some(n) = nonce {
            q.append_pair("nonce", n);
        }
    }
    u.to_string()
}

/// Pids of live processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<u32> {
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            if String::from_utf8_lossy(&cmd).contains(needle) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn main() -> std::process::ExitCode {
    if !e2e::enabled("gate_fixtures") {
        return std::process::ExitCode::SUCCESS;
    }
    let mut idp = Idp::start(&[("bob", &["admins"]), ("carol", &[])]);
    let cb = Callback::start();
    let mut browser = Browser::start(&[APP_HOST]);
    let mut t = Runner::new();

    t.case(
        "idp: discovery states the issuer the fixture reports",
        || {
            let doc = idp.discovery().unwrap();
            assert_eq!(doc["issuer"], idp.issuer());
            assert_eq!(doc["token_endpoint"], idp.token_endpoint());
            assert_eq!(doc["authorization_endpoint"], idp.authorize_endpoint());
        },
    );

    t.case(
        "idp: kill takes it down, run brings it back on the same port",
        || {
            let port = idp.port;
            let kid = |idp: &Idp| -> Value {
                ureq::get(&format!("{}/jwks", idp.issuer()))
                    .call()
                    .unwrap()
                    .into_json::<Value>()
                    .unwrap()["keys"][0]["kid"]
                    .clone()
            };
            let before = kid(&idp);
            idp.kill();
            assert!(idp.discovery().is_err(), "discovery answers after kill");
            idp.run();
            assert_eq!(idp.port, port);
            assert!(idp.discovery().is_ok());
            assert_ne!(kid(&idp), before, "a restarted provider has a new key");
        },
    );

    t.case(
        "browser: logs in at the IdP and lands on the redirect_uri with code and state",
        || {
            let verifier = b64url(b"a-fixture-code-verifier-of-enough-length-0123456789");
            let challenge = b64url(&sha2::Sha256::digest(verifier.as_bytes()));
            let state = "st-4711";
            let nonce = "nonce-0815";
            browser.goto(&authorize_url(&idp, &cb, state, Some(nonce), &challenge));
            browser.wait_for("input[name=sub]", 10);
            assert!(browser.text().contains(CLIENT_ID), "{}", browser.text());
            browser.fill("input[name=sub]", "bob");
            browser.click("button[type=submit]");
            let landed = browser.wait_url("the redirect_uri", 15, |u| {
                u.starts_with(&cb.redirect_uri())
            });
            let q = query_of(&landed);
            assert_eq!(param(&q, "state").as_deref(), Some(state), "{landed}");
            let code = param(&q, "code").unwrap_or_else(|| panic!("no code in {landed}"));
            assert!(browser.text().contains("callback reached"));
            let seen = cb.seen.recv_timeout(Duration::from_secs(5)).unwrap();
            assert!(seen.starts_with("/callback?"), "{seen}");

            let tokens: Value = ureq::post(&idp.token_endpoint())
                .set(
                    "Authorization",
                    &format!(
                        "Basic {}",
                        base64::engine::general_purpose::STANDARD
                            .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
                    ),
                )
                .send_form(&[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", &cb.redirect_uri()),
                    ("code_verifier", &verifier),
                ])
                .expect("exchange the code")
                .into_json()
                .unwrap();
            let claims = jwt_payload(tokens["id_token"].as_str().unwrap());
            assert_eq!(claims["sub"], "bob", "{claims}");
            assert_eq!(claims["groups"], serde_json::json!(["admins"]), "{claims}");
            assert_eq!(claims["email"], "bob@example.test", "{claims}");
            assert_eq!(claims["nonce"], nonce, "{claims}");
            assert_eq!(claims["iss"], idp.issuer(), "{claims}");
            assert_eq!(claims["aud"], serde_json::json!([CLIENT_ID]), "{claims}");
            assert_eq!(tokens["expires_in"], 3600);

            // The code is single use.
            let again = ureq::post(&idp.token_endpoint()).send_form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &cb.redirect_uri()),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
            ]);
            assert!(
                matches!(again, Err(ureq::Error::Status(400, _))),
                "{again:?}"
            );
        },
    );

    t.case(
        "idp: an authorization request without a nonce is refused",
        || {
            browser.goto(&authorize_url(&idp, &cb, "st-no-nonce", None, "x"));
            let landed = browser.wait_url("the redirect_uri", 15, |u| {
                u.starts_with(&cb.redirect_uri())
            });
            let q = query_of(&landed);
            assert_eq!(
                param(&q, "error").as_deref(),
                Some("invalid_request"),
                "{landed}"
            );
            assert_eq!(param(&q, "state").as_deref(), Some("st-no-nonce"));
            assert!(param(&q, "code").is_none());
        },
    );

    t.case(
        "browser: cookies are read (HttpOnly too), set and deleted",
        || {
            browser.goto(&format!("http://{APP_HOST}:{}/page", cb.port));
            let c = browser
                .cookie("trm_fixture")
                .expect("the listener's cookie");
            assert_eq!(c.value, "seen");
            assert!(c.http_only);
            assert!(!c.secure);
            assert_eq!(c.same_site.as_deref(), Some("Lax"));
            assert_eq!(c.domain.as_deref(), Some(APP_HOST));
            assert_eq!(c.expiry, None);
            let exp = chrono::Utc::now().timestamp() + 3600;
            browser.add_cookie(&Cookie {
                name: "added".into(),
                value: "v1".into(),
                path: Some("/".into()),
                same_site: Some("Strict".into()),
                expiry: Some(exp),
                ..Default::default()
            });
            let added = browser.cookie("added").expect("the added cookie");
            assert_eq!(added.value, "v1");
            assert_eq!(added.same_site.as_deref(), Some("Strict"));
            assert_eq!(added.expiry, Some(exp));
            assert_eq!(added.domain.as_deref(), Some(APP_HOST), "host-only");
            browser.delete_cookies();
            assert!(browser.cookies().is_empty(), "{:?}", browser.cookies());
        },
    );

    t.case("browser: names outside the test do not resolve", || {
        for u in [
            "https://example.com/",
            "http://example.com/",
            "http://www.google.com/",
        ] {
            let e = browser.try_goto(u).expect_err(u);
            assert!(e.contains("ERR_NAME_NOT_RESOLVED"), "{u}: {e}");
        }
        // localhost and the test's own host still work.
        browser.goto(&format!("http://localhost:{}/x", cb.port));
        assert!(browser.text().contains("callback reached"));
    });

    t.case("cockpit: its login page loads in the browser", || {
        let cockpit = Cockpit::start_with_config(
            terrarium_tests::free_port(),
            "[WebService]\nLoginTitle = Terrarium fixture\n",
        );
        let page = ureq::get(&cockpit.url())
            .call()
            .unwrap()
            .into_string()
            .unwrap();
        assert!(page.contains(LOGIN_MARKER));
        browser.goto(&cockpit.url());
        browser.wait_for(&format!("#{LOGIN_MARKER}"), 15);
        assert!(browser.exists("#login-password-input"));
        assert!(browser.exists("#login-button"));
        e2e::eventually("Cockpit's LoginTitle as the title", 10, || {
            browser.title() == "Terrarium fixture"
        });
        let pid = cockpit.port;
        drop(cockpit);
        assert!(std::net::TcpStream::connect(("127.0.0.1", pid)).is_err());
    });

    t.case(
        "cleanup: quit ends chromedriver and every Chromium of the profile",
        || {
            let profile = browser.profile_dir();
            let needle = profile.to_string_lossy().to_string();
            assert!(
                !processes_with(&needle).is_empty(),
                "Chromium runs with its profile"
            );
            let driver = browser.port;
            browser.quit();
            e2e::eventually("no process left with the profile", 10, || {
                processes_with(&needle).is_empty()
            });
            assert!(std::net::TcpStream::connect(("127.0.0.1", driver)).is_err());
        },
    );

    drop(browser);
    drop(idp);
    t.finish()
}
