//! The ring-generation BLE storage protocol (firmware >= 3.0.20): the codec.
//!
//! Pure, no I/O. Both sides of the control channel are here: the
//! [`Command`]s the host writes (the simulated pendant decodes them) and the
//! [`Notification`]s the pendant sends back (the session decodes them), the
//! 16-byte status characteristic ([`StorageStatus`]), the time-sync value,
//! status codes ([`Status`]) and custody capability bits ([`CustodyCaps`]) as
//! named types, and the GATT UUIDs. Multi-byte fields on the control channel
//! are big-endian; the status and time characteristics are little-endian
//! (`omi-facts.md` §2).
//!
//! [`RecordAssembler`] turns DATA payloads, split at arbitrary byte
//! boundaries, back into whole 444-byte records numbered from READ_BEGIN's
//! `start_seq`.
//!
//! Every decoder returns a [`CodecError`] naming the tag or opcode and the
//! length expected versus received; nothing here panics on any input.

use std::fmt;

use crate::device::record::RECORD_BYTES;

/// The storage service.
pub const STORAGE_SERVICE_UUID: u128 = 0x30295780_4301_EABD_2904_2849ADFEAE43;
/// The control characteristic: commands are written here, notifications come back.
pub const CONTROL_CHAR_UUID: u128 = 0x30295781_4301_EABD_2904_2849ADFEAE43;
/// The status characteristic: 16 bytes, four u32 LE ([`StorageStatus`]).
pub const STATUS_CHAR_UUID: u128 = 0x30295782_4301_EABD_2904_2849ADFEAE43;
/// The time-sync service.
pub const TIME_SERVICE_UUID: u128 = 0x19B10030_E8F2_537E_4F6C_D104768A1214;
/// The time-sync characteristic: u32 LE unix seconds, written on connect.
pub const TIME_CHAR_UUID: u128 = 0x19B10031_E8F2_537E_4F6C_D104768A1214;

/// Opcode of INFO.
pub const OP_INFO: u8 = 0x10;
/// Opcode of READ.
pub const OP_READ: u8 = 0x11;
/// Opcode of ADVANCE.
pub const OP_ADVANCE: u8 = 0x12;
/// Opcode of CLEAR.
pub const OP_CLEAR: u8 = 0x13;
/// Opcode of STOP.
pub const OP_STOP: u8 = 0x03;
/// Opcode of CUSTODY_ENABLE.
pub const OP_CUSTODY_ENABLE: u8 = 0x14;
/// Opcode of ADVANCE_ID.
pub const OP_ADVANCE_ID: u8 = 0x15;

/// Tag of an ACK notification.
pub const TAG_ACK: u8 = 0x01;
/// Tag of an INFO notification.
pub const TAG_INFO: u8 = 0x02;
/// Tag of a DATA notification.
pub const TAG_DATA: u8 = 0x03;
/// Tag of a DONE notification.
pub const TAG_DONE: u8 = 0x04;
/// Tag of a READ_BEGIN notification.
pub const TAG_READ_BEGIN: u8 = 0x05;
/// Tag of a LIVE_MARK notification.
pub const TAG_LIVE_MARK: u8 = 0x06;

/// Size of an INFO notification without custody.
pub const INFO_LEN: usize = 31;
/// Size of an INFO notification with custody v1 fields.
pub const INFO_CUSTODY_LEN: usize = 41;
/// Size of a DONE notification without a CRC.
pub const DONE_LEN: usize = 10;
/// Size of a DONE notification carrying the transfer's CRC-32 (newest firmware line).
pub const DONE_CRC_LEN: usize = 14;
/// The smallest ATT MTU at which the firmware answers INFO (a 41-byte INFO
/// plus 3 bytes of ATT header). Below it the firmware waits about
/// [`INFO_SMALL_MTU_WAIT`] and answers ACK status 9 instead.
pub const INFO_MIN_MTU: u16 = 44;
/// How long the firmware waits before it answers INFO with status 9 on a
/// link whose MTU is below [`INFO_MIN_MTU`].
pub const INFO_SMALL_MTU_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// The ATT MTU of a link before any MTU exchange (the BLE minimum).
pub const DEFAULT_ATT_MTU: u16 = 23;
/// The custody protocol version this codec speaks.
pub const CUSTODY_VERSION: u8 = 1;
/// Bytes of notification overhead: a DATA notification carries `MTU - 4`
/// ring bytes (3 bytes of ATT header and the tag).
pub const DATA_OVERHEAD: usize = 4;

