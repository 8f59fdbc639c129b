//! Rings pulled from pendants: each device's streams, its resume point, the
//! seqs every ring capture holds, and records delivered twice.
//!
//! A **stream** is one ring of one device as the host saw it: sequence
//! numbers are unique within it and restart in the next one (a CLEAR, or a
//! new ring id after the firmware replaced its ring). The device's **resume
//! point** `(ring_id, durable_seq)` says where its current stream's durable
//! copy ends.
//!
//! [`Ledger::add_ring_records`] is what a pull's durable sink calls. The bytes
//! are written first (temporary file, fsync, rename, directory fsync:
//! [`files::store_hashed`]), then ONE SQLite transaction records the
//! capture(s), the seqs they hold, the content index of their records, and the
//! new resume point. A crash before the commit leaves at most an unreferenced
//! file (adopted by its hash next time); after it, everything. So the resume
//! point can never run ahead of the audio it stands for, and the pendant is
//! told to free records only after this returns.
//!
//! Nothing is stored twice:
//!
//! - **same seqs**: records whose seq the stream already holds (a span of an
//!   earlier capture of the same stream) are skipped;
//! - **same content from another ring**: after a power loss the firmware may
//!   start a new ring id and deliver records already pulled again, under new
//!   seqs. Each record that can be recognised by its content gets a 128-bit
//!   digest in `ring_records`: its 4-byte timestamp followed by the first 12
//!   bytes of the SHA-256 of its 444 bytes. The timestamp first keeps the
//!   index in recording order, so a pull appends to it instead of rewriting
//!   pages all over it (which made the index, not the audio, the cost of a
//!   fast pull); the hash tells records of the same second apart. A record whose
//!   digest the device already holds *from another stream* is a duplicate and
//!   is skipped. Recognisable means: its clock was set (a wall-clock second
//!   plus the exact Opus bytes name one moment of one device), or, for
//!   records without a clock (seconds since boot recur after every reboot),
//!   its frames are not all identical (identical frames are what silence
//!   encodes to, and two boots' silent seconds must not be mistaken for one).
//!   Records equal within one stream are never merged: a quiet second can
//!   hold several identical records, all of which are audio;
//! - **same bytes**: a capture whose bytes are already stored (by SHA-256) is
//!   not stored again.
//!
//! Skipped records split a batch: the new records are stored as one capture
//! per contiguous run of seqs, so a ring capture always holds consecutive
//! records (`ring_spans`), which is what places its audio on time.

use std::ops::Range;

use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::captures::insert_capture;
use super::{Ledger, LedgerReader, NewCapture, SqlContext, StoreError, files};
use crate::audio::Codec;
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::capture::CaptureFormat;
use crate::device::record::{RECORD_BYTES, Record, RecordTime};
use crate::device::session::ResumePoint;

/// Whole records pulled from a device, to store.
#[derive(Debug, Clone, Copy)]
pub struct RingBatch<'a> {
    /// The device key.
    pub device: &'a str,
    /// The ring id (custody firmware, or a variant C image), if known.
    pub ring_id: Option<u64>,
    /// Seq of the first record.
    pub first_seq: u64,
    /// Consecutive 444-byte records.
    pub records: &'a [u8],
    /// How their frames are encoded.
    pub codec: Codec,
    /// Where they came from (`ble:ID`, `sim:PATH`, `image:PATH`).
    pub origin: &'a str,
    /// When they left the device.
    pub captured_at: UtcMillis,
}

/// What [`Ledger::add_ring_records`] did with a batch.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RingStored {
    /// The stream the records belong to.
    pub stream_id: i64,
    /// Captures created (none if nothing was new).
    pub captures: Vec<i64>,
    /// Records stored now.
    pub new_records: u64,
    /// Records whose seq the stream already held.
    pub already_stored: u64,
    /// Records already held with the same content from another ring, or
    /// as a capture of the same bytes.
    pub duplicates: u64,
}

