//! Speech to text: one [`Transcriber`] trait, three engines, and the machinery
//! around them.
//!
//! This module owns turning 16 kHz mono audio into timed text:
//!
//! - [`Transcriber`], the one trait every engine implements, with the common
//!   result type [`Transcript`] (timed [`Piece`]s with optional per-word
//!   timings, no-speech probability, confidence and speaker) and the
//!   classified error [`SttError`] (temporary, rate-limited, fatal);
//! - the engines: local Whisper ([`whisper`], whisper.cpp through
//!   `whisper-rs`), Deepgram pre-recorded ([`deepgram`]) and any
//!   OpenAI-compatible `/v1/audio/transcriptions` server ([`openai`]);
//! - [`models`]: the table of whisper.cpp's ggml models, where a model file is
//!   found, and download / resume / verify;
//! - [`packing`]: short speech segments packed into windows of at most 30 s
//!   (Whisper always computes 30 s), and the words mapped back to segments
//!   and absolute time;
//! - [`guards`]: hallucination guards (silence, loops, stock noise phrases,
//!   text in the inserted gaps);
//! - [`pool`]: a generic bounded worker pool that delivers each result the
//!   moment it lands;
//! - [`engine`]: choosing an engine and building one instance per worker.
//!
//! It knows nothing about the ledger or about conversations: the caller
//! passes segments with an opaque group key and writes results wherever it
//! wants. [`crate::engine::transcribe`] is that caller: it plans the ledger's
//! untranscribed segments per conversation, runs the windows through the
//! pool with an [`engine::Engine`], and stores each segment as it lands.

pub mod deepgram;
pub mod engine;
pub mod ggml_file;
pub mod guards;
mod http;
pub mod models;
pub mod openai;
pub mod packing;
pub mod pool;
pub mod wav;
pub mod wer;
pub mod whisper;

use std::time::Duration;

pub use http::RetryPolicy;

/// Samples per second of the audio every engine takes.
pub const SAMPLE_RATE: u32 = 16_000;

/// One word with its timing, relative to the start of the audio given to the
/// engine (seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Word {
    /// Start, seconds from the start of the audio.
    pub start: f64,
    /// End, seconds from the start of the audio (`>= start`).
    pub end: f64,
    /// The word as the engine spelled it, punctuation included, no leading
    /// or trailing whitespace.
    pub text: String,
    /// The engine's confidence in this word, 0..=1, when it reports one
    /// (Whisper: the geometric mean probability of its tokens).
    pub confidence: Option<f32>,
    /// The speaker label (0, 1, ...) when the engine diarizes.
    pub speaker: Option<u32>,
}

/// One timed piece of a transcript (a Whisper segment, a Deepgram utterance,
/// an OpenAI `verbose_json` segment).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Piece {
    /// Start, seconds from the start of the audio.
    pub start: f64,
    /// End, seconds from the start of the audio.
    pub end: f64,
    /// The text, trimmed.
    pub text: String,
    /// Per-word timings, when the engine gives them (empty otherwise).
    pub words: Vec<Word>,
    /// Probability that the piece is not speech at all (Whisper's
    /// `no_speech` token), when the engine reports it.
    pub no_speech_prob: Option<f32>,
    /// Confidence 0..=1: the geometric mean token probability for Whisper
    /// (`exp(avg_logprob)`), the utterance confidence for Deepgram.
    pub confidence: Option<f32>,
    /// The speaker label when the engine diarizes.
    pub speaker: Option<u32>,
}

impl Piece {
    /// The piece's words, or, when the engine gave none, words synthesised by
    /// spreading the piece's time over its whitespace-separated words in
    /// proportion to their length (so packing can still map the text back).
    pub fn words_or_synthesized(&self) -> Vec<Word> {
        if !self.words.is_empty() {
            return self.words.clone();
        }
        let tokens: Vec<&str> = self.text.split_whitespace().collect();
        if tokens.is_empty() {
            return Vec::new();
        }
        let total: usize = tokens.iter().map(|t| t.chars().count().max(1)).sum();
        let span = (self.end - self.start).max(0.0);
        let mut at = self.start;
        tokens
            .iter()
            .map(|t| {
                let d = span * t.chars().count().max(1) as f64 / total as f64;
                let w = Word {
                    start: at,
                    end: at + d,
                    text: (*t).to_string(),
                    confidence: self.confidence,
                    speaker: self.speaker,
                };
                at += d;
                w
            })
            .collect()
    }
}

