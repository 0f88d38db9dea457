# crashloop: a pool of N slots whose worker exits at once (/bin/false), default flags
# (timer ack, -s 1: the backoff's base), for CRASH_SECONDS from the launch. Master CPU% is
# (utime + stime from /proc/PID/stat) / wall time; spawns are counted from `status --json`
# (every slot's first start plus its restarts, rows of both workers and pending) read at the
# end of the window, after the CPU sample.
# Knobs: CRASH_COUNTS (default "10 100"), CRASH_SECONDS (default 20), REPS.

scenario_crashloop() {
  local n rep t0 ticks secs secs_real spawns hz false_bin
  local -a cpu rate
  hz=$(getconf CLK_TCK)
  false_bin=$(command -v false)
  secs=${CRASH_SECONDS:-20}
  for n in ${CRASH_COUNTS:-10 100}; do
    cpu=() rate=()
    for ((rep = 0; rep < REPS; rep++)); do
      t0=$EPOCHREALTIME
      start_master "crash-$n" -n "$n" -- "$false_bin"
      sleep "$secs"
      ticks=$(cpu_ticks "$MASTER")
      secs_real=$(elapsed "$t0")
      spawns=$(ctl status --json |
        jq '[(.workers + .pending)[] | .restarts + 1] | add // 0') || bench_fail "status failed"
      stop_master
      cpu+=("$(awk -v t="$ticks" -v hz="$hz" -v s="$secs_real" 'BEGIN { printf "%.3f", 100 * t / hz / s }')")
      rate+=("$(awk -v n="$spawns" -v s="$secs_real" 'BEGIN { printf "%.3f", n / s }')")
    done
    row crashloop "N=$n x /bin/false, ${secs} s" "master CPU (%)" "$(summary %.2f "${cpu[@]}")" - \
      "(utime+stime)/wall from launch; CLK_TCK $hz"
    row crashloop "N=$n x /bin/false, ${secs} s" "spawn rate (spawns/s)" "$(summary %.2f "${rate[@]}")" - \
      "from status counters: slots' starts (restarts + 1)"
  done
}
