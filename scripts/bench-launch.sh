#!/usr/bin/env bash
# Benchmark a recipe launch against the raw tools doing the same work, in
# one run, to "cloud-init done":
#   trm launch NAME --cloud-init UD --file SRC:DST
#   vs  lxc init + lxc file push (the same staging) + lxc start
#       + lxc exec NAME -- cloud-init status --wait
# Both boxes get the same profile (Terrarium's default, which moves the
# file into the home) and the same user-data. Prints the medians and their
# ratio. Needs root, a running LXD and the base image. Everything lives in
# the LXD project trm-bench-launch and is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-5}
TRM=${TRM:-$PWD/target/release/trm}
PROJECT=trm-bench-launch BRIDGE=trmbench2 POOL=trm-bench-launch
IMAGE=${IMAGE:-terrarium/debian12}

[ -x "$TRM" ] || cargo build --release -p trm
# shellcheck source=scripts/lib-lxd.sh
. scripts/lib-lxd.sh
bench_begin "$PROJECT" "$BRIDGE" "$POOL"

"$TRM" init --no-nat --bridge "$BRIDGE" --pool "$POOL" --storage btrfs --size 8GiB --format json >/dev/null
printf '#cloud-config\nruncmd:\n  - [sh, -c, "test -f /home/terrarium/app/run.sh && touch /root/recipe-ran"]\n' > "$work/ud.yaml"
echo 'echo hello' > "$work/run.sh"

trm_launch="$TRM launch rb-trm --image $IMAGE --cloud-init $work/ud.yaml --file $work/run.sh:app/run.sh --format json"
raw_launch="lxc init --project $PROJECT $IMAGE rb-raw -c cloud-init.user-data=\"\$(cat $work/ud.yaml)\" >/dev/null \
 && lxc file push --project $PROJECT --create-dirs --uid 0 --gid 0 $work/run.sh rb-raw/var/lib/terrarium/files/app/run.sh \
 && lxc start --project $PROJECT rb-raw && lxc exec --project $PROJECT rb-raw -- cloud-init status --wait >/dev/null"
# One --prepare each: a run removes only its own side's box, so both are
# there to check at the end.
hyperfine --runs "$RUNS" --export-json "$work/h.json" \
    --prepare "lxc delete --force --project $PROJECT rb-trm >/dev/null 2>&1 || true" \
    --prepare "lxc delete --force --project $PROJECT rb-raw >/dev/null 2>&1 || true" \
    "$trm_launch >/dev/null" "$raw_launch" >/dev/null 2>&1
# Both did the whole recipe: the file reached the home before the user's runcmd.
for b in rb-trm rb-raw; do
    lxc exec --project "$PROJECT" "$b" -- test -f /root/recipe-ran || { echo "$b: the recipe did not run" >&2; exit 1; }
done
t=$(jq -r '.results[0].median' "$work/h.json"); l=$(jq -r '.results[1].median' "$work/h.json")
awk -v t="$t" -v l="$l" 'BEGIN {
    printf "recipe launch to cloud-init done: trm %.2f s  raw lxc %.2f s  ratio %.3f\n", t, l, t / l
}'
