//! Terrarium on an LXD cluster: LXD does the clustering (placement,
//! evacuation, moves); Terrarium plans each step, shows it, and checks
//! what it was given before either server is touched.
//!
//! Every verb reads the servers into [`Facts`], plans with the pure
//! functions of [`plan`], and applies exactly that plan.

pub mod addresses;
pub mod audits;
pub mod firewall;
pub mod heartbeat;
pub mod lease;
pub mod mesh;
pub mod plan;
pub mod token;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lxd::cluster::{ClusterInfo, Member};
use crate::lxd::Lxd;
use crate::output::{Human, Row};
use plan::{Op, Plan};

/// An instance and where it lives, from one query of every project.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Placed {
    pub name: String,
    pub project: String,
    pub location: String,
}

/// What the server we talk to reports about its cluster.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub cluster: ClusterInfo,
    pub cluster_https_address: String,
    pub members: Vec<Member>,
    /// Unused join tokens, by the member name they were issued for.
    pub tokens: Vec<(String, String)>,
    pub instances: Vec<Placed>,
    /// Member-specific keys a joining server must fill (a pool's source...).
    pub member_config: Vec<serde_json::Value>,
    /// The LXD is this host's own (not a cluster reached over HTTPS).
    pub local: bool,
    /// This host's ufw rules (`ufw show added`), read by `with_firewall`.
    pub firewall: Vec<String>,
}

pub fn facts(lxd: &Lxd) -> Result<Facts> {
    let server = lxd.server()?;
    let cluster = lxd.cluster()?;
    let (members, tokens) = if cluster.enabled {
        let tokens = lxd
            .join_tokens()?
            .into_iter()
            .filter_map(|t| Some((t.server_name().to_string(), t.token()?)))
            .collect();
        (lxd.cluster_members()?, tokens)
    } else {
        (vec![], vec![])
    };
    let local = lxd.is_local()?;
    let instances = lxd
        .instances_all_projects()?
        .into_iter()
        .map(|i| Placed {
            name: i.name,
            project: i.project,
            location: i.location,
        })
        .collect();
    Ok(Facts {
        cluster_https_address: server.config_str("cluster.https_address").to_string(),
        cluster,
        members,
        tokens,
        instances,
        member_config: vec![],
        firewall: vec![],
        local,
    })
}

/// The facts with this host's firewall rules, for the verbs that open a
/// port here (`add --address`, `join`): read only then, as ufw needs root.
pub fn with_firewall(mut facts: Facts) -> Result<Facts> {
    if let (true, Some(u)) = (facts.local, member_ufw()?) {
        facts.firewall = u.added()?;
    }
    Ok(facts)
}

/// The member whose timer runs the cluster's schedule (snapshots,
/// retention, exports, drills): the database leader, so there is always
/// exactly one, and another takes over when it dies. `Some(leader)` when
/// that is another member than the one answering; None on a lone server.
pub fn schedule_elsewhere(lxd: &Lxd) -> Result<Option<String>> {
    let me = lxd.cluster()?;
    if !me.enabled {
        return Ok(None);
    }
    let leader = lxd
        .cluster_members()?
        .into_iter()
        .find(|m| m.roles.iter().any(|r| r == "database-leader"))
        .map(|m| m.server_name);
    Ok(match leader {
        Some(l) if l == me.server_name => None,
        Some(l) => Some(l),
        // No leader right now (an election): nobody ticks, the next tick will.
        None => Some("no member (the cluster is electing its leader)".into()),
    })
}

/// What a tick on a member that is not the leader reports.
pub const ELSEWHERE: &str = "elsewhere";

/// This host's name, the default member name.
pub fn host_name() -> Result<String> {
    let n =
        nix::unistd::gethostname().map_err(|e| Error::Unavailable(format!("host name: {e}")))?;
    Ok(n.to_string_lossy().into_owned())
}

/// Apply a plan as confirmed; the plan comes back as the report.
pub fn apply(lxd: &Lxd, mut plan: Plan) -> Result<Plan> {
    // Ports opened for a join are closed again if the join is refused.
    let mut opened = vec![];
    for s in &plan.steps {
        match &s.op {
            Op::SetServer { key, value } => lxd.set_server_config(key, value)?,
            Op::Enable { name } => lxd.enable_cluster(name)?,
            Op::IssueToken { name } => plan.token = Some(lxd.add_member(name)?),
            Op::Join { preseed } => {
                if let Err(e) = join(lxd, preseed) {
                    if let Err(c) = close_ports(&opened) {
                        return Err(Error::WrongState(format!(
                            "{e}; closing the ports opened for it failed: {c}"
                        )));
                    }
                    return Err(e);
                }
            }
            Op::Evacuate { name } => lxd.member_state(name, "evacuate")?,
            Op::Restore { name } => lxd.member_state(name, "restore")?,
            Op::Remove { name, force } => lxd.remove_member(name, *force)?,
            Op::MeshTimer => mesh_now_and_later(lxd)?,
            Op::OpenLxdPort { name, host } => opened.extend(open_lxd_port(name, host)?),
        }
    }
    plan.changed = !plan.steps.is_empty();
    Ok(plan)
}

/// Bring the mesh up now, and install its timer (where systemd runs, it
/// is enabled; elsewhere the report of `trm cluster mesh` is the way).
fn mesh_now_and_later(lxd: &Lxd) -> Result<()> {
    // The timer first: if the mesh fails now, its next run tries again.
    let bin = std::env::current_exe().map_err(|e| Error::io("this program's path", e))?;
    crate::systemd::install(
        &mesh::units(&bin),
        std::path::Path::new(crate::systemd::DEFAULT_UNIT_DIR),
        false,
    )?;
    mesh::converge(lxd, false)?;
    Ok(())
}

