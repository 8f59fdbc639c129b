//! Where a segment's audio lives, and reading a stretch of it back.
//!
//! A [`SegmentAudio`] is what a worker needs to decode a segment's samples
//! without the ledger: the capture file (read and checked against its hash),
//! how it is framed and encoded, the run, and the segment's sample range.
//! Only the stretch asked for is decoded ([`audio::decode_range`]), so a
//! worker holds at most one window's audio.

use std::path::{Path, PathBuf};

use crate::audio::{self, Codec};
use crate::device::capture::{CaptureFormat, Run};
use crate::store::{CaptureRow, LedgerReader, RunRow, SegmentRow, StoreError, files};
use crate::stt::SttError;

/// Samples per millisecond at 16 kHz.
const SAMPLES_PER_MS: i64 = (audio::TARGET_RATE / 1000) as i64;

/// The name used for audio failures in [`SttError`]s.
const ORIGIN: &str = "audio";

/// Where one segment's audio is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentAudio {
    /// The capture's bytes, relative to the data directory.
    pub stored_path: PathBuf,
    /// Their SHA-256 (checked on every read).
    pub sha256: String,
    /// Where the capture came from (a file path, `ble:<id>`, `image:<path>`).
    pub origin: String,
    /// How the capture is framed.
    pub format: CaptureFormat,
    /// How its frames are encoded.
    pub codec: Codec,
    /// The run the segment is in.
    pub run: Run,
    /// The segment's first sample within the run.
    pub sample_start: u64,
    /// One past its last sample.
    pub sample_end: u64,
    /// The segment's absolute start, Unix ms (matches `sample_start`).
    pub start_ms: i64,
}

impl SegmentAudio {
    /// Where the audio of segment `s` is, given its capture and that
    /// capture's runs.
    pub fn of(s: &SegmentRow, capture: &CaptureRow, runs: &[RunRow]) -> Result<Self, StoreError> {
        let Some(run) = runs.get(s.found.run_index as usize) else {
            return Err(StoreError::Corrupt(format!(
                "segment {} points at run {} of capture {}, which has {} runs",
                s.id,
                s.found.run_index,
                s.capture_id,
                runs.len()
            )));
        };
        Ok(SegmentAudio {
            stored_path: capture.stored_path.clone().into(),
            sha256: capture.sha256.clone(),
            origin: capture.meta.origin.clone(),
            format: capture.meta.format,
            codec: capture.meta.codec,
            run: run.run,
            sample_start: s.found.sample_start,
            sample_end: s.found.sample_end,
            start_ms: s.found.start.0,
        })
    }

    /// Where the audio of the segment with this id is, read from `ledger`.
    pub fn read(ledger: &LedgerReader, id: i64) -> Result<Self, StoreError> {
        let s = ledger.segment(id)?;
        let capture = ledger.capture(s.capture_id)?;
        Self::of(&s, &capture, &ledger.runs(s.capture_id)?)
    }

    /// Why the capture cannot be read, and what helps: a capture file that
    /// is gone or damaged is never transcribed by running `transcribe`
    /// again, only by importing its original again (which restores it).
    fn unreadable(&self, e: &files::FileError) -> String {
        let gone = match e {
            files::FileError::Damaged { .. } => true,
            files::FileError::Io { source, .. } => source.kind() == std::io::ErrorKind::NotFound,
        };
        if gone {
            format!(
                "the audio of this capture is gone ({e}): running transcribe again cannot help; \
                 import its original ({}) again to restore it, then run omi-sync transcribe",
                self.origin
            )
        } else {
            format!("cannot read capture {}: {e}", self.stored_path.display())
        }
    }

    /// The segment's length in samples.
    pub fn samples(&self) -> u64 {
        self.sample_end.saturating_sub(self.sample_start)
    }

    /// The samples of absolute time `from_ms .. to_ms`, decoded from the
    /// capture in `data_dir`: the end is clamped to the segment, the start
    /// may reach before it (a pre-roll) down to the start of its run.
    pub fn load(&self, data_dir: &Path, from_ms: i64, to_ms: i64) -> Result<Vec<f32>, SttError> {
        let offset = |ms: i64| {
            let s = (ms - self.start_ms) * SAMPLES_PER_MS;
            self.sample_start
                .saturating_add_signed(s)
                .min(self.sample_end)
        };
        let (from, to) = (offset(from_ms), offset(to_ms));
        if from >= to {
            return Ok(Vec::new());
        }
        let bytes = files::load(data_dir, &self.stored_path, &self.sha256).map_err(|e| {
            SttError::Engine {
                engine: ORIGIN,
                message: self.unreadable(&e),
            }
        })?;
        audio::decode_range(self.format, &bytes, self.codec, &self.run, from, to).map_err(|e| {
            SttError::Engine {
                engine: ORIGIN,
                message: format!("cannot decode capture {}: {e}", self.stored_path.display()),
            }
        })
    }
}
