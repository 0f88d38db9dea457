#!/usr/bin/env bash
# Start-up benchmark: the spawn and memory scenarios of tests/bench/run.sh for the given N:
# time from launching einhorn-cpp to N workers ready with -m 0 and -m manual, beside the floor
# (N bare fork+execs of the same worker from a C++ loop, spawn_probe.cc), and the master's
# VmRSS with N idle workers. REPS runs each (default 1); median (min-max) when more.
# Usage: tests/bench/startup.sh [BUILD_DIR] [N...]     (default: build-bench, 100 500)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#                             cmake --build build-bench -j2
# (tests/bench/run.sh spawn memory does the build and uses 10 100 1000 / 10 1000.)
set -euo pipefail
BUILD=${1:-build-bench}
shift || true
counts=("$@")
[ ${#counts[@]} -gt 0 ] || counts=(100 500)
REPS=${REPS:-1}
SPAWN_COUNTS="${counts[*]}"
MEMORY_COUNTS="${counts[*]}"
command -v jq >/dev/null || { echo "startup.sh: jq is missing (scripts/install-deps bench)" >&2; exit 1; }
here=$(dirname "$0")
. "$here/lib/common.sh"
. "$here/scenarios/spawn.sh"
. "$here/scenarios/memory.sh"
bench_init
scenario_spawn
scenario_memory
print_table
