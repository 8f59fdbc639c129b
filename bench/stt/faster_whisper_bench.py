#!/usr/bin/env python3
"""faster-whisper (CTranslate2) on the window WAVs that `cargo bench --bench
stt -- engine --dump DIR` wrote: median wall time, x-real-time and WER over
several runs, greedy decoding, same thread count as the whisper.cpp side.

usage: faster_whisper_bench.py DIR CT2_MODEL_DIR --threads T --runs N [--compute-type float32|int8]
"""
import argparse
import statistics
import time
import wave

from faster_whisper import WhisperModel

from wer import edits


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("model")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--compute-type", default="float32")
    a = ap.parse_args()
    refs = [l.rstrip("\n").split("\t", 1) for l in open(f"{a.dir}/refs.tsv")]
    audio_s = 0.0
    for f, _ in refs:
        with wave.open(f"{a.dir}/{f}") as w:
            audio_s += w.getnframes() / w.getframerate()
    m = WhisperModel(a.model, device="cpu", cpu_threads=a.threads, num_workers=1,
                     compute_type=a.compute_type)
    # Warm-up.
    list(m.transcribe(f"{a.dir}/{refs[0][0]}", language="en", beam_size=1)[0])
    times, wers = [], []
    for run in range(a.runs):
        t = time.perf_counter()
        hyps = []
        for f, _ in refs:
            segs, _ = m.transcribe(f"{a.dir}/{f}", language="en", beam_size=1, best_of=1,
                                   temperature=0.0, condition_on_previous_text=False,
                                   vad_filter=False)
            hyps.append(" ".join(s.text.strip() for s in segs))
        secs = time.perf_counter() - t
        e = n = 0
        for (_, r), h in zip(refs, hyps):
            x, y = edits(r, h)
            e += x
            n += y
        print(f"run {run}: {secs:.2f} s, WER {100 * e / n:.1f}%")
        times.append(secs)
        wers.append(e / n)
    med = statistics.median(times)
    print(f"\nfaster-whisper ({a.compute_type}, greedy), {a.threads} threads, {len(refs)} windows, "
          f"{audio_s:.1f} s of window audio:")
    print(f"  median {med:.2f} s  {audio_s / med:.1f}x real time  WER {100 * statistics.median(wers):.1f}%")


if __name__ == "__main__":
    main()
