//! Manifest signatures. Anyone who can write to the bucket can encrypt
//! a backup to the public recipient (every manifest names it), so
//! encryption alone says nothing about who made a backup. Each manifest
//! is signed with an Ed25519 key kept on the host beside the age
//! identity; import trusts only the public key in s3.toml.
//!
//! The key file is text: comment lines and one `TRM-SIGNING-KEY-<base64
//! of the 32-byte seed>` line. Public keys are written `ed25519:<base64>`.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use ed25519_dalek::Signer;
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::manifest::Manifest;
use crate::error::{Error, Result};

pub const KEY_FILE_NAME: &str = "s3-signing-key.txt";
pub const SCHEME: &str = "ed25519";
const KEY_TAG: &str = "TRM-SIGNING-KEY-";
/// Domain separation: a signature over a manifest is good for nothing else.
const CONTEXT: &[u8] = b"terrarium off-site manifest v1\n";

pub fn default_key_file() -> PathBuf {
    crate::settings::config_dir().join(KEY_FILE_NAME)
}

/// What a manifest carries: the signer's public key (to name it in
/// errors; never trusted by itself) and the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    pub scheme: String,
    pub public_key: String,
    pub value: String,
}

pub fn generate() -> Result<SigningKey> {
    let seed: [u8; 32] = crate::random::bytes(32)?
        .try_into()
        .expect("32 bytes were asked for");
    Ok(SigningKey::from_bytes(&seed))
}

pub fn public_text(key: &VerifyingKey) -> String {
    format!("{SCHEME}:{}", B64.encode(key.as_bytes()))
}

pub fn parse_public(text: &str) -> Result<VerifyingKey> {
    let bad = |why: &str| {
        Error::Usage(format!(
            "'{text}' is not an Ed25519 public key (ed25519:BASE64): {why}"
        ))
    };
    let b64 = text
        .trim()
        .strip_prefix("ed25519:")
        .ok_or_else(|| bad("no ed25519: prefix"))?;
    let bytes: [u8; 32] = B64
        .decode(b64)
        .map_err(|e| bad(&e.to_string()))?
        .try_into()
        .map_err(|_| bad("not 32 bytes"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| bad(&e.to_string()))
}

/// The text of a key file (written 0600 by the caller).
pub fn key_file_text(key: &SigningKey) -> String {
    format!(
        "# Terrarium off-site signing key, created {}\n# public key: {}\n# Keep a copy with the age identity: a restore on a new server needs both.\n{KEY_TAG}{}\n",
        crate::time::utc(&chrono::Utc::now()),
        public_text(&key.verifying_key()),
        B64.encode(key.to_bytes())
    )
}

pub fn parse_key(text: &str) -> Option<SigningKey> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with(KEY_TAG))?;
    let seed: [u8; 32] = B64.decode(&line[KEY_TAG.len()..]).ok()?.try_into().ok()?;
    Some(SigningKey::from_bytes(&seed))
}

pub fn read_key(file: &Path) -> Result<SigningKey> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("reading signing key {}: {e}", file.display())))?;
    parse_key(&text).ok_or_else(|| {
        Error::Usage(format!(
            "{} holds no Terrarium signing key ({KEY_TAG}...)",
            file.display()
        ))
    })
}

/// The bytes a signature covers: the manifest without its signature, as
/// serde writes it (field order is the struct's, so it is stable).
fn message(m: &Manifest) -> Vec<u8> {
    let mut unsigned = m.clone();
    unsigned.signature = None;
    let mut msg = CONTEXT.to_vec();
    msg.extend(serde_json::to_vec(&unsigned).expect("a manifest serializes"));
    msg
}

pub fn sign(m: &mut Manifest, key: &SigningKey) {
    let sig = key.sign(&message(m));
    m.signature = Some(Signature {
        scheme: SCHEME.into(),
        public_key: public_text(&key.verifying_key()),
        value: B64.encode(sig.to_bytes()),
    });
}

/// Why a manifest is not to be trusted, or `Ok` when `trusted` signed it.
pub fn check(m: &Manifest, trusted: Option<&VerifyingKey>) -> std::result::Result<(), String> {
    let Some(sig) = &m.signature else {
        return Err("its manifest is not signed".into());
    };
    let Some(trusted) = trusted else {
        return Err(
            "this host has no signing key to check it with (run `trm-snap s3 set --signing-key-file FILE` with the saved key)"
                .into(),
        );
    };
    if sig.scheme != SCHEME {
        return Err(format!(
            "its manifest is signed with '{}', not ed25519",
            sig.scheme
        ));
    }
    let ours = public_text(trusted);
    if sig.public_key != ours {
        return Err(format!(
            "its manifest is signed by {}, not by this host's signing key {ours}",
            sig.public_key
        ));
    }
    let bytes: [u8; 64] = B64
        .decode(&sig.value)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or("its manifest's signature is not 64 bytes of base64")?;
    trusted
        .verify_strict(&message(m), &ed25519_dalek::Signature::from_bytes(&bytes))
        .map_err(|_| {
            "its manifest's signature does not match its contents (altered after signing)".into()
        })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::offsite::manifest::tests::sample;

    #[test]
    fn a_signed_manifest_checks_and_any_change_breaks_it() {
        let key = generate().unwrap();
        let trusted = key.verifying_key();
        let mut m = sample("web", "20261201T000000Z");
        assert_eq!(
            check(&m, Some(&trusted)).unwrap_err(),
            "its manifest is not signed"
        );
        sign(&mut m, &key);
        assert_eq!(check(&m, Some(&trusted)), Ok(()));
        // Through JSON and back, as it travels.
        let again: Manifest = serde_json::from_slice(&serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(check(&again, Some(&trusted)), Ok(()));

        let mut later = m.clone();
        later.created = "2099-01-01T00:00:00Z".into();
        assert!(check(&later, Some(&trusted))
            .unwrap_err()
            .contains("altered"));
        let mut moved = m.clone();
        moved.instance = "db".into();
        assert!(check(&moved, Some(&trusted))
            .unwrap_err()
            .contains("altered"));

        let other = generate().unwrap();
        let mut forged = m.clone();
        sign(&mut forged, &other);
        let e = check(&forged, Some(&trusted)).unwrap_err();
        assert!(e.contains("not by this host's signing key"), "{e}");
        // A forger who writes our public key beside their signature.
        forged.signature.as_mut().unwrap().public_key = public_text(&trusted);
        assert!(check(&forged, Some(&trusted))
            .unwrap_err()
            .contains("altered"));
        assert!(check(&m, None).unwrap_err().contains("no signing key"));
    }

    #[test]
    fn keys_round_trip_through_their_files() {
        let key = generate().unwrap();
        let text = key_file_text(&key);
        assert_eq!(parse_key(&text).unwrap().to_bytes(), key.to_bytes());
        let public = public_text(&key.verifying_key());
        assert!(text.contains(&public));
        assert_eq!(parse_public(&public).unwrap(), key.verifying_key());
        assert!(parse_public("ed25519:AAAA").is_err());
        assert!(parse_public("age1xyz").is_err());
        assert!(parse_key("# nothing here\n").is_none());
    }
}
