//! Storage-ring images built byte for byte, for tests, the simulated pendant
//! and benchmarks.
//!
//! Modelled on the firmware's host tests (`tests/test_sd_card.c`), which run
//! the real `sd_card.c` on a RAM disk of `64 + 8*32` sectors
//! ([`HOST_TEST_SLOTS`] slots). [`FixtureBuilder`] drives a [`RingWriter`]
//! (batches, then metadata, as the firmware orders them) over an in-memory
//! image and adds what real cards show: wrap-around, torn batches, batches
//! written after the newest metadata, older laps and data from before a
//! CLEAR, clock-not-set records. Record contents are deterministic
//! ([`fixture_record`]): real-looking payloads of 60-80-byte frames built
//! with [`build_record`], so any test can recompute what a seq must hold.

use std::io::Cursor;

use crate::device::record::{CLOCK_NOT_SET_BIT, RECORD_BYTES, build_record};
use crate::device::usb::layout::{
    BATCH_HEADER_BYTES, BatchHeader, HOST_TEST_SLOTS, RECORDS_PER_BATCH, SECTOR, Variant,
    slot_sector,
};
use crate::device::usb::writer::{RingWriter, WriteError};

/// Wall-clock start of fixture recordings (2024-06-01T00:00:00Z).
pub const FIXTURE_START: u32 = 1_717_200_000;

/// How a fixture record's timestamp is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FixtureClock {
    /// Wall clock: `FIXTURE_START` plus 100 ms per record (5 frames of 20 ms).
    Wall,
    /// Clock not set: bit 31 plus seconds since boot.
    NotSet,
}

/// The deterministic frames of record `seq` of ring `epoch`: 60-80 bytes each,
/// as many as fit (the firmware starts a new record for a frame that would
/// fill the payload).
pub fn fixture_frames(epoch: u64, seq: u64) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    let mut used = 0usize;
    let mut rng = fastrand::Rng::with_seed(epoch.wrapping_mul(0x1_0000_0001) ^ seq);
    loop {
        let len = rng.usize(60..=80);
        if used + 1 + len >= 440 {
            break;
        }
        let mut frame = vec![0u8; len];
        rng.fill(&mut frame);
        used += 1 + len;
        frames.push(frame);
    }
    frames
}

/// The timestamp field of fixture record `seq`.
pub fn fixture_time(seq: u64, clock: FixtureClock) -> u32 {
    match clock {
        FixtureClock::Wall => FIXTURE_START + (seq / 10) as u32,
        FixtureClock::NotSet => CLOCK_NOT_SET_BIT | (60 + (seq / 10) as u32),
    }
}

/// The bytes of fixture record `seq` of ring `epoch`.
pub fn fixture_record(epoch: u64, seq: u64, clock: FixtureClock) -> [u8; RECORD_BYTES] {
    let frames = fixture_frames(epoch, seq);
    let refs: Vec<&[u8]> = frames.iter().map(|f| f.as_slice()).collect();
    build_record(fixture_time(seq, clock), &refs).0
}

/// Records `seqs` of ring `epoch`, concatenated.
pub fn fixture_records(epoch: u64, seqs: std::ops::Range<u64>, clock: FixtureClock) -> Vec<u8> {
    let mut out = Vec::with_capacity((seqs.end - seqs.start) as usize * RECORD_BYTES);
    for seq in seqs {
        out.extend_from_slice(&fixture_record(epoch, seq, clock));
    }
    out
}

/// Ring and data ids for epoch `epoch` (variant C).
pub fn fixture_ids(epoch: u64) -> (u64, u64) {
    (
        0xA1B2_0000_0000_0000 | (epoch + 1),
        0xD47A_0000_0000_0000 | (epoch + 1),
    )
}

/// Builds a ring image step by step, as the firmware would have written it.
#[derive(Debug)]
pub struct FixtureBuilder {
    writer: RingWriter<Cursor<Vec<u8>>>,
    /// Which ring (0 for the first; +1 per CLEAR): records differ per epoch.
    epoch: u64,
}

impl FixtureBuilder {
    /// A fresh ring of `slots` slots in `variant`.
    pub fn new(variant: Variant, slots: u64) -> Result<Self, WriteError> {
        let writer = RingWriter::format(Cursor::new(Vec::new()), slots, variant, fixture_ids(0))?;
        Ok(FixtureBuilder { writer, epoch: 0 })
    }

