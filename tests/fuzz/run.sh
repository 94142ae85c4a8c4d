#!/bin/bash
# tests/fuzz/run.sh - run one libFuzzer target for a fixed time and print
# one summary line; used by `make fuzz` and tests/integration/fuzz.sh.
#
#   tests/fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
#
# TARGET is resp or username ($BUILD/fuzz/fuzz_TARGET, built by
# `make fuzzers`).  Inputs start from tests/fuzz/corpus_TARGET (never
# written) plus the working corpus ${FUZZ_WORK:-$BUILD/fuzz}/corpus_TARGET,
# where new inputs are kept.  A crash, leak or timeout is written to
# $BUILD/fuzz/crashes/TARGET-* and the exit status is non-zero; the full
# log is ${FUZZ_WORK:-$BUILD/fuzz}/TARGET.log.  The summary line:
#   fuzz_TARGET: N execs in S s (R/s), cov C, corpus K: ok
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
target=${1:?target: resp or username}
secs=${2:?seconds}
shift 2
bin=$BUILD/fuzz/fuzz_$target
work=${FUZZ_WORK:-$BUILD/fuzz}
crashes=$BUILD/fuzz/crashes
case $target in
resp) max_len=70000 ;;      # above max_request (65536): the bound is hit
username) max_len=9000 ;;   # above TP_JWT_MAX (8192)
*) echo "run.sh: unknown target $target" >&2; exit 2 ;;
esac
[ -x "$bin" ] || { echo "run.sh: no $bin (make fuzzers)" >&2; exit 2; }
mkdir -p "$work/corpus_$target" "$crashes"
log=$work/$target.log

ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
"$bin" -max_total_time="$secs" -max_len="$max_len" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/$target-" -dict="tests/fuzz/$target.dict" \
    "$@" "$work/corpus_$target" "tests/fuzz/corpus_$target" >"$log" 2>&1
rc=$?

stat() { sed -n "s/^stat::$1: *//p" "$log" | tail -1; }
execs=$(stat number_of_executed_units)
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
rate=$(awk -v n="${execs:-0}" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
    echo "fuzz_$target: ${execs} execs in ${secs} s (${rate}/s), cov ${cov:-?}, corpus ${corp:-?}: ok"
    exit 0
fi
what=$(grep -m1 -E '^==[0-9]+==ERROR|^SUMMARY|deadly signal|ALARM|out-of-memory' "$log")
art=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -1)
echo "fuzz_$target: FAILED (exit $rc) after ${execs:-?} execs: ${what:-see $log}${art:+; input: $art}"
exit 1
