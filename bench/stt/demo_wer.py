#!/usr/bin/env python3
"""WER of a data directory's timeline against the demo's script.

    bench/stt/demo_wer.py DATA_DIR [OMI_SYNC_BINARY]

Reads `omi-sync timeline --json` of DATA_DIR (the demo imported and
transcribed), joins every segment's text in time order and prints the word
error rate against assets/demo/transcript.tsv (lower case, punctuation
dropped). With -v, also each segment's text beside the script's line it
overlaps most, to see words lost at segment edges.
"""
import json, os, subprocess, sys

from wer import wer

args = [a for a in sys.argv[1:] if a != "-v"]
verbose = "-v" in sys.argv
data = args[0]
binary = args[1] if len(args) > 1 else os.environ.get("CARGO_TARGET_DIR", "target") + "/release/omi-sync"
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
t = json.loads(subprocess.check_output([binary, "--data-dir", data, "--config", data + ".none.toml", "timeline", "--json"]))
segments = [s for c in t["conversations"] for s in c["segments"]]
script = [l.rstrip("\n").split("\t") for l in open(os.path.join(root, "assets/demo/transcript.tsv"))
          if l.strip() and not l.startswith("#")]
rate = wer(" ".join(l[3] for l in script), " ".join(s["text"] or "" for s in segments))
if verbose:
    for s in segments:
        print(f'{s["start"][11:23]}-{s["end"][11:23]}  {s["text"]}')
print(round(rate, 4))
