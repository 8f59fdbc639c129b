//! The BLE transfer: pull the ring's records into durable storage, then let
//! the pendant free them, exactly as the upstream rule says.
//!
//! [`pull`] drives one pendant through a [`Connector`] (btleplug in the app,
//! [`crate::device::sim::SimPendant`] in tests) and a [`DurableSink`] (the
//! ledger in the app). Per connection:
//!
//! 1. Ask for a large ATT MTU ([`PullOptions::mtu`]) first: the firmware
//!    answers INFO only at an MTU of 44 or more and otherwise waits about
//!    5 s and answers ACK status 9, which the session explains as such
//!    ([`PullError::MtuTooSmall`]). Then write the time (u32 LE), read the
//!    status characteristic, INFO; CUSTODY_ENABLE when INFO has the 41-byte
//!    custody form and offers the ring-id capability.
//! 2. The resume point: the sink's persisted `(ring_id, durable_seq)`,
//!    checked against INFO by [`resume_fit`]. If the ring was cleared or
//!    replaced, or records were freed before they were pulled, the resume
//!    point is discarded (the sink is told,
//!    [`DurableSink::discard_resume_point`]) and the pull starts from the new
//!    read_seq, with a note saying so. Otherwise, if the pendant was not yet
//!    advanced to the resume point (a drop or a crash came between persist
//!    and ADVANCE), ADVANCE is re-sent, now that the ring id is known to match.
//! 3. READ from the resume point (or read_seq); status 9 (storage not ready)
//!    is retried with backoff, any other status is an error naming it.
//! 4. DATA is reassembled into records ([`RecordAssembler`]) and handed to
//!    the sink (see *Verifying transfers* for when), in batches of
//!    [`PullOptions::batch_records`] (or whatever arrived within
//!    [`PullOptions::persist_interval`]) and at DONE.
//! 5. Only after `persist` returned: ADVANCE (ADVANCE_ID with the ring id
//!    under custody) to the durable seq, never past it. `keep_on_device`
//!    never sends ADVANCE or CLEAR.
//!
//! # Verifying transfers
//!
//! One firmware line appends the CRC-32 of the transfer's DATA bytes to DONE.
//! Which line a pendant runs shows only in its first DONE, so the first READ
//! of a pull asks for one record. Then:
//!
//! - **DONE without a CRC**: nothing can be verified. Records are persisted
//!   as they arrive, and a drop or a cancel persists the whole records
//!   already in hand, so a drop re-sends less than one record.
//! - **DONE with a CRC**: a record is not persisted before the CRC of its
//!   transfer matched, so nothing unverified ever becomes durable (the
//!   ledger's resume point would otherwise let a later connection ADVANCE
//!   past it). To keep what is held bounded, READs ask for
//!   [`PullOptions::verified_read_records`] records at a time. A mismatch
//!   stores and frees nothing of that transfer and reads it again, up to
//!   [`PullOptions::crc_retries`] times, then stops the pull
//!   ([`PullError::CrcMismatch`]): the pendant keeps the records. A drop or
//!   a cancel throws the unverified records in hand away; they are read
//!   again (at most one READ's worth).
//!
//! # Drops, waits and cancellation
//!
//! A drop (disconnect, or no progress within the timeouts) leads to a new
//! connection and a resume from the durable seq, up to
//! [`PullOptions::max_reconnects`] times in a row without progress. Every
//! wait for a notification is cut into slices of [`WAIT_SLICE`] with the
//! pull's [`Cancel`] checked between them, and every backoff sleeps through
//! the token, so a cancel stops the pull within a slice: it finishes the
//! persist in hand, sends STOP (answered with an ACK, no DONE), frees only
//! durable data, and the report says it was cancelled.
//!
//! A [`PullObserver`] sees progress (bytes, records, of total, for KB/s and
//! ETA) and every change of the link ([`LinkEvent`]); the result is a
//! [`PullReport`].

mod conn;
mod memory;
mod wait;

pub use memory::{MemorySink, Persisted};
pub use wait::{InfoError, WAIT_SLICE, read_info};

use std::fmt;
use std::ops::Range;
use std::time::Duration;

use crate::cancel::Cancel;
use crate::device::link::{Connector, LinkError};
use crate::device::ring::{CustodyCaps, INFO_MIN_MTU, Info, Status, StorageStatus};

/// A failure of the durable sink (the ledger): the pull stops, nothing past
/// the last successful `persist` is advanced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

