//! A capture's frames placed on absolute time: [`Layout`] and its [`Run`]s.
//!
//! A capture is the raw bytes of one import or pull: a phone-app `.bin` body
//! ([`CaptureFormat::Wal`]) or a stream of 444-byte ring records
//! ([`CaptureFormat::Ring`]). Its frames are numbered in order (ordinals) and
//! grouped into runs of contiguous audio, each with an absolute start and a
//! clock trust. A WAL file is one run. Ring records are placed by counting
//! frames from the start of a run and treating record timestamps as coarse
//! anchors (`omi-facts.md` §1): a timestamp more than a second ahead of the
//! frame count is a recording gap and starts a new run (gaps are kept, never
//! collapsed); a clock change starts a new run; frames never overlap. Audio
//! whose clock was not set gets an estimated wall time, flagged as such
//! ([`crate::device::placement`] does this, across the captures of a stream).

use std::fmt;

use crate::audio::{Codec, TARGET_RATE};
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::record::{RECORD_BYTES, Record};
use crate::device::wal;

/// How a capture's bytes are framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureFormat {
    /// A phone-app `.bin` body: `[u32 LE len][frame]...`.
    Wal,
    /// Concatenated 444-byte ring records, in sequence order.
    Ring,
}

impl CaptureFormat {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureFormat::Wal => "wal",
            CaptureFormat::Ring => "ring",
        }
    }

    /// Parses the ledger name.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "wal" => Some(CaptureFormat::Wal),
            "ring" => Some(CaptureFormat::Ring),
            _ => None,
        }
    }
}

/// Something odd found in a capture, located by byte offset within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    /// Byte offset in the capture where it was found, if it has one.
    pub offset: Option<u64>,
    /// What was found and what was done about it.
    pub message: String,
}

impl fmt::Display for Anomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.offset {
            Some(o) if !self.message.starts_with("at byte") => {
                write!(f, "at byte {o}: {}", self.message)
            }
            _ => f.write_str(&self.message),
        }
    }
}

/// One frame of a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRef<'a> {
    /// Position of the frame in the capture, from 0.
    pub ordinal: u64,
    /// Byte offset of the frame's data in the capture.
    pub offset: u64,
    /// The encoded frame.
    pub bytes: &'a [u8],
}

/// Iterates every frame of a capture in order.
pub fn frames(format: CaptureFormat, bytes: &[u8]) -> Box<dyn Iterator<Item = FrameRef<'_>> + '_> {
    match format {
        CaptureFormat::Wal => Box::new(wal::Frames::new(bytes).enumerate().map(
            |(i, (offset, b))| FrameRef {
                ordinal: i as u64,
                offset,
                bytes: b,
            },
        )),
        CaptureFormat::Ring => Box::new(
            bytes
                .chunks_exact(RECORD_BYTES)
                .enumerate()
                .flat_map(|(k, rec)| {
                    let base = (k * RECORD_BYTES) as u64 + 4;
                    let frames = Record::parse(rec).map(|r| r.frames).unwrap_or_default();
                    frames.into_iter().map(move |(off, len)| {
                        let start = 4 + off as usize;
                        (base + off as u64, &rec[start..start + len as usize])
                    })
                })
                .enumerate()
                .map(|(i, (offset, b))| FrameRef {
                    ordinal: i as u64,
                    offset,
                    bytes: b,
                }),
        ),
    }
}

/// A stretch of contiguous audio with one absolute start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Ordinal of the run's first frame in the capture.
    pub first_frame: u64,
    /// How many frames the run holds.
    pub frame_count: u64,
    /// Its length in samples at 16 kHz.
    pub samples: u64,
    /// When its first sample was recorded.
    pub start: UtcMillis,
    /// How far `start` can be trusted (anything but `Wall` is estimated).
    pub clock: ClockTrust,
}

impl Run {
    /// When its last sample ends.
    pub fn end(&self) -> UtcMillis {
        self.start.plus_ms(samples_to_ms(self.samples))
    }

    /// The absolute time of a sample offset within the run.
    pub fn time_at(&self, sample: u64) -> UtcMillis {
        self.start.plus_ms(samples_to_ms(sample))
    }
}

/// Milliseconds for a count of 16 kHz samples (rounded down).
pub fn samples_to_ms(samples: u64) -> i64 {
    (samples * 1000 / TARGET_RATE as u64) as i64
}

/// A capture's runs and what was odd about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Layout {
    /// The runs, in frame order.
    pub runs: Vec<Run>,
    /// Everything odd, located.
    pub anomalies: Vec<Anomaly>,
}

