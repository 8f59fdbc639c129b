//! Packing short speech segments into Whisper windows, and mapping the words
//! back.
//!
//! Whisper always computes a 30 s window, so one call per 2 s segment wastes
//! most of the work. [`pack`] lays consecutive segments of one group (the
//! caller's key, e.g. a conversation) side by side in windows of at most
//! [`PackConfig::max_window_ms`], shortening the silence between them to at
//! most [`PackConfig::max_gap_ms`] but keeping at least
//! [`PackConfig::min_gap_ms`] so Whisper still hears a pause. A segment longer
//! than a window is split into parts ([`pack_with_audio`] cuts at the quietest
//! point near the limit; [`pack`] cuts evenly). [`assemble`] builds a window's
//! audio from per-segment samples the caller loads; after transcription,
//! [`map_window`] maps every word back to its segment and absolute time (a
//! word in an inserted gap goes to the nearest segment, or is dropped as
//! text over no audio when it lies wholly inside the gap), and
//! [`Assembler`] joins the parts of split segments into one
//! [`SegmentTranscript`] per segment.
//!
//! All times here are integer milliseconds; a window's audio holds exactly
//! 16 samples per millisecond, so the mapping is exact.

use std::collections::HashMap;

use super::guards::{self, GuardConfig};
use super::{
    Piece, SAMPLE_RATE, SttError, TranscribeOptions, Transcriber, Transcript, Word, WordTimes,
};

/// Samples per millisecond at 16 kHz.
const SPMS: i64 = (SAMPLE_RATE / 1000) as i64;

/// One speech segment as the caller knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpeechSegment {
    /// The caller's id for the segment (e.g. a ledger row id).
    pub id: i64,
    /// Only segments with the same group are packed together (the caller
    /// passes e.g. its conversation or device key).
    pub group: i64,
    /// Absolute start, ms (any epoch, e.g. Unix ms).
    pub start_ms: i64,
    /// Absolute end, ms (`>= start_ms`; an empty segment is allowed and comes
    /// back silent).
    pub end_ms: i64,
}

impl SpeechSegment {
    /// Length in ms (0 if the end is before the start).
    pub fn len_ms(&self) -> i64 {
        (self.end_ms - self.start_ms).max(0)
    }
}

/// How windows are packed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackConfig {
    /// The most audio in one window (Whisper: 30 000).
    pub max_window_ms: i64,
    /// Silence between packed segments is shortened to at most this.
    pub max_gap_ms: i64,
    /// ...and lengthened to at least this (inserted as digital silence), so
    /// the model still hears a pause between segments.
    pub min_gap_ms: i64,
    /// When a segment is longer than a window, the cut is searched in this
    /// many ms before the window limit.
    pub split_search_ms: i64,
    /// Digital silence before the first part of every window, so the model
    /// hears the first word's onset (0 disables).
    pub lead_in_ms: i64,
    /// Real audio from before each part's start, played in the silence
    /// before it (taken from the inserted gap or the lead-in, never from the
    /// previous part): a soft first consonant the VAD's edge cut off is
    /// heard again (0 disables; a natural gap is always played whole). See
    /// [`Part::pre_roll_ms`]. 200 by default: on the demo with tiny.en it
    /// takes the WER from 17.3 % to 15.8 % (`bench/stt/demo_wer.py`). A
    /// word whose aligned onset falls in a pre-roll still goes to the part
    /// before it, as every onset in a gap does ([`map_window`]): onsets run
    /// late, and crediting the pre-roll's part instead moved the last word
    /// of a question into the next segment.
    pub pre_roll_ms: i64,
    /// A gap shorter than this (ms) is kept at its real length and played
    /// as the real audio (the next part's pre-roll): a short pause, or one
    /// stream cut in two at the boundary of two contiguous captures, sounds
    /// as it was spoken, and the packer keeps such a stream in one window
    /// when it fits in one. Longer gaps are silence, shortened to
    /// `max_gap_ms` and lengthened to `min_gap_ms`. 40 by default, which
    /// keeps speech cut at a capture boundary whole: a pull at radio speed
    /// makes a capture every couple of seconds, and a word cut there was
    /// heard twice ("net takes more | net than hour").
    pub natural_gap_ms: i64,
}

impl PackConfig {
    /// The most segment audio one window can hold (after the lead-in).
    fn capacity_ms(&self) -> i64 {
        (self.max_window_ms - self.lead_in_ms.max(0)).max(1000)
    }
}

impl Default for PackConfig {
    fn default() -> Self {
        PackConfig {
            max_window_ms: 30_000,
            max_gap_ms: 1_000,
            min_gap_ms: 400,
            split_search_ms: 8_000,
            lead_in_ms: 300,
            pre_roll_ms: 200,
            natural_gap_ms: crate::config::rules::CONTIGUOUS_MS,
        }
    }
}

impl PackConfig {
    /// One window per segment (no packing), for comparison benchmarks and
    /// engines that bill per request rather than per window.
    pub fn one_per_segment() -> Self {
        PackConfig {
            max_window_ms: 30_000,
            max_gap_ms: 0,
            min_gap_ms: i64::MAX / 4,
            split_search_ms: 8_000,
            lead_in_ms: 300,
            pre_roll_ms: 0,
            natural_gap_ms: 0,
        }
    }
}

/// A stretch of one segment placed in a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The segment this part comes from.
    pub segment_id: i64,
    /// The part's index among the segment's parts (0 for an unsplit segment).
    pub part_index: usize,
    /// How many parts the segment was split into (1 when not split).
    pub part_count: usize,
    /// Absolute start of the audio in this part, ms.
    pub abs_start_ms: i64,
    /// Absolute end, ms.
    pub abs_end_ms: i64,
    /// Where the part starts inside the window, ms from the window start.
    pub offset_ms: i64,
    /// Real audio from before `abs_start_ms` placed just before the part
    /// (ms: the whole of a natural gap, else at most
    /// [`PackConfig::pre_roll_ms`]; never more than the silence before the
    /// part in the window or in time). Words heard there
    /// go to the nearest part, as any word outside every part does
    /// ([`map_window`]).
    pub pre_roll_ms: i64,
}

impl Part {
    /// Length in ms.
    pub fn len_ms(&self) -> i64 {
        self.abs_end_ms - self.abs_start_ms
    }

    /// Where the audio to load for this part starts, absolute ms (its
    /// pre-roll included).
    pub fn load_start_ms(&self) -> i64 {
        self.abs_start_ms - self.pre_roll_ms
    }

    /// Where the part ends inside the window.
    pub fn window_end_ms(&self) -> i64 {
        self.offset_ms + self.len_ms()
    }

