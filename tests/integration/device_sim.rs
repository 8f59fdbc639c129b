//! The simulated pendant speaks the documented byte protocol.

use std::time::Duration;

use omi_sync::cancel::Cancel;
use omi_sync::device::link::{Connector, GattLink};
use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::ring::{
    Command, CustodyCaps, Notification, Status, StorageStatus, encode_time,
};
use omi_sync::device::sim::SimPendant;
use omi_sync::device::usb::Variant;
use omi_sync::device::usb::fixture::{FixtureBuilder, FixtureClock, fixture_record};

fn image(v: Variant, n: u64) -> Vec<u8> {
    let mut b = FixtureBuilder::host_test(v).unwrap();
    b.record(n, 36).unwrap();
    b.finish()
}

/// Connects and negotiates the largest MTU, as the session does.
fn open(sim: &mut SimPendant) -> Box<dyn GattLink> {
    let mut link = sim.connect(&Cancel::new()).unwrap();
    link.request_mtu(517).unwrap();
    link
}

fn next(link: &mut dyn GattLink) -> Vec<u8> {
    link.recv_notification(Duration::from_secs(2))
        .unwrap()
        .expect("a notification")
}

fn send(link: &mut dyn GattLink, c: Command) -> Vec<u8> {
    link.write_control(&c.encode()).unwrap();
    next(link)
}

#[test]
fn info_has_the_custody_form_only_for_variant_c() {
    for (v, spec, len) in [
        (Variant::A, "", 31),
        (Variant::B, "", 31),
        (Variant::C, "", 41),
        (Variant::C, "no-custody", 31),
    ] {
        let mut sim = SimPendant::from_image(image(v, 10), spec).unwrap();
        let mut link = open(&mut sim);
        let bytes = send(link.as_mut(), Command::Info);
        assert_eq!(bytes.len(), len, "{v:?} {spec}");
        let Ok(Notification::Info(i)) = Notification::decode(&bytes) else {
            panic!("not INFO");
        };
        assert_eq!((i.read_seq, i.write_seq, i.capacity), (0, 10, 288));
        assert_eq!(i.packet_bytes, 444);
    }
}

