//! Deepgram pre-recorded transcription (`POST /v1/listen`), with the
//! parameters the Omi cloud uses: nova-3, smart_format, punctuate, diarize,
//! utterances.
//!
//! Audio goes up as a 16 kHz mono 16-bit WAV. Utterances (with speakers)
//! become [`Piece`]s; without utterances the words are grouped by speaker
//! turns. An empty word list is silence, not an error.

use serde::Deserialize;

use super::http::{self, RetryPolicy, SharedClient};
use super::{
    Piece, SAMPLE_RATE, SttError, TranscribeOptions, Transcriber, Transcript, Word, WordTimes,
};

const ENGINE: &str = "deepgram";

/// Deepgram settings. The key comes from the caller (keyring or env).
#[derive(Clone, PartialEq)]
pub struct DeepgramConfig {
    /// `Token` key.
    pub api_key: String,
    /// Base URL, `https://api.deepgram.com` by default (tests use loopback).
    pub base_url: String,
    /// Model, `nova-3`.
    pub model: String,
    /// Diarize (speaker labels).
    pub diarize: bool,
    /// Retries and timeouts.
    pub retry: RetryPolicy,
    /// The engine's HTTP client, shared by every worker.
    client: SharedClient,
}

impl std::fmt::Debug for DeepgramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeepgramConfig")
            .field("api_key", &"<redacted>")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("diarize", &self.diarize)
            .field("retry", &self.retry)
            .finish()
    }
}

impl DeepgramConfig {
    /// The Omi cloud's settings with `api_key`.
    pub fn new(api_key: impl Into<String>) -> Self {
        DeepgramConfig {
            api_key: api_key.into(),
            base_url: "https://api.deepgram.com".into(),
            model: "nova-3".into(),
            diarize: true,
            retry: RetryPolicy::default(),
            client: SharedClient::default(),
        }
    }
}

/// A Deepgram engine (cheap to clone: one per worker; the clones share one
/// connection pool).
#[derive(Clone)]
pub struct DeepgramTranscriber {
    cfg: DeepgramConfig,
    client: crate::http::Client,
    cancel: crate::cancel::Cancel,
}

impl std::fmt::Debug for DeepgramTranscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.cfg.fmt(f)
    }
}

