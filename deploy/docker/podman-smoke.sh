#!/usr/bin/env bash
# podman-smoke.sh -- build the image with podman and run deploy/compose.yaml's shape for real on
# this host: redis, the fake panels (container), two panelgate containers, nginx in front; then
# requests through the balancer, the image's HEALTHCHECK, and a stop within drain_timeout.
# Not part of CI (it builds images: about a minute, and needs podman and a Debian 12 base
# image). Everything listens on 127.0.0.1 only: the containers use the host's network, so the
# compose file's service names become 127.0.0.1 and each service gets its own port (below).
#
# FROM debian:12-slim is the registry's image, or, without a registry, a local one podman finds
# first by that short name:
#   debootstrap --variant=minbase bookworm DIR http://deb.debian.org/debian
#   tar -C DIR -c . | podman import - localhost/debian:12-slim
#   PODMAN_RUNTIME=runc            OCI runtime (crun refuses cgroup v1+v2 hybrid hosts)
#   PG_SMOKE_PORT=18080            the balancer's port; the others follow it
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
ROOT=$(pwd)
LB=${PG_SMOKE_PORT:-18080}
GW1=8080 GW2=$((LB + 2)) REDIS=$((LB + 3)) FP=$((LB + 10)) # fake panels: FP..FP+5
KEY=pgk_demo_0123456789abcdef0123456789abcdef
RT=${PODMAN_RUNTIME:-runc}
# podman run/build as root without CAP_SYS_RESOURCE cannot raise limits: keep them below ours
LIM=(--ulimit "nofile=$(ulimit -n):$(ulimit -n)" --ulimit "nproc=1024:1024")
P=(podman --runtime "$RT")
TMP=$(mktemp -d "${TMPDIR:-/tmp}/pg-smoke.XXXXXX")
CTRS=()
PIDS=()

