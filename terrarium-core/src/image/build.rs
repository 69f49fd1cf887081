//! `trm image build`: a Debian base image (12 or 13) made with debootstrap, with
//! cloud-init fed from LXD config through NoCloud seed templates, so
//! Terrarium works on hosts that cannot reach an image server.
//!
//! Two caches: the LXD image itself (by alias), and the tarballs under the
//! cache directory, so a host whose LXD was reset imports without building.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::lxd::Lxd;
use crate::process::{tools, Cmd};

/// The Debian releases an image is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// Debian 12, what Terrarium's hosts run.
    #[default]
    Bookworm,
    /// Debian 13, the current stable.
    Trixie,
}

impl Release {
    pub fn suite(self) -> &'static str {
        match self {
            Release::Bookworm => "bookworm",
            Release::Trixie => "trixie",
        }
    }

    pub fn version(self) -> u32 {
        match self {
            Release::Bookworm => 12,
            Release::Trixie => 13,
        }
    }

    /// `terrarium/debian12`, `terrarium/debian13`.
    pub fn default_alias(self) -> String {
        format!("terrarium/debian{}", self.version())
    }
}
const PACKAGES: &[&str] = &[
    "cloud-init",
    "sudo",
    "isc-dhcp-client",
    "ifupdown",
    "netbase",
    "locales",
    "ca-certificates",
    // ssh-keygen: cloud-init gives each box its own SSH host keys (Debian
    // 13's cloud-init reports a degraded boot without it).
    "openssh-client",
    "less",
    "nano",
];
const LONG: Duration = Duration::from_secs(1800);

#[derive(Debug, Clone)]
pub struct BuildOptions {
    pub alias: String,
    pub release: Release,
    pub mirror: Option<String>,
    /// Debian packages added to the base set (e.g. `docker.io` for a
    /// Docker-in-LXC image variant; give it its own alias).
    pub extra_packages: Vec<String>,
    pub cache_dir: PathBuf,
    /// Build anew even when a cached image or tarball exists.
    pub rebuild: bool,
}

/// Where built image tarballs are kept (`TRM_CACHE_DIR` overrides in `trm`).
pub const DEFAULT_CACHE_DIR: &str = "/var/cache/terrarium/images";

/// What `image build` does to have the image: the same word whether it
/// did it or, with `--dry-run`, would.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ImageAction {
    /// Already in LXD.
    Reuse,
    /// From the cached tarballs.
    Import,
    /// With debootstrap, then imported and cached.
    Build,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub alias: String,
    pub action: ImageAction,
    pub dry_run: bool,
    pub cache: String,
    pub seconds: u64,
}

impl crate::output::Human for BuildReport {
    fn human(&self) -> String {
        let r = self;
        let word = match r.action {
            ImageAction::Reuse => "reuse",
            ImageAction::Import => "import",
            ImageAction::Build => "build",
        };
        if r.dry_run {
            return format!("image {}: would {word} (cache {})", r.alias, r.cache);
        }
        match r.action {
            ImageAction::Reuse => format!("image {} already present; reused", r.alias),
            ImageAction::Import => format!(
                "image {} imported from {} in {}s",
                r.alias, r.cache, r.seconds
            ),
            ImageAction::Build => format!(
                "image {} built and imported in {}s (cached in {})",
                r.alias, r.seconds, r.cache
            ),
        }
    }
}

/// Bumped whenever what a build puts in the image changes: an image or
/// cached tarballs of another recipe are built again, so a host that
/// upgrades Terrarium launches from what this version makes.
const RECIPE: &str = "2";
pub const RECIPE_PROPERTY: &str = "terrarium.recipe";

/// What an image is made of: the recipe and its extra packages
/// (`2`, `2+docker-compose,docker.io`).
fn recipe_id(extra: &[String]) -> String {
    let mut p = extra.to_vec();
    p.sort();
    p.dedup();
    if p.is_empty() {
        RECIPE.to_string()
    } else {
        format!("{RECIPE}+{}", p.join(","))
    }
}

