#!/usr/bin/env bash
# bench.sh -- side-by-side benchmark: panelgate and an nginx peer in front of the same upstream
# (an nginx answering static JSON), measured in alternating wrk rounds on 127.0.0.1.
#
#   MODE=plain      nginx-plain (proxy_pass + fixed Authorization) vs a panelgate `static` upstream
#   MODE=konglike   nginx-konglike (OpenResty: key check, token bucket, HMAC signing) vs a
#                   panelgate `panelica_hmac` upstream with a rate limit that never triggers
#
# Environment (defaults in brackets):
#   DUR [10] seconds per run   ROUNDS [3]   CONNS [50]   THREADS [1]   WARMUP [2] seconds, 0 = none
#   PANELGATE_B                with PEERS containing "baseline": a second panelgate binary run
#                              on the same config, for before/after comparisons (A/B)
#   PEERS ["nginx panelgate"]  which to measure, in this order each round; "upstream" = the
#                              upstream alone (calibration)
#   PANELGATE                  a prebuilt binary; default: a Release build in build-bench/
#   PG_WORKERS [1]             panelgate workers, and the nginx peers' worker_processes (the
#                              upstream nginx keeps 1)
#   STORE [local]              redis: panelgate's rate_limit_store is a redis-server started here
#                              on 127.0.0.1; with PEERS containing "baseline" (PANELGATE_B
#                              defaults to the same binary) the baseline keeps the local store,
#                              so "panelgate / baseline" is the cost of redis
#   UP_PORT NGINX_PORT PG_PORT fixed ports; default: free ports picked at start
# Results (table, wrk outputs, configs, logs) stay in a temp dir whose path is printed at the end.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BENCH="$ROOT/tests/bench"

MODE=${MODE:-plain}
DUR=${DUR:-10}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
WARMUP=${WARMUP:-2}
PEERS=${PEERS:-nginx panelgate}
PG_WORKERS=${PG_WORKERS:-1}
PANELGATE=${PANELGATE:-}
STORE=${STORE:-local}
case $STORE in local | redis) ;; *) echo "bench: STORE must be local or redis" >&2 && exit 1 ;; esac

die()
{
    echo "bench: $*" >&2
    exit 1
}

# Show the end of a log, then die.
die_log()
{
    local log=$1
    shift
    echo "bench: $*" >&2
    if [ -s "$log" ]; then
        echo "---- last lines of $log ----" >&2
        tail -n 30 "$log" >&2
    fi
    exit 1
}

case $MODE in
plain)
    NGINX_CONF=nginx-plain.conf
    UPNAME=navirec
    EXTRA_PKGS=()
    ;;
konglike)
    NGINX_CONF=nginx-konglike.conf
    UPNAME=panelica
    EXTRA_PKGS=(libnginx-mod-http-lua libnginx-mod-http-set-misc)
    ;;
*) die "MODE must be plain or konglike, not '$MODE'" ;;
esac
for p in $PEERS; do
    case $p in
    upstream | nginx | panelgate | baseline) ;;
    *) die "PEERS: unknown peer '$p' (upstream, nginx, panelgate, baseline)" ;;
    esac
done
want()
{
    case " $PEERS " in *" $1 "*) return 0 ;; esac
    return 1
}

echo "==> dependencies"
# shellcheck source=SCRIPTDIR/../../deploy/deps.sh
. "$ROOT/deploy/deps.sh"
pg_deps_ensure
if [ ${#EXTRA_PKGS[@]} -gt 0 ]; then
    pg_deps_ensure "${EXTRA_PKGS[@]}"
fi
if want baseline && [ ! -x "${PANELGATE_B:-}" ] && [ "$STORE" != redis ]; then
    die "PEERS has baseline: set PANELGATE_B to a panelgate binary"
fi
if [ "$STORE" = redis ]; then
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found (deploy/deps.sh)"
fi
for c in nginx wrk curl python3 sha256sum; do
    command -v "$c" >/dev/null 2>&1 || die "$c not found"
done

if want panelgate && [ -z "$PANELGATE" ]; then
    echo "==> build (build-bench/, Release)"
    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DPG_TESTS=OFF >/dev/null
    cmake --build build-bench -j"$(nproc 2>/dev/null || echo 2)" --target panelgate
    PANELGATE="$ROOT/build-bench/panelgate"
fi
if [ "$STORE" = redis ] && [ -z "${PANELGATE_B:-}" ]; then
    PANELGATE_B=$PANELGATE
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/pgbench.XXXXXX")
# nginx workers drop to `nobody` when started as root; they must reach their temp dirs here
chmod 755 "$WORK"
RESULTS="$WORK/results.txt"
ROWS="$WORK/rows.tsv"
: >"$ROWS"

PIDS=()
WRK_PID=
# shellcheck disable=SC2317  # invoked from the trap
cleanup()
{
    local rc=$? p
    trap - EXIT INT TERM
    for p in $WRK_PID "${PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
    done
    for p in $WRK_PID "${PIDS[@]}"; do
        wait "$p" 2>/dev/null || true
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "bench: interrupted; results so far in $WORK" >&2; exit 130' INT TERM

# ---- ports ------------------------------------------------------------------------------------
read -r P1 P2 P3 P4 P5 < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(5)]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))
')
UP_PORT=${UP_PORT:-$P1}
NGINX_PORT=${NGINX_PORT:-$P2}
PG_PORT=${PG_PORT:-$P3}
PG_B_PORT=${PG_B_PORT:-$P4}
REDIS_PORT=${REDIS_PORT:-$P5}

