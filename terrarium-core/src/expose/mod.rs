//! Public exposure: from the `user.proxy` labels LXD holds to Traefik
//! files, static entrypoints and UFW rules. `plan` is pure (labels in,
//! desired state out); `sync` reads LXD once, then brings the files, the
//! firewall and Traefik in line, under the `expose` lock.

mod apply;
mod backends;
mod check;
pub mod claims;
mod edit;
mod foreign_files;
pub mod labels;
mod plan;
pub mod policy;
mod watch;

pub use apply::{
    proxy, restart_after_static_change, sync, Restart, Restarted, SyncReport, TraefikStatus,
};
pub use backends::{backend_address, NIC_FILTERS};
pub use check::{check, CheckReport};
pub use edit::{add, add_items, list, remove, Change, Listing, Selector};
pub use foreign_files::Rejected;
pub use plan::{base_domain, plan, Plan, Problem, Route, RouteState, Source};
pub use policy::{static_options, Context};
pub use watch::{units, watch};
