//! Transcription wired to the ledger: the demo backlog through the real
//! model (words checked), order independence of the final timeline, and a
//! run killed mid-way that resumes without redoing finished work.
//!
//! The real-model tests need `OMI_SYNC_MODEL` (ggml tiny.en); with `CI` set a
//! missing model fails them, locally they are skipped loudly.

use crate::common;
use crate::stt_common;

use std::collections::HashMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Sandbox;
use omi_sync::device::demo;
use omi_sync::engine::Ctx;
use omi_sync::engine::analyze::{AnalyzeOptions, analyze};
use omi_sync::engine::auto::{Source, import_source};
use omi_sync::store::{Ledger, LedgerReader, WordTiming};
use omi_sync::stt::wer::wer;
use omi_sync::timeline::{self, Rules, SegmentStatus};
use serde_json::Value;

/// A sandbox command with the model set.
fn with_model(sb: &Sandbox, model: &std::path::Path) -> std::process::Command {
    let mut c = sb.cmd();
    c.env("OMI_SYNC_MODEL", model);
    c
}

/// Every segment of `timeline --json`, in order: (id, status, text).
fn timeline_segments(sb: &Sandbox) -> Vec<(i64, String, Option<String>)> {
    let r = sb.run(&["timeline", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = r.json();
    t["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["segments"].as_array().unwrap().clone())
        .map(|s: Value| {
            (
                s["id"].as_i64().unwrap(),
                s["status"].as_str().unwrap().to_string(),
                s["text"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Word error rate bound for tiny.en on the demo's espeak-ng voices after
/// the Opus round trip. tiny.en scores 5.9% on the isolated fixtures
/// (`stt_whisper`); the demo adds segment boundaries cut by VAD, a noise
/// floor and two harder voices (it mishears a few words: "mekla" for
/// "backlog"). Measured at 17.3% here (faster-whisper on the same audio:
/// 15.1%); 25% still catches any real break
/// (wrong audio, misplaced windows, dropped segments give 60-100%).
const DEMO_WER_BOUND: f64 = 0.25;

#[test]
fn auto_demo_transcribes_the_words_with_the_real_model() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let sb = Sandbox::new();
    let out = with_model(&sb, &model)
        // --dry-run: the push stage shows what it would send, needing no key.
        .args(["--auto", "--source", "demo", "--json", "--dry-run"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `--dry-run` prints the requests it would send as one pretty JSON
    // document among the NDJSON events: keep the event lines.
    let events: Vec<Value> = stdout
        .lines()
        .filter(|l| l.starts_with("{\"v\""))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let landed = events
        .iter()
        .filter(|e| e["event"] == "segment_transcribed")
        .count();
    let done = events.last().unwrap();
    assert_eq!(done["event"], "job_finished");
    let report = &done["report"]["transcribe"];
    assert_eq!(report["segments"].as_u64().unwrap() as usize, landed);
    assert_eq!(report["failed"], 0);
    assert_eq!(done["report"]["pending_segments"], 0);

    let segments = timeline_segments(&sb);
    // Every VAD segment of the demo is someone speaking, so each must get
    // its own words. When words slipped into the next segment (DTW onsets
    // read as spans), short ones like "Good." came back silent and others
    // began with the previous sentence's last word: "morning. Did you ...".
    let closes = |w: &str| w.ends_with(['.', '?', '!']);
    let mut before = "";
    for (id, status, text) in &segments {
        assert_eq!(status, "speech", "segment {id} heard nothing");
        let text = text.as_deref().unwrap_or("");
        let words: Vec<&str> = text.split_whitespace().collect();
        let stolen = words.len() > 1 && closes(words[0]) && !closes(before);
        assert!(
            !stolen,
            "segment {id} starts with the end of the sentence before it: {before:?} | {text:?}"
        );
        before = words.last().copied().unwrap_or("");
    }
    let heard: Vec<&str> = segments
        .iter()
        .filter_map(|(_, _, t)| t.as_deref())
        .collect();
    let reference: Vec<&str> = demo::transcript().into_iter().map(|(_, _, t)| t).collect();
    let rate = wer(&reference.join(" "), &heard.join(" "));
    eprintln!("demo WER {:.1}%", rate * 100.0);
    assert!(
        rate < DEMO_WER_BOUND,
        "WER {:.1}%:\n{}",
        rate * 100.0,
        heard.join(" ")
    );

    // Word timings are stored and lie inside their segment.
    let ledger = Ledger::open(&sb.data()).unwrap();
    for s in ledger.segments().unwrap() {
        let words = ledger.segment_words(s.id).unwrap();
        assert_eq!(words.is_empty(), s.status == SegmentStatus::Silent);
        for w in &words {
            assert!(
                s.found.start.0 <= w.start_ms && w.end_ms <= s.found.end.0,
                "{w:?}"
            );
        }
    }

    // A second run has nothing left to transcribe.
    let r = with_model(&sb, &model)
        .args(["transcribe", "--json"])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(9));
}

/// A ledger with the demo imported and analysed (no transcripts).
fn demo_ledger(dir: &std::path::Path) -> Ledger {
    let mut ledger = Ledger::open(dir).unwrap();
    import_source(&mut ledger, &Source::Demo, &Ctx::default()).unwrap();
    let opts = AnalyzeOptions {
        params: Default::default(),
        rerun_all: false,
        workers: 2,
    };
    analyze(&mut ledger, &opts, &Ctx::default()).unwrap();
    ledger
}

fn current_timeline(ledger: &Ledger) -> timeline::Timeline {
    let segs: Vec<_> = ledger
        .segments()
        .unwrap()
        .iter()
        .map(|s| s.to_timeline())
        .collect();
    timeline::build(
        &segs,
        &ledger.active_overrides().unwrap(),
        &Rules::default(),
    )
}

#[test]
fn the_final_timeline_does_not_depend_on_completion_order() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = demo_ledger(dir.path());
    let ids: Vec<i64> = ledger.segments().unwrap().iter().map(|s| s.id).collect();
    assert!(ids.len() > 10, "the demo has many segments");
    // Results as workers would deliver them: every fourth segment heard
    // nothing (silent segments stop bridging gaps, so they move
    // conversation boundaries), the rest carry words.
    let results: HashMap<i64, Vec<WordTiming>> = ledger
        .segments()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let words = if i % 4 == 3 {
                Vec::new()
            } else {
                vec![WordTiming {
                    start_ms: s.found.start.0,
                    end_ms: s.found.end.0,
                    text: format!("words-of-{}", s.id),
                }]
            };
            (s.id, words)
        })
        .collect();
    let mut finals = Vec::new();
    for seed in 0..6u64 {
        for id in &ids {
            ledger
                .set_transcript(*id, SegmentStatus::Pending, None, None)
                .unwrap();
        }
        let mut order = ids.clone();
        fastrand::Rng::with_seed(seed).shuffle(&mut order);
        for id in &order {
            ledger.record_transcript(*id, &results[id]).unwrap();
            // Every intermediate timeline is well formed: each segment
            // appears once.
            let t = current_timeline(&ledger);
            let placed = t
                .conversations
                .iter()
                .map(|c| c.segments.len())
                .sum::<usize>()
                + t.loose_silent.len();
            assert_eq!(placed, ids.len());
        }
        finals.push(current_timeline(&ledger));
    }
    assert!(finals.windows(2).all(|w| w[0] == w[1]));
    let t = &finals[0];
    assert!(t.conversations.iter().all(|c| c.is_transcribed()), "{t:#?}");
}

#[test]
fn a_killed_transcribe_resumes_without_redoing_finished_segments() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    common::write_demo(&inputs);
    let r = sb.run(&["import", inputs.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let total = Ledger::open(&sb.data()).unwrap().segments().unwrap().len();

    let mut child = with_model(&sb, &model)
        .args(["transcribe", "--workers", "1", "--threads", "1", "--quiet"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    let finished_before = loop {
        let ledger = LedgerReader::open(&sb.data()).unwrap();
        let done: Vec<_> = ledger
            .segments()
            .unwrap()
            .into_iter()
            .filter(|s| s.transcribed_at.is_some())
            .map(|s| (s.id, s.transcribed_at, s.text))
            .collect();
        if !done.is_empty() {
            child.kill().unwrap(); // SIGKILL: no chance to clean up
            child.wait().unwrap();
            break done;
        }
        assert!(Instant::now() < deadline, "no result within 300 s");
        assert!(
            child.try_wait().unwrap().is_none(),
            "transcribe ended before any result was seen"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // Results may have landed between the look and the kill: read again.
    let ledger = LedgerReader::open(&sb.data()).unwrap();
    let finished: HashMap<i64, _> = ledger
        .segments()
        .unwrap()
        .into_iter()
        .filter(|s| s.transcribed_at.is_some())
        .map(|s| (s.id, (s.transcribed_at, s.text)))
        .collect();
    drop(ledger);
    assert!(finished.len() >= finished_before.len());
    assert!(
        finished.len() < total,
        "killed too late: all {total} segments done"
    );

    let out = with_model(&sb, &model)
        .args(["transcribe", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        report["segments"].as_u64().unwrap() as usize,
        total - finished.len(),
        "the re-run planned only what was missing"
    );
    let ledger = Ledger::open(&sb.data()).unwrap();
    for s in ledger.segments().unwrap() {
        assert!(
            matches!(s.status, SegmentStatus::Speech | SegmentStatus::Silent),
            "segment {} is {:?}",
            s.id,
            s.status
        );
        if let Some((at, text)) = finished.get(&s.id) {
            assert_eq!(
                (&s.transcribed_at, &s.text),
                (at, text),
                "segment {} was redone",
                s.id
            );
        }
    }
}
