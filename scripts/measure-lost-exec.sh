#!/usr/bin/env bash
# How often LXD's exec loses a command it started ("Failed to retrieve PID
# of executing child process") in a box with syscall interception
# (Terrarium's default, dev and agent profiles), with CPU, memory and
# process limits (those of e2e_agent's box), with both and with neither,
# and whether the lost commands ran.
# One run here (1,000 each): 6 lost with both, 2 with interception, none
# without it; all 8 had run. Each exec appends its number to a file in the box; a lost one that
# is in the file ran. This is why trm never runs a lost command again and
# says outcome_unknown instead (see lxd::lost_track_of_child).
#
#   ./scripts/measure-lost-exec.sh [EXECS]    (default 1000 per setting)
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib-lxd.sh
. scripts/lib-lxd.sh

execs=${1:-1000}
project=trm-lost-exec bridge=trmlost0 pool=trm-lost-exec
bench_begin "$project" "$bridge" "$pool"
subnet=10.231.78
if ip route | grep -q "^$subnet\."; then
    echo "$subnet.0/24 is in use on this host; edit subnet= in $0" >&2
    exit 2
fi
lxc storage create "$pool" dir >/dev/null
lxc network create "$bridge" ipv4.address=$subnet.1/24 ipv4.nat=false ipv6.address=none >/dev/null
lxc project create "$project" -c features.images=false -c features.profiles=true >/dev/null
lxc profile device add default root disk path=/ pool="$pool" --project "$project" >/dev/null
lxc profile device add default eth0 nic network="$bridge" name=eth0 --project "$project" >/dev/null

intercepts=(-c security.syscalls.intercept.mknod=true -c security.syscalls.intercept.setxattr=true)
# e2e_agent's box: launched with --cpu 1 --memory 512MiB under the agent
# profile's process cap.
limits=(-c limits.cpu=1 -c limits.memory=512MiB -c limits.processes=2000)

measure() { # label, then the box's -c settings
    local label=$1 lost=0 ran=0 n out
    shift
    lxc launch terrarium/debian12 lx --project "$project" -c security.nesting=true "$@" >/dev/null
    # Booted: the measure is of a settled box (LXD loses execs into a
    # box still coming up as well).
    until lxc exec lx --project "$project" -- true >/dev/null 2>&1; do sleep 1; done
    lxc exec lx --project "$project" -- cloud-init status --wait >/dev/null 2>&1 || true
    local lostlist=()
    for n in $(seq 1 "$execs"); do
        out=$(lxc exec lx --project "$project" -- sh -c "echo $n >> /root/ran" 2>&1) || true
        if [ "$out" = "Error: Failed to retrieve PID of executing child process" ]; then
            lost=$((lost + 1)); lostlist+=("$n")
        fi
    done
    local seen
    # A read: tried again should LXD lose it too.
    until seen=$(lxc exec lx --project "$project" -- cat /root/ran); do sleep 1; done
    for n in "${lostlist[@]}"; do
        if grep -qx "$n" <<<"$seen"; then ran=$((ran + 1)); fi
    done
    printf '%-22s execs %d  lost %d (1 in %s)  lost but ran %d of %d\n' \
        "$label" "$execs" "$lost" "$([ "$lost" -gt 0 ] && echo $((execs / lost)) || echo never)" "$ran" "$lost"
    lxc delete --force lx --project "$project" >/dev/null
}

measure "intercepts and limits" "${intercepts[@]}" "${limits[@]}"
measure "intercepts" "${intercepts[@]}"
measure "limits" "${limits[@]}"
measure "neither"
