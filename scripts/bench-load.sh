#!/usr/bin/env bash
# The load benchmark (`make bench-load`): wasmgate with the seed's three plugins, nginx + Lua
# doing the same job, and wasmgate with no plugins, each in front of the same fixed-answer
# upstream, all on loopback. wrk drives HTTP/1.1 (plain and TLS), h2load HTTP/2 (h2c and h2 over
# TLS), with the seed's prediction request. The proxies run on one CPU (GW_CPU), the load tool
# and the upstream on the other (LOAD_CPU): the comparison is per core. Runs alternate between
# the proxies and the table gives the median of ROUNDS rounds. Everything it writes is under
# target/bench-load/; everything it starts is stopped when it exits.
#
# Knobs (environment): ROUNDS (5), DURATION seconds per run (5), CONNS (32), GW_CPU (1),
# LOAD_CPU (0), PORT_BASE (18300).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/target/bench-load
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-32}
GW_CPU=${GW_CPU:-1}
LOAD_CPU=${LOAD_CPU:-0}
PORT_BASE=${PORT_BASE:-18300}

# KEY, KEY_SHA256, INSTANCE, SEED_PATH, BODY, seed_lua, seed_plugins_toml.
source scripts/bench-seed.sh
ANSWER='{"result":{"price":[[18.891274]]}}'

P_UP=$PORT_BASE
P_WG_HTTP=$((PORT_BASE + 1)) P_WG_HTTPS=$((PORT_BASE + 2))
P_NP_HTTP=$((PORT_BASE + 3)) P_NP_HTTPS=$((PORT_BASE + 4))
P_NG_HTTP=$((PORT_BASE + 5)) P_NG_HTTPS=$((PORT_BASE + 6)) P_NG_H2C=$((PORT_BASE + 7))

