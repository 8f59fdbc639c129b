//! Pulling a pendant's ring into the ledger over BLE (or the simulated
//! pendant), then finding the speech in it.
//!
//! [`LedgerSink`] is the session's [`DurableSink`]: every `persist` is one
//! [`Ledger::add_ring_records`] (bytes durable first, then one transaction
//! with the capture, its seqs, its record index and the resume point), so the
//! session only sends ADVANCE for audio the ledger already holds, and a
//! killed pull resumes from the ledger with nothing lost and nothing stored
//! twice. [`pull`] runs the session with progress events (bytes, for KB/s
//! and ETA); finding the speech in what arrived is the job's next stage
//! ([`super::analyze`]), even when the pull failed half-way. What the
//! pendant said about itself (INFO, the status characteristic) and the
//! newest record the pull brought are kept as the device's last report
//! ([`crate::store::device_reports`]). [`device_status`] reads the status
//! characteristic and INFO without changing anything on the pendant.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::auto::Pulled;
use super::ctx::Ctx;
use super::events::{Event, LinkState, Origin, Stage, Unit};
use super::report::StageReport;
use crate::audio::Codec;
use crate::cancel::Cancel;
use crate::clock::UtcMillis;
use crate::device::link::{Connector, GattLink, LinkError};
use crate::device::record::{RECORD_BYTES, Record, RecordTime};
use crate::device::ring::{Info, StorageStatus};
use crate::device::session::{
    Discard, DurableSink, InfoError, LinkEvent, Progress, PullError, PullObserver, PullOptions,
    ResumePoint, SinkError, read_info,
};
use crate::store::{DeviceReport, Ledger, NewestRecord, RingBatch, StoreError};

/// What the ledger did with everything a pull handed it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// Records stored now.
    pub new_records: u64,
    /// Records whose seqs the ledger already held.
    pub already_stored: u64,
    /// Records already held with the same content from another ring.
    pub duplicates: u64,
    /// Captures created.
    pub captures: u64,
}

/// The ledger as the session's durable sink (see the module docs).
pub struct LedgerSink<'l> {
    ledger: &'l mut Ledger,
    origin: String,
    codec: Codec,
    /// Totals so far.
    pub stored: Stored,
    /// The ledger error that stopped the pull, with its full cause (the
    /// session keeps only its message).
    pub failure: Option<StoreError>,
    /// The newest record stored (or already held) so far.
    pub newest: Option<NewestRecord>,
}

impl<'l> LedgerSink<'l> {
    /// A sink storing pendant records (Opus as the pendant encodes it) with
    /// `origin` (`ble:ID`, `sim:PATH`, `image:PATH`).
    pub fn new(ledger: &'l mut Ledger, origin: impl Into<String>) -> Self {
        LedgerSink {
            ledger,
            origin: origin.into(),
            codec: Codec::PENDANT,
            stored: Stored::default(),
            failure: None,
            newest: None,
        }
    }

    /// The ledger.
    pub fn ledger(&mut self) -> &mut Ledger {
        self.ledger
    }

    /// Notes the last of `records` (from `first_seq`) as the newest, if it is.
    fn note_newest(&mut self, first_seq: u64, records: &[u8], received_at: UtcMillis) {
        let count = (records.len() / RECORD_BYTES) as u64;
        let Some(last) = count.checked_sub(1) else {
            return;
        };
        let seq = first_seq + last;
        if self.newest.is_some_and(|n| n.seq > seq) {
            return;
        }
        let Some(rec) = Record::parse(&records[last as usize * RECORD_BYTES..]) else {
            return;
        };
        let samples = rec.frames.len() as i64 * i64::from(self.codec.frame_samples());
        self.newest = Some(NewestRecord {
            seq,
            wall_start: match rec.time {
                RecordTime::Wall(t) => Some(UtcMillis::from_secs(i64::from(t))),
                _ => None,
            },
            duration_ms: samples * 1000 / i64::from(self.codec.sample_rate()),
            received_at,
        });
    }

    fn fail(&mut self, e: StoreError) -> SinkError {
        let err = SinkError::new(&e);
        self.failure = Some(e);
        err
    }
}

