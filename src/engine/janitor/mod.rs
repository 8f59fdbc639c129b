//! The janitor: frees local audio the Omi cloud has, once its retention
//! window has passed, and never any other.
//!
//! [`schedule`] decides, for every capture, whether its file is kept and
//! why ([`KeptFor`]) or when it falls due ([`Custody::Due`]): a capture is
//! due `[storage] keep_days` after the last of the conversations it feeds is
//! confirmed in the cloud (its outbox row `pushed`); a capture with no
//! speech, that long after VAD found none. Anything else keeps it: speech
//! not yet transcribed, a conversation held (estimated times), not pushed,
//! sent but not confirmed, refused, or edited after its push until the
//! replacement is confirmed (the push plan says which), and `keep_days =
//! "never"`. [`prune`] frees what is due, in due order, through one
//! [`DueQueue`]; a failed delete is recorded on the capture, reported, and
//! tried again next time, and never stops the job. [`Janitor`] is the same
//! for a long-running session: one thread that sleeps until the next due
//! time and wakes early when the schedule changes.
//!
//! Freeing deletes the capture's file only: its row, segments and
//! transcripts stay, so the timeline and the outbox are unchanged.

pub mod queue;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use std::time::Instant;

use self::queue::DueQueue;
use super::Ctx;
use super::events::{Event, Origin, Stage, Unit};
use super::push::stage::PushRequest;
use super::push::{self, CloudStatus};
use super::report::StageReport;
use super::workspace::Workspace;
use crate::cancel::Cancel;
use crate::clock::{Clock, UtcMillis, rfc3339};
use crate::store::{Ledger, LedgerReader, LockError, Section, StoreError};
use crate::timeline::SegmentStatus;

/// Why a capture's audio is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum KeptFor {
    /// VAD has not looked at it yet.
    NotAnalysed,
    /// Some of its speech is not transcribed yet.
    Untranscribed {
        /// How many segments wait.
        segments: usize,
    },
    /// A conversation it feeds is held back from the cloud (estimated
    /// times, ...).
    Held {
        /// The conversation.
        conversation: String,
    },
    /// A conversation it feeds is not in the cloud yet (or was edited
    /// after its push and the replacement is not confirmed).
    NotPushed {
        /// The conversation.
        conversation: String,
    },
    /// The cloud refused a conversation it feeds.
    Refused {
        /// The conversation.
        conversation: String,
    },
    /// `keep_days = "never"`.
    KeptForever,
}

/// What becomes of one capture's audio.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "custody", rename_all = "snake_case")]
pub enum Custody {
    /// Kept until something changes.
    Kept {
        /// Why.
        #[serde(flatten)]
        why: KeptFor,
    },
    /// To be freed at (or after) this time.
    Due {
        /// When (RFC 3339 UTC).
        #[serde(with = "rfc3339")]
        at: UtcMillis,
    },
    /// Freed.
    Freed {
        /// When (RFC 3339 UTC).
        #[serde(with = "rfc3339")]
        at: UtcMillis,
    },
}

/// One capture in the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaptureCustody {
    /// The capture.
    pub capture_id: i64,
    /// Its file name as imported (or the pull's name for it).
    pub file_name: String,
    /// Its stored file, relative to the data directory.
    pub stored_path: String,
    /// The file's size.
    pub bytes: u64,
    /// What becomes of it.
    #[serde(flatten)]
    pub custody: Custody,
    /// Why the last try to free it failed, if it did.
    pub free_error: Option<String>,
}

/// Every capture's custody, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// When it was worked out.
    #[serde(with = "rfc3339")]
    pub at: UtcMillis,
    /// The retention window, ms (`None`: never freed).
    pub keep_ms: Option<i64>,
    /// Each capture, by id.
    pub captures: Vec<CaptureCustody>,
}

impl Schedule {
    /// The captures due by `now`, earliest first.
    pub fn due_by(&self, now: UtcMillis) -> Vec<&CaptureCustody> {
        let mut due: Vec<&CaptureCustody> = self
            .captures
            .iter()
            .filter(|c| matches!(c.custody, Custody::Due { at } if at <= now))
            .collect();
        due.sort_by_key(|c| (due_at(c), c.capture_id));
        due
    }

