//! What each command prints as JSON (`--help` and the man pages).

const HOLD: &str = "\
An object: instance, snapshot, held (bool: held now), changed (bool:
false when it already was so).";

const S3_SETTINGS: &str = "\
An object: endpoint, bucket, region, prefix, access_key, secret_key
(always \"(hidden)\"), recipient (age public key), identity_file,
signing_key_file, signing_public_key, part_size_mib, parallel, retention
(daily, weekly, monthly), compression_level, memory_mib, recipient_fingerprint,
settings_file; from set also probe (what the write-and-delete check did)
and, when it generated keys, warning (keep them safe; also on stderr).";

pub const DOCS: &[(&str, &str)] = &[
    (
        "create",
        "\
An array, one per instance snapshotted: instance, snapshot (its name).",
    ),
    (
        "list",
        "\
An array (in JSON Lines one \"type\":\"item\" line each): instance, name,
kind (auto:TIER, TIER one of frequent, hourly, daily, monthly; manual;
safety; checkpoint; other), created (RFC 3339 UTC), size (bytes, or null where the driver does not say),
held (bool).",
    ),
    (
        "rollback",
        "\
An object: instance, target (the snapshot returned to), method (restore:
in place; copy_and_swap), dry_run, was_running, safety_snapshot (the
state before: roll back to it to undo), kept_as (copy_and_swap: where
the previous instance lives; else null), kept_stripped (what was taken
from it), steps (in words). --dry-run: the same plan, nothing done.",
    ),
    (
        "restore",
        "\
An object: instance (the new one), from (the snapshot), started (bool),
stripped (what was taken from it: exposure, proxy devices, MAC...).",
    ),
    (
        "auto",
        "\
An array, one per instance: instance, snapshot (the one taken, or null),
outcome (snapshotted, not_due, opted_out, busy, or failed: MESSAGE; and
first, for boxes whose lifetime ended this tick: stopped_idle,
frozen_idle, deleted_at_deadline, exported_and_deleted: BACKUP_ID for a
--ttl-export box, or kept_export_failed: MESSAGE when its final export
failed and it was stopped instead, to be tried again next tick), deleted
(the snapshots retention removed). Then, once a bucket is set up and
[offsite] every_minutes is not 0, a row per scheduled export: snapshot
(the newest hourly, daily, monthly or manual one; never a frequent one),
outcome (exported: BACKUP_ID; export_busy while another export runs;
or export_failed: MESSAGE; both tried again next tick), deleted (the backup ids off-site retention removed). A failed
snapshot or export makes the exit code 5.",
    ),
    (
        "prune",
        "\
An array, one per snapshot: instance, name, keep (bool), rule (why),
deleted (bool: done; false on a dry run or when kept). --dry-run, or
nothing to delete: the plan. One LXD refused to delete comes back kept,
its rule saying why.",
    ),
    ("hold", HOLD),
    ("release", HOLD),
    (
        "export",
        "\
An object (an array with --all): instance, id, snapshot, fresh_snapshot
(bool: taken for it, removed after), tarball_size (LXD's backup), size
and sha256 (uploaded object), parts, part_size, seconds, mib_per_second,
manifest and data (keys), swept (crashed exports' leftovers removed),
timings (seconds: snapshot, copy, lxd_prepare, stream,
stream_mib_per_second, complete: the server assembling the parts, part of
stream), and for a ZFS chain link zfs (dataset, snapshot, parent: {id,
sha256, snapshot} or null for a full stream, depth). JSON Lines first has a \"type\":\"progress\" line
per part: instance, part, part_bytes, uploaded_bytes, read_bytes. --all
goes on past failures (error lines), then exits with their code (1 if
they differ).",
    ),
    (
        "import",
        "\
An object: instance (the new one, stopped), from, backup (id), created,
size, sha256 (checked), stripped (exposure, MAC...), removed_by_policy
(array: kind (config|device|device key|snapshot), name, key (device key
only), value, why), refused (backups not considered, \"id: why\"), seconds.
With --to-dataset: instance, backup, dataset, snapshot (the dataset's,
the backup's), links (backup ids applied, the full stream first), seconds.",
    ),
    (
        "verify",
        "\
An object: instance, backup, created, size, sha256, restored_as (the
throwaway instance, deleted), root_entries (top-level entries of its
root filesystem), checks (in words), refused (as in import), seconds, ok
(bool: the root filesystem has entries). A ZFS chain is checked link by
link (checks say so; restored_as is empty). --all: an array of these,
one per instance with a backup (a drill that could not run is ok: false
with the error as its last check); exits 5 if any failed.",
    ),
    ("s3 set", S3_SETTINGS),
    ("s3 show", S3_SETTINGS),
    (
        "s3 list",
        "\
An array: instance, id, state (complete; with --all also refused, and
incomplete or \"incomplete (upload marker)\": no manifest), created,
snapshot, size, sha256, dir (its folder), refused (why it is not
trusted; only on refused ones).",
    ),
    (
        "s3 prune",
        "\
An array, one per complete export: instance, id, created, keep (bool),
rule (why). --dry-run, or nothing to delete: the plan; else the same
decisions after the deletions.",
    ),
    (
        "schedule",
        "\
install and remove: an object: unit_dir, units (file names), action,
dry_run, systemd (bool: the running init), enabled (units enabled and
started), note. status: an array: name, kind (unit: the unit files; job:
snapshots, export, verify), every (the job's interval in words, or why
it is off), state (installed or not and systemctl is-active's word; for
a job its last run: ok, failed: why, or never ran), last_run (RFC 3339,
jobs only).",
    ),
];
