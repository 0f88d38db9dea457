#!/usr/bin/env bash
# A start under a flood of connections (issue 20): the time until the master has N children
# (`sleep` workers, -m 0) while a peer connects to its command socket and closes without pause,
# beside the same start without the flood. REPS runs of both (default 3).
# Usage: tests/bench/flood_start.sh [BUILD_DIR] [N]     (default: build-bench, 300)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
#                             cmake --build build-bench -j2 --target einhorn-cpp einhornctl einhorn-example-http
set -euo pipefail
BUILD=${1:-build-bench}
N=${2:-300}
REPS=${REPS:-3}
here=$(dirname "$0")
. "$here/lib/common.sh"
bench_init
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
flood=$(build_tool connect_flood -pthread)
worker=$(command -v sleep)

for ((rep = 1; rep <= REPS; rep++)); do
  bench_note "rep $rep of $REPS, N=$N"
  launch_master flood -n "$N" -m 0 -- "$worker" 1000000
  wait_socket
  "$flood" "$SOCK" "$MASTER" "$N"
  stop_master

  launch_master quiet -n "$N" -m 0 -- "$worker" 1000000
  wait_socket
  "$flood" "$SOCK" "$MASTER" "$N" alone
  stop_master
done