    /// Bytes kept on disk (not freed), and of them bytes due by `now`.
    pub fn bytes(&self, now: UtcMillis) -> (u64, u64) {
        let kept = self
            .captures
            .iter()
            .filter(|c| !matches!(c.custody, Custody::Freed { .. }))
            .map(|c| c.bytes)
            .sum();
        let due = self.due_by(now).iter().map(|c| c.bytes).sum();
        (kept, due)
    }
}

fn due_at(c: &CaptureCustody) -> UtcMillis {
    match c.custody {
        Custody::Due { at } => at,
        _ => UtcMillis(i64::MAX),
    }
}

/// Works out every capture's custody from the ledger as it is now.
pub fn schedule(
    ws: &Workspace,
    reader: &LedgerReader,
    now: UtcMillis,
) -> Result<Schedule, StoreError> {
    let keep_ms = ws.config.storage.keep_days.as_ms();
    let rules = ws.rules();
    let opts = push::stage::options(ws, &PushRequest::default());
    reader.in_one_read(|r| {
        let timeline = r.timeline(&rules)?;
        let plan = push::plan(r, &timeline, &opts)?;
        let confirmed_at: HashMap<String, UtcMillis> = r
            .outbox()?
            .into_iter()
            .filter(|row| row.state == crate::store::OutboxState::Pushed)
            .map(|row| (row.push.session_id.clone(), row.updated_at))
            .collect();
        // Each speech segment's conversation, and each conversation's fate.
        let mut conversation_of = HashMap::new();
        for c in &timeline.conversations {
            for id in c.segment_ids() {
                conversation_of.insert(id, c.id.clone());
            }
        }
        let fate: HashMap<&str, Result<UtcMillis, KeptFor>> = plan
            .conversations
            .iter()
            .map(|c| {
                let id = c.conversation.clone();
                let f = match &c.status {
                    CloudStatus::Pushed { session_id, .. } => confirmed_at
                        .get(session_id)
                        .copied()
                        .ok_or(KeptFor::NotPushed { conversation: id }),
                    CloudStatus::Held { .. } => Err(KeptFor::Held { conversation: id }),
                    CloudStatus::Rejected { .. } => Err(KeptFor::Refused { conversation: id }),
                    CloudStatus::Locked { .. } => Err(KeptFor::Held { conversation: id }),
                    // A `processing` answer is provisional: the cloud may
                    // still drop it, and then the audio is what re-sends it.
                    CloudStatus::New { .. }
                    | CloudStatus::Queued { .. }
                    | CloudStatus::Confirming { .. } => {
                        Err(KeptFor::NotPushed { conversation: id })
                    }
                };
                (c.conversation.as_str(), f)
            })
            .collect();
        let mut segments_of: HashMap<i64, Vec<(i64, SegmentStatus)>> = HashMap::new();
        for s in r.segments()? {
            segments_of
                .entry(s.capture_id)
                .or_default()
                .push((s.id, s.status));
        }
        let freed: HashMap<i64, crate::store::AudioState> = r
            .audio_states()?
            .into_iter()
            .map(|a| (a.capture_id, a))
            .collect();
        let mut captures = Vec::new();
        for cap in r.captures()? {
            let state = freed.get(&cap.id);
            let custody = match state.and_then(|s| s.freed_at) {
                Some(at) => Custody::Freed { at },
                None => custody_of(
                    cap.analyzed_at,
                    segments_of.get(&cap.id).map_or(&[][..], Vec::as_slice),
                    |seg| {
                        conversation_of
                            .get(&seg)
                            .and_then(|c| fate.get(c.as_str()))
                            .cloned()
                    },
                    keep_ms,
                ),
            };
            captures.push(CaptureCustody {
                capture_id: cap.id,
                file_name: cap.meta.file_name.clone(),
                stored_path: cap.stored_path.clone(),
                bytes: cap.bytes,
                custody,
                free_error: state.and_then(|s| s.free_error.clone()),
            });
        }
        Ok(Schedule {
            at: now,
            keep_ms,
            captures,
        })
    })
}

