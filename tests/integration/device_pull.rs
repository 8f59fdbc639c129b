//! `omi-sync pull`, `device status`, `devices` and `--auto` with pendant
//! sources, end to end through the real binary: the simulated pendant
//! serving an image file over the real byte protocol, the ledger, VAD and
//! the timeline.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{Sandbox, ring_records, speech_image};
use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::sim::SimPendant;
use omi_sync::store::LedgerReader;

/// Writes the speech image into the sandbox; returns its path and records.
fn speech_ring(sb: &Sandbox) -> (PathBuf, Vec<u8>) {
    let (image, records) = speech_image();
    let path = sb.inputs().join("ring.img");
    std::fs::write(&path, image).unwrap();
    (path, records)
}

fn device_key(image: &Path) -> String {
    format!("sim:{}", image.display())
}

/// The image's ring metadata as the pendant would report it now.
fn read_seq(image: &Path) -> (u64, u64) {
    let m = SimPendant::open(image, "").unwrap().metadata();
    (m.read_seq, m.write_seq)
}

/// Asserts the ledger holds every record of the ring exactly once, in one
/// stream, byte for byte.
fn assert_every_record_once(data: &Path, device: &str, records: &[u8]) {
    let ledger = LedgerReader::open(data).unwrap();
    let got = ring_records(&ledger, device);
    let want = records.len() / RECORD_BYTES;
    assert_eq!(got.len(), want, "records held");
    for (i, (stream, seq, rec)) in got.iter().enumerate() {
        assert_eq!(*stream, got[0].0, "one stream");
        assert_eq!(*seq, i as u64, "seq order, no duplicates, no holes");
        assert_eq!(&rec[..], &records[i * RECORD_BYTES..(i + 1) * RECORD_BYTES]);
    }
}

