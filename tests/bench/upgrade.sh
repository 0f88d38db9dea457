#!/usr/bin/env bash
# Upgrade benchmark, with the example HTTP worker acking as soon as it listens (-m manual,
# einhorn-example-http --ack, EINHORN_EXAMPLE_QUIET=1):
#  1. For each N: the wall time of `einhornctl upgrade --wait` (smooth) and of
#     `upgrade --fleet --wait` on a pool of N ready workers, REPS runs each, as min, median and
#     max; the smooth one with the default --max-unacked (the number of CPUs) and again with
#     --max-unacked 8 and N, to show the budget's effect. Each run starts with N ready, none
#     booting and none draining.
#  2. Under load, with LOAD_N workers: CLIENTS threads send GET / to the pool (one request per
#     connection, 2 s deadline, see upgrade_load.cc) during UPGRADES back-to-back
#     `einhornctl upgrade --wait`, then for as long again without upgrades (the baseline):
#     requests, failures by kind, p50/p99/max latency.
#  3. Under the same load: RELOADS back-to-back `einhornctl reload` (the master re-execs
#     itself, workers untouched), each timed until `status` shows the new image.
# Every upgrade must exit 0. Figures only, no assertion on speed.
# Usage: tests/bench/upgrade.sh [BUILD_DIR] [N...]     (default: build-bench, 10 100)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#                             cmake --build build-bench -j2
# Knobs (environment): REPS (default 5), BUDGETS (--max-unacked rows, default "8 N"),
# UPGRADES (default 20), RELOADS (default 20), LOAD_N (default 4), CLIENTS (default 4), KEEP_LOGS=DIR (copy the
# masters' logs there).
set -euo pipefail
build=${1:-build-bench}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(10 100)
reps=${REPS:-5}
budgets=${BUDGETS:-8 N}
upgrades=${UPGRADES:-20}
reloads=${RELOADS:-20}
load_n=${LOAD_N:-4}
clients=${CLIENTS:-4}
keep_logs=${KEEP_LOGS:-}
bin="$build/einhorn-cpp"
ctl="$build/einhornctl"
worker="$build/einhorn-example-http"
for b in "$bin" "$ctl" "$worker"; do
  [ -x "$b" ] || { echo "build $b first (see the header of this script)"; exit 1; }
done
command -v jq >/dev/null || { echo "jq is needed to read einhornctl status --json"; exit 1; }
# Absolute: the master resolves a relative command against its own directory anyway.
worker=$(realpath "$worker")

tmp=$(mktemp -d)
master=
load_pid=
sock=
log=
stop_master() {
  [ -n "$master" ] || return 0
  kill -TERM "$master" 2>/dev/null || true
  wait "$master" 2>/dev/null || true
  master=
  if [ -n "$keep_logs" ] && [ -n "$log" ] && [ -f "$log" ]; then
    mkdir -p "$keep_logs" && cp "$log" "$keep_logs/"
  fi
}
cleanup() {
  if [ -n "$load_pid" ]; then
    kill -TERM "$load_pid" 2>/dev/null || true
    wait "$load_pid" 2>/dev/null || true
  fi
  stop_master
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "$*" >&2
  [ -n "$log" ] && [ -f "$log" ] && { echo "--- last lines of $log:" >&2; tail -20 "$log" >&2; }
  exit 1
}

# start_master NAME N [FLAG...]: a pool of N example workers on 127.0.0.1:<any port>.
start_master() {
  local name=$1 n=$2
  shift 2
  sock="$tmp/$name.sock"
  log="$tmp/$name.log"
  TMPDIR="$tmp" EINHORN_EXAMPLE_QUIET=1 "$bin" -d "$sock" -n "$n" -m manual \
    -b 127.0.0.1:0 "$@" -- "$worker" --ack 2>"$log" &
  master=$!
  until [ -S "$sock" ]; do
    kill -0 "$master" 2>/dev/null || fail "master died"
    sleep 0.01
  done
}

# settle N: until N ready, none booting, none draining (polls every 20 ms, up to 120 s).
settle() {
  local n=$1 deadline=$((SECONDS + 120)) got=
  while :; do
    got=$("$ctl" -d "$sock" status --json |
      jq -r '"\(.counts.ready) \(.counts.booting) \(.counts.draining)"') || fail "status failed"
    [ "$got" = "$n 0 0" ] && return 0
    [ $SECONDS -lt $deadline ] || fail "pool not settled after 120 s: ready booting draining = $got"
    sleep 0.02
  done
}

