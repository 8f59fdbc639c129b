//! Recovering the ring from a whole-device image or a block device node.
//!
//! [`ImageReader::open`] runs steps 1-2 and 4 of the recovery procedure of
//! `ring-layout.md` on anything `Read + Seek`: it parses all 64 metadata
//! slots (variants A, B, C), computes the slot count N from the size and
//! confirms it from the batch headers (searching for the N that fits when it
//! does not), picks the valid metadata record with the highest generation
//! that the batch headers do not show to be older ([`journal`]), checks
//! every batch header against its slot (and variant B's CRC), and
//! finds batches written after the newest metadata (salvage). It reads only
//! the metadata sectors and batch headers (plus batch bodies for B's CRC), one
//! batch at a time, so a 480 MiB image or a card reader's device node is never
//! held in memory.
//!
//! Records are then streamed batch by batch: [`ImageReader::records`] for
//! the main range `[read_seq, write_seq)` or the salvage beyond it, each with
//! its sequence number; [`ImageReader::forensic`] lists what else is still on
//! the card (records below read_seq, older laps, foreign rings, torn batches),
//! never mixed into the main result. Every oddity becomes an [`ImageAnomaly`]
//! naming its sector. [`ImageReader::read_all`] gathers everything for small
//! images and tests.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};
use std::ops::Range;

use crate::device::record::{CLOCK_NOT_SET_BIT, PayloadAnomaly, RECORD_BYTES, Record};
use crate::device::usb::journal::{self, StaleMetadata};
use crate::device::usb::layout::{
    BATCH_BYTES, BATCH_HEADER_BYTES, BatchHeader, META_SECTORS, MetaReject, Metadata,
    RECORDS_PER_BATCH, SECTOR, Variant, slot_sector, slots_for_size,
};

/// A fatal problem: nothing can be recovered this way.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// Reading failed.
    #[error("reading {what} at byte {offset}: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// Byte offset in the image.
        offset: u64,
        /// The I/O error.
        source: io::Error,
    },
    /// The path names something no image can be read from: a FIFO (whose
    /// open would block until a writer comes), a directory, a character
    /// device, a socket. Checked before anything is opened.
    #[error(
        "{path} is {kind}, not a card image: give an image file (as `dd` writes it) or a card reader's block device"
    )]
    NotAnImage {
        /// The path.
        path: String,
        /// What it is, e.g. "a FIFO (named pipe)".
        kind: &'static str,
    },
    /// The image file or device node could not be opened.
    #[error("opening {path}: {source}")]
    Open {
        /// The path.
        path: String,
        /// The error.
        source: io::Error,
    },
    /// Too small to hold the metadata journal and one batch.
    #[error(
        "image is {bytes} bytes: too small for a storage ring (needs at least {} bytes: 64 metadata sectors and one 16 KiB batch)",
        (META_SECTORS + 32) * SECTOR
    )]
    TooSmall {
        /// Its size.
        bytes: u64,
    },
    /// No metadata record in sectors 0..63 is valid.
    #[error(
        "no valid ring metadata in sectors 0..63 ({with_magic} with the metadata magic, none valid){detail}"
    )]
    NoValidMetadata {
        /// How many sectors had the magic.
        with_magic: usize,
        /// Why they were rejected (for the first few), starting with "; ".
        detail: String,
    },
}

/// Why records of the main range are missing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingReason {
    /// The slot has no batch header.
    NoBatch,
    /// The slot holds a newer lap (`start_seq` = expected + k·capacity).
    OverwrittenByNewerLap {
        /// The start_seq found.
        start_seq: u64,
    },
    /// The slot holds another start_seq (an older lap, or data from before a CLEAR).
    OtherLap {
        /// The start_seq found.
        start_seq: u64,
    },
    /// Variant C: the slot's batch belongs to another ring (different data_id).
    ForeignRing {
        /// The data_id found.
        data_id: u64,
    },
    /// Variant B: the batch's CRC does not match (torn).
    Torn,
    /// The batch holds fewer records than the metadata commits.
    ShortBatch {
        /// Its packet_count.
        packet_count: u16,
    },
    /// The slot lies beyond the end of the image (truncated image).
    BeyondImage,
}

impl fmt::Display for MissingReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MissingReason::NoBatch => f.write_str("the slot holds no batch"),
            MissingReason::OverwrittenByNewerLap { start_seq } => {
                write!(f, "overwritten by a newer lap (start_seq {start_seq})")
            }
            MissingReason::OtherLap { start_seq } => write!(
                f,
                "the slot holds start_seq {start_seq} (an older lap or data from before a CLEAR)"
            ),
            MissingReason::ForeignRing { data_id } => {
                write!(
                    f,
                    "the slot holds another ring's batch (data_id {data_id:#x})"
                )
            }
            MissingReason::Torn => f.write_str("the batch is torn (CRC mismatch)"),
            MissingReason::ShortBatch { packet_count } => {
                write!(f, "the batch holds only {packet_count} records")
            }
            MissingReason::BeyondImage => f.write_str("the slot lies beyond the end of the image"),
        }
    }
}

