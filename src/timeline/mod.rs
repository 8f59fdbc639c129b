//! The timeline: conversations as a pure function of segments and edits.
//!
//! ```text
//! timeline = fold(segments sorted by absolute start,
//!                 boundary(prev, next) = edit for that boundary, else the auto rule)
//! ```
//!
//! The auto rule is Omi's: a silence of [`Rules::gap_ms`] (120 s) or more
//! between speech starts a new conversation. Different devices, and wall
//! versus estimated clocks, never share a conversation: each `(device,
//! domain)` pair is laid out on its own. A segment whose transcript came back
//! empty ([`SegmentStatus::Silent`]) does not bridge a gap; one still waiting
//! for STT counts as speech, provisionally.
//!
//! Because nothing here depends on the order in which segments or
//! transcripts arrived, parallel transcription cannot shred a conversation.
//! Edits ([`Override`]) are anchored in time, not to segment ids, so they
//! survive re-running VAD. This module does no I/O.

mod edits;
mod identity;
mod reasons;

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::clock::{ClockTrust, UtcMillis};

pub use edits::{Boundary, Domain, EditError, Override, join_overrides, split_override};
pub use identity::conversation_id;
pub use reasons::{BoundaryReason, boundary_reasons};

/// The rules of the auto boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rules {
    /// Silence (ms) at or above which a new conversation starts.
    pub gap_ms: i64,
}

impl Default for Rules {
    fn default() -> Self {
        Rules {
            gap_ms: crate::config::rules::CONVERSATION_GAP_MS,
        }
    }
}

/// Where a segment's transcription stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SegmentStatus {
    /// VAD found speech; not transcribed yet.
    Pending,
    /// Transcribed, with words.
    Speech,
    /// Transcribed, no words: a VAD false alarm.
    Silent,
    /// Transcription failed (kept; counts as speech).
    Failed,
}

impl SegmentStatus {
    /// Whether the segment holds a conversation together across a gap.
    pub fn bridges(self) -> bool {
        self != SegmentStatus::Silent
    }

    /// The ledger and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            SegmentStatus::Pending => "pending",
            SegmentStatus::Speech => "speech",
            SegmentStatus::Silent => "silent",
            SegmentStatus::Failed => "failed",
        }
    }

    /// Parses the ledger name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "pending" => Some(SegmentStatus::Pending),
            "speech" => Some(SegmentStatus::Speech),
            "silent" => Some(SegmentStatus::Silent),
            "failed" => Some(SegmentStatus::Failed),
            _ => None,
        }
    }
}

/// What the timeline needs to know about a segment.
///
/// Speech that runs across the boundary of two contiguous captures is stored
/// as one ledger row per capture (each row's audio lives in one file), and is
/// one segment here: [`build`] joins rows less than
/// [`CONTIGUOUS_MS`](crate::config::rules::CONTIGUOUS_MS) apart. `id` and
/// `key` are then the first row's, and [`Segment::joined`] lists the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// Ledger id (shown to people, used by `split`).
    pub id: i64,
    /// Stable content-derived key (survives re-running VAD with the same
    /// settings; a conversation's identity is built from these).
    pub key: String,
    /// The device that recorded it.
    pub device: String,
    /// How far its time can be trusted.
    pub clock: ClockTrust,
    /// Absolute start.
    pub start: UtcMillis,
    /// Absolute end.
    pub end: UtcMillis,
    /// Transcription status.
    pub status: SegmentStatus,
    /// Transcript text, once transcribed.
    pub text: Option<String>,
    /// The ledger rows after the first that the same speech runs on into,
    /// in time order (empty for almost every segment).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub joined: Vec<Part>,
}

#[cfg(test)]
impl Segment {
    /// A segment for tests: ledger id `id`, key `k{id}`, nothing joined.
    pub(crate) fn for_test(
        id: i64,
        device: &str,
        clock: ClockTrust,
        (start, end): (UtcMillis, UtcMillis),
        status: SegmentStatus,
        text: Option<&str>,
    ) -> Segment {
        Segment {
            id,
            key: format!("k{id}"),
            device: device.into(),
            clock,
            start,
            end,
            status,
            text: text.map(str::to_string),
            joined: Vec::new(),
        }
    }
}