log() { printf '[bench-load] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---- what it needs --------------------------------------------------------------------------

install_missing() {
    local need=()
    command -v nginx >/dev/null || need+=(nginx)
    [ -e /usr/lib/nginx/modules/ngx_http_lua_module.so ] || need+=(libnginx-mod-http-lua)
    command -v wrk >/dev/null || need+=(wrk)
    command -v h2load >/dev/null || need+=(nghttp2-client)
    command -v openssl >/dev/null || need+=(openssl)
    command -v curl >/dev/null || need+=(curl)
    command -v taskset >/dev/null || need+=(util-linux)
    if [ ${#need[@]} -gt 0 ]; then
        log "installing ${need[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

build() {
    log "building wasmgate and bench-upstream (release)"
    cargo build --release -q -p wasmgate --bin wasmgate
    cargo build --release -q -p wasmgate-benches --bin bench-upstream
    local p
    for p in key-auth instance-header path-rewrite; do
        [ -f target/wasm/$p.wasm ] || { scripts/build-wasm.sh; break; }
    done
}

# ---- processes ------------------------------------------------------------------------------

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    wait 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }

wait_ready() { # URL what
    for _ in $(seq 100); do
        curl -s -k -o /dev/null --max-time 1 "$1" && return 0
        sleep 0.1
    done
    die "$2 did not start (logs in $OUT)"
}

write_files() {
    rm -rf "$OUT" && mkdir -p "$OUT/tls" "$OUT/nginx-tmp" "$OUT/runs"
    printf '%s' "$BODY" >"$OUT/body.json"
    # One ECDSA P-256 certificate for every TLS listener, so the handshakes cost the same.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=localhost -keyout "$OUT/tls/key.pem" -out "$OUT/tls/cert.pem" 2>/dev/null

    seed_lua >"$OUT/seed.lua"
    wasmgate_config "$P_WG_HTTP" "$P_WG_HTTPS" "$(seed_plugins_toml)" >"$OUT/wasmgate-plugins.toml"
    wasmgate_config "$P_NP_HTTP" "$P_NP_HTTPS" "" >"$OUT/wasmgate-none.toml"
    nginx_config >"$OUT/nginx.conf"
}

WORKERS_LINE=
wasmgate_config() { # http https plugins
    cat <<EOF
version = 1

[server]
http = "127.0.0.1:$1"
https = "127.0.0.1:$2"
$WORKERS_LINE

[tls]
cert = "$OUT/tls/cert.pem"
key = "$OUT/tls/key.pem"

[plugins]
dir = "$ROOT/target/wasm"
instances = 1

# No per-request log line (nginx writes none either) and no admin listener (one per gateway
# would collide on its port).
[access_log]
enabled = false

[admin]
enabled = false

[[routes]]
name = "serving-uci"
prefix = "/serving-uci"
upstream = "http://127.0.0.1:$P_UP"
$3
EOF
}

nginx_config() {
    # The same job in nginx + Lua, as Kong does it: the key (hashed with SHA-256 through LuaJIT's
    # FFI into the OpenSSL nginx links, compared with the stored digest) and the instance header
    # are checked in Lua; the prefix is stripped by proxy_pass's URI; the upstream connections
    # are kept alive. No access log in either (wasmgate's is turned off too).
    local location
    location=$(cat <<'EOF'
        location /serving-uci/ {
            access_by_lua_block {
                local function refuse(status, message)
                    ngx.status = status
                    ngx.header["Content-Type"] = "application/json"
                    if status == 401 then
                        ngx.header["WWW-Authenticate"] = 'Key realm="nginx"'
                    end
                    ngx.print('{"message":"' .. message .. '"}')
                    return ngx.exit(status)
                end
                local key = ngx.var.http_apikey
                if not key or key == "" then
                    return refuse(401, "No API key found in request")
                end
                local consumer = gateway.consumers[gateway.sha256(key)]
                if not consumer then
                    return refuse(401, "Invalid authentication credentials")
                end
                local instance = ngx.var.http_x_instance_id
                if not instance then
                    return refuse(403, "Missing X-INSTANCE-ID header")
                end
                if not gateway.instances[instance] then
                    return refuse(403, "Invalid X-INSTANCE-ID header")
                end
                ngx.req.clear_header("apikey")
                ngx.req.set_header("X-Consumer-Username", consumer)
            }
            proxy_pass http://model/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Request-Id $request_id;
        }
EOF
)
    cat <<EOF
worker_processes 1;
daemon off;
master_process on;
user root;
pid $OUT/nginx.pid;
error_log $OUT/nginx-error.log warn;
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;

events { worker_connections 4096; }

http {
    access_log off;
    client_body_temp_path $OUT/nginx-tmp/body;
    proxy_temp_path $OUT/nginx-tmp/proxy;
    fastcgi_temp_path $OUT/nginx-tmp/fastcgi;
    uwsgi_temp_path $OUT/nginx-tmp/uwsgi;
    scgi_temp_path $OUT/nginx-tmp/scgi;
    # nginx closes a client connection after 1000 requests by default; wasmgate does not.
    keepalive_requests 1000000;
    ssl_certificate $OUT/tls/cert.pem;
    ssl_certificate_key $OUT/tls/key.pem;

    init_by_lua_block {
        local ffi = require "ffi"
        ffi.cdef[[unsigned char *SHA256(const unsigned char *d, size_t n, unsigned char *md);]]
        local md = ffi.new("unsigned char[32]")
        local digest = ("$KEY_SHA256"):gsub("..", function(h)
            return string.char(tonumber(h, 16))
        end)
        gateway = {
            sha256 = function(s)
                ffi.C.SHA256(s, #s, md)
                return ffi.string(md, 32)
            end,
            consumers = { [digest] = "demo" },
            instances = { ["$INSTANCE"] = true },
        }
    }

    upstream model {
        server 127.0.0.1:$P_UP;
        keepalive 64;
        keepalive_requests 1000000;
    }

    server {
        listen 127.0.0.1:$P_NG_HTTP;
        listen 127.0.0.1:$P_NG_HTTPS ssl http2;
$location
    }

    # nginx 1.22 cannot serve HTTP/1.1 and h2c on one plain port: h2c has its own.
    server {
        listen 127.0.0.1:$P_NG_H2C http2;
$location
    }
}
EOF
}

start_all() {
    local p
    for p in $P_UP $P_WG_HTTP $P_WG_HTTPS $P_NP_HTTP $P_NP_HTTPS $P_NG_HTTP $P_NG_HTTPS $P_NG_H2C; do
        port_free "$p" || die "port $p is taken (set PORT_BASE)"
    done
    taskset -c "$LOAD_CPU" target/release/bench-upstream "127.0.0.1:$P_UP" 2>"$OUT/upstream.log" &
    PIDS+=($!)
    # One worker thread and one instance per plugin: one core's worth of gateway.
    local name
    for name in plugins none; do
        TOKIO_WORKER_THREADS=1 WASMGATE_LOG=warn taskset -c "$GW_CPU" \
            target/release/wasmgate run --config "$OUT/wasmgate-$name.toml" 2>"$OUT/wasmgate-$name.log" &
        PIDS+=($!)
        eval "PID_WG_$name=$!"
    done
    taskset -c "$GW_CPU" nginx -c "$OUT/nginx.conf" -p "$OUT" -e "$OUT/nginx-error.log" 2>>"$OUT/nginx-error.log" &
    PIDS+=($!)
    PID_NGINX=$!
    wait_ready "http://127.0.0.1:$P_UP/" upstream
    wait_ready "http://127.0.0.1:$P_WG_HTTP/" "wasmgate (plugins)"
    wait_ready "http://127.0.0.1:$P_NP_HTTP/" "wasmgate (no plugins)"
    wait_ready "http://127.0.0.1:$P_NG_HTTP/" nginx
}

# ---- checks before measuring ----------------------------------------------------------------

expect() { # what want got
    [ "$2" = "$3" ] || die "$1: expected $2, got $3"
}

status_of() { # URL [curl args...]
    local url=$1
    shift
    curl -s -k -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
        --data-binary "@$OUT/body.json" "$@" "$url"
}

check_target() { # name port tls-port checks-plugins
    local base="http://127.0.0.1:$2" tls="https://127.0.0.1:$3"
    local got
    got=$(curl -s -k -X POST -H 'Content-Type: application/json' -H "apikey: $KEY" \
        -H "X-INSTANCE-ID: $INSTANCE" --data-binary "@$OUT/body.json" "$tls$SEED_PATH")
    expect "$1: seed request over TLS" "$ANSWER" "$got"
    expect "$1: seed request" 200 "$(status_of "$base$SEED_PATH" -H "apikey: $KEY" -H "X-INSTANCE-ID: $INSTANCE")"
    [ "$4" = yes ] || return 0
    expect "$1: no key" 401 "$(status_of "$base$SEED_PATH" -H "X-INSTANCE-ID: $INSTANCE")"
    expect "$1: wrong key" 401 "$(status_of "$base$SEED_PATH" -H "apikey: nope" -H "X-INSTANCE-ID: $INSTANCE")"
    expect "$1: no instance header" 403 "$(status_of "$base$SEED_PATH" -H "apikey: $KEY")"
    expect "$1: wrong instance" 403 "$(status_of "$base$SEED_PATH" -H "apikey: $KEY" -H "X-INSTANCE-ID: other")"
    local echo
    echo=$(curl -s -H "apikey: $KEY" -H "X-INSTANCE-ID: $INSTANCE" "$base/serving-uci/__bench/echo")
    grep -qx 'path: /__bench/echo' <<<"$echo" || die "$1: prefix not stripped: $echo"
    grep -qi '^apikey:' <<<"$echo" && die "$1: the key went upstream: $echo"
    grep -qix 'x-consumer-username: demo' <<<"$echo" || die "$1: no consumer header upstream: $echo"
    return 0
}

check_h2() { # name URL
    local proto
    proto=$(taskset -c "$LOAD_CPU" h2load -n 4 -c 1 -d "$OUT/body.json" -H 'content-type: application/json' \
        -H "apikey: $KEY" -H "x-instance-id: $INSTANCE" "$2" 2>&1)
    grep -q 'Application protocol: h2' <<<"$proto" || die "$1: $2 does not speak HTTP/2: $proto"
    grep -q '4 succeeded' <<<"$proto" || die "$1: $2 HTTP/2 requests failed: $proto"
}

# ---- measuring ------------------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)

# CPU ticks (user + system) used so far by the processes given, all their threads included.
cpu_ticks() {
    local total=0 pid stat
    for pid in "$@"; do
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || continue
        stat=${stat##*) }
        # shellcheck disable=SC2086
        set -- $stat
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

pids_of() { # target
    case $1 in
        wasmgate-plugins) echo "$PID_WG_plugins" ;;
        wasmgate-none) echo "$PID_WG_none" ;;
        nginx-lua) echo "$PID_NGINX $(pgrep -P "$PID_NGINX" | tr '\n' ' ')" ;;
    esac
}

url_of() { # target protocol
    local http https h2c
    case $1 in
        wasmgate-plugins) http=$P_WG_HTTP https=$P_WG_HTTPS h2c=$P_WG_HTTP ;;
        wasmgate-none) http=$P_NP_HTTP https=$P_NP_HTTPS h2c=$P_NP_HTTP ;;
        nginx-lua) http=$P_NG_HTTP https=$P_NG_HTTPS h2c=$P_NG_H2C ;;
    esac
    case $2 in
        h1) echo "http://127.0.0.1:$http$SEED_PATH" ;;
        h1-tls) echo "https://127.0.0.1:$https$SEED_PATH" ;;
        h2c) echo "http://127.0.0.1:$h2c$SEED_PATH" ;;
        h2-tls) echo "https://127.0.0.1:$https$SEED_PATH" ;;
    esac
}

