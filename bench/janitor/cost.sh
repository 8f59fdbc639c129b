#!/usr/bin/env bash
# The janitor's cost with many deletions pending (issue 12): the time to work
# the schedule out (median of RUNS), the threads a running janitor adds, and
# the memory the schedule and the running janitor take.
#
#   bench/janitor/cost.sh [CAPTURES] [RUNS]     (default 10000 5)
#
# Prints one JSON object (see examples/janitor_cost.rs).
set -euo pipefail
cd "$(dirname "$0")/../.."
captures="${1:-10000}"
runs="${2:-5}"
cargo build --quiet --example janitor_cost
target/debug/examples/janitor_cost --captures "$captures" --runs "$runs"
