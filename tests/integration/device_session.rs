//! The BLE transfer against the simulated pendant: exactly-once delivery into
//! the durable sink across drops, sink failures and ring replacements, and
//! ADVANCE never past durable data.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omi_sync::cancel::Cancel;
use omi_sync::device::link::Connector;
use omi_sync::device::record::{CLOCK_NOT_SET_BIT, RECORD_BYTES};
use omi_sync::device::ring::Command;
use omi_sync::device::session::{
    Discard, DurableSink, LinkEvent, MemorySink, PullError, PullObserver, PullOptions, PullReport,
    Quiet, ResumePoint, SinkError, TimeSync, pull,
};
use omi_sync::device::sim::HostOp;
use omi_sync::device::sim::SimPendant;
use omi_sync::device::usb::fixture::{FixtureBuilder, FixtureClock, fixture_ids, fixture_record};
use omi_sync::device::usb::{ImageReader, Variant};

/// Options for fast tests: no real waiting.
fn fast() -> PullOptions {
    PullOptions {
        batch_records: 50,
        busy_backoff: Duration::from_millis(1),
        reconnect_backoff: Duration::ZERO,
        time_sync: TimeSync::At(1_717_300_000),
        first_data_timeout: Duration::from_millis(500),
        progress_timeout: Duration::from_millis(500),
        command_timeout: Duration::from_millis(500),
        max_reconnects: 3,
        ..PullOptions::default()
    }
}

/// A variant C ring of 40 slots holding records `read..write` after some
/// wrap-around: 1 000 unread records.
fn ring_image(variant: Variant) -> Vec<u8> {
    let mut b = FixtureBuilder::new(variant, 40).unwrap();
    b.record(1_500, 20).unwrap();
    b.advance(500).unwrap();
    b.finish()
}

/// A sink that mirrors its durable seq into an atomic the pendant's ADVANCE
/// observer can check, and can fail on demand.
struct CheckedSink {
    inner: MemorySink,
    durable: Arc<AtomicU64>,
    /// Fail the n-th persist call (1-based)…
    fail_at: Option<u64>,
    /// …after making the records durable (a crash between fsync and reply).
    fail_after_durable: bool,
    calls: u64,
}

impl CheckedSink {
    fn new(durable: Arc<AtomicU64>) -> Self {
        CheckedSink {
            inner: MemorySink::keeping_bytes(),
            durable,
            fail_at: None,
            fail_after_durable: false,
            calls: 0,
        }
    }
}

impl DurableSink for CheckedSink {
    fn persist(
        &mut self,
        device: &str,
        ring_id: Option<u64>,
        first_seq: u64,
        records: &[u8],
    ) -> Result<(), SinkError> {
        self.calls += 1;
        if self.fail_at == Some(self.calls) {
            if self.fail_after_durable {
                self.inner.persist(device, ring_id, first_seq, records)?;
                self.durable.store(
                    first_seq + (records.len() / RECORD_BYTES) as u64,
                    Ordering::SeqCst,
                );
            }
            return Err(SinkError::new("disk full (injected)"));
        }
        self.inner.persist(device, ring_id, first_seq, records)?;
        self.durable.store(
            first_seq + (records.len() / RECORD_BYTES) as u64,
            Ordering::SeqCst,
        );
        Ok(())
    }

    fn resume_point(&self, device: &str) -> Result<Option<ResumePoint>, SinkError> {
        self.inner.resume_point(device)
    }

    fn discard_resume_point(
        &mut self,
        device: &str,
        old: ResumePoint,
        why: &Discard,
    ) -> Result<(), SinkError> {
        self.durable.store(0, Ordering::SeqCst);
        self.inner.discard_resume_point(device, old, why)
    }
}

/// Installs an observer that records every ADVANCE past the durable seq.
fn watch_advances(sim: &SimPendant, durable: &Arc<AtomicU64>) -> Arc<Mutex<Vec<String>>> {
    let violations = Arc::new(Mutex::new(Vec::new()));
    let (d, v) = (Arc::clone(durable), Arc::clone(&violations));
    sim.on_advance(move |ev| {
        let durable = d.load(Ordering::SeqCst);
        if ev.seq > durable {
            v.lock()
                .unwrap()
                .push(format!("ADVANCE to {} with durable {durable}", ev.seq));
        }
    });
    violations
}

/// Checks the sink holds `range` of ring `epoch` exactly once, in order,
/// byte for byte (with clock-not-set applied to `cns`).
fn assert_exactly_once(sink: &MemorySink, device: &str, range: std::ops::Range<u64>, epoch: u64) {
    let got = sink.records_of(device);
    let seqs: Vec<u64> = got.iter().map(|(_, s, _)| *s).collect();
    let want: Vec<u64> = range.clone().collect();
    assert_eq!(seqs.len(), want.len(), "record count");
    assert_eq!(seqs, want, "every record exactly once, in order");
    for (_, seq, bytes) in got {
        assert_eq!(
            bytes,
            &fixture_record(epoch, seq, FixtureClock::Wall)[..],
            "record {seq} content"
        );
    }
}