# ---- caller key -------------------------------------------------------------------------------
# `panelgate keygen --name N` prints the key (pgk_...) first and a config line with
# key: "sha256:<hex>". The hash is computed here and cross-checked against that line.
KEY=
if want panelgate; then
    KEYGEN_OUT=$("$PANELGATE" keygen --name bench 2>&1) || die "panelgate keygen failed: $KEYGEN_OUT"
    KEY=$(grep -oE 'pgk_[A-Za-z0-9_]+' <<<"$KEYGEN_OUT" | head -n 1 || true)
    [ -n "$KEY" ] || die "no pgk_ key in the output of panelgate keygen: $KEYGEN_OUT"
fi
if [ -z "$KEY" ]; then
    KEY="pgk_bench_$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
fi
HASH=$(printf '%s' "$KEY" | sha256sum | cut -d ' ' -f 1)
if want panelgate; then
    KG_HASH=$(grep -oiE 'sha256:[0-9a-f]{64}' <<<"$KEYGEN_OUT" | head -n 1 | cut -d : -f 2 || true)
    if [ -n "$KG_HASH" ] && [ "${KG_HASH,,}" != "$HASH" ]; then
        die "panelgate keygen's sha256 ($KG_HASH) is not sha256 of its key ($HASH)"
    fi
fi

# ---- configs ----------------------------------------------------------------------------------
# The nginx files are the shared peers, unchanged; placeholders are filled here, and temp paths
# are added so no instance touches /var/lib/nginx (Debian's compiled-in default).
render_nginx()
{
    local src=$1 name=$2 port=$3 tmp="$WORK/tmp-$2"
    mkdir -p "$tmp"
    sed -e "s|@DIR@|$WORK|g" -e "s|@UP@|$UP_PORT|g" -e "s|@PORT@|$port|g" -e "s|@KEY@|$KEY|g" \
        -e "s|@WORKERS@|$PG_WORKERS|g" \
        -e "s|^http {\$|http {\\n  client_body_temp_path $tmp/body; proxy_temp_path $tmp/proxy;\\n  fastcgi_temp_path $tmp/fastcgi; uwsgi_temp_path $tmp/uwsgi; scgi_temp_path $tmp/scgi;|" \
        "$BENCH/nginx/$src" >"$WORK/$name.conf"
    grep -q "client_body_temp_path" "$WORK/$name.conf" || die "$src: no 'http {' line to extend"
    if grep -q '@[A-Z]*@' "$WORK/$name.conf"; then
        die "$src: unreplaced placeholder"
    fi
}
render_nginx upstream.conf upstream "$UP_PORT"
render_nginx "$NGINX_CONF" nginx "$NGINX_PORT"

cat >"$WORK/panelgate.yaml" <<EOF
# generated by tests/bench/bench.sh (MODE=$MODE)
listen: {address: 127.0.0.1, port: $PG_PORT}
workers: $PG_WORKERS
access_log: off
consumers:
  - {name: bench, key: "sha256:$HASH", allow: [$UPNAME]}
upstreams:
EOF
case $MODE in
plain)
    cat >>"$WORK/panelgate.yaml" <<EOF
  - name: navirec
    url: http://127.0.0.1:$UP_PORT
    auth: {type: static, headers: {Authorization: "Token navirec-static-token"}}
EOF
    ;;
konglike)
    cat >>"$WORK/panelgate.yaml" <<EOF
  - name: panelica
    url: http://127.0.0.1:$UP_PORT
    auth: {type: panelica_hmac, api_key: pk_live_bench, api_secret: sk_live_bench_secret}
    rate_limit: {rate: 1000000/s}
EOF
    ;;
esac

