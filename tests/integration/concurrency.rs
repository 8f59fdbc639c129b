//! Two runs on one data directory: a long session and a timer's `--auto`,
//! or two `transcribe`s, never do the same work twice and never block each
//! other for longer than a critical section.
//!
//! The counting engine is an OpenAI-compatible server on loopback that
//! answers every window slowly and counts the windows it was sent: with the
//! ledger's work claims, two concurrent `transcribe` processes send each
//! window once between them.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;

use crate::common::{Sandbox, write_demo};
use omi_sync::store::LedgerReader;
use omi_sync::timeline::SegmentStatus;

const ANSWER: &str = r#"{"task":"transcribe","language":"english","duration":1.5,"text":"words heard here",
  "segments":[{"id":0,"seek":0,"start":0.0,"end":1.5,"text":" words heard here","avg_logprob":-0.2,"no_speech_prob":0.01}]}"#;

/// A loopback transcription server that takes `delay` per request; returns
/// its base URL up to `/v1` and the request counter.
fn counting_server(delay: Duration) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let state = (count.clone(), delay);
    async fn answer(State((count, delay)): State<(Arc<AtomicUsize>, Duration)>) -> &'static str {
        count.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        ANSWER
    }
    let app = Router::new()
        .route("/v1/audio/transcriptions", axum::routing::post(answer))
        .with_state(state);
    let addr = crate::support::serve_on_loopback(app, Duration::from_secs(300));
    (format!("http://{addr}/v1"), count)
}

#[test]
fn two_concurrent_transcribe_runs_send_each_window_once() {
    let sb = Sandbox::new();
    write_demo(&sb.inputs());
    assert_eq!(sb.run(&["import", sb.inputs().to_str().unwrap()]).code, 0);
    let (url, count) = counting_server(Duration::from_millis(500));
    std::fs::write(
        sb.dir.path().join("config.toml"),
        format!("[stt]\nengine = \"openai\"\nopenai_url = \"{url}\"\nworkers = 1\n"),
    )
    .unwrap();
    // How many windows one run sends, measured on a copy of the ledger.
    let alone = Sandbox::new();
    write_demo(&alone.inputs());
    assert_eq!(
        alone
            .run(&["import", alone.inputs().to_str().unwrap()])
            .code,
        0
    );
    std::fs::copy(
        sb.dir.path().join("config.toml"),
        alone.dir.path().join("config.toml"),
    )
    .unwrap();
    let r = alone.run(&["transcribe", "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let windows = count.swap(0, Ordering::SeqCst);
    assert!(windows >= 3, "the demo needs several windows: {windows}");

    let spawn = || {
        sb.cmd()
            .args(["transcribe", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for out in [&a, &b] {
        assert!(
            matches!(out.status.code(), Some(0 | 9)),
            "{:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        windows,
        "two runs together sent each window once"
    );
    let skipped: u64 = [&a, &b]
        .iter()
        .filter_map(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .filter_map(|v| v["claimed_elsewhere"].as_u64())
        .sum();
    assert!(skipped > 0, "one run saw the other's claims");
    let ledger = LedgerReader::open(&sb.data()).unwrap();
    let segs = ledger.segments().unwrap();
    assert!(!segs.is_empty());
    assert!(
        segs.iter().all(|s| s.status != SegmentStatus::Pending),
        "every segment transcribed by one of the two"
    );
}

#[test]
fn a_push_section_held_elsewhere_does_not_stop_import_or_vad() {
    let sb = Sandbox::new();
    write_demo(&sb.inputs());
    let _push =
        omi_sync::store::RunLock::acquire(&sb.data(), omi_sync::store::Section::Push).unwrap();
    let _pull =
        omi_sync::store::RunLock::acquire(&sb.data(), omi_sync::store::Section::Pull).unwrap();
    // A whole --auto dry run (import, VAD, the push plan) needs no section.
    let r = sb.run(&["--auto", "--source", "demo", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = sb.run(&["import", sb.inputs().to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}