/// What kind of oddity was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnomalyKind {
    /// The image size is not a multiple of 512; the tail is ignored.
    UnalignedSize {
        /// The size.
        bytes: u64,
    },
    /// A journal sector with the magic that is not a valid record.
    MetadataRejected {
        /// Why.
        reason: MetaReject,
    },
    /// A CRC-valid metadata record whose range does not fit the capacity.
    MetadataInconsistent {
        /// Its generation.
        generation: u64,
        /// Its read_seq.
        read_seq: u64,
        /// Its write_seq.
        write_seq: u64,
    },
    /// A record whose generation is the highest but which the batch headers
    /// show to be older than another record (a corrupted generation, in
    /// variant A with no CRC): passed over, the backlog read past it
    /// ([`journal`]).
    MetadataStale(StaleMetadata),
    /// The slot count from the size did not fit the batch headers; another was found.
    SlotCountSearched {
        /// N from the image size.
        from_size: u64,
        /// N chosen.
        found: u64,
        /// Headers consistent with the chosen N.
        consistent: usize,
        /// Headers seen.
        headers: usize,
    },
    /// The image holds fewer slots than the ring has (truncated image).
    TruncatedImage {
        /// Slots in the ring.
        slots: u64,
        /// Slots present in the image.
        present: u64,
    },
    /// A batch magic with an impossible count or start.
    ImplausibleHeader {
        /// packet_count found.
        packet_count: u16,
        /// start_seq found.
        start_seq: u64,
    },
    /// A header whose start_seq does not belong in its slot.
    SlotMismatch {
        /// The slot.
        slot: u64,
        /// start_seq found.
        start_seq: u64,
    },
    /// Variant B: a batch whose CRC does not match (a torn batch).
    BatchCrcMismatch {
        /// The slot.
        slot: u64,
        /// Its start_seq.
        start_seq: u64,
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed.
        computed: u32,
    },
    /// Records of the main range that cannot be read.
    MissingRecords {
        /// Missing seqs.
        seqs: Range<u64>,
        /// Why.
        reason: MissingReason,
    },
    /// Records found after write_seq (written after the newest metadata).
    Salvaged {
        /// Salvaged seqs.
        seqs: Range<u64>,
    },
    /// The metadata counts records dropped (overwritten or declared lost).
    Dropped {
        /// How many.
        count: u64,
    },
    /// A run of records recorded while the clock was not set (bit 31).
    ClockNotSet {
        /// Their seqs.
        seqs: Range<u64>,
    },
    /// A record whose frame-length chain ends in a dangling length byte.
    BrokenFrameChain {
        /// Its seq.
        seq: u64,
        /// Payload offset of the length byte.
        offset: usize,
    },
    /// A record of all zeros (never written, or torn).
    EmptyRecord {
        /// Its seq.
        seq: u64,
    },
}

/// An oddity in the image, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageAnomaly {
    /// The sector it was found at, if it has one.
    pub sector: Option<u64>,
    /// What was found.
    pub kind: AnomalyKind,
}

impl fmt::Display for ImageAnomaly {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(s) = self.sector {
            write!(f, "sector {s}: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

/// What was found, without where (the sector is the anomaly's).
impl fmt::Display for AnomalyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnomalyKind::UnalignedSize { bytes } => write!(
                f,
                "image size {bytes} is not a multiple of 512; the last {} bytes are ignored",
                bytes % SECTOR
            ),
            AnomalyKind::MetadataRejected { reason } => {
                write!(f, "metadata record rejected: {reason}")
            }
            AnomalyKind::MetadataInconsistent {
                generation,
                read_seq,
                write_seq,
            } => write!(
                f,
                "metadata generation {generation} rejected: read_seq {read_seq}, write_seq {write_seq} do not fit the capacity"
            ),
            AnomalyKind::MetadataStale(m) => write!(
                f,
                "metadata generation {} (write_seq {}) is older than the card shows: the slot \
                 of its last record was written by generation {}, and the record in sector {} \
                 (generation {}) commits records up to {}; its generation is taken as corrupt, \
                 the record in sector {} is used, and the {} records committed after seq {} are \
                 not left out",
                m.generation,
                m.write_seq,
                m.batch_generation,
                m.by_sector,
                m.by_generation,
                m.by_write_seq,
                m.by_sector,
                m.by_write_seq - m.write_seq,
                m.write_seq
            ),
            AnomalyKind::SlotCountSearched {
                from_size,
                found,
                consistent,
                headers,
            } => write!(
                f,
                "the image size gives {from_size} slots but the batch headers do not fit it; using {found} slots ({consistent} of {headers} headers consistent)"
            ),
            AnomalyKind::TruncatedImage { slots, present } => write!(
                f,
                "the ring has {slots} slots but the image holds only {present}: truncated image"
            ),
            AnomalyKind::ImplausibleHeader {
                packet_count,
                start_seq,
            } => write!(
                f,
                "batch header with packet_count {packet_count}, start_seq {start_seq} ignored"
            ),
            AnomalyKind::SlotMismatch { slot, start_seq } => write!(
                f,
                "batch start_seq {start_seq} does not belong in slot {slot}; ignored"
            ),
            AnomalyKind::BatchCrcMismatch {
                slot,
                start_seq,
                stored,
                computed,
            } => write!(
                f,
                "torn batch in slot {slot} (start_seq {start_seq}): CRC {stored:#010x} stored, {computed:#010x} computed; its records are left out"
            ),
            AnomalyKind::MissingRecords { seqs, reason } => write!(
                f,
                "records {}..{} ({}) of the main range are missing: {reason}",
                seqs.start,
                seqs.end,
                seqs.end - seqs.start
            ),
            AnomalyKind::Salvaged { seqs } => write!(
                f,
                "records {}..{} were written after the newest metadata; salvaged",
                seqs.start, seqs.end
            ),
            AnomalyKind::Dropped { count } => write!(
                f,
                "the pendant dropped {count} records (overwritten before they were read, or declared lost)"
            ),
            AnomalyKind::ClockNotSet { seqs } => write!(
                f,
                "records {}..{} were recorded with the clock not set (seconds since boot)",
                seqs.start, seqs.end
            ),
            AnomalyKind::BrokenFrameChain { seq, offset } => write!(
                f,
                "record {seq}: broken frame-length chain at payload offset {offset} (torn?)"
            ),
            AnomalyKind::EmptyRecord { seq } => write!(f, "record {seq} is all zeros (torn?)"),
        }
    }
}