/// The custody rule for one capture that still has its audio: `segments`
/// are its segments with their status, `fate` a speech segment's
/// conversation's confirmation time (or why it is kept; `None` when the
/// segment is on no conversation).
fn custody_of(
    analysed_at: Option<UtcMillis>,
    segments: &[(i64, SegmentStatus)],
    fate: impl Fn(i64) -> Option<Result<UtcMillis, KeptFor>>,
    keep_ms: Option<i64>,
) -> Custody {
    let kept = |why| Custody::Kept { why };
    let Some(analysed_at) = analysed_at else {
        return kept(KeptFor::NotAnalysed);
    };
    let untranscribed = segments
        .iter()
        .filter(|(_, st)| matches!(st, SegmentStatus::Pending | SegmentStatus::Failed))
        .count();
    if untranscribed > 0 {
        return kept(KeptFor::Untranscribed {
            segments: untranscribed,
        });
    }
    let mut last = analysed_at;
    for (id, status) in segments {
        if *status != SegmentStatus::Speech {
            continue;
        }
        match fate(*id) {
            Some(Ok(at)) => last = last.max(at),
            Some(Err(why)) => return kept(why),
            None => {
                return kept(KeptFor::NotPushed {
                    conversation: format!("(segment {id} is on no conversation)"),
                });
            }
        }
    }
    match keep_ms {
        None => kept(KeptFor::KeptForever),
        Some(ms) => Custody::Due {
            at: last.plus_ms(ms),
        },
    }
}

/// One capture freed (or, in a dry run, that would be).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Freed {
    /// The capture.
    pub capture_id: i64,
    /// Its file name.
    pub file_name: String,
    /// Bytes freed.
    pub bytes: u64,
    /// When it fell due.
    #[serde(with = "rfc3339")]
    pub due: UtcMillis,
}

/// A capture whose file could not be deleted (tried again next time).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FreeFailed {
    /// The capture.
    pub capture_id: i64,
    /// Its file name.
    pub file_name: String,
    /// What the file system said.
    pub error: String,
}

/// What a prune did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PruneReport {
    /// Nothing was deleted: this is what would have been.
    pub dry_run: bool,
    /// Freed, in due order.
    pub freed: Vec<Freed>,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// Deletes that failed.
    pub failed: Vec<FreeFailed>,
    /// Captures still kept (not due, or kept for a reason).
    pub kept: usize,
    /// The next due time after this prune, if any.
    #[serde(with = "rfc3339::option", default)]
    pub next_due: Option<UtcMillis>,
}

/// Why a prune could not run.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The ledger.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Another run holds the cleanup section.
    #[error(transparent)]
    Busy(#[from] LockError),
}

/// Frees every capture due by `clock`'s now, in due order (with `dry_run`,
/// only lists them). Takes the cleanup section while it deletes.
pub fn prune(
    ws: &Workspace,
    ledger: &Ledger,
    clock: &dyn Clock,
    dry_run: bool,
) -> Result<PruneReport, PruneError> {
    let _lock = if dry_run {
        None
    } else {
        Some(ws.lock(Section::Cleanup)?)
    };
    let now = clock.now();
    let sched = schedule(ws, ledger, now)?;
    let queue = DueQueue::new();
    let mut kept = 0;
    for c in &sched.captures {
        match c.custody {
            Custody::Due { at } => queue.push(at, c),
            Custody::Kept { .. } => kept += 1,
            Custody::Freed { .. } => {}
        }
    }
    let mut report = PruneReport {
        dry_run,
        ..PruneReport::default()
    };
    while let Some((due, c)) = queue.pop_due(now) {
        let freed = Freed {
            capture_id: c.capture_id,
            file_name: c.file_name.clone(),
            bytes: c.bytes,
            due,
        };
        if !dry_run && let Err(error) = free_one(ledger, ws.data_dir(), c, now) {
            let _ = ledger.mark_free_failed(c.capture_id, &error);
            report.failed.push(FreeFailed {
                capture_id: c.capture_id,
                file_name: c.file_name.clone(),
                error,
            });
            continue;
        }
        report.bytes_freed += freed.bytes;
        report.freed.push(freed);
    }
    report.kept = kept + queue.len();
    report.next_due = queue.next_due();
    Ok(report)
}

