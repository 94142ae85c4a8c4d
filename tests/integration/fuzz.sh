#!/bin/bash
# fuzz.sh - a short libFuzzer run of every fuzz target, inside `make check`
# (the long run is `make fuzz`).
#
# The targets are the Makefile's FUZZ_TARGETS (`make fuzz-targets`), each
# built here with clang (`make fuzzers`, objects under $BUILD/fuzz) and run
# for FUZZ_CHECK_SECONDS (default 4) by tests/fuzz/run.sh.  Each run first
# replays every seed of tests/fuzz/corpus_<target>, which holds the
# regress-* inputs of crashes found earlier, then mutates.  A target is
# `ok` only if the run ended by its time limit with no crash, leak,
# timeout or failed harness check, and executed at least a minimum number
# of inputs (more than its seeds: a run that barely started proves
# nothing): 1000, or 20 for peer_export (an export costs milliseconds).
# The working corpus is thrown away with the test's directory; a failing
# input is kept in $BUILD/fuzz/crashes.
# shellcheck disable=SC2154  # tp_tmpdir, tp_failed come from lib.sh
. "$(dirname "$0")/../lib.sh"

cd "$TP_ROOT" || exit 1
if make -s BUILD="$BUILD" fuzzers >"$tp_tmpdir/build.out" 2>&1; then
    ok "fuzz targets build with $(clang --version | head -1 | sed 's/ (.*//')"
else
    not_ok "fuzz targets build" "$(grep -m3 -E 'error|No such' "$tp_tmpdir/build.out")"
    exit 1
fi

targets=$(make -s BUILD="$BUILD" fuzz-targets)
secs=${FUZZ_CHECK_SECONDS:-4}
for t in $targets; do
    min=1000
    [ "$t" = peer_export ] && min=20
    if out=$(FUZZ_WORK="$tp_tmpdir" FUZZ_MIN_EXECS=$min \
             tests/fuzz/run.sh "$t" "$secs"); then
        ok "${out%: ok}"
    else
        not_ok "${out:-fuzz_$t did not run}"
        grep -m1 -A12 -E '^==[0-9]+==ERROR' "$tp_tmpdir/$t.log" |
            sed 's/^/#   /'
    fi
done
exit "$tp_failed"
