//! `omi-sync diagnose`: damaged inputs built with the project's fixture
//! builders are each reported with the right location; nothing it reads
//! changes (a read-only data directory, an image, the simulated pendant's
//! received commands); redaction in every format; exit codes; the JSON
//! schema; the HTML report rendered in headless Chromium.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use omi_sync::clock::UtcMillis;
use omi_sync::device::sim::SimPendant;
use omi_sync::device::usb::Variant;
use omi_sync::device::usb::fixture::FixtureBuilder;
use omi_sync::store::{Ledger, NewPush};
use omi_sync::timeline::SegmentStatus;
use serde_json::Value;

use crate::common::{Run, Sandbox, assert_no_piece_of, body, demo_frames, synthetic_backlog_of};

const KEY: &str = "omi_dev_5f3c9a1e7b2d4c6f8a0e1b3d5c7f9a2e";
const DEVICE: &str = "Omi-DevKit-C0:FF:EE:12:34:56";

/// Every finding of a JSON report (the summary list and every section's lines).
fn checks(report: &Value) -> Vec<&Value> {
    report["sections"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["checks"].as_array().unwrap())
        .collect()
}

/// The findings of `check`, as (where, what).
fn found(report: &Value, check: &str) -> Vec<(String, String)> {
    checks(report)
        .into_iter()
        .filter(|f| f["check"] == check)
        .map(|f| {
            (
                f["where"].as_str().unwrap_or("").to_string(),
                f["what"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// `omi-sync diagnose ARGS` against the sandbox's data directory.
fn diagnose(sb: &Sandbox, args: &[&str]) -> Run {
    let mut all = vec!["diagnose"];
    all.extend_from_slice(args);
    sb.run_within(&all, std::time::Duration::from_secs(120))
}

/// `omi-sync diagnose ARGS` with no `--data-dir`: only the sources named.
fn diagnose_only(sb: &Sandbox, args: &[&str]) -> Run {
    let out = std::process::Command::new(crate::common::binary())
        .arg("--config")
        .arg(sb.dir.path().join("config.toml"))
        .arg("diagnose")
        .args(args)
        .env("NO_COLOR", "1")
        .env("XDG_DATA_HOME", sb.dir.path().join("xdg-data"))
        .env(
            "DBUS_SESSION_BUS_ADDRESS",
            "unix:path=/nonexistent/omi-sync-test",
        )
        .env_remove("OMI_API_KEY")
        .env_remove("OMI_SYNC_DATA_DIR")
        .env_remove("OMI_SYNC_CONFIG")
        .env_remove("OMI_SYNC_MODEL")
        .output()
        .unwrap();
    Run::from(out)
}

/// Every file under `dir` with its bytes' hash and modification time.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (String, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
            }
            let hash = if m.is_file() {
                omi_sync::store::files::sha256_hex(&std::fs::read(&p).unwrap())
            } else {
                String::new()
            };
            out.insert(p, (hash, m.modified().unwrap()));
        }
    }
    out
}

fn chmod(dir: &Path, spec: &str) {
    let ok = std::process::Command::new("chmod")
        .args(["-R", spec])
        .arg(dir)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// A variant B card: 100 records, the batch holding seq 40 torn, 20 more
/// written after the last metadata (an orphan batch).
fn torn_card() -> Vec<u8> {
    let mut b = FixtureBuilder::host_test(Variant::B).unwrap();
    b.record(100, 36).unwrap();
    b.tear_batch_of(40).unwrap();
    b.record_uncommitted(20).unwrap();
    b.finish()
}

/// A variant C card: 50 records with the clock set, 50 with it not set,
/// and another ring's batch left in slot 5 (sector 224).
fn foreign_lap_card() -> Vec<u8> {
    let mut b = FixtureBuilder::host_test(Variant::C).unwrap();
    b.record(50, 36).unwrap();
    b.record_clock_not_set(50, 36).unwrap();
    b.write_foreign_batch(5, 180, 3, 7, 36).unwrap();
    b.finish()
}

#[test]
fn a_damaged_card_reports_every_anomaly_at_its_sector_and_is_left_as_it_was() {
    let sb = Sandbox::new();
    let img = sb.inputs().join("card.img");
    std::fs::write(&img, torn_card()).unwrap();
    let before = fingerprint(&sb.inputs());
    let run = diagnose_only(&sb, &["--image", img.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let r = run.json();
    let torn = found(&r, "card.torn_batch");
    assert_eq!(torn.len(), 1, "{torn:?}");
    assert_eq!(torn[0].0, "sector 96");
    assert!(torn[0].1.starts_with("torn batch in slot 1"), "{torn:?}");
    let gap = found(&r, "card.sequence_gap");
    assert!(
        gap.iter()
            .any(|(w, m)| w == "sector 96" && m.contains("records 36..72")),
        "{gap:?}"
    );
    let orphan = found(&r, "card.past_last_metadata");
    assert!(
        orphan.iter().any(|(_, m)| m.contains("records 100..120")),
        "{orphan:?}"
    );
    assert_eq!(r["findings"][0]["severity"], "problem");
    assert_eq!(fingerprint(&sb.inputs()), before, "the image changed");
}

#[test]
fn a_card_beside_an_empty_data_dir_is_reported_on_its_own() {
    // Support staff given only a card: the data directory (nothing ever
    // imported) is not a source that could not be read.
    let sb = Sandbox::new();
    let img = sb.inputs().join("card.img");
    std::fs::write(&img, torn_card()).unwrap();
    let run = diagnose(&sb, &["--image", img.to_str().unwrap(), "--json"]);
    assert_eq!(
        run.code, 3,
        "the card's problems, not exit 7: {}\n{}",
        run.stdout, run.stderr
    );
    assert_eq!(found(&run.json(), "card.torn_batch").len(), 1);
    assert!(!sb.data().exists(), "nothing made in the data directory");
}

#[test]
fn a_foreign_lap_and_records_without_a_clock_are_found_where_they_are() {
    let sb = Sandbox::new();
    let img = sb.inputs().join("card.img");
    std::fs::write(&img, foreign_lap_card()).unwrap();
    let run = diagnose_only(&sb, &["--image", img.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r = run.json();
    let foreign = found(&r, "card.outside_backlog");
    assert!(
        foreign
            .iter()
            .any(|(w, m)| w == "sector 224" && m.contains("another ring's batch")),
        "{foreign:?}"
    );
    let uptime = found(&r, "card.clock_not_set");
    assert_eq!(uptime.len(), 1, "{uptime:?}");
    assert!(uptime[0].1.contains("records 50..100"), "{uptime:?}");
    assert!(uptime[0].0.starts_with("sector "), "{uptime:?}");
    // The chart has a lane of estimated times for them.
    let lanes = r["chart"]["lanes"].as_array().unwrap();
    assert!(lanes.iter().any(|l| l["estimated"] == true));
    assert!(lanes.iter().any(|l| l["estimated"] == false));
    // In text, each place is said once.
    let text = diagnose_only(&sb, &["--image", img.to_str().unwrap()]);
    assert!(text.stdout.contains("(sector 224)"), "{}", text.stdout);
    assert!(
        !text.stdout.contains("sector 224: sector"),
        "{}",
        text.stdout
    );
}

#[test]
fn pull_image_says_where_each_anomaly_is_once() {
    let sb = Sandbox::new();
    let img = sb.inputs().join("card.img");
    std::fs::write(&img, torn_card()).unwrap();
    let run = sb.run(&["pull", "--image", img.to_str().unwrap()]);
    assert!(
        run.stdout.contains("sector 96: torn batch"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("sector 96: sector 96"),
        "{}",
        run.stdout
    );
}

#[test]
fn phone_app_files_truncated_corrupt_and_duplicated_are_named_with_their_offsets() {
    let sb = Sandbox::new();
    let dir = sb.inputs().join("phone");
    std::fs::create_dir_all(&dir).unwrap();
    let names: Vec<&str> = omi_sync::device::demo::FILES
        .iter()
        .map(|f| f.name)
        .collect();
    let good = body(&demo_frames(0));
    std::fs::write(dir.join(names[0]), &good).unwrap();
    // The same audio again under another name.
    std::fs::write(dir.join(names[3]), &good).unwrap();
    // Cut in the middle of its last frame.
    let whole = body(&demo_frames(1));
    let cut = whole.len() - 10;
    std::fs::write(dir.join(names[1]), &whole[..cut]).unwrap();
    // Garbage: no frame at all.
    std::fs::write(dir.join(names[2]), [0xFFu8; 64]).unwrap();
    let before = fingerprint(&dir);
    let run = diagnose_only(
        &sb,
        &["--wal", dir.to_str().unwrap(), "--json", "--no-redact"],
    );
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    let r = run.json();
    let file = found(&r, "captures.file");
    assert!(
        file.iter()
            .any(|(w, m)| w.contains(names[1]) && w.contains(", byte ") && m.contains("truncated")),
        "{file:?}"
    );
    let unusable = found(&r, "captures.unusable");
    assert!(
        unusable
            .iter()
            .any(|(w, m)| w.ends_with(names[2]) && m.contains("no audio frames")),
        "{unusable:?}"
    );
    let dup = found(&r, "captures.duplicate");
    assert!(
        dup.iter()
            .any(|(w, _)| w.contains(names[0]) && w.contains(names[3])),
        "{dup:?}"
    );
    assert_eq!(fingerprint(&dir), before, "the files changed");
}

/// A data directory: `n` transcribed conversations by [`DEVICE`], one
/// segment failed, one conversation refused by the cloud.
fn damaged_data_dir(data: &Path, n: usize) {
    synthetic_backlog_of(data, n, DEVICE);
    let ledger = Ledger::open(data).unwrap();
    let segs = ledger.segments().unwrap();
    ledger
        .set_transcript(
            segs[2].id,
            SegmentStatus::Failed,
            None,
            Some("whisper.cpp returned -3"),
        )
        .unwrap();
    let push = NewPush {
        session_id: "session-rejected".into(),
        conversation: "c0ffee".into(),
        device: DEVICE.into(),
        members: vec![segs[0].found.key.clone()],
        started_at: segs[0].found.start,
        finished_at: segs[0].found.end,
        segments: 1,
        request: "{}".into(),
    };
    ledger.enqueue_push(&push).unwrap();
    ledger
        .mark_rejected(
            "session-rejected",
            422,
            "transcript_segments must not be empty",
        )
        .unwrap();
}

#[test]
fn a_read_only_data_dir_is_diagnosed_without_one_byte_or_mtime_changing() {
    let sb = Sandbox::new();
    damaged_data_dir(&sb.data(), 4);
    chmod(&sb.data(), "a-w");
    let before = fingerprint(&sb.data());
    let run = diagnose(&sb, &["--json"]);
    let after = fingerprint(&sb.data());
    chmod(&sb.data(), "u+w");
    assert_eq!(run.code, 3, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(after, before, "the data directory changed");
    let r = run.json();
    let failed = found(&r, "transcription.failed");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert!(
        failed[0].1.contains("whisper.cpp returned -3"),
        "{failed:?}"
    );
    let ledger = omi_sync::store::LedgerReader::open(&sb.data()).unwrap();
    let id = ledger.segments().unwrap()[2].id;
    assert_eq!(failed[0].0, format!("segment {id}"));
    let rejected = found(&r, "cloud.rejected");
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(
        rejected[0].0.contains("conversation c0ffee"),
        "{rejected:?}"
    );
    assert!(
        rejected[0].1.contains("HTTP 422")
            && rejected[0]
                .1
                .contains("transcript_segments must not be empty"),
        "{rejected:?}"
    );
    // Four conversations of 8 s each: every one is very short, with its reason.
    let short = found(&r, "speech.short_conversation");
    assert_eq!(short.len(), 4, "{short:?}");
    assert!(short[1].1.contains("of silence before it"), "{short:?}");
    let fixes: Vec<&str> = r["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["fix_text"].as_str())
        .collect();
    assert!(
        fixes.iter().any(|f| f.contains("--retry-rejected")),
        "{fixes:?}"
    );
}

#[test]
fn a_missing_source_is_exit_7_and_a_healthy_one_exit_0() {
    let sb = Sandbox::new();
    let run = diagnose_only(&sb, &["--image", "/nonexistent/card.img", "--json"]);
    assert_eq!(run.code, 7, "{}\n{}", run.stdout, run.stderr);
    assert_eq!(run.json()["unreadable"][0]["source"], "image");
    let empty = diagnose(&sb, &["--json"]);
    assert_eq!(empty.code, 7, "no ledger: {}", empty.stdout);
    assert_eq!(empty.json()["unreadable"][0]["source"], "data_dir");

    let healthy = Sandbox::new();
    synthetic_backlog_of(&healthy.data(), 2, DEVICE);
    // Ten minutes apart, two of them: long enough not to be "very short"?
    // No: 8 s each are warnings, and warnings alone are exit 0.
    let run = diagnose(&healthy, &["--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r = run.json();
    assert!(
        r["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["severity"] == "warning"),
        "{:#}",
        r["findings"]
    );
}

#[test]
fn the_simulated_pendant_receives_reads_only() {
    use omi_sync::engine::diagnose::{Request, diagnose};
    let mut b = FixtureBuilder::new(Variant::C, 20).unwrap();
    // 19 of 20 slots' worth: 95 % full.
    b.record(36 * 19, 36).unwrap();
    let mut sim = SimPendant::from_image(b.finish(), "").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ws = omi_sync::engine::workspace::Workspace::new(
        omi_sync::config::Config::default(),
        None,
        dir.path().join("data"),
    );
    let report = diagnose(
        &ws,
        &Request {
            pendant_origin: Some("sim:ring.img".into()),
            ..Request::default()
        },
        Some(Ok(&mut sim)),
        &omi_sync::cancel::Cancel::new(),
    );
    let got = sim.commands();
    assert!(!got.is_empty());
    assert!(
        got.iter().all(|c| !c.op.changes_pendant()),
        "{:?}",
        got.iter().map(|c| &c.op).collect::<Vec<_>>()
    );
    assert!(got.iter().any(|c| matches!(
        c.op,
        omi_sync::device::sim::HostOp::Command(omi_sync::device::ring::Command::Info)
    )));
    assert!(report.unreadable.is_empty(), "{:?}", report.unreadable);
    let fill = report
        .sections
        .iter()
        .flat_map(|s| &s.checks)
        .find(|f| f.check == "card.fill")
        .expect("a fill line");
    assert_eq!(
        fill.severity,
        omi_sync::engine::diagnose::Severity::Problem,
        "{fill:?}"
    );
}

#[test]
fn the_simulator_behind_the_command_line_is_not_changed() {
    let sb = Sandbox::new();
    let img = sb.inputs().join("ring.img");
    let mut b = FixtureBuilder::host_test(Variant::C).unwrap();
    b.record(100, 36).unwrap();
    std::fs::write(&img, b.finish()).unwrap();
    let before = fingerprint(&sb.inputs());
    let run = diagnose_only(&sb, &["--sim", img.to_str().unwrap(), "--json"]);
    assert_eq!(run.code, 0, "{}\n{}", run.stdout, run.stderr);
    let r = run.json();
    assert!(!found(&r, "card.custody").is_empty(), "{:#}", r);
    assert_eq!(
        fingerprint(&sb.inputs()),
        before,
        "the simulator's image changed"
    );
}

/// Runs diagnose on a damaged data dir, a card and phone files in every
/// format; returns (text, json, html).
fn every_format(sb: &Sandbox, extra: &[&str]) -> (String, String, String) {
    damaged_data_dir(&sb.data(), 3);
    let img = sb.inputs().join("card.img");
    std::fs::write(&img, foreign_lap_card()).unwrap();
    let html = sb.inputs().join("report.html");
    let img = img.to_str().unwrap().to_string();
    let html_s = html.to_str().unwrap().to_string();
    let mut args = vec!["diagnose", "--image", &img];
    args.extend_from_slice(extra);
    let mut text_args = args.clone();
    text_args.push("-v");
    let run = |a: &[&str]| {
        let out = sb.cmd().env("OMI_API_KEY", KEY).args(a).output().unwrap();
        Run::from(out)
    };
    let text = run(&text_args);
    let mut json_args = args.clone();
    json_args.push("--json");
    let json = run(&json_args);
    let mut html_args = args.clone();
    html_args.extend(["--html", &html_s]);
    let h = run(&html_args);
    assert_eq!(h.code, 3, "{}\n{}", h.stdout, h.stderr);
    (
        text.stdout + &text.stderr,
        json.stdout + &json.stderr,
        std::fs::read_to_string(&html).unwrap(),
    )
}

#[test]
fn every_format_is_redacted_the_key_the_words_and_the_device_id_appear_nowhere() {
    let sb = Sandbox::new();
    let (text, json, html) = every_format(&sb, &[]);
    let home = sb.dir.path().to_str().unwrap().to_string();
    for (what, out) in [("text", &text), ("json", &json), ("html", &html)] {
        assert_no_piece_of(what, out, KEY);
        assert!(
            !out.contains("Synthetic sentence"),
            "{what} shows transcript text"
        );
        assert!(
            !out.contains("C0:FF:EE:12:34:56"),
            "{what} shows the device id"
        );
        assert!(!out.contains("card.img"), "{what} shows the image's name");
        assert!(out.contains("device-"), "{what} has no device pseudonym");
        let _ = &home;
    }
    // The key is found, and shown only as its fingerprint.
    let fp = omi_sync::cloud::credentials::KeyFingerprint::of(KEY);
    assert!(text.contains(fp.as_str()), "{text}");
    // The same device gets the same pseudonym in every format.
    let p = omi_sync::engine::diagnose::redact::pseudonym("device", DEVICE);
    for out in [&text, &json, &html] {
        assert!(out.contains(&p), "{p} missing");
    }

    let opted = Sandbox::new();
    let (text, json, html) = every_format(&opted, &["--include-transcripts"]);
    for out in [&text, &json, &html] {
        assert!(
            out.contains("Synthetic sentence"),
            "text asked for, not there"
        );
        assert_no_piece_of("report", out, KEY);
    }
}

#[test]
fn the_json_report_validates_against_its_schema() {
    let sb = Sandbox::new();
    let (_, json, _) = every_format(&sb, &[]);
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/diagnose.schema.json"),
    )
    .unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    let mut schemas = boon::Schemas::new();
    let mut compiler = boon::Compiler::new();
    let url = "urn:omi-sync:diagnose.schema.json";
    compiler.add_resource(url, schema).unwrap();
    let index = compiler.compile(url, &mut schemas).unwrap();
    let report: Value = serde_json::from_str(&json).unwrap();
    if let Err(e) = schemas.validate(&report, index) {
        panic!("{e:#}");
    }
    // And the schema can fail: a renamed field is refused.
    let mut bad = report.clone();
    bad["findings"][0]["place"] = bad["findings"][0]["where"].take();
    bad["findings"][0].as_object_mut().unwrap().remove("where");
    assert!(schemas.validate(&bad, index).is_err());
    assert_eq!(report["schema_version"], 1);
    assert!(UtcMillis::parse_flexible(report["generated_at"].as_str().unwrap()).is_some());
}

#[test]
fn the_html_report_renders_in_chromium_with_its_chart_and_no_errors() {
    let Some(chromium) = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| which(c))
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing in CI: scripts/setup installs it"
        );
        eprintln!("skipped: no chromium here (scripts/setup installs it)");
        return;
    };
    let sb = Sandbox::new();
    every_format(&sb, &[]);
    let html = sb.inputs().join("report.html");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("http://") || page.matches("http://").all(|_| true));
    assert!(
        !page.contains("<link") && !page.contains(" src="),
        "external assets"
    );
    let profile = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--virtual-time-budget=2000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert!(
        dom.contains("data-loaded=\"1\""),
        "the page's script did not run: {dom}"
    );
    assert!(!dom.contains("data-errors=\""), "script errors: {dom}");
    assert!(!log.contains("Uncaught"), "console errors: {log}");
    assert!(dom.contains("<svg id=\"timeline-chart\""), "no chart");
    for class in [
        "recorded",
        "speech",
        "conversation",
        "boundary",
        "lane estimated",
    ] {
        assert!(
            dom.contains(&format!("class=\"{class}\"")),
            "no {class} in the chart"
        );
    }
}

fn which(cmd: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .output()
        .is_ok_and(|o| o.status.success())
}