/// Formats a UUID constant the usual way (`30295780-4301-eabd-…`).
pub fn uuid_string(uuid: u128) -> String {
    let h = format!("{uuid:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A status code from the pendant (in ACK and DONE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u8);

impl Status {
    /// 0: success.
    pub const OK: Status = Status(0);
    /// 6: invalid command or length.
    pub const INVALID: Status = Status(6);
    /// 9: storage not ready, or a READ is already running.
    pub const NOT_READY: Status = Status(9);
    /// 10: sequence number out of range.
    pub const OUT_OF_RANGE: Status = Status(10);
    /// 11: ring id mismatch (the ring was cleared or replaced).
    pub const RING_ID_MISMATCH: Status = Status(11);

    /// Whether this is success.
    pub fn is_ok(self) -> bool {
        self == Status::OK
    }

    /// The code's name, or `None` for a code this codec does not know.
    pub fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "ok",
            6 => "invalid command or length",
            9 => "storage not ready",
            10 => "sequence out of range",
            11 => "ring id mismatch",
            _ => return None,
        })
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "status {} ({n})", self.0),
            None => write!(f, "status {} (unknown)", self.0),
        }
    }
}

/// Custody v1 capability bits (INFO's caps, CUSTODY_ENABLE's request, its
/// ACK's grant).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CustodyCaps(pub u8);

impl CustodyCaps {
    /// No capabilities.
    pub const NONE: CustodyCaps = CustodyCaps(0);
    /// 0x01: app-acknowledged reclaim (firmware never frees on its own).
    pub const APP_ACK_RECLAIM: CustodyCaps = CustodyCaps(0x01);
    /// 0x02: persist while live.
    pub const PERSIST_WHILE_LIVE: CustodyCaps = CustodyCaps(0x02);
    /// 0x04: idempotent ADVANCE.
    pub const IDEMPOTENT_ADVANCE: CustodyCaps = CustodyCaps(0x04);
    /// 0x08: ring id (ADVANCE_ID).
    pub const RING_ID: CustodyCaps = CustodyCaps(0x08);
    /// Every bit this codec knows.
    pub const ALL: CustodyCaps = CustodyCaps(0x0F);

    /// Whether every bit of `other` is set here.
    pub fn contains(self, other: CustodyCaps) -> bool {
        self.0 & other.0 == other.0
    }

    /// The bits set in both.
    pub fn intersect(self, other: CustodyCaps) -> CustodyCaps {
        CustodyCaps(self.0 & other.0)
    }
}

impl std::ops::BitOr for CustodyCaps {
    type Output = CustodyCaps;
    fn bitor(self, rhs: CustodyCaps) -> CustodyCaps {
        CustodyCaps(self.0 | rhs.0)
    }
}

impl fmt::Display for CustodyCaps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = [
            (Self::APP_ACK_RECLAIM, "app-ack-reclaim"),
            (Self::PERSIST_WHILE_LIVE, "persist-while-live"),
            (Self::IDEMPOTENT_ADVANCE, "idempotent-advance"),
            (Self::RING_ID, "ring-id"),
        ];
        let mut parts: Vec<String> = names
            .iter()
            .filter(|(bit, _)| self.contains(*bit))
            .map(|(_, n)| (*n).to_string())
            .collect();
        let unknown = self.0 & !Self::ALL.0;
        if unknown != 0 {
            parts.push(format!("0x{unknown:02x}"));
        }
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join("+"))
        }
    }
}

/// Why bytes did not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// Nothing at all.
    #[error("empty {what}")]
    Empty {
        /// "command" or "notification".
        what: &'static str,
    },
    /// A first byte this protocol does not define.
    #[error("unknown {what} 0x{code:02x} ({len} bytes)")]
    Unknown {
        /// "command opcode" or "notification tag".
        what: &'static str,
        /// The first byte.
        code: u8,
        /// Total length received.
        len: usize,
    },
    /// The right first byte with the wrong length.
    #[error("{name} (0x{code:02x}): expected {expected} bytes, got {got}")]
    Length {
        /// The command or notification name.
        name: &'static str,
        /// The first byte.
        code: u8,
        /// What the layout allows, e.g. "9 or 13".
        expected: &'static str,
        /// What was received.
        got: usize,
    },
    /// A status characteristic value of the wrong size.
    #[error("status characteristic: expected 16 bytes, got {got}")]
    StatusLength {
        /// What was received.
        got: usize,
    },
    /// A time-sync value of the wrong size.
    #[error("time characteristic: expected 4 bytes, got {got}")]
    TimeLength {
        /// What was received.
        got: usize,
    },
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

