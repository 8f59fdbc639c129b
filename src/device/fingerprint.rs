//! The same audio in two captures, found by its Opus frames.
//!
//! Captures are content-addressed by their file bytes, so the same stretch
//! of recording held twice (the phone app's `.bin` files and the card's ring
//! records) is stored twice: the two files are framed differently
//! (`[u32 LE len][frame]` against 444-byte records with timestamps) and
//! start and end at different frames. The Opus frames inside are the same
//! bytes, though: the phone writes the frames it read from the pendant's
//! storage records over BLE unchanged (`omi-facts.md` §1, §3), and a card
//! pull reads those records off the SD card. So the fingerprint works on
//! frames, not files:
//!
//! - each frame is hashed, and each run of [`GRAM`] consecutive frames
//!   (160 ms) gets a hash of its frames' hashes;
//! - a gram is kept as an anchor when its hash is a multiple of
//!   [`SAMPLE`] (content-defined, so both copies keep the same grams
//!   wherever their files start): about one anchor per 320 ms of audio,
//!   16 bytes each, so ten hours of audio make about 1.8 MB;
//! - grams holding a frame repeated back to back (digital silence encodes
//!   to identical frames, which unrelated recordings share) are never
//!   anchors, and an anchor hash seen twice in one capture is too common to
//!   tell anything;
//! - two captures sharing at least [`MIN_ANCHORS`] anchors share audio;
//!   how much is the span between their first and last shared anchor.
//!
//! Frames are read from a capture's file [`CHUNK`] bytes at a time
//! ([`Fingerprinter::read`]), so memory does not grow with its size.

use std::collections::{HashMap, VecDeque};
use std::io::Read;

use super::capture::{CaptureFormat, frames};
use super::record::RECORD_BYTES;

/// Frames per gram: 160 ms of 20 ms frames.
pub const GRAM: usize = 8;

/// A gram is an anchor when its hash is a multiple of this.
pub const SAMPLE: u64 = 16;

/// Two captures share audio when at least this many anchors (about 2.5 s
/// of audio) are common to both.
pub const MIN_ANCHORS: usize = 8;

/// A gram hash shared by more captures than this links each only to the
/// next one (by index), so a stretch held many times costs a chain, not
/// every pair.
pub const MAX_FANOUT: usize = 8;

/// How much of a capture file is read at once.
pub const CHUNK: usize = 1 << 20;

/// One anchor: a gram's hash and the ordinal of its first frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    /// The gram's hash.
    pub hash: u64,
    /// Ordinal (in its capture) of the gram's first frame.
    pub ordinal: u64,
}

/// Builds the anchors of one capture from its frames, in order.
#[derive(Debug, Default)]
pub struct Fingerprinter {
    /// The last [`GRAM`] frames' hashes, each with whether it equals the
    /// one before it.
    recent: VecDeque<(u64, bool)>,
    /// How many of `recent` (after its first) repeat the frame before.
    repeats: usize,
    next_ordinal: u64,
    anchors: Vec<Anchor>,
}

/// Mixes `word` into `h` (FxHash's step: cheap, for bytes already spread).
fn mix(h: u64, word: u64) -> u64 {
    (h.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95)
}

