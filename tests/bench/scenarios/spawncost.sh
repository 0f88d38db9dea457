# spawncost: what the master spends per spawn, beside the floor.
# 1. Start to N workers ready (einhorn-example-http on 127.0.0.1:0, -m manual with --ack: ready
#    once acked; and -m 0: ready at fork), and the master's CPU per spawn: its CPU time
#    (sum_exec_runtime of its threads, /proc/PID/task/*/schedstat, user + system, nanoseconds)
#    from launch to the Nth "is ready" line, divided by N. Beside it, in the same rep, the floor
#    by three methods (spawn_probe.cc floor): N fork+execs, N vfork+execs and N posix_spawns of
#    the same worker from a C++ loop, until all exec'd (-m 0) or all acked (manual), each with
#    the probe's own CPU per spawn.
# 2. Crash loop: CRASH_SLOTS slots (default 100) of /bin/false (exits 1 at once) with -s
#    CRASH_BACKOFF (default 1, the default: the backoff's base, x1.5 per failure, cap 30 s) for
#    CRASH_SECONDS (default 60): the master's CPU share of one core over the window, the spawns
#    (from `status --json`: slots' starts) and the CPU per spawn.
# -m manual at N=1000 can stall: 1000 workers acking at once exceed the command socket's 256
# connections, and einhorn-example-http does not retry a refused ack.
# Knobs: SPAWNCOST_COUNTS (default 1000; empty: the crash loop only), SPAWNCOST_MODES (default "0"),
# SPAWNCOST_METHODS (default "fork vfork posix_spawn"), CRASH_SLOTS, CRASH_BACKOFF,
# CRASH_SECONDS, SPAWN_STALL (default 60), REPS.

# cpu_ns PID: CPU time of all its threads so far, in nanoseconds.
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%d\n", s }'
}

scenario_spawncost() {
  local probe n mode rep t0 done_ts ns out ack_arg floor_mode method done_f fork_f cpu_f secs
  local spawns wall
  local -a master_s master_us
  local -A floor_s floor_us
  probe=$(build_tool spawn_probe)
  for n in ${SPAWNCOST_COUNTS-1000}; do
    for mode in ${SPAWNCOST_MODES:-0}; do
      master_s=() master_us=() floor_s=() floor_us=()
      ack_arg=() floor_mode=exec
      [ "$mode" = manual ] && { ack_arg=(--ack); floor_mode=ack; }
      for ((rep = 0; rep < REPS; rep++)); do
        t0=$EPOCHREALTIME
        launch_master "spawncost-$n-$mode" -n "$n" -m "$mode" -b 127.0.0.1:0 -- \
          "$http_worker" "${ack_arg[@]}"
        done_ts=$("$probe" wait-log "$LOG" "$n" " is ready" "$MASTER" "${SPAWN_STALL:-60}") ||
          bench_fail "spawncost N=$n -m $mode: not all ready (${done_ts#- } seen)"
        ns=$(cpu_ns "$MASTER")
        stop_master
        master_s+=("$(elapsed "$t0" "$done_ts")")
        master_us+=("$(awk -v ns="$ns" -v n="$n" 'BEGIN { printf "%.1f", ns / n / 1000 }')")
        for method in ${SPAWNCOST_METHODS:-fork vfork posix_spawn}; do
          t0=$EPOCHREALTIME
          out=$(EINHORN_EXAMPLE_QUIET=1 "$probe" floor "$n" "$floor_mode" "$method" \
            "$http_worker" "${ack_arg[@]}") || bench_fail "spawn_probe floor $n $floor_mode $method failed"
          read -r done_f fork_f cpu_f <<<"$out"
          : "$fork_f"
          floor_s[$method]+="$(elapsed "$t0" "$done_f") "
          floor_us[$method]+="$(awk -v c="$cpu_f" -v n="$n" 'BEGIN { printf "%.1f", c * 1e6 / n }') "
        done
      done
      row spawncost "N=$n, -m $mode" "start to N ready (s)" "$(summary %.3f "${master_s[@]}")" \
        "$(for m in ${SPAWNCOST_METHODS:-fork vfork posix_spawn}; do
          # shellcheck disable=SC2086
          printf '%s %s; ' "$m" "$(summary %.3f ${floor_s[$m]})"
        done)" "floor = the same worker started N times from a C++ loop, by each method"
      row spawncost "N=$n, -m $mode" "CPU per spawn (us)" "$(summary %.1f "${master_us[@]}")" \
        "$(for m in ${SPAWNCOST_METHODS:-fork vfork posix_spawn}; do
          # shellcheck disable=SC2086
          printf '%s %s; ' "$m" "$(summary %.1f ${floor_us[$m]})"
        done)" "master: its CPU from launch to N ready / N; floor: the loop's own CPU / N"
    done
  done

  local slots=${CRASH_SLOTS:-100} backoff=${CRASH_BACKOFF:-1} false_bin
  local -a share per_spawn rate
  secs=${CRASH_SECONDS:-60}
  [ "$secs" != 0 ] || return 0
  false_bin=$(command -v false)
  for ((rep = 0; rep < REPS; rep++)); do
    t0=$EPOCHREALTIME
    start_master "spawncost-crash" -n "$slots" -s "$backoff" -- "$false_bin"
    sleep "$secs"
    ns=$(cpu_ns "$MASTER")
    wall=$(elapsed "$t0")
    spawns=$(ctl status --json |
      jq '[(.workers + .pending)[] | .restarts + 1] | add // 0') || bench_fail "status failed"
    stop_master
    share+=("$(awk -v ns="$ns" -v s="$wall" 'BEGIN { printf "%.3f", 100 * ns / 1e9 / s }')")
    per_spawn+=("$(awk -v ns="$ns" -v n="$spawns" 'BEGIN { printf "%.1f", n ? ns / n / 1000 : 0 }')")
    rate+=("$(awk -v n="$spawns" -v s="$wall" 'BEGIN { printf "%.2f", n / s }')")
  done
  row spawncost "crash loop: $slots x /bin/false, -s $backoff, ${secs} s" "master CPU (% of a core)" \
    "$(summary %.2f "${share[@]}")" - "CPU time (schedstat) / wall, from launch"
  row spawncost "crash loop: $slots x /bin/false, -s $backoff, ${secs} s" "CPU per spawn (us)" \
    "$(summary %.1f "${per_spawn[@]}")" - "spawns from status: slots' restarts + 1"
  row spawncost "crash loop: $slots x /bin/false, -s $backoff, ${secs} s" "spawns per s" \
    "$(summary %.2f "${rate[@]}")" -
}