/// The `--auto` job's last stage: frees what is due (lists it in a dry
/// run). It never stops the job: another run holding the cleanup section,
/// or a ledger error, is a warning and the audio waits for the next run.
pub fn stage(ws: &Workspace, ledger: &Ledger, dry_run: bool, ctx: &Ctx) -> Option<PruneReport> {
    let started = Instant::now();
    ctx.emit(Event::StageStarted {
        stage: Stage::Cleanup,
        total: 0,
        unit: Unit::Captures,
    });
    let warn = |message: String| {
        ctx.emit(Event::Warning {
            origin: Origin::Stage {
                stage: Stage::Cleanup,
            },
            message,
        })
    };
    match prune(ws, ledger, ctx.clock(), dry_run) {
        Ok(report) => {
            for f in &report.failed {
                warn(format!(
                    "capture {} ({}): {}; tried again next run",
                    f.capture_id, f.file_name, f.error
                ));
            }
            ctx.stage_finished(started, StageReport::Cleanup(report.clone()));
            Some(report)
        }
        Err(e) => {
            warn(format!("{e}; local audio is freed on a later run"));
            None
        }
    }
}

/// Deletes one capture's file and records it; a file already gone counts
/// as freed. The error says what the file system said, and where.
fn free_one(
    ledger: &Ledger,
    data_dir: &Path,
    c: &CaptureCustody,
    now: UtcMillis,
) -> Result<(), String> {
    let path = data_dir.join(&c.stored_path);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot delete {}: {e}", path.display())),
    }
    ledger
        .mark_audio_freed(c.capture_id, now)
        .map_err(|e| format!("deleted {} but cannot record it: {e}", path.display()))
}

/// The janitor of a long-running session: one thread that frees audio as
/// it falls due, sleeping until the next due time; [`Janitor::reschedule`]
/// (after a push, an edit, a change of settings) makes it look again at
/// once. Failures are kept in the ledger and on the report it hands back.
pub struct Janitor {
    queue: Arc<DueQueue<Wake>>,
    cancel: Cancel,
    thread: Option<JoinHandle<Vec<PruneReport>>>,
}

/// What the janitor's queue holds: a due time to prune at, or a nudge to
/// work the schedule out again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    Prune,
    Reschedule,
}

impl Janitor {
    /// Starts the janitor on `ws`'s data directory.
    pub fn spawn(ws: Workspace, clock: Arc<dyn Clock>, cancel: Cancel) -> std::io::Result<Self> {
        let queue = Arc::new(DueQueue::new());
        queue.push(clock.now(), Wake::Reschedule);
        let thread = {
            let (queue, cancel) = (queue.clone(), cancel.clone());
            std::thread::Builder::new()
                .name("janitor".into())
                .spawn(move || janitor_loop(&ws, &queue, clock.as_ref(), &cancel))?
        };
        Ok(Janitor {
            queue,
            cancel,
            thread: Some(thread),
        })
    }

    /// Makes the janitor work out the schedule again now.
    pub fn reschedule(&self) {
        self.queue.push(UtcMillis(i64::MIN), Wake::Reschedule);
    }

