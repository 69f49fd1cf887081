//! What each command prints as JSON (`--help` and the man pages).

const INSTANCE: &str = "\
An object (info) or an array of them (list): name, project, state (LXD's
status, lowercase: running, stopped, ...), kind (container or
virtual-machine), profiles (array), ipv4 (first IPv4 of the LXD-managed
NIC, or null), image (its description), created (RFC 3339 UTC),
snapshots (count), egress (an agent box's policy as its ACL enforces it:
{policy: public|none|allow-list, allow: [{net, port}]}; null for other
instances), idle (the idle time that stops it, or null), expires (the
deadline of a --ttl box, RFC 3339 UTC, or null), location (the cluster
member it runs on, or null on a lone server). In JSON Lines an object
is one \"type\":\"summary\" line,
an array one \"type\":\"item\" line per element.";

const CHANGE: &str = "\
An object: name, action (start|stop|restart|delete), changed (bool: it
did, or with --dry-run would, change something; false when already so),
dry_run (bool), state_before (its state before, lowercase), detail (what
was or would be done, or why nothing).";

const CLUSTER_PLAN: &str = "\
An object: verb (init|add|join|evacuate|restore|remove), member (the
member it is about), steps (array, in order: what, detail), instances
(array of strings: what evacuate or remove moves or stops), token (add
only: the join token for `trm cluster join`, newly issued or the unused
one from before; absent otherwise, and on a dry run that would issue
one), dry_run
(bool), changed (bool: something was changed; false for a dry run or an
empty plan).";