/// The seqs one ring capture holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingSpan {
    /// The capture.
    pub capture_id: i64,
    /// Its stream.
    pub stream_id: i64,
    /// Its records' seqs.
    pub seqs: Range<u64>,
}

/// What the ledger remembers of a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DeviceState {
    stream_id: Option<i64>,
    ring_id: Option<u64>,
    durable_seq: Option<u64>,
}

fn id_to_sql(id: Option<u64>) -> Option<i64> {
    id.map(|v| v as i64)
}

fn id_from_sql(id: Option<i64>) -> Option<u64> {
    id.map(|v| v as u64)
}

/// The content digest of a record that can be recognised by its content
/// (see the module docs), or `None`.
pub fn dedupe_digest(record: &[u8]) -> Option<[u8; 16]> {
    let parsed = Record::parse(record)?;
    let recognisable = match parsed.time {
        RecordTime::Wall(_) => true,
        RecordTime::Uptime(_) | RecordTime::Unknown => {
            let mut frames = parsed.frame_bytes();
            match frames.next() {
                Some(first) => frames.any(|f| f != first),
                None => false,
            }
        }
    };
    if !recognisable {
        return None;
    }
    let d = Sha256::digest(&record[..RECORD_BYTES]);
    let mut out = [0u8; 16];
    out[..4].copy_from_slice(&record[..4]);
    out[4..].copy_from_slice(&d[..12]);
    Some(out)
}

/// What becomes of one record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    New(Option<[u8; 16]>),
    AlreadyStored,
    Duplicate,
}

impl LedgerReader {
    fn device_state(&self, device: &str) -> Result<Option<DeviceState>, StoreError> {
        self.conn
            .query_row(
                "SELECT stream_id, ring_id, durable_seq FROM device_state WHERE device = ?1",
                [device],
                |r| {
                    Ok(DeviceState {
                        stream_id: r.get(0)?,
                        ring_id: id_from_sql(r.get(1)?),
                        durable_seq: r.get::<_, Option<i64>>(2)?.map(|v| v as u64),
                    })
                },
            )
            .optional()
            .ctx("cannot read the device state")
    }

    /// Where the durable copy of `device`'s current ring ends, if the ledger
    /// holds one (a pull resumes there).
    pub fn ring_resume_point(&self, device: &str) -> Result<Option<ResumePoint>, StoreError> {
        Ok(self.device_state(device)?.and_then(|s| {
            s.stream_id
                .and(s.durable_seq)
                .map(|durable_seq| ResumePoint {
                    ring_id: s.ring_id,
                    durable_seq,
                })
        }))
    }

    /// Every device's resume point, with when it last moved.
    pub fn resume_points(&self) -> Result<Vec<(String, ResumePoint, UtcMillis)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT device, ring_id, durable_seq, updated_at_ms FROM device_state
                 WHERE stream_id IS NOT NULL AND durable_seq IS NOT NULL ORDER BY device",
            )
            .ctx("cannot read the device states")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    ResumePoint {
                        ring_id: id_from_sql(r.get(1)?),
                        durable_seq: r.get::<_, i64>(2)? as u64,
                    },
                    UtcMillis(r.get(3)?),
                ))
            })
            .ctx("cannot read the device states")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot read the device states")?;
        Ok(rows)
    }

    /// Whether the ledger holds a record with exactly these bytes for
    /// `device` (only records recognisable by their content are indexed; see
    /// the module docs).
    pub fn holds_record(&self, device: &str, record: &[u8]) -> Result<bool, StoreError> {
        let Some(digest) = dedupe_digest(record) else {
            return Ok(false);
        };
        self.conn
            .query_row(
                "SELECT 1 FROM ring_records WHERE device = ?1 AND digest = ?2",
                params![device, &digest[..]],
                |_| Ok(()),
            )
            .optional()
            .map(|o| o.is_some())
            .ctx("cannot read the record index")
    }

    /// The span of a ring capture, if it was pulled through
    /// [`add_ring_records`](Self::add_ring_records).
    pub fn ring_span(&self, capture_id: i64) -> Result<Option<RingSpan>, StoreError> {
        self.conn
            .query_row(
                "SELECT capture_id, stream_id, first_seq, end_seq FROM ring_spans WHERE capture_id = ?1",
                [capture_id],
                span_from_row,
            )
            .optional()
            .ctx("cannot read ring span")
    }

    /// Every span of a stream, in seq order.
    pub fn ring_spans(&self, stream_id: i64) -> Result<Vec<RingSpan>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT capture_id, stream_id, first_seq, end_seq FROM ring_spans
                 WHERE stream_id = ?1 ORDER BY first_seq",
            )
            .ctx("cannot list ring spans")?;
        stmt.query_map([stream_id], span_from_row)
            .ctx("cannot list ring spans")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot list ring spans")
    }

    /// Every stream of a device, oldest first.
    pub fn ring_streams(&self, device: &str) -> Result<Vec<i64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id FROM ring_streams WHERE device = ?1 ORDER BY id")
            .ctx("cannot list ring streams")?;
        stmt.query_map([device], |r| r.get(0))
            .ctx("cannot list ring streams")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("cannot list ring streams")
    }
}

