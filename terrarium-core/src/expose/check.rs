//! `trm-expose check`: everything `sync` would say of a label, before it
//! is set: the grammar, then the same policy and conflicts `sync` applies.

use serde::Serialize;

use super::apply::HostView;
use super::backends::Backends;
use super::{plan, Source};
use crate::error::Result;
use crate::expose::labels::{self, Item};
use crate::lxd::Lxd;
use crate::output::Human;
use crate::settings::Settings;

#[derive(Debug, Serialize)]
pub struct CheckReport {
    /// Every item parses and `sync` would route every one.
    pub valid: bool,
    /// The instance the label was judged for.
    pub instance: String,
    /// False when LXD did not answer: claims of other instances unknown.
    pub conflicts_checked: bool,
    /// What could not be read (UFW's rules without root), if anything.
    pub note: Option<String>,
    pub items: Vec<CheckedItem>,
    pub errors: Vec<labels::ItemError>,
}

impl CheckReport {
    /// What keeps the label from being routed as written.
    pub fn problems(&self) -> usize {
        self.errors.len() + self.items.iter().filter(|i| i.problem.is_some()).count()
    }
}

#[derive(Debug, Serialize)]
pub struct CheckedItem {
    pub item: String,
    #[serde(flatten)]
    pub parsed: Item,
    pub holds: String,
    /// Why `sync` would refuse it (reserved or busy port, management
    /// host, a claim another instance holds).
    pub problem: Option<String>,
}

/// A name no LXD instance can have (LXD refuses spaces and parentheses),
/// for a label judged on its own.
const NEW: &str = "(new instance)";

/// Judge `label` as the whole `user.proxy` of `instance` (an existing one,
/// or one created now, which loses every contested claim).
pub fn check(
    lxd: Option<&Lxd>,
    settings: &Settings,
    instance: Option<&str>,
    label: &str,
) -> Result<CheckReport> {
    let read = lxd.map(|l| Backends::read_with_instances(l, settings));
    let conflicts_checked = matches!(read, Some(Ok(_)));
    let mut sources: Vec<Source> = match read {
        Some(Ok((list, backends))) => backends.sources(&list),
        _ => Vec::new(),
    };
    let name = instance.unwrap_or(NEW).to_string();
    match sources.iter_mut().find(|s| s.name == name) {
        Some(s) => s.label = label.to_string(),
        None => sources.push(Source {
            name: name.clone(),
            created_at: "9999-12-31T23:59:59Z".into(),
            running: true,
            // TEST-NET-1: only to render and validate the would-be file.
            ipv4: Some("192.0.2.1".into()),
            unroutable: None,
            label: label.to_string(),
            location: None,
        }),
    }
    let (host, ufw_note) = HostView::read_lenient(&settings.expose);
    let project = lxd.map_or(settings.project.as_str(), |l| l.project());
    let ctx = host.context(settings, &sources, project)?;
    let p = plan(&sources, &ctx);
    let (items, errors) = labels::parse(label);
    let items: Vec<CheckedItem> = items
        .into_iter()
        .map(|i| {
            let text = i.to_string();
            CheckedItem {
                problem: p
                    .problems
                    .iter()
                    .find(|x| x.instance == name && x.item == text)
                    .map(|x| x.message.clone()),
                holds: i.claim().to_string(),
                item: text,
                parsed: i,
            }
        })
        .collect();
    Ok(CheckReport {
        valid: errors.is_empty() && items.iter().all(|i| i.problem.is_none()),
        instance: name,
        conflicts_checked,
        note: ufw_note,
        items,
        errors,
    })
}

impl Human for CheckReport {
    fn human(&self) -> String {
        let mut lines: Vec<String> = self
            .items
            .iter()
            .map(|i| {
                let what = match &i.parsed {
                    Item::Http {
                        tls, cport, auth, ..
                    } => format!(
                        "{} to container port {cport}{}",
                        if *tls {
                            "HTTPS (TLS at Traefik, http redirects to https)"
                        } else {
                            "plain HTTP"
                        },
                        match auth {
                            None => String::new(),
                            Some(g) if g.is_empty() => ", behind single sign-on".into(),
                            Some(g) =>
                                format!(", behind single sign-on for groups {}", g.join(", ")),
                        }
                    ),
                    Item::Share { path, .. } => {
                        format!("lets other instances route {path} and below")
                    }
                    Item::Tcp { cport, .. } => format!("raw TCP to container port {cport}"),
                    Item::Udp { cport, .. } => format!("raw UDP to container port {cport}"),
                };
                match &i.problem {
                    None => format!("ok      {}: {what}; holds {}", i.item, i.holds),
                    Some(p) => format!("refused {}: {p}", i.item),
                }
            })
            .collect();
        lines.extend(self.errors.iter().map(|e| format!("error   {e}")));
        if let Some(n) = &self.note {
            lines.push(format!("({n})"));
        }
        if !self.conflicts_checked {
            lines.push("(LXD did not answer: other instances' claims were not checked)".into());
        }
        lines.join("\n")
    }
}
