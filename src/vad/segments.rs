//! From speech probabilities to speech spans: silero-vad 6.2.3's
//! `get_speech_timestamps`, in batch and streaming form.
//!
//! [`spans_from_probabilities`] is a line-by-line port of the package's
//! `get_speech_timestamps_from_probs` (with `min_silence_at_max_speech = 98`
//! and `use_max_poss_sil_at_max_speech = True`, the package defaults): a
//! hysteresis pass that finds raw segments, then a padding pass in which two
//! segments closer than twice the padding split the gap between them.
//!
//! [`SpanTracker`] computes the same spans one probability at a time in
//! constant memory, and hands each span out as soon as nothing later in the
//! audio can change it (padding included).

use serde::{Deserialize, Serialize};

use super::{SAMPLE_RATE, WINDOW_SAMPLES};

/// Silence (ms) a pause inside a long segment must exceed to be a candidate
/// cut when the segment reaches `max_speech_s` (the package's
/// `min_silence_at_max_speech`).
const MIN_SILENCE_AT_MAX_SPEECH_MS: i64 = 98;

/// The parameters of `get_speech_timestamps`, with its defaults.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct VadParams {
    /// A window whose probability is at least this is speech.
    pub threshold: f32,
    /// Inside speech, a window below this is silence; `None` means
    /// `max(threshold - 0.15, 0.01)`.
    pub neg_threshold: Option<f32>,
    /// Segments not longer than this are dropped.
    pub min_speech_ms: u32,
    /// Silence that ends a segment.
    pub min_silence_ms: u32,
    /// Padding added to each side of a segment (neighbours closer than
    /// twice this split the gap between them instead).
    pub speech_pad_ms: u32,
    /// Longer segments are cut, at their longest pause over 98 ms if there
    /// is one; `None` means no limit.
    pub max_speech_s: Option<f32>,
}

impl Default for VadParams {
    fn default() -> Self {
        VadParams {
            threshold: 0.5,
            neg_threshold: None,
            min_speech_ms: 250,
            min_silence_ms: 100,
            speech_pad_ms: 30,
            max_speech_s: None,
        }
    }
}

/// Why a [`VadParams`] makes no sense.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VadParamsError {
    /// `threshold` is not strictly between 0 and 1.
    #[error("VAD threshold {0} is not strictly between 0 and 1")]
    Threshold(f32),
    /// `neg_threshold` is not in (0, threshold].
    #[error("VAD negative threshold {neg} is not in (0, threshold = {threshold}]")]
    NegThreshold {
        /// The negative threshold given.
        neg: f32,
        /// The threshold it must not exceed.
        threshold: f32,
    },
    /// `max_speech_s` is not a positive finite number.
    #[error("VAD maximum speech duration {0} s is not a positive number of seconds")]
    MaxSpeech(f32),
}

impl VadParams {
    /// Checks that the parameters make sense. The span functions accept any
    /// value and then behave exactly as the Python formulas do (a NaN
    /// threshold finds no speech, for example), so call this where
    /// parameters come from a person.
    pub fn validate(&self) -> Result<(), VadParamsError> {
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            return Err(VadParamsError::Threshold(self.threshold));
        }
        if let Some(neg) = self.neg_threshold
            && !(neg > 0.0 && neg <= self.threshold)
        {
            return Err(VadParamsError::NegThreshold {
                neg,
                threshold: self.threshold,
            });
        }
        if let Some(max) = self.max_speech_s
            && !(max.is_finite() && max > 0.0)
        {
            return Err(VadParamsError::MaxSpeech(max));
        }
        Ok(())
    }
}

/// A stretch of speech, as sample offsets at 16 kHz (end exclusive).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpeechSpan {
    /// First sample of the span.
    pub start: u64,
    /// One past its last sample.
    pub end: u64,
}

/// The parameters in samples, computed as the Python code does.
#[derive(Clone, Copy, Debug)]
struct Limits {
    threshold: f64,
    neg_threshold: f64,
    min_speech: i64,
    min_silence: i64,
    pad: i64,
    /// `sr · max_speech_s - window - 2 · pad`, infinite without a limit.
    max_speech: f64,
    min_silence_at_max_speech: i64,
}

