//! A simulated pendant: the firmware side of the ring BLE protocol, in
//! process, serving the records of a storage image.
//!
//! [`SimPendant`] holds a storage image (a file, or bytes in memory) laid out
//! as on the card (`ring-layout.md`) and answers the real byte protocol of
//! [`crate::device::ring`] through [`GattLink`] connections made by its
//! [`Connector`]: the MTU exchange (a connection starts at the BLE default
//! of 23 until the host asks for more), INFO (31 bytes, or 41 with custody
//! for a variant C image; below MTU 44 the firmware waits about 5 s and
//! answers ACK status 9 instead), READ (READ_BEGIN, DATA notifications of
//! `MTU - 4` bytes not aligned to records, DONE), ADVANCE and ADVANCE_ID
//! (persisted into the image as a new metadata record with a higher
//! generation, keeping the ring id, as the firmware does, so a second pull
//! finds nothing new), CLEAR (new ids, sequence numbers restart), STOP
//! (answered with an ACK at once, and no DONE), CUSTODY_ENABLE, the status
//! characteristic and time sync. Commands written on a dropped connection
//! are discarded, as the firmware does.
//!
//! Everything the host does (MTU exchanges, time writes, status reads,
//! control commands with their arguments) is recorded in order, per
//! connection: [`SimPendant::commands`]. A test can check that a read-only
//! tool sent only INFO and status reads ([`HostOp::changes_pendant`]).
//!
//! The link is pulled, not pushed: a notification is produced when the
//! session asks for one, so runs are deterministic. "No notification"
//! answers at once (the wait is simulated), so timeouts cost no wall time;
//! only `delay-ms` and `rate` make the link take real time.
//!
//! # Fault spec
//!
//! Faults come from a comma-separated spec string ([`Faults::parse`]); an
//! empty string means a well-behaved pendant of the custody firmware line.
//! Items are `key` or `key=value`; a key may repeat where noted.
//!
//! | item | effect |
//! |---|---|
//! | `mtu=N` | the largest ATT MTU the pendant agrees to, 23..=517 (default 247): DATA carries `MTU - 4` bytes |
//! | `no-mtu-exchange` | refuse the MTU exchange: the link stays at 23, so INFO is answered with ACK status 9 after about 5 s |
//! | `delay-ms=N` | wait N ms before each notification (a slow link) |
//! | `rate=N` | send at most N DATA bytes a second, as a radio does (~5 000 is what the pendant records per second; 32 000 a good BLE link) |
//! | `drop-every=N` | drop the link whenever N more DATA bytes went out on one connection |
//! | `drop-at=N` | drop the link once, when N DATA bytes went out in total (repeatable) |
//! | `drop-random=N` | drop at random, on average every N DATA bytes (see `seed`) |
//! | `seed=N` | seed for `drop-random` (default 1) |
//! | `drop-on-advance[=K]` | drop the link when the K-th ADVANCE/ADVANCE_ID arrives (default 1), discarding it |
//! | `stall-after=N` | once N DATA bytes went out in total, send nothing more on that connection |
//! | `busy-first-read[=K]` | answer the first K READs with status 9, storage not ready (default 1) |
//! | `cleared-between-sessions[=M]` | before every connection but the first, CLEAR the ring (new ring id) and record M new records (default 100) |
//! | `clock-not-set=A..B` | serve records with seq in `A..B` with bit 31 set (clock not set, seconds since boot) and report the clock as not set |
//! | `clock-zero=A..B` | serve records with seq in `A..B` with timestamp 0 (clock not set, as the CRC firmware line writes it) and report the clock as not set |
//! | `no-custody` | answer INFO with 31 bytes and refuse CUSTODY_ENABLE, even for a variant C image |
//! | `live-mark-every=N` | send a LIVE_MARK after every N DATA notifications |
//! | `done-crc` | the newest firmware line: DONE carries the CRC-32 of the transfer's DATA bytes (14 bytes) |
//! | `corrupt-at=N` | flip the DATA byte at total offset N on its way out, once (repeatable); the CRC covers the bytes as stored |
//!
//! Example: `drop-every=4096,mtu=64,delay-ms=5,busy-first-read,cleared-between-sessions,clock-not-set=100..200`.

mod faults;
mod firmware;

pub use faults::{FaultSpecError, Faults};

use std::fmt;
use std::fs::File;
use std::io::{Cursor, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use self::firmware::State;
use crate::cancel::Cancel;
use crate::device::link::{Connector, GattLink, LinkError};
use crate::device::ring::{Command, Status, TAG_DATA, decode_time};
use crate::device::usb::layout::Metadata;
use crate::device::usb::reader::{ImageError, open_image_file};
use crate::device::usb::writer::{RingWriter, WriteError};

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

/// Something the host did to the pendant, as the pendant received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostOp {
    /// An MTU exchange: what the host asked for and what was agreed.
    MtuExchange {
        /// Asked for.
        asked: u16,
        /// Agreed.
        agreed: u16,
    },
    /// A write of the time-sync characteristic.
    TimeWrite {
        /// The unix seconds written.
        unix_secs: u32,
    },
    /// A read of the status characteristic.
    StatusRead,
    /// A command on the control characteristic, with its arguments.
    Command(Command),
    /// Bytes on the control characteristic that are no command (answered status 6).
    Garbled {
        /// What was written.
        bytes: Vec<u8>,
    },
}