impl SinkError {
    /// A sink error with a message.
    pub fn new(message: impl fmt::Display) -> Self {
        SinkError(message.to_string())
    }
}

/// Where the host's durable copy of a device's ring ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResumePoint {
    /// The ring id the records came from (custody firmware), if known.
    pub ring_id: Option<u64>,
    /// One past the last durable record: the next seq to read.
    pub durable_seq: u64,
}

/// Durable storage for pulled records: the ledger implements it.
pub trait DurableSink {
    /// Persists these whole records (contiguous, starting at `first_seq`,
    /// a multiple of 444 bytes) durably (write a temp file, fsync, rename,
    /// record in the ledger) and returns only when they are safe. Afterwards
    /// [`resume_point`](Self::resume_point) must answer
    /// `(ring_id, first_seq + records.len() / 444)`.
    fn persist(
        &mut self,
        device: &str,
        ring_id: Option<u64>,
        first_seq: u64,
        records: &[u8],
    ) -> Result<(), SinkError>;

    /// The persisted resume point for this device, if any.
    fn resume_point(&self, device: &str) -> Result<Option<ResumePoint>, SinkError>;

    /// The resume point `old` no longer fits the pendant's ring and is
    /// discarded: the next `persist` for this device does not continue it.
    /// Nothing is lost on the host: everything up to `old` is already durable.
    fn discard_resume_point(
        &mut self,
        device: &str,
        old: ResumePoint,
        why: &Discard,
    ) -> Result<(), SinkError> {
        let _ = (device, old, why);
        Ok(())
    }
}

/// Why a resume point was discarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Discard {
    /// The ring was cleared or replaced: sequence numbers restart (possibly
    /// below the old durable seq) under this ring id.
    RingReplaced {
        /// The new ring's id (custody firmware), if any.
        new_ring_id: Option<u64>,
    },
    /// The same ring, but these records were freed or overwritten on the
    /// pendant before they were pulled; the pull continues after them.
    RecordsLost {
        /// The seqs that are gone.
        seqs: Range<u64>,
    },
}

/// What a stored resume point means for the ring a pendant (or its card)
/// holds now: the custody rule a BLE pull and a card read both apply
/// ([`resume_fit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResumeFit {
    /// The same ring, and the point lies in it: continue there.
    Resume {
        /// False when only one side has a ring id: the resume can go on,
        /// but nothing may be freed on the strength of it.
        ids_compared: bool,
    },
    /// The point no longer fits the ring: discard it, for this reason.
    Discard(Discard),
}

/// Checks a stored resume point against the ring now held: ring id
/// `ring_id`, records from `read_seq` (the oldest not freed) to `end_seq`
/// (one past the newest: INFO's write_seq, or the end of a card's salvage).
///
/// A different ring id, or a point beyond `end_seq`, means the ring was
/// cleared or replaced ([`Discard::RingReplaced`]); a point below
/// `read_seq` means the same ring freed or overwrote records before they
/// were pulled ([`Discard::RecordsLost`]).
pub fn resume_fit(
    point: &ResumePoint,
    ring_id: Option<u64>,
    read_seq: u64,
    end_seq: u64,
) -> ResumeFit {
    let id_changed = matches!((point.ring_id, ring_id), (Some(a), Some(b)) if a != b);
    if id_changed || point.durable_seq > end_seq {
        ResumeFit::Discard(Discard::RingReplaced {
            new_ring_id: ring_id,
        })
    } else if point.durable_seq < read_seq {
        ResumeFit::Discard(Discard::RecordsLost {
            seqs: point.durable_seq..read_seq,
        })
    } else {
        ResumeFit::Resume {
            ids_compared: point.ring_id.is_some() == ring_id.is_some(),
        }
    }
}

/// What to write to the time characteristic on connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSync {
    /// The host's clock now.
    Now,
    /// This many unix seconds (tests).
    At(u32),
    /// Do not write the time.
    Skip,
}

