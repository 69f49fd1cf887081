#!/usr/bin/env bash
# Benchmark trm-expose: a full `trm-expose sync` over 100 real labelled
# containers against one `lxc list --format json` of the same project, in
# one run (median ratio; target <= 1.3x), plus the render+validate figure
# for 1,000 synthetic instances (target < 100 ms).
# Needs root, a running LXD and the base image. The firewall part is off
# here (the bench never touches the host's UFW); everything lives in the
# LXD project trm-bench-exp and is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100}
RUNS=${RUNS:-30}
PROJECT=trm-bench-exp BRIDGE=trmbenchx0 POOL=trm-bench-exp
IMAGE=${IMAGE:-terrarium/debian12}
cargo build -q --release -p trm -p trm-expose
BIN=$PWD/target/release
# shellcheck source=scripts/lib-lxd.sh
. scripts/lib-lxd.sh
bench_begin "$PROJECT" "$BRIDGE" "$POOL"
mkdir -p "$work/dynamic"

echo "==> synthetic: 1000 instances" >&2
cargo run -q --release -p terrarium-core --example bench_plan

echo "==> setting up $N running, labelled containers in $PROJECT" >&2
"$BIN/trm" init --no-nat --bridge "$BRIDGE" --pool "$POOL" --storage btrfs --size 12GiB --format json >/dev/null
cat >> "$TRM_CONFIG_DIR/terrarium.toml.expose" <<EOT
[expose]
dynamic_dir = "$work/dynamic"
static_file = "$work/traefik.yml"
root_domain = "bench.test"
restart_command = ["true"]
ufw = false
state_dir = "$work/state"
EOT
sed -i '/^\[expose\]/,$d' "$TRM_CONFIG_DIR/terrarium.toml"
cat "$TRM_CONFIG_DIR/terrarium.toml.expose" >> "$TRM_CONFIG_DIR/terrarium.toml"
for i in $(seq 1 "$N"); do
    lxc launch --project "$PROJECT" "$IMAGE" "b-$i" \
        -c "user.proxy=https://b-$i.bench.test:3000, tcp://$((20000 + i)):22" >/dev/null
done
echo "==> waiting for every container's address, then for the boots to settle" >&2
# 100 Debian boots (systemd, cloud-init) on a small machine take minutes.
for _ in $(seq 1 450); do
    missing=$(lxc list --project "$PROJECT" --format json | jq '[.[] | select(([.state.network.eth0.addresses[]? | select(.family=="inet")] | length) == 0)] | length')
    [ "$missing" = 0 ] && break
    sleep 2
done
sleep 30
"$BIN/trm-expose" sync --format json >/dev/null
"$BIN/trm-expose" list --format json |
    jq -r '"routes: \(.routes | length), active (running, with an address, file written): \([.routes[] | select(.state == "active")] | length)"'

hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/h.json" \
    "$BIN/trm-expose sync --format json" "lxc list --project $PROJECT --format json" >/dev/null 2>&1
t=$(jq -r '.results[0].median' "$work/h.json"); l=$(jq -r '.results[1].median' "$work/h.json")
awk -v t="$t" -v l="$l" 'BEGIN {
    r = t / l
    printf "sync   trm-expose %.1f ms  lxc list %.1f ms  ratio %.3f  (target <= 1.3) %s\n", t * 1000, l * 1000, r, (r <= 1.3 ? "OK" : "OVER")
}'
