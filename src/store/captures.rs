//! Captures in the ledger: imported bytes, their runs, and their anomalies.

use rusqlite::{OptionalExtension, Row, params};

use super::segments::NewSegment;
use super::{Ledger, LedgerReader, SqlContext, StoreError, cards, files};
use crate::audio::Codec;
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::capture::{Anomaly, CaptureFormat, Run};

/// What is known about a capture when it is added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCapture {
    /// How its bytes are framed.
    pub format: CaptureFormat,
    /// How its frames are encoded.
    pub codec: Codec,
    /// The device that recorded it.
    pub device: String,
    /// Where it came from: a file path, `ble:<id>`, `image:<path>`, `demo`.
    pub origin: String,
    /// Its original file name (for WAL files), or a generated one.
    pub file_name: String,
    /// The start time its name declares, when it has a usable one.
    pub name_start: Option<UtcMillis>,
    /// Trust of `name_start` (WAL files); ring captures carry trust per run.
    pub clock: ClockTrust,
    /// Ring captures: sequence number of the first record.
    pub first_seq: Option<u64>,
    /// Ring captures under custody: the ring id.
    pub ring_id: Option<u64>,
    /// When the bytes left the device (or the file was last written).
    pub captured_at: UtcMillis,
}

/// Whether adding a capture stored something new.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// New bytes, now in the ledger.
    New,
    /// The same bytes were imported before; nothing changed.
    AlreadyImported,
}

/// A capture as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureRow {
    /// Ledger id.
    pub id: i64,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// What it is and where it came from.
    pub meta: NewCapture,
    /// Path of its bytes relative to the data directory.
    pub stored_path: String,
    /// Its size.
    pub bytes: u64,
    /// When it was imported.
    pub imported_at: UtcMillis,
    /// When VAD last ran over it.
    pub analyzed_at: Option<UtcMillis>,
    /// The settings that run used (JSON).
    pub analysis: Option<String>,
}

/// One run of a capture, as recorded after analysis.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRow {
    /// The run's placement.
    pub run: Run,
    /// Frames in it that could not be decoded.
    pub bad_frames: u64,
}

/// An anomaly as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyRow {
    /// The capture it belongs to, if it was imported.
    pub capture_id: Option<i64>,
    /// The file or device it was found in.
    pub origin: String,
    /// Byte offset, when it has one.
    pub offset: Option<u64>,
    /// What was found.
    pub message: String,
    /// When it was recorded.
    pub at: UtcMillis,
}

const CAPTURE_COLUMNS: &str = "id, sha256, format, codec, sample_rate, frame_samples, device, origin, \
     file_name, name_start_ms, clock, first_seq, ring_id, captured_at_ms, stored_path, bytes, \
     imported_at_ms, analyzed_at_ms, analysis";

fn capture_from_row(r: &Row<'_>) -> rusqlite::Result<Result<CaptureRow, StoreError>> {
    let format: String = r.get(2)?;
    let codec: String = r.get(3)?;
    let clock: String = r.get(10)?;
    let Some(format) = CaptureFormat::parse(&format) else {
        return Ok(Err(StoreError::Corrupt(format!(
            "capture format `{format}`"
        ))));
    };
    let Some(codec) = Codec::from_parts(&codec, r.get(4)?, r.get(5)?) else {
        return Ok(Err(StoreError::Corrupt(format!("codec `{codec}`"))));
    };
    let Some(clock) = ClockTrust::parse(&clock) else {
        return Ok(Err(StoreError::Corrupt(format!("clock `{clock}`"))));
    };
    Ok(Ok(CaptureRow {
        id: r.get(0)?,
        sha256: r.get(1)?,
        meta: NewCapture {
            format,
            codec,
            device: r.get(6)?,
            origin: r.get(7)?,
            file_name: r.get(8)?,
            name_start: r.get::<_, Option<i64>>(9)?.map(UtcMillis),
            clock,
            first_seq: r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
            ring_id: r.get::<_, Option<i64>>(12)?.map(|v| v as u64),
            captured_at: UtcMillis(r.get(13)?),
        },
        stored_path: r.get(14)?,
        bytes: r.get::<_, i64>(15)? as u64,
        imported_at: UtcMillis(r.get(16)?),
        analyzed_at: r.get::<_, Option<i64>>(17)?.map(UtcMillis),
        analysis: r.get(18)?,
    }))
}