    /// A fresh ring the size of the firmware's host-test RAM disk (8 slots).
    pub fn host_test(variant: Variant) -> Result<Self, WriteError> {
        Self::new(variant, HOST_TEST_SLOTS)
    }

    /// The epoch of the current ring.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The writer (its metadata tells read_seq, write_seq, dropped).
    pub fn writer(&mut self) -> &mut RingWriter<Cursor<Vec<u8>>> {
        &mut self.writer
    }

    /// Records `n` records with a set clock, in commits of `per_commit`
    /// records (the firmware commits a batch or less at a time).
    pub fn record(&mut self, n: u64, per_commit: u64) -> Result<&mut Self, WriteError> {
        self.record_with(n, per_commit, FixtureClock::Wall)
    }

    /// Records `n` records whose clock was not set (bit 31).
    pub fn record_clock_not_set(
        &mut self,
        n: u64,
        per_commit: u64,
    ) -> Result<&mut Self, WriteError> {
        self.record_with(n, per_commit, FixtureClock::NotSet)
    }

    fn record_with(
        &mut self,
        n: u64,
        per_commit: u64,
        clock: FixtureClock,
    ) -> Result<&mut Self, WriteError> {
        let per = per_commit.max(1);
        let mut left = n;
        while left > 0 {
            let take = left.min(per);
            let start = self.writer.metadata().write_seq;
            let recs = fixture_records(self.epoch, start..start + take, clock);
            self.writer.append(&recs)?;
            left -= take;
        }
        Ok(self)
    }

    /// Writes `n` records' batches without committing metadata (power lost
    /// between batch and metadata write): the reader's salvage.
    pub fn record_uncommitted(&mut self, n: u64) -> Result<&mut Self, WriteError> {
        let start = self.writer.metadata().write_seq;
        let recs = fixture_records(self.epoch, start..start + n, FixtureClock::Wall);
        self.writer.append_uncommitted(&recs)?;
        Ok(self)
    }

    /// ADVANCE to `seq`.
    pub fn advance(&mut self, seq: u64) -> Result<&mut Self, WriteError> {
        self.writer.advance(seq)?;
        Ok(self)
    }

    /// CLEAR: a new epoch with new ids; the old batches stay on the card.
    pub fn clear(&mut self) -> Result<&mut Self, WriteError> {
        self.epoch += 1;
        self.writer.clear(fixture_ids(self.epoch))?;
        Ok(self)
    }

    /// Tears the batch holding `seq`: overwrites bytes in the middle of its
    /// record area (as a write cut short would), without fixing any CRC.
    pub fn tear_batch_of(&mut self, seq: u64) -> Result<&mut Self, WriteError> {
        let slot = (seq / RECORDS_PER_BATCH) % self.writer.slots();
        let off = slot_sector(slot) * SECTOR + BATCH_HEADER_BYTES + 5 * RECORD_BYTES as u64 + 7;
        self.writer.write_raw(off, &[0xFF; 300])?;
        Ok(self)
    }

    /// Writes a batch header (and records of another `epoch`) into `slot`
    /// directly: an older lap or another ring's leftovers.
    pub fn write_foreign_batch(
        &mut self,
        slot: u64,
        start_seq: u64,
        generation: u64,
        epoch: u64,
        packets: u16,
    ) -> Result<&mut Self, WriteError> {
        let variant = self.writer.metadata().variant;
        let recs = fixture_records(
            epoch,
            start_seq..start_seq + packets as u64,
            FixtureClock::Wall,
        );
        let mut header = BatchHeader {
            version: variant.version(),
            packet_count: packets,
            generation,
            start_seq,
            word24: 0,
            word28: 0,
        };
        match variant {
            Variant::A => {}
            Variant::B => header.word24 = header.crc_b(&recs),
            Variant::C => {
                let d = fixture_ids(epoch).1;
                header.word24 = d as u32;
                header.word28 = (d >> 32) as u32;
            }
        }
        let off = slot_sector(slot) * SECTOR;
        self.writer.write_raw(off, &header.encode())?;
        self.writer.write_raw(off + BATCH_HEADER_BYTES, &recs)?;
        Ok(self)
    }

