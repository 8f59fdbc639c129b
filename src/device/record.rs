//! The pendant's 444-byte storage record: a timestamp and a payload of Opus frames.
//!
//! Every record the ring generation of the firmware stores or streams is
//! `u32 BE timestamp` + 440 payload bytes. The payload is a run of
//! `[u8 len][len bytes]` frame entries, zero-padded. This module parses one
//! record with the safe rule of `ring-layout.md` and classifies its timestamp
//! ([`RecordTime`]). It does no I/O and never panics on any input.

use crate::clock::ClockTrust;

/// Size of one stored record.
pub const RECORD_BYTES: usize = 444;
/// Size of a record's payload (after the 4-byte timestamp).
pub const PAYLOAD_BYTES: usize = 440;
/// Bit 31 of the timestamp: the pendant's clock was not set.
pub const CLOCK_NOT_SET_BIT: u32 = 0x8000_0000;
/// Unix seconds below this are not wall time (about 2023-11-14).
pub const WALL_CLOCK_FLOOR_SECS: u32 = 1_700_000_000;

/// A record's timestamp, classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordTime {
    /// Unix seconds from a set clock.
    Wall(u32),
    /// Seconds since boot: the clock was not set (bit 31), or the value is
    /// too small to be wall time.
    Uptime(u32),
    /// Zero: no time at all.
    Unknown,
}

impl RecordTime {
    /// Classifies a raw big-endian timestamp field.
    pub fn classify(raw: u32) -> Self {
        if raw == 0 {
            RecordTime::Unknown
        } else if raw & CLOCK_NOT_SET_BIT != 0 {
            RecordTime::Uptime(raw & !CLOCK_NOT_SET_BIT)
        } else if raw < WALL_CLOCK_FLOOR_SECS {
            RecordTime::Uptime(raw)
        } else {
            RecordTime::Wall(raw)
        }
    }

    /// How far a time of this kind can be trusted.
    pub fn trust(self) -> ClockTrust {
        match self {
            RecordTime::Wall(_) => ClockTrust::Wall,
            RecordTime::Uptime(_) => ClockTrust::Uptime,
            RecordTime::Unknown => ClockTrust::Unknown,
        }
    }

    /// The seconds value in this record's own clock domain (0 for unknown).
    pub fn seconds(self) -> u32 {
        match self {
            RecordTime::Wall(s) | RecordTime::Uptime(s) => s,
            RecordTime::Unknown => 0,
        }
    }
}

/// Something odd about a record's payload that the safe parse stepped around.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadAnomaly {
    /// A length byte whose frame would run to or past the end of the payload
    /// (older firmware left stale bytes after it). Parsing stopped there.
    DanglingLength {
        /// Offset of the length byte within the payload.
        offset: usize,
        /// The length it claimed.
        len: u8,
    },
}

/// One parsed record: its timestamp and where its frames lie in the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    /// The raw timestamp field.
    pub raw_time: u32,
    /// The classified timestamp.
    pub time: RecordTime,
    /// The 440-byte payload.
    pub payload: &'a [u8],
    /// `(offset, len)` of each frame within `payload`, in order.
    pub frames: Vec<(u16, u16)>,
    /// Set when the safe parse stopped at a dangling length byte.
    pub anomaly: Option<PayloadAnomaly>,
}

impl<'a> Record<'a> {
    /// Parses one 444-byte record. Returns `None` only if `bytes` is shorter
    /// than a record; extra bytes are ignored.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let bytes = bytes.get(..RECORD_BYTES)?;
        let raw_time = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
        let payload = &bytes[4..];
        let (frames, anomaly) = payload_frames(payload);
        Some(Record {
            raw_time,
            time: RecordTime::classify(raw_time),
            payload,
            frames,
            anomaly,
        })
    }

    /// The bytes of each frame, in order.
    pub fn frame_bytes(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        let payload = self.payload;
        self.frames
            .iter()
            .map(move |&(off, len)| &payload[off as usize..off as usize + len as usize])
    }
}