/// Records a capture whose bytes are already stored durably under `rel`
/// (see [`files::store`]); returns its id, or `None` when a capture of the
/// same bytes is already recorded (another run got there first). Takes a
/// plain connection so that callers can do it inside their own transaction.
pub(super) fn insert_capture(
    conn: &rusqlite::Connection,
    sha: &str,
    rel: &std::path::Path,
    len: u64,
    new: &NewCapture,
) -> Result<Option<i64>, StoreError> {
    conn.execute(
        "INSERT INTO captures (sha256, format, codec, sample_rate, frame_samples, device, origin,
             file_name, name_start_ms, clock, first_seq, ring_id, captured_at_ms, stored_path,
             bytes, imported_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
         ON CONFLICT (sha256) DO NOTHING",
        params![
            sha,
            new.format.as_str(),
            new.codec.name(),
            new.codec.sample_rate(),
            new.codec.frame_samples(),
            new.device,
            new.origin,
            new.file_name,
            new.name_start.map(|t| t.0),
            new.clock.as_str(),
            new.first_seq.map(|v| v as i64),
            new.ring_id.map(|v| v as i64),
            new.captured_at.0,
            rel.to_string_lossy(),
            len as i64,
            UtcMillis::now().0,
        ],
    )
    .ctx("cannot record capture")?;
    Ok((conn.changes() > 0).then(|| conn.last_insert_rowid()))
}

impl LedgerReader {
    /// The capture with this id.
    pub fn capture(&self, id: i64) -> Result<CaptureRow, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {CAPTURE_COLUMNS} FROM captures WHERE id = ?1"),
                [id],
                capture_from_row,
            )
            .optional()
            .ctx("cannot read capture")?
            .ok_or_else(|| StoreError::NotFound(format!("no capture {id}")))?
    }

    /// The capture with these bytes, if imported.
    pub fn capture_by_hash(&self, sha256: &str) -> Result<Option<CaptureRow>, StoreError> {
        self.conn
            .query_row(
                &format!("SELECT {CAPTURE_COLUMNS} FROM captures WHERE sha256 = ?1"),
                [sha256],
                capture_from_row,
            )
            .optional()
            .ctx("cannot read capture")?
            .transpose()
    }

    /// Every capture, oldest import first.
    pub fn captures(&self) -> Result<Vec<CaptureRow>, StoreError> {
        self.query_captures("")
    }

    /// Captures VAD has not run over yet.
    pub fn unanalyzed_captures(&self) -> Result<Vec<CaptureRow>, StoreError> {
        self.query_captures("WHERE analyzed_at_ms IS NULL")
    }

    fn query_captures(&self, filter: &str) -> Result<Vec<CaptureRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {CAPTURE_COLUMNS} FROM captures {filter} ORDER BY id"
            ))
            .ctx("cannot list captures")?;
        let rows = stmt
            .query_map([], capture_from_row)
            .ctx("cannot list captures")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot list captures")?;
        rows.into_iter().collect()
    }

    /// The bytes of a capture, checked against their hash.
    pub fn capture_bytes(&self, capture: &CaptureRow) -> Result<Vec<u8>, StoreError> {
        Ok(files::load(
            &self.data_dir,
            capture.stored_path.as_ref(),
            &capture.sha256,
        )?)
    }

    /// Samples of audio in every analysed capture (16 kHz).
    pub fn audio_samples(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT COALESCE(SUM(samples), 0) FROM runs", [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n.max(0) as u64)
            .ctx("cannot count audio")
    }

    /// The runs of a capture, in order.
    pub fn runs(&self, capture_id: i64) -> Result<Vec<RunRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT first_frame, frame_count, samples, start_ms, clock, bad_frames
                 FROM runs WHERE capture_id = ?1 ORDER BY run_index",
            )
            .ctx("cannot list runs")?;
        let rows = stmt
            .query_map([capture_id], |r| {
                let clock: String = r.get(4)?;
                Ok((
                    Run {
                        first_frame: r.get::<_, i64>(0)? as u64,
                        frame_count: r.get::<_, i64>(1)? as u64,
                        samples: r.get::<_, i64>(2)? as u64,
                        start: UtcMillis(r.get(3)?),
                        clock: ClockTrust::Wall,
                    },
                    clock,
                    r.get::<_, i64>(5)? as u64,
                ))
            })
            .ctx("cannot list runs")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot list runs")?;
        rows.into_iter()
            .map(|(mut run, clock, bad_frames)| {
                run.clock = ClockTrust::parse(&clock)
                    .ok_or_else(|| StoreError::Corrupt(format!("clock `{clock}`")))?;
                Ok(RunRow { run, bad_frames })
            })
            .collect()
    }

    /// The analysed captures of `device` whose audio ends between `from` and
    /// `to` (their last stored run does), each with its runs: the captures a
    /// capture starting then may continue ([`crate::engine::lead_in`]).
    pub fn captures_ending_between(
        &self,
        device: &str,
        from: UtcMillis,
        to: UtcMillis,
    ) -> Result<Vec<(CaptureRow, Vec<RunRow>)>, StoreError> {
        let ids: Vec<i64> = self
            .conn
            .prepare(&format!(
                // A run's end as `Run::end` reckons it (`samples_to_ms`).
                "SELECT r.capture_id FROM runs r JOIN captures c ON c.id = r.capture_id
                 WHERE c.device = ?1
                   AND r.start_ms + r.samples * 1000 / {rate} BETWEEN ?2 AND ?3
                   AND r.run_index =
                       (SELECT MAX(run_index) FROM runs m WHERE m.capture_id = r.capture_id)
                 ORDER BY r.capture_id",
                rate = crate::audio::TARGET_RATE
            ))
            .and_then(|mut stmt| {
                stmt.query_map(rusqlite::params![device, from.0, to.0], |r| r.get(0))?
                    .collect()
            })
            .ctx("cannot list where captures end")?;
        ids.into_iter()
            .map(|id| Ok((self.capture(id)?, self.runs(id)?)))
            .collect()
    }

    /// Every run of every capture as (device, start, samples, clock), in
    /// time order: where each device recorded (and, between, where it did not).
    pub fn recorded_spans(&self) -> Result<Vec<(String, UtcMillis, u64, ClockTrust)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT c.device, r.start_ms, r.samples, r.clock FROM runs r
                 JOIN captures c ON c.id = r.capture_id ORDER BY r.start_ms, c.device",
            )
            .ctx("cannot list runs")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    UtcMillis(r.get(1)?),
                    r.get::<_, i64>(2)?.max(0) as u64,
                    r.get::<_, String>(3)?,
                ))
            })
            .ctx("cannot list runs")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot list runs")?;
        rows.into_iter()
            .map(|(device, start, samples, clock)| {
                let clock = ClockTrust::parse(&clock)
                    .ok_or_else(|| StoreError::Corrupt(format!("clock `{clock}`")))?;
                Ok((device, start, samples, clock))
            })
            .collect()
    }

    /// Anomalies, of one capture or all, oldest first.
    pub fn anomalies(&self, capture_id: Option<i64>) -> Result<Vec<AnomalyRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT capture_id, origin, byte_offset, message, at_ms FROM anomalies
                 WHERE ?1 IS NULL OR capture_id = ?1 ORDER BY id",
            )
            .ctx("cannot list anomalies")?;
        stmt.query_map([capture_id], |r| {
            Ok(AnomalyRow {
                capture_id: r.get(0)?,
                origin: r.get(1)?,
                offset: r.get::<_, Option<i64>>(2)?.map(|o| o as u64),
                message: r.get(3)?,
                at: UtcMillis(r.get(4)?),
            })
        })
        .ctx("cannot list anomalies")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("cannot list anomalies")
    }
}

