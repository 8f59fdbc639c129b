//! One pull's state across its connections, and what a connection does:
//! set up, READ (verifying where the firmware allows), persist, ADVANCE.

use std::time::{Duration, Instant};

use super::wait::{info_exchange, recv, wait_for};
use super::{
    Discard, DurableSink, Interrupt, LinkEvent, Progress, PullError, PullObserver, PullOptions,
    PullReport, ResumeFit, TimeSync, resume_fit,
};
use crate::cancel::Cancel;
use crate::device::link::GattLink;
use crate::device::record::RECORD_BYTES;
use crate::device::ring::{
    CUSTODY_VERSION, Command, CustodyCaps, Info, Notification, RecordAssembler, RecordBatch,
    Status, StorageStatus, encode_time,
};

/// How a READ ended, short of an interruption.
enum Transfer {
    /// DONE came (and its CRC, if any, matched): what arrived is durable.
    Done,
    /// DONE's CRC did not match: nothing of it was kept; read it again.
    Retry,
}

/// A pull in progress.
pub(super) struct Session<'o, 'w> {
    pub(super) device: String,
    opts: &'o PullOptions,
    cancel: &'o Cancel,
    observer: &'w mut dyn PullObserver,
    pub(super) report: PullReport,
    started: Instant,
    /// The ring id of the records being pulled.
    ring_id: Option<u64>,
    /// One past the last durable record of the current ring.
    durable: Option<u64>,
    /// The highest seq the pendant acknowledged an ADVANCE to (current ring).
    advanced: Option<u64>,
    /// One past the highest record received in the current ring.
    high_water: u64,
    total_records: u64,
    notifications: u64,
    /// Whether this connection may send ADVANCE at all.
    may_advance: bool,
    /// When records were last handed to the sink.
    last_persist: Instant,
    /// CRC mismatches in a row of the transfer starting at this seq.
    crc_failures: (u64, u32),
}

impl<'o, 'w> Session<'o, 'w> {
    pub(super) fn new(
        device: String,
        opts: &'o PullOptions,
        cancel: &'o Cancel,
        observer: &'w mut dyn PullObserver,
    ) -> Self {
        Session {
            report: PullReport {
                device: device.clone(),
                ..PullReport::default()
            },
            device,
            opts,
            cancel,
            observer,
            started: Instant::now(),
            ring_id: None,
            durable: None,
            advanced: None,
            high_water: 0,
            total_records: 0,
            notifications: 0,
            may_advance: false,
            last_persist: Instant::now(),
            crc_failures: (0, 0),
        }
    }

    pub(super) fn note(&mut self, text: String) {
        tracing::info!(device = %self.device, "{text}");
        self.report.notes.push(text);
    }

    pub(super) fn link_event(&mut self, event: LinkEvent) {
        self.observer.link(&event);
    }

    pub(super) fn finish(mut self) -> PullReport {
        self.report.ring_id = self.ring_id;
        if let Some(i) = self.report.info {
            let freed = self.advanced.unwrap_or(i.read_seq).max(i.read_seq);
            self.report.unread_on_device = i.write_seq.saturating_sub(freed);
        }
        self.report.resent_bytes = self
            .report
            .bytes_received
            .saturating_sub(self.report.records_received * RECORD_BYTES as u64);
        self.report
    }

    fn progress(&self) -> Progress {
        Progress {
            bytes: self.report.bytes_received,
            records: self.report.records_received,
            total_records: self.total_records,
            persisted: self.report.records_persisted,
            elapsed: self.started.elapsed(),
            connections: self.report.connections,
        }
    }

