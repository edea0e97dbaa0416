#!/usr/bin/env bash
# demo.sh -- build panelgate, start the echo fake panel and the gateway with conf/demo.yaml, print
# curl examples, and run until Ctrl-C (both processes are stopped on exit).
#   PG_DEMO_PORT=8080        gateway port (conf/demo.yaml's 8080 is rewritten when different)
#   PG_DEMO_PANEL_PORT=9101  fake panel port (likewise for 9101)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)

PORT=${PG_DEMO_PORT:-8080}
PANEL_PORT=${PG_DEMO_PANEL_PORT:-9101}
KEY=${PG_DEMO_KEY:-pgk_demo_0123456789abcdef0123456789abcdef}
BASE="http://127.0.0.1:$PORT"
CONF="$ROOT/conf/demo.yaml"

TMP=$(mktemp -d "${TMPDIR:-/tmp}/panelgate-demo.XXXXXX")
PANEL_PID=
GW_PID=
TAIL_PID=

# shellcheck disable=SC2317  # invoked from the trap
cleanup()
{
    local rc=$?
    trap - EXIT INT TERM
    local p
    for p in $TAIL_PID $GW_PID $PANEL_PID; do
        kill "$p" 2>/dev/null || true
    done
    for p in $TAIL_PID $GW_PID $PANEL_PID; do
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'echo; echo "demo: stopping"; exit 0' INT TERM

die()
{
    echo "demo: $*" >&2
    exit 1
}

# Show the end of a log when something did not come up.
die_log()
{
    local log=$1
    shift
    echo "demo: $*" >&2
    if [ -s "$log" ]; then
        echo "---- last lines of $(basename "$log") ----" >&2
        tail -n 30 "$log" >&2
    fi
    exit 1
}

port_busy()
{
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

echo "==> dependencies"
# shellcheck source=deploy/deps.sh
. "$ROOT/deploy/deps.sh"
pg_deps_ensure "${PG_DEPS_BUILD[@]}" || die "installing dependencies"

echo "==> build (build/)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc 2>/dev/null || echo 2)" --target panelgate fakepanels

[ -f "$CONF" ] || die "$CONF is missing"
for p in "$PORT" "$PANEL_PORT"; do
    if port_busy "$p"; then
        die "port $p on 127.0.0.1 is already in use (set PG_DEMO_PORT / PG_DEMO_PANEL_PORT)"
    fi
done

if [ "$PORT" != 8080 ] || [ "$PANEL_PORT" != 9101 ]; then
    sed -e "s/\\b8080\\b/$PORT/g" -e "s/\\b9101\\b/$PANEL_PORT/g" \
        -e "s/\\b9102\\b/$((PANEL_PORT + 1))/g" -e "s/\\b9103\\b/$((PANEL_PORT + 2))/g" \
        -e "s/\\b9104\\b/$((PANEL_PORT + 3))/g" -e "s/\\b9105\\b/$((PANEL_PORT + 4))/g" \
        -e "s/\\b9106\\b/$((PANEL_PORT + 5))/g" "$CONF" >"$TMP/demo.yaml"
    CONF="$TMP/demo.yaml"
fi
build/panelgate --check -c "$CONF" >"$TMP/check.log" 2>&1 || die_log "$TMP/check.log" "config check failed: $CONF"

# line-buffered stdout into the log files, in case a program does not flush its own
LINEBUF=()
if command -v stdbuf >/dev/null 2>&1; then
    LINEBUF=(stdbuf -oL)
fi

echo "==> fake panels on 127.0.0.1:$PANEL_PORT-$((PANEL_PORT + 5))"
"${LINEBUF[@]}" build/tests/fakepanels --echo "$PANEL_PORT" --navixy "$((PANEL_PORT + 1))" \
    --navixy-panel "$((PANEL_PORT + 2))" --openpanel "$((PANEL_PORT + 3))" \
    --panelica "$((PANEL_PORT + 4))" --navirec "$((PANEL_PORT + 5))" >"$TMP/fakepanels.log" 2>&1 &
PANEL_PID=$!
for _ in $(seq 100); do
    grep -q '^ready' "$TMP/fakepanels.log" 2>/dev/null && break
    kill -0 "$PANEL_PID" 2>/dev/null || die_log "$TMP/fakepanels.log" "fakepanels exited"
    sleep 0.1
done
grep -q '^ready' "$TMP/fakepanels.log" || die_log "$TMP/fakepanels.log" "fakepanels not ready after 10 s"

echo "==> panelgate on $BASE"
"${LINEBUF[@]}" build/panelgate -c "$CONF" >"$TMP/panelgate.log" 2>&1 &
GW_PID=$!
for _ in $(seq 100); do
    curl -fsS -o /dev/null --max-time 1 "$BASE/_gateway/health" 2>/dev/null && break
    kill -0 "$GW_PID" 2>/dev/null || die_log "$TMP/panelgate.log" "panelgate exited"
    sleep 0.1
done
curl -fsS -o /dev/null --max-time 1 "$BASE/_gateway/health" ||
    die_log "$TMP/panelgate.log" "panelgate not healthy after 10 s"

cat <<EOF

panelgate is running on $BASE (config: ${CONF#"$ROOT"/}), in front of the echo fake panel on
127.0.0.1:$PANEL_PORT. Demo API key:

    $KEY

Status page: open $BASE/_gateway/ in a browser and give it the demo key (it is an admin
key): sessions, cool-downs, buckets, requests/s, errors and p99 per panel, every 2 s.

Try:

  # health (no key)
  curl -i $BASE/_gateway/health

  # what the status page reads (admin key)
  curl -s -H 'Authorization: Bearer $KEY' $BASE/_gateway/status

  # GET through the 'echo' upstream (static X-Api-Key added, your key removed)
  curl -i -H 'Authorization: Bearer $KEY' '$BASE/echo/hello?x=1'

  # POST with a JSON body
  curl -i -H 'Authorization: Bearer $KEY' -H 'Content-Type: application/json' \\
       -d '{"name":"demo","n":1}' $BASE/echo/items

  # one request per panel: the gateway logs in, signs, pins versions; you never see their auth
  curl -H 'Authorization: Bearer $KEY' '$BASE/navixy/tracker/list?limit=5'
  curl -H 'Authorization: Bearer $KEY' '$BASE/navixy-panel/dealer/list?limit=5'
  curl -H 'Authorization: Bearer $KEY' $BASE/openpanel/api/users
  curl -H 'Authorization: Bearer $KEY' '$BASE/panelica/domains?page=1&limit=25'
  curl -i -H 'Authorization: Bearer $KEY' '$BASE/navirec/vehicles/?ordering=id'
  curl -N -H 'Authorization: Bearer $KEY' -H 'Accept: application/x-ndjson' \\
       '$BASE/navirec/streams/vehicle_states/?n=5&delay_ms=500'

  # the panels' login and logout paths are the gateway's own: 403
  curl -i -H 'Authorization: Bearer $KEY' $BASE/navixy/user/auth

  # no key: 401 unauthorized envelope
  curl -i $BASE/echo/hello

  # unknown upstream: 404 not_found envelope
  curl -i -H 'Authorization: Bearer $KEY' $BASE/nosuch/hello

EOF

# One pass over the examples, so a broken demo shows at once.
check()
{
    local want=$1 got
    shift
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@" || true)
    if [ "$got" = "$want" ]; then
        printf '  ok    %s  %s\n' "$got" "${*: -1}"
    else
        printf '  FAIL  %s (want %s)  %s\n' "$got" "$want" "${*: -1}"
    fi
}
AUTH=(-H "Authorization: Bearer $KEY")
echo "smoke check:"
check 200 "$BASE/_gateway/health"
check 200 "$BASE/_gateway/"
check 200 "${AUTH[@]}" "$BASE/_gateway/status"
check 200 "${AUTH[@]}" "$BASE/echo/hello?x=1"
check 200 "${AUTH[@]}" -H 'Content-Type: application/json' -d '{"name":"demo","n":1}' \
    "$BASE/echo/items"
check 200 "${AUTH[@]}" "$BASE/navixy/tracker/list?limit=5"
check 200 "${AUTH[@]}" "$BASE/navixy-panel/dealer/list?limit=5"
check 200 "${AUTH[@]}" "$BASE/openpanel/api/users"
check 200 "${AUTH[@]}" "$BASE/panelica/domains?page=1&limit=25"
check 200 "${AUTH[@]}" "$BASE/navirec/vehicles/?ordering=id"
check 403 "${AUTH[@]}" "$BASE/navixy/user/auth"
check 401 "$BASE/echo/hello"
check 404 "${AUTH[@]}" "$BASE/nosuch/hello"

echo
echo "gateway log follows; Ctrl-C stops panelgate and the fake panel."
echo
tail -n +1 -f "$TMP/panelgate.log" &
TAIL_PID=$!

# Until Ctrl-C, or until one of the two exits on its own.
set +e
wait -n "$GW_PID" "$PANEL_PID"
rc=$?
set -e
if ! kill -0 "$GW_PID" 2>/dev/null; then
    echo "demo: panelgate exited (status $rc)" >&2
else
    echo "demo: fakepanels exited (status $rc)" >&2
    tail -n 20 "$TMP/fakepanels.log" >&2
fi
exit 1