/// A command written to the control characteristic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// `[0x10]`: answer with an INFO notification.
    Info,
    /// `[0x11][start_seq u64]` or `+[count u32]`: stream packets from
    /// `start_seq`. `count` `None` encodes the 9-byte form; `Some(0)` the
    /// 13-byte form meaning "all" as well.
    Read {
        /// First sequence number to send.
        start_seq: u64,
        /// How many packets; `None` or `Some(0)` means all.
        count: Option<u32>,
    },
    /// `[0x12][new_read_seq u64]`: free everything before `new_read_seq`.
    Advance {
        /// The new read_seq.
        seq: u64,
    },
    /// `[0x13]`: wipe the ring (sequence numbers restart).
    Clear,
    /// `[0x03]`: abort a running READ.
    Stop,
    /// `[0x14][version][caps]`: enable custody.
    CustodyEnable {
        /// Protocol version (1).
        version: u8,
        /// Capabilities asked for.
        caps: CustodyCaps,
    },
    /// `[0x15][ring_id u64][seq u64]`: ADVANCE that fails with status 11 if
    /// the ring id no longer matches.
    AdvanceId {
        /// The ring id the host's data came from.
        ring_id: u64,
        /// The new read_seq.
        seq: u64,
    },
}

impl Command {
    /// The command's name.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Info => "INFO",
            Command::Read { .. } => "READ",
            Command::Advance { .. } => "ADVANCE",
            Command::Clear => "CLEAR",
            Command::Stop => "STOP",
            Command::CustodyEnable { .. } => "CUSTODY_ENABLE",
            Command::AdvanceId { .. } => "ADVANCE_ID",
        }
    }

    /// The bytes to write.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(17);
        match *self {
            Command::Info => out.push(OP_INFO),
            Command::Read { start_seq, count } => {
                out.push(OP_READ);
                out.extend_from_slice(&start_seq.to_be_bytes());
                if let Some(c) = count {
                    out.extend_from_slice(&c.to_be_bytes());
                }
            }
            Command::Advance { seq } => {
                out.push(OP_ADVANCE);
                out.extend_from_slice(&seq.to_be_bytes());
            }
            Command::Clear => out.push(OP_CLEAR),
            Command::Stop => out.push(OP_STOP),
            Command::CustodyEnable { version, caps } => {
                out.extend_from_slice(&[OP_CUSTODY_ENABLE, version, caps.0]);
            }
            Command::AdvanceId { ring_id, seq } => {
                out.push(OP_ADVANCE_ID);
                out.extend_from_slice(&ring_id.to_be_bytes());
                out.extend_from_slice(&seq.to_be_bytes());
            }
        }
        out
    }

    /// Decodes a written command (the pendant's side).
    pub fn decode(b: &[u8]) -> Result<Command, CodecError> {
        let &op = b.first().ok_or(CodecError::Empty { what: "command" })?;
        let len = b.len();
        let want = |name, expected: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(CodecError::Length {
                    name,
                    code: op,
                    expected,
                    got: len,
                })
            }
        };
        Ok(match op {
            OP_INFO => {
                want("INFO", "1", len == 1)?;
                Command::Info
            }
            OP_READ => {
                want("READ", "9 or 13", len == 9 || len == 13)?;
                Command::Read {
                    start_seq: be_u64(b, 1),
                    count: (len == 13).then(|| be_u32(b, 9)),
                }
            }
            OP_ADVANCE => {
                want("ADVANCE", "9", len == 9)?;
                Command::Advance { seq: be_u64(b, 1) }
            }
            OP_CLEAR => {
                want("CLEAR", "1", len == 1)?;
                Command::Clear
            }
            OP_STOP => {
                want("STOP", "1", len == 1)?;
                Command::Stop
            }
            OP_CUSTODY_ENABLE => {
                want("CUSTODY_ENABLE", "3", len == 3)?;
                Command::CustodyEnable {
                    version: b[1],
                    caps: CustodyCaps(b[2]),
                }
            }
            OP_ADVANCE_ID => {
                want("ADVANCE_ID", "17", len == 17)?;
                Command::AdvanceId {
                    ring_id: be_u64(b, 1),
                    seq: be_u64(b, 9),
                }
            }
            code => {
                return Err(CodecError::Unknown {
                    what: "command opcode",
                    code,
                    len,
                });
            }
        })
    }
}

/// Custody v1 fields of a 41-byte INFO.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CustodyInfo {
    /// Capabilities the firmware offers.
    pub caps: CustodyCaps,
    /// Custody protocol version.
    pub version: u8,
    /// Identity of this ring; changes when it is cleared or replaced.
    pub ring_id: u64,
}

/// An INFO notification: the ring's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Oldest record not yet freed by ADVANCE.
    pub read_seq: u64,
    /// One past the newest committed record.
    pub write_seq: u64,
    /// Capacity in records.
    pub capacity: u32,
    /// Records overwritten or declared lost.
    pub dropped: u64,
    /// Bytes per record (444).
    pub packet_bytes: u16,
    /// Custody v1 fields (41-byte form), if present.
    pub custody: Option<CustodyInfo>,
}

impl Info {
    /// Records not yet freed: `write_seq - read_seq` (0 if inconsistent).
    pub fn unread(&self) -> u64 {
        self.write_seq.saturating_sub(self.read_seq)
    }

