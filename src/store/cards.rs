//! Capture cards: what a capture is, written beside its bytes.
//!
//! The bytes in `captures/xx/<sha256>` say nothing about themselves: not
//! whether they are a phone-app body or pendant records, nor their codec,
//! device or time. The ledger knows, but a ledger can be lost (truncated by
//! a crash of the file system, deleted by hand). So every capture gets a
//! card, `captures/xx/<sha256>.json`, written durably before the capture is
//! recorded, and [`rebuild`](super::rebuild) makes a new ledger from the
//! bytes and their cards alone.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::NewCapture;
use super::files::{self, FileError};
use crate::audio::Codec;
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::capture::CaptureFormat;

/// A capture's card, as stored (plain values, readable by a person).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Card {
    format: String,
    codec: String,
    sample_rate: u32,
    frame_samples: u32,
    device: String,
    origin: String,
    file_name: String,
    name_start_ms: Option<i64>,
    clock: String,
    first_seq: Option<u64>,
    ring_id: Option<u64>,
    captured_at_ms: i64,
}

/// Where the card of the capture with this hash lives, relative to the data directory.
pub fn relative_path(sha256: &str) -> PathBuf {
    let mut p = files::relative_path(sha256).into_os_string();
    p.push(".json");
    PathBuf::from(p)
}

/// Writes the card of capture `sha256` durably (replacing any).
pub fn write(data_dir: &Path, sha256: &str, capture: &NewCapture) -> Result<(), FileError> {
    let card = Card {
        format: capture.format.as_str().to_string(),
        codec: capture.codec.name().to_string(),
        sample_rate: capture.codec.sample_rate(),
        frame_samples: capture.codec.frame_samples(),
        device: capture.device.clone(),
        origin: capture.origin.clone(),
        file_name: capture.file_name.clone(),
        name_start_ms: capture.name_start.map(|t| t.0),
        clock: capture.clock.as_str().to_string(),
        first_seq: capture.first_seq,
        ring_id: capture.ring_id,
        captured_at_ms: capture.captured_at.0,
    };
    let json = serde_json::to_vec_pretty(&card).expect("a card serialises");
    let path = data_dir.join(relative_path(sha256));
    files::create_private_dir(path.parent().expect("cards have a parent"))?;
    files::write_atomically(&path, &json)
}

/// Reads the card of capture `sha256`: `None` when it has none, an error
/// naming the file when it cannot be read or understood.
pub fn read(data_dir: &Path, sha256: &str) -> Option<Result<NewCapture, String>> {
    let path = data_dir.join(relative_path(sha256));
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => return Some(Err(format!("cannot read {}: {e}", path.display()))),
    };
    let bad = |what: &str| format!("{}: {what}", path.display());
    Some((|| {
        let card: Card = serde_json::from_slice(&bytes).map_err(|e| bad(&e.to_string()))?;
        Ok(NewCapture {
            format: CaptureFormat::parse(&card.format)
                .ok_or_else(|| bad(&format!("unknown format `{}`", card.format)))?,
            codec: Codec::from_parts(&card.codec, card.sample_rate, card.frame_samples)
                .ok_or_else(|| bad(&format!("unknown codec `{}`", card.codec)))?,
            device: card.device,
            origin: card.origin,
            file_name: card.file_name,
            name_start: card.name_start_ms.map(UtcMillis),
            clock: ClockTrust::parse(&card.clock)
                .ok_or_else(|| bad(&format!("unknown clock `{}`", card.clock)))?,
            first_seq: card.first_seq,
            ring_id: card.ring_id,
            captured_at: UtcMillis(card.captured_at_ms),
        })
    })())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_card_reads_back_as_written_and_a_bad_one_names_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let capture = NewCapture {
            format: CaptureFormat::Ring,
            codec: Codec::Opus { frame_samples: 320 },
            device: "omi-1".into(),
            origin: "ble:AA".into(),
            file_name: "ring-1-2".into(),
            name_start: None,
            clock: ClockTrust::Wall,
            first_seq: Some(7),
            ring_id: Some(42),
            captured_at: UtcMillis(1_750_000_000_000),
        };
        let sha = "ab".repeat(32);
        assert!(read(dir.path(), &sha).is_none());
        write(dir.path(), &sha, &capture).unwrap();
        assert_eq!(read(dir.path(), &sha).unwrap().unwrap(), capture);
        std::fs::write(dir.path().join(relative_path(&sha)), b"{").unwrap();
        let err = read(dir.path(), &sha).unwrap().unwrap_err();
        assert!(err.contains(&format!("{sha}.json")), "{err}");
    }
}
