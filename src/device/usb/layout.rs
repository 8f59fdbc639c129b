//! The on-card layout of the storage ring: geometry, metadata records and
//! batch headers (`ring-layout.md`), parsed and encoded byte for byte.
//!
//! Pure, no I/O. The reader ([`super::reader`]) and the writer
//! ([`super::writer`]) are built on these.

use crate::device::record::RECORD_BYTES;

/// Sector size.
pub const SECTOR: u64 = 512;
/// Sectors 0..63 hold the metadata journal.
pub const META_SECTORS: u64 = 64;
/// A data batch spans 32 sectors.
pub const BATCH_SECTORS: u64 = 32;
/// Bytes of one batch (16 384).
pub const BATCH_BYTES: u64 = BATCH_SECTORS * SECTOR;
/// Records per batch.
pub const RECORDS_PER_BATCH: u64 = 36;
/// Bytes of a batch header.
pub const BATCH_HEADER_BYTES: u64 = 32;
/// Metadata magic (`52 49 4D 4F` on the card).
pub const META_MAGIC: u32 = 0x4F4D_4952;
/// Batch magic (`42 49 4D 4F` on the card).
pub const BATCH_MAGIC: u32 = 0x4F4D_4942;
/// Sequence numbers above this are treated as corrupt (a u64 counter of
/// 444-byte records never gets near it; it keeps arithmetic from overflowing).
pub const MAX_SEQ: u64 = 1 << 62;
/// Records in the test firmware's RAM disk (`64 + 8*32` sectors): 8 slots.
pub const HOST_TEST_SLOTS: u64 = 8;

/// The number of batch slots an image of `bytes` holds:
/// `floor((total_sectors - 64) / 32)`; 0 if it is too small.
pub fn slots_for_size(bytes: u64) -> u64 {
    (bytes / SECTOR).saturating_sub(META_SECTORS) / BATCH_SECTORS
}

/// Image size in bytes for `slots` batch slots.
pub fn image_bytes(slots: u64) -> u64 {
    (META_SECTORS + BATCH_SECTORS * slots) * SECTOR
}

/// The slot that holds `seq` in a ring of `slots` slots.
pub fn slot_of(seq: u64, slots: u64) -> u64 {
    (seq / RECORDS_PER_BATCH) % slots.max(1)
}

/// First sector of batch slot `slot`.
pub fn slot_sector(slot: u64) -> u64 {
    META_SECTORS + BATCH_SECTORS * slot
}

/// Image byte offset of record `seq` in a ring of `slots` slots.
pub fn record_offset(seq: u64, slots: u64) -> u64 {
    slot_sector(slot_of(seq, slots)) * SECTOR
        + BATCH_HEADER_BYTES
        + (seq % RECORDS_PER_BATCH) * RECORD_BYTES as u64
}

/// CRC-32 (zlib/IEEE) of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Which of the firmware's three metadata layouts a record uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// Version 1, no CRC (fw 3.0.20/3.0.21).
    A,
    /// Version 2, 44-byte record with a CRC at 40.
    B,
    /// Version 2, custody: ring_id, data_id and a CRC at 56.
    C,
}

impl Variant {
    /// The version field this variant writes (metadata and batches).
    pub fn version(self) -> u16 {
        match self {
            Variant::A => 1,
            Variant::B | Variant::C => 2,
        }
    }

    /// A short name: "A", "B", "C".
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::A => "A",
            Variant::B => "B",
            Variant::C => "C",
        }
    }
}

/// One metadata record of the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metadata {
    /// The layout it uses.
    pub variant: Variant,
    /// Write counter; the valid record with the highest wins.
    pub generation: u64,
    /// Oldest record not yet freed.
    pub read_seq: u64,
    /// One past the last committed record.
    pub write_seq: u64,
    /// Records overwritten or declared lost.
    pub dropped: u64,
    /// Ring identity (variant C).
    pub ring_id: Option<u64>,
    /// Data identity (variant C); batch headers carry it too.
    pub data_id: Option<u64>,
}

