#!/usr/bin/env bash
# Install Terrarium on a Debian 12 host and bring it to the baseline:
# dependencies (the pinned Traefik among them), release build, binaries and
# man pages, base image, `trm init`, then Traefik and the single-sign-on gate
# running under supervision. The gate signs no one in until an issuer is
# configured: set TRM_OIDC_ISSUER, TRM_OIDC_CLIENT_ID, TRM_OIDC_CLIENT_SECRET_FILE
# and TRM_OIDC_ADMIN_GROUP to have `trm-harden oidc set` do it here.
# Extra arguments go to `trm init` (e.g. --storage dir --subnet 10.87.0.1/24).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-host.sh
export PATH="$HOME/.cargo/bin:$PATH"

PREFIX=${PREFIX:-/usr/local}
echo "==> building (release)" >&2
cargo build --release --locked --workspace --bins
for bin in trm trm-expose trm-snap trm-harden trm-profile trm-gate; do
    install -D -m 0755 "target/release/$bin" "$PREFIX/bin/$bin"
done
install -d "$PREFIX/share/man/man1"
install -m 0644 man/*.1 "$PREFIX/share/man/man1/"
# Shell completions (bash, zsh, fish) where each shell looks below $PREFIX/share.
(cd completions && find . -type f) | while read -r f; do
    install -D -m 0644 "completions/$f" "$PREFIX/share/${f#./}"
done

echo "==> base image" >&2
"$PREFIX/bin/trm" image build --format human
echo "==> trm init" >&2
"$PREFIX/bin/trm" init --format human "$@"

echo "==> Traefik" >&2
# Writes the static file; a label problem (exit 5) is reported, not fatal.
"$PREFIX/bin/trm-expose" sync --format human || true
"$PREFIX/bin/trm-expose" proxy start --format human

echo "==> single-sign-on gate" >&2
if [ -n "${TRM_OIDC_ISSUER:-}" ]; then
    "$PREFIX/bin/trm-harden" oidc set --format human --issuer "$TRM_OIDC_ISSUER" \
        --client-id "${TRM_OIDC_CLIENT_ID:?set TRM_OIDC_CLIENT_ID}" \
        --client-secret-file "${TRM_OIDC_CLIENT_SECRET_FILE:?set TRM_OIDC_CLIENT_SECRET_FILE}" \
        --admin-group "${TRM_OIDC_ADMIN_GROUP:?set TRM_OIDC_ADMIN_GROUP}"
fi
# Unconfigured, it runs and refuses every sign-in (dashboards answer no one).
"$PREFIX/bin/trm-gate" start --format human
if ! grep -q '^issuer = "[^"]' "${TRM_CONFIG_DIR:-/etc/terrarium}/gate.toml"; then
    echo "trm-gate signs no one in yet: \`trm-harden oidc set\` names the issuer" >&2
fi

echo "==> exposure watcher (follows starts, stops and label edits)" >&2
"$PREFIX/bin/trm-expose" service install --format human
if [ ! -d /run/systemd/system ] && ! pgrep -f "$PREFIX/bin/trm-expose watch" >/dev/null; then
    # No systemd (containers, CI): run it in the background, as LXD is.
    mkdir -p /var/log/terrarium
    nohup "$PREFIX/bin/trm-expose" watch --format jsonl >>/var/log/terrarium/expose-watch.log 2>&1 &
    echo "started trm-expose watch in the background (log: /var/log/terrarium/expose-watch.log)" >&2
fi

echo "==> time machine (a snapshot tick every 15 minutes)" >&2
"$PREFIX/bin/trm-snap" schedule install --every 15 --format human
# The first tick now, so status has a run to judge (a failure is
# reported, and status below says it too).
"$PREFIX/bin/trm-snap" auto --format human >/dev/null || echo "the first snapshot tick failed" >&2
if [ ! -d /run/systemd/system ] && ! pgrep -f "$PREFIX/bin/trm-snap auto --every" >/dev/null; then
    # No systemd timer here: the same tick, on the same clock, in a loop.
    mkdir -p /var/log/terrarium
    nohup "$PREFIX/bin/trm-snap" auto --every 15 --format jsonl >>/var/log/terrarium/snap-auto.log 2>&1 &
    echo "started trm-snap auto --every 15 in the background (log: /var/log/terrarium/snap-auto.log)" >&2
fi

echo "==> status" >&2
# A problem is reported here, not fatal: the status says what to fix.
"$PREFIX/bin/trm" status --format human || true