    /// Stops the janitor; returns what each of its prunes did.
    pub fn stop(mut self) -> Vec<PruneReport> {
        self.cancel.cancel();
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Janitor {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

fn janitor_loop(
    ws: &Workspace,
    queue: &DueQueue<Wake>,
    clock: &dyn Clock,
    cancel: &Cancel,
) -> Vec<PruneReport> {
    let mut reports = Vec::new();
    while let Ok((_, wake)) = queue.wait_due(clock, cancel) {
        let ledger = match ws.ledger() {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("janitor: cannot open the ledger: {e}");
                continue;
            }
        };
        if wake == Wake::Prune {
            match prune(ws, &ledger, clock, false) {
                Ok(r) if !r.freed.is_empty() || !r.failed.is_empty() => reports.push(r),
                Ok(_) => {}
                Err(e) => tracing::warn!("janitor: {e}"),
            }
        }
        // After a prune or a nudge: the next due time, and only that one.
        queue.clear();
        match schedule(ws, &ledger, clock.now()) {
            Ok(s) => {
                let next = s
                    .captures
                    .iter()
                    .filter_map(|c| match c.custody {
                        Custody::Due { at } => Some(at),
                        _ => None,
                    })
                    .min();
                if let Some(at) = next {
                    queue.push(at, Wake::Prune);
                }
            }
            Err(e) => tracing::warn!("janitor: {e}"),
        }
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400_000;

    fn speech(id: i64) -> (i64, SegmentStatus) {
        (id, SegmentStatus::Speech)
    }

    #[test]
    fn due_keep_days_after_the_last_confirmation() {
        let fate = |id| Some(Ok(UtcMillis(if id == 1 { 5 * DAY } else { 9 * DAY })));
        let c = custody_of(
            Some(UtcMillis(DAY)),
            &[speech(1), speech(2)],
            fate,
            Some(30 * DAY),
        );
        assert_eq!(
            c,
            Custody::Due {
                at: UtcMillis(39 * DAY)
            }
        );
        // keep_days = 0: due as soon as the cloud confirmed.
        let c = custody_of(Some(UtcMillis(DAY)), &[speech(1)], fate, Some(0));
        assert_eq!(
            c,
            Custody::Due {
                at: UtcMillis(5 * DAY)
            }
        );
        // "never".
        let c = custody_of(Some(UtcMillis(DAY)), &[speech(1)], fate, None);
        assert_eq!(
            c,
            Custody::Kept {
                why: KeptFor::KeptForever
            }
        );
    }

    #[test]
    fn nothing_unconfirmed_is_ever_due() {
        let not = |why: KeptFor| move |_| Some(Err(why.clone()));
        for why in [
            KeptFor::Held {
                conversation: "c".into(),
            },
            KeptFor::NotPushed {
                conversation: "c".into(),
            },
            KeptFor::Refused {
                conversation: "c".into(),
            },
        ] {
            let c = custody_of(Some(UtcMillis(0)), &[speech(1)], not(why.clone()), Some(0));
            assert_eq!(c, Custody::Kept { why });
        }
        // One conversation confirmed and one not: kept.
        let mixed = |id| {
            if id == 1 {
                Some(Ok(UtcMillis(0)))
            } else {
                Some(Err(KeptFor::NotPushed {
                    conversation: "b".into(),
                }))
            }
        };
        assert!(matches!(
            custody_of(Some(UtcMillis(0)), &[speech(1), speech(2)], mixed, Some(0)),
            Custody::Kept { .. }
        ));
        // Speech not transcribed yet, or not analysed at all: kept.
        let pending = [(1, SegmentStatus::Pending), (2, SegmentStatus::Failed)];
        assert_eq!(
            custody_of(Some(UtcMillis(0)), &pending, |_| None, Some(0)),
            Custody::Kept {
                why: KeptFor::Untranscribed { segments: 2 }
            }
        );
        assert_eq!(
            custody_of(None, &[], |_| None, Some(0)),
            Custody::Kept {
                why: KeptFor::NotAnalysed
            }
        );
        // A speech segment on no conversation: kept.
        assert!(matches!(
            custody_of(Some(UtcMillis(0)), &[speech(3)], |_| None, Some(0)),
            Custody::Kept { .. }
        ));
    }

    #[test]
    fn silence_is_due_keep_days_after_analysis() {
        let silent = [(1, SegmentStatus::Silent)];
        assert_eq!(
            custody_of(Some(UtcMillis(DAY)), &silent, |_| None, Some(DAY)),
            Custody::Due {
                at: UtcMillis(2 * DAY)
            }
        );
        assert_eq!(
            custody_of(Some(UtcMillis(DAY)), &[], |_| None, Some(0)),
            Custody::Due { at: UtcMillis(DAY) }
        );
    }
}
