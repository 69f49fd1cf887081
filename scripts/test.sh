#!/usr/bin/env bash
# The whole test suite, end-to-end included, on a Debian 12 machine (root).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-host.sh
export PATH="$HOME/.cargo/bin:$PATH"

# The S3 server the off-site tests talk to on loopback: s3s-fs checks
# request signatures, so wrong credentials are really refused.
if ! command -v s3s-fs >/dev/null 2>&1; then
    echo "==> installing the test S3 server (s3s-fs)" >&2
    cargo install --locked s3s-fs --version 0.14.1 --features binary
fi

# A clean clone gains nothing from incremental state, and it costs disk.
if [ "${CI:-}" = true ]; then export CARGO_INCREMENTAL=0; fi

echo "==> building" >&2
cargo build --workspace --all-targets --locked

echo "==> images (built once, then cached)" >&2
./target/debug/trm image build --format human
# The Docker-in-LXC tests use a variant with Debian's docker.io inside.
# Debian 13, the current stable: a box of it is launched in e2e_trm.
./target/debug/trm image build --release trixie --format human
./target/debug/trm image build --alias terrarium/debian12-docker --package docker.io --package docker-compose --format human
# The cluster tests' LXD nodes: Debian's lxd, and what the members' mesh
# and its checks use (WireGuard in userspace, iperf3, tcpdump, ufw).
./target/debug/trm image build --alias terrarium-test/lxd-node --format human \
    --package lxd --package lxd-client --package dnsmasq-base --package iptables --package nftables \
    --package btrfs-progs --package squashfs-tools --package wireguard-go --package wireguard-tools \
    --package iperf3 --package tcpdump --package ufw

echo "==> formatting" >&2
cargo fmt --all -- --check

echo "==> tests" >&2
TRM_E2E=1 cargo test --workspace --locked --no-fail-fast
