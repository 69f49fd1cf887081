//! Pure plans for `trm cluster`: from what the servers report to the
//! steps that would change them. An empty plan means there is nothing to
//! do, which is how every verb is idempotent.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::token::JoinToken;
use super::Facts;
use crate::error::{Error, Result};

/// LXD's cluster port, when an address is given without one.
pub const CLUSTER_PORT: u16 = 8443;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    Init,
    Add,
    Join,
    Evacuate,
    Restore,
    Remove,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    /// What changes, in a few words.
    pub what: String,
    pub detail: String,
    #[serde(skip)]
    pub op: Op,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    SetServer {
        key: String,
        value: String,
    },
    Enable {
        name: String,
    },
    IssueToken {
        name: String,
    },
    Join {
        preseed: serde_json::Value,
    },
    Evacuate {
        name: String,
    },
    Restore {
        name: String,
    },
    Remove {
        name: String,
        force: bool,
    },
    /// The mesh's timer (`trm cluster mesh` at boot and every minute).
    MeshTimer,
    /// Open LXD's cluster port to one address (where ufw is installed).
    OpenLxdPort {
        name: String,
        host: String,
    },
}

/// One verb's plan, shown before it runs and reported after.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub verb: Verb,
    /// The member the verb is about.
    pub member: String,
    pub steps: Vec<Step>,
    /// The instances the verb moves or stops (evacuate, remove).
    pub instances: Vec<String>,
    /// `add`: the join token to run `trm cluster join` with on the new server.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub dry_run: bool,
    /// Whether anything was changed (false for a plan not applied).
    pub changed: bool,
}

impl Plan {
    fn new(verb: Verb, member: &str, steps: Vec<Step>) -> Plan {
        Plan {
            verb,
            member: member.to_string(),
            steps,
            instances: vec![],
            token: None,
            dry_run: false,
            changed: false,
        }
    }
}

fn step(what: &str, detail: impl Into<String>, op: Op) -> Step {
    Step {
        what: what.into(),
        detail: detail.into(),
        op,
    }
}

/// `ADDRESS` or `ADDRESS:PORT`, an IP address (members find each other by
/// address, never by a name some resolver answers for).
pub fn cluster_address(given: &str) -> Result<String> {
    use std::net::{IpAddr, SocketAddr};
    let sa = match given.parse::<SocketAddr>() {
        Ok(sa) => sa,
        Err(_) => {
            let ip: IpAddr = given
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse()
                .map_err(|_| {
                    Error::Usage(format!(
                        "'{given}' is not an IP address (optionally :PORT); members find each other by address"
                    ))
                })?;
            SocketAddr::new(ip, CLUSTER_PORT)
        }
    };
    if sa.ip().is_loopback() || sa.ip().is_unspecified() || sa.port() == 0 {
        return Err(Error::Usage(format!(
            "{sa} cannot be reached by other members; give a server's own address"
        )));
    }
    Ok(sa.to_string())
}

/// The address part of `ADDRESS:PORT` (brackets off an IPv6 one).
fn host_of(addr: &str) -> String {
    addr.parse::<std::net::SocketAddr>()
        .map(|sa| sa.ip().to_string())
        .unwrap_or_else(|_| addr.to_string())
}

/// A `--target MEMBER` names a member of this cluster: checked before
/// anything is made.
pub fn check_target(lxd: &crate::lxd::Lxd, target: Option<&str>) -> Result<()> {
    if let Some(t) = target {
        validate_member_name(t)?;
        lxd.cluster_member(t)?;
    }
    Ok(())
}

/// Member names are host names: the other members and `--target` use them.
pub fn validate_member_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.chars().all(|c| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "'{name}' is not a member name: use 1-63 letters, digits and inner dashes"
        )))
    }
}

fn not_clustered() -> Error {
    Error::WrongState(
        "this server is not a cluster member; run `trm cluster init` on the first server".into(),
    )
}

