#!/usr/bin/env bash
# A rolling restart of a whole HTTP pool under load (issue 18's benchmark): einhorn-cpp runs N
# einhorn-example-http workers (-m manual, --ack: ready once listening, drain on SIGUSR2) on
# `-b 127.0.0.1:PORT,r`. wrk first runs IDLE seconds against the pool at rest (the baseline),
# then again while the script does ROUNDS `einhornctl recycle --all --wait` back to back. A
# recycle starts the replacement first and drains the old worker once it is ready, at most
# --max-upgrade-additional (ADDITIONAL, default unset: 1 for recycles) extra at once.
# Prints each round's duration and both wrk runs' figures (requests, non-2xx/3xx, socket errors,
# latency p50/p99/max). Exits 1 when a request failed or a recycle did not complete: that is
# correctness. Latency and durations are figures only, never asserted.
#
# Usage: tests/bench/wrk_recycle.sh [BUILD_DIR]    (default: build-bench)
#   cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#   cmake --build build-bench -j2 --target einhorn-cpp einhornctl einhorn-example-http
# Needs: jq, wrk, python3. Knobs: N (default 100), ROUNDS (default 1), IDLE (seconds, default
# 10), ADDITIONAL, THREADS (default 2), CONNECTIONS (default 16), TIMEOUT (default 2s),
# WORKER_ARGS (such as "--delay-ms 20"), BENCH_KEEP=1.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${1:-${BUILD:-build-bench}}
n=${N:-100}
rounds=${ROUNDS:-1}
idle=${IDLE:-10}
threads=${THREADS:-2}
connections=${CONNECTIONS:-16}
timeout=${TIMEOUT:-2s}
for v in n rounds idle threads connections; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "wrk_recycle.sh: $v must be a positive integer" >&2; exit 2; }
done
for tool in jq wrk python3; do
  command -v "$tool" >/dev/null || { echo "wrk_recycle.sh: $tool is needed (scripts/install-deps bench)" >&2; exit 1; }
done

. tests/bench/lib/common.sh
bench_init

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
read -r -a worker_args <<<"${WORKER_ARGS:-}"
extra=()
[ -n "${ADDITIONAL:-}" ] && extra=(--max-upgrade-additional "$ADDITIONAL")
start_master wrk -n "$n" -m manual "${extra[@]}" -b "127.0.0.1:$port,r" -- "$http_worker" --ack "${worker_args[@]}"
settle "$n" 300

wrk_cmd=(wrk -t "$threads" -c "$connections" --timeout "$timeout"
  -s "$BENCH_DIR/wrk_report.lua" "http://127.0.0.1:$port/")
echo "einhorn-cpp $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "master: einhorn-cpp -n $n -m manual ${extra[*]} -b 127.0.0.1:$port,r -- einhorn-example-http --ack${WORKER_ARGS:+ $WORKER_ARGS}"
echo "load:   ${wrk_cmd[*]}"

# The baseline: the pool at rest.
"${wrk_cmd[@]}" -d "${idle}s" >"$BENCH_TMP/idle.out" 2>&1 || bench_fail "wrk failed: $(tail -5 "$BENCH_TMP/idle.out")"
idle_line=$(grep '^WRK ' "$BENCH_TMP/idle.out") || bench_fail "no WRK line: $(cat "$BENCH_TMP/idle.out")"

"${wrk_cmd[@]}" -d 3600s >"$BENCH_TMP/wrk.out" 2>&1 &
wrk_pid=$!
bench_track "$wrk_pid"
sleep 1
kill -0 "$wrk_pid" 2>/dev/null || bench_fail "wrk ended at once: $(cat "$BENCH_TMP/wrk.out")"
failures=0
times=()
before=$(ctl status --json | jq -r '[.workers[].pid] | sort | join(" ")')
for ((r = 1; r <= rounds; r++)); do
  t0=$EPOCHREALTIME
  rc=0
  ctl recycle --all --wait --wait-timeout 600 >"$BENCH_TMP/ctl.out" 2>&1 || rc=$?
  result=ok
  [ "$rc" -eq 0 ] || result="failed: einhornctl recycle --all --wait exited $rc: $(tail -2 "$BENCH_TMP/ctl.out" | tr '\n' ' ')"
  d=$(elapsed "$t0")
  times+=("$d")
  printf 'recycle --all %2d  %8.3f s  %s\n' "$r" "$d" "$result"
  [ "$result" = ok ] || failures=$((failures + 1))
done
sleep 1
kill -INT "$wrk_pid"
wait "$wrk_pid" || bench_fail "wrk failed: $(tail -5 "$BENCH_TMP/wrk.out")"
settle "$n" 120
after=$(ctl status --json | jq -r '[.workers[].pid] | sort | join(" ")')
kept=$(comm -12 <(tr ' ' '\n' <<<"$before" | sort) <(tr ' ' '\n' <<<"$after" | sort) | wc -l)
recycles=$(ctl metrics | awk '/^einhorn_worker_recycles_total\{cause="operator"\}/ {print $2}')

line=$(grep '^WRK ' "$BENCH_TMP/wrk.out") || bench_fail "no WRK line from wrk: $(cat "$BENCH_TMP/wrk.out")"
read -r _ ireq ic ird iwr ist ito ip50 ip99 imax <<<"$idle_line"
read -r _ req c rd wr st to p50 p99 max <<<"$line"
lost=$((c + rd + wr + st + to + ic + ird + iwr + ist + ito))
echo "recycled: $recycles workers (operator), $kept of the first $n pids still alive; $failures rounds failed"
echo "idle:     $ireq requests in ${idle} s, p50 $ip50 ms, p99 $ip99 ms, max $imax ms"
echo "recycle:  $req requests, $st non-2xx/3xx, socket errors: connect $c, read $rd, write $wr, timeout $to"
echo "latency:  p50 $p50 ms, p99 $p99 ms, max $max ms (idle p99 $ip99 ms)"
echo "recycle --all --wait (s): median (min-max) $(summary %.3f "${times[@]}")"
if [ "$lost" -ne 0 ] || [ "$failures" -ne 0 ] || [ "$kept" -ne 0 ]; then
  echo "FAILED: $lost requests lost, $failures rounds failed, $kept workers not recycled" >&2
  exit 1
fi
