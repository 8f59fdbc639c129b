//! The request a conversation becomes, and its idempotency key.
//!
//! The timeline hands over a [`PushConversation`]: absolute times, pieces of
//! transcript with optional diarized speakers, and the keys of the segments the
//! conversation is made of. [`build`] turns it into the JSON body of
//! `POST /v1/dev/user/conversations/from-segments` under the cloud's rules
//! (`omi-facts.md` §5):
//!
//! - segment times are seconds (float) relative to `started_at`, `start >= 0`,
//!   `end > start`; text is non-empty (empty pieces are dropped, and a
//!   conversation with no text left is not pushable);
//! - `finished_at > started_at`; times are RFC 3339 UTC;
//! - speakers are labelled `SPEAKER_00`, `SPEAKER_01`, …; `is_user` is false
//!   (the pendant does not know who its wearer is);
//! - `source` is `sdcard` (pendant backlog);
//! - at most 500 segments: adjacent pieces of the same speaker are joined,
//!   shortest gap first, until 500 remain. Only if that is not enough are
//!   neighbours of different speakers joined, and the payload says so. Text is
//!   never dropped, reordered or split off into another conversation.
//!
//! The `client_session_id` ([`session_id`]) is a SHA-256 over the sorted member
//! segment keys: the same members always give the same id (so a retry, a crash
//! or a re-run lands on the same cloud conversation), and any change of
//! membership gives a new one.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::UtcMillis;

/// The most transcript segments one request may carry.
pub const MAX_SEGMENTS: usize = 500;
/// The `source` for pendant backlog.
pub const SOURCE_SDCARD: &str = "sdcard";
/// Every `client_session_id` omi-sync makes starts with this.
pub const SESSION_ID_PREFIX: &str = "omisync-";
/// The longest `client_session_id` the cloud accepts.
pub const MAX_SESSION_ID_LEN: usize = 200;
/// A piece whose end is not after its start is widened to this many ms.
pub const MIN_PIECE_MS: i64 = 10;
/// Hashed before the member keys, so the id can be re-derived by a later
/// version only on purpose.
const SESSION_ID_DOMAIN: &[u8] = b"omi-sync client_session_id v1\0";
/// The latest instant RFC 3339 can show (9999-12-31T23:59:59.999Z).
const LATEST_MS: i64 = 253_402_300_799_999;

/// One stretch of transcript, in absolute time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Piece {
    /// When the speech starts.
    pub start: UtcMillis,
    /// When it ends.
    pub end: UtcMillis,
    /// What was said.
    pub text: String,
    /// The diarized speaker, if STT gave one (0, 1, …).
    pub speaker: Option<u32>,
}

/// A conversation as the timeline hands it to the cloud side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushConversation {
    /// The ledger keys of the segments this conversation is made of; its
    /// identity in the cloud ([`session_id`]). Order does not matter.
    pub member_segment_keys: Vec<String>,
    /// When the conversation starts.
    pub started_at: UtcMillis,
    /// When it ends; must be after `started_at`.
    pub finished_at: UtcMillis,
    /// The transcript, in any order (sorted by start here).
    pub pieces: Vec<Piece>,
    /// Language code, e.g. `en`.
    pub language: String,
}

/// Knobs for [`build`]; the defaults are the cloud's rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadOptions {
    /// At most this many segments (the cloud allows 500).
    pub max_segments: usize,
    /// The `source` value.
    pub source: String,
    /// The `client_platform` value (default: this OS, e.g. `linux`).
    pub client_platform: String,
    /// The `client_device_id` value: this install of omi-sync, as
    /// [`client_device_id`] makes it (not the pendant: the cloud means the
    /// capturing app install).
    pub client_device_id: Option<String>,
}

impl Default for PayloadOptions {
    fn default() -> Self {
        PayloadOptions {
            max_segments: MAX_SEGMENTS,
            source: SOURCE_SDCARD.to_string(),
            client_platform: std::env::consts::OS.to_string(),
            client_device_id: None,
        }
    }
}

