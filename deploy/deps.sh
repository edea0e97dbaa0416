#!/usr/bin/env bash
# deps.sh -- install the Debian 12 packages panelgate needs to build, test and demo.
# Run it (`deploy/deps.sh [PKG...]`) or source it and call `pg_deps_ensure [PKG...]`.
# Without arguments it ensures the default list below. It only touches apt when a package is
# missing, so on a prepared machine it returns at once. It never starts services itself.

# What building panelgate and the fake panels takes (deploy/demo.sh installs only these; the
# build configures the tests too, hence cmocka and python3).
PG_DEPS_BUILD=(
    build-essential cmake pkg-config
    libevent-dev libcurl4-openssl-dev libssl-dev libyaml-dev libjansson-dev libhiredis-dev
    libcmocka-dev libhttp-parser-dev libjemalloc-dev
    python3 curl ca-certificates
)

# Everything deploy/test.sh runs: the build's, then the test peers and tools.
PG_DEPS_DEFAULT=(
    "${PG_DEPS_BUILD[@]}" openssl
    redis-server nginx wrk valgrind
    clang clang-format libclang-rt-14-dev
    chromium  # tests/integration/test_page.py drives the status page in it, headless
    # deploy/ checks (tests/deploy/): systemd-analyze (systemd), promtool (prometheus; on a host
    # running systemd apt also starts its service: `systemctl disable --now prometheus`), strace
    # (the unit's system-call filter), node for the Kubernetes schema check (npm: below)
    systemd prometheus strace nodejs
)

# npm comes with nodejs where nodejs is NodeSource's build; Debian's nodejs needs Debian's npm.
pg_deps_default()
{
    printf '%s\n' "${PG_DEPS_DEFAULT[@]}"
    if ! command -v npm >/dev/null 2>&1; then
        echo npm
    fi
}

# Print the packages among "$@" that are not fully installed (one dpkg-query call: fast).
pg_deps_missing()
{
    local have p
    have=$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null |
        awk '/ ok installed$/ { print $1 }' || true)
    for p in "$@"; do
        if ! grep -qxF -- "$p" <<<"$have"; then
            printf '%s\n' "$p"
        fi
    done
}

# Install whatever of "$@" (default: pg_deps_default) is missing. Returns non-zero on failure.
pg_deps_ensure()
{
    local pkgs=("$@") missing=() sudo=()
    if [ ${#pkgs[@]} -eq 0 ]; then
        mapfile -t pkgs < <(pg_deps_default)
    fi
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "deps: dpkg-query not found; this script targets Debian 12. Install by hand:" >&2
        echo "deps:   ${pkgs[*]}" >&2
        return 1
    fi
    mapfile -t missing < <(pg_deps_missing "${pkgs[@]}")
    if [ ${#missing[@]} -eq 0 ]; then
        return 0
    fi
    echo "deps: installing: ${missing[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        if command -v sudo >/dev/null 2>&1; then
            sudo=(sudo)
        else
            echo "deps: not root and no sudo; install these packages first: ${missing[*]}" >&2
            return 1
        fi
    fi
    # env(1) so the variable also reaches apt through sudo
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q || return 1
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
        --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${missing[@]}" || return 1
    mapfile -t missing < <(pg_deps_missing "${missing[@]}")
    if [ ${#missing[@]} -ne 0 ]; then
        echo "deps: still missing after install: ${missing[*]}" >&2
        return 1
    fi
    return 0
}

# Executed (not sourced): do it now.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    pg_deps_ensure "$@"
fi
