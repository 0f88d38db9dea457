#!/usr/bin/env bash
# Always answering (issue 20): a probe asks `status` every 10 ms, a connection per request,
# while the master (a) spawns N workers from cold, (b) goes from 10 to N with `set_workers N`,
# (c) upgrades N workers; then the round trip of `inc`, `dec` and `set_workers` at N workers.
# Workers are `sleep` with -m 0. Each phase prints the probe's series (answers, latency p50,
# p99 and max, the worst gap between two answers) and the reply time of the command that started
# it (an upgrade is sent at a random point of the probe's 10 ms period, printed as "sent at");
# see tests/bench/status_probe.cc. Then the baseline: phases (a) and (c) again, with the probe
# asking a second master that has N workers and nothing to do (`cold-idle`, `upgr-idle`): what
# the load alone does to the probe. REPS runs of everything (default 1).
# Usage: tests/bench/always_answering.sh [BUILD_DIR] [N]     (default: build-bench, 1000)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release
#                             cmake --build build-bench -j2 --target einhorn-cpp einhornctl einhorn-example-http
set -euo pipefail
BUILD=${1:-build-bench}
N=${2:-1000}
REPS=${REPS:-1}
RESIZES=${RESIZES:-100}
here=$(dirname "$0")
. "$here/lib/common.sh"
bench_init
# N workers, each with its pipes and sockets: raise the limits the master inherits.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
ulimit -u unlimited 2>/dev/null || true
probe=$(build_tool status_probe -pthread)
worker=$(command -v sleep)

for ((rep = 1; rep <= REPS; rep++)); do
  bench_note "rep $rep of $REPS, N=$N"
  launch_master cold -n "$N" -m 0 -- "$worker" 1000000
  wait_socket
  "$probe" cold "$SOCK" "$N"
  stop_master

  start_master set -n 10 -m 0 -- "$worker" 1000000
  "$probe" set "$SOCK" 10 >/dev/null
  "$probe" set "$SOCK" "$N"
  "$probe" upgrade "$SOCK" "$N"
  "$probe" resize "$SOCK" "$N" "$RESIZES"
  stop_master

  # The baseline: the same load (a master spawning N from cold, then upgrading them), but the
  # probe asks another master, one with N workers and nothing to do. Its tail is the machine's.
  start_master idle -n "$N" -m 0 -- "$worker" 1000000
  "$probe" set "$SOCK" "$N" >/dev/null
  idle_sock=$SOCK idle_master=$MASTER
  launch_master busy -n "$N" -m 0 -- "$worker" 1000000
  wait_socket
  "$probe" beside "$idle_sock" "$SOCK" "$N" cold-idle
  "$probe" beside "$idle_sock" "$SOCK" "$N" upgr-idle upgrade
  stop_master
  stop_pid "$idle_master"
done