    /// Window time (ms) to absolute time, clamped into this part.
    pub fn to_abs(&self, window_ms: i64) -> i64 {
        self.abs_start_ms + (window_ms - self.offset_ms).clamp(0, self.len_ms())
    }
}

/// One window: parts of consecutive segments of one group, with shortened
/// silence between them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Index in the list [`pack`] returned (stable job id).
    pub index: usize,
    /// The group of every segment in it.
    pub group: i64,
    /// Parts in time order, non-overlapping, with gaps between.
    pub parts: Vec<Part>,
    /// Total length of the window's audio, ms (`<= max_window_ms`).
    pub duration_ms: i64,
}

impl Window {
    /// Samples in the window's audio (16 per ms).
    pub fn len_samples(&self) -> usize {
        (self.duration_ms * SPMS) as usize
    }

    /// The ms of actual segment audio (without inserted gaps).
    pub fn speech_ms(&self) -> i64 {
        self.parts.iter().map(Part::len_ms).sum()
    }
}

/// Cuts a long segment into parts of at most `max` ms; `choose` picks each
/// cut (absolute ms) within `[lo, hi]`.
fn split(
    seg: &SpeechSegment,
    cfg: &PackConfig,
    choose: &mut dyn FnMut(&SpeechSegment, i64, i64) -> i64,
) -> Vec<(i64, i64)> {
    let max = cfg.capacity_ms();
    let mut out = Vec::new();
    let mut cur = seg.start_ms;
    while seg.end_ms - cur > max {
        let hi = cur + max;
        let lo = (hi - cfg.split_search_ms.clamp(0, max / 2)).max(cur + 1);
        let cut = choose(seg, lo, hi).clamp(lo, hi);
        out.push((cur, cut));
        cur = cut;
    }
    out.push((cur, seg.end_ms.max(cur)));
    out
}

/// Even cuts: a segment of `len` is split into `ceil(len / max)` equal parts.
fn even_cut(cfg: &PackConfig) -> impl FnMut(&SpeechSegment, i64, i64) -> i64 + '_ {
    move |seg, lo, hi| {
        let max = cfg.capacity_ms();
        let n = seg.len_ms().div_euclid(max) + 1;
        let step = seg.len_ms().div_euclid(n).max(1);
        // The next even cut after `lo - step` ...
        let k = (lo - seg.start_ms + step - 1).div_euclid(step).max(1);
        (seg.start_ms + k * step).clamp(lo, hi)
    }
}

/// Packs segments into windows (pure: long segments are cut evenly).
///
/// Segments are taken per group in time order; every segment appears in
/// exactly one window, or its split parts cover it exactly.
pub fn pack(segments: &[SpeechSegment], cfg: &PackConfig) -> Vec<Window> {
    let mut even = even_cut(cfg);
    pack_impl(segments, cfg, &mut even)
}

/// Like [`pack`], but a segment longer than a window is cut at its quietest
/// 100 ms within [`PackConfig::split_search_ms`] before the limit; `load`
/// gives a long segment's samples (16 kHz, from its start). Segments that fit
/// are never loaded. When `load` returns `None` the cut is even.
pub fn pack_with_audio(
    segments: &[SpeechSegment],
    cfg: &PackConfig,
    mut load: impl FnMut(&SpeechSegment) -> Option<Vec<f32>>,
) -> Vec<Window> {
    let mut cache: HashMap<i64, Option<Vec<f32>>> = HashMap::new();
    let mut even = even_cut(cfg);
    let mut choose = |seg: &SpeechSegment, lo: i64, hi: i64| -> i64 {
        let audio = cache.entry(seg.id).or_insert_with(|| load(seg));
        match audio {
            Some(a) => quietest(a, seg.start_ms, lo, hi).unwrap_or_else(|| even(seg, lo, hi)),
            None => even(seg, lo, hi),
        }
    };
    pack_impl(segments, cfg, &mut choose)
}

/// The centre (absolute ms) of the quietest 100 ms frame in `[lo, hi]`.
fn quietest(audio: &[f32], start_ms: i64, lo: i64, hi: i64) -> Option<i64> {
    const FRAME: i64 = 100;
    let mut best: Option<(f64, i64)> = None;
    let mut t = lo;
    while t + FRAME <= hi {
        let a = ((t - start_ms) * SPMS) as usize;
        let b = ((t + FRAME - start_ms) * SPMS) as usize;
        let frame = audio.get(a..b.min(audio.len()))?;
        if frame.is_empty() {
            break;
        }
        let e: f64 = frame
            .iter()
            .map(|&s| f64::from(s) * f64::from(s))
            .sum::<f64>();
        let e = e / frame.len() as f64;
        if best.is_none_or(|(be, _)| e < be) {
            best = Some((e, t + FRAME / 2));
        }
        t += FRAME / 2;
    }
    best.map(|(_, c)| c)
}

fn pack_impl(
    segments: &[SpeechSegment],
    cfg: &PackConfig,
    choose: &mut dyn FnMut(&SpeechSegment, i64, i64) -> i64,
) -> Vec<Window> {
    let max = cfg.capacity_ms() + cfg.lead_in_ms.max(0);
    let lead = cfg.lead_in_ms.max(0);
    let mut sorted: Vec<&SpeechSegment> = segments.iter().collect();
    sorted.sort_by_key(|s| (s.group, s.start_ms, s.end_ms, s.id));

    let mut windows: Vec<Window> = Vec::new();
    let mut cur: Option<Window> = None;
    for seg in sorted {
        let pieces = split(seg, cfg, choose);
        let count = pieces.len();
        for (i, (a, b)) in pieces.into_iter().enumerate() {
            let part = Part {
                segment_id: seg.id,
                part_index: i,
                part_count: count,
                abs_start_ms: a,
                abs_end_ms: b,
                offset_ms: 0,
                pre_roll_ms: 0,
            };
            let same_group = cur.as_ref().is_some_and(|w| w.group == seg.group);
            let placed = cur
                .as_ref()
                .filter(|_| same_group)
                .and_then(|w| place_after(w, &part, cfg, max));
            match placed {
                Some(offset) => {
                    let w = cur.as_mut().expect("placed in the current window");
                    push_part(w, part, offset, cfg);
                }
                None => {
                    // A stream cut at a capture boundary moves whole into the
                    // new window when it fits there.
                    let carried = match cur.as_mut() {
                        Some(w) if same_group => carry_stream(w, &part, cfg, max),
                        _ => Vec::new(),
                    };
                    if let Some(w) = cur.take().filter(|w| !w.parts.is_empty()) {
                        windows.push(w);
                    }
                    let mut w = Window {
                        index: 0,
                        group: seg.group,
                        parts: Vec::new(),
                        duration_ms: 0,
                    };
                    for p in carried.into_iter().chain([part]) {
                        let offset = match w.parts.last() {
                            None => lead,
                            Some(_) => place_after(&w, &p, cfg, i64::MAX).expect("no limit"),
                        };
                        push_part(&mut w, p, offset, cfg);
                    }
                    cur = Some(w);
                }
            }
        }
    }
    windows.extend(cur);
    windows.sort_by_key(|w| (w.parts[0].abs_start_ms, w.group));
    for (i, w) in windows.iter_mut().enumerate() {
        w.index = i;
    }
    windows
}