/// How a pull behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullOptions {
    /// Never send ADVANCE or CLEAR: the pendant keeps everything.
    pub keep_on_device: bool,
    /// The ATT MTU asked for before INFO (the firmware answers INFO only at
    /// [`INFO_MIN_MTU`] or more).
    pub mtu: u16,
    /// Persist every this many records (and at DONE, and at a drop). Each
    /// persist costs a few fsyncs, so large batches keep a fast link fast.
    pub batch_records: u64,
    /// Also persist the whole records in hand once this long passed since
    /// the last persist, so at radio speed a crash re-reads only this much.
    pub persist_interval: Duration,
    /// With firmware whose DONE carries a CRC-32: records per READ. They are
    /// held until their DONE verifies them, then persisted.
    pub verified_read_records: u32,
    /// A transfer whose CRC-32 does not match is read again this many times
    /// before the pull stops.
    pub crc_retries: u32,
    /// Also ADVANCE during the stream once this many more records are
    /// durable (`None`: only after DONE and on reconnect). With a CRC this
    /// happens between verified READs.
    pub advance_every_records: Option<u64>,
    /// How long to wait for INFO and ACK answers.
    pub command_timeout: Duration,
    /// How long to wait after READ for READ_BEGIN and the first DATA.
    pub first_data_timeout: Duration,
    /// How long DATA may stop before the connection counts as dropped.
    pub progress_timeout: Duration,
    /// READs answered with status 9 are retried this many times.
    pub busy_retries: u32,
    /// Wait before the first busy retry (doubled each time).
    pub busy_backoff: Duration,
    /// Reconnects in a row without progress before giving up.
    pub max_reconnects: u32,
    /// Wait before reconnecting.
    pub reconnect_backoff: Duration,
    /// The time written on connect.
    pub time_sync: TimeSync,
    /// Custody capabilities to ask for (intersected with what INFO offers).
    pub custody_caps: CustodyCaps,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            keep_on_device: false,
            mtu: 517,
            batch_records: 8192,
            persist_interval: Duration::from_secs(2),
            verified_read_records: 512,
            crc_retries: 2,
            advance_every_records: None,
            command_timeout: Duration::from_secs(6),
            first_data_timeout: Duration::from_secs(15),
            progress_timeout: Duration::from_secs(10),
            busy_retries: 4,
            busy_backoff: Duration::from_millis(500),
            max_reconnects: 5,
            reconnect_backoff: Duration::from_secs(1),
            time_sync: TimeSync::Now,
            custody_caps: CustodyCaps::APP_ACK_RECLAIM
                | CustodyCaps::IDEMPOTENT_ADVANCE
                | CustodyCaps::RING_ID,
        }
    }
}

/// Where a pull stands, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// DATA bytes received in this pull (re-sent ones included).
    pub bytes: u64,
    /// Distinct records received.
    pub records: u64,
    /// Records the pull expects in all (0 until the first READ_BEGIN).
    pub total_records: u64,
    /// Records persisted.
    pub persisted: u64,
    /// Since the pull started.
    pub elapsed: Duration,
    /// Connections made so far.
    pub connections: u32,
}

/// A change of the link during a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// Connecting (the first attempt of the pull is 1).
    Connecting {
        /// Which attempt.
        attempt: u32,
    },
    /// Connected; the MTU exchange agreed on this ATT MTU.
    Connected {
        /// The MTU.
        mtu: u16,
    },
    /// The link dropped or timed out; what arrived is durable (or, if it
    /// could not be verified yet, will be read again).
    Dropped {
        /// Why.
        reason: String,
    },
    /// Connecting again after this wait.
    Reconnecting {
        /// The wait.
        after: Duration,
    },
    /// The pull ended and the link is closed.
    Closed,
}

/// What a pull reports while it runs. Both methods do nothing by default; a
/// closure `FnMut(&Progress)` is an observer of progress alone.
pub trait PullObserver {
    /// Where the pull stands (every few DATA notifications, and after each persist).
    fn progress(&mut self, progress: &Progress) {
        let _ = progress;
    }

    /// The link changed state.
    fn link(&mut self, event: &LinkEvent) {
        let _ = event;
    }
}

impl<F: FnMut(&Progress)> PullObserver for F {
    fn progress(&mut self, progress: &Progress) {
        self(progress)
    }
}

/// An observer that watches nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl PullObserver for Quiet {}

