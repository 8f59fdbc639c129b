//! Measures the host side of a pull (run in release; results and how to read
//! them are in `bench/device/README.md`):
//!
//! ```text
//! cargo run --release --example device_bench [-- RECORDS [RUNS [BATCH]]]
//! ```
//!
//! 1. Client-side DATA handling: decode the notification, reassemble records,
//!    persist batches, over pre-built DATA notifications (MTU 247 and 517),
//!    in MB/s: into an in-memory sink (parse and reassembly alone) and into
//!    the real ledger sink (capture files written and fsync'd, SQLite
//!    transaction with the resume point committed, as `omi-sync pull` does).
//! 2. A full simulated pull through the real ledger sink (session +
//!    simulated pendant + in-memory image, no link limit, MTU 517) of a
//!    ~10-hour ring (default 405 000 records, about 180 MB): wall time, MB/s.
//! 3. Bytes re-sent after drops, against the persist batch size.
//!
//! Every figure is the median of RUNS runs (default 5; 3 for the 10-hour pull).
//! BATCH is the records per persist (default: the session's default).
//! The ledger lives in a temporary directory (`TMPDIR`), so the fsyncs hit
//! that disk.

use std::time::{Duration, Instant};

use omi_sync::cancel::Cancel;
use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::ring::{DATA_OVERHEAD, Notification, RecordAssembler};
use omi_sync::device::session::{
    DurableSink, MemorySink, PullOptions, PullReport, Quiet, TimeSync, pull,
};
use omi_sync::device::sim::SimPendant;
use omi_sync::device::usb::Variant;
use omi_sync::device::usb::fixture::{FixtureBuilder, FixtureClock, fixture_records};
use omi_sync::engine::pull::LedgerSink;
use omi_sync::store::Ledger;

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A fresh ledger in a temporary directory (kept alive by the returned guard).
fn fresh_ledger() -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ledger = Ledger::open(dir.path()).expect("open ledger");
    (dir, ledger)
}

/// DATA notifications carrying `records` fixture records at `mtu`.
fn notifications(records: u64, mtu: usize) -> Vec<Vec<u8>> {
    fixture_records(0, 0..records, FixtureClock::Wall)
        .chunks(mtu - DATA_OVERHEAD)
        .map(|c| Notification::Data(c).encode())
        .collect()
}

/// Decodes, reassembles and persists `notes` into `sink` as the session
/// does; returns the DATA bytes and the time taken.
fn data_handling(notes: &[Vec<u8>], batch: u64, sink: &mut dyn DurableSink) -> (u64, Duration) {
    let t = Instant::now();
    let mut asm = RecordAssembler::new(0);
    let mut bytes = 0u64;
    for n in notes {
        if let Ok(Notification::Data(d)) = Notification::decode(n) {
            bytes += d.len() as u64;
            asm.push(d);
            if asm.ready_records() >= batch
                && let Some(b) = asm.take_ready()
            {
                sink.persist("bench", None, b.first_seq, &b.bytes)
                    .expect("persist");
            }
        }
    }
    if let Some(b) = asm.take_ready() {
        sink.persist("bench", None, b.first_seq, &b.bytes)
            .expect("persist");
    }
    (bytes, t.elapsed())
}

fn opts(batch: u64) -> PullOptions {
    PullOptions {
        batch_records: batch,
        time_sync: TimeSync::At(1_717_300_000),
        reconnect_backoff: Duration::ZERO,
        max_reconnects: 50,
        ..PullOptions::default()
    }
}

