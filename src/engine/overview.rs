//! What is in a data directory at a glance: captures, audio, segments by
//! status, conversations. What `omi-sync` with no command prints, and the
//! head of the TUI and of `diagnose`.

use serde::{Deserialize, Serialize};

use crate::store::{LedgerReader, SegmentRow, StoreError};
use crate::timeline::{Domain, SegmentStatus, Timeline};

/// The counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Overview {
    /// Captures stored.
    pub captures: usize,
    /// Audio in them, seconds.
    pub audio_s: f64,
    /// Speech segments found.
    pub segments: usize,
    /// Of which waiting for transcription.
    pub pending: usize,
    /// Transcribed with words.
    pub speech: usize,
    /// Transcribed, no words.
    pub silent: usize,
    /// Transcription failed.
    pub failed: usize,
    /// Conversations on the timeline.
    pub conversations: usize,
    /// Of which with estimated times.
    pub estimated_conversations: usize,
}

impl Overview {
    /// Counts what `ledger` holds; `timeline` is its current timeline.
    pub fn of(ledger: &LedgerReader, timeline: &Timeline) -> Result<Overview, StoreError> {
        Self::of_segments(ledger, &ledger.segments()?, timeline)
    }

    /// [`Overview::of`] with the ledger's `segments` already read (the
    /// snapshot reads them once for its timeline and these counts).
    pub fn of_segments(
        ledger: &LedgerReader,
        segments: &[SegmentRow],
        timeline: &Timeline,
    ) -> Result<Overview, StoreError> {
        let captures = ledger.captures()?;
        let samples = ledger.audio_samples()?;
        let count = |st: SegmentStatus| segments.iter().filter(|s| s.status == st).count();
        Ok(Overview {
            captures: captures.len(),
            audio_s: samples as f64 / f64::from(crate::audio::TARGET_RATE),
            segments: segments.len(),
            pending: count(SegmentStatus::Pending),
            speech: count(SegmentStatus::Speech),
            silent: count(SegmentStatus::Silent),
            failed: count(SegmentStatus::Failed),
            conversations: timeline.conversations.len(),
            estimated_conversations: timeline
                .conversations
                .iter()
                .filter(|c| c.domain == Domain::Estimated)
                .count(),
        })
    }
}
