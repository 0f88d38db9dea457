#!/usr/bin/env bash
# Background-job benchmark: the beanstalkd worker of examples/jobs (Ruby + beaneater) under
# einhorn-cpp -m manual, on a private beanstalkd on a loopback port.
#  1. Throughput: jobs/s with 1, 2, 4 and 8 workers (or the counts given) for an I/O-bound job
#     (the "emails" tube: sleeps JOB_MS, default 5 ms) and a CPU-bound one (the "thumbnails"
#     tube: JOB_WORK rounds of SHA-256 over 1 KiB, default 250, a few ms on one core). Each run
#     enqueues JOBS jobs on a paused tube, unpauses it and times until every job has recorded
#     its end (JOBS_RESULTS, see examples/jobs/lib/consumers.rb). The workers are booted and
#     idle before the clock starts.
#  2. Upgrades under load: UPGRADES back-to-back `einhornctl upgrade --wait` on a pool of
#     UPGRADE_N workers busy with a backlog of 5 ms jobs; then the accounting: jobs started by
#     a worker that never finished there (cut short: target 0), jobs run twice, jobs lost.
# Figures only, no assertion on speed (with fewer cores than workers, the CPU-bound rows stop
# scaling at the number of cores).
# Usage: tests/bench/jobs.sh [BUILD_DIR] [N...]     (default: build-bench, 1 2 4 8)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#                             cmake --build build-bench -j2
# Needs: beanstalkd, ruby, ruby-beaneater (scripts/install-deps test).
# Knobs (environment): JOBS (per run, default 1000), JOB_MS (default 5), JOB_WORK (default
# 250), UPGRADES (default 2), UPGRADE_N (default 4), UPGRADE_JOBS (default 3000),
# KEEP_LOGS=DIR (copy the masters' logs there).
set -euo pipefail
build=${1:-build-bench}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(1 2 4 8)
jobs=${JOBS:-1000}
job_ms=${JOB_MS:-5}
job_work=${JOB_WORK:-250}
upgrades=${UPGRADES:-2}
upgrade_n=${UPGRADE_N:-4}
upgrade_jobs=${UPGRADE_JOBS:-3000}
keep_logs=${KEEP_LOGS:-}
bin="$build/einhorn-cpp"
ctl="$build/einhornctl"
for b in "$bin" "$ctl"; do
  [ -x "$b" ] || { echo "build $b first (see the header of this script)"; exit 1; }
done
for p in beanstalkd ruby jq; do
  command -v "$p" >/dev/null || { echo "$p is needed (scripts/install-deps test)"; exit 1; }
done
ruby -e 'require "beaneater"' 2>/dev/null || { echo "the beaneater gem is needed (ruby-beaneater)"; exit 1; }
example=$(realpath "$(dirname "$0")/../../examples/jobs")

