//! What to transcribe: the ledger's untranscribed segments, grouped by
//! conversation and packed into windows.
//!
//! Only segments still `pending` (or `failed` earlier) are planned, so a
//! re-run after a crash does only what is missing. Segments are grouped by
//! the conversation the timeline puts them in (with the person's edits), so
//! a window never mixes two conversations, and packed with
//! [`packing::pack`].

use std::collections::{HashMap, HashSet};

use super::audio::SegmentAudio;
use crate::store::{Ledger, RunRow, SegmentRow, StoreError};
use crate::stt::packing::{self, PackConfig, SpeechSegment, Window};
use crate::timeline::{self, Rules};

/// The work of one transcription run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Windows in time order within each conversation.
    pub windows: Vec<Window>,
    /// Where each planned segment's audio is, by segment id.
    pub audio: HashMap<i64, SegmentAudio>,
    /// The planned segments' total length, ms.
    pub speech_ms: i64,
}

impl Plan {
    /// How many segments are planned.
    pub fn segments(&self) -> usize {
        self.audio.len()
    }
}

/// Plans the untranscribed segments of `ledger`.
pub fn plan(ledger: &Ledger, rules: &Rules, pack: &PackConfig) -> Result<Plan, StoreError> {
    plan_only(ledger, rules, pack, None)
}

/// Plans the untranscribed segments of `ledger`, only those in `only` when
/// given (a re-transcription of one conversation).
pub fn plan_only(
    ledger: &Ledger,
    rules: &Rules,
    pack: &PackConfig,
    only: Option<&HashSet<i64>>,
) -> Result<Plan, StoreError> {
    let all = ledger.segments()?;
    let todo: Vec<&SegmentRow> = all
        .iter()
        .filter(|s| {
            matches!(
                s.status,
                timeline::SegmentStatus::Pending | timeline::SegmentStatus::Failed
            )
        })
        .filter(|s| only.is_none_or(|ids| ids.contains(&s.id)))
        .collect();
    if todo.is_empty() {
        return Ok(Plan::default());
    }
    let groups = conversation_of(ledger, rules)?;
    let mut runs: HashMap<i64, Vec<RunRow>> = HashMap::new();
    let mut captures = HashMap::new();
    let mut audio = HashMap::new();
    let mut speech = Vec::with_capacity(todo.len());
    for s in todo {
        if let std::collections::hash_map::Entry::Vacant(e) = captures.entry(s.capture_id) {
            e.insert(ledger.capture(s.capture_id)?);
            runs.insert(s.capture_id, ledger.runs(s.capture_id)?);
        }
        audio.insert(
            s.id,
            SegmentAudio::of(s, &captures[&s.capture_id], &runs[&s.capture_id])?,
        );
        speech.push(SpeechSegment {
            id: s.id,
            // A segment the timeline does not place (it always places
            // untranscribed ones) is packed alone.
            group: groups.get(&s.id).copied().unwrap_or(-s.id),
            start_ms: s.found.start.0,
            end_ms: s.found.end.0,
        });
    }
    let speech_ms = speech.iter().map(SpeechSegment::len_ms).sum();
    Ok(Plan {
        windows: packing::pack(&speech, pack),
        audio,
        speech_ms,
    })
}

/// The index of each segment's conversation in the current timeline.
fn conversation_of(ledger: &Ledger, rules: &Rules) -> Result<HashMap<i64, i64>, StoreError> {
    Ok(ledger
        .timeline(rules)?
        .conversations
        .iter()
        .enumerate()
        .flat_map(|(i, c)| c.segments.iter().map(move |s| (s.id, i as i64)))
        .collect())
}
