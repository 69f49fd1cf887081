#!/usr/bin/env bash
# Benchmark the gate's forward-auth decision, in one run: wrk through a real
# Traefik on loopback against two routes to the same Traefik-internal
# service (ping@internal, so no backend adds noise), one plain and one
# behind trm-gate's forwardAuth with a signed-in user's cookie. Prints p50
# and p99 of both, the added latency (target: p50 under 1 ms added) and
# the gate's resident memory under that load (target: under 20 MiB).
# The session is a real one: a sign-in at oidc-provider-mock through the
# gate's /oauth2/start, /oauth2/callback and /oauth2/handoff.
# Needs scripts/setup-host.sh (Traefik, wrk, the OIDC mock). Everything
# lives in a temp dir; processes are stopped by pid at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
CONNS=${CONNS:-16}
WEB=39080 API=39082 GATE=39180 IDP=39400
IDP_BIN=${TRM_OIDC_PROVIDER_MOCK:-/opt/terrarium-test/oidc/bin/oidc-provider-mock}
cargo build -q --release -p trm-gate
BIN=$PWD/target/release
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/cfg/gate" "$work/dynamic" "$work/state" "$work/log"
"$IDP_BIN" --port "$IDP" --user-claims '{"sub":"bob","email":"bob@example.test","groups":["admins"]}' \
    >"$work/log/idp.log" 2>&1 &
pids+=($!)
echo bench-secret >"$work/cfg/gate/client-secret"
chmod 600 "$work/cfg/gate/client-secret"
cat >"$work/cfg/gate.toml" <<EOT
listen = "127.0.0.1:$GATE"
issuer = "http://127.0.0.1:$IDP"
client_id = "terrarium-bench"
client_secret_file = "$work/cfg/gate/client-secret"
admin_group = "admins"
auth_url = "https://auth.bench.test:$WEB"
keys_file = "$work/cfg/gate/cookie-keys"
dynamic_dir = "$work/dynamic"
state_dir = "$work/state"
log_dir = "$work/log"
user = ""
EOT
export TRM_CONFIG_DIR=$work/cfg
"$BIN/trm-gate" keys rotate --format json >/dev/null

# The routes, as trm-expose writes them (forwardAuth, the gate's /oauth2/
# router on the gated host), to ping@internal.
cat >"$work/dynamic/trm-bench_app.yml" <<EOT
{"http": {
  "routers": {
    "plain": {"rule": "Host(\`plain.bench.test\`)", "entryPoints": ["web"], "service": "ping@internal"},
    "gated": {"rule": "Host(\`gated.bench.test\`)", "entryPoints": ["web"], "service": "ping@internal", "middlewares": ["gate"]},
    "gated-oauth2": {"rule": "Host(\`gated.bench.test\`) && PathPrefix(\`/oauth2/\`)", "entryPoints": ["web"], "service": "gate", "priority": 1000000},
    "auth": {"rule": "Host(\`auth.bench.test\`)", "entryPoints": ["web"], "service": "gate"}
  },
  "services": {"gate": {"loadBalancer": {"servers": [{"url": "http://127.0.0.1:$GATE"}]}}},
  "middlewares": {"gate": {"forwardAuth": {
    "address": "http://127.0.0.1:$GATE/oauth2/auth?allowed_groups=admins",
    "trustForwardHeader": false,
    "authRequestHeaders": ["Accept", "Cookie"],
    "authResponseHeaders": ["X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"]}}}
}}
EOT
cat >"$work/traefik.yml" <<EOT
{"global": {"checkNewVersion": false, "sendAnonymousUsage": false},
 "entryPoints": {"web": {"address": "127.0.0.1:$WEB"}, "traefik": {"address": "127.0.0.1:$API"}},
 "providers": {"file": {"directory": "$work/dynamic", "watch": true}},
 "ping": {"entryPoint": "traefik"},
 "log": {"level": "ERROR", "filePath": "$work/log/traefik.log"}}
EOT
/usr/local/bin/traefik --configFile="$work/traefik.yml" >"$work/log/traefik.out" 2>&1 &
pids+=($!)
"$BIN/trm-gate" serve 2>"$work/log/gate.log" &
gate_pid=$!
pids+=($gate_pid)

wait_for() { for _ in $(seq 100); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "$1 never answered" >&2; exit 1; }
wait_for "http://127.0.0.1:$IDP/.well-known/openid-configuration"
wait_for "http://127.0.0.1:$GATE/ping"
wait_for "http://127.0.0.1:$API/ping"
for _ in $(seq 50); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: plain.bench.test' "http://127.0.0.1:$WEB/")" = 200 ] && break
    sleep 0.1
done