pub const DOCS: &[(&str, &str)] = &[
    (
        "config export",
        "\
An object (the document import reads): format (terrarium-config/1),
exported, from_host, from_project, storage_pool, bridge, settings (flat
section.key values of terrarium.toml without this host's own names and
paths), profiles (array: name, description, config, devices), instances
(array: name, proxy, snapshots: each instance's label and opt-out),
gate ({issuer, client_id, admin_group, groups_claim, auth_url,
session_hours} or null), s3 (endpoint, bucket, region, prefix, recipient,
signing_public_key, part_size_mib, parallel, compression_level,
memory_mib, keep_daily, keep_weekly, keep_monthly; or null), secrets_left_out (array
of strings). No secret is ever in it.",
    ),
    (
        "config import",
        "\
An object: file, from_host, dry_run, applied (bool), changes (array:
kind (setting|profile|label|snapshots), name, action (create|update),
detail), waiting (array of strings: labels of instances not on this
host), needs_secret (array: what, command: the command that takes it,
with <placeholders> for the secrets).",
    ),
    (
        "status",
        "\
An object: ok (bool: no problems), now, project, problems (array of
strings, one per broken promise; any makes the exit code 5), lxd
{reachable, version, error}, traefik (as trm-expose proxy status), gate
(as trm-gate status, or null when never set up), timers (array: job
(snapshots|sync|export), every_seconds (null: not scheduled), last_run
(RFC 3339 UTC or null), last_ok, age_seconds, overdue (bool: not run
within twice its period)), sync_problems (array of strings), instances
(array: name, status, newest_snapshot, snapshot_age_seconds,
newest_backup (the newest off-site backup made here), backup_age_seconds),
pools (array: name, used_bytes, total_bytes, error), members (array, empty
on a lone server: name, online (bool), status (LXD's: online, offline,
evacuated...), version (its LXD's, or null when it does not answer), load
([1, 5, 15 minute] from its heartbeat, or null), heartbeat_age_seconds,
instances (this project's placed on it), backup_age_seconds (its newest
off-site backup)).",
    ),
    (
        "init",
        "\
An object: changed (bool: some step is not none), dry_run (bool), steps
(array, in order: resource (project|storage_pool|network|sysctl|
sysctl_file|server_config|profile|settings), name, action
(create|update|none), detail). --dry-run prints the same plan and
changes nothing.",
    ),
    (
        "image build",
        "\
An object: alias, action (reuse: already in LXD; import: from the cached
tarballs; build: with debootstrap, then imported and cached), dry_run
(bool: the action is what it would do), cache (the cached tarballs'
directory), seconds (0 on a dry run).",
    ),
    (
        "image create",
        "\
An object: alias, fingerprint, source (INSTANCE or INSTANCE/SNAPSHOT),
removed (array of strings: each config key, device and file the copy
lost), size (bytes), seconds. With --dry-run: alias, source, keep_keys,
dry_run (true), steps (array of strings, in order).",
    ),
    (
        "image list",
        "\
An array: alias (the first, or null), aliases (array), fingerprint,
origin (golden: made by image create; base: by image build; other),
source (a golden image's INSTANCE[/SNAPSHOT], else null), description,
size (bytes), created (RFC 3339 UTC). In JSON Lines one \"type\":\"item\"
line per image.",
    ),
    (
        "image delete",
        "\
An object: alias, fingerprint, origin, source, dry_run, deleted (bool),
detail (what to know first: boxes keep running; how to make it again).",
    ),
    (
        "launch",
        "\
An object: name, image, profiles (array), config (object: the -c keys
and values), devices (the instance's own: empty, or an agent box's eth0 on
its own bridge), dry_run (bool), cloud_init (done; disabled: the image has
none; not_waited: --no-wait or --dry-run), instance (the new instance as
`trm info` prints it; null on a dry run), files (with --file: [{from,
to}]), exposure (with --proxy: {answered_after: seconds until
--wait-http's port answered, or null; change: as `trm-expose add`}).
Exits 2 for a recipe refused before anything was made. With --proxy or
--rm-on-failure, a step that failed once the box existed exits 4 and
says whether the box was left (unexposed) or removed; otherwise the
step's own error and code.",
    ),
    (
        "exec",
        "\
Without --checkpoint or an explicit --format json|jsonl: none of its own,
the command's output passes through. With either: an object: instance,
exit_code, stdout, stderr (each at most 1 MiB), duration_ms, truncated
(bool: a stream was cut), checkpoint (null, or {instance, snapshot,
command, rollback: the command that undoes it}). Either way trm exits with
the command's status (128+N when signal N killed it). When that status is
1 because the instance does not exist (exit 3), is not running or has no
terrarium user (exit 4), an error line says which. With --checkpoint or
--format json, a command LXD lost track of once it had started it is an
error (exit 70, and an error line of kind outcome_unknown, which tells it
from a command's own 70): it may have run, its exit status and output are
unknown, and the message names the checkpoint taken first (a box found
stopped or without the terrarium user then is exit 4 instead: it cannot
have run).",
    ),
    ("cluster init", CLUSTER_PLAN),
    ("cluster add", CLUSTER_PLAN),
    ("cluster join", CLUSTER_PLAN),
    ("cluster evacuate", CLUSTER_PLAN),
    ("cluster restore", CLUSTER_PLAN),
    ("cluster remove", CLUSTER_PLAN),
    (
        "cluster list",
        "\
An array (in JSON Lines one \"type\":\"item\" line each): name, address
(the host of its cluster address, without port), status (LXD's: online, offline, evacuated...),
roles (array of strings: LXD's database roles), instances (placed on it,
in every project), message (LXD's).",
    ),
    (
        "cluster mesh",
        "\
An object: member (this one), index (its mesh index), overlay (its
WireGuard address), host_address (its own address on the bridge), peers
(array: name, overlay, endpoint (HOST:51820), handshake_age_s (seconds
since the last WireGuard handshake, or null)), waiting (array of strings:
members not peers yet: no valid key, index or address published, or an
index another member holds first), steps (array: what, detail), dry_run
(bool), changed (bool).",
    ),
    ("list", INSTANCE),
    ("info", INSTANCE),
    ("start", CHANGE),
    ("stop", CHANGE),
    ("restart", CHANGE),
    ("delete", CHANGE),
    (
        "doctor",
        "\
An array of findings: check (what is checked), status
(pass|info|warn|fail), detail, fix (what to do, or null). Exits 5 (found
problems) when any check fails.",
    ),
    (
        "cp",
        "\
An object: from, to (NAME:PATH for the box side, PATH below
/home/terrarium), bytes (copied). Exits 2 for a box path outside the home.",
    ),
    (
        "policy set",
        "\
An object: instance, bridge (the box's own), policy
(public|none|allow-list), allow (with allow-list: [{net, port}]), changed
(bool). Exits 4 for an instance that is not an agent box.",
    ),
    (
        "mcp",
        "\
None of its own: stdin and stdout carry MCP (JSON-RPC 2.0, one message a
line) to the client that started it. Each tool answers structured content
on success: list_boxes {boxes: [{name, instance (as `trm info`, or
null)}]}, launch (as `trm launch`), start (as `trm start`), exec (as `trm
exec --format json`), read_file {name, path, content, bytes (returned),
truncated}, write_file and checkpoint (as `trm cp` and the checkpoint of
`trm exec --checkpoint`), rollback (as `trm-snap rollback`), expose (as
`trm-expose add`, plus live: the route carries traffic now, and why_not:
its state or a failed Traefik restart, else null). A refused or failed call is a tool error whose
structured content is {kind, message}, kind as in the error line
(not_allowed: outside the scope, or a destructive verb not allowed with
--allow-destructive). stderr gets one line per call: {\"type\":\"event\",
tool, name, ok, error}. Exits 2 without a --box, 3 for a --launch-profile
that does not exist.",
    ),
];
