#!/usr/bin/env python3
"""How fast each stage stops on Ctrl-C: the time from SIGINT to the
process's exit, median of RUNS, per stage (issue 10: goal under 1 s).

    OMI_SYNC_MODEL=.../ggml-tiny.en.bin bench/cancel/latency.py [RUNS=5]

Stages, each started fresh and interrupted once it is under way (its first
NDJSON event of that stage; --json everywhere):

- import:     `--auto` importing a 2 h phone-app backlog (bench/backlog.py)
- vad:        `--auto` finding the speech in that backlog (after its import)
- pull:       `--auto` from the simulated pendant at 32 KB/s (rate=32000)
- transcribe: `--auto --source demo --dry-run` (tiny.en)
- push-wait:  `--auto --wait` pushing the transcribed demo to the contract
              server answering 429 with `Retry-After: 3600` (the wait for
              the next hour's budget)

Prints one line per stage with every run's latency and the median, and the
exit codes seen (130 is the interrupt). Uses target/debug/omi-sync unless
OMI_SYNC_BIN says otherwise; run it from anywhere.
"""
import json, os, shutil, signal, statistics, subprocess, sys, tempfile, time, urllib.request

root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
os.chdir(root)
runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
binary = os.environ.get("OMI_SYNC_BIN", "target/debug/omi-sync")
if "OMI_SYNC_MODEL" not in os.environ:
    sys.exit("set OMI_SYNC_MODEL to a ggml Whisper model (tiny.en)")
subprocess.run(["cargo", "build", "--quiet", "--bin", "omi-sync", "--example", "ring_image",
                "--example", "contract_server"], check=True)
work = tempfile.mkdtemp()
KEY = "omi_dev_0123456789abcdef0123456789abcdef"


def interrupt(args, trigger, data, env=None):
    """Runs omi-sync with ARGS, sends SIGINT at the first stdout line
    containing TRIGGER; returns (seconds from signal to exit, exit code)."""
    p = subprocess.Popen([binary, "--data-dir", data, "--config", data + ".none.toml"] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**os.environ, **(env or {})})
    for line in p.stdout:
        if trigger in line:
            break
    else:
        p.wait()
        raise SystemExit(f"{args}: ended before {trigger!r} (exit {p.returncode})")
    sent = time.monotonic()
    p.send_signal(signal.SIGINT)
    for _ in p.stdout:
        pass
    code = p.wait()
    return time.monotonic() - sent, code


def fresh(name):
    d = os.path.join(work, name)
    shutil.rmtree(d, ignore_errors=True)
    return d


backlog = os.path.join(work, "backlog")
subprocess.run([sys.executable, "bench/backlog.py", "2", backlog], check=True, stdout=subprocess.DEVNULL)
ring = os.path.join(work, "ring.img")
subprocess.run(["target/debug/examples/ring_image", ring, "0.5", "speech"], check=True, stdout=subprocess.DEVNULL)
ready = os.path.join(work, "ready")
subprocess.run([binary, "--quiet", "--data-dir", ready, "--config", ready + ".none.toml", "--auto",
                "--source", "demo", "--dry-run"], check=True, stdout=subprocess.DEVNULL)
server = subprocess.Popen(["target/debug/examples/contract_server", "--forever"], stdout=subprocess.PIPE, text=True)
url = server.stdout.readline().strip().split("=", 1)[1]


def push_wait(i):
    d = fresh(f"push{i}")
    shutil.copytree(ready, d)
    faults = json.dumps([{"route": "create", "kind": "too_many", "retry_after": "3600", "times": 100}]).encode()
    urllib.request.urlopen(urllib.request.Request(url + "/_contract/faults", data=faults, method="POST"))
    return interrupt(["--auto", "--source", "demo", "--wait", "--json", "--api-url", url], '"event":"waiting"', d,
                     {"OMI_API_KEY": KEY})


def pull(i):
    img = os.path.join(work, f"ring{i}.img")
    shutil.copy(ring, img)
    return interrupt(["--auto", "--json", "--dry-run", "--source", "sim:" + img, "--sim-faults", "rate=32000"],
                     '"stage":"pull","done"', fresh(f"pull{i}"))


def vad(i):
    return interrupt(["--auto", "--json", "--dry-run", "--source", backlog], '"stage":"vad","done"', fresh(f"vad{i}"))


stages = {
    "import": lambda i: interrupt(["--auto", "--json", "--dry-run", "--source", backlog], '"stage":"import","done"',
                                  fresh(f"import{i}")),
    "vad": vad,
    "pull": pull,
    "transcribe": lambda i: interrupt(["--auto", "--json", "--dry-run", "--source", "demo"],
                                      '"event":"segment_transcribed"', fresh(f"stt{i}")),
    "push-wait": push_wait,
}
try:
    for name, run in stages.items():
        got = [run(i) for i in range(runs)]
        secs = [round(s, 3) for s, _ in got]
        codes = sorted({c for _, c in got})
        print(f"{name:<11} median {statistics.median(secs):.3f} s   runs {secs}   exit {codes}", flush=True)
finally:
    server.terminate()
    shutil.rmtree(work, ignore_errors=True)
