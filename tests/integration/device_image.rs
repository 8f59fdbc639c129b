//! Reading a storage-ring image: every metadata variant, wrap-around, torn
//! batches, salvage, foreign laps, wrong sizes, garbage.

use std::io::{Cursor, Write};

use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::usb::fixture::{FixtureBuilder, FixtureClock, fixture_record};
use omi_sync::device::usb::layout::{META_SECTORS, Metadata, SECTOR, Variant, image_bytes};
use omi_sync::device::usb::reader::{
    AnomalyKind, ForensicReason, ImageError, ImageReader, MissingReason, Part, Recovery,
};

fn read(image: &[u8]) -> Recovery {
    ImageReader::open(Cursor::new(image.to_vec()))
        .unwrap()
        .read_all()
        .unwrap()
}

fn seqs(r: &[omi_sync::device::usb::reader::ImageRecord]) -> Vec<u64> {
    r.iter().map(|x| x.seq).collect()
}

fn check_content(r: &[omi_sync::device::usb::reader::ImageRecord], epoch: u64) {
    for rec in r {
        assert_eq!(
            rec.bytes,
            fixture_record(epoch, rec.seq, FixtureClock::Wall),
            "record {}",
            rec.seq
        );
    }
}

#[test]
fn every_variant_reads_back_what_was_written() {
    for v in [Variant::A, Variant::B, Variant::C] {
        let mut b = FixtureBuilder::host_test(v).unwrap();
        b.record(100, 20).unwrap();
        let r = read(&b.finish());
        assert_eq!(r.scan.metadata.variant, v);
        assert_eq!(r.scan.slots, 8);
        assert_eq!(r.scan.slots_from_size, 8);
        assert_eq!(seqs(&r.main), (0..100).collect::<Vec<_>>());
        check_content(&r.main, 0);
        assert!(r.salvage.is_empty());
        assert!(r.anomalies.is_empty(), "{v:?}: {:?}", r.anomalies);
        // 1 format + 5 commits.
        assert_eq!(r.scan.metadata.generation, 6);
        if v == Variant::C {
            assert!(r.scan.metadata.ring_id.is_some() && r.scan.metadata.data_id.is_some());
        }
        // The record sits where ring-layout.md says.
        let m = &r.main[37];
        assert_eq!(m.sector, ((64 + 32) * 512 + 32 + 444) / 512);
    }
}

#[test]
fn metadata_bytes_are_as_documented() {
    let b = FixtureBuilder::host_test(Variant::B).unwrap();
    let img = b.finish();
    // Generation 1 lives in journal sector 1.
    let s = &img[512..1024];
    assert_eq!(&s[0..4], &[0x52, 0x49, 0x4D, 0x4F]);
    assert_eq!(u16::from_le_bytes([s[4], s[5]]), 2);
    let mut z = s[..44].to_vec();
    z[40..44].fill(0);
    assert_eq!(
        crc32fast::hash(&z),
        u32::from_le_bytes([s[40], s[41], s[42], s[43]])
    );
    assert!(s[44..].iter().all(|&x| x == 0));
    assert_eq!(img.len() as u64, (64 + 8 * 32) * 512);
}

#[test]
fn wrap_around_moves_read_seq_and_counts_dropped() {
    for v in [Variant::A, Variant::B, Variant::C] {
        let mut b = FixtureBuilder::host_test(v).unwrap();
        b.record(500, 36).unwrap();
        let r = read(&b.finish());
        // Batch 13 reused the slot of batch 5: read_seq moved to 6*36.
        assert_eq!(
            (r.scan.metadata.read_seq, r.scan.metadata.write_seq),
            (216, 500)
        );
        assert_eq!(r.scan.metadata.dropped, 216);
        assert_eq!(seqs(&r.main), (216..500).collect::<Vec<_>>());
        check_content(&r.main, 0);
        assert!(
            r.anomalies
                .iter()
                .any(|a| a.kind == AnomalyKind::Dropped { count: 216 })
        );
    }
}