impl Ledger {
    /// Forgets `device`'s resume point because it no longer fits the
    /// pendant's ring, and records why (an anomaly of the device).
    /// `new_ring`: the ring was cleared or replaced, so the next records
    /// start a new stream; otherwise records were lost on the pendant and the
    /// stream goes on after them. Nothing stored is touched.
    pub fn discard_ring_resume_point(
        &mut self,
        device: &str,
        new_ring: bool,
        why: &str,
    ) -> Result<(), StoreError> {
        let now = UtcMillis::now().0;
        let tx = self.conn.transaction().ctx("cannot start transaction")?;
        let sql = if new_ring {
            "UPDATE device_state SET stream_id = NULL, durable_seq = NULL, updated_at_ms = ?2 WHERE device = ?1"
        } else {
            "UPDATE device_state SET durable_seq = NULL, updated_at_ms = ?2 WHERE device = ?1"
        };
        tx.execute(sql, params![device, now])
            .ctx("cannot discard the resume point")?;
        tx.execute(
            "INSERT INTO anomalies (capture_id, origin, stage, byte_offset, message, at_ms)
             VALUES (NULL, ?1, 'import', NULL, ?2, ?3)",
            params![device, why, now],
        )
        .ctx("cannot record why the resume point was discarded")?;
        tx.commit().ctx("cannot commit the discarded resume point")
    }

