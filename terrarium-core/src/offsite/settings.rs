//! Off-site settings in `/etc/terrarium/s3.toml` (mode 0600: it holds the
//! secret key). `s3 set` merges into what is saved, checks the result
//! with a real write and delete, and only then saves it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::offsite::s3::{Client, Target};
use crate::output::Human;

use super::signing;

pub const FILE_NAME: &str = "s3.toml";
pub const IDENTITY_FILE_NAME: &str = "s3-identity.txt";
/// S3's smallest part (but the last) and its largest.
pub const MIN_PART_MIB: u32 = 5;
pub const MAX_PART_MIB: u32 = 5 * 1024;

pub fn path() -> PathBuf {
    crate::settings::config_dir().join(FILE_NAME)
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Settings {
    pub endpoint: String,
    pub bucket: String,
    pub region: String,
    /// Keys start with `<prefix>/`; empty for the bucket's root.
    pub prefix: String,
    pub access_key: String,
    pub secret_key: String,
    /// The age public key backups are encrypted to.
    pub recipient: String,
    /// Where a generated identity was written (empty when the owner gave a recipient).
    #[serde(default)]
    pub identity_file: String,
    /// The Ed25519 key every manifest is signed with (mode 0600, beside
    /// the identity).
    #[serde(default)]
    pub signing_key_file: String,
    /// Its public key (`ed25519:...`): import trusts only manifests it signed.
    #[serde(default)]
    pub signing_public_key: String,
    /// Size of each uploaded part; memory is about (parallel + 1) x this.
    #[serde(default = "default_part_mib")]
    pub part_size_mib: u32,
    /// Parts uploaded at once.
    #[serde(default = "default_parallel")]
    pub parallel: u32,
    #[serde(default)]
    pub retention: Retention,
    /// zstd level, 1 (fastest) to 19: on a busy two-core host level 1
    /// streams about 10% faster than 3 for about 2% more bytes.
    #[serde(default = "default_level")]
    pub compression_level: i32,
    /// The export's memory budget: upload buffers first, zstd's
    /// workers get the rest (`memory`).
    #[serde(default = "super::memory::default_mib")]
    pub memory_mib: u32,
}

fn default_level() -> i32 {
    3
}

fn default_part_mib() -> u32 {
    8
}

fn default_parallel() -> u32 {
    2
}

/// How many exports `s3 prune` keeps per instance, newest of each period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    pub daily: u32,
    pub weekly: u32,
    pub monthly: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            daily: 7,
            weekly: 4,
            monthly: 6,
        }
    }
}

impl S3Settings {
    pub fn load() -> Result<Option<S3Settings>> {
        crate::settings::load_toml(&path())
    }

    pub fn require() -> Result<S3Settings> {
        Self::load()?.ok_or_else(|| {
            Error::Unavailable(format!(
                "off-site backups are not set up ({} is missing): run `trm-snap s3 set` first",
                path().display()
            ))
        })
    }

    pub fn target(&self) -> Target {
        Target {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            access_key: self.access_key.clone(),
            secret_key: self.secret_key.clone(),
        }
    }

    /// A client confined to the prefix.
    pub fn client(&self) -> Result<Client> {
        Ok(Client::new(&self.target())?.within(&self.key_prefix()))
    }

    /// The public key manifests must be signed with (None: not set up).
    pub fn trusted_signer(&self) -> Result<Option<ed25519_dalek::VerifyingKey>> {
        if self.signing_public_key.is_empty() {
            return Ok(None);
        }
        signing::parse_public(&self.signing_public_key).map(Some)
    }

    /// The key exports sign with; it must be the trusted one.
    pub fn signing_key(&self) -> Result<ed25519_dalek::SigningKey> {
        if self.signing_key_file.is_empty() {
            return Err(Error::Usage(
                "off-site backups are signed and this host has no signing key: run `trm-snap s3 set` (it generates one) or `trm-snap s3 set --signing-key-file FILE` with a saved key".into(),
            ));
        }
        let key = signing::read_key(Path::new(&self.signing_key_file))?;
        let public = signing::public_text(&key.verifying_key());
        if public != self.signing_public_key {
            return Err(Error::Usage(format!(
                "{} holds the signing key {public}, but s3.toml trusts {}: run `trm-snap s3 set --signing-key-file {}` to trust it",
                self.signing_key_file, self.signing_public_key, self.signing_key_file
            )));
        }
        Ok(key)
    }