/// What an engine's word times mean, which decides how packing puts a word
/// back into its segment ([`packing::map_window`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WordTimes {
    /// Spans that may run over the pause beside the word (whisper.cpp's
    /// timestamp-token heuristic): a word goes where it overlaps most.
    #[default]
    Spans,
    /// Aligned onsets: a word's start is where it begins in the audio
    /// (whisper.cpp's DTW, Deepgram, OpenAI word timestamps), while its end
    /// may be a guess that runs into the next word's segment: a word goes
    /// where it starts.
    Onsets,
}

/// What an engine heard in one piece of audio.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    /// Timed pieces in time order. Empty means silence: not an error.
    pub pieces: Vec<Piece>,
    /// The language the engine used or detected, when it says.
    pub language: Option<String>,
    /// What the times of the pieces' `words` mean (words synthesized from a
    /// piece's text are always [`WordTimes::Spans`]).
    pub word_times: WordTimes,
}

impl Transcript {
    /// All text, pieces joined by single spaces.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            let t = p.text.trim();
            if t.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(t);
        }
        out
    }

    /// True when nothing was heard.
    pub fn is_silent(&self) -> bool {
        self.pieces.iter().all(|p| p.text.trim().is_empty())
    }
}

/// Options for one transcription call.
#[derive(Debug, Clone, PartialEq)]
pub struct TranscribeOptions {
    /// ISO 639-1 language code (`en`), or `None` to let the engine detect it.
    /// English-only Whisper models (`*.en`) always use English.
    pub language: Option<String>,
    /// Text to prime the decoder with (names, jargon), when the engine takes one.
    pub prompt: Option<String>,
    /// Ask for per-word timings (packing needs them to map words back).
    pub word_timestamps: bool,
}

impl Default for TranscribeOptions {
    fn default() -> Self {
        TranscribeOptions {
            language: Some("en".into()),
            prompt: None,
            word_timestamps: true,
        }
    }
}

/// Why a transcription failed, classified for the caller's retry decision:
/// see [`SttError::is_retryable`] and [`SttError::retry_after`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SttError {
    /// A passing problem (network, timeout, server error 5xx) that outlived
    /// the engine's own retries. Try the job again later.
    #[error("{engine}: temporary failure: {message}")]
    Temporary {
        /// Which engine (`whisper`, `deepgram`, `openai`).
        engine: &'static str,
        /// What happened.
        message: String,
    },
    /// The server said 429 and asked to wait longer than the engine was
    /// allowed to wait by itself.
    #[error("{engine}: rate limited{}: {message}", match .retry_after { Some(d) => format!(" (retry after {} s)", d.as_secs()), None => String::new() })]
    RateLimited {
        /// Which engine.
        engine: &'static str,
        /// How long the server asked to wait, if it said.
        retry_after: Option<Duration>,
        /// What the server said.
        message: String,
    },
    /// The key was refused (401/403). Fatal: retrying cannot help.
    #[error("{engine}: the API key was refused ({message}); check the key")]
    Auth {
        /// Which engine.
        engine: &'static str,
        /// What the server said.
        message: String,
    },
    /// The model is missing, unknown or unloadable. Fatal.
    #[error("{message}")]
    Model {
        /// What is wrong and how to fix it (names the command that fetches
        /// the model when it is missing).
        message: String,
    },
    /// The server refused the request as malformed (4xx other than
    /// 401/403/408/429), or the caller's input was unusable. Fatal for this
    /// job.
    #[error("{engine}: request refused: {message}")]
    BadRequest {
        /// Which engine.
        engine: &'static str,
        /// What the server or the check said.
        message: String,
    },
    /// The server answered 2xx with a body that could not be understood.
    /// Classed as temporary: the job may succeed later.
    #[error("{engine}: unreadable response: {message}")]
    BadResponse {
        /// Which engine.
        engine: &'static str,
        /// What was wrong with it (a short excerpt, never the audio or keys).
        message: String,
    },
    /// The engine itself failed (whisper.cpp returned an error code).
    #[error("{engine}: engine failure: {message}")]
    Engine {
        /// Which engine.
        engine: &'static str,
        /// What failed.
        message: String,
    },
    /// The job was cancelled before it ran.
    #[error("cancelled")]
    Cancelled,
}