/// Whether the gap from `a` to `b` is natural: kept and played as it was
/// ([`PackConfig::natural_gap_ms`]).
fn natural(a: &Part, b: &Part, cfg: &PackConfig) -> bool {
    b.abs_start_ms - a.abs_end_ms < cfg.natural_gap_ms
}

/// The gap (ms) to put between the window's last part and `part`: a natural
/// gap as it is, else the real gap shortened to [`PackConfig::max_gap_ms`]
/// and lengthened to [`PackConfig::min_gap_ms`].
fn gap_before(last: &Part, part: &Part, cfg: &PackConfig) -> i64 {
    let real = part.abs_start_ms - last.abs_end_ms;
    if natural(last, part, cfg) {
        return real.max(0);
    }
    let min_gap = cfg.min_gap_ms.max(0);
    real.clamp(min_gap, cfg.max_gap_ms.max(min_gap))
}

/// Where `part` would start in `w` after its last part, if it fits in `max`.
fn place_after(w: &Window, part: &Part, cfg: &PackConfig, max: i64) -> Option<i64> {
    let last = w.parts.last()?;
    let offset = w.duration_ms + gap_before(last, part, cfg);
    (offset + part.len_ms() <= max).then_some(offset)
}

/// Appends `part` at `offset`, with its pre-roll: a natural gap whole,
/// else as much as [`PackConfig::pre_roll_ms`] and the silence before it
/// (in the window and in time) allow.
fn push_part(w: &mut Window, mut part: Part, offset: i64, cfg: &PackConfig) {
    let pre_roll = match w.parts.last() {
        Some(last) if natural(last, &part, cfg) => offset - last.window_end_ms(),
        Some(last) => cfg
            .pre_roll_ms
            .min(offset - last.window_end_ms())
            .min(part.abs_start_ms - last.abs_end_ms),
        None => cfg.pre_roll_ms.min(offset),
    };
    part.offset_ms = offset;
    part.pre_roll_ms = pre_roll.max(0);
    w.duration_ms = offset + part.len_ms();
    w.parts.push(part);
}

/// When `next` continues the window's last part (a natural gap: one
/// stream, e.g. cut at a capture boundary) and does not fit after it, takes the stream's parts
/// out of `w` so they open the next window with it, provided the whole
/// stream fits in one window and something else stays behind.
fn carry_stream(w: &mut Window, next: &Part, cfg: &PackConfig, max: i64) -> Vec<Part> {
    let continues = |a: &Part, b: &Part| natural(a, b, cfg);
    let Some(last) = w.parts.last() else {
        return Vec::new();
    };
    if !continues(last, next) {
        return Vec::new();
    }
    let mut first = w.parts.len() - 1;
    while first > 0 && continues(&w.parts[first - 1], &w.parts[first]) {
        first -= 1;
    }
    let span = next.abs_end_ms - w.parts[first].abs_start_ms;
    if first == 0 || cfg.lead_in_ms.max(0) + span > max {
        return Vec::new();
    }
    let carried = w.parts.split_off(first);
    w.duration_ms = w.parts.last().map_or(0, Part::window_end_ms);
    carried
}

/// Builds a window's audio: each part's samples at its offset (its
/// pre-roll just before), digital silence in the gaps. `load` returns the
/// samples of `part.load_start_ms() .. part.abs_end_ms` (16 kHz); an answer
/// that is short at the start (a capture that begins inside the pre-roll) is
/// aligned on the part's end, and a longer one is cut, so the timing stays
/// exact.
pub fn assemble<E>(
    window: &Window,
    mut load: impl FnMut(&Part) -> Result<Vec<f32>, E>,
) -> Result<Vec<f32>, E> {
    let mut out = vec![0.0f32; window.len_samples()];
    for p in &window.parts {
        let samples = load(p)?;
        let wanted = ((p.len_ms() + p.pre_roll_ms) * SPMS) as usize;
        let samples = &samples[..samples.len().min(wanted)];
        let end = ((p.window_end_ms() * SPMS) as usize).min(out.len());
        // Short at the start (pre-roll the capture lacks): align on the end;
        // shorter than the part itself: the part starts at its offset.
        let part_len = (p.len_ms() * SPMS) as usize;
        let at = if samples.len() >= part_len {
            end.saturating_sub(samples.len())
        } else {
            ((p.offset_ms * SPMS) as usize).min(end)
        };
        let n = samples.len().min(out.len() - at);
        out[at..at + n].copy_from_slice(&samples[..n]);
    }
    Ok(out)
}

/// One word at absolute time, attributed to a segment.
#[derive(Debug, Clone, PartialEq)]
pub struct TimedWord {
    /// Absolute start, ms.
    pub start_ms: i64,
    /// Absolute end, ms.
    pub end_ms: i64,
    /// The word, punctuation included.
    pub text: String,
    /// The engine's confidence, when it gave one.
    pub confidence: Option<f32>,
    /// Speaker label, when the engine diarizes.
    pub speaker: Option<u32>,
}

/// Whether a segment turned out to hold speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentStatus {
    /// At least one word survived the guards.
    Speech,
    /// Nothing was heard (a VAD false alarm, or only hallucinations).
    Silent,
}

/// The words of one part of a segment, from one window.
#[derive(Debug, Clone, PartialEq)]
pub struct PartTranscript {
    /// The segment.
    pub segment_id: i64,
    /// Its group.
    pub group: i64,
    /// Which part of the segment.
    pub part_index: usize,
    /// How many parts the segment has.
    pub part_count: usize,
    /// Words in time order, absolute times within the part.
    pub words: Vec<TimedWord>,
}

/// The final result for one segment.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentTranscript {
    /// The segment.
    pub segment_id: i64,
    /// Its group.
    pub group: i64,
    /// `Speech` when it has words, else `Silent`.
    pub status: SegmentStatus,
    /// The words joined by spaces.
    pub text: String,
    /// Words in time order with absolute times.
    pub words: Vec<TimedWord>,
}