# A real sign-in, as a browser does it: gated.bench.test sends us to sign
# in (with its bind cookie), the provider signs bob in, the auth host
# hands gated.bench.test its own session.
via() { local h=$1; shift; curl -s -o "$work/last-body" -D - -H "Host: $h" -H 'Accept: text/html' "$@"; }
header() { grep -i "^$1:" | head -1 | cut -d' ' -f2- | tr -d '\r'; }
cookie_of() { grep -i "^Set-Cookie: $1=" | head -1 | sed "s/^Set-Cookie: \($1=[^;]*\);.*/\1/I" | tr -d '\r'; }
local_url() { echo "http://127.0.0.1:$WEB/${1#https://*/}"; }
first=$(via gated.bench.test:$WEB "http://127.0.0.1:$WEB/")
bind=$(echo "$first" | cookie_of __Host-trm_gate_bind)
start=$(via auth.bench.test:$WEB "$(local_url "$(echo "$first" | header Location)")")
[ -n "$(echo "$start" | header Location)" ] || { echo "the auth host refused the sign-in:" >&2; cat "$work/last-body" >&2; exit 1; }
signin=$(echo "$start" | cookie_of __Host-trm_gate_signin)
authorize=$(echo "$start" | header Location)
callback=$(curl -s -o /dev/null -D - -X POST --data-urlencode sub=bob "$authorize" | header Location)
back=$(via auth.bench.test:$WEB -H "Cookie: $signin" "$(local_url "$callback")")
handoff=$(echo "$back" | header Location)
session=$(via gated.bench.test:$WEB -H "Cookie: $bind" "$(local_url "$handoff")" | cookie_of __Host-trm_gate)
[ -n "$session" ] || { echo "no session from the sign-in" >&2; cat "$work/log/gate.log" >&2; exit 1; }
code() { curl -s -o /dev/null -w '%{http_code}' -H "Host: $1" -H 'Accept: text/html' "${@:2}" "http://127.0.0.1:$WEB/"; }
[ "$(code gated.bench.test -H "Cookie: $session")" = 200 ] || { echo "the signed-in request is not let through" >&2; exit 1; }
[ "$(code gated.bench.test)" = 302 ] || { echo "an anonymous request is not sent to sign in" >&2; exit 1; }

run() { wrk -t"$(( CONNS < 2 ? 1 : 2 ))" -c"$CONNS" -d"$DURATION" --latency "$@" "http://127.0.0.1:$WEB/"; }
ms() { # wrk's "50.000%  1.23ms" / "99%  850.00us" / "1.2s" -> milliseconds
    awk -v p="$1" '$1 == p"%" || $1 == p".000%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'
}
# 1 connection: the decision's own cost; more: the two cores shared by
# wrk, Traefik and the gate, where queueing adds to every request.
for CONNS in ${CONNS_LIST:-1 4 16}; do
echo "==> wrk $DURATION, $CONNS connection(s): plain route, then the same route behind the gate, signed in" >&2
plain=$(run -H 'Host: plain.bench.test')
gated=$(run -H 'Host: gated.bench.test' -H "Cookie: $session" & sleep 2; grep VmRSS "/proc/$gate_pid/status" >"$work/rss" ; wait)
grep -q "Non-2xx" <<<"$gated" && { echo "non-2xx answers under load:" >&2; echo "$gated" >&2; exit 1; }
p50p=$(ms 50 <<<"$plain") p99p=$(ms 99 <<<"$plain") p50g=$(ms 50 <<<"$gated") p99g=$(ms 99 <<<"$gated")
rps_p=$(awk '/Requests\/sec/ {print $2}' <<<"$plain") rps_g=$(awk '/Requests\/sec/ {print $2}' <<<"$gated")
rss_kib=$(awk '{print $2}' "$work/rss")
hwm_kib=$(awk '/VmHWM/ {print $2}' "/proc/$gate_pid/status")
echo "-- $CONNS connection(s)"
python3 - "$p50p" "$p99p" "$p50g" "$p99g" "$rps_p" "$rps_g" "$rss_kib" "$hwm_kib" <<'EOF'
import sys
p50p, p99p, p50g, p99g, rps_p, rps_g, rss, hwm = map(float, sys.argv[1:])
print(f"plain route:   p50 {p50p:.3f} ms  p99 {p99p:.3f} ms  {rps_p:.0f} req/s")
print(f"behind gate:   p50 {p50g:.3f} ms  p99 {p99g:.3f} ms  {rps_g:.0f} req/s")
print(f"added by the forward-auth decision: p50 {p50g - p50p:.3f} ms (target < 1 ms), p99 {p99g - p99p:.3f} ms")
print(f"ratio gated/plain: p50 {p50g / p50p:.2f}x, p99 {p99g / p99p:.2f}x, throughput {rps_g / rps_p:.2f}x")
print(f"gate resident memory under load: {rss / 1024:.1f} MiB (peak {hwm / 1024:.1f} MiB; target < 20 MiB)")
EOF
done
