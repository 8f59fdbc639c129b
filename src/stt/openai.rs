//! OpenAI-compatible transcription (`POST /v1/audio/transcriptions`): the
//! OpenAI API itself or a self-hosted Whisper server speaking the same
//! protocol (configurable base URL).
//!
//! The request is `multipart/form-data` (built here) with `file` (a 16 kHz
//! mono 16-bit WAV), `model`, `response_format=verbose_json` and
//! `timestamp_granularities[]=segment` (plus `word` when word timings are
//! asked for and the server supports them). `verbose_json` segments become
//! [`Piece`]s with `no_speech_prob` and `exp(avg_logprob)` as confidence;
//! top-level words are placed into the segments by time.

use serde::Deserialize;

use super::http::{self, RetryPolicy, SharedClient};
use super::{
    Piece, SAMPLE_RATE, SttError, TranscribeOptions, Transcriber, Transcript, Word, WordTimes,
};

const ENGINE: &str = "openai";

/// Settings for an OpenAI-compatible server. The key comes from the caller.
#[derive(Clone, PartialEq)]
pub struct OpenAiConfig {
    /// `Bearer` key (may be empty for a self-hosted server without auth).
    pub api_key: String,
    /// Base URL up to and including `/v1`, e.g. `https://api.openai.com/v1`
    /// or `http://localhost:8000/v1`.
    pub base_url: String,
    /// Model name (`whisper-1`, or the server's).
    pub model: String,
    /// Send `timestamp_granularities[]=word` when word timings are asked for
    /// (turn off for servers that refuse it).
    pub word_granularity: bool,
    /// Retries and timeouts.
    pub retry: RetryPolicy,
    /// The engine's HTTP client, shared by every worker.
    client: SharedClient,
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("word_granularity", &self.word_granularity)
            .field("retry", &self.retry)
            .finish()
    }
}

impl OpenAiConfig {
    /// OpenAI's own API with `whisper-1`.
    pub fn new(api_key: impl Into<String>) -> Self {
        OpenAiConfig {
            api_key: api_key.into(),
            base_url: "https://api.openai.com/v1".into(),
            model: "whisper-1".into(),
            word_granularity: true,
            retry: RetryPolicy::default(),
            client: SharedClient::default(),
        }
    }
}

/// An OpenAI-compatible engine (cheap to clone: one per worker; the clones
/// share one connection pool).
#[derive(Clone)]
pub struct OpenAiTranscriber {
    cfg: OpenAiConfig,
    client: crate::http::Client,
    cancel: crate::cancel::Cancel,
}

impl std::fmt::Debug for OpenAiTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cfg.fmt(f)
    }
}

impl OpenAiTranscriber {
    /// An engine with `cfg`.
    pub fn new(cfg: OpenAiConfig) -> Result<Self, SttError> {
        let client = cfg.client.get(ENGINE, &cfg.base_url, &cfg.retry)?;
        Ok(OpenAiTranscriber {
            cfg,
            client,
            cancel: crate::cancel::Cancel::new(),
        })
    }

    /// The same engine, whose requests and waits end when `cancel` fires.
    pub fn with_cancel(mut self, cancel: crate::cancel::Cancel) -> Self {
        self.cancel = cancel;
        self
    }
}

/// A `multipart/form-data` body under construction.
pub(crate) struct Multipart {
    boundary: String,
    body: Vec<u8>,
}

impl Multipart {
    pub(crate) fn new() -> Self {
        Multipart {
            boundary: format!(
                "omi-sync-{:016x}{:016x}",
                fastrand::u64(..),
                fastrand::u64(..)
            ),
            body: Vec::new(),
        }
    }

    pub(crate) fn text(&mut self, name: &str, value: &str) {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n",
                self.boundary
            )
            .as_bytes(),
        );
    }

    pub(crate) fn file(&mut self, name: &str, filename: &str, content_type: &str, data: &[u8]) {
        self.body.extend_from_slice(
            format!(
                "--{}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n",
                self.boundary
            )
            .as_bytes(),
        );
        self.body.extend_from_slice(data);
        self.body.extend_from_slice(b"\r\n");
    }

    pub(crate) fn finish(mut self) -> (String, Vec<u8>) {
        self.body
            .extend_from_slice(format!("--{}--\r\n", self.boundary).as_bytes());
        (
            format!("multipart/form-data; boundary={}", self.boundary),
            self.body,
        )
    }
}

#[derive(Deserialize)]
struct VerboseJson {
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    duration: Option<f64>,
    #[serde(default)]
    segments: Option<Vec<OaSegment>>,
    #[serde(default)]
    words: Option<Vec<OaWord>>,
}

#[derive(Deserialize)]
struct OaSegment {
    start: f64,
    end: f64,
    #[serde(default)]
    text: String,
    #[serde(default)]
    avg_logprob: Option<f32>,
    #[serde(default)]
    no_speech_prob: Option<f32>,
}

#[derive(Deserialize)]
struct OaWord {
    word: String,
    start: f64,
    end: f64,
}

