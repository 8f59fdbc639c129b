#!/usr/bin/env python3
"""Writes a phone-app backlog of HOURS of audio into OUT, for the memory
benchmarks (bench/stt/memory.sh, bench/tui/memory.sh).

    bench/backlog.py HOURS OUT

The backlog is the demo's encoded audio (assets/demo, 255 s of audio with
91 s of speech) repeated: copy k of every phone-app file is written again
with the WAL layout, its first k frames left out (so every copy has new
bytes: the ledger stores identical files once) and its name's timestamp
moved k * 90 min later, until the audio reaches HOURS. Run it from the
repository root. Prints how many files and hours it wrote.
"""
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