#[test]
fn a_pull_lands_in_the_ledger_and_the_timeline_and_a_second_finds_nothing_new() {
    let sb = Sandbox::new();
    let (img, records) = speech_ring(&sb);
    let n = (records.len() / RECORD_BYTES) as u64;
    let img_s = img.to_str().unwrap();
    let run = sb.run(&["pull", "--sim", img_s, "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["stored"]["new_records"], n);
    assert_eq!(v["link"]["custody"], true);
    assert_eq!(v["link"]["advanced_to"], n, "{v:#}");
    assert!(v["vad"]["segments"].as_u64().unwrap() >= 10, "{v:#}");
    assert_eq!(
        read_seq(&img),
        (n, n),
        "the pendant freed what the ledger holds"
    );
    assert_every_record_once(&sb.data(), &device_key(&img), &records);

    let t = sb.run(&["timeline", "--json"]).json();
    let convs = t["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2, "two sessions an hour apart: {t:#}");
    assert!(convs.iter().all(|c| c["clock"] == "wall"));
    assert!(
        convs[0]["started_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-02T09:00"),
        "{t:#}"
    );
    let segs = sb.run(&["segments", "--json"]).json();
    assert!(
        segs["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["device"] == device_key(&img).as_str())
    );

    let again = sb.run(&["pull", "--sim", img_s, "--json"]);
    assert_eq!(again.code, 9, "nothing new: {}", again.stderr);
    assert_eq!(again.json()["stored"]["new_records"], 0);
    assert_every_record_once(&sb.data(), &device_key(&img), &records);
}

#[test]
fn keep_on_device_leaves_the_image_byte_identical() {
    let sb = Sandbox::new();
    let (img, records) = speech_ring(&sb);
    let before = std::fs::read(&img).unwrap();
    let img_s = img.to_str().unwrap();
    let run = sb.run(&[
        "pull",
        "--sim",
        img_s,
        "--keep-on-device",
        "--sim-faults",
        "drop-every=50000,drop-on-advance",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["link"]["advanced_to"], serde_json::Value::Null);
    assert!(v["link"]["drops"].as_u64().unwrap() > 3, "{v:#}");
    assert_eq!(std::fs::read(&img).unwrap(), before, "not one byte changed");
    assert_every_record_once(&sb.data(), &device_key(&img), &records);
    // The records are still there, and the ledger already holds them.
    let again = sb.run(&["pull", "--sim", img_s, "--keep-on-device", "--json"]);
    assert_eq!(again.code, 9, "{}", again.stderr);
    assert_eq!(std::fs::read(&img).unwrap(), before);
}

#[test]
fn a_killed_pull_resumes_with_nothing_lost_and_nothing_twice() {
    let sb = Sandbox::new();
    let (img, records) = speech_ring(&sb);
    let n = (records.len() / RECORD_BYTES) as u64;
    let device = device_key(&img);
    let mut child = sb
        .cmd()
        .args(["pull", "--sim", img.to_str().unwrap(), "--json"])
        .args(["--sim-faults", "delay-ms=2"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait until some batches are durable, then kill -9.
    let started = Instant::now();
    let durable_at_kill = loop {
        let durable = LedgerReader::open(&sb.data())
            .ok()
            .and_then(|l| l.ring_resume_point(&device).ok().flatten())
            .map_or(0, |r| r.durable_seq);
        if durable >= 400 {
            child.kill().unwrap();
            child.wait().unwrap();
            break durable;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        assert!(child.try_wait().unwrap().is_none(), "the pull ended early");
        std::thread::sleep(Duration::from_millis(20));
    };
    let ledger = LedgerReader::open(&sb.data()).unwrap();
    let durable = ledger
        .ring_resume_point(&device)
        .unwrap()
        .unwrap()
        .durable_seq;
    assert!(
        durable >= durable_at_kill && durable < n,
        "killed mid-pull: {durable} of {n}"
    );
    assert_eq!(ring_records(&ledger, &device).len() as u64, durable);
    drop(ledger);
    assert_eq!(
        read_seq(&img).0,
        0,
        "nothing freed before the end of the stream"
    );

    let run = sb.run(&["pull", "--sim", img.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["stored"]["new_records"], n - durable, "{v:#}");
    assert_eq!(
        v["link"]["seq_range"][0], durable,
        "resumed where the ledger ended"
    );
    assert_every_record_once(&sb.data(), &device, &records);
    assert_eq!(read_seq(&img), (n, n));
    let t = sb.run(&["timeline", "--json"]).json();
    assert_eq!(t["conversations"].as_array().unwrap().len(), 2, "{t:#}");
}

#[test]
fn clock_not_set_records_are_placed_before_the_audio_that_follows_them() {
    // Bit 31 set, and timestamp 0 (the CRC firmware line's "clock not set").
    for faults in ["clock-not-set=0..400", "clock-zero=0..400"] {
        clock_not_set_is_estimated(faults);
    }
}

fn clock_not_set_is_estimated(faults: &str) {
    let sb = Sandbox::new();
    let (img, records) = speech_ring(&sb);
    let n = (records.len() / RECORD_BYTES) as u64;
    // The first 60 s of session A were recorded before the clock was set.
    let run = sb.run(&[
        "pull",
        "--sim",
        img.to_str().unwrap(),
        "--sim-faults",
        &format!("{faults},drop-at=90000"),
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.json()["stored"]["new_records"], n);
    let segs = sb.run(&["segments", "--json"]).json();
    let segs = segs["segments"].as_array().unwrap();
    let estimated: Vec<_> = segs.iter().filter(|s| s["clock"] != "wall").collect();
    let wall: Vec<_> = segs.iter().filter(|s| s["clock"] == "wall").collect();
    assert!(
        !estimated.is_empty() && !wall.is_empty(),
        "{faults}: {segs:#?}"
    );
    // Estimated from the neighbours: right before the first wall-clock
    // audio of session A, not at the time of the pull.
    let last_estimated = estimated
        .iter()
        .map(|s| s["end"].as_str().unwrap())
        .max()
        .unwrap();
    let first_wall = wall
        .iter()
        .map(|s| s["start"].as_str().unwrap())
        .min()
        .unwrap();
    assert!(
        last_estimated <= first_wall,
        "{faults}: {last_estimated} {first_wall}"
    );
    assert!(
        last_estimated.starts_with("2025-06-02T09:0"),
        "{faults}: {last_estimated}"
    );
    let t = sb.run(&["timeline", "--json"]).json();
    let clocks: Vec<_> = t["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["clock"].as_str().unwrap().to_string())
        .collect();
    assert!(
        clocks.iter().any(|c| c == "estimated"),
        "{faults}: {clocks:?}"
    );
}

#[test]
fn a_ring_cleared_between_sessions_is_pulled_as_a_new_ring() {
    let sb = Sandbox::new();
    let (img, records) = speech_ring(&sb);
    let n = (records.len() / RECORD_BYTES) as u64;
    // The link drops after ~300 records; before the reconnect the pendant
    // clears its ring (a new ring id) and records 50 new records.
    let run = sb.run(&[
        "pull",
        "--sim",
        img.to_str().unwrap(),
        "--sim-faults",
        "drop-at=133200,cleared-between-sessions=50",
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["link"]["ring_replaced"], true, "{v:#}");
    let first = v["stored"]["new_records"].as_u64().unwrap() - 50;
    assert!(first >= 288 && first < n, "{v:#}");
    assert!(
        v["notes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("cleared")),
        "{v:#}"
    );
    let ledger = LedgerReader::open(&sb.data()).unwrap();
    let device = device_key(&img);
    let held = ring_records(&ledger, &device);
    let streams: Vec<i64> = ledger.ring_streams(&device).unwrap();
    assert_eq!(streams.len(), 2, "one stream per ring");
    let old: Vec<_> = held.iter().filter(|r| r.0 == streams[0]).collect();
    let new: Vec<_> = held.iter().filter(|r| r.0 == streams[1]).collect();
    assert_eq!(old.len() as u64, first);
    for (i, r) in old.iter().enumerate() {
        assert_eq!(&r.2[..], &records[i * RECORD_BYTES..(i + 1) * RECORD_BYTES]);
    }
    assert_eq!(new.len(), 50);
    assert_eq!(
        new.iter().map(|r| r.1).collect::<Vec<_>>(),
        (0..50).collect::<Vec<u64>>(),
        "the new ring's seqs start over"
    );
}

#[test]
fn device_status_reports_fill_unread_dropped_and_clock_without_changing_anything() {
    let sb = Sandbox::new();
    let (img, records) = speech_ring(&sb);
    let n = (records.len() / RECORD_BYTES) as u64;
    let before = std::fs::read(&img).unwrap();
    let run = sb.run(&["device", "status", "--sim", img.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    assert_eq!(v["unread_records"], n);
    assert_eq!(v["dropped_records"], 0);
    assert!(v["fill_percent"].as_f64().unwrap() > 0.0);
    assert!(v["ring_id"].is_string());
    assert!(v["clock_valid"].is_boolean(), "{v:#}");
    assert_eq!(std::fs::read(&img).unwrap(), before);
    let text = sb.run(&["device", "status", "--sim", img.to_str().unwrap()]);
    assert!(
        text.stdout.contains("unread") && text.stdout.contains("clock"),
        "{}",
        text.stdout
    );
}

#[test]
fn auto_pulls_from_a_simulated_pendant_and_a_card_image() {
    let sb = Sandbox::new();
    let (img, records) = speech_ring(&sb);
    let n = (records.len() / RECORD_BYTES) as u64;
    let card = sb.inputs().join("card.img");
    std::fs::copy(&img, &card).unwrap();
    let run = sb.run(&[
        "--auto",
        "--source",
        &format!("sim:{}", img.display()),
        "--json",
    ]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let done = run
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "job_finished")
        .expect("a job_finished event");
    assert_eq!(done["report"]["pulled"]["kind"], "pendant");
    assert_eq!(done["report"]["pulled"]["stored"]["new_records"], n);
    assert_eq!(done["report"]["conversations"], 2);
    assert_eq!(read_seq(&img).0, n);

    // A card image, read into another ledger: only ever read.
    let other = Sandbox::new();
    let before = std::fs::read(&card).unwrap();
    let source = format!("image:{}", card.display());
    let run = other.run(&["--auto", "--source", &source]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        std::fs::read(&card).unwrap(),
        before,
        "a card is never written"
    );
    let t = other.run(&["timeline", "--json"]).json();
    assert_eq!(t["conversations"].as_array().unwrap().len(), 2, "{t:#}");
    let again = other.run(&["--auto", "--source", &source]);
    assert_eq!(again.code, 9, "{}", again.stderr);
}

#[test]
fn without_bluetooth_the_commands_say_what_to_do_and_do_not_panic() {
    let sb = Sandbox::new();
    for args in [
        &["devices", "--scan", "1"][..],
        &["pull", "--device", "AA:BB:CC:DD:EE:FF", "--scan", "1"][..],
        &[
            "device",
            "status",
            "--device",
            "AA:BB:CC:DD:EE:FF",
            "--scan",
            "1",
        ][..],
        &["--auto", "--source", "device:AA:BB:CC:DD:EE:FF"][..],
    ] {
        let run = sb.run(args);
        if run.code == 0 {
            // A host with a working adapter: nothing to assert about errors.
            continue;
        }
        assert!(!run.stderr.contains("panicked"), "{args:?}: {}", run.stderr);
        assert!(
            [5, 7, 9].contains(&run.code),
            "{args:?} exit {}: {}",
            run.code,
            run.stderr
        );
        let err = run.stderr.to_lowercase();
        assert!(err.contains("bluetooth"), "{args:?}: {}", run.stderr);
        assert!(
            err.contains("sudo") || err.contains("bluetoothctl") || err.contains("wake it"),
            "says what to do: {}",
            run.stderr
        );
    }
}

#[test]
fn a_bad_fault_spec_and_flags_for_another_source_are_usage_errors() {
    let sb = Sandbox::new();
    let (img, _) = speech_ring(&sb);
    let run = sb.run(&[
        "pull",
        "--sim",
        img.to_str().unwrap(),
        "--sim-faults",
        "mtu=lots",
    ]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("mtu=lots"), "{}", run.stderr);
    for args in [
        &["pull", "--device", "a", "--sim-faults", "mtu=23"][..],
        &["pull", "--device", "a", "--forensic"][..],
        &[
            "device",
            "status",
            "--device",
            "a",
            "--sim-faults",
            "mtu=23",
        ][..],
    ] {
        let run = sb.run(args);
        assert_eq!(run.code, 2, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("--sim") || run.stderr.contains("--image"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_fifo_or_a_directory_as_the_image_is_refused_at_once() {
    let sb = Sandbox::new();
    let fifo = sb.inputs().join("fifo.img");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let dir = sb.inputs().join("card");
    std::fs::create_dir(&dir).unwrap();
    for (path, kind) in [(&fifo, "a FIFO"), (&dir, "a directory")] {
        let p = path.to_str().unwrap();
        let source = format!("image:{p}");
        for args in [
            &["pull", "--image", p][..],
            &["pull", "--image", p, "--json"][..],
            &["pull", "--sim", p][..],
            &["--auto", "--source", &source][..],
        ] {
            let run = sb.run_within(args, Duration::from_secs(20));
            assert_eq!(run.code, 2, "{args:?}: {}{}", run.stdout, run.stderr);
            let all = format!("{}{}", run.stdout, run.stderr);
            assert!(
                all.contains(&format!("{p} is {kind}")) && all.contains("block device"),
                "{args:?}: {all}"
            );
        }
    }
    // The library refuses it without opening it (which would block).
    let (tx, rx) = std::sync::mpsc::channel();
    let f = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(omi_sync::device::usb::ImageReader::open_path(&f).err());
    });
    let err = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("open_path returned")
        .expect("an error");
    assert!(err.is_usage(), "{err}");
    // A regular image file and its symlink are still fine.
    let (img, _) = speech_ring(&sb);
    let link = sb.inputs().join("link.img");
    std::os::unix::fs::symlink(&img, &link).unwrap();
    assert!(omi_sync::device::usb::ImageReader::open_path(&link).is_ok());
}
