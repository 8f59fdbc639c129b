//! The BLE transfer: pull the ring's records into durable storage, then let
//! the pendant free them, exactly as the upstream rule says.
//!
//! [`pull`] drives one pendant through a [`Connector`] (btleplug in the app,
//! [`crate::device::sim::SimPendant`] in tests) and a [`DurableSink`] (the
//! ledger in the app). Per connection:
//!
//! 1. MTU, write the time (u32 LE), read the status characteristic, INFO;
//!    CUSTODY_ENABLE when INFO has the 41-byte custody form and offers the
//!    ring-id capability.
//! 2. The resume point: the sink's persisted `(ring_id, durable_seq)`. If
//!    INFO's ring id differs, or `[read_seq, write_seq]` no longer contains
//!    the resume point, the ring was cleared or replaced: the resume point is
//!    discarded (the sink is told, [`DurableSink::discard_resume_point`]) and the
//!    pull starts from the new read_seq, with a note saying so. Otherwise,
//!    if the pendant was not yet advanced to the resume point (a drop or a
//!    crash came between persist and ADVANCE), ADVANCE is re-sent, now that
//!    the ring id is known to match.
//! 3. READ from the resume point (or read_seq); status 9 (storage not ready)
//!    is retried with backoff, any other status is an error naming it.
//! 4. DATA is reassembled into records ([`RecordAssembler`]) and handed to
//!    the sink in batches of [`PullOptions::batch_records`] (or whatever
//!    arrived within [`PullOptions::persist_interval`]) and at DONE; a
//!    drop or timeout also persists the whole records already in hand, so a
//!    drop re-sends less than one record, and a crash loses at most a batch.
//! 5. Only after `persist` returned: ADVANCE (ADVANCE_ID with the ring id
//!    under custody) to the durable seq, never past it. `keep_on_device`
//!    never sends ADVANCE or CLEAR.
//!
//! A drop (disconnect, or no progress within the timeouts) leads to a new
//! connection and a resume from the durable seq, up to
//! [`PullOptions::max_reconnects`] times in a row without progress.
//! Progress goes to a callback (bytes, records, of total, for KB/s and ETA);
//! the result is a [`PullReport`].

use std::fmt;
use std::ops::{ControlFlow, Range};
use std::time::{Duration, Instant};

use crate::device::link::{Connector, GattLink, LinkError};
use crate::device::record::RECORD_BYTES;
use crate::device::ring::{
    CUSTODY_VERSION, CodecError, Command, CustodyCaps, Info, Notification, RecordAssembler,
    RecordBatch, Status, StorageStatus, encode_time,
};

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
    /// Persist every this many records (and at DONE, and at a drop). Each
    /// persist costs a few fsyncs, so large batches keep a fast link fast.
    pub batch_records: u64,
    /// Also persist the whole records in hand once this long passed since
    /// the last persist, so at radio speed a crash re-reads only this much.
    pub persist_interval: Duration,
    /// Also ADVANCE during the stream once this many more records are
    /// durable (`None`: only after DONE and on reconnect).
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
            batch_records: 8192,
            persist_interval: Duration::from_secs(2),
            advance_every_records: None,
            command_timeout: Duration::from_secs(5),
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
    /// Bytes received more than once (re-sent after drops, plus partial
    /// records thrown away at drops).
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
    /// The ring was cleared or replaced since the last pull.
    pub ring_replaced: bool,
    /// The progress callback asked to stop.
    pub cancelled: bool,
    /// The last INFO.
    pub info: Option<Info>,
    /// The last status characteristic value.
    pub status: Option<StorageStatus>,
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

/// How one connection ended, short of success.
enum Interrupt {
    /// Dropped or timed out: reconnect and resume.
    Dropped(String),
    /// Stop the pull.
    Fatal(PullError),
    /// The progress callback asked to stop.
    Cancelled,
}

