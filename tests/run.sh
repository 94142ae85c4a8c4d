#!/bin/bash
# tests/run.sh - run every test and print one summary line:
#     N passed, N failed
#
# Unit tests are the cmocka binaries in $BUILD/tests (TAP output);
# integration tests are tests/integration/*.sh (TAP lines, servers started
# and stopped by each script).  TP_ONLY=unit runs the unit tests alone;
# TP_SUITES="a b" runs the unit tests and only tests/integration/{a,b}.sh.
# Exit status 0 only if something ran and nothing failed.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

tally() { # name, exit code; reads TAP from $log
    local name=$1 rc=$2 p f
    p=$(grep -c '^ok ' "$log")
    f=$(grep -c '^not ok ' "$log")
    grep -E '^(not ok |# )' "$log" | sed "s|^|[$name] |"
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
        echo "[$name] not ok - exited with status $rc"
        tail -20 "$log" | sed "s|^|[$name] # |"
        f=1
    fi
    if [ "$p" -eq 0 ] && [ "$f" -eq 0 ]; then
        echo "[$name] not ok - ran no test"
        f=1
    fi
    echo "$name: $p passed, $f failed"
    passed=$((passed + p))
    failed=$((failed + f))
}

for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 "$t" >"$log" 2>&1
    tally "$name" $?
done

# Every status code must be asserted by at least one cmocka test.
{
    missing=""
    for s in $(grep -oE '^ *X\(TP_E[A-Z0-9]+' policy/include/turnpolicy.h |
               sed 's/.*X(//'); do
        grep -qE "TP_ASSERT_STATUS\(\s*$s\b|err\.status, $s\)" tests/unit/*.c tests/integration/*.c ||
            missing="$missing $s"
    done
    if [ -z "$missing" ]; then
        echo "ok - every status code is produced by a test"
    else
        echo "not ok - status codes no unit test produces:$missing"
    fi
} >"$log"
tally status-coverage 0

if [ "${TP_ONLY:-all}" != unit ]; then
    for t in tests/integration/*.sh; do
        [ -f "$t" ] || continue
        name=$(basename "$t" .sh)
        case " ${TP_SUITES:-$name} " in *" $name "*) ;; *) continue ;; esac
        timeout 900 bash "$t" >"$log" 2>&1
        tally "$name" $?
    done
fi

echo
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
