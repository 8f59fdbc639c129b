//! Which metadata record of the journal to trust, cross-checked against the
//! batch headers.
//!
//! The valid record with the highest generation wins (`ring-layout.md`),
//! but variant A records carry no CRC: an old record whose generation field
//! is corrupted (a flipped high bit) looks newest, and trusting it would end
//! the backlog at its old write_seq, silently leaving out everything written
//! after it. Batch headers tell the truth about time: each carries the
//! generation of the metadata write that committed it. So a record `m` is
//! **stale** when another valid record `o` with a lower generation describes
//! a later state of the same ring, and the batches confirm it:
//!
//! - `o` holds more of the same ring: `o.write_seq > m.write_seq` with a
//!   generation no higher than `m`'s, `o.read_seq >= m.read_seq`, the same
//!   ring and data ids;
//! - the slot of `m`'s last record was written no later than `o` (its
//!   batch's generation is at most `o`'s): so `m` was not written after
//!   `o`, whatever its generation field says;
//! - the card holds records past `m`'s write_seq that `o` committed: either
//!   that slot now holds a later lap (`m`'s last record was overwritten by
//!   a batch below `o`'s write_seq), or the batch holding the seq right
//!   after `m`'s last record is there, committed after that one and no
//!   later than `o` (at its own start_seq, or already a later lap too).
//!
//! A genuinely newer record never meets all three: the slot of its last
//! record holds the batch it committed (or one written after it), and after
//! a CLEAR the new ring's batches are committed after every older record,
//! so the second fails; without a CLEAR a newer record never has a smaller
//! write_seq. A record with no committed records (write_seq 0) is never
//! judged stale.
//!
//! A stale record is passed over, with a warning ([`StaleMetadata`]); the
//! next record down is checked the same way.

use crate::device::usb::layout::{BatchHeader, Metadata, RECORDS_PER_BATCH, Variant};

/// A metadata record passed over because the batches show it is older than
/// its generation says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaleMetadata {
    /// Its sector.
    pub sector: u64,
    /// The generation it claims.
    pub generation: u64,
    /// Its write_seq.
    pub write_seq: u64,
    /// The generation of the batch now in the slot of its last record (that
    /// record's batch, or a later lap that overwrote it).
    pub batch_generation: u64,
    /// The sector of the record that shows it stale.
    pub by_sector: u64,
    /// That record's generation.
    pub by_generation: u64,
    /// That record's write_seq.
    pub by_write_seq: u64,
}

/// The header in the slot of `seq`, if that slot holds the batch of `seq`
/// of ring `m` (variant C: its data id) or a later lap of it; with the lap
/// (0: the batch of `seq` itself).
fn slot_of(
    headers: &[Option<BatchHeader>],
    slots: u64,
    seq: u64,
    m: &Metadata,
) -> Option<(BatchHeader, u64)> {
    let slots = slots.max(1);
    let start = seq / RECORDS_PER_BATCH * RECORDS_PER_BATCH;
    let capacity = slots * RECORDS_PER_BATCH;
    let h = *headers
        .get((start / RECORDS_PER_BATCH % slots) as usize)?
        .as_ref()?;
    let same_ring = m.variant != Variant::C || h.version < 2 || Some(h.data_id()) == m.data_id;
    let ahead = h.start_seq.checked_sub(start)?;
    (same_ring && ahead.is_multiple_of(capacity)).then_some((h, ahead / capacity))
}

/// Whether the batches show `m` older than `o` (see the module docs); the
/// generation of the batch now in the slot of `m`'s last record, if so.
fn stale_by(
    m: &Metadata,
    o: &Metadata,
    headers: &[Option<BatchHeader>],
    slots: u64,
) -> Option<u64> {
    // (Two records never share a generation legitimately: a tie is a corrupt one too.)
    let extends = o.generation <= m.generation
        && o.write_seq > m.write_seq
        && o.read_seq >= m.read_seq
        && o.ring_id == m.ring_id
        && o.data_id == m.data_id
        && m.write_seq > 0;
    if !extends {
        return None;
    }
    let committed_by_o =
        |h: &BatchHeader| h.generation <= o.generation && h.start_seq < o.write_seq;
    let (last, last_lap) = slot_of(headers, slots, m.write_seq - 1, m)?;
    if !committed_by_o(&last) {
        return None;
    }
    if last_lap > 0 {
        return Some(last.generation);
    }
    let (next, next_lap) = slot_of(headers, slots, m.write_seq, m)?;
    let continues = committed_by_o(&next)
        && next.generation >= last.generation
        && (next_lap > 0 || next.start_seq + next.packet_count as u64 > m.write_seq);
    continues.then_some(last.generation)
}

/// The record to trust among `valid` (sector, record): the highest
/// generation (then the lowest sector) that no other record shows stale,
/// and every record passed over on the way. `None` if `valid` is empty.
pub fn choose(
    valid: &[(u64, Metadata)],
    headers: &[Option<BatchHeader>],
    slots: u64,
) -> Option<((u64, Metadata), Vec<StaleMetadata>)> {
    let mut order: Vec<&(u64, Metadata)> = valid.iter().collect();
    order.sort_by_key(|(s, m)| (std::cmp::Reverse(m.generation), *s));
    let mut passed = Vec::new();
    for &&(sector, m) in &order {
        // The newest record that shows it stale is named (the one used, usually).
        let stale = order
            .iter()
            .filter(|(by, _)| *by != sector)
            .find_map(|(by, o)| {
                stale_by(&m, o, headers, slots).map(|batch_generation| StaleMetadata {
                    sector,
                    generation: m.generation,
                    write_seq: m.write_seq,
                    batch_generation,
                    by_sector: *by,
                    by_generation: o.generation,
                    by_write_seq: o.write_seq,
                })
            });
        match stale {
            Some(s) => passed.push(s),
            None => return Some(((sector, m), passed)),
        }
    }
    // Unreachable in practice (the lowest generation cannot be shown stale),
    // but never fail for it: fall back to the highest generation.
    order.first().map(|&&r| (r, passed))
}
