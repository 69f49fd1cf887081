#!/usr/bin/env bash
# Benchmark agent sandboxes, in one run:
#   `trm exec --checkpoint NAME -- true` against `trm exec NAME -- true`
#   on btrfs: the checkpoint should cost one copy-on-write snapshot;
#   the egress ACL's added latency: 300 TCP connects from inside an agent
#   box to a "public" address in a namespace of ours, with its ACL and
#   with the ACL taken off the box's bridge.
# Needs root, a running LXD and the base image. Everything lives in the LXD
# project trm-bench-agent and the namespace trm-bench-agt, deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-20} CONNECTS=${CONNECTS:-300}
PROJECT=trm-bench-agent BRIDGE=trmbencha0 POOL=trm-bench-agent
NS=trm-bench-agt VETH=trmbagtv0 PUBLIC=203.0.113.77 PORT=8080
cargo build -q --release -p trm -p trm-snap
BIN=$PWD/target/release
# shellcheck source=scripts/lib-lxd.sh
. scripts/lib-lxd.sh
outside_down() {
    ip route del "$PUBLIC/32" 2>/dev/null || true
    ip link del "$VETH" 2>/dev/null || true
    [ -z "${server:-}" ] || kill "$server" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
cleanup() {
    "$BIN/trm" delete b-agent --force --yes --format json >/dev/null 2>&1 || true
    outside_down
    bench_end
}
bench_begin "$PROJECT" "$BRIDGE" "$POOL"
trap cleanup EXIT

echo "==> an agent box on btrfs, and a public address in $NS" >&2
"$BIN/trm" init --no-nat --bridge "$BRIDGE" --pool "$POOL" --storage btrfs --size 8GiB --format json >/dev/null
"$BIN/trm" launch b-agent --profile agent --format json >/dev/null
outside_down
ip netns add "$NS"
ip link add "$VETH" type veth peer name veth0 netns "$NS"
ip addr add 198.51.100.5/30 dev "$VETH" && ip link set "$VETH" up
ip -n "$NS" addr add 198.51.100.6/30 dev veth0 && ip -n "$NS" link set veth0 up && ip -n "$NS" link set lo up
ip -n "$NS" addr add "$PUBLIC/32" dev lo && ip -n "$NS" route add default via 198.51.100.5
ip route add "$PUBLIC/32" via 198.51.100.6
# Accept and close at once: the connect time is the network's, not a server's.
ip netns exec "$NS" python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('$PUBLIC', $PORT)); s.listen(1024)
while True:
    c, _ = s.accept(); c.close()
" >/dev/null 2>&1 &
server=$!
sleep 1

echo "==> checkpoint cost ($RUNS runs each)" >&2
# The raw tool doing the same work: LXD's own snapshot, then its exec.
raw="sh -c 'lxc snapshot --project $PROJECT b-agent raw-\$(date +%s%N) && lxc exec --project $PROJECT b-agent -- true'"
hyperfine -N --warmup 2 --runs "$RUNS" --export-json "$work/h.json" \
    "$BIN/trm exec b-agent --checkpoint --format json -- true" \
    "$BIN/trm exec b-agent -- true" \
    "$raw" >/dev/null 2>&1
c=$(jq -r '.results[0].median' "$work/h.json"); p=$(jq -r '.results[1].median' "$work/h.json")
r=$(jq -r '.results[2].median' "$work/h.json")
awk -v c="$c" -v p="$p" -v r="$r" 'BEGIN {
    printf "exec --checkpoint %.1f ms  exec %.1f ms  ratio %.2f  (one btrfs snapshot: +%.1f ms)\n", c * 1000, p * 1000, c / p, (c - p) * 1000
    printf "exec --checkpoint %.1f ms  raw lxc snapshot + lxc exec %.1f ms  ratio %.2f\n", c * 1000, r * 1000, c / r
}'

connects() { # microseconds for $CONNECTS connects from inside the box
    lxc exec --project "$PROJECT" b-agent -- bash -c "
        s=\$(date +%s%N)
        for i in \$(seq $CONNECTS); do exec 3<>/dev/tcp/$PUBLIC/$PORT; exec 3>&-; done
        echo \$(( (\$(date +%s%N) - s) / 1000 ))"
}
acl=$(lxc query "/1.0/networks?recursion=1" | jq -r '.[] | select(.config["user.terrarium.instance"] == "'"$PROJECT"'/b-agent") | .name')
echo "==> egress ACL latency ($CONNECTS connects, bridge $acl)" >&2
with=$(connects)
lxc network unset "$acl" security.acls
lxc network unset "$acl" security.acls.default.egress.action
lxc network unset "$acl" security.acls.default.ingress.action
without=$(connects)
lxc network set "$acl" security.acls="$acl" security.acls.default.egress.action=allow security.acls.default.ingress.action=reject
awk -v w="$with" -v o="$without" -v n="$CONNECTS" 'BEGIN {
    printf "connect with ACL %.1f us  without %.1f us  ratio %.3f\n", w / n, o / n, w / o
}'
