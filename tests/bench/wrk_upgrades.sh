#!/usr/bin/env bash
# Requests lost during upgrades and reloads (issue 14's closing check): einhorn-cpp runs N
# einhorn-example-http workers (-m manual, --ack: ready once listening, drain on SIGUSR2) on
# `-b 127.0.0.1:PORT,r`; wrk sends GET / to that port for the whole run, while the script does
# UPGRADES `einhornctl upgrade --wait` and RELOADS `einhornctl reload`, interleaved (a reload
# after every UPGRADES/RELOADS upgrades), back to back, each exit code checked. A reload counts
# as done when `status` shows the `reloads` counter one higher (the new image answering), and
# as failed when it shows a `last_reload_error` or nothing within 60 s.
# Prints each upgrade's and reload's duration, then wrk's figures: requests, non-2xx/3xx
# responses, socket errors (connect/read/write/timeout) and latency p50/p99/max, then wrk's own
# report. Exits 1 when a request failed (any wrk error or non-2xx/3xx) or an upgrade or a reload
# failed: that is correctness. Latency and durations are figures only, never asserted.
#
# Usage: tests/bench/wrk_upgrades.sh [BUILD_DIR]    (default: build-bench)
# Build a release tree first (Debian 12: scripts/install-deps bench installs jq and wrk):
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#   cmake --build build-bench -j2 --target einhorn-cpp einhornctl einhorn-example-http
# Needs: jq, wrk, python3 (to pick a free port).
# Knobs (environment): N (workers, default 4), UPGRADES (default 20), RELOADS (default 5),
# THREADS (wrk -t, default 2), CONNECTIONS (wrk -c, default 16), TIMEOUT (wrk --timeout,
# default 2s), WORKER_ARGS (more arguments for the worker, such as "--delay-ms 20": each answer
# then waits that long, so every drain has requests in flight), PORT (default: a free one), BENCH_KEEP=1 (keep the master's log in
# /tmp/einhorn-bench.*).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-${BUILD:-build-bench}}
n=${N:-4}
upgrades=${UPGRADES:-20}
reloads=${RELOADS:-5}
threads=${THREADS:-2}
connections=${CONNECTIONS:-16}
timeout=${TIMEOUT:-2s}
for v in n upgrades threads connections; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "wrk_upgrades.sh: $v must be a positive integer" >&2; exit 2; }
done
[[ $reloads =~ ^[0-9]+$ ]] || { echo "wrk_upgrades.sh: RELOADS must be an integer >= 0" >&2; exit 2; }
for tool in jq wrk python3; do
  command -v "$tool" >/dev/null || { echo "wrk_upgrades.sh: $tool is needed (scripts/install-deps bench)" >&2; exit 1; }
done

. tests/bench/lib/common.sh
bench_init

port=${PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}
read -r -a worker_args <<<"${WORKER_ARGS:-}"
start_master wrk -n "$n" -m manual -b "127.0.0.1:$port,r" -- "$http_worker" --ack "${worker_args[@]}"
settle "$n" 120
pid0=$MASTER

wrk_cmd=(wrk -t "$threads" -c "$connections" -d 3600s --timeout "$timeout"
  -s "$BENCH_DIR/wrk_report.lua" "http://127.0.0.1:$port/")
echo "einhorn-cpp $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "master: einhorn-cpp -n $n -m manual -b 127.0.0.1:$port,r -- einhorn-example-http --ack${WORKER_ARGS:+ $WORKER_ARGS}"
echo "load:   ${wrk_cmd[*]}   (stopped by SIGINT 1 s after the last command)"
# wrk installs its own SIGINT handler (stop, then report), so the ignored SIGINT of a
# background job does not matter.
"${wrk_cmd[@]}" >"$BENCH_TMP/wrk.out" 2>&1 &
wrk_pid=$!
bench_track "$wrk_pid"
sleep 1
kill -0 "$wrk_pid" 2>/dev/null || bench_fail "wrk ended at once: $(cat "$BENCH_TMP/wrk.out")"

