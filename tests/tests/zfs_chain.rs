//! Incremental off-site chains against a real `zfs` (zfs-fuse, which LXD
//! cannot use as a pool: its driver loads the kernel module) and a real,
//! signature-checking S3 server (s3s-fs): a full stream, then two
//! incrementals of a dataset named as LXD names an instance's; restored
//! with `trm-snap import --to-dataset` to the newest state; a missing
//! middle link refused before anything is created; a full one again
//! every N.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use serde_json::Value;
use terrarium_core::offsite::{upload::NoProgress, zfs_chain, S3Settings};
use terrarium_core::zfs;
use terrarium_tests::e2e;
use terrarium_tests::s3s::S3Server;
use terrarium_tests::zpool::{ok, TestPool};

const POOL: &str = "trme2echain";
const PROJECT: &str = "trm-e2e-chain";

fn mountpoint(ds: &str) -> String {
    TestPool::mountpoint(ds)
}

/// SHA-256 of every file under a dataset's mountpoint, by relative path.
fn contents(ds: &str) -> String {
    let mnt = mountpoint(ds);
    ok(&[
        "sh",
        "-c",
        &format!("cd '{mnt}' && find . -type f | LC_ALL=C sort | xargs sha256sum"),
    ])
}

fn dd(file: &str, mib: u32, seek: u32) {
    ok(&[
        "dd",
        "if=/dev/urandom",
        &format!("of={file}"),
        "bs=1M",
        &format!("count={mib}"),
        &format!("seek={seek}"),
        "conv=notrunc",
        "status=none",
    ]);
}

#[test]
fn zfs_send_chains_to_s3_and_back() {
    if !e2e::enabled("zfs_chain") {
        return;
    }
    let pool = TestPool::create(POOL, "512M");
    run(pool.dir.path());
}

fn run(dir: &Path) {
    let server = S3Server::start();
    let config = dir.join("etc");
    let state = dir.join("state");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("terrarium.toml"),
        format!("project = \"{PROJECT}\"\n"),
    )
    .unwrap();
    // This process reads the same settings the CLI writes.
    std::env::set_var("TRM_CONFIG_DIR", &config);
    std::env::set_var("TRM_STATE_DIR", &state);
    let secret = dir.join("secret");
    std::fs::write(&secret, format!("{}\n", terrarium_tests::s3s::SECRET)).unwrap();
    let trm_snap = |args: &[&str]| {
        Command::new(e2e::bin_dir().join("trm-snap"))
            .args(args)
            .env("TRM_CONFIG_DIR", &config)
            .env("TRM_STATE_DIR", &state)
            .output()
            .unwrap()
    };
    let mut set = server.set_args(&secret);
    set.push("--generate-key".into());
    let set: Vec<&str> = set.iter().map(String::as_str).collect();
    e2e::assert_ok(&trm_snap(&set), "s3 set");
    let s3 = S3Settings::require().unwrap();

    let ds = zfs::instance_dataset(&format!("{POOL}/lxd"), PROJECT, "c1");
    ok(&["zfs", "create", "-p", &ds]);
    let root = mountpoint(&ds);
    let big = format!("{root}/big");
    dd(&big, 64, 0);
    std::fs::write(format!("{root}/notes"), "first\n").unwrap();
    let src = zfs_chain::Source {
        instance: "c1".into(),
        project: PROJECT.into(),
        dataset: ds.clone(),
        ..Default::default()
    };
    let export = |full_every: u32| {
        // Backup ids are to the second.
        std::thread::sleep(std::time::Duration::from_millis(1100));

        zfs_chain::export(
            &s3,
            &src,
            full_every,
            Default::default(),
            Arc::new(NoProgress),
        )
        .unwrap()
    };

    let full = export(3);
    let link = full.zfs.clone().unwrap();
    assert!(link.parent.is_none() && link.depth == 0, "{link:?}");
    assert!(
        full.tarball_size > 64 << 20,
        "the full stream carries the 64 MiB: {}",
        full.tarball_size
    );

    // 1 MiB of the 64 changed, a file added.
    dd(&big, 1, 10);
    std::fs::write(format!("{root}/notes"), "second\n").unwrap();
    let inc1 = export(3);
    let l1 = inc1.zfs.clone().unwrap();
    assert_eq!(l1.parent.as_ref().unwrap().id, full.id);
    assert_eq!(
        l1.parent.as_ref().unwrap().sha256,
        full.sha256,
        "the parent's hash is recorded"
    );
    assert_eq!(l1.depth, 1);
    assert!(
        inc1.size < full.size / 10,
        "an incremental uploads the change, not the dataset: {} of {}",
        inc1.size,
        full.size
    );

    dd(&big, 2, 40);
    std::fs::write(format!("{root}/third"), "third\n").unwrap();
    let inc2 = export(3);
    assert_eq!(
        inc2.zfs.as_ref().unwrap().parent.as_ref().unwrap().id,
        inc1.id
    );
    // Only the newest sent snapshot stays on the host, as the next base.
    let ours: Vec<String> = zfs::snapshots(&ds)
        .unwrap()
        .into_iter()
        .filter(|s| s.starts_with(zfs_chain::SNAPSHOT_PREFIX))
        .collect();
    assert_eq!(ours, [inc2.zfs.as_ref().unwrap().snapshot.clone()]);
    let newest = contents(&ds);

    // Restore with the CLI a user runs: the chain, oldest first.
    let target = format!("{POOL}/restored");
    let out = trm_snap(&["import", "c1", "--to-dataset", &target, "--format", "json"]);
    e2e::assert_ok(&out, "import --to-dataset");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["backup"], inc2.id.as_str());
    assert_eq!(v["links"], serde_json::json!([full.id, inc1.id, inc2.id]));
    // What the container wrote is not mounted by itself, and never runs
    // or acts as a device or setuid file on the host.
    for (prop, want) in [
        ("mounted", "no"),
        ("canmount", "noauto"),
        ("setuid", "off"),
        ("exec", "off"),
        ("devices", "off"),
    ] {
        assert_eq!(
            ok(&["zfs", "get", "-H", "-o", "value", prop, &target]),
            want,
            "{prop}"
        );
    }
    ok(&["zfs", "mount", &target]);
    assert_eq!(contents(&target), newest, "the newest state, byte for byte");

    // A full stream again every 3 links.
    let again = export(3);
    assert!(again.zfs.as_ref().unwrap().parent.is_none(), "full every 3");

    // Take the middle link away: refused, naming it, and nothing created.
    let folder = server.object(&format!("terrarium/c1/{}", inc1.id));
    std::fs::remove_dir_all(&folder).unwrap();
    let broken = format!("{POOL}/broken");
    let out = trm_snap(&[
        "import",
        "c1",
        "--at",
        &inc2.id,
        "--to-dataset",
        &broken,
        "--format",
        "json",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("link {} is not in the bucket", inc1.id))
            && err.contains("nothing was created"),
        "{err}"
    );
    assert!(!zfs::exists(&broken).unwrap(), "nothing was created");

    // An existing dataset is never received into.
    let out = trm_snap(&["import", "c1", "--to-dataset", &target]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already exists"));
    assert_eq!(contents(&target), newest, "and is left as it was");
}
