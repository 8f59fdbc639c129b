//! A full disk at every place omi-sync writes: an import, a pull from the
//! pendant, the ledger, a WAV export, a model download and the janitor. Each
//! stops with a message that says the disk is full and exit 7, leaves no
//! partial file and a consistent ledger, never frees the pendant past what
//! is durable, and a re-run after space is freed finishes the job with
//! nothing lost or duplicated.
//!
//! The disk is a small tmpfs mounted in a private mount namespace
//! (`unshare -rm`, which needs no root), so it really fills up. What the
//! script leaves for the test to look at it copies out of the tmpfs before
//! the namespace ends.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{Sandbox, speech_image, write_demo};
use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::sim::SimPendant;
use omi_sync::store::LedgerReader;

/// Runs `script` under `sh` in a private mount namespace, with `$OMI` (this
/// omi-sync with the sandbox's config and `$DATA` as its data dir), `$DATA`,
/// `$OUT` (a folder outside any tmpfs for what the test reads) and `envs`.
/// Returns what the script printed (its `key=value` lines).
fn in_own_mounts(sb: &Sandbox, script: &str, envs: &[(&str, &Path)]) -> String {
    let data = sb.data();
    std::fs::create_dir_all(&data).unwrap();
    let out = sb.dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let omi = format!(
        "{} --data-dir {} --config {}",
        common::binary().display(),
        data.display(),
        sb.dir.path().join("config.toml").display()
    );
    let output = Command::new("unshare")
        .args(["-rm", "sh", "-c", &format!("set -u\n{script}")])
        .env("OMI", omi)
        .env("DATA", &data)
        .env("OUT", &out)
        .envs(envs.iter().map(|(k, v)| (k, v.as_os_str())))
        .env("NO_COLOR", "1")
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/omi-sync-test",
        )
        .env_remove("OMI_API_KEY")
        .env_remove("OMI_SYNC_MODEL")
        .output()
        .expect("unshare (util-linux) must be installed");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "namespace setup failed (exit {:?}): {}\n{}",
        output.status.code(),
        report,
        String::from_utf8_lossy(&output.stderr)
    );
    report
}

/// A file the script left in `$OUT`.
fn left(sb: &Sandbox, name: &str) -> String {
    std::fs::read_to_string(sb.dir.path().join("out").join(name)).unwrap_or_default()
}

fn left_path(sb: &Sandbox, name: &str) -> PathBuf {
    sb.dir.path().join("out").join(name)
}

/// Asserts the run that met the full disk said so, with exit 7.
fn assert_said_full(report: &str, key: &str, stderr: &str) {
    assert!(
        report.contains(&format!("{key}=7")),
        "a full disk is fatal (exit 7): {report}\n{stderr}"
    );
    assert!(
        stderr.contains("disk is full")
            || (stderr.contains("the disk holding") && stderr.contains("is full")),
        "the message says the disk is full: {stderr}"
    );
}

#[test]
fn a_full_disk_stops_an_import_cleanly_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    let report = in_own_mounts(
        &sb,
        r#"
        mount -t tmpfs -o size=480k,mode=700 tmpfs "$DATA" || exit 90
        $OMI import "$INPUTS" --json > "$OUT/out1" 2> "$OUT/err1"
        echo "first=$?"
        echo "leftovers=$(find "$DATA" -name '*.tmp-*' | wc -l)"
        mount -o remount,size=16m "$DATA" || exit 91
        $OMI import "$INPUTS" --json > "$OUT/out2" 2> "$OUT/err2"
        echo "second=$?"
        $OMI segments --json > "$OUT/out3"
        echo "captures=$(find "$DATA/captures" -type f ! -name '*.json' | wc -l)"
        echo "cards=$(find "$DATA/captures" -type f -name '*.json' | wc -l)"
        "#,
        &[("INPUTS", &inputs)],
    );
    let read = |n: &str| left(&sb, n);
    assert_said_full(&report, "first", &read("err1"));
    assert!(
        report.contains("leftovers=0"),
        "no temporary files left behind: {report}"
    );
    assert!(report.contains("second=0"), "{report}\n{}", read("err2"));
    assert!(
        report.contains("captures=5"),
        "every file stored exactly once: {report}"
    );
    assert!(
        report.contains("cards=5"),
        "every capture has its card: {report}"
    );
    let second: serde_json::Value = serde_json::from_str(&read("out2")).unwrap();
    let statuses: Vec<&str> = second["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["status"].as_str().unwrap())
        .collect();
    assert!(
        statuses
            .iter()
            .all(|s| *s == "imported" || *s == "already_imported"),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&"already_imported"),
        "the first run stored some: {statuses:?}"
    );
    let segments: serde_json::Value = serde_json::from_str(&read("out3")).unwrap();
    assert!(segments["segments"].as_array().unwrap().len() >= 30);
}