/// Why a sector with the metadata magic is not a usable record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetaReject {
    /// No magic: an unused journal slot (not an anomaly).
    #[error("no metadata magic")]
    NoMagic,
    /// A version this reader does not know.
    #[error("unknown metadata version {0}")]
    UnknownVersion(u16),
    /// Version 2 but neither the B nor the C CRC matches.
    #[error("CRC mismatch (neither variant B nor C)")]
    Crc,
}

impl Metadata {
    /// Parses one journal sector (at least 64 bytes). Range checks that need
    /// the capacity are left to [`Metadata::is_consistent`].
    pub fn parse(sector: &[u8]) -> Result<Metadata, MetaReject> {
        if sector.len() < 64 || u32_at(sector, 0) != META_MAGIC {
            return Err(MetaReject::NoMagic);
        }
        let version = u16_at(sector, 4);
        let base = |variant, ring_id, data_id| Metadata {
            variant,
            generation: u64_at(sector, 8),
            read_seq: u64_at(sector, 16),
            write_seq: u64_at(sector, 24),
            dropped: u64_at(sector, 32),
            ring_id,
            data_id,
        };
        match version {
            1 => Ok(base(Variant::A, None, None)),
            2 => {
                let ring_id = u64_at(sector, 40);
                let data_id = u64_at(sector, 48);
                if ring_id != 0 && data_id != 0 && crc32(&sector[..56]) == u32_at(sector, 56) {
                    return Ok(base(Variant::C, Some(ring_id), Some(data_id)));
                }
                let mut b = [0u8; 44];
                b.copy_from_slice(&sector[..44]);
                b[40..44].fill(0);
                if crc32(&b) == u32_at(sector, 40) {
                    return Ok(base(Variant::B, None, None));
                }
                Err(MetaReject::Crc)
            }
            v => Err(MetaReject::UnknownVersion(v)),
        }
    }

    /// `read_seq <= write_seq <= read_seq + capacity`.
    pub fn is_consistent(&self, capacity: u64) -> bool {
        self.read_seq <= self.write_seq
            && self.write_seq - self.read_seq <= capacity
            && self.write_seq <= MAX_SEQ
    }

    /// The full 512-byte sector for this record, as the firmware writes it.
    pub fn encode(&self) -> [u8; SECTOR as usize] {
        let mut s = [0u8; SECTOR as usize];
        s[0..4].copy_from_slice(&META_MAGIC.to_le_bytes());
        s[4..6].copy_from_slice(&self.variant.version().to_le_bytes());
        s[8..16].copy_from_slice(&self.generation.to_le_bytes());
        s[16..24].copy_from_slice(&self.read_seq.to_le_bytes());
        s[24..32].copy_from_slice(&self.write_seq.to_le_bytes());
        s[32..40].copy_from_slice(&self.dropped.to_le_bytes());
        match self.variant {
            Variant::A => {}
            Variant::B => {
                let crc = crc32(&s[..44]);
                s[40..44].copy_from_slice(&crc.to_le_bytes());
            }
            Variant::C => {
                s[40..48].copy_from_slice(&self.ring_id.unwrap_or(0).to_le_bytes());
                s[48..56].copy_from_slice(&self.data_id.unwrap_or(0).to_le_bytes());
                let crc = crc32(&s[..56]);
                s[56..60].copy_from_slice(&crc.to_le_bytes());
            }
        }
        s
    }
}

/// A batch header (the first 32 bytes of a batch slot).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Version field.
    pub version: u16,
    /// Records in the batch (1..36 when valid).
    pub packet_count: u16,
    /// Generation of the metadata write that commits this batch.
    pub generation: u64,
    /// Sequence number of its first record (a multiple of 36).
    pub start_seq: u64,
    /// The u32 at 24: 0 (A), the CRC (B), data_id low bits (C).
    pub word24: u32,
    /// The u32 at 28: 0 (A, B), data_id high bits (C).
    pub word28: u32,
}

impl BatchHeader {
    /// Parses a header; `None` without the batch magic or with an impossible
    /// packet count or start.
    pub fn parse(b: &[u8]) -> Option<BatchHeader> {
        if b.len() < BATCH_HEADER_BYTES as usize || u32_at(b, 0) != BATCH_MAGIC {
            return None;
        }
        let h = BatchHeader {
            version: u16_at(b, 4),
            packet_count: u16_at(b, 6),
            generation: u64_at(b, 8),
            start_seq: u64_at(b, 16),
            word24: u32_at(b, 24),
            word28: u32_at(b, 28),
        };
        Some(h)
    }