/// What a cached build says it is: the recipe and the release.
fn cache_id(opts: &BuildOptions) -> String {
    format!(
        "{} {}",
        recipe_id(&opts.extra_packages),
        opts.release.suite()
    )
}

/// Is an image of the current recipe and release under `alias`? `None`:
/// no image. An image Terrarium did not build (a golden one, one of the
/// owner's) is never replaced: that alias is refused.
fn current(lxd: &Lxd, opts: &BuildOptions) -> Result<Option<bool>> {
    if !lxd.image_alias_exists(&opts.alias)? {
        return Ok(None);
    }
    let i = lxd.image_by_alias(&opts.alias)?;
    let prop = |k: &str| i.properties.get(k).map(String::as_str);
    if prop("variant") != Some("terrarium") || prop(super::golden::KIND_PROPERTY).is_some() {
        return Err(Error::Usage(format!(
            "image {} was not built by `trm image build`; choose another --alias (nothing was changed)",
            opts.alias
        )));
    }
    Ok(Some(
        prop(RECIPE_PROPERTY) == Some(recipe_id(&opts.extra_packages).as_str())
            && prop("release") == Some(opts.release.suite()),
    ))
}

/// Plan-only description for `--dry-run`.
pub fn plan(lxd: &Lxd, opts: &BuildOptions) -> Result<BuildReport> {
    let action = if !opts.rebuild && current(lxd, opts)? == Some(true) {
        ImageAction::Reuse
    } else if !opts.rebuild && cached(opts).is_some() {
        ImageAction::Import
    } else {
        ImageAction::Build
    };
    Ok(BuildReport {
        alias: opts.alias.clone(),
        action,
        dry_run: true,
        cache: cache_slot(opts).display().to_string(),
        seconds: 0,
    })
}

fn cache_slot(opts: &BuildOptions) -> PathBuf {
    opts.cache_dir.join(opts.alias.replace('/', "_"))
}

fn cached(opts: &BuildOptions) -> Option<(PathBuf, PathBuf)> {
    let slot = cache_slot(opts);
    let (meta, rootfs) = (slot.join("meta.tar.gz"), slot.join("rootfs.tar.gz"));
    let recipe = std::fs::read_to_string(slot.join("recipe")).unwrap_or_default();
    (meta.is_file() && rootfs.is_file() && recipe.trim() == cache_id(opts))
        .then_some((meta, rootfs))
}

/// Build (or reuse) the base image. `progress` hears each stage.
pub fn build(
    lxd: &Lxd,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<BuildReport> {
    let started = Instant::now();
    let report = |action| BuildReport {
        alias: opts.alias.clone(),
        action,
        dry_run: false,
        cache: cache_slot(opts).display().to_string(),
        seconds: started.elapsed().as_secs(),
    };
    let present = current(lxd, opts)?;
    if !opts.rebuild && present == Some(true) {
        return Ok(report(ImageAction::Reuse));
    }
    // An outdated image (or any, on --rebuild) keeps its alias until the
    // new one is in LXD (`import`); boxes launched from it keep running.
    if !opts.rebuild {
        if let Some((meta, rootfs)) = cached(opts) {
            progress("importing cached image tarballs");
            import(lxd, &meta, &rootfs, &opts.alias)?;
            return Ok(report(ImageAction::Import));
        }
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(Error::NotRoot("building an image (debootstrap)".into()));
    }
    for t in [
        tools::DEBOOTSTRAP,
        tools::CHROOT,
        tools::MOUNT,
        tools::UMOUNT,
        tools::TAR,
    ] {
        t.resolve()?;
    }
    std::fs::create_dir_all(&opts.cache_dir)
        .map_err(|e| Error::io(format!("creating {}", opts.cache_dir.display()), e))?;
    // The work directory sits next to the cache so the final move is a rename.
    let work = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(&opts.cache_dir)
        .map_err(|e| Error::io("creating a build directory", e))?;
    let root = work.path().join("rootfs");
    let mirror = match &opts.mirror {
        Some(m) => m.clone(),
        None => apt_mirror(),
    };
    let suite = opts.release.suite();
    progress(&format!("debootstrap {suite} from {mirror}"));
    Cmd::tool(&tools::DEBOOTSTRAP)?
        .args([
            "--variant=minbase",
            "--include=systemd-sysv,iproute2",
            suite,
        ])
        .arg(&root)
        .arg(&mirror)
        .timeout(LONG)
        .run()?;
    progress("installing cloud-init, sudo and friends");
    install_packages(&root, &opts.extra_packages)?;
    configure_rootfs(&root)?;
    progress("packing the image");
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).map_err(|e| Error::io("creating the output directory", e))?;
    write_metadata(
        &work.path().join("meta"),
        opts.release,
        &opts.extra_packages,
    )?;
    tar(&work.path().join("meta"), &out.join("meta.tar.gz"))?;
    tar(&root, &out.join("rootfs.tar.gz"))?;
    write(&out, "recipe", &format!("{}\n", cache_id(opts)))?;
    let slot = cache_slot(opts);
    if slot.exists() {
        std::fs::remove_dir_all(&slot)
            .map_err(|e| Error::io(format!("replacing {}", slot.display()), e))?;
    }
    std::fs::rename(&out, &slot)
        .map_err(|e| Error::io(format!("moving into {}", slot.display()), e))?;
    progress("importing into LXD");
    import(
        lxd,
        &slot.join("meta.tar.gz"),
        &slot.join("rootfs.tar.gz"),
        &opts.alias,
    )?;
    Ok(report(ImageAction::Build))
}