    /// The identity file to decrypt with: the one given, else the one
    /// `s3 set` generated or was given.
    pub fn identity(&self, given: Option<&Path>) -> Result<PathBuf> {
        match given {
            Some(p) => Ok(p.to_path_buf()),
            None if !self.identity_file.is_empty() => Ok(self.identity_file.clone().into()),
            None => Err(Error::Usage(
                "pass --identity FILE (the age identity for this bucket's recipient)".into(),
            )),
        }
    }

    pub fn recipient(&self) -> Result<age::x25519::Recipient> {
        parse_recipient(&self.recipient)
    }

    /// `<prefix>/` or empty: what every key starts with.
    pub fn key_prefix(&self) -> String {
        if self.prefix.is_empty() {
            String::new()
        } else {
            format!("{}/", self.prefix)
        }
    }

    fn validate(&self) -> Result<()> {
        let missing: Vec<&str> = [
            ("--endpoint", &self.endpoint),
            ("--bucket", &self.bucket),
            ("--access-key", &self.access_key),
            ("--secret-key-file or --secret-key-stdin", &self.secret_key),
            ("--recipient or --generate-key", &self.recipient),
        ]
        .iter()
        .filter(|(_, v)| v.is_empty())
        .map(|(f, _)| *f)
        .collect();
        if !missing.is_empty() {
            return Err(Error::Usage(format!("missing {}", missing.join(", "))));
        }
        Client::new(&self.target())?;
        parse_recipient(&self.recipient)?;
        if !(MIN_PART_MIB..=MAX_PART_MIB).contains(&self.part_size_mib) {
            return Err(Error::Usage(format!(
                "part size {} MiB: S3 needs {MIN_PART_MIB} to {MAX_PART_MIB} MiB",
                self.part_size_mib
            )));
        }
        if !(1..=19).contains(&self.compression_level) {
            return Err(Error::Usage(format!(
                "compression level {}: 1 to 19",
                self.compression_level
            )));
        }
        if !(1..=16).contains(&self.parallel) {
            return Err(Error::Usage(format!(
                "parallel uploads {}: 1 to 16",
                self.parallel
            )));
        }
        super::memory::validate(self.memory_mib)?;
        // Whether the uploads fit does not depend on the cores.
        super::memory::plan(self.memory_mib, self.part_size_mib, self.parallel, 1)?;
        Ok(())
    }

    /// What may be shown: everything but the secret.
    pub fn shown(&self) -> Shown {
        Shown {
            recipient_fingerprint: fingerprint(&self.recipient),
            settings: S3Settings {
                secret_key: "(hidden)".into(),
                ..self.clone()
            },
            settings_file: path().display().to_string(),
            probe: None,
            warning: None,
        }
    }
}

pub fn parse_recipient(s: &str) -> Result<age::x25519::Recipient> {
    age::x25519::Recipient::from_str(s.trim()).map_err(|e| {
        Error::Usage(format!(
            "'{s}' is not an age X25519 public key (age1...): {e}"
        ))
    })
}

/// A short, stable name for a recipient, recorded in every manifest.
pub fn fingerprint(recipient: &str) -> String {
    format!("sha256:{:x}", Sha256::digest(recipient.trim().as_bytes()))
}

#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// With the secret key replaced by "(hidden)".
    #[serde(flatten)]
    pub settings: S3Settings,
    pub recipient_fingerprint: String,
    pub settings_file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

impl Human for Shown {
    fn human(&self) -> String {
        let c = &self.settings;
        let mut s = format!(
            "endpoint:   {}\nbucket:     {}\nregion:     {}\nprefix:     {}\naccess key: {}\nsecret key: {}\nrecipient:  {}\nidentity:   {}\nsigning:    {} ({})\nparts:      {} MiB x {} in flight\nmemory:     {} MiB\nzstd level: {}\nretention:  {} daily, {} weekly, {} monthly\nsettings:   {}",
            c.endpoint,
            c.bucket,
            c.region,
            if c.prefix.is_empty() { "(bucket root)" } else { &c.prefix },
            c.access_key,
            c.secret_key,
            c.recipient,
            if c.identity_file.is_empty() { "(kept by the owner)" } else { &c.identity_file },
            if c.signing_public_key.is_empty() { "(none: exports refuse)" } else { &c.signing_public_key },
            c.signing_key_file,
            c.part_size_mib,
                        c.parallel,
            c.memory_mib,
            c.compression_level,
            c.retention.daily,
            c.retention.weekly,
            c.retention.monthly,
            self.settings_file,
        );
        if let Some(p) = &self.probe {
            s.push_str(&format!("\nprobe:      {p}"));
        }
        if let Some(w) = &self.warning {
            let bar = "!".repeat(72);
            s.push_str(&format!("\n\n{bar}\n{w}\n{bar}"));
        }
        s
    }
}

