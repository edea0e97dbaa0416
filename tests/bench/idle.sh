#!/usr/bin/env bash
# idle.sh -- memory per idle keep-alive connection: panelgate vs nginx-plain, on 127.0.0.1, in
# front of the same upstream (the static JSON nginx of bench.sh).
#
# For each peer in turn: WARM connections make one request each and close (so that the route,
# the upstream pool and the allocator are warm); then RSS "before" is read; then idleconn.py
# opens N keep-alive connections, each makes one proxied request through the plain route (200
# required: panelgate /navirec/anything with the static upstream, nginx-plain /anything) and
# stays open, idle; after SETTLE seconds RSS "idle" is read. Reported per peer:
#   (RSS idle - RSS before) / N  in KiB per idle connection
# with RSS = VmRSS of /proc/PID/status: panelgate's process; for nginx the sum of its worker
# processes (the master holds no connections). The client then checks how many connections the
# server had kept open (all N expected) and closes them; RSS after that is shown too.
# nginx allocates and touches its whole connection table (worker_connections) at start, so that
# fixed part is in its "before" figure, not in the per-connection one (about 0.4 KiB per slot
# here: compare "before" of N=1000 and N=10000 runs); panelgate allocates per connection.
#
# For the N idle connections the peers' idle timeouts are raised (panelgate limits.client_timeout
# and max_connections, nginx keepalive_timeout and worker_connections in the rendered copy), and
# the soft open-file limit is raised to N + 2048 for this script and what it starts; it stops
# with an error when the hard limit is lower.
#
# Environment (defaults in brackets):
#   N [10000]                 idle connections per peer
#   WARM [200]                warm-up connections (one request each, closed)
#   SETTLE [2]                seconds between the last connection and the RSS reading
#   PEERS ["nginx panelgate"] which to measure, in this order
#   PANELGATE                 a prebuilt binary; default: a Release build in build-bench/
#   PG_WORKERS [1]            panelgate workers and nginx-plain's worker_processes
# Results stay in a temp dir whose path is printed at the end. See also bench.sh and soak.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
BENCH="$ROOT/tests/bench"
PGB_NAME=idle
# shellcheck source=SCRIPTDIR/lib.sh
. "$BENCH/lib.sh"

N=${N:-10000}
WARM=${WARM:-200}
SETTLE=${SETTLE:-2}
PEERS=${PEERS:-nginx panelgate}
PG_WORKERS=${PG_WORKERS:-1}
PANELGATE=${PANELGATE:-}
case $N in '' | *[!0-9]*) die "N must be a number" ;; esac
[ "$N" -gt 0 ] || die "N must be positive"
for p in $PEERS; do
    case $p in nginx | panelgate) ;; *) die "PEERS: unknown peer '$p' (nginx, panelgate)" ;; esac
done
want()
{
    case " $PEERS " in *" $1 "*) return 0 ;; esac
    return 1
}

# ---- open-file limit --------------------------------------------------------------------------
NEED=$((N + 2048))
HARD=$(ulimit -Hn)
if [ "$HARD" != unlimited ] && [ "$HARD" -lt "$NEED" ]; then
    die "the hard open-file limit ($HARD) is below the $NEED that N=$N needs; lower N or raise it (as root: ulimit -Hn $NEED, or LimitNOFILE)"
fi
if [ "$(ulimit -Sn)" != unlimited ] && [ "$(ulimit -Sn)" -lt "$NEED" ]; then
    ulimit -Sn "$NEED" || die "could not raise the soft open-file limit to $NEED"
fi

echo "==> dependencies"
# shellcheck source=SCRIPTDIR/../../deploy/deps.sh
. "$ROOT/deploy/deps.sh"
pg_deps_ensure
pgb_tools nginx curl python3 sha256sum
if want panelgate; then
    pgb_build
fi

pgb_work pgidle
RESULTS="$WORK/results.txt"
read -r UP_PORT NGINX_PORT PG_PORT < <(pgb_ports 3)
if want panelgate; then
    pgb_key "$PANELGATE"
else
    pgb_key
fi

# ---- configs ----------------------------------------------------------------------------------
IDLE_TIMEOUT=600
render_nginx upstream.conf upstream "$UP_PORT"
render_nginx nginx-plain.conf nginx "$NGINX_PORT"
# room for N client connections plus the upstream pool; idle connections kept IDLE_TIMEOUT s
sed -i -e "s|worker_connections [0-9]*;|worker_connections $((N + 1024));|" \
    -e "s|^  access_log off;\$|  access_log off; keepalive_timeout ${IDLE_TIMEOUT}s;|" "$WORK/nginx.conf"
grep -q "worker_connections $((N + 1024));" "$WORK/nginx.conf" || die "nginx.conf: worker_connections not set"
grep -q "keepalive_timeout ${IDLE_TIMEOUT}s;" "$WORK/nginx.conf" || die "nginx.conf: keepalive_timeout not set"
pgb_panelgate_conf "$WORK/panelgate.yaml" static "$PG_PORT"
cat >>"$WORK/panelgate.yaml" <<EOF
limits: {client_timeout: ${IDLE_TIMEOUT}s, max_connections: $((N + 64))}
EOF

