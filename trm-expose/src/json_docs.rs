//! What each command prints as JSON (`--help` and the man pages).

const SYNC: &str = "\
An object: dry_run, written and deleted (Traefik files), kept_last_good
(left as they were: the new content failed validation), firewall_added and
firewall_removed (port, udp (bool), comment), static_changed (bool: new
entrypoints), restart (not_needed|ok|failed|would_restart), rolled_back
(bool: a failed restart fell back to the old static file), rejected
(unreadable files moved aside: file, moved_to, reason), problems (instance,
item, message), traefik and routes (as in list). Exits 5 on problems or a
failed restart.";

const CHANGE: &str = "\
An object: instance, label_before and label_after (its user.proxy),
changed (bool: the label is, or with --dry-run would be, changed), sync
(the report of the sync that followed, as sync prints it; null on a dry
run or without a change).";

pub const DOCS: &[(&str, &str)] = &[
    ("add", CHANGE),
    ("remove", CHANGE),
    (
        "list",
        "\
An object: routes (array: instance, item (its label item), public (its
public address), backend (where traffic goes; null unless active), state
(active; stopped; no_address: no IPv4 yet; conflict: another instance
holds it; refused), auth (null: public; []: any signed-in user; else the
groups let in), problem (why, or null), location (the cluster member it
runs on, or null on a lone server)), traefik (restart_pending (bool),
last_restart_error (or null)).",
    ),
    (
        "check",
        "\
An object: valid (bool: every item parses and sync would route it),
instance (judged for), conflicts_checked (false when LXD did not answer:
other instances' claims unknown), note (what could not be read, or null),
items (array: item (canonical text), kind (http|tcp|udp|share) with its
parts (tls, host, cport, path, auth; host_port, cport), holds (what it
claims), problem (why sync would refuse it, or null)), errors
(unparsable: item, message). Exits 5 unless valid.",
    ),
    ("sync", SYNC),
    (
        "watch",
        "\
One JSON line per sync that changed something or found problems, in both
JSON formats: \"type\":\"event\" then the fields sync prints. A sync that
fails is an error line on stderr, and the watch goes on.",
    ),
    (
        "proxy",
        "\
An object: supervisor (systemd|terrarium|command), running and answering
(bool: ping on the loopback API), pid and version (or null), api_address,
static_file, log, files (what Traefik loaded of Terrarium's files, null
when it does not answer: expected, loaded, missing, errors). start and
restart are verified; status exits 5 unless Traefik runs, answers and
runs every router of those files.",
    ),
    (
        "service",
        "\
install and remove: an object: unit_dir, units (file names), action,
dry_run, systemd (bool: the running init), enabled (units enabled and
started), note. status: an array (in JSON Lines one \"type\":\"item\" line
each): name, installed (bool), active (systemctl is-active's word, or
unknown without systemd).",
    ),
];
