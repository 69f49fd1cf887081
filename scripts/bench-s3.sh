#!/usr/bin/env bash
# Benchmark off-site export, in one run, against the same loopback S3
# server (s3s-fs), of a container holding about 1 GiB of mixed data (its
# Debian root, ~100 MiB of compressible text, a random file):
#   end to end: `trm-snap export` against the raw-tool pipeline a careful
#   admin writes for the same snapshot (lxc export | zstd -T0 | age -r,
#   then curl -T: S3 wants a Content-Length, so curl cannot stream a
#   pipe); target >= 1.0x;
#   Terrarium's streaming stage (first byte from LXD to manifest written:
#   zstd, age, SHA-256, multipart upload) against `curl -T` of the same
#   encrypted bytes; target >= 0.7x;
#   peak memory of `trm-snap export` (/usr/bin/time -v; target < 64 MiB).
# Needs root, a running LXD, the base image and s3s-fs. Everything lives
# in the LXD project trm-bench-s3 and is deleted at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3} RANDOM_MIB=${RANDOM_MIB:-640}  # LEVEL=1 for zstd level 1 (default 3)
PROJECT=trm-bench-s3 BRIDGE=trmbench3 POOL=trm-bench-s3
IMAGE=${IMAGE:-terrarium/debian12}
AK=TRMBENCHKEY SK=trm-bench-secret-0123456789 BUCKET=bench
cargo build -q --release -p trm -p trm-snap
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release
# shellcheck source=scripts/lib-lxd.sh
. scripts/lib-lxd.sh
bench_begin "$PROJECT" "$BRIDGE" "$POOL"
s3pid=
stop_s3() { [ -z "$s3pid" ] || kill "$s3pid" 2>/dev/null || true; }
trap 'stop_s3; bench_end' EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/s3/$BUCKET" "$work/etc"
s3s-fs --host 127.0.0.1 --port "$port" --access-key "$AK" --secret-key "$SK" "$work/s3" >/dev/null 2>&1 &
s3pid=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
endpoint=http://127.0.0.1:$port

echo "==> container with its root, text and a ${RANDOM_MIB} MiB random file in $PROJECT" >&2
"$BIN/trm" init --no-nat --bridge "$BRIDGE" --pool "$POOL" --storage btrfs --size 8GiB --format json >/dev/null
printf '%s\n' "$SK" > "$work/secret"
"$BIN/trm-snap" s3 set --endpoint "$endpoint" --bucket "$BUCKET" --access-key "$AK" \
    --secret-key-file "$work/secret" --generate-key --compression-level "${LEVEL:-3}" --format json >/dev/null 2>&1
lxc init --project "$PROJECT" "$IMAGE" big >/dev/null
dd if=/dev/urandom of="$work/blob" bs=1M count="$RANDOM_MIB" status=none
seq 1 14000000 >"$work/text"
lxc file push -q --project "$PROJECT" "$work/blob" big/root/blob
lxc file push -q --project "$PROJECT" "$work/text" big/root/text
rm -f "$work/blob" "$work/text"

median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "==> $RUNS exports (/usr/bin/time -v)" >&2
for i in $(seq "$RUNS"); do
    /usr/bin/time -v "$BIN/trm-snap" export big --format json >"$work/x$i.json" 2>"$work/t$i.txt"
        awk -F': ' '/Maximum resident set size/ {print $2}' "$work/t$i.txt" >>"$work/rss"
    awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u, s}' "$work/t$i.txt" >>"$work/cpu"
    jq -r .timings.stream "$work/x$i.json" >>"$work/stream"
        jq -r .seconds "$work/x$i.json" >>"$work/total"
        jq -r '.timings | "\(.snapshot) \(.copy) \(.lxd_prepare) \(.stream) \(.complete)"' "$work/x$i.json" >>"$work/stages"
    jq -r .timings.complete "$work/x$i.json" >>"$work/complete"
done
echo "==> trm-snap export stages (s): snapshot copy lxd_prepare stream (of it: the server assembling the parts); its CPU (s): user system" >&2
paste -d' ' "$work/stages" "$work/cpu" >&2
data=$work/s3/$BUCKET/$(jq -r .data "$work/x$RUNS.json")
size=$(stat -c %s "$data")

echo "==> $RUNS curl -T uploads of the same $size encrypted bytes" >&2
for i in $(seq "$RUNS"); do
    curl -sS -o /dev/null -w '%{time_total}\n' -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
        --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
        -T "$data" "$endpoint/$BUCKET/curl-$i" >>"$work/curl"
done

echo "==> $RUNS raw pipelines: snapshot, copy, lxc export | zstd -T0 | age -r > file, curl -T" >&2
recipient=$(jq -r .recipient <("$BIN/trm-snap" s3 show --format json))
for i in $(seq "$RUNS"); do
    start=$(date +%s.%N)
    lxc snapshot --project "$PROJECT" big raw
    lxc copy --project "$PROJECT" big/raw rawcopy
    lxc export --project "$PROJECT" rawcopy /dev/stdout --instance-only --compression none -q |
        zstd -q -T0 -"${LEVEL:-3}" | age -r "$recipient" >"$work/raw.age"
    curl -sS -o /dev/null -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' --aws-sigv4 "aws:amz:us-east-1:s3" \
        --user "$AK:$SK" -T "$work/raw.age" "$endpoint/$BUCKET/raw-$i"
        # Cleaning up is part of the work (trm-snap export's time includes it).
    lxc delete --project "$PROJECT" rawcopy
    lxc delete --project "$PROJECT" big/raw
    rm -f "$work/raw.age"
    end=$(date +%s.%N)
    awk -v a="$start" -v b="$end" 'BEGIN {print b - a}' >>"$work/raw"
done

rss=$(median <"$work/rss") stream=$(median <"$work/stream") curl=$(median <"$work/curl")
total=$(median <"$work/total") raw=$(median <"$work/raw") complete=$(median <"$work/complete")
awk -v rss="$rss" -v s="$stream" -v c="$curl" -v t="$total" -v r="$raw" -v size="$size" -v k="$complete" 'BEGIN {
    printf "peak memory   %.1f MiB (max RSS of trm-snap export and its lxc child)  (target < 64) %s\n", rss / 1024, (rss / 1024 < 64 ? "OK" : "OVER")
    printf "throughput    streaming %.2f s (%.0f MiB/s)  curl -T %.2f s (%.0f MiB/s)  ratio %.3f  (target >= 0.7) %s\n", s, size / 1048576 / s, c, size / 1048576 / c, c / s, (c / s >= 0.7 ? "OK" : "UNDER")
        printf "end to end    trm-snap export %.2f s  raw pipeline %.2f s  ratio %.3f  (target >= 1.0) %s\n", t, r, r / t, (r / t >= 1.0 ? "OK" : "UNDER")
    printf "of which      %.2f s is the server assembling the multipart upload (s3s-fs copies every part; a single PUT, as curl -T, has no such step)\n", k
    printf "without it    streaming ratio %.3f  end to end ratio %.3f\n", c / (s - k), r / (t - k)
}'
