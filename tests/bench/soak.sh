#!/usr/bin/env bash
# Soak: DURATION seconds (default 600) of random pool changes against one master running
# einhorn-example-http workers (-m manual --ack, on 127.0.0.1:0). Every ~0.5 s one action:
# `status` (40 %), `set K` with K random in 1..SOAK_MAX (20 %), SIGKILL of a random worker
# (15 %), `upgrade` (15 %, without --wait: a new one supersedes one in flight), `reload` (10 %).
# Meanwhile it samples, every second, the master's children for zombies (state Z), and every
# 10 s the master's VmRSS and open fds (/proc/PID/fd). At the end it sets the pool back to
# SOAK_N, waits for it to settle (so the last sample is comparable with the first), sends the
# master SIGTERM and checks that every worker pid it ever saw is gone (no orphan).
# Prints the series, first/last/max, the actions' counts and exit codes, and the findings; it
# exits non-zero only when it cannot run (the master dies, a tool is missing).
# Usage: tests/bench/soak.sh [DURATION]     (BUILD, default build-bench: run tests/bench/run.sh
#        once first, or build einhorn-cpp einhornctl einhorn-example-http there in Release)
# Knobs: SOAK_N (default 4), SOAK_MAX (default 12), SEED (for $RANDOM, default: the pid).
set -euo pipefail
cd "$(dirname "$0")/../.."
duration=${1:-600}
[[ $duration =~ ^[1-9][0-9]*$ ]] || { echo "soak.sh: DURATION must be whole seconds" >&2; exit 2; }
BUILD=${BUILD:-build-bench}
base_n=${SOAK_N:-4}
max_n=${SOAK_MAX:-12}
RANDOM=${SEED:-$$}
command -v jq >/dev/null || { echo "soak.sh: jq is missing (scripts/install-deps bench)" >&2; exit 1; }
. tests/bench/lib/common.sh
bench_init

# children PID: the pids of PID's children (every thread's list: the master has one thread).
children() { cat /proc/"$1"/task/*/children 2>/dev/null | tr ' ' '\n' | grep . || true; }

# sampler MASTER: one line per second to $BENCH_TMP/zombies ("T pid pid..." of Z children,
# possibly none) and every 10 s one to $BENCH_TMP/samples ("T rss_kb fds children"); also
# appends every child pid seen to $BENCH_TMP/seen.
sampler() {
  local m=$1 start=$EPOCHREALTIME t k=0 c z
  set +e # a read racing with the master's exit must not end the sampling
  while kill -0 "$m" 2>/dev/null; do
    t=$(elapsed "$start")
    z=()
    c=0
    for pid in $(children "$m"); do
      c=$((c + 1))
      echo "$pid" >>"$BENCH_TMP/seen"
      [ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" = Z ] && z+=("$pid")
    done
    echo "$t ${z[*]:-}" >>"$BENCH_TMP/zombies"
    if ((k % 10 == 0)); then
      echo "$t $(rss_kb "$m") $(ls "/proc/$m/fd" | wc -l) $c" >>"$BENCH_TMP/samples"
    fi
    k=$((k + 1))
    sleep "$(awk -v s="$start" -v k="$k" -v now="$EPOCHREALTIME" \
      'BEGIN { d = s + k - now; printf "%.3f", (d > 0 ? d : 0) }')"
  done
}

declare -A done_count=() failed_count=()
act() {
  local name=$1
  shift
  if "$@" >>"$BENCH_TMP/actions.log" 2>&1; then
    done_count[$name]=$((${done_count[$name]:-0} + 1))
  else
    failed_count[$name]=$((${failed_count[$name]:-0} + 1))
    echo "$(date +%T) $name -> exit $?" >>"$BENCH_TMP/actions.log"
  fi
}

kill_random_worker() {
  local pids pid
  mapfile -t pids < <(ctl status --json | jq -r '.workers[].pid')
  [ ${#pids[@]} -gt 0 ] || return 1
  pid=${pids[RANDOM % ${#pids[@]}]}
  # Only a child of this master: the pid may have been reused since the status.
  [ "$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)" = "$MASTER" ] || return 1
  kill -KILL "$pid"
}

start_master soak -n "$base_n" -m manual -b 127.0.0.1:0 -- "$http_worker" --ack
settle "$base_n" 120
: >"$BENCH_TMP/seen"
sampler "$MASTER" &
sampler_pid=$!
bench_track "$sampler_pid"
bench_note "soak: $duration s, pool $base_n (resized within 1..$max_n), master $MASTER"

end=$((SECONDS + duration))
while [ $SECONDS -lt $end ]; do
  kill -0 "$MASTER" 2>/dev/null || bench_fail "the master died during the soak"
  r=$((RANDOM % 100))
  if ((r < 40)); then
    act status ctl status
  elif ((r < 60)); then
    act set ctl set "$((1 + RANDOM % max_n))"
  elif ((r < 75)); then
    act kill kill_random_worker
  elif ((r < 90)); then
    act upgrade ctl upgrade
  else
    act reload ctl reload
  fi
  sleep 0.5
done

bench_note "soak: settling back to $base_n"
act final-set ctl set "$base_n" --wait --timeout 300
settle "$base_n" 300
sleep 11 # one more sample of the settled pool
mapfile -t last_workers < <(ctl status --json | jq -r '.workers[].pid')
stop_master
stop_pid "$sampler_pid"

# Orphans: a pid seen as a child of the master that is still running the worker binary.
orphans=()
for pid in $(sort -un "$BENCH_TMP/seen") "${last_workers[@]}"; do
  [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" = "$http_worker" ] && orphans+=("$pid")
done

echo "== soak: $duration s, $(nproc) CPUs, pool $base_n resized within 1..$max_n, SEED=${SEED:-$$}"
echo "command: BUILD=$BUILD tests/bench/soak.sh $duration"
echo
echo "time_s  rss_kb  fds  children"
awk '{ printf "%6.0f %7d %4d %9d\n", $1, $2, $3, $4 }' "$BENCH_TMP/samples"
awk '
  NR == 1 { fr = $2; ff = $3 }
  { lr = $2; lf = $3; if ($2 > mr) mr = $2; if ($3 > mf) mf = $3 }
  END {
    printf "rss_kb: first %d, last %d, max %d\n", fr, lr, mr
    printf "fds:    first %d, last %d, max %d\n", ff, lf, mf
  }' "$BENCH_TMP/samples"
echo
echo "actions (done / refused or failed):"
for a in status set kill upgrade reload final-set; do
  printf '  %-9s %5d / %d\n' "$a" "${done_count[$a]:-0}" "${failed_count[$a]:-0}"
done
echo "  (kill counts a worker that had already gone as failed; see $BENCH_TMP/actions.log with BENCH_KEEP=1)"
echo
# A zombie is normal for the instant between a child's exit and the master's waitpid; one
# that is still there a second later, at the next check, was not reaped.
awk '
  { n = 0; split("", now); for (i = 2; i <= NF; i++) { now[$i] = 1; n++ } }
  n > maxz { maxz = n }
  { for (p in now) if (p in prev) stuck[p] = 1; split("", prev); for (p in now) prev[p] = 1 }
  END {
    s = 0; for (p in stuck) s++
    printf "zombies: at most %d at one check; %d seen in two consecutive checks (1 s apart)\n",
      maxz + 0, s
  }' "$BENCH_TMP/zombies"
echo "workers seen: $(sort -un "$BENCH_TMP/seen" | wc -l); still running after the master's SIGTERM: ${#orphans[@]} ${orphans[*]:-}"
