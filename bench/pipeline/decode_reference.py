#!/usr/bin/env python3
"""The Omi backend's decode path (routers/sync.py: opuslib, one Decoder per
file, decode frame by frame) over the same demo .bin files, timed. Prints one
line of JSON like examples/decode_bench.rs. Needs `pip install opuslib` and
libopus0."""
import glob
import json
import struct
import sys
import time

import opuslib

repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 20
files = []
for path in sorted(glob.glob("assets/demo/*.bin")):
    data = open(path, "rb").read()
    frames, i = [], 0
    while i + 4 <= len(data):
        (n,) = struct.unpack("<I", data[i : i + 4])
        frames.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    files.append(frames)

samples = 0
start = time.perf_counter()
for _ in range(repeats):
    for frames in files:
        dec = opuslib.Decoder(16000, 1)
        pcm = bytearray()
        for f in frames:
            pcm += dec.decode(f, frame_size=320)
        samples += len(pcm) // 2
wall = time.perf_counter() - start
audio = samples / 16000.0
print(json.dumps({"impl": "backend (python opuslib)", "audio_s": round(audio, 1), "wall_s": round(wall, 4), "x_real_time": round(audio / wall)}))
