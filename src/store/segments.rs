//! Speech segments in the ledger: where VAD found speech, and its transcript.

use rusqlite::{OptionalExtension, Row, Transaction, params};
use serde::{Deserialize, Serialize};

use super::{Ledger, LedgerReader, SqlContext, StoreError};
use crate::clock::{ClockTrust, UtcMillis};
use crate::timeline::{Segment, SegmentStatus};

/// A segment found by VAD, before it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSegment {
    /// Content-derived key: the same speech found again gets the same key.
    pub key: String,
    /// Which run of the capture it is in.
    pub run_index: u32,
    /// First sample (16 kHz) within the run.
    pub sample_start: u64,
    /// One past the last sample within the run.
    pub sample_end: u64,
    /// The recording device.
    pub device: String,
    /// Trust of its times.
    pub clock: ClockTrust,
    /// Absolute start.
    pub start: UtcMillis,
    /// Absolute end.
    pub end: UtcMillis,
}

/// A stored segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentRow {
    /// Ledger id.
    pub id: i64,
    /// The capture it was found in.
    pub capture_id: i64,
    /// Where it is and when.
    pub found: NewSegment,
    /// Transcription status.
    pub status: SegmentStatus,
    /// Transcript, once transcribed.
    pub text: Option<String>,
    /// Why transcription failed, if it did.
    pub error: Option<String>,
    /// When the transcript (or failure) was recorded.
    pub transcribed_at: Option<UtcMillis>,
}

/// One transcribed word at absolute time, as the ledger keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WordTiming {
    /// Absolute start, Unix ms.
    pub start_ms: i64,
    /// Absolute end, Unix ms.
    pub end_ms: i64,
    /// The word, punctuation included.
    pub text: String,
}

impl SegmentRow {
    /// The segment as the timeline sees it.
    pub fn to_timeline(&self) -> Segment {
        Segment {
            id: self.id,
            key: self.found.key.clone(),
            device: self.found.device.clone(),
            clock: self.found.clock,
            start: self.found.start,
            end: self.found.end,
            status: self.status,
            text: self.text.clone(),
            joined: Vec::new(),
        }
    }
}

const SEGMENT_COLUMNS: &str = "id, capture_id, key, run_index, sample_start, sample_end, device, clock, \
     start_ms, end_ms, status, text, error, transcribed_at_ms";

fn segment_from_row(r: &Row<'_>) -> rusqlite::Result<Result<SegmentRow, StoreError>> {
    let clock: String = r.get(7)?;
    let status: String = r.get(10)?;
    let (Some(clock), Some(status)) = (ClockTrust::parse(&clock), SegmentStatus::parse(&status))
    else {
        return Ok(Err(StoreError::Corrupt(format!(
            "segment clock `{clock}` / status `{status}`"
        ))));
    };
    Ok(Ok(SegmentRow {
        id: r.get(0)?,
        capture_id: r.get(1)?,
        found: NewSegment {
            key: r.get(2)?,
            run_index: r.get::<_, i64>(3)? as u32,
            sample_start: r.get::<_, i64>(4)? as u64,
            sample_end: r.get::<_, i64>(5)? as u64,
            device: r.get(6)?,
            clock,
            start: UtcMillis(r.get(8)?),
            end: UtcMillis(r.get(9)?),
        },
        status,
        text: r.get(11)?,
        error: r.get(12)?,
        transcribed_at: r.get::<_, Option<i64>>(13)?.map(UtcMillis),
    }))
}

/// Replaces a capture's segments inside an analysis transaction, keeping the
/// rows (ids, transcripts) of segments whose key is unchanged.
pub(super) fn replace_for_capture(
    tx: &Transaction<'_>,
    capture_id: i64,
    segments: &[NewSegment],
) -> Result<(), StoreError> {
    tx.execute_batch(
        "CREATE TEMP TABLE IF NOT EXISTS keep_keys (key TEXT PRIMARY KEY); DELETE FROM keep_keys;",
    )
    .ctx("cannot prepare segment update")?;
    let mut inserted = Vec::new();
    for s in segments {
        let added = tx.execute(
            "INSERT INTO segments (key, capture_id, run_index, sample_start, sample_end, device, clock, start_ms, end_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (key) DO NOTHING",
            params![
                s.key,
                capture_id,
                s.run_index,
                s.sample_start as i64,
                s.sample_end as i64,
                s.device,
                s.clock.as_str(),
                s.start.0,
                s.end.0
            ],
        )
        .ctx("cannot record segment")?;
        if added == 1 {
            inserted.push(s);
        }
        tx.execute(
            "INSERT OR IGNORE INTO keep_keys (key) VALUES (?1)",
            [&s.key],
        )
        .ctx("cannot record segment")?;
    }
    super::carry::carry_transcripts(tx, capture_id, &inserted)?;
    tx.execute(
        "DELETE FROM segments WHERE capture_id = ?1 AND key NOT IN (SELECT key FROM keep_keys)",
        [capture_id],
    )
    .ctx("cannot remove superseded segments")?;
    tx.execute_batch("DELETE FROM keep_keys;")
        .ctx("cannot finish segment update")?;
    Ok(())
}