impl Limits {
    fn new(p: &VadParams) -> Self {
        // The Python code multiplies 16000 by milliseconds and divides by
        // 1000: always a whole number of samples at 16 kHz.
        let ms = |v: i64| v * (SAMPLE_RATE as i64 / 1000);
        let threshold = f64::from(p.threshold);
        let pad = ms(i64::from(p.speech_pad_ms));
        Limits {
            threshold,
            neg_threshold: p
                .neg_threshold
                .map(f64::from)
                .unwrap_or_else(|| (threshold - 0.15).max(0.01)),
            min_speech: ms(i64::from(p.min_speech_ms)),
            min_silence: ms(i64::from(p.min_silence_ms)),
            pad,
            max_speech: match p.max_speech_s {
                Some(s) => {
                    SAMPLE_RATE as f64 * f64::from(s) - WINDOW_SAMPLES as f64 - 2.0 * pad as f64
                }
                None => f64::INFINITY,
            },
            min_silence_at_max_speech: ms(MIN_SILENCE_AT_MAX_SPEECH_MS),
        }
    }
}

/// The speech spans of audio of `audio_len` samples whose per-window
/// probabilities are `probs`: silero-vad's `get_speech_timestamps` on the
/// same probabilities, computed in one pass over the whole list.
pub fn spans_from_probabilities(
    probs: &[f32],
    audio_len: u64,
    params: &VadParams,
) -> Vec<SpeechSpan> {
    let l = Limits::new(params);
    let audio_len = audio_len as i64;
    // Raw segments, [start, end) before padding.
    let mut speeches: Vec<(i64, i64)> = Vec::new();
    let mut triggered = false;
    let mut start = 0i64; // current_speech['start'], meaningful while triggered
    let mut temp_end = 0i64;
    let mut possible_ends: Vec<(i64, i64)> = Vec::new();

    for (i, &prob) in probs.iter().enumerate() {
        let prob = f64::from(prob);
        let cur = (i * WINDOW_SAMPLES) as i64;

        // Speech is back after a pause: remember the pause if long enough.
        if prob >= l.threshold && temp_end != 0 {
            let dur = cur - temp_end;
            if dur > l.min_silence_at_max_speech {
                possible_ends.push((temp_end, dur));
            }
            temp_end = 0;
            // (Python then moves `next_start` when `next_start < prev_end`;
            // with use_max_poss_sil_at_max_speech both are 0 here.)
        }

        if prob >= l.threshold && !triggered {
            triggered = true;
            start = cur;
            continue;
        }

        if triggered && (cur - start) as f64 > l.max_speech {
            // Python's `max(possible_ends, key=dur)`: the first longest pause.
            let mut best: Option<(i64, i64)> = None;
            for &(end, dur) in &possible_ends {
                if best.is_none_or(|(_, d)| dur > d) {
                    best = Some((end, dur));
                }
            }
            if let Some((prev_end, dur)) = best {
                speeches.push((start, prev_end));
                let next_start = prev_end + dur;
                if next_start < prev_end + cur {
                    start = next_start;
                } else {
                    triggered = false;
                }
                temp_end = 0;
                possible_ends.clear();
            } else {
                // No pause to cut at (and `prev_end` is always 0 with
                // use_max_poss_sil_at_max_speech): cut right here.
                speeches.push((start, cur));
                temp_end = 0;
                triggered = false;
                possible_ends.clear();
                continue;
            }
        }

        if prob < l.neg_threshold && triggered {
            if temp_end == 0 {
                temp_end = cur;
            }
            if cur - temp_end < l.min_silence {
                continue;
            }
            if temp_end - start > l.min_speech {
                speeches.push((start, temp_end));
            }
            temp_end = 0;
            triggered = false;
            possible_ends.clear();
            continue;
        }
    }
    if triggered && audio_len - start > l.min_speech {
        speeches.push((start, audio_len));
    }

    // Padding: each side by `pad`, or half the gap when neighbours are close.
    let last = speeches.len().saturating_sub(1);
    for i in 0..speeches.len() {
        if i == 0 {
            speeches[0].0 = (speeches[0].0 - l.pad).max(0);
        }
        if i != last {
            let gap = speeches[i + 1].0 - speeches[i].1;
            if gap < 2 * l.pad {
                speeches[i].1 += gap.div_euclid(2);
                speeches[i + 1].0 = (speeches[i + 1].0 - gap.div_euclid(2)).max(0);
            } else {
                speeches[i].1 = audio_len.min(speeches[i].1 + l.pad);
                speeches[i + 1].0 = (speeches[i + 1].0 - l.pad).max(0);
            }
        } else {
            speeches[i].1 = audio_len.min(speeches[i].1 + l.pad);
        }
    }
    speeches.into_iter().map(|(s, e)| span(s, e)).collect()
}