impl Layout {
    /// Total audio in samples at 16 kHz.
    pub fn samples(&self) -> u64 {
        self.runs.iter().map(|r| r.samples).sum()
    }

    /// Total frames.
    pub fn frames(&self) -> u64 {
        self.runs.iter().map(|r| r.frame_count).sum()
    }
}

/// Lays out a phone-app body: one run from `start`.
pub fn wal_layout(bytes: &[u8], codec: Codec, start: UtcMillis, clock: ClockTrust) -> Layout {
    let mut it = wal::Frames::new(bytes);
    let (mut count, mut samples) = (0u64, 0u64);
    for (_, frame) in it.by_ref() {
        count += 1;
        samples += codec.frame_samples_at_target(frame.len());
    }
    let mut anomalies = Vec::new();
    if let Some(end) = it.end() {
        anomalies.push(Anomaly {
            offset: Some(end.offset()),
            message: end.to_string(),
        });
    }
    let runs = if count > 0 {
        vec![Run {
            first_frame: 0,
            frame_count: count,
            samples,
            start,
            clock,
        }]
    } else {
        Vec::new()
    };
    Layout { runs, anomalies }
}

pub use crate::device::placement::GAP_TOLERANCE_MS;

/// Lays out a stream of ring records (Opus frames at `codec`) held in one
/// capture. `captured_at` is when the records left the pendant: the last
/// resort for estimating the time of audio recorded with no clock at all.
/// Captures of one pulled stream are laid out together with
/// [`StreamLayout`](crate::device::placement::StreamLayout).
pub fn ring_layout(bytes: &[u8], codec: Codec, captured_at: UtcMillis) -> Layout {
    let mut stream = crate::device::placement::StreamLayout::new(codec);
    stream.push(bytes, None, captured_at);
    stream.finish().pop().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::record::build_record;

    /// Records of `per` 20 ms frames each with timestamps from `stamps`.
    fn records(stamps: &[u32], per: usize) -> Vec<u8> {
        let frame = [0x55u8; 60];
        let frames: Vec<&[u8]> = (0..per).map(|_| &frame[..]).collect();
        stamps
            .iter()
            .flat_map(|&t| build_record(t, &frames).0)
            .collect()
    }

    const T0: u32 = 1_717_000_000;

    #[test]
    fn contiguous_records_sharing_seconds_form_one_run() {
        // 5 frames = 100 ms per record; 30 records = 3 s: stamps T0, T0 (x10), T0+1 ...
        let stamps: Vec<u32> = (0..30).map(|k| T0 + (k / 10) as u32).collect();
        let layout = ring_layout(&records(&stamps, 5), Codec::PENDANT, UtcMillis(0));
        assert_eq!(layout.runs.len(), 1);
        let run = layout.runs[0];
        assert_eq!(run.frame_count, 150);
        assert_eq!(run.samples, 150 * 320);
        assert_eq!(run.start, UtcMillis::from_secs(T0 as i64));
        assert_eq!(run.clock, ClockTrust::Wall);
        assert!(layout.anomalies.is_empty(), "{:?}", layout.anomalies);
    }

    #[test]
    fn a_recording_gap_starts_a_new_run_and_is_kept() {
        let mut stamps: Vec<u32> = (0..10).map(|_| T0).collect();
        stamps.extend((0..10).map(|_| T0 + 600)); // 10 minutes later
        let layout = ring_layout(&records(&stamps, 5), Codec::PENDANT, UtcMillis(0));
        assert_eq!(layout.runs.len(), 2);
        assert_eq!(layout.runs[1].start, UtcMillis::from_secs(T0 as i64 + 600));
        assert_eq!(layout.runs[1].first_frame, 50);
        assert_eq!(
            layout.runs[0].end(),
            UtcMillis::from_secs(T0 as i64).plus_ms(1000)
        );
    }

    #[test]
    fn anchors_tighten_to_the_latest_lower_bound() {
        // The run really started at T0 + 0.6 s: the first 4 records (400 ms)
        // carry T0, the 5th already carries T0 + 1.
        let stamps: Vec<u32> = (0..20)
            .map(|k| {
                if k < 4 {
                    T0
                } else {
                    T0 + ((k + 6) / 10) as u32
                }
            })
            .collect();
        let layout = ring_layout(&records(&stamps, 5), Codec::PENDANT, UtcMillis(0));
        assert_eq!(layout.runs.len(), 1);
        assert_eq!(
            layout.runs[0].start,
            UtcMillis::from_secs(T0 as i64).plus_ms(600)
        );
    }

    #[test]
    fn clock_change_splits_and_uptime_is_estimated_before_the_wall_run() {
        // 2 s of clock-not-set audio (uptime 100..), then the phone sets the clock.
        let mut stamps: Vec<u32> = (0..20).map(|k| 0x8000_0000 | (100 + k / 10)).collect();
        stamps.extend((0..20).map(|k| T0 + k / 10));
        let layout = ring_layout(&records(&stamps, 5), Codec::PENDANT, UtcMillis(0));
        assert_eq!(layout.runs.len(), 2);
        assert_eq!(layout.runs[0].clock, ClockTrust::Uptime);
        assert_eq!(layout.runs[1].clock, ClockTrust::Wall);
        assert_eq!(layout.runs[0].end(), layout.runs[1].start);
        assert!(
            layout
                .anomalies
                .iter()
                .any(|a| a.message.contains("estimated"))
        );
    }

    #[test]
    fn uptime_without_any_wall_clock_ends_at_capture_time() {
        let stamps: Vec<u32> = (0..10).map(|_| 0x8000_0000 | 50).collect();
        let captured = UtcMillis::from_secs(T0 as i64 + 3600);
        let layout = ring_layout(&records(&stamps, 5), Codec::PENDANT, captured);
        assert_eq!(layout.runs[0].end(), captured);
    }

    #[test]
    fn uptime_gaps_within_one_boot_are_kept_when_estimating() {
        let mut stamps: Vec<u32> = (0..10).map(|_| 0x8000_0000 | 100).collect();
        stamps.extend((0..10).map(|_| 0x8000_0000 | 400)); // 300 s later in the same boot
        stamps.extend((0..10).map(|_| T0));
        let layout = ring_layout(&records(&stamps, 5), Codec::PENDANT, UtcMillis(0));
        assert_eq!(layout.runs.len(), 3);
        let gap = layout.runs[1].start.since(layout.runs[0].end());
        assert_eq!(gap, 299_000);
        assert_eq!(layout.runs[1].end(), layout.runs[2].start);
    }

    #[test]
    fn a_clock_that_goes_back_never_overlaps() {
        let mut stamps: Vec<u32> = (0..30).map(|k| T0 + k / 10).collect();
        stamps.extend((0..10).map(|_| T0 - 100));
        let layout = ring_layout(&records(&stamps, 5), Codec::PENDANT, UtcMillis(0));
        assert_eq!(layout.runs.len(), 2);
        assert!(layout.runs[1].start >= layout.runs[0].end());
        assert!(
            layout
                .anomalies
                .iter()
                .any(|a| a.message.contains("went back"))
        );
    }

    #[test]
    fn partial_trailing_record_is_reported_with_its_offset() {
        let mut bytes = records(&[T0, T0], 5);
        bytes.extend_from_slice(&[1, 2, 3]);
        let layout = ring_layout(&bytes, Codec::PENDANT, UtcMillis(0));
        assert_eq!(layout.runs[0].frame_count, 10);
        assert_eq!(layout.anomalies[0].offset, Some(888));
    }

    #[test]
    fn frame_iteration_matches_the_layout() {
        let bytes = records(&[T0, T0, T0 + 100], 3);
        let all: Vec<_> = frames(CaptureFormat::Ring, &bytes).collect();
        assert_eq!(all.len(), 9);
        assert_eq!(all[3].ordinal, 3);
        assert_eq!(all[3].offset, 444 + 4 + 1);
        assert_eq!(all[3].bytes.len(), 60);
        let layout = ring_layout(&bytes, Codec::PENDANT, UtcMillis(0));
        assert_eq!(layout.frames(), 9);
    }

    proptest::proptest! {
        #[test]
        fn runs_partition_frames_and_never_overlap(stamps in proptest::collection::vec(proptest::num::u32::ANY, 0..60)) {
            let bytes = records(&stamps, 4);
            let layout = ring_layout(&bytes, Codec::PENDANT, UtcMillis::from_secs(T0 as i64));
            let mut next = 0;
            for w in layout.runs.windows(2) {
                // Within one clock domain, frames never overlap.
                if w[0].clock == w[1].clock {
                    proptest::prop_assert!(w[1].start >= w[0].end() || !w[0].clock.is_wall());
                }
            }
            for r in &layout.runs {
                proptest::prop_assert_eq!(r.first_frame, next);
                next += r.frame_count;
            }
            proptest::prop_assert_eq!(next, stamps.len() as u64 * 4);
        }
    }
}
