//! Key-only SSH: a drop-in that sorts first in `sshd_config.d` (sshd keeps
//! the first value it reads, so a later `50-cloud-init.conf` cannot turn
//! passwords back on), validated with `sshd -t` before it is put in place,
//! read back with `sshd -T`, and a guard against locking the owner out.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::fs::atomic_write;
use crate::process::{Cmd, Tool};

pub const SSHD: Tool = Tool {
    names: &["sshd", "/usr/sbin/sshd"],
    env: "TRM_SSHD",
    hint: "install it with `apt-get install openssh-server`",
};

/// Sorts before anything a distribution or cloud image drops in.
pub const DROP_IN: &str = "00-terrarium.conf";

/// What the drop-in sets, as `sshd -T` reports it (lower-case keys; sshd
/// prints `prohibit-password` as `without-password`).
pub const EFFECTIVE: &[(&str, &str)] = &[
    ("passwordauthentication", "no"),
    ("kbdinteractiveauthentication", "no"),
    ("permitemptypasswords", "no"),
    ("permitrootlogin", "without-password"),
    ("pubkeyauthentication", "yes"),
    ("authenticationmethods", "publickey"),
    ("maxauthtries", "3"),
    ("logingracetime", "30"),
];

pub fn drop_in() -> String {
    "# Written by trm-harden: key-only SSH. sshd keeps the first value it reads,\n\
     # so this file sorts first and later drop-ins cannot turn passwords back on.\n\
     PasswordAuthentication no\n\
     KbdInteractiveAuthentication no\n\
     PermitEmptyPasswords no\n\
     PermitRootLogin prohibit-password\n\
     PubkeyAuthentication yes\n\
     AuthenticationMethods publickey\n\
     MaxAuthTries 3\n\
     LoginGraceTime 30\n"
        .to_string()
}

/// sshd with its main configuration file.
#[derive(Debug, Clone)]
pub struct Sshd {
    pub config: PathBuf,
}

/// `sshd -T`: keyword to values (repeated keywords such as `port` collect).
pub type Effective = BTreeMap<String, Vec<String>>;

impl Sshd {
    fn cmd(&self, flag: &str, config: &Path) -> Result<Cmd> {
        // sshd refuses to start, or even test, without its privilege
        // separation directory; systemd creates it only while sshd runs.
        let _ = std::fs::create_dir_all("/run/sshd");
        Ok(Cmd::tool(&SSHD)?.arg(flag).arg("-f").arg(config))
    }

    /// `sshd -t` on a configuration file.
    pub fn test(&self, config: &Path) -> Result<()> {
        self.cmd("-t", config)?.run().map(drop)
    }

    /// The effective settings (`sshd -T`).
    pub fn effective(&self) -> Result<Effective> {
        let out = self.cmd("-T", &self.config)?.run()?;
        Ok(parse_effective(&out.stdout_str()))
    }

    /// Check `candidate` as if it were the drop-in, before it is written: a
    /// throwaway main file includes it first, then the real configuration.
    pub fn test_candidate(&self, candidate: &str) -> Result<()> {
        let dir =
            tempfile::tempdir().map_err(|e| Error::io("creating a temporary directory", e))?;
        let drop_in = dir.path().join(DROP_IN);
        let main = dir.path().join("sshd_config");
        atomic_write(&drop_in, candidate.as_bytes(), 0o600)?;
        let text = format!(
            "Include {}\nInclude {}\n",
            drop_in.display(),
            self.config.display()
        );
        atomic_write(&main, text.as_bytes(), 0o600)?;
        self.test(&main)
    }

    /// Write the drop-in (checked first), test the whole configuration and
    /// put the old file back if sshd rejects it.
    pub fn install(&self, path: &Path, content: &str) -> Result<()> {
        self.test_candidate(content)?;
        let before = std::fs::read(path).ok();
        atomic_write(path, content.as_bytes(), 0o644)?;
        if let Err(e) = self.test(&self.config) {
            match before {
                Some(b) => atomic_write(path, &b, 0o644)?,
                None => {
                    let _ = std::fs::remove_file(path);
                }
            }
            return Err(e);
        }
        Ok(())
    }
}

pub fn parse_effective(text: &str) -> Effective {
    let mut out = Effective::new();
    for line in text.lines() {
        if let Some((k, v)) = line.trim().split_once(' ') {
            out.entry(k.to_ascii_lowercase())
                .or_default()
                .push(v.trim().to_string());
        }
    }
    out
}

/// The keywords whose effective value is not what the drop-in sets.
pub fn mismatches(eff: &Effective) -> Vec<String> {
    EFFECTIVE
        .iter()
        .filter_map(|(k, want)| {
            let have = eff.get(*k).and_then(|v| v.first()).map(String::as_str);
            let ok = have == Some(want) || (*k == "permitrootlogin" && have == Some("no"));
            (!ok).then(|| format!("{k} is {} (want {want})", have.unwrap_or("unset")))
        })
        .collect()
}

/// The TCP ports sshd listens on.
pub fn ports(eff: &Effective) -> Vec<u16> {
    let mut p: Vec<u16> = eff
        .get("port")
        .into_iter()
        .flatten()
        .filter_map(|v| v.parse().ok())
        .collect();
    if p.is_empty() {
        p.push(22);
    }
    p.sort_unstable();
    p.dedup();
    p
}

