//! Ring records (as pulled from the pendant) through the ledger and VAD:
//! every record's timestamp is used, recording gaps are kept, clock-not-set
//! audio gets an estimated time, and a dangling length byte is reported.

use crate::common;

use common::{demo_frames, pack_records as records};
use omi_sync::audio::Codec;
use omi_sync::clock::{ClockTrust, UtcMillis};
use omi_sync::device::capture::CaptureFormat;
use omi_sync::engine::Ctx;
use omi_sync::engine::analyze::{AnalyzeOptions, analyze};
use omi_sync::store::{Ledger, NewCapture};
use omi_sync::vad::VadParams;

#[test]
fn gaps_are_kept_and_clock_not_set_audio_is_estimated() {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path()).unwrap();
    let speech = demo_frames(0); // 60 s of session A (speech from 2 s)
    let t0: u32 = 1_748_854_800;
    let mut bytes = Vec::new();
    // 20 s of audio while the clock was not set (uptime 500 s)...
    bytes.extend(records(&speech[..1000], 0x8000_0000 | 500));
    // ...then the phone set the clock: 20 s at t0...
    bytes.extend(records(&speech[1000..2000], t0));
    // ...the pendant stopped recording for 10 minutes, then 20 s more.
    bytes.extend(records(&speech[2000..3000], t0 + 620));
    // A record with a dangling length byte (stale bytes after it).
    let bytes_len_before_bad = bytes.len();
    let mut bad = [0u8; 444];
    bad[..4].copy_from_slice(&(t0 + 640).to_be_bytes());
    bad[4] = 200; // a 200-byte frame at payload offset 1..201
    bad[4 + 201] = 250; // 201 + 1 + 250 >= 440: dangling
    bytes.extend_from_slice(&bad);

    let captured_at = UtcMillis::from_secs(t0 as i64 + 3600);
    let (_, row) = ledger
        .add_capture(
            &bytes,
            &NewCapture {
                format: CaptureFormat::Ring,
                codec: Codec::PENDANT,
                device: "pendant-1".into(),
                origin: "test ring".into(),
                file_name: "ring-0.bin".into(),
                name_start: None,
                clock: ClockTrust::Wall,
                first_seq: Some(0),
                ring_id: Some(7),
                captured_at,
            },
        )
        .unwrap();
    let opts = AnalyzeOptions {
        params: VadParams::default(),
        rerun_all: false,
        workers: 2,
    };
    let report = analyze(&mut ledger, &opts, &Ctx::default()).unwrap();
    assert_eq!(report.captures, 1);

    let runs = ledger.runs(row.id).unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert_eq!(runs[0].run.clock, ClockTrust::Uptime);
    assert_eq!(runs[1].run.start, UtcMillis::from_secs(t0 as i64));
    // The 10-minute gap is kept, not collapsed.
    assert_eq!(runs[2].run.start, UtcMillis::from_secs(t0 as i64 + 620));
    // The clock-not-set stretch is placed right before the first wall-clock one.
    assert_eq!(runs[0].run.end(), runs[1].run.start);

    let segments = ledger.segments().unwrap();
    assert!(segments.iter().any(|s| s.found.clock == ClockTrust::Uptime));
    let late: Vec<_> = segments
        .iter()
        .filter(|s| s.found.start >= UtcMillis::from_secs(t0 as i64 + 620))
        .collect();
    assert!(!late.is_empty(), "speech after the gap keeps its real time");
    for s in &segments {
        let inside = runs
            .iter()
            .any(|r| s.found.start >= r.run.start && s.found.end <= r.run.end());
        assert!(inside, "segment {:?} lies inside a run", s.found);
    }
    let anomalies = ledger.anomalies(Some(row.id)).unwrap();
    assert!(
        anomalies
            .iter()
            .any(|a| a.message.contains("dangling length byte 250")
                && a.offset == Some(bytes_len_before_bad as u64 + 4 + 201)),
        "{anomalies:?}"
    );
    assert!(anomalies.iter().any(|a| a.message.contains("estimated")));
}