# wrk's latency in milliseconds.
to_ms() {
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
        printf "%.3f", n }'
}

# One run: prints "requests req/s p50_ms p99_ms errors".
drive() { # protocol URL seconds log
    local proto=$1 url=$2 secs=$3 out=$4
    case $proto in
        h1 | h1-tls)
            taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNS" -d"${secs}s" --latency -s "$OUT/seed.lua" "$url" >"$out" 2>&1
            local requests rps p50 p99 sock non2xx
            requests=$(awk '/requests in/ {print $1}' "$out")
            rps=$(awk '/^Requests\/sec:/ {print $2}' "$out")
            p50=$(to_ms "$(awk '$1 == "50%" {print $2}' "$out")")
            p99=$(to_ms "$(awk '$1 == "99%" {print $2}' "$out")")
            sock=$(awk -F'[ ,]+' '/Socket errors:/ {print $5 + $7 + $9 + $11}' "$out")
            non2xx=$(awk '/Non-2xx or 3xx responses:/ {print $5}' "$out")
            echo "${requests:-0} ${rps:-0} $p50 $p99 $((${sock:-0} + ${non2xx:-0}))"
            ;;
        h2c | h2-tls)
            taskset -c "$LOAD_CPU" h2load -t1 -c"$CONNS" -m1 -D "$secs" -d "$OUT/body.json" \
                -H 'content-type: application/json' -H "apikey: $KEY" -H "x-instance-id: $INSTANCE" \
                --log-file "$out.tsv" "$url" >"$out" 2>&1
            # "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout";
            # failed counts every request without a 2xx/3xx answer (errored and timeout within).
            local done failed rps
            rps=$(awk '/^finished in/ {print $4}' "$out")
            read -r done failed < <(awk -F'[ ,]+' '/^requests:/ {print $6, $10}' "$out")
            # Percentiles of the per-request durations (microseconds) h2load logged.
            local pct
            pct=$(cut -f3 "$out.tsv" | sort -n | awk '{ v[NR] = $1 } END {
                if (NR == 0) { print "0 0"; exit }
                i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
                i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
                printf "%.3f %.3f", v[i50] / 1000, v[i99] / 1000 }')
            rm -f "$out.tsv"
            echo "${done:-0} ${rps:-0} $pct ${failed:-0}"
            ;;
    esac
}