#[test]
fn a_torn_batch_is_reported_with_its_sector_and_left_out() {
    let mut b = FixtureBuilder::host_test(Variant::B).unwrap();
    b.record(100, 36).unwrap();
    b.tear_batch_of(40).unwrap();
    let image = b.finish();
    let reader = ImageReader::open(Cursor::new(image.clone())).unwrap();
    let forensic = reader.forensic();
    let r = reader.read_all().unwrap();
    let crc = r
        .anomalies
        .iter()
        .find(|a| matches!(a.kind, AnomalyKind::BatchCrcMismatch { .. }))
        .expect("CRC mismatch reported");
    assert_eq!(crc.sector, Some(64 + 32));
    assert!(
        crc.to_string()
            .starts_with("sector 96: torn batch in slot 1")
    );
    assert!(r.anomalies.iter().any(|a| a.kind
        == AnomalyKind::MissingRecords {
            seqs: 36..72,
            reason: MissingReason::Torn
        }));
    let want: Vec<u64> = (0..36).chain(72..100).collect();
    assert_eq!(seqs(&r.main), want);
    check_content(&r.main, 0);
    assert!(
        forensic
            .iter()
            .any(|f| f.reason == ForensicReason::Torn && f.seqs == (36..72))
    );
}

#[test]
fn a_broken_frame_chain_is_flagged_in_variants_without_crc() {
    let mut b = FixtureBuilder::host_test(Variant::C).unwrap();
    b.record(40, 40).unwrap();
    // Record 3's payload: a length byte that runs past the end.
    let off = omi_sync::device::usb::layout::record_offset(3, 8) + 4;
    let mut payload = [0u8; 440];
    payload[0] = 250;
    payload[251] = 250;
    b.writer().write_raw(off, &payload).unwrap();
    let r = read(&b.finish());
    assert_eq!(r.main.len(), 40);
    assert!(r.anomalies.iter().any(|a| matches!(
        a.kind,
        AnomalyKind::BrokenFrameChain {
            seq: 3,
            offset: 251
        }
    )));
}

#[test]
fn batches_written_after_the_newest_metadata_are_salvaged() {
    for v in [Variant::A, Variant::B, Variant::C] {
        let mut b = FixtureBuilder::host_test(v).unwrap();
        b.record(100, 36).unwrap();
        b.record_uncommitted(50).unwrap();
        let image = b.finish();
        let reader = ImageReader::open(Cursor::new(image)).unwrap();
        assert!(reader.forensic().is_empty(), "{:?}", reader.forensic());
        let r = reader.read_all().unwrap();
        assert_eq!(r.scan.metadata.write_seq, 100);
        assert_eq!(seqs(&r.main), (0..100).collect::<Vec<_>>());
        assert_eq!(seqs(&r.salvage), (100..150).collect::<Vec<_>>());
        check_content(&r.salvage, 0);
        assert!(
            r.anomalies
                .iter()
                .any(|a| a.kind == AnomalyKind::Salvaged { seqs: 100..150 }),
            "{v:?}: {:?}",
            r.anomalies
        );
    }
}

#[test]
fn foreign_and_older_laps_stay_out_of_the_main_range_and_show_in_forensics() {
    // Variant C: a CLEAR leaves the old ring's batches; data_id tells them apart.
    for v in [Variant::A, Variant::C] {
        let mut b = FixtureBuilder::host_test(v).unwrap();
        b.record(250, 36).unwrap();
        b.clear().unwrap();
        b.record(50, 25).unwrap();
        let reader = ImageReader::open(Cursor::new(b.finish())).unwrap();
        let forensic = reader.forensic();
        let mut reader = reader;
        let main: Vec<_> = reader
            .records(Part::Main)
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        assert_eq!(seqs(&main), (0..50).collect::<Vec<_>>(), "{v:?}");
        check_content(&main, 1);
        // Slots 2..6 hold the old ring's batches 72..250.
        let old: Vec<_> = forensic.iter().filter(|f| f.slot >= 2).collect();
        assert_eq!(old.len(), 5, "{v:?}: {forensic:?}");
        let want = if v == Variant::C {
            ForensicReason::ForeignRing
        } else {
            ForensicReason::OlderLap
        };
        assert!(old.iter().all(|f| f.reason == want), "{v:?}: {old:?}");
        // Ordered by generation.
        assert!(
            forensic
                .windows(2)
                .all(|w| w[0].header.generation <= w[1].header.generation)
        );
        let recs = reader.forensic_records(old[0]).unwrap();
        assert_eq!(recs.len(), 36);
        check_content(&recs, 0);
    }
}

