//! Speech detection over audio: the network and the span rules together,
//! streaming ([`SpeechDetector`]) or all at once ([`speech_spans`]).

use super::WINDOW_SAMPLES;
use super::network::{BLOCK, SileroVad};
use super::segments::{SpanTracker, SpeechSpan, VadParams, spans_from_probabilities};

/// silero-vad's `get_speech_timestamps` over audio fed a block at a time,
/// in bounded memory (a partial window, the network state and one pending
/// span), whatever the length of the audio.
///
/// The spans are exactly those of [`speech_spans`] on the whole audio, and
/// each is returned by the first [`SpeechDetector::push`] after which
/// nothing later can change it.
pub struct SpeechDetector {
    vad: SileroVad,
    tracker: SpanTracker,
    /// Samples of a window not yet complete (fewer than 512).
    partial: Vec<f32>,
    probs: Vec<f32>,
    seen: u64,
}

impl std::fmt::Debug for SpeechDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpeechDetector")
            .field("seen", &self.seen)
            .finish_non_exhaustive()
    }
}

impl SpeechDetector {
    /// A detector at the start of the audio. `params` are used as given
    /// (see [`VadParams::validate`]).
    pub fn new(params: VadParams) -> Self {
        SpeechDetector {
            vad: SileroVad::new(),
            tracker: SpanTracker::new(&params),
            partial: Vec::with_capacity(WINDOW_SAMPLES),
            probs: vec![0.0; BLOCK],
            seen: 0,
        }
    }

    /// Whether the audio so far ends inside speech (its last whole window).
    pub fn in_speech(&self) -> bool {
        self.tracker.in_speech()
    }

    /// Samples pushed so far.
    pub fn samples_seen(&self) -> u64 {
        self.seen
    }

    /// Feeds the next samples (16 kHz mono); returns the spans that became
    /// final, in order.
    pub fn push(&mut self, mut samples: &[f32]) -> Vec<SpeechSpan> {
        let mut out = Vec::new();
        self.seen += samples.len() as u64;
        if !self.partial.is_empty() {
            let take = (WINDOW_SAMPLES - self.partial.len()).min(samples.len());
            self.partial.extend_from_slice(&samples[..take]);
            samples = &samples[take..];
            if self.partial.len() < WINDOW_SAMPLES {
                return out;
            }
            let prob = self.vad.process_chunk(&self.partial);
            self.partial.clear();
            self.tracker.push(prob, &mut out);
        }
        let whole = samples.len() / WINDOW_SAMPLES * WINDOW_SAMPLES;
        for block in samples[..whole].chunks(BLOCK * WINDOW_SAMPLES) {
            let probs = &mut self.probs[..block.len() / WINDOW_SAMPLES];
            self.vad.run_windows(block, probs);
            for &p in probs.iter() {
                self.tracker.push(p, &mut out);
            }
        }
        self.partial.extend_from_slice(&samples[whole..]);
        out
    }

    /// Ends the audio: runs the last partial window (zero-padded) and
    /// returns the remaining spans.
    pub fn finish(mut self) -> Vec<SpeechSpan> {
        let mut out = Vec::new();
        if !self.partial.is_empty() {
            let prob = self.vad.process_chunk(&self.partial);
            self.tracker.push(prob, &mut out);
        }
        self.tracker.finish(self.seen, &mut out);
        out
    }
}

/// The speech spans of a whole recording (16 kHz mono): silero-vad's
/// `get_speech_timestamps(audio, model, ...)` with these parameters.
pub fn speech_spans(samples: &[f32], params: &VadParams) -> Vec<SpeechSpan> {
    let probs = SileroVad::new().probabilities(samples);
    spans_from_probabilities(&probs, samples.len() as u64, params)
}