/// A human sentence for a discarded resume point.
pub fn discard_message(old: ResumePoint, why: &Discard) -> String {
    match why {
        Discard::RingReplaced { new_ring_id } => format!(
            "the pendant's ring was cleared or replaced{}; everything pulled before seq {} of the old ring \
             is kept, and the pull starts over on the new ring",
            new_ring_id.map_or(String::new(), |id| format!(" (new ring id {id:#x})")),
            old.durable_seq
        ),
        Discard::RecordsLost { seqs } => format!(
            "records {}..{} ({} records) were overwritten or freed on the pendant before they \
             were pulled: lost",
            seqs.start,
            seqs.end,
            seqs.end - seqs.start
        ),
    }
}

impl DurableSink for LedgerSink<'_> {
    fn persist(
        &mut self,
        device: &str,
        ring_id: Option<u64>,
        first_seq: u64,
        records: &[u8],
    ) -> Result<(), SinkError> {
        let captured_at = UtcMillis::now();
        let batch = RingBatch {
            device,
            ring_id,
            first_seq,
            records,
            codec: self.codec,
            origin: &self.origin,
            captured_at,
        };
        match self.ledger.add_ring_records(&batch) {
            Ok(s) => {
                self.note_newest(first_seq, records, captured_at);
                self.stored.new_records += s.new_records;
                self.stored.already_stored += s.already_stored;
                self.stored.duplicates += s.duplicates;
                self.stored.captures += s.captures.len() as u64;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn resume_point(&self, device: &str) -> Result<Option<ResumePoint>, SinkError> {
        self.ledger
            .ring_resume_point(device)
            .map_err(SinkError::new)
    }

    fn discard_resume_point(
        &mut self,
        device: &str,
        old: ResumePoint,
        why: &Discard,
    ) -> Result<(), SinkError> {
        let new_ring = matches!(why, Discard::RingReplaced { .. });
        match self
            .ledger
            .discard_ring_resume_point(device, new_ring, &discard_message(old, why))
        {
            Ok(()) => Ok(()),
            Err(e) => Err(self.fail(e)),
        }
    }
}

/// A connector under another device key (`pull --name`).
pub struct Renamed<'c> {
    inner: &'c mut dyn Connector,
    name: String,
}

impl<'c> Renamed<'c> {
    /// `inner`, known in the ledger as `name`.
    pub fn new(inner: &'c mut dyn Connector, name: impl Into<String>) -> Self {
        Renamed {
            inner,
            name: name.into(),
        }
    }
}

impl Connector for Renamed<'_> {
    fn device_id(&self) -> String {
        self.name.clone()
    }

    fn connect(&mut self, cancel: &Cancel) -> Result<Box<dyn GattLink>, LinkError> {
        self.inner.connect(cancel)
    }
}

/// How the link went, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LinkSummary {
    /// Distinct records received.
    pub records_received: u64,
    /// DATA bytes received (re-sent ones included).
    pub bytes_received: u64,
    /// Bytes received more than once (after drops).
    pub resent_bytes: u64,
    /// Seqs persisted in the final ring, `[start, end)`.
    pub seq_range: Option<[u64; 2]>,
    /// The ring id (custody firmware), hex.
    pub ring_id: Option<String>,
    /// Whether custody v1 was granted.
    pub custody: bool,
    /// The seq the pendant freed everything before (the last ADVANCE it acknowledged).
    pub advanced_to: Option<u64>,
    /// Records still unread on the pendant afterwards.
    pub unread_on_device: u64,
    /// Records the pendant dropped (overwritten before they were read), from INFO.
    pub dropped_on_device: Option<u64>,
    /// Connections made.
    pub connections: u32,
    /// Drops and timeouts survived.
    pub drops: u32,
    /// READs retried because storage was busy.
    pub busy_retries: u32,
    /// The ring was cleared or replaced since the last pull.
    pub ring_replaced: bool,
    /// The ATT MTU of the last connection.
    pub mtu: u16,
    /// Whether the pendant's DONE carries a CRC-32 of each transfer (the
    /// newest firmware line); `None` if no READ finished.
    pub done_crc: Option<bool>,
    /// Transfers whose CRC-32 matched.
    pub crc_verified: u32,
    /// Transfers whose CRC-32 did not match: nothing of them was stored or
    /// freed, and they were read again.
    pub crc_mismatches: u32,
    /// The pull was stopped on request before it finished (what arrived and
    /// could be verified is kept; nothing past it was freed).
    pub cancelled: bool,
    /// Wall time of the transfer, seconds.
    pub elapsed_s: f64,
    /// Distinct record bytes per second, in KB/s.
    pub kb_per_s: f64,
}