/// The ledger's note that every capture it holds has a card.
const CARDS_WRITTEN: &str = "capture_cards";

impl Ledger {
    /// Gives every capture recorded before cards existed its card, once
    /// per ledger (see [`cards`]).
    pub(super) fn card_every_capture(&self) -> Result<(), StoreError> {
        if self.meta(CARDS_WRITTEN)?.is_some() {
            return Ok(());
        }
        for c in self.captures()? {
            if cards::read(&self.data_dir, &c.sha256).is_none() {
                cards::write(&self.data_dir, &c.sha256, &c.meta)?;
            }
        }
        self.set_meta(CARDS_WRITTEN, "1")
    }

    /// Stores `bytes` durably and records the capture. The same bytes a
    /// second time are a no-op that returns the existing row.
    pub fn add_capture(
        &mut self,
        bytes: &[u8],
        new: &NewCapture,
    ) -> Result<(Stored, CaptureRow), StoreError> {
        let sha = files::sha256_hex(bytes);
        if let Some(existing) = self.capture_by_hash(&sha)? {
            // The same bytes again: if the stored copy was lost or damaged
            // since, these are what it held, so they restore it.
            let path = self.data_dir.join(&existing.stored_path);
            if std::fs::metadata(&path).map(|m| m.len()).ok() != Some(existing.bytes) {
                tracing::warn!(
                    "restoring the lost capture file {} from {}",
                    path.display(),
                    new.origin
                );
                files::store_hashed(&self.data_dir, bytes, sha)?;
            }
            return Ok((Stored::AlreadyImported, existing));
        }
        let (sha, rel) = files::store_hashed(&self.data_dir, bytes, sha)?;
        cards::write(&self.data_dir, &sha, new)?;
        match insert_capture(&self.conn, &sha, &rel, bytes.len() as u64, new)? {
            Some(id) => Ok((Stored::New, self.capture(id)?)),
            // Another run stored the same bytes since we looked: they are
            // imported, once, which is all either run wanted.
            None => match self.capture_by_hash(&sha)? {
                Some(existing) => Ok((Stored::AlreadyImported, existing)),
                None => Err(StoreError::NotFound(format!("capture {sha}"))),
            },
        }
    }

