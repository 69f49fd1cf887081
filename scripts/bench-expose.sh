#!/usr/bin/env bash
# Benchmark trm-expose, in one run, with a real Traefik on loopback ports:
# - a full `trm-expose sync` over 100 real labelled containers against one
#   `lxc list --format json` of the same project (median ratio; target <= 1.1x);
# - the time from `trm-expose add` returning to the first 200 through
#   Traefik (median; target < 1 s), and from `lxc start` of a labelled
#   instance to the first 200 with `trm-expose watch` running;
# - Traefik's resident memory with the 100 instances' routes loaded;
# - render+validate for 1,000 synthetic instances (target < 100 ms).
# Needs root, a running LXD, the base image and the pinned Traefik
# (scripts/setup-host.sh). The firewall part is off here (the bench never
# touches the host's UFW); everything lives in the LXD project
# trm-bench-exp and is deleted at the end, Traefik is stopped by its pid.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100}
RUNS=${RUNS:-30}
LAT=${LAT:-10}   # latency samples (each on its own container)
WEB=38080 API=38082
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
ufw = false
state_dir = "$work/state"
acme_storage = "$work/acme/acme.json"
# Nothing leaves the machine: ACME points at a loopback port nobody serves.
acme_ca_server = "https://127.0.0.1:9/dir"
http_address = "127.0.0.1:$WEB"
https_address = "127.0.0.1:38443"
api_address = "127.0.0.1:$API"
log_dir = "$work/log"
supervisor = "terrarium"
EOT
chmod 0755 "$work"
trap '"$BIN/trm-expose" proxy stop --format json >/dev/null 2>&1 || true; bench_end' EXIT
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
"$BIN/trm-expose" sync --format json >/dev/null || true
"$BIN/trm-expose" proxy start --format json >/dev/null
"$BIN/trm-expose" list --format json |
    jq -r '"routes: \(.routes | length), active (running, with an address, file written): \([.routes[] | select(.state == "active")] | length)"'
"$BIN/trm-expose" proxy status --format json |
    jq -r '"Traefik \(.version): Terrarium routers loaded \(.files.loaded) of \(.files.expected)"'
pid=$(cat "$work/state/traefik.pid")
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
echo "traefik  resident memory with $N instances' routes (and $N TCP entrypoints) loaded: $((rss / 1024)) MiB"

hyperfine -N --warmup 3 --runs "$RUNS" --export-json "$work/h.json" \
    "$BIN/trm-expose sync --format json" "lxc list --project $PROJECT --format json" >/dev/null 2>&1
t=$(jq -r '.results[0].median' "$work/h.json"); l=$(jq -r '.results[1].median' "$work/h.json")
awk -v t="$t" -v l="$l" 'BEGIN {
    r = t / l
    printf "sync   trm-expose %.1f ms  lxc list %.1f ms  ratio %.3f  (target <= 1.1) %s\n", t * 1000, l * 1000, r, (r <= 1.1 ? "OK" : "OVER")
}'

