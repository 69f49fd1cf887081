//! Golden images: a configured box, published as an image to launch from.
//!
//! The image is made from a temporary copy, never from the box itself, so
//! the original is not stopped or changed. The copy loses what makes a box
//! *that* box before anything of it runs: its exposure (labels, proxy
//! devices), its `user.terrarium.*` facts, its MAC and every NIC (it boots
//! with no network at all), and cloud-init is kept from running in it.
//! Booted once, offline, it has its identity wiped from inside (SSH host
//! keys, machine-id, cloud-init's instance state so it runs again on the
//! next box, shell histories, and `terrarium`'s authorized keys unless
//! asked to keep them); stopped, it is published and deleted.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lxd::{Config, ExecSpec, Image, Lxd};
use crate::names::validate_instance_name;
use crate::output::{Human, Row};

/// The temporary copy's name: `trm-golden-<hex>`.
const COPY_PREFIX: &str = "trm-golden-";
/// Image properties that say where a golden image came from.
pub const KIND_PROPERTY: &str = "terrarium.kind";
pub const SOURCE_PROPERTY: &str = "terrarium.source";

#[derive(Debug, Clone)]
pub struct CreateRequest {
    pub alias: String,
    pub from: String,
    pub snapshot: Option<String>,
    pub keep_keys: bool,
}

/// What `create` will do, checked against the host before anything is made.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub alias: String,
    /// `INSTANCE` or `INSTANCE/SNAPSHOT`.
    pub source: String,
    pub keep_keys: bool,
    pub dry_run: bool,
    pub steps: Vec<String>,
}

