//! A person's edits to the timeline, as the faces call them: merge two
//! conversations, split one before a segment, undo, redo.
//!
//! Each call writes the edit log in the ledger (so undo and redo survive a
//! restart) and returns an [`EditOutcome`]: the timeline after the edit and
//! the conversations that now hold the touched segments, so a frontend can
//! show the result at once. [`preview_merge`] tells what a merge would make
//! before it is made (its span, and the longest silence it bridges).

use serde::{Deserialize, Serialize};

use crate::clock::UtcMillis;
use crate::store::{EditAction, EditKind, Ledger, StoreError};
use crate::timeline::{EditError, Rules, Timeline, join_overrides, split_override};

/// Why an edit was not made.
#[derive(Debug, thiserror::Error)]
pub enum EditFailure {
    /// The edit itself is not possible (unknown id, another device, ...).
    #[error(transparent)]
    Refused(#[from] EditError),
    /// There is nothing between the two to merge.
    #[error("nothing to merge between {0} and {1}")]
    NothingToMerge(String, String),
    /// The ledger failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Which edit was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EditVerb {
    /// Conversations joined.
    Merge,
    /// A conversation split.
    Split,
    /// The newest edit taken back.
    Undo,
    /// An undone edit made again.
    Redo,
}

/// What an edit did.
#[derive(Debug, Clone)]
pub struct EditOutcome {
    /// Which edit.
    pub verb: EditVerb,
    /// The edit log's description of the action (for undo/redo: the action
    /// undone or redone).
    pub summary: String,
    /// The conversations (ids in the new timeline) holding the segments the
    /// edit touched.
    pub touched: Vec<String>,
    /// The timeline after the edit.
    pub timeline: Timeline,
}

/// What merging two conversations would make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergePreview {
    /// Start of the merged conversation.
    pub started_at: UtcMillis,
    /// Its end.
    pub finished_at: UtcMillis,
    /// How many conversations it joins (the two and any between).
    pub conversations: usize,
    /// The longest silence inside it, ms.
    pub longest_gap_ms: i64,
}

impl MergePreview {
    /// Whether it bridges a silence of over an hour (worth a warning).
    pub fn bridges_over_an_hour(&self) -> bool {
        self.longest_gap_ms > 3_600_000
    }
}

/// What merging `a` and `b` (ids or unique prefixes) would make, or why it
/// cannot be made.
pub fn preview_merge(timeline: &Timeline, a: &str, b: &str) -> Result<MergePreview, EditError> {
    join_overrides(timeline, a, b)?;
    let (ca, cb) = (timeline.find(a)?, timeline.find(b)?);
    let (first, last) = if ca.started_at <= cb.started_at {
        (ca, cb)
    } else {
        (cb, ca)
    };
    let between: Vec<_> = timeline
        .conversations
        .iter()
        .filter(|c| c.device == first.device && c.domain == first.domain)
        .filter(|c| c.started_at >= first.started_at && c.started_at <= last.started_at)
        .collect();
    let longest_gap_ms = between
        .windows(2)
        .map(|w| w[1].started_at.since(w[0].finished_at))
        .max()
        .unwrap_or(0);
    Ok(MergePreview {
        started_at: first.started_at,
        finished_at: between
            .iter()
            .map(|c| c.finished_at)
            .max()
            .unwrap_or(last.finished_at),
        conversations: between.len(),
        longest_gap_ms,
    })
}

/// The conversations now holding these segment ids, in time order.
fn holding(t: &Timeline, segment_ids: &[i64]) -> Vec<String> {
    let mut ids: Vec<String> = Vec::new();
    for c in &t.conversations {
        if c.segment_ids().any(|id| segment_ids.contains(&id)) && !ids.contains(&c.id) {
            ids.push(c.id.clone());
        }
    }
    ids
}

/// Merges conversations `a` and `b` and everything between them.
pub fn merge(
    ledger: &mut Ledger,
    rules: &Rules,
    a: &str,
    b: &str,
) -> Result<EditOutcome, EditFailure> {
    let before = ledger.timeline(rules)?;
    let overrides = join_overrides(&before, a, b)?;
    let (ca, cb) = (before.find(a)?, before.find(b)?);
    if overrides.is_empty() {
        return Err(EditFailure::NothingToMerge(ca.id.clone(), cb.id.clone()));
    }
    let summary = format!("Merged conversations {} and {}", ca.id, cb.id);
    let anchor_segment = ca.segments[0].id;
    ledger.record_edit(EditKind::Merge, &summary, &overrides)?;
    let timeline = ledger.timeline(rules)?;
    Ok(EditOutcome {
        verb: EditVerb::Merge,
        summary,
        touched: holding(&timeline, &[anchor_segment]),
        timeline,
    })
}

/// Makes segment `segment` start a new conversation.
pub fn split(ledger: &mut Ledger, rules: &Rules, segment: i64) -> Result<EditOutcome, EditFailure> {
    let before = ledger.timeline(rules)?;
    let o = split_override(&before, segment)?;
    let conv = before
        .conversation_of(segment)
        .ok_or(EditError::NoSuchSegment(segment))?;
    let first = conv.segments[0].id;
    let summary = format!(
        "Split conversation {} at segment {segment} ({})",
        conv.id,
        o.anchor.to_rfc3339()
    );
    ledger.record_edit(EditKind::Split, &summary, &[o])?;
    let timeline = ledger.timeline(rules)?;
    Ok(EditOutcome {
        verb: EditVerb::Split,
        summary,
        touched: holding(&timeline, &[first, segment]),
        timeline,
    })
}

