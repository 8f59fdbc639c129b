//! Hallucination guards: what Whisper says when nobody spoke.
//!
//! Whisper invents text on silence and noise ("Thank you.", "[BLANK_AUDIO]",
//! "(music)") and sometimes loops ("I'm going to, I'm going to, ...").
//! [`filter`] removes, from a [`Transcript`]:
//!
//! - pieces the model itself thinks are not speech: no-speech probability at
//!   or above [`GuardConfig::no_speech_threshold`] together with confidence
//!   below [`GuardConfig::low_confidence`] (OpenAI's rule, with
//!   `exp(-1.0)` as the log-probability bound), and pieces whose confidence
//!   is below [`GuardConfig::min_confidence`] whatever they say;
//! - annotations (text wholly in brackets, parentheses, asterisks or music
//!   notes) and stock phrases ([`GuardConfig::noise_phrases`]) when the piece
//!   is suspicious (no-speech probability at least
//!   [`GuardConfig::phrase_no_speech`], or confidence below
//!   [`GuardConfig::phrase_confidence`], or quiet audio);
//! - pieces over audio whose loudest 100 ms is below
//!   [`GuardConfig::silence_rms`] (text over silence), when the audio is given;
//! - repeated-phrase loops: an n-gram repeated [`GuardConfig::loop_repeats`]
//!   or more times in a row keeps only its first occurrence.
//!
//! Text in the inserted gaps of a packed window is handled while mapping
//! ([`super::packing::map_window`], [`GuardConfig::gap_tolerance_ms`]).

use super::{Piece, Transcript, Word};

/// Guard thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardConfig {
    /// A piece with no-speech probability at or above this...
    pub no_speech_threshold: f32,
    /// ...and confidence below this is dropped.
    pub low_confidence: f32,
    /// A piece with confidence below this is dropped whatever else.
    pub min_confidence: f32,
    /// Drop non-speech annotations ("[BLANK_AUDIO]", "(music)").
    pub drop_annotations: bool,
    /// Stock phrases dropped when their piece is suspicious. Compared after
    /// lower-casing and removing punctuation.
    pub noise_phrases: Vec<String>,
    /// A stock phrase is suspicious with no-speech probability at least this...
    pub phrase_no_speech: f32,
    /// ...or confidence below this.
    pub phrase_confidence: f32,
    /// A piece whose loudest 100 ms has an RMS below this is over silence.
    pub silence_rms: f32,
    /// An n-gram repeated this many times in a row is a loop.
    pub loop_repeats: usize,
    /// Longest n-gram checked for loops.
    pub loop_max_ngram: usize,
    /// A word lying wholly in an inserted gap more than this far from any
    /// segment's audio is dropped.
    pub gap_tolerance_ms: i64,
}

impl Default for GuardConfig {
    fn default() -> Self {
        GuardConfig {
            no_speech_threshold: 0.6,
            low_confidence: 0.37, // exp(-1.0)
            min_confidence: 0.05,
            drop_annotations: true,
            noise_phrases: [
                "thank you",
                "thank you very much",
                "thanks for watching",
                "thank you for watching",
                "thanks for listening",
                "please subscribe",
                "you",
                "bye",
                "oh",
                "um",
                "hmm",
                "blank audio",
                "blank_audio",
                "silence",
                "music",
                "applause",
                "inaudible",
                "no speech",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            phrase_no_speech: 0.2,
            phrase_confidence: 0.75,
            silence_rms: 0.003,
            loop_repeats: 3,
            loop_max_ngram: 8,
            gap_tolerance_ms: 400,
        }
    }
}

impl GuardConfig {
    /// No guards at all (for measuring what they remove).
    pub fn off() -> Self {
        GuardConfig {
            no_speech_threshold: f32::INFINITY,
            low_confidence: 0.0,
            min_confidence: 0.0,
            drop_annotations: false,
            noise_phrases: Vec::new(),
            phrase_no_speech: f32::INFINITY,
            phrase_confidence: 0.0,
            silence_rms: 0.0,
            loop_repeats: usize::MAX,
            loop_max_ngram: 0,
            gap_tolerance_ms: i64::MAX / 4,
        }
    }
}

/// Why text was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The model said it was probably not speech.
    NoSpeech,
    /// The model had very low confidence.
    LowConfidence,
    /// A non-speech annotation like "[BLANK_AUDIO]" or "(music)".
    Annotation,
    /// A stock phrase on a suspicious piece ("Thank you." on silence).
    NoisePhrase,
    /// The audio under it is silent.
    Silence,
    /// A repetition of a phrase already said 2+ times in a row.
    Loop,
    /// In the silence inserted between packed segments.
    OutsideAudio,
}

