//! Ring records placed on absolute time, across the captures of one stream.
//!
//! A pull stores a ring as many captures of a batch each, so a stretch of
//! audio, or a stretch recorded while the pendant's clock was not set, is
//! often cut across several of them. Placing each capture on its own would
//! give every clock-not-set piece its own guess (each ending at the moment it
//! was pulled: overlapping, and in the wrong order) and could let two
//! captures' wall-clock audio overlap by a coarse second. So [`StreamLayout`]
//! takes the captures of one stream in sequence order and lays them out as
//! one recording:
//!
//! 1. Records are read in order, keeping the run being built across capture
//!    boundaries when the captures are contiguous (the next capture starts at
//!    the seq the previous one ended at). A run is split into one *piece* per
//!    capture, so each capture still gets its own [`Run`]s. Within a run,
//!    frames are counted from its start and record timestamps are coarse
//!    anchors (`omi-facts.md` §1): a timestamp more than
//!    [`GAP_TOLERANCE_MS`] ahead of the frame count is a recording gap and
//!    starts a new run; a clock change starts a new run; a wall clock that
//!    goes back starts a new run placed after all earlier wall-clock audio,
//!    so frames never overlap and sequence order holds.
//! 2. Runs without a wall clock are grouped into blocks of consecutive runs.
//!    A block keeps its internal spacing (gaps within one boot) and is placed
//!    to end where the next wall-clock run of the **stream** begins, else to
//!    begin where the previous one ended, else to end when its last record
//!    left the pendant (its capture's `captured_at`). A block that does not
//!    fit between the wall-clock audio around it (a wrong clock) is placed
//!    right after the audio before it, moving the wall-clock audio after it
//!    later as far as needed, with an anomaly.
//!
//! [`ring_layout`](crate::device::capture::ring_layout) is the one-capture case.

use crate::audio::Codec;
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::capture::{Anomaly, Layout, Run, samples_to_ms};
use crate::device::record::{PayloadAnomaly, RECORD_BYTES, Record};

/// How far a record timestamp may run ahead of the frame count before it is
/// a recording gap (the timestamp has 1 s resolution).
pub const GAP_TOLERANCE_MS: i64 = 1000;

/// A run of contiguous audio in its own clock domain, possibly spanning captures.
#[derive(Debug, Clone)]
struct StreamRun {
    samples: u64,
    /// Start in the record clock's own milliseconds (wall or uptime).
    anchor_ms: i64,
    /// Added to `anchor_ms` to place the run: non-zero only after a wall
    /// clock went back, so the run follows the audio before it.
    shift_ms: i64,
    clock: ClockTrust,
    /// `captured_at` of the capture the run currently ends in.
    captured_at: UtcMillis,
    /// The capture its first piece is in (for anomalies).
    first_capture: usize,
}

impl StreamRun {
    /// Where the next frame falls, in the record clock.
    fn expected_ms(&self) -> i64 {
        self.anchor_ms + samples_to_ms(self.samples)
    }

    /// Where the run ends once placed (wall runs).
    fn placed_end_ms(&self) -> i64 {
        self.expected_ms() + self.shift_ms
    }
}

/// The part of a run that lies in one capture.
#[derive(Debug, Clone, Copy)]
struct Piece {
    capture: usize,
    run: usize,
    first_frame: u64,
    frame_count: u64,
    /// Samples of the run before this piece.
    samples_before: u64,
    samples: u64,
}

#[derive(Debug, Clone)]
struct CaptureState {
    anomalies: Vec<Anomaly>,
}

enum Placement {
    Continue,
    NewRun(i64),
}

/// Lays out the captures of one ring stream (see the module docs): push the
/// captures in sequence order, then [`finish`](Self::finish).
#[derive(Debug, Clone)]
pub struct StreamLayout {
    codec: Codec,
    runs: Vec<StreamRun>,
    pieces: Vec<Piece>,
    captures: Vec<CaptureState>,
    /// One past the last record's seq, when known.
    next_seq: Option<u64>,
    /// The last run with a wall clock.
    last_wall: Option<usize>,
}

