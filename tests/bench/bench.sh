#!/usr/bin/env bash
# bench.sh -- side-by-side benchmark: panelgate and an nginx peer in front of the same upstream
# (an nginx answering static JSON), measured in alternating wrk rounds on 127.0.0.1.
#
#   MODE=plain      nginx-plain (proxy_pass + fixed Authorization) vs a panelgate `static` upstream
#   MODE=konglike   nginx-konglike (OpenResty: key check, token bucket, HMAC signing) vs a
#                   panelgate `panelica_hmac` upstream with a rate limit that never triggers
#   MODE=tls-upstream   the upstream over https (tls-upstream.conf, 1 worker): nginx-tls-plain
#                   (proxy_pass https://localhost:UP, keep-alive, certificate and host name
#                   verified against up.crt) vs a panelgate `static` upstream
#                   url: https://localhost:UP, tls: {ca_file: up.crt}, the same header
#   MODE=tls-front  callers' TLS: nginx-tls-front (ssl listener, front.crt) vs panelgate's
#                   listen.tls (front.crt/front.key), both in front of the plain upstream with the
#                   plain mode's static route; wrk and the probes use https://127.0.0.1:PORT/...
#   The certificates are made here with openssl, self-signed RSA-2048, in the temp dir:
#   up.crt/up.key for CN and SAN DNS:localhost; front.crt/front.key for CN localhost and SAN
#   DNS:localhost, IP:127.0.0.1. Each is its own trust anchor (ca_file, curl --cacert); wrk does
#   not verify certificates.
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
# See also idle.sh (memory per idle keep-alive connection) and soak.sh (RSS growth over 1M
# requests); the shell pieces they share are in lib.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BENCH="$ROOT/tests/bench"
PGB_NAME=bench
# shellcheck source=SCRIPTDIR/lib.sh
. "$BENCH/lib.sh"

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
case $STORE in local | redis) ;; *) die "STORE must be local or redis" ;; esac

# UP_CONF: the upstream's nginx file; KIND: panelgate's upstream (lib.sh pgb_panelgate_conf);
# UP_SCHEME: how the upstream is reached; FRONT: http or https for the callers (wrk, probes)
UP_CONF=upstream.conf
UP_SCHEME=http
FRONT=http
EXTRA_PKGS=()
case $MODE in
plain)
    NGINX_CONF=nginx-plain.conf
    KIND=static
    ;;
konglike)
    NGINX_CONF=nginx-konglike.conf
    KIND=hmac
    EXTRA_PKGS=(libnginx-mod-http-lua libnginx-mod-http-set-misc)
    ;;
tls-upstream)
    NGINX_CONF=nginx-tls-plain.conf
    UP_CONF="tls-upstream.conf"
    UP_SCHEME=https
    KIND=static-tls
    ;;
tls-front)
    NGINX_CONF=nginx-tls-front.conf
    FRONT=https
    KIND=static
    ;;
*) die "MODE must be plain, konglike, tls-upstream or tls-front, not '$MODE'" ;;
esac
UPNAME=$(pgb_upname "$KIND")
NGINX_PEER=${NGINX_CONF%.conf}
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
pgb_tools nginx wrk curl python3 sha256sum openssl

if want panelgate; then
    pgb_build
fi
if [ "$STORE" = redis ] && [ -z "${PANELGATE_B:-}" ]; then
    PANELGATE_B=$PANELGATE
fi

pgb_work pgbench
RESULTS="$WORK/results.txt"
ROWS="$WORK/rows.tsv"
: >"$ROWS"

# ---- ports ------------------------------------------------------------------------------------
read -r P1 P2 P3 P4 P5 < <(pgb_ports 5)
UP_PORT=${UP_PORT:-$P1}
NGINX_PORT=${NGINX_PORT:-$P2}
PG_PORT=${PG_PORT:-$P3}
PG_B_PORT=${PG_B_PORT:-$P4}
REDIS_PORT=${REDIS_PORT:-$P5}

# ---- caller key -------------------------------------------------------------------------------
if want panelgate; then
    pgb_key "$PANELGATE"
else
    pgb_key
fi

# ---- certificates -----------------------------------------------------------------------------
case $MODE in
tls-upstream) pgb_cert up DNS:localhost ;;
tls-front) pgb_cert front DNS:localhost,IP:127.0.0.1 ;;
esac

# ---- configs ----------------------------------------------------------------------------------
render_nginx "$UP_CONF" upstream "$UP_PORT"
render_nginx "$NGINX_CONF" nginx "$NGINX_PORT"
LISTEN_TLS=
if [ "$FRONT" = https ]; then LISTEN_TLS=tls; fi
pgb_panelgate_conf "$WORK/panelgate.yaml" "$KIND" "$PG_PORT" "$LISTEN_TLS"

if [ "$STORE" = redis ]; then
    cat >>"$WORK/panelgate.yaml" <<EOF
rate_limit_store: {type: redis, url: "redis://127.0.0.1:$REDIS_PORT/0", timeout: 50ms}
EOF
fi

