//! Ctrl-C and SIGTERM: the running job stops, finishes the write in hand,
//! leaves the ledger consistent, and the process exits with 130; the next
//! run does what is left. (How fast each stage stops is measured by
//! `bench/cancel/latency.py`, not asserted here.)

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::Sandbox;
use crate::stt_common;
use omi_sync::store::LedgerReader;
use omi_sync::timeline::SegmentStatus;

/// Starts `cmd` with NDJSON on stdout and sends `signal` once an event line
/// matching `trigger` has been printed; returns the exit code and how long
/// the process took to end after the signal.
fn interrupt_when(mut cmd: Command, trigger: &str, signal: &str) -> (Option<i32>, Duration) {
    let mut child: Child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let line = lines.next().expect("the trigger event came").unwrap();
        if line.contains(trigger) {
            break;
        }
        assert!(Instant::now() < deadline, "no {trigger} in time");
    }
    let sent = Instant::now();
    let status = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Drain what is left so the child never blocks on a full pipe.
    for _ in lines.by_ref() {}
    let code = child.wait().unwrap().code();
    (code, sent.elapsed())
}

#[test]
fn ctrl_c_during_transcription_exits_130_keeps_what_landed_and_the_next_run_finishes() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let sb = Sandbox::new();
    std::fs::write(
        sb.dir.path().join("config.toml"),
        "[stt]\nworkers = 1\nthreads = 1\n",
    )
    .unwrap();
    let mut cmd = sb.cmd();
    cmd.env("OMI_SYNC_MODEL", &model)
        .args(["--auto", "--source", "demo", "--dry-run", "--json"]);
    let (code, took) = interrupt_when(cmd, r#""event":"segment_transcribed""#, "-INT");
    assert_eq!(code, Some(130), "took {took:?}");
    let ledger = LedgerReader::open(&sb.data()).unwrap();
    let segs = ledger.segments().unwrap();
    let done = segs
        .iter()
        .filter(|s| s.status != SegmentStatus::Pending)
        .count();
    assert!(done > 0, "what landed before the signal is kept");
    assert!(done < segs.len(), "the run stopped before the end");
    for s in &segs {
        if s.status == SegmentStatus::Speech {
            assert!(s.text.as_deref().is_some_and(|t| !t.is_empty()), "{s:?}");
        }
    }
    assert!(
        ledger
            .claims(omi_sync::clock::UtcMillis::now())
            .unwrap()
            .is_empty(),
        "the interrupted run released its claims"
    );
    drop(ledger);
    let out = sb
        .cmd()
        .env("OMI_SYNC_MODEL", &model)
        .args(["transcribe", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ledger = LedgerReader::open(&sb.data()).unwrap();
    assert!(
        ledger
            .segments()
            .unwrap()
            .iter()
            .all(|s| s.status != SegmentStatus::Pending)
    );
}

#[test]
fn sigterm_during_vad_exits_130_and_the_capture_is_analysed_next_time() {
    let sb = Sandbox::new();
    let dir = sb.inputs();
    // Forty copies of the demo on earlier days (each made distinct by a byte
    // after its end-of-frames marker): enough audio to still be finding
    // speech when the signal comes.
    for f in omi_sync::device::demo::FILES {
        let (stem, ts) = f.name.rsplit_once('_').unwrap();
        let ts: u64 = ts.trim_end_matches(".bin").parse().unwrap();
        for k in 1..=8u64 {
            let mut bytes = f.bytes.to_vec();
            bytes.extend_from_slice(&[0, 0, 0, 0, k as u8]);
            let name = format!("{stem}_{}.bin", ts - k * 86_400);
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
    let mut cmd = sb.cmd();
    cmd.args([
        "--auto",
        "--source",
        dir.to_str().unwrap(),
        "--dry-run",
        "--json",
    ]);
    let (code, _) = interrupt_when(cmd, r#""stage":"vad""#, "-TERM");
    assert_eq!(code, Some(130));
    let r = sb.run(&["vad", "--json"]);
    assert!(matches!(r.code, 0 | 9), "{}", r.stderr);
    let ledger = LedgerReader::open(&sb.data()).unwrap();
    assert!(ledger.unanalyzed_captures().unwrap().is_empty());
    assert!(!ledger.segments().unwrap().is_empty());
}