impl Human for Plan {
    fn human(&self) -> String {
        let mut s = format!("would publish {} as image {}:\n", self.source, self.alias);
        for (n, step) in self.steps.iter().enumerate() {
            s.push_str(&format!("  {}. {step}\n", n + 1));
        }
        s.trim_end().to_string()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Golden {
    pub alias: String,
    pub fingerprint: String,
    pub source: String,
    /// What the copy lost, in words: config it shed and files it wiped.
    pub removed: Vec<String>,
    pub size: u64,
    pub seconds: u64,
}

impl Human for Golden {
    fn human(&self) -> String {
        format!(
            "image {} ({}) published from {} in {}s, {} MiB\nremoved:\n  {}",
            self.alias,
            &self.fingerprint[..self.fingerprint.len().min(12)],
            self.source,
            self.seconds,
            self.size >> 20,
            self.removed.join("\n  ")
        )
    }
}

/// An image alias LXD and a shell both take as it is: letters, digits and
/// `._-/`, not starting with `-` or `/`, at most 255 bytes.
pub fn validate_alias(alias: &str) -> Result<()> {
    let bad = if alias.is_empty() {
        Some("is empty")
    } else if alias.len() > 255 {
        Some("is longer than 255 characters")
    } else if alias.starts_with(['-', '/']) || alias.ends_with('/') || alias.contains("//") {
        Some("must not start with '-' or '/', end with '/' or hold '//'")
    } else if !alias
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    {
        Some("may hold only letters, digits and . _ - /")
    } else {
        None
    };
    match bad {
        Some(why) => Err(Error::Usage(format!("image name '{alias}' {why}"))),
        None => Ok(()),
    }
}

pub fn plan_create(lxd: &Lxd, req: &CreateRequest, dry_run: bool) -> Result<Plan> {
    validate_alias(&req.alias)?;
    validate_instance_name(&req.from)?;
    if req.from.starts_with(COPY_PREFIX) {
        return Err(Error::Usage(format!(
            "'{}' is a golden image's temporary copy, not a box",
            req.from
        )));
    }
    let i = lxd.instance_full(&req.from)?;
    if i.kind != "container" {
        return Err(Error::Usage(format!(
            "'{}' is a {}: golden images are made from containers",
            req.from, i.kind
        )));
    }
    if let Some(snap) = &req.snapshot {
        if !i.snapshots.iter().flatten().any(|s| &s.name == snap) {
            return Err(Error::NotFound {
                kind: "snapshot",
                name: format!("{}/{snap}", req.from),
            });
        }
    }
    if lxd.image_alias_exists(&req.alias)? {
        return Err(Error::Usage(format!(
            "image '{}' already exists: choose another name, or `trm image delete {}` first",
            req.alias, req.alias
        )));
    }
    let source = match &req.snapshot {
        Some(s) => format!("{}/{s}", req.from),
        None => req.from.clone(),
    };
    let mut steps = vec![
        format!("copy {source} to a temporary instance ({COPY_PREFIX}...); {} is not touched", req.from),
        "take from the copy: user.proxy, every user.terrarium.* key, proxy devices, the MAC and every NIC (it boots offline), and keep cloud-init from running".into(),
        format!("boot it once and remove: {}", wiped(req.keep_keys).join(", ")),
        "stop it, empty /etc/machine-id (a new one on each first boot)".into(),
        format!("publish it as image {}, then delete the copy", req.alias),
    ];
    if req.keep_keys {
        steps.push("terrarium's authorized keys are kept (--keep-keys)".into());
    }
    Ok(Plan {
        alias: req.alias.clone(),
        source,
        keep_keys: req.keep_keys,
        dry_run,
        steps,
    })
}

/// What the offline boot wipes, in words.
fn wiped(keep_keys: bool) -> Vec<&'static str> {
    let mut w = vec![
        "SSH host keys",
        "cloud-init's instance state and logs (it runs again on each new box)",
        "shell histories",
        "Terrarium's staged launch files",
    ];
    if !keep_keys {
        w.push("authorized SSH keys");
    }
    w
}

/// The script the offline copy runs as root. It prints each path it
/// removed. `rm` never follows a link a box planted: it removes the link.
pub fn sanitize_script(keep_keys: bool) -> String {
    let keys = if keep_keys {
        ""
    } else {
        "gone /root/.ssh/authorized_keys /root/.ssh/authorized_keys2 /home/*/.ssh/authorized_keys /home/*/.ssh/authorized_keys2\n"
    };
    format!(
        "set -u\n\
         gone() {{ for f in \"$@\"; do if [ -e \"$f\" ] || [ -L \"$f\" ]; then rm -rf -- \"$f\" && echo \"$f\"; fi; done; }}\n\
         gone /etc/ssh/ssh_host_*\n\
         gone /var/lib/dbus/machine-id\n\
         if command -v cloud-init >/dev/null 2>&1; then cloud-init clean --logs >/dev/null 2>&1 && echo /var/lib/cloud; fi\n\
         gone /var/lib/cloud/instance /var/lib/cloud/instances /var/lib/cloud/data /var/lib/cloud/sem\n\
         gone /var/log/cloud-init.log /var/log/cloud-init-output.log\n\
         for h in /root /home/*; do gone \"$h/.bash_history\" \"$h/.zsh_history\" \"$h/.python_history\" \"$h/.lesshst\" \"$h/.viminfo\" \"$h/.psql_history\" \"$h/.mysql_history\" \"$h/.sqlite_history\" \"$h/.node_repl_history\"; done\n\
         {keys}\
         gone {inbox}\n\
         rm -f /etc/cloud/cloud-init.disabled\n\
         sync\n",
        inbox = crate::profiles::FILES_INBOX,
    )
}

/// The temporary copy, deleted however `create` ends.
struct Copy<'a> {
    lxd: &'a Lxd,
    name: String,
    live: bool,
}

impl Drop for Copy<'_> {
    fn drop(&mut self) {
        if self.live {
            let _ = self.lxd.delete(&self.name, true);
        }
    }
}

