//! Host hardening: `plan` lists every change (SSH, firewall, Traefik's
//! management routes, LXD and Cockpit on loopback), `apply` makes them,
//! `audit` proves each promise from the machine's real state, and
//! `oidc_set` configures the single-sign-on gate.

pub mod audit;
pub mod firewall;
pub mod gate;
pub mod ssh;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::fs::{atomic_write, lock_wait, Lock};
use crate::lxd::Lxd;
use crate::output::Human;
use crate::settings::ExposeSettings;
use crate::settings::Settings;
use crate::ufw::{self, Ufw};
use crate::{baseline, expose, net, systemd, traefik};

/// Where the hardened pieces live; every path can be moved (tests, odd hosts).
#[derive(Debug, Clone)]
pub struct Options {
    /// The public interface [default: the default route's].
    pub wan: Option<String>,
    /// sshd's drop-in directory.
    pub ssh_dir: PathBuf,
    /// sshd's main configuration (it must Include the drop-in directory).
    pub sshd_config: PathBuf,
    pub sshd_pid_file: PathBuf,
    pub ufw: Ufw,
    /// systemd's unit directory (Cockpit's socket drop-in goes below it).
    pub systemd_dir: PathBuf,
}

impl Options {
    fn sshd(&self) -> ssh::Sshd {
        ssh::Sshd {
            config: self.sshd_config.clone(),
        }
    }

    fn drop_in(&self) -> PathBuf {
        self.ssh_dir.join(ssh::DROP_IN)
    }