fn span(start: i64, end: i64) -> SpeechSpan {
    SpeechSpan {
        start: start.max(0) as u64,
        end: end.max(0) as u64,
    }
}

/// [`spans_from_probabilities`] one probability at a time, in constant
/// memory: each span comes out as soon as it is final.
///
/// A padded span is final once the next raw segment is known, or once no
/// raw segment can start within twice the padding of its end (future
/// segments start no earlier than the segment in progress, or than the next
/// window when none is) and the audio is known to reach past its padding.
#[derive(Clone, Debug)]
pub struct SpanTracker {
    l: Limits,
    /// Index of the next window.
    window: u64,
    triggered: bool,
    start: i64,
    temp_end: i64,
    /// The first longest pause seen in the current segment (what Python
    /// picks from `possible_ends`).
    best_pause: Option<(i64, i64)>,
    /// The last raw segment: its padded start and raw end, waiting for
    /// its padded end.
    open: Option<(i64, i64)>,
}

impl SpanTracker {
    /// A tracker at the start of the audio.
    pub fn new(params: &VadParams) -> Self {
        SpanTracker {
            l: Limits::new(params),
            window: 0,
            triggered: false,
            start: 0,
            temp_end: 0,
            best_pause: None,
            open: None,
        }
    }

    /// Whether the last window left it inside speech.
    pub fn in_speech(&self) -> bool {
        self.triggered
    }

    /// Takes the next window's probability; appends the spans it makes final.
    pub fn push(&mut self, prob: f32, out: &mut Vec<SpeechSpan>) {
        self.step(f64::from(prob), out);
        self.window += 1;
        self.close_if_final(out);
    }

    /// Ends the audio after `audio_len` samples (the probabilities pushed
    /// must be its windows, the last one zero-padded); appends the rest.
    pub fn finish(mut self, audio_len: u64, out: &mut Vec<SpeechSpan>) {
        let audio_len = audio_len as i64;
        if self.triggered && audio_len - self.start > self.l.min_speech {
            self.raw(self.start, audio_len, out);
        }
        if let Some((start, end)) = self.open.take() {
            out.push(span(start, audio_len.min(end + self.l.pad)));
        }
    }

    fn step(&mut self, prob: f64, out: &mut Vec<SpeechSpan>) {
        let l = self.l;
        let cur = (self.window * WINDOW_SAMPLES as u64) as i64;

        if prob >= l.threshold && self.temp_end != 0 {
            let dur = cur - self.temp_end;
            if dur > l.min_silence_at_max_speech && self.best_pause.is_none_or(|(_, d)| dur > d) {
                self.best_pause = Some((self.temp_end, dur));
            }
            self.temp_end = 0;
        }

        if prob >= l.threshold && !self.triggered {
            self.triggered = true;
            self.start = cur;
            return;
        }

        if self.triggered && (cur - self.start) as f64 > l.max_speech {
            self.temp_end = 0;
            if let Some((prev_end, dur)) = self.best_pause.take() {
                self.raw(self.start, prev_end, out);
                let next_start = prev_end + dur;
                if next_start < prev_end + cur {
                    self.start = next_start;
                } else {
                    self.triggered = false;
                }
            } else {
                self.raw(self.start, cur, out);
                self.triggered = false;
                return;
            }
        }

        if prob < l.neg_threshold && self.triggered {
            if self.temp_end == 0 {
                self.temp_end = cur;
            }
            if cur - self.temp_end < l.min_silence {
                return;
            }
            if self.temp_end - self.start > l.min_speech {
                self.raw(self.start, self.temp_end, out);
            }
            self.temp_end = 0;
            self.triggered = false;
            self.best_pause = None;
        }
    }

