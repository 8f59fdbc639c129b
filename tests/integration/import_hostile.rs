//! `import` against what a file system can hold besides a tidy folder of
//! `.bin` files: link loops, FIFOs, huge sparse files, and other runs
//! importing into the same data directory at the same moment. Each used to
//! hang, bloat the data directory or fail (issue 11 §4.7–4.10).

use std::time::Duration;

use crate::common;

use common::{Sandbox, write_demo};
use omi_sync::device::demo;
use serde_json::Value;

const NAME: &str = "audio_omi_opus_fs320_16000_1_fs320_";
const LIMIT: Duration = Duration::from_secs(60);

fn files(v: &Value) -> &Vec<Value> {
    v["files"].as_array().expect("files array")
}

fn mkfifo(path: &std::path::Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success());
}

/// Bytes under `dir`, counting only blocks really used (a sparse file's
/// holes are free).
fn disk_use(dir: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    walkdir(dir)
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.blocks() * 512))
        .sum()
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if e.file_type().unwrap().is_dir() {
            out.extend(walkdir(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn link_loops_and_fifos_are_passed_over_with_a_note_and_the_rest_imported() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    write_demo(&inputs);
    let sub = inputs.join("sub");
    std::fs::create_dir(&sub).unwrap();
    std::os::unix::fs::symlink(&inputs, sub.join("up1")).unwrap();
    std::os::unix::fs::symlink(&inputs, sub.join("up2")).unwrap();
    mkfifo(&inputs.join(format!("{NAME}1748860000.bin")));
    let dir = inputs.to_str().unwrap();
    let run = sb.run_within(&["import", dir, "--json"], LIMIT);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let v = run.json();
    let imported = files(&v)
        .iter()
        .filter(|f| f["status"] == "imported")
        .count();
    assert_eq!(imported, demo::FILES.len(), "each demo file once");
    assert_eq!(files(&v).len(), demo::FILES.len(), "no file twice");
    let skipped: Vec<&str> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        skipped.iter().filter(|s| s.contains("(a loop)")).count(),
        2,
        "{skipped:?}"
    );
    assert!(
        skipped
            .iter()
            .any(|s| s.contains("1748860000.bin") && s.contains("a FIFO")),
        "{skipped:?}"
    );
    // The text view says so too.
    let text = sb.run_within(&["import", dir], LIMIT);
    assert!(text.stdout.contains("skipped"), "{}", text.stdout);
    assert!(text.stdout.contains("(a loop)"), "{}", text.stdout);
    // A FIFO named on the command line is refused, not waited on.
    let fifo = inputs.join(format!("{NAME}1748860000.bin"));
    let run = sb.run_within(&["import", fifo.to_str().unwrap(), "--json"], LIMIT);
    assert_eq!(run.code, 3, "{}{}", run.stdout, run.stderr);
    let f = files(&run.json())[0].clone();
    assert_eq!(f["status"], "rejected");
    assert!(f["error"].as_str().unwrap().contains("a FIFO"), "{f}");
}

#[test]
fn a_huge_sparse_file_costs_what_its_frames_cost() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    let demo = &demo::FILES[0];
    let path = inputs.join(demo.name);
    std::fs::write(&path, demo.bytes).unwrap();
    // 1.5 GB of which all but the demo's minute of audio is a hole.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1_500_000_000).unwrap();
    drop(f);
    let run = sb.run_within(&["import", path.to_str().unwrap(), "--json"], LIMIT);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let f = files(&run.json())[0].clone();
    assert_eq!(f["status"], "imported");
    assert!(
        (f["duration_s"].as_f64().unwrap() - 60.0).abs() < 1.0,
        "{f}"
    );
    let notes = f["anomalies"].to_string();
    assert!(
        notes.contains(&format!("at byte {}", demo.bytes.len()))
            && notes.contains("bytes of zeros"),
        "{notes}"
    );
    // What is stored is the frames, not 1.5 GB.
    let used = disk_use(&sb.data().join("captures"));
    assert!(
        used < 4 * demo.bytes.len() as u64,
        "captures use {used} bytes"
    );
    // The same file without the padding is the same capture.
    let plain = inputs.join("plain");
    std::fs::create_dir(&plain).unwrap();
    std::fs::write(plain.join(demo.name), demo.bytes).unwrap();
    let again = sb.run(&["import", plain.to_str().unwrap(), "--json"]);
    assert_eq!(files(&again.json())[0]["status"], "already_imported");
    // All zeros: nothing to import, said plainly.
    let zeros = inputs.join(format!("{NAME}1748860000.bin"));
    std::fs::File::create(&zeros)
        .unwrap()
        .set_len(100_000_000)
        .unwrap();
    let run = sb.run_within(&["import", zeros.to_str().unwrap(), "--json"], LIMIT);
    assert_eq!(run.code, 3);
    let f = files(&run.json())[0].clone();
    assert!(
        f["error"]
            .as_str()
            .unwrap()
            .contains("100000000 bytes are all zeros"),
        "{f}"
    );
}

