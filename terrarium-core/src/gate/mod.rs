//! `trm-gate`: Terrarium's own single-sign-on gate. Traefik asks it
//! (`forwardAuth`) before every request to a dashboard or an `@auth` route;
//! it keeps oauth2-proxy's endpoint shape (`/oauth2/auth`, `/oauth2/start`,
//! `/oauth2/callback`, `/oauth2/sign_out`), so routes also work against an
//! oauth2-proxy.
//!
//! Every session cookie is bound to one host: a sign-in on the auth host
//! hands each app host its own session through a one-time code on that
//! host's `/oauth2/handoff`, so a tenant's backend never sees a cookie that
//! opens another host.

pub mod handler;
pub mod hosts;
pub mod keys;
pub mod oidc;
pub mod pages;
pub mod serve;
pub mod session;
pub mod settings;
pub mod supervise;

pub use settings::GateSettings;
