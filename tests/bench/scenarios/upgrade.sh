# upgrade: wall time of `einhornctl upgrade --wait` (smooth, the defaults) on a pool of N
# ready workers that ack as soon as they listen (einhorn-example-http --ack, -m manual), as
# tests/bench/upgrade.sh section 1 does. Every upgrade re-execs the master first (as Einhorn
# does), then replaces the workers; each must exit 0, and the pool settles between reps.
# Knobs: UPGRADE_COUNTS (default "10 100"), REPS.

scenario_upgrade() {
  local n rep t0
  local -a times
  for n in ${UPGRADE_COUNTS:-10 100}; do
    times=()
    start_master "upgrade-$n" -n "$n" -m manual -b 127.0.0.1:0 -- "$http_worker" --ack
    settle "$n" 600
    for ((rep = 0; rep < REPS; rep++)); do
      t0=$EPOCHREALTIME
      ctl upgrade --wait >"$BENCH_TMP/upgrade.out" 2>&1 ||
        bench_fail "einhornctl upgrade --wait failed: $(tail -3 "$BENCH_TMP/upgrade.out")"
      times+=("$(elapsed "$t0")")
      settle "$n" 600
    done
    stop_master
    row upgrade "N=$n, -m manual" "einhornctl upgrade --wait (s)" "$(summary %.3f "${times[@]}")" \
      - "smooth, --max-unacked $(nproc) (default); includes the master's re-exec"
  done
}