#[test]
fn the_same_bytes_under_another_time_say_which_time_was_kept() {
    let sb = Sandbox::new();
    let inputs = sb.inputs();
    let demo = &demo::FILES[0];
    std::fs::write(inputs.join(demo.name), demo.bytes).unwrap();
    assert_eq!(sb.run(&["import", inputs.to_str().unwrap()]).code, 0);
    let other = sb.dir.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join(format!("{NAME}1748999999.bin")), demo.bytes).unwrap();
    let run = sb.run(&["import", other.to_str().unwrap(), "--json"]);
    let f = files(&run.json())[0].clone();
    assert_eq!(f["status"], "already_imported");
    assert_eq!(f["start"], "2025-06-02T09:00:00.000Z", "the kept time: {f}");
    assert!(
        f["anomalies"].to_string().contains(&format!(
            "the same bytes were imported before as {}",
            demo.name
        )),
        "{f}"
    );
}

/// Runs `import DIR --json` `n` times at once; returns each run's files.
fn imports_at_once(sb: &Sandbox, dir: &std::path::Path, n: usize) -> Vec<Vec<Value>> {
    let children: Vec<_> = (0..n)
        .map(|_| {
            sb.cmd()
                .args(["import", dir.to_str().unwrap(), "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children
        .into_iter()
        .map(|c| {
            let run = common::Run::from(c.wait_with_output().unwrap());
            assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
            files(&run.json()).clone()
        })
        .collect()
}

/// Each file imported by exactly one of the runs, already imported by the rest.
fn each_file_once(runs: &[Vec<Value>], names: &[String]) {
    for name in names {
        let statuses: Vec<&str> = runs
            .iter()
            .flat_map(|files| files.iter())
            .filter(|f| f["path"].as_str().unwrap().ends_with(name.as_str()))
            .map(|f| f["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses.len(), runs.len(), "{name}: {statuses:?}");
        assert_eq!(
            statuses.iter().filter(|s| **s == "imported").count(),
            1,
            "{name}: {statuses:?}"
        );
        assert!(
            statuses
                .iter()
                .all(|s| *s == "imported" || *s == "already_imported"),
            "{name}: {statuses:?}"
        );
    }
}

#[test]
fn imports_at_once_store_each_file_once_on_a_fresh_or_an_existing_ledger() {
    let sb = Sandbox::new();
    let first = sb.inputs();
    write_demo(&first);
    let names: Vec<String> = demo::FILES.iter().map(|f| f.name.to_string()).collect();
    // A fresh data directory: the schema is made once, by whoever is first.
    each_file_once(&imports_at_once(&sb, &first, 3), &names);
    // An existing ledger, new files: the same.
    let second = sb.dir.path().join("second");
    std::fs::create_dir(&second).unwrap();
    let mut more = Vec::new();
    for (i, f) in demo::FILES.iter().enumerate() {
        // New bytes: every demo file without its last frame.
        let frames = common::demo_frames(i);
        let name = format!("{NAME}{}.bin", 1_749_000_000 + i as u64 * 60);
        std::fs::write(
            second.join(&name),
            common::body(&frames[..frames.len() - 1]),
        )
        .unwrap();
        assert_ne!(f.name, name);
        more.push(name);
    }
    each_file_once(&imports_at_once(&sb, &second, 3), &more);
    // Found once each: no capture analysed twice over.
    let v = sb.run(&["segments", "--json"]).json();
    let keys: Vec<&str> = v["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<&&str> = keys.iter().collect();
    assert!(!keys.is_empty());
    assert_eq!(unique.len(), keys.len());
}
