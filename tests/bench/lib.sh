# lib.sh -- shell pieces shared by tests/bench/bench.sh, idle.sh and soak.sh; sourced, not run.
#
# The sourcing script sets, before calling these:
#   PGB_NAME   prefix of error messages ("bench", "idle", "soak")
#   ROOT       the repository's top folder; BENCH=$ROOT/tests/bench
# and, for the config helpers: WORK (pgb_work), UP_PORT, KEY and HASH (pgb_key), PG_WORKERS.
# shellcheck shell=bash

die()
{
    echo "$PGB_NAME: $*" >&2
    exit 1
}

# Show the end of a log, then die.
die_log()
{
    local log=$1
    shift
    echo "$PGB_NAME: $*" >&2
    if [ -s "$log" ]; then
        echo "---- last lines of $log ----" >&2
        tail -n 30 "$log" >&2
    fi
    exit 1
}

# pgb_tools CMD...: die unless every command is on PATH.
pgb_tools()
{
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || die "$c not found"
    done
}

# A Release build in build-bench/ unless PANELGATE names a binary already.
pgb_build()
{
    if [ -z "${PANELGATE:-}" ]; then
        echo "==> build (build-bench/, Release)"
        cmake -S "$ROOT" -B "$ROOT/build-bench" -DCMAKE_BUILD_TYPE=Release -DPG_TESTS=OFF >/dev/null
        cmake --build "$ROOT/build-bench" -j"$(nproc 2>/dev/null || echo 2)" --target panelgate
        PANELGATE="$ROOT/build-bench/panelgate"
    fi
    [ -x "$PANELGATE" ] || die "PANELGATE=$PANELGATE is not an executable"
}

# pgb_work PREFIX: WORK = a new temp dir; PIDS (background processes to stop) and WRK_PID (the
# running wrk, if any) are stopped on exit, on failure too.
pgb_work()
{
    WORK=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    # nginx workers drop to `nobody` when started as root; they must reach their temp dirs here
    chmod 755 "$WORK"
    PIDS=()
    WRK_PID=
    trap pgb_cleanup EXIT
    trap 'echo; echo "$PGB_NAME: interrupted; results so far in $WORK" >&2; exit 130' INT TERM
}

# shellcheck disable=SC2317  # invoked from the trap
pgb_cleanup()
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

# pgb_ports N: N free TCP ports on 127.0.0.1, on one line.
pgb_ports()
{
    python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss:
    s.bind(("127.0.0.1", 0))
print(*(s.getsockname()[1] for s in ss))
' "$1"
}

# pgb_key [PANELGATE]: KEY = a caller key, HASH = its sha256 (hex). With a panelgate binary,
# `panelgate keygen --name N` makes the key: it prints the key (pgk_...) first and a config line
# with key: "sha256:<hex>"; the hash is computed here and cross-checked against that line.
pgb_key()
{
    local pg=${1:-} out kg
    KEY=
    if [ -n "$pg" ]; then
        out=$("$pg" keygen --name bench 2>&1) || die "panelgate keygen failed: $out"
        KEY=$(grep -oE 'pgk_[A-Za-z0-9_]+' <<<"$out" | head -n 1 || true)
        [ -n "$KEY" ] || die "no pgk_ key in the output of panelgate keygen: $out"
    fi
    if [ -z "$KEY" ]; then
        KEY="pgk_bench_$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')"
    fi
    HASH=$(printf '%s' "$KEY" | sha256sum | cut -d ' ' -f 1)
    if [ -n "$pg" ]; then
        kg=$(grep -oiE 'sha256:[0-9a-f]{64}' <<<"$out" | head -n 1 | cut -d : -f 2 || true)
        if [ -n "$kg" ] && [ "${kg,,}" != "$HASH" ]; then
            die "panelgate keygen's sha256 ($kg) is not sha256 of its key ($HASH)"
        fi
    fi
}

