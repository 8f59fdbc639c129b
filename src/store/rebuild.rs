//! Rebuilding a lost ledger from the captures and their cards.
//!
//! When the ledger is missing, empty or damaged while `captures/` holds
//! audio ([`StoreError::LedgerLost`]), [`Ledger::rebuild`] keeps the old
//! ledger files aside (renamed, never deleted), makes a new ledger, and
//! records every capture again from its bytes and its [card](super::cards):
//! phone-app bodies as they were imported, pendant records through the same
//! path a pull takes (so streams and the resume point come back). A capture
//! without a card (none was written before cards existed) that is a whole
//! phone-app body comes back with an estimated time, held from the cloud
//! until reviewed. Nothing in `captures/` is changed or removed.
//!
//! What lived only in the ledger does not come back: transcripts (run VAD
//! and transcription again), merges and splits, and the push record. The
//! cloud knows a re-sent conversation by its id, derived from its speech, so
//! conversations left as VAD found them are not duplicated; edited ones are
//! new conversations to it.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{LEDGER_FILE, Ledger, NewCapture, RingBatch, StoreError, cards, files};
use crate::audio::Codec;
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::capture::CaptureFormat;
use crate::device::wal;

/// What a rebuild did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RebuildReport {
    /// The old ledger's files, as renamed (kept for support).
    pub kept_aside: Vec<PathBuf>,
    /// Phone-app captures recorded again from their cards.
    pub phone_files: usize,
    /// Pendant records recorded again.
    pub ring_records: u64,
    /// Captures that had no card, recorded as phone-app bodies with an
    /// estimated time (their hashes).
    pub without_card: Vec<String>,
    /// Captures that could not be recorded, and why. Their files stay.
    pub not_recovered: Vec<String>,
}

impl Ledger {
    /// Rebuilds the ledger of `data_dir` from its captures (see the module
    /// docs). Returns `None`, changing nothing, when the ledger is not lost.
    pub fn rebuild(data_dir: &Path) -> Result<Option<(Ledger, RebuildReport)>, StoreError> {
        match Ledger::open(data_dir) {
            Ok(_) => return Ok(None),
            Err(StoreError::LedgerLost { .. }) => {}
            Err(e) => return Err(e),
        }
        let mut report = RebuildReport {
            kept_aside: keep_aside(data_dir)?,
            ..RebuildReport::default()
        };
        let mut ledger = Ledger::open_as_is(data_dir, true)?;
        let mut rings: Vec<(NewCapture, Vec<u8>)> = Vec::new();
        for sha in files::stored_hashes(data_dir) {
            let bytes = match files::load(data_dir, &files::relative_path(&sha), &sha) {
                Ok(b) => b,
                Err(e) => {
                    report.not_recovered.push(e.to_string());
                    continue;
                }
            };
            match cards::read(data_dir, &sha) {
                Some(Ok(meta)) if meta.format == CaptureFormat::Ring => rings.push((meta, bytes)),
                Some(Ok(meta)) => {
                    ledger.add_capture(&bytes, &meta)?;
                    report.phone_files += 1;
                }
                Some(Err(e)) => report.not_recovered.push(e),
                None if is_whole_phone_body(&bytes) => {
                    let file = data_dir.join(files::relative_path(&sha));
                    let captured_at = UtcMillis::modified(&file).unwrap_or_else(UtcMillis::now);
                    ledger.add_capture(&bytes, &recovered(&sha, captured_at))?;
                    report.without_card.push(sha);
                }
                None => report.not_recovered.push(format!(
                    "{}: no card says what it is, and it is not a phone-app body",
                    data_dir.join(files::relative_path(&sha)).display()
                )),
            }
        }
        // Pendant records in the order they were pulled, device by device.
        rings.sort_by_key(|(m, _)| (m.device.clone(), m.ring_id, m.first_seq, m.captured_at));
        for (meta, bytes) in &rings {
            let stored = ledger.add_ring_records(&RingBatch {
                device: &meta.device,
                ring_id: meta.ring_id,
                first_seq: meta.first_seq.unwrap_or(0),
                records: bytes,
                codec: meta.codec,
                origin: &meta.origin,
                captured_at: meta.captured_at,
            })?;
            report.ring_records += stored.new_records;
        }
        ledger.card_every_capture()?;
        Ok(Some((ledger, report)))
    }
}

/// Renames the ledger's files out of the way (`ledger.sqlite3.lost-<ms>`).
fn keep_aside(data_dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let stamp = UtcMillis::now().0;
    let mut kept = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let from = data_dir.join(format!("{LEDGER_FILE}{suffix}"));
        if from.exists() {
            let to = data_dir.join(format!("{LEDGER_FILE}.lost-{stamp}{suffix}"));
            std::fs::rename(&from, &to).map_err(|source| files::FileError::Io {
                action: "cannot move the lost ledger aside",
                path: from.clone(),
                source,
            })?;
            kept.push(to);
        }
    }
    Ok(kept)
}

/// Whether `bytes` are frames from the first byte to the last.
fn is_whole_phone_body(bytes: &[u8]) -> bool {
    let mut frames = wal::Frames::new(bytes);
    frames.by_ref().count() > 0 && frames.end().is_none()
}

/// What a phone-app body without a card is taken to be: the pendant's
/// codec, an unknown clock (its time estimated, held from the cloud).
fn recovered(sha: &str, captured_at: UtcMillis) -> NewCapture {
    NewCapture {
        format: CaptureFormat::Wal,
        codec: Codec::PENDANT,
        device: "omi".to_string(),
        origin: format!("recovered:{sha}"),
        file_name: format!("recovered-{}.bin", &sha[..12]),
        name_start: None,
        clock: ClockTrust::Unknown,
        first_seq: None,
        ring_id: None,
        captured_at,
    }
}
