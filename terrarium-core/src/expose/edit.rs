//! `trm-expose add`, `remove` and `list`: one instance's label changed
//! (after checking the new item can be held), then synced; or every
//! route as the planner sees it.

use serde::Serialize;

use super::apply::{self, HostView};
use super::backends::Backends;
use super::labels::{self, Item};
use super::{plan, Route, SyncReport, TraefikStatus};
use crate::error::{Error, Result};
use crate::fs::Lock;
use crate::lxd::Lxd;
use crate::names::validate_instance_name;
use crate::output::{Human, Row};
use crate::settings::Settings;
use crate::traefik;

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub instance: String,
    pub label_before: String,
    pub label_after: String,
    pub changed: bool,
    pub sync: Option<SyncReport>,
}

impl Change {
    /// The label change as planned, before (or without) any sync: a dry
    /// run, or nothing to change.
    fn unsynced(instance: &str, before: String, after: String) -> Change {
        Change {
            instance: instance.into(),
            changed: after != before,
            label_before: before,
            label_after: after,
            sync: None,
        }
    }
}

impl Human for Change {
    fn human(&self) -> String {
        let mut s = if self.changed {
            format!(
                "{}: user.proxy is now\n  {}",
                self.instance,
                self.label_after.replace('\n', "\n  ")
            )
        } else {
            format!("{}: nothing to change", self.instance)
        };
        if let Some(r) = &self.sync {
            s.push('\n');
            s.push_str(&r.human());
        }
        s
    }
}

/// Add one item to an instance's label after checking it can be held.
pub fn add(
    lxd: &Lxd,
    settings: &Settings,
    instance: &str,
    item: Item,
    dry_run: bool,
) -> Result<Change> {
    add_items(lxd, settings, instance, &[item], dry_run)
}

/// Add items to an instance's label after checking every one can be
/// held; one relabel and one sync, so a refused item exposes nothing.
pub fn add_items(
    lxd: &Lxd,
    settings: &Settings,
    instance: &str,
    new: &[Item],
    dry_run: bool,
) -> Result<Change> {
    validate_instance_name(instance)?;
    let _lock = Lock::for_change(crate::fs::Resource::Expose, dry_run)?;
    let (instances, backends) = Backends::read_with_instances(lxd, settings)?;
    let target = instances
        .iter()
        .find(|i| i.name == instance && i.project == lxd.project())
        .ok_or_else(|| Error::NotFound {
            kind: "instance",
            name: instance.to_string(),
        })?;
    let before = target.config.get(labels::KEY).cloned().unwrap_or_default();
    let (items, _) = labels::parse(&before);
    let adding: Vec<&Item> = new.iter().filter(|i| !items.contains(i)).collect();
    if adding.is_empty() {
        return Ok(Change::unsynced(instance, before.clone(), before));
    }
    // Keep the owner's own spelling of bad items: they stay visible.
    let after = adding
        .iter()
        .fold(before.clone(), |label, item| append_item(&label, item));
    let mut sources = backends.sources(&instances);
    if let Some(s) = sources.iter_mut().find(|s| s.name == instance) {
        s.label = after.clone();
    }
    traefik::check_project_name(lxd.project()).map_err(Error::Usage)?;
    let ctx = HostView::read(&settings.expose)?.context(settings, &sources, lxd.project())?;
    let p = plan(&sources, &ctx);
    for item in &adding {
        if let Some(problem) = p
            .problems
            .iter()
            .find(|x| x.instance == instance && x.item == item.to_string())
        {
            return Err(Error::Usage(format!(
                "cannot expose {item} on '{instance}': {}",
                problem.message
            )));
        }
    }
    if dry_run {
        return Ok(Change::unsynced(instance, before, after));
    }
    relabel(lxd, settings, instance, before, after)
}

fn append_item(label: &str, item: &Item) -> String {
    let label = label.trim();
    if label.is_empty() {
        item.to_string()
    } else {
        format!("{label}\n{item}")
    }
}

/// What `remove` takes away.
#[derive(Debug, Clone)]
pub enum Selector {
    Host(String),
    Tcp(u16),
    Udp(u16),
    All,
}

pub fn remove(
    lxd: &Lxd,
    settings: &Settings,
    instance: &str,
    sel: &Selector,
    dry_run: bool,
) -> Result<Change> {
    validate_instance_name(instance)?;
    let _lock = Lock::for_change(crate::fs::Resource::Expose, dry_run)?;
    let i = lxd.instance(instance)?;
    let before = i.config.get(labels::KEY).cloned().unwrap_or_default();
    let (items, errors) = labels::parse(&before);
    let host = match sel {
        Selector::Host(h) => Some(labels::normalize_host(h).map_err(Error::Usage)?),
        _ => None,
    };
    let keep: Vec<&Item> = items
        .iter()
        .filter(|it| match (sel, it) {
            (Selector::All, _) => false,
            (Selector::Host(_), Item::Http { host: h, .. } | Item::Share { host: h, .. }) => {
                Some(h) != host.as_ref()
            }
            (Selector::Tcp(p), Item::Tcp { host_port, .. }) => host_port != p,
            (Selector::Udp(p), Item::Udp { host_port, .. }) => host_port != p,
            _ => true,
        })
        .collect();
    if keep.len() == items.len() && !matches!(sel, Selector::All) {
        return Err(Error::Usage(format!(
            "instance '{instance}' has no exposure matching that"
        )));
    }
    // Unparsable items go with --all; otherwise they stay for the owner to fix.
    let mut after_items: Vec<String> = keep.iter().map(|i| i.to_string()).collect();
    if !matches!(sel, Selector::All) {
        after_items.extend(errors.into_iter().map(|e| e.item));
    }
    let after = after_items.join("\n");
    if dry_run || after == before {
        return Ok(Change::unsynced(instance, before, after));
    }
    relabel(lxd, settings, instance, before, after)
}

/// Set the instance's new label (unset it when empty), then sync, still
/// under the caller's lock.
fn relabel(
    lxd: &Lxd,
    settings: &Settings,
    instance: &str,
    before: String,
    after: String,
) -> Result<Change> {
    if after.is_empty() {
        lxd.unset_config(instance, labels::KEY)?;
    } else {
        lxd.set_config(instance, labels::KEY, &after)?;
    }
    let report = apply::sync_locked(lxd, settings, false)?;
    Ok(Change {
        instance: instance.into(),
        label_before: before,
        label_after: after,
        changed: true,
        sync: Some(report),
    })
}

/// Every public route and port, with Traefik's restart status.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    pub routes: Vec<Route>,
    pub traefik: TraefikStatus,
}

impl Human for Listing {
    fn human(&self) -> String {
        let rows = self.routes.iter().map(Row::cells).collect();
        let mut s = crate::output::table(Route::headers(), rows);
        if self.traefik.restart_pending {
            s.push_str(&format!(
                "\nTraefik restart pending (last error: {})",
                self.traefik.last_restart_error.as_deref().unwrap_or("none")
            ));
        }
        s
    }
}

pub fn list(lxd: &Lxd, settings: &Settings) -> Result<Listing> {
    let (instances, backends) = Backends::read_with_instances(lxd, settings)?;
    let sources = backends.sources(&instances);
    let ctx =
        HostView::read_lenient(&settings.expose)
            .0
            .context(settings, &sources, lxd.project())?;
    let p = plan(&sources, &ctx);
    Ok(Listing {
        routes: p.routes,
        traefik: apply::traefik_status(&settings.expose),
    })
}
