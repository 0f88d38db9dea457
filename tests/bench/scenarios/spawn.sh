# spawn: time from launching einhorn-cpp to N workers ready (the Nth "is ready" line in its
# log), with -m 0 (a worker is ready once forked) and -m manual (once it has acked on the
# command socket), beside the floor measured in the same rep: spawn_probe forking and
# exec'ing the same worker N times from one C++ process (see spawn_probe.cc), until every
# child has exec'd (for -m 0) or until N acks arrived on its own socket (for manual).
# The worker is einhorn-example-http on 127.0.0.1:0 (--ack for manual). Master and floor
# alternate within each rep, so a busy machine slows both alike.
# A run where no worker becomes ready for SPAWN_STALL seconds is not timed: the row says how
# many were ready and the master's last refusal or error, and that case's other reps are skipped.
# Knobs: SPAWN_COUNTS (default "10 100 1000"), SPAWN_STALL (default 60), REPS.

scenario_spawn() {
  local probe n mode rep t0 done_ts out ack_arg floor_mode stalled
  local -a master_s floor_s fork_s
  probe=$(build_tool spawn_probe)
  for n in ${SPAWN_COUNTS:-10 100 1000}; do
    for mode in 0 manual; do
      master_s=() floor_s=() fork_s=() stalled=
      ack_arg=() floor_mode=exec
      [ "$mode" = manual ] && { ack_arg=(--ack); floor_mode=ack; }
      for ((rep = 0; rep < REPS; rep++)); do
        t0=$EPOCHREALTIME
        launch_master "spawn-$n-$mode" -n "$n" -m "$mode" -b 127.0.0.1:0 -- \
          "$http_worker" "${ack_arg[@]}"
        if ! done_ts=$("$probe" wait-log "$LOG" "$n" " is ready" "$MASTER" "${SPAWN_STALL:-60}"); then
          stalled="STALLED: ${done_ts#- } of $n ready, none new for ${SPAWN_STALL:-60} s; last master warning: $(
            grep -E ' (warning|error): ' "$LOG" | tail -1 | sed 's/^.*\] //' | tr '|' /)"
          bench_note "spawn N=$n -m $mode: $stalled"
          [ -z "${BENCH_KEEP:-}" ] || cp "$LOG" "$BENCH_TMP/stalled-$n-$mode.log"
        else
          master_s+=("$(elapsed "$t0" "$done_ts")")
        fi
        stop_master

        t0=$EPOCHREALTIME
        out=$(EINHORN_EXAMPLE_QUIET=1 "$probe" floor "$n" "$floor_mode" "$http_worker" \
          "${ack_arg[@]}") || bench_fail "spawn_probe floor $n $floor_mode failed"
        floor_s+=("$(elapsed "$t0" "${out% *}")")
        fork_s+=("$(elapsed "$t0" "${out#* }")")
        [ -z "$stalled" ] || break
      done
      if [ -n "$stalled" ]; then
        row spawn "N=$n, -m $mode" "start to N ready (s)" "not reached" \
          "$(summary %.3f "${floor_s[@]}")" "$stalled"
      elif [ "$mode" = 0 ]; then
        row spawn "N=$n, -m 0" "start to N ready (s)" "$(summary %.3f "${master_s[@]}")" \
          "$(summary %.3f "${floor_s[@]}")" \
          "ready at fork; floor = N fork+exec (C++ loop) until all exec'd; its N forks alone: $(summary %.3f "${fork_s[@]}") s"
      else
        row spawn "N=$n, -m manual" "start to N ready (s)" "$(summary %.3f "${master_s[@]}")" \
          "$(summary %.3f "${floor_s[@]}")" "floor = N fork+exec (C++ loop) until N acks received"
      fi
    done
  done
}
