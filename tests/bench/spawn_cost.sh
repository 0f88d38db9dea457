#!/usr/bin/env bash
# Spawn-cost benchmark (tests/bench/scenarios/spawncost.sh): start to N workers ready and the
# master's CPU per spawn, beside the fork / vfork / posix_spawn floor of the same worker, and
# the master's CPU share with crash-looping slots. REPS runs each (default 1); median (min-max).
# Usage: tests/bench/spawn_cost.sh [BUILD_DIR]      (default: build-bench)
# Build a release tree first: cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DEINHORN_TESTS=OFF
#                             cmake --build build-bench -j2 --target einhorn-cpp einhornctl einhorn-example-http
# Knobs (see the scenario): SPAWNCOST_COUNTS, SPAWNCOST_MODES, SPAWNCOST_METHODS, CRASH_SLOTS,
# CRASH_BACKOFF, CRASH_SECONDS (0 skips the crash loop), REPS.
set -euo pipefail
BUILD=${1:-build-bench}
REPS=${REPS:-1}
command -v jq >/dev/null || { echo "spawn_cost.sh: jq is missing (scripts/install-deps bench)" >&2; exit 1; }
here=$(dirname "$0")
. "$here/lib/common.sh"
. "$here/scenarios/spawncost.sh"
bench_init
scenario_spawncost
print_table
