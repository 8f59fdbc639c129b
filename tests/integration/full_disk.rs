//! A full disk: the import stops with a clear message and exit 7, leaves no
//! partial files and a consistent ledger, and a re-run after space is freed
//! finishes the job with nothing lost or duplicated.
//!
//! The data directory is a 480 KB tmpfs mounted in a private mount namespace
//! (`unshare -rm`, which needs no root), so the disk really fills up.

use crate::common;

use std::process::Command;

use common::{Sandbox, write_demo};

#[test]
fn a_full_disk_stops_cleanly_and_a_rerun_completes() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    let data = sb.data();
    std::fs::create_dir_all(&data).unwrap();
    let bin = crate::common::binary();
    let config = sb.dir.path().join("none.toml");
    let script = r#"
        set -u
        mount -t tmpfs -o size=480k,mode=700 tmpfs "$DATA" || exit 90
        "$BIN" --data-dir "$DATA" --config "$CONFIG" import "$INPUTS" --json > "$OUT1" 2> "$ERR1"
        echo "first=$?"
        echo "leftovers=$(find "$DATA" -name '*.tmp-*' | wc -l)"
        mount -o remount,size=16m "$DATA" || exit 91
        "$BIN" --data-dir "$DATA" --config "$CONFIG" import "$INPUTS" --json > "$OUT2" 2> "$ERR2"
        echo "second=$?"
        "$BIN" --data-dir "$DATA" --config "$CONFIG" segments --json > "$OUT3"
        echo "captures=$(find "$DATA/captures" -type f ! -name '*.json' | wc -l)"
        echo "cards=$(find "$DATA/captures" -type f -name '*.json' | wc -l)"
    "#;
    let out_dir = sb.dir.path();
    let output = Command::new("unshare")
        .args(["-rm", "sh", "-c", script])
        .env("DATA", &data)
        .env("BIN", bin)
        .env("CONFIG", &config)
        .env("INPUTS", &inputs)
        .env("NO_COLOR", "1")
        .env("OUT1", out_dir.join("out1"))
        .env("ERR1", out_dir.join("err1"))
        .env("OUT2", out_dir.join("out2"))
        .env("ERR2", out_dir.join("err2"))
        .env("OUT3", out_dir.join("out3"))
        .output()
        .expect("unshare (util-linux) must be installed");
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let read = |n: &str| std::fs::read_to_string(out_dir.join(n)).unwrap_or_default();
    assert!(
        output.status.success(),
        "namespace setup failed (exit {:?}): {}\n{}",
        output.status.code(),
        report,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        report.contains("first=7"),
        "a full disk is fatal (exit 7): {report}\n{}",
        read("err1")
    );
    let err1 = read("err1");
    assert!(
        err1.contains("disk is full") || err1.contains("database or disk is full"),
        "{err1}"
    );
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
