#!/usr/bin/env bash
# Scale benchmark (issue 20, "5000 workers" and "upgrade pacing"): a pool of N tiny workers
# (tiny_worker.cc: no listener, acks on the command socket, -m manual), with the limits raised
# for it. Prints, for N (default 5000):
#   - start to N ready (the Nth "is ready" line in the master's log);
#   - the master's VmRSS and private memory (smaps_rollup Private_Clean + Private_Dirty), in
#     total and per worker, beside the same master with one worker;
#   - `status` and `state` round trips on the command socket (control_rtt: a connection per
#     request, as einhornctl makes) and their reply sizes;
#   - `einhornctl status` and `einhornctl status --json` wall time (fork, exec, connect, parse,
#     render) and output size;
#   - `einhornctl upgrade --wait` with the defaults (smooth; includes the master's re-exec).
# Then the pacing check at PACE_N (default 1000): an upgrade with the defaults beside the time
# to spawn PACE_N fresh workers (the goal: within 2x). REPS repeats the timed parts (median).
# Usage: tests/bench/scale5000.sh [BUILD_DIR] [N]      (BUILD_DIR default build-rel)
#   Knobs: PACE_N (0 skips the pacing check), REPS (default 3), MAX_UNACKED (passed as
#   --max-unacked when set, to compare with the default).
# Needs root (or raised hard limits) for nofile; says so and stops when the kernel's pid_max or
# threads-max is below what N workers need.
set -euo pipefail
BUILD=${1:-build-rel}
N=${2:-5000}
PACE_N=${PACE_N:-1000}
REPS=${REPS:-3}
command -v jq >/dev/null || { echo "scale5000.sh: jq is missing (scripts/install-deps bench)" >&2; exit 1; }
here=$(dirname "$0")
. "$here/lib/common.sh"

# --- limits: each worker is a process; the master keeps no fd per worker unless it relays
# their output (--worker-output) or gives them a channel (-g): ask for one fd and 2 processes
# per worker, with room.
need_fds=$((N + 1024))
need_procs=$((N * 2 + 1024))
pid_max=$(cat /proc/sys/kernel/pid_max)
threads_max=$(cat /proc/sys/kernel/threads-max)
[ "$pid_max" -ge "$need_procs" ] ||
  { echo "scale5000.sh: kernel.pid_max is $pid_max, below the $need_procs pids $N workers need: sysctl -w kernel.pid_max=$((need_procs * 2))" >&2; exit 1; }
[ "$threads_max" -ge "$need_procs" ] ||
  { echo "scale5000.sh: kernel.threads-max is $threads_max, below the $need_procs tasks $N workers need: sysctl -w kernel.threads-max=$((need_procs * 2))" >&2; exit 1; }
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt "$need_fds" ]; then
  ulimit -n "$need_fds" 2>/dev/null ||
    { echo "scale5000.sh: cannot raise the open files limit to $need_fds (hard limit $(ulimit -Hn)): run as root or raise it" >&2; exit 1; }
fi
if [ "$(ulimit -u)" != unlimited ] && [ "$(ulimit -u)" -lt "$need_procs" ]; then
  ulimit -u "$need_procs" 2>/dev/null ||
    { echo "scale5000.sh: cannot raise the process limit to $need_procs (hard limit $(ulimit -Hu))" >&2; exit 1; }
fi

bench_init
tiny=$(build_tool tiny_worker)
probe=$(build_tool spawn_probe)
rtt=$(build_tool control_rtt)
unacked=()
[ -z "${MAX_UNACKED:-}" ] || unacked=(--max-unacked "$MAX_UNACKED")

