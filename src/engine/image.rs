//! Reading a pendant's card (an image file or a card reader's block device)
//! into the ledger.
//!
//! The image is opened read-only and never written. [`pull_image`] runs the
//! recovery procedure of `ring-layout.md` ([`ImageReader`]): the main range
//! `[read_seq, write_seq)` and the salvage written after the newest metadata
//! go into the ledger through the same [`LedgerSink`] a BLE pull uses (so
//! reading the same card twice stores nothing twice, and records already
//! pulled over BLE under the same device name are recognised), in batches of
//! consecutive seqs. Every anomaly is reported with its sector. The optional
//! forensic pass lists what else is still on the card (records below
//! read_seq, older laps, other rings, torn batches) **separately**: it is
//! never imported, only described (seqs, sectors, times, and how many of its
//! records the ledger already holds). Finding the speech in what arrived is
//! the job's next stage ([`super::analyze`]), not this one's.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::auto::Pulled;
use super::ctx::Ctx;
use super::events::{Event, Stage, Unit};
use super::pull::{LedgerSink, Stored, discard_message};
use super::report::StageReport;
use crate::clock::UtcMillis;
use crate::device::record::{RECORD_BYTES, RecordTime};
use crate::device::session::{Discard, DurableSink, ResumeFit, resume_fit};
use crate::device::usb::reader::{AnomalyKind, ForensicReason, ImageRecord};
use crate::device::usb::{ImageAnomaly, ImageError, ImageReader, Part};
use crate::store::{Ledger, StoreError};

/// Records handed to the ledger at a time.
pub const IMAGE_BATCH_RECORDS: usize = 2048;

/// An anomaly of the image, located.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectorAnomaly {
    /// The sector it was found at.
    pub sector: Option<u64>,
    /// What was found.
    pub message: String,
    /// Whether audio of the backlog is missing because of it.
    pub loses_audio: bool,
}

impl From<&ImageAnomaly> for SectorAnomaly {
    fn from(a: &ImageAnomaly) -> Self {
        let loses_audio = matches!(
            a.kind,
            AnomalyKind::MissingRecords { .. }
                | AnomalyKind::BatchCrcMismatch { .. }
                | AnomalyKind::EmptyRecord { .. }
                | AnomalyKind::BrokenFrameChain { .. }
                | AnomalyKind::TruncatedImage { .. }
        );
        SectorAnomaly {
            sector: a.sector,
            // Where is `sector`; the message says only what.
            message: a.kind.to_string(),
            loses_audio,
        }
    }
}

/// A batch the forensic pass found outside the backlog (never imported).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForensicFind {
    /// Its slot.
    pub slot: u64,
    /// Its first sector.
    pub sector: u64,
    /// Its batch generation.
    pub generation: u64,
    /// The seqs listed, `[start, end)`.
    pub seqs: [u64; 2],
    /// Why it is outside the backlog.
    pub reason: String,
    /// Records read.
    pub records: u64,
    /// Wall-clock time of its first and last records, if set.
    pub first_time: Option<String>,
    /// See `first_time`.
    pub last_time: Option<String>,
    /// Of its records, how many the ledger already holds (by content).
    pub in_ledger: u64,
}

fn reason_name(r: ForensicReason) -> &'static str {
    match r {
        ForensicReason::BelowReadSeq => "below_read_seq",
        ForensicReason::OlderLap => "older_lap",
        ForensicReason::ForeignRing => "foreign_ring",
        ForensicReason::Torn => "torn",
        ForensicReason::Uncommitted => "uncommitted",
        ForensicReason::SlotMismatch => "slot_mismatch",
    }
}

/// The ring as the card's newest metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageRing {
    /// Metadata variant: `A`, `B` or `C`.
    pub variant: String,
    /// Image size.
    pub image_bytes: u64,
    /// Batch slots (N).
    pub slots: u64,
    /// The metadata's generation.
    pub generation: u64,
    /// Oldest record not freed.
    pub read_seq: u64,
    /// One past the newest committed record.
    pub write_seq: u64,
    /// Records the pendant dropped.
    pub dropped: u64,
    /// The ring id (variant C), hex.
    pub ring_id: Option<String>,
}

/// What reading an image did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// The device key in the ledger.
    pub device: String,
    /// `image:PATH`.
    pub origin: String,
    /// The ring found.
    pub ring: ImageRing,
    /// Records read from the main range.
    pub main_records: u64,
    /// Records salvaged after write_seq.
    pub salvaged_records: u64,
    /// What the ledger stored.
    pub stored: Stored,
    /// Every anomaly, with its sector.
    pub anomalies: Vec<SectorAnomaly>,
    /// The forensic pass (with `--forensic`): never imported.
    pub forensic: Option<Vec<ForensicFind>>,
    /// Things worth telling the person.
    pub notes: Vec<String>,
}

impl ImageSummary {
    /// Whether some audio of the backlog could not be read.
    pub fn lost_audio(&self) -> bool {
        self.anomalies.iter().any(|a| a.loses_audio)
    }
}

/// Why an image could not be read into the ledger.
#[derive(Debug, thiserror::Error)]
pub enum ImageStop {
    /// The image is unreadable or holds no ring.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] StoreError),
}

impl ImageStop {
    /// Whether the request itself was wrong: the path names no image at all
    /// (a FIFO, a directory, a character device), so nothing was read.
    pub fn is_usage(&self) -> bool {
        matches!(self, ImageStop::Image(e) if e.is_usage())
    }
}

