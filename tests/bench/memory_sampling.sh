#!/usr/bin/env bash
# Memory sampling cost: the master's CPU (utime + stime from /proc/PID/stat) over a window with
# N idle workers (`sleep`, -m 0: the cost of reading a process's statm does not depend on its
# size), without --max-worker-memory (no sampling) and
# with a limit no worker reaches (sampling every --memory-interval, default 5 s), RSS and PSS.
# Goal: sampling 1,000 workers at the default interval costs <= 0.5 % of one core.
# Usage: tests/bench/memory_sampling.sh [BUILD_DIR] [N]     (default: build-rel, 1000)
# Knobs: WINDOW (seconds, default 60), INTERVAL (default 5), REPS (default 1).
# Build a release tree first: cmake -S . -B build-rel -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#                             cmake --build build-rel -j2 --target einhorn-cpp einhornctl einhorn-example-http
set -euo pipefail
BUILD=${1:-build-rel}
N=${2:-1000}
WINDOW=${WINDOW:-60}
INTERVAL=${INTERVAL:-5}
REPS=${REPS:-1}
command -v jq >/dev/null || { echo "memory_sampling.sh: jq is missing" >&2; exit 1; }
here=$(dirname "$0")
. "$here/lib/common.sh"
bench_init
hz=$(getconf CLK_TCK)

# measure NAME FLAG...: the master's CPU % of one core over WINDOW once N workers are ready.
measure() {
  local name=$1
  shift
  start_master "$name" -n "$N" -m 0 "$@" -- /bin/sleep 1000000
  settle "$N" 900
  sleep 2  # the settling's own work (status polls) out of the window
  local t0 c0 c1
  t0=$EPOCHREALTIME
  c0=$(cpu_ticks "$MASTER")
  sleep "$WINDOW"
  c1=$(cpu_ticks "$MASTER")
  local secs
  secs=$(elapsed "$t0")
  stop_master
  awk -v d=$((c1 - c0)) -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.3f", d / hz / s * 100 }'
}

declare -a off rss pss
for ((rep = 0; rep < REPS; rep++)); do
  off+=("$(measure "off-$rep")")
  rss+=("$(measure "rss-$rep" --max-worker-memory 1T --memory-interval "$INTERVAL")")
  pss+=("$(measure "pss-$rep" --max-worker-memory 1T --memory-interval "$INTERVAL" \
    --memory-measure pss)")
done
row memory-sampling "N=$N, no limit" "master CPU % of a core over ${WINDOW}s" \
  "$(summary %.3f "${off[@]}")"
row memory-sampling "N=$N, rss every ${INTERVAL}s" "master CPU % of a core over ${WINDOW}s" \
  "$(summary %.3f "${rss[@]}")" "$(summary %.3f "${off[@]}")" "goal: <= 0.5 above no limit"
row memory-sampling "N=$N, pss every ${INTERVAL}s" "master CPU % of a core over ${WINDOW}s" \
  "$(summary %.3f "${pss[@]}")" "$(summary %.3f "${off[@]}")"
print_table
