//! Fuzzing the BLE session with a scripted pendant that says random (often
//! wrong) things: the session must never panic, never hand the sink a gap or
//! a duplicate, and never ADVANCE past durable data.
//!
//! `OMI_FUZZ_CASES` sets the number of cases (default 512).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use omi_sync::cancel::Cancel;
use omi_sync::device::link::{Connector, GattLink, LinkError};
use omi_sync::device::ring::{
    Command, CustodyCaps, CustodyInfo, Info, Notification, Status, StorageStatus,
};
use omi_sync::device::session::{
    Discard, DurableSink, MemorySink, PullOptions, Quiet, ResumePoint, SinkError, TimeSync, pull,
};
use proptest::prelude::*;

struct Shared {
    durable: AtomicU64,
    violations: Mutex<Vec<String>>,
}

struct ScriptLink {
    script: VecDeque<Option<Vec<u8>>>,
    shared: Arc<Shared>,
}

impl GattLink for ScriptLink {
    fn mtu(&self) -> u16 {
        185
    }
    fn write_control(&mut self, command: &[u8]) -> Result<(), LinkError> {
        if let Ok(Command::Advance { seq } | Command::AdvanceId { seq, .. }) =
            Command::decode(command)
        {
            let d = self.shared.durable.load(Ordering::SeqCst);
            if seq > d {
                self.shared
                    .violations
                    .lock()
                    .unwrap()
                    .push(format!("ADVANCE {seq} > durable {d}"));
            }
        }
        Ok(())
    }
    fn write_time(&mut self, _value: [u8; 4]) -> Result<(), LinkError> {
        Ok(())
    }
    fn read_status(&mut self) -> Result<Vec<u8>, LinkError> {
        Ok(StorageStatus::default().encode().to_vec())
    }
    fn recv_notification(&mut self, _t: Duration) -> Result<Option<Vec<u8>>, LinkError> {
        match self.script.pop_front() {
            Some(Some(n)) => Ok(Some(n)),
            Some(None) => Err(LinkError::Disconnected("scripted drop".into())),
            None => Ok(None),
        }
    }
    fn disconnect(&mut self) -> Result<(), LinkError> {
        Ok(())
    }
}

struct ScriptConnector {
    scripts: VecDeque<VecDeque<Option<Vec<u8>>>>,
    shared: Arc<Shared>,
}

impl Connector for ScriptConnector {
    fn device_id(&self) -> String {
        "fuzz".into()
    }
    fn connect(&mut self, _cancel: &Cancel) -> Result<Box<dyn GattLink>, LinkError> {
        let script = self
            .scripts
            .pop_front()
            .ok_or_else(|| LinkError::Other("no more scripted connections".into()))?;
        Ok(Box::new(ScriptLink {
            script,
            shared: Arc::clone(&self.shared),
        }))
    }
}

struct Sink {
    inner: MemorySink,
    shared: Arc<Shared>,
}

impl DurableSink for Sink {
    fn persist(
        &mut self,
        d: &str,
        r: Option<u64>,
        first: u64,
        recs: &[u8],
    ) -> Result<(), SinkError> {
        self.inner.persist(d, r, first, recs)?;
        self.shared
            .durable
            .store(first + (recs.len() / 444) as u64, Ordering::SeqCst);
        Ok(())
    }
    fn resume_point(&self, d: &str) -> Result<Option<ResumePoint>, SinkError> {
        self.inner.resume_point(d)
    }
    fn discard_resume_point(
        &mut self,
        d: &str,
        old: ResumePoint,
        why: &Discard,
    ) -> Result<(), SinkError> {
        self.shared.durable.store(0, Ordering::SeqCst);
        self.inner.discard_resume_point(d, old, why)
    }
}

fn info(read: u64, write: u64, ring: Option<u64>) -> Vec<u8> {
    Notification::Info(Info {
        read_seq: read,
        write_seq: write,
        capacity: 1000,
        dropped: 0,
        packet_bytes: 444,
        custody: ring.map(|ring_id| CustodyInfo {
            caps: CustodyCaps::ALL,
            version: 1,
            ring_id,
        }),
    })
    .encode()
}

