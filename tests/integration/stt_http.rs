//! Deepgram and OpenAI-compatible engines against loopback servers that
//! check the request (auth, query, multipart fields, a valid 16 kHz mono WAV
//! of the right length) and fail on demand (5xx, 429 + Retry-After,
//! malformed JSON, refused key).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use omi_sync::stt::deepgram::{DeepgramConfig, DeepgramTranscriber};
use omi_sync::stt::openai::{OpenAiConfig, OpenAiTranscriber};
use omi_sync::stt::{RetryPolicy, SttError, TranscribeOptions, Transcriber, wav};

/// What the server does with the next request.
#[derive(Clone)]
enum Step {
    Status(u16, &'static str, Option<&'static str>),
    Malformed,
}

#[derive(Clone, Debug)]
struct Seen {
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Clone)]
struct Srv {
    script: Arc<Mutex<VecDeque<Step>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    ok_body: &'static str,
}

async fn handle(State(s): State<Srv>, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    s.seen.lock().unwrap().push(Seen {
        query: uri.query().unwrap_or("").to_string(),
        headers,
        body,
    });
    let step = s.script.lock().unwrap().pop_front();
    match step {
        None => (
            StatusCode::OK,
            [("content-type", "application/json")],
            s.ok_body,
        )
            .into_response(),
        Some(Step::Malformed) => (StatusCode::OK, "{\"results\": [unterminated").into_response(),
        Some(Step::Status(code, body, retry_after)) => {
            let mut r = (StatusCode::from_u16(code).unwrap(), body).into_response();
            if let Some(ra) = retry_after {
                r.headers_mut().insert("retry-after", ra.parse().unwrap());
            }
            r
        }
    }
}

/// Starts a server on 127.0.0.1 (its own runtime thread) answering `path`.
fn server(path: &str, ok_body: &'static str, script: Vec<Step>) -> (String, Srv) {
    let srv = Srv {
        script: Arc::new(Mutex::new(script.into())),
        seen: Arc::new(Mutex::new(Vec::new())),
        ok_body,
    };
    let app = Router::new()
        .route(path, axum::routing::post(handle))
        .with_state(srv.clone());
    let addr = crate::support::serve_on_loopback(app, Duration::from_secs(120));
    (format!("http://{addr}"), srv)
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(5),
        timeout: Duration::from_secs(10),
    }
}

/// 1.5 s of a tone.
fn audio() -> Vec<f32> {
    (0..24_000).map(|i| (i as f32 * 0.07).sin() * 0.3).collect()
}

fn check_wav(body: &[u8], samples: usize) {
    let w = wav::decode(body).expect("a valid WAV");
    assert_eq!(
        (w.sample_rate, w.channels, w.bits_per_sample),
        (16_000, 1, 16)
    );
    assert_eq!(w.samples.len(), samples);
}

const DG_OK: &str = r#"{"metadata":{"request_id":"x"},"results":{"channels":[{"alternatives":[{"transcript":"Hello there. Hi.","confidence":0.98,
  "words":[{"word":"hello","start":0.1,"end":0.4,"confidence":0.99,"speaker":0,"punctuated_word":"Hello"},
           {"word":"there","start":0.5,"end":0.9,"confidence":0.97,"speaker":0,"punctuated_word":"there."},
           {"word":"hi","start":1.1,"end":1.4,"confidence":0.9,"speaker":1,"punctuated_word":"Hi."}]}]}],
  "utterances":[{"start":0.1,"end":0.9,"confidence":0.98,"channel":0,"transcript":"Hello there.","speaker":0,"id":"a",
     "words":[{"word":"hello","start":0.1,"end":0.4,"confidence":0.99,"speaker":0,"punctuated_word":"Hello"},
              {"word":"there","start":0.5,"end":0.9,"confidence":0.97,"speaker":0,"punctuated_word":"there."}]},
   {"start":1.1,"end":1.4,"confidence":0.9,"channel":0,"transcript":"Hi.","speaker":1,"id":"b",
     "words":[{"word":"hi","start":1.1,"end":1.4,"confidence":0.9,"speaker":1,"punctuated_word":"Hi."}]}]}}"#;