impl StreamLayout {
    /// An empty stream of records with frames in `codec`.
    pub fn new(codec: Codec) -> Self {
        StreamLayout {
            codec,
            runs: Vec::new(),
            pieces: Vec::new(),
            captures: Vec::new(),
            next_seq: None,
            last_wall: None,
        }
    }

    /// Starts the layout after audio already placed: `last` is the last run
    /// of the capture before the first one to be pushed (placed as stored),
    /// `next_seq` the seq that capture ended at. Audio continues from it when
    /// the next capture is contiguous, and wall-clock audio is kept after it.
    /// Only a wall-clock run is a sound starting point; others are ignored.
    pub fn continue_after(&mut self, last: Run, next_seq: u64) {
        if !last.clock.is_wall() || !self.runs.is_empty() {
            return;
        }
        self.runs.push(StreamRun {
            samples: last.samples,
            anchor_ms: last.start.0,
            shift_ms: 0,
            clock: last.clock,
            captured_at: last.end(),
            first_capture: 0,
        });
        self.last_wall = Some(0);
        self.next_seq = Some(next_seq);
    }

    /// Adds the next capture: `bytes` are its records, `first_seq` the seq
    /// of the first one (when known: audio continues across captures only
    /// when their seqs are contiguous), `captured_at` when they left the
    /// pendant. Captures must come in sequence order.
    pub fn push(&mut self, bytes: &[u8], first_seq: Option<u64>, captured_at: UtcMillis) {
        let c = self.captures.len();
        let contiguous = first_seq.is_some() && first_seq == self.next_seq;
        let mut anomalies = Vec::new();
        let mut ordinal = 0u64;
        // Whether the next record may continue the stream's last run.
        let mut may_continue = contiguous;
        let records = bytes.chunks_exact(RECORD_BYTES);
        let tail = records.remainder().len();
        let count = bytes.len() / RECORD_BYTES;
        for (k, rec) in records.enumerate() {
            let offset = (k * RECORD_BYTES) as u64;
            let Some(record) = Record::parse(rec) else {
                continue;
            };
            if let Some(PayloadAnomaly::DanglingLength { offset: at, len }) = record.anomaly {
                anomalies.push(Anomaly {
                    offset: Some(offset + 4 + at as u64),
                    message: format!(
                        "record {k}: dangling length byte {len} at payload offset {at}; \
                         the stale bytes after it are ignored"
                    ),
                });
            }
            if record.frames.is_empty() {
                continue;
            }
            let n = record.frames.len() as u64;
            let samples: u64 = record
                .frame_bytes()
                .map(|f| self.codec.frame_samples_at_target(f.len()))
                .sum();
            let clock = record.time.trust();
            let ts_ms = record.time.seconds() as i64 * 1000;
            let place = match self.runs.last_mut() {
                Some(run) if may_continue && run.clock == clock => {
                    let expected = run.expected_ms();
                    if clock == ClockTrust::Unknown {
                        Placement::Continue
                    } else if ts_ms - expected > GAP_TOLERANCE_MS {
                        Placement::NewRun(ts_ms)
                    } else if expected - ts_ms > 2 * GAP_TOLERANCE_MS {
                        if clock == ClockTrust::Wall {
                            anomalies.push(Anomaly {
                                offset: Some(offset),
                                message: format!(
                                    "record {k}: the pendant's clock went back {:.1} s; \
                                     audio kept in order after the previous frame",
                                    (expected - ts_ms) as f64 / 1000.0
                                ),
                            });
                        }
                        // Uptime going back: the pendant rebooted.
                        Placement::NewRun(ts_ms)
                    } else {
                        // A coarse anchor: the run cannot have started before
                        // this record's second minus the audio counted before it.
                        let lower_bound = ts_ms - samples_to_ms(run.samples);
                        if lower_bound > run.anchor_ms {
                            run.anchor_ms = lower_bound;
                        }
                        Placement::Continue
                    }
                }
                _ => Placement::NewRun(ts_ms),
            };
            may_continue = true;
            match place {
                Placement::Continue => {
                    let r = self.runs.len() - 1;
                    let run = &mut self.runs[r];
                    let before = run.samples;
                    run.samples += samples;
                    run.captured_at = captured_at;
                    match self.pieces.last_mut() {
                        Some(p) if p.capture == c && p.run == r => {
                            p.frame_count += n;
                            p.samples += samples;
                        }
                        _ => self.pieces.push(Piece {
                            capture: c,
                            run: r,
                            first_frame: ordinal,
                            frame_count: n,
                            samples_before: before,
                            samples,
                        }),
                    }
                }
                Placement::NewRun(anchor_ms) => {
                    // Wall-clock frames never overlap earlier wall-clock frames.
                    let mut shift_ms = 0;
                    if clock == ClockTrust::Wall
                        && let Some(w) = self.last_wall
                    {
                        let prev = &self.runs[w];
                        shift_ms = (prev.placed_end_ms() - anchor_ms).max(0);
                        let adjacent = w + 1 == self.runs.len();
                        if !adjacent && shift_ms > 2 * GAP_TOLERANCE_MS {
                            anomalies.push(Anomaly {
                                offset: Some(offset),
                                message: format!(
                                    "record {k}: the pendant's clock is {:.1} s behind the \
                                     audio recorded before it; audio kept in order after it",
                                    shift_ms as f64 / 1000.0
                                ),
                            });
                        }
                    }
                    self.runs.push(StreamRun {
                        samples,
                        anchor_ms,
                        shift_ms,
                        clock,
                        captured_at,
                        first_capture: c,
                    });
                    self.pieces.push(Piece {
                        capture: c,
                        run: self.runs.len() - 1,
                        first_frame: ordinal,
                        frame_count: n,
                        samples_before: 0,
                        samples,
                    });
                }
            }
            if clock == ClockTrust::Wall {
                self.last_wall = Some(self.runs.len() - 1);
            }
            ordinal += n;
        }
        if tail > 0 {
            anomalies.push(Anomaly {
                offset: Some((bytes.len() - tail) as u64),
                message: format!("a partial record of {tail} bytes at the end; ignored"),
            });
        }
        self.next_seq = first_seq.map(|s| s + count as u64);
        self.captures.push(CaptureState { anomalies });
    }