/// `init` and `join` change this host (its firewall, its mesh): they run
/// on the server itself.
fn here(facts: &Facts, verb: &str) -> Result<()> {
    if facts.local {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "`trm cluster {verb}` runs on the server itself, against its own LXD (the client's remote is not `local`)"
        )))
    }
}

pub fn init(facts: &Facts, name: &str, address: &str) -> Result<Plan> {
    validate_member_name(name)?;
    here(facts, "init")?;
    let want = cluster_address(address)?;
    if facts.cluster.enabled {
        if facts.cluster.server_name == name {
            return Ok(Plan::new(Verb::Init, name, vec![]));
        }
        return Err(Error::WrongState(format!(
            "this server is already the cluster member '{}'",
            facts.cluster.server_name
        )));
    }
    let mut steps = vec![];
    if facts.cluster_https_address != want {
        let was = if facts.cluster_https_address.is_empty() {
            "unset"
        } else {
            &facts.cluster_https_address
        };
        steps.push(step(
            "server_config",
            format!(
                "cluster.https_address {was} -> {want} (members only; the API stays on loopback)"
            ),
            Op::SetServer {
                key: "cluster.https_address".into(),
                value: want.clone(),
            },
        ));
    }
    steps.push(step(
        "cluster",
        format!("enable clustering as the first member '{name}'"),
        Op::Enable { name: name.into() },
    ));
    steps.push(mesh_timer());
    Ok(Plan::new(Verb::Init, name, steps))
}

/// `add NAME [--address IP]`: with the new server's address, LXD's port is
/// opened to it here first, so its join gets through the firewall.
pub fn add(facts: &Facts, name: &str, address: Option<&str>) -> Result<Plan> {
    validate_member_name(name)?;
    if !facts.cluster.enabled {
        return Err(not_clustered());
    }
    if facts.members.iter().any(|m| m.server_name == name) {
        return Err(Error::Usage(format!(
            "'{name}' is already a member of this cluster"
        )));
    }
    let mut plan = Plan::new(Verb::Add, name, vec![]);
    // A token already issued and unused is given again, not doubled.
    match facts.tokens.iter().find(|(n, _)| n == name) {
        Some((_, token)) => plan.token = Some(token.clone()),
        None => plan.steps.push(step(
            "join_token",
            format!("issue a join token for '{name}'"),
            Op::IssueToken { name: name.into() },
        )),
    }
    if let Some(a) = address {
        // The port opens in this host's firewall: it must be the member's.
        here(facts, "add --address")?;
        let host = host_of(&cluster_address(a)?);
        let detail = format!(
            "LXD's port {} open to {host}, for its join",
            super::firewall::LXD_PORT
        );
        plan.steps.extend(open_port(facts, name, host, detail));
    }
    Ok(plan)
}

/// Opening LXD's port to `host`, unless this host's firewall already does.
fn open_port(facts: &Facts, name: &str, host: String, detail: String) -> Option<Step> {
    let line = super::firewall::lxd_from(name, &host).line();
    (!facts.firewall.contains(&line)).then(|| {
        step(
            "firewall",
            detail,
            Op::OpenLxdPort {
                name: name.into(),
                host,
            },
        )
    })
}