/// Where `s3 set` reads the secret key from: never from argv.
#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Stdin,
}

/// The key pair choice of `s3 set`.
#[derive(Debug, Clone)]
pub enum KeyChoice {
    Keep,
    Recipient(String),
    /// Generate a key pair; the identity goes to this file.
    Generate(PathBuf),
    /// An identity the owner already has (a new server after a loss):
    /// its public key becomes the recipient.
    Existing(PathBuf),
}

#[derive(Debug, Clone, Default)]
pub struct SetRequest {
    pub endpoint: Option<String>,
    pub bucket: Option<String>,
    pub region: Option<String>,
    pub prefix: Option<String>,
    pub access_key: Option<String>,
    pub secret: Option<SecretSource>,
    pub key: Option<KeyChoice>,
    pub part_size_mib: Option<u32>,
    pub parallel: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub compression_level: Option<i32>,
    pub memory_mib: Option<u32>,
    /// A signing key file: written there by a key generation, else one
    /// the owner saved (its public key becomes the trusted one).
    pub signing_key_file: Option<PathBuf>,
}

pub fn default_identity_file() -> PathBuf {
    crate::settings::config_dir().join(IDENTITY_FILE_NAME)
}

fn read_secret(src: &SecretSource) -> Result<String> {
    let mut s = String::new();
    match src {
        SecretSource::File(p) => {
            s = std::fs::read_to_string(p).map_err(|e| {
                Error::Usage(format!("reading the secret key file {}: {e}", p.display()))
            })?;
        }
        SecretSource::Stdin => {
            std::io::stdin()
                .read_to_string(&mut s)
                .map_err(|e| Error::io("reading the secret key from stdin", e))?;
        }
    }
    let s = s.trim().to_string();
    if s.is_empty() {
        return Err(Error::Usage("the secret key is empty".into()));
    }
    Ok(s)
}

fn normalize_prefix(p: &str) -> Result<String> {
    let p = p.trim_matches('/').to_string();
    if p.split('/').any(|seg| seg == "." || seg == "..") || p.contains("//") {
        return Err(Error::Usage(format!(
            "prefix '{p}': no empty, . or .. segments"
        )));
    }
    Ok(p)
}

