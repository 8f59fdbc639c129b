//! `diagnose` on what the ledger keeps beyond the transcript (issue 14):
//! the text the hallucination guards dropped, stored per segment by the
//! transcription stage and listed by the report; and the same audio held
//! twice, once as phone-app files and once pulled from the card.
//!
//! The engine is an OpenAI-compatible server on loopback whose answer can
//! be switched between one with a phantom annotation (`[BLANK_AUDIO]`,
//! which the guards always drop) and a clean one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use serde_json::Value;

use crate::common::{Sandbox, write_demo};

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
    let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            let _ = tokio::time::timeout(Duration::from_secs(300), axum::serve(l, app)).await;
        });
    });
    format!("http://{}/v1", rx.recv().unwrap())
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
