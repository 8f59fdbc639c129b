#!/usr/bin/env bash
# Decode speed and import time, side by side, medians of several runs.
#
#   bench/pipeline/run.sh [RUNS=5]
#
# 1. Decoding the demo backlog's Opus: omi-sync's FrameDecoder vs the Omi
#    backend's path (Python opuslib, frame by frame), interleaved runs.
# 2. `omi-sync import assets/demo` into a fresh data directory (copy, hash,
#    fsync, frame check, decode, Silero VAD, ledger writes), release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-5}
python3 -c "import opuslib" 2>/dev/null || { echo "needs: pip install opuslib (and the libopus0 package)" >&2; exit 2; }
cargo build --release --quiet --example decode_bench --bin omi-sync

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ours=(); ref=()
for i in $(seq "$runs"); do
  ours+=("$(target/release/examples/decode_bench 20 | python3 -c 'import json,sys; print(json.load(sys.stdin)["x_real_time"])')")
  ref+=("$(python3 bench/pipeline/decode_reference.py 20 | python3 -c 'import json,sys; print(json.load(sys.stdin)["x_real_time"])')")
done
mo=$(printf '%s\n' "${ours[@]}" | median); mr=$(printf '%s\n' "${ref[@]}" | median)
echo "decode (x real time, median of $runs): omi-sync $mo   backend/opuslib $mr   ratio $(python3 -c "print(round($mo/$mr,2))")"

times=()
for i in $(seq "$runs"); do
  d=$(mktemp -d)
  s=$(date +%s.%N)
  target/release/omi-sync --quiet --data-dir "$d/data" --config "$d/none.toml" import assets/demo > /dev/null
  e=$(date +%s.%N)
  times+=("$(python3 -c "print($e-$s)")")
  rm -rf "$d"
done
mt=$(printf '%s\n' "${times[@]}" | median)
audio=$(python3 -c "
import glob,struct
n=0
for p in glob.glob('assets/demo/*.bin'):
    b=open(p,'rb').read();i=0
    while i+4<=len(b):
        l=struct.unpack('<I',b[i:i+4])[0];n+=1;i+=4+l
print(n*0.02)")
echo "import of the demo backlog (${audio} s of audio, median of $runs): ${mt} s wall = $(python3 -c "print(round($audio/$mt))") x real time"