# Latency through the real Traefik: milliseconds until the first 200.
now_ms() { date +%s%3N; }
first_200() { # host -> ms from now until Traefik answers 200 for it
    local t0 t
    t0=$(now_ms)
    until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' -H "Host: $1" "http://127.0.0.1:$WEB/")" = 200 ]; do
        t=$(now_ms)
        [ $((t - t0)) -gt 60000 ] && { echo 60000; return; }
        sleep 0.01
    done
    echo $(($(now_ms) - t0))
}
ip_of() { lxc list --project "$PROJECT" "$1" --format json | jq -r '.[0].state.network.eth0.addresses[] | select(.family=="inet") | .address' | head -1; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

echo "==> a web server in $LAT containers" >&2
for i in $(seq 1 "$LAT"); do
    lxc exec --project "$PROJECT" "b-$i" -- sh -c "mkdir -p /srv && echo b-$i > /srv/index.html && \
        printf '[Service]\nExecStart=/usr/bin/python3 -m http.server 3000 --directory /srv\n[Install]\nWantedBy=multi-user.target\n' > /etc/systemd/system/web.service && \
        systemctl daemon-reload && systemctl enable --now web.service" >/dev/null 2>&1
done
sleep 2
: >"$work/add.ms"
for i in $(seq 1 "$LAT"); do
    "$BIN/trm-expose" add "b-$i" --port 3000 --host "lat-$i.bench.test" --http --format json >/dev/null
    first_200 "lat-$i.bench.test" >>"$work/add.ms"
done
# The raw tool on the same work: the same route written into Traefik's
# directory by hand (atomically), then the first 200.
: >"$work/raw-add.ms"
for i in $(seq 1 "$LAT"); do
    ip=$(ip_of "b-$i")
    printf '{"http":{"routers":{"raw-%s":{"rule":"Host(`raw-%s.bench.test`)","entryPoints":["web"],"service":"raw-%s"}},"services":{"raw-%s":{"loadBalancer":{"servers":[{"url":"http://%s:3000"}]}}}}}\n' \
        "$i" "$i" "$i" "$i" "$ip" >"$work/dynamic/.raw-$i.tmp"
    mv "$work/dynamic/.raw-$i.tmp" "$work/dynamic/raw-$i.yml"
    first_200 "raw-$i.bench.test" >>"$work/raw-add.ms"
done
a=$(median <"$work/add.ms"); r=$(median <"$work/raw-add.ms")
echo "add    -> first 200 through Traefik: median $a ms over $LAT (target < 1000 ms; samples: $(tr '\n' ' ' <"$work/add.ms"))"
echo "raw    file written by hand -> first 200: median $r ms (samples: $(tr '\n' ' ' <"$work/raw-add.ms"))"
awk -v a="$a" -v r="$r" 'BEGIN { printf "add latency ratio (trm-expose add / hand-written file): %.2f\n", a / r }'
rm -f "$work"/dynamic/raw-*.yml

"$BIN/trm-expose" watch --format jsonl >/dev/null 2>&1 &
watch_pid=$!
sleep 2
: >"$work/start.ms"
for i in $(seq 1 "$LAT"); do
    lxc stop --project "$PROJECT" "b-$i"
    # watch turns the stopped route to 502 before the next start.
    until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' -H "Host: lat-$i.bench.test" "http://127.0.0.1:$WEB/")" = 502 ]; do sleep 0.05; done
    t0=$(now_ms)
    lxc start --project "$PROJECT" "b-$i"
    first_200 "lat-$i.bench.test" >/dev/null
    echo "$(($(now_ms) - t0))" >>"$work/start.ms"
done
kill "$watch_pid" 2>/dev/null || true
# The raw tool: the same start, the container's own server asked directly.
: >"$work/raw-start.ms"
for i in $(seq 1 "$LAT"); do
    ip=$(ip_of "b-$i")
    lxc stop --project "$PROJECT" "b-$i"
    t0=$(now_ms)
    lxc start --project "$PROJECT" "b-$i"
    until [ "$(curl -s -o /dev/null -m 2 -w '%{http_code}' "http://$ip:3000/")" = 200 ]; do
        [ $(($(now_ms) - t0)) -gt 60000 ] && break
        sleep 0.01
    done
    echo "$(($(now_ms) - t0))" >>"$work/raw-start.ms"
done
a=$(median <"$work/start.ms"); r=$(median <"$work/raw-start.ms")
echo "lxc start -> first 200 through Traefik (watch running): median $a ms over $LAT (samples: $(tr '\n' ' ' <"$work/start.ms"))"
echo "lxc start -> first 200 from the container directly: median $r ms (samples: $(tr '\n' ' ' <"$work/raw-start.ms"))"
awk -v a="$a" -v r="$r" 'BEGIN { printf "start latency ratio (through Traefik / direct): %.2f\n", a / r }'
