//! Measures the pendant side of a pull (run in release):
//!
//! ```text
//! cargo run --release --example device_bench [-- RECORDS]
//! ```
//!
//! 1. Client-side DATA handling: decode notification + reassemble records +
//!    hand batches to the sink, over pre-built DATA notifications (MTU 247
//!    and 517), in MB/s.
//! 2. A full simulated pull (session + simulated pendant + in-memory image,
//!    no link limit, MTU 517) of a ~10-hour ring (default 405 000 records,
//!    about 180 MB), wall time and MB/s.
//! 3. Bytes re-sent after a drop, against the persist batch size.

use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::ring::{DATA_OVERHEAD, Notification, RecordAssembler};
use omi_sync::device::session::{DurableSink, MemorySink, PullOptions, TimeSync, pull};
use omi_sync::device::sim::SimPendant;
use omi_sync::device::usb::Variant;
use omi_sync::device::usb::fixture::{FixtureBuilder, FixtureClock, fixture_records};

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn data_handling(records: u64, mtu: usize, batch: u64) -> (u64, Duration) {
    let stream = fixture_records(0, 0..records, FixtureClock::Wall);
    let notes: Vec<Vec<u8>> = stream
        .chunks(mtu - DATA_OVERHEAD)
        .map(|c| Notification::Data(c).encode())
        .collect();
    let mut sink = MemorySink::counting();
    let t = Instant::now();
    let mut asm = RecordAssembler::new(0);
    let mut bytes = 0u64;
    for n in &notes {
        if let Ok(Notification::Data(d)) = Notification::decode(n) {
            bytes += d.len() as u64;
            asm.push(d);
            if asm.ready_records() >= batch
                && let Some(b) = asm.take_ready()
            {
                sink.persist("bench", None, b.first_seq, &b.bytes).unwrap();
            }
        }
    }
    if let Some(b) = asm.take_ready() {
        sink.persist("bench", None, b.first_seq, &b.bytes).unwrap();
    }
    let el = t.elapsed();
    assert_eq!(sink.records, records);
    (bytes, el)
}

fn opts() -> PullOptions {
    PullOptions {
        time_sync: TimeSync::At(1_717_300_000),
        reconnect_backoff: Duration::ZERO,
        max_reconnects: 50,
        ..PullOptions::default()
    }
}

fn main() {
    let records: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(405_000);

    println!("## 1. client-side DATA handling (decode + reassemble + sink)");
    for mtu in [247usize, 517] {
        let mut best = f64::MAX;
        let mut bytes = 0;
        for _ in 0..5 {
            let (b, el) = data_handling(100_000, mtu, 288);
            bytes = b;
            best = best.min(el.as_secs_f64());
        }
        println!(
            "MTU {mtu}: {:.1} MB in {:.1} ms (best of 5) = {:.0} MB/s",
            mb(bytes),
            best * 1e3,
            mb(bytes) / best
        );
    }

    println!("\n## 2. simulated pull of {records} records (no link limit, MTU 517)");
    let t = Instant::now();
    let slots = records.div_ceil(36) + 1;
    let mut b = FixtureBuilder::new(Variant::C, slots).unwrap();
    b.record(records, 36 * 64).unwrap();
    let image = b.finish();
    println!(
        "image: {:.1} MB, {slots} slots, built in {:.2} s",
        mb(image.len() as u64),
        t.elapsed().as_secs_f64()
    );
    let sim = SimPendant::from_image(image.clone(), "mtu=517").unwrap();
    let mut sink = MemorySink::counting();
    let mut conn = sim.clone();
    let t = Instant::now();
    let report = pull(&mut conn, &mut sink, &opts(), &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    let el = t.elapsed().as_secs_f64();
    println!(
        "pulled {} records ({:.1} MB) in {:.2} s = {:.0} MB/s; advanced to {:?}; {} persist calls",
        report.records_persisted,
        mb(report.bytes_received),
        el,
        mb(report.bytes_received) / el,
        report.advanced_to,
        sink.log.len()
    );
    println!(
        "(for scale: the same bytes at the pendant's ~32 KB/s BLE take {:.0} min)",
        report.bytes_received as f64 / 32_000.0 / 60.0
    );

    println!(
        "\n## 3. bytes re-sent after drops (batch = 288 records = {} bytes)",
        288 * RECORD_BYTES
    );
    let mut b = FixtureBuilder::new(Variant::C, 300).unwrap();
    b.record(10_000, 36).unwrap();
    let small = b.finish();
    let total = 10_000u64 * RECORD_BYTES as u64;
    for (spec, mtu) in [
        ("drop-at=1234567", 247),
        ("drop-at=777777,drop-at=2222222,drop-at=3333333", 247),
        ("drop-every=100000", 517),
        ("drop-random=200000,seed=7", 23),
    ] {
        let sim = SimPendant::from_image(small.clone(), &format!("{spec},mtu={mtu}")).unwrap();
        let mut sink = MemorySink::counting();
        let mut conn = sim.clone();
        let r = pull(&mut conn, &mut sink, &opts(), &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
        assert_eq!(r.records_persisted, 10_000);
        assert_eq!(r.bytes_received, total + r.resent_bytes);
        println!(
            "{spec},mtu={mtu}: {} drops, {} bytes re-sent ({:.0} per drop; {:.2}% of a batch)",
            r.drops,
            r.resent_bytes,
            r.resent_bytes as f64 / r.drops.max(1) as f64,
            100.0 * r.resent_bytes as f64 / r.drops.max(1) as f64 / (288 * RECORD_BYTES) as f64
        );
    }
}