/// What a pull did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PullSummary {
    /// The device key in the ledger.
    pub device: String,
    /// Where the records came from.
    pub origin: String,
    /// What the ledger stored.
    pub stored: Stored,
    /// The transfer.
    pub link: LinkSummary,
    /// Things worth telling the person, in order.
    pub notes: Vec<String>,
    /// Why the pull stopped early, if it did (what arrived is kept).
    pub error: Option<String>,
}

/// Why a pull stopped, for the exit code.
#[derive(Debug)]
pub enum PullStop {
    /// The session failed (the summary says what arrived before).
    Session(PullError),
    /// The ledger failed.
    Ledger(StoreError),
}

/// The engine's view of a pull: progress as [`Stage::Pull`] events in
/// bytes, link changes as [`Event::Link`].
struct Watch<'c, 'a> {
    ctx: &'c Ctx<'a>,
    device: String,
    announced: u64,
}

impl PullObserver for Watch<'_, '_> {
    fn progress(&mut self, p: &Progress) {
        let total = p.total_records * RECORD_BYTES as u64;
        if total != self.announced {
            if self.announced == 0 {
                self.ctx.emit(Event::StageStarted {
                    stage: Stage::Pull,
                    total,
                    unit: Unit::Bytes,
                });
            }
            self.announced = total;
        }
        self.ctx.emit(Event::Progress {
            stage: Stage::Pull,
            done: (p.records * RECORD_BYTES as u64).min(total),
            total,
        });
    }

    fn link(&mut self, event: &LinkEvent) {
        let state = match event {
            LinkEvent::Connecting { attempt } => LinkState::Connecting { attempt: *attempt },
            LinkEvent::Connected { mtu } => LinkState::Connected { mtu: *mtu },
            LinkEvent::Dropped { reason } => LinkState::Dropped {
                reason: reason.clone(),
            },
            LinkEvent::Reconnecting { after } => LinkState::Reconnecting {
                after_ms: after.as_millis() as u64,
            },
            LinkEvent::Closed => LinkState::Closed,
        };
        self.ctx.emit(Event::Link {
            device: self.device.clone(),
            state,
        });
    }
}

