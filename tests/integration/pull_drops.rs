//! The BLE session through the real ledger sink, against the simulated
//! pendant dropping the link at 100 different points (every MTU, in the
//! middle of records and notifications, on ADVANCE, with ADVANCE during the
//! stream or only at the end): every record arrives exactly once, the
//! pendant is only ever advanced past data the ledger already holds, and a
//! drop costs less than one batch of re-sent bytes.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ring_records;
use omi_sync::cancel::Cancel;
use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::session::{PullOptions, Quiet, TimeSync, pull};
use omi_sync::device::sim::SimPendant;
use omi_sync::device::usb::Variant;
use omi_sync::device::usb::fixture::{FixtureBuilder, FixtureClock, fixture_records};
use omi_sync::engine::pull::LedgerSink;
use omi_sync::store::{Ledger, LedgerReader};

const RECORDS: u64 = 600;
const BATCH: u64 = 288;

fn image() -> Vec<u8> {
    let mut b = FixtureBuilder::new(Variant::C, 64).unwrap();
    b.record(RECORDS, 36).unwrap();
    b.finish()
}

/// The fault spec of drop point `k` of 100.
fn spec(k: u64, total: u64) -> String {
    // Spread over the whole stream, at odd offsets (inside records and notifications).
    let point = 1 + (total - 2) * k / 100 + (k * 37) % 211;
    let mtu = [44, 100, 247, 517][(k % 4) as usize];
    let mut spec = format!("drop-at={point},mtu={mtu}");
    if k.is_multiple_of(3) {
        spec += &format!(",drop-at={}", point + total / 7);
    }
    if k % 10 == 5 {
        spec += ",drop-on-advance";
    }
    spec
}

#[test]
fn every_record_arrives_once_and_only_durable_data_is_freed_at_100_drop_points() {
    let image = image();
    let want = fixture_records(0, 0..RECORDS, FixtureClock::Wall);
    let total = RECORDS * RECORD_BYTES as u64;
    let mut drops_seen = 0;
    for k in 0..100u64 {
        let spec = spec(k, total);
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open(dir.path()).unwrap();
        let sim = SimPendant::from_image(image.clone(), &spec).unwrap();
        // Every ADVANCE the pendant receives, with what the ledger held then.
        let seen: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
        let (log, data) = (Arc::clone(&seen), dir.path().to_path_buf());
        sim.on_advance(move |ev| {
            let durable = LedgerReader::open(&data)
                .unwrap()
                .ring_resume_point("sim:sim")
                .unwrap()
                .map_or(0, |r| r.durable_seq);
            log.lock().unwrap().push((ev.seq, durable));
        });
        let opts = PullOptions {
            time_sync: TimeSync::At(1_717_300_000),
            reconnect_backoff: Duration::ZERO,
            batch_records: BATCH,
            advance_every_records: (k % 2 == 1).then_some(100),
            ..PullOptions::default()
        };
        let mut conn = sim.clone();
        let mut sink = LedgerSink::new(&mut ledger, "sim:test");
        let report = pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet)
            .unwrap_or_else(|e| panic!("{spec}: {e}"));
        assert_eq!(sink.stored.new_records, RECORDS, "{spec}");
        assert!(report.drops >= 1, "{spec}: the link dropped");
        drops_seen += report.drops;
        assert!(
            report.resent_bytes < BATCH * RECORD_BYTES as u64 * report.drops as u64,
            "{spec}: {} bytes re-sent over {} drops",
            report.resent_bytes,
            report.drops
        );

        let got = ring_records(&ledger, "sim:sim");
        assert_eq!(got.len() as u64, RECORDS, "{spec}: exactly once");
        for (i, (_, seq, rec)) in got.iter().enumerate() {
            assert_eq!(*seq, i as u64, "{spec}");
            assert_eq!(
                &rec[..],
                &want[i * RECORD_BYTES..(i + 1) * RECORD_BYTES],
                "{spec}"
            );
        }
        let advances = seen.lock().unwrap().clone();
        assert!(!advances.is_empty(), "{spec}");
        for (seq, durable) in &advances {
            assert!(
                seq <= durable,
                "{spec}: ADVANCE to {seq} with {durable} durable"
            );
        }
        assert_eq!(
            sim.metadata().read_seq,
            RECORDS,
            "{spec}: all freed in the end"
        );
    }
    assert!(drops_seen >= 130, "{drops_seen} drops in all");
}

#[test]
fn a_second_pull_after_drops_finds_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let sim = SimPendant::from_image(image(), "drop-every=30000,mtu=100").unwrap();
    let opts = PullOptions {
        time_sync: TimeSync::At(1_717_300_000),
        reconnect_backoff: Duration::ZERO,
        max_reconnects: 20,
        ..PullOptions::default()
    };
    let mut conn = sim.clone();
    for (round, want_new) in [(0, RECORDS), (1, 0)] {
        let mut sink = LedgerSink::new(&mut ledger, "sim:test");
        pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet).unwrap();
        assert_eq!(sink.stored.new_records, want_new, "round {round}");
    }
    assert_eq!(ring_records(&ledger, "sim:sim").len() as u64, RECORDS);
}
