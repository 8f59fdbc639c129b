#!/usr/bin/env bash
# Native vs portable whisper.cpp on the demo: `omi-sync --auto --source demo
# --dry-run -v` into a fresh data directory, ROUNDS rounds with the two
# binaries interleaved, then the median transcription-stage time and whole-run
# time of each, and their ratio.
#
#   bench/portable/compare.sh NATIVE_BIN PORTABLE_BIN [ROUNDS]   (default 5)
#
# NATIVE_BIN: a release build tuned to this machine (cargo install --path .);
# PORTABLE_BIN: the package's (packaging/build-deb: target/dist/omi-sync).
# Uses OMI_SYNC_MODEL (default ../shared/models/ggml-tiny.en.bin).
set -euo pipefail
native="$1" portable="$2" rounds="${3:-5}"
cd "$(dirname "$0")/../.."
export OMI_SYNC_MODEL="${OMI_SYNC_MODEL:-$(cd ../shared/models && pwd)/ggml-tiny.en.bin}"
export NO_COLOR=1
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# One run: prints "<transcribe seconds> <whole seconds>".
run() {
  local bin="$1" dir="$work/data-$RANDOM$RANDOM" t0 t1 stage
  t0="$(date +%s.%N)"
  stage="$("$bin" --data-dir "$dir" --config /dev/null --auto --source demo --dry-run -v 2>&1 >/dev/null |
    sed -n 's/^transcribe: .* \[\([0-9.]*\)s\]$/\1/p')"
  t1="$(date +%s.%N)"
  rm -rf "$dir"
  [ -n "$stage" ] || { echo "compare: $bin did not transcribe" >&2; exit 1; }
  echo "$stage $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')"
}

median() { sort -n | awk '{v[NR]=$1} END {print (NR%2 ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2)}'; }

: >"$work/native" && : >"$work/portable"
for ((i = 1; i <= rounds; i++)); do
  run "$native" >>"$work/native"
  run "$portable" >>"$work/portable"
  echo "round $i: native $(tail -1 "$work/native"), portable $(tail -1 "$work/portable")" >&2
done
for kind in native portable; do
  printf '%-9s transcribe %6.2f s   whole run %6.2f s\n' "$kind" \
    "$(cut -d' ' -f1 "$work/$kind" | median)" "$(cut -d' ' -f2 "$work/$kind" | median)"
done
nt="$(cut -d' ' -f1 "$work/native" | median)" pt="$(cut -d' ' -f1 "$work/portable" | median)"
awk -v p="$pt" -v n="$nt" 'BEGIN { printf "portable / native transcription time: %.2f\n", p / n }'