/// Pulls through `connector` into the ledger, reporting progress as
/// [`Stage::Pull`] events in bytes and the link's states as
/// [`Event::Link`]; the job's cancel token stops it within a fraction of a
/// second. The summary is returned even when the pull stopped early, with
/// the reason (or `cancelled`).
pub fn pull(
    ledger: &mut Ledger,
    connector: &mut dyn Connector,
    origin: &str,
    opts: &PullOptions,
    ctx: &Ctx,
) -> (PullSummary, Option<PullStop>) {
    let device = connector.device_id();
    let started = Instant::now();
    let mut watch = Watch {
        ctx,
        device: device.clone(),
        announced: 0,
    };
    let mut sink = LedgerSink::new(ledger, origin);
    let result = crate::device::session::pull(connector, &mut sink, opts, ctx.cancel(), &mut watch);
    let (report, stop) = match result {
        Ok(r) => (r, None),
        Err(failed) => {
            let stop = match (&failed.error, sink.failure.take()) {
                (PullError::Sink(_), Some(e)) => PullStop::Ledger(e),
                (e, _) => PullStop::Session(e.clone()),
            };
            (failed.report, Some(stop))
        }
    };
    let stored = sink.stored.clone();
    let newest = sink.newest;
    let mut notes = report.notes.clone();
    if let Some(last) = last_report(&report, origin, newest)
        && let Err(e) = ledger.set_device_report(&last)
    {
        notes.push(format!("the pendant's report could not be kept: {e}"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    let distinct = report.records_received * RECORD_BYTES as u64;
    for n in &notes {
        ctx.emit(Event::Warning {
            origin: Origin::Device { id: device.clone() },
            message: n.clone(),
        });
    }
    let link = LinkSummary {
        records_received: report.records_received,
        bytes_received: report.bytes_received,
        resent_bytes: report.resent_bytes,
        seq_range: report.seq_range.as_ref().map(|r| [r.start, r.end]),
        ring_id: report.ring_id.map(|r| format!("{r:#018x}")),
        custody: report.custody.is_some(),
        advanced_to: report.advanced_to,
        unread_on_device: report.unread_on_device,
        dropped_on_device: report.info.map(|i| i.dropped),
        connections: report.connections,
        drops: report.drops,
        busy_retries: report.busy_retries,
        ring_replaced: report.ring_replaced,
        mtu: report.mtu,
        done_crc: report.done_crc,
        crc_verified: report.crc_verified,
        crc_mismatches: report.crc_mismatches,
        cancelled: report.cancelled,
        elapsed_s: elapsed,
        kb_per_s: if elapsed > 0.0 {
            distinct as f64 / 1000.0 / elapsed
        } else {
            0.0
        },
    };
    let error = stop.as_ref().map(|s| match s {
        PullStop::Session(e) => e.to_string(),
        PullStop::Ledger(e) => e.to_string(),
    });
    let summary = PullSummary {
        device,
        origin: origin.to_string(),
        stored,
        link,
        notes,
        error,
    };
    ctx.stage_finished(
        started,
        StageReport::Pull(Box::new(Pulled::Pendant(summary.clone()))),
    );
    (summary, stop)
}

/// The device's last report from a pull's `report` (none if no INFO came).
fn last_report(
    report: &crate::device::session::PullReport,
    origin: &str,
    newest: Option<NewestRecord>,
) -> Option<DeviceReport> {
    let info = report.info?;
    let read_at = report.info_at?;
    Some(DeviceReport {
        device: report.device.clone(),
        origin: origin.to_string(),
        read_at,
        connected_at: report.connected_at.unwrap_or(read_at),
        info,
        status: report.status,
        clock_written: report.time_written,
        done_crc: report.done_crc,
        unread_after: Some(report.unread_on_device),
        newest,
    })
}

/// A pendant's storage as it reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceStatus {
    /// The device key.
    pub device: String,
    /// Ring capacity in records.
    pub capacity_records: u64,
    /// Records not yet freed (`write_seq - read_seq`).
    pub unread_records: u64,
    /// How full the ring is, 0-100.
    pub fill_percent: f64,
    /// About how much audio the unread records hold, seconds (10 records a second).
    pub unread_audio_s: f64,
    /// Records overwritten or declared lost since the ring began.
    pub dropped_records: u64,
    /// Whether the pendant's clock is set (status characteristic).
    pub clock_valid: Option<bool>,
    /// The ring id (custody firmware), hex.
    pub ring_id: Option<String>,
    /// Oldest unread seq.
    pub read_seq: u64,
    /// One past the newest seq.
    pub write_seq: u64,
    /// Bytes in use and free (status characteristic).
    pub used_bytes: Option<u32>,
    /// Free bytes (status characteristic).
    pub free_bytes: Option<u32>,
    /// The ATT MTU.
    pub mtu: u16,
}

impl DeviceStatus {
    fn new(device: String, info: &Info, status: Option<StorageStatus>, mtu: u16) -> Self {
        let unread = info.unread();
        DeviceStatus {
            device,
            capacity_records: info.capacity as u64,
            unread_records: unread,
            fill_percent: crate::device::fill::percent(unread, info.capacity as u64),
            unread_audio_s: unread as f64 / 10.0,
            dropped_records: info.dropped,
            clock_valid: status.map(|s| s.clock_valid),
            ring_id: info.ring_id().map(|r| format!("{r:#018x}")),
            read_seq: info.read_seq,
            write_seq: info.write_seq,
            used_bytes: status.map(|s| s.used_bytes),
            free_bytes: status.map(|s| s.free_bytes),
            mtu,
        }
    }
}

/// Reads the status characteristic and INFO (after the MTU exchange INFO
/// needs). Writes nothing but the MTU request and the INFO command: no
/// time, no ADVANCE, no CLEAR.
pub fn device_status(
    connector: &mut dyn Connector,
    timeout: Duration,
    cancel: &Cancel,
) -> Result<DeviceStatus, InfoError> {
    let mut link = connector.connect(cancel)?;
    let result = (|| {
        let mtu = link.request_mtu(PullOptions::default().mtu)?;
        let status = StorageStatus::decode(&link.read_status()?).ok();
        let info = read_info(link.as_mut(), mtu, timeout, cancel)?;
        Ok(DeviceStatus::new(connector.device_id(), &info, status, mtu))
    })();
    let _ = link.disconnect();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::session::TimeSync;
    use crate::device::sim::SimPendant;
    use crate::device::usb::Variant;
    use crate::device::usb::fixture::{FixtureBuilder, FixtureClock, fixture_records};

    /// A pull from `conn` into `ledger` as the tests run it: a fixed clock,
    /// no waiting between reconnects, batches of 100, one VAD worker.
    fn pull_from(ledger: &mut Ledger, conn: &mut dyn Connector) -> (PullSummary, Option<PullStop>) {
        let opts = PullOptions {
            time_sync: TimeSync::At(1_717_300_000),
            reconnect_backoff: Duration::ZERO,
            busy_backoff: Duration::ZERO,
            max_reconnects: 20,
            batch_records: 100,
            ..PullOptions::default()
        };
        pull(ledger, conn, "sim:test", &opts, &Ctx::default())
    }

    fn image(records: u64) -> Vec<u8> {
        let mut b = FixtureBuilder::new(Variant::C, 64).unwrap();
        b.record(records, 36).unwrap();
        b.finish()
    }

    /// Every record the ledger holds for `device`, by seq, from its captures.
    fn ledger_records(ledger: &Ledger, device: &str) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        for stream in ledger.ring_streams(device).unwrap() {
            for span in ledger.ring_spans(stream).unwrap() {
                let c = ledger.capture(span.capture_id).unwrap();
                let bytes = ledger.capture_bytes(&c).unwrap();
                for (i, r) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
                    out.push((span.seqs.start + i as u64, r.to_vec()));
                }
            }
        }
        out
    }

    #[test]
    fn drops_lose_nothing_and_store_nothing_twice_and_advance_only_durable_data() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let sim = SimPendant::from_image(image(1000), "drop-random=40000,seed=3,mtu=100").unwrap();
        let data_dir = dir.path().to_path_buf();
        // Every ADVANCE must be at or below what the ledger holds durably.
        sim.on_advance(move |ev| {
            let l = crate::store::LedgerReader::open(&data_dir).unwrap();
            let durable = l
                .ring_resume_point("sim:sim")
                .unwrap()
                .map_or(0, |r| r.durable_seq);
            assert!(
                ev.seq <= durable,
                "ADVANCE to {} past durable {durable}",
                ev.seq
            );
        });
        let mut conn = sim.clone();
        let (summary, stop) = pull_from(&mut ledger, &mut conn);
        assert!(stop.is_none(), "{:?}", summary.error);
        assert!(summary.link.drops > 3, "{:?}", summary.link);
        assert_eq!(summary.stored.new_records, 1000);
        let got = ledger_records(&ledger, "sim:sim");
        let want = fixture_records(0, 0..1000, FixtureClock::Wall);
        assert_eq!(got.len(), 1000);
        for (i, (seq, rec)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64);
            assert_eq!(&rec[..], &want[i * RECORD_BYTES..(i + 1) * RECORD_BYTES]);
        }
        assert_eq!(sim.metadata().read_seq, 1000);
        // Again: nothing new.
        let (again, _) = pull_from(&mut ledger, &mut conn);
        assert_eq!(again.stored.new_records, 0);
    }

    #[test]
    fn a_failing_ledger_stops_the_pull_and_frees_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        // The captures directory cannot be created: a file is in its way.
        std::fs::write(dir.path().join("captures"), b"in the way").unwrap();
        let sim = SimPendant::from_image(image(300), "").unwrap();
        let mut conn = sim.clone();
        let (summary, stop) = pull_from(&mut ledger, &mut conn);
        assert!(matches!(stop, Some(PullStop::Ledger(_))), "{stop:?}");
        assert!(summary.error.unwrap().contains("captures"));
        assert!(sim.advances().is_empty());
        assert_eq!(sim.metadata().read_seq, 0);
    }

    #[test]
    fn link_states_reach_the_events_and_a_cancel_is_in_the_summary() {
        use crate::engine::events::{Collect, JobId};
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let sim = SimPendant::from_image(image(1000), "drop-at=20000,mtu=100,delay-ms=1").unwrap();
        let events = Collect::new();
        let cancel = Cancel::new();
        let ctx = Ctx::new(
            JobId(3),
            &events,
            cancel.clone(),
            &crate::clock::SystemClock,
        );
        let stopper = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(2500));
            cancel.cancel();
        });
        let mut conn = sim.clone();
        let opts = PullOptions {
            time_sync: TimeSync::At(1_717_300_000),
            reconnect_backoff: Duration::ZERO,
            ..PullOptions::default()
        };
        let (summary, stop) = pull(&mut ledger, &mut conn, "sim:test", &opts, &ctx);
        stopper.join().unwrap();
        assert!(stop.is_none(), "{:?}", summary.error);
        assert!(summary.link.cancelled, "{:?}", summary.link);
        assert!(summary.stored.new_records < 1000);
        let links: Vec<LinkState> = events
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Link { device, state } => {
                    assert_eq!(device, "sim:sim");
                    Some(state)
                }
                _ => None,
            })
            .collect();
        assert!(matches!(&links[2], LinkState::Dropped { reason } if reason.contains("dropped")));
        assert_eq!(
            links[..2],
            [
                LinkState::Connecting { attempt: 1 },
                LinkState::Connected { mtu: 100 }
            ]
        );
        assert_eq!(
            links[3..],
            [
                LinkState::Reconnecting { after_ms: 0 },
                LinkState::Connecting { attempt: 2 },
                LinkState::Connected { mtu: 100 },
                LinkState::Closed
            ]
        );
        // Nothing freed past what the ledger holds.
        let durable = ledger
            .ring_resume_point("sim:sim")
            .unwrap()
            .unwrap()
            .durable_seq;
        assert!(sim.metadata().read_seq <= durable);
    }

    #[test]
    fn a_pull_keeps_the_pendants_report_and_its_newest_record() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let sim = SimPendant::from_image(image(500), "").unwrap();
        let mut conn = sim.clone();
        let before = UtcMillis::now();
        let (summary, stop) = pull_from(&mut ledger, &mut conn);
        assert!(stop.is_none(), "{:?}", summary.error);
        let r = ledger.device_report("sim:sim").unwrap().unwrap();
        assert_eq!(r.origin, "sim:test");
        assert!(r.read_at >= r.connected_at && r.connected_at >= before);
        assert_eq!((r.info.read_seq, r.info.write_seq), (0, 500));
        assert_eq!(r.info.capacity, 64 * 36);
        assert_eq!(r.info.packet_bytes as usize, RECORD_BYTES);
        assert!(r.info.custody.is_some_and(|c| c.ring_id != 0));
        let st = r.status.unwrap();
        assert_eq!(st.unread_packets, 500);
        assert_eq!(st.used_bytes as usize, 500 * RECORD_BYTES);
        assert!(st.clock_valid && r.clock_written);
        assert_eq!(r.unread_after, Some(0));
        let newest = r.newest.unwrap();
        assert_eq!(newest.seq, 499);
        let want = crate::device::usb::fixture::fixture_time(499, FixtureClock::Wall);
        assert_eq!(
            newest.wall_start,
            Some(UtcMillis::from_secs(i64::from(want)))
        );
        assert!(newest.duration_ms > 0 && newest.received_at >= r.read_at);
        // The fixture recorded in 2024: long before this connect.
        assert!(matches!(
            r.skew(),
            crate::store::Skew::Unknown(crate::store::device_reports::NoSkew::StoppedBefore { .. })
        ));
        // Nothing new: the report is replaced, with no newest record.
        pull_from(&mut ledger, &mut conn);
        let again = ledger.device_report("sim:sim").unwrap().unwrap();
        assert_eq!((again.info.read_seq, again.newest), (500, None));
    }

    #[test]
    fn a_pendant_recording_up_to_the_connect_gives_a_skew_estimate() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let mut b = FixtureBuilder::new(Variant::C, 64).unwrap();
        b.record(100, 36).unwrap();
        // The last record was stamped just now by a clock 30 s ahead.
        let ahead = (UtcMillis::now().as_secs() + 30) as u32;
        let frames = crate::device::usb::fixture::fixture_frames(b.epoch(), 100);
        let frames: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
        let (rec, _) = crate::device::record::build_record(ahead, &frames);
        b.writer().append(&rec).unwrap();
        let sim = SimPendant::from_image(b.finish(), "").unwrap();
        let mut conn = sim.clone();
        let (summary, stop) = pull_from(&mut ledger, &mut conn);
        assert!(stop.is_none(), "{:?}", summary.error);
        let r = ledger.device_report("sim:sim").unwrap().unwrap();
        match r.skew() {
            crate::store::Skew::Estimate { lower_ms, upper_ms } => {
                assert!((28_000..=31_000).contains(&lower_ms), "{lower_ms}");
                assert_eq!(
                    upper_ms - lower_ms,
                    crate::store::device_reports::SKEW_SLACK_MS
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn status_reads_without_changing_anything() {
        let img = image(500);
        let sim = SimPendant::from_image(img.clone(), "").unwrap();
        let mut conn = sim.clone();
        let st = device_status(&mut conn, Duration::from_secs(1), &Cancel::new()).unwrap();
        assert_eq!(st.unread_records, 500);
        assert_eq!(st.capacity_records, 64 * 36);
        assert!(st.ring_id.is_some());
        assert_eq!(sim.image().unwrap(), img);
    }
}
