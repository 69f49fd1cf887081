//! Off-site backups: an instance's LXD export, compressed with zstd,
//! encrypted with age, streamed to S3 in parts; a manifest written last
//! says the backup is complete. Import checks size and SHA-256 before
//! anything is created.
//!
//! Layout under the prefix, one folder per backup:
//! `<prefix>/<instance>/<id>/data.tar.zst.age`, `manifest.json`, and
//! `upload.json` while an upload runs (what a crashed one left behind is
//! swept by the next export).

pub mod catalog;
pub mod export;
pub mod import;
pub mod manifest;
pub mod prune;
pub mod settings;
pub mod upload;

pub use settings::S3Settings;

pub const DATA_NAME: &str = "data.tar.zst.age";
pub const MANIFEST_NAME: &str = "manifest.json";
pub const MARKER_NAME: &str = "upload.json";

/// `<prefix>/<instance>/<id>/`: the folder of one backup.
pub fn backup_dir(s: &S3Settings, instance: &str, id: &str) -> String {
    format!("{}{instance}/{id}/", s.key_prefix())
}

/// This host's name, recorded in manifests and upload markers.
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "unknown".into())
}
