#!/usr/bin/env bash
# Benchmark incremental off-site export, in one run: a ZFS dataset of
# about 1 GiB (Debian root tarball, text, random data) exported full,
# then 10 MiB of it changed and exported incrementally (zfs send -i),
# both through Terrarium's chain code to the same loopback s3s-fs.
# Prints the time and the bytes uploaded of the incremental against the
# full. On zfs-fuse (LXD cannot use it as a pool, so the dataset is named
# directly: tests/src/bin/bench-chain.rs).
# Needs root, zfs-fuse and s3s-fs; the pool lives in a temporary file and
# is destroyed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

RANDOM_MIB=${RANDOM_MIB:-640} CHANGED_MIB=${CHANGED_MIB:-10}
POOL=trmbenchchain AK=TRMBENCHKEY SK=trm-bench-secret-0123456789 BUCKET=bench
# --bin limits a build to that binary: the tool is built on its own.
cargo build -q --release -p trm-snap
cargo build -q --release -p terrarium-tests --bin bench-chain
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
work=$(mktemp -d)
s3pid=
cleanup() {
    [ -z "$s3pid" ] || kill "$s3pid" 2>/dev/null || true
    zpool destroy "$POOL" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
zpool list >/dev/null 2>&1 || { zfs-fuse; sleep 1; }

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/s3/$BUCKET" "$work/etc" "$work/state"
s3s-fs --host 127.0.0.1 --port "$port" --access-key "$AK" --secret-key "$SK" "$work/s3" >/dev/null 2>&1 &
s3pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
export TRM_CONFIG_DIR=$work/etc TRM_STATE_DIR=$work/state
echo 'project = "bench"' >"$work/etc/terrarium.toml"
printf '%s\n' "$SK" >"$work/secret"
"$BIN/trm-snap" s3 set --endpoint "http://127.0.0.1:$port" --bucket "$BUCKET" --access-key "$AK" \
    --secret-key-file "$work/secret" --generate-key --format json >/dev/null 2>&1

echo "==> a ZFS dataset with a Debian root, text and ${RANDOM_MIB} MiB random" >&2
truncate -s 3G "$work/pool.img"
zpool create -m "$work/mnt" "$POOL" "$work/pool.img"
ds=$POOL/lxd/containers/bench_big
zfs create -p "$ds"
root=$(zfs get -H -o value mountpoint "$ds")
image=$(lxc image list -f csv -c f terrarium/debian12 2>/dev/null | head -1)
rootfs=$(ls /var/lib/lxd/images/"$image"*.rootfs 2>/dev/null | head -1 || true)
if [ -n "$rootfs" ]; then zcat "$rootfs" >"$root/rootfs.tar"; fi
seq 1 14000000 >"$root/text"
dd if=/dev/urandom of="$root/blob" bs=1M count="$RANDOM_MIB" status=none
sync
du -sh "$root" >&2

echo "==> full export" >&2
"$BIN/bench-chain" "$ds" big bench 100 >"$work/full.json"
echo "==> ${CHANGED_MIB} MiB changed, incremental export" >&2
dd if=/dev/urandom of="$root/blob" bs=1M count="$CHANGED_MIB" seek=100 conv=notrunc status=none
sync
"$BIN/bench-chain" "$ds" big bench 100 >"$work/inc.json"
jq -e '.zfs.parent != null' "$work/inc.json" >/dev/null

jq -rs '.[0] as $f | .[1] as $i |
  "full          \($f.seconds * 100 | round / 100) s  \($f.tarball_size) stream bytes  \($f.size) uploaded",
  "incremental   \($i.seconds * 100 | round / 100) s  \($i.tarball_size) stream bytes  \($i.size) uploaded",
  "ratio         time \($i.seconds / $f.seconds * 1000 | round / 1000)x  bytes uploaded \($i.size / $f.size * 10000 | round / 10000)x  (incremental / full)"' \
  "$work/full.json" "$work/inc.json"