# ---- processes --------------------------------------------------------------------------------
echo "==> upstream nginx on 127.0.0.1:$UP_PORT"
start_nginx upstream "$UP_PORT"
NGINX_MASTER=
if want nginx; then
    echo "==> nginx-plain on 127.0.0.1:$NGINX_PORT"
    start_nginx nginx "$NGINX_PORT"
    NGINX_MASTER=${PIDS[-1]}
fi
if want panelgate; then
    echo "==> panelgate on 127.0.0.1:$PG_PORT ($PANELGATE)"
    start_panelgate "$PANELGATE" panelgate "$WORK/panelgate.yaml" "$PG_PORT"
fi

# the processes whose RSS counts for PEER
pids_of()
{
    if [ "$1" = nginx ]; then
        nginx_workers "$NGINX_MASTER"
    else
        echo "$PG_PID"
    fi
}

# ---- measure ----------------------------------------------------------------------------------
ROWS="$WORK/rows.tsv"
: >"$ROWS"
measure()
{
    local peer=$1 port path pids before idle after open line took client out="$WORK/idle-$1.out"
    local release="$WORK/idle-$1.release"
    if [ "$peer" = nginx ]; then
        port=$NGINX_PORT path=/anything
    else
        port=$PG_PORT path=/navirec/anything
    fi
    mapfile -t pids < <(pids_of "$peer")
    [ ${#pids[@]} -gt 0 ] || die "$peer: no process to measure"
    if [ "$WARM" -gt 0 ]; then
        python3 "$BENCH/idleconn.py" --port "$port" --path "$path" --key "$KEY" -n "$WARM" \
            >"$WORK/warm-$peer.out" 2>&1 || die_log "$WORK/warm-$peer.out" "$peer: warm-up failed"
    fi
    sleep 1
    before=$(rss_kib "${pids[@]}")
    echo "==> $peer (pids ${pids[*]}): RSS $before KiB; opening $N connections"
    python3 "$BENCH/idleconn.py" --port "$port" --path "$path" --key "$KEY" -n "$N" \
        --hold-file "$release" --max-wait 300 >"$out" 2>&1 &
    client=$!
    PIDS+=("$client")
    # N sequential requests: allow 60 s plus 10 ms each
    for _ in $(seq $((600 + N / 10))); do
        grep -q '^READY ' "$out" && break
        kill -0 "$client" 2>/dev/null || die_log "$out" "$peer: the client stopped"
        sleep 0.1
    done
    line=$(grep '^READY ' "$out" || true)
    [ -n "$line" ] || die_log "$out" "$peer: $N connections not ready in time"
    took=$(awk '{ print $3 }' <<<"$line")
    sleep "$SETTLE"
    idle=$(rss_kib "${pids[@]}")
    touch "$release"
    wait "$client" || die_log "$out" "$peer: the client failed"
    open=$(awk '/^OPEN / { print $2 }' "$out")
    sleep 1
    after=$(rss_kib "${pids[@]}")
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$peer" "$N" "$before" "$idle" "$after" "${open:-0}" \
        "$took" >>"$ROWS"
    printf '    %s idle connections opened in %.1f s; RSS %s KiB with them, %s KiB after closing; still open at the check: %s\n' \
        "$N" "$took" "$idle" "$after" "${open:-0}"
    if [ "${open:-0}" != "$N" ]; then
        echo "idle: warning: $peer had closed $((N - ${open:-0})) of the $N connections" >&2
    fi
}
for p in $PEERS; do
    measure "$p"
done

# ---- report -----------------------------------------------------------------------------------
{
    echo "panelgate idle keep-alive connections, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "host: $(nproc) cores, $(uname -sr); $(nginx -v 2>&1); open-file limit $(ulimit -Sn)"
    if want panelgate; then
        echo "panelgate: $("$PANELGATE" --version 2>&1 | head -n 1), workers $PG_WORKERS"
    fi
    echo "RSS = VmRSS (KiB): panelgate's process, the sum of nginx-plain's worker(s)"
    if want nginx; then
        echo "nginx: worker_connections $((N + 1024)), allocated at start (in 'before')"
    fi
    echo
    printf '%-10s %7s %12s %12s %10s %12s %14s %8s\n' peer N 'before KiB' 'idle KiB' 'delta KiB' \
        'KiB/conn' 'closed KiB' 'open'
    while IFS=$'\t' read -r p n b i a o _; do
        awk -v p="$p" -v n="$n" -v b="$b" -v i="$i" -v a="$a" -v o="$o" 'BEGIN {
            printf "%-10s %7d %12d %12d %10d %12.2f %14d %8d\n", p, n, b, i, i - b, (i - b) / n, a, o }'
    done <"$ROWS"
} | tee "$RESULTS"
echo
echo "results: $RESULTS (client outputs, configs and logs beside it)"