    /// Places every run and returns one [`Layout`] per pushed capture, in order.
    pub fn finish(self) -> Vec<Layout> {
        let (starts, squeezed) = place_on_wall_clock(&self.runs);
        let mut out: Vec<Layout> = self
            .captures
            .into_iter()
            .map(|c| Layout {
                runs: Vec::new(),
                anomalies: c.anomalies,
            })
            .collect();
        for p in &self.pieces {
            let run = &self.runs[p.run];
            out[p.capture].runs.push(Run {
                first_frame: p.first_frame,
                frame_count: p.frame_count,
                samples: p.samples,
                start: starts[p.run].plus_ms(samples_to_ms(p.samples_before)),
                clock: run.clock,
            });
        }
        for (run, overlap_ms) in squeezed {
            let r = &self.runs[run];
            out[r.first_capture].anomalies.push(Anomaly {
                offset: None,
                message: format!(
                    "{:.1} s recorded while the clock was not set do not fit between the \
                     wall-clock audio around them (the pendant's clock was probably wrong); \
                     placed right after the audio before them, and the audio after them \
                     {:.1} s later",
                    samples_to_ms(r.samples) as f64 / 1000.0,
                    overlap_ms as f64 / 1000.0
                ),
            });
        }
        for layout in &mut out {
            let estimated = layout.runs.iter().filter(|r| !r.clock.is_wall()).count();
            if estimated > 0 {
                layout.anomalies.push(Anomaly {
                    offset: None,
                    message: format!(
                        "{estimated} stretch(es) recorded while the pendant's clock was not set; \
                         their times are estimated"
                    ),
                });
            }
        }
        out
    }
}