/// A word dropped while mapping, with why (for logs and diagnosis).
#[derive(Debug, Clone, PartialEq)]
pub struct DroppedWord {
    /// The word.
    pub text: String,
    /// Window time, ms.
    pub window_ms: i64,
    /// Why it was dropped.
    pub reason: guards::DropReason,
    /// The index of the window's part it was heard in, by the rule that
    /// splits a window's transcript at its parts (`None` only in a window
    /// without parts).
    pub part: Option<usize>,
}

/// Maps a window's transcript back to its parts.
///
/// The transcript first goes through [`guards::filter`] (no-speech, loops,
/// stock noise phrases, text over silence when `audio` is given). Where each
/// remaining word goes depends on what its times mean
/// ([`super::WordTimes`]):
///
/// - aligned onsets (DTW, Deepgram): the part holding the word's start, or,
///   for a start in the gap between two parts, the part before it (DTW
///   onsets run late). The end is no guide: whisper.cpp ends a word where
///   the next one starts, which for the last word before a pause is inside
///   the next part. Pieces are first regrouped per part, so the guards
///   judge each segment's words on their own.
/// - spans (the timestamp heuristic, or words spread over a piece's text by
///   [`super::Piece::words_or_synthesized`], which any piece without word
///   times makes the whole window use): the part the span overlaps most,
///   since Whisper often stretches a word over the pause beside it.
///
/// Any other word outside every part (in a gap, the lead-in or past the
/// end) goes to the nearest part, unless it is more than
/// [`GuardConfig::gap_tolerance_ms`] away from every part (text over no
/// audio: dropped). Word start and end are clamped into
/// the part, then shifted to absolute time.
///
/// Returns one [`PartTranscript`] per part of the window (empty words when
/// nothing was heard there), and the dropped words.
pub fn map_window(
    window: &Window,
    transcript: &Transcript,
    audio: Option<&[f32]>,
    guard: &GuardConfig,
) -> (Vec<PartTranscript>, Vec<DroppedWord>) {
    let onsets = transcript.word_times == WordTimes::Onsets
        && transcript
            .pieces
            .iter()
            .all(|p| !p.words.is_empty() || p.text.trim().is_empty());
    let by_part;
    let transcript = if onsets {
        by_part = split_at_parts(window, transcript);
        &by_part
    } else {
        transcript
    };
    let (kept, dropped_pieces) = guards::filter(transcript, audio, guard);
    let mut dropped: Vec<DroppedWord> = dropped_pieces
        .into_iter()
        .map(|d| {
            let window_ms = (d.start * 1000.0).round() as i64;
            DroppedWord {
                text: d.text,
                window_ms,
                reason: d.reason,
                part: (!window.parts.is_empty()).then(|| heard_in(&window.parts, window_ms)),
            }
        })
        .collect();
    let mut out: Vec<PartTranscript> = window
        .parts
        .iter()
        .map(|p| PartTranscript {
            segment_id: p.segment_id,
            group: window.group,
            part_index: p.part_index,
            part_count: p.part_count,
            words: Vec::new(),
        })
        .collect();
    if window.parts.is_empty() {
        return (out, dropped);
    }
    for piece in &kept.pieces {
        for w in piece.words_or_synthesized() {
            let s = secs_to_ms(w.start);
            let e = secs_to_ms(w.end).max(s);
            let home = if onsets {
                onset_part(&window.parts, s)
            } else {
                best_overlap(&window.parts, s, e)
            };
            let idx = match home {
                Some(i) => i,
                None => {
                    // Wholly in inserted silence (or past the end): the
                    // nearest part, unless it is far from every part. An
                    // onset in a gap is a late start, so only it counts.
                    let (i, ds) = nearest_part(&window.parts, s);
                    let (j, de) = if onsets {
                        (i, ds)
                    } else {
                        nearest_part(&window.parts, e)
                    };
                    if ds.min(de) > guard.gap_tolerance_ms {
                        dropped.push(DroppedWord {
                            text: w.text.clone(),
                            window_ms: s,
                            reason: guards::DropReason::OutsideAudio,
                            part: Some(if ds <= de { i } else { j }),
                        });
                        continue;
                    }
                    if ds <= de { i } else { j }
                }
            };
            let part = &window.parts[idx];
            out[idx].words.push(TimedWord {
                start_ms: part.to_abs(s),
                end_ms: part.to_abs(e),
                text: w.text.trim().to_string(),
                confidence: w.confidence,
                speaker: w.speaker.or(piece.speaker),
            });
        }
    }
    for p in &mut out {
        p.words.sort_by_key(|w| (w.start_ms, w.end_ms));
    }
    (out, dropped)
}

/// Regroups a transcript with aligned onsets into one piece per run of
/// words starting in the same part, so the guards judge each segment's text
/// on its own: whisper.cpp decoding without timestamp tokens gives a single
/// piece for the whole window, and a stock phrase heard over one noisy
/// segment must not hide inside it. A run's confidence is the geometric
/// mean of its words'; its no-speech probability is the piece's.
fn split_at_parts(window: &Window, transcript: &Transcript) -> Transcript {
    let mut pieces = Vec::new();
    for piece in &transcript.pieces {
        let mut run: Vec<Word> = Vec::new();
        let mut run_part = None;
        for w in &piece.words {
            let s = secs_to_ms(w.start);
            let part = heard_in(&window.parts, s);
            if run_part != Some(part) && !run.is_empty() {
                pieces.push(piece_of_words(piece, std::mem::take(&mut run)));
            }
            run_part = Some(part);
            run.push(w.clone());
        }
        if !run.is_empty() {
            pieces.push(piece_of_words(piece, run));
        }
    }
    Transcript {
        pieces,
        language: transcript.language.clone(),
        word_times: transcript.word_times,
    }
}

/// A piece holding `words` (not empty), cut from `from`.
fn piece_of_words(from: &Piece, words: Vec<Word>) -> Piece {
    let confs: Option<Vec<f32>> = words.iter().map(|w| w.confidence).collect();
    let confidence = match confs {
        Some(c) if !c.is_empty() => {
            let mean_ln =
                c.iter().map(|x| f64::from(x.max(1e-6)).ln()).sum::<f64>() / c.len() as f64;
            Some(mean_ln.exp() as f32)
        }
        _ => from.confidence,
    };
    Piece {
        start: words[0].start,
        end: words[words.len() - 1].end,
        text: words
            .iter()
            .map(|w| w.text.trim())
            .collect::<Vec<_>>()
            .join(" "),
        no_speech_prob: from.no_speech_prob,
        confidence,
        speaker: from.speaker,
        words,
    }
}

