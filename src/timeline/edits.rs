//! A person's edits to the timeline: boundary overrides anchored in time.
//!
//! An [`Override`] forces one boundary between two consecutive segments of a
//! `(device, domain)` partition to join (merge) or split (unmerge). It names
//! its boundary by an instant, the start of the segment after it, and applies
//! to the boundary whose interval `(end of everything before, end of the next
//! segment]` contains that instant. Segment ids and exact boundaries change
//! when VAD is re-run; the instant does not, so edits survive.

use serde::{Deserialize, Serialize};

use super::{Segment, Timeline};
use crate::clock::{ClockTrust, UtcMillis};

/// Wall-clock time or estimated time: the two never share a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Times from a wall clock.
    Wall,
    /// Times estimated (the pendant's clock was not set).
    Estimated,
}

impl Domain {
    /// The domain of a clock trust.
    pub fn of(clock: ClockTrust) -> Self {
        if clock.is_wall() {
            Domain::Wall
        } else {
            Domain::Estimated
        }
    }

    /// The ledger and JSON name.
    pub fn as_str(self) -> &'static str {
        match self {
            Domain::Wall => "wall",
            Domain::Estimated => "estimated",
        }
    }

    /// Parses the ledger name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "wall" => Some(Domain::Wall),
            "estimated" => Some(Domain::Estimated),
            _ => None,
        }
    }
}

/// What an override forces at its boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Boundary {
    /// The two sides are one conversation.
    Join,
    /// The segment after the boundary starts a new conversation.
    Split,
}

impl Boundary {
    /// The ledger name.
    pub fn as_str(self) -> &'static str {
        match self {
            Boundary::Join => "join",
            Boundary::Split => "split",
        }
    }

    /// Parses the ledger name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "join" => Some(Boundary::Join),
            "split" => Some(Boundary::Split),
            _ => None,
        }
    }
}

/// One boundary forced by a person.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Override {
    /// The device whose timeline it edits.
    pub device: String,
    /// The clock domain it edits.
    pub domain: Domain,
    /// The start of the segment right after the boundary.
    pub anchor: UtcMillis,
    /// Join or split.
    pub boundary: Boundary,
}

/// Why an edit cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// No conversation has this id.
    #[error("no conversation {0}")]
    NoSuchConversation(String),
    /// Several conversations start with this prefix.
    #[error("`{0}` matches more than one conversation: give more of the id")]
    AmbiguousConversation(String),
    /// No segment has this id.
    #[error("no segment {0}")]
    NoSuchSegment(i64),
    /// Merging across devices.
    #[error(
        "conversations {a} and {b} come from different devices ({da}, {db}); different devices never share a conversation"
    )]
    DifferentDevices {
        /// First conversation.
        a: String,
        /// Second conversation.
        b: String,
        /// Its device.
        da: String,
        /// Its device.
        db: String,
    },
    /// Merging wall-clock with estimated times.
    #[error(
        "conversation {wall} has wall-clock times and {estimated} estimated ones; they cannot be merged"
    )]
    DifferentClocks {
        /// The conversation with wall-clock times.
        wall: String,
        /// The conversation with estimated times.
        estimated: String,
    },
    /// Merging a conversation with itself.
    #[error("that is the same conversation ({0}) twice")]
    SameConversation(String),
    /// Splitting at a silent segment.
    #[error(
        "segment {0} is silent (its transcript was empty), so it neither starts nor joins a conversation"
    )]
    SilentSegment(i64),
    /// Splitting where a conversation already starts.
    #[error("segment {segment} already starts conversation {conversation}")]
    AlreadyStarts {
        /// The segment.
        segment: i64,
        /// Its conversation.
        conversation: String,
    },
}

/// The override for the boundary before `next`, if any: the latest one whose
/// anchor lies in `(prev_end, next.end]`.
pub(super) fn boundary_for(
    edits: &[&Override],
    prev_end: UtcMillis,
    next: &Segment,
) -> Option<Boundary> {
    edits
        .iter()
        .rev()
        .find(|o| o.anchor > prev_end && o.anchor <= next.end)
        .map(|o| o.boundary)
}

/// The overrides that merge conversations `a` and `b` and everything between
/// them into one: a join at every boundary from the first to the last.
pub fn join_overrides(timeline: &Timeline, a: &str, b: &str) -> Result<Vec<Override>, EditError> {
    let ca = timeline.find(a)?;
    let cb = timeline.find(b)?;
    if ca.id == cb.id {
        return Err(EditError::SameConversation(ca.id.clone()));
    }
    if ca.device != cb.device {
        return Err(EditError::DifferentDevices {
            a: ca.id.clone(),
            b: cb.id.clone(),
            da: ca.device.clone(),
            db: cb.device.clone(),
        });
    }
    if ca.domain != cb.domain {
        let (wall, estimated) = if ca.domain == Domain::Wall {
            (ca, cb)
        } else {
            (cb, ca)
        };
        return Err(EditError::DifferentClocks {
            wall: wall.id.clone(),
            estimated: estimated.id.clone(),
        });
    }
    let (first, last) = if ca.started_at <= cb.started_at {
        (ca, cb)
    } else {
        (cb, ca)
    };
    Ok(timeline
        .conversations
        .iter()
        .filter(|c| c.device == first.device && c.domain == first.domain)
        .filter(|c| c.started_at > first.started_at && c.started_at <= last.started_at)
        .map(|c| Override {
            device: c.device.clone(),
            domain: c.domain,
            anchor: c.members().next().map_or(c.started_at, |s| s.start),
            boundary: Boundary::Join,
        })
        .collect())
}

/// The override that makes segment `segment_id` start a new conversation.
pub fn split_override(timeline: &Timeline, segment_id: i64) -> Result<Override, EditError> {
    if timeline.loose_silent.iter().any(|s| s.holds(segment_id)) {
        return Err(EditError::SilentSegment(segment_id));
    }
    let conv = timeline
        .conversation_of(segment_id)
        .ok_or(EditError::NoSuchSegment(segment_id))?;
    let seg = conv
        .segments
        .iter()
        .find(|s| s.holds(segment_id))
        .expect("conversation_of found it");
    if !seg.status.bridges() {
        return Err(EditError::SilentSegment(segment_id));
    }
    if conv.members().next().is_some_and(|s| s.holds(segment_id)) {
        return Err(EditError::AlreadyStarts {
            segment: segment_id,
            conversation: conv.id.clone(),
        });
    }
    Ok(Override {
        device: conv.device.clone(),
        domain: conv.domain,
        anchor: seg.start,
        boundary: Boundary::Split,
    })
}
