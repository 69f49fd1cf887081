//! For scripts/bench-chain.sh: one off-site export of a ZFS dataset
//! through Terrarium's chain code (what `trm-snap export` runs for an
//! instance on a ZFS pool with `[offsite] zfs_full_every`), printed as
//! JSON. LXD cannot use zfs-fuse here, so the bench names the dataset.
//!
//! Usage: bench-chain DATASET INSTANCE PROJECT FULL_EVERY
//! (settings from TRM_CONFIG_DIR, as `trm-snap s3 set` wrote them).

use std::sync::Arc;

use terrarium_core::offsite::{upload::NoProgress, zfs_chain, S3Settings};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dataset, instance, project, full_every] = args.as_slice() else {
        return Err("usage: bench-chain DATASET INSTANCE PROJECT FULL_EVERY".into());
    };
    let src = zfs_chain::Source {
        instance: instance.clone(),
        project: project.clone(),
        dataset: dataset.clone(),
        ..Default::default()
    };
    let s3 = S3Settings::require()?;
    let done = zfs_chain::export(
        &s3,
        &src,
        full_every.parse()?,
        Default::default(),
        Arc::new(NoProgress),
    )?;
    println!("{}", serde_json::to_string(&done)?);
    Ok(())
}