/// A ledger row that continues a segment into the next contiguous capture.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Part {
    /// Its ledger id.
    pub id: i64,
    /// Its key.
    pub key: String,
}

impl Segment {
    /// The partition this segment is laid out in.
    pub fn domain(&self) -> Domain {
        Domain::of(self.clock)
    }

    /// The ledger ids of its rows, the first one first.
    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        std::iter::once(self.id).chain(self.joined.iter().map(|p| p.id))
    }

    /// The keys of its rows, the first one first.
    pub fn keys(&self) -> impl Iterator<Item = &str> + '_ {
        std::iter::once(self.key.as_str()).chain(self.joined.iter().map(|p| p.key.as_str()))
    }

    /// Whether the ledger row `id` is one of its rows.
    pub fn holds(&self, id: i64) -> bool {
        self.ids().any(|i| i == id)
    }

    /// Appends `next`, the same speech running on from where this one ends.
    fn run_on(&mut self, next: &Segment) {
        self.end = self.end.max(next.end);
        self.status = match (self.status, next.status) {
            (SegmentStatus::Pending, _) | (_, SegmentStatus::Pending) => SegmentStatus::Pending,
            (SegmentStatus::Failed, _) | (_, SegmentStatus::Failed) => SegmentStatus::Failed,
            (SegmentStatus::Speech, _) | (_, SegmentStatus::Speech) => SegmentStatus::Speech,
            _ => SegmentStatus::Silent,
        };
        let words = |t: &Option<String>| {
            t.as_deref()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
        };
        self.text = match (words(&self.text), words(&next.text)) {
            (Some(a), Some(b)) => Some(format!("{a} {b}")),
            (a, b) => a.or(b).or_else(|| self.text.take()),
        };
        self.joined.push(Part {
            id: next.id,
            key: next.key.clone(),
        });
        self.joined.extend(next.joined.iter().cloned());
    }
}

/// Joins segments (of one partition, in time order) that are the same
/// speech cut at the boundary of two contiguous captures: less than
/// [`CONTIGUOUS_MS`](crate::config::rules::CONTIGUOUS_MS) apart.
/// Only joined segments are copied.
fn join_contiguous<'a>(sorted: &[&'a Segment]) -> Vec<Cow<'a, Segment>> {
    let mut out: Vec<Cow<'a, Segment>> = Vec::with_capacity(sorted.len());
    for s in sorted {
        match out.last_mut() {
            // The end of one meets the start of the next; two copies of the
            // same audio (which overlap whole) are not joined.
            Some(last) if (s.start.0 - last.end.0).abs() < crate::config::rules::CONTIGUOUS_MS => {
                last.to_mut().run_on(s)
            }
            _ => out.push(Cow::Borrowed(*s)),
        }
    }
    out
}

/// A conversation: consecutive segments of one device and clock domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversation {
    /// Short id from the member segments' keys (changes when members change).
    pub id: String,
    /// The device.
    pub device: String,
    /// Wall or estimated time.
    pub domain: Domain,
    /// Start of the first member.
    pub started_at: UtcMillis,
    /// End of the last member.
    pub finished_at: UtcMillis,
    /// Members (bridging segments) and the silent segments inside its span,
    /// in time order.
    pub segments: Vec<Segment>,
}

impl Conversation {
    /// The segments that make the conversation (all but silent ones).
    pub fn members(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| s.status.bridges())
    }

    /// The ledger ids of every row of its segments (silent ones included),
    /// in time order.
    pub fn segment_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.segments.iter().flat_map(Segment::ids)
    }

    /// Whether every member has been transcribed (none pending).
    pub fn is_transcribed(&self) -> bool {
        self.members().all(|s| s.status != SegmentStatus::Pending)
    }
}

/// The whole timeline: conversations in chronological order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// Conversations, ordered by start (then device).
    pub conversations: Vec<Conversation>,
    /// Silent segments that fall inside no conversation.
    pub loose_silent: Vec<Segment>,
}

