#!/usr/bin/env bash
# Makes the STT test fixtures from scripts/stt/utterances.txt:
#   1. espeak-ng speaks each sentence (voice per line, 160 wpm), sox turns it
#      into 16 kHz mono signed 16-bit raw PCM;
#   2. `make_fixtures` (an ignored test in tests/integration/stt_fixtures.rs) encodes the
#      utterances back to back with Opus exactly as the pendant does (16 kHz
#      mono, 20 ms frames, 32 kbps VBR, complexity 3, restricted low delay),
#      writes tests/data/stt/utterances.bin (phone-app WAL layout:
#      [u32 LE length][frame]...) and tests/data/stt/utterances.tsv (index,
#      voice, first frame, frame count, text).
# Rerun only to change the fixtures; tests never call espeak-ng.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
i=0
: > "$work/list.tsv"
grep -v '^#' "$here/utterances.txt" | while IFS='|' read -r voice text; do
  [ -z "$text" ] && continue
  espeak-ng -v "$voice" -s 160 -w "$work/u$i.wav" "$text"
  sox -q "$work/u$i.wav" -r 16000 -c 1 -b 16 -e signed-integer "$work/u$i.raw"
  printf '%s\t%s\t%s\n' "$work/u$i.raw" "$voice" "$text" >> "$work/list.tsv"
  i=$((i + 1))
done
cd "$root"
STT_FIXTURE_LIST="$work/list.tsv" STT_FIXTURE_OUT="$root/tests/data/stt" \
  cargo test --test integration stt_fixtures -- --ignored make_fixtures --nocapture
ls -l "$root/tests/data/stt"