impl From<LinkError> for Interrupt {
    fn from(e: LinkError) -> Self {
        if e.is_disconnect() {
            Interrupt::Dropped(e.to_string())
        } else {
            Interrupt::Fatal(PullError::Link(e))
        }
    }
}

impl From<SinkError> for Interrupt {
    fn from(e: SinkError) -> Self {
        Interrupt::Fatal(PullError::Sink(e))
    }
}

fn protocol(e: CodecError) -> Interrupt {
    Interrupt::Fatal(PullError::Protocol(e.to_string()))
}

/// Pulls a pendant's ring into `sink` (see the module docs).
pub fn pull(
    connector: &mut dyn Connector,
    sink: &mut dyn DurableSink,
    opts: &PullOptions,
    progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
) -> Result<PullReport, Box<PullFailed>> {
    let device = connector.device_id();
    let mut s = Session {
        device: device.clone(),
        opts,
        report: PullReport {
            device,
            ..PullReport::default()
        },
        started: Instant::now(),
        ring_id: None,
        durable: None,
        advanced: None,
        high_water: 0,
        total_records: 0,
        notifications: 0,
        may_advance: false,
        last_persist: Instant::now(),
    };
    let mut without_progress = 0u32;
    loop {
        let persisted_before = s.report.records_persisted;
        let advanced_before = s.report.advanced_to;
        let outcome = match connector.connect() {
            Ok(mut link) => {
                s.report.connections += 1;
                let r = s.connection(link.as_mut(), sink, progress);
                let _ = link.disconnect();
                r
            }
            Err(e) => Err(Interrupt::from(e)),
        };
        match outcome {
            Ok(()) => return Ok(s.finish()),
            Err(Interrupt::Cancelled) => {
                s.report.cancelled = true;
                s.note("stopped on request; everything received was persisted first".into());
                return Ok(s.finish());
            }
            Err(Interrupt::Fatal(error)) => {
                return Err(Box::new(PullFailed {
                    error,
                    report: s.finish(),
                }));
            }
            Err(Interrupt::Dropped(reason)) => {
                s.report.drops += 1;
                let progressed = s.report.records_persisted > persisted_before
                    || s.report.advanced_to != advanced_before;
                without_progress = if progressed { 0 } else { without_progress + 1 };
                if without_progress > opts.max_reconnects {
                    return Err(Box::new(PullFailed {
                        error: PullError::GaveUp {
                            attempts: without_progress,
                            last: reason,
                        },
                        report: s.finish(),
                    }));
                }
                tracing::info!(device = %s.device, %reason, "link dropped; reconnecting");
                if !opts.reconnect_backoff.is_zero() && !progressed {
                    std::thread::sleep(opts.reconnect_backoff);
                }
            }
        }
    }
}

struct Session<'o> {
    device: String,
    opts: &'o PullOptions,
    report: PullReport,
    started: Instant,
    /// The ring id of the records being pulled.
    ring_id: Option<u64>,
    /// One past the last durable record of the current ring.
    durable: Option<u64>,
    /// The highest seq the pendant acknowledged an ADVANCE to (current ring).
    advanced: Option<u64>,
    /// One past the highest record received in the current ring.
    high_water: u64,
    total_records: u64,
    notifications: u64,
    /// Whether this connection may send ADVANCE at all.
    may_advance: bool,
    /// When records were last handed to the sink.
    last_persist: Instant,
}

