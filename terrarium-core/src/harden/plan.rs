//! The hardening planner: from what was read of the host, every change
//! `apply` would make (SSH, firewall, Traefik's static file and management
//! routes, LXD and Cockpit on loopback), in order. It reads nothing itself.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{firewall, gate, pretty, ssh, Facts, Options};
use crate::error::{Error, Result};
use crate::output::Human;
use crate::settings::Settings;
use crate::{baseline, expose, traefik, ufw};

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub area: &'static str,
    /// `write`, `ufw`, `set`.
    pub action: &'static str,
    /// A file, a ufw command line, a configuration key.
    pub target: String,
    pub detail: String,
    #[serde(skip)]
    pub(super) step: Step,
}

/// What `apply` does for a change.
#[derive(Debug, Clone)]
pub(super) enum Step {
    SshDropIn(PathBuf, String),
    Write(PathBuf, String),
    TraefikStatic(PathBuf, String),
    Ufw(Vec<String>),
    LxdServer(String, String),
    Cockpit(PathBuf, String),
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub changes: Vec<Change>,
    /// What is left alone on purpose (rules others own).
    pub kept: Vec<String>,
    pub notes: Vec<String>,
    pub wan: String,
    pub bridge: String,
    pub ssh_ports: Vec<u16>,
    /// Who can still log in with a key once passwords are off.
    pub ssh_keys: Option<ssh::KeyCheck>,
}

impl Human for Plan {
    fn human(&self) -> String {
        let mut out = vec![if self.changes.is_empty() {
            "nothing to change".to_string()
        } else {
            format!("{} change(s):", self.changes.len())
        }];
        out.extend(
            self.changes
                .iter()
                .map(|c| format!("  {:9} {} {}: {}", c.area, c.action, c.target, c.detail)),
        );
        out.extend(self.kept.iter().map(|k| format!("  kept      {k}")));
        out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        out.join("\n")
    }
}

fn change(
    area: &'static str,
    action: &'static str,
    target: String,
    detail: &str,
    step: Step,
) -> Change {
    Change {
        area,
        action,
        target,
        detail: detail.to_string(),
        step,
    }
}

/// `live` (a file as read, `None` when missing) is not `content`.
fn differs(live: &Option<String>, content: &str) -> bool {
    live.as_deref() != Some(content)
}