/// What a pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// The device key.
    pub device: String,
    /// The ring id at the end (custody firmware).
    pub ring_id: Option<u64>,
    /// Whether custody v1 was granted (on the last connection).
    pub custody: Option<CustodyCaps>,
    /// Distinct records received.
    pub records_received: u64,
    /// Records handed to the sink and persisted.
    pub records_persisted: u64,
    /// Seqs persisted in the final ring.
    pub seq_range: Option<Range<u64>>,
    /// DATA bytes received.
    pub bytes_received: u64,
    /// Bytes received more than once (re-sent after drops and CRC
    /// mismatches, plus partial or unverified records thrown away).
    pub resent_bytes: u64,
    /// The highest seq the pendant acknowledged an ADVANCE to.
    pub advanced_to: Option<u64>,
    /// Records still on the pendant unread after the pull (from the last INFO
    /// and the final advance).
    pub unread_on_device: u64,
    /// Connections made.
    pub connections: u32,
    /// Drops and timeouts survived.
    pub drops: u32,
    /// READs retried after status 9.
    pub busy_retries: u32,
    /// Whether the firmware's DONE carries a CRC-32 (`None` until a DONE came).
    pub done_crc: Option<bool>,
    /// Transfers whose CRC-32 matched.
    pub crc_verified: u32,
    /// Transfers whose CRC-32 did not match (nothing of them was kept; read again).
    pub crc_mismatches: u32,
    /// The ring was cleared or replaced since the last pull.
    pub ring_replaced: bool,
    /// The pull stopped because its cancel token fired.
    pub cancelled: bool,
    /// The last INFO.
    pub info: Option<Info>,
    /// The last status characteristic value.
    pub status: Option<StorageStatus>,
    /// When the connection that read the last INFO was made (after its MTU
    /// exchange), on this machine's clock.
    pub connected_at: Option<crate::clock::UtcMillis>,
    /// When the last INFO arrived, on this machine's clock.
    pub info_at: Option<crate::clock::UtcMillis>,
    /// Whether a time was written to the pendant (its clock is set from then on).
    pub time_written: bool,
    /// The last MTU.
    pub mtu: u16,
    /// Things worth telling the person, in order.
    pub notes: Vec<String>,
}

/// Why a pull failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullError {
    /// The link failed in a way other than a drop.
    #[error("link: {0}")]
    Link(LinkError),
    /// Too many drops or timeouts in a row without progress.
    #[error("gave up after {attempts} connections in a row without progress; last: {last}")]
    GaveUp {
        /// Connections tried without progress.
        attempts: u32,
        /// The last reason.
        last: String,
    },
    /// The pendant answered a command with an error status.
    #[error("{command} refused: {status}")]
    Device {
        /// The command.
        command: &'static str,
        /// Its status.
        status: Status,
    },
    /// INFO was refused (status 9) or not answered on a link whose ATT MTU
    /// is below [`INFO_MIN_MTU`].
    #[error(
        "the pendant {} on a link with an ATT MTU of {mtu}: its firmware answers INFO only at an MTU of \
         {INFO_MIN_MTU} or more (a 41-byte INFO plus 3 bytes of ATT header), and below that waits about \
         5 s and refuses; the MTU exchange was refused or did not happen",
        if *answered { "answered INFO with status 9" } else { "did not answer INFO" }
    )]
    MtuTooSmall {
        /// The MTU agreed.
        mtu: u16,
        /// Whether the refusal came (status 9), or nothing did.
        answered: bool,
    },
    /// A transfer's CRC-32 did not match after every retry.
    #[error(
        "records {}..{}: the DATA received does not match the CRC-32 in DONE ({expected:#010x} sent, \
         {computed:#010x} computed) in {tries} reads in a row; none of them was stored or freed",
        seqs.start,
        seqs.end
    )]
    CrcMismatch {
        /// The records of the transfer.
        seqs: Range<u64>,
        /// The CRC DONE carried.
        expected: u32,
        /// The CRC of what arrived.
        computed: u32,
        /// Reads of these records.
        tries: u32,
    },
    /// The pendant sent something that breaks the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The sink failed.
    #[error("durable sink: {0}")]
    Sink(SinkError),
}

/// A failed pull: the error and what had been done before it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pull from {} failed: {error} ({} records persisted)", report.device, report.records_persisted)]
pub struct PullFailed {
    /// What went wrong.
    pub error: PullError,
    /// What was done (everything persisted is safe).
    pub report: PullReport,
}

/// How one connection (or one wait in it) ended, short of success.
enum Interrupt {
    /// Dropped or timed out: reconnect and resume.
    Dropped(String),
    /// Stop the pull.
    Fatal(PullError),
    /// The cancel token fired.
    Cancelled,
}

impl From<LinkError> for Interrupt {
    fn from(e: LinkError) -> Self {
        match e {
            LinkError::Cancelled => Interrupt::Cancelled,
            e if e.is_disconnect() => Interrupt::Dropped(e.to_string()),
            e => Interrupt::Fatal(PullError::Link(e)),
        }
    }
}