/// Reload a running sshd: SIGHUP to the pid in its pid file (sshd re-reads
/// its configuration; no init system needed). A missing sshd is said.
pub fn reload(pid_file: &Path) -> String {
    use nix::sys::signal::{kill, Signal};
    let pid = std::fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
        .map(nix::unistd::Pid::from_raw);
    match pid {
        Some(p) if kill(p, None).is_ok() => match kill(p, Signal::SIGHUP) {
            Ok(()) => format!("reloaded sshd (pid {p}, SIGHUP)"),
            Err(e) => format!("could not signal sshd (pid {p}): {e}"),
        },
        _ => format!(
            "sshd is not running (no live pid in {}): nothing reloaded; it reads the drop-in when it starts",
            pid_file.display()
        ),
    }
}

/// Who could still log in once passwords are off, and where we looked.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct KeyCheck {
    /// Accounts with a login shell and at least one authorized key.
    pub with_keys: Vec<String>,
    /// Every authorized-keys file looked at.
    pub looked_at: Vec<String>,
}

/// Accounts that can log in (a shell from /etc/shells, not nologin/false;
/// root only if sshd permits it) and their keys, at the paths sshd's
/// effective `AuthorizedKeysFile` names.
pub fn authorized_keys(eff: &Effective, passwd: &str, shells: &str) -> KeyCheck {
    let shells: Vec<&str> = shells
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let files: Vec<String> = eff
        .get("authorizedkeysfile")
        .map(|v| {
            v.iter()
                .flat_map(|s| s.split_whitespace())
                .map(String::from)
                .collect()
        })
        .unwrap_or_else(|| {
            vec![
                ".ssh/authorized_keys".into(),
                ".ssh/authorized_keys2".into(),
            ]
        });
    let root_ok = eff
        .get("permitrootlogin")
        .and_then(|v| v.first())
        .is_none_or(|v| v != "no");
    let mut out = KeyCheck {
        with_keys: Vec::new(),
        looked_at: Vec::new(),
    };
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        let [user, _, uid, _, _, home, shell] = f[..] else {
            continue;
        };
        let login = shells.contains(&shell)
            || (shells.is_empty() && !shell.ends_with("nologin") && !shell.ends_with("false"));
        if !login || (uid == "0" && !root_ok) {
            continue;
        }
        for pattern in &files {
            if pattern == "none" {
                continue;
            }
            let p = pattern
                .replace("%%", "\u{0}")
                .replace("%h", home)
                .replace("%u", user)
                .replace("%U", uid)
                .replace('\u{0}', "%");
            let path = if p.starts_with('/') {
                p
            } else {
                format!("{}/{p}", home.trim_end_matches('/'))
            };
            let has_key = std::fs::read_to_string(&path).is_ok_and(|t| {
                t.lines()
                    .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
            });
            if has_key && !out.with_keys.iter().any(|u| u == user) {
                out.with_keys.push(user.to_string());
            }
            out.looked_at.push(path);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn effective_settings_parse_and_compare() {
        let eff = parse_effective(
            "port 22\nport 2222\npasswordauthentication no\nkbdinteractiveauthentication no\n\
             permitemptypasswords no\npermitrootlogin without-password\npubkeyauthentication yes\n\
             authenticationmethods publickey\nmaxauthtries 3\nlogingracetime 30\n",
        );
        assert!(mismatches(&eff).is_empty(), "{:?}", mismatches(&eff));
        assert_eq!(ports(&eff), vec![22, 2222]);
        let mut loose = eff.clone();
        loose.insert("passwordauthentication".into(), vec!["yes".into()]);
        assert_eq!(
            mismatches(&loose),
            vec!["passwordauthentication is yes (want no)"]
        );
    }

    #[test]
    fn drop_in_sets_what_the_audit_checks() {
        let text = drop_in().to_ascii_lowercase();
        for (k, v) in EFFECTIVE {
            let v = if *v == "without-password" {
                "prohibit-password"
            } else {
                v
            };
            assert!(text.contains(&format!("\n{k} {v}\n")), "{k}");
        }
    }

    #[test]
    fn lockout_guard_reads_the_files_sshd_would() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/alice"), "# comment only\n").unwrap();
        let passwd = format!(
            "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::{d}/alice:/bin/bash\ndaemon:x:1:1::/usr/sbin:/usr/sbin/nologin\n"
        );
        let mut eff = parse_effective(&format!(
            "authorizedkeysfile {d}/keys/%u\npermitrootlogin no\n"
        ));
        let shells = "# /etc/shells\n/bin/bash\n";
        let k = authorized_keys(&eff, &passwd, shells);
        assert!(k.with_keys.is_empty());
        assert_eq!(
            k.looked_at,
            vec![format!("{d}/keys/alice")],
            "root is not allowed, daemon has no shell"
        );
        std::fs::write(dir.path().join("keys/alice"), "ssh-ed25519 AAAA alice\n").unwrap();
        assert_eq!(
            authorized_keys(&eff, &passwd, shells).with_keys,
            vec!["alice"]
        );
        eff.insert(
            "authorizedkeysfile".into(),
            vec![".ssh/authorized_keys".into()],
        );
        assert_eq!(
            authorized_keys(&eff, &passwd, shells).looked_at,
            vec![format!("{d}/alice/.ssh/authorized_keys")]
        );
    }
}
