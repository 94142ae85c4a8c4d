#!/bin/bash
# tests/bench/run.sh - run every benchmark in $BUILD/bench and the scripted
# ones in tests/bench/*.sh.  Each prints its own ratio against a baseline
# measured in the same run.  Not part of `make check`.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export BUILD
rc=0
for b in "$BUILD"/bench/bench_*; do
    [ -x "$b" ] || continue
    echo "== $(basename "$b")"
    "$b" || rc=1
done
for s in tests/bench/*.sh; do
    [ -f "$s" ] || continue
    [ "$(basename "$s")" = run.sh ] && continue
    echo "== $(basename "$s" .sh)"
    bash "$s" || rc=1
done
exit $rc