# upgrade_once [--fleet]: one `einhornctl upgrade --wait`, exit 0 required; appends its wall
# time in seconds to $times.
upgrade_once() {
  local t0 t1
  t0=$EPOCHREALTIME
  "$ctl" -d "$sock" upgrade "$@" --wait >"$tmp/ctl.out" 2>"$tmp/ctl.err" ||
    fail "einhornctl upgrade $* --wait exited $?: $(cat "$tmp/ctl.err")"
  t1=$EPOCHREALTIME
  times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')")
}

# row N WHAT: min/median/max of $times.
row() {
  printf '%s\n' "${times[@]}" | sort -g | awk -v n="$1" -v what="$2" '
    { t[NR] = $1 }
    END {
      med = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
      printf "%-8d %-28s %4d %9.3f %9.3f %9.3f\n", n, what, NR, t[1], med, t[NR] }'
}

# Plain g++, not CMake: the program needs nothing beyond libc and the standard library.
load="$tmp/upgrade_load"
g++ -O2 -std=c++20 -Wall -Wextra -pthread -o "$load" "$(dirname "$0")/upgrade_load.cc"

cpus=$(nproc)
echo "== 1. wall time of einhornctl upgrade --wait, N fast-acking workers, $reps runs each (s)"
printf '%-8s %-28s %4s %9s %9s %9s\n' workers upgrade runs min median max
for n in "${counts[@]}"; do
  start_master "n$n-default" "$n"
  settle "$n"
  times=()
  for ((i = 0; i < reps; i++)); do upgrade_once; settle "$n"; done
  row "$n" "smooth, max-unacked $cpus (dflt)"
  times=()
  for ((i = 0; i < reps; i++)); do upgrade_once --fleet; settle "$n"; done
  row "$n" "fleet"
  stop_master

  seen=" $cpus "
  for b in $budgets; do
    [ "$b" = N ] && b=$n
    case "$seen" in *" $b "*) continue ;; esac
    seen+="$b "
    start_master "n$n-unacked$b" "$n" --max-unacked "$b"
    settle "$n"
    times=()
    for ((i = 0; i < reps; i++)); do upgrade_once; settle "$n"; done
    row "$n" "smooth, max-unacked $b"
    stop_master
  done
done

echo
echo "== 2. $clients clients, GET / one request per connection, 2 s deadline, $load_n workers"
start_master "load" "$load_n"
port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$log" | head -1)
[ -n "$port" ] || fail "no 'listening on 127.0.0.1:PORT' in the master's log"
settle "$load_n"
"$load" header
"$load" run "$port" "$clients" 0 "during $upgrades upgrades" >"$tmp/load.out" &
load_pid=$!
times=()
t0=$EPOCHREALTIME
for ((i = 0; i < upgrades; i++)); do upgrade_once; done
t1=$EPOCHREALTIME
kill -TERM "$load_pid"
wait "$load_pid" || fail "the load generator failed"
load_pid=
cat "$tmp/load.out"
duration=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
settle "$load_n"
"$load" run "$port" "$clients" "$duration" "baseline (no upgrade)"
upgrade_times=("${times[@]}")

# 3. Master re-execs alone: each `einhornctl reload` timed until status shows the new image
# (reloads one higher), under the same load; every reload must succeed.
"$load" run "$port" "$clients" 0 "during $reloads reloads" >"$tmp/load.out" &
load_pid=$!
times=()
for ((i = 0; i < reloads; i++)); do
  before=$("$ctl" -d "$sock" status --json | jq -r .reloads)
  t0=$EPOCHREALTIME
  "$ctl" -d "$sock" reload >/dev/null || fail "einhornctl reload exited $?"
  while :; do
    read -r now err < <("$ctl" -d "$sock" status --json | jq -r '"\(.reloads) \(.last_reload_error)"')
    [ "$now" -gt "$before" ] && break
    [ "$err" = null ] || fail "reload failed: $err"
    sleep 0.002
  done
  t1=$EPOCHREALTIME
  times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')")
done
kill -TERM "$load_pid"
wait "$load_pid" || fail "the load generator failed"
load_pid=
cat "$tmp/load.out"
stop_master
echo
echo "the $upgrades upgrades and $reloads reloads under load (s; a reload until status shows it):"
printf '%-8s %-28s %4s %9s %9s %9s\n' workers upgrade runs min median max
reload_times=("${times[@]}")
times=("${upgrade_times[@]}")
row "$load_n" "smooth, under load"
times=("${reload_times[@]}")
row "$load_n" "reload, under load"