/// The part an aligned onset at window time `t` belongs to: the part
/// holding it, else, in the gap between two parts, the one before. DTW
/// onsets run late, never early: measured on the demo, first words start
/// 0.2-0.5 s into their segment, and a sentence's last word before a long
/// pause can start up to 0.8 s into the silence after it. `None` before the
/// first part or after the last.
fn onset_part(parts: &[Part], t: i64) -> Option<usize> {
    let after = parts.iter().position(|p| t < p.offset_ms);
    match after {
        Some(0) => None,
        Some(i) if t > parts[i - 1].window_end_ms() => Some(i - 1),
        _ => parts
            .iter()
            .position(|p| p.offset_ms <= t && t <= p.window_end_ms()),
    }
}

/// The part a piece starting at window time `t` was heard in: its onset's
/// part ([`onset_part`]), else (before the first part or after the last)
/// the nearest. `parts` is not empty.
fn heard_in(parts: &[Part], t: i64) -> usize {
    onset_part(parts, t).unwrap_or_else(|| nearest_part(parts, t).0)
}

/// The part a word `[s, e]` overlaps most (by ms of overlap; a zero-length
/// word inside a part counts as overlapping it).
fn best_overlap(parts: &[Part], s: i64, e: i64) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    for (i, p) in parts.iter().enumerate() {
        let ov = e.min(p.window_end_ms()) - s.max(p.offset_ms);
        let inside = s == e && p.offset_ms <= s && s <= p.window_end_ms();
        if (ov > 0 || inside) && best.is_none_or(|(_, b)| ov > b) {
            best = Some((i, ov));
        }
    }
    best.map(|(i, _)| i)
}

fn secs_to_ms(s: f64) -> i64 {
    if s.is_finite() {
        (s * 1000.0).round().clamp(-1e15, 1e15) as i64
    } else {
        0
    }
}

/// The part holding window time `t` (distance 0), else the nearest one and
/// its distance in ms (ties go to the earlier part).
fn nearest_part(parts: &[Part], t: i64) -> (usize, i64) {
    let mut best = (0, i64::MAX);
    for (i, p) in parts.iter().enumerate() {
        let d = if t < p.offset_ms {
            p.offset_ms - t
        } else if t > p.window_end_ms() {
            t - p.window_end_ms()
        } else {
            0
        };
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// What one window gave: per-part words, what the guards dropped, and the
/// engine's raw transcript (window time) for diagnosis.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowResult {
    /// One entry per part of the window.
    pub parts: Vec<PartTranscript>,
    /// Words the guards removed.
    pub dropped: Vec<DroppedWord>,
    /// The engine's answer before guards and mapping.
    pub raw: Transcript,
}

/// The whole job for one window, as a pool worker runs it: build the audio
/// with `load` ([`assemble`]), transcribe it, apply the guards and map the
/// words back ([`map_window`]). Feed [`WindowResult::parts`] to an
/// [`Assembler`].
pub fn transcribe_window(
    engine: &mut dyn Transcriber,
    window: &Window,
    opts: &TranscribeOptions,
    guard: &GuardConfig,
    load: impl FnMut(&Part) -> Result<Vec<f32>, SttError>,
) -> Result<WindowResult, SttError> {
    let audio = assemble(window, load)?;
    let raw = engine.transcribe(&audio, opts)?;
    let (parts, dropped) = map_window(window, &raw, Some(&audio), guard);
    Ok(WindowResult {
        parts,
        dropped,
        raw,
    })
}

/// Joins the parts of segments into whole [`SegmentTranscript`]s as windows
/// come back in any order: an unsplit segment is complete at once, a split
/// one when all its parts are in.
#[derive(Debug, Default)]
pub struct Assembler {
    pending: HashMap<i64, Vec<Option<PartTranscript>>>,
}

impl Assembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the parts from one window; returns the segments now complete.
    pub fn add(&mut self, parts: Vec<PartTranscript>) -> Vec<SegmentTranscript> {
        let mut done = Vec::new();
        for p in parts {
            let id = p.segment_id;
            let count = p.part_count.max(1);
            if count == 1 {
                done.push(finish(vec![p]));
                continue;
            }
            let slots = self.pending.entry(id).or_insert_with(|| vec![None; count]);
            if slots.len() != count || p.part_index >= count {
                // Inconsistent part numbering (a repack changed the split):
                // start over with this part.
                *slots = vec![None; count];
            }
            let idx = p.part_index.min(count - 1);
            slots[idx] = Some(p);
            if slots.iter().all(Option::is_some) {
                let parts = self
                    .pending
                    .remove(&id)
                    .unwrap_or_default()
                    .into_iter()
                    .flatten()
                    .collect();
                done.push(finish(parts));
            }
        }
        done
    }

    /// Segments still waiting for some of their parts.
    pub fn pending(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.pending.keys().copied().collect();
        v.sort_unstable();
        v
    }
}

