#!/usr/bin/env bash
# Benchmark trm against the raw lxc client on the same work, in one run:
#   trm list --format json   vs  lxc list --format json   (100 containers)
#   trm exec NAME -- true    vs  lxc exec NAME -- true
#   trm status --format json vs  lxc list --format json   (the whole host: one instance query)
# Prints the median of each and their ratio. Targets: list and status <= 1.2x, exec <= 1.1x.
# Needs root, a running LXD and the base image (scripts/setup-host.sh,
# `trm image build`). Everything it creates lives in the LXD project
# trm-bench and is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100}
RUNS=${RUNS:-100}
TRM=${TRM:-$PWD/target/release/trm}
PROJECT=trm-bench BRIDGE=trmbench0 POOL=trm-bench
IMAGE=${IMAGE:-terrarium/debian12}

[ -x "$TRM" ] || cargo build --release -p trm
# shellcheck source=scripts/lib-lxd.sh
. scripts/lib-lxd.sh
bench_begin "$PROJECT" "$BRIDGE" "$POOL"

echo "==> setting up $N containers in project $PROJECT" >&2
"$TRM" init --no-nat --bridge "$BRIDGE" --pool "$POOL" --storage btrfs --size 8GiB --format json >/dev/null
"$TRM" launch bench-0 --image "$IMAGE" --format json \
    -c "cloud-init.user-data=$(printf '#cloud-config\nusers:\n  - name: terrarium\n    shell: /bin/bash\n')" >/dev/null
for i in $(seq 1 $((N - 1))); do
    lxc init --project "$PROJECT" "$IMAGE" "bench-$i" >/dev/null
done

median() { jq -r ".results[$1].median" "$work/h.json"; }
compare() { # label trm-command lxc-command target [hyperfine flags]
    hyperfine -N --warmup 10 --runs "$RUNS" "${@:5}" --export-json "$work/h.json" "$2" "$3" >/dev/null 2>&1
    local t l
    t=$(median 0); l=$(median 1)
    awk -v label="$1" -v t="$t" -v l="$l" -v target="$4" 'BEGIN {
        r = t / l
        printf "%-6s trm %.1f ms  lxc %.1f ms  ratio %.3f  (target <= %s) %s\n",
               label, t * 1000, l * 1000, r, target, (r <= target ? "OK" : "OVER")
    }'
}

# Let the freshly created containers' disk writes settle before timing.
sync; sleep 5
echo "==> medians over $RUNS runs" >&2
compare list "$TRM list --format json" "lxc list --project $PROJECT --format json" 1.2
# LXD 5.0 now and then loses an exec's PID and exits 1 for either client.
compare exec "$TRM exec bench-0 -- true" "lxc exec --project $PROJECT bench-0 -- true" 1.1 --ignore-failure
# No Traefik or gate runs here, so status exits 5 (found problems): the
# timing is of the same full read and judgement.
compare status "$TRM status --format json" "lxc list --project $PROJECT --format json" 1.2 --ignore-failure
# What status asks LXD: a logging lxc ahead on PATH counts the queries.
mkdir -p "$work/bin"
printf '#!/bin/sh\necho "$*" >> %s/lxc-calls\nexec %s "$@"\n' "$work" "$(command -v lxc)" > "$work/bin/lxc"
chmod +x "$work/bin/lxc"
PATH="$work/bin:$PATH" "$TRM" status --format json >/dev/null 2>&1 || true
echo "status asked LXD $(wc -l < "$work/lxc-calls") times: $(grep -c instances "$work/lxc-calls") for the instances ($(tr '\n' ';' < "$work/lxc-calls"))"
