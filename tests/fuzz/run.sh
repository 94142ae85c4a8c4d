#!/bin/bash
# tests/fuzz/run.sh - run one libFuzzer target for a fixed time and print
# one summary line; used by `make fuzz` and tests/integration/fuzz.sh.
#
#   tests/fuzz/run.sh TARGET SECONDS [libFuzzer flags...]
#
# TARGET is one of the Makefile's FUZZ_TARGETS ($BUILD/fuzz/fuzz_TARGET,
# built by `make fuzzers`).  Inputs start from the seeds in
# tests/fuzz/corpus_TARGET (only read; every file there, including the
# regress-* inputs of crashes found earlier, runs first) plus the working
# corpus ${FUZZ_WORK:-$BUILD/fuzz}/corpus_TARGET, where new inputs are
# kept.  tests/fuzz/TARGET.dict is used when it exists.
#
# Environment:
#   FUZZ_JOBS=N       N worker processes (libFuzzer -fork=N) instead of one
#   FUZZ_MIN_EXECS=N  fail unless at least N inputs were executed (a run
#                     that barely started proves nothing)
#
# A crash, leak, timeout or failed check is written to
# $BUILD/fuzz/crashes/TARGET-* and the exit status is 1; the full log is
# ${FUZZ_WORK:-$BUILD/fuzz}/TARGET.log.  The summary line:
#   fuzz_TARGET: N execs in S s (R/s), cov C, corpus K, crashes 0: ok
set -u
cd "$(dirname "$0")/../.." || exit 1
BUILD=${BUILD:-build}
target=${1:?target: one of the Makefile FUZZ_TARGETS}
secs=${2:?seconds}
shift 2
bin=$BUILD/fuzz/fuzz_$target
work=${FUZZ_WORK:-$BUILD/fuzz}
crashes=$BUILD/fuzz/crashes
jobs=${FUZZ_JOBS:-1}
min_execs=${FUZZ_MIN_EXECS:-1}
seeds=tests/fuzz/corpus_$target
# Longer inputs only repeat work: each target's bound is just above the
# longest input its code treats differently.
max_len=4096
case $target in
resp) max_len=70000 ;;      # above max_request (65536): the bound is hit
username|jwt) max_len=9000 ;;   # above TP_JWT_MAX (8192)
config) max_len=8192 ;;     # lines above CONFIG_LINE_MAX (4096)
host) max_len=1100 ;;       # a rule above TP__RULE_MAX (1024)
peer) max_len=1024 ;;       # 16 rules and 16 addresses of ~30 bytes
peer_export) max_len=1024; seeds=tests/fuzz/corpus_peer ;;
statsdb) max_len=1024 ;;    # a few report lines (each key <= ~700 bytes)
uri) max_len=9000 ;;        # a token segment above TP_JWT_MAX
esac
dict=tests/fuzz/${target%_export}.dict
[ -x "$bin" ] || { echo "run.sh: no $bin (make fuzzers)" >&2; exit 2; }
[ -d "$seeds" ] || { echo "run.sh: no seed corpus $seeds" >&2; exit 2; }
mkdir -p "$work/corpus_$target" "$crashes"
log=$work/$target.log
flags=(-max_total_time="$secs" -max_len="$max_len" -timeout=10
       -rss_limit_mb=2048 -print_final_stats=1
       -artifact_prefix="$crashes/$target-")
[ -f "$dict" ] && flags+=(-dict="$dict")
[ "$jobs" -gt 1 ] && flags+=(-fork="$jobs")

start=$(date +%s.%N)
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1} \
"$bin" "${flags[@]}" "$@" "$work/corpus_$target" "$seeds" >"$log" 2>&1
rc=$?
took=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }')

# Executions: the final stats of a single process; with -fork the
# parent's last status line ("#N ..." counts every worker's inputs).
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
last=$(grep -E '^#[0-9]+' "$log" | tail -1)
[ "$jobs" -gt 1 ] || [ -z "$execs" ] &&
    execs=$(echo "$last" | sed -n 's/^#\([0-9]*\).*/\1/p')
cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
corp=$(echo "$last" | sed -n 's/.* corp: \([0-9]*\).*/\1/p')
[ "$took" -gt 0 ] || took=1
rate=$(awk -v n="${execs:-0}" -v s="$took" 'BEGIN { printf "%.0f", n / s }')
# Every crash, leak, timeout or failed check leaves one artifact.
ncrash=$(grep -c 'Test unit written to' "$log")
head="fuzz_$target: ${execs:-0} execs in ${took} s (${rate}/s), cov ${cov:-?}, corpus ${corp:-?}"
if [ "$rc" -eq 0 ] && [ -n "$execs" ] && [ "$ncrash" -eq 0 ]; then
    if [ "$execs" -lt "$min_execs" ]; then
        echo "$head, crashes 0: FAILED (fewer than $min_execs execs)"
        exit 1
    fi
    echo "$head, crashes 0: ok"
    exit 0
fi
[ "$ncrash" -gt 0 ] || ncrash=1
what=$(grep -m1 -E '^==[0-9]+== ?ERROR|^SUMMARY|deadly signal|ALARM|out-of-memory' "$log")
art=$(sed -n 's/.*Test unit written to \(.*\)/\1/p' "$log" | tail -1)
echo "$head, crashes $ncrash: FAILED (exit $rc): ${what:-see $log}${art:+; input: $art}"
exit 1