/// What a slot's header was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotInfo {
    /// The slot.
    pub slot: u64,
    /// The parsed header.
    pub header: BatchHeader,
    /// Variant B: whether the CRC matched (`None` for A and C).
    pub crc_ok: Option<bool>,
    /// Whether start_seq belongs in this slot.
    pub slot_consistent: bool,
}

impl SlotInfo {
    /// First sector of the slot.
    pub fn sector(&self) -> u64 {
        slot_sector(self.slot)
    }

    /// The seqs the batch holds.
    pub fn seqs(&self) -> Range<u64> {
        self.header.start_seq..self.header.start_seq + self.header.packet_count as u64
    }
}

/// The result of scanning an image: its geometry, metadata and batches.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Image size in bytes.
    pub image_bytes: u64,
    /// Slots in the ring (N).
    pub slots: u64,
    /// N computed from the size.
    pub slots_from_size: u64,
    /// The metadata record used.
    pub metadata: Metadata,
    /// The sector it was read from.
    pub metadata_sector: u64,
    /// How many metadata records were valid.
    pub valid_metadata: usize,
    /// Every plausible batch header, by slot (slots within the image).
    pub batches: Vec<Option<SlotInfo>>,
    /// The salvage range `[write_seq, salvage_end)`.
    pub salvage: Range<u64>,
}

impl Scan {
    /// Capacity in records: `36 * N`.
    pub fn capacity(&self) -> u64 {
        self.slots * RECORDS_PER_BATCH
    }

    /// The main range `[read_seq, write_seq)`.
    pub fn main(&self) -> Range<u64> {
        self.metadata.read_seq..self.metadata.write_seq
    }

    /// The slot's batch, if it has a plausible header.
    pub fn batch(&self, slot: u64) -> Option<&SlotInfo> {
        self.batches.get(slot as usize).and_then(|b| b.as_ref())
    }

    /// The usable batch holding `seq` for the current ring, or why there is none.
    fn batch_for(&self, seq: u64) -> Result<&SlotInfo, MissingReason> {
        let k = seq / RECORDS_PER_BATCH;
        let slot = k % self.slots;
        let expected = k * RECORDS_PER_BATCH;
        if slot >= self.batches.len() as u64 {
            return Err(MissingReason::BeyondImage);
        }
        let Some(b) = self.batch(slot) else {
            return Err(MissingReason::NoBatch);
        };
        let h = &b.header;
        if h.start_seq != expected {
            return Err(
                if h.start_seq > expected
                    && (h.start_seq - expected).is_multiple_of(self.capacity())
                {
                    MissingReason::OverwrittenByNewerLap {
                        start_seq: h.start_seq,
                    }
                } else {
                    MissingReason::OtherLap {
                        start_seq: h.start_seq,
                    }
                },
            );
        }
        if let (Variant::C, Some(d)) = (self.metadata.variant, self.metadata.data_id)
            && h.version >= 2
            && h.data_id() != d
        {
            return Err(MissingReason::ForeignRing {
                data_id: h.data_id(),
            });
        }
        if b.crc_ok == Some(false) {
            return Err(MissingReason::Torn);
        }
        if seq % RECORDS_PER_BATCH >= h.packet_count as u64 {
            return Err(MissingReason::ShortBatch {
                packet_count: h.packet_count,
            });
        }
        Ok(b)
    }
}

/// Which part of the ring to stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// `[read_seq, write_seq)`.
    Main,
    /// Records written after the newest metadata.
    Salvage,
}

