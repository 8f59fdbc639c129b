//! The firmware side of the simulated pendant: its state, what it does with
//! each command, and the notifications it streams.

use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::time::Duration;

use super::faults::Faults;
use super::{AdvanceEvent, HostOp, Received, SimStats, SimStorage};
use crate::device::link::LinkError;
use crate::device::record::{CLOCK_NOT_SET_BIT, RECORD_BYTES};
use crate::device::ring::{
    CUSTODY_VERSION, Command, CustodyCaps, CustodyInfo, DATA_OVERHEAD, DEFAULT_ATT_MTU,
    INFO_MIN_MTU, INFO_SMALL_MTU_WAIT, Info, Notification, Status, StorageStatus, TAG_DATA,
};
use crate::device::usb::fixture::{FixtureClock, fixture_ids, fixture_records};
use crate::device::usb::layout::{RECORDS_PER_BATCH, Variant, record_offset};
use crate::device::usb::writer::{RingWriter, WriteError};

/// Called for every ADVANCE the pendant receives.
pub(super) type AdvanceObserver = Box<dyn FnMut(&AdvanceEvent) + Send>;

/// A notification waiting to go out, `after` this much more waiting by the
/// host (the firmware's ~5 s before it refuses INFO on a small MTU).
struct Pending {
    bytes: Vec<u8>,
    after: Duration,
}

/// A READ being answered.
struct Stream {
    next_seq: u64,
    end_seq: u64,
    buf: Vec<u8>,
    pos: usize,
    /// CRC-32 of the DATA bytes sent so far (as stored, before any corruption
    /// on the way out).
    crc: crc32fast::Hasher,
}

/// The pendant's state, shared by its connections.
pub(super) struct State {
    pub(super) writer: RingWriter<Box<dyn SimStorage>>,
    pub(super) faults: Faults,
    /// Id of the live connection; links with another id are stale.
    pub(super) conn: u64,
    connected: bool,
    /// The ATT MTU agreed on the live connection.
    pub(super) link_mtu: u16,
    queue: VecDeque<Pending>,
    stream: Option<Stream>,
    conn_bytes: u64,
    stalled: bool,
    epoch: u64,
    reads_seen: u32,
    advances_seen: u32,
    custody: Option<CustodyCaps>,
    time: Option<u32>,
    rng: fastrand::Rng,
    next_random_drop: u64,
    pub(super) stats: SimStats,
    pub(super) advances: Vec<AdvanceEvent>,
    pub(super) observer: Option<AdvanceObserver>,
    pub(super) error: Option<String>,
    /// Everything the host did, in order.
    pub(super) log: Vec<Received>,
}

impl State {
    /// A pendant in power-on state serving `writer`'s ring.
    pub(super) fn new(writer: RingWriter<Box<dyn SimStorage>>, faults: Faults) -> State {
        let mut rng = fastrand::Rng::with_seed(faults.seed);
        let next_random_drop = faults
            .drop_random
            .map(|m| 1 + rng.u64(..2 * m))
            .unwrap_or(u64::MAX);
        State {
            writer,
            faults,
            conn: 0,
            connected: false,
            link_mtu: DEFAULT_ATT_MTU,
            queue: VecDeque::new(),
            stream: None,
            conn_bytes: 0,
            stalled: false,
            epoch: 0,
            reads_seen: 0,
            advances_seen: 0,
            custody: None,
            time: None,
            rng,
            next_random_drop,
            stats: SimStats::default(),
            advances: Vec::new(),
            observer: None,
            error: None,
            log: Vec::new(),
        }
    }

    /// Starts a new connection (CLEARing first with `cleared-between-sessions`)
    /// and returns its id.
    pub(super) fn connect(&mut self) -> Result<u64, WriteError> {
        if let Some(m) = self.faults.cleared_between_sessions
            && self.stats.connections > 0
        {
            self.epoch += 1;
            let ids = fixture_ids(self.epoch + 100);
            self.writer.clear(ids)?;
            self.writer
                .append(&fixture_records(self.epoch + 100, 0..m, FixtureClock::Wall))?;
        }
        self.drop_link();
        self.conn += 1;
        self.connected = true;
        self.link_mtu = DEFAULT_ATT_MTU;
        self.conn_bytes = 0;
        self.stalled = false;
        self.custody = None;
        self.stats.connections += 1;
        Ok(self.conn)
    }

    pub(super) fn drop_link(&mut self) {
        if self.connected {
            self.stats.drops += 1;
        }
        self.connected = false;
        self.stream = None;
        self.queue.clear();
    }