#[test]
fn a_clean_pull_takes_everything_and_frees_it() {
    let sim = SimPendant::from_image(ring_image(Variant::C), "").unwrap();
    let before = sim.metadata();
    assert_eq!((before.read_seq, before.write_seq), (500, 1_500));
    let durable = Arc::new(AtomicU64::new(0));
    let violations = watch_advances(&sim, &durable);
    let mut sink = CheckedSink::new(Arc::clone(&durable));
    let mut conn = sim.clone();
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_exactly_once(&sink.inner, &conn.device_id(), 500..1_500, 0);
    assert_eq!(report.records_received, 1_000);
    assert_eq!(report.records_persisted, 1_000);
    assert_eq!(report.seq_range, Some(500..1_500));
    assert_eq!(report.advanced_to, Some(1_500));
    assert_eq!(report.resent_bytes, 0);
    assert_eq!(report.ring_id, Some(fixture_ids(0).0));
    assert!(report.custody.is_some());
    assert_eq!(report.unread_on_device, 0);
    assert!(violations.lock().unwrap().is_empty());
    // Persisted into the image as a new metadata record, keeping the ring id.
    let after = sim.metadata();
    assert_eq!(after.read_seq, 1_500);
    assert!(after.generation > before.generation);
    assert_eq!(after.ring_id, before.ring_id);
    let reread = ImageReader::open(std::io::Cursor::new(sim.image().unwrap())).unwrap();
    assert_eq!(reread.scan().metadata.read_seq, 1_500);
    // ADVANCE_ID was used under custody.
    assert!(sim.advances().iter().all(|a| a.ring_id == before.ring_id));
    // A second pull finds nothing new and sends nothing.
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.records_received, 0);
    assert_eq!(sink.inner.records, 1_000);
}

#[test]
fn drops_at_a_hundred_points_deliver_every_record_exactly_once() {
    let image = ring_image(Variant::C);
    let total_bytes = 1_000 * RECORD_BYTES as u64;
    let mut resent_max = 0;
    for i in 0..100u64 {
        // Deterministic drop points spread over the stream, 1-3 drops each.
        let a = (i * 4_447 + 13 * i * i) % total_bytes;
        let b = (a + 97_003 + i * 1_009) % total_bytes;
        let spec = match i % 4 {
            0 => format!("drop-at={a}"),
            1 => format!("drop-at={a},drop-at={b}"),
            2 => format!("drop-random={},seed={i}", 60_000 + i * 1_000),
            _ => format!("drop-at={a},mtu={}", 44 + (i as u16 * 37) % 473),
        };
        let sim = SimPendant::from_image(image.clone(), &spec).unwrap();
        let durable = Arc::new(AtomicU64::new(0));
        let violations = watch_advances(&sim, &durable);
        let mut sink = CheckedSink::new(Arc::clone(&durable));
        let mut conn = sim.clone();
        let mut opts = fast();
        opts.advance_every_records = Some(200);
        opts.max_reconnects = 10;
        let report = pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet)
            .unwrap_or_else(|e| panic!("spec {spec}: {e}"));
        assert_exactly_once(&sink.inner, &conn.device_id(), 500..1_500, 0);
        assert!(
            violations.lock().unwrap().is_empty(),
            "spec {spec}: {:?}",
            violations.lock().unwrap()
        );
        assert_eq!(sim.metadata().read_seq, 1_500, "spec {spec}");
        assert_eq!(report.records_received, 1_000, "spec {spec}");
        if report.drops > 0 {
            resent_max = resent_max.max(report.resent_bytes / report.drops as u64);
        }
        assert!(
            report.resent_bytes < report.drops as u64 * RECORD_BYTES as u64 + 1,
            "spec {spec}: re-sent {} bytes over {} drops",
            report.resent_bytes,
            report.drops
        );
    }
    // Each drop re-sends at most the partial record in flight.
    assert!(resent_max < RECORD_BYTES as u64);
}

#[test]
fn drop_every_n_bytes_still_completes() {
    let sim = SimPendant::from_image(ring_image(Variant::C), "drop-every=4096,mtu=44").unwrap();
    let mut sink = MemorySink::keeping_bytes();
    let mut conn = sim.clone();
    let mut opts = fast();
    opts.max_reconnects = 2;
    let report = pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap();
    assert_exactly_once(&sink, &conn.device_id(), 500..1_500, 0);
    assert!(report.drops >= 100, "{} drops", report.drops);
    assert_eq!(sim.metadata().read_seq, 1_500);
}