impl HostOp {
    /// Whether it changes what the pendant stores or how it behaves: ADVANCE,
    /// ADVANCE_ID, CLEAR, CUSTODY_ENABLE, a time write, or bytes it could not
    /// read. INFO, READ, STOP, status reads and MTU exchanges change nothing.
    pub fn changes_pendant(&self) -> bool {
        match self {
            HostOp::MtuExchange { .. } | HostOp::StatusRead => false,
            HostOp::TimeWrite { .. } | HostOp::Garbled { .. } => true,
            HostOp::Command(c) => matches!(
                c,
                Command::Advance { .. }
                    | Command::AdvanceId { .. }
                    | Command::Clear
                    | Command::CustodyEnable { .. }
            ),
        }
    }
}

/// One thing the host did, with the connection it came on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The connection (the first is 1).
    pub connection: u64,
    /// What it was.
    pub op: HostOp,
    /// It came on a connection that was already gone, and was discarded.
    pub discarded: bool,
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
    /// The path is not something an image can be read from (a FIFO, a
    /// directory, ...).
    #[error(transparent)]
    NotAnImage(ImageError),
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
    /// A pendant serving (and writing ADVANCE into) the image file at `path`
    /// (a regular file or a block device: anything else is refused before it
    /// is opened, so a FIFO cannot block).
    pub fn open(path: &Path, spec: &str) -> Result<SimPendant, SimError> {
        let file: File = open_image_file(path, true).map_err(|e| match e {
            ImageError::Open { path, source } => SimError::Open { path, source },
            e => SimError::NotAnImage(e),
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
        Ok(SimPendant {
            state: Arc::new(Mutex::new(State::new(writer, faults))),
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

    /// Everything the host did so far (MTU exchanges, time writes, status
    /// reads, control commands with their arguments), in order, each with
    /// its connection.
    pub fn commands(&self) -> Vec<Received> {
        self.lock().log.clone()
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

impl Connector for SimPendant {
    fn device_id(&self) -> String {
        self.name.clone()
    }

    /// Connects at once (the token is not needed: nothing here waits).
    fn connect(&mut self, _cancel: &Cancel) -> Result<Box<dyn GattLink>, LinkError> {
        let mut st = self.lock();
        let conn = st
            .connect()
            .map_err(|e| LinkError::Other(format!("simulated pendant storage: {e}")))?;
        let delay = st.faults.delay;
        let rate = st.faults.rate;
        drop(st);
        Ok(Box::new(SimLink {
            state: Arc::clone(&self.state),
            conn,
            delay,
            rate,
            ready_at: None,
            paid_until: Instant::now(),
        }))
    }
}

/// One connection to a [`SimPendant`].
///
/// Pacing (real time): a notification is ready `delay-ms` after it is asked
/// for, and never before the DATA bytes already sent have had their air
/// time at `rate`. A wait shorter than that returns nothing, as a radio's would.
pub struct SimLink {
    state: Arc<Mutex<State>>,
    conn: u64,
    delay: Duration,
    rate: Option<u64>,
    /// When the notification asked for becomes ready.
    ready_at: Option<Instant>,
    /// Until when the DATA sent so far occupies the air.
    paid_until: Instant,
}

impl SimLink {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl GattLink for SimLink {
    fn mtu(&self) -> u16 {
        self.lock().link_mtu
    }

    fn request_mtu(&mut self, want: u16) -> Result<u16, LinkError> {
        self.lock().exchange_mtu(self.conn, want)
    }

    fn write_control(&mut self, command: &[u8]) -> Result<(), LinkError> {
        self.lock().control(self.conn, command)
    }

    fn write_time(&mut self, value: [u8; 4]) -> Result<(), LinkError> {
        let secs = decode_time(&value).map_err(|e| LinkError::Other(e.to_string()))?;
        self.lock().write_time(self.conn, secs)
    }

    fn read_status(&mut self) -> Result<Vec<u8>, LinkError> {
        Ok(self.lock().read_status(self.conn)?.encode().to_vec())
    }

    fn recv_notification(&mut self, timeout: Duration) -> Result<Option<Vec<u8>>, LinkError> {
        let now = Instant::now();
        let at = *self
            .ready_at
            .get_or_insert_with(|| (now + self.delay).max(self.paid_until));
        if at > now {
            std::thread::sleep((at - now).min(timeout));
            if Instant::now() < at {
                return Ok(None);
            }
        }
        self.ready_at = None;
        let n = self.lock().next_notification(self.conn, timeout)?;
        if let (Some(rate), Some(bytes)) = (self.rate, &n)
            && bytes.first() == Some(&TAG_DATA)
        {
            let air = Duration::from_secs_f64((bytes.len() - 1) as f64 / rate as f64);
            self.paid_until = self.paid_until.max(Instant::now()) + air;
        }
        Ok(n)
    }

    fn disconnect(&mut self) -> Result<(), LinkError> {
        self.lock().disconnect(self.conn);
        Ok(())
    }
}
