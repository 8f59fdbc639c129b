//! The simulated pendant speaks the documented byte protocol.

use std::time::Duration;

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

fn next(link: &mut dyn GattLink) -> Vec<u8> {
    link.recv_notification(Duration::from_millis(10))
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
        let mut link = sim.connect().unwrap();
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
    let mut link = sim.connect().unwrap();
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
            Notification::Done { status, next_seq } => {
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
    let mut link = sim.connect().unwrap();
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
    let mut link = sim.connect().unwrap();
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
    let mut old = sim.connect().unwrap();
    let _new = sim.connect().unwrap();
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
