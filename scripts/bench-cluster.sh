#!/usr/bin/env bash
# Benchmark Terrarium on a real three-member LXD cluster, in one run (the
# e2e test bed: LXD nodes in containers on a bridge of its own):
# `trm-expose sync` against one `lxc list` of the cluster (target within
# 1.1x, one instance query), the route follow time after an evacuation,
# and the mesh's throughput and round trip against the raw link (iperf3).
# Needs root, LXD and the node image (scripts/test.sh builds it).
# PER_MEMBER (default 30) boxes per member; RUNS (default 5) per timing.
set -euo pipefail
cd "$(dirname "$0")/.."
# --bin limits a build to that binary: the tools are built on their own.
cargo build -q --release -p trm -p trm-expose -p trm-snap -p trm-harden
cargo build -q --release -p terrarium-tests --bin bench-cluster
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
TRM_BIN_DIR=$BIN "$BIN/bench-cluster"