impl Session<'_> {
    fn note(&mut self, text: String) {
        tracing::info!(device = %self.device, "{text}");
        self.report.notes.push(text);
    }

    fn finish(mut self) -> PullReport {
        self.report.ring_id = self.ring_id;
        if let Some(i) = self.report.info {
            let freed = self.advanced.unwrap_or(i.read_seq).max(i.read_seq);
            self.report.unread_on_device = i.write_seq.saturating_sub(freed);
        }
        self.report.resent_bytes = self
            .report
            .bytes_received
            .saturating_sub(self.report.records_received * RECORD_BYTES as u64);
        self.report
    }

    fn progress(&self) -> Progress {
        Progress {
            bytes: self.report.bytes_received,
            records: self.report.records_received,
            total_records: self.total_records,
            persisted: self.report.records_persisted,
            elapsed: self.started.elapsed(),
            connections: self.report.connections,
        }
    }

    /// Waits for a notification that `want` accepts; others are skipped.
    fn wait_for<T>(
        &mut self,
        link: &mut dyn GattLink,
        what: &str,
        timeout: Duration,
        mut want: impl FnMut(&Notification<'_>) -> Option<T>,
    ) -> Result<T, Interrupt> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(bytes) = link.recv_notification(left)? else {
                return Err(Interrupt::Dropped(format!(
                    "no {what} within {} ms",
                    timeout.as_millis()
                )));
            };
            let n = Notification::decode(&bytes).map_err(protocol)?;
            if let Some(t) = want(&n) {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                return Err(Interrupt::Dropped(format!(
                    "no {what} within {} ms",
                    timeout.as_millis()
                )));
            }
        }
    }

    fn connection(
        &mut self,
        link: &mut dyn GattLink,
        sink: &mut dyn DurableSink,
        progress: &mut dyn FnMut(&Progress) -> ControlFlow<()>,
    ) -> Result<(), Interrupt> {
        let opts = self.opts;
        // 1. MTU, time, status, INFO, custody.
        self.report.mtu = link.mtu();
        match opts.time_sync {
            TimeSync::Now => {
                let now = crate::clock::UtcMillis::now()
                    .as_secs()
                    .clamp(0, u32::MAX as i64) as u32;
                link.write_time(encode_time(now))?;
            }
            TimeSync::At(t) => link.write_time(encode_time(t))?,
            TimeSync::Skip => {}
        }
        match StorageStatus::decode(&link.read_status()?) {
            Ok(st) => self.report.status = Some(st),
            Err(e) => self.note(format!("status characteristic ignored: {e}")),
        }
        link.write_control(&Command::Info.encode())?;
        let info = self.wait_for(link, "INFO", opts.command_timeout, |n| match n {
            Notification::Info(i) => Some(*i),
            _ => None,
        })?;
        self.report.info = Some(info);
        if info.packet_bytes as usize != RECORD_BYTES {
            return Err(Interrupt::Fatal(PullError::Protocol(format!(
                "INFO reports {}-byte packets; only {RECORD_BYTES}-byte ring records are supported",
                info.packet_bytes
            ))));
        }
        let mut custody = None;
        if let Some(c) = info.custody
            && c.caps.contains(CustodyCaps::RING_ID)
        {
            let caps = opts.custody_caps.intersect(c.caps);
            link.write_control(
                &Command::CustodyEnable {
                    version: CUSTODY_VERSION,
                    caps,
                }
                .encode(),
            )?;
            let (status, granted) =
                self.wait_for(link, "custody ACK", opts.command_timeout, |n| match n {
                    Notification::Ack { status, granted } => Some((*status, *granted)),
                    _ => None,
                })?;
            if status.is_ok() {
                custody = Some(granted.unwrap_or(caps));
            } else {
                self.note(format!(
                    "custody not granted ({status}); using plain ADVANCE"
                ));
            }
        }
        self.report.custody = custody;
        let use_id = custody.is_some_and(|g| g.contains(CustodyCaps::RING_ID));
        let ring_id = info.ring_id();

        // 2. The resume point.
        // The sink is authoritative: only what it holds is durable.
        let stored = sink.resume_point(&self.device)?;
        let mut start = info.read_seq;
        let mut matches = false;
        let mut confirmed = true;
        if let Some(rp) = stored {
            match resume_fit(&rp, ring_id, info.read_seq, info.write_seq) {
                ResumeFit::Discard(discard) => {
                    match &discard {
                        Discard::RecordsLost { seqs } => self.note(format!(
                            "the pendant's read_seq {} is past the resume point {} ({} records were \
                             overwritten or freed before they were pulled); starting from read_seq {}",
                            info.read_seq,
                            rp.durable_seq,
                            seqs.end - seqs.start,
                            info.read_seq
                        )),
                        Discard::RingReplaced { .. } => {
                            let why = if rp.durable_seq > info.write_seq && rp.ring_id == ring_id {
                                format!(
                                    "the resume point {} lies beyond the pendant's write_seq {}",
                                    rp.durable_seq, info.write_seq
                                )
                            } else {
                                format!(
                                    "the ring id changed ({:#x} to {:#x})",
                                    rp.ring_id.unwrap_or(0),
                                    ring_id.unwrap_or(0)
                                )
                            };
                            self.note(format!(
                                "the ring was cleared or replaced: {why}; the resume point is discarded \
                                 and the pull starts from the new read_seq {}",
                                info.read_seq
                            ));
                            self.report.ring_replaced = true;
                            self.report.seq_range = None;
                        }
                    }
                    sink.discard_resume_point(&self.device, rp, &discard)?;
                    self.advanced = None;
                    self.high_water = info.read_seq;
                }
                ResumeFit::Resume { ids_compared } => {
                    matches = true;
                    start = rp.durable_seq;
                    if !ids_compared {
                        // The ids cannot be compared: resume, but free nothing on that basis.
                        confirmed = false;
                        self.note(format!(
                            "the resume point's ring id ({}) and the pendant's ({}) cannot be compared; resuming at {start} without sending ADVANCE on this connection",
                            rp.ring_id.map_or("none".into(), |r| format!("{r:#x}")),
                            ring_id.map_or("none".into(), |r| format!("{r:#x}")),
                        ));
                    }
                }
            }
        } else if self.ring_id != ring_id {
            self.high_water = info.read_seq;
        }
        self.durable = Some(start);
        if matches {
            self.high_water = self.high_water.max(start);
        }
        self.ring_id = ring_id;

        // Free nothing on this connection if the ring's identity is in doubt:
        // [read_seq, start) might then be records this host never pulled.
        self.may_advance = !opts.keep_on_device && confirmed;
        // Re-send ADVANCE if the pendant was not advanced to durable data.
        if matches && self.may_advance && start > info.read_seq {
            self.advance(link, use_id, start, true)?;
        }
        if self.total_records == 0 {
            self.total_records = info.write_seq.saturating_sub(start);
        }
        if start >= info.write_seq {
            return Ok(());
        }

        // 3. READ, retrying "storage not ready".
        let mut tries = 0u32;
        let (begin_seq, count) = loop {
            link.write_control(
                &Command::Read {
                    start_seq: start,
                    count: None,
                }
                .encode(),
            )?;
            let answer =
                self.wait_for(link, "READ_BEGIN", opts.first_data_timeout, |n| match n {
                    Notification::ReadBegin {
                        start_seq,
                        packet_count,
                    } => Some(Ok((*start_seq, *packet_count))),
                    Notification::Ack { status, .. } if !status.is_ok() => Some(Err(*status)),
                    Notification::Done { status, .. } if !status.is_ok() => Some(Err(*status)),
                    _ => None,
                })?;
            match answer {
                Ok(b) => break b,
                Err(Status::NOT_READY) if tries < opts.busy_retries => {
                    let wait = opts.busy_backoff * 2u32.saturating_pow(tries);
                    tries += 1;
                    self.report.busy_retries += 1;
                    self.note(format!(
                        "READ answered status 9 (storage not ready); retry {tries} in {} ms",
                        wait.as_millis()
                    ));
                    std::thread::sleep(wait);
                }
                Err(status) => {
                    return Err(Interrupt::Fatal(PullError::Device {
                        command: "READ",
                        status,
                    }));
                }
            }
        };
        if begin_seq > start {
            // Records vanished between INFO and READ (overwritten by recording):
            // reconnect, and the new INFO tells the sink which ones.
            let _ = link.write_control(&Command::Stop.encode());
            return Err(Interrupt::Dropped(format!(
                "the pendant started the READ at {begin_seq}, not {start}"
            )));
        }
        let end = begin_seq.saturating_add(count as u64);
        self.total_records = self
            .total_records
            .max(self.report.records_received + end.saturating_sub(self.high_water.max(begin_seq)));

        // 4. Stream.
        let mut asm = RecordAssembler::new(begin_seq);
        let mut pending_advances = 0u32;
        let mut got_data = false;
        let mut last_progress = Instant::now();
        let result = loop {
            let limit = if got_data {
                opts.progress_timeout
            } else {
                opts.first_data_timeout
            };
            let left = limit.saturating_sub(last_progress.elapsed());
            let bytes = match link.recv_notification(left) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    break Err(Interrupt::Dropped(format!(
                        "no data for {} ms (at seq {})",
                        limit.as_millis(),
                        asm.next_seq()
                    )));
                }
                Err(e) => break Err(e.into()),
            };
            let n = match Notification::decode(&bytes) {
                Ok(n) => n,
                Err(e) => break Err(protocol(e)),
            };
            match n {
                Notification::Data(d) => {
                    got_data = true;
                    last_progress = Instant::now();
                    self.report.bytes_received += d.len() as u64;
                    asm.push(d);
                    if asm.next_seq() > end {
                        break Err(Interrupt::Fatal(PullError::Protocol(format!(
                            "the pendant sent records past {end}, the end READ_BEGIN announced"
                        ))));
                    }
                    let ready = asm.ready_records();
                    if ready >= opts.batch_records
                        || (ready > 0 && self.last_persist.elapsed() >= opts.persist_interval)
                    {
                        if let Err(e) = self.persist(&mut asm, sink) {
                            break Err(e);
                        }
                        if let Some(every) = opts.advance_every_records
                            && self.may_advance
                        {
                            let durable = self.durable.unwrap_or(0);
                            let since = self.advanced.unwrap_or(info.read_seq);
                            if durable >= since + every {
                                let cmd = self.advance_command(use_id, durable);
                                if let Err(e) = link.write_control(&cmd) {
                                    break Err(e.into());
                                }
                                pending_advances += 1;
                                self.advanced = Some(durable);
                            }
                        }
                    }
                    self.notifications += 1;
                    if self.notifications.is_multiple_of(32)
                        && progress(&self.progress()).is_break()
                    {
                        break Err(Interrupt::Cancelled);
                    }
                }
                Notification::Done { status, next_seq } => {
                    if !status.is_ok() {
                        break Err(Interrupt::Fatal(PullError::Device {
                            command: "READ (DONE)",
                            status,
                        }));
                    }
                    if asm.partial_len() > 0 {
                        self.note(format!(
                            "DONE left {} bytes of an incomplete record; they are dropped and read again next time",
                            asm.partial_len()
                        ));
                    }
                    if next_seq != asm.next_seq() {
                        break Err(Interrupt::Dropped(format!(
                            "DONE says next_seq {next_seq} but records up to {} arrived",
                            asm.next_seq()
                        )));
                    }
                    break Ok(());
                }
                Notification::Ack { status, .. } => {
                    if pending_advances > 0 {
                        pending_advances -= 1;
                        if !status.is_ok() {
                            self.note(format!("ADVANCE during the READ refused: {status}"));
                            self.advanced = None;
                        } else {
                            self.report.advanced_to = self.advanced;
                        }
                    }
                }
                Notification::LiveMark { .. }
                | Notification::Info(_)
                | Notification::ReadBegin { .. } => {}
            }
        };
        // Whatever whole records arrived are made durable first, whatever happened.
        let flushed = if matches!(result, Err(Interrupt::Fatal(PullError::Sink(_)))) {
            Ok(())
        } else {
            self.persist(&mut asm, sink)
        };
        let partial = asm.discard_partial();
        if partial > 0 {
            tracing::debug!(device = %self.device, partial, "partial record discarded");
        }
        if matches!(result, Err(Interrupt::Cancelled)) || matches!(result, Err(Interrupt::Fatal(_)))
        {
            let _ = link.write_control(&Command::Stop.encode());
        }
        flushed?;
        let _ = progress(&self.progress());
        match result {
            Ok(()) => {}
            Err(Interrupt::Cancelled) => {
                if self.may_advance
                    && let Some(d) = self.durable
                    && d > self.advanced.unwrap_or(info.read_seq)
                {
                    let _ = self.advance(link, use_id, d, false);
                }
                return Err(Interrupt::Cancelled);
            }
            Err(e) => return Err(e),
        }

        // 5. ADVANCE to the durable seq.
        if self.may_advance
            && let Some(d) = self.durable
            && d > info.read_seq
            && Some(d) != self.report.advanced_to
        {
            self.advance(link, use_id, d, true)?;
        }
        Ok(())
    }

    fn advance_command(&self, use_id: bool, seq: u64) -> Vec<u8> {
        match (use_id, self.ring_id) {
            (true, Some(ring_id)) => Command::AdvanceId { ring_id, seq }.encode(),
            _ => Command::Advance { seq }.encode(),
        }
    }

    /// Sends ADVANCE (or ADVANCE_ID) to `seq` and waits for its ACK. A
    /// refusal is a note, not an error: the data is durable either way.
    fn advance(
        &mut self,
        link: &mut dyn GattLink,
        use_id: bool,
        seq: u64,
        wait: bool,
    ) -> Result<(), Interrupt> {
        if self.durable.is_none_or(|d| seq > d) {
            return Err(Interrupt::Fatal(PullError::Protocol(format!(
                "internal: refusing to ADVANCE to {seq}, past the durable data ({:?})",
                self.durable
            ))));
        }
        link.write_control(&self.advance_command(use_id, seq))?;
        if !wait {
            return Ok(());
        }
        let status = self.wait_for(
            link,
            "ADVANCE ACK",
            self.opts.command_timeout,
            |n| match n {
                Notification::Ack { status, .. } => Some(*status),
                _ => None,
            },
        )?;
        if status.is_ok() {
            self.advanced = Some(seq);
            self.report.advanced_to = Some(seq);
        } else if status == Status::RING_ID_MISMATCH {
            self.note(format!(
                "ADVANCE_ID to {seq} refused: the ring was replaced meanwhile (status 11); nothing freed"
            ));
        } else {
            self.note(format!("ADVANCE to {seq} refused: {status}"));
        }
        Ok(())
    }

    /// Hands the whole records in `asm` to the sink; skips records already durable.
    fn persist(
        &mut self,
        asm: &mut RecordAssembler,
        sink: &mut dyn DurableSink,
    ) -> Result<(), Interrupt> {
        self.last_persist = Instant::now();
        let Some(batch) = asm.take_ready() else {
            return Ok(());
        };
        let durable = self.durable.unwrap_or(batch.first_seq);
        // Distinct records received.
        if batch.end_seq() > self.high_water {
            self.report.records_received += batch.end_seq() - self.high_water.max(batch.first_seq);
            self.high_water = batch.end_seq();
        }
        let RecordBatch { first_seq, bytes } = batch;
        let skip = durable
            .saturating_sub(first_seq)
            .min((bytes.len() / RECORD_BYTES) as u64);
        let records = &bytes[skip as usize * RECORD_BYTES..];
        if records.is_empty() {
            return Ok(());
        }
        let first = first_seq + skip;
        if first != durable {
            return Err(Interrupt::Fatal(PullError::Protocol(format!(
                "records start at {first} but the durable data ends at {durable}"
            ))));
        }
        sink.persist(&self.device, self.ring_id, first, records)?;
        let n = (records.len() / RECORD_BYTES) as u64;
        self.durable = Some(first + n);
        self.report.records_persisted += n;
        self.report.seq_range = Some(match self.report.seq_range.take() {
            Some(r) if r.end == first => r.start..first + n,
            _ => first..first + n,
        });
        Ok(())
    }
}

