#!/usr/bin/env bash
# Peak memory (max RSS) of the whole pipeline, `omi-sync --auto` = import +
# VAD + transcription with the real model, on synthetic backlogs of growing
# length. Goal: bounded, not growing with the backlog.
#
#   bench/stt/memory.sh [HOURS...]        e.g. bench/stt/memory.sh 0.25 1 4
#
# Each backlog is the demo's encoded audio (assets/demo, 255 s of audio with
# 91 s of speech) repeated: copy k of every phone-app file is written again
# with the WAL layout, its first k frames left out (so every copy has new
# bytes: the ledger stores identical files once) and its name's timestamp
# moved k * 90 min later, until the audio reaches HOURS. Runs a release build with the default workers and
# threads; prints hours, files, max RSS and the run's wall time.
#
# Needs OMI_SYNC_MODEL (ggml tiny.en) and GNU time at /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${OMI_SYNC_MODEL:?set OMI_SYNC_MODEL to a ggml model file}"
[ $# -gt 0 ] || set -- 0.25 1
cargo build --release --quiet --bin omi-sync

# Writes the backlog for $1 hours into $2.
make_backlog() {
  python3 - "$1" "$2" <<'EOF'
import glob, os, re, struct, sys
hours, out = float(sys.argv[1]), sys.argv[2]
os.makedirs(out, exist_ok=True)
demo = sorted(glob.glob("assets/demo/*.bin"))
def frames(body):
    out, i = [], 0
    while i + 4 <= len(body):
        l = struct.unpack("<I", body[i:i + 4])[0]
        out.append(body[i:i + 4 + l]); i += 4 + l
    return out
files = [(p, frames(open(p, "rb").read())) for p in demo]
total, k, written = 0.0, 0, 0
while total < hours * 3600:
    for p, fr in files:
        body = b"".join(fr[k:])
        name = os.path.basename(p)
        ts = int(re.search(r"_(\d+)\.bin$", name).group(1)) + k * 5400
        new = re.sub(r"_\d+\.bin$", f"_{ts}.bin", name)
        with open(os.path.join(out, new), "wb") as f:
            f.write(body)
        total += 0.02 * len(fr[k:]); written += 1
        if total >= hours * 3600:
            break
    k += 1
print(f"{written} files, {total / 3600:.2f} h of audio")
EOF
}

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
