//! A real OpenID Connect provider for tests: `oidc-provider-mock` (PyPI,
//! pinned, installed by `scripts/setup-host.sh` into a venv of its own) on
//! a free loopback port, with the test's users and their groups.
//! Restartable on the same port: what an IdP outage looks like to a client.
//!
//! What oidc-provider-mock 0.3.4 does, as seen on this machine (read from
//! its source and tried against it with curl):
//!
//! - **Issuer.** The discovery document's `issuer`, and the `iss` of every
//!   ID token, is built from the *Host header of that request*, without a
//!   trailing slash: `http://127.0.0.1:PORT` when asked as 127.0.0.1, but
//!   `http://localhost:PORT` when asked as localhost. The `iss` of an ID
//!   token comes from the host the *token request* was sent to. A client
//!   must talk to it by exactly one name; [`Idp::issuer`] returns the
//!   127.0.0.1 form, which is what discovery says when asked that way.
//! - **Endpoints.** `/.well-known/openid-configuration`, `/oauth2/authorize`,
//!   `/oauth2/token`, `/userinfo`, `/jwks`, `/oauth2/clients`
//!   (registration), `/oauth2/end_session`. Discovery names only
//!   `response_type` `code`, `response_mode` `query`, RS256; it does not
//!   say `code_challenge_methods_supported` or
//!   `token_endpoint_auth_methods_supported`.
//! - **Signing key.** A fresh RSA key each start: after [`Idp::kill`] and
//!   [`Idp::run`] the JWKS has a new key (new `kid`), so ID tokens from
//!   before the restart no longer verify. The ID token's JOSE header is
//!   `{"typ":"JWT","alg":"RS256"}`: it carries **no `kid`** although the
//!   JWKS entry has one; a verifier must cope with a single key and no kid.
//! - **PKCE is not implemented.** `code_challenge` and
//!   `code_challenge_method` are accepted and ignored (even a bogus method),
//!   and `code_verifier` is ignored at the token endpoint: a wrong verifier
//!   still gets tokens. So a test cannot use this IdP to prove a client's
//!   PKCE is right; it only proves the parameters do no harm.
//! - **Nonce.** `--require-nonce true` (what [`Idp::start`] uses) makes an
//!   authorization request without `nonce` fail: the browser is redirected
//!   to the redirect_uri with `error=invalid_request` and
//!   `error_description=Missing 'nonce' in request.` (and the `state`). The
//!   nonce is copied into the ID token. Replays are *not* detected: the
//!   same nonce may be used again.
//! - **Client authentication.** At the token endpoint `client_secret_basic`
//!   and `client_secret_post` both work; `none` (no secret) is refused
//!   (`invalid_client`). Without `--require-registration` (the default
//!   here) any client_id is accepted with *any* secret and *any*
//!   redirect_uri. With `--require-registration true`
//!   ([`IdpOptions::require_registration`]), an unknown client_id gets a
//!   400 HTML page `Error: invalid_client` at the authorize endpoint (no
//!   redirect), and a registered client ([`Idp::register_client`]) must
//!   use exactly its registered redirect_uri (else 400), exactly its
//!   registered auth method, and its secret.
//! - **Codes.** Single use (a second exchange: `invalid_grant`), bound to
//!   the client_id and the redirect_uri (`invalid_grant` otherwise); they
//!   do not expire by time.
//! - **Tokens.** Access token and ID token live `--token-max-age` seconds
//!   (default 3600; `expires_in` says it, `exp` = `iat` + it). A refresh
//!   token is issued too (unless `--no-refresh-token true`). `aud` is a
//!   list: `["CLIENT_ID"]`. The ID token carries `iss`, `aud`, `iat`,
//!   `exp`, `auth_time`, `nonce`, `at_hash`, `sub`, and the user's claims:
//!   non-standard ones such as `groups` always, standard ones only with
//!   their scope (`email` needs scope `email`).
//! - **Claims override.** A user's claims are merged *last*, so a user
//!   whose claims hold `iss`, `aud` or `exp` gets an ID token with those
//!   values: a ready way to make a wrongly-issued or wrong-audience token
//!   (e.g. `Idp::start_claims(&[json!({"sub":"eve","aud":"other"})])`).
//! - **The login page.** `GET /oauth2/authorize?...` is a form with a text
//!   field `input[name=sub]` and a submit button (the first
//!   `button[type=submit]`, "Authorize"); posting logs in as that subject
//!   (a subject not given at start gets `{"email": sub}` and no groups).
//!   Predefined users also get one-click buttons. The page links a
//!   stylesheet on a public CDN, which a test browser must not fetch
//!   ([`crate::browser::Browser`] resolves only the test's hosts).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::child::TestChild;

use serde_json::{json, Value};

/// Where `scripts/setup-host.sh` installs the pinned oidc-provider-mock.
pub const DEFAULT_BINARY: &str = "/opt/terrarium-test/oidc/bin/oidc-provider-mock";

fn binary() -> PathBuf {
    if let Some(p) = std::env::var_os("TRM_OIDC_PROVIDER_MOCK") {
        return p.into();
    }
    let p = PathBuf::from(DEFAULT_BINARY);
    assert!(
        p.exists(),
        "{DEFAULT_BINARY} is missing: run scripts/setup-host.sh (or set TRM_OIDC_PROVIDER_MOCK)"
    );
    p
}