fn arb_notification() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..500).prop_map(|d| Some(Notification::Data(&d).encode())),
        1 => (0u64..40, 0u32..20).prop_map(|(s, c)| Some(Notification::ReadBegin { start_seq: s, packet_count: c }.encode())),
        1 => (prop_oneof![Just(0u8), Just(9), Just(10), any::<u8>()], 0u64..40)
            .prop_map(|(st, n)| Some(Notification::Done { status: Status(st), next_seq: n, crc: None }.encode())),
        1 => (prop_oneof![Just(0u8), Just(9), Just(11)], proptest::option::of(any::<u8>()))
            .prop_map(|(st, g)| Some(Notification::Ack { status: Status(st), granted: g.map(CustodyCaps) }.encode())),
        1 => (0u64..40, 0u64..40, proptest::option::of(0u64..3)).prop_map(|(r, w, id)| Some(info(r.min(w), r.max(w), id))),
        1 => proptest::collection::vec(any::<u8>(), 0..50).prop_map(Some),
        1 => Just(None),
    ]
}

fn arb_script() -> impl Strategy<Value = VecDeque<Option<Vec<u8>>>> {
    (
        0u64..20,
        0u64..30,
        proptest::option::of(0u64..3),
        proptest::collection::vec(arb_notification(), 0..60),
    )
        .prop_map(|(r, n, id, rest)| {
            let mut s = VecDeque::new();
            s.push_back(Some(info(r, r + n, id)));
            if id.is_some() {
                s.push_back(Some(
                    Notification::Ack {
                        status: Status::OK,
                        granted: Some(CustodyCaps::ALL),
                    }
                    .encode(),
                ));
            }
            s.extend(rest);
            s
        })
}

fn cases() -> u32 {
    std::env::var("OMI_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn the_session_survives_any_pendant(scripts in proptest::collection::vec(arb_script(), 1..4), batch in 1u64..5) {
        let shared = Arc::new(Shared { durable: AtomicU64::new(0), violations: Mutex::new(Vec::new()) });
        let mut conn = ScriptConnector { scripts: scripts.into(), shared: Arc::clone(&shared) };
        let mut sink = Sink { inner: MemorySink::keeping_bytes(), shared: Arc::clone(&shared) };
        let opts = PullOptions {
            batch_records: batch,
            advance_every_records: Some(2),
            busy_backoff: Duration::ZERO,
            reconnect_backoff: Duration::ZERO,
            time_sync: TimeSync::Skip,
            max_reconnects: 4,
            ..PullOptions::default()
        };
        let _ = pull(&mut conn, &mut sink, &opts, &Cancel::new(), &mut Quiet);
        let v = shared.violations.lock().unwrap();
        prop_assert!(v.is_empty(), "{:?}", *v);
        // Within one ring the sink saw contiguous, distinct seqs.
        let mut last: Option<(Option<u64>, u64)> = None;
        for p in &sink.inner.log {
            if let Some((ring, end)) = last && ring == p.ring_id && sink.inner.discarded.is_empty() {
                prop_assert_eq!(p.first_seq, end);
            }
            last = Some((p.ring_id, p.first_seq + p.count));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    /// The simulated pendant takes any bytes on its control characteristic.
    #[test]
    fn the_simulated_pendant_survives_any_command(
        commands in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..30),
        known in proptest::collection::vec((0u8..7, 0u64..400, any::<u64>()), 0..30),
    ) {
        use omi_sync::device::sim::SimPendant;
        use omi_sync::device::usb::fixture::FixtureBuilder;
        let mut b = FixtureBuilder::host_test(omi_sync::device::usb::Variant::C).unwrap();
        b.record(100, 36).unwrap();
        let mut sim = SimPendant::from_image(b.finish(), "mtu=50").unwrap();
        let ring = sim.metadata().ring_id.unwrap();
        let mut link = sim.connect(&Cancel::new()).unwrap();
        link.request_mtu(517).unwrap();
        let structured = known.into_iter().map(|(op, seq, x)| match op {
            0 => Command::Info,
            1 => Command::Read { start_seq: seq, count: Some((x % 50) as u32) },
            2 => Command::Advance { seq },
            3 => Command::AdvanceId { ring_id: if x % 2 == 0 { ring } else { x }, seq },
            4 => Command::Stop,
            5 => Command::CustodyEnable { version: (x % 3) as u8, caps: CustodyCaps(x as u8) },
            _ => Command::Clear,
        }.encode());
        for c in commands.into_iter().chain(structured) {
            let _ = link.write_control(&c);
            for _ in 0..5 {
                match link.recv_notification(Duration::ZERO) {
                    Ok(Some(n)) => prop_assert!(Notification::decode(&n).is_ok()),
                    _ => break,
                }
            }
        }
        let m = sim.metadata();
        prop_assert!(m.read_seq <= m.write_seq);
    }
}
