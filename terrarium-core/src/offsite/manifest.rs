//! The manifest: written last, it is what makes a backup exist. It says
//! what was uploaded (size, SHA-256), how (zstd, age to which recipient)
//! and from what (instance, snapshot, LXD export options).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

pub const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub id: String,
    pub instance: String,
    pub project: String,
    pub snapshot: String,
    /// RFC 3339, UTC: when the snapshot was exported.
    pub created: String,
    pub host: String,
    /// Bytes of the uploaded object (compressed and encrypted).
    pub size: u64,
    /// SHA-256 of the uploaded object, hex.
    pub sha256: String,
    /// Bytes of the LXD backup tarball before compression.
    pub tarball_size: u64,
    pub compression: String,
    #[serde(default)]
    pub compression_level: i32,
    pub encryption: Encryption,
    pub objects: Objects,
    pub parts: u32,
    pub part_size: u64,
    pub lxd_export: LxdExport,
    pub terrarium_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `age` (X25519 recipient); decrypt with `age -d -i IDENTITY`.
    pub scheme: String,
    pub recipient: String,
    pub recipient_fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Objects {
    pub data: String,
    pub manifest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LxdExport {
    pub instance_only: bool,
    pub optimized_storage: bool,
    pub storage_driver: String,
}

/// What an upload in progress leaves beside its data, so a crash can be
/// cleaned up by the next export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Marker {
    pub upload_id: String,
    pub data: String,
    pub host: String,
    pub started: String,
}

impl Manifest {
    pub fn parse(key: &str, bytes: &[u8]) -> Result<Manifest> {
        let m: Manifest = serde_json::from_slice(bytes)
            .map_err(|e| Error::parse(format!("manifest {key}"), e))?;
        if m.format_version > FORMAT_VERSION {
            return Err(Error::Usage(format!(
                "manifest {key} has format {} and this Terrarium reads up to {FORMAT_VERSION}: upgrade Terrarium",
                m.format_version
            )));
        }
        Ok(m)
    }
}