/// One record read from the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// Its sequence number.
    pub seq: u64,
    /// The sector it starts in.
    pub sector: u64,
    /// The 444 bytes.
    pub bytes: [u8; RECORD_BYTES],
}

/// Why a batch is listed by the forensic pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForensicReason {
    /// Records of the current ring below read_seq (freed by ADVANCE, not yet reused).
    BelowReadSeq,
    /// An older lap, or data from before a CLEAR (a start_seq that does not fit).
    OlderLap,
    /// Variant C: another ring's batch (different data_id).
    ForeignRing,
    /// Variant B: a torn batch (CRC mismatch).
    Torn,
    /// Written after the metadata but not part of a contiguous salvage run.
    Uncommitted,
    /// A header that does not belong in its slot.
    SlotMismatch,
}

/// A batch that holds records outside the main range and salvage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForensicBatch {
    /// The slot.
    pub slot: u64,
    /// First sector of the slot.
    pub sector: u64,
    /// Its header.
    pub header: BatchHeader,
    /// Which records of it are listed (a sub-range of its seqs).
    pub seqs: Range<u64>,
    /// Why it is here.
    pub reason: ForensicReason,
}

/// Everything recovered from an image (for small images and tests).
#[derive(Debug, Clone)]
pub struct Recovery {
    /// The scan.
    pub scan: Scan,
    /// The main range's records, in order.
    pub main: Vec<ImageRecord>,
    /// Salvaged records after write_seq, in order.
    pub salvage: Vec<ImageRecord>,
    /// Every anomaly.
    pub anomalies: Vec<ImageAnomaly>,
}

/// Reads a storage ring from an image or block device.
pub struct ImageReader<R> {
    src: R,
    scan: Scan,
    anomalies: Vec<ImageAnomaly>,
}

fn read_at<R: Read + Seek>(
    src: &mut R,
    offset: u64,
    buf: &mut [u8],
    what: &'static str,
) -> Result<usize, ImageError> {
    let io = |source| ImageError::Io {
        what,
        offset,
        source,
    };
    src.seek(SeekFrom::Start(offset)).map_err(io)?;
    let mut got = 0;
    while got < buf.len() {
        match src.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io(e)),
        }
    }
    Ok(got)
}