/// Every change `apply` would make to the host `facts` describe.
pub fn plan_from(facts: &Facts, settings: &Settings, opts: &Options) -> Result<Plan> {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let e = &settings.expose;

    // SSH: sshd's own view of its configuration decides.
    let (ssh_ports, ssh_keys) = match &facts.sshd {
        None => {
            notes.push("sshd is not installed: no SSH server to harden".into());
            (vec![22], None)
        }
        Some(sshd) => {
            let content = ssh::drop_in();
            if differs(&sshd.drop_in, &content) {
                changes.push(change(
                    "ssh",
                    "write",
                    opts.drop_in().display().to_string(),
                    "key-only SSH drop-in, checked with sshd -t, then sshd reloaded and read back with sshd -T",
                    Step::SshDropIn(opts.drop_in(), content),
                ));
            }
            (ssh::ports(&sshd.effective), Some(sshd.keys.clone()))
        }
    };

    changes.extend(firewall_changes(facts, &ssh_ports, &settings.bridge));
    let kept = ufw::owned_rules(&facts.ufw_added)
        .iter()
        .map(|r| format!("ufw allow {} ({})", r.spec(), r.comment))
        .collect();

    // Traefik: the static file (keeping trm-expose's entrypoints) and the
    // management routes, both validated before they can be written.
    let live: Option<serde_json::Value> = facts
        .traefik_static
        .as_deref()
        .and_then(|t| serde_json::from_str(t).ok());
    let eps = live
        .as_ref()
        .map(traefik::entrypoints_of)
        .unwrap_or_default();
    traefik::supervise::check_settings(e)?;
    let doc = traefik::static_config(&expose::static_options(e), &eps);
    traefik::validate_static(&doc)
        .map_err(|errs| Error::parse("the generated Traefik static file", errs.join("; ")))?;
    if differs(&facts.traefik_static, &pretty(&doc)) {
        changes.push(change(
            "traefik",
            "write",
            e.static_file.clone(),
            "static configuration: web and websecure, ACME, file provider, ping and API on loopback only, logs, no phoning home",
            Step::TraefikStatic(PathBuf::from(&e.static_file), pretty(&doc)),
        ));
    }
    let mgmt = gate::management_file(e, &facts.base_domain, facts.gate.as_ref())?;
    let mgmt_path = Path::new(&e.dynamic_dir).join(gate::MANAGEMENT_FILE);
    if differs(&facts.management_file, &pretty(&mgmt)) {
        changes.push(change(
            "traefik",
            "write",
            mgmt_path.display().to_string(),
            "management routes: manage. (Cockpit) and proxy. (dashboard) behind the gate, lxd. passed through to LXD",
            Step::Write(mgmt_path, pretty(&mgmt)),
        ));
    }
    if facts.gate.is_none() {
        notes.push(format!(
            "no single-sign-on gate is configured ({} is missing): run `trm-harden oidc set`; until then the gated dashboards answer no one",
            facts.gate_file.display()
        ));
    }

    // Management services on loopback.
    let https = &facts.lxd_https_address;
    if https != baseline::HTTPS_ADDRESS {
        changes.push(change(
            "lxd",
            "set",
            "core.https_address".into(),
            &format!("'{https}' -> {} (loopback only)", baseline::HTTPS_ADDRESS),
            Step::LxdServer("core.https_address".into(), baseline::HTTPS_ADDRESS.into()),
        ));
    }
    let cockpit = gate::cockpit_drop_in();
    if differs(&facts.cockpit_drop_in, &cockpit) {
        changes.push(change(
            "cockpit",
            "write",
            opts.cockpit_drop_in().display().to_string(),
            "Cockpit's socket on 127.0.0.1:9090 only",
            Step::Cockpit(opts.cockpit_drop_in(), cockpit),
        ));
    }

    Ok(Plan {
        changes,
        kept,
        notes,
        wan: facts.wan.clone(),
        bridge: settings.bridge.clone(),
        ssh_ports,
        ssh_keys,
    })
}

/// Our stale rules out, missing rules in, then the default policies, and
/// the firewall on last (its rules allow SSH first).
fn firewall_changes(facts: &Facts, ssh_ports: &[u16], bridge: &str) -> Vec<Change> {
    let ufw_change = |args: Vec<String>, target: String, detail: &str| {
        change("firewall", "ufw", target, detail, Step::Ufw(args))
    };
    let added = &facts.ufw_added;
    let desired = firewall::desired(ssh_ports, bridge, &facts.wan);
    let lines: Vec<String> = desired.iter().map(firewall::Rule::line).collect();
    let mut changes: Vec<Change> = firewall::owned(added)
        .into_iter()
        .filter(|l| !lines.contains(l))
        .map(|stale| {
            let args = firewall::delete_args(&stale);
            ufw_change(
                args.clone(),
                args.join(" "),
                "a rule Terrarium no longer wants",
            )
        })
        .collect();
    changes.extend(
        desired
            .iter()
            .filter(|r| !added.contains(&r.line()))
            .map(|r| ufw_change(r.args.clone(), r.line(), "add")),
    );
    let status = &facts.firewall;
    let defaults = if status.active {
        status.wrong_defaults()
    } else {
        firewall::DEFAULTS.to_vec()
    };
    changes.extend(defaults.into_iter().map(|(dir, policy)| {
        let args: Vec<String> = ["default", policy, dir].map(String::from).to_vec();
        ufw_change(args.clone(), args.join(" "), "default policy")
    }));
    if !status.active {
        changes.push(ufw_change(
            vec!["--force".into(), "enable".into()],
            "enable".into(),
            "turn the firewall on (its rules allow SSH first)",
        ));
    }
    changes
}