/// Pulls `image` from a simulated pendant with `spec` into a fresh ledger.
fn ledger_pull(image: &[u8], spec: &str, batch: u64) -> (PullReport, u64, Duration) {
    let (_dir, mut ledger) = fresh_ledger();
    let mut sim = SimPendant::from_image(image.to_vec(), spec).expect("simulated pendant");
    let mut sink = LedgerSink::new(&mut ledger, "bench");
    let t = Instant::now();
    let report = pull(
        &mut sim,
        &mut sink,
        &opts(batch),
        &Cancel::new(),
        &mut Quiet,
    )
    .expect("pull");
    let el = t.elapsed();
    (report, sink.stored.new_records, el)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let records: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(405_000);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(5).max(1);
    let batch: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(PullOptions::default().batch_records)
        .max(1);

    println!(
        "## 1. client-side DATA handling (decode + reassemble + persist every {batch} records), \
         median of {runs}"
    );
    const HANDLED: u64 = 100_000;
    for mtu in [247usize, 517] {
        let notes = notifications(HANDLED, mtu);
        let mut memory = Vec::new();
        let mut ledger = Vec::new();
        let mut bytes = 0;
        for _ in 0..runs {
            let mut sink = MemorySink::counting();
            let (b, el) = data_handling(&notes, batch, &mut sink);
            assert_eq!(sink.records, HANDLED);
            memory.push(mb(b) / el.as_secs_f64());
            let (_dir, mut l) = fresh_ledger();
            let mut sink = LedgerSink::new(&mut l, "bench");
            let (b, el) = data_handling(&notes, batch, &mut sink);
            assert_eq!(sink.stored.new_records, HANDLED);
            ledger.push(mb(b) / el.as_secs_f64());
            bytes = b;
        }
        println!(
            "MTU {mtu}, {:.1} MB: in-memory sink {:.0} MB/s; ledger sink {:.0} MB/s \
             (runs: {})",
            mb(bytes),
            median(memory),
            median(ledger.clone()),
            ledger
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let pulls = runs.min(3);
    println!(
        "\n## 2. simulated pull of {records} records into the ledger (no link limit, MTU 517), \
         median of {pulls}"
    );
    let t = Instant::now();
    let slots = records.div_ceil(36) + 1;
    let mut b = FixtureBuilder::new(Variant::C, slots).expect("format image");
    b.record(records, 36 * 64).expect("record");
    let image = b.finish();
    println!(
        "image: {:.1} MB, {slots} slots, built in {:.2} s",
        mb(image.len() as u64),
        t.elapsed().as_secs_f64()
    );
    let mut times = Vec::new();
    let mut received = 0;
    for _ in 0..pulls {
        let (report, stored, el) = ledger_pull(&image, "mtu=517", batch);
        assert_eq!(stored, records);
        assert_eq!(report.advanced_to, Some(records));
        received = report.bytes_received;
        times.push(el.as_secs_f64());
    }
    let el = median(times.clone());
    println!(
        "pulled {records} records ({:.1} MB) in {el:.2} s = {:.0} MB/s (runs: {})",
        mb(received),
        mb(received) / el,
        times
            .iter()
            .map(|t| format!("{t:.2} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "(for scale: the same bytes at the pendant's ~32 KB/s over BLE take {:.0} min)",
        received as f64 / 32_000.0 / 60.0
    );

    println!(
        "\n## 3. bytes re-sent after drops into the ledger (persist batch = {} records = {} bytes; \
         the pendant's storage batch = 36 records = {} bytes)",
        batch,
        batch * RECORD_BYTES as u64,
        36 * RECORD_BYTES
    );
    let mut b = FixtureBuilder::new(Variant::C, 300).expect("format image");
    b.record(10_000, 36).expect("record");
    let small = b.finish();
    let total = 10_000u64 * RECORD_BYTES as u64;
    for (spec, mtu) in [
        ("drop-at=1234567", 247),
        ("drop-at=777777,drop-at=2222222,drop-at=3333333", 247),
        ("drop-every=100000", 517),
        ("drop-random=200000,seed=7", 44),
    ] {
        let (r, stored, _) = ledger_pull(&small, &format!("{spec},mtu={mtu}"), batch);
        assert_eq!(stored, 10_000);
        assert_eq!(r.bytes_received, total + r.resent_bytes);
        println!(
            "{spec},mtu={mtu}: {} drops, {} bytes re-sent ({:.0} per drop; {:.2}% of a storage batch)",
            r.drops,
            r.resent_bytes,
            r.resent_bytes as f64 / r.drops.max(1) as f64,
            100.0 * r.resent_bytes as f64 / r.drops.max(1) as f64 / (36 * RECORD_BYTES) as f64
        );
    }
}