    /// The ring id, when the firmware speaks custody v1.
    pub fn ring_id(&self) -> Option<u64> {
        self.custody.map(|c| c.ring_id)
    }
}

/// A notification from the control characteristic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notification<'a> {
    /// `[0x01][status]`, or `[0x01][status][granted caps]` answering
    /// CUSTODY_ENABLE.
    Ack {
        /// The status.
        status: Status,
        /// Capabilities granted (3-byte form only).
        granted: Option<CustodyCaps>,
    },
    /// The ring's state (31 or 41 bytes).
    Info(Info),
    /// `[0x03][ring bytes…]`: part of the record stream, not aligned to records.
    Data(&'a [u8]),
    /// `[0x04][status][next_seq u64]`, and on the newest firmware line
    /// `+[CRC-32 u32 BE]` of the transfer's DATA bytes: the READ ended.
    /// Decoding accepts 10 bytes or more: the CRC is read when all four of
    /// its bytes are there (14 or more), and anything after it is ignored.
    Done {
        /// The status.
        status: Status,
        /// One past the last record sent.
        next_seq: u64,
        /// CRC-32 (zlib/IEEE) of every DATA byte of this transfer, in order,
        /// when the firmware sends it.
        crc: Option<u32>,
    },
    /// `[0x05][start_seq u64][packet_count u32]`: a READ starts.
    ReadBegin {
        /// Sequence number of the first record that follows.
        start_seq: u64,
        /// How many records will follow.
        packet_count: u32,
    },
    /// `[0x06][ring_id u64][ring_seq u64][live_index u16]`: marks where live
    /// audio was also persisted into the ring.
    LiveMark {
        /// The ring id.
        ring_id: u64,
        /// The ring sequence number.
        ring_seq: u64,
        /// Index of the live packet.
        live_index: u16,
    },
}

impl<'a> Notification<'a> {
    /// The notification's name.
    pub fn name(&self) -> &'static str {
        match self {
            Notification::Ack { .. } => "ACK",
            Notification::Info(_) => "INFO",
            Notification::Data(_) => "DATA",
            Notification::Done { .. } => "DONE",
            Notification::ReadBegin { .. } => "READ_BEGIN",
            Notification::LiveMark { .. } => "LIVE_MARK",
        }
    }

    /// Decodes one notification. DATA borrows its bytes from `b`.
    pub fn decode(b: &'a [u8]) -> Result<Notification<'a>, CodecError> {
        let &tag = b.first().ok_or(CodecError::Empty {
            what: "notification",
        })?;
        let len = b.len();
        let want = |name, expected: &'static str, ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(CodecError::Length {
                    name,
                    code: tag,
                    expected,
                    got: len,
                })
            }
        };
        Ok(match tag {
            TAG_DATA => Notification::Data(&b[1..]),
            TAG_ACK => {
                want("ACK", "2 or 3", len == 2 || len == 3)?;
                Notification::Ack {
                    status: Status(b[1]),
                    granted: b.get(2).map(|&c| CustodyCaps(c)),
                }
            }
            TAG_INFO => {
                want(
                    "INFO",
                    "31 or 41",
                    len == INFO_LEN || len == INFO_CUSTODY_LEN,
                )?;
                Notification::Info(Info {
                    read_seq: be_u64(b, 1),
                    write_seq: be_u64(b, 9),
                    capacity: be_u32(b, 17),
                    dropped: be_u64(b, 21),
                    packet_bytes: be_u16(b, 29),
                    custody: (len == INFO_CUSTODY_LEN).then(|| CustodyInfo {
                        caps: CustodyCaps(b[31]),
                        version: b[32],
                        ring_id: be_u64(b, 33),
                    }),
                })
            }
            TAG_DONE => {
                want("DONE", "10 or more", len >= DONE_LEN)?;
                Notification::Done {
                    status: Status(b[1]),
                    next_seq: be_u64(b, 2),
                    crc: (len >= DONE_CRC_LEN).then(|| be_u32(b, DONE_LEN)),
                }
            }
            TAG_READ_BEGIN => {
                want("READ_BEGIN", "13", len == 13)?;
                Notification::ReadBegin {
                    start_seq: be_u64(b, 1),
                    packet_count: be_u32(b, 9),
                }
            }
            TAG_LIVE_MARK => {
                want("LIVE_MARK", "19", len == 19)?;
                Notification::LiveMark {
                    ring_id: be_u64(b, 1),
                    ring_seq: be_u64(b, 9),
                    live_index: be_u16(b, 17),
                }
            }
            code => {
                return Err(CodecError::Unknown {
                    what: "notification tag",
                    code,
                    len,
                });
            }
        })
    }

    /// Appends the notification's bytes to `out` (the pendant's side).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match *self {
            Notification::Ack { status, granted } => {
                out.extend_from_slice(&[TAG_ACK, status.0]);
                if let Some(g) = granted {
                    out.push(g.0);
                }
            }
            Notification::Info(i) => {
                out.push(TAG_INFO);
                out.extend_from_slice(&i.read_seq.to_be_bytes());
                out.extend_from_slice(&i.write_seq.to_be_bytes());
                out.extend_from_slice(&i.capacity.to_be_bytes());
                out.extend_from_slice(&i.dropped.to_be_bytes());
                out.extend_from_slice(&i.packet_bytes.to_be_bytes());
                if let Some(c) = i.custody {
                    out.extend_from_slice(&[c.caps.0, c.version]);
                    out.extend_from_slice(&c.ring_id.to_be_bytes());
                }
            }
            Notification::Data(d) => {
                out.push(TAG_DATA);
                out.extend_from_slice(d);
            }
            Notification::Done {
                status,
                next_seq,
                crc,
            } => {
                out.extend_from_slice(&[TAG_DONE, status.0]);
                out.extend_from_slice(&next_seq.to_be_bytes());
                if let Some(c) = crc {
                    out.extend_from_slice(&c.to_be_bytes());
                }
            }
            Notification::ReadBegin {
                start_seq,
                packet_count,
            } => {
                out.push(TAG_READ_BEGIN);
                out.extend_from_slice(&start_seq.to_be_bytes());
                out.extend_from_slice(&packet_count.to_be_bytes());
            }
            Notification::LiveMark {
                ring_id,
                ring_seq,
                live_index,
            } => {
                out.push(TAG_LIVE_MARK);
                out.extend_from_slice(&ring_id.to_be_bytes());
                out.extend_from_slice(&ring_seq.to_be_bytes());
                out.extend_from_slice(&live_index.to_be_bytes());
            }
        }
    }

    /// The notification's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }
}

