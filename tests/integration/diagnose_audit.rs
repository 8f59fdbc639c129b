//! `diagnose` on what the ledger keeps beyond the transcript (issue 14):
//! the text the hallucination guards dropped, stored per segment by the
//! transcription stage and listed by the report; and the same audio held
//! twice, once as phone-app files and once pulled from the card.
//!
//! The engine is an OpenAI-compatible server on loopback whose answer can
//! be switched between one with a phantom annotation (`[BLANK_AUDIO]`,
//! which the guards always drop) and a clean one.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use serde_json::Value;

use crate::common::{Sandbox, demo_frames, pack_records, speech_image, write_demo};
use omi_sync::device::demo;
use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::usb::Variant;
use omi_sync::device::usb::fixture::FixtureBuilder;

/// Words, then the phantom annotation Whisper says over silence.
const PHANTOM: &str = r#"{"task":"transcribe","language":"english","duration":1.5,"text":"Words heard here. [BLANK_AUDIO]",
  "segments":[{"id":0,"seek":0,"start":0.0,"end":1.0,"text":" Words heard here.","avg_logprob":-0.2,"no_speech_prob":0.01},
              {"id":1,"seek":0,"start":1.0,"end":1.5,"text":" [BLANK_AUDIO]","avg_logprob":-0.2,"no_speech_prob":0.01}]}"#;

/// The same words without it.
const CLEAN: &str = r#"{"task":"transcribe","language":"english","duration":1.5,"text":"Words heard here.",
  "segments":[{"id":0,"seek":0,"start":0.0,"end":1.0,"text":" Words heard here.","avg_logprob":-0.2,"no_speech_prob":0.01}]}"#;