/// Carry out a confirmed plan. `progress` hears each stage.
pub fn create(lxd: &Lxd, plan: &Plan, progress: &mut dyn FnMut(&str)) -> Result<Golden> {
    let started = Instant::now();
    let _lock = crate::fs::Lock::acquire(
        crate::fs::Resource::Image(&plan.alias),
        crate::fs::lock_wait(),
    )?;
    // One golden image at a time: a copy left by a killed run is then
    // surely stale, and goes.
    let _all = crate::fs::Lock::acquire(
        crate::fs::Resource::Image(COPY_PREFIX),
        crate::fs::lock_wait(),
    )?;
    for stale in lxd
        .instances()?
        .iter()
        .filter(|i| i.name.starts_with(COPY_PREFIX))
    {
        let _ = lxd.set_config(&stale.name, "security.protection.delete", "false");
        lxd.delete(&stale.name, true)?;
    }
    // The box is not rolled back or restored while it is copied.
    let from = plan.source.split('/').next().unwrap_or(&plan.source);
    let _box = crate::snapshots::lock_instance(lxd, from, crate::fs::OnBusy::Fail)?;
    // The alias again, under the lock: two creates of one name.
    if lxd.image_alias_exists(&plan.alias)? {
        return Err(Error::Usage(format!(
            "image '{}' already exists",
            plan.alias
        )));
    }
    let mut copy = Copy {
        lxd,
        name: format!("{COPY_PREFIX}{}", crate::random::hex(4)?),
        live: false,
    };
    progress(&format!("copying {}", plan.source));
    copy.live = true;
    // Unlabelled from its first moment: a sync never sees the copy claim
    // the original's hosts.
    let unlabelled: Config = [(crate::expose::labels::KEY.to_string(), String::new())].into();
    let labelled = lxd
        .instance(from)?
        .config
        .contains_key(crate::expose::labels::KEY);
    lxd.copy_instance_only(&plan.source, &copy.name, &unlabelled)?;
    let mut removed = shed_config(lxd, &copy.name)?;
    if labelled {
        removed.insert(
            0,
            format!("config {} (never on the copy)", crate::expose::labels::KEY),
        );
    }
    // Pushed while stopped: cloud-init never starts in the copy.
    let empty = tempfile::NamedTempFile::new().map_err(|e| Error::io("a temporary file", e))?;
    lxd.push_file(&copy.name, empty.path(), "/etc/cloud/cloud-init.disabled")?;
    progress("wiping its identity (booted offline)");
    lxd.start(&copy.name)?;
    let spec = ExecSpec {
        command: vec!["sh".into(), "-c".into(), sanitize_script(plan.keep_keys)],
        ..ExecSpec::default()
    };
    let out = Lxd::output_idempotent(
        &lxd.exec_cmd(&copy.name, &spec)
            .timeout(Duration::from_secs(300)),
    )?;
    if !out.status.success() {
        return Err(Error::WrongState(format!(
            "wiping the copy's identity failed: {}",
            crate::process::tail(&out.stderr)
        )));
    }
    removed.extend(out.stdout_str().lines().map(|l| format!("file {l}")));
    if lxd.stop(&copy.name, false).is_err() {
        lxd.stop(&copy.name, true)?;
    }
    // Emptied while stopped: a running systemd may hold a bind mount there.
    lxd.push_file_mode(&copy.name, empty.path(), "/etc/machine-id", Some("0444"))?;
    removed.push("file /etc/machine-id (emptied: each box makes its own)".into());
    progress(&format!("publishing {}", plan.alias));
    let mut props = Config::new();
    props.insert(
        "description".into(),
        format!("Terrarium golden image from {}", plan.source),
    );
    props.insert(KIND_PROPERTY.into(), "golden".into());
    props.insert(SOURCE_PROPERTY.into(), plan.source.clone());
    lxd.publish(&copy.name, &plan.alias, &props)?;
    lxd.delete(&copy.name, true)?;
    copy.live = false;
    let image = lxd.image_by_alias(&plan.alias)?;
    Ok(Golden {
        alias: plan.alias.clone(),
        fingerprint: image.fingerprint,
        source: plan.source.clone(),
        removed,
        size: image.size,
        seconds: started.elapsed().as_secs(),
    })
}

