//! Voice activity detection: Silero VAD v6 in plain Rust, and the speech
//! spans it finds.
//!
//! [`SileroVad`] is the network of silero-vad 6.2.3's
//! `silero_vad_16k_op15.onnx` (weights embedded from `assets/silero/`, no
//! ONNX runtime): one speech probability per 512-sample window of 16 kHz
//! audio, matching onnxruntime within 1e-4 (`tests/integration/vad_parity.rs`).
//! [`spans_from_probabilities`] turns probabilities into speech spans with
//! the package's `get_speech_timestamps` rules; [`SpeechDetector`] does both
//! over a stream in bounded memory, and [`speech_spans`] over a whole
//! recording.

mod detector;
mod kernels;
mod network;
mod segments;
mod spectrum;
mod weights;

pub use detector::{SpeechDetector, speech_spans};
pub use network::SileroVad;
pub use segments::{SpanTracker, SpeechSpan, VadParams, VadParamsError, spans_from_probabilities};
pub use weights::{TENSORS, Weights, WeightsError};

/// Samples per network window: 32 ms at 16 kHz.
pub const WINDOW_SAMPLES: usize = 512;

/// The only sample rate the network takes.
pub const SAMPLE_RATE: u32 = 16_000;