tmp=$(mktemp -d)
master=
sock=
log=
queue_pid=
stop_master() {
  [ -n "$master" ] || return 0
  kill -TERM "$master" 2>/dev/null || true
  wait "$master" 2>/dev/null || true
  master=
  if [ -n "$keep_logs" ] && [ -n "$log" ] && [ -f "$log" ]; then
    mkdir -p "$keep_logs" && cp "$log" "$keep_logs/"
  fi
}
cleanup() {
  stop_master
  if [ -n "$queue_pid" ]; then
    kill -TERM "$queue_pid" 2>/dev/null || true
    wait "$queue_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

fail() {
  echo "$*" >&2
  [ -n "$log" ] && [ -f "$log" ] && { echo "--- last lines of $log:" >&2; tail -20 "$log" >&2; }
  exit 1
}

# beanstalkd on a free loopback port: tries random ports until one is its own.
for ((try = 0; try < 20; try++)); do
  port=$((20000 + RANDOM % 20000))
  beanstalkd -l 127.0.0.1 -p "$port" 2>"$tmp/beanstalkd.log" &
  queue_pid=$!
  up=
  for ((i = 0; i < 200; i++)); do
    kill -0 "$queue_pid" 2>/dev/null || break
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then up=1; break; fi
    sleep 0.01
  done
  [ -n "$up" ] && break
  wait "$queue_pid" 2>/dev/null || true
  queue_pid=
done
[ -n "$queue_pid" ] || fail "could not start beanstalkd"
export BEANSTALKD_URL="127.0.0.1:$port"

# bs COMMAND: one beanstalkd command, prints the first reply line.
bs() {
  local reply
  exec 3<>"/dev/tcp/127.0.0.1/$port"
  printf '%s\r\n' "$1" >&3
  IFS= read -r reply <&3
  exec 3>&-
  printf '%s\n' "${reply%$'\r'}"
}

# start_master NAME N RESULTS: a pool of N job workers writing to RESULTS.
start_master() {
  local name=$1 n=$2
  sock="$tmp/$name.sock"
  log="$tmp/$name.log"
  TMPDIR="$tmp" JOBS_RESULTS="$3" JOBS_SLEEP_MS="$job_ms" JOBS_CPU_WORK="$job_work" \
    "$bin" -d "$sock" -n "$n" -m manual -- "$example/bin/work" 2>"$log" &
  master=$!
  until [ -S "$sock" ]; do
    kill -0 "$master" 2>/dev/null || fail "master died"
    sleep 0.01
  done
}

# settle N: until N ready, none booting, none draining (polls every 20 ms, up to 120 s).
settle() {
  local n=$1 deadline=$((SECONDS + 120)) got=
  while :; do
    got=$("$ctl" -d "$sock" status --json |
      jq -r '"\(.counts.ready) \(.counts.booting) \(.counts.draining)"') || fail "status failed"
    [ "$got" = "$n 0 0" ] && return 0
    [ $SECONDS -lt $deadline ] || fail "pool not settled after 120 s: ready booting draining = $got"
    sleep 0.02
  done
}

# wait_done RESULTS COUNT: until COUNT jobs recorded their end (up to 600 s).
wait_done() {
  local deadline=$((SECONDS + 600)) got
  while :; do
    got=$(grep -c '^done ' "$1" 2>/dev/null || true)
    [ "${got:-0}" -ge "$2" ] && return 0
    [ $SECONDS -lt $deadline ] || fail "only $got of $2 jobs done after 600 s"
    sleep 0.02
  done
}

echo "== 1. throughput, $jobs jobs per run, $(nproc) CPUs"
printf '%-8s %-34s %6s %9s %9s %8s\n' workers job jobs seconds jobs/s speedup
for kind in emails thumbnails; do
  case $kind in
    emails) what="sleep ${job_ms} ms (emails)" ;;
    thumbnails) what="CPU, ${job_work} x SHA-256 1K (thumbnails)" ;;
  esac
  base=
  for n in "${counts[@]}"; do
    results="$tmp/$kind-$n.results"
    start_master "$kind-$n" "$n" "$results"
    settle "$n"
    [ "$(bs "pause-tube $kind 3600")" = PAUSED ] || fail "pause-tube $kind failed"
    ruby "$example/bin/produce" "$jobs" "$kind" >/dev/null || fail "produce failed"
    t0=$EPOCHREALTIME
    [ "$(bs "pause-tube $kind 0")" = PAUSED ] || fail "unpause $kind failed"
    wait_done "$results" "$jobs"
    t1=$EPOCHREALTIME
    stop_master
    read -r secs rate < <(awk -v a="$t0" -v b="$t1" -v j="$jobs" \
      'BEGIN { printf "%.3f %.1f\n", b - a, j / (b - a) }')
    [ -n "$base" ] || base=$rate
    printf '%-8d %-34s %6d %9s %9s %7.2fx\n' "$n" "$what" "$jobs" "$secs" "$rate" \
      "$(awk -v r="$rate" -v b="$base" 'BEGIN { print r / b }')"
  done
done

echo
echo "== 2. $upgrades x einhornctl upgrade --wait, $upgrade_n workers busy with $upgrade_jobs jobs of ${job_ms} ms"
results="$tmp/upgrade.results"
start_master upgrade "$upgrade_n" "$results"
settle "$upgrade_n"
FIRST_ID=1 ruby "$example/bin/produce" "$upgrade_jobs" emails >/dev/null || fail "produce failed"
t0=$EPOCHREALTIME
for ((i = 0; i < upgrades; i++)); do
  "$ctl" -d "$sock" upgrade --wait >"$tmp/ctl.out" 2>"$tmp/ctl.err" ||
    fail "einhornctl upgrade --wait exited $?: $(cat "$tmp/ctl.err")"
done
t1=$EPOCHREALTIME
left=$(ruby -rbeaneater -e \
  'puts Beaneater.new(ENV["BEANSTALKD_URL"]).tubes["emails"].stats.current_jobs_ready')
wait_done "$results" "$upgrade_jobs"
settle "$upgrade_n"
drained=$(grep -c ': drained after ' "$log" || true)
stop_master
awk -v secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')" \
  -v left="$left" -v total="$upgrade_jobs" -v drained="$drained" '
  $1 == "start" { started[$2 " " $3] = 1; runs[$2]++ }
  $1 == "done" { done[$2 " " $3] = 1; finished[$2] = 1 }
  END {
    for (k in started) if (!(k in done)) cut++
    for (j in runs) if (runs[j] > 1) twice++
    for (j = 1; j <= total; j++) if (!(j in finished)) lost++
    printf "%-44s %s\n", "upgrades took (s)", secs
    printf "%-44s %d\n", "jobs still queued after the upgrades", left
    printf "%-44s %d\n", "workers drained", drained
    printf "%-44s %d\n", "jobs in flight cut short (target 0)", cut
    printf "%-44s %d\n", "jobs run twice", twice
    printf "%-44s %d\n", "jobs lost", lost
  }' "$results"