/// How strict the provider is. [`Default`] is what [`Idp::start`] uses:
/// nonce required, any client accepted, one-hour tokens.
#[derive(Debug, Clone)]
pub struct IdpOptions {
    /// `--require-nonce`: refuse authorization requests without `nonce`.
    pub require_nonce: bool,
    /// `--require-registration`: only clients from [`Idp::register_client`].
    pub require_registration: bool,
    /// `--token-max-age`: lifetime of access and ID tokens, in seconds.
    pub token_max_age: u64,
    /// `--no-refresh-token`.
    pub no_refresh_token: bool,
}

impl Default for IdpOptions {
    fn default() -> Self {
        IdpOptions {
            require_nonce: true,
            require_registration: false,
            token_max_age: 3600,
            no_refresh_token: false,
        }
    }
}

/// oidc-provider-mock on `127.0.0.1:port`; killed (by pid) on drop.
pub struct Idp {
    /// Its output (a request log), for a failing test to show.
    child: TestChild,
    pub port: u16,
    pub options: IdpOptions,
    /// One `--user-claims` JSON object per user.
    users: Vec<Value>,
}

impl Idp {
    /// Users as (sub, groups): each gets
    /// `{"sub": SUB, "email": "SUB@example.test", "groups": [GROUPS]}`.
    pub fn start(users: &[(&str, &[&str])]) -> Idp {
        Idp::start_with(users, IdpOptions::default())
    }

    pub fn start_with(users: &[(&str, &[&str])], options: IdpOptions) -> Idp {
        let claims: Vec<Value> = users
            .iter()
            .map(|(sub, groups)| json!({"sub": sub, "email": format!("{sub}@example.test"), "groups": groups}))
            .collect();
        Idp::start_claims_with(&claims, options)
    }

    /// Users given as whole claim objects (each must have `"sub"`); claims
    /// such as `aud`, `iss` or `exp` override the ID token's own.
    pub fn start_claims(users: &[Value]) -> Idp {
        Idp::start_claims_with(users, IdpOptions::default())
    }

    pub fn start_claims_with(users: &[Value], options: IdpOptions) -> Idp {
        for u in users {
            assert!(u["sub"].is_string(), "a user needs a sub: {u}");
        }
        let mut idp = Idp {
            child: TestChild::new("oidc-provider-mock"),
            port: crate::free_port(),
            options,
            users: users.to_vec(),
        };
        idp.run();
        idp
    }

    /// Start (again) on the same port, with the same users and options. A
    /// restarted provider has a new signing key and forgets its codes,
    /// tokens and registered clients.
    pub fn run(&mut self) {
        let b = |v: bool| if v { "true" } else { "false" };
        let mut cmd = Command::new(binary());
        cmd.args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--require-nonce", b(self.options.require_nonce)])
            .args([
                "--require-registration",
                b(self.options.require_registration),
            ])
            .args(["--no-refresh-token", b(self.options.no_refresh_token)])
            .args(["--token-max-age", &self.options.token_max_age.to_string()]);
        for u in &self.users {
            cmd.arg("--user-claims").arg(u.to_string());
        }
        cmd.env("NO_COLOR", "1");
        let issuer = self.issuer();
        let discovery = self.discovery_url();
        self.child.start(cmd, 30, || {
            get_json(&discovery).is_ok_and(|doc| doc["issuer"] == issuer)
        });
    }

    /// Stop it by its pid (an IdP outage, as a client sees it).
    pub fn kill(&mut self) {
        self.child.kill()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.is_running()
    }

    /// `http://127.0.0.1:PORT`: the issuer as discovery states it when asked
    /// at that address (no trailing slash). Use this exact string.
    pub fn issuer(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn discovery_url(&self) -> String {
        format!("{}/.well-known/openid-configuration", self.issuer())
    }

    pub fn authorize_endpoint(&self) -> String {
        format!("{}/oauth2/authorize", self.issuer())
    }

    pub fn token_endpoint(&self) -> String {
        format!("{}/oauth2/token", self.issuer())
    }

    /// The discovery document, or why it could not be had.
    pub fn discovery(&self) -> Result<Value, String> {
        get_json(&self.discovery_url())
    }

    /// Register a client (RFC 7591), as `--require-registration` needs:
    /// returns (client_id, client_secret). `auth_method` is
    /// `client_secret_basic` or `client_secret_post`.
    pub fn register_client(&self, redirect_uris: &[&str], auth_method: &str) -> (String, String) {
        let resp: Value = ureq::post(&format!("{}/oauth2/clients", self.issuer()))
            .send_json(json!({
                "redirect_uris": redirect_uris,
                "token_endpoint_auth_method": auth_method,
            }))
            .expect("register a client")
            .into_json()
            .unwrap();
        (
            resp["client_id"].as_str().unwrap().to_string(),
            resp["client_secret"].as_str().unwrap().to_string(),
        )
    }

    /// What the provider logged so far (one line per request).
    pub fn log_text(&self) -> String {
        self.child.log_text()
    }
}

fn get_json(url: &str) -> Result<Value, String> {
    let resp = ureq::get(url)
        .timeout(Duration::from_secs(5))
        .call()
        .map_err(|e| e.to_string())?;
    resp.into_json().map_err(|e| e.to_string())
}

/// The payload of a JWT (its middle part), not verified.
pub fn jwt_payload(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .expect("JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("JWT payload is JSON")
}
