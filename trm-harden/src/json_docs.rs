//! What each command prints as JSON (`--help` and the man pages).

pub const DOCS: &[(&str, &str)] = &[
    (
        "plan",
        "\
An object: changes (array: area (ssh|firewall|traefik|lxd|cockpit),
action (write|ufw|set), target (a file, a ufw command line or a config
key), detail), kept (left alone on purpose: rules others own), notes,
wan (the public interface), bridge, ssh_ports, ssh_keys (who can still
log in with a key: with_keys, looked_at; null without sshd).",
    ),
    (
        "apply",
        "\
An object: applied (the changes made, as plan lists them; empty when
there was nothing to do), kept, ssh_reload (what reloading sshd did, or
null), ssh_effective (sshd -T's \"Key value\" lines after the change, or
null), traefik_restart (how restarting Traefik for a new static file
went; null when it was not rewritten), notes.",
    ),
    (
        "audit",
        "\
An array (in JSON Lines one \"type\":\"item\" line each): check, promise
(what it proves), status (pass|info|warn|fail), detail (the evidence),
fix (what to do, or null). Exits 5 (found problems) when any fails.
With --members, an array instead with one element per cluster member:
member, status (LXD's), audited (when it last published, RFC 3339 UTC, or
null), age_seconds, failed and warned (arrays of check names), ok (bool:
no failure and an audit within a day); exits 5 when any is not ok.",
    ),
    (
        "oidc set",
        "\
An object: issuer, client_id, admin_group, groups_claim, auth_url,
gate_config (the gate's settings file), client_secret_file, keys_file,
changed (bool: settings or secret differ from before), gate_restarted
(bool: the running gate now uses them), lxd (set, or why LXD's oidc.*
keys were not all set), lxd_keys (the keys set).",
    ),
];
