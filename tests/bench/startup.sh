#!/usr/bin/env bash
# Start-up benchmark: time from exec of einhorn-cpp until N workers are acked with -m 0, the
# master's RSS with N workers, and the floor: a bare fork+exec loop of the same worker.
# Usage: tests/bench/startup.sh [BUILD_DIR] [N...]     (default: build-bench, 100 500)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#                             cmake --build build-bench -j2
set -euo pipefail
build=${1:-build-bench}
shift || true
counts=("${@:-100}")
[ ${#counts[@]} -gt 0 ] || counts=(100 500)
bin="$build/einhorn-cpp"
[ -x "$bin" ] || { echo "build $bin first (see the header of this script)"; exit 1; }
worker=$(command -v sleep)

now_ns() { date +%s%N; }

for n in "${counts[@]}"; do
  tmp=$(mktemp -d)
  log="$tmp/log"
  start=$(now_ns)
  TMPDIR="$tmp" "$bin" -n "$n" -m 0 -- "$worker" 3600 2>"$log" &
  master=$!
  until [ "$(grep -c 'is ready' "$log" 2>/dev/null)" -ge "$n" ]; do
    kill -0 "$master" 2>/dev/null || { echo "master died"; cat "$log"; exit 1; }
    sleep 0.005
  done
  end=$(now_ns)
  rss=$(awk '/VmRSS/{print $2}' "/proc/$master/status")
  kill -TERM "$master"
  wait "$master" || true

  # The floor: the same number of fork+execs of the same worker from a shell loop, each
  # started in the background as the master does, timed to the last spawn.
  fstart=$(now_ns)
  pids=()
  for ((i = 0; i < n; i++)); do "$worker" 3600 & pids+=($!); done
  fend=$(now_ns)
  kill "${pids[@]}" 2>/dev/null || true
  wait 2>/dev/null || true

  awk -v n="$n" -v a="$((end - start))" -v f="$((fend - fstart))" -v r="$rss" 'BEGIN {
    printf "workers=%d  acked_in=%.3fs  floor(bash fork+exec loop)=%.3fs  master_rss=%.1fMB\n",
      n, a / 1e9, f / 1e9, r / 1024 }'
  rm -rf "$tmp"
done