/// Picks N: `from_size` if every header fits it, else the N that most headers fit.
fn choose_slots(from_size: u64, headers: &[(u64, BatchHeader)]) -> (u64, usize) {
    let fits = |n: u64, slot: u64, h: &BatchHeader| {
        n > 0 && slot < n && (h.start_seq / RECORDS_PER_BATCH) % n == slot
    };
    let score = |n: u64| headers.iter().filter(|(s, h)| fits(n, *s, h)).count();
    let base = score(from_size);
    if base == headers.len() && from_size > 0 {
        return (from_size, base);
    }
    // Every fitting N divides (k - slot) for each header with k > slot.
    let mut candidates: Vec<u64> = vec![from_size];
    let mut used = 0;
    for (slot, h) in headers {
        let k = h.start_seq / RECORDS_PER_BATCH;
        if k <= *slot {
            continue;
        }
        let d = k - slot;
        if d > 1_000_000_000_000 {
            continue;
        }
        let mut i = 1u64;
        while i * i <= d {
            if d.is_multiple_of(i) {
                candidates.push(i);
                candidates.push(d / i);
            }
            i += 1;
        }
        used += 1;
        if used >= 8 {
            break;
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut best = (from_size, base);
    for n in candidates {
        if n == 0 {
            continue;
        }
        let s = score(n);
        let better =
            s > best.1 || (s == best.1 && n.abs_diff(from_size) < best.0.abs_diff(from_size));
        if better {
            best = (n, s);
        }
    }
    best
}

impl ImageError {
    /// Whether the request itself was wrong (the path names no image at
    /// all), as opposed to an image that could not be read.
    pub fn is_usage(&self) -> bool {
        matches!(self, ImageError::NotAnImage { .. })
    }
}

/// What a file type is, in words, when it is not one an image can be read
/// from (a regular file or a block device).
fn not_an_image(ft: std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    (!ft.is_file() && !ft.is_block_device()).then(|| crate::fsnode::kind(ft))
}

/// Accepts only a regular file or a block device (symlinks followed):
/// anything else is [`ImageError::NotAnImage`], found without opening it,
/// since opening a FIFO blocks until something writes to it (and opening a
/// character device can have effects of its own).
pub fn check_image_path(path: &std::path::Path) -> Result<(), ImageError> {
    let meta = std::fs::metadata(path).map_err(|source| ImageError::Open {
        path: path.display().to_string(),
        source,
    })?;
    match not_an_image(meta.file_type()) {
        Some(kind) => Err(ImageError::NotAnImage {
            path: path.display().to_string(),
            kind,
        }),
        None => Ok(()),
    }
}

/// Opens an image file or a block device node for reading (and writing, if
/// `write`), refusing anything else ([`check_image_path`] first). The open
/// itself never blocks: it is non-blocking, so a FIFO swapped in after the
/// check opens at once and is refused by the check of the opened file.
/// (Reads and writes of regular files and block devices ignore the
/// non-blocking flag, so the file is used as it is.)
pub fn open_image_file(path: &std::path::Path, write: bool) -> Result<std::fs::File, ImageError> {
    check_image_path(path)?;
    open_checked(path, write)
}

/// The open of [`open_image_file`] and the check of the opened file.
fn open_checked(path: &std::path::Path, write: bool) -> Result<std::fs::File, ImageError> {
    let open = |source| ImageError::Open {
        path: path.display().to_string(),
        source,
    };
    let (file, ft) = crate::fsnode::open_nonblocking(path, write).map_err(open)?;
    match not_an_image(ft) {
        Some(kind) => Err(ImageError::NotAnImage {
            path: path.display().to_string(),
            kind,
        }),
        None => Ok(file),
    }
}

impl ImageReader<std::fs::File> {
    /// Opens an image file or a block device node (e.g. `/dev/sdb`) read-only
    /// and scans it. Anything else is refused before it is opened, and a
    /// path swapped for a FIFO in between is refused without blocking
    /// ([`open_image_file`]).
    pub fn open_path(path: &std::path::Path) -> Result<Self, ImageError> {
        Self::open(open_image_file(path, false)?)
    }
}

impl<R: Read + Seek> ImageReader<R> {
    /// Scans the image: metadata, slot count, batch headers, salvage.
    pub fn open(mut src: R) -> Result<Self, ImageError> {
        let image_bytes = src
            .seek(SeekFrom::End(0))
            .map_err(|source| ImageError::Io {
                what: "the image size",
                offset: 0,
                source,
            })?;
        let mut anomalies = Vec::new();
        if image_bytes < (META_SECTORS + 32) * SECTOR {
            return Err(ImageError::TooSmall { bytes: image_bytes });
        }
        if image_bytes % SECTOR != 0 {
            anomalies.push(ImageAnomaly {
                sector: None,
                kind: AnomalyKind::UnalignedSize { bytes: image_bytes },
            });
        }

        // 1. The metadata journal.
        let mut journal = vec![0u8; (META_SECTORS * SECTOR) as usize];
        read_at(&mut src, 0, &mut journal, "the metadata journal")?;
        let mut candidates: Vec<(u64, Metadata)> = Vec::new();
        let mut with_magic = 0;
        let mut rejected = Vec::new();
        for (i, sector) in journal.chunks_exact(SECTOR as usize).enumerate() {
            match Metadata::parse(sector) {
                Ok(m) => {
                    with_magic += 1;
                    candidates.push((i as u64, m));
                }
                Err(MetaReject::NoMagic) => {}
                Err(reason) => {
                    with_magic += 1;
                    rejected.push(format!("sector {i}: {reason}"));
                    anomalies.push(ImageAnomaly {
                        sector: Some(i as u64),
                        kind: AnomalyKind::MetadataRejected { reason },
                    });
                }
            }
        }

        // 2. Batch headers and N.
        let slots_from_size = slots_for_size(image_bytes);
        let mut raw: Vec<Option<BatchHeader>> = Vec::with_capacity(slots_from_size as usize);
        let mut hbuf = [0u8; BATCH_HEADER_BYTES as usize];
        for slot in 0..slots_from_size {
            let off = slot_sector(slot) * SECTOR;
            let n = read_at(&mut src, off, &mut hbuf, "a batch header")?;
            let h = if n == hbuf.len() {
                BatchHeader::parse(&hbuf)
            } else {
                None
            };
            let h = match h {
                Some(h) if !h.is_plausible() => {
                    anomalies.push(ImageAnomaly {
                        sector: Some(slot_sector(slot)),
                        kind: AnomalyKind::ImplausibleHeader {
                            packet_count: h.packet_count,
                            start_seq: h.start_seq,
                        },
                    });
                    None
                }
                h => h,
            };
            raw.push(h);
        }
        let present: Vec<(u64, BatchHeader)> = raw
            .iter()
            .enumerate()
            .filter_map(|(s, h)| h.map(|h| (s as u64, h)))
            .collect();
        let (slots, consistent) = choose_slots(slots_from_size, &present);
        if slots != slots_from_size {
            anomalies.push(ImageAnomaly {
                sector: None,
                kind: AnomalyKind::SlotCountSearched {
                    from_size: slots_from_size,
                    found: slots,
                    consistent,
                    headers: present.len(),
                },
            });
        }
        if slots > slots_from_size {
            anomalies.push(ImageAnomaly {
                sector: None,
                kind: AnomalyKind::TruncatedImage {
                    slots,
                    present: slots_from_size,
                },
            });
        }
        let capacity = slots * RECORDS_PER_BATCH;

        // 1b. The newest valid metadata.
        let mut valid: Vec<(u64, Metadata)> = Vec::new();
        for (sector, m) in candidates {
            if m.is_consistent(capacity) {
                valid.push((sector, m));
            } else {
                anomalies.push(ImageAnomaly {
                    sector: Some(sector),
                    kind: AnomalyKind::MetadataInconsistent {
                        generation: m.generation,
                        read_seq: m.read_seq,
                        write_seq: m.write_seq,
                    },
                });
                rejected.push(format!(
                    "sector {sector}: read_seq {} / write_seq {} do not fit a capacity of {capacity}",
                    m.read_seq, m.write_seq
                ));
            }
        }
        let Some(((metadata_sector, metadata), stale)) = journal::choose(&valid, &raw, slots)
        else {
            let detail = if rejected.is_empty() {
                String::new()
            } else {
                let shown: Vec<&str> = rejected.iter().take(4).map(|s| s.as_str()).collect();
                format!("; {}", shown.join("; "))
            };
            return Err(ImageError::NoValidMetadata { with_magic, detail });
        };
        for s in stale {
            anomalies.push(ImageAnomaly {
                sector: Some(s.sector),
                kind: AnomalyKind::MetadataStale(s),
            });
        }
        if metadata.dropped > 0 {
            anomalies.push(ImageAnomaly {
                sector: Some(metadata_sector),
                kind: AnomalyKind::Dropped {
                    count: metadata.dropped,
                },
            });
        }

        // Check headers against their slots (and B's CRC).
        let mut batches = Vec::with_capacity(raw.len());
        let mut body = vec![0u8; (BATCH_BYTES - BATCH_HEADER_BYTES) as usize];
        for (slot, h) in raw.into_iter().enumerate() {
            let slot = slot as u64;
            let Some(header) = h else {
                batches.push(None);
                continue;
            };
            let slot_consistent =
                slot < slots && (header.start_seq / RECORDS_PER_BATCH) % slots == slot;
            if !slot_consistent {
                anomalies.push(ImageAnomaly {
                    sector: Some(slot_sector(slot)),
                    kind: AnomalyKind::SlotMismatch {
                        slot,
                        start_seq: header.start_seq,
                    },
                });
            }
            // Batches keep the version they were written with: version-1
            // batches from before a firmware upgrade carry no CRC or data id.
            let crc_ok = if metadata.variant == Variant::B && header.version >= 2 {
                let len = header.packet_count as usize * RECORD_BYTES;
                let off = slot_sector(slot) * SECTOR + BATCH_HEADER_BYTES;
                let got = read_at(&mut src, off, &mut body[..len], "a batch body")?;
                let computed = header.crc_b(&body[..got]);
                let ok = got == len && computed == header.word24;
                if !ok {
                    anomalies.push(ImageAnomaly {
                        sector: Some(slot_sector(slot)),
                        kind: AnomalyKind::BatchCrcMismatch {
                            slot,
                            start_seq: header.start_seq,
                            stored: header.word24,
                            computed,
                        },
                    });
                }
                Some(ok)
            } else {
                None
            };
            batches.push(Some(SlotInfo {
                slot,
                header,
                crc_ok,
                slot_consistent,
            }));
        }

        let mut scan = Scan {
            image_bytes,
            slots,
            slots_from_size,
            metadata,
            metadata_sector,
            valid_metadata: valid.len(),
            batches,
            salvage: metadata.write_seq..metadata.write_seq,
        };

        // 3. Gaps in the main range, one anomaly per run of one reason.
        let mut seq = metadata.read_seq;
        while seq < metadata.write_seq {
            let batch_end = (seq / RECORDS_PER_BATCH + 1) * RECORDS_PER_BATCH;
            let end = batch_end.min(metadata.write_seq);
            match scan.batch_for(seq) {
                Ok(b) => {
                    let have = (b.header.start_seq + b.header.packet_count as u64).min(end);
                    if have < end {
                        push_missing(
                            &mut anomalies,
                            slot_sector(b.slot),
                            have..end,
                            MissingReason::ShortBatch {
                                packet_count: b.header.packet_count,
                            },
                        );
                    }
                }
                Err(reason) => {
                    let slot = (seq / RECORDS_PER_BATCH) % slots;
                    push_missing(&mut anomalies, slot_sector(slot), seq..end, reason);
                }
            }
            seq = end;
        }

        // 4. Salvage: contiguous batches after write_seq with a newer generation.
        let mut end = metadata.write_seq;
        loop {
            if end - metadata.read_seq >= capacity {
                break;
            }
            let ok = match scan.batch_for(end) {
                Ok(b) if b.header.generation > metadata.generation => {
                    Some(b.header.start_seq + b.header.packet_count as u64)
                }
                _ => None,
            };
            match ok {
                Some(batch_end) if batch_end > end => {
                    let full = batch_end % RECORDS_PER_BATCH == 0;
                    end = batch_end;
                    if !full {
                        break;
                    }
                }
                _ => break,
            }
        }
        scan.salvage = metadata.write_seq..end;
        if end > metadata.write_seq {
            anomalies.push(ImageAnomaly {
                sector: Some(slot_sector(
                    (metadata.write_seq / RECORDS_PER_BATCH) % slots,
                )),
                kind: AnomalyKind::Salvaged {
                    seqs: scan.salvage.clone(),
                },
            });
        }

        Ok(ImageReader {
            src,
            scan,
            anomalies,
        })
    }

    /// The scan: geometry, metadata, batches.
    pub fn scan(&self) -> &Scan {
        &self.scan
    }

    /// Every anomaly found so far (record-level ones appear as records are read).
    pub fn anomalies(&self) -> &[ImageAnomaly] {
        &self.anomalies
    }

    /// Takes the anomalies found so far.
    pub fn take_anomalies(&mut self) -> Vec<ImageAnomaly> {
        std::mem::take(&mut self.anomalies)
    }

    /// Gives the source back.
    pub fn into_inner(self) -> R {
        self.src
    }

    /// Streams the records of a part, in order, each with its seq. Records
    /// that cannot be read were reported when the image was opened and are
    /// skipped. Record-level anomalies (clock not set, broken frame chains,
    /// empty records) are added to [`anomalies`](Self::anomalies).
    pub fn records(&mut self, part: Part) -> Records<'_, R> {
        let range = match part {
            Part::Main => self.scan.main(),
            Part::Salvage => self.scan.salvage.clone(),
        };
        Records {
            reader: self,
            next: range.start,
            end: range.end,
            batch: Vec::new(),
            batch_k: None,
            clock_run: None,
        }
    }

    /// Batches that hold records outside the main range and salvage,
    /// ordered by generation (then slot). Nothing here is part of the main result.
    pub fn forensic(&self) -> Vec<ForensicBatch> {
        let scan = &self.scan;
        let m = &scan.metadata;
        let mut out = Vec::new();
        for b in scan.batches.iter().flatten() {
            let seqs = b.seqs();
            let push = |out: &mut Vec<ForensicBatch>, seqs: Range<u64>, reason| {
                if !seqs.is_empty() {
                    out.push(ForensicBatch {
                        slot: b.slot,
                        sector: b.sector(),
                        header: b.header,
                        seqs,
                        reason,
                    });
                }
            };
            if !b.slot_consistent {
                push(&mut out, seqs, ForensicReason::SlotMismatch);
                continue;
            }
            if b.crc_ok == Some(false) {
                push(&mut out, seqs, ForensicReason::Torn);
                continue;
            }
            if let (Variant::C, Some(d)) = (m.variant, m.data_id)
                && b.header.version >= 2
                && b.header.data_id() != d
            {
                push(&mut out, seqs, ForensicReason::ForeignRing);
                continue;
            }
            // Its seqs that the main range and salvage do not use, grouped by reason.
            let mut group: Option<(Range<u64>, ForensicReason)> = None;
            for seq in seqs.clone() {
                let used = scan.main().contains(&seq) || scan.salvage.contains(&seq);
                let reason = if used {
                    None
                } else if seq < m.read_seq {
                    Some(if m.read_seq - seq <= scan.capacity() {
                        ForensicReason::BelowReadSeq
                    } else {
                        ForensicReason::OlderLap
                    })
                } else if b.header.generation > m.generation {
                    Some(ForensicReason::Uncommitted)
                } else {
                    // Committed before the newest metadata yet beyond write_seq:
                    // an older lap or data from before a CLEAR.
                    Some(ForensicReason::OlderLap)
                };
                match (&mut group, reason) {
                    (Some((r, g)), Some(reason)) if *g == reason && r.end == seq => r.end = seq + 1,
                    (_, reason) => {
                        if let Some((r, g)) = group.take() {
                            push(&mut out, r, g);
                        }
                        group = reason.map(|g| (seq..seq + 1, g));
                    }
                }
            }
            if let Some((r, g)) = group {
                push(&mut out, r, g);
            }
        }
        out.sort_by_key(|f| (f.header.generation, f.slot));
        out
    }

    /// Reads the records a forensic batch lists.
    pub fn forensic_records(
        &mut self,
        batch: &ForensicBatch,
    ) -> Result<Vec<ImageRecord>, ImageError> {
        let base = slot_sector(batch.slot) * SECTOR + BATCH_HEADER_BYTES;
        let mut out = Vec::new();
        for seq in batch.seqs.clone() {
            let off = base + (seq - batch.header.start_seq) * RECORD_BYTES as u64;
            let mut bytes = [0u8; RECORD_BYTES];
            if read_at(&mut self.src, off, &mut bytes, "a forensic record")? < RECORD_BYTES {
                break;
            }
            out.push(ImageRecord {
                seq,
                sector: off / SECTOR,
                bytes,
            });
        }
        Ok(out)
    }

    /// Reads everything: main range, salvage, all anomalies.
    pub fn read_all(mut self) -> Result<Recovery, ImageError> {
        let main = self.records(Part::Main).collect::<Result<Vec<_>, _>>()?;
        let salvage = self.records(Part::Salvage).collect::<Result<Vec<_>, _>>()?;
        Ok(Recovery {
            scan: self.scan,
            main,
            salvage,
            anomalies: self.anomalies,
        })
    }
}

fn push_missing(
    anomalies: &mut Vec<ImageAnomaly>,
    sector: u64,
    seqs: Range<u64>,
    reason: MissingReason,
) {
    if let Some(ImageAnomaly {
        kind: AnomalyKind::MissingRecords {
            seqs: last,
            reason: r,
        },
        ..
    }) = anomalies.last_mut()
        && *r == reason
        && last.end == seqs.start
        && matches!(reason, MissingReason::NoBatch | MissingReason::BeyondImage)
    {
        last.end = seqs.end;
        return;
    }
    anomalies.push(ImageAnomaly {
        sector: Some(sector),
        kind: AnomalyKind::MissingRecords { seqs, reason },
    });
}

/// Streams records of one part of the ring, batch by batch.
pub struct Records<'a, R> {
    reader: &'a mut ImageReader<R>,
    next: u64,
    end: u64,
    /// The current batch's record bytes.
    batch: Vec<u8>,
    /// Which batch (`seq / 36`) `batch` holds, and its slot.
    batch_k: Option<(u64, u64)>,
    /// An open run of clock-not-set records: (first seq, sector).
    clock_run: Option<(u64, u64, u64)>,
}