/// LXD's port open to one address, where ufw is installed.
/// The rule it added (None where ufw is not installed).
fn open_lxd_port(name: &str, host: &str) -> Result<Option<firewall::Rule>> {
    let Some(ufw) = member_ufw()? else {
        return Ok(None);
    };
    let rule = firewall::lxd_from(name, host);
    ufw.run(&rule.args)?;
    Ok(Some(rule))
}

fn close_ports(rules: &[firewall::Rule]) -> Result<()> {
    let Some(ufw) = member_ufw()? else {
        return Ok(());
    };
    for r in rules {
        ufw.run(&crate::harden::firewall::delete_args(&r.line()))?;
    }
    Ok(())
}

/// This host's ufw, as its settings name it; None where it is not installed.
pub fn member_ufw() -> Result<Option<crate::ufw::Ufw>> {
    if crate::ufw::UFW.resolve().is_err() {
        return Ok(None);
    }
    Ok(Some(crate::ufw::Ufw::from_settings(
        &crate::settings::Settings::load_or_default()?.expose,
    )))
}

/// The server settings a failed join must leave as they were.
const JOIN_KEYS: &[&str] = &["core.https_address", "cluster.https_address"];

/// Join, and if LXD refuses, put back any of this server's settings the
/// attempt changed, so a refused join leaves the server as it was.
fn join(lxd: &Lxd, preseed: &serde_json::Value) -> Result<()> {
    let before = lxd.server()?;
    let Err(refused) = lxd.join_cluster(preseed) else {
        return Ok(());
    };
    let why = refusal(&refused);
    // A join that failed late (a timeout, say) may have joined after all:
    // then nothing is put back under a live member.
    if lxd.cluster().is_ok_and(|c| c.enabled) {
        return Err(Error::WrongState(format!(
            "the join reported an error but this server is now a cluster member: check `trm cluster list` ({why})"
        )));
    }
    let mut undo_failed = vec![];
    match lxd.server() {
        Ok(after) => {
            for key in JOIN_KEYS {
                let (was, now) = (before.config_str(key), after.config_str(key));
                if was != now {
                    if let Err(e) = lxd.set_server_config(key, was) {
                        undo_failed.push(format!("{key} back to '{was}': {e}"));
                    }
                }
            }
        }
        Err(e) => undo_failed.push(format!("reading the settings again: {e}")),
    }
    if undo_failed.is_empty() {
        Err(Error::WrongState(format!(
            "the cluster refused the join, and nothing was changed here: {why}"
        )))
    } else {
        Err(Error::WrongState(format!(
            "the cluster refused the join ({why}), and putting this server back failed: {}",
            undo_failed.join("; ")
        )))
    }
}

/// LXD's own reason, without the command line around it.
fn refusal(e: &Error) -> String {
    match e {
        Error::Command(f) => f
            .stderr_tail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .trim_start_matches("Error: ")
            .to_string(),
        other => other.to_string(),
    }
}

/// One member, as `trm cluster list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct MemberView {
    pub name: String,
    pub address: String,
    /// online, offline, evacuated...
    pub status: String,
    pub roles: Vec<String>,
    /// Instances placed on it, in every project.
    pub instances: usize,
    pub message: String,
}

pub fn list(lxd: &Lxd) -> Result<Vec<MemberView>> {
    let f = facts(lxd)?;
    if !f.cluster.enabled {
        return Err(Error::WrongState(
            "this server is not a cluster member; `trm cluster init` makes it the first".into(),
        ));
    }
    Ok(views(&f))
}

pub fn views(f: &Facts) -> Vec<MemberView> {
    f.members
        .iter()
        .map(|m| MemberView {
            name: m.server_name.clone(),
            address: m.host().to_string(),
            status: m.status.to_ascii_lowercase(),
            roles: m.roles.clone(),
            instances: f
                .instances
                .iter()
                .filter(|i| i.location == m.server_name)
                .count(),
            message: m.message.clone(),
        })
        .collect()
}

impl Row for MemberView {
    fn headers() -> &'static [&'static str] {
        &["NAME", "ADDRESS", "STATUS", "ROLES", "INSTANCES", "MESSAGE"]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.name.clone(),
            self.address.clone(),
            self.status.clone(),
            self.roles.join(","),
            self.instances.to_string(),
            self.message.clone(),
        ]
    }
}

impl Human for Plan {
    fn human(&self) -> String {
        let verb = serde_json::to_value(self.verb)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let mut lines = vec![];
        if self.steps.is_empty() {
            lines.push(format!("{verb} {}: nothing to do", self.member));
        } else {
            let tense = if self.changed { "did" } else { "would" };
            lines.push(format!("{verb} {} ({tense}):", self.member));
            lines.extend(
                self.steps
                    .iter()
                    .map(|s| format!("  {:<14} {}", s.what, s.detail)),
            );
        }
        if !self.instances.is_empty() {
            lines.push(format!("instances: {}", self.instances.join(", ")));
        }
        if let Some(t) = &self.token {
            lines.push(format!(
                "on the new server, after its own ./scripts/install.sh:\n  trm cluster join {t}"
            ));
        }
        lines.join("\n")
    }
}
