//! What each command prints as JSON (`--help` and the man pages).

const STATUS: &str = "\
An object: supervisor (systemd|terrarium), running (bool), pid (number or
null), answering (bool: GET /ping on listen answers OK), listen (host:port),
log (where the gate's output goes). `status` exits 5 unless it runs and
answers.";

pub const DOCS: &[(&str, &str)] = &[
    (
        "serve",
        "Nothing on stdout: it serves until stopped, logging to stderr.",
    ),
    ("start", STATUS),
    ("stop", STATUS),
    ("restart", STATUS),
    ("status", STATUS),
    (
        "keys rotate",
        "An object: keys_file (path), keys (keys now in the file: the new one \
and the previous), retired (keys dropped: sessions sealed with them no longer open).",
    ),
];
