# Shared by the benchmark scripts: delete an LXD project with everything in
# it (instances, profiles), then a bridge and a pool. Safe when absent.
delete_lxd_project() { # project bridge pool
    local project=$1 bridge=$2 pool=$3 name
    for name in $(lxc query "/1.0/instances?project=$project" 2>/dev/null | jq -r '.[] | split("/")[-1] | split("?")[0]'); do
        lxc delete --force --project "$project" "$name" >/dev/null 2>&1 || true
    done
    for name in $(lxc query "/1.0/profiles?project=$project" 2>/dev/null | jq -r '.[] | split("/")[-1] | split("?")[0]'); do
        [ "$name" = default ] || lxc profile delete --project "$project" "$name" >/dev/null 2>&1 || true
    done
    lxc project delete "$project" >/dev/null 2>&1 || true
    lxc network delete "$bridge" >/dev/null 2>&1 || true
    lxc storage delete "$pool" >/dev/null 2>&1 || true
}

# Start a benchmark in its own LXD project: a scratch directory ($work),
# hermetic Terrarium settings, and cleanup of everything on exit.
bench_begin() { # project bridge pool
    BENCH_PROJECT=$1 BENCH_BRIDGE=$2 BENCH_POOL=$3
    work=$(mktemp -d)
    export TRM_CONFIG_DIR=$work/etc TRM_LOCK_DIR=$work/lock TRM_STATE_DIR=$work/state TRM_SYSCTL_DIR=$work/etc TRM_PROJECT=$BENCH_PROJECT
    trap bench_end EXIT
    delete_lxd_project "$BENCH_PROJECT" "$BENCH_BRIDGE" "$BENCH_POOL"
    mkdir -p "$work"
}

bench_end() {
    delete_lxd_project "$BENCH_PROJECT" "$BENCH_BRIDGE" "$BENCH_POOL"
    rm -rf "$work"
}