/// SplitMix64's finaliser: every output bit depends on every input bit.
fn finish(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A frame's hash, eight bytes at a time.
fn hash_of(bytes: &[u8]) -> u64 {
    let mut h = mix(0, bytes.len() as u64);
    let mut words = bytes.chunks_exact(8);
    for w in words.by_ref() {
        h = mix(h, u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    finish(mix(h, u64::from_le_bytes(tail)))
}

impl Fingerprinter {
    /// An empty fingerprint.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the next frame.
    pub fn push(&mut self, frame: &[u8]) {
        let hash = hash_of(frame);
        let repeat = self.recent.back().is_some_and(|&(h, _)| h == hash);
        if self.recent.len() == GRAM {
            self.recent.pop_front();
            // The new first frame's repeat was of a frame now gone.
            if let Some(first) = self.recent.front_mut()
                && std::mem::take(&mut first.1)
            {
                self.repeats -= 1;
            }
        }
        self.recent.push_back((hash, repeat));
        self.repeats += usize::from(repeat);
        self.next_ordinal += 1;
        if self.recent.len() < GRAM || self.repeats > 0 {
            return;
        }
        let hash = finish(self.recent.iter().fold(0, |h, &(f, _)| mix(h, f)));
        if hash.is_multiple_of(SAMPLE) {
            self.anchors.push(Anchor {
                hash,
                ordinal: self.next_ordinal - GRAM as u64,
            });
        }
    }

    /// Adds every frame of a capture's bytes as `format` frames them, read
    /// from `input` [`CHUNK`] bytes at a time; stops at the end of the input
    /// or where its framing ends (as import stops there). Returns how many
    /// frames it read.
    pub fn read(&mut self, format: CaptureFormat, mut input: impl Read) -> std::io::Result<u64> {
        let before = self.next_ordinal;
        let mut buf: Vec<u8> = Vec::with_capacity(CHUNK);
        let mut eof = false;
        loop {
            if !eof && buf.len() < CHUNK {
                let start = buf.len();
                buf.resize(CHUNK, 0);
                let mut filled = start;
                while !eof && filled < CHUNK {
                    let n = input.read(&mut buf[filled..])?;
                    filled += n;
                    eof = n == 0;
                }
                buf.truncate(filled);
            }
            let consumed = match format {
                CaptureFormat::Ring => {
                    let whole = buf.len() / RECORD_BYTES * RECORD_BYTES;
                    frames(format, &buf[..whole]).for_each(|f| self.push(f.bytes));
                    whole
                }
                CaptureFormat::Wal => {
                    let mut end = 0;
                    for f in frames(format, &buf) {
                        self.push(f.bytes);
                        end = f.offset as usize + f.bytes.len();
                    }
                    end
                }
            };
            buf.drain(..consumed);
            if consumed == 0 && (eof || buf.len() >= CHUNK) {
                break;
            }
        }
        Ok(self.next_ordinal - before)
    }

    /// The anchors, in frame order.
    pub fn finish(self) -> Vec<Anchor> {
        self.anchors
    }
}

/// Audio two captures share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shared {
    /// Index of the first capture (in the list given to [`shared`]).
    pub a: usize,
    /// Index of the second (greater than `a`).
    pub b: usize,
    /// How many anchors they share.
    pub anchors: usize,
    /// First and one past the last shared frame in `a`.
    pub a_frames: (u64, u64),
    /// The same in `b`.
    pub b_frames: (u64, u64),
}

impl Shared {
    /// Frames in common (the shorter of the two spans).
    pub fn frames(&self) -> u64 {
        (self.a_frames.1 - self.a_frames.0).min(self.b_frames.1 - self.b_frames.0)
    }
}

/// Every pair of fingerprints (one per capture) that share audio, most
/// shared first.
pub fn shared(prints: &[Vec<Anchor>]) -> Vec<Shared> {
    let mut all: Vec<(u64, u32, u64)> = prints
        .iter()
        .enumerate()
        .flat_map(|(i, p)| p.iter().map(move |a| (a.hash, i as u32, a.ordinal)))
        .collect();
    all.sort_unstable();
    let mut pairs: HashMap<(usize, usize), Shared> = HashMap::new();
    let mut link = |x: (u32, u64), y: (u32, u64)| {
        let (a, b) = if x.0 < y.0 { (x, y) } else { (y, x) };
        let e = pairs.entry((a.0 as usize, b.0 as usize)).or_insert(Shared {
            a: a.0 as usize,
            b: b.0 as usize,
            anchors: 0,
            a_frames: (u64::MAX, 0),
            b_frames: (u64::MAX, 0),
        });
        e.anchors += 1;
        let end = GRAM as u64;
        e.a_frames = (e.a_frames.0.min(a.1), e.a_frames.1.max(a.1 + end));
        e.b_frames = (e.b_frames.0.min(b.1), e.b_frames.1.max(b.1 + end));
    };
    for group in all.chunk_by(|x, y| x.0 == y.0) {
        if group.len() < 2 || group.windows(2).any(|w| w[0].1 == w[1].1) {
            // Alone, or seen twice in one capture: too common to tell.
            continue;
        }
        let members: Vec<(u32, u64)> = group.iter().map(|&(_, c, o)| (c, o)).collect();
        if members.len() > MAX_FANOUT {
            members.windows(2).for_each(|w| link(w[0], w[1]));
        } else {
            for (i, x) in members.iter().enumerate() {
                for y in &members[i + 1..] {
                    link(*x, *y);
                }
            }
        }
    }
    let mut out: Vec<Shared> = pairs
        .into_values()
        .filter(|s| s.anchors >= MIN_ANCHORS)
        .collect();
    out.sort_by_key(|s| (std::cmp::Reverse(s.frames()), s.a, s.b));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::record::build_record;
    use crate::device::wal;

    /// `n` distinct frames of noise-like bytes from `seed`.
    fn noise(seed: u64, n: usize) -> Vec<Vec<u8>> {
        fastrand::seed(seed);
        (0..n)
            .map(|_| {
                (0..fastrand::usize(40..90))
                    .map(|_| fastrand::u8(..))
                    .collect()
            })
            .collect()
    }

    fn wal_body(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        wal::write_body(&mut out, frames.iter().map(|f| &f[..])).unwrap();
        out
    }

    fn ring_bytes(frames: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < frames.len() {
            let refs: Vec<&[u8]> = frames[i..].iter().take(8).map(|f| &f[..]).collect();
            let (rec, used) = build_record(1_750_000_000 + (i / 50) as u32, &refs);
            out.extend_from_slice(&rec);
            i += used;
        }
        out
    }

    fn print(format: CaptureFormat, bytes: &[u8]) -> (u64, Vec<Anchor>) {
        let mut f = Fingerprinter::new();
        let n = f.read(format, bytes).unwrap();
        (n, f.finish())
    }

    #[test]
    fn the_same_frames_framed_two_ways_share_their_overlap() {
        let audio = noise(1, 6000); // two minutes
        // The phone's file holds frames 1000..4000, the card all of them.
        let (n_wal, wal) = print(CaptureFormat::Wal, &wal_body(&audio[1000..4000]));
        let (n_ring, ring) = print(CaptureFormat::Ring, &ring_bytes(&audio));
        assert_eq!((n_wal, n_ring), (3000, 6000));
        let other = print(CaptureFormat::Wal, &wal_body(&noise(2, 3000))).1;
        let found = shared(&[wal, other, ring]);
        assert_eq!(found.len(), 1, "{found:?}");
        let s = &found[0];
        assert_eq!((s.a, s.b), (0, 2));
        // The span runs from the first to the last anchor: within a few
        // anchors' spacing of the true 3000 frames, at the right place.
        assert!(s.frames() > 2800 && s.frames() <= 3000, "{s:?}");
        assert!(s.b_frames.0 >= 1000 && s.b_frames.0 < 1200, "{s:?}");
        assert_eq!(s.b_frames.0 - s.a_frames.0, 1000);
    }

    #[test]
    fn repeated_frames_and_unrelated_audio_share_nothing() {
        // Digital silence: one frame over and over, in both.
        let silence = vec![vec![0xF8u8, 0xFF, 0xFE]; 3000];
        let a = print(CaptureFormat::Wal, &wal_body(&silence)).1;
        let b = print(CaptureFormat::Ring, &ring_bytes(&silence)).1;
        assert!(a.is_empty() && b.is_empty());
        let c = print(CaptureFormat::Wal, &wal_body(&noise(3, 3000))).1;
        let d = print(CaptureFormat::Wal, &wal_body(&noise(4, 3000))).1;
        assert!(!c.is_empty());
        assert!(shared(&[a, b, c, d]).is_empty());
    }

    #[test]
    fn reading_in_chunks_matches_reading_at_once_and_stops_where_framing_ends() {
        let audio = noise(5, 40_000); // larger than one chunk as a body
        let body = wal_body(&audio);
        assert!(body.len() > CHUNK);
        let (n, chunked) = print(CaptureFormat::Wal, &body);
        assert_eq!(n, 40_000);
        let mut at_once = Fingerprinter::new();
        wal::Frames::new(&body).for_each(|(_, f)| at_once.push(f));
        assert_eq!(chunked, at_once.finish());
        // A zero length ends the body, as import ends it there.
        let mut cut = wal_body(&audio[..100]);
        cut.extend_from_slice(&[0, 0, 0, 0]);
        cut.extend_from_slice(&wal_body(&audio[100..200]));
        assert_eq!(print(CaptureFormat::Wal, &cut).0, 100);
        // A partial trailing record is left out.
        let mut ring = ring_bytes(&audio[..100]);
        ring.extend_from_slice(&[1, 2, 3]);
        assert_eq!(print(CaptureFormat::Ring, &ring).0, 100);
    }

    #[test]
    fn audio_held_many_times_links_as_a_chain() {
        let audio = noise(6, 3000);
        let prints: Vec<Vec<Anchor>> = (0..MAX_FANOUT + 4)
            .map(|k| print(CaptureFormat::Wal, &wal_body(&audio[k..])).1)
            .collect();
        let found = shared(&prints);
        assert_eq!(found.len(), MAX_FANOUT + 3, "neighbours only");
        assert!(found.iter().all(|s| s.b == s.a + 1));
    }
}