#[test]
fn read_streams_unaligned_data_then_done() {
    let mut sim = SimPendant::from_image(image(Variant::C, 40), "mtu=100").unwrap();
    let mut link = open(&mut sim);
    let l = link.as_mut();
    let begin = send(
        l,
        Command::Read {
            start_seq: 3,
            count: Some(30),
        },
    );
    assert_eq!(
        Notification::decode(&begin).unwrap(),
        Notification::ReadBegin {
            start_seq: 3,
            packet_count: 30
        }
    );
    let mut stream = Vec::new();
    loop {
        let n = next(l);
        match Notification::decode(&n).unwrap() {
            Notification::Data(d) => {
                assert!(d.len() <= 96);
                stream.extend_from_slice(d);
            }
            Notification::Done {
                status,
                next_seq,
                crc,
            } => {
                assert_eq!(crc, None, "no CRC unless `done-crc`");
                assert_eq!((status, next_seq), (Status::OK, 33));
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(stream.len(), 30 * RECORD_BYTES);
    for (i, rec) in stream.chunks(RECORD_BYTES).enumerate() {
        assert_eq!(
            rec,
            &fixture_record(0, 3 + i as u64, FixtureClock::Wall)[..]
        );
    }
    // Nothing more.
    assert_eq!(l.recv_notification(Duration::ZERO).unwrap(), None);
}

#[test]
fn commands_get_the_documented_statuses() {
    let mut sim = SimPendant::from_image(image(Variant::C, 40), "").unwrap();
    let mut link = open(&mut sim);
    let l = link.as_mut();
    let ack = |b: Vec<u8>| match Notification::decode(&b).unwrap() {
        Notification::Ack { status, .. } => status,
        other => panic!("not an ACK: {other:?}"),
    };
    let ring_id = sim.metadata().ring_id.unwrap();
    // Custody.
    let b = send(
        l,
        Command::CustodyEnable {
            version: 1,
            caps: CustodyCaps(0xFF),
        },
    );
    assert_eq!(b, vec![0x01, 0, 0x0F]);
    assert_eq!(
        ack(send(
            l,
            Command::CustodyEnable {
                version: 2,
                caps: CustodyCaps::ALL
            }
        )),
        Status::INVALID
    );
    // Bad length.
    l.write_control(&[0x11, 1, 2]).unwrap();
    assert_eq!(ack(next(l)), Status::INVALID);
    // Out of range.
    assert_eq!(
        ack(send(
            l,
            Command::Read {
                start_seq: 41,
                count: None
            }
        )),
        Status::OUT_OF_RANGE
    );
    assert_eq!(
        ack(send(l, Command::Advance { seq: 41 })),
        Status::OUT_OF_RANGE
    );
    // Wrong ring id.
    assert_eq!(
        ack(send(
            l,
            Command::AdvanceId {
                ring_id: ring_id ^ 1,
                seq: 5
            }
        )),
        Status::RING_ID_MISMATCH
    );
    let generation = sim.metadata().generation;
    assert_eq!(
        ack(send(l, Command::AdvanceId { ring_id, seq: 5 })),
        Status::OK
    );
    let m = sim.metadata();
    assert_eq!(
        (m.read_seq, m.generation, m.ring_id),
        (5, generation + 1, Some(ring_id))
    );
    // Idempotent under custody.
    assert_eq!(ack(send(l, Command::Advance { seq: 2 })), Status::OK);
    assert_eq!(sim.metadata().read_seq, 5);
    // A READ while one runs is busy; STOP ends it.
    send(
        l,
        Command::Read {
            start_seq: 5,
            count: None,
        },
    );
    assert_eq!(
        ack(send(
            l,
            Command::Read {
                start_seq: 5,
                count: None
            }
        )),
        Status::NOT_READY
    );
    l.write_control(&Command::Stop.encode()).unwrap();
    loop {
        if let Notification::Ack { status, .. } = Notification::decode(&next(l)).unwrap() {
            assert_eq!(status, Status::OK);
            break;
        }
    }
    // CLEAR: new ring id, sequence numbers restart.
    assert_eq!(ack(send(l, Command::Clear)), Status::OK);
    let m = sim.metadata();
    assert_eq!((m.read_seq, m.write_seq), (0, 0));
    assert_ne!(m.ring_id, Some(ring_id));
}

#[test]
fn status_and_time() {
    let mut sim = SimPendant::from_image(image(Variant::C, 10), "").unwrap();
    let mut link = open(&mut sim);
    let s = StorageStatus::decode(&link.read_status().unwrap()).unwrap();
    assert_eq!(s.unread_packets, 10);
    assert_eq!(s.used_bytes, 4440);
    assert_eq!(s.free_bytes, 278 * 444);
    assert!(!s.clock_valid);
    link.write_time(encode_time(1_717_300_000)).unwrap();
    let s = StorageStatus::decode(&link.read_status().unwrap()).unwrap();
    assert!(s.clock_valid);
}

#[test]
fn commands_from_a_dropped_connection_are_discarded() {
    let mut sim = SimPendant::from_image(image(Variant::C, 40), "").unwrap();
    let mut old = open(&mut sim);
    let _new = open(&mut sim);
    let e = old
        .write_control(&Command::Advance { seq: 10 }.encode())
        .unwrap_err();
    assert!(e.is_disconnect());
    assert_eq!(sim.metadata().read_seq, 0);
    assert_eq!(sim.stats().discarded_commands, 1);
    assert!(
        old.recv_notification(Duration::ZERO)
            .unwrap_err()
            .is_disconnect()
    );
}

/// Reads a whole READ's DATA; returns the bytes and DONE.
fn read_all(link: &mut dyn GattLink, start_seq: u64, count: u32) -> (Vec<u8>, Vec<u8>) {
    let begin = send(
        link,
        Command::Read {
            start_seq,
            count: Some(count),
        },
    );
    assert!(matches!(
        Notification::decode(&begin),
        Ok(Notification::ReadBegin { .. })
    ));
    let mut stream = Vec::new();
    loop {
        let n = next(link);
        match Notification::decode(&n).unwrap() {
            Notification::Data(d) => stream.extend_from_slice(d),
            Notification::Done { .. } => return (stream, n),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn fixture_stream(range: std::ops::Range<u64>) -> Vec<u8> {
    range
        .flat_map(|seq| fixture_record(0, seq, FixtureClock::Wall))
        .collect()
}

#[test]
fn below_mtu_44_info_is_refused_with_status_9_after_about_5_s() {
    for spec in ["no-mtu-exchange", ""] {
        let mut sim = SimPendant::from_image(image(Variant::C, 10), spec).unwrap();
        let mut link = sim.connect(&Cancel::new()).unwrap();
        assert_eq!(link.mtu(), 23, "before any exchange");
        if spec == "no-mtu-exchange" {
            assert_eq!(link.request_mtu(517).unwrap(), 23, "{spec}: refused");
        }
        link.write_control(&Command::Info.encode()).unwrap();
        let t = std::time::Instant::now();
        // Nothing within 4.9 s of (simulated) waiting...
        for _ in 0..49 {
            assert_eq!(
                link.recv_notification(Duration::from_millis(100)).unwrap(),
                None
            );
        }
        // ...then ACK 9, in the fifth second.
        let n = link
            .recv_notification(Duration::from_millis(100))
            .unwrap()
            .unwrap();
        assert_eq!(
            Notification::decode(&n).unwrap(),
            Notification::Ack {
                status: Status::NOT_READY,
                granted: None
            }
        );
        assert!(
            t.elapsed() < Duration::from_secs(1),
            "the wait is simulated"
        );
    }
    // After the exchange INFO comes at once.
    let mut sim = SimPendant::from_image(image(Variant::C, 10), "mtu=44").unwrap();
    let mut link = open(&mut sim);
    assert_eq!(link.mtu(), 44);
    assert_eq!(send(link.as_mut(), Command::Info).len(), 41);
}

#[test]
fn done_carries_the_crc_of_the_transfer_with_done_crc() {
    let mut sim = SimPendant::from_image(image(Variant::C, 40), "done-crc,mtu=100").unwrap();
    let mut link = open(&mut sim);
    let (stream, done) = read_all(link.as_mut(), 2, 30);
    assert_eq!(done.len(), 14);
    assert_eq!(stream, fixture_stream(2..32));
    assert_eq!(
        Notification::decode(&done).unwrap(),
        Notification::Done {
            status: Status::OK,
            next_seq: 32,
            crc: Some(crc32fast::hash(&stream)),
        }
    );
    // A byte flipped on the way out: the CRC still covers what is stored.
    let mut sim =
        SimPendant::from_image(image(Variant::C, 40), "done-crc,corrupt-at=1000").unwrap();
    let mut link = open(&mut sim);
    let (stream, done) = read_all(link.as_mut(), 0, 10);
    let want = fixture_stream(0..10);
    assert_eq!(stream[1000], want[1000] ^ 0xFF);
    assert_eq!(stream[..1000], want[..1000]);
    let Notification::Done { crc: Some(crc), .. } = Notification::decode(&done).unwrap() else {
        panic!("no CRC");
    };
    assert_eq!(crc, crc32fast::hash(&want));
    assert_ne!(crc, crc32fast::hash(&stream));
    // Once: a second read is clean.
    let (again, _) = read_all(link.as_mut(), 0, 10);
    assert_eq!(again, want);
}

#[test]
fn stop_is_answered_with_an_ack_and_no_done() {
    let mut sim = SimPendant::from_image(image(Variant::C, 40), "mtu=64").unwrap();
    let mut link = open(&mut sim);
    let l = link.as_mut();
    send(
        l,
        Command::Read {
            start_seq: 0,
            count: None,
        },
    );
    for _ in 0..3 {
        assert!(matches!(
            Notification::decode(&next(l)),
            Ok(Notification::Data(_))
        ));
    }
    assert_eq!(
        send(l, Command::Stop),
        Notification::Ack {
            status: Status::OK,
            granted: None
        }
        .encode()
    );
    for _ in 0..10 {
        assert_eq!(
            l.recv_notification(Duration::from_millis(100)).unwrap(),
            None
        );
    }
}

#[test]
fn clock_zero_serves_timestamp_0_and_reports_the_clock_not_set() {
    let mut sim = SimPendant::from_image(image(Variant::C, 20), "clock-zero=5..8").unwrap();
    let mut link = open(&mut sim);
    link.write_time(encode_time(1_717_300_000)).unwrap();
    let s = StorageStatus::decode(&link.read_status().unwrap()).unwrap();
    assert!(!s.clock_valid);
    let (stream, _) = read_all(link.as_mut(), 0, 20);
    for (seq, rec) in stream.chunks(RECORD_BYTES).enumerate() {
        let want = fixture_record(0, seq as u64, FixtureClock::Wall);
        if (5..8).contains(&seq) {
            assert_eq!(rec[..4], [0, 0, 0, 0], "record {seq}");
            assert_eq!(rec[4..], want[4..]);
        } else {
            assert_eq!(rec, &want[..], "record {seq}");
        }
    }
}

#[test]
fn the_pendant_records_every_command_it_received_per_connection() {
    use omi_sync::device::sim::{HostOp, Received};
    let mut sim = SimPendant::from_image(image(Variant::C, 40), "").unwrap();
    let mut link = open(&mut sim);
    link.read_status().unwrap();
    send(link.as_mut(), Command::Info);
    let mut second = open(&mut sim);
    link.write_control(&Command::Advance { seq: 3 }.encode())
        .unwrap_err();
    second.write_time(encode_time(1_717_300_000)).unwrap();
    second.write_control(&[0x42, 1]).unwrap();
    let got = sim.commands();
    let op = |connection, op, discarded| Received {
        connection,
        op,
        discarded,
    };
    assert_eq!(
        got,
        vec![
            op(
                1,
                HostOp::MtuExchange {
                    asked: 517,
                    agreed: 247
                },
                false
            ),
            op(1, HostOp::StatusRead, false),
            op(1, HostOp::Command(Command::Info), false),
            op(
                2,
                HostOp::MtuExchange {
                    asked: 517,
                    agreed: 247
                },
                false
            ),
            op(1, HostOp::Command(Command::Advance { seq: 3 }), true),
            op(
                2,
                HostOp::TimeWrite {
                    unix_secs: 1_717_300_000
                },
                false
            ),
            op(
                2,
                HostOp::Garbled {
                    bytes: vec![0x42, 1]
                },
                false
            ),
        ]
    );
    let changes: Vec<bool> = got.iter().map(|r| r.op.changes_pendant()).collect();
    assert_eq!(changes, [false, false, false, false, true, true, true]);
    assert!(HostOp::Command(Command::Clear).changes_pendant());
    assert!(!HostOp::Command(Command::Stop).changes_pendant());
}

#[test]
fn a_byte_rate_paces_the_data_in_real_time() {
    // 40 records = 17 760 bytes at 20 000 bytes/s: at least ~0.85 s.
    let mut sim = SimPendant::from_image(image(Variant::C, 40), "rate=20000").unwrap();
    let mut link = open(&mut sim);
    let t = std::time::Instant::now();
    let (stream, _) = read_all(link.as_mut(), 0, 40);
    assert_eq!(stream.len(), 40 * RECORD_BYTES);
    let took = t.elapsed();
    // Every notification but the last waits for the air time of the ones before.
    let floor = Duration::from_secs_f64((stream.len() - 243) as f64 / 20_000.0);
    assert!(took >= floor, "{took:?} < {floor:?}");
    // A wait shorter than a notification's air time comes back empty.
    let mut sim = SimPendant::from_image(image(Variant::C, 40), "rate=1000").unwrap();
    let mut link = open(&mut sim);
    send(
        link.as_mut(),
        Command::Read {
            start_seq: 0,
            count: None,
        },
    );
    assert!(
        link.recv_notification(Duration::from_millis(50))
            .unwrap()
            .is_some()
    );
    assert_eq!(
        link.recv_notification(Duration::from_millis(20)).unwrap(),
        None
    );
}