    /// Overwrites the generation field of the journal record holding
    /// generation `of` (sector `of % 64`, where the writer puts it) with
    /// `to`, as a bit error would. Variant A has no CRC to catch it; in B and
    /// C the record then fails its CRC.
    pub fn corrupt_generation(&mut self, of: u64, to: u64) -> Result<&mut Self, WriteError> {
        let sector = of % crate::device::usb::layout::META_SECTORS;
        self.writer
            .write_raw(sector * SECTOR + 8, &to.to_le_bytes())?;
        Ok(self)
    }

    /// The image bytes.
    pub fn finish(self) -> Vec<u8> {
        self.writer.into_inner().into_inner()
    }

    /// A copy of the image bytes so far.
    pub fn snapshot(&self) -> Vec<u8> {
        self.writer.storage().get_ref().clone()
    }
}

/// Packs 20 ms Opus frames into records as the firmware does (whole frames;
/// a frame that would overflow the payload starts a new record), stamping
/// each record with the second of its first frame from `start_raw` (a raw
/// timestamp).
pub fn pack_records(frames: &[Vec<u8>], start_raw: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < frames.len() {
        let elapsed_s = (i * 20 / 1000) as u32;
        let refs: Vec<&[u8]> = frames[i..].iter().take(8).map(|f| &f[..]).collect();
        let (rec, used) = build_record(start_raw + elapsed_s, &refs);
        if used == 0 {
            // A frame larger than a record's payload cannot be stored.
            i += 1;
            continue;
        }
        out.extend_from_slice(&rec);
        i += used;
    }
    out
}

/// A ring of real speech: the demo's five minutes of conversation, again
/// and again with `pause_s` of no recording after each round, until
/// `hours` of audio are recorded (from [`FIXTURE_START`]). Every round is
/// its own conversation when `pause_s` is at least the conversation gap.
pub fn hours_of_speech(hours: f64, pause_s: u32) -> Result<Vec<u8>, WriteError> {
    let frames: Vec<Vec<u8>> = crate::device::demo::FILES
        .iter()
        .flat_map(|f| crate::device::wal::Frames::new(f.bytes).map(|(_, fr)| fr.to_vec()))
        .collect();
    let round_s = (frames.len() * 20 / 1000) as u32;
    let rounds = ((hours * 3600.0) / f64::from(round_s.max(1)))
        .ceil()
        .max(1.0) as u32;
    let mut records = Vec::new();
    for r in 0..rounds {
        records.extend(pack_records(
            &frames,
            FIXTURE_START + r * (round_s + pause_s),
        ));
    }
    let count = (records.len() / RECORD_BYTES) as u64;
    let mut b = FixtureBuilder::new(Variant::C, count.div_ceil(RECORDS_PER_BATCH) + 1)?;
    for commit in records.chunks((RECORDS_PER_BATCH as usize) * RECORD_BYTES) {
        b.writer().append(commit)?;
    }
    Ok(b.finish())
}

/// A simulated `hours`-long recording (about 36 000 records an hour) in a
/// variant C ring just big enough to hold it, as one image in memory.
pub fn hours_of_audio(hours: f64) -> Result<Vec<u8>, WriteError> {
    let records = (hours * 36_000.0) as u64;
    let slots = records.div_ceil(RECORDS_PER_BATCH) + 1;
    let mut b = FixtureBuilder::new(Variant::C, slots)?;
    b.record(records, RECORDS_PER_BATCH * 64)?;
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::record::Record;

    #[test]
    fn fixture_records_are_real_looking() {
        let r = fixture_record(0, 5, FixtureClock::Wall);
        let p = Record::parse(&r).unwrap();
        assert!(p.anomaly.is_none());
        assert!(p.frames.len() >= 4, "{} frames", p.frames.len());
        assert!(p.frames.iter().all(|&(_, len)| (60..=80).contains(&len)));
        assert_ne!(
            fixture_record(0, 5, FixtureClock::Wall),
            fixture_record(1, 5, FixtureClock::Wall)
        );
        let n = fixture_record(0, 5, FixtureClock::NotSet);
        assert_eq!(
            u32::from_be_bytes([n[0], n[1], n[2], n[3]]) & CLOCK_NOT_SET_BIT,
            CLOCK_NOT_SET_BIT
        );
    }

    #[test]
    fn host_test_image_has_the_ram_disk_size() {
        let img = FixtureBuilder::host_test(Variant::A).unwrap().finish();
        assert_eq!(img.len() as u64, (64 + 8 * 32) * 512);
    }
}
