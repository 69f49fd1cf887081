//! `trm launch --docker-compose FILE`: the compose file goes into the home
//! before the first boot like any `--file`, and once cloud-init is done the
//! project is brought up as `terrarium`. Checked first: the file is a
//! compose document, a profile lets Docker run (nesting), and a Terrarium
//! base image has Docker in it. A failed `up` is reported as a failed
//! cloud-init is: the box is left to inspect (or removed), never exposed.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lxd::{ExecSpec, LaunchSpec, Lxd};

/// Where the project lives in the box, below the home.
pub const DIR: &str = "compose";
const FILE: &str = "compose.yaml";
const LIMIT: u64 = 1 << 20;

/// What `up` did.
#[derive(Debug, Clone, Serialize)]
pub struct Composed {
    /// The compose file in the box.
    pub file: String,
    /// `docker compose` (v2) or `docker-compose` (v1), as the image has it.
    pub command: String,
    /// The services it brought up.
    pub services: Vec<String>,
}

/// Check the file, the profiles and the image; stage the file. Nothing is
/// changed on the host.
pub fn check(lxd: &Lxd, path: &Path, spec: &mut LaunchSpec) -> Result<()> {
    services(path)?;
    super::stage(
        path.to_path_buf(),
        &format!("{DIR}/{FILE}"),
        &format!("--docker-compose {}", path.display()),
        &mut spec.files,
    )?;
    // The last profile (or -c) that sets nesting decides, as LXD merges.
    let mut nesting = None;
    for name in &spec.profiles {
        if let Some(v) = lxd
            .profile(name)?
            .and_then(|p| p.config.get("security.nesting").cloned())
        {
            nesting = Some((v, name.clone()));
        }
    }
    if let Some(v) = spec.config.get("security.nesting") {
        nesting = Some((v.clone(), "-c".into()));
    }
    match nesting {
        Some((v, _)) if v == "true" => {}
        other => {
            return Err(Error::Usage(format!(
                "--docker-compose needs a Docker-capable profile (security.nesting=true, as \
                 default and dev have){}",
                match other {
                    Some((_, from)) => format!("; {from} turns nesting off"),
                    None => String::new(),
                }
            )))
        }
    }
    // A Terrarium base image names its packages in its recipe; others
    // (golden images, the owner's) are asked at run time.
    if let Ok(image) = lxd.image_by_alias(&spec.image) {
        let prop = |k: &str| image.properties.get(k).map(String::as_str).unwrap_or("");
        let base =
            prop("variant") == "terrarium" && prop(crate::image::golden::KIND_PROPERTY).is_empty();
        if base && !prop(crate::image::RECIPE_PROPERTY).contains("docker") {
            return Err(Error::Usage(format!(
                "--docker-compose: image {} has no Docker; build one with `trm image build \
                 --alias terrarium/debian12-docker --package docker.io --package docker-compose` \
                 and launch with --image terrarium/debian12-docker",
                spec.image
            )));
        }
    }
    Ok(())
}

