//! Writing the storage ring the way the firmware does: batches, then the
//! metadata record that commits them.
//!
//! Used by the fixture builders ([`super::fixture`]) and the simulated
//! pendant ([`crate::device::sim`]), which persists ADVANCE and CLEAR into its
//! image as new metadata records. The order of writes follows the firmware:
//! a batch (header + records, the whole 32 sectors) is written first, then the
//! metadata record with the next generation goes to journal sector
//! `generation % 64`. Wrap-around overwrites a whole batch at a time and moves
//! read_seq past it, counting the records as dropped.

use std::io::{self, Read, Seek, SeekFrom, Write};

use crate::device::record::RECORD_BYTES;
use crate::device::usb::layout::{
    BATCH_BYTES, BATCH_HEADER_BYTES, BatchHeader, META_SECTORS, Metadata, RECORDS_PER_BATCH,
    SECTOR, Variant, image_bytes, slot_sector,
};
use crate::device::usb::reader::{ImageError, ImageReader};

/// Why a write failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The storage failed.
    #[error("writing {what} at byte {offset}: {source}")]
    Io {
        /// What was being written.
        what: &'static str,
        /// Byte offset.
        offset: u64,
        /// The error.
        source: io::Error,
    },
    /// The image could not be read back.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// Bytes that are not whole records.
    #[error("{len} bytes are not whole 444-byte records")]
    NotWholeRecords {
        /// Their length.
        len: usize,
    },
    /// A new read_seq outside `[read_seq, write_seq]`.
    #[error("cannot advance to {seq}: the ring holds {read_seq}..{write_seq}")]
    AdvanceOutOfRange {
        /// Asked for.
        seq: u64,
        /// Current read_seq.
        read_seq: u64,
        /// Current write_seq.
        write_seq: u64,
    },
    /// Zero slots.
    #[error("a ring needs at least one batch slot")]
    NoSlots,
}

/// Writes a ring into storage, keeping its metadata in memory.
#[derive(Debug)]
pub struct RingWriter<S> {
    storage: S,
    slots: u64,
    meta: Metadata,
}

fn io_err(what: &'static str, offset: u64) -> impl FnOnce(io::Error) -> WriteError {
    move |source| WriteError::Io {
        what,
        offset,
        source,
    }
}

impl<S: Read + Write + Seek> RingWriter<S> {
    /// Formats a new ring of `slots` slots: sizes the storage, zeroes the
    /// journal and writes generation 1 with an empty ring. `ids` are the ring
    /// and data ids (used by variant C only).
    pub fn format(
        mut storage: S,
        slots: u64,
        variant: Variant,
        ids: (u64, u64),
    ) -> Result<Self, WriteError> {
        if slots == 0 {
            return Err(WriteError::NoSlots);
        }
        let total = image_bytes(slots);
        storage
            .seek(SeekFrom::Start(total - SECTOR))
            .and_then(|_| storage.write_all(&[0u8; SECTOR as usize]))
            .map_err(io_err("the last sector", total - SECTOR))?;
        storage
            .seek(SeekFrom::Start(0))
            .and_then(|_| storage.write_all(&vec![0u8; (META_SECTORS * SECTOR) as usize]))
            .map_err(io_err("the metadata journal", 0))?;
        let c = variant == Variant::C;
        let meta = Metadata {
            variant,
            generation: 0,
            read_seq: 0,
            write_seq: 0,
            dropped: 0,
            ring_id: c.then_some(ids.0),
            data_id: c.then_some(ids.1),
        };
        let mut w = RingWriter {
            storage,
            slots,
            meta,
        };
        w.commit_metadata()?;
        Ok(w)
    }

    /// Opens an existing ring (its newest valid metadata and slot count).
    pub fn open(mut storage: S) -> Result<Self, WriteError> {
        let reader = ImageReader::open(&mut storage)?;
        let scan = reader.scan();
        let (slots, meta) = (scan.slots, scan.metadata);
        drop(reader);
        Ok(RingWriter {
            storage,
            slots,
            meta,
        })
    }

    /// The current metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// Slots in the ring.
    pub fn slots(&self) -> u64 {
        self.slots
    }

    /// Capacity in records.
    pub fn capacity(&self) -> u64 {
        self.slots * RECORDS_PER_BATCH
    }

    /// The storage.
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, for reading.
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Gives the storage back.
    pub fn into_inner(self) -> S {
        self.storage
    }

    /// Writes the metadata with the next generation to sector `generation % 64`.
    pub fn commit_metadata(&mut self) -> Result<(), WriteError> {
        self.meta.generation += 1;
        let sector = self.meta.generation % META_SECTORS;
        let off = sector * SECTOR;
        let bytes = self.meta.encode();
        self.storage
            .seek(SeekFrom::Start(off))
            .and_then(|_| self.storage.write_all(&bytes))
            .and_then(|_| self.storage.flush())
            .map_err(io_err("a metadata record", off))
    }

    /// Appends records and commits them (batches, then metadata).
    pub fn append(&mut self, records: &[u8]) -> Result<(), WriteError> {
        self.append_batches(records)?;
        self.commit_metadata()
    }

