#!/bin/bash
# tests/bench/run.sh - run every benchmark in $BUILD/bench and the scripted
# ones in tests/bench/*.sh (nginx.sh: the nginx module; store.sh: the
# policy store and SQL issuing; turnpolicyd.sh: turnpolicyd and coturn;
# scale.sh: memory, CPU per change and revocation latency at up to
# SCALE_USERS users, about 10-15 minutes).
# Each prints its own ratio against a baseline measured in the same run.
# Not part of `make check`.
#
#   tests/bench/run.sh [NAME...]   only these (bench_jwt, nginx, store, ...)
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
export BUILD
rc=0
ran=0
# wanted NAME: true when no names were given or NAME is one of them
wanted() {
    local n
    [ "$#" -gt 1 ] || return 0
    for n in "${@:2}"; do
        [ "$n" = "$1" ] && return 0
    done
    return 1
}
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    wanted "$(basename "$b")" "$@" || continue
    echo "== $(basename "$b")"
    ran=$((ran + 1))
    "$b" || rc=1
done
for s in tests/bench/*.sh; do
    [ -f "$s" ] || continue
    [ "$(basename "$s")" = run.sh ] && continue
    wanted "$(basename "$s" .sh)" "$@" || continue
    echo "== $(basename "$s" .sh)"
    ran=$((ran + 1))
    bash "$s" || rc=1
done
if [ "$ran" = 0 ]; then
    echo "run.sh: no benchmark ran (names: ${*:-all}; $BUILD/bench built?)" >&2
    rc=1
fi
exit $rc