fn deepgram(base: &str) -> DeepgramTranscriber {
    let mut c = DeepgramConfig::new("dg-test-key");
    c.base_url = base.to_string();
    c.retry = fast_retry();
    DeepgramTranscriber::new(c).unwrap()
}

#[test]
fn deepgram_request_is_what_the_omi_cloud_sends() {
    let (base, srv) = server("/v1/listen", DG_OK, vec![]);
    let t = deepgram(&base)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap();
    assert_eq!(t.text(), "Hello there. Hi.");
    assert_eq!(t.pieces[1].speaker, Some(1));
    assert_eq!(t.pieces[0].words[1].text, "there.");
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!(r.headers["authorization"], "Token dg-test-key");
    assert_eq!(r.headers["content-type"], "audio/wav");
    let q: Vec<&str> = r.query.split('&').collect();
    for p in [
        "model=nova-3",
        "smart_format=true",
        "punctuate=true",
        "diarize=true",
        "utterances=true",
        "language=en",
    ] {
        assert!(q.contains(&p), "{p} missing from {q:?}");
    }
    check_wav(&r.body, 24_000);
}

#[test]
fn deepgram_empty_words_are_silence() {
    let (base, _srv) = server(
        "/v1/listen",
        r#"{"results":{"channels":[{"alternatives":[{"transcript":"","confidence":0,"words":[]}]}],"utterances":[]}}"#,
        vec![],
    );
    let t = deepgram(&base)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap();
    assert!(t.is_silent());
}

#[test]
fn retries_500_then_succeeds() {
    let (base, srv) = server(
        "/v1/listen",
        DG_OK,
        vec![
            Step::Status(500, "oops", None),
            Step::Status(502, "bad gw", None),
        ],
    );
    let t = deepgram(&base)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap();
    assert_eq!(t.pieces.len(), 2);
    assert_eq!(srv.seen.lock().unwrap().len(), 3);
}

#[test]
fn persistent_5xx_is_temporary_after_the_retry_budget() {
    let script = vec![Step::Status(503, "down", None); 10];
    let (base, srv) = server("/v1/listen", DG_OK, script);
    let e = deepgram(&base)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, SttError::Temporary { .. }) && e.is_retryable(),
        "{e}"
    );
    assert_eq!(srv.seen.lock().unwrap().len(), 4, "1 try + 3 retries");
}

#[test]
fn honours_retry_after_on_429() {
    let (base, srv) = server(
        "/v1/listen",
        DG_OK,
        vec![Step::Status(429, "slow down", Some("1"))],
    );
    let t0 = Instant::now();
    let t = deepgram(&base)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap();
    assert!(!t.is_silent());
    assert!(
        t0.elapsed() >= Duration::from_millis(950),
        "waited {:?}",
        t0.elapsed()
    );
    assert_eq!(srv.seen.lock().unwrap().len(), 2);
}

#[test]
fn long_retry_after_comes_back_to_the_caller() {
    let (base, srv) = server(
        "/v1/listen",
        DG_OK,
        vec![Step::Status(429, "quota", Some("120"))],
    );
    let e = deepgram(&base)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)), "{e}");
    assert_eq!(srv.seen.lock().unwrap().len(), 1);
}

