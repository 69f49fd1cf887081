#!/usr/bin/env bash
# Prepare a Debian 12 machine to build and test Terrarium: packages, a
# running LXD daemon, and the base image (cached across runs).
# Idempotent; needs root. Used by scripts/test.sh and scripts/install.sh.
set -euo pipefail

log() { printf '==> %s\n' "$*" >&2; }

[ "$(id -u)" = 0 ] || { echo "setup-host.sh must run as root" >&2; exit 77; }

PACKAGES=(lxd lxd-client debootstrap btrfs-progs iptables nftables jq hyperfine busybox-static ufw zfs-fuse age zstd time
          openssh-server openssh-client
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
