//! The cookie keys: a 0600 file of base64 keys, one per line, newest
//! first. New sessions are sealed with the newest; a session sealed with
//! the one before still opens, so a rotation signs no one out until the
//! next rotation retires that key.

use std::path::Path;

use base64::Engine;
use serde::Serialize;

use super::GateSettings;
use crate::error::{Error, Result};
use crate::output::Human;

/// `cookie::Key` wants 64 bytes: 32 to sign, 32 to encrypt.
pub const KEY_BYTES: usize = 64;
/// The newest key and the one before it.
pub const KEPT: usize = 2;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The keys in `path`, newest first; at least one, each of full length.
pub fn read(path: &Path) -> Result<Vec<Vec<u8>>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::io(
            format!("reading the gate's cookie keys {}", path.display()),
            e,
        )
    })?;
    parse(&text).map_err(|why| Error::Usage(format!("{}: {why}", path.display())))
}

pub fn parse(text: &str) -> std::result::Result<Vec<Vec<u8>>, String> {
    let mut keys = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let key = B64
            .decode(line)
            .map_err(|e| format!("line {}: not base64 ({e})", n + 1))?;
        if key.len() != KEY_BYTES {
            return Err(format!(
                "line {}: a key is {KEY_BYTES} bytes, this one {}",
                n + 1,
                key.len()
            ));
        }
        keys.push(key);
    }
    if keys.is_empty() {
        return Err("no key: run `trm-gate keys rotate`".into());
    }
    Ok(keys)
}

pub fn render(keys: &[Vec<u8>]) -> String {
    let mut s = String::from("# trm-gate cookie keys, newest first (trm-gate keys rotate)\n");
    for k in keys.iter().take(KEPT) {
        s.push_str(&B64.encode(k));
        s.push('\n');
    }
    s
}

/// What a rotation did.
#[derive(Debug, Clone, Serialize)]
pub struct Rotated {
    pub keys_file: String,
    /// Keys now in the file (the new one and the previous, if any).
    pub keys: usize,
    /// Keys dropped: sessions sealed with them no longer open.
    pub retired: usize,
}

impl Human for Rotated {
    fn human(&self) -> String {
        format!(
            "new cookie key in {} ({} kept, {} retired); the gate reads it within a second",
            self.keys_file, self.keys, self.retired
        )
    }
}

/// A new newest key; the file is created when missing.
pub fn rotate(g: &GateSettings) -> Result<Rotated> {
    let path = Path::new(&g.keys_file);
    let old = if path.exists() {
        read(path)?
    } else {
        Vec::new()
    };
    let mut keys = vec![crate::random::bytes(KEY_BYTES)?];
    keys.extend(old.iter().cloned());
    let retired = keys.len().saturating_sub(KEPT);
    keys.truncate(KEPT);
    write(path, &keys)?;
    // The new file is root's: a running gate reads it as its own user.
    if let Ok(Some(user)) = crate::daemon::run_as("gate", &g.user) {
        super::supervise::give_secret(path, &user)?;
    }
    Ok(Rotated {
        keys_file: g.keys_file.clone(),
        keys: keys.len(),
        retired,
    })
}

/// Make the file with one key unless it exists.
pub fn ensure(g: &GateSettings) -> Result<bool> {
    let path = Path::new(&g.keys_file);
    if path.exists() {
        read(path)?;
        return Ok(false);
    }
    write(path, &[crate::random::bytes(KEY_BYTES)?])?;
    Ok(true)
}

fn write(path: &Path, keys: &[Vec<u8>]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    crate::fs::atomic_write(path, render(keys).as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_keeps_the_previous_key_and_retires_older_ones() {
        let dir = tempfile::tempdir().unwrap();
        let g = GateSettings {
            keys_file: dir.path().join("k").display().to_string(),
            ..GateSettings::default()
        };
        assert!(ensure(&g).unwrap());
        let first = read(Path::new(&g.keys_file)).unwrap();
        assert!(!ensure(&g).unwrap(), "an existing file is kept");
        let r = rotate(&g).unwrap();
        assert_eq!((r.keys, r.retired), (2, 0));
        let two = read(Path::new(&g.keys_file)).unwrap();
        assert_eq!(two[1], first[0], "the previous key is second");
        assert_ne!(two[0], first[0]);
        let r = rotate(&g).unwrap();
        assert_eq!((r.keys, r.retired), (2, 1));
        let three = read(Path::new(&g.keys_file)).unwrap();
        assert_eq!(three[1], two[0]);
        assert!(!three.contains(&first[0]), "the oldest is gone");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&g.keys_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn bad_key_files_are_named() {
        assert!(parse("").unwrap_err().contains("no key"));
        assert!(parse("!!!").unwrap_err().contains("line 1: not base64"));
        assert!(parse("AAAA").unwrap_err().contains("64 bytes"));
    }
}
