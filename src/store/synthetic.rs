//! Synthetic backlogs: ledgers with many segments in known places, for the
//! benchmarks and tests that need size, not real speech (the TUI's frame
//! and merge benchmarks, the push tests). Every segment points into one
//! capture of the built-in demo; their times are what matters: conversation
//! `c` starts ten minutes after conversation `c - 1`, and its segments are
//! 3 s long, 5 s apart.

use super::{Ledger, NewCapture, NewSegment, RunRow, StoreError};
use crate::audio::Codec;
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::capture::{CaptureFormat, Run};
use crate::device::demo;

/// When the first conversation starts: 2025-06-02 09:00:00 UTC.
pub const T0: UtcMillis = UtcMillis(1_748_854_800_000);

/// Adds `conversations` conversations of `per_conversation` segments each
/// to `ledger` (see the module docs), keyed `{key_prefix}-{n:05}`, from
/// `device` on its wall clock. Returns the segments' keys in order.
pub fn add_backlog(
    ledger: &mut Ledger,
    device: &str,
    conversations: usize,
    per_conversation: usize,
    key_prefix: &str,
) -> Result<Vec<String>, StoreError> {
    let f = &demo::FILES[0];
    let (_, capture) = ledger.add_capture(
        f.bytes,
        &NewCapture {
            format: CaptureFormat::Wal,
            codec: Codec::PENDANT,
            device: device.into(),
            origin: format!("synthetic:{key_prefix}"),
            file_name: f.name.into(),
            name_start: Some(T0),
            clock: ClockTrust::Wall,
            first_seq: None,
            ring_id: None,
            captured_at: T0.plus_ms(60_000),
        },
    )?;
    let per = per_conversation.max(1);
    let segments: Vec<NewSegment> = (0..conversations * per)
        .map(|i| {
            let start = T0.plus_ms((i / per) as i64 * 600_000 + (i % per) as i64 * 5_000);
            NewSegment {
                key: format!("{key_prefix}-{i:05}"),
                run_index: 0,
                sample_start: 0,
                sample_end: 16_000,
                device: device.into(),
                clock: ClockTrust::Wall,
                start,
                end: start.plus_ms(3_000),
            }
        })
        .collect();
    let run = RunRow {
        run: Run {
            first_frame: 0,
            frame_count: 3000,
            samples: 960_000,
            start: T0,
            clock: ClockTrust::Wall,
        },
        bad_frames: 0,
    };
    ledger.save_analysis(capture.id, &[run], &segments, &[], "{}")?;
    Ok(segments.into_iter().map(|s| s.key).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversations_ten_minutes_apart_segments_five_seconds_apart() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let keys = add_backlog(&mut l, "omi", 3, 2, "s").unwrap();
        assert_eq!(
            keys,
            [
                "s-00000", "s-00001", "s-00002", "s-00003", "s-00004", "s-00005"
            ]
        );
        let segs = l.segments().unwrap();
        let starts: Vec<i64> = segs.iter().map(|s| s.found.start.0 - T0.0).collect();
        assert_eq!(starts, [0, 5_000, 600_000, 605_000, 1_200_000, 1_205_000]);
        assert!(
            segs.iter()
                .all(|s| s.found.end.0 - s.found.start.0 == 3_000)
        );
    }
}