/// A loopback transcription server answering [`PHANTOM`] while the flag is
/// set, else [`CLEAN`]; returns its base URL up to `/v1`.
fn switchable_server(phantom: Arc<AtomicBool>) -> String {
    async fn answer(State(phantom): State<Arc<AtomicBool>>) -> &'static str {
        if phantom.load(Ordering::SeqCst) {
            PHANTOM
        } else {
            CLEAN
        }
    }
    let app = Router::new()
        .route("/v1/audio/transcriptions", axum::routing::post(answer))
        .with_state(phantom);
    let addr = crate::support::serve_on_loopback(app, Duration::from_secs(300));
    format!("http://{addr}/v1")
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .find(|c| c["check"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report:#}"))
}

#[test]
fn text_the_guards_dropped_is_stored_and_diagnose_lists_it() {
    let sb = Sandbox::new();
    write_demo(&sb.inputs());
    assert_eq!(
        sb.run(&["import", sb.inputs().to_str().unwrap(), "--quiet"])
            .code,
        0
    );
    let phantom = Arc::new(AtomicBool::new(true));
    let url = switchable_server(phantom.clone());
    std::fs::write(
        sb.dir.path().join("config.toml"),
        format!("[stt]\nengine = \"openai\"\nopenai_url = \"{url}\"\nworkers = 1\n"),
    )
    .unwrap();
    let r = sb.run(&["transcribe", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    let report = sb.run(&["diagnose", "--json"]).json();
    let drops = report["guard_drops"].as_array().unwrap();
    assert!(!drops.is_empty(), "{report:#}");
    for d in drops {
        assert_eq!(d["guard"], "annotation", "{d}");
        assert_eq!(d["engine"], "openai");
        assert!(d["text"].is_null(), "no text without --include-transcripts");
    }
    let line = check(&report, "transcription.guard_drops");
    assert!(
        line["what"].as_str().unwrap().contains("annotation"),
        "{line}"
    );
    let first = drops[0]["segment"].as_i64().unwrap();
    assert!(
        line["where"].as_str().unwrap().contains(&first.to_string()),
        "{line}"
    );
    assert!(!report.to_string().contains("BLANK_AUDIO"), "redacted");

    let with_text = sb
        .run(&["diagnose", "--json", "--include-transcripts"])
        .json();
    let drops = with_text["guard_drops"].as_array().unwrap();
    assert!(
        drops.iter().all(|d| d["text"] == "[BLANK_AUDIO]"),
        "{drops:?}"
    );

    // Transcribing a conversation again with an engine that hears no
    // phantom replaces its segments' drops with none.
    let conv = drops
        .iter()
        .find_map(|d| d["conversation"].as_str())
        .expect("a drop inside a conversation")
        .to_string();
    let before = drops.len();
    phantom.store(false, Ordering::SeqCst);
    let r = sb.run(&["transcribe", "--again", &conv]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = sb.run(&["diagnose", "--json"]).json();
    let left = after["guard_drops"].as_array().unwrap();
    assert!(left.len() < before, "{} then {}", before, left.len());
    assert!(left.iter().all(|d| d["conversation"] != conv.as_str()));
}

/// A card image holding demo files `files` as one recording session from
/// `start` (unix seconds), as the pendant stores it.
fn card_of(files: std::ops::Range<usize>, start: u32) -> Vec<u8> {
    let frames: Vec<Vec<u8>> = files.flat_map(demo_frames).collect();
    let records = pack_records(&frames, start);
    let count = (records.len() / RECORD_BYTES) as u64;
    let mut b = FixtureBuilder::new(Variant::C, count / 36 + 8).expect("format image");
    for commit in records.chunks(36 * RECORD_BYTES) {
        b.writer().append(commit).expect("append records");
    }
    b.finish()
}

/// Imports the demo's phone-app files `files`, then pulls `card`; returns
/// the sandbox.
fn phone_files_and_card(files: std::ops::Range<usize>, card: Vec<u8>) -> Sandbox {
    let sb = Sandbox::new();
    for f in &demo::FILES[files] {
        std::fs::write(sb.inputs().join(f.name), f.bytes).unwrap();
    }
    let r = sb.run(&["import", sb.inputs().to_str().unwrap(), "--quiet"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let img = sb.dir.path().join("card.img");
    std::fs::write(&img, card).unwrap();
    let r = sb.run(&["pull", "--image", img.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    sb
}

#[test]
fn the_same_recording_from_the_phone_and_the_card_is_named_with_both_sources() {
    // The phone app's three files, and the card holding them and two more.
    let (card, _) = speech_image();
    let sb = phone_files_and_card(0..3, card);
    let r = sb.run(&["diagnose", "--json", "--no-redact"]);
    assert_eq!(r.code, 3, "pushing twice is a problem: {}", r.stdout);
    let report = r.json();
    let pairs = report["shared_audio"].as_array().unwrap();
    assert_eq!(pairs.len(), 3, "each phone file with the card: {pairs:#?}");
    let mut phone_files = Vec::new();
    for p in pairs {
        let kinds: Vec<&str> = p["captures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.len(), 2);
        assert!(
            kinds.contains(&"phone-app file") && kinds.contains(&"image"),
            "{p}"
        );
        let phone = p["captures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "phone-app file")
            .unwrap();
        phone_files.push(phone["file"].as_str().unwrap().to_string());
        // Each phone file is a minute of audio, all of it on the card too.
        let s = p["shared_s"].as_f64().unwrap();
        assert!((55.0..=60.5).contains(&s), "{p}");
        assert_eq!(p["pushed_twice"], true, "both copies have speech: {p}");
    }
    phone_files.sort();
    let mut expected: Vec<String> = demo::FILES[..3]
        .iter()
        .map(|f| f.name.to_string())
        .collect();
    expected.sort();
    assert_eq!(phone_files, expected);
    let same = check(&report, "captures.same_audio");
    assert_eq!(same["severity"], "warning");
    let what = same["what"].as_str().unwrap();
    assert!(
        what.contains("phone-app file") && what.contains("image"),
        "{what}"
    );
    let twice = check(&report, "captures.pushed_twice");
    assert_eq!(twice["severity"], "problem");
    assert!(
        twice["what"]
            .as_str()
            .unwrap()
            .contains("separate conversations"),
        "{twice}"
    );
}

#[test]
fn unrelated_recordings_from_the_phone_and_the_card_are_not_reported() {
    // The phone holds the demo's last two files; the card its first three.
    let sb = phone_files_and_card(3..5, card_of(0..3, crate::common::SPEECH_T0));
    let report = sb.run(&["diagnose", "--json"]).json();
    assert_eq!(report["shared_audio"], serde_json::json!([]), "{report:#}");
    let same = check(&report, "captures.same_audio");
    assert_eq!(same["severity"], "ok", "{same}");
    assert!(
        report["sections"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|s| s["checks"].as_array().unwrap())
            .all(|c| c["check"] != "captures.pushed_twice")
    );
}
