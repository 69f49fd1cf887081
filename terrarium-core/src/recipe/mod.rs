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

mod compose;
pub use compose::Composed;

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
    /// `--docker-compose FILE`.
    pub compose: Option<PathBuf>,
    pub rm_on_failure: bool,
}

/// The part of a checked recipe that runs once the box is up.
#[derive(Debug, Clone, Default)]
pub struct Ready {
    pub proxy: Vec<Item>,
    pub wait_http: Option<u16>,
    pub rm_on_failure: bool,
    /// Files were staged: check they reached the home.
    pub files: bool,
    /// Bring the compose project up once cloud-init is done.
    pub compose: bool,
}

/// What `create` says when another launch took the name between the
/// check and the creation: nothing of this launch exists to remove.
pub const TAKEN: &str = "was taken by another launch meanwhile";

/// Instance keys a launch does not take with `-c`, or not with a recipe
/// part they would undo.
fn check_config(recipe: &Recipe, config: &crate::lxd::Config) -> Result<()> {
    if config.contains_key(labels::KEY) {
        return Err(Error::Usage(format!(
            "-c {}=...: exposure is given with --proxy, which is checked first and applied \
             only once the box is up",
            labels::KEY
        )));
    }
    if recipe.user_data.is_some() {
        if let Some(k) = [USER_DATA_KEY, "user.user-data"]
            .into_iter()
            .find(|k| config.contains_key(*k))
        {
            return Err(Error::Usage(format!(
                "--cloud-init and -c {k}=... both set the user-data; give one"
            )));
        }
    }
    if !recipe.files.is_empty() || recipe.compose.is_some() {
        if let Some(k) = [profiles::VENDOR_DATA_KEY, "user.vendor-data"]
            .into_iter()
            .find(|k| config.contains_key(*k))
        {
            return Err(Error::Usage(format!(
                "--file and --docker-compose need the profile's vendor-data to move the files \
                 into the home; -c {k}=... replaces it"
            )));
        }
    }
    Ok(())
}

/// Check the recipe against the host and put its first-boot parts on the
/// spec; nothing is changed.
pub fn prepare(lxd: &Lxd, recipe: &Recipe, spec: &mut LaunchSpec) -> Result<Ready> {
    check_config(recipe, &spec.config)?;
    if let Some(path) = &recipe.user_data {
        spec.config.insert(USER_DATA_KEY.into(), user_data(path)?);
    }
    spec.files = staged_files(&recipe.files)?;
    if let Some(path) = &recipe.compose {
        compose::check(lxd, path, spec)?;
    }
    if !spec.files.is_empty() {
        moves_files(lxd, &spec.profiles)?;
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
        files: !spec.files.is_empty(),
        compose: recipe.compose.is_some(),
    })
}

/// The user-data in `path`: cloud-config that parses as a YAML mapping,
/// or a script.
fn user_data(path: &std::path::Path) -> Result<String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| input_error("--cloud-init", path, e))?;
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

/// A file named on the command line that cannot be read: bad input
/// (exit 2) naming the flag, unless it is the host's own trouble.
pub(crate) fn input_error(flag: &str, path: &std::path::Path, e: std::io::Error) -> Error {
    match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::Usage(format!("{flag} {}: no such file", path.display()))
        }
        std::io::ErrorKind::PermissionDenied => {
            Error::Usage(format!("{flag} {}: not readable", path.display()))
        }
        _ => Error::io(format!("{flag} {}", path.display()), e),
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
        stage(
            PathBuf::from(from),
            to,
            &format!("--file '{pair}'"),
            &mut out,
        )?;
    }
    Ok(out)
}

/// Add one host file for `to` (below the home) to `out`, staged where the
/// profile's user script picks it up. `what` names it in errors.
fn stage(from: PathBuf, to: &str, what: &str, out: &mut Vec<StagedFile>) -> Result<()> {
    let to = crate::files::home_path(to)?;
    match std::fs::metadata(&from) {
        Ok(m) if m.is_file() => {}
        Ok(_) => {
            return Err(Error::Usage(format!(
                "{what}: {} is not a regular file",
                from.display()
            )))
        }
        Err(e) => return Err(input_error(what, &from, e)),
    }
    // One may not be a directory above another: the second push fails.
    let clash = |a: &str, b: &str| a == b || a.starts_with(&format!("{b}/"));
    if let Some(f) = out.iter().find(|f| clash(&f.to, &to) || clash(&to, &f.to)) {
        return Err(Error::Usage(if f.to == to {
            format!("{what}: {to} is given twice")
        } else {
            format!("{what}: {to} and {} cannot both be files", f.to)
        }));
    }
    let rel = &to[crate::instances::HOME.len()..];
    out.push(StagedFile {
        from,
        staged: format!("{}{rel}", profiles::FILES_INBOX),
        to,
    });
    Ok(())
}

