//! `trm launch` recipes: the user's own cloud-init user-data, files in
//! the home before the first boot, and an exposure that goes live only
//! once the box is up (and, with `--wait-http`, its service answers), so
//! a half-started app is never public. Everything is checked before the
//! box is made; a step that fails later leaves a clear error and either
//! the box to inspect, never exposed, or with `--rm-on-failure` nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::expose::labels::{self, Item};
use crate::lxd::{LaunchSpec, Lxd, StagedFile};
use crate::profiles;

/// The cloud-init key of the user's own user-data.
const USER_DATA_KEY: &str = "cloud-init.user-data";
/// Larger user-data is not what cloud-init is for (LXD keeps it in its
/// database); files go with `--file`.
const USER_DATA_LIMIT: u64 = 1 << 20;

/// A recipe as asked.
#[derive(Debug, Clone, Default)]
pub struct Recipe {
    /// `--cloud-init FILE`.
    pub user_data: Option<PathBuf>,
    /// `--file SRC:DST`, DST below the home.
    pub files: Vec<String>,
    /// `--proxy LABEL`.
    pub proxy: Option<String>,
    /// `--wait-http PORT`.
    pub wait_http: Option<u16>,
    pub rm_on_failure: bool,
}

/// The part of a checked recipe that runs once the box is up.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    pub proxy: Vec<Item>,
    pub wait_http: Option<u16>,
    pub rm_on_failure: bool,
}

/// Check the recipe against the host and put its first-boot parts on the
/// spec; nothing is changed.
pub fn prepare(lxd: &Lxd, recipe: &Recipe, spec: &mut LaunchSpec) -> Result<Ready> {
    if let Some(path) = &recipe.user_data {
        if spec.config.contains_key(USER_DATA_KEY) {
            return Err(Error::Usage(format!(
                "--cloud-init and -c {USER_DATA_KEY}=... both set the user-data; give one"
            )));
        }
        spec.config.insert(USER_DATA_KEY.into(), user_data(path)?);
    }
    spec.files = staged_files(&recipe.files)?;
    if !spec.files.is_empty() && !creates_user(lxd, &spec.profiles)? {
        return Err(Error::Usage(format!(
            "--file puts files in {}'s home, but none of the profiles [{}] creates that user",
            crate::instances::USER,
            spec.profiles.join(", ")
        )));
    }
    if recipe.wait_http.is_some() && recipe.proxy.is_none() {
        return Err(Error::Usage(
            "--wait-http waits before --proxy goes live; give a --proxy too".into(),
        ));
    }
    let proxy = match &recipe.proxy {
        None => Vec::new(),
        Some(label) => exposure(lxd, &spec.name, label)?,
    };
    Ok(Ready {
        proxy,
        wait_http: recipe.wait_http,
        rm_on_failure: recipe.rm_on_failure,
    })
}

/// The user-data in `path`: cloud-config that parses as a YAML mapping,
/// or a script.
fn user_data(path: &std::path::Path) -> Result<String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| Error::io(format!("reading {shown}"), e))?;
    if !meta.is_file() || meta.len() > USER_DATA_LIMIT {
        return Err(Error::Usage(format!(
            "--cloud-init {shown}: a regular file of at most 1 MiB"
        )));
    }
    let text =
        std::fs::read_to_string(path).map_err(|e| Error::io(format!("reading {shown}"), e))?;
    if text.starts_with("#!") {
        return Ok(text);
    }
    if !text.starts_with("#cloud-config") {
        return Err(Error::Usage(format!(
            "--cloud-init {shown}: user-data starts with #cloud-config (or #! for a script)"
        )));
    }
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(&text) {
        Ok(serde_yaml_ng::Value::Mapping(_)) => Ok(text),
        Ok(_) => Err(Error::Usage(format!(
            "--cloud-init {shown}: cloud-config must be a YAML mapping (key: value)"
        ))),
        Err(e) => Err(Error::Usage(format!(
            "--cloud-init {shown}: not valid YAML: {e}"
        ))),
    }
}

/// `SRC:DST` pairs: SRC a regular host file, DST below the home (once
/// each), staged where the profile's user script picks them up.
fn staged_files(pairs: &[String]) -> Result<Vec<StagedFile>> {
    let mut out: Vec<StagedFile> = Vec::new();
    for pair in pairs {
        let Some((from, to)) = pair.split_once(':') else {
            return Err(Error::Usage(format!(
                "--file '{pair}': expected SRC:DST (DST below {})",
                crate::instances::HOME
            )));
        };
        let to = crate::files::home_path(to)?;
        let from = PathBuf::from(from);
        if !std::fs::metadata(&from).is_ok_and(|m| m.is_file()) {
            return Err(Error::Usage(format!(
                "--file '{pair}': {} is not a regular file here",
                from.display()
            )));
        }
        if out.iter().any(|f| f.to == to) {
            return Err(Error::Usage(format!("--file: {to} is given twice")));
        }
        let rel = &to[crate::instances::HOME.len()..];
        out.push(StagedFile {
            from,
            staged: format!("{}{rel}", profiles::FILES_INBOX),
            to,
        });
    }
    Ok(out)
}