PROTOCOLS=(h1 h1-tls h2c h2-tls)
TARGETS=(wasmgate-plugins nginx-lua wasmgate-none)

measure() {
    local results=$OUT/results.tsv
    printf 'round\tprotocol\ttarget\trequests\treq_s\tp50_ms\tp99_ms\terrors\tcpu_us_per_req\tcpu_pct\n' >"$results"
    log "warming up every proxy and protocol (1 s each)"
    local proto target
    for proto in "${PROTOCOLS[@]}"; do
        for target in "${TARGETS[@]}"; do
            drive "$proto" "$(url_of "$target" "$proto")" 1 "$OUT/runs/warmup" >/dev/null
        done
    done
    local round i n=${#TARGETS[@]}
    for round in $(seq "$ROUNDS"); do
        for proto in "${PROTOCOLS[@]}"; do
            # The order of the proxies rotates each round, so none always runs first.
            for i in $(seq 0 $((n - 1))); do
                target=${TARGETS[$(((i + round) % n))]}
                local pids before after start end line
                pids=$(pids_of "$target")
                # shellcheck disable=SC2086
                before=$(cpu_ticks $pids)
                start=$(date +%s%N)
                line=$(drive "$proto" "$(url_of "$target" "$proto")" "$DURATION" "$OUT/runs/$round-$proto-$target.txt")
                end=$(date +%s%N)
                # shellcheck disable=SC2086
                after=$(cpu_ticks $pids)
                read -r requests rps p50 p99 errors <<<"$line"
                local cpu_us pct
                cpu_us=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v n="$requests" \
                    'BEGIN { printf "%.1f", (n > 0 ? t / hz * 1e6 / n : 0) }')
                pct=$(awk -v t=$((after - before)) -v hz="$CLK_TCK" -v ns=$((end - start)) \
                    'BEGIN { printf "%.0f", t / hz / (ns / 1e9) * 100 }')
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$proto" "$target" \
                    "$requests" "$rps" "$p50" "$p99" "$errors" "$cpu_us" "$pct" >>"$results"
                log "round $round/$ROUNDS $proto $target: $rps req/s, p50 $p50 ms, p99 $p99 ms, errors $errors, $cpu_us us CPU/req ($pct% of a core)"
            done
        done
    done
}

