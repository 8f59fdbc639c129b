//! Audio back out of the ledger: one segment, or a conversation's speech,
//! as 16 kHz samples to play or as a WAV file (`omi-sync export`, the TUI's
//! `w` and Space).
//!
//! A [`Clip`] is the plan: the segments in time order, where each starts in
//! the clip, and the silence kept before it (the real silence, shortened to
//! at most [`MAX_GAP_MS`], so a conversation with long pauses plays as its
//! speech). Segments are decoded one at a time from their captures
//! ([`ClipReader`] keeps the capture in hand while consecutive segments share
//! it), so neither playing nor writing holds more than one segment's audio.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::transcribe::audio::SegmentAudio;
use crate::audio::{self, TARGET_RATE};
use crate::cancel::Cancel;
use crate::store::{LedgerReader, StoreError, files};
use crate::stt::wav;

/// The longest silence kept between two segments of a clip, ms.
pub const MAX_GAP_MS: i64 = 1000;

/// Samples per millisecond at 16 kHz.
const PER_MS: i64 = (TARGET_RATE / 1000) as i64;

/// Why audio could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The ledger failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A capture could not be decoded.
    #[error("cannot decode capture {path}: {message}")]
    Decode {
        /// The capture file (relative to the data directory).
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// The WAV file could not be written.
    #[error("cannot write {path}: {source}{hint}", hint = crate::disk::full_hint(source))]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// There is nothing to export.
    #[error("no segments to export")]
    Empty,
    /// Stopped on request (the partial file is removed).
    #[error("cancelled")]
    Cancelled,
}

/// One segment's place in a clip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClipPart {
    /// The segment's ledger id.
    pub segment: i64,
    /// Where its audio is.
    pub audio: SegmentAudio,
    /// Silence before it in the clip, samples.
    pub gap_before: u64,
    /// Where its first sample is in the clip.
    pub at: u64,
}

impl ClipPart {
    /// Its length, samples.
    pub fn len(&self) -> u64 {
        self.audio.samples()
    }

    /// Whether it holds no audio.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// One past its last sample in the clip.
    pub fn end(&self) -> u64 {
        self.at + self.len()
    }
}

/// The segments of a clip, in time order (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Clip {
    /// The parts.
    pub parts: Vec<ClipPart>,
}

impl Clip {
    /// The clip of these segments, read from `ledger`, in time order.
    pub fn of(ledger: &LedgerReader, segments: &[i64]) -> Result<Clip, ExportError> {
        let mut rows = segments
            .iter()
            .map(|id| ledger.segment(*id))
            .collect::<Result<Vec<_>, _>>()?;
        rows.sort_by_key(|s| (s.found.start, s.id));
        let mut parts: Vec<ClipPart> = Vec::with_capacity(rows.len());
        let mut at = 0u64;
        let mut prev_end: Option<i64> = None;
        for s in &rows {
            let capture = ledger.capture(s.capture_id)?;
            let audio = SegmentAudio::of(s, &capture, &ledger.runs(s.capture_id)?)?;
            let gap_ms = prev_end.map_or(0, |e| (s.found.start.0 - e).clamp(0, MAX_GAP_MS));
            let gap_before = (gap_ms * PER_MS) as u64;
            at += gap_before;
            prev_end = Some(s.found.end.0);
            let part = ClipPart {
                segment: s.id,
                audio,
                gap_before,
                at,
            };
            at = part.end();
            parts.push(part);
        }
        Ok(Clip { parts })
    }

    /// Its length, samples.
    pub fn samples(&self) -> u64 {
        self.parts.last().map_or(0, ClipPart::end)
    }

    /// Its length, seconds.
    pub fn seconds(&self) -> f64 {
        self.samples() as f64 / f64::from(TARGET_RATE)
    }

    /// The part playing at clip sample `at` (the one after it, in a gap).
    pub fn part_at(&self, at: u64) -> Option<&ClipPart> {
        let i = self.parts.partition_point(|p| p.end() <= at);
        self.parts.get(i)
    }

    /// Where segment `id` starts in the clip.
    pub fn start_of(&self, id: i64) -> Option<u64> {
        self.parts.iter().find(|p| p.segment == id).map(|p| p.at)
    }
}

/// Decodes a clip's segments, keeping the capture of the last one read.
pub struct ClipReader {
    data_dir: PathBuf,
    held: Option<(PathBuf, Vec<u8>)>,
}

impl ClipReader {
    /// A reader of captures in `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        ClipReader {
            data_dir: data_dir.to_path_buf(),
            held: None,
        }
    }

    /// The 16 kHz samples of one part.
    pub fn samples(&mut self, part: &ClipPart) -> Result<Vec<f32>, ExportError> {
        let a = &part.audio;
        let held = matches!(&self.held, Some((p, _)) if *p == a.stored_path);
        if !held {
            let bytes = files::load(&self.data_dir, &a.stored_path, &a.sha256)
                .map_err(|e| ExportError::Store(e.into()))?;
            self.held = Some((a.stored_path.clone(), bytes));
        }
        let (_, bytes) = self.held.as_ref().expect("held just above");
        audio::decode_range(
            a.format,
            bytes,
            a.codec,
            &a.run,
            a.sample_start,
            a.sample_end,
        )
        .map_err(|e| ExportError::Decode {
            path: a.stored_path.clone(),
            message: e.to_string(),
        })
    }
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exported {
    /// The file.
    pub path: PathBuf,
    /// Segments in it.
    pub segments: usize,
    /// Its length, seconds.
    pub seconds: f64,
    /// Its size, bytes.
    pub bytes: u64,
}

