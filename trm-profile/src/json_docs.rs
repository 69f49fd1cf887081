//! What each command prints as JSON (`--help` and the man pages).

pub const DOCS: &[(&str, &str)] = &[
    (
        "list",
        "\
An array (in JSON Lines one \"type\":\"item\" line each): name, managed
(bool: it carries Terrarium's mark), status (in_sync; drifted: hand
edits; missing: Terrarium defines it, LXD lacks it; unmanaged: not
Terrarium's, never touched), used_by (how many instances use it),
description.",
    ),
    (
        "show",
        "\
An object: name, managed (bool), status (as in list), description,
config (object: key to value), devices (object: device name to its
keys), used_by (array: the LXD URLs of the instances using it).",
    ),
    (
        "diff",
        "\
An array, one per Terrarium profile or the one named (in JSON Lines one
\"type\":\"summary\" line, the array in value): name, status (as in list),
differences (array: what (config|device|description), key, live (LXD's
value; null: absent), want (Terrarium's; null: should be absent)).",
    ),
    (
        "apply",
        "\
An object: dry_run (bool), changed (bool: a profile is, or with
--dry-run would be, written), profiles (array: name, action (create;
restore: drifted, put back; adopt: LXD's default becomes Terrarium's;
none; skip: not Terrarium's, left alone), detail, differences (as in
diff: the hand edits it overwrites)).",
    ),
    (
        "explain",
        "\
An object: name, standalone (bool: carries a root disk and NIC; else an
add-on to stack after one), summary, sudo (the terrarium user's: none or
passwordless; null: an add-on creates no user), settings and devices
(arrays: key, value, why), kernel_note (what nesting means on this
host's kernel).",
    ),
];