impl<R: Read + Seek> Records<'_, R> {
    fn close_clock_run(&mut self) {
        if let Some((first, end, sector)) = self.clock_run.take() {
            self.reader.anomalies.push(ImageAnomaly {
                sector: Some(sector),
                kind: AnomalyKind::ClockNotSet { seqs: first..end },
            });
        }
    }
}

impl<R: Read + Seek> Iterator for Records<'_, R> {
    type Item = Result<ImageRecord, ImageError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.next >= self.end {
                self.close_clock_run();
                return None;
            }
            let seq = self.next;
            let k = seq / RECORDS_PER_BATCH;
            let slot = match self.reader.scan.batch_for(seq) {
                Ok(b) => b.slot,
                Err(_) => {
                    // Reported at open; skip to the next batch or the end.
                    self.close_clock_run();
                    self.next = ((k + 1) * RECORDS_PER_BATCH).min(self.end);
                    continue;
                }
            };
            if self.batch_k != Some((k, slot)) {
                let len = RECORDS_PER_BATCH as usize * RECORD_BYTES;
                self.batch.resize(len, 0);
                let off = slot_sector(slot) * SECTOR + BATCH_HEADER_BYTES;
                match read_at(&mut self.reader.src, off, &mut self.batch, "a batch") {
                    Ok(got) => self.batch.truncate(got),
                    Err(e) => {
                        self.next = self.end;
                        return Some(Err(e));
                    }
                }
                self.batch_k = Some((k, slot));
            }
            self.next += 1;
            let i = (seq % RECORDS_PER_BATCH) as usize * RECORD_BYTES;
            let Some(src) = self.batch.get(i..i + RECORD_BYTES) else {
                continue;
            };
            let mut bytes = [0u8; RECORD_BYTES];
            bytes.copy_from_slice(src);
            let sector = (slot_sector(slot) * SECTOR + BATCH_HEADER_BYTES + i as u64) / SECTOR;
            let raw_time = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
            if raw_time & CLOCK_NOT_SET_BIT != 0 {
                match &mut self.clock_run {
                    Some((_, end, _)) if *end == seq => *end = seq + 1,
                    _ => {
                        self.close_clock_run();
                        self.clock_run = Some((seq, seq + 1, sector));
                    }
                }
            } else {
                self.close_clock_run();
            }
            if bytes.iter().all(|&b| b == 0) {
                self.reader.anomalies.push(ImageAnomaly {
                    sector: Some(sector),
                    kind: AnomalyKind::EmptyRecord { seq },
                });
            } else if let Some(Record {
                anomaly: Some(PayloadAnomaly::DanglingLength { offset, .. }),
                ..
            }) = Record::parse(&bytes)
            {
                self.reader.anomalies.push(ImageAnomaly {
                    sector: Some(sector),
                    kind: AnomalyKind::BrokenFrameChain { seq, offset },
                });
            }
            return Some(Ok(ImageRecord { seq, sector, bytes }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_fifo_swapped_in_after_the_check_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("card.img");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        // The open after the path check, as if the FIFO had appeared between
        // the two: it must return (a blocking open would wait for a writer).
        for write in [false, true] {
            let (tx, rx) = std::sync::mpsc::channel();
            let f = fifo.clone();
            std::thread::spawn(move || {
                let _ = tx.send(open_checked(&f, write).err());
            });
            let err = rx
                .recv_timeout(std::time::Duration::from_secs(10))
                .expect("the open returned")
                .expect("an error");
            assert!(err.is_usage(), "{err}");
            assert!(err.to_string().contains("is a FIFO"), "{err}");
        }
        // A regular file opens, for reading and for writing.
        let img = dir.path().join("ok.img");
        std::fs::write(&img, b"x").unwrap();
        assert!(open_image_file(&img, false).is_ok());
        assert!(open_image_file(&img, true).is_ok());
    }
}