/// The `client_device_id` of an app install as upstream shapes it:
/// `{platform}_{first 8 hex of sha256(install id)}`, e.g. `linux_1a2b3c4d`.
pub fn client_device_id(platform: &str, install_id: &str) -> String {
    let digest = Sha256::digest(install_id.as_bytes());
    format!("{platform}_{}", hex::encode(&digest[..4]))
}

/// One element of `transcript_segments` on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptSegment {
    /// Non-empty text.
    pub text: String,
    /// `SPEAKER_00` style label.
    pub speaker: String,
    /// The numeric speaker, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_id: Option<u32>,
    /// Always false: the pendant cannot tell its wearer apart.
    pub is_user: bool,
    /// Seconds after `started_at`, `>= 0`.
    pub start: f64,
    /// Seconds after `started_at`, `> start`.
    pub end: f64,
}

/// The JSON body of `POST /v1/dev/user/conversations/from-segments`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CreateConversationRequest {
    /// 1 to 500 segments.
    pub transcript_segments: Vec<TranscriptSegment>,
    /// RFC 3339 UTC.
    pub started_at: String,
    /// RFC 3339 UTC, after `started_at`.
    pub finished_at: String,
    /// The idempotency key.
    pub client_session_id: String,
    /// A ConversationSource value (`sdcard`).
    pub source: String,
    /// Language code.
    pub language: String,
    /// The app install that captured it (`{platform}_{8 hex}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_device_id: Option<String>,
    /// The platform omi-sync runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_platform: Option<String>,
}

/// A conversation's idempotency key: `omisync-` + 64 hex characters.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(String);

impl SessionId {
    /// The id as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id of a later generation of the same conversation (2, 3, …):
    /// used when the same segments must be pushed again after their earlier
    /// copy was deleted from the cloud. After a DELETE, newer backends keep a
    /// tombstone of the conversation, and whether a later create with the
    /// same session id is refused, re-created, or answered with the deleted
    /// conversation is not settled (`omi-facts.md` §5), so a re-push after a
    /// delete never reuses a session id. Generation 1 is `self`.
    pub fn generation(&self, generation: u32) -> SessionId {
        if generation <= 1 {
            self.clone()
        } else {
            SessionId(format!("{}.{generation}", self.0))
        }
    }

    /// Which generation of `base` this id is, if it is one.
    pub fn generation_of(&self, base: &SessionId) -> Option<u32> {
        if self.0 == base.0 {
            return Some(1);
        }
        let rest = self.0.strip_prefix(base.0.as_str())?.strip_prefix('.')?;
        rest.parse().ok().filter(|g| *g >= 2)
    }

    /// The first generation this id belongs to (itself when it is one).
    pub fn base(&self) -> SessionId {
        match self.0.rsplit_once('.') {
            Some((base, g)) if !g.is_empty() && g.bytes().all(|b| b.is_ascii_digit()) => {
                SessionId(base.to_string())
            }
            _ => self.clone(),
        }
    }