    /// Closes connection `conn` from the host's side.
    pub(super) fn disconnect(&mut self, conn: u64) {
        if self.live(conn) {
            self.connected = false;
            self.stream = None;
            self.queue.clear();
        }
    }

    pub(super) fn live(&self, conn: u64) -> bool {
        self.connected && self.conn == conn
    }

    /// Records what the host did on `conn`; `false` if that connection is gone.
    pub(super) fn receive(&mut self, conn: u64, op: HostOp) -> bool {
        let live = self.live(conn);
        self.log.push(Received {
            connection: conn,
            op,
            discarded: !live,
        });
        live
    }

    /// The MTU exchange: the smaller of what the host asks and what the
    /// pendant takes, unless it refuses the exchange.
    pub(super) fn exchange_mtu(&mut self, conn: u64, asked: u16) -> Result<u16, LinkError> {
        let agreed = if self.faults.no_mtu_exchange {
            self.link_mtu
        } else {
            asked.clamp(DEFAULT_ATT_MTU, self.faults.mtu)
        };
        if !self.receive(conn, HostOp::MtuExchange { asked, agreed }) {
            return Err(dropped());
        }
        self.link_mtu = agreed;
        Ok(agreed)
    }

    /// A time-sync write.
    pub(super) fn write_time(&mut self, conn: u64, unix_secs: u32) -> Result<(), LinkError> {
        if !self.receive(conn, HostOp::TimeWrite { unix_secs }) {
            return Err(dropped());
        }
        self.time = Some(unix_secs);
        Ok(())
    }

    /// A read of the status characteristic.
    pub(super) fn read_status(&mut self, conn: u64) -> Result<StorageStatus, LinkError> {
        if !self.receive(conn, HostOp::StatusRead) {
            return Err(dropped());
        }
        Ok(self.status())
    }

    fn ring_id(&self) -> Option<u64> {
        let m = self.writer.metadata();
        if self.faults.no_custody || m.variant != Variant::C {
            None
        } else {
            m.ring_id
        }
    }

    fn info(&self) -> Info {
        let m = self.writer.metadata();
        Info {
            read_seq: m.read_seq,
            write_seq: m.write_seq,
            capacity: self.writer.capacity().min(u32::MAX as u64) as u32,
            dropped: m.dropped,
            packet_bytes: RECORD_BYTES as u16,
            custody: self.ring_id().map(|ring_id| CustodyInfo {
                caps: CustodyCaps::ALL,
                version: CUSTODY_VERSION,
                ring_id,
            }),
        }
    }

    fn status(&self) -> StorageStatus {
        let m = self.writer.metadata();
        let unread = m.write_seq - m.read_seq;
        let free = self.writer.capacity().saturating_sub(unread);
        let clock_faults = self.faults.clock_not_set.is_some() || self.faults.clock_zero.is_some();
        StorageStatus {
            used_bytes: (unread * RECORD_BYTES as u64).min(u32::MAX as u64) as u32,
            unread_packets: unread.min(u32::MAX as u64) as u32,
            free_bytes: (free * RECORD_BYTES as u64).min(u32::MAX as u64) as u32,
            clock_valid: self.time.is_some() && !clock_faults,
        }
    }

    fn send(&mut self, n: Notification<'_>) {
        self.queue.push_back(Pending {
            bytes: n.encode(),
            after: Duration::ZERO,
        });
    }

    fn ack(&mut self, status: Status) {
        self.send(Notification::Ack {
            status,
            granted: None,
        });
    }

    /// A write to the control characteristic on `conn`.
    pub(super) fn control(&mut self, conn: u64, bytes: &[u8]) -> Result<(), LinkError> {
        let op = match Command::decode(bytes) {
            Ok(c) => HostOp::Command(c),
            Err(_) => HostOp::Garbled {
                bytes: bytes.to_vec(),
            },
        };
        if !self.receive(conn, op.clone()) {
            self.stats.discarded_commands += 1;
            return Err(LinkError::Disconnected(
                "the simulated link was dropped; command discarded".into(),
            ));
        }
        match op {
            HostOp::Command(c) => self.handle(c),
            _ => self.ack(Status::INVALID),
        }
        if !self.live(conn) {
            return Err(LinkError::Disconnected(
                "the simulated link dropped while writing".into(),
            ));
        }
        Ok(())
    }

    fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Info if self.link_mtu < INFO_MIN_MTU => {
                // The firmware cannot fit INFO in this MTU: it waits, then refuses.
                self.queue.push_back(Pending {
                    bytes: Notification::Ack {
                        status: Status::NOT_READY,
                        granted: None,
                    }
                    .encode(),
                    after: INFO_SMALL_MTU_WAIT,
                });
            }
            Command::Info => {
                let info = self.info();
                self.send(Notification::Info(info));
            }
            Command::Read { start_seq, count } => self.read(start_seq, count),
            Command::Advance { seq } => self.advance(None, seq),
            Command::AdvanceId { ring_id, seq } => self.advance(Some(ring_id), seq),
            Command::Clear => {
                self.stream = None;
                self.epoch += 1;
                match self.writer.clear(fixture_ids(self.epoch + 100)) {
                    Ok(()) => self.ack(Status::OK),
                    Err(e) => {
                        self.error = Some(e.to_string());
                        self.ack(Status::NOT_READY)
                    }
                }
            }
            Command::Stop => {
                // Answered at once; no DONE follows.
                self.stream = None;
                self.ack(Status::OK);
            }
            Command::CustodyEnable { version, caps } => {
                if self.ring_id().is_none() || version != CUSTODY_VERSION {
                    return self.ack(Status::INVALID);
                }
                let granted = caps.intersect(CustodyCaps::ALL);
                self.custody = Some(granted);
                self.send(Notification::Ack {
                    status: Status::OK,
                    granted: Some(granted),
                });
            }
        }
    }

    fn read(&mut self, start: u64, count: Option<u32>) {
        self.stats.reads += 1;
        self.reads_seen += 1;
        if self.reads_seen <= self.faults.busy_reads || self.stream.is_some() {
            return self.ack(Status::NOT_READY);
        }
        let m = *self.writer.metadata();
        if start < m.read_seq || start > m.write_seq {
            return self.ack(Status::OUT_OF_RANGE);
        }
        let end = match count {
            None | Some(0) => m.write_seq,
            Some(c) => m.write_seq.min(start + c as u64),
        };
        self.send(Notification::ReadBegin {
            start_seq: start,
            packet_count: (end - start).min(u32::MAX as u64) as u32,
        });
        self.stream = Some(Stream {
            next_seq: start,
            end_seq: end,
            buf: Vec::new(),
            pos: 0,
            crc: crc32fast::Hasher::new(),
        });
    }

    fn advance(&mut self, ring_id: Option<u64>, seq: u64) {
        self.advances_seen += 1;
        if self.faults.drop_on_advance == Some(self.advances_seen) {
            // The command is lost with the link.
            self.drop_link();
            return;
        }
        let m = *self.writer.metadata();
        let idempotent = self
            .custody
            .is_some_and(|c| c.contains(CustodyCaps::IDEMPOTENT_ADVANCE));
        let status = if ring_id.is_some() && self.ring_id().is_none() {
            Status::INVALID
        } else if ring_id.is_some() && ring_id != self.ring_id() {
            Status::RING_ID_MISMATCH
        } else if seq > m.write_seq || (seq < m.read_seq && !idempotent) {
            Status::OUT_OF_RANGE
        } else if seq <= m.read_seq {
            Status::OK
        } else {
            match self.writer.advance(seq) {
                Ok(()) => Status::OK,
                Err(e) => {
                    self.error = Some(e.to_string());
                    Status::NOT_READY
                }
            }
        };
        let ev = AdvanceEvent {
            ring_id,
            seq,
            status,
            read_seq: self.writer.metadata().read_seq,
        };
        self.advances.push(ev);
        if let Some(obs) = self.observer.as_mut() {
            obs(&ev);
        }
        self.ack(status);
    }

    /// Refills the stream buffer with the records of the next batch run,
    /// their timestamps rewritten by the clock faults.
    fn refill(&mut self) -> Result<(), WriteError> {
        let slots = self.writer.slots();
        let not_set = self.faults.clock_not_set.clone();
        let zero = self.faults.clock_zero.clone();
        let Some(s) = self.stream.as_mut() else {
            return Ok(());
        };
        if s.pos < s.buf.len() || s.next_seq >= s.end_seq {
            return Ok(());
        }
        let batch_end = (s.next_seq / RECORDS_PER_BATCH + 1) * RECORDS_PER_BATCH;
        let n = batch_end.min(s.end_seq) - s.next_seq;
        s.buf.resize(n as usize * RECORD_BYTES, 0);
        s.pos = 0;
        let off = record_offset(s.next_seq, slots);
        let storage = self.writer.storage_mut();
        storage
            .seek(SeekFrom::Start(off))
            .and_then(|_| storage.read_exact(&mut s.buf))
            .map_err(|source| WriteError::Io {
                what: "records to send",
                offset: off,
                source,
            })?;
        for (i, rec) in s.buf.chunks_exact_mut(RECORD_BYTES).enumerate() {
            let seq = s.next_seq + i as u64;
            let t = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
            let t = if zero.as_ref().is_some_and(|r| r.contains(&seq)) {
                0
            } else if not_set.as_ref().is_some_and(|r| r.contains(&seq)) {
                CLOCK_NOT_SET_BIT | (t & 0xFFFF)
            } else {
                continue;
            };
            rec[..4].copy_from_slice(&t.to_be_bytes());
        }
        s.next_seq += n;
        Ok(())
    }

    /// The next notification on connection `conn`, when the host waits up to
    /// `timeout` for it (the wait itself is simulated: "nothing" answers at once).
    pub(super) fn next_notification(
        &mut self,
        conn: u64,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, LinkError> {
        if !self.live(conn) {
            return Err(dropped());
        }
        if let Some(front) = self.queue.front_mut() {
            if front.after > timeout {
                front.after -= timeout;
                return Ok(None);
            }
            return Ok(self.queue.pop_front().map(|p| p.bytes));
        }
        if self.stream.is_none() || self.stalled {
            return Ok(None);
        }
        // Faults that fire on DATA.
        let total = self.stats.data_bytes;
        let due_every = self.faults.drop_every.is_some_and(|n| self.conn_bytes >= n);
        let due_at = self.faults.drop_at.iter().any(|&n| total >= n);
        let due_random = total >= self.next_random_drop;
        if due_every || due_at || due_random {
            self.faults.drop_at.retain(|&n| total < n);
            if due_random && let Some(m) = self.faults.drop_random {
                self.next_random_drop = total + 1 + self.rng.u64(..2 * m);
            }
            self.drop_link();
            return Err(LinkError::Disconnected(
                "the simulated link dropped (fault)".into(),
            ));
        }
        if self.faults.stall_after.is_some_and(|n| total >= n) {
            self.faults.stall_after = None;
            self.stalled = true;
            return Ok(None);
        }
        self.data_or_done().map(Some)
    }

    /// A DATA notification of up to `MTU - 4` bytes (it may span records and
    /// batches), or DONE when the READ is complete.
    fn data_or_done(&mut self) -> Result<Vec<u8>, LinkError> {
        let chunk = self.link_mtu as usize - DATA_OVERHEAD;
        let mut out = Vec::with_capacity(chunk + 1);
        out.push(TAG_DATA);
        while out.len() - 1 < chunk {
            if let Err(e) = self.refill() {
                self.error = Some(e.to_string());
                self.stream = None;
                return Ok(Notification::Done {
                    status: Status::NOT_READY,
                    next_seq: 0,
                    crc: None,
                }
                .encode());
            }
            let Some(s) = self.stream.as_mut() else {
                break;
            };
            if s.pos >= s.buf.len() {
                break;
            }
            let take = (chunk - (out.len() - 1)).min(s.buf.len() - s.pos);
            out.extend_from_slice(&s.buf[s.pos..s.pos + take]);
            s.crc.update(&s.buf[s.pos..s.pos + take]);
            s.pos += take;
        }
        if out.len() == 1 {
            let (next_seq, crc) = self
                .stream
                .take()
                .map(|s| (s.end_seq, s.crc.finalize()))
                .unwrap_or((0, 0));
            return Ok(Notification::Done {
                status: Status::OK,
                next_seq,
                crc: self.faults.done_crc.then_some(crc),
            }
            .encode());
        }
        let n = (out.len() - 1) as u64;
        let first = self.stats.data_bytes;
        // Corruption on the way out: the CRC above covers the stored bytes.
        self.faults.corrupt_at.retain(|&at| {
            if (first..first + n).contains(&at) {
                out[1 + (at - first) as usize] ^= 0xFF;
                false
            } else {
                true
            }
        });
        self.conn_bytes += n;
        self.stats.data_bytes += n;
        self.stats.data_notifications += 1;
        if let Some(k) = self.faults.live_mark_every
            && self.stats.data_notifications.is_multiple_of(k)
        {
            let m = self.writer.metadata();
            let mark = Notification::LiveMark {
                ring_id: m.ring_id.unwrap_or(0),
                ring_seq: m.write_seq,
                live_index: (self.stats.data_notifications % 65_536) as u16,
            };
            self.send(mark);
        }
        Ok(out)
    }
}

fn dropped() -> LinkError {
    LinkError::Disconnected("the simulated link was dropped".into())
}