/// Take from the stopped copy what would make it stand in for the
/// original, and its network: it boots offline. Returns what went.
fn shed_config(lxd: &Lxd, copy: &str) -> Result<Vec<String>> {
    let mut removed = crate::snapshots::strip_exposure(lxd, copy)?;
    let i = lxd.instance(copy)?;
    // Delete protection too: the copy must go when we are done.
    for key in i.config.keys().filter(|k| {
        k.starts_with("user.terrarium.")
            || (k.starts_with("volatile.") && k.ends_with(".hwaddr"))
            || *k == "security.protection.delete"
    }) {
        lxd.unset_config(copy, key)?;
        removed.push(format!("config {key}"));
    }
    // The temporary copy is never snapshotted by the tick.
    lxd.set_config(copy, "user.terrarium.snapshots", "off")?;
    // Every device but the root disk: no NIC (it boots offline), no
    // proxy, and no disk or device the original shares with the host or
    // another box, where the wipe below would delete real files. A local
    // device removed may uncover a profile's of the same name: look again.
    for _ in 0..3 {
        let i = lxd.instance(copy)?;
        let left: Vec<&String> = i
            .expanded_devices
            .iter()
            .filter(|(_, d)| !keeps(d))
            .map(|(dev, _)| dev)
            .collect();
        if left.is_empty() {
            return Ok(removed);
        }
        for dev in left {
            if i.devices.contains_key(dev) {
                lxd.remove_device(copy, dev)?;
            } else {
                // A profile's device: masked by a local one of no type.
                let mut none = Config::new();
                none.insert("type".into(), "none".into());
                lxd.add_device(copy, dev, &none)?;
            }
            removed.push(format!("device {dev} (not in the copy that is wiped)"));
        }
    }
    Err(Error::WrongState(format!(
        "the copy {copy} keeps a device besides its root disk: not booting it"
    )))
}

/// The only devices the wiped copy keeps: its root disk, and masks.
fn keeps(d: &std::collections::BTreeMap<String, String>) -> bool {
    match d.get("type").map(String::as_str) {
        Some("none") => true,
        Some("disk") => d.get("path").map(String::as_str) == Some("/"),
        _ => false,
    }
}

/// One image, as `trm image list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub alias: Option<String>,
    pub aliases: Vec<String>,
    pub fingerprint: String,
    /// `golden` (made by `image create`), `base` (by `image build`) or `other`.
    pub origin: &'static str,
    pub source: Option<String>,
    pub description: String,
    pub size: u64,
    pub created: String,
}

impl Row for Listed {
    fn headers() -> &'static [&'static str] {
        &[
            "ALIAS",
            "ORIGIN",
            "SOURCE",
            "SIZE",
            "CREATED",
            "FINGERPRINT",
        ]
    }

    fn cells(&self) -> Vec<String> {
        vec![
            self.aliases.join(","),
            self.origin.into(),
            self.source.clone().unwrap_or_default(),
            format!("{} MiB", self.size >> 20),
            self.created.clone(),
            self.fingerprint[..self.fingerprint.len().min(12)].to_string(),
        ]
    }
}

fn listed(i: Image) -> Listed {
    let prop = |k: &str| i.properties.get(k).cloned();
    let origin = match (prop(KIND_PROPERTY).as_deref(), prop("variant").as_deref()) {
        (Some("golden"), _) => "golden",
        (_, Some("terrarium")) => "base",
        _ => "other",
    };
    let aliases: Vec<String> = i.aliases.iter().map(|a| a.name.clone()).collect();
    Listed {
        alias: aliases.first().cloned(),
        fingerprint: i.fingerprint.clone(),
        origin,
        source: prop(SOURCE_PROPERTY),
        description: prop("description").unwrap_or_default(),
        size: i.size,
        created: crate::time::rfc3339_utc(if i.created_at.starts_with("0001") {
            &i.uploaded_at
        } else {
            &i.created_at
        }),
        aliases,
    }
}

pub fn list(lxd: &Lxd) -> Result<Vec<Listed>> {
    let mut all: Vec<Listed> = lxd.images()?.into_iter().map(listed).collect();
    all.sort_by(|a, b| (&a.alias, &a.fingerprint).cmp(&(&b.alias, &b.fingerprint)));
    Ok(all)
}

/// What `image delete` removes, for the confirmation and `--dry-run`.
#[derive(Debug, Clone, Serialize)]
pub struct Deletion {
    pub alias: String,
    pub fingerprint: String,
    pub origin: &'static str,
    pub source: Option<String>,
    pub dry_run: bool,
    pub deleted: bool,
    /// What the owner should know first.
    pub detail: String,
}

impl Human for Deletion {
    fn human(&self) -> String {
        format!(
            "{} image {} ({}): {}",
            if self.deleted {
                "deleted"
            } else {
                "would delete"
            },
            self.alias,
            &self.fingerprint[..self.fingerprint.len().min(12)],
            self.detail
        )
    }
}