/// The service names of a compose file (its `services` mapping).
fn services(path: &Path) -> Result<Vec<String>> {
    let shown = format!("--docker-compose {}", path.display());
    let meta =
        std::fs::metadata(path).map_err(|e| super::input_error("--docker-compose", path, e))?;
    if !meta.is_file() || meta.len() > LIMIT {
        return Err(Error::Usage(format!(
            "{shown}: a regular file of at most 1 MiB"
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text)
        .map_err(|e| Error::Usage(format!("{shown}: not valid YAML: {e}")))?;
    let names: Vec<String> = doc
        .get("services")
        .and_then(|s| s.as_mapping())
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        return Err(Error::Usage(format!(
            "{shown}: a compose file names its services under `services:`"
        )));
    }
    Ok(names)
}

/// Bring the project up as `terrarium`, once cloud-init is done: the user
/// joins the box's `docker` group (root-equivalent inside the box, which
/// stays unprivileged on the host), dockerd is waited for, then `up -d`.
pub fn up(lxd: &Lxd, name: &str, timeout: Duration) -> Result<Composed> {
    let home = crate::instances::HOME;
    let user = crate::instances::USER;
    let dir = format!("{home}/{DIR}");
    let secs = timeout.as_secs().max(1);
    // Root's part; every step may run twice (LXD 5.0 loses exec PIDs).
    let prepare = format!(
        "command -v docker >/dev/null || {{ echo 'this image has no docker' >&2; exit 3; }}\n\
         getent group docker >/dev/null || groupadd --system docker\n\
         usermod --append --groups docker {user}\n\
         timeout {secs} sh -c 'until docker info >/dev/null 2>&1; do sleep 1; done' \
         || {{ echo 'dockerd did not answer within {secs}s' >&2; exit 4; }}\n\
         if docker compose version >/dev/null 2>&1; then echo 'docker compose'; \
         elif command -v docker-compose >/dev/null; then echo docker-compose; \
         else echo 'neither docker compose nor docker-compose is installed' >&2; exit 3; fi\n"
    );
    let out = root_sh(lxd, name, &prepare, timeout)?;
    if !out.status.success() {
        return Err(failure(name, "preparing Docker", "docker compose", &out));
    }
    let command = out.stdout_str().trim().to_string();
    // A login shell: the home, and the docker group just joined.
    let bring_up = format!("cd {dir} && {command} --file {FILE} up --detach");
    let out = Lxd::output_idempotent(
        &lxd.exec_cmd(
            name,
            &ExecSpec {
                command: ["runuser", "--login", user, "--command", &bring_up]
                    .map(String::from)
                    .to_vec(),
                ..ExecSpec::default()
            },
        )
        .timeout(timeout),
    )?;
    if !out.status.success() {
        return Err(failure(name, &format!("`{command} up`"), &command, &out));
    }
    let file = format!("{dir}/{FILE}");
    let listed = root_sh(
        lxd,
        name,
        &format!("cd {dir} && {command} --file {FILE} config --services"),
        timeout,
    )?;
    Ok(Composed {
        services: listed.stdout_str().lines().map(String::from).collect(),
        file,
        command,
    })
}

fn root_sh(
    lxd: &Lxd,
    name: &str,
    script: &str,
    timeout: Duration,
) -> Result<crate::process::Output> {
    Lxd::output_idempotent(
        &lxd.exec_cmd(
            name,
            &ExecSpec {
                command: vec!["sh".into(), "-c".into(), script.into()],
                ..ExecSpec::default()
            },
        )
        .timeout(timeout + Duration::from_secs(30)),
    )
}

/// Like a failed cloud-init: what failed, its output, where to look.
fn failure(name: &str, step: &str, command: &str, out: &crate::process::Output) -> Error {
    let mut why = crate::process::tail(&out.stderr);
    if why.is_empty() {
        why = crate::process::tail(&out.stdout);
    }
    Error::WrongState(format!(
        "docker compose failed in '{name}' ({step}, exit {}): {why}; the instance is running, \
         inspect it with `trm exec {name} -- sh -c 'cd {DIR} && {command} logs'`",
        out.status.code().unwrap_or(-1)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_compose_file_names_its_services() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| super::super::tests::written(&dir, name, text);
        assert_eq!(
            services(&file(
                "a",
                "services:\n  web:\n    image: x\n  db:\n    image: y\n"
            ))
            .unwrap(),
            ["web", "db"]
        );
        for (name, text, says) in [
            ("b", "version: '3'\n", "under `services:`"),
            ("c", "services: [web]\n", "under `services:`"),
            ("d", "services:\n  web: [\n", "not valid YAML"),
        ] {
            let e = services(&file(name, text)).unwrap_err().to_string();
            assert!(e.contains(says), "{name}: {e}");
        }
        assert!(services(dir.path()).is_err(), "a directory");
    }
}
