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
# APP (default example-http): python-zygote runs tests/bench/apps/zygote_http.py (Python,
# standard library, einhorn_zygote) under --zygote, issue 19's "HTTP app under wrk through preload
# upgrades"; python runs the same app exec'd (no --zygote), for comparison. With python-zygote
# the script writes a new code version (u1, u2...) before each upgrade, which the generation's
# zygote loads, and checks after each upgrade that the new generation has one ready zygote of
# its own, that each of its workers says (on the master's log) it was forked from that zygote
# with that version, and, at the end, that every old zygote exited once its generation drained;
# a miss counts as a failed command.
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
app=${APP:-example-http}
master_flags=()
case $app in
  example-http)
    worker=("$http_worker" --ack "${worker_args[@]}")
    worker_text="einhorn-example-http --ack" ;;
  python-zygote | python)
    export PYTHONPATH=$PWD/lib/python${PYTHONPATH:+:$PYTHONPATH}
    export ZYGOTE_HTTP_VERSION_FILE=$BENCH_TMP/version
    echo u0 >"$ZYGOTE_HTTP_VERSION_FILE"
    worker=(/usr/bin/python3 "$PWD/tests/bench/apps/zygote_http.py" "${worker_args[@]}")
    worker_text="python3 tests/bench/apps/zygote_http.py"
    [ "$app" = python ] || master_flags=(--zygote) ;;
  *) echo "wrk_upgrades.sh: APP must be example-http, python-zygote or python" >&2; exit 2 ;;
esac
start_master wrk "${master_flags[@]}" -n "$n" -m manual -b "127.0.0.1:$port,r" -- "${worker[@]}"
settle "$n" 120
pid0=$MASTER

# APP=python-zygote: after upgrade U (to generation G), one ready zygote of generation G, and each
# worker of G forked from it with version uU (zygote_http.py's line on the master's log). Sets
# `problem` (empty when so); remembers the zygote, whose predecessor must exit.
zygotes=()
check_zygote_generation() {
  local want_version=$1 st gen z pids p line spawns bad=
  problem=
  st=$(ctl status --json) || { problem="no status"; return; }
  gen=$(jq -r .generation <<<"$st")
  z=$(jq -r --argjson g "$gen" '[.zygotes[] | select(.generation == $g and .state == "ready") | .pid] | join(" ")' <<<"$st")
  [[ $z =~ ^[0-9]+$ ]] || { problem="generation $gen has ready zygotes '$z', want one"; return; }
  # The master's own count: that zygote forked exactly the generation's workers.
  spawns=$(jq -r --argjson z "$z" '.zygotes[] | select(.pid == $z) | .spawns' <<<"$st")
  [ "$spawns" = "$n" ] || bad+=" the master counts $spawns workers forked by zygote $z, want $n;"
  mapfile -t pids < <(jq -r --argjson g "$gen" '.workers[] | select(.generation == $g) | .pid' <<<"$st")
  [ "${#pids[@]}" -eq "$n" ] || bad+=" ${#pids[@]} workers of generation $gen, want $n;"
  for p in "${pids[@]}"; do
    line=$(grep -a "^zygote_http: worker $p " "$LOG" | head -1)
    [ "$line" = "zygote_http: worker $p forked from zygote $z, version $want_version, serving" ] ||
      bad+=" worker $p says '${line:-nothing}', want forked from zygote $z, version $want_version;"
  done
  zygotes+=("$gen:$z")
  [ -z "$bad" ] || problem="generation $gen:$bad"
}
if [ "$app" = python-zygote ]; then
  check_zygote_generation u0
  [ -z "$problem" ] || bench_fail "before the upgrades: $problem"
fi

wrk_cmd=(wrk -t "$threads" -c "$connections" -d 3600s --timeout "$timeout"
  -s "$BENCH_DIR/wrk_report.lua" "http://127.0.0.1:$port/")
echo "einhorn-cpp $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "master: einhorn-cpp ${master_flags[*]}${master_flags[*]:+ }-n $n -m manual -b 127.0.0.1:$port,r -- $worker_text${WORKER_ARGS:+ $WORKER_ARGS}"
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
    [ "$app" = example-http ] || echo "u$u" >"$ZYGOTE_HTTP_VERSION_FILE"
    t0=$EPOCHREALTIME
    rc=0
    ctl upgrade --wait >"$BENCH_TMP/ctl.out" 2>&1 || rc=$?
    result=ok
    [ "$rc" -eq 0 ] || result="failed: einhornctl upgrade --wait exited $rc: $(tail -2 "$BENCH_TMP/ctl.out" | tr '\n' ' ')"
    d=$(elapsed "$t0")
    if [ "$rc" -eq 0 ] && [ "$app" = python-zygote ]; then
      check_zygote_generation "u$u"
      [ -z "$problem" ] || result="failed: $problem"
    fi
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

zygote_text=
if [ "$app" = python-zygote ]; then
  # Every zygote but the last must have gone once its generation drained (the master closes
  # it then, and says how it ended).
  gone=0
  for ((i = 0; i + 1 < ${#zygotes[@]}; i++)); do
    g=${zygotes[i]%%:*} z=${zygotes[i]#*:}
    deadline=$((SECONDS + 30))
    until grep -aq "preload: zygote $z (generation $g) exited with exit 0 after it was closed" "$LOG"; do
      [ $SECONDS -lt $deadline ] || { echo "zygote $z of generation $g has not exited after it was closed" >&2; failures=$((failures + 1)); continue 2; }
      sleep 0.05
    done
    gone=$((gone + 1))
  done
  last=${zygotes[${#zygotes[@]} - 1]}
  zygote_text="${#zygotes[@]} generations, each forked from its own zygote that loaded its version; $gone old zygotes exited after their generation drained; zygote ${last#*:} serves generation ${last%%:*}"
fi

line=$(grep '^WRK ' "$BENCH_TMP/wrk.out") || bench_fail "no WRK line from wrk: $(cat "$BENCH_TMP/wrk.out")"
read -r _ req c rd wr st to p50 p99 max <<<"$line"
lost=$((c + rd + wr + st + to))
echo "commands: $upgrades upgrades and $reloads reloads in $(printf '%.1f' "$t_cmds") s, $failures failed"
echo "requests: $req completed, $st non-2xx/3xx, socket errors: connect $c, read $rd, write $wr, timeout $to; lost $lost"
echo "latency:  p50 $p50 ms, p99 $p99 ms, max $max ms"
echo "upgrade --wait (s): median (min-max) $(summary %.3f "${upgrade_times[@]}")"
echo "reload, until status shows it (s): median (min-max) $(summary %.3f "${reload_times[@]}")"
echo "after:    $after (started as pid $pid0)"
[ -z "$zygote_text" ] || echo "zygotes:  $zygote_text"
echo "--- wrk's report:"
grep -v '^WRK ' "$BENCH_TMP/wrk.out"
if [ "$lost" -ne 0 ] || [ "$failures" -ne 0 ]; then
  echo "FAILED: $lost requests lost, $failures commands failed (BENCH_KEEP=1 keeps the master's log)" >&2
  exit 1
fi
