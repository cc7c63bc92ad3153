#!/usr/bin/env bash
# Runs each libFuzzer target for SECONDS, JOBS at a time (make fuzz-run: 15 s
# each, one at a time; make fuzz: 600 s each, one per core). Each entry is
# BINARY:SEED_DIRS (comma-separated, may be empty): the corpus grows in
# BUILD/corpus/NAME, the seeds (real data) are read-only. A finding fails the
# run, prints the log's tail, and leaves the input as BUILD/crash-*.
set -uo pipefail
build=$1 seconds=$2 jobs=$3
shift 3
run_one() {
    local bin=${1%%:*} seeds=${1#*:} n
    n=$(basename "$bin")
    mkdir -p "$build/corpus/$n"
    local args=("$build/corpus/$n") d
    # Seeds: comma-separated directories of real data, then the inputs of
    # past findings (tests/fuzz/regressions/NAME), which run first each time.
    local IFS=,
    for d in $seeds; do [ -d "$d" ] && args+=("$d"); done
    unset IFS
    d=tests/fuzz/regressions/${n#fuzz_}
    [ -d "$d" ] && args+=("$d")
    if ! "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536 -timeout=25 \
        -artifact_prefix="$build/" -print_final_stats=1 "${args[@]}" >"$build/$n.log" 2>&1; then
        echo "fuzz: $n FAILED"; tail -40 "$build/$n.log"; return 1
    fi
    echo "fuzz: $n for $seconds s: $(grep -E '^stat::number_of_executed_units' "$build/$n.log" | awk '{print $2}') executions, no findings"
}
export -f run_one
export build seconds
printf '%s\n' "$@" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {}