#[test]
fn a_lost_advance_is_resent_on_reconnect_when_the_ring_id_matches() {
    let sim = SimPendant::from_image(ring_image(Variant::C), "drop-on-advance").unwrap();
    let durable = Arc::new(AtomicU64::new(0));
    let violations = watch_advances(&sim, &durable);
    let mut sink = CheckedSink::new(Arc::clone(&durable));
    let mut conn = sim.clone();
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.connections, 2);
    assert_eq!(report.advanced_to, Some(1_500));
    assert_eq!(sim.metadata().read_seq, 1_500);
    assert_exactly_once(&sink.inner, &conn.device_id(), 500..1_500, 0);
    assert!(violations.lock().unwrap().is_empty());
}

#[test]
fn a_failing_sink_loses_and_duplicates_nothing() {
    let image = ring_image(Variant::C);
    for (k, after) in [
        (1, false),
        (3, false),
        (3, true),
        (7, true),
        (20, false),
        (20, true),
    ] {
        let sim = SimPendant::from_image(image.clone(), "").unwrap();
        let durable = Arc::new(AtomicU64::new(0));
        let violations = watch_advances(&sim, &durable);
        let mut sink = CheckedSink::new(Arc::clone(&durable));
        sink.fail_at = Some(k);
        sink.fail_after_durable = after;
        let mut conn = sim.clone();
        let mut opts = fast();
        opts.advance_every_records = Some(100);
        let err = pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap_err();
        assert!(matches!(err.error, PullError::Sink(_)), "{err}");
        // The pendant was never advanced past what the sink holds.
        assert!(sim.metadata().read_seq <= durable.load(Ordering::SeqCst).max(500));
        // A new session with a working sink (the same ledger) finishes the job.
        sink.fail_at = None;
        let report = pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap();
        assert_exactly_once(&sink.inner, &conn.device_id(), 500..1_500, 0);
        assert!(violations.lock().unwrap().is_empty(), "k={k}");
        assert_eq!(sim.metadata().read_seq, 1_500);
        assert_eq!(report.advanced_to, Some(1_500), "k={k}");
    }
}

#[test]
fn a_session_stopped_midway_resumes_without_loss() {
    // The cancel token fires at different points (as Ctrl-C would); the
    // next session continues from the durable seq.
    let image = ring_image(Variant::C);
    for stop_after in [1u32, 2, 5, 9] {
        let sim = SimPendant::from_image(image.clone(), "mtu=64").unwrap();
        let mut sink = MemorySink::keeping_bytes();
        let mut conn = sim.clone();
        let cancel = Cancel::new();
        let mut calls = 0;
        let mut stop = |_: &omi_sync::device::session::Progress| {
            calls += 1;
            if calls == stop_after {
                cancel.cancel();
            }
        };
        let first = pull(&mut conn, &mut sink, &fast(), &cancel.clone(), &mut stop).unwrap();
        assert!(first.cancelled);
        assert!(first.records_persisted < 1_000);
        assert!(sim.metadata().read_seq <= 500 + first.records_persisted);
        let second = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
        assert_eq!(first.records_persisted + second.records_persisted, 1_000);
        assert_exactly_once(&sink, &conn.device_id(), 500..1_500, 0);
        assert_eq!(sim.metadata().read_seq, 1_500);
    }
}

#[test]
fn keep_on_device_leaves_the_image_byte_identical() {
    let image = ring_image(Variant::C);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ring.img");
    std::fs::write(&path, &image).unwrap();
    let sim = SimPendant::open(&path, "drop-every=50000").unwrap();
    let mut sink = MemorySink::keeping_bytes();
    let mut conn = sim.clone();
    let opts = PullOptions {
        keep_on_device: true,
        ..fast()
    };
    let report = pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.records_persisted, 1_000);
    assert_eq!(report.advanced_to, None);
    assert!(sim.advances().is_empty());
    drop(conn);
    drop(sim);
    assert_eq!(std::fs::read(&path).unwrap(), image);
    // Pulling again resumes from the ledger and finds nothing new.
    let sim = SimPendant::open(&path, "").unwrap();
    let mut conn = sim.clone();
    let report = pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.records_received, 0);
    assert_eq!(std::fs::read(&path).unwrap(), image);
}