pub fn plan_delete(lxd: &Lxd, alias: &str, default_image: &str, dry_run: bool) -> Result<Deletion> {
    validate_alias(alias)?;
    let l = listed(lxd.image_by_alias(alias)?);
    let mut detail =
        String::from("boxes launched from it keep running; the image itself cannot be restored");
    match &l.source {
        Some(s) => detail.push_str(&format!(
            " (`trm image create {alias} --from {s}` makes a new one)"
        )),
        None if l.origin == "base" => detail.push_str(" (`trm image build` makes it again)"),
        None => {}
    }
    if alias == default_image {
        detail.push_str("; it is the image `trm launch` uses by default");
    }
    let others: Vec<&String> = l.aliases.iter().filter(|a| *a != alias).collect();
    if !others.is_empty() {
        detail.push_str(&format!(
            "; its other names go with it: {}",
            others
                .iter()
                .map(|a| a.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    detail.push_str("; LXD projects that share this host's images lose it too");
    Ok(Deletion {
        alias: alias.into(),
        fingerprint: l.fingerprint,
        origin: l.origin,
        source: l.source,
        dry_run,
        deleted: false,
        detail,
    })
}

pub fn delete(lxd: &Lxd, d: &Deletion) -> Result<Deletion> {
    // The alias must still name the image that was confirmed.
    let now = lxd.image_by_alias(&d.alias)?;
    if now.fingerprint != d.fingerprint {
        return Err(Error::WrongState(format!(
            "image {} changed since it was confirmed; nothing deleted",
            d.alias
        )));
    }
    lxd.delete_image(&d.fingerprint)?;
    Ok(Deletion {
        deleted: true,
        ..d.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_keeps_only_its_root_disk() {
        let d = |pairs: &[(&str, &str)]| -> std::collections::BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(keeps(&d(&[("type", "disk"), ("path", "/"), ("pool", "p")])));
        assert!(keeps(&d(&[("type", "none")])));
        for gone in [
            d(&[
                ("type", "disk"),
                ("path", "/srv"),
                ("source", "/srv/shared"),
            ]),
            d(&[("type", "nic"), ("network", "br")]),
            d(&[("type", "proxy")]),
            d(&[("type", "unix-char"), ("path", "/dev/kvm")]),
        ] {
            assert!(!keeps(&gone), "{gone:?}");
        }
    }

    #[test]
    fn aliases_are_checked() {
        for ok in ["golden/web", "web-1.2", "terrarium/debian12"] {
            validate_alias(ok).unwrap();
        }
        for bad in ["", "-x", "/x", "x/", "a//b", "a b", "a;b", "ü"] {
            assert!(validate_alias(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_script_wipes_identity_and_keys_only_when_asked() {
        let s = sanitize_script(false);
        for needle in [
            "/etc/ssh/ssh_host_*",
            "cloud-init clean --logs",
            "/var/lib/cloud/instances",
            ".bash_history",
            "/home/*/.ssh/authorized_keys",
            "/var/lib/terrarium/files",
            "rm -f /etc/cloud/cloud-init.disabled",
        ] {
            assert!(s.contains(needle), "{needle}");
        }
        assert!(!sanitize_script(true).contains("authorized_keys"));
        // No host-side shell: the script is one argv element for `sh -c`
        // inside the copy, and holds nothing from the request.
        assert!(!s.contains("{{"));
    }

    #[test]
    fn origins_are_told_apart_by_their_properties() {
        let image = |props: &[(&str, &str)]| Image {
            fingerprint: "abc".into(),
            aliases: vec![],
            properties: props
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            size: 0,
            created_at: "0001-01-01T00:00:00Z".into(),
            uploaded_at: "2026-12-02T01:00:00+01:00".into(),
        };
        let g = listed(image(&[
            (KIND_PROPERTY, "golden"),
            (SOURCE_PROPERTY, "web/s1"),
        ]));
        assert_eq!((g.origin, g.source.as_deref()), ("golden", Some("web/s1")));
        assert_eq!(g.created, "2026-12-02T00:00:00Z");
        assert_eq!(listed(image(&[("variant", "terrarium")])).origin, "base");
        assert_eq!(listed(image(&[])).origin, "other");
    }
}
