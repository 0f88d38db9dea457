# memory: VmRSS of the master (from /proc) with N idle workers (einhorn-example-http, -m 0, on
# 127.0.0.1:0), read once the pool has settled (N ready; einhornctl status has run, as it
# would in production) and after 2 s more, and VmHWM (its peak) at the same moment.
# Knobs: MEMORY_COUNTS (default "10 1000"), REPS.

scenario_memory() {
  local n rep
  local -a rss hwm
  for n in ${MEMORY_COUNTS:-10 1000}; do
    rss=() hwm=()
    for ((rep = 0; rep < REPS; rep++)); do
      start_master "memory-$n" -n "$n" -m 0 -b 127.0.0.1:0 -- "$http_worker"
      settle "$n" 600
      sleep 2
      rss+=("$(awk -v k="$(rss_kb "$MASTER")" 'BEGIN { printf "%.2f", k / 1024 }')")
      hwm+=("$(awk '/^VmHWM:/ { printf "%.2f", $2 / 1024 }' "/proc/$MASTER/status")")
      stop_master
    done
    row memory "N=$n idle workers" "master VmRSS (MB)" "$(summary %.1f "${rss[@]}")" - \
      "peak VmHWM $(summary %.1f "${hwm[@]}") MB"
  done
}