#[test]
fn small_mtu_slow_notifications_and_busy_storage() {
    let mut b = FixtureBuilder::new(Variant::C, 8).unwrap();
    b.record(120, 36).unwrap();
    let sim = SimPendant::from_image(b.finish(), "mtu=44,delay-ms=1,busy-first-read=2").unwrap();
    let mut sink = MemorySink::keeping_bytes();
    let mut conn = sim.clone();
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.busy_retries, 2);
    assert_eq!(report.mtu, 44, "the smallest MTU INFO is answered at");
    assert!(report.notes.iter().any(|n| n.contains("status 9")));
    assert_exactly_once(&sink, &conn.device_id(), 0..120, 0);
    // 40 bytes a notification: the first READ asks for one record (to learn
    // whether DONE carries a CRC), the second for the rest.
    assert_eq!(
        sim.stats().data_notifications,
        444u64.div_ceil(40) + (119 * 444u64).div_ceil(40)
    );
}

#[test]
fn storage_that_stays_busy_is_an_error_naming_the_status() {
    let mut b = FixtureBuilder::new(Variant::C, 8).unwrap();
    b.record(40, 36).unwrap();
    let sim = SimPendant::from_image(b.finish(), "busy-first-read=99").unwrap();
    let mut sink = MemorySink::keeping_bytes();
    let mut conn = sim.clone();
    let err = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap_err();
    assert_eq!(
        err.error.to_string(),
        "READ refused: status 9 (storage not ready)"
    );
    assert!(err.to_string().contains("0 records persisted"));
    assert_eq!(sim.metadata().read_seq, 0);
}

#[test]
fn a_stalled_link_times_out_and_resumes() {
    let sim = SimPendant::from_image(
        ring_image(Variant::C),
        "stall-after=100000,live-mark-every=7",
    )
    .unwrap();
    let mut sink = MemorySink::keeping_bytes();
    let mut conn = sim.clone();
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.drops, 1);
    assert_eq!(report.connections, 2);
    assert_exactly_once(&sink, &conn.device_id(), 500..1_500, 0);
}

#[test]
fn a_cleared_ring_discards_the_resume_point_and_never_uses_the_stale_id() {
    let sim =
        SimPendant::from_image(ring_image(Variant::C), "cleared-between-sessions=50").unwrap();
    let old_id = sim.metadata().ring_id;
    let durable = Arc::new(AtomicU64::new(0));
    let violations = watch_advances(&sim, &durable);
    let mut sink = CheckedSink::new(Arc::clone(&durable));
    let mut conn = sim.clone();
    let device = conn.device_id();
    pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    let n_adv = sim.advances().len();
    // The next session finds a new ring (the pendant was cleared and recorded 50 records).
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    let new_id = sim.metadata().ring_id;
    assert_ne!(new_id, old_id);
    assert!(report.ring_replaced);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("cleared or replaced")),
        "{:?}",
        report.notes
    );
    assert_eq!(report.ring_id, new_id);
    assert_eq!(report.seq_range, Some(0..50));
    assert_eq!(sink.inner.discarded.len(), 1);
    assert_eq!(sink.inner.discarded[0].1.ring_id, old_id);
    let later = &sim.advances()[n_adv..];
    assert!(!later.is_empty());
    assert!(later.iter().all(|a| a.ring_id == new_id), "{later:?}");
    assert!(violations.lock().unwrap().is_empty());
    // The new ring's records, under the new id.
    let new_records: Vec<_> = sink
        .inner
        .records_of(&device)
        .into_iter()
        .filter(|(r, _, _)| *r == new_id)
        .map(|(_, s, _)| s)
        .collect();
    assert_eq!(new_records, (0..50).collect::<Vec<_>>());
    assert_eq!(sim.metadata().read_seq, 50);
}

#[test]
fn clock_not_set_records_arrive_as_they_are() {
    let mut b = FixtureBuilder::new(Variant::C, 8).unwrap();
    b.record_clock_not_set(60, 36).unwrap();
    b.record(40, 36).unwrap();
    let sim = SimPendant::from_image(b.finish(), "clock-not-set=70..80").unwrap();
    let mut sink = MemorySink::keeping_bytes();
    let mut conn = sim.clone();
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.status.map(|s| s.clock_valid), Some(false));
    let got = sink.records_of(&conn.device_id());
    assert_eq!(got.len(), 100);
    for (_, seq, bytes) in got {
        let t = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let not_set = seq < 60 || (70..80).contains(&seq);
        assert_eq!(t & CLOCK_NOT_SET_BIT != 0, not_set, "record {seq}");
        if seq < 60 {
            assert_eq!(bytes, &fixture_record(0, seq, FixtureClock::NotSet)[..]);
        }
    }
}

