#!/usr/bin/env bash
# The benchmark entry point: builds einhorn-cpp in Release, checks its tools, runs the chosen
# scenarios and prints ONE markdown table, each figure the median of REPS runs with min-max.
#
#   tests/bench/run.sh [all | spawn memory upgrade zerodowntime control crashloop ...]
#
# Scenarios (each file in tests/bench/scenarios/ says how it measures and its knobs):
#   spawn         start to N workers ready, N = 10 100 1000, -m 0 and -m manual, beside the
#                 floor: N bare fork+execs of the same worker from a C++ loop (spawn_probe.cc)
#   memory        the master's VmRSS with 10 and 1000 idle workers
#   upgrade       wall time of `einhornctl upgrade --wait` with 10 and 100 workers
#   zerodowntime  wrk on loopback: requests, failures, p99; baseline, upgrades every 2 s,
#                 reloads every 2 s; with keep-alive and with Connection: close
#   control       p50/p99 round trip of `status` and `inc` with 1000 workers
#   crashloop     master CPU% and spawns/s over 20 s of an instantly-exiting worker
#   spawncost     (not in all) the master's CPU per spawn and 1000 ready beside the fork, vfork
#                 and posix_spawn floors; CPU share of 100 crash-looping slots over 60 s
# Environment: BUILD (default build-bench), REPS (default 3), OUT=FILE (also write the table
# there), BENCH_KEEP=1 (keep the logs in /tmp/einhorn-bench.*), and each scenario's knobs.
# Needs: g++, cmake, the build dependencies, jq and wrk (`scripts/install-deps bench`).
# Figures only: nothing here fails on a slow result, only when a run cannot be done.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build-bench}
REPS=${REPS:-3}
all=(spawn memory upgrade zerodowntime control crashloop)

scenarios=()
for s in "${@:-all}"; do
  case $s in
    all) scenarios+=("${all[@]}") ;;
    spawn | memory | upgrade | zerodowntime | control | crashloop | spawncost) scenarios+=("$s") ;;
    -h | --help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown scenario '$s' (one of: all ${all[*]})" >&2; exit 2 ;;
  esac
done
[[ $REPS =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: REPS must be a positive integer" >&2; exit 2; }

missing=()
for tool in g++ cmake jq wrk; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "run.sh: missing ${missing[*]}: install them with scripts/install-deps bench" >&2
  exit 1
fi

echo "[bench] building $BUILD (Release)" >&2
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF >/dev/null
cmake --build "$BUILD" -j2 --target einhorn-cpp einhornctl einhorn-example-http >/dev/null

. tests/bench/lib/common.sh
for s in "${all[@]}" spawncost; do . "tests/bench/scenarios/$s.sh"; done
bench_init

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%FT%TZ)
for s in "${scenarios[@]}"; do
  bench_note "scenario $s"
  "scenario_$s"
done

{
  echo "einhorn-cpp $(git rev-parse --short HEAD 2>/dev/null || echo '?'), $(nproc) CPUs," \
    "$(uname -r), REPS=$REPS, started $started; load average before $load_before," \
    "after $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "command: BUILD=$BUILD REPS=$REPS tests/bench/run.sh ${scenarios[*]}"
  echo
  print_table
} | tee "${OUT:-/dev/null}"