private_kb() {
  awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s }' "/proc/$1/smaps_rollup"
}
per_worker() { awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { printf "%.1f", (a - b) / n }'; }

# start_pool NAME N: a master with N tiny workers, timed to the Nth "is ready" line; sets T_READY.
start_pool() {
  local t0 done_ts
  t0=$EPOCHREALTIME
  launch_master "$1" -n "$2" -m manual "${unacked[@]}" -- "$tiny" --ack
  done_ts=$("$probe" wait-log "$LOG" "$2" " is ready" "$MASTER" 120) ||
    bench_fail "$1: only ${done_ts#- } of $2 ready"
  T_READY=$(elapsed "$t0" "$done_ts")
  wait_socket
  settle "$2" 600
}

# upgrade_once N: einhornctl upgrade --wait, timed, then settled; sets T_UPGRADE.
upgrade_once() {
  local t0
  t0=$EPOCHREALTIME
  ctl upgrade --wait >"$BENCH_TMP/upgrade.out" 2>&1 ||
    bench_fail "einhornctl upgrade --wait failed: $(tail -3 "$BENCH_TMP/upgrade.out")"
  T_UPGRADE=$(elapsed "$t0")
  settle "$1" 600
}

# --- baseline: one worker, for the per-worker memory.
start_pool scale-1 1
base_rss=$(rss_kb "$MASTER")
base_priv=$(private_kb "$MASTER")
stop_master

# --- N workers.
ready_s=() upgrade_s=()
for ((rep = 0; rep < REPS; rep++)); do
  start_pool "scale-$N-$rep" "$N"
  ready_s+=("$T_READY")
  if [ "$rep" = 0 ]; then
    rss=$(rss_kb "$MASTER")
    priv=$(private_kb "$MASTER")
    row scale "N=$N" "master VmRSS (KiB)" "$rss" "$base_rss with 1 worker" \
      "$(per_worker "$rss" "$base_rss" "$N") KiB per worker"
    row scale "N=$N" "master private memory (KiB)" "$priv" "$base_priv with 1 worker" \
      "$(per_worker "$priv" "$base_priv" "$N") KiB per worker (smaps_rollup Private_*)"
    "$rtt" header >"$BENCH_TMP/rtt.out"
    for verb in status state; do
      "$rtt" rtt "$SOCK" "$N" "$verb" 100 fresh >>"$BENCH_TMP/rtt.out" || bench_fail "control_rtt $verb"
    done
    "$rtt" exec "$N" "einhornctl status" 20 "$ctl" -d "$SOCK" status >>"$BENCH_TMP/rtt.out" ||
      bench_fail "einhornctl status failed"
    "$rtt" exec "$N" "status --json" 20 "$ctl" -d "$SOCK" status --json >>"$BENCH_TMP/rtt.out" ||
      bench_fail "einhornctl status --json failed"
    bench_note "control socket and einhornctl at N=$N:"
    cat "$BENCH_TMP/rtt.out" >&2
    text_b=$(ctl status | wc -c)
    json_b=$(ctl status --json | wc -c)
    row scale "N=$N" "einhornctl status output (bytes)" "$text_b" - "--json: $json_b bytes"
  fi
  upgrade_once "$N"
  upgrade_s+=("$T_UPGRADE")
  stop_master
done
row scale "N=$N" "start to N ready (s)" "$(summary %.3f "${ready_s[@]}")" - "-m manual, tiny_worker --ack"
row scale "N=$N" "einhornctl upgrade --wait (s)" "$(summary %.3f "${upgrade_s[@]}")" - \
  "smooth, --max-unacked ${MAX_UNACKED:-default}; includes the master's re-exec"

# --- pacing: an upgrade of PACE_N beside PACE_N fresh spawns.
if [ "$PACE_N" -gt 0 ]; then
  ready_s=() upgrade_s=()
  for ((rep = 0; rep < REPS; rep++)); do
    start_pool "pace-$PACE_N-$rep" "$PACE_N"
    ready_s+=("$T_READY")
    upgrade_once "$PACE_N"
    upgrade_s+=("$T_UPGRADE")
    stop_master
  done
  row pacing "N=$PACE_N" "einhornctl upgrade --wait (s)" "$(summary %.3f "${upgrade_s[@]}")" \
    "$(summary %.3f "${ready_s[@]}") to spawn N fresh" "--max-unacked ${MAX_UNACKED:-default}; goal: within 2x of the fresh spawn"
fi
echo
echo "control socket and einhornctl at N=$N (control_rtt; a connection per request):"
cat "$BENCH_TMP/rtt.out"
echo
print_table