    /// Stores a batch of pulled records durably with the new resume point,
    /// skipping what the ledger already holds (see the module docs).
    /// Afterwards [`ring_resume_point`](Self::ring_resume_point) answers
    /// `(ring_id, first_seq + records)`.
    pub fn add_ring_records(&mut self, batch: &RingBatch<'_>) -> Result<RingStored, StoreError> {
        let n = batch.records.len() / RECORD_BYTES;
        if n == 0 || !batch.records.len().is_multiple_of(RECORD_BYTES) {
            return Err(StoreError::Corrupt(format!(
                "{} bytes from {} are not whole {RECORD_BYTES}-byte records",
                batch.records.len(),
                batch.device
            )));
        }
        let end_seq = batch.first_seq + n as u64;
        let state = self.device_state(batch.device)?;
        let LedgerReader { conn, data_dir } = &mut self.reader;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .ctx("cannot start transaction")?;
        let now = UtcMillis::now().0;

        // The stream: the current one if the ring ids agree, else a new one.
        let current = state.and_then(|s| {
            let same_ring = match (s.ring_id, batch.ring_id) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            s.stream_id.filter(|_| same_ring)
        });
        let stream_id = match current {
            Some(id) => {
                if batch.ring_id.is_some() {
                    tx.execute(
                        "UPDATE ring_streams SET ring_id = ?2 WHERE id = ?1 AND ring_id IS NULL",
                        params![id, id_to_sql(batch.ring_id)],
                    )
                    .ctx("cannot record the ring id")?;
                }
                id
            }
            None => {
                tx.execute(
                    "INSERT INTO ring_streams (device, ring_id, started_at_ms) VALUES (?1, ?2, ?3)",
                    params![batch.device, id_to_sql(batch.ring_id), now],
                )
                .ctx("cannot start a ring stream")?;
                tx.last_insert_rowid()
            }
        };

        // What each record is.
        let mut fates = vec![Fate::New(None); n];
        {
            let mut spans = tx
                .prepare_cached(
                    "SELECT first_seq, end_seq FROM ring_spans
                     WHERE stream_id = ?1 AND first_seq < ?3 AND end_seq > ?2",
                )
                .ctx("cannot read ring spans")?;
            let held = spans
                .query_map(
                    params![stream_id, batch.first_seq as i64, end_seq as i64],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
                )
                .ctx("cannot read ring spans")?
                .collect::<Result<Vec<_>, _>>()
                .ctx("cannot read ring spans")?;
            for (a, b) in held {
                for seq in a.max(batch.first_seq)..b.min(end_seq) {
                    fates[(seq - batch.first_seq) as usize] = Fate::AlreadyStored;
                }
            }
            let mut lookup = tx
                .prepare_cached(
                    "SELECT stream_id FROM ring_records WHERE device = ?1 AND digest = ?2",
                )
                .ctx("cannot read the record index")?;
            for (i, rec) in batch.records.chunks_exact(RECORD_BYTES).enumerate() {
                if fates[i] != Fate::New(None) {
                    continue;
                }
                let Some(digest) = dedupe_digest(rec) else {
                    continue;
                };
                let seen: Option<i64> = lookup
                    .query_row(params![batch.device, &digest[..]], |r| r.get(0))
                    .optional()
                    .ctx("cannot read the record index")?;
                fates[i] = match seen {
                    Some(s) if s != stream_id => Fate::Duplicate,
                    _ => Fate::New(Some(digest)),
                };
            }
        }

        let mut out = RingStored {
            stream_id,
            ..RingStored::default()
        };
        out.already_stored = fates.iter().filter(|f| **f == Fate::AlreadyStored).count() as u64;
        out.duplicates = fates.iter().filter(|f| **f == Fate::Duplicate).count() as u64;

        // Each run of consecutive new records becomes one capture.
        let mut i = 0;
        while i < n {
            if !matches!(fates[i], Fate::New(_)) {
                i += 1;
                continue;
            }
            let start = i;
            while i < n && matches!(fates[i], Fate::New(_)) {
                i += 1;
            }
            let bytes = &batch.records[start * RECORD_BYTES..i * RECORD_BYTES];
            let (first, end) = (batch.first_seq + start as u64, batch.first_seq + i as u64);
            let sha = files::sha256_hex(bytes);
            let exists: Option<i64> = tx
                .query_row("SELECT id FROM captures WHERE sha256 = ?1", [&sha], |r| {
                    r.get(0)
                })
                .optional()
                .ctx("cannot read capture")?;
            if exists.is_some() {
                out.duplicates += (i - start) as u64;
                continue;
            }
            let (sha, rel) = files::store_hashed(data_dir, bytes, sha)?;
            let ring = batch
                .ring_id
                .map_or("none".to_string(), |r| format!("{r:016x}"));
            let meta = NewCapture {
                format: CaptureFormat::Ring,
                codec: batch.codec,
                device: batch.device.to_string(),
                origin: batch.origin.to_string(),
                file_name: format!("ring-{ring}-{first}-{end}"),
                name_start: None,
                clock: ClockTrust::Wall,
                first_seq: Some(first),
                ring_id: batch.ring_id,
                captured_at: batch.captured_at,
            };
            super::cards::write(data_dir, &sha, &meta)?;
            let Some(id) = insert_capture(&tx, &sha, &rel, bytes.len() as u64, &meta)? else {
                // Stored by another run since the check above (the same bytes).
                out.duplicates += (i - start) as u64;
                continue;
            };
            tx.execute(
                "INSERT INTO ring_spans (capture_id, stream_id, first_seq, end_seq) VALUES (?1, ?2, ?3, ?4)",
                params![id, stream_id, first as i64, end as i64],
            )
            .ctx("cannot record the ring span")?;
            let mut index = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO ring_records (device, digest, stream_id, seq) VALUES (?1, ?2, ?3, ?4)",
                )
                .ctx("cannot index records")?;
            for (k, fate) in fates[start..i].iter().enumerate() {
                if let Fate::New(Some(digest)) = fate {
                    index
                        .execute(params![
                            batch.device,
                            &digest[..],
                            stream_id,
                            (first + k as u64) as i64
                        ])
                        .ctx("cannot index records")?;
                }
            }
            out.captures.push(id);
            out.new_records += (i - start) as u64;
        }

