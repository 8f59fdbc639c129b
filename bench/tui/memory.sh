#!/usr/bin/env bash
# Peak memory (VmHWM) of the review TUI open on a backlog of HOURS of audio
# (issue 13), in a real terminal: the backlog (bench/backlog.py) is imported
# (speech found, not transcribed), `omi-sync review` opens at 200x50 under
# tmux, every view is visited and the list scrolled end to end, then the
# process's high-water mark is read from /proc before it quits.
#
#   bench/tui/memory.sh [HOURS...]        (default 4)
set -euo pipefail
cd "$(dirname "$0")/../.."
[ $# -gt 0 ] || set -- 4
cargo build --quiet --bin omi-sync
bin="$(pwd)/${CARGO_TARGET_DIR:-target}/debug/omi-sync"

for h in "$@"; do
  work="$(mktemp -d)"
  session="omi-tui-mem-$$"
  trap 'tmux kill-session -t "$session" 2>/dev/null || true; rm -rf "$work"' EXIT
  desc="$(python3 bench/backlog.py "$h" "$work/in")"
  omi=("$bin" --data-dir "$work/data" --config "$work/none.toml")
  "${omi[@]}" import "$work/in" --quiet >/dev/null
  segments=$("${omi[@]}" segments --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["segments"]))')
  tmux new-session -d -s "$session" -x 200 -y 50 \
    "env NO_COLOR=1 DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent ${omi[*]} review; sleep 5"
  sleep 3
  pid=$(pgrep -f -n -- "--data-dir $work/data --config $work/none.toml review")
  for view in 1 2 3 4 5 3 1; do
    tmux send-keys -t "$session" "$view"; sleep 0.5
    tmux send-keys -t "$session" End; sleep 0.5
    tmux send-keys -t "$session" Home; sleep 0.5
  done
  hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  tmux send-keys -t "$session" q
  echo "backlog ${h} h ($desc, ${segments} segments): TUI peak memory $((hwm / 1024)) MiB"
  tmux kill-session -t "$session" 2>/dev/null || true
  rm -rf "$work"
done