/// Import the tarballs (unless LXD holds that image already), then point
/// `alias` at it: an outdated image under the alias keeps it until then.
fn import(lxd: &Lxd, meta: &Path, rootfs: &Path, alias: &str) -> Result<()> {
    let fingerprint = split_image_fingerprint(meta, rootfs)?;
    if !lxd.image_exists(&fingerprint)? {
        lxd.import_image(meta, rootfs)?;
    }
    lxd.point_image_alias(alias, &fingerprint)
}

/// LXD's fingerprint of a split image: SHA-256 over the metadata tarball
/// followed by the rootfs tarball.
fn split_image_fingerprint(meta: &Path, rootfs: &Path) -> Result<String> {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for p in [meta, rootfs] {
        let read = |e| Error::io(format!("reading {}", p.display()), e);
        let mut f = std::fs::File::open(p).map_err(read)?;
        std::io::copy(&mut f, &mut hasher).map_err(read)?;
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// A mount that is undone however we leave.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Ok(c) = Cmd::tool(&tools::UMOUNT) {
            let _ = c.arg("--lazy").arg(&self.0).run();
        }
    }
}

fn install_packages(root: &Path, extra: &[String]) -> Result<()> {
    let proc_dir = root.join("proc");
    Cmd::tool(&tools::MOUNT)?
        .args(["-t", "proc", "proc"])
        .arg(&proc_dir)
        .run()?;
    let _proc = Mounted(proc_dir);
    // apt inside the chroot resolves the mirror with the host's resolver.
    let _ = std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"));
    let chroot = || -> Result<Cmd> {
        Ok(Cmd::tool(&tools::CHROOT)?
            .arg(root)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("LC_ALL", "C")
            .timeout(LONG))
    };
    // cloud-init cannot go in debootstrap's --include (a virtual-package
    // dependency defeats its resolver), so it comes in a second step.
    chroot()?
        .args(["apt-get", "install", "-y", "--no-install-recommends"])
        .args(PACKAGES)
        .args(extra)
        .run()?;
    write(root, "etc/locale.gen", "en_US.UTF-8 UTF-8\nC.UTF-8 UTF-8\n")?;
    chroot()?.arg("locale-gen").run()?;
    chroot()?.args(["apt-get", "clean"]).run()?;
    Ok(())
}

/// A file in the image's root: replaced, never written through a symlink
/// a package left there (which could point at the host's own file).
fn write(root: &Path, rel: &str, text: &str) -> Result<()> {
    crate::fs::atomic_write(&root.join(rel), text.as_bytes(), 0o644)
}