    /// Whether the count and start are plausible (1..=36, a multiple of 36).
    pub fn is_plausible(&self) -> bool {
        (1..=RECORDS_PER_BATCH as u16).contains(&self.packet_count)
            && self.start_seq.is_multiple_of(RECORDS_PER_BATCH)
            && self.start_seq <= MAX_SEQ
    }

    /// The data id of a variant C header.
    pub fn data_id(&self) -> u64 {
        (self.word28 as u64) << 32 | self.word24 as u64
    }

    /// The header's 32 bytes with the word at 24 as stored.
    pub fn encode(&self) -> [u8; 32] {
        let mut b = [0u8; 32];
        b[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&self.version.to_le_bytes());
        b[6..8].copy_from_slice(&self.packet_count.to_le_bytes());
        b[8..16].copy_from_slice(&self.generation.to_le_bytes());
        b[16..24].copy_from_slice(&self.start_seq.to_le_bytes());
        b[24..28].copy_from_slice(&self.word24.to_le_bytes());
        b[28..32].copy_from_slice(&self.word28.to_le_bytes());
        b
    }

    /// Variant B's CRC: this header with the CRC field zeroed, continued over
    /// `packet_count * 444` record bytes (`records` must hold at least that).
    pub fn crc_b(&self, records: &[u8]) -> u32 {
        let mut h = *self;
        h.word24 = 0;
        let mut hasher = crc32fast::Hasher::new();
        hasher.update(&h.encode());
        let n = (self.packet_count as usize * RECORD_BYTES).min(records.len());
        hasher.update(&records[..n]);
        hasher.finalize()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_is_zlib() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn geometry() {
        assert_eq!(slots_for_size(image_bytes(8)), 8);
        assert_eq!(slots_for_size(image_bytes(8) + 511), 8);
        assert_eq!(slots_for_size(100), 0);
        assert_eq!(record_offset(0, 8), 64 * 512 + 32);
        assert_eq!(record_offset(37, 8), (64 + 32) * 512 + 32 + 444);
        assert_eq!(record_offset(36 * 8, 8), 64 * 512 + 32);
        // The last record of a batch ends inside it.
        const { assert!(32 + 36 * 444 <= BATCH_BYTES) };
    }

    #[test]
    fn metadata_round_trips_in_every_variant() {
        for (variant, ring, data) in [
            (Variant::A, None, None),
            (Variant::B, None, None),
            (Variant::C, Some(7u64), Some(9u64)),
        ] {
            let m = Metadata {
                variant,
                generation: 42,
                read_seq: 10,
                write_seq: 100,
                dropped: 3,
                ring_id: ring,
                data_id: data,
            };
            let s = m.encode();
            assert_eq!(&s[0..4], &[0x52, 0x49, 0x4D, 0x4F]);
            assert_eq!(Metadata::parse(&s).unwrap(), m);
        }
    }

    #[test]
    fn corrupt_metadata_is_rejected() {
        let m = Metadata {
            variant: Variant::B,
            generation: 1,
            read_seq: 0,
            write_seq: 0,
            dropped: 0,
            ring_id: None,
            data_id: None,
        };
        let mut s = m.encode();
        s[20] ^= 1;
        assert_eq!(Metadata::parse(&s), Err(MetaReject::Crc));
        assert_eq!(Metadata::parse(&[0u8; 512]), Err(MetaReject::NoMagic));
        let mut s = m.encode();
        s[4] = 3;
        assert_eq!(Metadata::parse(&s), Err(MetaReject::UnknownVersion(3)));
    }

    #[test]
    fn batch_header_round_trips() {
        let h = BatchHeader {
            version: 2,
            packet_count: 36,
            generation: 5,
            start_seq: 72,
            word24: 0x1234,
            word28: 0x5678,
        };
        let b = h.encode();
        assert_eq!(&b[0..4], &[0x42, 0x49, 0x4D, 0x4F]);
        assert_eq!(BatchHeader::parse(&b), Some(h));
        assert_eq!(h.data_id(), 0x5678_0000_1234);
        assert!(h.is_plausible());
    }
}
