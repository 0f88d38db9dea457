#!/usr/bin/env bash
# Worker output benchmark (--worker-output, issue 17 §2): 8 chatty workers each write lines as
# fast as they can (`yes` with a 60-byte line: the writer is never the bottleneck), and the
# master relays them. For each mode, prints the lines per second that reach the master's stderr
# (a file), the master's CPU and peak RSS, and the `status` round trip (min, p50, p99, max) on a
# fresh connection per request while the workers write. `inherit` is the floor: the workers
# write to the file themselves and the master does nothing.
# Usage: tests/bench/worker_output.sh [BUILD_DIR] [MODE...]  (default: build-bench, inherit prefix json)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#                             cmake --build build-bench -j2 --target einhorn-cpp
# Knobs (environment): WORKERS (default 8), SECONDS_EACH (default 5), SAMPLES (default 500).
# Prints figures only; it asserts nothing.
set -euo pipefail
build=${1:-build-bench}
shift || true
modes=("$@")
[ ${#modes[@]} -gt 0 ] || modes=(inherit prefix json)
workers=${WORKERS:-8}
seconds=${SECONDS_EACH:-5}
samples=${SAMPLES:-500}
bin="$build/einhorn-cpp"
[ -x "$bin" ] || { echo "build $bin first (see the header of this script)"; exit 1; }

tmp=$(mktemp -d)
master=
stop_master() {
  [ -n "$master" ] || return 0
  kill -TERM "$master" 2>/dev/null || true
  wait "$master" 2>/dev/null || true
  master=
}
trap 'stop_master; rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

rtt="$tmp/control_rtt"
g++ -O2 -std=c++20 -Wall -Wextra -o "$rtt" "$(dirname "$0")/control_rtt.cc"

line="GET /api/v1/items?page=3 200 1.8ms user=42 req=9f8e7d6c5b4a"  # 60 bytes
lines_in() { wc -l < "$1"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

printf '%-8s %12s %10s %12s\n' mode lines/s master_cpu peak_rss
results=()
for mode in "${modes[@]}"; do
  sock="$tmp/sock-$mode"
  out="$tmp/out-$mode"
  TMPDIR="$tmp" "$bin" -d "$sock" -n "$workers" -m 0 --worker-output "$mode" -- \
    yes "$line" >"$out" 2>&1 &
  master=$!
  until [ -S "$sock" ]; do
    kill -0 "$master" 2>/dev/null || { echo "master died"; cat "$out"; exit 1; }
    sleep 0.01
  done
  "$rtt" wait "$sock" "$workers" >/dev/null
  sleep 1  # past the start
  l0=$(lines_in "$out")
  c0=$(cpu_ticks "$master")
  t0=$(date +%s.%N)
  peak=0
  end=$(( $(date +%s) + seconds ))
  while [ "$(date +%s)" -lt "$end" ]; do
    r=$(rss_kib "$master"); [ "$r" -gt "$peak" ] && peak=$r
    sleep 0.2
  done
  l1=$(lines_in "$out")
  c1=$(cpu_ticks "$master")
  t1=$(date +%s.%N)
  # The round trips run while the workers still write.
  rtts=$("$rtt" rtt "$sock" "$workers" status "$samples" fresh | tail -1)
  hz=$(getconf CLK_TCK)
  awk -v m="$mode" -v l="$((l1 - l0))" -v t0="$t0" -v t1="$t1" -v c="$((c1 - c0))" -v hz="$hz" \
      -v rss="$peak" \
      'BEGIN { d = t1 - t0; printf "%-8s %12.0f %9.0f%% %8d KiB\n", m, l / d, 100 * c / hz / d, rss }'
  results+=("$mode: $rtts")
  stop_master
  rm -f "$out"
done
echo
echo "status while the workers write (control_rtt, a fresh connection per request):"
"$rtt" header
printf '%s\n' "${results[@]}"