impl DropReason {
    /// Every reason, in the order reports list them.
    pub const ALL: [DropReason; 7] = [
        DropReason::NoSpeech,
        DropReason::LowConfidence,
        DropReason::Annotation,
        DropReason::NoisePhrase,
        DropReason::Silence,
        DropReason::Loop,
        DropReason::OutsideAudio,
    ];

    /// The stable name the ledger and reports use (`noise_phrase`).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoSpeech => "no_speech",
            DropReason::LowConfidence => "low_confidence",
            DropReason::Annotation => "annotation",
            DropReason::NoisePhrase => "noise_phrase",
            DropReason::Silence => "silence",
            DropReason::Loop => "loop",
            DropReason::OutsideAudio => "outside_audio",
        }
    }

    /// Parses [`DropReason::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// What the guard caught, in a few words for a person.
    pub fn describe(self) -> &'static str {
        match self {
            DropReason::NoSpeech => "the model said it was not speech",
            DropReason::LowConfidence => "the model had very low confidence",
            DropReason::Annotation => "a non-speech annotation, wholly in brackets",
            DropReason::NoisePhrase => "a stock phrase on a doubtful piece (\"Thank you.\")",
            DropReason::Silence => "text over silent audio",
            DropReason::Loop => "a repeated-phrase loop",
            DropReason::OutsideAudio => "text in the silence between packed segments",
        }
    }
}

/// Text that a guard removed.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    /// The text (a piece, or a word for loops).
    pub text: String,
    /// Start, seconds from the start of the audio.
    pub start: f64,
    /// Why.
    pub reason: DropReason,
}

/// Lower-case, punctuation removed, whitespace collapsed.
fn norm(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                ' '
            }
        })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text wholly in brackets, parentheses, asterisks or music notes, or made
/// only of such marks.
fn is_annotation(text: &str) -> bool {
    let t = text.trim();
    if t.is_empty() {
        return false;
    }
    if t.chars().all(|c| !c.is_alphanumeric()) {
        return true;
    }
    let pairs = [('[', ']'), ('(', ')'), ('*', '*'), ('♪', '♪'), ('<', '>')];
    pairs
        .iter()
        .any(|&(a, b)| t.starts_with(a) && t.trim_end_matches(['.', ' ']).ends_with(b))
}

/// How far before a piece's start its audio is checked for sound (s): word
/// times from aligned onsets run late (up to half a second for a first
/// word), so a short word can seem to lie wholly past the sound it was
/// heard in.
const LATE_ONSET_S: f64 = 0.5;

/// Loudest 100 ms RMS of `audio` between `start` and `end` seconds.
fn peak_rms(audio: &[f32], start: f64, end: f64) -> Option<f32> {
    let a = ((start.max(0.0) * 16_000.0) as usize).min(audio.len());
    let b = ((end.max(start) * 16_000.0).ceil() as usize).min(audio.len());
    if b <= a {
        return None;
    }
    audio[a..b]
        .chunks(1600)
        .map(|c| (c.iter().map(|s| s * s).sum::<f32>() / c.len() as f32).sqrt())
        .reduce(f32::max)
}

fn piece_reason(p: &Piece, audio: Option<&[f32]>, cfg: &GuardConfig) -> Option<DropReason> {
    let ns = p.no_speech_prob.unwrap_or(0.0);
    let conf = p.confidence.unwrap_or(1.0);
    if ns >= cfg.no_speech_threshold && conf < cfg.low_confidence {
        return Some(DropReason::NoSpeech);
    }
    if conf < cfg.min_confidence {
        return Some(DropReason::LowConfidence);
    }
    if cfg.drop_annotations && is_annotation(&p.text) {
        return Some(DropReason::Annotation);
    }
    let quiet = audio
        .and_then(|a| peak_rms(a, p.start - LATE_ONSET_S, p.end))
        .map(|r| r < cfg.silence_rms);
    if quiet == Some(true) {
        return Some(DropReason::Silence);
    }
    let n = norm(&p.text);
    if cfg.noise_phrases.iter().any(|ph| norm(ph) == n)
        && (ns >= cfg.phrase_no_speech || conf < cfg.phrase_confidence)
    {
        return Some(DropReason::NoisePhrase);
    }
    None
}