impl DeepgramTranscriber {
    /// An engine with `cfg`. An empty key is refused at once.
    pub fn new(cfg: DeepgramConfig) -> Result<Self, SttError> {
        if cfg.api_key.trim().is_empty() {
            return Err(SttError::Auth {
                engine: ENGINE,
                message: "no Deepgram API key given".into(),
            });
        }
        let client = cfg.client.get(ENGINE, &cfg.base_url, &cfg.retry)?;
        Ok(DeepgramTranscriber {
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

    fn url(&self, opts: &TranscribeOptions) -> String {
        let mut url = format!(
            "{}/v1/listen?model={}&smart_format=true&punctuate=true&diarize={}&utterances=true",
            self.cfg.base_url.trim_end_matches('/'),
            self.cfg.model,
            self.cfg.diarize,
        );
        match opts.language.as_deref() {
            Some(l) => {
                url.push_str("&language=");
                url.push_str(l);
            }
            None => url.push_str("&detect_language=true"),
        }
        url
    }
}

#[derive(Deserialize)]
struct DgResponse {
    results: Option<DgResults>,
}

#[derive(Deserialize)]
struct DgResults {
    #[serde(default)]
    channels: Vec<DgChannel>,
    #[serde(default)]
    utterances: Option<Vec<DgUtterance>>,
}

#[derive(Deserialize)]
struct DgChannel {
    #[serde(default)]
    alternatives: Vec<DgAlternative>,
    #[serde(default)]
    detected_language: Option<String>,
}

#[derive(Deserialize)]
struct DgAlternative {
    #[serde(default)]
    words: Vec<DgWord>,
}

#[derive(Deserialize)]
struct DgUtterance {
    start: f64,
    end: f64,
    #[serde(default)]
    confidence: Option<f32>,
    #[serde(default)]
    transcript: String,
    #[serde(default)]
    words: Vec<DgWord>,
    #[serde(default)]
    speaker: Option<u32>,
}

#[derive(Deserialize)]
struct DgWord {
    word: String,
    #[serde(default)]
    punctuated_word: Option<String>,
    start: f64,
    end: f64,
    #[serde(default)]
    confidence: Option<f32>,
    #[serde(default)]
    speaker: Option<u32>,
}

impl DgWord {
    fn to_word(&self) -> Word {
        Word {
            start: self.start,
            end: self.end.max(self.start),
            text: self
                .punctuated_word
                .clone()
                .unwrap_or_else(|| self.word.clone())
                .trim()
                .to_string(),
            confidence: self.confidence,
            speaker: self.speaker,
        }
    }
}

fn join(words: &[Word]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Parses a `/v1/listen` answer.
pub fn parse_response(body: &str) -> Result<Transcript, SttError> {
    let r: DgResponse = serde_json::from_str(body).map_err(|e| SttError::BadResponse {
        engine: ENGINE,
        message: format!("{e} in {}", http::excerpt(body)),
    })?;
    let results = r.results.ok_or_else(|| SttError::BadResponse {
        engine: ENGINE,
        message: format!("no `results` in {}", http::excerpt(body)),
    })?;
    let language = results
        .channels
        .first()
        .and_then(|c| c.detected_language.clone());
    let mut pieces = Vec::new();
    match results.utterances.filter(|u| !u.is_empty()) {
        Some(utts) => {
            for u in utts {
                let words: Vec<Word> = u.words.iter().map(DgWord::to_word).collect();
                let text = if u.transcript.trim().is_empty() {
                    join(&words)
                } else {
                    u.transcript.trim().to_string()
                };
                if text.is_empty() {
                    continue;
                }
                pieces.push(Piece {
                    start: u.start,
                    end: u.end.max(u.start),
                    text,
                    words,
                    no_speech_prob: None,
                    confidence: u.confidence,
                    speaker: u.speaker,
                });
            }
        }
        None => {
            let words: Vec<Word> = results
                .channels
                .first()
                .and_then(|c| c.alternatives.first())
                .map(|a| a.words.iter().map(DgWord::to_word).collect())
                .unwrap_or_default();
            // Group by speaker turns.
            let mut turn: Vec<Word> = Vec::new();
            let flush = |turn: &mut Vec<Word>, pieces: &mut Vec<Piece>| {
                if turn.is_empty() {
                    return;
                }
                let ws = std::mem::take(turn);
                let conf = ws.iter().filter_map(|w| w.confidence).sum::<f32>() / ws.len() as f32;
                pieces.push(Piece {
                    start: ws[0].start,
                    end: ws[ws.len() - 1].end,
                    text: join(&ws),
                    speaker: ws[0].speaker,
                    confidence: Some(conf),
                    no_speech_prob: None,
                    words: ws,
                });
            };
            for w in words {
                if turn.last().is_some_and(|l| l.speaker != w.speaker) {
                    flush(&mut turn, &mut pieces);
                }
                turn.push(w);
            }
            flush(&mut turn, &mut pieces);
        }
    }
    Ok(Transcript {
        pieces,
        language,
        word_times: WordTimes::Onsets,
    })
}

impl Transcriber for DeepgramTranscriber {
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
        let url = self.url(opts);
        let auth = sensitive(&format!("Token {}", self.cfg.api_key))?;
        let client = &self.client;
        let body = http::send_with_retries(ENGINE, &self.cfg.retry, client, &self.cancel, || {
            client
                .request(crate::http::Method::POST, &url)
                .header(reqwest::header::AUTHORIZATION, auth.clone())
                .header(reqwest::header::CONTENT_TYPE, "audio/wav")
                .body(wav.clone())
        })?;
        parse_response(&body)
    }
}

/// A header value the HTTP stack never shows (marked sensitive).
pub(crate) fn sensitive(value: &str) -> Result<reqwest::header::HeaderValue, SttError> {
    let mut v =
        reqwest::header::HeaderValue::from_str(value).map_err(|_| SttError::BadRequest {
            engine: ENGINE,
            message: "the API key holds characters a header cannot carry".into(),
        })?;
    v.set_sensitive(true);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utterances_become_pieces_with_speakers() {
        let body = r#"{"metadata":{},"results":{"channels":[{"alternatives":[{"transcript":"Hello there. Hi.","words":[]}]}],
          "utterances":[
            {"start":0.1,"end":0.9,"confidence":0.98,"channel":0,"transcript":"Hello there.","speaker":0,
             "words":[{"word":"hello","start":0.1,"end":0.4,"confidence":0.99,"speaker":0,"punctuated_word":"Hello"},
                      {"word":"there","start":0.5,"end":0.9,"confidence":0.97,"speaker":0,"punctuated_word":"there."}]},
            {"start":1.5,"end":1.8,"confidence":0.9,"channel":0,"transcript":"Hi.","speaker":1,
             "words":[{"word":"hi","start":1.5,"end":1.8,"confidence":0.9,"speaker":1,"punctuated_word":"Hi."}]}]}}"#;
        let t = parse_response(body).unwrap();
        assert_eq!(t.pieces.len(), 2);
        assert_eq!(t.pieces[0].text, "Hello there.");
        assert_eq!(t.pieces[0].words[1].text, "there.");
        assert_eq!(t.pieces[1].speaker, Some(1));
        assert_eq!(t.pieces[1].words[0].speaker, Some(1));
    }

    #[test]
    fn words_without_utterances_are_grouped_by_speaker() {
        let body = r#"{"results":{"channels":[{"alternatives":[{"transcript":"a b c","words":[
            {"word":"a","start":0.0,"end":0.1,"speaker":0},{"word":"b","start":0.2,"end":0.3,"speaker":0},
            {"word":"c","start":0.5,"end":0.6,"speaker":1}]}]}]}}"#;
        let t = parse_response(body).unwrap();
        assert_eq!(t.text(), "a b c");
        assert_eq!(t.pieces.len(), 2);
    }

    #[test]
    fn empty_words_are_silence() {
        let body = r#"{"results":{"channels":[{"alternatives":[{"transcript":"","words":[]}]}],"utterances":[]}}"#;
        let t = parse_response(body).unwrap();
        assert!(t.is_silent());
    }

    #[test]
    fn malformed_answers_are_errors() {
        for b in [
            "",
            "{",
            "[]",
            r#"{"results":{"channels":[{"alternatives":[{"words":[{"word":1}]}]}]}}"#,
            r#"{"err":"x"}"#,
        ] {
            assert!(
                matches!(parse_response(b), Err(SttError::BadResponse { .. })),
                "{b}"
            );
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let c = DeepgramConfig::new("secret-key-123");
        assert!(!format!("{c:?}").contains("secret"));
        assert!(
            DeepgramTranscriber::new(DeepgramConfig::new(" "))
                .unwrap_err()
                .is_fatal()
        );
    }
}
