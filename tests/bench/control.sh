#!/usr/bin/env bash
# Control benchmark: round-trip latency of the command socket (-d) with N workers, as min, p50,
# p99 and max. `status` and `ehlo` (the cheapest verb: the floor of a round trip) on one kept
# connection and with a connection per request (what einhornctl does); `inc` then `dec` on one
# connection (the pool grows by COUNT then comes back); and the wall time of a whole
# `einhornctl status` (fork+exec, connect, parse, render) as a shell would run it.
# Usage: tests/bench/control.sh [BUILD_DIR] [N...]     (default: build-bench, 100 1000)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#                             cmake --build build-bench -j2
# Knobs (environment): SAMPLES (status/ehlo, default 500), INCS (default 200), CTL_RUNS (default 50).
set -euo pipefail
build=${1:-build-bench}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100 1000)
samples=${SAMPLES:-500}
incs=${INCS:-200}
ctl_runs=${CTL_RUNS:-50}
bin="$build/einhorn-cpp"
ctl="$build/einhornctl"
for b in "$bin" "$ctl"; do
  [ -x "$b" ] || { echo "build $b first (see the header of this script)"; exit 1; }
done
worker=$(command -v sleep)

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

# Plain g++, not CMake: the program needs nothing beyond libc and the standard library.
rtt="$tmp/control_rtt"
g++ -O2 -std=c++20 -Wall -Wextra -o "$rtt" "$(dirname "$0")/control_rtt.cc"

"$rtt" header
for n in "${counts[@]}"; do
  sock="$tmp/sock"
  TMPDIR="$tmp" "$bin" -d "$sock" -n "$n" -m 0 -- "$worker" 1000000 2>"$tmp/log-$n" &
  master=$!
  until [ -S "$sock" ]; do
    kill -0 "$master" 2>/dev/null || { echo "master died"; cat "$tmp/log-$n"; exit 1; }
    sleep 0.01
  done
  "$rtt" wait "$sock" "$n"

  for conn in keep fresh; do
    "$rtt" rtt "$sock" "$n" ehlo "$samples" "$conn"
    "$rtt" rtt "$sock" "$n" status "$samples" "$conn"
  done
  "$rtt" exec "$n" "einhornctl status" "$ctl_runs" "$ctl" -d "$sock" status
  # Last: inc spawns workers and dec drains them, so the pool is no longer N afterwards.
  "$rtt" incdec "$sock" "$n" "$incs" keep

  stop_master
  rm -f "$sock"
done