/// Gives every run a wall-clock start (see the module docs, step 2). Also
/// returns the estimated blocks that could not fit before the next wall run:
/// (first run of the block, overlap in ms).
fn place_on_wall_clock(runs: &[StreamRun]) -> (Vec<UtcMillis>, Vec<(usize, i64)>) {
    let mut starts: Vec<UtcMillis> = runs
        .iter()
        .map(|r| UtcMillis(r.anchor_ms + r.shift_ms))
        .collect();
    let end_of = |starts: &[UtcMillis], i: usize| starts[i].plus_ms(samples_to_ms(runs[i].samples));
    let mut squeezed = Vec::new();
    let mut i = 0;
    while i < runs.len() {
        if runs[i].clock.is_wall() {
            i += 1;
            continue;
        }
        let block_start = i;
        while i < runs.len() && !runs[i].clock.is_wall() {
            i += 1;
        }
        let block = &runs[block_start..i];
        // Offsets of each run from the block's start, in ms.
        let mut offsets = Vec::with_capacity(block.len());
        let mut cursor = 0i64;
        for (j, r) in block.iter().enumerate() {
            if j > 0 {
                let prev = &block[j - 1];
                let prev_end = prev.anchor_ms + samples_to_ms(prev.samples);
                let same_boot = r.clock == ClockTrust::Uptime
                    && prev.clock == ClockTrust::Uptime
                    && r.anchor_ms >= prev_end;
                cursor += if same_boot { r.anchor_ms - prev_end } else { 0 };
            }
            offsets.push(cursor);
            cursor += samples_to_ms(r.samples);
        }
        let block_len = cursor;
        let mut start = if i < runs.len() {
            starts[i].plus_ms(-block_len)
        } else if block_start > 0 {
            end_of(&starts, block_start - 1)
        } else {
            block[block.len() - 1].captured_at.plus_ms(-block_len)
        };
        // Never before the audio preceding it.
        if block_start > 0 {
            let prev_end = end_of(&starts, block_start - 1);
            if start < prev_end {
                if i < runs.len() {
                    squeezed.push((block_start, prev_end.since(start)));
                }
                start = prev_end;
            }
        }
        for (j, off) in offsets.into_iter().enumerate() {
            starts[block_start + j] = start.plus_ms(off);
        }
        // A squeezed block pushes the wall-clock audio after it later, so
        // frames still never overlap and sequence order holds.
        let mut k = i;
        while k < runs.len() && runs[k].clock.is_wall() {
            let prev_end = end_of(&starts, k - 1);
            if starts[k] >= prev_end {
                break;
            }
            starts[k] = prev_end;
            k += 1;
        }
    }
    (starts, squeezed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::record::build_record;

    const T0: u32 = 1_717_000_000;

    /// Records of 5 frames (100 ms) each, stamped as the firmware does:
    /// the second of the record's first frame from `start`.
    fn records(start: u32, count: usize) -> Vec<u8> {
        let frame = [0x55u8; 60];
        let frames: Vec<&[u8]> = (0..5).map(|_| &frame[..]).collect();
        (0..count)
            .flat_map(|k| build_record(start + (k / 10) as u32, &frames).0)
            .collect()
    }

    /// Splits `bytes` into captures of `per` records and lays them out as a stream.
    fn split_layout(bytes: &[u8], per: usize, captured_at: UtcMillis) -> Vec<Layout> {
        let mut s = StreamLayout::new(Codec::PENDANT);
        for (i, chunk) in bytes.chunks(per * RECORD_BYTES).enumerate() {
            s.push(chunk, Some((i * per) as u64), captured_at.plus_ms(i as i64));
        }
        s.finish()
    }

    fn all_runs(layouts: &[Layout]) -> Vec<Run> {
        layouts
            .iter()
            .flat_map(|l| l.runs.iter().copied())
            .collect()
    }

    #[test]
    fn split_captures_lay_out_exactly_like_one() {
        let mut bytes = records(0x8000_0000 | 100, 600); // 60 s without a clock
        bytes.extend(records(T0, 300)); // then 30 s with one
        let captured = UtcMillis::from_secs(T0 as i64 + 7200);
        let whole = split_layout(&bytes, 900, captured);
        assert_eq!(whole.len(), 1);
        let one = &whole[0].runs;
        assert_eq!(one.len(), 2);
        assert_eq!(one[0].end(), one[1].start);
        for per in [7, 36, 288] {
            let parts = split_layout(&bytes, per, captured);
            let runs = all_runs(&parts);
            // Same audio, same placement: the pieces tile the one-capture runs.
            assert_eq!(runs.first().unwrap().start, one[0].start, "per {per}");
            assert_eq!(runs.last().unwrap().end(), one[1].end(), "per {per}");
            for w in runs.windows(2) {
                assert_eq!(w[0].end(), w[1].start, "per {per}: no gap, no overlap");
            }
            let est: u64 = runs
                .iter()
                .filter(|r| !r.clock.is_wall())
                .map(|r| r.samples)
                .sum();
            assert_eq!(est, one[0].samples);
        }
    }

    #[test]
    fn clock_not_set_audio_split_across_captures_ends_where_the_next_capture_s_wall_clock_begins() {
        // Three captures with no clock at all, then one whose clock is set.
        let mut bytes = records(0x8000_0000 | 100, 300);
        bytes.extend(records(T0, 100));
        let layouts = split_layout(&bytes, 100, UtcMillis::from_secs(T0 as i64 + 9999));
        assert_eq!(layouts.len(), 4);
        let wall = layouts[3].runs[0];
        assert_eq!(wall.start, UtcMillis::from_secs(T0 as i64));
        let est = all_runs(&layouts[..3]);
        assert_eq!(est.len(), 3);
        assert_eq!(est[2].end(), wall.start);
        assert_eq!(est[0].end(), est[1].start);
        assert_eq!(est[1].end(), est[2].start);
        assert!(
            layouts[..3]
                .iter()
                .all(|l| l.anomalies.iter().any(|a| a.message.contains("estimated")))
        );
    }

    #[test]
    fn trailing_clock_not_set_audio_ends_when_its_last_capture_was_pulled() {
        let mut bytes = records(T0, 100);
        bytes.extend(records(0x8000_0000 | 5, 200));
        // No wall clock after the block: it follows the audio before it.
        let layouts = split_layout(&bytes, 100, UtcMillis::from_secs(T0 as i64 + 50_000));
        let runs = all_runs(&layouts);
        assert_eq!(runs[1].start, runs[0].end());
        // With no wall clock at all: it ends when the last capture was pulled.
        let only = records(0x8000_0000 | 5, 200);
        let pulled = UtcMillis::from_secs(T0 as i64 + 50_000);
        let layouts = split_layout(&only, 50, pulled);
        let runs = all_runs(&layouts);
        assert_eq!(runs.last().unwrap().end(), pulled.plus_ms(3));
        for w in runs.windows(2) {
            assert_eq!(w[0].end(), w[1].start);
        }
    }

    #[test]
    fn continuing_after_stored_audio_places_the_rest_as_the_whole_stream_would() {
        let mut bytes = records(T0, 95);
        bytes.extend(records(T0 + 600, 100));
        let whole = all_runs(&split_layout(&bytes, 50, UtcMillis(0)));
        // Lay out captures 2.. only, continuing after capture 1's last run.
        let first = split_layout(&bytes[..50 * RECORD_BYTES], 50, UtcMillis(0));
        let mut s = StreamLayout::new(Codec::PENDANT);
        s.continue_after(*first[0].runs.last().unwrap(), 50);
        for (i, chunk) in bytes[50 * RECORD_BYTES..]
            .chunks(50 * RECORD_BYTES)
            .enumerate()
        {
            s.push(chunk, Some(50 + (i * 50) as u64), UtcMillis(0));
        }
        let rest = all_runs(&s.finish());
        assert_eq!(&whole[whole.len() - rest.len()..], &rest[..]);
    }

    #[test]
    fn a_gap_in_seqs_breaks_continuation_but_keeps_order() {
        let a = records(T0, 50);
        let b = records(T0 + 3, 50); // in fact recorded from T0+3
        let mut s = StreamLayout::new(Codec::PENDANT);
        s.push(&a, Some(0), UtcMillis(0));
        s.push(&b, Some(80), UtcMillis(0)); // seqs 50..80 never arrived
        let layouts = s.finish();
        assert_eq!(
            layouts[1].runs[0].start,
            UtcMillis::from_secs(T0 as i64 + 5)
        );
        assert!(layouts[1].runs[0].start >= layouts[0].runs[0].end());
    }

    #[test]
    fn a_wall_clock_behind_earlier_wall_audio_is_kept_after_it() {
        let mut bytes = records(T0, 100); // 10 s from T0
        bytes.extend(records(0x8000_0000 | 7, 20)); // 2 s without a clock
        bytes.extend(records(T0 - 60, 30)); // the clock is now a minute behind
        let layouts = split_layout(&bytes, 40, UtcMillis(0));
        let runs = all_runs(&layouts);
        for w in runs.windows(2) {
            assert!(w[1].start >= w[0].end(), "{runs:?}");
        }
        let all: Vec<_> = layouts.iter().flat_map(|l| &l.anomalies).collect();
        assert!(all.iter().any(|a| a.message.contains("behind")), "{all:?}");
        assert!(
            all.iter().any(|a| a.message.contains("do not fit")),
            "{all:?}"
        );
    }

    proptest::proptest! {
        #[test]
        fn any_split_keeps_order_and_never_overlaps(
            stamps in proptest::collection::vec((proptest::bool::ANY, 0u32..4000), 1..40),
            per in 1usize..30,
        ) {
            // Runs of records, each with or without a clock, at random offsets.
            let mut bytes = Vec::new();
            for (wall, at) in &stamps {
                let start = if *wall { T0 + at } else { 0x8000_0000 | at };
                bytes.extend(records(start, 7));
            }
            let layouts = split_layout(&bytes, per, UtcMillis::from_secs(T0 as i64 + 10_000));
            let runs = all_runs(&layouts);
            let mut next = 0;
            for l in &layouts {
                for r in &l.runs {
                    proptest::prop_assert_eq!(r.first_frame, next);
                    next += r.frame_count;
                }
                next = 0;
            }
            let frames: u64 = runs.iter().map(|r| r.frame_count).sum();
            proptest::prop_assert_eq!(frames, stamps.len() as u64 * 7 * 5);
            // Sequence order, no overlap: except an estimated block squeezed
            // between wall audio (reported), each run starts after the last ends.
            let squeezed = layouts.iter().flat_map(|l| &l.anomalies).any(|a| a.message.contains("do not fit"));
            for w in runs.windows(2) {
                if !squeezed {
                    proptest::prop_assert!(w[1].start >= w[0].end(), "{:?}", runs);
                }
            }
            // Wall-clock audio never overlaps other wall-clock audio.
            let wall: Vec<_> = runs.iter().filter(|r| r.clock.is_wall()).collect();
            for w in wall.windows(2) {
                proptest::prop_assert!(w[1].start >= w[0].end());
            }
        }
    }
}