if [ "$STORE" = redis ]; then
    cat >>"$WORK/panelgate.yaml" <<EOF
rate_limit_store: {type: redis, url: "redis://127.0.0.1:$REDIS_PORT/0", timeout: 50ms}
EOF
fi

# ---- processes --------------------------------------------------------------------------------
# Wait until URL answers with any HTTP status (10 s max) while PID is alive.
wait_http()
{
    local url=$1 pid=$2 log=$3 code
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$url" || true)
        if [ -n "$code" ] && [ "$code" != 000 ]; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die_log "$log" "$url: the process exited"
        sleep 0.1
    done
    die_log "$log" "$url: no answer after 10 s"
}

# A non-system nginx: our config, prefix and error log (-e: the log used before the config is
# read); foreground so that the pid is ours to stop.
start_nginx()
{
    local name=$1 port=$2
    nginx -p "$WORK/" -e "$WORK/$name.startup.err" -c "$WORK/$name.conf" -g 'daemon off;' \
        >"$WORK/$name.out" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$port/" $! "$WORK/$name.startup.err"
}

if [ "$STORE" = redis ]; then
    echo "==> redis-server on 127.0.0.1:$REDIS_PORT"
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
        --dir "$WORK" >"$WORK/redis.log" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do
        redis-cli -p "$REDIS_PORT" ping 2>/dev/null | grep -q PONG && break
        sleep 0.1
    done
fi
echo "==> upstream nginx on 127.0.0.1:$UP_PORT"
start_nginx upstream "$UP_PORT"
if want nginx; then
    echo "==> $NGINX_CONF on 127.0.0.1:$NGINX_PORT"
    start_nginx nginx "$NGINX_PORT"
fi
if want panelgate; then
    echo "==> panelgate on 127.0.0.1:$PG_PORT ($PANELGATE)"
    "$PANELGATE" --check -c "$WORK/panelgate.yaml" >"$WORK/panelgate.check" 2>&1 ||
        die_log "$WORK/panelgate.check" "panelgate --check rejected $WORK/panelgate.yaml"
    "$PANELGATE" -c "$WORK/panelgate.yaml" >"$WORK/panelgate.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$PG_PORT/_gateway/health" $! "$WORK/panelgate.log"
fi
if want baseline; then
    echo "==> baseline panelgate on 127.0.0.1:$PG_B_PORT ($PANELGATE_B)"
    # the same config on its own port, with the local store (STORE=redis measures redis)
    sed -e "s/port: $PG_PORT}/port: $PG_B_PORT}/" -e '/^rate_limit_store:/d' \
        "$WORK/panelgate.yaml" >"$WORK/baseline.yaml"
    "$PANELGATE_B" -c "$WORK/baseline.yaml" >"$WORK/baseline.log" 2>&1 &
    PIDS+=($!)
    wait_http "http://127.0.0.1:$PG_B_PORT/_gateway/health" $! "$WORK/baseline.log"
fi

url_of()
{
    case $1 in
    upstream) echo "http://127.0.0.1:$UP_PORT/anything" ;;
    nginx) echo "http://127.0.0.1:$NGINX_PORT/anything" ;;
    panelgate) echo "http://127.0.0.1:$PG_PORT/$UPNAME/anything" ;;
    baseline) echo "http://127.0.0.1:$PG_B_PORT/$UPNAME/anything" ;;
    esac
}

# One request through each peer must be a 200 before anything is measured.
for p in $PEERS; do
    code=$(curl -s -o "$WORK/probe-$p.body" -w '%{http_code}' --max-time 5 \
        -H "Authorization: Bearer $KEY" "$(url_of "$p")" || true)
    [ "$code" = 200 ] || die_log "$WORK/probe-$p.body" "$p: probe answered $code, not 200"
done
if want nginx && want panelgate && ! cmp -s "$WORK/probe-nginx.body" "$WORK/probe-panelgate.body"; then
    echo "bench: warning: nginx and panelgate bodies differ (see $WORK/probe-*.body)" >&2
fi

