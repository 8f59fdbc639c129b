#!/usr/bin/env bash
# Overlapped stages: a slow pull alone vs the whole `--auto --dry-run` job on
# the same ring, side by side (issue 10, item 6).
#
#   bench/pipeline/overlap.sh [HOURS=1] [RATE=32000] [RUNS=1]
#
# The ring holds HOURS of real speech (the demo's conversation again and
# again, three minutes apart: a conversation every eight minutes) and the
# simulated pendant sends it at RATE bytes a second (32 000: the consumer
# pendant over BLE). "pull" is the pull stage's own time in `omi-sync pull
# --sim` (its link time; the command's VAD afterwards is not counted); "auto" is the whole
# `--auto --dry-run` job from start to exit: pull, VAD, transcription with
# tiny.en, push plan. Goal: auto within 10 % of pull. Needs OMI_SYNC_MODEL.
set -euo pipefail
cd "$(dirname "$0")/../.."
hours=${1:-1}; rate=${2:-32000}; runs=${3:-1}
: "${OMI_SYNC_MODEL:?set OMI_SYNC_MODEL to a ggml Whisper model (tiny.en)}"
cargo build --quiet --example ring_image --bin omi-sync
bin=${OMI_SYNC_BIN:-target/debug/omi-sync}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
target/debug/examples/ring_image "$work/ring.img" "$hours" speech
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
pulls=(); autos=()
for i in $(seq "$runs"); do
  cp "$work/ring.img" "$work/a.img"
  "$bin" --data-dir "$work/p$i" --config "$work/none.toml" pull --json --sim "$work/a.img" \
    --sim-faults "rate=$rate" > "$work/pull.json"
  pulls+=("$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["link"]["elapsed_s"])' "$work/pull.json")")
  cp "$work/ring.img" "$work/b.img"
  s=$(date +%s.%N)
  "$bin" --data-dir "$work/a$i" --config "$work/none.toml" --auto --dry-run --json \
    --source "sim:$work/b.img" --sim-faults "rate=$rate" > "$work/auto.json"
  e=$(date +%s.%N)
  autos+=("$(python3 -c "print(round($e-$s,2))")")
  python3 - "$work/auto.json" <<'PY'
import json,sys
last=[json.loads(l) for l in open(sys.argv[1])][-1]["report"]
t=last["transcribe"] or {}
print(f'  auto run: {last["conversations"]} conversations, {last["vad"]["segments"]} segments, '
      f'{t.get("speech",0)} transcribed, {last["pending_segments"]} pending')
PY
  echo "run $i: pull ${pulls[-1]} s   auto ${autos[-1]} s"
done
mp=$(printf '%s\n' "${pulls[@]}" | median); ma=$(printf '%s\n' "${autos[@]}" | median)
echo "median of $runs: pull alone $mp s   --auto --dry-run $ma s   ratio $(python3 -c "print(round($ma/$mp,3))")"
