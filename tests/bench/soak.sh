#!/usr/bin/env bash
# soak.sh -- panelgate's memory over a long run: REQUESTS requests through the konglike route
# (a `panelica_hmac` upstream: caller key check, a rate limit that never triggers, HMAC-SHA256
# signing) in front of the static JSON nginx of bench.sh, on 127.0.0.1.
#
# wrk has no fixed request count, so wrk runs of SEG seconds follow one another (each with new
# connections) until their summed request count reaches REQUESTS; panelgate's RSS (VmRSS of
# /proc/PID/status) is read after each run. Reported: RSS at start, "early" (after the run whose
# running count is nearest to EARLY: the first ~100k, give or take one run's worth) and at the
# end; growth = end - early (KiB), also per 100k requests; VmHWM (the peak). Every answer must be a 2xx (exit 3 otherwise); the whole loop is
# bounded by MAX_SECS (exit 4 when REQUESTS was not reached in time).
#
# Environment (defaults in brackets):
#   REQUESTS [1000000]   EARLY [100000]   SEG [1] seconds per wrk run   MAX_SECS [600]
#   CONNS [50]   THREADS [1]
#   PANELGATE            a prebuilt binary; default: a Release build in build-bench/
#   PG_WORKERS [1]       panelgate workers
# Results (per-run table, wrk outputs, config, log) stay in a temp dir printed at the end.
# See also bench.sh and idle.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BENCH="$ROOT/tests/bench"
PGB_NAME=soak
# shellcheck source=SCRIPTDIR/lib.sh
. "$BENCH/lib.sh"

REQUESTS=${REQUESTS:-1000000}
EARLY=${EARLY:-100000}
SEG=${SEG:-1}
MAX_SECS=${MAX_SECS:-600}
CONNS=${CONNS:-50}
THREADS=${THREADS:-1}
PG_WORKERS=${PG_WORKERS:-1}
PANELGATE=${PANELGATE:-}
for v in REQUESTS EARLY SEG MAX_SECS; do
    case ${!v} in '' | *[!0-9]*) die "$v must be a whole number" ;; esac
done
[ "$EARLY" -lt "$REQUESTS" ] || die "EARLY must be below REQUESTS"

echo "==> dependencies"
# shellcheck source=SCRIPTDIR/../../deploy/deps.sh
. "$ROOT/deploy/deps.sh"
pg_deps_ensure
pgb_tools nginx wrk curl python3 sha256sum
pgb_build

pgb_work pgsoak
RESULTS="$WORK/results.txt"
ROWS="$WORK/rows.tsv"
: >"$ROWS"
read -r UP_PORT PG_PORT < <(pgb_ports 2)
pgb_key "$PANELGATE"

render_nginx upstream.conf upstream "$UP_PORT"
pgb_panelgate_conf "$WORK/panelgate.yaml" hmac "$PG_PORT"

echo "==> upstream nginx on 127.0.0.1:$UP_PORT"
start_nginx upstream "$UP_PORT"
echo "==> panelgate on 127.0.0.1:$PG_PORT ($PANELGATE)"
start_panelgate "$PANELGATE" panelgate "$WORK/panelgate.yaml" "$PG_PORT"
URL="http://127.0.0.1:$PG_PORT/panelica/anything"
code=$(curl -s -o "$WORK/probe.body" -w '%{http_code}' --max-time 5 \
    -H "Authorization: Bearer $KEY" "$URL" || true)
[ "$code" = 200 ] || die_log "$WORK/probe.body" "probe answered $code, not 200"

START_RSS=$(rss_kib "$PG_PID")
echo "==> $REQUESTS requests in ${SEG}s wrk runs (-t$THREADS -c$CONNS); RSS at start $START_RSS KiB"
total=0 run=0 bad=0 sock=0 EARLY_RSS="" EARLY_AT="" EARLY_DIFF="" T0=$SECONDS
while [ "$total" -lt "$REQUESTS" ]; do
    if [ $((SECONDS - T0)) -ge "$MAX_SECS" ]; then
        break
    fi
    run=$((run + 1))
    pgb_wrk "$WORK/wrk-$run.txt" "$SEG" "$URL"
    total=$((total + W_REQS))
    bad=$((bad + W_NON2XX))
    sock=$((sock + W_SOCKERR))
    rss=$(rss_kib "$PG_PID")
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$total" "$W_RPS" "$rss" "$W_NON2XX" >>"$ROWS"
    diff=$((total > EARLY ? total - EARLY : EARLY - total))
    if [ -z "$EARLY_DIFF" ] || [ "$diff" -lt "$EARLY_DIFF" ]; then
        EARLY_RSS=$rss EARLY_AT=$total EARLY_DIFF=$diff
    fi
    printf '  run %3d  %9d requests so far  %8.0f req/s  RSS %7d KiB  non-2xx %s\n' \
        "$run" "$total" "$W_RPS" "$rss" "$W_NON2XX"
done
ELAPSED=$((SECONDS - T0))
END_RSS=$(rss_kib "$PG_PID")
HWM=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PG_PID/status")

{
    echo "panelgate soak, konglike route (panelica_hmac), $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: $(nproc) cores, $(uname -sr); wrk -t$THREADS -c$CONNS, ${SEG}s runs"
    echo "panelgate: $("$PANELGATE" --version 2>&1 | head -n 1), workers $PG_WORKERS"
    echo "requests: $total in $run runs, ${ELAPSED}s; non-2xx $bad; socket errors $sock"
    echo "RSS (VmRSS, KiB): start $START_RSS; after $EARLY_AT requests ${EARLY_RSS:-n/a};" \
        "end $END_RSS; peak (VmHWM) $HWM"
    if [ -n "$EARLY_RSS" ] && [ "$total" -gt "$EARLY_AT" ]; then
        awk -v e="$EARLY_RSS" -v z="$END_RSS" -v a="$EARLY_AT" -v t="$total" 'BEGIN {
            printf "growth from %d to %d requests: %d KiB (%.1f KiB per 100k requests)\n",
                a, t, z - e, (z - e) * 100000 / (t - a) }'
    fi
} | tee "$RESULTS"
echo
echo "results: $RESULTS (per-run rows in rows.tsv, wrk outputs, config and log beside it)"
if [ "$sock" != 0 ]; then
    echo "soak: warning: $sock socket errors (connect/read/write/timeout)" >&2
fi
if [ "$bad" != 0 ]; then
    echo "soak: $bad non-2xx answers" >&2
    exit 3
fi
if [ "$total" -lt "$REQUESTS" ]; then
    echo "soak: only $total of $REQUESTS requests within MAX_SECS=$MAX_SECS" >&2
    exit 4
fi