impl From<SinkError> for Interrupt {
    fn from(e: SinkError) -> Self {
        Interrupt::Fatal(PullError::Sink(e))
    }
}

/// How a pull ended, short of success.
enum Stop {
    Fatal(PullError),
    Cancelled,
}

/// Pulls a pendant's ring into `sink` (see the module docs), until done,
/// failed, or `cancel` fires.
pub fn pull(
    connector: &mut dyn Connector,
    sink: &mut dyn DurableSink,
    opts: &PullOptions,
    cancel: &Cancel,
    observer: &mut dyn PullObserver,
) -> Result<PullReport, Box<PullFailed>> {
    let device = connector.device_id();
    let mut s = conn::Session::new(device, opts, cancel, observer);
    let mut without_progress = 0u32;
    let mut attempt = 0u32;
    let outcome: Result<(), Stop> = loop {
        if cancel.is_cancelled() {
            break Err(Stop::Cancelled);
        }
        let persisted_before = s.report.records_persisted;
        let advanced_before = s.report.advanced_to;
        attempt += 1;
        s.link_event(LinkEvent::Connecting { attempt });
        let r = match connector.connect(cancel) {
            Ok(mut link) => {
                s.report.connections += 1;
                let r = s.connection(link.as_mut(), sink);
                let _ = link.disconnect();
                r
            }
            Err(e) => Err(Interrupt::from(e)),
        };
        let reason = match r {
            Ok(()) => break Ok(()),
            Err(Interrupt::Cancelled) => break Err(Stop::Cancelled),
            Err(Interrupt::Fatal(e)) => break Err(Stop::Fatal(e)),
            Err(Interrupt::Dropped(reason)) => reason,
        };
        s.report.drops += 1;
        s.link_event(LinkEvent::Dropped {
            reason: reason.clone(),
        });
        let progressed = s.report.records_persisted > persisted_before
            || s.report.advanced_to != advanced_before;
        without_progress = if progressed { 0 } else { without_progress + 1 };
        if without_progress > opts.max_reconnects {
            break Err(Stop::Fatal(PullError::GaveUp {
                attempts: without_progress,
                last: reason,
            }));
        }
        tracing::info!(device = %s.device, %reason, "link dropped; reconnecting");
        let wait = if progressed {
            Duration::ZERO
        } else {
            opts.reconnect_backoff
        };
        s.link_event(LinkEvent::Reconnecting { after: wait });
        if cancel.sleep(wait).is_err() {
            break Err(Stop::Cancelled);
        }
    };
    s.link_event(LinkEvent::Closed);
    match outcome {
        Ok(()) => Ok(s.finish()),
        Err(Stop::Cancelled) => {
            s.report.cancelled = true;
            s.note(
                "stopped on request: what arrived and could be verified was made durable first, \
                 and nothing past it was freed"
                    .into(),
            );
            Ok(s.finish())
        }
        Err(Stop::Fatal(error)) => Err(Box::new(PullFailed {
            error,
            report: s.finish(),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_point_fits_only_its_own_ring() {
        let at = |ring_id, durable_seq| ResumePoint {
            ring_id,
            durable_seq,
        };
        let resume = |ids_compared| ResumeFit::Resume { ids_compared };
        assert_eq!(resume_fit(&at(Some(1), 50), Some(1), 10, 90), resume(true));
        assert_eq!(resume_fit(&at(Some(1), 90), Some(1), 10, 90), resume(true));
        assert_eq!(resume_fit(&at(None, 10), Some(1), 10, 90), resume(false));
        assert_eq!(
            resume_fit(&at(Some(1), 50), Some(2), 10, 90),
            ResumeFit::Discard(Discard::RingReplaced {
                new_ring_id: Some(2)
            })
        );
        assert_eq!(
            resume_fit(&at(None, 91), None, 10, 90),
            ResumeFit::Discard(Discard::RingReplaced { new_ring_id: None })
        );
        assert_eq!(
            resume_fit(&at(Some(1), 4), Some(1), 10, 90),
            ResumeFit::Discard(Discard::RecordsLost { seqs: 4..10 })
        );
        // A changed id wins over lost records.
        assert!(matches!(
            resume_fit(&at(Some(1), 4), Some(2), 10, 90),
            ResumeFit::Discard(Discard::RingReplaced { .. })
        ));
    }
}
