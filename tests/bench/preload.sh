#!/usr/bin/env bash
# Preload benchmark (issue 19), through einhorn-cpp itself: N workers (default 20) of an app
# that requires active_support/all (ruby-activesupport) and of one that imports numpy
# (python3-numpy), exec'd against forked from a zygote. Figures: time from launching the master
# to the Nth worker's ack (-m manual: each worker acks once loaded; the moment comes from the
# master's status, not from when a poll noticed it), and the workers' total PSS
# (/proc/PID/smaps_rollup) then. Goal (issue 19): PSS <= 40 % of exec, ready >= 5x sooner.
# Modes: exec (no preload), zygote (the master's generic preload switch, $ZYGOTE_FLAG, default
# --zygote: einhorn_zygote.serve / EinhornZygote.serve in the app), and for Ruby also -p (Einhorn's
# preload, einhorn-preload.rb calling einhorn_main). REPS runs each (default 3): median (min-max);
# APPS=python or APPS=ruby runs only that app (default all).
# Never asserts on speed; the machine is shared, so figures are noisy.
# Usage: tests/bench/preload.sh [BUILD_DIR]     (default build-bench, a Release build:
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF && cmake --build build-bench -j2)
# Needs: scripts/install-deps bench (jq, ruby-activesupport, python3-numpy).
# Without the master side this cannot run; tests/bench/zygote_driver_bench.py measures the
# libraries alone with tests/zygote/driver.py as the master.
set -euo pipefail
BUILD=${1:-build-bench}
N=${N:-20}
REPS=${REPS:-3}
ZYGOTE_FLAG=${ZYGOTE_FLAG:---zygote}
APPS=${APPS:-all}
case $APPS in all | python | ruby) ;; *) echo "preload.sh: APPS must be all, python or ruby" >&2; exit 2 ;; esac
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/lib/common.sh"
command -v jq >/dev/null || bench_fail "jq is missing (scripts/install-deps bench)"
/usr/bin/python3 -c 'import numpy' 2>/dev/null || bench_fail "python3-numpy is missing (scripts/install-deps bench)"
ruby -e 'require "active_support/all"' 2>/dev/null || bench_fail "ruby-activesupport is missing (scripts/install-deps bench)"
bench_init

apps=$here/apps
py_app=(/usr/bin/python3 "$apps/preload_numpy.py")
rb_app=(ruby -I"$root/lib/ruby" "$apps/preload_activesupport.rb")
export PYTHONPATH=$root/lib/python${PYTHONPATH:+:$PYTHONPATH}
export RUBYLIB=$root/lib/ruby${RUBYLIB:+:$RUBYLIB}

pss_total_kb() {
  local total=0 pid kb
  for pid in "$@"; do
    kb=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
    total=$((total + ${kb:-0}))
  done
  echo "$total"
}

# measure APP MODE FLAG... -- CMD...: one row per figure.
measure() {
  local app=$1 mode=$2 rep t0 t1 t2 st t pids kb times=() pss=()
  shift 2
  for ((rep = 0; rep < REPS; rep++)); do
    t0=$EPOCHREALTIME
    start_master "$app-$mode-$rep" -m manual -n "$N" "$@"
    settle "$N" 600
    # When the last worker acked, by the master's clock rather than settle's 50 ms polls (which
    # overstated a 0.2 s start by up to a quarter): status gives each worker's uptime and
    # time_to_ready at one instant, taken here as the middle of the round trip.
    t1=$EPOCHREALTIME
    st=$(ctl status --json)
    t2=$EPOCHREALTIME
    t=$(jq -r --arg t0 "$t0" --arg t1 "$t1" --arg t2 "$t2" \
      '(($t1 | tonumber) + ($t2 | tonumber)) / 2 - ($t0 | tonumber) + ([.workers[] | .time_to_ready - .uptime] | max)' <<<"$st")
    mapfile -t pids < <(jq -r '.workers[].pid' <<<"$st")
    kb=$(pss_total_kb "${pids[@]}")
    times+=("$t")
    pss+=("$(awk -v k="$kb" 'BEGIN { printf "%.1f", k / 1024 }')")
    stop_master
  done
  row preload "$app $mode" "$N acked after (s)" "$(summary %.2f "${times[@]}")"
  row preload "$app $mode" "workers' total PSS (MB)" "$(summary %.1f "${pss[@]}")"
}

if [ "$APPS" != ruby ]; then
  measure python-numpy exec -- "${py_app[@]}"
  measure python-numpy zygote "$ZYGOTE_FLAG" -- "${py_app[@]}"
fi
if [ "$APPS" != python ]; then
  measure ruby-activesupport exec -- "${rb_app[@]}"
  measure ruby-activesupport zygote "$ZYGOTE_FLAG" -- "${rb_app[@]}"
  measure ruby-activesupport -p -p "$apps/preload_activesupport.rb" -- "${rb_app[@]}"
fi
print_table