#[test]
fn a_full_disk_mid_pull_never_frees_the_pendant_past_what_is_durable() {
    let sb = Sandbox::new();
    let (image, records) = speech_image();
    let img = sb.inputs().join("ring.img");
    std::fs::write(&img, image).unwrap();
    let n = (records.len() / RECORD_BYTES) as u64;
    let report = in_own_mounts(
        &sb,
        r#"
        mount -t tmpfs -o size=400k,mode=700 tmpfs "$DATA" || exit 90
        $OMI pull --sim "$IMG" > "$OUT/out1" 2> "$OUT/err1"
        echo "first=$?"
        cp "$IMG" "$OUT/img1"
        cp -a "$DATA" "$OUT/data1"
        echo "leftovers=$(find "$DATA" -name '*.tmp-*' | wc -l)"
        mount -o remount,size=64m "$DATA" || exit 91
        $OMI pull --sim "$IMG" --json > "$OUT/out2" 2> "$OUT/err2"
        echo "second=$?"
        cp -a "$DATA" "$OUT/data2"
        "#,
        &[("IMG", &img)],
    );
    assert_said_full(&report, "first", &left(&sb, "err1"));
    assert!(report.contains("leftovers=0"), "{report}");
    let device = format!("sim:{}", img.display());
    let durable = |data: &str| {
        LedgerReader::open(&left_path(&sb, data))
            .unwrap()
            .ring_resume_point(&device)
            .unwrap()
            .map_or(0, |r| r.durable_seq)
    };
    let freed = SimPendant::open(&left_path(&sb, "img1"), "")
        .unwrap()
        .metadata()
        .read_seq;
    let first = durable("data1");
    assert!(first < n, "the disk filled before the end: {first} of {n}");
    assert!(
        freed <= first,
        "the pendant was freed to {freed}, past the durable {first}"
    );
    assert!(
        report.contains("second=0"),
        "{report}\n{}",
        left(&sb, "err2")
    );
    let ledger = LedgerReader::open(&left_path(&sb, "data2")).unwrap();
    let held = common::ring_records(&ledger, &device);
    assert_eq!(held.len() as u64, n, "every record held");
    for (i, (_, seq, bytes)) in held.iter().enumerate() {
        assert_eq!(*seq, i as u64, "once each, in order");
        assert_eq!(
            &bytes[..],
            &records[i * RECORD_BYTES..(i + 1) * RECORD_BYTES]
        );
    }
    let img = SimPendant::open(&img, "").unwrap().metadata();
    assert_eq!(img.read_seq, n, "freed once all of it is durable");
}

#[test]
fn a_full_disk_under_a_wav_export_leaves_no_partial_file() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    assert_eq!(sb.run(&["import", inputs.to_str().unwrap()]).code, 0);
    let conversation = sb.run(&["timeline", "--json"]).json()["conversations"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let wavs = sb.dir.path().join("wavs");
    std::fs::create_dir_all(&wavs).unwrap();
    let report = in_own_mounts(
        &sb,
        &format!(
            r#"
        mount -t tmpfs -o size=64k tmpfs "$WAVS" || exit 90
        $OMI export --conversation {conversation} -o "$WAVS/c.wav" > "$OUT/out1" 2> "$OUT/err1"
        echo "first=$?"
        echo "files=$(ls -A "$WAVS" | wc -l)"
        mount -o remount,size=16m "$WAVS" || exit 91
        $OMI export --conversation {conversation} -o "$WAVS/c.wav" > "$OUT/out2" 2> "$OUT/err2"
        echo "second=$?"
        cp "$WAVS/c.wav" "$OUT/c.wav"
        "#
        ),
        &[("WAVS", &wavs)],
    );
    assert_said_full(&report, "first", &left(&sb, "err1"));
    assert!(report.contains("files=0"), "no partial WAV left: {report}");
    assert!(
        report.contains("second=0"),
        "{report}\n{}",
        left(&sb, "err2")
    );
    let wav = hound::WavReader::open(left_path(&sb, "c.wav")).unwrap();
    assert!(wav.duration() > 16_000 * 60, "the whole conversation");
}

/// The download's own test, run twice by the one below inside its mount
/// namespace: `OMI_FULL_DISK_MODEL` names the mirror, `OMI_FULL_DISK_DIR`
/// the folder on the small disk. (The CLI's table holds the real models'
/// hashes; a stand-in model needs the library's table.)
fn download_in_child() -> bool {
    let (Some(base), Some(dir)) = (
        std::env::var_os("OMI_FULL_DISK_MODEL"),
        std::env::var_os("OMI_FULL_DISK_DIR"),
    ) else {
        return false;
    };
    let data = crate::stt_models::blob(MODEL_BYTES);
    let store = crate::stt_models::store(Path::new(&dir), base.to_str().unwrap(), &data);
    match store.download("fake.en", &mut |_| {}, &omi_sync::cancel::Cancel::new()) {
        Ok(p) => println!("download=ok installed={}", p.is_file()),
        Err(e) => println!("download=failed: {e}"),
    }
    true
}

const MODEL_BYTES: usize = 3_000_000;

