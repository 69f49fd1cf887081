//! The manifest: written last, it is what makes a backup exist. It says
//! what was uploaded (size, SHA-256), how (zstd, age to which recipient)
//! and from what (instance, snapshot, LXD export options).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// 2: a ZFS chain link (`zfs`); LXD exports still write 1, so hosts
/// before chains read them. A reader too old for a link says "upgrade"
/// instead of failing its signature (it would drop `zfs`).
pub const FORMAT_VERSION: u32 = 2;

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
    /// A link of a ZFS stream chain (`zfs_chain`); absent for an LXD
    /// export, as in every manifest before chains (so their signatures hold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zfs: Option<ZfsLink>,
    pub terrarium_version: String,
    /// Ed25519 over the rest (see `signing`); import refuses a manifest without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<super::signing::Signature>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Encryption {
    /// `age` (X25519 recipient); decrypt with `age -d -i IDENTITY`.
    pub scheme: String,
    pub recipient: String,
    pub recipient_fingerprint: String,
}

/// The keys as the exporter wrote them. Informational only: every key
/// Terrarium reads or deletes is derived from the folder it listed.
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

/// One `zfs send` stream: full (no parent) or incremental from the
/// parent's snapshot. Import applies a chain oldest first, after checking
/// every link is in the bucket, trusted, and the one its child names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZfsLink {
    /// The dataset that was sent.
    pub dataset: String,
    /// Its snapshot (after the `@`) this link brings a restore to.
    pub snapshot: String,
    pub parent: Option<Parent>,
    /// Links since the chain's full stream (0 for the full one).
    pub depth: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parent {
    pub id: String,
    /// SHA-256 of the parent's uploaded object, as its manifest says.
    pub sha256: String,
    pub snapshot: String,
}

/// What an upload in progress leaves beside its data, so a crash can be
/// cleaned up by the next export. Only `upload_id`, `host` and `started`
/// are used; the data key comes from the marker's folder.
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

    /// A manifest belongs to the folder it was listed in: a copy planted
    /// in another instance's folder, or under another id, is refused.
    pub fn check_folder(&self, instance: &str, id: &str) -> std::result::Result<(), String> {
        if self.instance != instance || self.id != id {
            return Err(format!(
                "its manifest names {}/{} but lies in folder {instance}/{id}",
                self.instance, self.id
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A plausible manifest for tests.
    pub fn sample(instance: &str, id: &str) -> Manifest {
        Manifest {
            format_version: FORMAT_VERSION,
            id: id.into(),
            instance: instance.into(),
            project: "default".into(),
            snapshot: "s".into(),
            created: crate::offsite::catalog::id_time(id)
                .map(|t| t.to_rfc3339())
                .unwrap_or_default(),
            host: "h".into(),
            size: 1000,
            sha256: "00".repeat(32),
            tarball_size: 4000,
            compression: "zstd".into(),
            compression_level: 3,
            encryption: Encryption {
                scheme: "age".into(),
                recipient: "age1x".into(),
                recipient_fingerprint: String::new(),
            },
            objects: Objects {
                data: format!("terrarium/{instance}/{id}/data.tar.zst.age"),
                manifest: format!("terrarium/{instance}/{id}/manifest.json"),
            },
            parts: 1,
            part_size: 8 << 20,
            lxd_export: LxdExport {
                instance_only: true,
                optimized_storage: false,
                storage_driver: "btrfs".into(),
            },
            zfs: None,
            terrarium_version: "0".into(),
            signature: None,
        }
    }

    #[test]
    fn a_manifest_must_match_its_folder() {
        let m = sample("web", "20261201T000000Z");
        assert!(m.check_folder("web", "20261201T000000Z").is_ok());
        let e = m.check_folder("db", "20261201T000000Z").unwrap_err();
        assert!(e.contains("lies in folder db/20261201T000000Z"), "{e}");
        assert!(m.check_folder("web", "20261202T000000Z").is_err());
    }
}
