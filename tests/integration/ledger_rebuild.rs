//! A lost ledger (truncated to 0 bytes, garbled, deleted) while captured
//! audio is in the data directory: every command refuses with exit 7 and
//! what to do, and `ledger rebuild` brings the captures back from their
//! bytes and cards (issue 11 §3.4).

use crate::common;

use common::{Sandbox, speech_image, write_demo};
use omi_sync::device::record::RECORD_BYTES;
use serde_json::Value;

fn segment_keys(sb: &Sandbox) -> Vec<String> {
    let run = sb.run(&["segments", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let mut keys: Vec<String> = run.json()["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap().to_string())
        .collect();
    keys.sort();
    keys
}

fn ledger_file(sb: &Sandbox) -> std::path::PathBuf {
    sb.data().join("ledger.sqlite3")
}

/// Imports the demo and pulls the speech ring: both kinds of capture.
fn backlog(sb: &Sandbox) -> u64 {
    let inputs = sb.inputs();
    write_demo(&inputs);
    assert_eq!(sb.run(&["import", inputs.to_str().unwrap()]).code, 0);
    let (image, records) = speech_image();
    let img = sb.dir.path().join("ring.img");
    std::fs::write(&img, image).unwrap();
    let pull = sb.run(&["pull", "--sim", img.to_str().unwrap()]);
    assert_eq!(pull.code, 0, "{}", pull.stderr);
    (records.len() / RECORD_BYTES) as u64
}

fn assert_refused(sb: &Sandbox, why: &str) {
    for args in [
        &["segments"][..],
        &["timeline", "--json"][..],
        &["--auto", "--dry-run", "--source", "demo"][..],
    ] {
        let run = sb.run(args);
        assert_eq!(run.code, 7, "{args:?}: {}{}", run.stdout, run.stderr);
        assert!(run.stderr.contains(why), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("captured audio files are in"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(
            run.stderr.contains("ledger rebuild"),
            "{args:?}: {}",
            run.stderr
        );
    }
}

#[test]
fn a_truncated_ledger_is_refused_and_rebuilt_from_the_captures() {
    let sb = Sandbox::new();
    let records = backlog(&sb);
    let before = segment_keys(&sb);
    assert!(!before.is_empty());
    // Healthy: nothing to rebuild, nothing touched.
    assert_eq!(sb.run(&["ledger", "rebuild"]).code, 9);
    std::fs::File::create(ledger_file(&sb)).unwrap();
    assert_refused(&sb, "is empty (0 bytes)");
    // Still refused, still 0 bytes: no command wrote a new ledger over it.
    assert_eq!(std::fs::metadata(ledger_file(&sb)).unwrap().len(), 0);
    let run = sb.run(&["ledger", "rebuild", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v: Value = run.json();
    assert_eq!(v["rebuilt"], true);
    assert_eq!(v["ledger"]["phone_files"], 5, "{v}");
    assert_eq!(v["ledger"]["ring_records"], records, "{v}");
    assert_eq!(
        v["ledger"]["kept_aside"].as_array().unwrap().len(),
        1,
        "{v}"
    );
    assert!(
        v["ledger"]["not_recovered"].as_array().unwrap().is_empty(),
        "{v}"
    );
    // The same speech, found again (segment keys derive from the audio).
    assert_eq!(segment_keys(&sb), before);
}

#[test]
fn a_garbled_or_deleted_ledger_is_refused_and_captures_without_cards_come_back_estimated() {
    let sb = Sandbox::new();
    backlog(&sb);
    let garbage: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(ledger_file(&sb), &garbage).unwrap();
    assert_refused(&sb, "is damaged");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(sb.data().join(format!("ledger.sqlite3{suffix}")));
    }
    assert_refused(&sb, "is missing");
    // Captures from before cards existed: phone-app bodies still come back.
    for shard in std::fs::read_dir(sb.data().join("captures"))
        .unwrap()
        .flatten()
    {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            if f.path().extension().is_some_and(|e| e == "json") {
                std::fs::remove_file(f.path()).unwrap();
            }
        }
    }
    let run = sb.run(&["ledger", "rebuild", "--json"]);
    // The ring captures cannot be told apart without their cards: reported, kept.
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let v = run.json();
    assert_eq!(
        v["ledger"]["without_card"].as_array().unwrap().len(),
        5,
        "{v}"
    );
    let lost = v["ledger"]["not_recovered"].to_string();
    assert!(lost.contains("no card says what it is"), "{lost}");
    let tl = sb.run(&["timeline", "--json"]);
    assert_eq!(tl.code, 0, "{}", tl.stderr);
    assert!(tl.stdout.contains("estimated"), "{}", tl.stdout);
    // And the capture files are all still there.
    let count = omi_sync::store::files::stored_hashes(&sb.data()).len();
    assert!(count > 5, "{count}");
}

#[test]
fn a_ledger_with_one_garbled_page_is_found_on_open_and_left_as_it_is() {
    let sb = Sandbox::new();
    backlog(&sb);
    let before = segment_keys(&sb);
    // Fold the WAL in, then overwrite the middle of one page deep in the
    // file: the header still says "SQLite", only SQLite's own check sees it.
    {
        let conn = rusqlite::Connection::open(ledger_file(&sb)).unwrap();
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
            .unwrap();
    }
    let mut bytes = std::fs::read(ledger_file(&sb)).unwrap();
    let page = 4096;
    let pages = bytes.len() / page;
    assert!(pages > 4, "{pages} pages");
    let at = (pages / 2) * page + 8;
    for (i, b) in bytes[at..at + 1500].iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(ledger_file(&sb), &bytes).unwrap();
    assert_refused(&sb, "is damaged (SQLite's integrity check:");
    assert_eq!(
        std::fs::read(ledger_file(&sb)).unwrap(),
        bytes,
        "no command wrote over the damaged ledger"
    );
    let run = sb.run(&["ledger", "rebuild", "--json"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        segment_keys(&sb),
        before,
        "every segment back from the captures"
    );
}

#[test]
fn a_capture_deleted_behind_the_ledgers_back_is_named_and_the_rest_goes_on() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    assert_eq!(sb.run(&["import", inputs.to_str().unwrap()]).code, 0);
    let segments = sb.run(&["segments", "--json"]).json();
    let gone = omi_sync::store::files::stored_hashes(&sb.data())
        .into_iter()
        .next()
        .unwrap();
    let path = sb.data().join(omi_sync::store::files::relative_path(&gone));
    std::fs::remove_file(&path).unwrap();

    let run = sb.run(&["vad", "--rerun"]);
    assert_eq!(run.code, 3, "needs attention: {}{}", run.stdout, run.stderr);
    assert!(
        run.stderr.contains(&path.display().to_string()) && run.stderr.contains("No such file"),
        "the missing file is named: {}",
        run.stderr
    );
    assert!(run.stdout.contains("Analysed 4 captures"), "{}", run.stdout);
    // The deleted capture's segments are kept as they were, and every other
    // capture's speech is found again (the capture after the deleted one
    // is analysed without its lead-in, so its edges may move a little).
    let after = sb.run(&["segments", "--json"]).json();
    let gone_id = omi_sync::store::LedgerReader::open(&sb.data())
        .unwrap()
        .captures()
        .unwrap()
        .into_iter()
        .find(|c| c.sha256 == gone)
        .unwrap()
        .id;
    let of = |v: &serde_json::Value, capture: i64| -> Vec<serde_json::Value> {
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["capture_id"] == capture)
            .cloned()
            .collect()
    };
    assert!(!of(&segments, gone_id).is_empty());
    assert_eq!(
        of(&after, gone_id),
        of(&segments, gone_id),
        "the deleted capture's segments are kept, not dropped"
    );
    for s in segments["segments"].as_array().unwrap() {
        let capture = s["capture_id"].as_i64().unwrap();
        assert!(
            !of(&after, capture).is_empty(),
            "capture {capture}'s speech is found again"
        );
    }
    let tl = sb.run(&["timeline", "--json"]);
    assert_eq!(tl.code, 0, "{}", tl.stderr);
}
