//! Sign-in at the OIDC issuer: the authorization code flow with PKCE
//! (S256), state and nonce, and the ID token verified by `openidconnect`
//! against the issuer's JWKS (signature, `iss`, `aud`, `exp`, nonce).
//! Discovery is cached for a few minutes; an issuer that does not answer
//! is an error the gate turns into a refusal, never into access.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreClientAuthMethod,
    CoreErrorResponseType, CoreGenderClaim, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointMaybeSet, EndpointNotSet, EndpointSet, IdTokenFields, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, StandardErrorResponse,
    StandardTokenResponse, TokenResponse,
};
use serde::{Deserialize, Serialize};

/// Who signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub sub: String,
    pub email: String,
    pub groups: Vec<String>,
}

/// A sign-in sent to the issuer: where the browser goes, and what must
/// come back with it.
#[derive(Debug, Clone)]
pub struct Begun {
    pub authorize_url: String,
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInError {
    /// The issuer does not answer (or answers nonsense): no access.
    Unavailable(String),
    /// The issuer answered, and the answer is not a valid sign-in.
    Rejected(String),
}

impl std::fmt::Display for SignInError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SignInError::Unavailable(m) | SignInError::Rejected(m) => f.write_str(m),
        }
    }
}

/// The issuer, as the gate's handler sees it (tests use a fake).
pub trait Issuer: Send + Sync {
    fn begin(&self) -> Result<Begun, SignInError>;
    fn finish(&self, code: &str, verifier: &str, nonce: &str) -> Result<Identity, SignInError>;
}

/// Every claim beyond the standard ones, so the groups claim can be any.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OtherClaims {
    #[serde(flatten)]
    claims: HashMap<String, serde_json::Value>,
}
impl AdditionalClaims for OtherClaims {}

type Fields = IdTokenFields<
    OtherClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type Tokens = StandardTokenResponse<Fields, CoreTokenType>;
type Client = openidconnect::Client<
    OtherClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    Tokens,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// How long a discovery (and its JWKS) is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(300);
const HTTP_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Oidc {
    issuer: String,
    client_id: String,
    client_secret: String,
    redirect_url: String,
    groups_claim: String,
    http: ureq::Agent,
    cached: Mutex<Option<(Instant, Client)>>,
}

impl Oidc {
    pub fn new(
        issuer: &str,
        client_id: &str,
        client_secret: &str,
        redirect_url: &str,
        groups_claim: &str,
    ) -> Oidc {
        Oidc {
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            redirect_url: redirect_url.to_string(),
            groups_claim: groups_claim.to_string(),
            // No redirects: openidconnect's advice against SSRF.
            http: ureq::AgentBuilder::new()
                .redirects(0)
                .timeout(HTTP_TIMEOUT)
                .build(),
            cached: Mutex::new(None),
        }
    }

    fn client(&self, fresh: bool) -> Result<Client, SignInError> {
        if !fresh {
            let cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((at, c)) = cached.as_ref() {
                if at.elapsed() < DISCOVERY_TTL {
                    return Ok(c.clone());
                }
            }
        }
        // Asked without holding the lock: a slow issuer holds up only the
        // sign-ins waiting on it.
        let unavailable = |e: String| {
            SignInError::Unavailable(format!(
                "the sign-in service {} does not answer: {e}",
                self.issuer
            ))
        };
        let issuer = IssuerUrl::new(self.issuer.clone()).map_err(|e| unavailable(e.to_string()))?;
        let meta = CoreProviderMetadata::discover(&issuer, &self.http)
            .map_err(|e| unavailable(error_chain(&e)))?;
        // client_secret_basic unless the issuer lists only client_secret_post.
        let post_only = meta
            .token_endpoint_auth_methods_supported()
            .is_some_and(|m| {
                m.contains(&CoreClientAuthMethod::ClientSecretPost)
                    && !m.contains(&CoreClientAuthMethod::ClientSecretBasic)
            });
        let redirect = RedirectUrl::new(self.redirect_url.clone())
            .map_err(|e| SignInError::Rejected(format!("redirect URL: {e}")))?;
        let mut client = Client::from_provider_metadata(
            meta,
            ClientId::new(self.client_id.clone()),
            Some(ClientSecret::new(self.client_secret.clone())),
        )
        .set_redirect_uri(redirect);
        if post_only {
            client = client.set_auth_type(AuthType::RequestBody);
        }
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), client.clone()));
        Ok(client)
    }

    fn identity(
        &self,
        claims: &openidconnect::IdTokenClaims<OtherClaims, CoreGenderClaim>,
    ) -> Identity {
        let groups = match claims.additional_claims().claims.get(&self.groups_claim) {
            Some(serde_json::Value::Array(a)) => a
                .iter()
                .filter_map(|g| g.as_str().map(String::from))
                .collect(),
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            _ => Vec::new(),
        };
        Identity {
            sub: claims.subject().to_string(),
            email: claims.email().map(|e| e.to_string()).unwrap_or_default(),
            groups,
        }
    }
}

/// An error and its causes, one line.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Issuer for Oidc {
    fn begin(&self) -> Result<Begun, SignInError> {
        // Asked afresh: a sign-in is never sent to an issuer that is down
        // (and picks up its new keys); the callback reuses this discovery.
        let client = self.client(true)?;
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .add_scope(Scope::new("email".into()))
            .add_scope(Scope::new("profile".into()))
            .set_pkce_challenge(challenge)
            .url();
        Ok(Begun {
            authorize_url: url.to_string(),
            state: state.secret().clone(),
            nonce: nonce.secret().clone(),
            verifier: verifier.secret().clone(),
        })
    }

    fn finish(&self, code: &str, verifier: &str, nonce: &str) -> Result<Identity, SignInError> {
        let client = self.client(false)?;
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .map_err(|e| SignInError::Rejected(format!("the issuer has no token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(verifier.to_string()))
            .request(&self.http)
            .map_err(|e| match &e {
                openidconnect::RequestTokenError::Request(_) => SignInError::Unavailable(format!(
                    "the sign-in service {} does not answer: {}",
                    self.issuer,
                    error_chain(&e)
                )),
                _ => SignInError::Rejected(format!(
                    "the issuer refused the code: {}",
                    error_chain(&e)
                )),
            })?;
        let id_token = tokens
            .id_token()
            .ok_or_else(|| SignInError::Rejected("the issuer sent no ID token".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let verify = |client: &Client| {
            let verifier = client.id_token_verifier();
            let identity = id_token.claims(&verifier, &nonce).map(|c| self.identity(c));
            identity
        };
        match verify(&client) {
            Ok(identity) => Ok(identity),
            // The issuer may have rotated its keys since discovery: once more, fresh.
            Err(openidconnect::ClaimsVerificationError::SignatureVerification(_)) => {
                verify(&self.client(true)?)
                    .map_err(|e| SignInError::Rejected(format!("the ID token is not valid: {e}")))
            }
            Err(e) => Err(SignInError::Rejected(format!(
                "the ID token is not valid: {e}"
            ))),
        }
    }
}