#[test]
fn firmware_without_custody_uses_plain_advance() {
    for (variant, spec) in [
        (Variant::A, ""),
        (Variant::B, ""),
        (Variant::C, "no-custody"),
    ] {
        let sim = SimPendant::from_image(ring_image(variant), spec).unwrap();
        let durable = Arc::new(AtomicU64::new(0));
        let violations = watch_advances(&sim, &durable);
        let mut sink = CheckedSink::new(Arc::clone(&durable));
        let mut conn = sim.clone();
        let mut opts = fast();
        opts.advance_every_records = Some(300);
        let report: PullReport =
            pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap();
        assert_eq!(report.ring_id, None, "{variant:?}");
        assert_eq!(report.custody, None);
        assert!(sim.advances().iter().all(|a| a.ring_id.is_none()));
        assert_exactly_once(&sink.inner, &conn.device_id(), 500..1_500, 0);
        assert_eq!(sim.metadata().read_seq, 1_500);
        assert!(violations.lock().unwrap().is_empty());
    }
}

#[test]
fn a_resume_point_from_an_earlier_run_is_honoured_and_its_advance_resent() {
    // The ledger holds 500..900 from a run that crashed before ADVANCE.
    let sim = SimPendant::from_image(ring_image(Variant::C), "").unwrap();
    let mut sink = MemorySink::keeping_bytes();
    let mut conn = sim.clone();
    let device = conn.device_id();
    sink.set_resume_point(
        &device,
        ResumePoint {
            ring_id: sim.metadata().ring_id,
            durable_seq: 900,
        },
    );
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.seq_range, Some(900..1_500));
    let adv = sim.advances();
    assert_eq!(adv[0].seq, 900, "the missed ADVANCE is re-sent first");
    assert_eq!(sim.metadata().read_seq, 1_500);
    // A resume point with a stale ring id is discarded, and no ADVANCE_ID uses it.
    let mut b = FixtureBuilder::new(Variant::C, 8).unwrap();
    b.record(30, 36).unwrap();
    let sim2 = SimPendant::from_image(b.finish(), "").unwrap();
    let mut sink2 = MemorySink::keeping_bytes();
    let mut conn2 = sim2.clone();
    sink2.set_resume_point(
        &conn2.device_id(),
        ResumePoint {
            ring_id: Some(0xDEAD),
            durable_seq: 10,
        },
    );
    let report = pull(&mut conn2, &mut sink2, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert!(report.ring_replaced);
    assert_eq!(report.seq_range, Some(0..30));
    assert!(sim2.advances().iter().all(|a| a.ring_id != Some(0xDEAD)));
}

#[test]
fn a_session_that_dies_mid_pull_loses_and_duplicates_nothing() {
    // The process "dies" inside persist (a panic unwinds through the session,
    // so nothing after that point runs: no flush, no ADVANCE), before or after
    // the batch became durable. A new session then finishes the job.
    let image = ring_image(Variant::C);
    for (k, after) in [(2u64, false), (2, true), (9, false), (13, true)] {
        let sim = SimPendant::from_image(image.clone(), "drop-at=150000").unwrap();
        let durable = Arc::new(AtomicU64::new(0));
        let violations = watch_advances(&sim, &durable);
        let sink = Mutex::new(CheckedSink::new(Arc::clone(&durable)));
        let mut conn = sim.clone();
        let mut opts = fast();
        opts.advance_every_records = Some(100);
        struct Dying<'a> {
            sink: &'a Mutex<CheckedSink>,
            k: u64,
            after: bool,
        }
        impl DurableSink for Dying<'_> {
            fn persist(
                &mut self,
                d: &str,
                r: Option<u64>,
                first: u64,
                recs: &[u8],
            ) -> Result<(), SinkError> {
                let mut s = self.sink.lock().unwrap_or_else(|e| e.into_inner());
                if s.calls + 1 == self.k {
                    if self.after {
                        s.persist(d, r, first, recs)?;
                    }
                    drop(s);
                    panic!("simulated crash");
                }
                s.persist(d, r, first, recs)
            }
            fn resume_point(&self, d: &str) -> Result<Option<ResumePoint>, SinkError> {
                self.sink
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .resume_point(d)
            }
        }
        let died = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut dying = Dying {
                sink: &sink,
                k,
                after,
            };
            pull(&mut conn, &mut dying, &opts, &Cancel::new(), &mut Quiet)
        }));
        assert!(died.is_err(), "the session died");
        sim.drop_link();
        let mut sink = sink.into_inner().unwrap_or_else(|e| e.into_inner());
        assert!(sim.metadata().read_seq <= durable.load(Ordering::SeqCst).max(500));
        pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap();
        assert_exactly_once(&sink.inner, &conn.device_id(), 500..1_500, 0);
        assert!(violations.lock().unwrap().is_empty());
        assert_eq!(sim.metadata().read_seq, 1_500);
    }
}

#[test]
fn a_ring_id_that_cannot_be_compared_frees_nothing() {
    // The ledger knows the ring by id; the pendant no longer reports custody.
    let sim = SimPendant::from_image(ring_image(Variant::C), "no-custody").unwrap();
    let mut sink = MemorySink::keeping_bytes();
    let mut conn = sim.clone();
    sink.set_resume_point(
        &conn.device_id(),
        ResumePoint {
            ring_id: Some(0x1234),
            durable_seq: 800,
        },
    );
    let report = pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(report.seq_range, Some(800..1_500));
    assert!(sim.advances().is_empty());
    assert_eq!(sim.metadata().read_seq, 500);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("cannot be compared"))
    );
}