fn finish(parts: Vec<PartTranscript>) -> SegmentTranscript {
    let segment_id = parts[0].segment_id;
    let group = parts[0].group;
    let mut words: Vec<TimedWord> = parts.into_iter().flat_map(|p| p.words).collect();
    words.sort_by_key(|w| (w.start_ms, w.end_ms));
    let text = words
        .iter()
        .map(|w| w.text.as_str())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    SegmentTranscript {
        segment_id,
        group,
        status: if words.is_empty() {
            SegmentStatus::Silent
        } else {
            SegmentStatus::Speech
        },
        text,
        words,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg(id: i64, group: i64, start: i64, end: i64) -> SpeechSegment {
        SpeechSegment {
            id,
            group,
            start_ms: start,
            end_ms: end,
        }
    }

    fn no_lead_in() -> PackConfig {
        PackConfig {
            lead_in_ms: 0,
            ..PackConfig::default()
        }
    }

    /// Streams kept whole across capture boundaries and 200 ms of pre-roll
    /// (off by default: see [`PackConfig::pre_roll_ms`]).
    fn streams() -> PackConfig {
        PackConfig {
            pre_roll_ms: 200,
            natural_gap_ms: 40,
            ..PackConfig::default()
        }
    }

    /// No lead-in, and every gap digital silence of at least the minimum.
    fn silent_gaps() -> PackConfig {
        PackConfig {
            natural_gap_ms: 0,
            ..no_lead_in()
        }
    }

    fn word_at(t0: f64, t1: f64, text: &str) -> Word {
        Word {
            start: t0,
            end: t1,
            text: text.into(),
            confidence: Some(0.9),
            speaker: None,
        }
    }

    fn transcript(words: Vec<Word>) -> Transcript {
        Transcript {
            pieces: vec![Piece {
                start: words.first().map_or(0.0, |w| w.start),
                end: words.last().map_or(0.0, |w| w.end),
                text: words
                    .iter()
                    .map(|w| w.text.clone())
                    .collect::<Vec<_>>()
                    .join(" "),
                words,
                no_speech_prob: Some(0.01),
                confidence: Some(0.9),
                speaker: None,
            }],
            language: None,
            word_times: WordTimes::Spans,
        }
    }

    #[test]
    fn packs_short_segments_with_shortened_gaps() {
        let segs = vec![
            seg(1, 7, 1_000, 3_000),
            seg(2, 7, 10_000, 12_500), // 7 s gap -> 1 s
            seg(3, 7, 12_600, 14_000), // 100 ms gap: kept, real audio
        ];
        let cfg = PackConfig {
            lead_in_ms: 0,
            natural_gap_ms: 400,
            ..PackConfig::default()
        };
        let w = pack(&segs, &cfg);
        assert_eq!(w.len(), 1);
        let p = &w[0].parts;
        assert_eq!(p[0].offset_ms, 0);
        assert_eq!(p[1].offset_ms, 3_000);
        assert_eq!(p[2].offset_ms, 5_500 + 100);
        assert_eq!(p[2].pre_roll_ms, 100, "the pause is the real audio");
        assert_eq!(w[0].duration_ms, 5_600 + 1_400);
        // With a lead-in everything shifts by it.
        let w = pack(
            &segs,
            &PackConfig {
                lead_in_ms: 300,
                ..cfg.clone()
            },
        );
        assert_eq!(w[0].parts[0].offset_ms, 300);
        assert_eq!(w[0].duration_ms, 300 + 5_600 + 1_400);
        // Without natural gaps, a short pause is lengthened to the minimum.
        let w = pack(
            &segs,
            &PackConfig {
                natural_gap_ms: 0,
                ..cfg
            },
        );
        assert_eq!(w[0].parts[2].offset_ms, 5_500 + 400);
    }

    #[test]
    fn groups_never_share_a_window() {
        let segs = vec![
            seg(1, 1, 0, 1_000),
            seg(2, 2, 1_500, 2_000),
            seg(3, 1, 3_000, 4_000),
        ];
        let w = pack(&segs, &PackConfig::default());
        for win in &w {
            assert!(
                win.parts.iter().all(
                    |p| segs.iter().find(|s| s.id == p.segment_id).unwrap().group == win.group
                )
            );
        }
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn one_per_segment_config_never_packs() {
        let segs: Vec<_> = (0..5)
            .map(|i| seg(i, 0, i * 3_000, i * 3_000 + 2_000))
            .collect();
        let w = pack(&segs, &PackConfig::one_per_segment());
        assert_eq!(w.len(), 5);
    }

    #[test]
    fn long_segment_is_split_evenly_and_covered() {
        let w = pack(&[seg(9, 0, 0, 70_000)], &PackConfig::default());
        assert_eq!(w.len(), 3);
        let parts: Vec<&Part> = w.iter().flat_map(|w| &w.parts).collect();
        assert_eq!(parts[0].abs_start_ms, 0);
        assert_eq!(parts[2].abs_end_ms, 70_000);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].abs_end_ms, pair[1].abs_start_ms);
        }
        assert!(
            parts
                .iter()
                .all(|p| p.len_ms() <= 30_000 && p.part_count == 3)
        );
        // Even: no crumb at the end.
        assert!(parts.iter().all(|p| p.len_ms() >= 20_000), "{parts:?}");
    }

    #[test]
    fn audio_split_cuts_at_the_quietest_point() {
        // 40 s of loud tone with a quiet 200 ms at 25.0 s.
        let mut a: Vec<f32> = (0..40 * 16_000)
            .map(|i| ((i as f32) * 0.05).sin() * 0.5)
            .collect();
        for s in &mut a[25 * 16_000..25 * 16_000 + 3_200] {
            *s = 0.0;
        }
        let w = pack_with_audio(
            &[seg(1, 0, 100_000, 140_000)],
            &PackConfig::default(),
            |_| Some(a.clone()),
        );
        let cut = w[0].parts[0].abs_end_ms - 100_000;
        assert!((25_000..=25_200).contains(&cut), "cut at {cut}");
    }

    #[test]
    fn a_stream_cut_at_a_capture_boundary_keeps_its_real_gap() {
        // Segment 2 starts where 1 ends (two contiguous 60 s files): no pause
        // is inserted; segment 3 after a longer pause gets silence.
        let segs = vec![
            seg(1, 0, 50_000, 60_000),
            seg(2, 0, 60_000, 61_500),
            seg(3, 0, 61_900, 62_000),
        ];
        let w = pack(
            &segs,
            &PackConfig {
                lead_in_ms: 0,
                ..streams()
            },
        );
        assert_eq!(w.len(), 1);
        let p = &w[0].parts;
        assert_eq!(p[1].offset_ms, p[0].window_end_ms());
        assert_eq!(p[1].pre_roll_ms, 0, "no room before a continuation");
        assert_eq!(p[2].offset_ms, p[1].window_end_ms() + 400);
        assert_eq!(p[2].pre_roll_ms, 200);
    }

    #[test]
    fn a_stream_moves_whole_into_the_next_window() {
        // 1 fills most of a window; 2 and 3 are one stream that does not fit
        // after it: both open the next window instead of being cut apart.
        let segs = vec![
            seg(1, 0, 0, 20_000),
            seg(2, 0, 25_000, 30_000),
            seg(3, 0, 30_000, 38_000),
        ];
        let w = pack(&segs, &streams());
        assert_eq!(w.len(), 2, "{w:?}");
        let ids: Vec<Vec<i64>> = w
            .iter()
            .map(|w| w.parts.iter().map(|p| p.segment_id).collect())
            .collect();
        assert_eq!(ids, vec![vec![1], vec![2, 3]]);
        let p = &w[1].parts;
        assert_eq!(p[0].offset_ms, 300);
        assert_eq!(p[1].offset_ms, p[0].window_end_ms());
        assert_eq!(w[0].duration_ms, 300 + 20_000);
        // Without the stream rule, 2 would have stayed with 1.
        let apart = pack(
            &segs,
            &PackConfig {
                natural_gap_ms: 0,
                ..streams()
            },
        );
        assert_eq!(apart[0].parts.len(), 2);
    }

    #[test]
    fn pre_roll_takes_only_silence_that_is_there() {
        let segs = vec![
            seg(1, 0, 10_000, 11_000),
            seg(2, 0, 11_100, 12_000), // 100 ms apart in time
            seg(3, 0, 20_000, 21_000), // far apart
        ];
        let w = &pack(&segs, &streams())[0];
        let p = &w.parts;
        assert_eq!(p[0].pre_roll_ms, 200, "within the 300 ms lead-in");
        assert_eq!(p[1].pre_roll_ms, 100, "never the previous segment's audio");
        assert_eq!(p[2].pre_roll_ms, 200);
        assert_eq!(p[2].load_start_ms(), 19_800);
        assert!(p[2].offset_ms - p[2].pre_roll_ms >= p[1].window_end_ms());
    }

    #[test]
    fn assemble_puts_pre_roll_before_the_part() {
        let segs = vec![seg(1, 0, 1_000, 1_010), seg(2, 0, 5_000, 5_010)];
        let w = &pack(&segs, &streams())[0];
        let p = &w.parts[1];
        assert_eq!(p.pre_roll_ms, 200);
        // The loader gives pre-roll (value 9) then the part (value 2).
        let audio = assemble(w, |part| {
            let mut v = vec![9.0; (part.pre_roll_ms * 16) as usize];
            v.extend(vec![part.segment_id as f32; 160]);
            Ok::<_, ()>(v)
        })
        .unwrap();
        let at = (p.offset_ms * 16) as usize;
        assert_eq!(audio[at], 2.0);
        assert_eq!(audio[at - 1], 9.0);
        assert_eq!(audio[at - 200 * 16], 9.0);
        assert_eq!(audio[at - 200 * 16 - 1], 0.0);
        // A capture that starts inside the pre-roll gives less: still aligned
        // on the part's end.
        let audio = assemble(w, |part| {
            let mut v = vec![9.0; 50];
            v.extend(vec![part.segment_id as f32; 160]);
            Ok::<_, ()>(v)
        })
        .unwrap();
        assert_eq!(audio[at], 2.0);
        assert_eq!(audio[at - 50], 9.0);
        assert_eq!(audio[at - 51], 0.0);
    }

    #[test]
    fn assemble_places_audio_at_offsets() {
        let segs = vec![seg(1, 0, 0, 10), seg(2, 0, 5_000, 5_010)];
        let w = &pack(&segs, &no_lead_in())[0];
        let audio = assemble(w, |p| Ok::<_, ()>(vec![p.segment_id as f32; 160])).unwrap();
        assert_eq!(audio.len(), w.len_samples());
        assert_eq!(audio[0], 1.0);
        assert_eq!(audio[159], 1.0);
        assert_eq!(audio[160], 0.0);
        let at = (w.parts[1].offset_ms * 16) as usize;
        assert_eq!(audio[at], 2.0);
        // A short load is padded, not a panic.
        let audio = assemble(w, |_| Ok::<_, ()>(vec![1.0; 3])).unwrap();
        assert_eq!(audio.len(), w.len_samples());
    }

    #[test]
    fn aligned_onsets_go_where_the_word_starts() {
        let segs = vec![seg(1, 0, 0, 1_000), seg(2, 0, 1_300, 3_000)];
        let w = &pack(&segs, &silent_gaps())[0];
        // Part 1 at 0..1000, part 2 at 1400..3100 (the 400 ms minimum gap).
        // As whisper.cpp's DTW gives them: each word ends where the next
        // starts, so "morning" spans the gap, and "move" starts late, just
        // past the end of its part.
        let words = vec![
            word_at(0.2, 0.85, "good"),
            word_at(0.85, 1.6, "morning"),
            word_at(1.6, 2.2, "did"),
            word_at(2.2, 3.1, "you"),
        ];
        let mut t = transcript(words.clone());
        t.word_times = WordTimes::Onsets;
        let texts = |parts: &[PartTranscript], i: usize| {
            parts[i]
                .words
                .iter()
                .map(|w| w.text.clone())
                .collect::<Vec<_>>()
        };
        let (parts, dropped) = map_window(w, &t, None, &GuardConfig::default());
        assert!(dropped.is_empty());
        assert_eq!(texts(&parts, 0), ["good", "morning"]);
        assert_eq!(texts(&parts, 1), ["did", "you"]);
        // Clamped into its part: the word does not run into the gap.
        assert_eq!(parts[0].words[1].end_ms, 1_000);

        let late = vec![word_at(0.1, 0.9, "we"), word_at(1.06, 1.7, "move")];
        let mut t = transcript(late.clone());
        t.word_times = WordTimes::Onsets;
        let (parts, _) = map_window(w, &t, None, &GuardConfig::default());
        assert_eq!(texts(&parts, 0), ["we", "move"]);
        // Even when the late onset is nearer the next part.
        let mut t = transcript(vec![word_at(0.1, 1.35, "is"), word_at(1.35, 1.8, "it")]);
        t.word_times = WordTimes::Onsets;
        let (parts, _) = map_window(w, &t, None, &GuardConfig::default());
        assert_eq!(texts(&parts, 0), ["is", "it"]);
        assert!(parts[1].words.is_empty());

        // The same times read as spans follow the overlap: the rule the
        // timestamp heuristic needs, and the one that misplaced these.
        let (parts, _) = map_window(w, &transcript(words), None, &GuardConfig::default());
        assert_eq!(texts(&parts, 0), ["good"]);
        let (parts, _) = map_window(w, &transcript(late), None, &GuardConfig::default());
        assert_eq!(texts(&parts, 0), ["we"]);
    }

    #[test]
    fn one_piece_over_many_segments_is_judged_segment_by_segment() {
        let segs = vec![seg(1, 0, 0, 2_000), seg(2, 0, 2_300, 3_300)];
        let w = &pack(&segs, &no_lead_in())[0];
        // Part 1 at 0..2000, part 2 at 2400..3400. One piece for the whole
        // window (whisper.cpp without timestamp tokens), confident overall,
        // with a doubtful stock phrase over the second segment.
        let mut words = vec![
            word_at(0.1, 0.6, "Hello"),
            word_at(0.6, 1.9, "world."),
            word_at(2.5, 2.9, "Thank"),
            word_at(2.9, 3.3, "you."),
        ];
        for (w, c) in words.iter_mut().zip([0.95, 0.9, 0.5, 0.6]) {
            w.confidence = Some(c);
        }
        let mut t = transcript(words);
        t.word_times = WordTimes::Onsets;
        t.pieces[0].confidence = Some(0.8);
        let (parts, dropped) = map_window(w, &t, None, &GuardConfig::default());
        let texts: Vec<Vec<&str>> = parts
            .iter()
            .map(|p| p.words.iter().map(|w| w.text.as_str()).collect())
            .collect();
        assert_eq!(texts, [vec!["Hello", "world."], vec![]]);
        assert_eq!(dropped.len(), 1, "{dropped:?}");
        assert_eq!(dropped[0].text, "Thank you.");
        assert_eq!(dropped[0].reason, guards::DropReason::NoisePhrase);
        assert_eq!(dropped[0].part, Some(1), "heard in the second part");
        // Read as one piece, the phrase would have stayed.
        t.word_times = WordTimes::Spans;
        let (parts, dropped) = map_window(w, &t, None, &GuardConfig::default());
        assert!(dropped.is_empty());
        assert_eq!(parts[1].words.len(), 2);
    }

    #[test]
    fn words_in_gaps_go_to_the_nearest_segment_or_are_dropped() {
        let segs = vec![seg(1, 0, 0, 2_000), seg(2, 0, 60_000, 62_000)];
        let w = &pack(&segs, &no_lead_in())[0];
        // Part 1 at 0..2000, part 2 at 3000..5000 (1 s gap).
        let t = transcript(vec![
            word_at(1.5, 2.1, "end"),     // mostly in part 1
            word_at(2.05, 2.3, "tail"),   // in the gap, near part 1
            word_at(2.45, 2.55, "ghost"), // wholly inside the gap, far: dropped
            word_at(2.8, 3.2, "start"),   // overlaps part 2 only
        ]);
        let (parts, dropped) = map_window(w, &t, None, &GuardConfig::default());
        let texts = |i: usize| {
            parts[i]
                .words
                .iter()
                .map(|w| w.text.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(texts(0), ["end", "tail"]);
        assert_eq!(texts(1), ["start"]);
        assert_eq!(dropped.len(), 1);
        assert_eq!(dropped[0].text, "ghost");
        // 2.45 s is 450 ms after part 1 and 550 ms before part 2.
        assert_eq!(dropped[0].part, Some(0));
        // Absolute times, clamped into the part.
        assert_eq!(parts[0].words[1].end_ms, 2_000);
        assert_eq!(parts[1].words[0].start_ms, 60_000);
        assert_eq!(parts[1].words[0].end_ms, 60_200);
    }

    #[test]
    fn assembler_waits_for_all_parts() {
        let w = pack(
            &[seg(5, 0, 0, 50_000), seg(6, 0, 51_000, 52_000)],
            &PackConfig::default(),
        );
        let mut asm = Assembler::new();
        let mk = |win: &Window, t: f64, text: &str| {
            map_window(
                win,
                &transcript(vec![word_at(t, t + 0.2, text)]),
                None,
                &GuardConfig::default(),
            )
            .0
        };
        // The last window (part 2 of seg 5 and seg 6) lands first.
        let last = w.last().unwrap();
        let done = asm.add(mk(last, 0.5, "second"));
        assert!(done.iter().all(|s| s.segment_id != 5));
        assert_eq!(asm.pending(), vec![5]);
        let done = asm.add(mk(&w[0], 0.5, "first"));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].text, "first second");
        assert_eq!(done[0].status, SegmentStatus::Speech);
        assert!(asm.pending().is_empty());
    }

    fn segments_strategy() -> impl Strategy<Value = Vec<SpeechSegment>> {
        prop::collection::vec((0i64..3, 0i64..20_000, 0i64..45_000), 1..40).prop_map(|v| {
            let mut t = 0;
            v.into_iter()
                .enumerate()
                .map(|(i, (g, gap, len))| {
                    t += gap;
                    let s = seg(i as i64, g, t, t + len);
                    t += len;
                    s
                })
                .collect()
        })
    }

    proptest! {
        #[test]
        fn windows_fit_and_cover_every_segment_exactly(segs in segments_strategy()) {
            for cfg in [PackConfig::default(), streams()] {
            let cfg = &cfg;
            let windows = pack(&segs, cfg);
            let mut cover: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
            for w in &windows {
                prop_assert!(w.duration_ms <= cfg.max_window_ms);
                prop_assert!(!w.parts.is_empty());
                let mut prev: Option<(i64, i64)> = None;
                for p in &w.parts {
                    if let Some((e, abs_end)) = prev {
                        let real = p.abs_start_ms - abs_end;
                        if real < cfg.natural_gap_ms {
                            // A natural gap is kept as it was, played whole.
                            prop_assert_eq!(p.offset_ms - e, real.max(0));
                            prop_assert_eq!(p.pre_roll_ms, real.max(0));
                        } else {
                            prop_assert!(p.offset_ms >= e + cfg.min_gap_ms);
                            prop_assert!(p.offset_ms <= e + cfg.max_gap_ms.max(cfg.min_gap_ms));
                            prop_assert!(p.pre_roll_ms <= cfg.pre_roll_ms);
                        }
                    }
                    prev = Some((p.window_end_ms(), p.abs_end_ms));
                    cover.entry(p.segment_id).or_default().push((p.abs_start_ms, p.abs_end_ms));
                }
                prop_assert_eq!(w.parts.last().unwrap().window_end_ms(), w.duration_ms);
            }
            for s in &segs {
                let mut c = cover.remove(&s.id).expect("every segment is in a window");
                c.sort();
                prop_assert_eq!(c[0].0, s.start_ms);
                prop_assert_eq!(c.last().unwrap().1, s.end_ms);
                for pair in c.windows(2) {
                    prop_assert_eq!(pair[0].1, pair[1].0);
                }
            }
            prop_assert!(cover.is_empty());
            }
        }

        #[test]
        fn a_word_maps_to_its_segment_and_exact_time(segs in segments_strategy(), pick in any::<prop::sample::Index>(), frac in 0.0f64..1.0) {
            let windows = pack(&segs, &PackConfig::default());
            let parts: Vec<(&Window, &Part)> = windows.iter().flat_map(|w| w.parts.iter().map(move |p| (w, p))).filter(|(_, p)| p.len_ms() >= 2).collect();
            prop_assume!(!parts.is_empty());
            let (w, p) = parts[pick.index(parts.len())];
            // A 1 ms word inside the part, at a whole ms.
            let off = p.offset_ms + ((p.len_ms() - 1) as f64 * frac).floor() as i64;
            let t = transcript(vec![word_at(off as f64 / 1000.0, (off + 1) as f64 / 1000.0, "w")]);
            let (out, dropped) = map_window(w, &t, None, &GuardConfig::default());
            prop_assert!(dropped.is_empty());
            let hit: Vec<_> = out.iter().filter(|pt| !pt.words.is_empty()).collect();
            prop_assert_eq!(hit.len(), 1);
            prop_assert_eq!(hit[0].segment_id, p.segment_id);
            prop_assert_eq!(hit[0].part_index, p.part_index);
            prop_assert_eq!(hit[0].words[0].start_ms, p.abs_start_ms + (off - p.offset_ms));
            prop_assert_eq!(hit[0].words[0].end_ms, p.abs_start_ms + (off + 1 - p.offset_ms));
        }
    }
}
