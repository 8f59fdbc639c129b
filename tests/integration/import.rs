//! `omi-sync import`, `segments` and `timeline` on real encoded speech, and on
//! every kind of bad input: each gets a clear, located message and the rest
//! is still imported.

use crate::common;

use common::{Sandbox, body, demo_frames, write_demo};
use serde_json::Value;

const NAME: &str = "audio_omi_opus_fs320_16000_1_fs320_";

fn files(v: &Value) -> &Vec<Value> {
    v["files"].as_array().expect("files array")
}

#[test]
fn imports_the_demo_and_finds_two_conversations() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    let run = sb.run(&["import", inputs.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v = run.json();
    let f = files(&v);
    assert_eq!(f.len(), 5);
    assert!(
        f.iter()
            .all(|f| f["status"] == "imported" && f["clock"] == "wall")
    );
    let durations: Vec<f64> = f
        .iter()
        .map(|f| f["duration_s"].as_f64().unwrap())
        .collect();
    assert_eq!(durations, vec![60.0, 60.0, 60.0, 45.0, 30.0]);
    assert!(v["vad"]["segments"].as_u64().unwrap() >= 15, "{v}");

    let t = sb.run(&["timeline", "--json"]).json();
    let convs = t["conversations"].as_array().unwrap();
    assert_eq!(convs.len(), 2, "{t:#}");
    // Session A: 09:00:02 to about 09:02:57, joined across its 70 s pause.
    let a = &convs[0];
    assert_eq!(a["clock"], "wall");
    let started = a["started_at"].as_str().unwrap();
    assert!(
        started.starts_with("2025-06-02T09:00:01") || started.starts_with("2025-06-02T09:00:02"),
        "{started}"
    );
    assert!(
        a["finished_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-02T09:02:5"),
        "{a}"
    );
    assert!(
        convs[1]["started_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-02T09:26:0")
    );
    // Exactly the documented field names.
    let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "clock",
            "cloud",
            "device",
            "finished_at",
            "id",
            "segments",
            "started_at"
        ]
    );
    // Not transcribed yet, so held back from the cloud, and it says why.
    assert_eq!(a["cloud"]["state"], "held", "{a}");
    let seg = &a["segments"][0];
    let mut keys: Vec<&str> = seg
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    keys.sort();
    assert_eq!(keys, vec!["end", "id", "start", "status", "text"]);
    assert_eq!(seg["status"], "pending");
    assert!(seg["text"].is_null());

    // Nothing from the noise-only file.
    let segs = sb.run(&["segments", "--json"]).json();
    assert!(
        segs["segments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| !s["start"].as_str().unwrap().starts_with("2025-06-02T10:1"))
    );
}

#[test]
fn importing_the_same_files_twice_changes_nothing() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    assert_eq!(sb.run(&["import", inputs.to_str().unwrap()]).code, 0);
    let before = sb.run(&["segments", "--json"]).stdout;
    let again = sb.run(&["import", inputs.to_str().unwrap(), "--json"]);
    assert_eq!(again.code, 0);
    assert!(
        files(&again.json())
            .iter()
            .all(|f| f["status"] == "already_imported")
    );
    assert_eq!(sb.run(&["segments", "--json"]).stdout, before);
    // Renamed copies are the same bytes: still no new captures.
    let renamed = sb.inputs().join("copy");
    std::fs::create_dir_all(&renamed).unwrap();
    std::fs::copy(
        inputs.join(format!("{NAME}1748854800.bin")),
        renamed.join(format!("{NAME}1748854801.bin")),
    )
    .unwrap();
    let r = sb.run(&["import", renamed.to_str().unwrap(), "--json"]);
    assert_eq!(files(&r.json())[0]["status"], "already_imported");
}

