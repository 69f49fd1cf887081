//! Off-site backups: an instance's LXD export, compressed with zstd,
//! encrypted with age, streamed to S3 in parts; a manifest written last
//! says the backup is complete. Import checks size and SHA-256 before
//! anything is created.
//!
//! Layout under the prefix, one folder per backup:
//! `<prefix>/<instance>/<id>/data.tar.zst.age`, `manifest.json`, and
//! `upload.json` while an upload runs (what a crashed one left behind is
//! swept by the next export).
//!
//! The bucket is untrusted: every manifest must carry this host's
//! signature (`signing`), must match the folder it lies in, and every key
//! read or deleted is derived from the listed folder, never from text
//! inside a manifest or marker. The S3 client refuses keys outside the
//! prefix.

pub mod catalog;
pub mod export;
pub mod import;
pub mod manifest;
pub mod memory;
pub mod prune;
pub mod s3;
pub mod scheduled;
pub mod settings;
pub mod signing;
pub mod upload;
pub mod zfs_chain;

pub use settings::S3Settings;

pub const DATA_NAME: &str = "data.tar.zst.age";
pub const MANIFEST_NAME: &str = "manifest.json";
pub const MARKER_NAME: &str = "upload.json";

/// `<prefix>/<instance>/<id>/`: the folder of one backup.
pub fn backup_dir(s: &S3Settings, instance: &str, id: &str) -> String {
    format!("{}{instance}/{id}/", s.key_prefix())
}

/// The data object's key in a backup folder.
pub fn data_key(dir: &str) -> String {
    format!("{dir}{DATA_NAME}")
}

/// The manifest's key in a backup folder.
pub fn manifest_key(dir: &str) -> String {
    format!("{dir}{MANIFEST_NAME}")
}

/// This host's name, recorded in manifests and upload markers.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}
