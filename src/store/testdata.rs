//! Ledgers for unit tests: captures of a 440 Hz tone with segments where a
//! test wants them (no VAD, no decoding of real speech), and a pendant's
//! last report.

use super::{Ledger, NewCapture, NewSegment, RunRow};
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::capture::{CaptureFormat, Run};
use crate::device::ring::{CustodyCaps, CustodyInfo, Info, StorageStatus};
use crate::store::{DeviceReport, NewestRecord};

/// Samples in each tone capture (4 s at 16 kHz).
pub const TONE_SAMPLES: u64 = 64_000;

/// Adds a 4 s PCM capture of a tone from `device` starting at `t0`, with
/// segments at these (start, end) ms within it; returns their ids.
pub fn add_tone_capture(
    l: &mut Ledger,
    device: &str,
    t0: UtcMillis,
    clock: ClockTrust,
    spans: &[(i64, i64)],
) -> Vec<i64> {
    let frames: Vec<Vec<u8>> = (0..200)
        .map(|f| {
            (0..320)
                .flat_map(|i| {
                    let t = (f * 320 + i) as f32 / 16_000.0;
                    let v = ((t * 440.0 * std::f32::consts::TAU).sin() * 8000.0) as i16;
                    v.to_le_bytes()
                })
                .collect()
        })
        .collect();
    let mut body = Vec::new();
    crate::device::wal::write_body(&mut body, frames.iter().map(|f| &f[..])).unwrap();
    // A distinct body per capture, so the content hash differs.
    body.extend_from_slice(&t0.0.to_le_bytes());
    let meta = NewCapture {
        format: CaptureFormat::Wal,
        codec: crate::audio::Codec::Pcm16 {
            sample_rate: 16_000,
        },
        device: device.into(),
        origin: "test".into(),
        file_name: format!("{device}-{}.bin", t0.0),
        name_start: Some(t0),
        clock,
        first_seq: None,
        ring_id: None,
        captured_at: t0,
    };
    let (_, cap) = l.add_capture(&body, &meta).unwrap();
    let run = RunRow {
        run: Run {
            first_frame: 0,
            frame_count: 200,
            samples: TONE_SAMPLES,
            start: t0,
            clock,
        },
        bad_frames: 0,
    };
    let segs: Vec<NewSegment> = spans
        .iter()
        .enumerate()
        .map(|(i, (a, b))| NewSegment {
            key: format!("{device}-{}-{i}", t0.0),
            run_index: 0,
            sample_start: (*a * 16) as u64,
            sample_end: (*b * 16) as u64,
            device: device.into(),
            clock,
            start: t0.plus_ms(*a),
            end: t0.plus_ms(*b),
        })
        .collect();
    l.save_analysis(cap.id, &[run], &segs, &[], "{}").unwrap();
    let keys: Vec<String> = segs.iter().map(|s| s.key.clone()).collect();
    l.segments()
        .unwrap()
        .into_iter()
        .filter(|s| keys.contains(&s.found.key))
        .map(|s| s.id)
        .collect()
}

/// A report read at 10:00:00 (connected a second earlier) of a ring
/// of 1000 records with 850 unread, custody firmware, clock set.
pub fn sample_device_report() -> DeviceReport {
    let at = UtcMillis(1_748_858_400_000);
    DeviceReport {
        device: "omi".into(),
        origin: "ble:AA".into(),
        read_at: at,
        connected_at: at.plus_ms(-1000),
        info: Info {
            read_seq: 100,
            write_seq: 950,
            capacity: 1000,
            dropped: 3,
            packet_bytes: 444,
            custody: Some(CustodyInfo {
                caps: CustodyCaps(0x0f),
                version: 1,
                ring_id: u64::MAX - 5,
            }),
        },
        status: Some(StorageStatus {
            used_bytes: 377_400,
            unread_packets: 850,
            free_bytes: 66_600,
            clock_valid: true,
        }),
        clock_written: true,
        done_crc: Some(true),
        unread_after: None,
        newest: Some(NewestRecord {
            seq: 949,
            wall_start: Some(at.plus_ms(-1600)),
            duration_ms: 100,
            received_at: at.plus_ms(20_000),
        }),
    }
}
