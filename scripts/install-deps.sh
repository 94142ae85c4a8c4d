#!/bin/sh
# install-deps.sh - install every Debian package turnpolicy needs to build,
# test, fuzz and benchmark.  Idempotent: packages already present are not
# touched, and nothing is downloaded when everything is installed.
#
# Run as root (or with sudo).  Usage: scripts/install-deps.sh [--quiet]
#
# The same list works on Debian 12 (bookworm) and 13 (trixie): versioned
# packages are named through Debian's metapackages, which depend on the
# release's own version ("postgresql" -> postgresql-15 / postgresql-17,
# "libclang-rt-dev" -> the compiler-rt of the release's default clang,
# libclang-rt-14-dev / libclang-rt-19-dev).
set -eu

PKGS="
build-essential pkg-config
libssl-dev libjwt-dev libhiredis-dev libpq-dev libcmocka-dev libjansson-dev
postgresql
redis-server redis-tools
coturn
nginx nginx-dev libnginx-mod-stream
clang libclang-rt-dev
python3-aiortc python3-websockets
dnsmasq-base curl wrk caddy xxd iproute2
chromium nodejs strace
"

missing=""
for p in $PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing="$missing $p"
    fi
done

# npm (the browser test installs the ACS Calling SDK with it): Debian's
# package, unless a nodejs that ships its own npm (NodeSource) is there.
if ! command -v npm >/dev/null 2>&1; then
    missing="$missing npm"
fi

if [ -z "$missing" ]; then
    [ "${1:-}" = "--quiet" ] || echo "install-deps: all packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: missing packages:$missing" >&2
        echo "install-deps: run this script as root to install them" >&2
        exit 1
    fi
else
    SUDO=
fi

echo "install-deps: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# Debian's coturn, redis-server and nginx packages start system services on
# install; tests start their own instances, so stop those from starting.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