    /// A raw segment is complete: the previous one's padded end follows.
    fn raw(&mut self, start: i64, end: i64, out: &mut Vec<SpeechSpan>) {
        let pad = self.l.pad;
        let padded_start = match self.open.take() {
            Some((prev_start, prev_end)) => {
                let gap = start - prev_end;
                if gap < 2 * pad {
                    out.push(span(prev_start, prev_end + gap.div_euclid(2)));
                    start - gap.div_euclid(2)
                } else {
                    // The next segment starts inside the audio, so the
                    // padded end cannot pass the audio's end.
                    out.push(span(prev_start, prev_end + pad));
                    start - pad
                }
            }
            None => start - pad,
        };
        self.open = Some((padded_start.max(0), end));
    }

    /// Hands out the open span once its padded end is `end + pad` whatever
    /// follows: no segment can start within `2 · pad` of its end, and the
    /// audio reaches `end + pad` (the last window pushed may be partial, so
    /// only its first sample is sure to exist).
    fn close_if_final(&mut self, out: &mut Vec<SpeechSpan>) {
        if let Some((start, end)) = self.open {
            let earliest_next = if self.triggered {
                self.start
            } else {
                (self.window * WINDOW_SAMPLES as u64) as i64
            };
            let surely_seen = ((self.window - 1) * WINDOW_SAMPLES as u64) as i64 + 1;
            if earliest_next >= end + 2 * self.l.pad && surely_seen >= end + self.l.pad {
                out.push(span(start, end + self.l.pad));
                self.open = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const W: u64 = WINDOW_SAMPLES as u64;

    fn streamed(probs: &[f32], audio_len: u64, params: &VadParams) -> Vec<SpeechSpan> {
        let mut t = SpanTracker::new(params);
        let mut out = Vec::new();
        for &p in probs {
            t.push(p, &mut out);
        }
        t.finish(audio_len, &mut out);
        out
    }

    /// `n` windows of `p`.
    fn run(n: usize, p: f32) -> Vec<f32> {
        vec![p; n]
    }

    #[test]
    fn defaults_are_the_packages() {
        let p = VadParams::default();
        assert_eq!(p.threshold, 0.5);
        assert_eq!(p.neg_threshold, None);
        assert_eq!(
            (p.min_speech_ms, p.min_silence_ms, p.speech_pad_ms),
            (250, 100, 30)
        );
        assert_eq!(p.max_speech_s, None);
        assert!(p.validate().is_ok());
        let l = Limits::new(&p);
        assert!((l.neg_threshold - 0.35).abs() < 1e-12);
        assert_eq!((l.min_speech, l.min_silence, l.pad), (4000, 1600, 480));
    }

    #[test]
    fn validation_names_the_bad_parameter() {
        let bad = |f: fn(&mut VadParams)| {
            let mut p = VadParams::default();
            f(&mut p);
            p.validate().unwrap_err()
        };
        assert_eq!(bad(|p| p.threshold = 0.0), VadParamsError::Threshold(0.0));
        assert_eq!(bad(|p| p.threshold = 1.0), VadParamsError::Threshold(1.0));
        assert!(matches!(
            bad(|p| p.threshold = f32::NAN),
            VadParamsError::Threshold(_)
        ));
        assert!(matches!(
            bad(|p| p.neg_threshold = Some(0.6)),
            VadParamsError::NegThreshold { .. }
        ));
        assert!(matches!(
            bad(|p| p.neg_threshold = Some(0.0)),
            VadParamsError::NegThreshold { .. }
        ));
        assert_eq!(
            bad(|p| p.max_speech_s = Some(0.0)),
            VadParamsError::MaxSpeech(0.0)
        );
        assert!(matches!(
            bad(|p| p.max_speech_s = Some(f32::INFINITY)),
            VadParamsError::MaxSpeech(_)
        ));
        let msg = bad(|p| p.threshold = 1.5).to_string();
        assert!(
            msg.contains("1.5") && msg.contains("between 0 and 1"),
            "{msg}"
        );
    }

    #[test]
    fn one_segment_is_padded_and_clipped_to_the_audio() {
        // 10 silent windows, 20 speech, 10 silent.
        let mut probs = run(10, 0.1);
        probs.extend(run(20, 0.9));
        probs.extend(run(10, 0.1));
        let spans = spans_from_probabilities(&probs, 40 * W, &VadParams::default());
        assert_eq!(
            spans,
            vec![SpeechSpan {
                start: 10 * W - 480,
                end: 30 * W + 480
            }]
        );

        // Speech to the end of audio that is not a whole number of windows.
        let mut probs = run(2, 0.1);
        probs.extend(run(20, 0.9));
        let spans = spans_from_probabilities(&probs, 21 * W + 100, &VadParams::default());
        assert_eq!(
            spans,
            vec![SpeechSpan {
                start: 2 * W - 480,
                end: 21 * W + 100
            }]
        );
    }

    #[test]
    fn short_blips_are_dropped_and_close_segments_split_the_gap() {
        let p = VadParams::default();
        // 7 windows = 3584 samples: not over 250 ms (4000).
        let mut probs = run(5, 0.0);
        probs.extend(run(7, 0.9));
        probs.extend(run(10, 0.0));
        assert!(spans_from_probabilities(&probs, 22 * W, &p).is_empty());

        // Five silent windows end a segment (2048 >= 1600 samples); the
        // segments are then 2560 samples apart, under twice a 100 ms pad
        // (3200): they split the gap.
        let p = VadParams {
            speech_pad_ms: 100,
            ..VadParams::default()
        };
        let mut probs = run(10, 0.9);
        probs.extend(run(5, 0.0));
        probs.extend(run(10, 0.9));
        let spans = spans_from_probabilities(&probs, 25 * W, &p);
        assert_eq!(
            spans,
            vec![
                SpeechSpan {
                    start: 0,
                    end: 10 * W + 1280
                },
                SpeechSpan {
                    start: 15 * W - 1280,
                    end: 25 * W
                },
            ]
        );
    }

    #[test]
    fn hysteresis_keeps_speech_between_the_thresholds() {
        // 0.4 is below 0.5 but above 0.35: still speech once triggered.
        let mut probs = run(10, 0.9);
        probs.extend(run(10, 0.4));
        probs.extend(run(10, 0.9));
        probs.extend(run(10, 0.0));
        let spans = spans_from_probabilities(&probs, 40 * W, &VadParams::default());
        assert_eq!(
            spans,
            vec![SpeechSpan {
                start: 0,
                end: 30 * W + 480
            }]
        );
    }

    #[test]
    fn max_speech_cuts_at_the_longest_pause_or_right_there() {
        let p = VadParams {
            max_speech_s: Some(2.0),
            ..VadParams::default()
        };
        // Speech with pauses between thresholds: 4 windows (2048 > 1568)
        // at window 20, 6 windows at window 40; the cut comes when the
        // segment passes 32000 - 512 - 960 samples (window 61).
        let mut probs = run(20, 0.9);
        probs.extend(run(4, 0.4)); // between the thresholds: neither
        probs.extend(run(16, 0.9));
        probs.extend(run(6, 0.4));
        probs.extend(run(40, 0.9));
        let spans = spans_from_probabilities(&probs, probs.len() as u64 * W, &p);
        assert_eq!(spans, streamed(&probs, probs.len() as u64 * W, &p));
        // The pauses never dip under neg_threshold, so temp_end is never
        // set: no candidate pauses, so the cut is right at the limit.
        assert_eq!(spans[0].start, 0);
        assert_eq!(spans.len(), 2, "{spans:?}");

        // Pauses below neg_threshold but shorter than min_silence are
        // candidates: the longest one is the cut.
        let p = VadParams {
            max_speech_s: Some(2.0),
            min_silence_ms: 300,
            ..VadParams::default()
        };
        let mut probs = run(10, 0.9);
        probs.extend(run(4, 0.0)); // 2048 samples at window 10
        probs.extend(run(10, 0.9));
        probs.extend(run(8, 0.0)); // 4096 samples at window 24, under 4800
        probs.extend(run(40, 0.9));
        let len = probs.len() as u64 * W;
        let spans = spans_from_probabilities(&probs, len, &p);
        assert_eq!(spans, streamed(&probs, len, &p));
        // First cut at the longer pause (window 24, 4096 samples long).
        assert_eq!(
            spans[0],
            SpeechSpan {
                start: 0,
                end: 24 * W + 480
            }
        );
        assert_eq!(spans[1].start, 32 * W - 480);
    }

    #[test]
    fn spans_come_out_as_soon_as_they_are_final() {
        let p = VadParams::default();
        let mut t = SpanTracker::new(&p);
        let mut out = Vec::new();
        for _ in 0..10 {
            t.push(0.9, &mut out);
        }
        // Silence: the segment ends after 100 ms (4 windows: 2048 >= 1600),
        // and is final once the next window is 2·480 past its end.
        let mut when = None;
        for i in 0..20 {
            t.push(0.0, &mut out);
            if when.is_none() && !out.is_empty() {
                when = Some(i);
            }
        }
        assert_eq!(
            out,
            vec![SpeechSpan {
                start: 0,
                end: 10 * W + 480
            }]
        );
        assert_eq!(when, Some(4));
        let mut rest = Vec::new();
        t.finish(30 * W, &mut rest);
        assert!(rest.is_empty());
    }

    #[test]
    fn a_span_ending_in_the_partial_last_window_is_clipped_to_the_audio() {
        // A limit shorter than a window cuts at every window; the last cut
        // is at 3·512 and the audio ends 100 samples later, inside the
        // 224-sample padding (found by the property test below).
        let p = VadParams {
            threshold: 0.05,
            min_speech_ms: 0,
            min_silence_ms: 0,
            speech_pad_ms: 14,
            max_speech_s: Some(0.05),
            ..VadParams::default()
        };
        let probs = run(4, 0.99);
        let len = 3 * W + 100;
        let spans = spans_from_probabilities(&probs, len, &p);
        assert_eq!(spans.last().map(|s| s.end), Some(len));
        assert_eq!(streamed(&probs, len, &p), spans);
    }

    #[test]
    fn empty_audio_has_no_speech() {
        assert!(spans_from_probabilities(&[], 0, &VadParams::default()).is_empty());
        assert!(streamed(&[], 0, &VadParams::default()).is_empty());
    }

    fn params() -> impl Strategy<Value = VadParams> {
        (
            0.05f32..0.95,
            prop::option::of(0.01f32..0.6),
            0u32..600,
            0u32..400,
            0u32..200,
            prop::option::of(0.05f32..4.0),
        )
            .prop_map(
                |(threshold, neg, min_speech_ms, min_silence_ms, speech_pad_ms, max)| VadParams {
                    threshold,
                    neg_threshold: neg,
                    min_speech_ms,
                    min_silence_ms,
                    speech_pad_ms,
                    max_speech_s: max,
                },
            )
    }

    /// Probabilities in runs, so that speech, pauses and silence all occur.
    fn probabilities() -> impl Strategy<Value = Vec<f32>> {
        prop::collection::vec((0.0f32..1.0, 1usize..40), 0..40)
            .prop_map(|runs| runs.into_iter().flat_map(|(p, n)| run(n, p)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn streaming_equals_batch(probs in probabilities(), params in params(), tail in 0u64..512) {
            let len = match probs.len() as u64 {
                0 => 0,
                n => (n - 1) * W + 1 + tail,
            };
            prop_assert_eq!(
                streamed(&probs, len, &params),
                spans_from_probabilities(&probs, len, &params)
            );
        }
    }
}
