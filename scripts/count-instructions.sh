#!/usr/bin/env bash
# Instructions per request, counted by valgrind's callgrind (`make bench-count`). On a shared
# virtual machine time varies by 15-20% from run to run; an instruction count does not, so this
# is how a change to the request path is judged here (BENCHMARKS.md).
#
# 1. The criterion benches of the plugin path, each run under callgrind: user-space instructions
#    per request inside the chain (request hooks, response hooks, end of the contexts), wasm
#    included.
# 2. The whole gateway (wasmgate with the seed's three plugins, and with none) under wrk, in
#    front of bench-upstream: user-space instructions per request over DURATION seconds after a
#    warm-up (the kernel's share is not counted).
#
# Knobs (environment): DURATION (10), PORT_BASE (18400). Files under target/bench-count/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench-count
DURATION=${DURATION:-10}
PORT_BASE=${PORT_BASE:-18400}
P_UP=$PORT_BASE P_PLUGINS=$((PORT_BASE + 1)) P_NONE=$((PORT_BASE + 2))

# KEY, KEY_SHA256, INSTANCE, SEED_PATH, BODY, seed_lua, seed_plugins_toml.
source scripts/bench-seed.sh

log() { printf '[bench-count] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v wrk >/dev/null || need+=(wrk)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
    log "installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

rm -rf "$OUT" && mkdir -p "$OUT"
log "building (release)"
cargo build --release -q -p wasmgate --bin wasmgate
cargo build --release -q -p wasmgate-benches --bin bench-upstream
cargo bench -q -p wasmgate-benches --bench plugin_path --no-run 2>/dev/null
bench=$(find target/release/deps -maxdepth 1 -type f -executable -name 'plugin_path-*' -printf '%T@ %p\n' \
    | sort -rn | head -1 | cut -d' ' -f2)
[ -n "$bench" ] || die "no plugin_path bench binary under target/release/deps"

# ---- 1. the plugin path ---------------------------------------------------------------------

# Instructions per call of each chain step, from callgrind's inclusive costs: the line with the
# most calls is the measured loop (criterion's warm-up calls are a handful).
per_call() { # annotated-file function
    grep -F "=> " "$1" | grep -F "$2 (" | awk '{
        ir = $1; gsub(",", "", ir); n = $NF; gsub(/[(),x]/, "", n)
        if (n + 0 > best) { best = n + 0; cost = ir / n } } END { printf "%.0f", cost }'
}

echo "Instructions per request inside the chain (callgrind, criterion benches of benches/benches/plugin_path.rs):"
echo
echo "| bench | request phase | response phase | end (done, log, delete) | total |"
echo "| --- | --- | --- | --- | --- |"
for filter in plugin/key-auth plugin/instance-header plugin/path-rewrite chain/three-plugins chain/none; do
    file=$OUT/$(echo "$filter" | tr / -).out
    valgrind --tool=callgrind --toggle-collect='plugin_path::request*' --callgrind-out-file="$file" \
        "$bench" --bench "^$filter\$" --profile-time 1 >"$file.log" 2>&1 || die "$filter failed (see $file.log)"
    callgrind_annotate --inclusive=yes "$file" >"$file.txt" 2>/dev/null
    req=$(per_call "$file.txt" 'Chain::on_request')
    res=$(per_call "$file.txt" 'ChainRun::on_response')
    fin=$(per_call "$file.txt" 'ChainRun::finish')
    echo "| \`$filter\` | $req | $res | $fin | $((req + res + fin)) |"
done
echo

# ---- 2. the whole gateway -------------------------------------------------------------------

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

config() { # port plugins?
    cat <<EOF
version = 1
[server]
http = "127.0.0.1:$1"
workers = 1
[plugins]
dir = "$ROOT/target/wasm"
instances = 1
[access_log]
enabled = false
[admin]
enabled = false
[[routes]]
name = "serving-uci"
prefix = "/serving-uci"
upstream = "http://127.0.0.1:$P_UP"
EOF
    if [ "$2" = yes ]; then
        seed_plugins_toml
    fi
}

seed_lua >"$OUT/seed.lua"
config "$P_PLUGINS" yes >"$OUT/plugins.toml"
config "$P_NONE" no >"$OUT/none.toml"

target/release/bench-upstream "127.0.0.1:$P_UP" 2>"$OUT/upstream.log" &
PIDS+=($!)

echo "User-space instructions per request of the whole gateway under wrk (callgrind, ${DURATION} s, 8 connections):"
echo
echo "| gateway | requests | instructions per request |"
echo "| --- | --- | --- |"
for name in none plugins; do
    port=$P_NONE && [ "$name" = plugins ] && port=$P_PLUGINS
    url="http://127.0.0.1:$port$SEED_PATH"
    WASMGATE_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT/gateway-$name.out" \
        target/release/wasmgate run --config "$OUT/$name.toml" 2>"$OUT/gateway-$name.log" &
    pid=$!
    PIDS+=($pid)
    for _ in $(seq 1500); do
        curl -s -o /dev/null --max-time 2 "$url" && break
        sleep 0.2
    done
    status=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H "apikey: $KEY" -H "X-INSTANCE-ID: $INSTANCE" \
        --data-binary "$BODY" "$url")
    [ "$status" = 200 ] || die "$name: the seed request got $status, not 200"
    wrk -t1 -c8 -d3s -s "$OUT/seed.lua" "$url" >/dev/null
    callgrind_control -z "$pid" >/dev/null 2>&1
    wrk -t1 -c8 -d"${DURATION}s" -s "$OUT/seed.lua" "$url" >"$OUT/wrk-$name.txt"
    callgrind_control -d "$pid" >/dev/null 2>&1
    sleep 1
    requests=$(awk '/requests in/ { print $1 }' "$OUT/wrk-$name.txt")
    ! grep -q 'Non-2xx' "$OUT/wrk-$name.txt" || die "$name: wrk saw non-2xx answers ($OUT/wrk-$name.txt)"
    dump=$(ls -t "$OUT/gateway-$name.out".* | head -1)
    total=$(awk '/^totals:/ { print $2; exit }' "$dump")
    echo "| $name | $requests | $((total / requests)) |"
    kill -TERM "$pid" && wait "$pid" 2>/dev/null || true
done