/// The safe payload parse of `ring-layout.md`: from offset 0 while
/// `off < 439`, a zero byte is padding (stop); a length whose frame would reach
/// the end of the payload stops (a dangling length byte); otherwise the frame
/// is emitted. Returns the `(offset, len)` of each frame and the anomaly, if any.
pub fn payload_frames(payload: &[u8]) -> (Vec<(u16, u16)>, Option<PayloadAnomaly>) {
    let limit = payload.len().min(PAYLOAD_BYTES);
    let mut frames = Vec::new();
    let mut off = 0usize;
    while off + 1 < limit {
        let len = payload[off];
        if len == 0 {
            return (frames, None);
        }
        if off + 1 + len as usize >= limit {
            return (
                frames,
                Some(PayloadAnomaly::DanglingLength { offset: off, len }),
            );
        }
        frames.push(((off + 1) as u16, len as u16));
        off += 1 + len as usize;
    }
    (frames, None)
}

/// Builds a record from a timestamp and frames, exactly as the firmware lays
/// them out. Frames that do not fit are returned untouched (the firmware
/// starts a new record for a frame that would exactly fill the payload, so a
/// frame fits only when `off + 1 + len < 440`). Used by fixtures, the
/// simulated pendant and export.
pub fn build_record(raw_time: u32, frames: &[&[u8]]) -> ([u8; RECORD_BYTES], usize) {
    let mut out = [0u8; RECORD_BYTES];
    out[..4].copy_from_slice(&raw_time.to_be_bytes());
    let payload = &mut out[4..];
    let mut off = 0usize;
    let mut used = 0usize;
    for frame in frames {
        let len = frame.len();
        if len == 0 || len > 255 || off + 1 + len >= PAYLOAD_BYTES {
            break;
        }
        payload[off] = len as u8;
        payload[off + 1..off + 1 + len].copy_from_slice(frame);
        off += 1 + len;
        used += 1;
    }
    (out, used)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_timestamps() {
        assert_eq!(RecordTime::classify(0), RecordTime::Unknown);
        assert_eq!(
            RecordTime::classify(1_717_000_000),
            RecordTime::Wall(1_717_000_000)
        );
        assert_eq!(RecordTime::classify(0x8000_0010), RecordTime::Uptime(16));
        assert_eq!(RecordTime::classify(3600), RecordTime::Uptime(3600));
        assert_eq!(
            RecordTime::classify(1_699_999_999).trust(),
            ClockTrust::Uptime
        );
    }

    #[test]
    fn round_trips_frames() {
        let a = [1u8; 70];
        let b = [2u8; 80];
        let (rec, used) = build_record(1_717_000_000, &[&a, &b]);
        assert_eq!(used, 2);
        let parsed = Record::parse(&rec).unwrap();
        assert_eq!(parsed.time, RecordTime::Wall(1_717_000_000));
        let frames: Vec<&[u8]> = parsed.frame_bytes().collect();
        assert_eq!(frames, vec![&a[..], &b[..]]);
        assert_eq!(parsed.anomaly, None);
    }

    #[test]
    fn a_frame_that_would_fill_the_payload_starts_a_new_record() {
        // 1 + 438 = 439 < 440 fits; 1 + 439 = 440 does not.
        let fits = vec![7u8; 255];
        let (rec, used) = build_record(5, &[&fits, &[9u8; 183]]);
        assert_eq!(used, 1, "255 + 1 + 183 + 1 = 440 would fill the payload");
        assert_eq!(Record::parse(&rec).unwrap().frames.len(), 1);
    }

    #[test]
    fn dangling_length_byte_stops_and_is_reported() {
        let mut rec = [0u8; RECORD_BYTES];
        rec[4] = 10; // a frame at 1..11
        rec[15] = 200; // dangling: 11 + 1 + 200 = 212 < 440, so fine
        rec[4 + 212] = 250; // 212 + 1 + 250 >= 440: dangling
        let parsed = Record::parse(&rec).unwrap();
        assert_eq!(parsed.frames, vec![(1, 10), (12, 200)]);
        assert_eq!(
            parsed.anomaly,
            Some(PayloadAnomaly::DanglingLength {
                offset: 212,
                len: 250
            })
        );
    }

    #[test]
    fn short_input_is_none_not_a_panic() {
        assert!(Record::parse(&[0u8; 443]).is_none());
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_frames_stay_in_bounds(bytes in proptest::collection::vec(proptest::num::u8::ANY, 444..=444)) {
            let parsed = Record::parse(&bytes).unwrap();
            for &(off, len) in &parsed.frames {
                proptest::prop_assert!(len > 0);
                proptest::prop_assert!((off as usize + len as usize) < PAYLOAD_BYTES);
            }
            let _ = parsed.frame_bytes().count();
        }
    }
}