#[test]
fn a_slow_link_persists_every_interval_and_a_fast_one_in_whole_batches() {
    let image = ring_image(Variant::C);
    // Slow: ~2 ms a notification, far below the batch size per interval.
    let mut slow = SimPendant::from_image(image.clone(), "delay-ms=2,mtu=247").unwrap();
    let mut sink = MemorySink::counting();
    let opts = PullOptions {
        batch_records: 100_000,
        persist_interval: Duration::from_millis(100),
        ..fast()
    };
    pull(&mut slow, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap();
    assert_eq!(sink.records, 1_000);
    assert!(sink.log.len() >= 5, "{} persists", sink.log.len());
    assert!(sink.log.iter().all(|p| p.count < 1_000));
    // Fast: the interval never passes, so only full batches (and the rest at DONE).
    let mut fast_pendant = SimPendant::from_image(image, "mtu=517").unwrap();
    let mut sink = MemorySink::counting();
    let opts = PullOptions {
        batch_records: 300,
        persist_interval: Duration::from_secs(3600),
        ..fast()
    };
    pull(
        &mut fast_pendant,
        &mut sink,
        &opts,
        &Cancel::new(),
        &mut Quiet,
    )
    .unwrap();
    let counts: Vec<u64> = sink.log.iter().map(|p| p.count).collect();
    assert_eq!(counts.iter().sum::<u64>(), 1_000);
    // The first READ asks for one record (to learn whether DONE carries a CRC).
    assert_eq!(counts[0], 1, "{counts:?}");
    assert!(
        counts[1..counts.len() - 1].iter().all(|c| *c >= 300),
        "{counts:?}"
    );
}

/// A pull of `ring_image` against `spec` with the advance watch: the report
/// (or error), the sink, and the pendant.
fn pull_watched(
    spec: &str,
    opts: &PullOptions,
    cancel: &Cancel,
) -> (
    Result<PullReport, Box<omi_sync::device::session::PullFailed>>,
    CheckedSink,
    SimPendant,
) {
    let sim = SimPendant::from_image(ring_image(Variant::C), spec).unwrap();
    let durable = Arc::new(AtomicU64::new(0));
    let violations = watch_advances(&sim, &durable);
    let mut sink = CheckedSink::new(durable);
    let mut conn = sim.clone();
    let r = pull(&mut conn, &mut sink, opts, cancel, &mut Quiet);
    assert!(
        violations.lock().unwrap().is_empty(),
        "{spec}: {violations:?}"
    );
    (r, sink, sim)
}

#[test]
fn with_the_crc_firmware_every_transfer_is_verified_before_it_is_stored() {
    let opts = PullOptions {
        batch_records: 50,
        ..fast()
    };
    let (r, sink, sim) = pull_watched("done-crc", &opts, &Cancel::new());
    let report = r.unwrap();
    assert_eq!(report.done_crc, Some(true));
    assert_exactly_once(&sink.inner, "sim:sim", 500..1_500, 0);
    // One record to learn the firmware line, then READs of 512.
    let counts: Vec<u64> = sink.inner.log.iter().map(|p| p.count).collect();
    assert_eq!(
        counts,
        vec![1, 512, 487],
        "persisted only at verified DONEs"
    );
    assert_eq!(report.crc_verified, 3);
    assert_eq!(report.crc_mismatches, 0);
    assert_eq!(sim.metadata().read_seq, 1_500);
    let reads: Vec<_> = sim
        .commands()
        .into_iter()
        .filter_map(|c| match c.op {
            HostOp::Command(Command::Read { start_seq, count }) => Some((start_seq, count)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reads,
        vec![(500, Some(1)), (501, Some(512)), (1_013, Some(512))]
    );
    // Firmware without the CRC: one record first, then everything at once.
    let (r, sink, sim) = pull_watched("", &opts, &Cancel::new());
    assert_eq!(r.unwrap().done_crc, Some(false));
    assert_exactly_once(&sink.inner, "sim:sim", 500..1_500, 0);
    assert_eq!(sim.stats().reads, 2);
}

#[test]
fn a_crc_mismatch_stores_and_frees_nothing_of_the_transfer_and_reads_it_again() {
    // Byte 100 000 of the stream lies in the second READ of 512 records.
    let (r, sink, sim) = pull_watched("done-crc,corrupt-at=100000", &fast(), &Cancel::new());
    let report = r.unwrap();
    assert_eq!(report.crc_mismatches, 1);
    assert_eq!(report.crc_verified, 3);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("does not match the CRC-32")),
        "{:?}",
        report.notes
    );
    // Byte for byte the pendant's records: the corrupt copy was never stored.
    assert_exactly_once(&sink.inner, "sim:sim", 500..1_500, 0);
    assert_eq!(sim.metadata().read_seq, 1_500);
    assert_eq!(sim.stats().reads, 4, "the bad READ was sent again");
}

#[test]
fn a_crc_that_never_matches_stops_the_pull_with_the_records_kept_on_the_pendant() {
    let opts = PullOptions {
        crc_retries: 0,
        ..fast()
    };
    let (r, sink, sim) = pull_watched("done-crc,corrupt-at=100000", &opts, &Cancel::new());
    let failed = r.unwrap_err();
    let PullError::CrcMismatch { seqs, tries, .. } = &failed.error else {
        panic!("{failed}");
    };
    assert_eq!((seqs.clone(), *tries), (501..1_013, 1));
    assert!(
        failed
            .to_string()
            .contains("none of them was stored or freed")
    );
    // Only the verified record before it is stored and freed.
    assert_exactly_once(&sink.inner, "sim:sim", 500..501, 0);
    assert!(sim.metadata().read_seq <= 501);
    // The pendant still has them: the next pull takes them.
    let mut conn = sim.clone();
    let mut sink = sink;
    pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut Quiet).unwrap();
    assert_exactly_once(&sink.inner, "sim:sim", 500..1_500, 0);
}