#[test]
fn a_full_disk_under_a_model_download_resumes_once_there_is_space() {
    if download_in_child() {
        return;
    }
    let mirror = crate::stt_models::serve(crate::stt_models::blob(MODEL_BYTES), 0, 0, false);
    let sb = Sandbox::new();
    let models = sb.data().join("models");
    let me = std::env::current_exe().unwrap();
    let report = in_own_mounts(
        &sb,
        r#"
        mount -t tmpfs -o size=1m,mode=700 tmpfs "$DATA" || exit 90
        mkdir -p "$MODELS"
        child() { "$ME" --exact full_disk::a_full_disk_under_a_model_download_resumes_once_there_is_space --nocapture --test-threads 1 2>&1 | grep 'download=' || true; }
        echo "first: $(child)"
        echo "installed=$(ls "$MODELS"/ggml-fake.en.bin 2>/dev/null | wc -l)"
        echo "part=$(stat -c %s "$MODELS"/ggml-fake.en.bin.part)"
        mount -o remount,size=16m "$DATA" || exit 91
        echo "second: $(child)"
        "#,
        &[
            ("ME", &me),
            ("MODELS", &models),
            ("OMI_FULL_DISK_DIR", &models),
            ("OMI_FULL_DISK_MODEL", Path::new(&mirror.base)),
        ],
    );
    assert!(
        report.lines().any(|l| l.starts_with("first:")
            && l.contains("download=failed")
            && l.contains("No space left on device")),
        "the disk is full, and it says so: {report}"
    );
    assert!(
        report.contains("installed=0"),
        "nothing half-downloaded under the model's name: {report}"
    );
    assert!(
        report
            .lines()
            .any(|l| l.starts_with("second:") && l.contains("download=ok installed=true")),
        "resumed and verified once there is space: {report}"
    );
    assert!(
        !report.contains("part=0\n"),
        "the first attempt kept what it had for the resume: {report}"
    );
}
/// The start of a script that moves the sandbox's data directory onto a
/// tmpfs of `size`, as it is, then fills that disk to the last block.
fn onto_a_full_disk(size: &str) -> String {
    format!(
        r#"
        cp -a "$DATA" "$OUT/stash" || exit 92
        mount -t tmpfs -o size={size},mode=700 tmpfs "$DATA" || exit 90
        cp -a "$OUT/stash/." "$DATA/" || exit 93
        dd if=/dev/zero of="$DATA/filler" bs=4k 2>/dev/null
        "#
    )
}

#[test]
fn a_full_disk_under_a_ledger_write_says_so_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    assert_eq!(sb.run(&["import", inputs.to_str().unwrap()]).code, 0);
    let before = sb.run(&["segments", "--json"]).json();
    let script = onto_a_full_disk("8m")
        + r#"
        $OMI vad --rerun > "$OUT/out1" 2> "$OUT/err1"
        echo "first=$?"
        rm "$DATA/filler"
        $OMI vad --rerun > "$OUT/out2" 2> "$OUT/err2"
        echo "second=$?"
        $OMI segments --json > "$OUT/segments"
        "#;
    let report = in_own_mounts(&sb, &script, &[]);
    assert_said_full(&report, "first", &left(&sb, "err1"));
    assert!(
        report.contains("second=0"),
        "{report}\n{}",
        left(&sb, "err2")
    );
    let after: serde_json::Value = serde_json::from_str(&left(&sb, "segments")).unwrap();
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(keys(&after), keys(&before), "the same speech found again");
}

#[test]
fn a_full_disk_under_the_janitor_loses_track_of_nothing() {
    use crate::support::contract_server::{ContractConfig, ContractServer};
    let sb = crate::push::demo_ready();
    crate::push::config(&sb, "[storage]\nkeep_days = 0\n");
    let server = ContractServer::start(ContractConfig::default());
    let r = crate::push::push(&sb, &server, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let script = onto_a_full_disk("8m")
        + r#"
        $OMI storage prune > "$OUT/out1" 2> "$OUT/err1"
        echo "first=$?"
        rm "$DATA/filler"
        $OMI storage prune > "$OUT/out2" 2> "$OUT/err2"
        echo "second=$?"
        $OMI storage --json > "$OUT/storage"
        echo "audio=$(find "$DATA/captures" -type f ! -name '*.json' | wc -l)"
        "#;
    let report = in_own_mounts(&sb, &script, &[]);
    // Deleting frees room, so the janitor may well finish on a full disk;
    // if it cannot, it says why.
    if !report.contains("first=0") {
        assert_said_full(&report, "first", &left(&sb, "err1"));
    }
    assert!(
        report.contains("second=0"),
        "{report}\n{}",
        left(&sb, "err2")
    );
    let storage: serde_json::Value = serde_json::from_str(&left(&sb, "storage")).unwrap();
    let captures = storage["captures"].as_array().unwrap();
    assert_eq!(captures.len(), 5, "{storage}");
    assert!(
        captures.iter().all(|c| c["custody"] == "freed"),
        "all of it freed and recorded: {storage}"
    );
    assert!(
        report.contains("audio=0"),
        "and gone from the disk: {report}"
    );
}