#[test]
fn refused_key_is_fatal_and_not_retried() {
    let (base, srv) = server(
        "/v1/listen",
        DG_OK,
        vec![Step::Status(401, r#"{"err_code":"INVALID_AUTH"}"#, None)],
    );
    let e = deepgram(&base)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap_err();
    assert!(matches!(e, SttError::Auth { .. }) && e.is_fatal(), "{e}");
    assert!(
        !e.to_string().contains("dg-test-key"),
        "the key never shows: {e}"
    );
    assert_eq!(srv.seen.lock().unwrap().len(), 1);
}

#[test]
fn malformed_json_is_a_bad_response() {
    let (base, _srv) = server("/v1/listen", DG_OK, vec![Step::Malformed]);
    let e = deepgram(&base)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap_err();
    assert!(matches!(e, SttError::BadResponse { .. }), "{e}");
}

#[test]
fn unreachable_server_is_temporary() {
    // Bind and drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut c = DeepgramConfig::new("k");
    c.base_url = format!("http://127.0.0.1:{port}");
    c.retry = RetryPolicy {
        max_retries: 1,
        ..fast_retry()
    };
    let e = DeepgramTranscriber::new(c)
        .unwrap()
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap_err();
    assert!(matches!(e, SttError::Temporary { .. }), "{e}");
}

const OA_OK: &str = r#"{"task":"transcribe","language":"english","duration":1.5,"text":"Hello there.",
  "segments":[{"id":0,"seek":0,"start":0.0,"end":1.2,"text":" Hello there.","tokens":[1,2],"temperature":0.0,"avg_logprob":-0.2,"compression_ratio":1.0,"no_speech_prob":0.01}],
  "words":[{"word":"Hello","start":0.1,"end":0.5},{"word":"there.","start":0.6,"end":1.1}]}"#;

/// One multipart field: name, filename, content type, data.
type Field = (String, Option<String>, Option<String>, Vec<u8>);

/// Splits a multipart body into its fields.
fn multipart(headers: &HeaderMap, body: &[u8]) -> Vec<Field> {
    let ct = headers["content-type"].to_str().unwrap();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    let boundary = format!("--{}", ct.split("boundary=").nth(1).unwrap());
    let mut out = Vec::new();
    let b = boundary.as_bytes();
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut i = 0;
    let mut starts = Vec::new();
    while i + b.len() <= body.len() {
        if &body[i..i + b.len()] == b {
            starts.push(i);
            i += b.len();
        } else {
            i += 1;
        }
    }
    for w in starts.windows(2) {
        parts.push(&body[w[0] + b.len() + 2..w[1] - 2]);
    }
    assert!(body.ends_with(format!("{boundary}--\r\n").as_bytes()));
    for p in parts {
        let split = p.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = std::str::from_utf8(&p[..split]).unwrap();
        let data = p[split + 4..].to_vec();
        let name = head
            .split("name=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .to_string();
        let filename = head
            .split("filename=\"")
            .nth(1)
            .map(|s| s.split('"').next().unwrap().to_string());
        let ctype = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Type: "))
            .map(str::to_string);
        out.push((name, filename, ctype, data));
    }
    out
}

fn openai(base: &str, word_granularity: bool) -> OpenAiTranscriber {
    let mut c = OpenAiConfig::new("sk-test");
    c.base_url = format!("{base}/v1");
    c.retry = fast_retry();
    c.word_granularity = word_granularity;
    OpenAiTranscriber::new(c).unwrap()
}

#[test]
fn openai_multipart_request_is_complete() {
    let (base, srv) = server("/v1/audio/transcriptions", OA_OK, vec![]);
    let t = openai(&base, true)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap();
    assert_eq!(t.text(), "Hello there.");
    assert_eq!(t.pieces[0].words.len(), 2);
    assert_eq!(t.pieces[0].no_speech_prob, Some(0.01));
    let seen = srv.seen.lock().unwrap();
    let r = &seen[0];
    assert_eq!(r.headers["authorization"], "Bearer sk-test");
    let fields = multipart(&r.headers, &r.body);
    let get = |n: &str| {
        fields
            .iter()
            .filter(|f| f.0 == n)
            .map(|f| String::from_utf8_lossy(&f.3).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(get("model"), ["whisper-1"]);
    assert_eq!(get("response_format"), ["verbose_json"]);
    assert_eq!(get("timestamp_granularities[]"), ["segment", "word"]);
    assert_eq!(get("language"), ["en"]);
    let file = fields.iter().find(|f| f.0 == "file").expect("file field");
    assert_eq!(file.1.as_deref(), Some("audio.wav"));
    assert_eq!(file.2.as_deref(), Some("audio/wav"));
    check_wav(&file.3, 24_000);
}

#[test]
fn openai_self_hosted_without_word_granularity_or_key() {
    let (base, srv) = server(
        "/v1/audio/transcriptions",
        r#"{"text":"","segments":[]}"#,
        vec![Step::Status(500, "warming up", None)],
    );
    let mut c = OpenAiConfig::new("");
    c.base_url = format!("{base}/v1/");
    c.model = "Systran/faster-whisper-tiny.en".into();
    c.word_granularity = false;
    c.retry = fast_retry();
    let t = OpenAiTranscriber::new(c)
        .unwrap()
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap();
    assert!(t.is_silent());
    let seen = srv.seen.lock().unwrap();
    assert_eq!(seen.len(), 2);
    assert!(seen[1].headers.get("authorization").is_none());
    let fields = multipart(&seen[1].headers, &seen[1].body);
    let grans: Vec<_> = fields
        .iter()
        .filter(|f| f.0 == "timestamp_granularities[]")
        .map(|f| f.3.clone())
        .collect();
    assert_eq!(grans, [b"segment".to_vec()]);
}

#[test]
fn openai_errors_are_classified() {
    let (base, _srv) = server(
        "/v1/audio/transcriptions",
        OA_OK,
        vec![Step::Status(
            400,
            r#"{"error":{"message":"bad model"}}"#,
            None,
        )],
    );
    let e = openai(&base, true)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap_err();
    assert!(
        matches!(e, SttError::BadRequest { .. }) && e.to_string().contains("bad model"),
        "{e}"
    );
    let (base, _srv) = server("/v1/audio/transcriptions", OA_OK, vec![Step::Malformed]);
    let e = openai(&base, true)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap_err();
    assert!(matches!(e, SttError::BadResponse { .. }), "{e}");
    let (base, _srv) = server(
        "/v1/audio/transcriptions",
        OA_OK,
        vec![Step::Status(403, "no", None)],
    );
    let e = openai(&base, true)
        .transcribe(&audio(), &TranscribeOptions::default())
        .unwrap_err();
    assert!(e.is_fatal(), "{e}");
}

/// `transcribe` with each HTTP engine at `RUST_LOG=trace` and `-vv`, a
/// failed request and a retry included: no piece of the engine's key shows
/// (the HTTP stack's traces included).
#[test]
fn no_log_level_shows_a_speech_engine_key() {
    use crate::common::{self, Sandbox, write_demo};
    let cases = [
        (
            "openai",
            "/v1/audio/transcriptions",
            OA_OK,
            "OPENAI_API_KEY",
            "sk-proj-4f9c2a7e1b8d3f6a0c5e9b2d7a4f1c8e",
            "openai_url",
            "/v1",
        ),
        (
            "deepgram",
            "/v1/listen",
            DG_OK,
            "DEEPGRAM_API_KEY",
            "0f3a9c7e5b1d8f2a6c4e0b9d7f5a3c1e8b6d4a2f",
            "deepgram_url",
            "",
        ),
    ];
    for (engine, path, ok, var, key, url_key, suffix) in cases {
        let (base, srv) = server(path, ok, vec![Step::Status(500, "boom", None)]);
        let sb = Sandbox::new();
        let dir = sb.inputs();
        write_demo(&dir);
        assert_eq!(
            sb.run(&["import", dir.to_str().unwrap(), "--quiet"]).code,
            0
        );
        std::fs::write(
            sb.dir.path().join("config.toml"),
            format!("[stt]\n{url_key} = \"{base}{suffix}\"\n"),
        )
        .unwrap();
        let out = sb
            .cmd()
            .env("RUST_LOG", "trace")
            .env(var, key)
            .args(["-vv", "transcribe", "--engine", engine])
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{engine}: {text}");
        assert!(
            srv.seen.lock().unwrap().len() >= 2,
            "{engine}: retried once"
        );
        assert!(
            text.lines().filter(|l| l.contains("TRACE")).count() > 20,
            "{engine}: the trace was on"
        );
        common::assert_no_piece_of(
            &format!("transcribe --engine {engine} at trace"),
            &text,
            key,
        );
    }
}