    /// Wraps a stored id (from the ledger) without re-deriving it.
    pub fn from_stored(text: &str) -> Option<Self> {
        let ok = !text.is_empty() && text.chars().count() <= MAX_SESSION_ID_LEN;
        ok.then(|| SessionId(text.to_string()))
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Something [`build`] changed on the way, for the person reviewing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadNote {
    /// Pieces with no text were left out.
    DroppedEmpty {
        /// How many.
        count: usize,
    },
    /// Pieces starting before `started_at` were moved to start at it.
    ClampedToStart {
        /// How many.
        count: usize,
    },
    /// Pieces whose end was not after their start were given a minimal length.
    WidenedZeroLength {
        /// How many.
        count: usize,
    },
    /// Adjacent pieces of the same speaker were joined to stay within the limit.
    JoinedSameSpeaker {
        /// How many joins.
        joins: usize,
        /// The segment limit.
        limit: usize,
    },
    /// Joining the same speaker's pieces was not enough: neighbours of
    /// different speakers were joined too, so some speaker labels are
    /// approximate. No text was lost.
    JoinedAcrossSpeakers {
        /// How many such joins.
        joins: usize,
        /// The segment limit.
        limit: usize,
    },
}

impl fmt::Display for PayloadNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PayloadNote::DroppedEmpty { count } => {
                write!(f, "left out {count} piece(s) with no text")
            }
            PayloadNote::ClampedToStart { count } => write!(
                f,
                "{count} piece(s) started before the conversation and were moved to its start"
            ),
            PayloadNote::WidenedZeroLength { count } => write!(
                f,
                "{count} piece(s) had no duration and were given {MIN_PIECE_MS} ms"
            ),
            PayloadNote::JoinedSameSpeaker { joins, limit } => write!(
                f,
                "joined {joins} pair(s) of adjacent same-speaker pieces to fit the cloud's \
                 {limit}-segment limit (all text kept)"
            ),
            PayloadNote::JoinedAcrossSpeakers { joins, limit } => write!(
                f,
                "even one segment per speaker turn exceeds the cloud's {limit}-segment limit: \
                 joined {joins} pair(s) of neighbours with different speakers (all text kept, \
                 speaker labels of those segments are approximate)"
            ),
        }
    }
}

/// Why a conversation cannot be pushed as it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// No member segment keys: no stable identity.
    #[error(
        "the conversation has no member segments, so it has no stable identity \
         (client_session_id) and could be duplicated: not pushable"
    )]
    NoMembers,
    /// No piece has any text.
    #[error(
        "nothing to push: {pieces} piece(s), none with text (silence or VAD false alarms); \
         the cloud needs at least one non-empty segment"
    )]
    NoText {
        /// How many pieces there were.
        pieces: usize,
    },
    /// `finished_at` is not after `started_at`.
    #[error("the conversation ends ({finished_at}) no later than it starts ({started_at})")]
    EndsBeforeStart {
        /// Start.
        started_at: UtcMillis,
        /// End.
        finished_at: UtcMillis,
    },
    /// A time that RFC 3339 cannot show.
    #[error("{what} ({millis} ms since 1970) is outside the years 1970-9999")]
    OutOfRange {
        /// Which time.
        what: &'static str,
        /// Its value.
        millis: i64,
    },
    /// No language.
    #[error("the conversation has no language code (e.g. `en`)")]
    NoLanguage,
    /// A limit of zero segments was asked for.
    #[error("the segment limit must be at least 1")]
    ZeroLimit,
}

/// A request ready to send, with its idempotency key and what was changed.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltPayload {
    /// The request body.
    pub request: CreateConversationRequest,
    /// The idempotency key (also inside `request`).
    pub session_id: SessionId,
    /// What [`build`] changed, for review.
    pub notes: Vec<PayloadNote>,
}

impl BuiltPayload {
    /// The body as JSON.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.request).unwrap_or(serde_json::Value::Null)
    }

    /// Whether speakers had to be joined across turns (worth a warning).
    pub fn joined_across_speakers(&self) -> bool {
        self.notes
            .iter()
            .any(|n| matches!(n, PayloadNote::JoinedAcrossSpeakers { .. }))
    }
}

/// The `client_session_id` for a conversation made of these segments: the
/// same set (in any order, duplicates ignored) always gives the same id, and
/// any other set a different one.
pub fn session_id<S: AsRef<str>>(member_keys: &[S]) -> Result<SessionId, PayloadError> {
    let mut keys: Vec<&str> = member_keys.iter().map(AsRef::as_ref).collect();
    keys.sort_unstable();
    keys.dedup();
    if keys.is_empty() {
        return Err(PayloadError::NoMembers);
    }
    let mut hasher = Sha256::new();
    hasher.update(SESSION_ID_DOMAIN);
    for key in keys {
        // Length-prefixed so that no two different sets hash the same input.
        hasher.update((key.len() as u64).to_le_bytes());
        hasher.update(key.as_bytes());
    }
    Ok(SessionId(format!(
        "{SESSION_ID_PREFIX}{}",
        hex::encode(hasher.finalize())
    )))
}

