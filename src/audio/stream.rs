//! Reading the audio of a run, whole (streamed) or a range of it.

use std::ops::ControlFlow;

use super::codec::Codec;
use super::decode::{DecodeError, FrameDecoder};
use crate::device::capture::{self, CaptureFormat, Run};

/// What decoding a run found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames decoded.
    pub frames: u64,
    /// Frames libopus rejected (concealed, counted).
    pub bad_frames: u64,
    /// Byte offset in the capture of the first rejected frame.
    pub first_bad_offset: Option<u64>,
    /// Samples produced at 16 kHz.
    pub samples: u64,
    /// The sink asked to stop before the end of the run.
    pub stopped: bool,
}

/// Samples handed to the sink at a time, at most.
const BLOCK: usize = 16_000;

/// Streams every sample of `run` to `sink` in blocks, in bounded memory.
pub fn decode_run(
    format: CaptureFormat,
    bytes: &[u8],
    codec: Codec,
    run: &Run,
    mut sink: impl FnMut(&[f32]) -> ControlFlow<()>,
) -> Result<DecodeStats, DecodeError> {
    let mut dec = FrameDecoder::new(codec)?;
    let mut stats = DecodeStats::default();
    let mut buf = Vec::with_capacity(BLOCK + 2048);
    let frames = capture::frames(format, bytes)
        .skip(run.first_frame as usize)
        .take(run.frame_count as usize);
    for frame in frames {
        if !dec.decode(frame.bytes, &mut buf) {
            stats.bad_frames += 1;
            stats.first_bad_offset.get_or_insert(frame.offset);
        }
        stats.frames += 1;
        if buf.len() >= BLOCK {
            stats.samples += buf.len() as u64;
            if sink(&buf).is_break() {
                stats.stopped = true;
                return Ok(stats);
            }
            buf.clear();
        }
    }
    dec.finish(&mut buf);
    if !buf.is_empty() {
        stats.samples += buf.len() as u64;
        stats.stopped = sink(&buf).is_break();
    }
    Ok(stats)
}

/// Frames decoded and thrown away before a range starts, so the Opus decoder's
/// prediction has settled by the first sample that is kept.
const PREROLL_FRAMES: u64 = 5;

/// The 16 kHz samples `[from, to)` of `run` (sample offsets within the run).
pub fn decode_range(
    format: CaptureFormat,
    bytes: &[u8],
    codec: Codec,
    run: &Run,
    from: u64,
    to: u64,
) -> Result<Vec<f32>, DecodeError> {
    let to = to.min(run.samples);
    if from >= to {
        return Ok(Vec::new());
    }
    let mut dec = FrameDecoder::new(codec)?;
    let mut out = Vec::with_capacity((to - from) as usize);
    let mut scratch = Vec::new();
    // Walk frames by their nominal length to find where decoding must start.
    let mut pos = 0u64; // sample offset of the current frame's start
    let mut starts: Vec<u64> = Vec::new(); // start offsets of the last few frames
    let frames = capture::frames(format, bytes)
        .skip(run.first_frame as usize)
        .take(run.frame_count as usize);
    let mut decoding = false;
    let mut decoded_from = 0u64;
    let mut pending: Vec<&[u8]> = Vec::new();
    for frame in frames {
        let len = codec.frame_samples_at_target(frame.bytes.len());
        if !decoding {
            pending.push(frame.bytes);
            starts.push(pos);
            if pending.len() as u64 > PREROLL_FRAMES + 1 {
                pending.remove(0);
                starts.remove(0);
            }
            if pos + len > from {
                decoding = true;
                decoded_from = starts[0];
                for f in pending.drain(..) {
                    dec.decode(f, &mut scratch);
                }
            }
        } else {
            dec.decode(frame.bytes, &mut scratch);
        }
        pos += len;
        if decoding && decoded_from + scratch.len() as u64 >= to + 64 {
            break;
        }
    }
    dec.finish(&mut scratch);
    let skip = (from - decoded_from) as usize;
    let want = (to - from) as usize;
    if skip < scratch.len() {
        let end = (skip + want).min(scratch.len());
        out.extend_from_slice(&scratch[skip..end]);
    }
    out.resize(want, 0.0);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ClockTrust, UtcMillis};
    use crate::device::wal;

    fn pcm16_capture(seconds: usize) -> (Vec<u8>, Run) {
        // A ramp so every sample is distinguishable.
        let samples: Vec<i16> = (0..seconds * 16000).map(|i| (i % 30000) as i16).collect();
        let frames: Vec<Vec<u8>> = samples
            .chunks(320)
            .map(|c| c.iter().flat_map(|s| s.to_le_bytes()).collect())
            .collect();
        let mut body = Vec::new();
        wal::write_body(&mut body, frames.iter().map(|f| &f[..])).unwrap();
        let layout = capture::wal_layout(
            &body,
            Codec::Pcm16 { sample_rate: 16000 },
            UtcMillis(0),
            ClockTrust::Wall,
        );
        (body, layout.runs[0])
    }

    #[test]
    fn a_range_matches_the_same_slice_of_the_whole() {
        let (body, run) = pcm16_capture(3);
        let codec = Codec::Pcm16 { sample_rate: 16000 };
        let mut whole = Vec::new();
        let stats = decode_run(CaptureFormat::Wal, &body, codec, &run, |b| {
            whole.extend_from_slice(b);
            ControlFlow::Continue(())
        })
        .unwrap();
        assert!(!stats.stopped);
        assert_eq!(stats.samples, 48000);
        let part = decode_range(CaptureFormat::Wal, &body, codec, &run, 17_001, 30_777).unwrap();
        assert_eq!(part, whole[17_001..30_777].to_vec());
        // A sink that stops ends the decode at once.
        let mut seen = 0;
        let stopped = decode_run(CaptureFormat::Wal, &body, codec, &run, |b| {
            seen += b.len();
            ControlFlow::Break(())
        })
        .unwrap();
        assert!(stopped.stopped && seen == 16_000, "{stopped:?} {seen}");
        // Clamped at the end of the run.
        let tail = decode_range(CaptureFormat::Wal, &body, codec, &run, 47_990, 60_000).unwrap();
        assert_eq!(tail.len(), 10);
    }
}