/// Parses a `verbose_json` answer (or a plain `{"text": ...}` one).
pub fn parse_response(body: &str) -> Result<Transcript, SttError> {
    let v: VerboseJson = serde_json::from_str(body).map_err(|e| SttError::BadResponse {
        engine: ENGINE,
        message: format!("{e} in {}", http::excerpt(body)),
    })?;
    let words: Vec<Word> = v
        .words
        .unwrap_or_default()
        .into_iter()
        .filter(|w| !w.word.trim().is_empty())
        .map(|w| Word {
            start: w.start,
            end: w.end.max(w.start),
            text: w.word.trim().to_string(),
            confidence: None,
            speaker: None,
        })
        .collect();
    let mut pieces: Vec<Piece> = match v.segments {
        Some(segs) => segs
            .into_iter()
            .filter(|s| !s.text.trim().is_empty())
            .map(|s| Piece {
                start: s.start,
                end: s.end.max(s.start),
                text: s.text.trim().to_string(),
                words: Vec::new(),
                no_speech_prob: s.no_speech_prob,
                confidence: s.avg_logprob.map(|l| l.exp().clamp(0.0, 1.0)),
                speaker: None,
            })
            .collect(),
        None => match v.text.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => vec![Piece {
                start: 0.0,
                end: v.duration.unwrap_or(0.0),
                text: t.to_string(),
                ..Default::default()
            }],
            Some(_) => Vec::new(),
            None => {
                return Err(SttError::BadResponse {
                    engine: ENGINE,
                    message: format!("neither `segments` nor `text` in {}", http::excerpt(body)),
                });
            }
        },
    };
    // Words go to the segment holding their midpoint (else the nearest).
    if !pieces.is_empty() {
        for w in words {
            let mid = (w.start + w.end) / 2.0;
            let i = pieces
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let d = if mid < p.start {
                        p.start - mid
                    } else if mid > p.end {
                        mid - p.end
                    } else {
                        0.0
                    };
                    (i, d)
                })
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or(0, |(i, _)| i);
            pieces[i].words.push(w);
        }
    }
    Ok(Transcript {
        pieces,
        language: v.language,
        word_times: WordTimes::Onsets,
    })
}

impl Transcriber for OpenAiTranscriber {
    fn name(&self) -> &'static str {
        ENGINE
    }

    fn transcribe(
        &mut self,
        audio: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SttError> {
        super::check_audio(ENGINE, audio)?;
        if audio.is_empty() {
            return Ok(Transcript::default());
        }
        let wav = super::wav::encode_pcm16(audio, SAMPLE_RATE);
        let mut form = Multipart::new();
        form.file("file", "audio.wav", "audio/wav", &wav);
        form.text("model", &self.cfg.model);
        form.text("response_format", "verbose_json");
        form.text("timestamp_granularities[]", "segment");
        if opts.word_timestamps && self.cfg.word_granularity {
            form.text("timestamp_granularities[]", "word");
        }
        if let Some(l) = &opts.language {
            form.text("language", l);
        }
        if let Some(p) = &opts.prompt {
            form.text("prompt", p);
        }
        form.text("temperature", "0");
        let (content_type, body) = form.finish();
        let url = format!(
            "{}/audio/transcriptions",
            self.cfg.base_url.trim_end_matches('/')
        );
        let auth = if self.cfg.api_key.is_empty() {
            None
        } else {
            Some(super::deepgram::sensitive(&format!(
                "Bearer {}",
                self.cfg.api_key
            ))?)
        };
        let client = &self.client;
        let answer =
            http::send_with_retries(ENGINE, &self.cfg.retry, client, &self.cancel, || {
                let mut req = client
                    .request(crate::http::Method::POST, &url)
                    .header(reqwest::header::CONTENT_TYPE, content_type.as_str());
                if let Some(auth) = &auth {
                    req = req.header(reqwest::header::AUTHORIZATION, auth.clone());
                }
                req.body(body.clone())
            })?;
        parse_response(&answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbose_json_with_words() {
        let body = r#"{"task":"transcribe","language":"english","duration":4.0,"text":"Hello there. General Kenobi.",
          "segments":[{"id":0,"seek":0,"start":0.0,"end":1.5,"text":" Hello there.","avg_logprob":-0.2,"no_speech_prob":0.01},
                      {"id":1,"seek":0,"start":2.0,"end":3.8,"text":" General Kenobi.","avg_logprob":-0.3,"no_speech_prob":0.02}],
          "words":[{"word":"Hello","start":0.1,"end":0.5},{"word":"there.","start":0.6,"end":1.4},
                   {"word":"General","start":2.1,"end":2.6},{"word":"Kenobi.","start":2.7,"end":3.7}]}"#;
        let t = parse_response(body).unwrap();
        assert_eq!(t.pieces.len(), 2);
        assert_eq!(t.pieces[0].words.len(), 2);
        assert_eq!(t.pieces[1].words[1].text, "Kenobi.");
        assert!((t.pieces[0].confidence.unwrap() - (-0.2f32).exp()).abs() < 1e-6);
        assert_eq!(t.pieces[1].no_speech_prob, Some(0.02));
        assert_eq!(t.language.as_deref(), Some("english"));
    }

    #[test]
    fn plain_text_answer_and_silence() {
        let t = parse_response(r#"{"text":" Hi.","duration":1.0}"#).unwrap();
        assert_eq!(t.text(), "Hi.");
        assert!(
            parse_response(r#"{"text":"","segments":[]}"#)
                .unwrap()
                .is_silent()
        );
        assert!(parse_response(r#"{"text":""}"#).unwrap().is_silent());
    }

    #[test]
    fn malformed_answers_are_errors() {
        for b in ["", "<html>", "{}", r#"{"segments":[{"start":"x"}]}"#] {
            assert!(
                matches!(parse_response(b), Err(SttError::BadResponse { .. })),
                "{b}"
            );
        }
    }

    #[test]
    fn multipart_layout() {
        let mut m = Multipart::new();
        m.text("model", "whisper-1");
        m.file("file", "a.wav", "audio/wav", b"RIFF");
        let (ct, body) = m.finish();
        let b = ct.split("boundary=").nth(1).unwrap();
        let s = String::from_utf8(body).unwrap();
        assert!(s.starts_with(&format!(
            "--{b}\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nwhisper-1\r\n"
        )));
        assert!(s.contains("filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\nRIFF\r\n"));
        assert!(s.ends_with(&format!("--{b}--\r\n")));
    }
}