fn configure_rootfs(root: &Path) -> Result<()> {
    write(root, "etc/default/locale", "LANG=C.UTF-8\n")?;
    // Only the NoCloud seed LXD writes, and no distro default user: Debian's
    // `debian` has passwordless sudo, and a box has exactly the users its
    // profile makes (terrarium) and its own user-data asks for.
    write(
        root,
        "etc/cloud/cloud.cfg.d/90_terrarium.cfg",
        "datasource_list: [ NoCloud, None ]\nusers: []\n",
    )?;
    write(root, "etc/hostname", "terrarium\n")?;
    // Each container gets its own identity on first boot.
    write(root, "etc/machine-id", "")?;
    write(root, "etc/resolv.conf", "")?;
    let _ = std::fs::remove_file(root.join("var/lib/dbus/machine-id"));
    if let Ok(entries) = std::fs::read_dir(root.join("var/lib/apt/lists")) {
        for e in entries.flatten() {
            if e.path().is_file() {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

fn tar(dir: &Path, out: &Path) -> Result<()> {
    Cmd::tool(&tools::TAR)?
        .arg("-C")
        .arg(dir)
        .args(["--numeric-owner", "--xattrs", "-czf"])
        .arg(out)
        .arg(".")
        .timeout(LONG)
        .run()
        .map(drop)
}

/// LXD image metadata: `metadata.yaml` (JSON is YAML) and the templates
/// that put LXD's cloud-init keys into the NoCloud seed.
fn write_metadata(dir: &Path, release: Release, extra: &[String]) -> Result<()> {
    // Rust and LXD name architectures alike (x86_64, aarch64).
    let arch = std::env::consts::ARCH;
    let created = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let tpl = |name: &str, default: Option<&str>| {
        let mut t = serde_json::json!({"when": ["create", "copy"], "template": name});
        if let Some(d) = default {
            t["properties"] = serde_json::json!({ "default": d });
        }
        t
    };
    const SEED: &str = "/var/lib/cloud/seed/nocloud-net";
    let base = format!(
        "Terrarium Debian {} ({}) base",
        release.version(),
        release.suite()
    );
    let description = if extra.is_empty() {
        base
    } else {
        format!("{base} + {}", extra.join(", "))
    };
    let metadata = serde_json::json!({
        "architecture": arch,
        "creation_date": created,
        "properties": {
            "description": description,
            "os": "debian",
            RECIPE_PROPERTY: recipe_id(extra),
            "release": release.suite(),
            "variant": "terrarium",
        },
        "templates": {
            "/etc/hostname": tpl("hostname.tpl", None),
            "/etc/hosts": tpl("hosts.tpl", None),
            format!("{SEED}/meta-data"): tpl("cloud-init-meta.tpl", None),
            format!("{SEED}/user-data"): tpl("cloud-init-user.tpl", Some("#cloud-config\n{}\n")),
            format!("{SEED}/vendor-data"): tpl("cloud-init-vendor.tpl", Some("#cloud-config\n{}\n")),
            format!("{SEED}/network-config"): tpl("cloud-init-network.tpl", Some(DEFAULT_NETWORK)),
        },
    });
    write(
        dir,
        "metadata.yaml",
        &serde_json::to_string_pretty(&metadata).expect("json"),
    )?;
    write(dir, "templates/hostname.tpl", "{{ container.name }}\n")?;
    write(
        dir,
        "templates/hosts.tpl",
        "127.0.0.1\tlocalhost\n127.0.1.1\t{{ container.name }}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    )?;
    write(
        dir,
        "templates/cloud-init-meta.tpl",
        "instance-id: {{ container.name }}\nlocal-hostname: {{ container.name }}\n{{ config_get(\"user.meta-data\", \"\") }}\n",
    )?;
    for (file, new_key, old_key) in [
        (
            "cloud-init-user.tpl",
            "cloud-init.user-data",
            "user.user-data",
        ),
        (
            "cloud-init-vendor.tpl",
            "cloud-init.vendor-data",
            "user.vendor-data",
        ),
        (
            "cloud-init-network.tpl",
            "cloud-init.network-config",
            "user.network-config",
        ),
    ] {
        write(
            dir,
            &format!("templates/{file}"),
            &seed_template(new_key, old_key),
        )?;
    }
    Ok(())
}

const DEFAULT_NETWORK: &str = "version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets:\n      - type: dhcp\n        control: auto\n";

/// The current `cloud-init.*` key, else the older `user.*` one, else the
/// template's default. No `\n` escapes in string literals: LXD's template
/// engine rejects them, so defaults travel as template properties.
fn seed_template(new_key: &str, old_key: &str) -> String {
    format!(
        "{{% if config_get(\"{new_key}\", \"\") != \"\" %}}{{{{ config_get(\"{new_key}\", \"\") }}}}\
         {{% elif config_get(\"{old_key}\", \"\") != \"\" %}}{{{{ config_get(\"{old_key}\", \"\") }}}}\
         {{% else %}}{{{{ properties.default }}}}{{% endif %}}\n"
    )
}

/// The Debian mirror this host's apt already uses (deb822 or one-line
/// sources), else deb.debian.org.
pub fn apt_mirror() -> String {
    let deb822 = std::fs::read_dir("/etc/apt/sources.list.d")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "sources"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect::<Vec<_>>();
    let one_line = std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default();
    mirror_from_sources(&deb822, &one_line).unwrap_or_else(|| "http://deb.debian.org/debian".into())
}

fn mirror_from_sources(deb822: &[String], one_line: &str) -> Option<String> {
    for text in deb822 {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
            };
            let suites = field("Suites:").unwrap_or_default();
            // The main archive (not -security or -updates): it serves
            // every release, whichever one the host runs.
            if suites.split_whitespace().any(|s| !s.contains('-')) {
                if let Some(uri) =
                    field("URIs:").and_then(|u| u.split_whitespace().next().map(String::from))
                {
                    return Some(uri);
                }
            }
        }
    }
    one_line.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        let suite = f
            .iter()
            .skip(1)
            .find(|x| !x.starts_with('[') && !x.contains("://") && !x.ends_with(']'));
        (f.first() == Some(&"deb") && suite.is_some_and(|s| !s.contains('-')))
            .then(|| f.iter().find(|x| x.contains("://")).map(|s| s.to_string()))
            .flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mirror_is_read_from_deb822_then_one_line_sources() {
        let deb822 = vec![
            "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n\
             Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n"
                .to_string(),
        ];
        assert_eq!(
            mirror_from_sources(&deb822, "").as_deref(),
            Some("http://mirror.example/debian")
        );
        assert_eq!(
            mirror_from_sources(
                &[],
                "# c\ndeb http://s.example/debian-security bookworm-security main\n\
                 deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n"
            )
            .as_deref(),
            Some("http://m.example/debian")
        );
        assert_eq!(mirror_from_sources(&[], ""), None);
    }

    #[test]
    fn the_recipe_names_its_packages_so_a_new_list_builds_anew() {
        assert_eq!(recipe_id(&[]), RECIPE);
        let a = recipe_id(&["docker.io".into(), "docker-compose".into()]);
        assert_eq!(a, format!("{RECIPE}+docker-compose,docker.io"));
        assert_eq!(
            a,
            recipe_id(&[
                "docker-compose".into(),
                "docker.io".into(),
                "docker.io".into()
            ])
        );
        assert_ne!(a, recipe_id(&["docker.io".into()]));
        let dir = tempfile::tempdir().unwrap();
        write_metadata(dir.path(), Release::Trixie, &["docker.io".into()]).unwrap();
        let m: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join("metadata.yaml")).unwrap(),
        )
        .unwrap();
        assert_eq!(
            m["properties"][RECIPE_PROPERTY],
            recipe_id(&["docker.io".into()])
        );
        assert_eq!(m["properties"]["release"], "trixie");
        assert_eq!(
            m["properties"]["description"],
            "Terrarium Debian 13 (trixie) base + docker.io"
        );
    }

    #[test]
    fn seed_template_prefers_the_new_key_and_has_no_escapes() {
        let t = seed_template("cloud-init.user-data", "user.user-data");
        assert!(t.starts_with("{% if config_get(\"cloud-init.user-data\", \"\") != \"\" %}"));
        assert!(t.contains("{{ properties.default }}"));
        assert!(!t.contains("\\n"));
    }
}