/// Does one of the profiles carry Terrarium's user script (which also
/// moves staged files into the home)?
fn creates_user(lxd: &Lxd, names: &[String]) -> Result<bool> {
    for p in names {
        if let Some(p) = lxd.profile(p)? {
            let script = p.config.get(profiles::VENDOR_DATA_KEY);
            if script.is_some_and(|s| s.contains(profiles::USER_SCRIPT_MARKER)) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// The label, judged as `trm-expose check` judges it for this new box.
fn exposure(lxd: &Lxd, name: &str, label: &str) -> Result<Vec<Item>> {
    let settings = crate::settings::Settings::load_or_default()?;
    let report = crate::expose::check(Some(lxd), &settings, Some(name), label)?;
    if report.problems() > 0 {
        let mut why: Vec<String> = report
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.item, e.message))
            .collect();
        why.extend(
            report
                .items
                .iter()
                .filter_map(|i| Some(format!("{}: {}", i.item, i.problem.as_ref()?))),
        );
        return Err(Error::Usage(format!(
            "--proxy would not be routed as written (nothing was created): {}",
            why.join("; ")
        )));
    }
    let (items, _) = labels::parse(label);
    Ok(items)
}

/// What the recipe did once the box was up.
#[derive(Debug, Clone, Serialize)]
pub struct Exposed {
    /// Seconds until the service answered, with `--wait-http`.
    pub answered_after: Option<f64>,
    pub change: crate::expose::Change,
}

/// Once the box is up: wait for its service, then expose it.
pub fn finish(lxd: &Lxd, name: &str, ready: &Ready, timeout: Duration) -> Result<Option<Exposed>> {
    if ready.proxy.is_empty() {
        return Ok(None);
    }
    let answered_after = match ready.wait_http {
        None => None,
        Some(port) => Some(wait_http(lxd, name, port, timeout)?),
    };
    let settings = crate::settings::Settings::load_or_default()?;
    let change = crate::expose::add_items(lxd, &settings, name, &ready.proxy, false)?;
    Ok(Some(Exposed {
        answered_after,
        change,
    }))
}

/// Until any HTTP answer comes from the box's port (an error status is an
/// answer: the service is up), or the timeout.
fn wait_http(lxd: &Lxd, name: &str, port: u16, timeout: Duration) -> Result<f64> {
    let started = Instant::now();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .redirects(0)
        .build();
    loop {
        // The address the host's DHCP gave the box: asked again each
        // round, since it may come late.
        if let Some(ip) = crate::instances::info(lxd, name)?.ipv4 {
            match agent.get(&format!("http://{ip}:{port}/")).call() {
                Ok(_) | Err(ureq::Error::Status(..)) => return Ok(started.elapsed().as_secs_f64()),
                Err(ureq::Error::Transport(_)) => {}
            }
        }
        if started.elapsed() >= timeout {
            return Err(Error::Timeout {
                command_line: format!("waiting for http://{name}:{port}/ to answer"),
                seconds: timeout.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A launch step failed after the box was made: remove it with
/// `--rm-on-failure`, else leave it (never exposed: the label is the
/// last step). The error says which.
pub fn failed(lxd: &Lxd, name: &str, ready: &Ready, e: Error) -> Error {
    let exists = lxd.instance(name).is_ok();
    if !exists {
        let _ = crate::agents::lifetime::set_deadline(lxd.project(), name, None);
        return e;
    }
    if !ready.rm_on_failure {
        if ready.proxy.is_empty() {
            return e;
        }
        return Error::WrongState(format!(
            "{e}; '{name}' is left for you to inspect, not exposed (`trm delete {name}` \
             removes it; --rm-on-failure would have)"
        ));
    }
    use crate::instances::{apply_change, plan_change, Verb};
    let removed = plan_change(lxd, name, Verb::Delete, true)
        .and_then(|(change, _)| apply_change(lxd, &change, true));
    let _ = crate::agents::lifetime::set_deadline(lxd.project(), name, None);
    match removed {
        Ok(()) => Error::WrongState(format!("{e}; '{name}' was removed (--rm-on-failure)")),
        Err(r) => Error::WrongState(format!(
            "{e}; removing '{name}' (--rm-on-failure) failed too: {r}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_is_cloud_config_or_a_script() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        assert!(user_data(&file("a", "#cloud-config\npackages: [jq]\n")).is_ok());
        assert!(user_data(&file("b", "#!/bin/sh\necho hi\n")).is_ok());
        for (name, text, says) in [
            ("c", "packages: [jq]\n", "starts with #cloud-config"),
            ("d", "#cloud-config\n- a\n- b\n", "YAML mapping"),
            ("e", "#cloud-config\npackages: [jq\n", "not valid YAML"),
        ] {
            let e = user_data(&file(name, text)).unwrap_err().to_string();
            assert!(e.contains(says), "{name}: {e}");
        }
        assert!(user_data(dir.path()).is_err(), "a directory");
    }

    #[test]
    fn files_go_below_the_home_once_each() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("app.py");
        std::fs::write(&src, "print(1)\n").unwrap();
        let s = src.display();
        let staged = staged_files(&[format!("{s}:app/main.py")]).unwrap();
        assert_eq!(staged[0].to, "/home/terrarium/app/main.py");
        assert_eq!(staged[0].staged, "/var/lib/terrarium/files/app/main.py");
        for (pair, says) in [
            (format!("{s}:../etc/passwd"), "below /home/terrarium"),
            (format!("{s}:/etc/passwd"), "below /home/terrarium"),
            (format!("{s}"), "expected SRC:DST"),
            (format!("{}:x", dir.path().display()), "not a regular file"),
        ] {
            let e = staged_files(std::slice::from_ref(&pair))
                .unwrap_err()
                .to_string();
            assert!(e.contains(says), "{pair}: {e}");
        }
        let twice = staged_files(&[format!("{s}:a"), format!("{s}:./a")]).unwrap_err();
        assert!(twice.to_string().contains("twice"), "{twice}");
    }
}
