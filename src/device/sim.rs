//! A simulated pendant: the firmware side of the ring BLE protocol, in
//! process, serving the records of a storage image.
//!
//! [`SimPendant`] holds a storage image (a file, or bytes in memory) laid out
//! as on the card (`ring-layout.md`) and answers the real byte protocol of
//! [`crate::device::ring`] through [`GattLink`] connections made by its
//! [`Connector`]: INFO (31 bytes, or 41 with custody for a variant C image),
//! READ (READ_BEGIN, DATA notifications of `MTU - 4` bytes not aligned to
//! records, DONE), ADVANCE and ADVANCE_ID (persisted into the image as a new
//! metadata record with a higher generation, keeping the ring id, as the
//! firmware does, so a second pull finds nothing new), CLEAR (new ids,
//! sequence numbers restart), STOP, CUSTODY_ENABLE, the status
//! characteristic and time sync. Commands written on a dropped connection are
//! discarded, as the firmware does.
//!
//! The link is pulled, not pushed: a notification is produced when the
//! session asks for one, so runs are deterministic. "No notification"
//! answers at once (the wait is simulated), so timeouts cost no wall time.
//!
//! # Fault spec
//!
//! Faults come from a comma-separated spec string; an empty string means a
//! well-behaved pendant. Items are `key` or `key=value`; a key may repeat
//! where noted.
//!
//! | item | effect |
//! |---|---|
//! | `mtu=N` | ATT MTU, 23..=517 (default 247): DATA carries `N - 4` bytes |
//! | `delay-ms=N` | sleep N ms before each notification (a slow link) |
//! | `drop-every=N` | drop the link whenever N more DATA bytes went out on one connection |
//! | `drop-at=N` | drop the link once, when N DATA bytes went out in total (repeatable) |
//! | `drop-random=N` | drop at random, on average every N DATA bytes (see `seed`) |
//! | `seed=N` | seed for `drop-random` (default 1) |
//! | `drop-on-advance[=K]` | drop the link when the K-th ADVANCE/ADVANCE_ID arrives (default 1), discarding it |
//! | `stall-after=N` | once N DATA bytes went out in total, send nothing more on that connection |
//! | `busy-first-read[=K]` | answer the first K READs with status 9, storage not ready (default 1) |
//! | `cleared-between-sessions[=M]` | before every connection but the first, CLEAR the ring (new ring id) and record M new records (default 100) |
//! | `clock-not-set=A..B` | serve records with seq in `A..B` with bit 31 set (clock not set, seconds since boot) and report the clock as not set |
//! | `no-custody` | answer INFO with 31 bytes and refuse CUSTODY_ENABLE, even for a variant C image |
//! | `live-mark-every=N` | send a LIVE_MARK after every N DATA notifications |
//!
//! Example: `drop-every=4096,mtu=23,delay-ms=5,busy-first-read,cleared-between-sessions,clock-not-set=100..200`.

use std::collections::VecDeque;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::device::link::{Connector, GattLink, LinkError};
use crate::device::record::{CLOCK_NOT_SET_BIT, RECORD_BYTES};
use crate::device::ring::{
    CUSTODY_VERSION, Command, CustodyCaps, CustodyInfo, DATA_OVERHEAD, Info, Notification, Status,
    StorageStatus, decode_time,
};
use crate::device::usb::fixture::{FixtureClock, fixture_ids, fixture_records};
use crate::device::usb::layout::{Metadata, RECORDS_PER_BATCH, Variant, record_offset};
use crate::device::usb::writer::{RingWriter, WriteError};

/// A parse error in a fault spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("fault spec item `{item}`: {reason}")]
pub struct FaultSpecError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub reason: String,
}

/// The faults a simulated pendant shows (see the module docs for the grammar).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faults {
    /// ATT MTU.
    pub mtu: u16,
    /// Delay before each notification.
    pub delay: Duration,
    /// Drop every N DATA bytes on a connection.
    pub drop_every: Option<u64>,
    /// Drop once when the total DATA bytes reach each of these.
    pub drop_at: Vec<u64>,
    /// Random drops, on average every N DATA bytes.
    pub drop_random: Option<u64>,
    /// Seed for random drops.
    pub seed: u64,
    /// Drop when the K-th ADVANCE arrives.
    pub drop_on_advance: Option<u32>,
    /// Stall once the total DATA bytes reach N.
    pub stall_after: Option<u64>,
    /// Answer the first K READs with status 9.
    pub busy_reads: u32,
    /// Clear and record M records before every connection but the first.
    pub cleared_between_sessions: Option<u64>,
    /// Serve these seqs as clock-not-set.
    pub clock_not_set: Option<Range<u64>>,
    /// Refuse custody.
    pub no_custody: bool,
    /// LIVE_MARK after every N DATA notifications.
    pub live_mark_every: Option<u64>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            mtu: 247,
            delay: Duration::ZERO,
            drop_every: None,
            drop_at: Vec::new(),
            drop_random: None,
            seed: 1,
            drop_on_advance: None,
            stall_after: None,
            busy_reads: 0,
            cleared_between_sessions: None,
            clock_not_set: None,
            no_custody: false,
            live_mark_every: None,
        }
    }
}