    fn recv(
        &self,
        link: &mut dyn GattLink,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>, Interrupt> {
        recv(link, timeout, self.cancel)
    }

    fn wait_for<T>(
        &self,
        link: &mut dyn GattLink,
        what: &str,
        timeout: Duration,
        want: impl FnMut(&Notification<'_>) -> Option<T>,
    ) -> Result<T, Interrupt> {
        wait_for(link, self.cancel, what, timeout, want)
    }

    /// One connection: set up, READ until INFO's write_seq, ADVANCE.
    pub(super) fn connection(
        &mut self,
        link: &mut dyn GattLink,
        sink: &mut dyn DurableSink,
    ) -> Result<(), Interrupt> {
        let opts = self.opts;
        // 1. MTU first (INFO needs 44), then time, status, INFO, custody.
        let mtu = link.request_mtu(opts.mtu)?;
        self.report.mtu = mtu;
        self.link_event(LinkEvent::Connected { mtu });
        let connected_at = crate::clock::UtcMillis::now();
        match opts.time_sync {
            TimeSync::Now => {
                let now = connected_at.as_secs().clamp(0, u32::MAX as i64) as u32;
                link.write_time(encode_time(now))?;
                self.report.time_written = true;
            }
            TimeSync::At(t) => {
                link.write_time(encode_time(t))?;
                self.report.time_written = true;
            }
            TimeSync::Skip => {}
        }
        match StorageStatus::decode(&link.read_status()?) {
            Ok(st) => self.report.status = Some(st),
            Err(e) => self.note(format!("status characteristic ignored: {e}")),
        }
        let info = info_exchange(link, mtu, opts.command_timeout, self.cancel)?;
        self.report.info = Some(info);
        self.report.connected_at = Some(connected_at);
        self.report.info_at = Some(crate::clock::UtcMillis::now());
        if info.packet_bytes as usize != RECORD_BYTES {
            return Err(Interrupt::Fatal(PullError::Protocol(format!(
                "INFO reports {}-byte packets; only {RECORD_BYTES}-byte ring records are supported",
                info.packet_bytes
            ))));
        }
        let use_id = self.custody(link, &info)?;

        // 2. The resume point (the sink is authoritative: only what it holds is durable).
        let (start, matches, confirmed) = self.resume(sink, &info)?;
        self.durable = Some(start);
        if matches {
            self.high_water = self.high_water.max(start);
        }
        self.ring_id = info.ring_id();
        // Free nothing on this connection if the ring's identity is in doubt:
        // [read_seq, start) might then be records this host never pulled.
        self.may_advance = !opts.keep_on_device && confirmed;
        // Re-send ADVANCE if the pendant was not advanced to durable data.
        if matches && self.may_advance && start > info.read_seq {
            self.advance(link, use_id, start, true)?;
        }
        if self.total_records == 0 {
            self.total_records = info.write_seq.saturating_sub(start);
        }

        // 3-4. READs until write_seq: one record first, to learn whether DONE
        // carries a CRC; then everything at once, or verified READs.
        let mut start = start;
        while start < info.write_seq {
            let count = match self.report.done_crc {
                None => Some(1),
                Some(true) => Some(opts.verified_read_records.max(1)),
                Some(false) => None,
            };
            let before = self.durable;
            let outcome = self.transfer(link, sink, &info, use_id, start, count)?;
            start = self.durable.unwrap_or(start);
            match outcome {
                Transfer::Retry => {}
                Transfer::Done if self.durable == before => break,
                Transfer::Done => {
                    if self.report.done_crc == Some(true) {
                        self.advance_if_due(link, use_id, info.read_seq, true)?;
                    }
                }
            }
        }

        // 5. ADVANCE to the durable seq.
        if self.may_advance
            && let Some(d) = self.durable
            && d > info.read_seq
            && Some(d) != self.report.advanced_to
        {
            self.advance(link, use_id, d, true)?;
        }
        Ok(())
    }

    /// CUSTODY_ENABLE when INFO offers the ring id; whether ADVANCE_ID is used.
    fn custody(&mut self, link: &mut dyn GattLink, info: &Info) -> Result<bool, Interrupt> {
        let mut custody = None;
        if let Some(c) = info.custody
            && c.caps.contains(CustodyCaps::RING_ID)
        {
            let caps = self.opts.custody_caps.intersect(c.caps);
            link.write_control(
                &Command::CustodyEnable {
                    version: CUSTODY_VERSION,
                    caps,
                }
                .encode(),
            )?;
            let (status, granted) = self.wait_for(
                link,
                "custody ACK",
                self.opts.command_timeout,
                |n| match n {
                    Notification::Ack { status, granted } => Some((*status, *granted)),
                    _ => None,
                },
            )?;
            if status.is_ok() {
                custody = Some(granted.unwrap_or(caps));
            } else {
                self.note(format!(
                    "custody not granted ({status}); using plain ADVANCE"
                ));
            }
        }
        self.report.custody = custody;
        Ok(custody.is_some_and(|g| g.contains(CustodyCaps::RING_ID)))
    }

    /// Where to start: `(seq, whether the stored resume point matched,
    /// whether ADVANCE may be based on it)`. A point that no longer fits the
    /// ring is discarded, with a note.
    fn resume(
        &mut self,
        sink: &mut dyn DurableSink,
        info: &Info,
    ) -> Result<(u64, bool, bool), Interrupt> {
        let ring_id = info.ring_id();
        let Some(rp) = sink.resume_point(&self.device)? else {
            if self.ring_id != ring_id {
                self.high_water = info.read_seq;
            }
            return Ok((info.read_seq, false, true));
        };
        let discard = match resume_fit(&rp, ring_id, info.read_seq, info.write_seq) {
            ResumeFit::Resume { ids_compared } => {
                if !ids_compared {
                    // The ids cannot be compared: resume, but free nothing on that basis.
                    self.note(format!(
                        "the resume point's ring id ({}) and the pendant's ({}) cannot be compared; \
                         resuming at {} without sending ADVANCE on this connection",
                        rp.ring_id.map_or("none".into(), |r| format!("{r:#x}")),
                        ring_id.map_or("none".into(), |r| format!("{r:#x}")),
                        rp.durable_seq
                    ));
                }
                return Ok((rp.durable_seq, true, ids_compared));
            }
            ResumeFit::Discard(discard) => discard,
        };
        match &discard {
            Discard::RecordsLost { seqs } => self.note(format!(
                "the pendant's read_seq {} is past the resume point {} ({} records were \
                 overwritten or freed before they were pulled); starting from read_seq {}",
                info.read_seq,
                rp.durable_seq,
                seqs.end - seqs.start,
                info.read_seq
            )),
            Discard::RingReplaced { .. } => {
                let why = if rp.durable_seq > info.write_seq && rp.ring_id == ring_id {
                    format!(
                        "the resume point {} lies beyond the pendant's write_seq {}",
                        rp.durable_seq, info.write_seq
                    )
                } else {
                    format!(
                        "the ring id changed ({:#x} to {:#x})",
                        rp.ring_id.unwrap_or(0),
                        ring_id.unwrap_or(0)
                    )
                };
                self.note(format!(
                    "the ring was cleared or replaced: {why}; the resume point is discarded \
                     and the pull starts from the new read_seq {}",
                    info.read_seq
                ));
                self.report.ring_replaced = true;
                self.report.seq_range = None;
            }
        }
        sink.discard_resume_point(&self.device, rp, &discard)?;
        self.advanced = None;
        self.high_water = info.read_seq;
        Ok((info.read_seq, false, true))
    }

    /// Sends READ, retrying "storage not ready" with backoff; READ_BEGIN's
    /// `(start_seq, packet_count)`.
    fn begin_read(
        &mut self,
        link: &mut dyn GattLink,
        start: u64,
        count: Option<u32>,
    ) -> Result<(u64, u32), Interrupt> {
        let opts = self.opts;
        let mut tries = 0u32;
        loop {
            link.write_control(
                &Command::Read {
                    start_seq: start,
                    count,
                }
                .encode(),
            )?;
            let answer =
                self.wait_for(link, "READ_BEGIN", opts.first_data_timeout, |n| match n {
                    Notification::ReadBegin {
                        start_seq,
                        packet_count,
                    } => Some(Ok((*start_seq, *packet_count))),
                    Notification::Ack { status, .. } if !status.is_ok() => Some(Err(*status)),
                    Notification::Done { status, .. } if !status.is_ok() => Some(Err(*status)),
                    _ => None,
                })?;
            match answer {
                Ok(b) => return Ok(b),
                Err(Status::NOT_READY) if tries < opts.busy_retries => {
                    let wait = opts.busy_backoff * 2u32.saturating_pow(tries);
                    tries += 1;
                    self.report.busy_retries += 1;
                    self.note(format!(
                        "READ answered status 9 (storage not ready); retry {tries} in {} ms",
                        wait.as_millis()
                    ));
                    self.cancel.sleep(wait).map_err(|_| Interrupt::Cancelled)?;
                }
                Err(status) => {
                    return Err(Interrupt::Fatal(PullError::Device {
                        command: "READ",
                        status,
                    }));
                }
            }
        }
    }

    /// One READ from `start` (`count` records, or all): stream, check DONE
    /// and its CRC, persist, and on a cancel free what is durable.
    fn transfer(
        &mut self,
        link: &mut dyn GattLink,
        sink: &mut dyn DurableSink,
        info: &Info,
        use_id: bool,
        start: u64,
        count: Option<u32>,
    ) -> Result<Transfer, Interrupt> {
        let opts = self.opts;
        // Until the firmware is known to send no CRC, records are held until
        // their DONE verifies them.
        let hold = self.report.done_crc != Some(false);
        let (begin_seq, packets) = self.begin_read(link, start, count)?;
        if begin_seq > start {
            // Records vanished between INFO and READ (overwritten by recording):
            // reconnect, and the new INFO tells the sink which ones.
            let _ = link.write_control(&Command::Stop.encode());
            return Err(Interrupt::Dropped(format!(
                "the pendant started the READ at {begin_seq}, not {start}"
            )));
        }
        if let Some(asked) = count
            && packets > asked
        {
            // Held records must stay bounded: a READ of `asked` is answered with at most that.
            let _ = link.write_control(&Command::Stop.encode());
            return Err(Interrupt::Fatal(PullError::Protocol(format!(
                "READ_BEGIN announced {packets} records for a READ of {asked}"
            ))));
        }
        let end = begin_seq.saturating_add(packets as u64);
        self.total_records = self
            .total_records
            .max(self.report.records_received + end.saturating_sub(self.high_water.max(begin_seq)));

        let mut asm = RecordAssembler::new(begin_seq);
        let mut crc = crc32fast::Hasher::new();
        let mut pending_advances = 0u32;
        let mut got_data = false;
        let mut last_progress = Instant::now();
        // Ok(None): DONE and verified (or nothing to verify); Ok(Some(..)): a CRC mismatch.
        let result: Result<Option<(u32, u32)>, Interrupt> = loop {
            let limit = if got_data {
                opts.progress_timeout
            } else {
                opts.first_data_timeout
            };
            let left = limit.saturating_sub(last_progress.elapsed());
            let bytes = match self.recv(link, left) {
                Ok(Some(b)) => b,
                Ok(None) => {
                    break Err(Interrupt::Dropped(format!(
                        "no data for {} ms (at seq {})",
                        limit.as_millis(),
                        asm.next_seq()
                    )));
                }
                Err(e) => break Err(e),
            };
            let n = match Notification::decode(&bytes) {
                Ok(n) => n,
                Err(e) => break Err(Interrupt::Fatal(PullError::Protocol(e.to_string()))),
            };
            match n {
                Notification::Data(d) => {
                    got_data = true;
                    last_progress = Instant::now();
                    self.report.bytes_received += d.len() as u64;
                    crc.update(d);
                    asm.push(d);
                    if asm.next_seq() > end {
                        break Err(Interrupt::Fatal(PullError::Protocol(format!(
                            "the pendant sent records past {end}, the end READ_BEGIN announced"
                        ))));
                    }
                    let ready = asm.ready_records();
                    if !hold
                        && (ready >= opts.batch_records
                            || (ready > 0 && self.last_persist.elapsed() >= opts.persist_interval))
                    {
                        if let Err(e) = self.persist(&mut asm, sink) {
                            break Err(e);
                        }
                        match self.advance_if_due(link, use_id, info.read_seq, false) {
                            Ok(true) => pending_advances += 1,
                            Ok(false) => {}
                            Err(e) => break Err(e),
                        }
                    }
                    self.notifications += 1;
                    if self.notifications.is_multiple_of(32) {
                        self.observer.progress(&self.progress());
                    }
                }
                Notification::Done {
                    status,
                    next_seq,
                    crc: sent,
                } => {
                    if !status.is_ok() {
                        break Err(Interrupt::Fatal(PullError::Device {
                            command: "READ (DONE)",
                            status,
                        }));
                    }
                    if asm.partial_len() > 0 {
                        self.note(format!(
                            "DONE left {} bytes of an incomplete record; they are dropped and read again next time",
                            asm.partial_len()
                        ));
                    }
                    if next_seq != asm.next_seq() {
                        break Err(Interrupt::Dropped(format!(
                            "DONE says next_seq {next_seq} but records up to {} arrived",
                            asm.next_seq()
                        )));
                    }
                    self.report.done_crc = Some(sent.is_some());
                    break Ok(sent.and_then(|want| {
                        let got = crc.clone().finalize();
                        (got != want).then_some((want, got))
                    }));
                }
                Notification::Ack { status, .. } => {
                    if pending_advances > 0 {
                        pending_advances -= 1;
                        if !status.is_ok() {
                            self.note(format!("ADVANCE during the READ refused: {status}"));
                            self.advanced = None;
                        } else {
                            self.report.advanced_to = self.advanced;
                        }
                    }
                }
                Notification::LiveMark { .. }
                | Notification::Info(_)
                | Notification::ReadBegin { .. } => {}
            }
        };

        // Whole records in hand are made durable first, whatever happened,
        // if they are verified or cannot be: unverified ones are read again.
        let keep = match &result {
            Ok(mismatch) => mismatch.is_none(),
            Err(Interrupt::Fatal(PullError::Sink(_))) => false,
            Err(_) => !hold,
        };
        let received_end = asm.next_seq();
        let flushed = if keep {
            self.persist(&mut asm, sink)
        } else {
            let unverified = asm.take_ready().map_or(0, |b| b.count());
            if unverified > 0 && result.is_err() {
                self.note(format!(
                    "{unverified} records received but not yet verified by the pendant's CRC are read again"
                ));
            }
            Ok(())
        };
        if matches!(result, Ok(None)) && self.report.done_crc == Some(true) {
            self.report.crc_verified += 1;
        }
        let partial = asm.discard_partial();
        if partial > 0 {
            tracing::debug!(device = %self.device, partial, "partial record discarded");
        }
        if matches!(result, Err(Interrupt::Cancelled) | Err(Interrupt::Fatal(_))) {
            // Answered with an ACK and no DONE.
            let _ = link.write_control(&Command::Stop.encode());
        }
        flushed?;
        self.observer.progress(&self.progress());
        match result {
            Ok(None) => Ok(Transfer::Done),
            Ok(Some((expected, computed))) => {
                self.crc_mismatch(begin_seq..received_end, expected, computed)
            }
            Err(Interrupt::Cancelled) => {
                if self.may_advance
                    && let Some(d) = self.durable
                    && d > self.advanced.unwrap_or(info.read_seq)
                {
                    let _ = self.advance(link, use_id, d, false);
                }
                Err(Interrupt::Cancelled)
            }
            Err(e) => Err(e),
        }
    }

    /// Counts a CRC mismatch of the transfer of `seqs`: read it again, or
    /// stop once it failed more than [`PullOptions::crc_retries`] times in a row.
    fn crc_mismatch(
        &mut self,
        seqs: std::ops::Range<u64>,
        expected: u32,
        computed: u32,
    ) -> Result<Transfer, Interrupt> {
        self.report.crc_mismatches += 1;
        let tries = if self.crc_failures.0 == seqs.start {
            self.crc_failures.1 + 1
        } else {
            1
        };
        self.crc_failures = (seqs.start, tries);
        if tries > self.opts.crc_retries {
            return Err(Interrupt::Fatal(PullError::CrcMismatch {
                seqs,
                expected,
                computed,
                tries,
            }));
        }
        self.note(format!(
            "records {}..{}: the DATA received does not match the CRC-32 in DONE ({expected:#010x} \
             sent, {computed:#010x} computed); none of them was stored or freed, reading them again",
            seqs.start, seqs.end
        ));
        Ok(Transfer::Retry)
    }

    fn advance_command(&self, use_id: bool, seq: u64) -> Vec<u8> {
        match (use_id, self.ring_id) {
            (true, Some(ring_id)) => Command::AdvanceId { ring_id, seq }.encode(),
            _ => Command::Advance { seq }.encode(),
        }
    }

    /// ADVANCE to the durable seq if [`PullOptions::advance_every_records`]
    /// more records are durable since the last one; whether it was sent.
    fn advance_if_due(
        &mut self,
        link: &mut dyn GattLink,
        use_id: bool,
        read_seq: u64,
        wait: bool,
    ) -> Result<bool, Interrupt> {
        let Some(every) = self.opts.advance_every_records else {
            return Ok(false);
        };
        let durable = self.durable.unwrap_or(0);
        if !self.may_advance || durable < self.advanced.unwrap_or(read_seq) + every {
            return Ok(false);
        }
        self.advance(link, use_id, durable, wait)?;
        if !wait {
            self.advanced = Some(durable);
        }
        Ok(true)
    }

    /// Sends ADVANCE (or ADVANCE_ID) to `seq` and, with `wait`, waits for its
    /// ACK. A refusal is a note, not an error: the data is durable either way.
    fn advance(
        &mut self,
        link: &mut dyn GattLink,
        use_id: bool,
        seq: u64,
        wait: bool,
    ) -> Result<(), Interrupt> {
        if self.durable.is_none_or(|d| seq > d) {
            return Err(Interrupt::Fatal(PullError::Protocol(format!(
                "internal: refusing to ADVANCE to {seq}, past the durable data ({:?})",
                self.durable
            ))));
        }
        link.write_control(&self.advance_command(use_id, seq))?;
        if !wait {
            return Ok(());
        }
        let status = self.wait_for(
            link,
            "ADVANCE ACK",
            self.opts.command_timeout,
            |n| match n {
                Notification::Ack { status, .. } => Some(*status),
                _ => None,
            },
        )?;
        if status.is_ok() {
            self.advanced = Some(seq);
            self.report.advanced_to = Some(seq);
        } else if status == Status::RING_ID_MISMATCH {
            self.note(format!(
                "ADVANCE_ID to {seq} refused: the ring was replaced meanwhile (status 11); nothing freed"
            ));
        } else {
            self.note(format!("ADVANCE to {seq} refused: {status}"));
        }
        Ok(())
    }

    /// Hands the whole records in `asm` to the sink; skips records already durable.
    fn persist(
        &mut self,
        asm: &mut RecordAssembler,
        sink: &mut dyn DurableSink,
    ) -> Result<(), Interrupt> {
        self.last_persist = Instant::now();
        let Some(batch) = asm.take_ready() else {
            return Ok(());
        };
        let durable = self.durable.unwrap_or(batch.first_seq);
        // Distinct records received.
        if batch.end_seq() > self.high_water {
            self.report.records_received += batch.end_seq() - self.high_water.max(batch.first_seq);
            self.high_water = batch.end_seq();
        }
        let RecordBatch { first_seq, bytes } = batch;
        let skip = durable
            .saturating_sub(first_seq)
            .min((bytes.len() / RECORD_BYTES) as u64);
        let records = &bytes[skip as usize * RECORD_BYTES..];
        if records.is_empty() {
            return Ok(());
        }
        let first = first_seq + skip;
        if first != durable {
            return Err(Interrupt::Fatal(PullError::Protocol(format!(
                "records start at {first} but the durable data ends at {durable}"
            ))));
        }
        sink.persist(&self.device, self.ring_id, first, records)?;
        let n = (records.len() / RECORD_BYTES) as u64;
        self.durable = Some(first + n);
        self.report.records_persisted += n;
        self.report.seq_range = Some(match self.report.seq_range.take() {
            Some(r) if r.end == first => r.start..first + n,
            _ => first..first + n,
        });
        Ok(())
    }
}
