#!/usr/bin/env bash
# Time and peak memory (max RSS) of `omi-sync diagnose` (issue 14) on a card
# image of HOURS of records (examples/ring_image.rs) and on a data directory
# holding a backlog of HOURS of audio (bench/backlog.py, imported: speech
# found, not transcribed). Medians of RUNS runs each. Goal: under 10 s, and
# memory that does not grow with the backlog.
#
#   bench/diagnose/run.sh [HOURS] [RUNS]        (default 10 3)
#
# OMI_SYNC_BIN measures that omi-sync instead of this build's (a copy kept
# from before a change, to compare side by side). Needs GNU time at
# /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
hours="${1:-10}"
runs="${2:-3}"
cargo build --quiet --bin omi-sync --example ring_image
target="${CARGO_TARGET_DIR:-target}/debug"
bin="${OMI_SYNC_BIN:-$target/omi-sync}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Prints "median wall s, median max RSS MiB (exit codes)" of RUNS runs of
# the command (diagnose exits 3 when it finds problems: that is a result).
measure() {
  : > "$work/all"
  for _ in $(seq "$runs"); do
    code=0
    /usr/bin/time -f "%e %M" -o "$work/t" "$@" >/dev/null 2>"$work/err" || code=$?
    echo "$(cat "$work/t" | tail -1) $code" >> "$work/all"
  done
  python3 - "$work/all" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
wall = statistics.median(float(r[0]) for r in rows)
rss = statistics.median(int(r[1]) for r in rows) / 1024
print(f"{wall:.2f} s, {rss:.0f} MiB (exit {sorted({r[2] for r in rows})})")
PY
}

mkdir -p "$work/empty"
"$target/examples/ring_image" "$work/ring.img" "$hours" >/dev/null
echo "card image of ${hours} h: $(measure "$bin" --config "$work/none.toml" --data-dir "$work/empty" diagnose --image "$work/ring.img" --json)"

python3 bench/backlog.py "$hours" "$work/in" >/dev/null
"$bin" --data-dir "$work/data" --config "$work/none.toml" import "$work/in" --quiet >/dev/null
echo "data dir with ${hours} h: $(measure "$bin" --config "$work/none.toml" --data-dir "$work/data" diagnose --json)"
