//! `--auto` from a slow pendant finds and transcribes the speech while the
//! pull is still going (`engine::follow`): a conversation followed by a full
//! gap is transcribed before the pull ends, and the end result is the same
//! as stage after stage.

use omi_sync::store::LedgerReader;
use serde_json::Value;

use crate::common::{Sandbox, speech_image};
use crate::stt_common;

#[test]
fn a_slow_pull_is_analysed_and_transcribed_while_it_runs() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let sb = Sandbox::new();
    let (image, _) = speech_image();
    let path = sb.inputs().join("ring.img");
    std::fs::write(&path, image).unwrap();
    // Five minutes of audio (1.1 MB) at a consumer pendant's 30 KB/s: about
    // 38 s of pull. Session A (three minutes) is closed once the first
    // seconds of session B, an hour later, are in: then 15 s of pull
    // remain, for a few seconds of transcription.
    let r = sb
        .cmd()
        .args(["--auto", "--json", "--dry-run", "--source"])
        .arg(format!("sim:{}", path.display()))
        .args(["--sim-faults", "rate=30000"])
        .env("OMI_SYNC_MODEL", &model)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert_eq!(
        r.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&r.stderr)
    );
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let finished = |stage: &str| {
        events
            .iter()
            .find(|e| e["event"] == "stage_finished" && e["stage"] == stage)
            .unwrap_or_else(|| panic!("no {stage} report in {stdout}"))
    };
    let pull_end =
        omi_sync::clock::UtcMillis::parse_flexible(finished("pull")["at"].as_str().unwrap())
            .expect("an RFC 3339 time");

    let ledger = LedgerReader::open(&sb.data()).unwrap();
    let timeline = ledger.timeline(&Default::default()).unwrap();
    assert_eq!(
        timeline.conversations.len(),
        2,
        "{:#?}",
        timeline.conversations
    );
    assert!(
        timeline.conversations.iter().all(|c| c.is_transcribed()),
        "everything is transcribed in the end"
    );
    let first: Vec<i64> = timeline.conversations[0]
        .segments
        .iter()
        .map(|s| s.id)
        .collect();
    let early = first
        .iter()
        .filter(|id| {
            ledger
                .segment(**id)
                .unwrap()
                .transcribed_at
                .is_some_and(|t| t < pull_end)
        })
        .count();
    let milestones: Vec<String> = events
        .iter()
        .filter(|e| e["event"] != "progress")
        .map(|e| format!("{} {} {}", e["at"], e["event"], e["stage"]))
        .collect();
    assert!(
        early > 0,
        "session A is closed by session B's first seconds, so some of it is transcribed before the pull ends at {pull_end:?}: {milestones:#?}"
    );
    // The pull stores a capture every couple of seconds, so many sentences
    // run across a capture boundary: each is one segment of the timeline
    // (its rows joined), and no two segments still meet.
    let members: Vec<&omi_sync::timeline::Segment> = timeline
        .conversations
        .iter()
        .flat_map(|c| c.members())
        .collect();
    assert!(
        members.iter().any(|s| !s.joined.is_empty()),
        "speech cut at a capture boundary is joined"
    );
    for pair in members.windows(2) {
        assert!(
            pair[1].start.0 - pair[0].end.0 >= omi_sync::config::rules::CONTIGUOUS_MS,
            "segments {} and {} meet but were not joined",
            pair[0].id,
            pair[1].id
        );
    }
    // One report per stage for the whole job, counting what was done alongside.
    let vad = finished("vad");
    assert_eq!(
        vad["captures"].as_u64(),
        Some(ledger.captures().unwrap().len() as u64),
        "{vad}"
    );
    let stt = finished("transcribe");
    let segments: usize = timeline
        .conversations
        .iter()
        .map(|c| c.segments.len())
        .sum();
    assert!(
        stt["segments"].as_u64().unwrap() >= segments as u64,
        "{stt}"
    );
}