#[test]
fn a_drop_with_the_crc_firmware_reads_the_unverified_records_again() {
    let (r, sink, sim) = pull_watched(
        "done-crc,drop-at=150000,drop-at=300000",
        &fast(),
        &Cancel::new(),
    );
    let report = r.unwrap();
    assert_eq!(report.drops, 2);
    assert_exactly_once(&sink.inner, "sim:sim", 500..1_500, 0);
    assert_eq!(sim.metadata().read_seq, 1_500);
    // At most one READ's worth re-sent per drop.
    assert!(
        report.resent_bytes <= 2 * 512 * RECORD_BYTES as u64,
        "{}",
        report.resent_bytes
    );
    assert!(
        report.resent_bytes > RECORD_BYTES as u64,
        "unverified records were thrown away"
    );
}

#[test]
fn a_refused_mtu_exchange_is_explained_not_a_mystery_timeout() {
    // INFO answered ACK 9 after the firmware's ~5 s: the answer explains it.
    let opts = PullOptions {
        command_timeout: Duration::from_secs(6),
        ..fast()
    };
    let t = std::time::Instant::now();
    let (r, sink, sim) = pull_watched("no-mtu-exchange", &opts, &Cancel::new());
    let e = r.unwrap_err();
    assert_eq!(
        e.error,
        PullError::MtuTooSmall {
            mtu: 23,
            answered: true
        }
    );
    let text = e.to_string();
    assert!(
        text.contains("answered INFO with status 9") && text.contains("44"),
        "{text}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the 5 s are simulated"
    );
    assert!(sink.inner.log.is_empty());
    assert_eq!(sim.stats().reads, 0);
    // A shorter wait than the firmware's: still explained.
    let (r, _, _) = pull_watched("no-mtu-exchange", &fast(), &Cancel::new());
    assert_eq!(
        r.unwrap_err().error,
        PullError::MtuTooSmall {
            mtu: 23,
            answered: false
        }
    );
    // The session asks for the MTU before INFO, every connection.
    let (_, _, sim) = pull_watched("drop-at=50000", &fast(), &Cancel::new());
    let cmds = sim.commands();
    for (i, c) in cmds.iter().enumerate() {
        if matches!(c.op, HostOp::Command(Command::Info)) {
            assert!(
                cmds[..i].iter().any(|p| p.connection == c.connection
                    && matches!(p.op, HostOp::MtuExchange { asked: 517, .. })),
                "INFO before the MTU exchange on connection {}",
                c.connection
            );
        }
    }
}

#[test]
fn timestamp_zero_records_come_through_untouched() {
    let (r, sink, _) = pull_watched("clock-zero=600..650", &fast(), &Cancel::new());
    r.unwrap();
    for (_, seq, rec) in sink.inner.records_of("sim:sim") {
        let want = fixture_record(0, seq, FixtureClock::Wall);
        if (600..650).contains(&seq) {
            assert_eq!(rec[..4], [0, 0, 0, 0]);
            assert_eq!(rec[4..], want[4..]);
        } else {
            assert_eq!(rec, &want[..]);
        }
    }
}