/// Merge, validate, probe, then save (and write a generated identity).
/// Nothing is written unless the probe passed.
pub fn set(req: SetRequest) -> Result<Shown> {
    let old = S3Settings::load()?;
    let mut s = old.clone().unwrap_or(S3Settings {
        endpoint: String::new(),
        bucket: String::new(),
        region: "us-east-1".into(),
        prefix: "terrarium".into(),
        access_key: String::new(),
        secret_key: String::new(),
        recipient: String::new(),
        identity_file: String::new(),
        signing_key_file: String::new(),
        signing_public_key: String::new(),
        part_size_mib: default_part_mib(),
        parallel: default_parallel(),
        retention: Retention::default(),
        compression_level: default_level(),
        memory_mib: super::memory::DEFAULT_MEMORY_MIB,
    });
    if let Some(v) = req.endpoint {
        s.endpoint = v.trim_end_matches('/').to_string();
    }
    if let Some(v) = req.bucket {
        s.bucket = v;
    }
    if let Some(v) = req.region {
        s.region = v;
    }
    if let Some(v) = req.prefix {
        s.prefix = normalize_prefix(&v)?;
    }
    if let Some(v) = req.access_key {
        s.access_key = v;
    }
    if let Some(src) = &req.secret {
        s.secret_key = read_secret(src)?;
    }
    if let Some(v) = req.part_size_mib {
        s.part_size_mib = v;
    }
    if let Some(v) = req.parallel {
        s.parallel = v;
    }
    let r = &mut s.retention;
    r.daily = req.keep_daily.unwrap_or(r.daily);
    r.weekly = req.keep_weekly.unwrap_or(r.weekly);
    r.monthly = req.keep_monthly.unwrap_or(r.monthly);
    if let Some(v) = req.compression_level {
        s.compression_level = v;
    }
    if let Some(v) = req.memory_mib {
        s.memory_mib = v;
    }
    let mut generated: Option<(PathBuf, String)> = None;
    let generating = matches!(req.key, Some(KeyChoice::Generate(_)));
    match req.key.unwrap_or(KeyChoice::Keep) {
        KeyChoice::Keep => {}
        KeyChoice::Recipient(r) => {
            s.recipient = parse_recipient(&r)?.to_string();
            s.identity_file = String::new();
        }
        KeyChoice::Existing(file) => {
            let ids = read_identities(&file)?;
            s.recipient = ids[0].to_public().to_string();
            s.identity_file = file.display().to_string();
        }
        KeyChoice::Generate(file) => {
            // Never overwrite a key: backups made with it would be lost.
            if file.exists() {
                return Err(Error::Usage(format!(
                    "{} already exists; it may be the only key to older backups. \
                     Pass --recipient with its public key, or --identity-file elsewhere",
                    file.display()
                )));
            }
            let id = age::x25519::Identity::generate();
            s.recipient = id.to_public().to_string();
            s.identity_file = file.display().to_string();
            generated = Some((file, id.to_string().expose_secret().to_string()));
        }
    }
    let new_signing = signing_choice(&mut s, req.signing_key_file, generating)?;
    s.validate()?;
    let probe = probe(&s).map_err(|e| match e {
        Error::Unavailable(m) => Error::Unavailable(format!("{m}; nothing was saved")),
        Error::Remote(m) => Error::Remote(format!("{m}; nothing was saved")),
        other => other,
    })?;
    if let Some((file, secret)) = &generated {
        let text = format!(
            "# created: {}\n# public key: {}\n{secret}\n",
            crate::time::utc(&chrono::Utc::now()),
            s.recipient
        );
        crate::fs::atomic_write(file, text.as_bytes(), 0o600)?;
    }
    if let Some((file, key)) = &new_signing {
        crate::fs::atomic_write(file, signing::key_file_text(key).as_bytes(), 0o600)?;
    }
    save(&s)?;
    let mut shown = s.shown();
    shown.probe = Some(probe);
    let mut warning = Vec::new();
    if let Some((file, _)) = &generated {
        warning.push(format!(
            "KEEP THIS SAFE: {} is the only key that decrypts these backups.\n\
             Copy it off this server now (a password manager, another machine).\n\
             If the server is lost with it, the backups cannot be read.\n\
             Public key: {}",
            file.display(),
            s.recipient
        ));
    }
    if let Some((file, _)) = &new_signing {
        warning.push(format!(
            "KEEP THIS SAFE TOO: {} signs every backup; import trusts only what it signed.\n\
             Save it with the identity. On a new server: trm-snap s3 set ... \
             --identity-file SAVED-IDENTITY --signing-key-file SAVED-SIGNING-KEY\n\
             Signing key: {}",
            file.display(),
            s.signing_public_key
        ));
    }
    if !warning.is_empty() {
        shown.warning = Some(warning.join("\n\n"));
    }
    Ok(shown)
}

/// Which signing key to trust: one the owner saved, or (when generating
/// keys, or when there is none yet) a new one. Returns a key to write.
/// An existing file is never overwritten: older backups need its public key.
fn signing_choice(
    s: &mut S3Settings,
    given: Option<PathBuf>,
    generating: bool,
) -> Result<Option<(PathBuf, ed25519_dalek::SigningKey)>> {
    let file = match given {
        Some(f) if !f.exists() && !generating => {
            return Err(Error::Usage(format!(
                "signing key {} does not exist (give the saved key, or add --generate-key to make one there)",
                f.display()
            )))
        }
        Some(f) => f,
        None if generating || s.signing_key_file.is_empty() => signing::default_key_file(),
        None => return Ok(None),
    };
    if file.exists() {
        let key = signing::read_key(&file)?;
        s.signing_key_file = file.display().to_string();
        s.signing_public_key = signing::public_text(&key.verifying_key());
        return Ok(None);
    }
    let key = signing::generate()?;
    s.signing_key_file = file.display().to_string();
    s.signing_public_key = signing::public_text(&key.verifying_key());
    Ok(Some((file, key)))
}

fn save(s: &S3Settings) -> Result<()> {
    let text = crate::settings::render_toml(
        "Terrarium off-site backup settings, written by `trm-snap s3 set`. Holds a secret: mode 0600.",
        s,
    );
    crate::fs::atomic_write(&path(), text.as_bytes(), 0o600)
}