    /// Records the result of analysing a capture, atomically: its runs, its
    /// anomalies, and its speech segments. Segments whose key already exists
    /// keep their row (and transcript); the capture's other old segments are
    /// removed.
    pub fn save_analysis(
        &mut self,
        capture_id: i64,
        runs: &[RunRow],
        segments: &[NewSegment],
        anomalies: &[Anomaly],
        analysis: &str,
    ) -> Result<(), StoreError> {
        let origin: String = self
            .conn
            .query_row(
                "SELECT origin FROM captures WHERE id = ?1",
                [capture_id],
                |r| r.get(0),
            )
            .ctx("cannot read capture")?;
        let now = UtcMillis::now().0;
        let tx = self.conn.transaction().ctx("cannot start transaction")?;
        tx.execute("DELETE FROM runs WHERE capture_id = ?1", [capture_id])
            .ctx("cannot replace runs")?;
        tx.execute(
            "DELETE FROM anomalies WHERE capture_id = ?1 AND stage = 'analysis'",
            [capture_id],
        )
        .ctx("cannot replace anomalies")?;
        for (i, r) in runs.iter().enumerate() {
            tx.execute(
                "INSERT INTO runs (capture_id, run_index, first_frame, frame_count, samples, start_ms, clock, bad_frames)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    capture_id,
                    i as i64,
                    r.run.first_frame as i64,
                    r.run.frame_count as i64,
                    r.run.samples as i64,
                    r.run.start.0,
                    r.run.clock.as_str(),
                    r.bad_frames as i64
                ],
            )
            .ctx("cannot record run")?;
        }
        for a in anomalies {
            tx.execute(
                "INSERT INTO anomalies (capture_id, origin, stage, byte_offset, message, at_ms)
                 VALUES (?1, ?2, 'analysis', ?3, ?4, ?5)",
                params![
                    capture_id,
                    origin,
                    a.offset.map(|o| o as i64),
                    a.message,
                    now
                ],
            )
            .ctx("cannot record anomaly")?;
        }
        super::segments::replace_for_capture(&tx, capture_id, segments)?;
        tx.execute(
            "UPDATE captures SET analyzed_at_ms = ?2, analysis = ?3 WHERE id = ?1",
            params![capture_id, now, analysis],
        )
        .ctx("cannot mark capture analysed")?;
        tx.commit().ctx("cannot commit analysis")
    }

    /// Moves a capture's runs to new start times, and its segments with
    /// them, atomically. The runs must be the ones stored (same frames and
    /// samples): only their placement changed, as when audio recorded without
    /// a clock is estimated again once more of the device's stream arrived.
    /// Returns how many segments moved.
    pub fn retime_runs(&mut self, capture_id: i64, runs: &[Run]) -> Result<usize, StoreError> {
        let tx = self.conn.transaction().ctx("cannot start transaction")?;
        for (i, r) in runs.iter().enumerate() {
            tx.execute(
                "UPDATE runs SET start_ms = ?3 WHERE capture_id = ?1 AND run_index = ?2",
                params![capture_id, i as i64, r.start.0],
            )
            .ctx("cannot move run")?;
        }
        let moves = {
            let mut stmt = tx
                .prepare(
                    "SELECT id, run_index, sample_start, sample_end FROM segments WHERE capture_id = ?1",
                )
                .ctx("cannot list segments")?;
            stmt.query_map([capture_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)? as usize,
                    r.get::<_, i64>(2)? as u64,
                    r.get::<_, i64>(3)? as u64,
                ))
            })
            .ctx("cannot list segments")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot list segments")?
        };
        let mut moved = 0;
        for (id, run_index, start, end) in moves {
            let Some(run) = runs.get(run_index) else {
                return Err(StoreError::Corrupt(format!(
                    "segment {id} lies in run {run_index} of capture {capture_id}, which has {} runs",
                    runs.len()
                )));
            };
            moved += tx
                .execute(
                    "UPDATE segments SET start_ms = ?2, end_ms = ?3 WHERE id = ?1",
                    params![id, run.time_at(start).0, run.time_at(end).0],
                )
                .ctx("cannot move segment")?;
        }
        tx.commit().ctx("cannot commit new run times")?;
        Ok(moved)
    }

    /// Records an anomaly found while importing: about a capture, or about a
    /// file that could not be imported at all (`capture_id` is `None`). These
    /// survive re-analysis.
    pub fn add_anomaly(
        &self,
        capture_id: Option<i64>,
        origin: &str,
        anomaly: &Anomaly,
    ) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO anomalies (capture_id, origin, stage, byte_offset, message, at_ms)
                 VALUES (?1, ?2, 'import', ?3, ?4, ?5)",
                params![
                    capture_id,
                    origin,
                    anomaly.offset.map(|o| o as i64),
                    anomaly.message,
                    UtcMillis::now().0
                ],
            )
            .ctx("cannot record anomaly")?;
        Ok(())
    }
}