impl Timeline {
    /// The conversation with this id, or the only one whose id starts with it.
    pub fn find(&self, id_or_prefix: &str) -> Result<&Conversation, EditError> {
        if let Some(c) = self.conversations.iter().find(|c| c.id == id_or_prefix) {
            return Ok(c);
        }
        let matches: Vec<&Conversation> = self
            .conversations
            .iter()
            .filter(|c| c.id.starts_with(id_or_prefix))
            .collect();
        match matches.as_slice() {
            [one] => Ok(one),
            [] => Err(EditError::NoSuchConversation(id_or_prefix.to_string())),
            _ => Err(EditError::AmbiguousConversation(id_or_prefix.to_string())),
        }
    }

    /// The conversation holding the segment with this ledger id.
    pub fn conversation_of(&self, segment_id: i64) -> Option<&Conversation> {
        self.conversations
            .iter()
            .find(|c| c.segment_ids().any(|id| id == segment_id))
    }
}

/// Lays out the timeline. `overrides` are in edit-log order: when several
/// apply to one boundary, the latest wins.
pub fn build(segments: &[Segment], overrides: &[Override], rules: &Rules) -> Timeline {
    let mut partitions: BTreeMap<(String, Domain), Vec<&Segment>> = BTreeMap::new();
    for s in segments {
        partitions
            .entry((s.device.clone(), s.domain()))
            .or_default()
            .push(s);
    }
    let mut conversations = Vec::new();
    let mut loose_silent = Vec::new();
    for ((device, domain), mut segs) in partitions {
        segs.sort_by(|a, b| (a.start, a.end, &a.key, a.id).cmp(&(b.start, b.end, &b.key, b.id)));
        let joined = join_contiguous(&segs);
        let segs: Vec<&Segment> = joined.iter().map(|s| s.as_ref()).collect();
        let edits: Vec<&Override> = overrides
            .iter()
            .filter(|o| o.device == device && o.domain == domain)
            .collect();
        let bridging: Vec<&Segment> = segs
            .iter()
            .copied()
            .filter(|s| s.status.bridges())
            .collect();
        let mut groups: Vec<Vec<&Segment>> = Vec::new();
        // The latest end so far: the silence before a segment is measured from it.
        let mut reach: Option<UtcMillis> = None;
        for seg in bridging {
            let new_group = match reach {
                None => true,
                Some(prev_end) => match edits::boundary_for(&edits, prev_end, seg) {
                    Some(Boundary::Join) => false,
                    Some(Boundary::Split) => true,
                    None => seg.start.since(prev_end) >= rules.gap_ms,
                },
            };
            if new_group {
                groups.push(Vec::new());
            }
            groups.last_mut().expect("a group exists").push(seg);
            reach = Some(reach.map_or(seg.end, |r| r.max(seg.end)));
        }
        let mut silent = segs
            .iter()
            .copied()
            .filter(|s| !s.status.bridges())
            .peekable();
        for group in groups {
            let started_at = group[0].start;
            let finished_at = group
                .iter()
                .map(|s| s.end)
                .max()
                .expect("groups are non-empty");
            let mut members: Vec<Segment> = group.iter().map(|s| (*s).clone()).collect();
            while let Some(s) = silent.peek() {
                if s.start < started_at {
                    loose_silent.push((*s).clone());
                    silent.next();
                } else if s.start <= finished_at {
                    members.push((*s).clone());
                    silent.next();
                } else {
                    break;
                }
            }
            members.sort_by_key(|s| (s.start, s.end, s.id));
            let id = conversation_id(group.iter().flat_map(|s| s.keys()));
            conversations.push(Conversation {
                id,
                device: device.clone(),
                domain,
                started_at,
                finished_at,
                segments: members,
            });
        }
        loose_silent.extend(silent.cloned());
    }
    conversations
        .sort_by(|a, b| (a.started_at, &a.device, &a.id).cmp(&(b.started_at, &b.device, &b.id)));
    loose_silent.sort_by_key(|s| (s.start, s.id));
    Timeline {
        conversations,
        loose_silent,
    }
}

#[cfg(test)]
mod tests;