#[test]
fn freed_records_below_read_seq_are_recoverable_by_the_forensic_pass() {
    let mut b = FixtureBuilder::host_test(Variant::C).unwrap();
    b.record(200, 36).unwrap();
    b.advance(150).unwrap();
    let mut reader = ImageReader::open(Cursor::new(b.finish())).unwrap();
    let forensic = reader.forensic();
    let below: u64 = forensic
        .iter()
        .filter(|f| f.reason == ForensicReason::BelowReadSeq)
        .map(|f| f.seqs.end - f.seqs.start)
        .sum();
    assert_eq!(below, 150);
    let main: Vec<_> = reader
        .records(Part::Main)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(seqs(&main), (150..200).collect::<Vec<_>>());
    let f = forensic.iter().find(|f| f.seqs.contains(&149)).unwrap();
    let recs = reader.forensic_records(f).unwrap();
    check_content(&recs, 0);
}

#[test]
fn a_newer_lap_in_a_slot_is_a_gap_with_its_reason() {
    let mut b = FixtureBuilder::host_test(Variant::A).unwrap();
    b.record(250, 36).unwrap();
    // Slot 3 (batch 108..144) holds a batch from one lap later, written after the metadata.
    b.write_foreign_batch(3, 108 + 288, 99, 0, 36).unwrap();
    let r = read(&b.finish());
    assert!(r.anomalies.iter().any(|a| a.kind
        == AnomalyKind::MissingRecords {
            seqs: 108..144,
            reason: MissingReason::OverwrittenByNewerLap { start_seq: 396 }
        }));
    assert_eq!(r.main.len(), 250 - 36);
}

#[test]
fn the_slot_count_is_searched_when_the_size_does_not_fit() {
    let mut b = FixtureBuilder::host_test(Variant::B).unwrap();
    b.record(400, 36).unwrap();
    let image = b.finish();
    // An image with 10 extra empty slots (a bigger card, or a longer dd).
    let mut bigger = image.clone();
    bigger.resize(image_bytes(18) as usize, 0);
    let r = read(&bigger);
    assert_eq!(r.scan.slots_from_size, 18);
    assert_eq!(r.scan.slots, 8);
    assert!(r.anomalies.iter().any(|a| matches!(
        a.kind,
        AnomalyKind::SlotCountSearched {
            from_size: 18,
            found: 8,
            ..
        }
    )));
    assert_eq!(seqs(&r.main), (144..400).collect::<Vec<_>>());
    check_content(&r.main, 0);

    // A truncated image: the last two slots are missing.
    let short = &image[..image_bytes(6) as usize];
    let r = read(short);
    assert_eq!(r.scan.slots, 8);
    assert!(r.anomalies.iter().any(|a| a.kind
        == AnomalyKind::TruncatedImage {
            slots: 8,
            present: 6
        }));
    assert!(r.anomalies.iter().any(|a| a.kind
        == AnomalyKind::MissingRecords {
            seqs: 216..288,
            reason: MissingReason::BeyondImage
        }));
    let want: Vec<u64> = (144..216).chain(288..400).collect();
    assert_eq!(seqs(&r.main), want);
}

#[test]
fn a_torn_metadata_record_is_skipped_for_the_previous_one() {
    let mut b = FixtureBuilder::host_test(Variant::C).unwrap();
    b.record(72, 36).unwrap();
    let m = *b.writer().metadata();
    // A newer record whose CRC is wrong (torn write), as in the firmware's test.
    let mut torn = Metadata {
        generation: m.generation + 1,
        write_seq: 200,
        ..m
    }
    .encode();
    torn[56] ^= 0xFF;
    b.writer()
        .write_raw((m.generation + 1) % 64 * 512, &torn)
        .unwrap();
    let r = read(&b.finish());
    assert_eq!(r.scan.metadata.generation, m.generation);
    assert_eq!(r.main.len(), 72);
    assert!(
        r.anomalies
            .iter()
            .any(|a| matches!(a.kind, AnomalyKind::MetadataRejected { .. }))
    );
}