cleanup()
{
    local rc=$?
    for c in "${CTRS[@]}"; do "${P[@]}" rm -f -t 12 "$c" >/dev/null 2>&1 || true; done
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
say() { printf '==> %s\n' "$*"; }
fail() { echo "podman-smoke: FAILED: $*" >&2; exit 1; }

wait_http()
{
    local url=$1 i
    for i in $(seq 100); do
        curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

say "build images (deploy/docker/Dockerfile)"
"${P[@]}" build --format docker --network host "${LIM[@]}" -f deploy/docker/Dockerfile \
    -t localhost/panelgate:smoke . >"$TMP/build.log" 2>&1 || { tail -30 "$TMP/build.log"; fail build; }
"${P[@]}" build --format docker --network host "${LIM[@]}" -f deploy/docker/Dockerfile \
    --target fakepanels -t localhost/panelgate-fakepanels:smoke . >>"$TMP/build.log" 2>&1 ||
    { tail -30 "$TMP/build.log"; fail "build fakepanels"; }
[ "$("${P[@]}" image inspect localhost/panelgate:smoke --format '{{.Config.User}}')" = 10001:10001 ] ||
    fail "image user is not 10001:10001"

say "redis on 127.0.0.1:$REDIS (host's redis-server)"
redis-server --port "$REDIS" --bind 127.0.0.1 --save '' --appendonly no >"$TMP/redis.log" 2>&1 &
PIDS+=($!)

say "fake panels container on 127.0.0.1:$FP-$((FP + 5))"
CTRS+=(pg-smoke-fakepanels)
"${P[@]}" run -d --name pg-smoke-fakepanels --network host --read-only --cap-drop ALL "${LIM[@]}" \
    --entrypoint /usr/local/bin/fakepanels localhost/panelgate-fakepanels:smoke \
    --host 127.0.0.1 --echo "$FP" --navixy "$((FP + 1))" --navixy-panel "$((FP + 2))" \
    --openpanel "$((FP + 3))" --panelica "$((FP + 4))" --navirec "$((FP + 5))" >/dev/null
port_free 8080 || fail "127.0.0.1:8080 is in use: panelgate-1 takes the image's own port"

# compose's names and ports -> this host's: fakepanels:910N -> 127.0.0.1:FP+N-1, redis -> REDIS
SED=(-e "s#redis://redis:6379/0#redis://127.0.0.1:$REDIS/0#"
    -e "s#public_url: http://127.0.0.1:8080#public_url: http://127.0.0.1:$LB#"
    -e "s#address: 0.0.0.0#address: 127.0.0.1#")
for n in 1 2 3 4 5 6; do SED+=(-e "s#fakepanels:910$n#127.0.0.1:$((FP + n - 1))#"); done
for i in 1 2; do
    port=$((i == 1 ? GW1 : GW2))
    sed "${SED[@]}" -e "s#port: 8080}#port: $port}#" deploy/docker/panelgate.yaml >"$TMP/gw$i.yaml"
    chmod 644 "$TMP/gw$i.yaml"
    HC=()  # panelgate-1 listens on the image's 8080: its own HEALTHCHECK applies unchanged
    [ "$port" = 8080 ] ||
        HC=(--health-cmd "curl -fsS -o /dev/null --max-time 2 http://127.0.0.1:$port/_gateway/health")
    say "panelgate-$i container on 127.0.0.1:$port"
    CTRS+=("pg-smoke-gw$i")
    "${P[@]}" run -d --name "pg-smoke-gw$i" --network host --read-only --cap-drop ALL \
        --security-opt no-new-privileges "${LIM[@]}" "${HC[@]}" \
        -v "$TMP/gw$i.yaml:/etc/panelgate/panelgate.yaml:ro" \
        -v "$ROOT/deploy/docker/secrets:/run/secrets/panelgate:ro" \
        localhost/panelgate:smoke >/dev/null 2>"$TMP/run$i.err" ||
        { cat "$TMP/run$i.err"; fail "podman run panelgate-$i"; }
    wait_http "http://127.0.0.1:$port/_gateway/health" ||
        { "${P[@]}" logs "pg-smoke-gw$i" | tail -20; fail "panelgate-$i not healthy"; }
done

say "HEALTHCHECK (run by hand: podman schedules it with systemd timers, absent here)"
"${P[@]}" image inspect localhost/panelgate:smoke --format '{{json .HealthCheck}}'
for i in 1 2; do
    "${P[@]}" healthcheck run "pg-smoke-gw$i" >/dev/null 2>&1 || fail "healthcheck of panelgate-$i"
    echo "  pg-smoke-gw$i: healthy"
done

say "nginx balancer on 127.0.0.1:$LB (host's nginx, deploy/nginx/panelgate-lb.conf)"
mkdir -p "$TMP/nginx"
sed -e "s#server panelgate-1:8080#server 127.0.0.1:$GW1#" -e "s#server panelgate-2:8080#server 127.0.0.1:$GW2#" \
    -e "s#listen 8080;#listen 127.0.0.1:$LB;#" deploy/nginx/panelgate-lb.conf >"$TMP/nginx/lb.conf"
cat >"$TMP/nginx/nginx.conf" <<NGX
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/error.log;
events {}
http {
    access_log $TMP/nginx/access.log;
    client_body_temp_path $TMP/nginx;
    proxy_temp_path $TMP/nginx;
    include $TMP/nginx/lb.conf;
}
NGX
nginx -c "$TMP/nginx/nginx.conf" -p "$TMP/nginx" &
PIDS+=($!)
wait_http "http://127.0.0.1:$LB/_lb/health" || fail "nginx did not start"

say "requests through the balancer"
AUTH=(-H "Authorization: Bearer $KEY")
check()
{
    local want=$1 got
    shift
    got=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$@")
    [ "$got" = "$want" ] || fail "want $want, got $got: ${*: -1}"
    printf '  ok %s %s\n' "$got" "${*: -1}"
}
check 200 "http://127.0.0.1:$LB/_gateway/health"
for _ in 1 2 3; do
    check 200 "${AUTH[@]}" "http://127.0.0.1:$LB/navixy/tracker/list?limit=5"
done
check 200 "${AUTH[@]}" "http://127.0.0.1:$LB/navixy-panel/dealer/list?limit=5"
check 200 "${AUTH[@]}" "http://127.0.0.1:$LB/openpanel/api/users"
check 200 "${AUTH[@]}" "http://127.0.0.1:$LB/panelica/domains?page=1&limit=25"
check 200 "${AUTH[@]}" "http://127.0.0.1:$LB/navirec/vehicles/?ordering=id"
check 200 "${AUTH[@]}" "http://127.0.0.1:$LB/echo/hello"
check 401 "http://127.0.0.1:$LB/echo/hello"
store=$(curl -s "${AUTH[@]}" "http://127.0.0.1:$LB/_gateway/status" | grep -o '"store":{[^}]*}')
echo "  status: $store"
case "$store" in *'"type":"redis"'*'"state":"ok"'* | *'"state":"ok"'*'"type":"redis"'*) ;;
*) fail "the store is not redis/ok: $store" ;; esac
# SPEC 4.1: one login per panel for the fleet, though both instances served navixy
logins=$(curl -s "http://127.0.0.1:$((FP + 1))/_fake/stats" | grep -o '"logins": *[0-9]*' | grep -o '[0-9]*$')
echo "  the navixy fake saw $logins login(s) from two instances"
[ "$logins" = 1 ] || fail "want 1 navixy login for the fleet, got $logins"
keys=$(redis-cli -p "$REDIS" --scan --pattern 'panelgate:*' | wc -l)
echo "  redis holds $keys panelgate keys"
[ "$keys" -gt 0 ] || fail "nothing in redis"

say "stop: SIGTERM, exit 0 within drain_timeout"
for i in 1 2; do
    t0=$SECONDS
    "${P[@]}" stop -t 30 "pg-smoke-gw$i" >/dev/null
    rc=$("${P[@]}" inspect "pg-smoke-gw$i" --format '{{.State.ExitCode}}')
    echo "  pg-smoke-gw$i exited $rc after $((SECONDS - t0)) s"
    [ "$rc" = 0 ] || fail "panelgate-$i exited $rc"
    n=$("${P[@]}" logs "pg-smoke-gw$i" 2>&1 | grep -c ' GET /[a-z-]*/[^ ]* 200 ' || true)
    echo "  panelgate-$i had answered $n proxied GETs with 200 (the balancer spreads them)"
done
echo "podman-smoke: OK"
