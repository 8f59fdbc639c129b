//! One consistent picture of a data directory, taken in one read: what the
//! TUI redraws from and what `diagnose` reports on.
//!
//! [`Snapshot::take`] reads the ledger through a [`LedgerReader`] inside one
//! read transaction (another process may be writing: the picture is of one
//! moment), and adds who holds which critical section, found without taking
//! any lock. It never writes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::overview::Overview;
use super::push::stage::{PushRequest, options};
use super::push::{self, ConversationStatus, Retraction};
use super::workspace::Workspace;
use crate::clock::{ClockTrust, UtcMillis};
use crate::cloud::ratelimit::Limiter;
use crate::store::{
    DeviceReport, EditAction, Holder, LedgerReader, OutboxRow, OutboxState, SegmentRow, StoreError,
    holders,
};
use crate::timeline::Timeline;

/// Where one device's pull stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RingState {
    /// The device key.
    pub device: String,
    /// Its ring id (custody firmware), hex.
    pub ring_id: Option<String>,
    /// The next seq to pull: everything before is durable here.
    pub durable_seq: u64,
    /// When that last moved.
    pub updated_at: UtcMillis,
}

/// A stretch a device recorded (one capture run).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedSpan {
    /// The device.
    pub device: String,
    /// Its start.
    pub start: UtcMillis,
    /// Its end.
    pub end: UtcMillis,
    /// How far its times can be trusted.
    pub clock: ClockTrust,
}

/// The outbox at a glance.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OutboxSummary {
    /// Rows by state.
    pub by_state: BTreeMap<String, usize>,
    /// Rows still to send, now or later.
    pub to_send: usize,
    /// The earliest next attempt among them.
    pub next_attempt_at: Option<UtcMillis>,
}

impl OutboxSummary {
    fn of(rows: &[OutboxRow]) -> Self {
        let mut by_state = BTreeMap::new();
        for r in rows {
            *by_state.entry(r.state.as_str().to_string()).or_default() += 1;
        }
        let pending: Vec<&OutboxRow> = rows.iter().filter(|r| r.state.needs_sending()).collect();
        OutboxSummary {
            by_state,
            to_send: pending.len(),
            next_attempt_at: pending.iter().filter_map(|r| r.retry_at).min(),
        }
    }

    /// Rows in `state`.
    pub fn count(&self, state: OutboxState) -> usize {
        self.by_state.get(state.as_str()).copied().unwrap_or(0)
    }
}

/// The picture.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// When it was taken.
    pub taken_at: UtcMillis,
    /// The counts.
    pub overview: Overview,
    /// Conversations in time order, with the edits in effect.
    pub timeline: Timeline,
    /// Each conversation's cloud state (held and why, new, queued, ...).
    pub cloud: Vec<ConversationStatus>,
    /// Outbox rows the push plan retracts (edited away: dropped, or deleted
    /// in the cloud).
    pub retract: Vec<Retraction>,
    /// Where each device recorded: every capture run as (device, start,
    /// end, clock), in time order; between them it did not.
    pub recorded: Vec<RecordedSpan>,
    /// The push rate limiter's state (the hourly budget per key).
    pub limiter: Limiter,
    /// Every outbox row.
    pub outbox: Vec<OutboxRow>,
    /// The outbox at a glance.
    pub outbox_summary: OutboxSummary,
    /// The edit log (merges and splits, active and undone).
    pub edits: Vec<EditAction>,
    /// Each device's resume point.
    pub rings: Vec<RingState>,
    /// What each pendant said about itself the last time a pull read it.
    pub devices: Vec<DeviceReport>,
    /// Who holds which critical section now.
    pub holders: Vec<Holder>,
}

impl Snapshot {
    /// Takes the picture of `reader`'s ledger under `ws`'s settings.
    pub fn take(ws: &Workspace, reader: &LedgerReader) -> Result<Snapshot, StoreError> {
        let rules = ws.rules();
        let opts = options(ws, &PushRequest::default());
        let mut snap = reader.in_one_read(|r| {
            // Every segment, read once for both the timeline and the counts.
            let segments = r.segments()?;
            let timeline = crate::timeline::build(
                &segments
                    .iter()
                    .map(SegmentRow::to_timeline)
                    .collect::<Vec<_>>(),
                &r.active_overrides()?,
                &rules,
            );
            let overview = Overview::of_segments(r, &segments, &timeline)?;
            let plan = push::plan(r, &timeline, &opts)?;
            let recorded = r
                .recorded_spans()?
                .into_iter()
                .map(|(device, start, samples, clock)| RecordedSpan {
                    device,
                    start,
                    end: start
                        .plus_ms((samples * 1000 / u64::from(crate::audio::TARGET_RATE)) as i64),
                    clock,
                })
                .collect();
            let outbox = r.outbox()?;
            let rings = r
                .resume_points()?
                .into_iter()
                .map(|(device, rp, updated_at)| RingState {
                    device,
                    ring_id: rp.ring_id.map(|id| format!("{id:#018x}")),
                    durable_seq: rp.durable_seq,
                    updated_at,
                })
                .collect();
            Ok(Snapshot {
                taken_at: UtcMillis::now(),
                overview,
                outbox_summary: OutboxSummary::of(&outbox),
                timeline,
                cloud: plan.conversations,
                retract: plan.retract,
                recorded,
                limiter: push::load_limiter(r)?,
                outbox,
                edits: r.edit_log()?,
                rings,
                devices: r.device_reports()?,
                holders: Vec::new(),
            })
        })?;
        snap.holders = holders(reader.data_dir());
        Ok(snap)
    }

    /// The cloud state of the conversation with this timeline id.
    pub fn cloud_of(&self, conversation: &str) -> Option<&ConversationStatus> {
        self.cloud.iter().find(|c| c.conversation == conversation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::store::{Ledger, RunLock, Section};

    #[test]
    fn a_snapshot_of_a_live_ledger_reads_without_writing_and_names_lock_holders() {
        let dir = tempfile::tempdir().unwrap();
        let ws = Workspace::new(Config::default(), None, dir.path().to_path_buf());
        {
            let l = Ledger::open(dir.path()).unwrap();
            l.set_meta("k", "v").unwrap();
        }
        let _lock = RunLock::acquire(dir.path(), Section::Push).unwrap();
        let reader = LedgerReader::open(dir.path()).unwrap();
        let snap = Snapshot::take(&ws, &reader).unwrap();
        assert_eq!(snap.overview, Overview::default());
        assert!(snap.timeline.conversations.is_empty() && snap.outbox.is_empty());
        #[cfg(target_os = "linux")]
        assert_eq!(
            snap.holders.iter().map(|h| h.section).collect::<Vec<_>>(),
            vec![Section::Push]
        );
        // A writer is not blocked by the reader being open.
        Ledger::open(dir.path())
            .unwrap()
            .set_meta("k", "w")
            .unwrap();
        assert_eq!(reader.meta("k").unwrap().as_deref(), Some("w"));
    }
}
