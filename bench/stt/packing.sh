#!/usr/bin/env bash
# Packed windows vs one Whisper call per segment on the fixture backlog (60
# utterances of 1-4 s), same model and threads, side by side; medians.
#   bench/stt/packing.sh [THREADS] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo bench --bench stt -- packing --threads "${1:-2}" --runs "${2:-3}"
