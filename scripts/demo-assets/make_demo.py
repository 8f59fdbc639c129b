#!/usr/bin/env python3
"""Builds the built-in demo backlog in assets/demo/ (run from the repository root).

Speech with known text (scripts/demo-assets/script.tsv) is synthesised with espeak-ng,
resampled to 16 kHz with sox, placed at its offsets over a quiet noise floor
(deterministic), and encoded as the pendant does by `examples/encode_wal.rs`
into phone-app .bin files cut in 60 s chunks. Session A has a 70 s pause (the
120 s rule keeps it one conversation); session B starts 26 minutes later (a
second conversation); session C is noise only (no speech). Needs espeak-ng,
sox, numpy and cargo. Deterministic: a re-run gives the same WAVs; the Opus
bytes depend only on libopus (bundled by the `opus` crate).
"""
import os
import shutil
import subprocess
import sys
import tempfile
import wave

import numpy as np

RATE = 16000
SESSIONS = {
    # name: (start unix seconds, length seconds)
    "A": (1748854800, 180.0),   # 2025-06-02T09:00:00Z
    "B": (1748856360, 45.0),    # 2025-06-02T09:26:00Z
    "C": (1748859300, 30.0),    # 2025-06-02T10:15:00Z, noise only
}
NOISE_DBFS = -50.0
SPEECH_PEAK = 0.5


def synth(text, voice, path):
    raw = path + ".raw.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "155", "-w", raw, text], check=True)
    subprocess.run(["sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", path], check=True)
    with wave.open(path) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32) / 32768.0
    peak = float(np.max(np.abs(data))) or 1.0
    return data * (SPEECH_PEAK / peak)


def noise(n, seed):
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n).astype(np.float32)
    # A gentle low-pass (pinkish) so it sounds like room tone.
    pink = np.convolve(white, np.ones(8, dtype=np.float32) / 8.0, mode="same")
    pink /= np.sqrt(np.mean(pink ** 2)) or 1.0
    return pink * (10 ** (NOISE_DBFS / 20))


def main():
    root = os.getcwd()
    script = os.path.join(root, "scripts/demo-assets/script.tsv")
    out = os.path.join(root, "assets/demo")
    lines = [l.rstrip("\n").split("\t") for l in open(script) if l.strip() and not l.startswith("#")]
    for f in os.listdir(out):
        if f.endswith(".bin"):
            os.remove(os.path.join(out, f))
    subprocess.run(["cargo", "build", "--release", "--example", "encode_wal"], check=True)
    encoder = os.path.join(root, "target/release/examples/encode_wal")
    with tempfile.TemporaryDirectory() as tmp:
        transcript = []
        for seed, (name, (start, length)) in enumerate(sorted(SESSIONS.items())):
            audio = noise(int(length * RATE), seed)
            for i, (session, offset, voice, text) in enumerate(lines):
                if session != name:
                    continue
                speech = synth(text, voice, os.path.join(tmp, f"{name}{i}.wav"))
                at = int(float(offset) * RATE)
                end = min(len(audio), at + len(speech))
                audio[at:end] += speech[: end - at]
                transcript.append((start + float(offset), start + float(offset) + len(speech) / RATE, voice, text))
            pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
            wav = os.path.join(tmp, f"session_{name}.wav")
            with wave.open(wav, "wb") as w:
                w.setnchannels(1)
                w.setsampwidth(2)
                w.setframerate(RATE)
                w.writeframes(pcm.tobytes())
            subprocess.run([encoder, wav, str(start), out, "60", "omi"], check=True)
        with open(os.path.join(out, "transcript.tsv"), "w") as f:
            f.write("# start_unix\tend_unix\tvoice\ttext (what each utterance says; for tests)\n")
            for s, e, v, t in sorted(transcript):
                f.write(f"{s:.3f}\t{e:.3f}\t{v}\t{t}\n")


if __name__ == "__main__":
    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        sys.exit("make_demo.py needs espeak-ng and sox (apt-get install espeak-ng sox)")
    main()
