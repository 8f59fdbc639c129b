#!/usr/bin/env bash
# Peak memory (max RSS) of the whole pipeline, `omi-sync --auto` = import +
# VAD + transcription with the real model, on synthetic backlogs of growing
# length. Goal: bounded, not growing with the backlog.
#
#   bench/stt/memory.sh [HOURS...]        e.g. bench/stt/memory.sh 0.25 1 4
#
# Each backlog is the demo's audio repeated (bench/backlog.py). Runs a
# release build with the default workers and threads; prints hours, files,
# max RSS and the run's wall time.
#
# Needs OMI_SYNC_MODEL (ggml tiny.en) and GNU time at /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${OMI_SYNC_MODEL:?set OMI_SYNC_MODEL to a ggml model file}"
[ $# -gt 0 ] || set -- 0.25 1
cargo build --release --quiet --bin omi-sync

make_backlog() { python3 bench/backlog.py "$1" "$2"; }

for h in "$@"; do
  work="$(mktemp -d)"
  desc="$(make_backlog "$h" "$work/in")"
  /usr/bin/time -v "${CARGO_TARGET_DIR:-target}"/release/omi-sync --quiet --data-dir "$work/data" \
    --config "$work/none.toml" --auto --dry-run --source "$work/in" >/dev/null 2>"$work/time.txt" || {
    grep -v "^\t" "$work/time.txt" | tail -20 >&2; exit 1; }
  rss=$(awk -F: '/Maximum resident set size/ {gsub(/ /,"",$2); print $2}' "$work/time.txt")
  wall=$(awk '/Elapsed \(wall clock\)/ {print $NF}' "$work/time.txt")
  pending=$("${CARGO_TARGET_DIR:-target}"/release/omi-sync --data-dir "$work/data" --config "$work/none.toml" segments 2>/dev/null | grep -c pending || true)
  echo "backlog ${h} h ($desc): max RSS $((rss / 1024)) MiB, wall $wall, segments still pending: $pending"
  rm -rf "$work"
done
