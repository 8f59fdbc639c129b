#!/usr/bin/env bash
# Side-by-side speed of the pure-Rust Silero VAD and onnxruntime, in one run.
#
#   bench/vad/run.sh [SECONDS] [RUNS]        (defaults: 600 s of audio, 5 runs)
#
# Times, interleaved run by run on the same audio (tests/data/vad/parity.wav
# repeated to SECONDS):
#   * Rust SileroVad::probabilities (release build, single thread);
#   * Rust SileroVad::process_chunk once per 512-sample window;
#   * onnxruntime on silero_vad_16k_op15.onnx, 1 intra-op and 1 inter-op
#     thread, called per window exactly as silero-vad's OnnxWrapper does
#     (timed as a whole loop, and inside session.run only);
# and prints medians, x-real-time and the ratios.
#
# Needs: cargo; python3 with the pip packages onnxruntime and numpy; the
# silero-vad 6.2.3 wheel (pip download --no-deps silero-vad==6.2.3 -d DIR),
# found in $SILERO_WHEEL_DIR, /tmp/pipdl or the current directory, or given
# as $SILERO_WHEEL. Installs nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
seconds="${1:-600}"
runs="${2:-5}"

if ! command -v python3 >/dev/null; then
    echo "run.sh: python3 is required" >&2
    exit 2
fi
missing=$(python3 - <<'PY'
import importlib.util
print(" ".join(m for m in ("onnxruntime", "numpy") if importlib.util.find_spec(m) is None))
PY
)
if [ -n "$missing" ]; then
    echo "run.sh: missing pip packages: $missing" >&2
    echo "        install them with: python3 -m pip install $missing" >&2
    exit 2
fi

wheel_args=()
if [ -n "${SILERO_WHEEL:-}" ]; then
    wheel_args=(--wheel "$SILERO_WHEEL")
fi

echo "building the Rust benchmark (release)..." >&2
(cd "$root" && cargo build --release --quiet --example vad_bench)

exec python3 "$here/compare.py" \
    --rust "$root/target/release/examples/vad_bench" \
    --wav "$root/tests/data/vad/parity.wav" \
    --seconds "$seconds" --runs "$runs" "${wheel_args[@]}"
