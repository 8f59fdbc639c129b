//! `omi-sync export` (a segment or a conversation as a WAV file) and
//! `omi-sync transcribe --again` (a conversation's text redone with Whisper;
//! once pushed, the next push replaces the cloud copy), through the binary.

use crate::push::{config, demo_ready, push};
use crate::stt_common;
use crate::support::contract_server::{ContractConfig, ContractServer};

fn conversations(sb: &crate::common::Sandbox) -> Vec<serde_json::Value> {
    sb.run(&["timeline", "--json"]).json()["conversations"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn export_writes_a_conversation_and_a_segment_as_wav() {
    let sb = demo_ready();
    let convs = conversations(&sb);
    let c = &convs[0];
    let id = c["id"].as_str().unwrap();
    let out = sb.dir.path().join("c.wav");
    let r = sb.run(&[
        "export",
        "--conversation",
        &id[..6],
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let done = r.json();
    let wav = hound::WavReader::open(&out).unwrap();
    assert_eq!(wav.spec().sample_rate, 16_000);
    assert_eq!(wav.spec().channels, 1);
    let seconds = f64::from(wav.duration()) / 16_000.0;
    assert!((seconds - done["seconds"].as_f64().unwrap()).abs() < 1e-3);
    // Its speech, silences cut to a second each: no longer than the span.
    let segs = c["segments"].as_array().unwrap();
    assert_eq!(done["segments"].as_u64().unwrap() as usize, segs.len());
    assert!(seconds > 0.5 * segs.len() as f64 && seconds < 60.0 * segs.len() as f64);

    let seg = segs[0]["id"].as_i64().unwrap().to_string();
    let here = sb.dir.path();
    let r = sb
        .cmd()
        .current_dir(here)
        .args(["export", "--segment", &seg])
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(0));
    assert!(here.join(format!("segment-{seg}.wav")).is_file());

    let r = sb.run(&["export", "--segment", "999999"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("999999"), "{}", r.stderr);
}

#[test]
fn transcribe_again_redoes_a_pushed_conversation_and_the_next_push_replaces_it() {
    let Some(model) = stt_common::model_path() else {
        return;
    };
    let sb = demo_ready();
    config(&sb, "[stt]\nworkers = 1\nthreads = 2\n");
    let server = ContractServer::start(ContractConfig::default());
    let r = push(&sb, &server, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let before = server.conversations();
    let pushed = conversations(&sb)
        .into_iter()
        .find(|c| c["cloud"]["state"] == "pushed")
        .expect("a pushed conversation");
    let id = pushed["id"].as_str().unwrap().to_string();

    let out = sb
        .cmd()
        .env("OMI_SYNC_MODEL", &model)
        .args(["transcribe", "--again", &id, "--json"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(report["conversation"], id.as_str());
    assert!(
        report["transcribe"]["speech"].as_u64().unwrap() > 0,
        "{report}"
    );
    // Whisper's words are not the script's: the text changed, and the
    // cloud copy is to be replaced.
    assert_eq!(report["changed"], true, "{report}");
    let cloud_id = report["replaces"]
        .as_str()
        .expect("replaces the cloud copy");
    assert!(before.iter().any(|c| c.id == cloud_id));

    let r = push(&sb, &server, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let all = server.all_conversations();
    assert!(
        all.iter().any(|c| c.id == cloud_id && c.deleted),
        "the old copy is deleted"
    );
    let live = server.conversations();
    assert_eq!(live.len(), before.len(), "one copy per conversation");
    let text = serde_json::to_string(&live.last().unwrap().body).unwrap();
    assert!(
        !before.iter().any(|c| c.body == live.last().unwrap().body),
        "{text}"
    );
}
