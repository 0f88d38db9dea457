# Shared by tests/bench/run.sh, soak.sh, startup.sh and the scenarios (source it, bash only):
# every process started is tracked and stopped on exit, masters are started and polled the
# same way everywhere, and figures are summarised as "median (min-max)".
# The caller sets BUILD (a Release build dir with einhorn-cpp, einhornctl, einhorn-example-http)
# and runs bench_init before anything else.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bench_init() {
  BENCH_TMP=$(mktemp -d /tmp/einhorn-bench.XXXXXX)
  BENCH_PIDS=()
  BENCH_ROWS="$BENCH_TMP/rows.tsv"
  : >"$BENCH_ROWS"
  bin="$BUILD/einhorn-cpp"
  ctl="$BUILD/einhornctl"
  http_worker="$BUILD/einhorn-example-http"
  for b in "$bin" "$ctl" "$http_worker"; do
    [ -x "$b" ] || bench_fail "$b is missing: run tests/bench/run.sh (it builds them)"
  done
  # Absolute: the master resolves a relative command against its own directory anyway.
  bin=$(realpath "$bin")
  ctl=$(realpath "$ctl")
  http_worker=$(realpath "$http_worker")
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM HUP
}

bench_fail() {
  echo "bench: $*" >&2
  if [ -n "${LOG:-}" ] && [ -f "$LOG" ]; then
    echo "--- last lines of $LOG:" >&2
    tail -20 "$LOG" >&2
  fi
  exit 1
}

bench_note() { echo "[bench $(date +%T)] $*" >&2; }

# bench_track PID: stopped (TERM, then KILL after 30 s) by bench_cleanup.
bench_track() { BENCH_PIDS+=("$1"); }

# stop_pid PID: TERM, up to 30 s for it to go, then KILL; reaps it if it is our child.
stop_pid() {
  local pid=$1 i
  kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 3000; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    # A zombie child of ours answers kill -0 until reaped.
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" = Z ] && break
    sleep 0.01
  done
  kill -0 "$pid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] &&
    { bench_note "$pid ignored SIGTERM for 30 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; }
  wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
  local i
  trap - EXIT INT TERM HUP
  for ((i = ${#BENCH_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${BENCH_PIDS[i]}"; done
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$BENCH_TMP"
}

# build_tool NAME [FLAGS...]: tests/bench/NAME.cc compiled with plain g++ (libc and the
# standard library only) into $BUILD/bench-tools/NAME, when missing or older than the source.
build_tool() {
  local name=$1 src out
  shift
  src="$BENCH_DIR/$name.cc"
  out="$BUILD/bench-tools/$name"
  if [ ! -x "$out" ] || [ "$src" -nt "$out" ]; then
    mkdir -p "$BUILD/bench-tools"
    g++ -O2 -std=c++20 -Wall -Wextra "$@" -o "$out" "$src" || bench_fail "cannot build $src"
  fi
  echo "$out"
}

# launch_master NAME [FLAG...] -- CMD...: starts einhorn-cpp in the background with its own
# command socket and log in $BENCH_TMP; sets MASTER, SOCK, LOG. Does not wait.
launch_master() {
  local name=$1
  shift
  SOCK="$BENCH_TMP/$name.sock"
  LOG="$BENCH_TMP/$name.log"
  rm -f "$SOCK"
  TMPDIR="$BENCH_TMP" EINHORN_EXAMPLE_QUIET=1 "$bin" -d "$SOCK" "$@" 2>"$LOG" &
  MASTER=$!
  bench_track "$MASTER"
}

# wait_socket: until the master's command socket exists (up to 60 s).
wait_socket() {
  local deadline=$((SECONDS + 60))
  until [ -S "$SOCK" ]; do
    kill -0 "$MASTER" 2>/dev/null || bench_fail "the master died at start"
    [ $SECONDS -lt $deadline ] || bench_fail "no command socket after 60 s"
    sleep 0.01
  done
}

# start_master NAME [FLAG...] -- CMD...: launch_master, then wait for its socket.
start_master() {
  launch_master "$@"
  wait_socket
}

stop_master() {
  [ -n "${MASTER:-}" ] || return 0
  stop_pid "$MASTER"
  MASTER=
}

ctl() { "$ctl" -d "$SOCK" "$@"; }

# settle N [TIMEOUT_S]: until N ready, none booting, none draining (polls every 50 ms). A status
# that gets no answer is asked again: the master answers nothing while it forks a batch.
settle() {
  local n=$1 deadline=$((SECONDS + ${2:-300})) got=
  while :; do
    got=$(ctl status --json 2>/dev/null |
      jq -r '"\(.counts.ready) \(.counts.booting) \(.counts.draining)"' 2>/dev/null) ||
      got="(no answer to status)"
    [ "$got" = "$n 0 0" ] && return 0
    [ $SECONDS -lt $deadline ] || bench_fail "pool not settled: ready booting draining = $got, want $n 0 0"
    sleep 0.05
  done
}

# listen_port: the port the master bound for -b 127.0.0.1:0, from its log.
listen_port() {
  local port deadline=$((SECONDS + 30))
  while :; do
    port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9][0-9]*\) .*/\1/p' "$LOG" | head -1)
    [ -n "$port" ] && { echo "$port"; return 0; }
    [ $SECONDS -lt $deadline ] || bench_fail "no 'listening on 127.0.0.1:PORT' in $LOG"
    sleep 0.01
  done
}

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# cpu_ticks PID: utime + stime in clock ticks (the fields after the command name, which may
# hold spaces, so split after its closing parenthesis).
cpu_ticks() {
  local stat
  stat=$(cat "/proc/$1/stat")
  stat=${stat##*) }
  awk '{ print $12 + $13 }' <<<"$stat"
}

# elapsed T0 [T1]: seconds between two $EPOCHREALTIME values (T1 defaults to now).
elapsed() { awk -v a="$1" -v b="${2:-$EPOCHREALTIME}" 'BEGIN { printf "%.6f", b - a }'; }

# summary FMT VALUE...: "median (min-max)" with printf FMT for each number; "-" if none.
summary() {
  local fmt=$1
  shift
  [ $# -gt 0 ] || { echo "-"; return 0; }
  printf '%s\n' "$@" | sort -g | awk -v f="$fmt" '
    { v[NR] = $1 }
    END {
      med = NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      if (NR == 1) { printf f "\n", med; exit }
      printf f " (" f "-" f ")\n", med, v[1], v[NR] }'
}

# row SCENARIO CASE FIGURE VALUE [FLOOR [NOTES]]: one line of the final table.
row() {
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "${5:--}" "${6:-}" >>"$BENCH_ROWS"
  bench_note "$1 | $2 | $3 | $4 | ${5:--}"
}

print_table() {
  echo "| scenario | case | figure | einhorn-cpp: median (min-max) | floor / reference | notes |"
  echo "|---|---|---|---|---|---|"
  awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6 }' "$BENCH_ROWS"
}