# pgb_cert NAME SAN: WORK/NAME.crt and WORK/NAME.key, a self-signed RSA-2048 certificate for
# CN=localhost with subjectAltName SAN (e.g. "DNS:localhost" or "DNS:localhost,IP:127.0.0.1"),
# valid 2 days. The certificate is its own trust anchor (ca_file / --cacert).
pgb_cert()
{
    local name=$1 san=$2
    openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -subj /CN=localhost \
        -addext "subjectAltName=$san" -keyout "$WORK/$name.key" -out "$WORK/$name.crt" \
        >"$WORK/$name.openssl.log" 2>&1 ||
        die_log "$WORK/$name.openssl.log" "openssl could not make $WORK/$name.crt"
    # nginx's master reads the key before dropping privileges; panelgate runs as this user
    chmod 600 "$WORK/$name.key"
}

# render_nginx SRC NAME PORT: WORK/NAME.conf from BENCH/nginx/SRC. The nginx files are the shared
# peers; placeholders are filled here (@DIR@ @UP@ @PORT@ @KEY@ @WORKERS@), and temp paths are
# added so no instance touches /var/lib/nginx (Debian's compiled-in default).
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

# wait_http URL PID LOG [CURL-ARGS...]: wait until URL answers with any HTTP status (10 s max)
# while PID is alive.
wait_http()
{
    local url=$1 pid=$2 log=$3 code
    shift 3
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$@" "$url" || true)
        if [ -n "$code" ] && [ "$code" != 000 ]; then
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || die_log "$log" "$url: the process exited"
        sleep 0.1
    done
    die_log "$log" "$url: no answer after 10 s"
}

# start_nginx NAME PORT [SCHEME]: a non-system nginx on WORK/NAME.conf: our config, prefix and
# error log (-e: the log used before the config is read); foreground so that the pid is ours to
# stop. SCHEME https: the readiness check does not verify the certificate (the probes do).
start_nginx()
{
    local name=$1 port=$2 scheme=${3:-http}
    nginx -p "$WORK/" -e "$WORK/$name.startup.err" -c "$WORK/$name.conf" -g 'daemon off;' \
        >"$WORK/$name.out" 2>&1 &
    PIDS+=($!)
    wait_http "$scheme://127.0.0.1:$port/" $! "$WORK/$name.startup.err" -k
}

# pgb_panelgate_conf FILE KIND PORT [LISTEN_TLS]: a panelgate config listening on 127.0.0.1:PORT
# with one consumer (KEY) and one upstream, by KIND:
#   static      navirec: the plain upstream (http://127.0.0.1:UP_PORT), fixed Authorization
#   static-tls  navirec: https://localhost:UP_PORT, trusting WORK/up.crt, same header
#   hmac        panelica: the plain upstream, panelica_hmac signing, rate 1000000/s (never hit)
# LISTEN_TLS=tls: callers' TLS with WORK/front.crt and WORK/front.key. The caller may append
# more top-level keys. pgb_upname KIND prints the upstream's name (the first path segment).
pgb_upname()
{
    case $1 in
    static | static-tls) echo navirec ;;
    hmac) echo panelica ;;
    *) die "pgb_upname: unknown kind '$1'" ;;
    esac
}
pgb_panelgate_conf()
{
    local file=$1 kind=$2 port=$3 listen_tls=${4:-} listen
    listen="{address: 127.0.0.1, port: $port}"
    if [ "$listen_tls" = tls ]; then
        listen="{address: 127.0.0.1, port: $port, tls: {cert: $WORK/front.crt, key: $WORK/front.key}}"
    fi
    cat >"$file" <<EOF
# generated by tests/bench/ ($PGB_NAME, upstream kind $kind)
listen: $listen
workers: $PG_WORKERS
access_log: off
consumers:
  - {name: bench, key: "sha256:$HASH", allow: [$(pgb_upname "$kind")]}
upstreams:
EOF
    case $kind in
    static)
        cat >>"$file" <<EOF
  - name: navirec
    url: http://127.0.0.1:$UP_PORT
    auth: {type: static, headers: {Authorization: "Token navirec-static-token"}}