/// Write and delete a small object under the prefix; say what worked.
pub fn probe(s: &S3Settings) -> Result<String> {
    let client = s.client()?;
    // Listing first: its error answers name the bucket or the credentials.
    client.list(&s.key_prefix())?;
    let key = format!(
        "{}.terrarium-probe-{}",
        s.key_prefix(),
        crate::random::hex(8)?
    );
    client.put(&key, b"terrarium probe: safe to delete\n")?;
    client.delete(&key)?;
    Ok(format!("listed, wrote and deleted s3://{}/{key}", s.bucket))
}

/// The x25519 identities in an age identity file, with their public keys.
pub fn read_identities(file: &Path) -> Result<Vec<age::x25519::Identity>> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| Error::Usage(format!("reading identity file {}: {e}", file.display())))?;
    let ids: Vec<age::x25519::Identity> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("AGE-SECRET-KEY-"))
        .filter_map(|l| age::x25519::Identity::from_str(l).ok())
        .collect();
    if ids.is_empty() {
        return Err(Error::Usage(format!(
            "{} holds no age X25519 identity (AGE-SECRET-KEY-...)",
            file.display()
        )));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipients_are_checked() {
        assert!(parse_recipient("age1nope").is_err());
        let id = age::x25519::Identity::generate();
        let r = id.to_public().to_string();
        assert_eq!(parse_recipient(&r).unwrap().to_string(), r);
        assert!(fingerprint(&r).starts_with("sha256:"));
        assert_eq!(fingerprint(&r).len(), "sha256:".len() + 64);
        assert_eq!(fingerprint(&r), fingerprint(&format!(" {r}\n")));
    }

    #[test]
    fn prefixes_are_normalized() {
        assert_eq!(normalize_prefix("/a/b/").unwrap(), "a/b");
        assert_eq!(normalize_prefix("").unwrap(), "");
        assert!(normalize_prefix("a/../b").is_err());
    }

    fn blank() -> S3Settings {
        S3Settings {
            endpoint: "http://x".into(),
            bucket: "b".into(),
            region: "r".into(),
            prefix: "p".into(),
            access_key: "AK".into(),
            secret_key: "S".into(),
            recipient: "age1x".into(),
            identity_file: String::new(),
            signing_key_file: String::new(),
            signing_public_key: String::new(),
            part_size_mib: 8,
            parallel: 2,
            retention: Retention::default(),
            compression_level: 3,
            memory_mib: 64,
        }
    }

    #[test]
    fn a_saved_signing_key_is_adopted_and_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("k.txt");
        let mut s = blank();
        let e = signing_choice(&mut s, Some(file.clone()), false).unwrap_err();
        assert!(e.to_string().contains("does not exist"), "{e}");
        assert_eq!(s, blank(), "nothing changed");

        let (at, key) = signing_choice(&mut s, Some(file.clone()), true)
            .unwrap()
            .expect("a new key to write");
        assert_eq!(at, file);
        assert_eq!(
            s.signing_public_key,
            signing::public_text(&key.verifying_key())
        );
        std::fs::write(&file, signing::key_file_text(&key)).unwrap();

        // Given again (a new server), or while generating: adopted, not new.
        for generating in [false, true] {
            let mut fresh = blank();
            assert!(signing_choice(&mut fresh, Some(file.clone()), generating)
                .unwrap()
                .is_none());
            assert_eq!(fresh.signing_public_key, s.signing_public_key);
            assert_eq!(fresh.signing_key_file, file.display().to_string());
        }
        // Already set up, nothing asked: kept as it is.
        let before = s.clone();
        assert!(signing_choice(&mut s, None, false).unwrap().is_none());
        assert_eq!(s, before);
        assert_eq!(s.signing_key().unwrap().to_bytes(), key.to_bytes());
        s.signing_public_key = signing::public_text(&signing::generate().unwrap().verifying_key());
        let e = s.signing_key().unwrap_err();
        assert!(e.to_string().contains("but s3.toml trusts"), "{e}");
    }

    #[test]
    fn the_secret_is_never_shown() {
        let s = S3Settings {
            secret_key: "TOPSECRET".into(),
            ..blank()
        };
        let shown = s.shown();
        assert!(!serde_json::to_string(&shown).unwrap().contains("TOPSECRET"));
        assert!(!shown.human().contains("TOPSECRET"));
    }
}