# ---- the table ------------------------------------------------------------------------------

median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

col() { # protocol target column -> median over rounds
    awk -F'\t' -v p="$1" -v t="$2" -v c="$3" 'NR > 1 && $2 == p && $3 == t { print $c }' "$OUT/results.tsv" | median
}

per_round() { # protocol targetA targetB column how -> one ratio per round where both measured (how: ratio or loss)
    awk -F'\t' -v p="$1" -v a="$2" -v b="$3" -v c="$4" -v how="$5" '
        NR > 1 && $2 == p && $3 == a { va[$1] = $c }
        NR > 1 && $2 == p && $3 == b { vb[$1] = $c }
        END { for (r in va) if ((r in vb) && va[r] > 0 && vb[r] > 0) print (how == "loss" ? (1 - va[r] / vb[r]) * 100 : va[r] / vb[r]) }' "$OUT/results.tsv"
}

spread() { # numbers on stdin -> "median (lowest..highest, n rounds)" with $1 as printf format
    sort -g | awk -v f="$1" '{ v[NR] = $1 } END {
        if (NR == 0) { print "-"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        printf f " (" f ".." f ", n=%d)\n", m, v[1], v[NR], NR }'
}

total() { # protocol target column -> sum over rounds
    awk -F'\t' -v p="$1" -v t="$2" -v c="$3" 'NR > 1 && $2 == p && $3 == t { s += $c } END { print s + 0 }' "$OUT/results.tsv"
}