EOF
        ;;
    static-tls)
        cat >>"$file" <<EOF
  - name: navirec
    url: https://localhost:$UP_PORT
    tls: {verify: true, ca_file: $WORK/up.crt}
    auth: {type: static, headers: {Authorization: "Token navirec-static-token"}}
EOF
        ;;
    hmac)
        cat >>"$file" <<EOF
  - name: panelica
    url: http://127.0.0.1:$UP_PORT
    auth: {type: panelica_hmac, api_key: pk_live_bench, api_secret: sk_live_bench_secret}
    rate_limit: {rate: 1000000/s}
EOF
        ;;
    esac
}

# start_panelgate BIN NAME CONF PORT [SCHEME]: check CONF, start the panelgate binary BIN on it
# (log WORK/NAME.log) and wait for its health endpoint. PG_PID = its pid.
start_panelgate()
{
    local bin=$1 name=$2 conf=$3 port=$4 scheme=${5:-http}
    "$bin" --check -c "$conf" >"$WORK/$name.check" 2>&1 ||
        die_log "$WORK/$name.check" "panelgate --check rejected $conf"
    "$bin" -c "$conf" >"$WORK/$name.log" 2>&1 &
    PG_PID=$!
    PIDS+=("$PG_PID")
    wait_http "$scheme://127.0.0.1:$port/_gateway/health" "$PG_PID" "$WORK/$name.log" -k
}

# rss_kib PID...: the sum of VmRSS (KiB) of the given processes.
rss_kib()
{
    local p sum=0 v
    for p in "$@"; do
        v=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null || true)
        [ -n "$v" ] || die "no VmRSS for pid $p (exited?)"
        sum=$((sum + v))
    done
    echo "$sum"
}

# nginx_workers MASTER_PID: the pids of an nginx master's worker processes.
nginx_workers()
{
    cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep -E '^[0-9]+$' || true
}

# median: the median of the numbers on stdin ("nan" when none).
median()
{
    sort -g | awk '{ a[NR] = $1 }
        END { if (NR == 0) print "nan"; else if (NR % 2) print a[(NR + 1) / 2];
              else printf "%.3f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# pgb_wrk OUT SECS URL: one wrk run (THREADS threads, CONNS connections, the caller key KEY)
# with report.lua, its output in OUT. Sets W_REQS W_RPS W_P50 W_P99 (ms) W_NON2XX W_SOCKERR.
# shellcheck disable=SC2034  # the W_ variables are read by the sourcing scripts
pgb_wrk()
{
    local out=$1 secs=$2 url=$3 line kv serr=0 n
    # in the background so that a TERM is handled now, not after the run (bash defers traps
    # while a foreground command runs); the cleanup trap stops it
    wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 5s -s "$BENCH/report.lua" \
        -H "Authorization: Bearer $KEY" "$url" >"$out" 2>&1 &
    WRK_PID=$!
    wait "$WRK_PID" || die_log "$out" "wrk failed against $url"
    WRK_PID=
    line=$(grep '^PGBENCH ' "$out" || true)
    [ -n "$line" ] || die_log "$out" "no PGBENCH line in the wrk output (report.lua)"
    W_REQS=0 W_RPS="" W_P50="" W_P99="" W_SOCKERR=0
    for kv in $line; do
        case $kv in
        requests=*) W_REQS=${kv#*=} ;;
        rps=*) W_RPS=${kv#*=} ;;
        p50_ms=*) W_P50=${kv#*=} ;;
        p99_ms=*) W_P99=${kv#*=} ;;
        status_errors=*) serr=${kv#*=} ;;
        socket_errors=*) W_SOCKERR=${kv#*=} ;;
        esac
    done
    n=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' "$out")
    W_NON2XX=${n:-0}
    if [ "$serr" -gt "$W_NON2XX" ]; then W_NON2XX=$serr; fi
}
