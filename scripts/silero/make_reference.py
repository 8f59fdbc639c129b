#!/usr/bin/env python3
"""Reference data for tests/integration/vad_parity.rs: audio, onnxruntime probabilities, spans.

Writes, under tests/data/vad/:

* ``parity.wav``: about 75 s of 16 kHz mono 16-bit audio, built
  deterministically from espeak-ng speech (several voices, rates, pitches),
  digital silence, white and pink noise, noise under speech, tones, clipped
  speech, very quiet speech and short blips. It ends mid-window so the
  zero-padded last window is exercised.
* ``parity_probs.f32``: one little-endian float32 per 512-sample window:
  ``silero_vad_16k_op15.onnx`` run by onnxruntime (1 intra-op and 1 inter-op
  thread, CPU provider) exactly as silero-vad's ``OnnxWrapper`` does it
  inside ``get_speech_timestamps``: zero state and zero 64-sample context at
  the start, each chunk prefixed with the last 64 samples of the previous
  model input, the last partial chunk zero-padded.
* ``parity_spans.json``: the speech spans for several parameter sets.
* ``spans_fuzz.json``: random probability sequences (as runs) with random
  parameters and their spans, to pin the span rules' corner cases.

The span rules: ``utils_vad.py`` imports torch at module level and torch is
not installed here, but ``get_speech_timestamps`` computes the probabilities
and then hands them to ``get_speech_timestamps_from_probs``, which is plain
Python over a list. So rather than re-typing it, this script takes that
function's source verbatim out of the wheel with ``ast`` and runs it (it
references nothing from torch). Thresholds are passed as float32 values
widened to float64, which is what the Rust code compares against.

Usage:
    python3 scripts/silero/make_reference.py [--wheel PATH]

Needs espeak-ng and sox on PATH and the pip packages onnxruntime, numpy.
"""

import argparse
import ast
import io
import json
import os
import subprocess
import sys
import tempfile
import wave
import zipfile

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as err:  # pragma: no cover - environment check
    sys.exit(f"missing pip package ({err.name}); needs: pip install onnxruntime numpy")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from extract_weights import (  # noqa: E402  (sibling script)
    MODEL_MEMBER,
    ROOT,
    WHEEL_NAME,
    default_wheel,
    load_model_bytes,
)

SR = 16000
WINDOW = 512
CONTEXT = 64
OUT_DIR = os.path.join(ROOT, "tests", "data", "vad")

SENTENCES = [
    "The quick brown fox jumps over the lazy dog while the river keeps running.",
    "Please remember to call the plumber tomorrow morning before nine o'clock, "
    "because the kitchen sink is leaking again and the floor is getting wet.",
    "Seven hundred and forty two kilometres north of here lies a small town.",
    "Did you bring the charger? I left mine at the office on Tuesday.",
    "Okay. Yes. No. Maybe later.",
    "When the meeting ends we will walk to the station, buy two tickets, and "
    "take the slow train along the coast, stopping at every little village, "
    "talking about the project, the budget, and the new office in the city.",
    "This sentence is spoken very quietly, almost a whisper in the room.",
    "Noise all around, but the voice still carries the message through.",
    "And finally, the recording stops right in the middle of this",
]


# ---------------------------------------------------------------- audio --


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def speak(text, voice, rate, pitch, tmp):
    """espeak-ng speech resampled by sox to 16 kHz float32 (no dither)."""
    raw = os.path.join(tmp, "say.wav")
    f32 = os.path.join(tmp, "say16k.f32")
    run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", raw, text])
    run(["sox", "-D", raw, "-r", str(SR), "-e", "floating-point", "-b", "32", "-t", "raw", f32])
    x = np.fromfile(f32, dtype="<f4").astype(np.float64)
    peak = np.max(np.abs(x)) if len(x) else 1.0
    return x / peak * 0.5


def silence(sec):
    return np.zeros(int(round(sec * SR)))


def white(rng, sec, dbfs):
    return rng.standard_normal(int(round(sec * SR))) * 10 ** (dbfs / 20)