/// Marks words that repeat an n-gram already said `repeats - 1` times in a
/// row (keeping the first occurrence).
fn loop_marks(words: &[String], repeats: usize, max_n: usize) -> Vec<bool> {
    let mut drop = vec![false; words.len()];
    if repeats < 2 {
        return drop;
    }
    let mut i = 0;
    while i < words.len() {
        let mut advanced = false;
        for n in 1..=max_n.min((words.len() - i) / repeats.max(1)) {
            let gram = &words[i..i + n];
            let mut k = 1;
            while i + (k + 1) * n <= words.len() && &words[i + k * n..i + (k + 1) * n] == gram {
                k += 1;
            }
            if k >= repeats {
                for d in &mut drop[i + n..i + k * n] {
                    *d = true;
                }
                i += k * n;
                advanced = true;
                break;
            }
        }
        if !advanced {
            i += 1;
        }
    }
    drop
}

/// Applies the guards. `audio` (the audio the transcript came from, 16 kHz)
/// enables the silence check. Returns the kept transcript (pieces keep their
/// fields; a piece that lost loop words has its text rebuilt from the words
/// left) and what was dropped.
pub fn filter(
    transcript: &Transcript,
    audio: Option<&[f32]>,
    cfg: &GuardConfig,
) -> (Transcript, Vec<Dropped>) {
    let mut dropped = Vec::new();
    let mut kept: Vec<Piece> = Vec::new();
    for p in &transcript.pieces {
        if p.text.trim().is_empty() && p.words.is_empty() {
            continue;
        }
        match piece_reason(p, audio, cfg) {
            Some(reason) => dropped.push(Dropped {
                text: p.text.clone(),
                start: p.start,
                reason,
            }),
            None => {
                let mut p = p.clone();
                p.words = p.words_or_synthesized();
                kept.push(p);
            }
        }
    }

    // Loops, across piece boundaries.
    let flat: Vec<(usize, usize)> = kept
        .iter()
        .enumerate()
        .flat_map(|(pi, p)| (0..p.words.len()).map(move |wi| (pi, wi)))
        .collect();
    let normed: Vec<String> = flat
        .iter()
        .map(|&(pi, wi)| norm(&kept[pi].words[wi].text))
        .collect();
    let marks = loop_marks(&normed, cfg.loop_repeats, cfg.loop_max_ngram);
    if marks.iter().any(|&m| m) {
        let mut keep_words: Vec<Vec<Word>> = vec![Vec::new(); kept.len()];
        for (k, &(pi, wi)) in flat.iter().enumerate() {
            let w = &kept[pi].words[wi];
            if marks[k] {
                dropped.push(Dropped {
                    text: w.text.clone(),
                    start: w.start,
                    reason: DropReason::Loop,
                });
            } else {
                keep_words[pi].push(w.clone());
            }
        }
        let mut rebuilt = Vec::new();
        for (mut p, words) in kept.into_iter().zip(keep_words) {
            if words.is_empty() {
                continue;
            }
            if words.len() != p.words.len() {
                p.text = words
                    .iter()
                    .map(|w| w.text.as_str())
                    .collect::<Vec<_>>()
                    .join(" ");
            }
            p.words = words;
            rebuilt.push(p);
        }
        kept = rebuilt;
    }
    (
        Transcript {
            pieces: kept,
            language: transcript.language.clone(),
            word_times: transcript.word_times,
        },
        dropped,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, ns: f32, conf: f32) -> Piece {
        Piece {
            start: 0.0,
            end: 1.0,
            text: text.into(),
            words: Vec::new(),
            no_speech_prob: Some(ns),
            confidence: Some(conf),
            speaker: None,
        }
    }

    fn run(pieces: Vec<Piece>, audio: Option<&[f32]>) -> (String, Vec<DropReason>) {
        let t = Transcript {
            pieces,
            language: None,
            ..Default::default()
        };
        let (k, d) = filter(&t, audio, &GuardConfig::default());
        (k.text(), d.into_iter().map(|d| d.reason).collect())
    }

    #[test]
    fn keeps_ordinary_speech() {
        let (t, d) = run(vec![piece("The meeting moved to Friday.", 0.01, 0.8)], None);
        assert_eq!(t, "The meeting moved to Friday.");
        assert!(d.is_empty());
    }

    #[test]
    fn drops_no_speech_with_low_confidence_only() {
        let (t, d) = run(vec![piece("Some words.", 0.9, 0.2)], None);
        assert_eq!((t.as_str(), d), ("", vec![DropReason::NoSpeech]));
        // High no-speech but a confident decode is kept (OpenAI's rule).
        let (t, _) = run(vec![piece("Some words.", 0.9, 0.8)], None);
        assert_eq!(t, "Some words.");
        let (t, d) = run(vec![piece("Mumble.", 0.0, 0.01)], None);
        assert_eq!((t.as_str(), d), ("", vec![DropReason::LowConfidence]));
    }

    #[test]
    fn drops_annotations_always() {
        for a in [
            "[BLANK_AUDIO]",
            "(music)",
            "[ Silence ]",
            "*sighs*",
            "♪♪",
            "(upbeat music).",
        ] {
            let (t, d) = run(vec![piece(a, 0.0, 0.99)], None);
            assert_eq!((t.as_str(), d), ("", vec![DropReason::Annotation]), "{a}");
        }
    }

    #[test]
    fn drops_stock_phrases_only_when_suspicious() {
        let (t, d) = run(vec![piece(" Thank you.", 0.4, 0.6)], None);
        assert_eq!((t.as_str(), d), ("", vec![DropReason::NoisePhrase]));
        // Said clearly, it stays.
        let (t, _) = run(vec![piece("Thank you.", 0.01, 0.95)], None);
        assert_eq!(t, "Thank you.");
        // Part of a longer sentence, it stays.
        let (t, _) = run(vec![piece("Thank you for the help.", 0.4, 0.6)], None);
        assert_eq!(t, "Thank you for the help.");
    }

    #[test]
    fn drops_text_over_silent_audio() {
        let mut audio = vec![0.0005f32; 32_000];
        let (t, d) = run(vec![piece("Thank you.", 0.01, 0.95)], Some(&audio));
        assert_eq!((t.as_str(), d), ("", vec![DropReason::Silence]));
        for (i, s) in audio.iter_mut().enumerate() {
            *s = (i as f32 * 0.1).sin() * 0.2;
        }
        let (t, _) = run(vec![piece("Thank you.", 0.01, 0.95)], Some(&audio));
        assert_eq!(t, "Thank you.");
    }

    #[test]
    fn a_word_placed_late_just_after_its_sound_is_kept() {
        // Speech in the first 0.6 s, then digital silence; the aligned
        // onset put the word at 0.9-1.2 s.
        let audio: Vec<f32> = (0..32_000)
            .map(|i| {
                if i < 9_600 {
                    (i as f32 * 0.1).sin() * 0.2
                } else {
                    0.0
                }
            })
            .collect();
        let late = |start: f64, end: f64| Piece {
            start,
            end,
            ..piece("Agreed.", 0.01, 0.95)
        };
        let (t, _) = run(vec![late(0.9, 1.2)], Some(&audio));
        assert_eq!(t, "Agreed.");
        // Well past it, over nothing: text over silence.
        let (t, d) = run(vec![late(1.5, 1.9)], Some(&audio));
        assert_eq!((t.as_str(), d), ("", vec![DropReason::Silence]));
    }

    #[test]
    fn collapses_loops_to_the_first_occurrence() {
        let (t, d) = run(
            vec![piece(
                "I'm going to the store, I'm going to the store, I'm going to the store. Okay.",
                0.01,
                0.8,
            )],
            None,
        );
        assert_eq!(t, "I'm going to the store, Okay.");
        assert_eq!(d.len(), 10);
        assert!(d.iter().all(|r| *r == DropReason::Loop));
        // Twice is speech, not a loop.
        let (t, d) = run(vec![piece("no no, that is fine", 0.01, 0.8)], None);
        assert_eq!(t, "no no, that is fine");
        assert!(d.is_empty());
    }

    #[test]
    fn loops_across_pieces() {
        let (t, d) = run(
            vec![
                piece("Thank you so much.", 0.01, 0.9),
                piece("Thank you so much.", 0.01, 0.9),
                piece("Thank you so much.", 0.01, 0.9),
            ],
            None,
        );
        assert_eq!(t, "Thank you so much.");
        assert_eq!(d.len(), 8);
    }

    #[test]
    fn loop_marks_single_words() {
        let w: Vec<String> = "a a a a b".split(' ').map(String::from).collect();
        assert_eq!(loop_marks(&w, 3, 8), [false, true, true, true, false]);
    }

    #[test]
    fn reason_names_read_back() {
        for r in DropReason::ALL {
            assert_eq!(DropReason::parse(r.as_str()), Some(r));
            assert!(!r.describe().is_empty());
        }
        assert_eq!(DropReason::parse("bogus"), None);
    }

    #[test]
    fn off_keeps_everything() {
        let t = Transcript {
            pieces: vec![piece("[BLANK_AUDIO]", 0.99, 0.01)],
            language: None,
            ..Default::default()
        };
        let (k, d) = filter(&t, Some(&[0.0; 16_000]), &GuardConfig::off());
        assert_eq!(k.text(), "[BLANK_AUDIO]");
        assert!(d.is_empty());
    }
}