#[test]
fn clock_not_set_records_are_reported_as_a_run() {
    let mut b = FixtureBuilder::host_test(Variant::C).unwrap();
    b.record_clock_not_set(50, 36).unwrap();
    b.record(30, 36).unwrap();
    let r = read(&b.finish());
    assert_eq!(r.main.len(), 80);
    let runs: Vec<_> = r
        .anomalies
        .iter()
        .filter_map(|a| match &a.kind {
            AnomalyKind::ClockNotSet { seqs } => Some(seqs.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(runs, vec![0..50]);
}

#[test]
fn garbage_and_tiny_images_give_clear_errors() {
    let e = ImageReader::open_path(std::path::Path::new("/nonexistent/card.img"))
        .err()
        .unwrap();
    assert!(e.to_string().starts_with("opening /nonexistent/card.img: "));

    let tiny = vec![0u8; 1000];
    let e = ImageReader::open(Cursor::new(tiny)).err().unwrap();
    assert!(matches!(e, ImageError::TooSmall { bytes: 1000 }));
    assert!(e.to_string().contains("too small"));

    let zeros = vec![0u8; image_bytes(8) as usize];
    let e = ImageReader::open(Cursor::new(zeros)).err().unwrap();
    assert_eq!(
        e.to_string(),
        "no valid ring metadata in sectors 0..63 (0 with the metadata magic, none valid)"
    );

    let mut x = 0x1234_5678_9ABC_DEF0u64;
    let noise: Vec<u8> = (0..image_bytes(20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    assert!(matches!(
        ImageReader::open(Cursor::new(noise)),
        Err(ImageError::NoValidMetadata { .. })
    ));

    // Only a metadata record whose range cannot fit.
    let mut b = FixtureBuilder::host_test(Variant::B).unwrap();
    b.record(10, 10).unwrap();
    let m = *b.writer().metadata();
    let bad = Metadata {
        generation: m.generation + 5,
        write_seq: 10_000,
        ..m
    };
    let mut img = b.finish();
    img[0..512].copy_from_slice(&bad.encode());
    let r = read(&img);
    assert_eq!(r.scan.metadata.generation, m.generation);
    assert!(r.anomalies.iter().any(
        |a| matches!(a.kind, AnomalyKind::MetadataInconsistent { .. }) && a.sector == Some(0)
    ));
}

#[test]
fn reads_from_a_file_batch_by_batch() {
    let mut b = FixtureBuilder::new(Variant::B, 64).unwrap();
    b.record(2_000, 100).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.img");
    std::fs::File::create(&path)
        .unwrap()
        .write_all(&b.finish())
        .unwrap();
    let f = std::fs::File::open(&path).unwrap();
    let mut reader = ImageReader::open(f).unwrap();
    let mut n = 0u64;
    for rec in reader.records(Part::Main) {
        let rec = rec.unwrap();
        assert_eq!(rec.seq, n);
        assert_eq!(rec.bytes.len(), RECORD_BYTES);
        n += 1;
    }
    assert_eq!(n, 2_000);
    assert!(reader.anomalies().is_empty());
}

#[test]
fn the_image_size_need_not_be_sector_aligned() {
    let mut b = FixtureBuilder::host_test(Variant::A).unwrap();
    b.record(10, 10).unwrap();
    let mut img = b.finish();
    img.extend_from_slice(&[0u8; 100]);
    let r = read(&img);
    assert_eq!(r.main.len(), 10);
    assert!(
        r.anomalies
            .iter()
            .any(|a| matches!(a.kind, AnomalyKind::UnalignedSize { .. }))
    );
    assert_eq!(META_SECTORS * SECTOR, 32_768);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// Corrupting metadata, headers or records never panics the reader.
    #[test]
    fn corrupted_images_never_panic(
        flips in proptest::collection::vec((0usize..(64 + 8 * 32) * 512, proptest::num::u8::ANY), 1..40),
        variant in 0u8..3,
        hot in proptest::bool::ANY,
    ) {
        let v = [Variant::A, Variant::B, Variant::C][variant as usize];
        let mut b = FixtureBuilder::host_test(v).unwrap();
        b.record(300, 36).unwrap();
        b.advance(120).unwrap();
        let mut img = b.finish();
        for (pos, byte) in flips {
            // Half the runs aim at metadata and batch headers.
            let pos = if hot {
                let slot = pos % 9;
                if slot == 8 { pos % (64 * 512) } else { (64 + 32 * slot) * 512 + pos % 32 }
            } else {
                pos
            };
            img[pos] = byte;
        }
        if let Ok(reader) = ImageReader::open(Cursor::new(img)) {
            let _ = reader.forensic();
            let r = reader.read_all().unwrap();
            for a in &r.anomalies {
                let _ = a.to_string();
            }
            proptest::prop_assert!(r.main.windows(2).all(|w| w[0].seq < w[1].seq));
        }
    }
}

#[test]
fn a_card_sized_image_is_scanned_without_loading_it() {
    // A 480 MiB sparse file whose ring holds a few batches: the reader reads
    // only the journal, 30 000 batch headers and the records it returns.
    let mut b = FixtureBuilder::host_test(Variant::C).unwrap();
    b.record(200, 36).unwrap();
    let small = b.finish();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.img");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&small).unwrap();
    f.set_len(480 * 1024 * 1024).unwrap();
    drop(f);
    let mut reader = ImageReader::open_path(&path).unwrap();
    assert_eq!(reader.scan().slots, (480 * 2048 - 64) / 32);
    let main: Vec<_> = reader
        .records(Part::Main)
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    assert_eq!(seqs(&main), (0..200).collect::<Vec<_>>());
    check_content(&main, 0);
}

#[test]
fn a_ring_upgraded_from_variant_a_to_c_keeps_its_old_batches() {
    // As in the firmware's v1 migration test: version-1 batches, then a
    // version-2 custody metadata record with new ids and a higher generation.
    let mut b = FixtureBuilder::host_test(Variant::A).unwrap();
    b.record(40, 36).unwrap();
    let m = *b.writer().metadata();
    let c = Metadata {
        variant: Variant::C,
        generation: m.generation + 1,
        ring_id: Some(0xABCD_EF01),
        data_id: Some(0x1234_5678),
        ..m
    };
    b.writer()
        .write_raw(c.generation % 64 * 512, &c.encode())
        .unwrap();
    let r = read(&b.finish());
    assert_eq!(r.scan.metadata.variant, Variant::C);
    assert_eq!(seqs(&r.main), (0..40).collect::<Vec<_>>());
    check_content(&r.main, 0);
    assert!(r.anomalies.is_empty(), "{:?}", r.anomalies);
}

/// A variant A ring of 1 000 records committed 10 at a time (generations
/// 2..=101), whose journal still holds generations 38..=101.
fn journal_ring() -> FixtureBuilder {
    let mut b = FixtureBuilder::new(Variant::A, 40).unwrap();
    b.record(1_000, 10).unwrap();
    assert_eq!(b.writer().metadata().generation, 101);
    b
}

#[test]
fn an_old_variant_a_record_with_a_corrupted_generation_does_not_hide_the_batches_after_it() {
    // Generation 60 committed records up to 590; a flipped high bit makes it
    // look like the newest record on the card.
    let mut b = journal_ring();
    b.corrupt_generation(60, 60 | 1 << 40).unwrap();
    let r = read(&b.finish());
    assert_eq!(r.scan.metadata.generation, 101, "the true newest record");
    assert_eq!(r.scan.metadata_sector, 101 % 64);
    assert_eq!(seqs(&r.main), (0..1_000).collect::<Vec<_>>());
    check_content(&r.main, 0);
    let stale: Vec<_> = r
        .anomalies
        .iter()
        .filter(|a| matches!(a.kind, AnomalyKind::MetadataStale(_)))
        .collect();
    assert_eq!(stale.len(), 1, "{:?}", r.anomalies);
    assert_eq!(stale[0].sector, Some(60));
    let text = stale[0].kind.to_string();
    assert!(
        text.contains(&format!(
            "metadata generation {} (write_seq 590)",
            60u64 | 1 << 40
        )) && text.contains("sector 37 (generation 101) commits records up to 1000")
            && text.contains("the 410 records committed after seq 590 are not left out"),
        "{text}"
    );
}

#[test]
fn a_corrupted_record_whose_batches_were_overwritten_by_later_laps_is_passed_over() {
    // 10 slots (360 records): by generation 101 (write_seq 1000) the ring
    // has wrapped, and the slot of generation 40's last record (seq 389,
    // slot 0) holds batch 720..756, written by generation 77.
    let mut b = FixtureBuilder::new(Variant::A, 10).unwrap();
    b.record(1_000, 10).unwrap();
    assert_eq!(b.writer().metadata().generation, 101);
    b.corrupt_generation(40, 40 | 1 << 33).unwrap();
    let r = read(&b.finish());
    assert_eq!(r.scan.metadata.generation, 101);
    assert_eq!(seqs(&r.main), (648..1_000).collect::<Vec<_>>());
    check_content(&r.main, 0);
    let stale: Vec<_> = r
        .anomalies
        .iter()
        .filter_map(|a| match a.kind {
            AnomalyKind::MetadataStale(s) => Some((a.sector, s)),
            _ => None,
        })
        .collect();
    assert_eq!(stale.len(), 1, "{:?}", r.anomalies);
    let (sector, s) = stale[0];
    assert_eq!(sector, Some(40));
    assert_eq!(
        (s.write_seq, s.batch_generation, s.by_write_seq),
        (390, 77, 1_000)
    );
}

#[test]
fn a_corrupted_generation_is_caught_through_the_engine_with_a_warning() {
    use omi_sync::engine::Ctx;
    use omi_sync::engine::image::pull_image;
    let mut b = journal_ring();
    b.corrupt_generation(80, u64::MAX).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("card.img");
    std::fs::write(&path, b.finish()).unwrap();
    let mut ledger = omi_sync::store::Ledger::open(&dir.path().join("data")).unwrap();
    let s = pull_image(&mut ledger, &path, "card", false, &Ctx::default()).unwrap();
    assert_eq!(s.stored.new_records, 1_000);
    assert_eq!(s.ring.generation, 101);
    assert!(!s.lost_audio(), "{:?}", s.anomalies);
    let w = s
        .anomalies
        .iter()
        .find(|a| a.message.contains("taken as corrupt"))
        .expect("a warning");
    assert_eq!(w.sector, Some(80 % 64));
    assert!(
        !w.message.contains("sector 16:"),
        "says where once: {}",
        w.message
    );
}

#[test]
fn a_clear_or_a_legitimately_newer_record_is_not_taken_for_a_corrupt_one() {
    for (after_clear, variant) in [
        (0u64, Variant::A),
        (50, Variant::A),
        (72, Variant::A),
        (50, Variant::C),
    ] {
        let mut b = FixtureBuilder::new(variant, 40).unwrap();
        b.record(300, 10).unwrap();
        b.clear().unwrap();
        if after_clear > 0 {
            b.record(after_clear, 10).unwrap();
        }
        let r = read(&b.finish());
        assert_eq!(
            seqs(&r.main),
            (0..after_clear).collect::<Vec<_>>(),
            "{variant:?} {after_clear}"
        );
        check_content(&r.main, 1);
        assert!(r.salvage.is_empty(), "{variant:?} {after_clear}");
        assert!(
            !r.anomalies
                .iter()
                .any(|a| matches!(a.kind, AnomalyKind::MetadataStale(_))),
            "{variant:?} {after_clear}: {:?}",
            r.anomalies
        );
    }
    // Corrupting a record's generation downward, or the newest one upward,
    // changes nothing either.
    for (of, to) in [(60, 3), (101, 1 << 50), (101, 40)] {
        let mut b = journal_ring();
        b.corrupt_generation(of, to).unwrap();
        let r = read(&b.finish());
        let all: Vec<u64> = seqs(&r.main).into_iter().chain(seqs(&r.salvage)).collect();
        assert_eq!(all, (0..1_000).collect::<Vec<_>>(), "{of} -> {to}");
    }
}