impl Faults {
    /// Parses a fault spec (see the module docs).
    pub fn parse(spec: &str) -> Result<Faults, FaultSpecError> {
        let mut f = Faults::default();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = match item.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim())),
                None => (item, None),
            };
            let err = |reason: &str| FaultSpecError {
                item: item.to_string(),
                reason: reason.to_string(),
            };
            let num = || -> Result<u64, FaultSpecError> {
                let v = value.ok_or_else(|| err("needs a value, e.g. `key=100`"))?;
                v.parse::<u64>()
                    .map_err(|_| err(&format!("`{v}` is not a whole number")))
            };
            let opt_num = |default: u64| -> Result<u64, FaultSpecError> {
                match value {
                    None => Ok(default),
                    Some(_) => num(),
                }
            };
            let positive = |n: u64| {
                if n == 0 {
                    Err(err("must be at least 1"))
                } else {
                    Ok(n)
                }
            };
            match key {
                "mtu" => {
                    let n = num()?;
                    if !(23..=517).contains(&n) {
                        return Err(err("MTU must be 23..=517"));
                    }
                    f.mtu = n as u16;
                }
                "delay-ms" => f.delay = Duration::from_millis(num()?),
                "drop-every" => f.drop_every = Some(positive(num()?)?),
                "drop-at" => f.drop_at.push(num()?),
                "drop-random" => f.drop_random = Some(positive(num()?)?),
                "seed" => f.seed = num()?,
                "drop-on-advance" => f.drop_on_advance = Some(positive(opt_num(1)?)? as u32),
                "stall-after" => f.stall_after = Some(num()?),
                "busy-first-read" => f.busy_reads = opt_num(1)? as u32,
                "cleared-between-sessions" => f.cleared_between_sessions = Some(opt_num(100)?),
                "clock-not-set" => {
                    let v =
                        value.ok_or_else(|| err("needs a range, e.g. `clock-not-set=100..200`"))?;
                    let (a, b) = v
                        .split_once("..")
                        .ok_or_else(|| err("expected a range `A..B`"))?;
                    let a: u64 = a.parse().map_err(|_| err("range start is not a number"))?;
                    let b: u64 = b.parse().map_err(|_| err("range end is not a number"))?;
                    if a > b {
                        return Err(err("range start is after its end"));
                    }
                    f.clock_not_set = Some(a..b);
                }
                "no-custody" => {
                    if value.is_some() {
                        return Err(err("takes no value"));
                    }
                    f.no_custody = true;
                }
                "live-mark-every" => f.live_mark_every = Some(positive(num()?)?),
                _ => {
                    return Err(err(
                        "unknown fault (known: mtu, delay-ms, drop-every, drop-at, drop-random, seed, \
                         drop-on-advance, stall-after, busy-first-read, cleared-between-sessions, \
                         clock-not-set, no-custody, live-mark-every)",
                    ));
                }
            }
        }
        Ok(f)
    }
}

/// Storage a simulated pendant can hold its image in.
pub trait SimStorage: Read + Write + Seek + Send {}
impl<T: Read + Write + Seek + Send> SimStorage for T {}

/// An ADVANCE or ADVANCE_ID the pendant received, and what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdvanceEvent {
    /// The ring id sent (ADVANCE_ID), or `None` (ADVANCE).
    pub ring_id: Option<u64>,
    /// The new read_seq asked for.
    pub seq: u64,
    /// The answer.
    pub status: Status,
    /// read_seq after it.
    pub read_seq: u64,
}

/// Counters of what the pendant did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Connections made.
    pub connections: u64,
    /// Links dropped by faults.
    pub drops: u64,
    /// DATA bytes sent in total.
    pub data_bytes: u64,
    /// DATA notifications sent.
    pub data_notifications: u64,
    /// READ commands received.
    pub reads: u64,
    /// Commands discarded because their connection was gone.
    pub discarded_commands: u64,
}