# ---- processes --------------------------------------------------------------------------------
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
echo "==> upstream nginx ($UP_CONF) on 127.0.0.1:$UP_PORT"
start_nginx upstream "$UP_PORT" "$UP_SCHEME"
if [ "$UP_SCHEME" = https ]; then
    # the certificate must verify for the host name the peers use, or both probes fail below
    code=$(curl -s -o "$WORK/probe-up-tls.body" -w '%{http_code}' --max-time 5 \
        --cacert "$WORK/up.crt" --resolve "localhost:$UP_PORT:127.0.0.1" \
        "https://localhost:$UP_PORT/" 2>"$WORK/probe-up-tls.err" || true)
    [ "$code" = 200 ] || die_log "$WORK/probe-up-tls.err" \
        "https://localhost:$UP_PORT/ does not verify against up.crt (answer $code)"
fi
if want nginx; then
    echo "==> $NGINX_CONF on 127.0.0.1:$NGINX_PORT"
    start_nginx nginx "$NGINX_PORT" "$FRONT"
fi
if want panelgate; then
    echo "==> panelgate on 127.0.0.1:$PG_PORT ($PANELGATE)"
    start_panelgate "$PANELGATE" panelgate "$WORK/panelgate.yaml" "$PG_PORT" "$FRONT"
fi
if want baseline; then
    echo "==> baseline panelgate on 127.0.0.1:$PG_B_PORT ($PANELGATE_B)"
    # the same config on its own port, with the local store (STORE=redis measures redis)
    sed -e "s/port: $PG_PORT\([,}]\)/port: $PG_B_PORT\1/" -e '/^rate_limit_store:/d' \
        "$WORK/panelgate.yaml" >"$WORK/baseline.yaml"
    start_panelgate "$PANELGATE_B" baseline "$WORK/baseline.yaml" "$PG_B_PORT" "$FRONT"
fi

url_of()
{
    case $1 in
    upstream) echo "$UP_SCHEME://127.0.0.1:$UP_PORT/anything" ;;
    nginx) echo "$FRONT://127.0.0.1:$NGINX_PORT/anything" ;;
    panelgate) echo "$FRONT://127.0.0.1:$PG_PORT/$UPNAME/anything" ;;
    baseline) echo "$FRONT://127.0.0.1:$PG_B_PORT/$UPNAME/anything" ;;
    esac
}

# One request through each peer must be a 200 before anything is measured; https certificates
# are verified (up.crt names localhost only, front.crt 127.0.0.1 too).
for p in $PEERS; do
    url=$(url_of "$p")
    tls=()
    if [ "$p" = upstream ] && [ "$UP_SCHEME" = https ]; then
        url="https://localhost:$UP_PORT/anything"
        tls=(--cacert "$WORK/up.crt" --resolve "localhost:$UP_PORT:127.0.0.1")
    elif [ "$p" != upstream ] && [ "$FRONT" = https ]; then
        tls=(--cacert "$WORK/front.crt")
    fi
    code=$(curl -s -S -o "$WORK/probe-$p.body" -w '%{http_code}' --max-time 5 "${tls[@]}" \
        -H "Authorization: Bearer $KEY" "$url" 2>"$WORK/probe-$p.err" || true)
    if [ "$code" != 200 ]; then
        cat "$WORK/probe-$p.err" >>"$WORK/probe-$p.body" 2>/dev/null || true
        die_log "$WORK/probe-$p.body" "$p: probe answered $code, not 200"
    fi
done
if want nginx && want panelgate && ! cmp -s "$WORK/probe-nginx.body" "$WORK/probe-panelgate.body"; then
    echo "bench: warning: nginx and panelgate bodies differ (see $WORK/probe-*.body)" >&2
fi

# ---- measure ----------------------------------------------------------------------------------
# run_wrk PEER ROUND SECONDS: one wrk run; appends a row to $ROWS unless ROUND is "warmup".
run_wrk()
{
    local peer=$1 round=$2 secs=$3
    pgb_wrk "$WORK/wrk-$1-$2.txt" "$secs" "$(url_of "$peer")"
    [ "$round" = warmup ] && return 0
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$peer" "$W_RPS" "$W_P50" "$W_P99" "$W_NON2XX" \
        "$W_SOCKERR" >>"$ROWS"
    printf '  round %s  %-9s %10.0f req/s  p50 %7.3f ms  p99 %7.3f ms  non-2xx %s  socket errors %s\n' \
        "$round" "$peer" "$W_RPS" "$W_P50" "$W_P99" "$W_NON2XX" "$W_SOCKERR"
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
col()
{
    awk -F '\t' -v p="$1" -v c="$2" '$2 == p { print $c }' "$ROWS"
}

{
    echo "panelgate benchmark, MODE=$MODE, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: $(nproc) cores, $(uname -sr); $(nginx -v 2>&1); wrk -t$THREADS -c$CONNS -d${DUR}s"
    echo "nginx peer: $NGINX_CONF; upstream: $UP_CONF ($UP_SCHEME); callers: $FRONT"
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
            -v p99ng="$(col nginx 5 | median)" -v peer="$NGINX_PEER" 'BEGIN {
            printf "panelgate / %s median req/s: %.2f  (%.0f vs %.0f)\n", peer,
                (ng > 0 ? pg / ng : 0), pg, ng
            printf "median p99: panelgate %.3f ms, %s %.3f ms\n", p99pg, peer, p99ng }'
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