report() {
    local table=$OUT/table.md
    {
        echo "Medians of $ROUNDS rounds of ${DURATION} s per run, $CONNS connections, the seed's prediction request."
        echo "Proxies on CPU $GW_CPU (1 worker), wrk/h2load and the upstream on CPU $LOAD_CPU. $(nproc) CPUs: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')."
        echo
        echo "| protocol | proxy | req/s | p50 ms | p99 ms | errors (all runs) | proxy CPU us/req | proxy CPU % | req/s vs nginx | p99 vs nginx |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        local proto target rps p50 p99 err cpu pct ng_rps ng_p99
        for proto in "${PROTOCOLS[@]}"; do
            ng_rps=$(col "$proto" nginx-lua 5)
            ng_p99=$(col "$proto" nginx-lua 7)
            for target in "${TARGETS[@]}"; do
                rps=$(col "$proto" "$target" 5)
                p50=$(col "$proto" "$target" 6)
                p99=$(col "$proto" "$target" 7)
                err=$(total "$proto" "$target" 8)
                cpu=$(col "$proto" "$target" 9)
                pct=$(col "$proto" "$target" 10)
                awk -v pr="$proto" -v t="$target" -v r="$rps" -v a="$p50" -v b="$p99" -v e="$err" \
                    -v c="$cpu" -v u="$pct" -v nr="$ng_rps" -v np="$ng_p99" 'BEGIN {
                    printf "| %s | %s | %.0f | %.2f | %.2f | %d | %.1f | %.0f | %.2fx | %.2fx |\n",
                        pr, t, r, a, b, e, c, u, (nr > 0 ? r / nr : 0), (np > 0 ? b / np : 0) }'
            done
        done
        echo
        echo "Throughput lost to the three-plugin chain (wasmgate-plugins vs wasmgate-none):"
        for proto in "${PROTOCOLS[@]}"; do
            awk -v pr="$proto" -v a="$(col "$proto" wasmgate-plugins 5)" -v b="$(col "$proto" wasmgate-none 5)" \
                -v ca="$(col "$proto" wasmgate-plugins 9)" -v cb="$(col "$proto" wasmgate-none 9)" 'BEGIN {
                printf "- %s: %.1f%% of req/s; %+.1f us of proxy CPU per request\n", pr, (b > 0 ? (1 - a / b) * 100 : 0), ca - cb }'
        done
        echo
        # The three proxies of a round run within seconds of each other, so a ratio taken within
        # each round is less moved by the machine changing speed between rounds.
        echo "Ratios taken within each round (rounds where both runs answered), then their median (lowest..highest, rounds):"
        echo
        echo "| protocol | req/s plugins vs nginx | req/s none vs nginx | p99 plugins vs nginx | req/s lost to the chain |"
        echo "| --- | --- | --- | --- | --- |"
        for proto in "${PROTOCOLS[@]}"; do
            echo "| $proto | $(per_round "$proto" wasmgate-plugins nginx-lua 5 ratio | spread '%.2fx') | $(per_round "$proto" wasmgate-none nginx-lua 5 ratio | spread '%.2fx') | $(per_round "$proto" wasmgate-plugins nginx-lua 7 ratio | spread '%.2fx') | $(per_round "$proto" wasmgate-plugins wasmgate-none 5 loss | spread '%.0f%%') |"
        done
    } >"$table"
    cat "$table"
    log "raw figures: $OUT/results.tsv; tool output: $OUT/runs/"
}

main() {
    [ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; the proxies and the load tool share one"
    install_missing
    build
    write_files
    # `server.workers` where this wasmgate has it; TOKIO_WORKER_THREADS=1 covers older ones.
    WORKERS_LINE='workers = 1'
    wasmgate_config "$P_WG_HTTP" "$P_WG_HTTPS" "" >"$OUT/workers-check.toml"
    if ! target/release/wasmgate check --config "$OUT/workers-check.toml" >/dev/null 2>&1; then
        WORKERS_LINE=
        log "this wasmgate has no server.workers; using TOKIO_WORKER_THREADS=1"
    fi
    write_files
    nginx -t -c "$OUT/nginx.conf" -p "$OUT" -e "$OUT/nginx-error.log" >/dev/null 2>&1 \
        || die "nginx refused its config: $(nginx -t -c "$OUT/nginx.conf" -p "$OUT" -e "$OUT/nginx-error.log" 2>&1 | tail -3)"
    start_all
    log "checking that each proxy does the job"
    check_target wasmgate-plugins "$P_WG_HTTP" "$P_WG_HTTPS" yes
    check_target nginx-lua "$P_NG_HTTP" "$P_NG_HTTPS" yes
    check_target wasmgate-none "$P_NP_HTTP" "$P_NP_HTTPS" no
    local target
    for target in "${TARGETS[@]}"; do
        check_h2 "$target" "$(url_of "$target" h2c)"
        check_h2 "$target" "$(url_of "$target" h2-tls)"
    done
    measure
    report
}

main "$@"
