# control: round trip of `status` and `inc` on the command socket with N workers (`sleep`,
# -m 0), a connection per request as einhornctl makes, timed by control_rtt (as
# tests/bench/control.sh does): CONTROL_SAMPLES statuses, then CONTROL_INCS incs followed by
# as many decs (the pool comes back to N and settles before the next rep). Each rep gives a p50
# and a p99; the table shows their median (min-max) over the reps.
# Knobs: CONTROL_COUNTS (default 1000), CONTROL_SAMPLES (default 300), CONTROL_INCS (default
# 100), REPS.

scenario_control() {
  local rtt n rep line verb
  local -a status_p50 status_p99 inc_p50 inc_p99 f
  rtt=$(build_tool control_rtt)
  for n in ${CONTROL_COUNTS:-1000}; do
    status_p50=() status_p99=() inc_p50=() inc_p99=()
    start_master "control-$n" -n "$n" -m 0 -- "$(command -v sleep)" 1000000
    "$rtt" wait "$SOCK" "$n" || bench_fail "$n workers not ready"
    for ((rep = 0; rep < REPS; rep++)); do
      {
        CONTROL_RTT_RAW=1 "$rtt" rtt "$SOCK" "$n" status "${CONTROL_SAMPLES:-300}" fresh
        CONTROL_RTT_RAW=1 "$rtt" incdec "$SOCK" "$n" "${CONTROL_INCS:-100}" fresh
      } >"$BENCH_TMP/control.out" || bench_fail "control_rtt failed"
      while read -r line; do
        read -ra f <<<"$line"
        verb=${f[1]}
        case $verb in
          status) status_p50+=("${f[5]}") status_p99+=("${f[6]}") ;;
          inc) inc_p50+=("${f[5]}") inc_p99+=("${f[6]}") ;;
        esac
      done <"$BENCH_TMP/control.out"
      "$rtt" wait "$SOCK" "$n" || bench_fail "the pool did not come back to $n"
      settle "$n" 600
    done
    stop_master
    row control "N=$n, status" "round trip p50 (ms)" "$(summary %.3f $(us_to_ms "${status_p50[@]}"))" - \
      "${CONTROL_SAMPLES:-300} requests per rep, connection per request"
    row control "N=$n, status" "round trip p99 (ms)" "$(summary %.3f $(us_to_ms "${status_p99[@]}"))" -
    row control "N=$n, inc" "round trip p50 (ms)" "$(summary %.3f $(us_to_ms "${inc_p50[@]}"))" - \
      "${CONTROL_INCS:-100} incs per rep (then as many decs), connection per request"
    row control "N=$n, inc" "round trip p99 (ms)" "$(summary %.3f $(us_to_ms "${inc_p99[@]}"))" -
  done
}

us_to_ms() { local v; for v in "$@"; do awk -v u="$v" 'BEGIN { printf "%.4f\n", u / 1000 }'; done; }