    fn cockpit_drop_in(&self) -> PathBuf {
        self.systemd_dir.join(gate::COCKPIT_DROP_IN)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Change {
    pub area: &'static str,
    /// `write`, `ufw`, `set`.
    pub action: &'static str,
    /// A file, a ufw command line, a configuration key.
    pub target: String,
    pub detail: String,
    #[serde(skip)]
    step: Step,
}

#[derive(Debug, Clone)]
enum Step {
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

fn differs(path: &Path, content: &str) -> bool {
    std::fs::read_to_string(path).ok().as_deref() != Some(content)
}

fn pretty(doc: &serde_json::Value) -> String {
    serde_json::to_string_pretty(doc).expect("json") + "\n"
}

/// The public interface: `--wan`, else the default route's.
fn wan(opts: &Options) -> Result<String> {
    opts.wan
        .clone()
        .or_else(net::default_route_interface)
        .ok_or_else(|| {
            Error::Usage(
                "this host has no default route: name the public interface with --wan".into(),
            )
        })
}

/// Every change `apply` would make, from the host's current state.
/// The management routes for these settings: the admin group comes from
/// the gate's settings (none yet: the gate is not configured, and does
/// not run, so the dashboards answer no one).
fn management_file(
    e: &ExposeSettings,
    g: Option<&crate::gate::GateSettings>,
) -> Result<serde_json::Value> {
    let mgmt = gate::management_config(
        &expose::base_domain(e)?,
        &e.cert_resolver,
        &e.auth_address,
        baseline::HTTPS_ADDRESS,
        g.map(|g| g.admin_group.as_str()).unwrap_or_default(),
    );
    traefik::validate_dynamic(&mgmt)
        .map_err(|errs| Error::parse("the generated management routes", errs.join("; ")))?;
    Ok(mgmt)
}

pub fn plan(settings: &Settings, opts: &Options, lxd: &Lxd) -> Result<Plan> {
    let mut changes = Vec::new();
    let mut notes = Vec::new();
    let mut kept = Vec::new();
    let e = &settings.expose;

    // SSH: sshd's own view of its configuration decides.
    let (ssh_ports, ssh_keys) = match ssh::SSHD.resolve() {
        Err(_) => {
            notes.push("sshd is not installed: no SSH server to harden".into());
            (vec![22], None)
        }
        Ok(_) => {
            let eff = opts.sshd().effective()?;
            let content = ssh::drop_in();
            if differs(&opts.drop_in(), &content) {
                changes.push(change(
                    "ssh",
                    "write",
                    opts.drop_in().display().to_string(),
                    "key-only SSH drop-in, checked with sshd -t, then sshd reloaded and read back with sshd -T",
                    Step::SshDropIn(opts.drop_in(), content),
                ));
            }
            let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
            let shells = std::fs::read_to_string("/etc/shells").unwrap_or_default();
            (
                ssh::ports(&eff),
                Some(ssh::authorized_keys(&eff, &passwd, &shells)),
            )
        }
    };

    // Firewall.
    let wan = wan(opts)?;
    let status = firewall::parse_status(&opts.ufw.run(&["status".into(), "verbose".into()])?);
    let added = opts.ufw.added()?;
    let desired = firewall::desired(&ssh_ports, &settings.bridge, &wan);
    let lines: Vec<String> = desired.iter().map(firewall::Rule::line).collect();
    for stale in firewall::owned(&added)
        .into_iter()
        .filter(|l| !lines.contains(l))
    {
        let args = firewall::delete_args(&stale);
        changes.push(change(
            "firewall",
            "ufw",
            args.join(" "),
            "a rule Terrarium no longer wants",
            Step::Ufw(args),
        ));
    }
    for r in desired.iter().filter(|r| !added.contains(&r.line())) {
        changes.push(change(
            "firewall",
            "ufw",
            r.line(),
            "add",
            Step::Ufw(r.args.clone()),
        ));
    }
    let defaults = if status.active {
        status.wrong_defaults()
    } else {
        firewall::DEFAULTS.to_vec()
    };
    for (dir, policy) in defaults {
        let args: Vec<String> = ["default", policy, dir].map(String::from).to_vec();
        changes.push(change(
            "firewall",
            "ufw",
            args.join(" "),
            "default policy",
            Step::Ufw(args),
        ));
    }
    if !status.active {
        let args: Vec<String> = vec!["--force".into(), "enable".into()];
        changes.push(change(
            "firewall",
            "ufw",
            "enable".into(),
            "turn the firewall on (its rules allow SSH first)",
            Step::Ufw(args),
        ));
    }
    kept.extend(
        ufw::owned_rules(&added)
            .iter()
            .map(|r| format!("ufw allow {} ({})", r.spec(), r.comment)),
    );

    // Traefik: the static file (keeping trm-expose's entrypoints) and the
    // management routes, both validated before they can be written.
    let static_path = PathBuf::from(&e.static_file);
    let live: Option<serde_json::Value> = std::fs::read(&static_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let eps = live
        .as_ref()
        .map(traefik::entrypoints_of)
        .unwrap_or_default();
    traefik::supervise::check_settings(e)?;
    let doc = traefik::static_config(&expose::static_options(e), &eps);
    traefik::validate_static(&doc)
        .map_err(|errs| Error::parse("the generated Traefik static file", errs.join("; ")))?;
    if differs(&static_path, &pretty(&doc)) {
        changes.push(change(
            "traefik",
            "write",
            e.static_file.clone(),
            "static configuration: web and websecure, ACME, file provider, ping and API on loopback only, logs, no phoning home",
            Step::TraefikStatic(static_path, pretty(&doc)),
        ));
    }
    let gate_settings = crate::gate::GateSettings::load()?;
    let mgmt = management_file(e, gate_settings.as_ref())?;
    let mgmt_path = Path::new(&e.dynamic_dir).join(gate::MANAGEMENT_FILE);
    if differs(&mgmt_path, &pretty(&mgmt)) {
        changes.push(change(
            "traefik",
            "write",
            mgmt_path.display().to_string(),
            "management routes: manage. (Cockpit) and proxy. (dashboard) behind the gate, lxd. passed through to LXD",
            Step::Write(mgmt_path, pretty(&mgmt)),
        ));
    }
    if gate_settings.is_none() {
        notes.push(format!(
            "no single-sign-on gate is configured ({} is missing): run `trm-harden oidc set`; until then the gated dashboards answer no one",
            crate::gate::settings::path().display()
        ));
    }

    // Management services on loopback.
    let server = lxd.server()?;
    let https = server
        .config
        .get("core.https_address")
        .and_then(|v| v.as_str())
        .unwrap_or("");
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
    if differs(&opts.cockpit_drop_in(), &cockpit) {
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
        wan,
        bridge: settings.bridge.clone(),
        ssh_ports,
        ssh_keys,
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct ApplyReport {
    pub applied: Vec<Change>,
    pub kept: Vec<String>,
    /// What reloading sshd did, when the drop-in changed.
    pub ssh_reload: Option<String>,
    /// sshd's effective settings after the change (`sshd -T`).
    pub ssh_effective: Option<Vec<String>>,
    pub traefik_restart: Option<String>,
    pub notes: Vec<String>,
}

impl Human for ApplyReport {
    fn human(&self) -> String {
        let mut out = vec![if self.applied.is_empty() {
            "nothing to change".to_string()
        } else {
            format!("applied {} change(s):", self.applied.len())
        }];
        out.extend(
            self.applied
                .iter()
                .map(|c| format!("  {:9} {} {}", c.area, c.action, c.target)),
        );
        out.extend(self.ssh_reload.iter().map(|s| format!("ssh: {s}")));
        out.extend(
            self.traefik_restart
                .iter()
                .map(|s| format!("traefik restart: {s}")),
        );
        out.extend(self.notes.iter().map(|n| format!("note: {n}")));
        out.join("\n")
    }
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

/// Make the planned changes, in order, under the harden and expose locks
/// (both write the firewall and Traefik's directory).
pub fn apply(
    plan: Plan,
    settings: &Settings,
    opts: &Options,
    lxd: &Lxd,
    force: bool,
) -> Result<ApplyReport> {
    lockout_guard(&plan, force)?;
    let _harden = Lock::acquire(crate::fs::Resource::Harden, lock_wait())?;
    let _expose = Lock::acquire(crate::fs::Resource::Expose, lock_wait())?;
    let mut report = ApplyReport {
        applied: Vec::new(),
        kept: plan.kept,
        ssh_reload: None,
        ssh_effective: None,
        traefik_restart: None,
        notes: plan.notes,
    };
    for c in plan.changes {
        match &c.step {
            Step::SshDropIn(path, content) => {
                let sshd = opts.sshd();
                sshd.install(path, content)?;
                report.ssh_reload = Some(ssh::reload(&opts.sshd_pid_file));
                let eff = sshd.effective()?;
                let wrong = ssh::mismatches(&eff);
                if !wrong.is_empty() {
                    return Err(Error::WrongState(format!(
                        "{} is in place but sshd's effective settings differ: {} (does {} Include {}/*.conf before its own settings?)",
                        path.display(),
                        wrong.join("; "),
                        opts.sshd_config.display(),
                        opts.ssh_dir.display()
                    )));
                }
                report.ssh_effective = Some(
                    ssh::EFFECTIVE
                        .iter()
                        .map(|(k, _)| {
                            format!(
                                "{k} {}",
                                eff.get(*k)
                                    .and_then(|v| v.first())
                                    .cloned()
                                    .unwrap_or_default()
                            )
                        })
                        .collect(),
                );
            }
            Step::Write(path, content) => atomic_write(path, content.as_bytes(), 0o644)?,
            Step::TraefikStatic(path, content) => {
                atomic_write(path, content.as_bytes(), 0o644)?;
                report.traefik_restart =
                    Some(expose::restart_after_static_change(&settings.expose)?);
            }
            Step::Ufw(args) => drop(opts.ufw.run(args)?),
            Step::LxdServer(key, value) => lxd.set_server_config(key, value)?,
            Step::Cockpit(path, content) => {
                let dir = path.parent().unwrap_or(Path::new("."));
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let unit = systemd::Unit {
                    name,
                    content: content.clone(),
                    enable: false,
                };
                let r = systemd::install(&[unit], dir, false)?;
                report.notes.push(if r.systemd {
                    "Cockpit: restart cockpit.socket (`systemctl restart cockpit.socket`) for it to listen on loopback only".into()
                } else {
                    "Cockpit: the socket drop-in is written; this host has no systemd to reload".into()
                });
            }
        }
        report.applied.push(c);
    }
    Ok(report)
}

/// What `oidc set` did.
#[derive(Debug, Clone, Serialize)]
pub struct OidcReport {
    pub issuer: String,
    pub client_id: String,
    pub admin_group: String,
    pub groups_claim: String,
    pub auth_url: String,
    /// The gate's settings file.
    pub gate_config: String,
    pub client_secret_file: String,
    pub keys_file: String,
    pub changed: bool,
    /// The running gate was restarted onto the new settings.
    pub gate_restarted: bool,
    /// `set`, or why LXD's own OIDC keys were not set.
    pub lxd: String,
    pub lxd_keys: Vec<String>,
}

impl Human for OidcReport {
    fn human(&self) -> String {
        format!(
            "gate: {} ({}{}) for issuer {}, client {}, admins: group {}, sign-in at {}\nlxd: {}",
            self.gate_config,
            if self.changed { "written" } else { "unchanged" },
            if self.gate_restarted {
                ", gate restarted"
            } else {
                ""
            },
            self.issuer,
            self.client_id,
            self.admin_group,
            self.auth_url,
            self.lxd
        )
    }
}

/// Check the issuer, then write the gate's settings, its client secret
/// (0600) and cookie keys, the management routes with the admin group,
/// and LXD's OIDC keys. A refused issuer saves nothing.
pub fn oidc_set(
    settings: &Settings,
    lxd: &Lxd,
    oidc: &gate::Oidc,
    secret_file: &Path,
) -> Result<OidcReport> {
    let secret = std::fs::read_to_string(secret_file).map_err(|e| {
        Error::Usage(format!(
            "cannot read the client secret file {}: {e}",
            secret_file.display()
        ))
    })?;
    let secret = secret.trim();
    if secret.is_empty() {
        return Err(Error::Usage(format!(
            "the client secret file {} is empty",
            secret_file.display()
        )));
    }
    for (what, v) in [
        ("--client-id", &oidc.client_id),
        ("--admin-group", &oidc.admin_group),
        ("--groups-claim", &oidc.groups_claim),
    ] {
        if v.trim().is_empty() {
            return Err(Error::Usage(format!("{what} must not be empty")));
        }
    }
    if oidc.admin_group.contains(',') {
        return Err(Error::Usage(format!(
            "--admin-group {:?}: one group, without commas",
            oidc.admin_group
        )));
    }
    let e = &settings.expose;
    let existing = crate::gate::GateSettings::load()?;
    let mut g = existing.clone().unwrap_or_default();
    crate::gate::settings::follow_host(&mut g, e)?;
    if let Some(u) = &oidc.auth_url {
        // Only auth.<root>: the host the management routes give the gate
        // and no label may claim (any other could be a tenant's).
        let want = format!("auth.{}", expose::base_domain(e)?);
        let host = url::Url::parse(u)
            .ok()
            .and_then(|u| u.host_str().map(crate::gate::hosts::bare_host));
        if host.as_deref() != Some(want.as_str()) {
            return Err(Error::Usage(format!(
                "--auth-url {u:?}: the sign-in host must be {want} (only its port may differ)"
            )));
        }
        g.auth_url = u.trim_end_matches('/').to_string();
    }
    g.issuer = oidc.issuer.clone();
    g.client_id = oidc.client_id.clone();
    g.admin_group = oidc.admin_group.clone();
    g.groups_claim = oidc.groups_claim.clone();
    crate::gate::serve::auth_url(&g)?;
    gate::discover(&oidc.issuer)?;
    let server = lxd.server()?;

    let _lock = Lock::acquire(crate::fs::Resource::Harden, lock_wait())?;
    let secret_path = PathBuf::from(&g.client_secret_file);
    let changed = existing.as_ref() != Some(&g) || differs(&secret_path, &format!("{secret}\n"));
    if let Some(dir) = secret_path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|err| Error::io(format!("creating {}", dir.display()), err))?;
    }
    atomic_write(&secret_path, format!("{secret}\n").as_bytes(), 0o600)?;
    crate::gate::keys::ensure(&g)?;
    g.save()?;
    let mgmt = management_file(e, Some(&g))?;
    let mgmt_path = Path::new(&e.dynamic_dir).join(gate::MANAGEMENT_FILE);
    if differs(&mgmt_path, &pretty(&mgmt)) {
        std::fs::create_dir_all(&e.dynamic_dir)
            .map_err(|err| Error::io(format!("creating {}", e.dynamic_dir), err))?;
        atomic_write(&mgmt_path, pretty(&mgmt).as_bytes(), 0o644)?;
    }
    let gate_restarted = changed && crate::gate::supervise::status(&g).running && {
        crate::gate::supervise::restart(&g)?;
        true
    };

    let has = |ext: &str| server.api_extensions.iter().any(|x| x == ext);
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let lxd_status = if has("oidc") {
        keys.push(("oidc.issuer", &oidc.issuer));
        keys.push(("oidc.client.id", &oidc.client_id));
        if has("oidc_groups_claim") {
            keys.push(("oidc.groups.claim", &oidc.groups_claim));
            "set".to_string()
        } else {
            "set oidc.issuer and oidc.client.id; this LXD has no oidc.groups.claim (API extension 'oidc_groups_claim' missing)".to_string()
        }
    } else {
        format!(
            "not set: LXD {} does not support OIDC (API extension 'oidc' missing, it rejects oidc.* keys); LXD stays on {} behind its TLS client certificates",
            server.environment.server_version,
            baseline::HTTPS_ADDRESS
        )
    };
    for (k, v) in &keys {
        lxd.set_server_config(k, v)?;
    }
    Ok(OidcReport {
        issuer: oidc.issuer.clone(),
        client_id: oidc.client_id.clone(),
        admin_group: oidc.admin_group.clone(),
        groups_claim: g.groups_claim.clone(),
        auth_url: g.auth_url.clone(),
        gate_config: crate::gate::settings::path().display().to_string(),
        client_secret_file: secret_path.display().to_string(),
        keys_file: g.keys_file.clone(),
        changed,
        gate_restarted,
        lxd: lxd_status,
        lxd_keys: keys.iter().map(|(k, _)| k.to_string()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
