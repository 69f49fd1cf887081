//! terrarium-core's zfs module against a real `zfs` (Debian's zfs-fuse on
//! these machines, which LXD cannot use as a pool driver): a pool on a
//! file, snapshots with data, space used, holds that stop a destroy, and
//! an incremental send stream, and ZFS's rollback-to-newest-only rule
//! that makes a Terrarium rollback on ZFS copy and swap.

use std::process::Command;

use terrarium_core::zfs;

fn sh(args: &[&str]) -> std::process::Output {
    Command::new(args[0]).args(&args[1..]).output().unwrap()
}

fn ok(args: &[&str]) {
    let out = sh(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn zfs_module_against_a_real_zfs() {
    if !terrarium_tests::e2e::enabled("zfs_fuse") {
        return;
    }
    let test_pool = terrarium_tests::zpool::TestPool::create("trme2ezfs", "256M");
    let pool = test_pool.name.as_str();
    {
        let ds = zfs::instance_dataset(&format!("{pool}/lxd"), "trm-e2e", "c1");
        ok(&["zfs", "create", "-p", &ds]);
        let mnt =
            String::from_utf8(sh(&["zfs", "get", "-H", "-o", "value", "mountpoint", &ds]).stdout)
                .unwrap();
        let file = format!("{}/data", mnt.trim());
        ok(&[
            "dd",
            "if=/dev/urandom",
            &format!("of={file}"),
            "bs=1M",
            "count=3",
        ]);
        let s1 = zfs::snapshot_of(&ds, "first");
        ok(&["zfs", "snapshot", &s1]);
        ok(&[
            "dd",
            "if=/dev/urandom",
            &format!("of={file}"),
            "bs=1M",
            "count=2",
        ]);
        let s2 = zfs::snapshot_of(&ds, "second");
        ok(&["zfs", "snapshot", &s2]);

        let used = zfs::snapshot_used(&ds).unwrap();
        assert_eq!(used.len(), 2, "{used:?}");
        assert!(
            used["snapshot-first"] > 2_000_000,
            "the overwritten 3 MiB live only in the first: {used:?}"
        );

        assert_eq!(zfs::user_refs(&s1).unwrap(), 0);
        zfs::hold(&s1).unwrap();
        assert_eq!(zfs::user_refs(&s1).unwrap(), 1);
        assert!(
            !sh(&["zfs", "destroy", &s1]).status.success(),
            "a held snapshot cannot be destroyed"
        );
        assert!(zfs::release(&s1).unwrap());
        assert!(!zfs::release(&s1).unwrap(), "no hold left to release");

        // A clone makes its origin something others depend on.
        assert!(zfs::origins(pool).unwrap().is_empty());
        ok(&["zfs", "clone", &s1, &format!("{pool}/clone")]);
        assert_eq!(
            zfs::origins(pool).unwrap().into_iter().collect::<Vec<_>>(),
            vec![s1.clone()]
        );

        let mut stream = zfs::send(&s2, Some(&s1)).unwrap();
        let mut sent = Vec::new();
        std::io::Read::read_to_end(&mut stream.child.stdout.take().unwrap(), &mut sent).unwrap();
        stream.finish().unwrap();
        assert!(
            sent.len() > 1_000_000,
            "incremental stream carries the 2 MiB change: {}",
            sent.len()
        );
        // A failed send says why, from zfs's own stderr.
        let mut bad = zfs::send(&format!("{pool}@no-such-snapshot"), None).unwrap();
        drop(bad.child.stdout.take());
        let err = bad.finish().unwrap_err().to_string();
        assert!(err.contains("no-such-snapshot"), "{err}");

        // Why a rollback on ZFS must copy and swap (snapshots::drivers):
        // ZFS rolls back only to the newest snapshot. Refused while a newer
        // one exists; forced (what LXD does with zfs.remove_snapshots), the
        // newer ones are destroyed, which would be the safety snapshot.
        use terrarium_core::snapshots::drivers::{restore_older, RestoreOlder};
        assert_eq!(restore_older("zfs", false), RestoreOlder::Refuses);
        assert!(
            !sh(&["zfs", "rollback", &s1]).status.success(),
            "refused: {s2} is newer"
        );
        zfs::hold(&s2).unwrap();
        assert!(
            !sh(&["zfs", "rollback", "-r", &s1]).status.success(),
            "a held newer snapshot stops even a forced rollback"
        );
        assert_eq!(zfs::user_refs(&s2).unwrap(), 1, "and is still there");
        assert!(zfs::release(&s2).unwrap());
        assert_eq!(restore_older("zfs", true), RestoreOlder::DeletesNewer);
        ok(&["zfs", "rollback", "-r", &s1]);
        assert!(
            !sh(&["zfs", "list", "-t", "snapshot", &s2]).status.success(),
            "forced, the newer snapshot is gone"
        );
    }
}