/// Joining this server, as its own facts show it, with `token`.
pub fn join(
    facts: &Facts,
    token_text: &str,
    token: &JoinToken,
    address: &str,
    now: DateTime<Utc>,
) -> Result<Plan> {
    let name = &token.server_name;
    here(facts, "join")?;
    validate_member_name(name)?;
    let want = cluster_address(address)?;
    let through = token
        .addresses
        .iter()
        .map(|a| cluster_address(a))
        .collect::<Result<Vec<_>>>()
        .map_err(|e| {
            Error::Usage(format!(
                "the join token names a member address that is not one: {e}"
            ))
        })?;
    if facts.cluster.enabled {
        if &facts.cluster.server_name == name {
            return Ok(Plan::new(Verb::Join, name, vec![]));
        }
        return Err(Error::WrongState(format!(
            "this server is already the cluster member '{}'",
            facts.cluster.server_name
        )));
    }
    token.check_fresh(now)?;
    if !facts.instances.is_empty() {
        return Err(Error::WrongState(format!(
            "this server has instances ({}); a server joins a cluster empty",
            facts
                .instances
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let preseed = serde_json::json!({
        "cluster": {
            "enabled": true,
            "server_name": name,
            "server_address": want,
            "cluster_address": through[0],
            "cluster_token": token_text.trim(),
            "member_config": facts.member_config,
        }
    });
    let mut steps: Vec<Step> = through
        .iter()
        .filter_map(|a| {
            let host = host_of(a);
            let detail = format!("LXD's port open to the member at {host}, for the join");
            open_port(facts, "join", host, detail)
        })
        .collect();
    steps.extend([
            step(
                "cluster",
                format!(
                    "join the cluster at {} as '{name}', reachable at {want}; its profiles, pools and networks replace this server's",
                    token.addresses.join(", ")
                ),
                Op::Join { preseed },
            ),
            mesh_timer(),
        ]);
    Ok(Plan::new(Verb::Join, name, steps))
}

fn mesh_timer() -> Step {
    step(
        "mesh",
        "the private mesh to the other members, now, at boot and every minute (trm-cluster-mesh.timer)",
        Op::MeshTimer,
    )
}

fn member<'a>(facts: &'a Facts, name: &str) -> Result<&'a crate::lxd::cluster::Member> {
    if !facts.cluster.enabled {
        return Err(not_clustered());
    }
    facts
        .members
        .iter()
        .find(|m| m.server_name == name)
        .ok_or_else(|| Error::NotFound {
            kind: "cluster member",
            name: name.into(),
        })
}

fn instances_on(facts: &Facts, name: &str) -> Vec<String> {
    facts
        .instances
        .iter()
        .filter(|i| i.location == name)
        .map(|i| format!("{}/{}", i.project, i.name))
        .collect()
}

/// `evacuate` (true) or `restore` (false) a member.
pub fn member_state(facts: &Facts, name: &str, evacuate: bool) -> Result<Plan> {
    let m = member(facts, name)?;
    let evacuated = m.status.eq_ignore_ascii_case("evacuated");
    let (verb, steps) = match (evacuate, evacuated) {
        (true, false) => (
            Verb::Evacuate,
            vec![step(
                "member",
                format!("evacuate '{name}': its instances move to other members or stop"),
                Op::Evacuate { name: name.into() },
            )],
        ),
        (false, true) => (
            Verb::Restore,
            vec![step(
                "member",
                format!("restore '{name}': its instances come back and start"),
                Op::Restore { name: name.into() },
            )],
        ),
        (true, true) => (Verb::Evacuate, vec![]),
        (false, false) => (Verb::Restore, vec![]),
    };
    let mut plan = Plan::new(verb, name, steps);
    if !plan.steps.is_empty() {
        plan.instances = instances_on(facts, name);
    }
    Ok(plan)
}

pub fn remove(facts: &Facts, name: &str, force: bool) -> Result<Plan> {
    validate_member_name(name)?;
    if !facts.cluster.enabled {
        return Err(not_clustered());
    }
    if !facts.members.iter().any(|m| m.server_name == name) {
        return Ok(Plan::new(Verb::Remove, name, vec![]));
    }
    let held = instances_on(facts, name);
    if !held.is_empty() && !force {
        return Err(Error::WrongState(format!(
            "member '{name}' still holds {}; `trm cluster evacuate {name}` first, or --force for a member that is gone for good (its instances are lost)",
            held.join(", ")
        )));
    }
    let mut plan = Plan::new(
        Verb::Remove,
        name,
        vec![step(
            "member",
            if force {
                format!("force '{name}' out of the cluster, with whatever it held")
            } else {
                format!("remove '{name}' from the cluster")
            },
            Op::Remove {
                name: name.into(),
                force,
            },
        )],
    );
    plan.instances = held;
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::super::{Facts, Placed};
    use super::*;
    use crate::lxd::cluster::{ClusterInfo, Member};

    fn member(name: &str, status: &str) -> Member {
        Member {
            server_name: name.into(),
            url: format!("https://10.9.0.{}:8443", name.len()),
            roles: vec![],
            status: status.into(),
            message: String::new(),
            architecture: String::new(),
            config: Default::default(),
        }
    }

    fn clustered(name: &str) -> Facts {
        Facts {
            cluster: ClusterInfo {
                server_name: name.into(),
                enabled: true,
            },
            cluster_https_address: "10.9.0.11:8443".into(),
            members: vec![member("m1", "Online"), member("m2", "Online")],
            local: true,
            ..Facts::default()
        }
    }

    fn placed(name: &str, location: &str) -> Placed {
        Placed {
            name: name.into(),
            project: "default".into(),
            location: location.into(),
        }
    }

    fn token(name: &str) -> (String, JoinToken) {
        use base64::Engine;
        let v = serde_json::json!({"server_name": name, "fingerprint": "ab", "addresses": ["10.9.0.11:8443"],
                                   "secret": "s", "expires_at": "2026-12-02T10:00:00Z"});
        let text = base64::engine::general_purpose::STANDARD.encode(v.to_string());
        let t = JoinToken::decode(&text).unwrap();
        (text, t)
    }

    fn lone() -> Facts {
        Facts {
            local: true,
            ..Facts::default()
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-02T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn init_sets_the_cluster_address_then_enables_and_a_second_run_does_nothing() {
        let plan = init(&lone(), "m1", "10.9.0.11").unwrap();
        assert_eq!(
            plan.steps.iter().map(|s| &s.op).collect::<Vec<_>>(),
            vec![
                &Op::SetServer {
                    key: "cluster.https_address".into(),
                    value: "10.9.0.11:8443".into()
                },
                &Op::Enable { name: "m1".into() },
                &Op::MeshTimer
            ]
        );
        assert!(init(&clustered("m1"), "m1", "10.9.0.11")
            .unwrap()
            .steps
            .is_empty());
        let remote = init(&Facts::default(), "m1", "10.9.0.11").unwrap_err();
        assert!(
            remote.to_string().contains("runs on the server itself"),
            "{remote}"
        );
        let e = init(&clustered("m1"), "other", "10.9.0.11").unwrap_err();
        assert!(
            e.to_string().contains("already the cluster member 'm1'"),
            "{e}"
        );
    }

    #[test]
    fn addresses_must_be_reachable_ips() {
        assert_eq!(cluster_address("10.0.0.5").unwrap(), "10.0.0.5:8443");
        assert_eq!(cluster_address("10.0.0.5:9443").unwrap(), "10.0.0.5:9443");
        assert_eq!(cluster_address("fd00::5").unwrap(), "[fd00::5]:8443");
        for bad in [
            "127.0.0.1",
            "0.0.0.0",
            "example.com",
            "",
            "127.0.0.1:8443",
            "0.0.0.0:8443",
            "10.0.0.5:0",
        ] {
            assert!(cluster_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn add_refuses_a_member_name_taken_and_gives_a_pending_token_again() {
        let mut f = clustered("m1");
        let e = add(&f, "m2", None).unwrap_err().to_string();
        assert!(e.contains("already a member"), "{e}");
        let plan = add(&f, "m3", None).unwrap();
        assert_eq!(plan.steps[0].op, Op::IssueToken { name: "m3".into() });
        f.tokens.push(("m3".into(), "TOKEN".into()));
        let plan = add(&f, "m3", None).unwrap();
        assert!(plan.steps.is_empty());
        assert_eq!(plan.token.as_deref(), Some("TOKEN"));
        assert!(add(&Facts::default(), "m3", None).is_err());
        assert!(add(&f, "bad_name", None).is_err());
        let plan = add(&f, "m4", Some("10.9.0.14")).unwrap();
        assert_eq!(
            plan.steps[1].op,
            Op::OpenLxdPort {
                name: "m4".into(),
                host: "10.9.0.14".into()
            }
        );
        // Run again: the token is there and the port open, nothing to do.
        f.tokens.push(("m4".into(), "TOKEN4".into()));
        f.firewall
            .push(crate::cluster::firewall::lxd_from("m4", "10.9.0.14").line());
        assert!(add(&f, "m4", Some("10.9.0.14")).unwrap().steps.is_empty());
    }

    #[test]
    fn join_needs_an_empty_unclustered_server_and_a_fresh_token() {
        let (text, t) = token("m3");
        let plan = join(&lone(), &text, &t, "10.9.0.13", now()).unwrap();
        assert_eq!(
            plan.steps[0].op,
            Op::OpenLxdPort {
                name: "join".into(),
                host: "10.9.0.11".into()
            },
            "the member it joins through gets in first"
        );
        assert_eq!(
            plan.steps[2].op,
            Op::MeshTimer,
            "the mesh comes up with the join"
        );
        let Op::Join { preseed } = &plan.steps[1].op else {
            panic!("{plan:?}")
        };
        assert_eq!(preseed["cluster"]["server_name"], "m3");
        assert_eq!(preseed["cluster"]["server_address"], "10.9.0.13:8443");
        assert_eq!(preseed["cluster"]["cluster_address"], "10.9.0.11:8443");
        let late: DateTime<Utc> = "2026-12-02T11:00:00Z".parse().unwrap();
        assert!(join(&lone(), &text, &t, "10.9.0.13", late).is_err());
        let busy = Facts {
            instances: vec![placed("web", "none")],
            ..lone()
        };
        let e = join(&busy, &text, &t, "10.9.0.13", now())
            .unwrap_err()
            .to_string();
        assert!(e.contains("has instances (web)"), "{e}");
        // Already joined under that name: nothing to do, even once expired.
        assert!(join(&clustered("m3"), &text, &t, "10.9.0.13", late)
            .unwrap()
            .steps
            .is_empty());
        assert!(join(&clustered("m1"), &text, &t, "10.9.0.13", now()).is_err());
    }

    #[test]
    fn evacuate_and_restore_follow_the_members_status() {
        let mut f = clustered("m1");
        f.instances = vec![placed("a", "m2"), placed("b", "m1")];
        let plan = member_state(&f, "m2", true).unwrap();
        assert_eq!(plan.steps[0].op, Op::Evacuate { name: "m2".into() });
        assert_eq!(plan.instances, vec!["default/a"]);
        assert!(member_state(&f, "m2", false).unwrap().steps.is_empty());
        f.members[1].status = "Evacuated".into();
        assert!(member_state(&f, "m2", true).unwrap().steps.is_empty());
        assert_eq!(
            member_state(&f, "m2", false).unwrap().steps[0].op,
            Op::Restore { name: "m2".into() }
        );
        assert!(member_state(&f, "m9", true).is_err());
    }

    #[test]
    fn remove_refuses_a_member_holding_instances_unless_forced() {
        let mut f = clustered("m1");
        f.instances = vec![placed("a", "m2")];
        let e = remove(&f, "m2", false).unwrap_err().to_string();
        assert!(e.contains("still holds default/a"), "{e}");
        let plan = remove(&f, "m2", true).unwrap();
        assert_eq!(
            plan.steps[0].op,
            Op::Remove {
                name: "m2".into(),
                force: true
            }
        );
        assert!(remove(&f, "m7", false).unwrap().steps.is_empty());
    }
}