failures=0
upgrade_times=()
reload_times=()
every=$((reloads > 0 ? (upgrades + reloads) / reloads : 0))
u=0 r=0 k=0
t_run=$EPOCHREALTIME
while ((u < upgrades || r < reloads)); do
  k=$((k + 1))
  if ((r < reloads && (u >= upgrades || k % every == 0))); then
    r=$((r + 1))
    before=$(ctl status --json | jq -r .reloads) || bench_fail "status failed before reload $r"
    t0=$EPOCHREALTIME
    rc=0
    ctl reload >"$BENCH_TMP/ctl.out" 2>&1 || rc=$?
    result="failed: einhornctl reload exited $rc: $(tr '\n' ' ' <"$BENCH_TMP/ctl.out")"
    if [ "$rc" -eq 0 ]; then
      deadline=$((SECONDS + 60))
      while :; do
        # The master answers nothing while it re-execs: a status without answer is asked again.
        if read -r now err < <(ctl status --json 2>/dev/null | jq -r '"\(.reloads) \(.last_reload_error)"' 2>/dev/null) &&
          [ -n "${now:-}" ]; then
          [ "$err" = null ] || { result="failed: last_reload_error $err"; break; }
          [ "$now" -gt "$before" ] && { result=ok; break; }
        fi
        [ $SECONDS -lt $deadline ] || { result="failed: reloads still $before after 60 s"; break; }
        sleep 0.005
      done
    fi
    [ "$MASTER" = "$pid0" ] && kill -0 "$MASTER" 2>/dev/null || result="failed: the master (pid $pid0) is gone"
    d=$(elapsed "$t0")
    reload_times+=("$d")
    printf 'reload  %2d  %8.3f s  %s\n' "$r" "$d" "$result"
  else
    u=$((u + 1))
    t0=$EPOCHREALTIME
    rc=0
    ctl upgrade --wait >"$BENCH_TMP/ctl.out" 2>&1 || rc=$?
    result=ok
    [ "$rc" -eq 0 ] || result="failed: einhornctl upgrade --wait exited $rc: $(tail -2 "$BENCH_TMP/ctl.out" | tr '\n' ' ')"
    d=$(elapsed "$t0")
    upgrade_times+=("$d")
    printf 'upgrade %2d  %8.3f s  %s\n' "$u" "$d" "$result"
  fi
  [ "$result" = ok ] || failures=$((failures + 1))
done
t_cmds=$(elapsed "$t_run")
sleep 1
kill -INT "$wrk_pid"
wait "$wrk_pid" || bench_fail "wrk failed: $(tail -5 "$BENCH_TMP/wrk.out")"
settle "$n" 120
after=$(ctl status --json | jq -r '"master pid \(.master_pid), generation \(.generation), \(.reloads) reloads (each upgrade re-execs the master first), last_reload_error \(.last_reload_error)"') ||
  bench_fail "status failed after the run"

line=$(grep '^WRK ' "$BENCH_TMP/wrk.out") || bench_fail "no WRK line from wrk: $(cat "$BENCH_TMP/wrk.out")"
read -r _ req c rd wr st to p50 p99 max <<<"$line"
lost=$((c + rd + wr + st + to))
echo "commands: $upgrades upgrades and $reloads reloads in $(printf '%.1f' "$t_cmds") s, $failures failed"
echo "requests: $req completed, $st non-2xx/3xx, socket errors: connect $c, read $rd, write $wr, timeout $to; lost $lost"
echo "latency:  p50 $p50 ms, p99 $p99 ms, max $max ms"
echo "upgrade --wait (s): median (min-max) $(summary %.3f "${upgrade_times[@]}")"
echo "reload, until status shows it (s): median (min-max) $(summary %.3f "${reload_times[@]}")"
echo "after:    $after (started as pid $pid0)"
echo "--- wrk's report:"
grep -v '^WRK ' "$BENCH_TMP/wrk.out"
if [ "$lost" -ne 0 ] || [ "$failures" -ne 0 ]; then
  echo "FAILED: $lost requests lost, $failures commands failed (BENCH_KEEP=1 keeps the master's log)" >&2
  exit 1
fi
