#!/usr/bin/env bash
# Live migration from Ruby Einhorn to einhorn-cpp under load: Ruby Einhorn 1.1.1 runs N
# example HTTP workers (-m manual, --ack) with --reexec-as=einhorn-cpp; wrk sends GET / to
# the -b port for DURATION seconds, and after a third of it `upgrade` goes to the Ruby master,
# which execs einhorn-cpp: it adopts the workers and upgrades them. Prints wrk's report
# (failed requests are its "Socket errors" and "Non-2xx" lines), the upgrade's messages, and
# checks that the same pid now answers einhornctl status. Figures only.
# Usage: tests/bench/ruby_migration.sh [BUILD_DIR]   (default: build)
# Knobs: N (default 4), DURATION (default 10), CONNECTIONS (default 16), THREADS (default 2),
#        EINHORN_REFERENCE (default ../shared/reference/einhorn-1.1.1 beside the source).
set -euo pipefail
build=${1:-build}
n=${N:-4}
duration=${DURATION:-10}
connections=${CONNECTIONS:-16}
threads=${THREADS:-2}
ref=${EINHORN_REFERENCE:-$(cd "$(dirname "$0")/../.." && pwd)/../shared/reference/einhorn-1.1.1}
bin=$(realpath "$build/einhorn-cpp")
ctl=$(realpath "$build/einhornctl")
worker=$(realpath "$build/einhorn-example-http")
command -v wrk >/dev/null || { echo "wrk is needed (apt-get install wrk)"; exit 1; }
command -v ruby >/dev/null || { echo "ruby is needed"; exit 1; }
[ -f "$ref/bin/einhorn" ] || { echo "Ruby Einhorn's source is not at $ref"; exit 1; }

tmp=$(mktemp -d)
master=
cleanup() {
  if [ -n "$master" ]; then kill -TERM "$master" 2>/dev/null || true; wait "$master" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sock="$tmp/einhorn.sock"
EINHORN_EXAMPLE_QUIET=1 TMPDIR=$tmp ruby -I"$ref/lib" "$ref/bin/einhorn" -d "$sock" -e "$tmp/pid" \
  --reexec-as="$bin" -b "127.0.0.1:$port,r" -n "$n" -m manual -- "$worker" --ack \
  >"$tmp/master.log" 2>&1 &
master=$!
for _ in $(seq 100); do
  grep -q "Up to $n / $n manual ACKs" "$tmp/master.log" && break
  sleep 0.1
done
grep -q "Up to $n / $n manual ACKs" "$tmp/master.log" || { cat "$tmp/master.log"; exit 1; }
echo "Ruby Einhorn pid $master serving 127.0.0.1:$port with $n workers"
echo "wrk -t$threads -c$connections -d${duration}s http://127.0.0.1:$port/"
wrk -t"$threads" -c"$connections" -d"${duration}s" "http://127.0.0.1:$port/" >"$tmp/wrk.txt" 2>&1 &
load=$!
sleep "$(echo "$duration / 3" | bc -l)"
echo "--- upgrade sent to the Ruby master at +$(echo "$duration / 3" | bc -l | cut -c1-4) s:"
ruby -rsocket -e '
  s = UNIXSocket.new(ARGV[0]); s.write("{\"id\":\"migrate\",\"command\":\"upgrade\"}\n")
  while (line = s.gets)
    msg = line.chomp.gsub("%0A", "\n").gsub("%25", "%")
    puts msg[/message: (.*)$/, 1]
    break unless msg.include?("wait: true")
  end' "$sock"
wait "$load"
echo "--- wrk:"
cat "$tmp/wrk.txt"
echo "--- after:"
echo "master pid $master is now $(readlink /proc/$master/exe)"
"$ctl" -d "$sock" status | head -3