/// Takes back the newest edit in effect; `None` when there is none.
pub fn undo(ledger: &mut Ledger, rules: &Rules) -> Result<Option<EditOutcome>, StoreError> {
    let done = ledger.undo()?;
    walked(ledger, rules, EditVerb::Undo, done)
}

/// Makes the oldest undone edit again; `None` when there is none.
pub fn redo(ledger: &mut Ledger, rules: &Rules) -> Result<Option<EditOutcome>, StoreError> {
    let done = ledger.redo()?;
    walked(ledger, rules, EditVerb::Redo, done)
}

fn walked(
    ledger: &Ledger,
    rules: &Rules,
    verb: EditVerb,
    done: Option<EditAction>,
) -> Result<Option<EditOutcome>, StoreError> {
    let Some(done) = done else { return Ok(None) };
    let timeline = ledger.timeline(rules)?;
    // The segment right after each boundary the action forced.
    let segments: Vec<i64> = done
        .overrides
        .iter()
        .filter_map(|o| {
            timeline
                .conversations
                .iter()
                .flat_map(|c| c.segments.iter())
                .filter(|s| s.device == o.device && s.start >= o.anchor)
                .min_by_key(|s| s.start)
                .map(|s| s.id)
        })
        .collect();
    Ok(Some(EditOutcome {
        verb,
        summary: done.summary,
        touched: holding(&timeline, &segments),
        timeline,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ClockTrust;
    use crate::store::{NewSegment, RunRow};

    /// A ledger with segments at these (start, end) seconds on one device.
    fn ledger_with(spans: &[(i64, i64)]) -> (tempfile::TempDir, Ledger) {
        let (dir, mut l, capture_id) = crate::store::tests::ledger_with_capture();
        let t0 = 1_717_000_000_000;
        let segs: Vec<NewSegment> = spans
            .iter()
            .enumerate()
            .map(|(i, (a, b))| NewSegment {
                key: format!("k{i}"),
                run_index: 0,
                sample_start: 0,
                sample_end: 1,
                device: "omi".into(),
                clock: ClockTrust::Wall,
                start: UtcMillis(t0 + a * 1000),
                end: UtcMillis(t0 + b * 1000),
            })
            .collect();
        l.save_analysis(capture_id, &[] as &[RunRow], &segs, &[], "{}")
            .unwrap();
        (dir, l)
    }

    #[test]
    fn merge_split_undo_redo_move_the_timeline_and_name_what_they_touched() {
        // Three conversations: 0-10, 200-210, 4000-4010 (gaps of 190 s and 3790 s).
        let (_d, mut l) = ledger_with(&[(0, 10), (200, 210), (4000, 4010)]);
        let rules = Rules::default();
        let t = l.timeline(&rules).unwrap();
        assert_eq!(t.conversations.len(), 3);
        let (a, c) = (t.conversations[0].id.clone(), t.conversations[2].id.clone());
        let p = preview_merge(&t, &a, &c).unwrap();
        assert_eq!(p.conversations, 3);
        assert_eq!(p.longest_gap_ms, 3_790_000);
        assert!(p.bridges_over_an_hour());

        let m = merge(&mut l, &rules, &a, &c).unwrap();
        assert_eq!(m.timeline.conversations.len(), 1);
        assert_eq!(m.touched, vec![m.timeline.conversations[0].id.clone()]);

        let seg = m.timeline.conversations[0].segments[1].id;
        let s = split(&mut l, &rules, seg).unwrap();
        assert_eq!(s.timeline.conversations.len(), 2);
        assert_eq!(s.touched.len(), 2);

        let u = undo(&mut l, &rules).unwrap().unwrap();
        assert_eq!(u.verb, EditVerb::Undo);
        assert_eq!(u.timeline.conversations.len(), 1);
        assert!(u.summary.starts_with("Split"));
        let r = redo(&mut l, &rules).unwrap().unwrap();
        assert_eq!(r.timeline.conversations.len(), 2);
        undo(&mut l, &rules).unwrap();
        undo(&mut l, &rules).unwrap();
        assert!(undo(&mut l, &rules).unwrap().is_none());
        assert_eq!(l.timeline(&rules).unwrap().conversations.len(), 3);
    }

    #[test]
    fn refusals_say_why() {
        let (_d, mut l) = ledger_with(&[(0, 10), (200, 210)]);
        let rules = Rules::default();
        let t = l.timeline(&rules).unwrap();
        let a = t.conversations[0].id.clone();
        assert!(matches!(
            merge(&mut l, &rules, &a, &a),
            Err(EditFailure::Refused(EditError::SameConversation(_)))
        ));
        assert!(matches!(
            merge(&mut l, &rules, &a, "zzzz"),
            Err(EditFailure::Refused(EditError::NoSuchConversation(_)))
        ));
        let first = t.conversations[0].segments[0].id;
        assert!(matches!(
            split(&mut l, &rules, first),
            Err(EditFailure::Refused(EditError::AlreadyStarts { .. }))
        ));
    }
}