impl SttError {
    /// True when trying the same job again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SttError::Temporary { .. }
                | SttError::RateLimited { .. }
                | SttError::BadResponse { .. }
                | SttError::Cancelled
        )
    }

    /// True when retrying cannot help until something is fixed (key, model,
    /// request).
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            SttError::Auth { .. } | SttError::Model { .. } | SttError::BadRequest { .. }
        )
    }

    /// How long the server asked to wait, for rate limiting.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SttError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A speech-to-text engine.
///
/// One value serves one worker: the pool makes one per worker (a Whisper
/// engine holds its own decoder state, sharing the loaded model), so the
/// method takes `&mut self` and implementations need only be [`Send`].
pub trait Transcriber: Send {
    /// A short engine name for logs and errors (`whisper`, `deepgram`, `openai`).
    fn name(&self) -> &'static str;

    /// Transcribes `audio` (16 kHz mono, samples in [-1, 1]). Times in the
    /// result are seconds from the start of `audio`. Silence gives an empty
    /// transcript, not an error. Never panics on bad input or bad responses.
    fn transcribe(
        &mut self,
        audio: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SttError>;
}

impl<T: Transcriber + ?Sized> Transcriber for Box<T> {
    fn name(&self) -> &'static str {
        (**self).name()
    }

    fn transcribe(
        &mut self,
        audio: &[f32],
        opts: &TranscribeOptions,
    ) -> Result<Transcript, SttError> {
        (**self).transcribe(audio, opts)
    }
}

/// Checks the audio every engine receives: finite samples, not absurdly long.
pub(crate) fn check_audio(engine: &'static str, audio: &[f32]) -> Result<(), SttError> {
    // Two hours at 16 kHz: far beyond any window or upload we make.
    const MAX_SAMPLES: usize = 2 * 3600 * SAMPLE_RATE as usize;
    if audio.len() > MAX_SAMPLES {
        return Err(SttError::BadRequest {
            engine,
            message: format!(
                "{} s of audio in one call is more than the 2 h limit",
                audio.len() / SAMPLE_RATE as usize
            ),
        });
    }
    if let Some(i) = audio.iter().position(|s| !s.is_finite()) {
        return Err(SttError::BadRequest {
            engine,
            message: format!("sample {i} is not a finite number"),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesized_words_cover_the_piece_in_order() {
        let p = Piece {
            start: 1.0,
            end: 3.0,
            text: "a bb ccc".into(),
            ..Default::default()
        };
        let w = p.words_or_synthesized();
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].start, 1.0);
        assert!((w[2].end - 3.0).abs() < 1e-9);
        assert!(w.windows(2).all(|p| p[0].end <= p[1].start + 1e-9));
        assert!((w[0].end - w[0].start) < (w[2].end - w[2].start));
    }

    #[test]
    fn transcript_text_and_silence() {
        let t = Transcript::default();
        assert!(t.is_silent());
        let t = Transcript {
            pieces: vec![
                Piece {
                    text: " Hello.".into(),
                    ..Default::default()
                },
                Piece {
                    text: "World ".into(),
                    ..Default::default()
                },
            ],
            language: None,
            ..Default::default()
        };
        assert_eq!(t.text(), "Hello. World");
        assert!(!t.is_silent());
    }

    #[test]
    fn error_classes() {
        let e = SttError::RateLimited {
            engine: "deepgram",
            retry_after: Some(Duration::from_secs(7)),
            message: "slow down".into(),
        };
        assert!(e.is_retryable() && !e.is_fatal());
        assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
        assert!(e.to_string().contains("retry after 7 s"));
        let e = SttError::Auth {
            engine: "openai",
            message: "401".into(),
        };
        assert!(e.is_fatal() && !e.is_retryable());
    }

    #[test]
    fn audio_checks() {
        assert!(check_audio("x", &[0.0, 0.5]).is_ok());
        assert!(matches!(
            check_audio("x", &[0.0, f32::NAN]),
            Err(SttError::BadRequest { .. })
        ));
    }
}