def pink(rng, n, dbfs):
    """1/f noise by shaping white noise's spectrum, scaled to an RMS in dBFS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spec), dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spec / np.sqrt(f), n)
    return x / np.sqrt(np.mean(x**2)) * 10 ** (dbfs / 20)


def tone(sec, hz, amp):
    t = np.arange(int(round(sec * SR))) / SR
    return amp * np.sin(2 * np.pi * hz * t)


def build_audio(tmp):
    rng = np.random.default_rng(20240529)
    s = SENTENCES
    parts = [
        silence(1.0),
        speak(s[0], "en-us", 175, 50, tmp),
        silence(0.6),
        speak(s[1], "en-gb", 140, 40, tmp),
        white(rng, 2.0, -30),
        speak(s[2], "en-us", 260, 80, tmp),
        pink(rng, int(1.5 * SR), -25),
    ]
    # Speech under white noise at roughly 10 dB SNR.
    v = speak(s[3], "en-gb-scotland", 170, 60, tmp)
    parts.append(v + white(rng, len(v) / SR, -26))
    parts += [
        tone(1.0, 440, 0.3),
        tone(1.0, 1000, 0.5),
        silence(0.3),
    ]
    # Short blips with short gaps (min_speech / min_silence corner cases).
    for i, word in enumerate(s[4].split()):
        parts.append(speak(word, "en-us", 200, 30 + 10 * i, tmp))
        parts.append(silence(0.08 + 0.05 * i))
    # Long continuous speech with short pauses (max_speech cuts).
    parts.append(speak(s[5], "en-gb-x-rp", 150, 45, tmp))
    parts.append(silence(0.4))
    # Clipped speech: gain 8, hard clip.
    parts.append(np.clip(speak(s[1], "en-us", 190, 55, tmp) * 8.0, -1.0, 1.0))
    parts.append(silence(0.7))
    # Very quiet speech (-40 dB relative) over near-silent noise.
    q = speak(s[6], "en-gb", 160, 50, tmp) * 0.01
    parts.append(q + white(rng, len(q) / SR, -70))
    parts.append(white(rng, 1.0, -60))
    # Speech in pink noise at about 0 dB SNR.
    v = speak(s[7], "en-us", 165, 35, tmp)
    parts.append(v + pink(rng, len(v), -16))
    parts.append(pink(rng, int(1.0 * SR), -16))
    parts.append(silence(0.5))
    parts.append(speak(s[2], "en-029", 120, 70, tmp))
    parts.append(silence(1.2))
    parts.append(speak(s[0], "en-gb-x-gbclan", 210, 20, tmp))
    parts.append(white(rng, 0.9, -45))
    parts.append(speak(s[3], "en-us", 120, 90, tmp))
    parts.append(silence(0.35))
    # Speech running to the very end, cut mid-word, mid-window.
    last = speak(s[8], "en-gb", 175, 50, tmp)
    parts.append(last[: len(last) - 3000])
    x = np.concatenate(parts)
    if len(x) % WINDOW == 0:
        x = x[:-77]
    return np.round(np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)


def write_wav(path, pcm):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(pcm.astype("<i2").tobytes())


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, SR)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return (pcm.astype(np.float32) / np.float32(32768)).astype(np.float32)


# ---------------------------------------------------------- onnxruntime --


def ort_session(model_bytes):
    opts = ort.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"], sess_options=opts)


def onnx_probabilities(session, audio):
    """``OnnxWrapper.__call__`` over every window, as get_speech_timestamps does."""
    state = np.zeros((2, 1, 128), dtype=np.float32)
    context = np.zeros((1, CONTEXT), dtype=np.float32)
    sr = np.array(SR, dtype=np.int64)
    probs = []
    for start in range(0, len(audio), WINDOW):
        chunk = audio[start : start + WINDOW]
        if len(chunk) < WINDOW:
            chunk = np.pad(chunk, (0, WINDOW - len(chunk)))
        x = np.concatenate([context, chunk[None, :]], axis=1)
        out, state = session.run(None, {"input": x, "state": state, "sr": sr})
        context = x[:, -CONTEXT:]
        probs.append(out.item())
    return np.array(probs, dtype=np.float32)


# ---------------------------------------------------------------- spans --


def upstream_spans_function(wheel_path):
    """``get_speech_timestamps_from_probs``, verbatim from the wheel."""
    with zipfile.ZipFile(wheel_path) as zf:
        source = zf.read("silero_vad/utils_vad.py").decode("utf-8")
    tree = ast.parse(source)
    fn = next(
        n
        for n in tree.body
        if isinstance(n, ast.FunctionDef) and n.name == "get_speech_timestamps_from_probs"
    )
    namespace = {"List": list, "make_visualization": None}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "utils_vad.py", "exec"), namespace)
    return namespace["get_speech_timestamps_from_probs"]


def f32(v):
    """A float32 value widened to float64: what Rust compares against."""
    return None if v is None else float(np.float32(v))


def spans_for(fn, probs, audio_len, params):
    max_s = params["max_speech_s"]
    result = fn(
        [float(p) for p in probs],
        sampling_rate=SR,
        threshold=f32(params["threshold"]),
        neg_threshold=f32(params["neg_threshold"]),
        min_speech_duration_ms=params["min_speech_ms"],
        min_silence_duration_ms=params["min_silence_ms"],
        speech_pad_ms=params["speech_pad_ms"],
        max_speech_duration_s=float("inf") if max_s is None else f32(max_s),
        audio_length_samples=audio_len,
    )
    return [[int(s["start"]), int(s["end"])] for s in result]


def params(threshold=0.5, neg=None, min_speech=250, min_silence=100, pad=30, max_s=None):
    return {
        "threshold": f32(threshold),
        "neg_threshold": f32(neg),
        "min_speech_ms": min_speech,
        "min_silence_ms": min_silence,
        "speech_pad_ms": pad,
        "max_speech_s": f32(max_s),
    }


PARITY_CASES = [
    ("defaults", params()),
    ("low_threshold", params(threshold=0.3)),
    ("strict", params(threshold=0.7, neg=0.6, min_speech=100, min_silence=300, pad=60)),
    ("max_speech_3s", params(max_s=3.0)),
    ("max_speech_1_5s_wide_pad", params(max_s=1.5, min_silence=500, pad=100)),
    ("no_padding_no_minimums", params(min_speech=0, min_silence=0, pad=0)),
    ("wide_pad", params(pad=200, min_silence=50)),
]


def fuzz_cases(fn, count=300):
    """Random probability runs and parameters, with the upstream spans."""
    rng = np.random.default_rng(7)
    cases = []
    for _ in range(count):
        runs = []
        for _ in range(int(rng.integers(0, 30))):
            # Multiples of 1/64 are exact in float32 and short in JSON; some
            # land exactly on the thresholds below.
            runs.append([float(rng.integers(0, 65)) / 64, int(rng.integers(1, 40))])
        probs = [p for p, n in runs for _ in range(n)]
        tail = int(rng.integers(0, WINDOW))
        audio_len = 0 if not probs else (len(probs) - 1) * WINDOW + 1 + tail
        threshold = float(rng.integers(3, 62)) / 64
        p = params(
            threshold=threshold,
            neg=None if rng.random() < 0.5 else float(rng.integers(1, 64)) / 64 * threshold,
            min_speech=int(rng.integers(0, 600)),
            min_silence=int(rng.integers(0, 400)),
            pad=int(rng.integers(0, 200)),
            max_s=None if rng.random() < 0.3 else float(rng.integers(1, 64)) / 16,
        )
        cases.append(
            {
                "runs": runs,
                "audio_len": audio_len,
                "params": p,
                "spans": spans_for(fn, probs, audio_len, p),
            }
        )
    return cases


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", default=default_wheel(), help=f"path to {WHEEL_NAME}")
    args = ap.parse_args()
    model_bytes = load_model_bytes(args.wheel)
    os.makedirs(OUT_DIR, exist_ok=True)

    wav_path = os.path.join(OUT_DIR, "parity.wav")
    with tempfile.TemporaryDirectory() as tmp:
        write_wav(wav_path, build_audio(tmp))
    audio = read_wav(wav_path)
    print(f"{wav_path}: {len(audio)} samples ({len(audio) / SR:.1f} s)")

    probs = onnx_probabilities(ort_session(model_bytes), audio)
    probs.astype("<f4").tofile(os.path.join(OUT_DIR, "parity_probs.f32"))
    print(f"parity_probs.f32: {len(probs)} windows, {np.mean(probs >= 0.5):.0%} at or over 0.5")

    fn = upstream_spans_function(args.wheel)
    cases = []
    for name, p in PARITY_CASES:
        spans = spans_for(fn, probs, len(audio), p)
        cases.append({"name": name, "params": p, "spans": spans})
        print(f"  {name}: {len(spans)} spans")
    doc = {
        "source": f"{MODEL_MEMBER} in {WHEEL_NAME}, onnxruntime {ort.__version__}",
        "audio_samples": len(audio),
        "windows": len(probs),
        "cases": cases,
    }
    with open(os.path.join(OUT_DIR, "parity_spans.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    fuzz = fuzz_cases(fn)
    with open(os.path.join(OUT_DIR, "spans_fuzz.json"), "w") as f:
        json.dump({"cases": fuzz}, f, separators=(",", ":"))
        f.write("\n")
    print(f"spans_fuzz.json: {len(fuzz)} cases, {sum(len(c['spans']) for c in fuzz)} spans")


if __name__ == "__main__":
    main()