fn check_range(what: &'static str, t: UtcMillis) -> Result<(), PayloadError> {
    if (0..=LATEST_MS).contains(&t.0) {
        Ok(())
    } else {
        Err(PayloadError::OutOfRange { what, millis: t.0 })
    }
}

/// A speaker label: `SPEAKER_00`, `SPEAKER_01`, …
pub fn speaker_label(speaker: Option<u32>) -> String {
    format!("SPEAKER_{:02}", speaker.unwrap_or(0))
}

/// Builds the request for a conversation with the default options.
pub fn build(conv: &PushConversation) -> Result<BuiltPayload, PayloadError> {
    build_with(conv, &PayloadOptions::default())
}

/// Builds the request for a conversation.
pub fn build_with(
    conv: &PushConversation,
    opts: &PayloadOptions,
) -> Result<BuiltPayload, PayloadError> {
    if opts.max_segments == 0 {
        return Err(PayloadError::ZeroLimit);
    }
    let session_id = session_id(&conv.member_segment_keys)?;
    check_range("started_at", conv.started_at)?;
    check_range("finished_at", conv.finished_at)?;
    if conv.finished_at <= conv.started_at {
        return Err(PayloadError::EndsBeforeStart {
            started_at: conv.started_at,
            finished_at: conv.finished_at,
        });
    }
    let language = conv.language.trim();
    if language.is_empty() {
        return Err(PayloadError::NoLanguage);
    }

    let mut notes = Vec::new();
    let mut work: Vec<Work> = Vec::with_capacity(conv.pieces.len());
    let (mut dropped, mut clamped, mut widened) = (0, 0, 0);
    let mut sorted: Vec<&Piece> = conv.pieces.iter().collect();
    sorted.sort_by_key(|p| (p.start, p.end));
    for p in sorted {
        let text = clean_text(&p.text);
        if text.is_empty() {
            dropped += 1;
            continue;
        }
        let mut start = p.start.since(conv.started_at);
        if start < 0 {
            start = 0;
            clamped += 1;
        }
        let mut end = p.end.since(conv.started_at);
        if end <= start {
            end = start.saturating_add(MIN_PIECE_MS);
            widened += 1;
        }
        work.push(Work {
            start,
            end,
            text,
            speaker: p.speaker,
        });
    }
    if work.is_empty() {
        return Err(PayloadError::NoText {
            pieces: conv.pieces.len(),
        });
    }
    if dropped > 0 {
        notes.push(PayloadNote::DroppedEmpty { count: dropped });
    }
    if clamped > 0 {
        notes.push(PayloadNote::ClampedToStart { count: clamped });
    }
    if widened > 0 {
        notes.push(PayloadNote::WidenedZeroLength { count: widened });
    }

    let (work, same, across) = coalesce(work, opts.max_segments);
    if same > 0 {
        notes.push(PayloadNote::JoinedSameSpeaker {
            joins: same,
            limit: opts.max_segments,
        });
    }
    if across > 0 {
        notes.push(PayloadNote::JoinedAcrossSpeakers {
            joins: across,
            limit: opts.max_segments,
        });
    }

    let transcript_segments = work
        .into_iter()
        .map(|w| TranscriptSegment {
            text: w.text,
            speaker: speaker_label(w.speaker),
            speaker_id: w.speaker,
            is_user: false,
            start: w.start as f64 / 1000.0,
            end: w.end as f64 / 1000.0,
        })
        .collect();

    let request = CreateConversationRequest {
        transcript_segments,
        started_at: conv.started_at.to_rfc3339(),
        finished_at: conv.finished_at.to_rfc3339(),
        client_session_id: session_id.as_str().to_string(),
        source: opts.source.clone(),
        language: language.to_string(),
        client_device_id: opts
            .client_device_id
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_string),
        client_platform: Some(opts.client_platform.clone()).filter(|p| !p.is_empty()),
    };
    Ok(BuiltPayload {
        request,
        session_id,
        notes,
    })
}

