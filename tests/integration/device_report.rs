//! A pendant's last report: a pull from the simulated pendant keeps what it
//! said about itself (INFO, the status characteristic, the newest record)
//! in the ledger with the simulator's numbers, and `diagnose` of the data
//! directory reports it with its age.

use crate::common;

use common::{Sandbox, speech_image};
use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::sim::SimPendant;
use omi_sync::store::device_reports::NoSkew;
use omi_sync::store::{LedgerReader, Skew};

#[test]
fn a_sim_pull_keeps_the_pendants_numbers_and_diagnose_reports_them() {
    let sb = Sandbox::new();
    let (image, records) = speech_image();
    let n = (records.len() / RECORD_BYTES) as u64;
    let path = sb.inputs().join("ring.img");
    std::fs::write(&path, image).unwrap();
    let before = SimPendant::open(&path, "").unwrap().metadata();
    let run = sb.run(&["pull", "--sim", path.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    let ledger = LedgerReader::open(&sb.data()).unwrap();
    let device = format!("sim:{}", path.display());
    let r = ledger.device_report(&device).unwrap().expect("a report");
    assert_eq!((r.info.read_seq, r.info.write_seq), (before.read_seq, n));
    assert_eq!(r.info.dropped, before.dropped);
    assert_eq!(r.info.ring_id(), before.ring_id);
    // speech_image makes n / 36 + 8 slots of 36 records.
    let capacity = (n / 36 + 8) * 36;
    assert_eq!(u64::from(r.info.capacity), capacity);
    let st = r.status.expect("the status characteristic");
    assert_eq!(u64::from(st.unread_packets), n);
    assert_eq!(u64::from(st.used_bytes), n * RECORD_BYTES as u64);
    assert_eq!(
        u64::from(st.free_bytes),
        (capacity - n) * RECORD_BYTES as u64
    );
    assert!(st.clock_valid && r.clock_written);
    assert_eq!(r.unread_after, Some(0), "everything pulled was freed");
    let newest = r.newest.expect("the newest record");
    assert_eq!(newest.seq, n - 1);
    let last = &records[records.len() - RECORD_BYTES..];
    let stamp = u32::from_be_bytes([last[0], last[1], last[2], last[3]]);
    assert_eq!(
        newest.wall_start.map(|t| t.as_secs()),
        Some(i64::from(stamp))
    );
    // The image was recorded in 2025, long before this connect.
    assert!(
        matches!(r.skew(), Skew::Unknown(NoSkew::StoppedBefore { .. })),
        "{:?}",
        r.skew()
    );

    let run = sb.run_within(&["diagnose", "--json"], std::time::Duration::from_secs(120));
    assert_ne!(run.code, 7, "{}", run.stderr);
    let v = run.json();
    let card = v["sections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "card")
        .expect("a pendant section from the ledger");
    let check = |name: &str| {
        card["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["check"] == name)
            .unwrap_or_else(|| panic!("{name} in {card:#}"))
            .clone()
    };
    let fill = check("card.fill");
    assert_eq!(fill["severity"], "ok");
    assert!(
        fill["what"]
            .as_str()
            .unwrap()
            .contains(&format!("0 of {capacity} records")),
        "{fill:#}"
    );
    let place = fill["where"].as_str().unwrap();
    assert!(place.contains("last pull just now"), "{place}");
    assert!(!place.contains(path.to_str().unwrap()), "redacted: {place}");
    assert_eq!(check("card.dropped")["severity"], "ok");
    assert!(
        check("card.clock")["what"]
            .as_str()
            .unwrap()
            .contains("wrote this machine's time")
    );
    let skew = check("card.clock_skew");
    assert!(
        skew["what"]
            .as_str()
            .unwrap()
            .contains("not recording up to it"),
        "{skew:#}"
    );
}