type AdvanceObserver = Box<dyn FnMut(&AdvanceEvent) + Send>;

struct Stream {
    next_seq: u64,
    end_seq: u64,
    buf: Vec<u8>,
    pos: usize,
}

struct State {
    writer: RingWriter<Box<dyn SimStorage>>,
    faults: Faults,
    /// Id of the live connection; links with another id are stale.
    conn: u64,
    connected: bool,
    queue: VecDeque<Vec<u8>>,
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
    stats: SimStats,
    advances: Vec<AdvanceEvent>,
    observer: Option<AdvanceObserver>,
    error: Option<String>,
}

/// A simulated pendant.
#[derive(Clone)]
pub struct SimPendant {
    state: Arc<Mutex<State>>,
    name: String,
}

impl fmt::Debug for SimPendant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimPendant")
            .field("name", &self.name)
            .finish()
    }
}

/// Why the simulated pendant could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The fault spec did not parse.
    #[error(transparent)]
    Spec(#[from] FaultSpecError),
    /// The image file could not be opened.
    #[error("opening {path}: {source}")]
    Open {
        /// The path.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// The image is not a usable ring.
    #[error(transparent)]
    Image(#[from] WriteError),
}

impl SimPendant {
    /// A pendant serving (and writing ADVANCE into) the image file at `path`.
    pub fn open(path: &Path, spec: &str) -> Result<SimPendant, SimError> {
        let file: File = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| SimError::Open {
                path: path.display().to_string(),
                source,
            })?;
        Self::with_storage(Box::new(file), spec, &path.display().to_string())
    }

    /// A pendant serving an image held in memory.
    pub fn from_image(image: Vec<u8>, spec: &str) -> Result<SimPendant, SimError> {
        Self::with_storage(Box::new(Cursor::new(image)), spec, "sim")
    }

    /// A pendant over any storage.
    pub fn with_storage(
        storage: Box<dyn SimStorage>,
        spec: &str,
        name: &str,
    ) -> Result<SimPendant, SimError> {
        let faults = Faults::parse(spec)?;
        let writer = RingWriter::open(storage)?;
        let mut rng = fastrand::Rng::with_seed(faults.seed);
        let next_random_drop = faults
            .drop_random
            .map(|m| 1 + rng.u64(..2 * m))
            .unwrap_or(u64::MAX);
        let state = State {
            writer,
            faults,
            conn: 0,
            connected: false,
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
        };
        Ok(SimPendant {
            state: Arc::new(Mutex::new(state)),
            name: format!("sim:{name}"),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent-enough state.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `f` for every ADVANCE/ADVANCE_ID the pendant receives (tests use
    /// it to check the host never advances past durable data).
    pub fn on_advance(&self, f: impl FnMut(&AdvanceEvent) + Send + 'static) {
        self.lock().observer = Some(Box::new(f));
    }

    /// The ring's current metadata (as persisted in the image).
    pub fn metadata(&self) -> Metadata {
        *self.lock().writer.metadata()
    }

    /// Every ADVANCE received so far.
    pub fn advances(&self) -> Vec<AdvanceEvent> {
        self.lock().advances.clone()
    }

    /// Counters.
    pub fn stats(&self) -> SimStats {
        self.lock().stats
    }

    /// The last storage error the pendant hit (it answers status 9 then).
    pub fn storage_error(&self) -> Option<String> {
        self.lock().error.clone()
    }

    /// A copy of the whole image (reads all of it: for tests and small images).
    pub fn image(&self) -> std::io::Result<Vec<u8>> {
        let mut st = self.lock();
        let s = st.writer.storage_mut();
        let mut out = Vec::new();
        s.seek(SeekFrom::Start(0))?;
        s.read_to_end(&mut out)?;
        Ok(out)
    }

    /// Drops the live connection now (as a radio would).
    pub fn drop_link(&self) {
        self.lock().drop_link();
    }
}

impl State {
    fn drop_link(&mut self) {
        if self.connected {
            self.stats.drops += 1;
        }
        self.connected = false;
        self.stream = None;
        self.queue.clear();
    }

    fn live(&self, conn: u64) -> bool {
        self.connected && self.conn == conn
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
        StorageStatus {
            used_bytes: (unread * RECORD_BYTES as u64).min(u32::MAX as u64) as u32,
            unread_packets: unread.min(u32::MAX as u64) as u32,
            free_bytes: (free * RECORD_BYTES as u64).min(u32::MAX as u64) as u32,
            clock_valid: self.time.is_some() && self.faults.clock_not_set.is_none(),
        }
    }

    fn ack(&mut self, status: Status) {
        self.queue.push_back(
            Notification::Ack {
                status,
                granted: None,
            }
            .encode(),
        );
    }

    fn handle(&mut self, bytes: &[u8]) {
        let cmd = match Command::decode(bytes) {
            Ok(c) => c,
            Err(_) => return self.ack(Status::INVALID),
        };
        match cmd {
            Command::Info => {
                let info = self.info();
                self.queue.push_back(Notification::Info(info).encode());
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
                self.stream = None;
                self.ack(Status::OK);
            }
            Command::CustodyEnable { version, caps } => {
                if self.ring_id().is_none() || version != CUSTODY_VERSION {
                    return self.ack(Status::INVALID);
                }
                let granted = caps.intersect(CustodyCaps::ALL);
                self.custody = Some(granted);
                self.queue.push_back(
                    Notification::Ack {
                        status: Status::OK,
                        granted: Some(granted),
                    }
                    .encode(),
                );
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
        self.queue.push_back(
            Notification::ReadBegin {
                start_seq: start,
                packet_count: (end - start).min(u32::MAX as u64) as u32,
            }
            .encode(),
        );
        self.stream = Some(Stream {
            next_seq: start,
            end_seq: end,
            buf: Vec::new(),
            pos: 0,
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

    /// Refills the stream buffer with the records of the next batch run.
    fn refill(&mut self) -> Result<(), WriteError> {
        let slots = self.writer.slots();
        let clock = self.faults.clock_not_set.clone();
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
        if let Some(r) = clock {
            for (i, rec) in s.buf.chunks_exact_mut(RECORD_BYTES).enumerate() {
                let seq = s.next_seq + i as u64;
                if r.contains(&seq) {
                    let t = u32::from_be_bytes([rec[0], rec[1], rec[2], rec[3]]);
                    let t = CLOCK_NOT_SET_BIT | (t & 0xFFFF);
                    rec[..4].copy_from_slice(&t.to_be_bytes());
                }
            }
        }
        s.next_seq += n;
        Ok(())
    }

    /// The next notification to deliver on connection `conn`.
    fn next_notification(&mut self, conn: u64) -> Result<Option<Vec<u8>>, LinkError> {
        if !self.live(conn) {
            return Err(LinkError::Disconnected(
                "the simulated link was dropped".into(),
            ));
        }
        if let Some(n) = self.queue.pop_front() {
            return Ok(Some(n));
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
        // A DATA notification of up to MTU - 4 bytes; it may span records and batches.
        let chunk = self.faults.mtu as usize - DATA_OVERHEAD;
        let mut out = Vec::with_capacity(chunk + 1);
        out.push(crate::device::ring::TAG_DATA);
        while out.len() - 1 < chunk {
            if let Err(e) = self.refill() {
                self.error = Some(e.to_string());
                self.stream = None;
                return Ok(Some(
                    Notification::Done {
                        status: Status::NOT_READY,
                        next_seq: 0,
                    }
                    .encode(),
                ));
            }
            let Some(s) = self.stream.as_mut() else {
                break;
            };
            if s.pos >= s.buf.len() {
                break;
            }
            let take = (chunk - (out.len() - 1)).min(s.buf.len() - s.pos);
            out.extend_from_slice(&s.buf[s.pos..s.pos + take]);
            s.pos += take;
        }
        if out.len() == 1 {
            let next_seq = self.stream.take().map(|s| s.end_seq).unwrap_or(0);
            return Ok(Some(
                Notification::Done {
                    status: Status::OK,
                    next_seq,
                }
                .encode(),
            ));
        }
        let n = (out.len() - 1) as u64;
        self.conn_bytes += n;
        self.stats.data_bytes += n;
        self.stats.data_notifications += 1;
        if let Some(k) = self.faults.live_mark_every
            && self.stats.data_notifications.is_multiple_of(k)
        {
            let m = self.writer.metadata();
            self.queue.push_back(
                Notification::LiveMark {
                    ring_id: m.ring_id.unwrap_or(0),
                    ring_seq: m.write_seq,
                    live_index: (self.stats.data_notifications % 65_536) as u16,
                }
                .encode(),
            );
        }
        Ok(Some(out))
    }
}

impl Connector for SimPendant {
    fn device_id(&self) -> String {
        self.name.clone()
    }

    fn connect(&mut self) -> Result<Box<dyn GattLink>, LinkError> {
        let mut st = self.lock();
        if let Some(m) = st.faults.cleared_between_sessions
            && st.stats.connections > 0
        {
            st.epoch += 1;
            let epoch = st.epoch;
            let ids = fixture_ids(epoch + 100);
            let r = st.writer.clear(ids).and_then(|_| {
                st.writer
                    .append(&fixture_records(epoch + 100, 0..m, FixtureClock::Wall))
            });
            if let Err(e) = r {
                return Err(LinkError::Other(format!("simulated pendant storage: {e}")));
            }
        }
        st.drop_link();
        st.conn += 1;
        st.connected = true;
        st.conn_bytes = 0;
        st.stalled = false;
        st.custody = None;
        st.stats.connections += 1;
        let conn = st.conn;
        let mtu = st.faults.mtu;
        let delay = st.faults.delay;
        drop(st);
        Ok(Box::new(SimLink {
            state: Arc::clone(&self.state),
            conn,
            mtu,
            delay,
        }))
    }
}

/// One connection to a [`SimPendant`].
pub struct SimLink {
    state: Arc<Mutex<State>>,
    conn: u64,
    mtu: u16,
    delay: Duration,
}

impl SimLink {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl GattLink for SimLink {
    fn mtu(&self) -> u16 {
        self.mtu
    }

    fn write_control(&mut self, command: &[u8]) -> Result<(), LinkError> {
        let mut st = self.lock();
        if !st.live(self.conn) {
            st.stats.discarded_commands += 1;
            return Err(LinkError::Disconnected(
                "the simulated link was dropped; command discarded".into(),
            ));
        }
        st.handle(command);
        if !st.live(self.conn) {
            return Err(LinkError::Disconnected(
                "the simulated link dropped while writing".into(),
            ));
        }
        Ok(())
    }

    fn write_time(&mut self, value: [u8; 4]) -> Result<(), LinkError> {
        let mut st = self.lock();
        if !st.live(self.conn) {
            return Err(LinkError::Disconnected(
                "the simulated link was dropped".into(),
            ));
        }
        st.time = decode_time(&value).ok();
        Ok(())
    }

    fn read_status(&mut self) -> Result<Vec<u8>, LinkError> {
        let st = self.lock();
        if !st.live(self.conn) {
            return Err(LinkError::Disconnected(
                "the simulated link was dropped".into(),
            ));
        }
        Ok(st.status().encode().to_vec())
    }

    fn recv_notification(&mut self, _timeout: Duration) -> Result<Option<Vec<u8>>, LinkError> {
        if !self.delay.is_zero() {
            std::thread::sleep(self.delay);
        }
        self.lock().next_notification(self.conn)
    }

    fn disconnect(&mut self) -> Result<(), LinkError> {
        let mut st = self.lock();
        if st.live(self.conn) {
            st.connected = false;
            st.stream = None;
            st.queue.clear();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_example() {
        let f = Faults::parse(
            "drop-every=4096,mtu=23,delay-ms=5,busy-first-read,cleared-between-sessions,clock-not-set=100..200",
        )
        .unwrap();
        assert_eq!(f.drop_every, Some(4096));
        assert_eq!(f.mtu, 23);
        assert_eq!(f.delay, Duration::from_millis(5));
        assert_eq!(f.busy_reads, 1);
        assert_eq!(f.cleared_between_sessions, Some(100));
        assert_eq!(f.clock_not_set, Some(100..200));
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        let f = Faults::parse("drop-at=10, drop-at=20 ,no-custody").unwrap();
        assert_eq!(f.drop_at, vec![10, 20]);
        assert!(f.no_custody);
    }

    #[test]
    fn spec_errors_are_clear() {
        let e = Faults::parse("mtu=9").unwrap_err();
        assert_eq!(
            e.to_string(),
            "fault spec item `mtu=9`: MTU must be 23..=517"
        );
        let e = Faults::parse("drop-every=x").unwrap_err();
        assert_eq!(
            e.to_string(),
            "fault spec item `drop-every=x`: `x` is not a whole number"
        );
        assert!(
            Faults::parse("warp-drive")
                .unwrap_err()
                .to_string()
                .contains("unknown fault")
        );
        assert!(Faults::parse("clock-not-set=5").is_err());
        assert!(Faults::parse("clock-not-set=9..5").is_err());
        assert!(Faults::parse("drop-every").is_err());
        assert!(Faults::parse("no-custody=1").is_err());
        assert!(Faults::parse("drop-every=0").is_err());
    }
}