impl LedgerReader {
    /// Every segment, in time order.
    pub fn segments(&self) -> Result<Vec<SegmentRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {SEGMENT_COLUMNS} FROM segments ORDER BY start_ms, device, id"
            ))
            .ctx("cannot list segments")?;
        let rows = stmt
            .query_map([], segment_from_row)
            .ctx("cannot list segments")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot list segments")?;
        rows.into_iter().collect()
    }

    /// The timeline under `rules`: every segment, with the edits in effect.
    /// The one place the timeline is built from the ledger.
    pub fn timeline(
        &self,
        rules: &crate::timeline::Rules,
    ) -> Result<crate::timeline::Timeline, StoreError> {
        let segments: Vec<_> = self
            .segments()?
            .iter()
            .map(SegmentRow::to_timeline)
            .collect();
        Ok(crate::timeline::build(
            &segments,
            &self.active_overrides()?,
            rules,
        ))
    }

    /// The segment with this id.
    pub fn segment(&self, id: i64) -> Result<SegmentRow, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {SEGMENT_COLUMNS} FROM segments WHERE id = ?1"),
                [id],
                segment_from_row,
            )
            .optional()
            .ctx("cannot read segment")?
            .ok_or_else(|| {
                StoreError::NotFound(format!("no segment {id} (see `omi-sync segments`)"))
            })?
    }

    /// Segments waiting for transcription (pending, or failed earlier), in
    /// time order.
    pub fn untranscribed_segments(&self) -> Result<Vec<SegmentRow>, StoreError> {
        Ok(self
            .segments()?
            .into_iter()
            .filter(|s| matches!(s.status, SegmentStatus::Pending | SegmentStatus::Failed))
            .collect())
    }

    /// The word timings stored with a segment's transcript (empty when it has
    /// none).
    pub fn segment_words(&self, id: i64) -> Result<Vec<WordTiming>, StoreError> {
        let json: Option<String> = self
            .conn
            .query_row("SELECT words FROM segments WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .ctx("cannot read word timings")?
            .flatten();
        match json {
            None => Ok(Vec::new()),
            Some(j) => serde_json::from_str(&j)
                .map_err(|e| StoreError::Corrupt(format!("word timings of segment {id}: {e}"))),
        }
    }
}

impl Ledger {
    /// Records a finished transcript with its word timings, the moment it
    /// lands: `speech` with text when there are words, else `silent`.
    pub fn record_transcript(&self, id: i64, words: &[WordTiming]) -> Result<(), StoreError> {
        let text = words
            .iter()
            .map(|w| w.text.as_str())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let status = if text.is_empty() {
            SegmentStatus::Silent
        } else {
            SegmentStatus::Speech
        };
        let json = serde_json::to_string(words)
            .map_err(|e| StoreError::Corrupt(format!("cannot encode word timings: {e}")))?;
        let n = self
            .conn
            .execute(
                "UPDATE segments SET status = ?2, text = ?3, error = NULL, words = ?4, transcribed_at_ms = ?5 \
                 WHERE id = ?1",
                params![
                    id,
                    status.as_str(),
                    (!text.is_empty()).then_some(text),
                    json,
                    UtcMillis::now().0
                ],
            )
            .ctx("cannot record transcript")?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no segment {id}")));
        }
        Ok(())
    }

    /// Puts these segments back to `pending`, forgetting their transcripts
    /// and word timings, so the next transcription does them again (a
    /// re-transcription). Returns how many rows changed.
    pub fn reset_transcripts(&mut self, ids: &[i64]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction().ctx("cannot start transaction")?;
        let mut n = 0;
        for id in ids {
            n += tx
                .execute(
                    "UPDATE segments SET status = 'pending', text = NULL, error = NULL, words = NULL, \
                     transcribed_at_ms = NULL WHERE id = ?1",
                    [id],
                )
                .ctx("cannot reset transcript")?;
        }
        tx.commit().ctx("cannot commit transcript reset")?;
        Ok(n)
    }

    /// Records a transcription result for one segment, the moment it lands.
    pub fn set_transcript(
        &self,
        id: i64,
        status: SegmentStatus,
        text: Option<&str>,
        error: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self
            .conn
            .execute(
                "UPDATE segments SET status = ?2, text = ?3, error = ?4, transcribed_at_ms = ?5 WHERE id = ?1",
                params![id, status.as_str(), text, error, UtcMillis::now().0],
            )
            .ctx("cannot record transcript")?;
        if n == 0 {
            return Err(StoreError::NotFound(format!("no segment {id}")));
        }
        Ok(())
    }
}
