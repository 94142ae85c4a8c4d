# tests/lib.sh - shared shell harness for integration tests.
#
# Source it from a test script.  It gives:
#   tp_tmpdir            a private temporary directory, removed on exit
#   tp_free_port         a port free for TCP and UDP on 127.0.0.1
#   tp_bg NAME CMD...    start a server in the background, remembered so it
#                        is stopped on exit whatever happens
#   tp_wait_port PORT [SECONDS]   wait until 127.0.0.1:PORT accepts TCP
#   ok NAME / not_ok NAME [WHY]   TAP result lines
#   check NAME CMD...    run CMD; ok if it exits 0
#   check_fails NAME CMD...  ok if CMD exits non-zero
# Everything binds to 127.0.0.1 only.

set -u

BUILD=${BUILD:-build}
TP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TP_BIN="$TP_ROOT/$BUILD/bin"
tp_tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/turnpolicy-test.XXXXXX")
chmod 700 "$tp_tmpdir"
tp_pids=""
tp_failed=0

tp_cleanup() {
    local p
    for p in $tp_pids; do
        kill "$p" 2>/dev/null
    done
    sleep 0.2
    for p in $tp_pids; do
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "${TP_KEEP_TMP:-0}" = 1 ]; then
        echo "# kept $tp_tmpdir" >&2
    else
        rm -rf "$tp_tmpdir"
    fi
}
trap tp_cleanup EXIT
trap 'exit 130' INT TERM

tp_free_port() {
    /usr/bin/python3 - <<'PY'
import socket, random
for _ in range(200):
    p = random.randint(20000, 45000)
    try:
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        t.bind(("127.0.0.1", p)); u.bind(("127.0.0.1", p))
        t.close(); u.close()
        print(p); break
    except OSError:
        pass
PY
}

tp_bg() {
    local name=$1
    shift
    "$@" >"$tp_tmpdir/$name.out" 2>&1 &
    tp_pids="$tp_pids $!"
    eval "tp_pid_$name=$!"
}

tp_wait_port() {
    local port=$1 secs=${2:-10} i=0
    while [ "$i" -lt $((secs * 20)) ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
        i=$((i + 1))
    done
    return 1
}

ok() {
    echo "ok - $1"
}

not_ok() {
    echo "not ok - $1${2:+ # $2}"
    tp_failed=$((tp_failed + 1))
}

check() {
    local name=$1
    shift
    if "$@" >"$tp_tmpdir/check.out" 2>&1; then
        ok "$name"
    else
        not_ok "$name" "exit $?"
        sed 's/^/#   /' "$tp_tmpdir/check.out" | head -20
    fi
}

check_fails() {
    local name=$1
    shift
    if "$@" >"$tp_tmpdir/check.out" 2>&1; then
        not_ok "$name" "succeeded but must fail"
        sed 's/^/#   /' "$tp_tmpdir/check.out" | head -20
    else
        ok "$name"
    fi
}