    /// Writes records' batches but not the metadata that would commit them, as
    /// when power is lost between the two writes. The in-memory state moves on
    /// (a later [`append`](Self::append) commits everything).
    pub fn append_uncommitted(&mut self, records: &[u8]) -> Result<(), WriteError> {
        self.append_batches(records)
    }

    fn append_batches(&mut self, records: &[u8]) -> Result<(), WriteError> {
        if !records.len().is_multiple_of(RECORD_BYTES) {
            return Err(WriteError::NotWholeRecords { len: records.len() });
        }
        let gen_next = self.meta.generation + 1;
        let mut rest = records;
        while !rest.is_empty() {
            let seq = self.meta.write_seq;
            let k = seq / RECORDS_PER_BATCH;
            let start = k * RECORDS_PER_BATCH;
            let in_batch = (seq - start) as usize;
            let room = RECORDS_PER_BATCH as usize - in_batch;
            let take = room.min(rest.len() / RECORD_BYTES);
            // Wrap: batch k reuses the slot of batch k - N; move read_seq past it.
            let oldest_kept = (k + 1).saturating_sub(self.slots) * RECORDS_PER_BATCH;
            if self.meta.read_seq < oldest_kept {
                self.meta.dropped += oldest_kept - self.meta.read_seq;
                self.meta.read_seq = oldest_kept;
            }
            // The batch's bytes: what it held so far, then the new records.
            let slot = k % self.slots;
            let off = slot_sector(slot) * SECTOR;
            let mut batch = vec![0u8; BATCH_BYTES as usize];
            if in_batch > 0 {
                let len = in_batch * RECORD_BYTES;
                let at = off + BATCH_HEADER_BYTES;
                self.storage
                    .seek(SeekFrom::Start(at))
                    .and_then(|_| {
                        self.storage
                            .read_exact(&mut batch[BATCH_HEADER_BYTES as usize..][..len])
                    })
                    .map_err(io_err("the tail batch", at))?;
            }
            let dst = BATCH_HEADER_BYTES as usize + in_batch * RECORD_BYTES;
            batch[dst..dst + take * RECORD_BYTES].copy_from_slice(&rest[..take * RECORD_BYTES]);
            let count = (in_batch + take) as u16;
            let mut header = BatchHeader {
                version: self.meta.variant.version(),
                packet_count: count,
                generation: gen_next,
                start_seq: start,
                word24: 0,
                word28: 0,
            };
            match self.meta.variant {
                Variant::A => {}
                Variant::B => {
                    header.word24 = header.crc_b(&batch[BATCH_HEADER_BYTES as usize..]);
                }
                Variant::C => {
                    let d = self.meta.data_id.unwrap_or(0);
                    header.word24 = d as u32;
                    header.word28 = (d >> 32) as u32;
                }
            }
            batch[..BATCH_HEADER_BYTES as usize].copy_from_slice(&header.encode());
            self.storage
                .seek(SeekFrom::Start(off))
                .and_then(|_| self.storage.write_all(&batch))
                .map_err(io_err("a batch", off))?;
            self.meta.write_seq += take as u64;
            rest = &rest[take * RECORD_BYTES..];
        }
        Ok(())
    }

    /// Frees everything before `seq` (ADVANCE) and commits it. Advancing to
    /// the current read_seq writes nothing.
    pub fn advance(&mut self, seq: u64) -> Result<(), WriteError> {
        if seq < self.meta.read_seq || seq > self.meta.write_seq {
            return Err(WriteError::AdvanceOutOfRange {
                seq,
                read_seq: self.meta.read_seq,
                write_seq: self.meta.write_seq,
            });
        }
        if seq == self.meta.read_seq {
            return Ok(());
        }
        self.meta.read_seq = seq;
        self.commit_metadata()
    }

    /// Wipes the ring (CLEAR): sequence numbers restart at 0 with new ids.
    /// Batches stay on the card until reused, as on the firmware.
    pub fn clear(&mut self, ids: (u64, u64)) -> Result<(), WriteError> {
        self.meta.read_seq = 0;
        self.meta.write_seq = 0;
        self.meta.dropped = 0;
        if self.meta.variant == Variant::C {
            self.meta.ring_id = Some(ids.0);
            self.meta.data_id = Some(ids.1);
        }
        self.commit_metadata()
    }

    /// Reads record `seq` of the current ring (no checks).
    pub fn read_record(&mut self, seq: u64) -> Result<[u8; RECORD_BYTES], WriteError> {
        let off = crate::device::usb::layout::record_offset(seq, self.slots);
        let mut out = [0u8; RECORD_BYTES];
        self.storage
            .seek(SeekFrom::Start(off))
            .and_then(|_| self.storage.read_exact(&mut out))
            .map_err(io_err("a record", off))?;
        Ok(out)
    }

    /// Overwrites raw bytes at an image offset (for fixtures that tear batches).
    pub fn write_raw(&mut self, offset: u64, bytes: &[u8]) -> Result<(), WriteError> {
        self.storage
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.storage.write_all(bytes))
            .map_err(io_err("raw bytes", offset))
    }
}