/// A folder with one good file and one of every kind of bad input.
#[test]
fn bad_inputs_are_located_and_the_rest_is_imported() {
    let sb = Sandbox::new();
    let dir = sb.inputs();
    let frames = demo_frames(0);
    let good = body(&frames[..500]);
    let ts = 1748854800u64;
    let write = |name: String, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    write(format!("{NAME}{ts}.bin"), &good);
    // Names without a usable time: kept with an estimated time.
    write("recording.bin".into(), &body(&frames[500..600]));
    write(format!("{NAME}1600000000.bin"), &body(&frames[600..700]));
    write(format!("{NAME}4102444800.bin"), &body(&frames[700..800]));
    // A truncated last frame.
    let mut truncated = body(&frames[800..900]);
    truncated.extend_from_slice(&90u32.to_le_bytes());
    truncated.extend_from_slice(&[1, 2, 3]);
    write(format!("{NAME}{}.bin", ts + 10), &truncated);
    // A zero length, then an oversized length, each ends the body.
    let mut zero = body(&frames[900..1000]);
    let zero_at = zero.len();
    zero.extend_from_slice(&0u32.to_le_bytes());
    zero.extend_from_slice(&[7u8; 50]);
    write(format!("{NAME}{}.bin", ts + 20), &zero);
    let mut huge = body(&frames[1000..1100]);
    huge.extend_from_slice(&1_000_000u32.to_le_bytes());
    write(format!("{NAME}{}.bin", ts + 30), &huge);
    // Garbage libopus rejects, in the middle of good frames.
    let mut garbled = frames[1100..1200].to_vec();
    for f in garbled.iter_mut().skip(40).take(5) {
        *f = vec![0xFF, 0xFF, 0xFF];
    }
    write(format!("{NAME}{}.bin", ts + 40), &body(&garbled));
    // Rejected: empty, unreadable, unsupported codec, no frames at all.
    write(format!("{NAME}{}.bin", ts + 50), b"");
    std::os::unix::fs::symlink(
        "/nonexistent/omi",
        dir.join(format!("{NAME}{}.bin", ts + 60)),
    )
    .unwrap();
    write(
        format!("audio_omi_aac_16000_1_fs160_{}.bin", ts + 70),
        &good,
    );
    write(format!("{NAME}{}.bin", ts + 80), &0u32.to_le_bytes());
    write("notes.txt".into(), b"not audio");

    let run = sb.run(&["import", dir.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 3, "some inputs unusable: exit 3\n{}", run.stderr);
    let v = run.json();
    assert_eq!(v["skipped_other_files"], 1);
    let by_name = |needle: &str| -> Value {
        files(&v)
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with(needle))
            .unwrap_or_else(|| panic!("no entry for {needle}: {v:#}"))
            .clone()
    };
    let imported = |needle: &str| {
        let f = by_name(needle);
        assert_eq!(f["status"], "imported", "{f}");
        f
    };
    let anomaly = |f: &Value, text: &str| {
        assert!(
            f["anomalies"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a.as_str().unwrap().contains(text)),
            "expected an anomaly containing {text:?}: {f}"
        )
    };

    imported(&format!("{ts}.bin"));
    let f = imported("recording.bin");
    assert_eq!(f["clock"], "estimated");
    anomaly(&f, "no timestamp");
    let f = imported("1600000000.bin");
    assert_eq!(f["clock"], "estimated");
    anomaly(&f, "before 2024-01-01");
    let f = imported("4102444800.bin");
    anomaly(&f, "in the future");
    let f = imported(&format!("{}.bin", ts + 10));
    anomaly(&f, "last frame is truncated (3 of 90 bytes)");
    let f = imported(&format!("{}.bin", ts + 20));
    anomaly(&f, &format!("at byte {zero_at}: frame length 0"));
    let f = imported(&format!("{}.bin", ts + 30));
    anomaly(&f, "frame length 1000000 is over 65536");
    assert!(f["duration_s"].as_f64().unwrap() == 2.0);
    imported(&format!("{}.bin", ts + 40));

    let rejected = |needle: &str, why: &str| {
        let f = by_name(needle);
        assert_eq!(f["status"], "rejected", "{f}");
        assert!(f["error"].as_str().unwrap().contains(why), "{f}");
    };
    rejected(&format!("{}.bin", ts + 50), "empty");
    rejected(&format!("{}.bin", ts + 60), "cannot read");
    rejected(
        &format!("aac_16000_1_fs160_{}.bin", ts + 70),
        "codec `aac` is not supported",
    );
    rejected(&format!("{}.bin", ts + 80), "no audio frames");

    // The garbled frames were concealed and reported by VAD with their offset.
    assert!(
        run.stderr.contains("5 of 100 frames could not be decoded"),
        "{}",
        run.stderr
    );
    // Estimated audio forms its own (estimated) conversations.
    let t = sb.run(&["timeline", "--json"]).json();
    assert!(
        t["conversations"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["clock"] == "estimated")
    );
}

#[test]
fn a_missing_path_is_reported_and_the_rest_imported() {
    let sb = Sandbox::new();
    let dir = sb.inputs();
    write_demo(&dir);
    let one = dir.join(format!("{NAME}1748854800.bin"));
    let run = sb.run(&["import", "/no/such/folder", one.to_str().unwrap()]);
    assert_eq!(run.code, 3);
    assert!(run.stdout.contains("/no/such/folder"), "{}", run.stdout);
    assert!(run.stdout.contains("1 imported"), "{}", run.stdout);
}

#[test]
fn text_output_shows_files_duration_and_clock() {
    let sb = Sandbox::new();
    let dir = sb.inputs();
    write_demo(&dir);
    let run = sb.run(&["import", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0);
    assert!(
        run.stdout
            .contains("imported  audio_omi_opus_fs320_16000_1_fs320_1748854800.bin"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("1m00s"), "{}", run.stdout);
    assert!(
        run.stdout.contains("2025-06-02T09:00:00.000Z  wall"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("5 files: 5 imported"), "{}", run.stdout);
    let segs = sb.run(&["segments"]);
    assert!(
        segs.stdout.contains("2025-06-02 09:00:0"),
        "{}",
        segs.stdout
    );
    let tl = sb.run(&["timeline"]);
    assert!(tl.stdout.contains("Conversation "), "{}", tl.stdout);
    assert!(!tl.stdout.contains('\x1b'), "NO_COLOR is honoured");
}
