#!/usr/bin/env python3
"""The faster-whisper side of the whole-pipeline comparison: the demo
backlog's .bin files decoded as the Omi backend does (opuslib, frame by
frame), then faster-whisper with its Silero VAD filter (vad_filter=True) on
each file, greedy, English. Times decode + VAD + transcription together and
prints one JSON line: audio seconds, wall seconds, x-real-time, WER against
assets/demo/transcript.tsv.

usage: pipeline_faster_whisper.py CT2_MODEL_DIR --threads T [--compute-type float32|int8]
"""
import argparse
import glob
import json
import struct
import time

import numpy as np
import opuslib
from faster_whisper import WhisperModel

from wer import wer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--compute-type", default="float32")
    a = ap.parse_args()
    ref = " ".join(l.rstrip("\n").split("\t")[3] for l in open("assets/demo/transcript.tsv")
                   if l.strip() and not l.startswith("#"))
    m = WhisperModel(a.model, device="cpu", cpu_threads=a.threads, num_workers=1,
                     compute_type=a.compute_type)
    t = time.perf_counter()
    hyp, audio = [], 0.0
    for path in sorted(glob.glob("assets/demo/*.bin")):
        data = open(path, "rb").read()
        dec = opuslib.Decoder(16000, 1)
        pcm = bytearray()
        i = 0
        while i + 4 <= len(data):
            (n,) = struct.unpack("<I", data[i:i + 4])
            pcm += dec.decode(data[i + 4:i + 4 + n], frame_size=320)
            i += 4 + n
        x = np.frombuffer(bytes(pcm), dtype=np.int16).astype(np.float32) / 32768.0
        audio += len(x) / 16000
        segs, _ = m.transcribe(x, language="en", beam_size=1, best_of=1, temperature=0.0,
                               condition_on_previous_text=False, vad_filter=True)
        hyp.extend(s.text.strip() for s in segs)
    wall = time.perf_counter() - t
    print(json.dumps({"impl": f"faster-whisper {a.compute_type}", "audio_s": round(audio, 1),
                      "wall_s": round(wall, 2), "x_real_time": round(audio / wall, 2),
                      "wer": round(wer(ref, " ".join(hyp)), 4)}))


if __name__ == "__main__":
    main()