/// The text without control characters (tabs and newlines become spaces),
/// trimmed: the cloud strips with Python's rules, which count more control
/// characters as space than Rust's `trim` does.
pub fn clean_text(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter_map(|c| match c {
            c if c.is_whitespace() => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    cleaned.trim().to_string()
}

/// A piece in milliseconds relative to `started_at`.
#[derive(Debug, Clone)]
struct Work {
    start: i64,
    end: i64,
    text: String,
    speaker: Option<u32>,
}

/// Joins adjacent pieces until at most `max` remain: pairs of the same speaker
/// first, shortest gap first (ties: earliest first); pairs of different
/// speakers only when no same-speaker pair is left. Returns the pieces and the
/// number of same-speaker and cross-speaker joins.
fn coalesce(pieces: Vec<Work>, max: usize) -> (Vec<Work>, usize, usize) {
    let n = pieces.len();
    if n <= max {
        return (pieces, 0, 0);
    }
    let mut slots: Vec<Option<Work>> = pieces.into_iter().map(Some).collect();
    let mut next: Vec<Option<usize>> = (0..n).map(|i| (i + 1 < n).then_some(i + 1)).collect();
    let mut prev: Vec<Option<usize>> = (0..n).map(|i| i.checked_sub(1)).collect();
    let mut version = vec![0u64; n];
    // (cross-speaker?, gap ms, left index, right index, left version, right version)
    type Cand = Reverse<(bool, i64, usize, usize, u64, u64)>;
    let mut heap: BinaryHeap<Cand> = BinaryHeap::with_capacity(n);
    let cand = |slots: &[Option<Work>], version: &[u64], l: usize, r: usize| -> Option<Cand> {
        let (a, b) = (slots[l].as_ref()?, slots[r].as_ref()?);
        Some(Reverse((
            a.speaker != b.speaker,
            b.start - a.end,
            l,
            r,
            version[l],
            version[r],
        )))
    };
    for l in 0..n - 1 {
        heap.extend(cand(&slots, &version, l, l + 1));
    }
    let (mut alive, mut same, mut across) = (n, 0, 0);
    while alive > max {
        let Some(Reverse((cross, _, l, r, vl, vr))) = heap.pop() else {
            break;
        };
        if next[l] != Some(r) || version[l] != vl || version[r] != vr {
            continue; // stale
        }
        let (Some(mut a), Some(b)) = (slots[l].take(), slots[r].take()) else {
            continue;
        };
        if cross && b.text.len() > a.text.len() {
            a.speaker = b.speaker;
        }
        a.start = a.start.min(b.start);
        a.end = a.end.max(b.end);
        a.text.push(' ');
        a.text.push_str(&b.text);
        slots[l] = Some(a);
        version[l] += 1;
        next[l] = next[r];
        if let Some(nr) = next[r] {
            prev[nr] = Some(l);
        }
        alive -= 1;
        if cross {
            across += 1;
        } else {
            same += 1;
        }
        if let Some(p) = prev[l] {
            heap.extend(cand(&slots, &version, p, l));
        }
        if let Some(nx) = next[l] {
            heap.extend(cand(&slots, &version, l, nx));
        }
    }
    (slots.into_iter().flatten().collect(), same, across)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_717_000_000_000;

    fn piece(start_ms: i64, end_ms: i64, text: &str, speaker: Option<u32>) -> Piece {
        Piece {
            start: UtcMillis(T0 + start_ms),
            end: UtcMillis(T0 + end_ms),
            text: text.to_string(),
            speaker,
        }
    }

    fn conv(pieces: Vec<Piece>) -> PushConversation {
        let end = pieces.iter().map(|p| p.end.0).max().unwrap_or(T0 + 1000);
        PushConversation {
            member_segment_keys: vec!["seg-1".into(), "seg-2".into()],
            started_at: UtcMillis(T0),
            finished_at: UtcMillis(end.max(T0 + 1000)),
            pieces,
            language: "en".into(),
        }
    }

    #[test]
    fn times_are_relative_seconds() {
        let c = conv(vec![
            piece(1500, 3250, "hello", Some(0)),
            piece(4000, 6000, "hi there", Some(1)),
        ]);
        let b = build(&c).unwrap();
        let segs = &b.request.transcript_segments;
        assert_eq!(segs.len(), 2);
        assert_eq!((segs[0].start, segs[0].end), (1.5, 3.25));
        assert_eq!(segs[1].speaker, "SPEAKER_01");
        assert_eq!(segs[1].speaker_id, Some(1));
        assert!(!segs[0].is_user);
        assert_eq!(b.request.started_at, "2024-05-29T16:26:40.000Z");
        assert_eq!(b.request.source, "sdcard");
        assert_eq!(b.request.client_device_id, None);
        assert_eq!(b.request.client_session_id, b.session_id.as_str());
        assert!(b.notes.is_empty());
    }

    #[test]
    fn json_shape() {
        let b = build(&conv(vec![piece(0, 1000, "x", None)])).unwrap();
        let j = b.to_json();
        assert_eq!(j["transcript_segments"][0]["speaker"], "SPEAKER_00");
        assert!(j["transcript_segments"][0].get("speaker_id").is_none());
        assert_eq!(j["transcript_segments"][0]["is_user"], false);
        assert_eq!(j["language"], "en");
    }

    #[test]
    fn drops_empty_and_fixes_edges() {
        let c = conv(vec![
            piece(-500, 1000, " early ", Some(0)),
            piece(2000, 2000, "instant", Some(0)),
            piece(3000, 4000, "   ", Some(0)),
        ]);
        let b = build(&c).unwrap();
        let segs = &b.request.transcript_segments;
        assert_eq!(segs.len(), 2);
        assert_eq!(
            (segs[0].start, segs[0].end, segs[0].text.as_str()),
            (0.0, 1.0, "early")
        );
        assert_eq!((segs[1].start, segs[1].end), (2.0, 2.01));
        assert_eq!(
            b.notes,
            vec![
                PayloadNote::DroppedEmpty { count: 1 },
                PayloadNote::ClampedToStart { count: 1 },
                PayloadNote::WidenedZeroLength { count: 1 },
            ]
        );
    }

    #[test]
    fn refuses_unpushable() {
        let mut c = conv(vec![piece(0, 1000, " ", None), piece(0, 1000, "", None)]);
        assert_eq!(build(&c), Err(PayloadError::NoText { pieces: 2 }));
        c.pieces.clear();
        assert_eq!(build(&c), Err(PayloadError::NoText { pieces: 0 }));

        let mut c = conv(vec![piece(0, 1000, "x", None)]);
        c.finished_at = c.started_at;
        assert!(matches!(
            build(&c),
            Err(PayloadError::EndsBeforeStart { .. })
        ));

        let mut c = conv(vec![piece(0, 1000, "x", None)]);
        c.member_segment_keys.clear();
        assert_eq!(build(&c), Err(PayloadError::NoMembers));

        let mut c = conv(vec![piece(0, 1000, "x", None)]);
        c.language = " ".into();
        assert_eq!(build(&c), Err(PayloadError::NoLanguage));

        let mut c = conv(vec![piece(0, 1000, "x", None)]);
        c.started_at = UtcMillis(-5);
        assert!(matches!(build(&c), Err(PayloadError::OutOfRange { .. })));
        for e in [
            PayloadError::NoMembers,
            PayloadError::NoText { pieces: 3 },
            PayloadError::NoLanguage,
        ] {
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn later_generations_are_distinct_and_recognised() {
        let base = session_id(&["a", "b"]).unwrap();
        assert_eq!(base.generation(1), base);
        let g3 = base.generation(3);
        assert_ne!(g3, base);
        assert_eq!(g3.generation_of(&base), Some(3));
        assert_eq!(base.generation_of(&base), Some(1));
        assert_eq!(session_id(&["a"]).unwrap().generation_of(&base), None);
        assert_eq!(SessionId(format!("{base}.x")).generation_of(&base), None);
        assert_eq!(SessionId(format!("{base}7")).generation_of(&base), None);
        assert_eq!(g3.base(), base);
        assert_eq!(base.base(), base);
        assert_eq!(
            SessionId(format!("{base}.x")).base(),
            SessionId(format!("{base}.x"))
        );
    }

    #[test]
    fn session_id_is_stable_and_sensitive() {
        let a = session_id(&["b", "a", "c"]).unwrap();
        let b = session_id(&["c", "b", "a", "a"]).unwrap();
        assert_eq!(a, b);
        assert!(a.as_str().starts_with(SESSION_ID_PREFIX));
        assert_eq!(a.as_str().len(), SESSION_ID_PREFIX.len() + 64);
        assert_ne!(a, session_id(&["a", "b"]).unwrap());
        assert_ne!(a, session_id(&["a", "b", "c", "d"]).unwrap());
        // Length prefixes: ["ab","c"] and ["a","bc"] differ.
        assert_ne!(
            session_id(&["ab", "c"]).unwrap(),
            session_id(&["a", "bc"]).unwrap()
        );
        assert_eq!(session_id::<&str>(&[]), Err(PayloadError::NoMembers));
        // Pinned: a change here re-pushes every conversation.
        assert_eq!(
            session_id(&["seg-1"]).unwrap().as_str(),
            session_id(&["seg-1".to_string()]).unwrap().as_str()
        );
    }

    #[test]
    fn session_id_is_pinned() {
        // If this changes, every conversation already pushed would be pushed
        // again under a new id. Change SESSION_ID_DOMAIN only on purpose.
        let id = session_id(&["dev:1/seg:42"]).unwrap();
        let mut h = Sha256::new();
        h.update(b"omi-sync client_session_id v1\0");
        h.update(12u64.to_le_bytes());
        h.update(b"dev:1/seg:42");
        assert_eq!(
            id.as_str(),
            format!("omisync-{}", hex::encode(h.finalize()))
        );
    }

    fn all_text(segs: &[TranscriptSegment]) -> String {
        segs.iter()
            .map(|s| s.text.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn coalesces_same_speaker_shortest_gaps_first() {
        // Speaker 0 ×4 with gaps 100, 900, 50 ms; then speaker 1.
        let pieces = vec![
            piece(0, 1000, "a", Some(0)),
            piece(1100, 2000, "b", Some(0)),
            piece(2900, 3000, "c", Some(0)),
            piece(3050, 4000, "d", Some(0)),
            piece(4100, 5000, "e", Some(1)),
        ];
        let opts = PayloadOptions {
            max_segments: 3,
            ..PayloadOptions::default()
        };
        let b = build_with(&conv(pieces), &opts).unwrap();
        let texts: Vec<_> = b
            .request
            .transcript_segments
            .iter()
            .map(|s| s.text.as_str())
            .collect();
        assert_eq!(texts, ["a b", "c d", "e"]);
        assert_eq!(
            b.notes,
            vec![PayloadNote::JoinedSameSpeaker { joins: 2, limit: 3 }]
        );
    }

    #[test]
    fn crosses_speakers_only_as_last_resort() {
        // Alternating speakers: no same-speaker neighbours at all.
        let pieces: Vec<Piece> = (0..10)
            .map(|i| {
                piece(
                    i * 1000,
                    i * 1000 + 900,
                    &format!("w{i}"),
                    Some((i % 2) as u32),
                )
            })
            .collect();
        let opts = PayloadOptions {
            max_segments: 4,
            ..PayloadOptions::default()
        };
        let b = build_with(&conv(pieces), &opts).unwrap();
        assert_eq!(b.request.transcript_segments.len(), 4);
        assert!(b.joined_across_speakers());
        assert_eq!(
            all_text(&b.request.transcript_segments),
            "w0 w1 w2 w3 w4 w5 w6 w7 w8 w9"
        );
        let note = b
            .notes
            .iter()
            .find(|n| matches!(n, PayloadNote::JoinedAcrossSpeakers { .. }));
        assert!(note.unwrap().to_string().contains("approximate"));
    }

    #[test]
    fn two_thousand_pieces_fit_with_all_text_in_order() {
        let pieces: Vec<Piece> = (0..2000)
            .map(|i| {
                let s = i * 1500;
                piece(
                    s,
                    s + 1000 + (i % 7) * 50,
                    &format!("t{i}"),
                    Some(((i / 5) % 2) as u32),
                )
            })
            .collect();
        let c = conv(pieces);
        let b = build(&c).unwrap();
        let segs = &b.request.transcript_segments;
        assert!(segs.len() <= MAX_SEGMENTS);
        assert!(!b.joined_across_speakers(), "{:?}", b.notes);
        let expected: Vec<String> = (0..2000).map(|i| format!("t{i}")).collect();
        assert_eq!(all_text(segs), expected.join(" "));
        for w in segs.windows(2) {
            assert!(w[0].start <= w[1].start);
        }
        for s in segs {
            assert!(s.start >= 0.0 && s.end > s.start);
        }
    }

    #[test]
    fn the_install_is_the_client_device_in_upstreams_shape() {
        let id = client_device_id("linux", "install-1");
        assert!(id.starts_with("linux_"), "{id}");
        assert_eq!(id.len(), "linux_".len() + 8);
        assert!(id["linux_".len()..].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(id, client_device_id("linux", "install-1"), "stable");
        assert_ne!(id, client_device_id("linux", "install-2"));
        let opts = PayloadOptions {
            client_device_id: Some(id.clone()),
            ..PayloadOptions::default()
        };
        let b = build_with(&conv(vec![piece(0, 1000, "x", None)]), &opts).unwrap();
        assert_eq!(b.request.client_device_id.as_deref(), Some(id.as_str()));
    }

    #[test]
    fn control_characters_are_removed() {
        let c = conv(vec![
            piece(0, 1000, "\u{1c}\u{1f}", None),
            piece(1000, 2000, "a\tb\u{0}c\n", None),
        ]);
        let b = build(&c).unwrap();
        assert_eq!(all_text(&b.request.transcript_segments), "a bc");
        assert_eq!(b.notes, vec![PayloadNote::DroppedEmpty { count: 1 }]);
    }

    #[test]
    fn unsorted_input_is_sorted() {
        let c = conv(vec![
            piece(5000, 6000, "second", None),
            piece(0, 1000, "first", None),
        ]);
        let b = build(&c).unwrap();
        assert_eq!(all_text(&b.request.transcript_segments), "first second");
    }

    #[test]
    fn device_and_platform_blank_are_omitted() {
        let c = conv(vec![piece(0, 1000, "x", None)]);
        let opts = PayloadOptions {
            client_platform: String::new(),
            client_device_id: Some("  ".into()),
            ..PayloadOptions::default()
        };
        let b = build_with(&c, &opts).unwrap();
        let j = b.to_json();
        assert!(j.get("client_device_id").is_none());
        assert!(j.get("client_platform").is_none());
    }
}