/// One `persist` call a [`MemorySink`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persisted {
    /// The device key.
    pub device: String,
    /// The ring id.
    pub ring_id: Option<u64>,
    /// First seq.
    pub first_seq: u64,
    /// How many records.
    pub count: u64,
    /// The records (empty unless the sink keeps bytes).
    pub records: Vec<u8>,
}

/// A [`DurableSink`] in memory, for tests, benchmarks and dry runs. It
/// refuses a `persist` that is not contiguous with its resume point (a gap
/// or a duplicate), so tests catch both.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    points: std::collections::HashMap<String, ResumePoint>,
    keep_bytes: bool,
    /// Every persist, in order.
    pub log: Vec<Persisted>,
    /// Records persisted in all.
    pub records: u64,
    /// Every discarded resume point: (device, old point, why).
    pub discarded: Vec<(String, ResumePoint, Discard)>,
}

impl MemorySink {
    /// A sink that keeps the record bytes.
    pub fn keeping_bytes() -> Self {
        MemorySink {
            keep_bytes: true,
            ..Self::default()
        }
    }

    /// A sink that only counts (for large pulls).
    pub fn counting() -> Self {
        Self::default()
    }

    /// Sets a device's resume point (as a ledger from an earlier run would).
    pub fn set_resume_point(&mut self, device: &str, point: ResumePoint) {
        self.points.insert(device.to_string(), point);
    }

