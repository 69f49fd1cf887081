#!/usr/bin/env bash
# The whole test suite, end-to-end included, on a Debian 12 machine (root).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup-host.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "==> building" >&2
cargo build --workspace --all-targets --locked

echo "==> base image (built once, then cached)" >&2
./target/debug/trm image build --format human

echo "==> formatting" >&2
cargo fmt --all -- --check

echo "==> tests" >&2
TRM_E2E=1 cargo test --workspace --locked