/// Streams one part of the ring into the sink in batches of consecutive seqs.
fn import_part(
    reader: &mut ImageReader<std::fs::File>,
    part: Part,
    sink: &mut LedgerSink<'_>,
    device: &str,
    ring_id: Option<u64>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64, ImageStop> {
    let mut buf: Vec<u8> = Vec::with_capacity(IMAGE_BATCH_RECORDS * RECORD_BYTES);
    let mut first = 0u64;
    let mut count = 0u64;
    let flush = |buf: &mut Vec<u8>, first: u64, sink: &mut LedgerSink<'_>| {
        if buf.is_empty() {
            return Ok(());
        }
        let r = sink.persist(device, ring_id, first, buf);
        buf.clear();
        r.map_err(|e| match sink.failure.take() {
            Some(err) => ImageStop::Ledger(err),
            None => ImageStop::Ledger(StoreError::Corrupt(e.to_string())),
        })
    };
    for rec in reader.records(part) {
        let ImageRecord { seq, bytes, .. } = rec?;
        let next = first + (buf.len() / RECORD_BYTES) as u64;
        if !buf.is_empty() && (seq != next || buf.len() >= IMAGE_BATCH_RECORDS * RECORD_BYTES) {
            flush(&mut buf, first, sink)?;
        }
        if buf.is_empty() {
            first = seq;
        }
        buf.extend_from_slice(&bytes);
        count += 1;
        progress(count);
    }
    flush(&mut buf, first, sink)?;
    Ok(count)
}

/// Reads the card image or block device at `path` into the ledger under
/// `device` (see the module docs).
pub fn pull_image(
    ledger: &mut Ledger,
    path: &Path,
    device: &str,
    forensic: bool,
    ctx: &Ctx,
) -> Result<ImageSummary, ImageStop> {
    let started = std::time::Instant::now();
    let mut reader = ImageReader::open_path(path)?;
    let scan = reader.scan().clone();
    let meta = scan.metadata;
    let origin = format!("image:{}", path.display());
    let ring_id = meta.ring_id;
    let mut notes = Vec::new();

    // Is this the ring the ledger last read for this device?
    if let Some(rp) = ledger.ring_resume_point(device)? {
        let end = scan.salvage.end.max(meta.write_seq);
        if let ResumeFit::Discard(why) = resume_fit(&rp, ring_id, meta.read_seq, end) {
            let text = discard_message(rp, &why);
            let new_ring = matches!(why, Discard::RingReplaced { .. });
            ledger.discard_ring_resume_point(device, new_ring, &text)?;
            notes.push(text);
        }
    }

    let total = (scan.main().end - scan.main().start) + (scan.salvage.end - scan.salvage.start);
    ctx.emit(Event::StageStarted {
        stage: Stage::Pull,
        total: total * RECORD_BYTES as u64,
        unit: Unit::Bytes,
    });
    let mut sink = LedgerSink::new(ledger, origin.clone());
    // Progress of one part, counted on from the records of the parts before it.
    let progress_after = |before: u64| {
        move |n: u64| {
            if n.is_multiple_of(IMAGE_BATCH_RECORDS as u64) {
                ctx.emit(Event::Progress {
                    stage: Stage::Pull,
                    done: (before + n) * RECORD_BYTES as u64,
                    total: total * RECORD_BYTES as u64,
                });
            }
        }
    };
    let main_records = import_part(
        &mut reader,
        Part::Main,
        &mut sink,
        device,
        ring_id,
        &mut progress_after(0),
    )?;
    let salvaged_records = import_part(
        &mut reader,
        Part::Salvage,
        &mut sink,
        device,
        ring_id,
        &mut progress_after(main_records),
    )?;
    let stored = sink.stored.clone();
    let anomalies: Vec<SectorAnomaly> =
        reader.anomalies().iter().map(SectorAnomaly::from).collect();

    let forensic = if forensic {
        let mut finds = Vec::new();
        for batch in reader.forensic() {
            let records = reader.forensic_records(&batch)?;
            let times: Vec<u32> = records
                .iter()
                .filter_map(|r| {
                    match RecordTime::classify(u32::from_be_bytes([
                        r.bytes[0], r.bytes[1], r.bytes[2], r.bytes[3],
                    ])) {
                        RecordTime::Wall(t) => Some(t),
                        _ => None,
                    }
                })
                .collect();
            let mut in_ledger = 0;
            for r in &records {
                if ledger.holds_record(device, &r.bytes)? {
                    in_ledger += 1;
                }
            }
            let at = |t: Option<&u32>| t.map(|&t| UtcMillis::from_secs(t as i64).to_rfc3339());
            finds.push(ForensicFind {
                slot: batch.slot,
                sector: batch.sector,
                generation: batch.header.generation,
                seqs: [batch.seqs.start, batch.seqs.end],
                reason: reason_name(batch.reason).to_string(),
                records: records.len() as u64,
                first_time: at(times.first()),
                last_time: at(times.last()),
                in_ledger,
            });
        }
        Some(finds)
    } else {
        None
    };

    let summary = ImageSummary {
        device: device.to_string(),
        origin,
        ring: ImageRing {
            variant: meta.variant.as_str().to_string(),
            image_bytes: scan.image_bytes,
            slots: scan.slots,
            generation: meta.generation,
            read_seq: meta.read_seq,
            write_seq: meta.write_seq,
            dropped: meta.dropped,
            ring_id: ring_id.map(|r| format!("{r:#018x}")),
        },
        main_records,
        salvaged_records,
        stored,
        anomalies,
        forensic,
        notes,
    };
    ctx.stage_finished(
        started,
        StageReport::Pull(Box::new(Pulled::Image(summary.clone()))),
    );
    Ok(summary)
}
