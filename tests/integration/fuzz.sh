#!/bin/bash
# fuzz.sh - a short libFuzzer run of each fuzz target, inside `make check`
# (the long run is `make fuzz`).
#
#   fuzz_resp      turnpolicyd's request parser, command dispatcher and
#                  statsdb report parser, ~20 s, inputs up to 70000 bytes
#   fuzz_username  the library's username, long-term key and JWT checks,
#                  ~10 s
#
# Built here with clang (`make fuzzers`, objects under $BUILD/fuzz); the
# working corpus is thrown away with the test's directory, the seeds in
# tests/fuzz/corpus_* are only read.  A crash, leak, timeout or failed
# check is `not ok`, with the input kept in $BUILD/fuzz/crashes.
# FUZZ_RESP_SECONDS / FUZZ_USERNAME_SECONDS override the durations.
# shellcheck disable=SC2154  # tp_tmpdir, tp_failed come from lib.sh
. "$(dirname "$0")/../lib.sh"

cd "$TP_ROOT" || exit 1
if make -s BUILD="$BUILD" fuzzers >"$tp_tmpdir/build.out" 2>&1; then
    ok "fuzz targets build with $(clang --version | head -1 | sed 's/ (.*//')"
else
    not_ok "fuzz targets build" "$(grep -m3 -E 'error|No such' "$tp_tmpdir/build.out")"
    exit 1
fi

run() { # TARGET SECONDS
    local out
    if out=$(FUZZ_WORK="$tp_tmpdir" tests/fuzz/run.sh "$1" "$2"); then
        ok "${out%: ok}"
    else
        not_ok "${out:-fuzz_$1 did not run}"
        grep -m1 -A12 -E '^==[0-9]+==ERROR' "$tp_tmpdir/$1.log" |
            sed 's/^/#   /'
    fi
}
run resp "${FUZZ_RESP_SECONDS:-20}"
run username "${FUZZ_USERNAME_SECONDS:-10}"
exit "$tp_failed"