/// Pulls against `spec` on another thread, cancels after `after`; returns
/// how long the pull took to return after the cancel, and what it did.
fn cancel_after(
    spec: &str,
    opts: PullOptions,
    after: Duration,
) -> (Duration, PullReport, CheckedSink, SimPendant) {
    let sim = SimPendant::from_image(ring_image(Variant::C), spec).unwrap();
    let durable = Arc::new(AtomicU64::new(0));
    let violations = watch_advances(&sim, &durable);
    let cancel = Cancel::new();
    let (token, mut conn) = (cancel.clone(), sim.clone());
    let worker = std::thread::spawn(move || {
        let mut sink = CheckedSink::new(durable);
        let r = pull(&mut conn, &mut sink, &opts, &token, &mut Quiet);
        (r, sink, std::time::Instant::now())
    });
    std::thread::sleep(after);
    let fired = std::time::Instant::now();
    cancel.cancel();
    let (r, sink, ended) = worker.join().unwrap();
    assert!(violations.lock().unwrap().is_empty(), "{violations:?}");
    (
        ended.saturating_duration_since(fired),
        r.unwrap(),
        sink,
        sim,
    )
}

#[test]
fn a_cancel_stops_a_pull_within_a_second_wherever_it_waits() {
    let long = Duration::from_secs(60);
    for (what, spec, opts) in [
        // Streaming over a slow link.
        ("streaming", "delay-ms=2,mtu=64", fast()),
        // Streaming with the CRC firmware (unverified records are dropped).
        ("streaming, CRC", "delay-ms=2,mtu=64,done-crc", fast()),
        // Waiting for DATA that does not come, then backing off to reconnect.
        (
            "a stalled link",
            "stall-after=20000,delay-ms=1",
            PullOptions {
                progress_timeout: Duration::from_secs(600),
                reconnect_backoff: long,
                ..fast()
            },
        ),
        // Backing off from busy storage.
        (
            "busy storage",
            "busy-first-read=3",
            PullOptions {
                busy_backoff: long,
                ..fast()
            },
        ),
    ] {
        let (took, report, sink, sim) = cancel_after(spec, opts, Duration::from_millis(300));
        assert!(took < Duration::from_secs(1), "{what}: {took:?}");
        assert!(report.cancelled, "{what}");
        assert!(
            report
                .notes
                .iter()
                .any(|n| n.contains("stopped on request"))
        );
        // Whatever was persisted is exactly the pendant's, in order.
        let n = sink.inner.records;
        assert_exactly_once(&sink.inner, "sim:sim", 500..500 + n, 0);
        assert!(sim.metadata().read_seq <= 500 + n, "{what}");
    }
}

#[test]
fn a_cancelled_stream_sends_stop_and_frees_only_what_is_durable() {
    let (_, report, sink, sim) =
        cancel_after("delay-ms=2,mtu=64", fast(), Duration::from_millis(300));
    let n = sink.inner.records;
    assert!(n > 0 && n < 1_000, "{n}");
    let ops: Vec<HostOp> = sim.commands().into_iter().map(|c| c.op).collect();
    let stop = ops
        .iter()
        .position(|o| *o == HostOp::Command(Command::Stop))
        .expect("STOP sent");
    // After STOP at most an ADVANCE to the durable seq, nothing else.
    for o in &ops[stop + 1..] {
        match o {
            HostOp::Command(Command::AdvanceId { seq, .. }) => assert_eq!(*seq, 500 + n),
            other => panic!("{other:?} after STOP"),
        }
    }
    assert!(report.cancelled);
}

#[test]
fn the_link_states_are_reported_as_they_change() {
    #[derive(Default)]
    struct Links(Vec<LinkEvent>);
    impl PullObserver for Links {
        fn link(&mut self, e: &LinkEvent) {
            self.0.push(e.clone());
        }
    }
    let sim = SimPendant::from_image(ring_image(Variant::C), "drop-at=100000,mtu=185").unwrap();
    let mut sink = MemorySink::counting();
    let mut conn = sim.clone();
    let mut links = Links::default();
    pull(&mut conn, &mut sink, &fast(), &Cancel::new(), &mut links).unwrap();
    let mut events = links.0;
    let reason = match &events[2] {
        LinkEvent::Dropped { reason } => reason.clone(),
        other => panic!("{other:?}"),
    };
    assert!(reason.contains("dropped"), "{reason}");
    events[2] = LinkEvent::Dropped {
        reason: String::new(),
    };
    assert_eq!(
        events,
        vec![
            LinkEvent::Connecting { attempt: 1 },
            LinkEvent::Connected { mtu: 185 },
            LinkEvent::Dropped {
                reason: String::new()
            },
            LinkEvent::Reconnecting {
                after: Duration::ZERO
            },
            LinkEvent::Connecting { attempt: 2 },
            LinkEvent::Connected { mtu: 185 },
            LinkEvent::Closed,
        ]
    );
}