/// One of the profiles must carry Terrarium's user script, in a version
/// that moves staged files into the home.
fn moves_files(lxd: &Lxd, names: &[String]) -> Result<()> {
    let mut old = None;
    for name in names {
        let Some(p) = lxd.profile(name)? else {
            continue;
        };
        match p.config.get(profiles::VENDOR_DATA_KEY) {
            Some(s) if s.contains(profiles::FILES_INBOX) => return Ok(()),
            Some(s) if s.contains(profiles::USER_SCRIPT_MARKER) => old = Some(name.clone()),
            _ => {}
        }
    }
    Err(Error::Usage(match old {
        Some(p) => format!(
            "--file: profile '{p}' is from before --file; `trm-profile apply {p}` updates it"
        ),
        None => format!(
            "--file puts files in {}'s home, but none of the profiles [{}] creates that user",
            crate::instances::USER,
            names.join(", ")
        ),
    }))
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
#[derive(Debug, Clone, Default, Serialize)]
pub struct Done {
    /// With `--docker-compose`: the project brought up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compose: Option<Composed>,
    /// With `--proxy`: the exposure made once the box was up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exposure: Option<Exposed>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Exposed {
    /// Seconds until the service answered, with `--wait-http`.
    pub answered_after: Option<f64>,
    pub change: crate::expose::Change,
}

/// Once the box is up: check its files arrived, bring its compose project
/// up, wait for its service, then expose it.
pub fn finish(lxd: &Lxd, name: &str, ready: &Ready, timeout: Duration) -> Result<Done> {
    if ready.files {
        let left = lxd.exec_read(name, &["test", "-e", profiles::FILES_INBOX], timeout)?;
        if left.status.success() {
            return Err(Error::WrongState(format!(
                "the --file files are still staged in {} in '{name}', not in the home (the \
                 profile's user script did not run to its end: see `cloud-init status --long`)",
                profiles::FILES_INBOX
            )));
        }
    }
    let mut done = Done::default();
    if ready.compose {
        done.compose = Some(compose::up(lxd, name, timeout)?);
    }
    if ready.proxy.is_empty() {
        return Ok(done);
    }
    let settings = crate::settings::Settings::load_or_default()?;
    let answered_after = match ready.wait_http {
        None => None,
        Some(port) => Some(wait_http(lxd, &settings, name, port, timeout)?),
    };
    let change = crate::expose::add_items(lxd, &settings, name, &ready.proxy, false)?;
    done.exposure = Some(Exposed {
        answered_after,
        change,
    });
    Ok(done)
}

/// Until any HTTP answer comes from the box's port (an error status is an
/// answer: the service is up), or the timeout.
fn wait_http(
    lxd: &Lxd,
    settings: &crate::settings::Settings,
    name: &str,
    port: u16,
    timeout: Duration,
) -> Result<f64> {
    let started = Instant::now();
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(5))
        .redirects(0)
        .build();
    loop {
        // The address the route will use, from the host's own records
        // (what the box reports could send us anywhere): asked again each
        // round, since the lease may come late.
        let ip = crate::expose::backend_address(lxd, settings, name)?
            .map_err(|why| Error::WrongState(format!("'{name}' cannot be routed: {why}")))?;
        if let Some(ip) = ip {
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
    if matches!(&e, Error::WrongState(m) if m.contains(TAKEN)) {
        return e;
    }
    let box_ = match lxd.instance(name) {
        Ok(i) => i,
        Err(Error::NotFound { .. }) => {
            let _ = crate::agents::lifetime::set_deadline(lxd.project(), name, None);
            return e;
        }
        Err(_) => return e,
    };
    if !ready.rm_on_failure {
        if ready.proxy.is_empty() {
            return e;
        }
        // Never a half-exposed box: a label the failed step set goes again.
        let unexposed = match box_.config.get(labels::KEY) {
            None => Ok(()),
            Some(_) => crate::settings::Settings::load_or_default().and_then(|s| {
                crate::expose::remove(lxd, &s, name, &crate::expose::Selector::All, false).map(drop)
            }),
        };
        return Error::WrongState(match unexposed {
            Ok(()) => format!(
                "{e}; '{name}' is left for you to inspect, not exposed (`trm delete {name}` \
                 removes it; --rm-on-failure would have)"
            ),
            Err(u) => format!(
                "{e}; '{name}' is left, and removing its exposure failed too ({u}): \
                 `trm-expose remove {name} --all`"
            ),
        });
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
pub(crate) mod tests {
    use super::*;

    /// A file named `name` holding `text` in `dir`, for the parsers' tests.
    pub(crate) fn written(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn user_data_is_cloud_config_or_a_script() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| written(&dir, name, text);
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
    fn launch_keys_that_would_undo_the_recipe_are_refused() {
        let with = |k: &str| -> crate::lxd::Config { [(k.to_string(), "x".to_string())].into() };
        let plain = Recipe::default();
        assert!(check_config(&plain, &with("limits.cpu")).is_ok());
        let e = check_config(&plain, &with("user.proxy")).unwrap_err();
        assert!(e.to_string().contains("--proxy"), "{e}");
        let ud = Recipe {
            user_data: Some("u".into()),
            ..Recipe::default()
        };
        for k in ["cloud-init.user-data", "user.user-data"] {
            assert!(check_config(&ud, &with(k)).is_err(), "{k}");
        }
        let files = Recipe {
            files: vec!["a:b".into()],
            ..Recipe::default()
        };
        for k in ["cloud-init.vendor-data", "user.vendor-data"] {
            assert!(check_config(&files, &with(k)).is_err(), "{k}");
        }
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
        let clash = staged_files(&[format!("{s}:app"), format!("{s}:app/x")]).unwrap_err();
        assert!(
            clash.to_string().contains("cannot both be files"),
            "{clash}"
        );
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
        assert!(
            twice
                .to_string()
                .contains("/home/terrarium/a is given twice"),
            "{twice}"
        );
        let missing = staged_files(&[format!("{}/nope:a", dir.path().display())]).unwrap_err();
        assert!(missing.to_string().contains("no such file"), "{missing}");
        assert_eq!(missing.exit_code(), crate::error::exit::USAGE);
    }
}
