//! Speech that runs across the boundary of two contiguous captures is one
//! segment: found from the first sample of the second capture (the VAD hears
//! the end of the first one first), joined on the timeline, transcribed and
//! pushed whole.

use serde_json::Value;

use crate::common::{Run, Sandbox, body, demo_frames};
use crate::stt_common;

/// The phone app's file name for a recording starting at `unix` seconds.
fn phone_name(unix: u64) -> String {
    format!("audio_omi_opus_fs320_16000_1_fs320_{unix}.bin")
}

/// The demo's first minute starts at this time (unix seconds).
const T0: u64 = 1_748_854_800;

/// Its frames are 20 ms: the cut at 20 s falls inside "About one hundred and
/// sixty megabytes of audio, still sitting on the device." (17.5-22.9 s).
const CUT_S: u64 = 20;

/// `--auto --dry-run` over the phone files in `files` (name, bytes) with the
/// real model; returns the sandbox and `timeline --json`.
fn auto_over(files: &[(String, Vec<u8>)], model: &std::path::Path) -> (Sandbox, Value) {
    let sb = Sandbox::new();
    for (name, bytes) in files {
        std::fs::write(sb.inputs().join(name), bytes).unwrap();
    }
    let mut auto = sb.cmd();
    auto.env("OMI_SYNC_MODEL", model)
        .args(["--auto", "--dry-run", "--source"])
        .arg(sb.inputs());
    let r = Run::from(auto.output().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    let t = sb.run(&["timeline", "--json"]);
    assert_eq!(t.code, 0, "{}", t.stderr);
    let json = t.json();
    (sb, json)
}

/// Every timeline segment as (start, end, text, joined row count).
fn segments(timeline: &Value) -> Vec<(String, String, String, usize)> {
    timeline["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["segments"].as_array().unwrap().clone())
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_string(),
                s["end"].as_str().unwrap().to_string(),
                s["text"].as_str().unwrap_or("").to_string(),
                s["joined"].as_array().map_or(0, Vec::len),
            )
        })
        .collect()
}

#[test]
fn a_sentence_spoken_across_two_phone_files_is_one_segment_heard_whole() {
    let model = stt_common::model_path().expect("the Whisper model (OMI_SYNC_MODEL)");
    let frames = demo_frames(0);
    let cut = (CUT_S * 50) as usize;
    let whole = vec![(phone_name(T0), body(&frames))];
    let split = vec![
        (phone_name(T0), body(&frames[..cut])),
        (phone_name(T0 + CUT_S), body(&frames[cut..])),
    ];
    let (_, one) = auto_over(&whole, &model);
    let (sb, two) = auto_over(&split, &model);

    // The ledger holds a row per capture: one ends at the cut, the next
    // starts there, to the millisecond.
    let rows = sb.run(&["segments", "--json"]).json();
    let rows = rows["segments"].as_array().unwrap();
    let cut_at = "2025-06-02T09:00:20.000Z";
    assert!(rows.iter().any(|r| r["end"] == cut_at), "{rows:#?}");
    assert!(rows.iter().any(|r| r["start"] == cut_at), "{rows:#?}");

    // The timeline has one segment over the cut, and the recording cut in
    // two reads as the recording whole: same segments, same words.
    let (one, two) = (segments(&one), segments(&two));
    let over: Vec<_> = two
        .iter()
        .filter(|(start, end, ..)| start.as_str() < cut_at && end.as_str() > cut_at)
        .collect();
    assert_eq!(over.len(), 1, "{two:#?}");
    assert_eq!(
        over[0].3, 1,
        "the segment over the cut joins the second row"
    );
    let texts = |s: &[(String, String, String, usize)]| -> Vec<String> {
        s.iter().map(|(_, _, t, _)| t.clone()).collect()
    };
    assert_eq!(texts(&two), texts(&one));
    assert!(one.iter().all(|s| s.3 == 0));

    // The cloud gets it as one transcript segment.
    let plan = sb.run(&["push", "--dry-run", "--json"]);
    assert_eq!(plan.code, 0, "{}", plan.stderr);
    let text = &over[0].2;
    assert!(
        plan.stdout.contains(&serde_json::to_string(text).unwrap()),
        "the pushed transcript holds {text:?} as one segment: {}",
        plan.stdout
    );
}