/// Refuse to switch passwords off when nobody could log in with a key.
pub fn lockout_guard(plan: &Plan, force: bool) -> Result<()> {
    let ssh_changes = plan.changes.iter().any(|c| c.area == "ssh");
    match &plan.ssh_keys {
        Some(k) if ssh_changes && k.with_keys.is_empty() && !force => Err(Error::WrongState(format!(
            "refusing to switch SSH passwords off: no account that can log in has an authorized key (looked at: {}); add a key, or pass --force",
            if k.looked_at.is_empty() { "no file: no account has a login shell".into() } else { k.looked_at.join(", ") }
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::error::exit;
    use crate::gate::GateSettings;
    use crate::harden::SshdFacts;
    use crate::traefik::EntryPoint;
    use crate::ufw::Ufw;

    const DROP_IN: &str = "/etc/ssh/sshd_config.d/00-terrarium.conf";
    const STATIC: &str = "/etc/traefik/traefik.yml";
    const MANAGEMENT: &str = "/etc/traefik/dynamic/terrarium-management.yml";
    const COCKPIT: &str = "/etc/systemd/system/cockpit.socket.d/terrarium-loopback.conf";
    const SSH: &str =
        "key-only SSH drop-in, checked with sshd -t, then sshd reloaded and read back with sshd -T";
    const STATIC_DETAIL: &str = "static configuration: web and websecure, ACME, file provider, ping and API on loopback only, logs, no phoning home";
    const MANAGEMENT_DETAIL: &str = "management routes: manage. (Cockpit) and proxy. (dashboard) behind the gate, lxd. passed through to LXD";
    const COCKPIT_DETAIL: &str = "Cockpit's socket on 127.0.0.1:9090 only";
    const NO_GATE: &str = "no single-sign-on gate is configured (/etc/terrarium/gate.toml is missing): run `trm-harden oidc set`; until then the gated dashboards answer no one";

    fn opts() -> Options {
        Options {
            wan: None,
            ssh_dir: "/etc/ssh/sshd_config.d".into(),
            sshd_config: "/etc/ssh/sshd_config".into(),
            sshd_pid_file: "/run/sshd.pid".into(),
            ufw: Ufw::default(),
            systemd_dir: "/etc/systemd/system".into(),
        }
    }

    fn settings() -> Settings {
        Settings {
            bridge: "trmbr0".into(),
            ..Settings::default()
        }
    }

    fn keys(with_keys: &[&str]) -> ssh::KeyCheck {
        ssh::KeyCheck {
            with_keys: with_keys.iter().map(|s| s.to_string()).collect(),
            looked_at: vec!["/root/.ssh/authorized_keys".into()],
        }
    }

    fn static_file(eps: &BTreeSet<EntryPoint>) -> String {
        pretty(&traefik::static_config(
            &expose::static_options(&settings().expose),
            eps,
        ))
    }

    /// A stock host: sshd with passwords on, ufw off, nothing of Terrarium's.
    fn fresh() -> Facts {
        Facts {
            sshd: Some(SshdFacts {
                effective: ssh::parse_effective("port 22\npasswordauthentication yes\n"),
                drop_in: None,
                keys: keys(&["root"]),
            }),
            wan: "eth0".into(),
            gate_file: "/etc/terrarium/gate.toml".into(),
            base_domain: "example.test".into(),
            ..Facts::default()
        }
    }

    /// What `fresh()` looks like once its plan was applied.
    fn hardened() -> Facts {
        let effective: String = ssh::EFFECTIVE
            .iter()
            .map(|(k, v)| format!("{k} {v}\n"))
            .collect();
        let s = settings();
        Facts {
            sshd: Some(SshdFacts {
                effective: ssh::parse_effective(&format!("port 22\n{effective}")),
                drop_in: Some(ssh::drop_in()),
                keys: keys(&["root"]),
            }),
            firewall: firewall::parse_status(
                "Status: active\nDefault: deny (incoming), allow (outgoing), deny (routed)\n",
            ),
            ufw_added: firewall::desired(&[22], &s.bridge, "eth0")
                .iter()
                .map(firewall::Rule::line)
                .collect(),
            traefik_static: Some(static_file(&BTreeSet::new())),
            management_file: Some(pretty(
                &gate::management_file(&s.expose, "example.test", None).unwrap(),
            )),
            lxd_https_address: baseline::HTTPS_ADDRESS.into(),
            cockpit_drop_in: Some(gate::cockpit_drop_in()),
            ..fresh()
        }
    }

    type Row = (&'static str, &'static str, String, String);
    /// Something changed on the host since it was hardened.
    type Drift = fn(&mut Facts);

    fn row(area: &'static str, action: &'static str, target: &str, detail: &str) -> Row {
        (area, action, target.into(), detail.into())
    }

    fn ufw(target: &str, detail: &str) -> Row {
        row("firewall", "ufw", target, detail)
    }

    fn rows(plan: &Plan) -> Vec<Row> {
        plan.changes
            .iter()
            .map(|c| (c.area, c.action, c.target.clone(), c.detail.clone()))
            .collect()
    }

    fn planned(facts: &Facts) -> Plan {
        plan_from(facts, &settings(), &opts()).unwrap()
    }

    #[test]
    fn a_stock_host_gets_every_change_in_order() {
        let p = planned(&fresh());
        let mut want = vec![row("ssh", "write", DROP_IN, SSH)];
        want.extend(
            [
                "limit 22/tcp comment 'terrarium-harden ssh'",
                "allow 80/tcp comment 'terrarium-harden web'",
                "allow 443/tcp comment 'terrarium-harden websecure'",
                "allow in on trmbr0 to any port 67 proto udp comment 'terrarium-harden dhcp from containers'",
                "allow in on trmbr0 to any port 53 comment 'terrarium-harden dns from containers'",
                "route allow in on trmbr0 out on eth0 comment 'terrarium-harden container egress'",
                "route deny in on eth0 out on trmbr0 comment 'terrarium-harden nothing routed in'",
            ]
            .map(|l| ufw(l, "add")),
        );
        want.extend(
            [
                "default deny incoming",
                "default allow outgoing",
                "default deny routed",
            ]
            .map(|t| ufw(t, "default policy")),
        );
        want.push(ufw(
            "enable",
            "turn the firewall on (its rules allow SSH first)",
        ));
        want.extend([
            row("traefik", "write", STATIC, STATIC_DETAIL),
            row("traefik", "write", MANAGEMENT, MANAGEMENT_DETAIL),
            row(
                "lxd",
                "set",
                "core.https_address",
                "'' -> 127.0.0.1:8443 (loopback only)",
            ),
            row("cockpit", "write", COCKPIT, COCKPIT_DETAIL),
        ]);
        assert_eq!(rows(&p), want);
        assert_eq!(p.notes, vec![NO_GATE]);
        assert_eq!(
            (p.wan.as_str(), p.bridge.as_str(), p.ssh_ports.clone()),
            ("eth0", "trmbr0", vec![22])
        );
        assert_eq!(p.ssh_keys.unwrap().with_keys, vec!["root"]);
    }

    #[test]
    fn a_hardened_host_has_nothing_to_change() {
        let p = planned(&hardened());
        assert_eq!(rows(&p), Vec::<Row>::new());
        assert!(p.kept.is_empty());
        assert_eq!(p.notes, vec![NO_GATE], "the gate is still to configure");
    }

    #[test]
    fn each_drift_is_exactly_its_changes() {
        let cases: Vec<(&str, Drift, Vec<Row>)> = vec![
            (
                "the drop-in edited by hand",
                |f| f.sshd.as_mut().unwrap().drop_in = Some("PasswordAuthentication yes\n".into()),
                vec![row("ssh", "write", DROP_IN, SSH)],
            ),
            (
                "the drop-in removed",
                |f| f.sshd.as_mut().unwrap().drop_in = None,
                vec![row("ssh", "write", DROP_IN, SSH)],
            ),
            (
                "sshd moved to port 2222",
                |f| {
                    let eff = &mut f.sshd.as_mut().unwrap().effective;
                    eff.insert("port".into(), vec!["2222".into()]);
                },
                vec![
                    ufw("delete limit 22/tcp", "a rule Terrarium no longer wants"),
                    ufw("limit 2222/tcp comment 'terrarium-harden ssh'", "add"),
                ],
            ),
            (
                "a rule deleted by hand",
                |f| f.ufw_added.retain(|l| !l.contains("dns from containers")),
                vec![ufw(
                    "allow in on trmbr0 to any port 53 comment 'terrarium-harden dns from containers'",
                    "add",
                )],
            ),
            (
                "the public interface renamed",
                |f| f.wan = "ens3".into(),
                vec![
                    ufw(
                        "route delete allow in on trmbr0 out on eth0",
                        "a rule Terrarium no longer wants",
                    ),
                    ufw(
                        "route delete deny in on eth0 out on trmbr0",
                        "a rule Terrarium no longer wants",
                    ),
                    ufw(
                        "route allow in on trmbr0 out on ens3 comment 'terrarium-harden container egress'",
                        "add",
                    ),
                    ufw(
                        "route deny in on ens3 out on trmbr0 comment 'terrarium-harden nothing routed in'",
                        "add",
                    ),
                ],
            ),
            (
                "the firewall switched off",
                |f| f.firewall.active = false,
                vec![
                    ufw("default deny incoming", "default policy"),
                    ufw("default allow outgoing", "default policy"),
                    ufw("default deny routed", "default policy"),
                    ufw("enable", "turn the firewall on (its rules allow SSH first)"),
                ],
            ),
            (
                "incoming traffic allowed by default",
                |f| f.firewall.incoming = "allow".into(),
                vec![ufw("default deny incoming", "default policy")],
            ),
            (
                "routed traffic rejected: as closed as denied",
                |f| f.firewall.routed = "reject".into(),
                vec![],
            ),
            (
                "the static file edited",
                |f| f.traefik_static = Some("{}\n".into()),
                vec![row("traefik", "write", STATIC, STATIC_DETAIL)],
            ),
            (
                "the static file with trm-expose's entrypoints: kept as is",
                |f| {
                    let eps = BTreeSet::from([EntryPoint {
                        udp: false,
                        port: 15432,
                    }]);
                    f.traefik_static = Some(static_file(&eps));
                },
                vec![],
            ),
            (
                "the gate configured since: its admin group joins the routes",
                |f| {
                    f.gate = Some(GateSettings {
                        admin_group: "admins".into(),
                        ..GateSettings::default()
                    })
                },
                vec![row("traefik", "write", MANAGEMENT, MANAGEMENT_DETAIL)],
            ),
            (
                "the management routes removed",
                |f| f.management_file = None,
                vec![row("traefik", "write", MANAGEMENT, MANAGEMENT_DETAIL)],
            ),
            (
                "LXD on every address",
                |f| f.lxd_https_address = "[::]:8443".into(),
                vec![row(
                    "lxd",
                    "set",
                    "core.https_address",
                    "'[::]:8443' -> 127.0.0.1:8443 (loopback only)",
                )],
            ),
            (
                "Cockpit's drop-in removed",
                |f| f.cockpit_drop_in = None,
                vec![row("cockpit", "write", COCKPIT, COCKPIT_DETAIL)],
            ),
        ];
        for (what, drift, want) in cases {
            let mut facts = hardened();
            drift(&mut facts);
            assert_eq!(rows(&planned(&facts)), want, "{what}");
        }
    }

    #[test]
    fn others_rules_are_kept_and_listed() {
        let mut facts = hardened();
        facts
            .ufw_added
            .push("allow 15432/tcp comment 'terrarium-expose default/db'".into());
        facts.ufw_added.push("allow 9000".into());
        let p = planned(&facts);
        assert_eq!(rows(&p), Vec::<Row>::new());
        assert_eq!(
            p.kept,
            vec!["ufw allow 15432/tcp (terrarium-expose default/db)"]
        );
    }

    #[test]
    fn without_sshd_the_firewall_still_keeps_port_22_open() {
        let mut facts = hardened();
        facts.sshd = None;
        let p = planned(&facts);
        assert_eq!(rows(&p), Vec::<Row>::new());
        assert_eq!(
            p.notes,
            vec!["sshd is not installed: no SSH server to harden", NO_GATE]
        );
        assert_eq!((p.ssh_ports, p.ssh_keys.is_none()), (vec![22], true));
        let mut fresh = fresh();
        fresh.sshd = None;
        let p = planned(&fresh);
        assert!(p.changes.iter().all(|c| c.area != "ssh"));
        assert!(rows(&p).contains(&ufw("limit 22/tcp comment 'terrarium-harden ssh'", "add")));
    }

    #[test]
    fn a_gate_configured_silences_its_note() {
        let mut facts = hardened();
        facts.gate = Some(GateSettings::default());
        assert!(planned(&facts).notes.is_empty());
    }

    #[test]
    fn the_lockout_guard_follows_the_plan() {
        let no_login = |f: &mut Facts| {
            f.sshd.as_mut().unwrap().keys = ssh::KeyCheck::default();
        };
        let no_key = |f: &mut Facts| f.sshd.as_mut().unwrap().keys = keys(&[]);
        let cases: Vec<(&str, Facts, bool, Option<&str>)> = vec![
            (
                "passwords going off, nobody has a key",
                { let mut f = fresh(); no_key(&mut f); f },
                false,
                Some("refusing to switch SSH passwords off: no account that can log in has an authorized key (looked at: /root/.ssh/authorized_keys); add a key, or pass --force"),
            ),
            (
                "passwords going off, no account can log in",
                { let mut f = fresh(); no_login(&mut f); f },
                false,
                Some("refusing to switch SSH passwords off: no account that can log in has an authorized key (looked at: no file: no account has a login shell); add a key, or pass --force"),
            ),
            (
                "--force",
                { let mut f = fresh(); no_key(&mut f); f },
                true,
                None,
            ),
            ("root has a key", fresh(), false, None),
            (
                "passwords are off already",
                { let mut f = hardened(); no_key(&mut f); f },
                false,
                None,
            ),
            (
                "no sshd",
                { let mut f = fresh(); f.sshd = None; f },
                false,
                None,
            ),
        ];
        for (what, facts, force, refusal) in cases {
            let got = lockout_guard(&planned(&facts), force);
            match refusal {
                None => assert!(got.is_ok(), "{what}: {got:?}"),
                Some(message) => {
                    let e = got.unwrap_err();
                    assert_eq!(
                        (e.exit_code(), e.to_string()),
                        (exit::WRONG_STATE, message.to_string()),
                        "{what}"
                    );
                }
            }
        }
    }

    #[test]
    fn settings_that_would_expose_traefiks_api_are_refused() {
        let mut s = settings();
        s.expose.api_address = "0.0.0.0:8082".into();
        let e = plan_from(&hardened(), &s, &opts()).unwrap_err();
        assert_eq!(e.exit_code(), exit::USAGE);
        assert_eq!(
            e.to_string(),
            "expose.api_address \"0.0.0.0:8082\" must be a loopback address such as 127.0.0.1:8082"
        );
    }

    fn plan(area: &'static str, with_keys: &[&str]) -> Plan {
        Plan {
            changes: vec![change(
                area,
                "write",
                "/etc/x".into(),
                "x",
                Step::Write("/etc/x".into(), String::new()),
            )],
            kept: Vec::new(),
            notes: Vec::new(),
            wan: "eth0".into(),
            bridge: "trmbr0".into(),
            ssh_ports: vec![22],
            ssh_keys: Some(ssh::KeyCheck {
                with_keys: with_keys.iter().map(|s| s.to_string()).collect(),
                looked_at: vec!["/root/.ssh/authorized_keys".into()],
            }),
        }
    }

    #[test]
    fn lockout_guard_refuses_passwords_off_without_a_key_unless_forced() {
        let e = lockout_guard(&plan("ssh", &[]), false).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::WRONG_STATE);
        assert!(e.to_string().contains("/root/.ssh/authorized_keys"), "{e}");
        assert!(lockout_guard(&plan("ssh", &[]), true).is_ok(), "--force");
        assert!(
            lockout_guard(&plan("ssh", &["root"]), false).is_ok(),
            "a key"
        );
        assert!(
            lockout_guard(&plan("ufw", &[]), false).is_ok(),
            "no SSH change"
        );
    }
}
