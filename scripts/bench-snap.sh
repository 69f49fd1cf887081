#!/usr/bin/env bash
# Benchmark the time machine, in one run:
#   retention planning for 100,000 snapshots (target < 100 ms);
#   `trm-snap list` for 50 instances x 20 snapshots against the raw LXD
#   query that returns the same facts (target <= 1.3x).
# Needs root, a running LXD and the base image. Everything lives in the LXD
# project trm-bench-snap and is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

INSTANCES=${INSTANCES:-50} SNAPS=${SNAPS:-20} RUNS=${RUNS:-30}
PROJECT=trm-bench-snap BRIDGE=trmbenchs0 POOL=trm-bench-snap
IMAGE=${IMAGE:-terrarium/debian12}
cargo build -q --release -p trm -p trm-snap
BIN=$PWD/target/release
# shellcheck source=scripts/lib-lxd.sh
. scripts/lib-lxd.sh
bench_begin "$PROJECT" "$BRIDGE" "$POOL"

echo "==> retention: 100000 snapshots" >&2
cargo run -q --release -p terrarium-core --example bench_retention

echo "==> setting up $INSTANCES instances x $SNAPS snapshots in $PROJECT" >&2
"$BIN/trm" init --no-nat --bridge "$BRIDGE" --pool "$POOL" --storage btrfs --size 8GiB --format json >/dev/null
for i in $(seq 1 "$INSTANCES"); do
    lxc init --project "$PROJECT" "$IMAGE" "s-$i" >/dev/null
    for s in $(seq 1 "$SNAPS"); do
        lxc snapshot --project "$PROJECT" "s-$i" "trm-manual-$s" >/dev/null
    done
done
"$BIN/trm-snap" list --format json | jq length

hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/h.json" \
    "$BIN/trm-snap list --format json" "lxc query /1.0/instances?recursion=2&project=$PROJECT" >/dev/null 2>&1
t=$(jq -r '.results[0].median' "$work/h.json"); l=$(jq -r '.results[1].median' "$work/h.json")
awk -v t="$t" -v l="$l" 'BEGIN {
    r = t / l
    printf "list   trm-snap %.1f ms  lxc query %.1f ms  ratio %.3f  (target <= 1.3) %s\n", t * 1000, l * 1000, r, (r <= 1.3 ? "OK" : "OVER")
}'