/// Writes `clip` as a 16 kHz mono 16-bit WAV file at `path` (through a
/// temporary file renamed into place), one segment at a time.
pub fn write_wav(
    data_dir: &Path,
    clip: &Clip,
    path: &Path,
    cancel: &Cancel,
) -> Result<Exported, ExportError> {
    if clip.parts.is_empty() {
        return Err(ExportError::Empty);
    }
    let write_err = |source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(write_err)?;
    let samples = clip.samples();
    {
        let mut out = std::io::BufWriter::new(tmp.as_file_mut());
        out.write_all(&wav::pcm16_header(samples as usize, TARGET_RATE))
            .map_err(write_err)?;
        let mut reader = ClipReader::new(data_dir);
        for part in &clip.parts {
            if cancel.is_cancelled() {
                return Err(ExportError::Cancelled);
            }
            out.write_all(&vec![0u8; part.gap_before as usize * 2])
                .map_err(write_err)?;
            let mut got = reader.samples(part)?;
            // Exactly the planned length, so the header stays true.
            got.resize(part.len() as usize, 0.0);
            out.write_all(&wav::pcm16_samples(&got))
                .map_err(write_err)?;
        }
        out.flush().map_err(write_err)?;
    }
    tmp.as_file().sync_all().map_err(write_err)?;
    tmp.persist(path).map_err(|e| write_err(e.error))?;
    Ok(Exported {
        path: path.to_path_buf(),
        segments: clip.parts.len(),
        seconds: clip.seconds(),
        bytes: 44 + samples * 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ClockTrust, UtcMillis};
    use crate::store::Ledger;
    use crate::store::testdata::add_tone_capture;

    /// A ledger with one PCM capture of a 440 Hz tone and segments at these
    /// (start, end) ms within it.
    fn tone_ledger(spans: &[(i64, i64)]) -> (tempfile::TempDir, Ledger) {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        add_tone_capture(
            &mut l,
            "omi",
            UtcMillis(1_717_000_000_000),
            ClockTrust::Wall,
            spans,
        );
        (dir, l)
    }

    #[test]
    fn a_clip_keeps_speech_and_shortens_silence() {
        // 0.5 s, then 2 s of silence (kept as 1 s), then 0.25 s.
        let (dir, l) = tone_ledger(&[(0, 500), (2500, 2750)]);
        let ids: Vec<i64> = l.segments().unwrap().iter().map(|s| s.id).collect();
        let clip = Clip::of(&l, &[ids[1], ids[0]]).unwrap();
        assert_eq!(
            clip.parts[0].segment, ids[0],
            "time order, whatever was asked"
        );
        assert_eq!(clip.parts[1].gap_before, 16_000);
        assert_eq!(clip.samples(), 8_000 + 16_000 + 4_000);
        assert_eq!(clip.part_at(0).unwrap().segment, ids[0]);
        assert_eq!(
            clip.part_at(10_000).unwrap().segment,
            ids[1],
            "a gap plays toward the next"
        );
        assert!(clip.part_at(clip.samples()).is_none());
        assert_eq!(clip.start_of(ids[1]), Some(24_000));

        let out = dir.path().join("out.wav");
        let done = write_wav(dir.path(), &clip, &out, &Cancel::new()).unwrap();
        let w = wav::decode(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(w.samples.len() as u64, clip.samples());
        assert_eq!(done.bytes, std::fs::metadata(&out).unwrap().len());
        let rms = |s: &[f32]| (s.iter().map(|v| v * v).sum::<f32>() / s.len() as f32).sqrt();
        assert!(rms(&w.samples[..8_000]) > 0.1, "the tone is there");
        assert!(rms(&w.samples[9_000..23_000]) < 1e-4, "the gap is silent");
    }

    #[test]
    fn nothing_to_write_and_a_cancel_leave_no_file() {
        let (dir, l) = tone_ledger(&[(0, 500)]);
        let out = dir.path().join("none.wav");
        assert!(matches!(
            write_wav(dir.path(), &Clip::default(), &out, &Cancel::new()),
            Err(ExportError::Empty)
        ));
        let ids: Vec<i64> = l.segments().unwrap().iter().map(|s| s.id).collect();
        let clip = Clip::of(&l, &ids).unwrap();
        let cancel = Cancel::new();
        cancel.cancel();
        assert!(matches!(
            write_wav(dir.path(), &clip, &out, &cancel),
            Err(ExportError::Cancelled)
        ));
        assert!(!out.exists());
        assert_eq!(
            std::fs::read_dir(dir.path())
                .unwrap()
                .filter(|e| e
                    .as_ref()
                    .unwrap()
                    .path()
                    .extension()
                    .is_some_and(|x| x == "wav"))
                .count(),
            0
        );
    }
}