# ---- measure ----------------------------------------------------------------------------------
# run_wrk PEER ROUND SECONDS: one wrk run; appends a row to $ROWS unless ROUND is "warmup".
run_wrk()
{
    local peer=$1 round=$2 secs=$3 out="$WORK/wrk-$1-$2.txt" line non2xx kv
    local rps="" p50="" p99="" serr=0 sockerr=0
    # in the background so that a TERM is handled now, not after the run (bash defers traps
    # while a foreground command runs); the cleanup trap stops it
    wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s -s "$BENCH/report.lua" \
        -H "Authorization: Bearer $KEY" "$(url_of "$peer")" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || die_log "$out" "wrk failed against $peer"
    WRK_PID=
    [ "$round" = warmup ] && return 0
    line=$(grep '^PGBENCH ' "$out" || true)
    [ -n "$line" ] || die_log "$out" "no PGBENCH line in the wrk output (report.lua)"
    for kv in $line; do
        case $kv in
        rps=*) rps=${kv#*=} ;;
        p50_ms=*) p50=${kv#*=} ;;
        p99_ms=*) p99=${kv#*=} ;;
        status_errors=*) serr=${kv#*=} ;;
        socket_errors=*) sockerr=${kv#*=} ;;
        esac
    done
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    non2xx=${non2xx:-0}
    if [ "$serr" -gt "$non2xx" ]; then non2xx=$serr; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$peer" "$rps" "$p50" "$p99" "$non2xx" \
        "$sockerr" >>"$ROWS"
    printf '  round %s  %-9s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms  non-2xx %s  socket errors %s\n' \
        "$round" "$peer" "$rps" "$p50" "$p99" "$non2xx" "$sockerr"
}

if [ "$WARMUP" != 0 ]; then
    echo "==> warm-up (${WARMUP}s each)"
    for p in $PEERS; do
        run_wrk "$p" warmup "$WARMUP"
    done
fi
echo "==> $ROUNDS rounds of ${DUR}s each: wrk -t$THREADS -c$CONNS, peers in turn: $PEERS"
for r in $(seq "$ROUNDS"); do
    for p in $PEERS; do
        run_wrk "$p" "$r" "$DUR"
    done
done

# ---- report -----------------------------------------------------------------------------------
median()
{
    sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
              else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
col()
{
    awk -F '\t' -v p="$1" -v c="$2" '$2 == p { print $c }' "$ROWS"
}

{
    echo "panelgate benchmark, MODE=$MODE, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: $(nproc) cores, $(uname -sr); $(nginx -v 2>&1); wrk -t$THREADS -c$CONNS -d${DUR}s"
    if want panelgate; then
        echo "panelgate: $("$PANELGATE" --version 2>&1 | head -n 1), workers $PG_WORKERS"
    fi
    echo
    printf '%-6s %-10s %12s %10s %10s %8s %8s\n' round peer 'req/s' 'p50 ms' 'p99 ms' non-2xx sockerr
    while IFS=$'\t' read -r r p rps p50 p99 n2 se; do
        printf '%-6s %-10s %12.0f %10.3f %10.3f %8s %8s\n' "$r" "$p" "$rps" "$p50" "$p99" "$n2" "$se"
    done <"$ROWS"
    echo
    printf '%-6s %-10s %12s %10s %10s\n' median peer 'req/s' 'p50 ms' 'p99 ms'
    for p in $PEERS; do
        printf '%-6s %-10s %12.0f %10.3f %10.3f\n' '' "$p" "$(col "$p" 3 | median)" \
            "$(col "$p" 4 | median)" "$(col "$p" 5 | median)"
    done
    if want nginx && want panelgate; then
        ng=$(col nginx 3 | median)
        pg=$(col panelgate 3 | median)
        echo
        awk -v pg="$pg" -v ng="$ng" -v p99pg="$(col panelgate 5 | median)" \
            -v p99ng="$(col nginx 5 | median)" -v mode="$MODE" 'BEGIN {
            printf "panelgate / nginx-%s median req/s: %.2f  (%.0f vs %.0f)\n", mode,
                (ng > 0 ? pg / ng : 0), pg, ng
            printf "median p99: panelgate %.3f ms, nginx-%s %.3f ms\n", p99pg, mode, p99ng }'
    fi
    if want baseline && want panelgate; then
        awk -v pg="$(col panelgate 3 | median)" -v b="$(col baseline 3 | median)" 'BEGIN {
            printf "panelgate / baseline median req/s: %.3f  (%.0f vs %.0f)\n",
                (b > 0 ? pg / b : 0), pg, b }'
    fi
} | tee "$RESULTS"

bad=$(awk -F '\t' '$6 > 0 { n++ } END { print n + 0 }' "$ROWS")
sock=$(awk -F '\t' '$7 > 0 { n++ } END { print n + 0 }' "$ROWS")
echo
echo "results: $RESULTS (wrk outputs, configs and logs beside it)"
if [ "$sock" != 0 ]; then
    echo "bench: warning: $sock run(s) had socket errors (connect/read/write/timeout)" >&2
fi
if [ "$bad" != 0 ]; then
    echo "bench: $bad run(s) had non-2xx answers: those numbers are not comparable" >&2
    exit 3
fi