/// The 16-byte status characteristic: four u32 LE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StorageStatus {
    /// Bytes of the ring in use.
    pub used_bytes: u32,
    /// Records not yet freed.
    pub unread_packets: u32,
    /// Bytes free.
    pub free_bytes: u32,
    /// Whether the pendant's clock is set.
    pub clock_valid: bool,
}

impl StorageStatus {
    /// Decodes the characteristic's value. Any non-zero clock word counts as valid.
    pub fn decode(b: &[u8]) -> Result<StorageStatus, CodecError> {
        if b.len() != 16 {
            return Err(CodecError::StatusLength { got: b.len() });
        }
        Ok(StorageStatus {
            used_bytes: le_u32(b, 0),
            unread_packets: le_u32(b, 4),
            free_bytes: le_u32(b, 8),
            clock_valid: le_u32(b, 12) != 0,
        })
    }

    /// Encodes the characteristic's value.
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0..4].copy_from_slice(&self.used_bytes.to_le_bytes());
        out[4..8].copy_from_slice(&self.unread_packets.to_le_bytes());
        out[8..12].copy_from_slice(&self.free_bytes.to_le_bytes());
        out[12..16].copy_from_slice(&(self.clock_valid as u32).to_le_bytes());
        out
    }
}

/// Encodes the time-sync value: u32 LE unix seconds.
pub fn encode_time(unix_secs: u32) -> [u8; 4] {
    unix_secs.to_le_bytes()
}

/// Decodes the time-sync value.
pub fn decode_time(b: &[u8]) -> Result<u32, CodecError> {
    if b.len() != 4 {
        return Err(CodecError::TimeLength { got: b.len() });
    }
    Ok(le_u32(b, 0))
}

/// Reassembles whole 444-byte records from DATA payloads split anywhere.
///
/// Bytes are appended with [`push`](Self::push); whole records accumulate
/// until taken with [`take_ready`](Self::take_ready), and a partial record
/// stays behind for the next DATA. Records are numbered from the `start_seq`
/// given at construction (READ_BEGIN's).
#[derive(Debug, Clone)]
pub struct RecordAssembler {
    /// Sequence number of the first byte-record in `buf`.
    first_seq: u64,
    /// Whole records, then a partial one (< 444 bytes).
    buf: Vec<u8>,
    /// Total bytes pushed since construction.
    bytes_in: u64,
}

/// Whole records taken from a [`RecordAssembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordBatch {
    /// Sequence number of the first record.
    pub first_seq: u64,
    /// The records, concatenated (a multiple of 444 bytes).
    pub bytes: Vec<u8>,
}

impl RecordBatch {
    /// How many records.
    pub fn count(&self) -> u64 {
        (self.bytes.len() / RECORD_BYTES) as u64
    }

    /// One past the last record's sequence number.
    pub fn end_seq(&self) -> u64 {
        self.first_seq.saturating_add(self.count())
    }

    /// Each record with its sequence number.
    pub fn records(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.bytes
            .chunks_exact(RECORD_BYTES)
            .enumerate()
            .map(move |(i, r)| (self.first_seq.saturating_add(i as u64), r))
    }
}

