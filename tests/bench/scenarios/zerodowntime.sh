# zerodowntime: wrk on loopback against ZD_WORKERS einhorn-example-http workers (-m manual,
# --ack: ready once listening; they drain on SIGUSR2), ZD_SECONDS per run, in three phases:
# baseline (nothing else), `einhornctl upgrade --wait` started every 2 s (back to back when one
# takes longer), and `einhornctl reload` (the master re-execs, workers untouched) every 2 s.
# Failures are what wrk counts: connect, read and write errors (refused, reset), timeouts (no
# response within wrk's 2 s) and responses that are not 2xx/3xx.
# Twice: with wrk's default HTTP/1.1 keep-alive (the worker answers `Connection: close` and
# closes after each response, so wrk reconnects for every request anyway), and with
# `-H "Connection: close"`; a drained worker finishes the requests it accepted and only then
# closes, so neither should count a drain as a failure. Every upgrade must exit 0 and every
# reload must be done (the `reloads` counter) with no `last_reload_error`.
# Knobs: ZD_WORKERS (default 4), ZD_SECONDS (default 10), ZD_THREADS (default 2),
# ZD_CONNECTIONS (default 16), REPS.

# zd_loop VERB SECONDS OUT: runs `einhornctl VERB` every 2 s for SECONDS; one exit code per line
# in OUT. A TERM stops it after the command in flight.
zd_loop() {
  local verb=$1 secs=$2 out=$3 start=$EPOCHREALTIME k=0 child=
  trap '[ -n "$child" ] && wait "$child"; exit 0' TERM
  : >"$out"
  while awk -v e="$(elapsed "$start")" -v s="$secs" 'BEGIN { exit !(e < s) }'; do
    if [ "$verb" = upgrade ]; then
      ctl upgrade --wait >>"$out.log" 2>&1 &
    else
      ctl reload >>"$out.log" 2>&1 &
    fi
    child=$!
    wait "$child" && echo 0 >>"$out" || echo "$?" >>"$out"
    child=
    k=$((k + 1))
    # The next start is k * 2 s after the first; at once if this one ran late.
    sleep "$(awk -v e="$(elapsed "$start")" -v k="$k" 'BEGIN { d = 2 * k - e; printf "%.3f", (d > 0 ? d : 0) }')"
  done
}

scenario_zerodowntime() {
  local n=${ZD_WORKERS:-4} secs=${ZD_SECONDS:-10} port mode phase rep loop_pid out
  local before issued failed_cmds
  local -a hdr req fail p99 breakdown cmds
  start_master zerodowntime -n "$n" -m manual -b 127.0.0.1:0 -- "$http_worker" --ack
  port=$(listen_port)
  settle "$n" 120
  for mode in keep-alive close; do
    hdr=()
    [ "$mode" = close ] && hdr=(-H "Connection: close")
    for phase in baseline upgrade reload; do
      req=() fail=() p99=() breakdown=() cmds=()
      for ((rep = 0; rep < REPS; rep++)); do
        loop_pid=
        before=$(ctl status --json | jq .reloads)
        if [ "$phase" != baseline ]; then
          zd_loop "$phase" "$secs" "$BENCH_TMP/zd-cmds" &
          loop_pid=$!
          bench_track "$loop_pid"
        fi
        wrk -t "${ZD_THREADS:-2}" -c "${ZD_CONNECTIONS:-16}" -d "${secs}s" --timeout 2s \
          "${hdr[@]}" -s "$BENCH_DIR/wrk_report.lua" "http://127.0.0.1:$port/" \
          >"$BENCH_TMP/wrk.out" 2>&1 || bench_fail "wrk failed: $(tail -3 "$BENCH_TMP/wrk.out")"
        out=$(grep '^WRK ' "$BENCH_TMP/wrk.out") || bench_fail "no WRK line: $(cat "$BENCH_TMP/wrk.out")"
        if [ -n "$loop_pid" ]; then
          wait "$loop_pid" || true
          issued=$(wc -l <"$BENCH_TMP/zd-cmds")
          failed_cmds=$(grep -cv '^0$' "$BENCH_TMP/zd-cmds" || true)
          [ "$failed_cmds" -eq 0 ] ||
            bench_fail "$failed_cmds of $issued einhornctl $phase failed: $(tail -5 "$BENCH_TMP/zd-cmds.log")"
          if [ "$phase" = reload ]; then wait_reloads "$((before + issued))"; fi
          cmds+=("$issued")
        fi
        settle "$n" 120
        read -r _ r c rd wr st to _ q99 _ <<<"$out"
        req+=("$r")
        fail+=("$((c + rd + wr + st + to))")
        p99+=("$q99")
        breakdown+=("$c/$rd/$wr/$to/$st")
      done
      local what="wrk, $mode"
      [ "$mode" = close ] && what='wrk -H "Connection: close"'
      local case_name="$n workers, $phase"
      [ "$phase" = upgrade ] && case_name="$n workers, upgrade --wait every 2 s"
      [ "$phase" = reload ] && case_name="$n workers, reload every 2 s"
      local extra=""
      [ "$phase" != baseline ] && extra="; $phase commands per run: ${cmds[*]}, all ok"
      row zerodowntime "$case_name ($what)" "requests in ${secs} s" "$(summary %.0f "${req[@]}")"
      row zerodowntime "$case_name ($what)" "failed requests" "$(summary %.0f "${fail[@]}")" - \
        "per run connect/read/write/timeout/non-2xx: ${breakdown[*]}$extra"
      row zerodowntime "$case_name ($what)" "p99 latency (ms)" "$(summary %.2f "${p99[@]}")"
    done
  done
  stop_master
}

# wait_reloads WANT: until status shows at least WANT reloads (up to 60 s), none failed.
wait_reloads() {
  local want=$1 deadline=$((SECONDS + 60)) got err
  while :; do
    read -r got err < <(ctl status --json | jq -r '"\(.reloads) \(.last_reload_error)"')
    [ "$err" = null ] || bench_fail "reload failed: $err"
    [ "$got" -ge "$want" ] && return 0
    [ $SECONDS -lt $deadline ] || bench_fail "only $got of $want reloads done after 60 s"
    sleep 0.05
  done
}
