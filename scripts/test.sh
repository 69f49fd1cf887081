#!/usr/bin/env bash
# The whole test suite, end-to-end included, on a Debian 12 machine (root).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-host.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "==> building" >&2
cargo build --workspace --all-targets --locked

echo "==> images (built once, then cached)" >&2
./target/debug/trm image build --format human
# The Docker-in-LXC tests use a variant with Debian's docker.io inside.
./target/debug/trm image build --alias terrarium/debian12-docker --package docker.io --format human

echo "==> formatting" >&2
cargo fmt --all -- --check

echo "==> tests" >&2
TRM_E2E=1 cargo test --workspace --locked