        tx.execute(
            "INSERT INTO device_state (device, stream_id, ring_id, durable_seq, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (device) DO UPDATE SET stream_id = excluded.stream_id,
                 ring_id = excluded.ring_id, durable_seq = excluded.durable_seq,
                 updated_at_ms = excluded.updated_at_ms",
            params![
                batch.device,
                stream_id,
                id_to_sql(batch.ring_id),
                end_seq as i64,
                now
            ],
        )
        .ctx("cannot record the resume point")?;
        tx.commit().ctx("cannot commit pulled records")?;
        Ok(out)
    }
}

fn span_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RingSpan> {
    Ok(RingSpan {
        capture_id: r.get(0)?,
        stream_id: r.get(1)?,
        seqs: r.get::<_, i64>(2)? as u64..r.get::<_, i64>(3)? as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::record::build_record;
    use crate::device::usb::fixture::{FixtureClock, fixture_records};

    fn batch<'a>(
        device: &'a str,
        ring: Option<u64>,
        first: u64,
        records: &'a [u8],
    ) -> RingBatch<'a> {
        RingBatch {
            device,
            ring_id: ring,
            first_seq: first,
            records,
            codec: Codec::PENDANT,
            origin: "test",
            captured_at: UtcMillis::from_secs(1_717_300_000),
        }
    }

    #[test]
    fn stores_records_and_the_resume_point_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        assert_eq!(l.ring_resume_point("p").unwrap(), None);
        let recs = fixture_records(0, 0..50, FixtureClock::Wall);
        let s = l.add_ring_records(&batch("p", Some(9), 0, &recs)).unwrap();
        assert_eq!(s.new_records, 50);
        assert_eq!(s.captures.len(), 1);
        assert_eq!(
            l.ring_resume_point("p").unwrap(),
            Some(ResumePoint {
                ring_id: Some(9),
                durable_seq: 50
            })
        );
        let c = l.capture(s.captures[0]).unwrap();
        assert_eq!(l.capture_bytes(&c).unwrap(), recs);
        assert_eq!(c.meta.first_seq, Some(0));
        assert_eq!(
            l.ring_span(c.id).unwrap().unwrap().seqs,
            0..50,
            "the span names the seqs"
        );
        // The same seqs again: nothing new, resume point unchanged.
        let again = l
            .add_ring_records(&batch("p", Some(9), 20, &recs[20 * 444..]))
            .unwrap();
        assert_eq!((again.new_records, again.already_stored), (0, 30));
        assert_eq!(l.captures().unwrap().len(), 1);
    }

    #[test]
    fn an_overlapping_batch_stores_only_the_new_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let recs = fixture_records(0, 0..80, FixtureClock::NotSet);
        l.add_ring_records(&batch("p", None, 0, &recs[..40 * 444]))
            .unwrap();
        let s = l
            .add_ring_records(&batch("p", None, 30, &recs[30 * 444..]))
            .unwrap();
        assert_eq!((s.new_records, s.already_stored), (40, 10));
        let span = l.ring_span(s.captures[0]).unwrap().unwrap();
        assert_eq!(span.seqs, 40..80);
        assert_eq!(l.ring_resume_point("p").unwrap().unwrap().durable_seq, 80);
    }

    #[test]
    fn records_delivered_again_under_a_new_ring_are_not_stored_twice() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let old = fixture_records(0, 0..100, FixtureClock::Wall);
        l.add_ring_records(&batch("p", Some(1), 0, &old)).unwrap();
        // After a power loss: ring 2 re-delivers records 60..100 as seqs 0..40,
        // then 30 new records.
        let mut replay = old[60 * 444..].to_vec();
        replay.extend(fixture_records(5, 0..30, FixtureClock::Wall));
        l.discard_ring_resume_point("p", true, "ring replaced")
            .unwrap();
        let s = l
            .add_ring_records(&batch("p", Some(2), 0, &replay))
            .unwrap();
        assert_eq!((s.new_records, s.duplicates), (30, 40));
        let span = l.ring_span(s.captures[0]).unwrap().unwrap();
        assert_eq!(span.seqs, 40..70);
        assert_eq!(l.ring_streams("p").unwrap().len(), 2);
        assert_eq!(
            l.ring_resume_point("p").unwrap(),
            Some(ResumePoint {
                ring_id: Some(2),
                durable_seq: 70
            })
        );
        let why = l.anomalies(None).unwrap();
        assert!(
            why.iter()
                .any(|a| a.origin == "p" && a.message == "ring replaced")
        );
    }

    #[test]
    fn a_cleared_ring_without_ids_is_a_new_stream_not_a_duplicate() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        l.add_ring_records(&batch(
            "p",
            None,
            0,
            &fixture_records(0, 0..20, FixtureClock::Wall),
        ))
        .unwrap();
        l.discard_ring_resume_point("p", true, "cleared").unwrap();
        assert_eq!(l.ring_resume_point("p").unwrap(), None);
        // Same seqs, other audio: all new.
        let s = l
            .add_ring_records(&batch(
                "p",
                None,
                0,
                &fixture_records(1, 0..20, FixtureClock::Wall),
            ))
            .unwrap();
        assert_eq!(s.new_records, 20);
    }

    #[test]
    fn identical_silent_records_are_all_kept() {
        // A quiet stretch: identical records within one stream are audio.
        let frame = [0xF8u8, 0xFF, 0xFE];
        let frames: Vec<&[u8]> = vec![&frame; 20];
        let rec = build_record(0x8000_0000 | 42, &frames).0;
        assert_eq!(dedupe_digest(&rec), None, "silence is not recognisable");
        let mut recs = Vec::new();
        for _ in 0..5 {
            recs.extend_from_slice(&rec);
        }
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        assert_eq!(
            l.add_ring_records(&batch("p", Some(1), 0, &recs))
                .unwrap()
                .new_records,
            5
        );
        // Another boot's silent records at the same uptime second are kept too.
        l.discard_ring_resume_point("p", true, "replaced").unwrap();
        let mut more = recs.clone();
        more.extend_from_slice(&fixture_records(3, 0..1, FixtureClock::NotSet));
        let s = l.add_ring_records(&batch("p", Some(2), 0, &more)).unwrap();
        assert_eq!((s.new_records, s.duplicates), (6, 0));
    }

    #[test]
    fn digests_are_distinct_and_sort_in_recording_order() {
        let recs = fixture_records(0, 0..50, FixtureClock::Wall);
        let d: Vec<[u8; 16]> = recs.chunks(444).filter_map(dedupe_digest).collect();
        assert_eq!(d.len(), 50);
        assert!(d.windows(2).all(|w| w[0][..4] <= w[1][..4]), "time first");
        let distinct: std::collections::HashSet<_> = d.iter().collect();
        assert_eq!(distinct.len(), 50);
    }

    #[test]
    fn records_that_are_not_whole_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let e = l
            .add_ring_records(&batch("p", None, 0, &[0u8; 500]))
            .unwrap_err();
        assert!(e.to_string().contains("whole"), "{e}");
        assert_eq!(l.ring_resume_point("p").unwrap(), None);
    }
}