impl RecordAssembler {
    /// A new assembler whose first record is `start_seq`.
    pub fn new(start_seq: u64) -> Self {
        RecordAssembler {
            first_seq: start_seq,
            buf: Vec::with_capacity(64 * RECORD_BYTES),
            bytes_in: 0,
        }
    }

    /// Appends DATA bytes; returns how many records became whole.
    pub fn push(&mut self, data: &[u8]) -> u64 {
        let before = self.buf.len() / RECORD_BYTES;
        self.buf.extend_from_slice(data);
        self.bytes_in += data.len() as u64;
        (self.buf.len() / RECORD_BYTES - before) as u64
    }

    /// Whole records waiting to be taken.
    pub fn ready_records(&self) -> u64 {
        (self.buf.len() / RECORD_BYTES) as u64
    }

    /// Sequence number of the first waiting record.
    pub fn first_ready_seq(&self) -> u64 {
        self.first_seq
    }

    /// Sequence number the next whole record will get: one past the last
    /// whole record received.
    pub fn next_seq(&self) -> u64 {
        self.first_seq.saturating_add(self.ready_records())
    }

    /// Bytes of the partial record waiting for the rest of it.
    pub fn partial_len(&self) -> usize {
        self.buf.len() % RECORD_BYTES
    }

    /// Total bytes pushed.
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Takes every whole record; the partial tail stays. `None` if none.
    pub fn take_ready(&mut self) -> Option<RecordBatch> {
        let whole = self.buf.len() / RECORD_BYTES * RECORD_BYTES;
        if whole == 0 {
            return None;
        }
        let tail = self.buf.split_off(whole);
        let bytes = std::mem::replace(&mut self.buf, tail);
        self.buf.reserve(64 * RECORD_BYTES);
        let batch = RecordBatch {
            first_seq: self.first_seq,
            bytes,
        };
        self.first_seq = batch.end_seq();
        Some(batch)
    }