    /// Every persisted record of `device` with its ring id and seq, in order.
    pub fn records_of(&self, device: &str) -> Vec<(Option<u64>, u64, &[u8])> {
        self.log
            .iter()
            .filter(|p| p.device == device)
            .flat_map(|p| {
                p.records
                    .chunks_exact(RECORD_BYTES)
                    .enumerate()
                    .map(move |(i, r)| (p.ring_id, p.first_seq + i as u64, r))
            })
            .collect()
    }
}

impl DurableSink for MemorySink {
    fn persist(
        &mut self,
        device: &str,
        ring_id: Option<u64>,
        first_seq: u64,
        records: &[u8],
    ) -> Result<(), SinkError> {
        if records.is_empty() || !records.len().is_multiple_of(RECORD_BYTES) {
            return Err(SinkError::new(format!(
                "{} bytes are not whole records",
                records.len()
            )));
        }
        if let Some(p) = self.points.get(device)
            && p.ring_id == ring_id
            && p.durable_seq != first_seq
        {
            return Err(SinkError::new(format!(
                "records at {first_seq} are not contiguous with the durable seq {} of {device}",
                p.durable_seq
            )));
        }
        let count = (records.len() / RECORD_BYTES) as u64;
        self.points.insert(
            device.to_string(),
            ResumePoint {
                ring_id,
                durable_seq: first_seq + count,
            },
        );
        self.records += count;
        self.log.push(Persisted {
            device: device.to_string(),
            ring_id,
            first_seq,
            count,
            records: if self.keep_bytes {
                records.to_vec()
            } else {
                Vec::new()
            },
        });
        Ok(())
    }

    fn resume_point(&self, device: &str) -> Result<Option<ResumePoint>, SinkError> {
        Ok(self.points.get(device).copied())
    }

    fn discard_resume_point(
        &mut self,
        device: &str,
        old: ResumePoint,
        why: &Discard,
    ) -> Result<(), SinkError> {
        self.discarded.push((device.to_string(), old, why.clone()));
        self.points.remove(device);
        Ok(())
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