    /// Throws away the partial record; returns how many bytes it had.
    pub fn discard_partial(&mut self) -> usize {
        let p = self.partial_len();
        let keep = self.buf.len() - p;
        self.buf.truncate(keep);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn uuids_format() {
        assert_eq!(
            uuid_string(CONTROL_CHAR_UUID),
            "30295781-4301-eabd-2904-2849adfeae43"
        );
        assert_eq!(
            uuid_string(TIME_CHAR_UUID),
            "19b10031-e8f2-537e-4f6c-d104768a1214"
        );
    }

    #[test]
    fn commands_have_the_documented_bytes() {
        assert_eq!(Command::Info.encode(), vec![0x10]);
        let r = Command::Read {
            start_seq: 0x0102030405060708,
            count: None,
        };
        assert_eq!(r.encode(), vec![0x11, 1, 2, 3, 4, 5, 6, 7, 8]);
        let r13 = Command::Read {
            start_seq: 1,
            count: Some(0x0A0B0C0D),
        }
        .encode();
        assert_eq!(r13.len(), 13);
        assert_eq!(&r13[9..], &[0x0A, 0x0B, 0x0C, 0x0D]);
        assert_eq!(Command::Advance { seq: 258 }.encode()[7..], [1, 2]);
        assert_eq!(Command::Clear.encode(), vec![0x13]);
        assert_eq!(Command::Stop.encode(), vec![0x03]);
        assert_eq!(
            Command::CustodyEnable {
                version: 1,
                caps: CustodyCaps(0x0D)
            }
            .encode(),
            vec![0x14, 1, 0x0D]
        );
        let a = Command::AdvanceId { ring_id: 7, seq: 9 }.encode();
        assert_eq!(a.len(), 17);
        assert_eq!((a[0], a[8], a[16]), (0x15, 7, 9));
    }

    #[test]
    fn info_layout_is_big_endian() {
        let mut b = vec![TAG_INFO];
        b.extend_from_slice(&5u64.to_be_bytes());
        b.extend_from_slice(&9u64.to_be_bytes());
        b.extend_from_slice(&360u32.to_be_bytes());
        b.extend_from_slice(&2u64.to_be_bytes());
        b.extend_from_slice(&444u16.to_be_bytes());
        assert_eq!(b.len(), 31);
        let Notification::Info(i) = Notification::decode(&b).unwrap() else {
            panic!("not info");
        };
        assert_eq!((i.read_seq, i.write_seq, i.capacity), (5, 9, 360));
        assert_eq!((i.dropped, i.packet_bytes, i.custody), (2, 444, None));
        b.extend_from_slice(&[0x0F, 1]);
        b.extend_from_slice(&0xAABBu64.to_be_bytes());
        let Notification::Info(i) = Notification::decode(&b).unwrap() else {
            panic!("not info");
        };
        assert_eq!(i.ring_id(), Some(0xAABB));
        assert_eq!(i.custody.unwrap().caps, CustodyCaps::ALL);
    }

    #[test]
    fn errors_name_the_tag_and_lengths() {
        let e = Notification::decode(&[TAG_DONE, 0, 1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "DONE (0x04): expected 10 or more bytes, got 3"
        );
        let e = Notification::decode(&[0x42, 1]).unwrap_err();
        assert_eq!(e.to_string(), "unknown notification tag 0x42 (2 bytes)");
        let e = Command::decode(&[OP_READ, 1, 2]).unwrap_err();
        assert_eq!(e.to_string(), "READ (0x11): expected 9 or 13 bytes, got 3");
        assert!(Notification::decode(&[]).is_err());
        assert!(StorageStatus::decode(&[0; 15]).is_err());
        assert!(decode_time(&[0; 5]).is_err());
    }

    #[test]
    fn done_takes_ten_bytes_or_more_and_its_crc_when_whole() {
        let done = |crc| Notification::Done {
            status: Status::OK,
            next_seq: 0x0102,
            crc,
        };
        let plain = done(None).encode();
        assert_eq!(plain.len(), DONE_LEN);
        assert_eq!(Notification::decode(&plain).unwrap(), done(None));
        let with = done(Some(0xCBF4_3926)).encode();
        assert_eq!(with.len(), DONE_CRC_LEN);
        assert_eq!(&with[10..], &[0xCB, 0xF4, 0x39, 0x26], "big-endian");
        assert_eq!(
            Notification::decode(&with).unwrap(),
            done(Some(0xCBF4_3926))
        );
        // A CRC cut short is not a CRC; bytes after a whole one are ignored.
        assert_eq!(Notification::decode(&with[..12]).unwrap(), done(None));
        let mut long = with.clone();
        long.extend_from_slice(&[9, 9]);
        assert_eq!(
            Notification::decode(&long).unwrap(),
            done(Some(0xCBF4_3926))
        );
    }

    #[test]
    fn status_and_caps_are_named() {
        assert_eq!(Status(9).to_string(), "status 9 (storage not ready)");
        assert_eq!(Status(77).to_string(), "status 77 (unknown)");
        assert_eq!(
            (CustodyCaps::RING_ID | CustodyCaps::APP_ACK_RECLAIM).to_string(),
            "app-ack-reclaim+ring-id"
        );
        assert_eq!(CustodyCaps(0x30).to_string(), "0x30");
    }

    #[test]
    fn status_characteristic_is_little_endian() {
        let s = StorageStatus {
            used_bytes: 0x01020304,
            unread_packets: 5,
            free_bytes: 6,
            clock_valid: true,
        };
        let b = s.encode();
        assert_eq!(&b[0..4], &[4, 3, 2, 1]);
        assert_eq!(StorageStatus::decode(&b).unwrap(), s);
        assert_eq!(encode_time(1), [1, 0, 0, 0]);
        assert_eq!(decode_time(&[1, 0, 0, 0]).unwrap(), 1);
    }

    #[test]
    fn assembler_handles_splits_across_records() {
        let mut stream = Vec::new();
        for i in 0..5u8 {
            stream.extend_from_slice(&[i; RECORD_BYTES]);
        }
        let mut a = RecordAssembler::new(100);
        let mut got = Vec::new();
        for chunk in stream.chunks(183) {
            a.push(chunk);
            if let Some(b) = a.take_ready() {
                for (seq, r) in b.records() {
                    got.push((seq, r[0], r[443]));
                }
            }
        }
        assert_eq!(
            got,
            (0..5u8).map(|i| (100 + i as u64, i, i)).collect::<Vec<_>>()
        );
        assert_eq!(a.partial_len(), 0);
        assert_eq!(a.next_seq(), 105);
        a.push(&[1, 2, 3]);
        assert_eq!(a.discard_partial(), 3);
        assert!(a.take_ready().is_none());
    }

    fn arb_command() -> impl Strategy<Value = Command> {
        prop_oneof![
            Just(Command::Info),
            (any::<u64>(), proptest::option::of(any::<u32>())).prop_map(|(s, c)| Command::Read {
                start_seq: s,
                count: c
            }),
            any::<u64>().prop_map(|seq| Command::Advance { seq }),
            Just(Command::Clear),
            Just(Command::Stop),
            (any::<u8>(), any::<u8>()).prop_map(|(v, c)| Command::CustodyEnable {
                version: v,
                caps: CustodyCaps(c)
            }),
            (any::<u64>(), any::<u64>())
                .prop_map(|(r, s)| Command::AdvanceId { ring_id: r, seq: s }),
        ]
    }

    fn arb_info() -> impl Strategy<Value = Info> {
        (
            any::<u64>(),
            any::<u64>(),
            any::<u32>(),
            any::<u64>(),
            any::<u16>(),
            proptest::option::of((any::<u8>(), any::<u8>(), any::<u64>())),
        )
            .prop_map(|(r, w, c, d, p, cu)| Info {
                read_seq: r,
                write_seq: w,
                capacity: c,
                dropped: d,
                packet_bytes: p,
                custody: cu.map(|(caps, version, ring_id)| CustodyInfo {
                    caps: CustodyCaps(caps),
                    version,
                    ring_id,
                }),
            })
    }

    fn arb_owned_notification() -> impl Strategy<Value = (u8, Vec<u8>)> {
        // Encoded bytes of a random notification (tag kept for reporting).
        prop_oneof![
            (any::<u8>(), proptest::option::of(any::<u8>())).prop_map(|(s, g)| Notification::Ack {
                status: Status(s),
                granted: g.map(CustodyCaps)
            }
            .encode()),
            arb_info().prop_map(|i| Notification::Info(i).encode()),
            proptest::collection::vec(any::<u8>(), 0..600)
                .prop_map(|d| Notification::Data(&d).encode()),
            (
                any::<u8>(),
                any::<u64>(),
                proptest::option::of(any::<u32>())
            )
                .prop_map(|(s, n, crc)| Notification::Done {
                    status: Status(s),
                    next_seq: n,
                    crc,
                }
                .encode()),
            (any::<u64>(), any::<u32>()).prop_map(|(s, c)| Notification::ReadBegin {
                start_seq: s,
                packet_count: c
            }
            .encode()),
            (any::<u64>(), any::<u64>(), any::<u16>()).prop_map(|(r, s, l)| {
                Notification::LiveMark {
                    ring_id: r,
                    ring_seq: s,
                    live_index: l,
                }
                .encode()
            }),
        ]
        .prop_map(|b| (b[0], b))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn commands_round_trip(c in arb_command()) {
            prop_assert_eq!(Command::decode(&c.encode()).unwrap(), c);
        }

        #[test]
        fn notifications_round_trip((_tag, bytes) in arb_owned_notification()) {
            let n = Notification::decode(&bytes).unwrap();
            prop_assert_eq!(n.encode(), bytes);
        }

        #[test]
        fn status_round_trips(a in any::<u32>(), b in any::<u32>(), c in any::<u32>(), v in any::<bool>()) {
            let s = StorageStatus { used_bytes: a, unread_packets: b, free_bytes: c, clock_valid: v };
            prop_assert_eq!(StorageStatus::decode(&s.encode()).unwrap(), s);
        }

        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Command::decode(&bytes);
            if let Ok(n) = Notification::decode(&bytes) {
                // Whatever decodes re-encodes to the same bytes (a DONE to
                // the bytes it read: what follows a whole CRC is ignored).
                let again = n.encode();
                if matches!(n, Notification::Done { .. }) {
                    prop_assert_eq!(&bytes[..again.len()], &again[..]);
                } else {
                    prop_assert_eq!(again, bytes.clone());
                }
            }
            let _ = StorageStatus::decode(&bytes);
            let _ = decode_time(&bytes);
        }

        #[test]
        fn truncations_are_errors_not_panics((_tag, bytes) in arb_owned_notification(), cut in 0usize..64) {
            let cut = cut.min(bytes.len());
            let short = &bytes[..bytes.len() - cut];
            match Notification::decode(short) {
                Ok(n) => {
                    let again = n.encode();
                    prop_assert_eq!(&short[..again.len()], &again[..]);
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        #[test]
        fn assembler_yields_every_record_once(
            n in 0usize..20,
            start in any::<u32>(),
            cuts in proptest::collection::vec(1usize..900, 1..40),
        ) {
            let mut stream = Vec::new();
            for i in 0..n {
                let mut r = [0u8; RECORD_BYTES];
                r[..8].copy_from_slice(&(i as u64).to_le_bytes());
                stream.extend_from_slice(&r);
            }
            let mut a = RecordAssembler::new(start as u64);
            let mut got: Vec<u64> = Vec::new();
            let mut pos = 0usize;
            let mut k = 0usize;
            while pos < stream.len() {
                let len = cuts[k % cuts.len()].min(stream.len() - pos);
                a.push(&stream[pos..pos + len]);
                pos += len;
                k += 1;
                if k.is_multiple_of(3) && let Some(b) = a.take_ready() {
                    for (seq, r) in b.records() {
                        let mut id = [0u8; 8];
                        id.copy_from_slice(&r[..8]);
                        prop_assert_eq!(seq - start as u64, u64::from_le_bytes(id));
                        got.push(seq);
                    }
                }
            }
            if let Some(b) = a.take_ready() {
                got.extend(b.records().map(|(s, _)| s));
            }
            let want: Vec<u64> = (0..n as u64).map(|i| start as u64 + i).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(a.partial_len(), 0);
        }
    }
}
