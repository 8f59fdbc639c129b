//! `merge`, `split`, `undo`, `redo` through the real binary, persisted in the
//! ledger, and surviving a re-run of VAD with other settings.

use crate::common;

use common::{Sandbox, write_demo};
use serde_json::Value;

fn shape(sb: &Sandbox) -> Vec<Vec<i64>> {
    let t = sb.run(&["timeline", "--json"]).json();
    t["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            c["segments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["id"].as_i64().unwrap())
                .collect()
        })
        .collect()
}

fn ids(sb: &Sandbox) -> Vec<String> {
    let t = sb.run(&["timeline", "--json"]).json();
    t["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn demo_sandbox() -> Sandbox {
    let sb = Sandbox::new();
    let dir = sb.inputs();
    write_demo(&dir);
    assert_eq!(
        sb.run(&["import", dir.to_str().unwrap(), "--quiet"]).code,
        0
    );
    sb
}

#[test]
fn merge_undo_redo_split_round_trip() {
    let sb = demo_sandbox();
    let original = shape(&sb);
    assert_eq!(original.len(), 2);
    let [a, b] = <[String; 2]>::try_from(ids(&sb)).unwrap();

    // Merge by unique prefixes.
    let run = sb.run(&["merge", &a[..6], &b[..6], "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: Value = run.json();
    assert_eq!(v["action"], "merge");
    assert_eq!(v["conversations"].as_array().unwrap().len(), 1);
    let merged = shape(&sb);
    assert_eq!(merged.len(), 1);
    assert_eq!(merged[0].len(), original[0].len() + original[1].len());

    // Undo, redo.
    assert_eq!(sb.run(&["undo"]).code, 0);
    assert_eq!(shape(&sb), original);
    assert_eq!(sb.run(&["redo"]).code, 0);
    assert_eq!(shape(&sb), merged);
    assert_eq!(sb.run(&["redo"]).code, 9, "nothing to redo");

    // Split the merged conversation where the second session starts.
    let second_first = original[1][0];
    let run = sb.run(&["split", &second_first.to_string()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("Split conversation"), "{}", run.stdout);
    assert_eq!(shape(&sb), original);

    // Split inside session A.
    let inner = original[0][5];
    assert_eq!(sb.run(&["split", &inner.to_string()]).code, 0);
    let three = shape(&sb);
    assert_eq!(three.len(), 3);
    assert_eq!(three[0], original[0][..5].to_vec());

    // Walk all the way back.
    for _ in 0..3 {
        assert_eq!(sb.run(&["undo"]).code, 0);
    }
    assert_eq!(shape(&sb), original);
    assert_eq!(sb.run(&["undo"]).code, 9, "nothing to undo");
}

#[test]
fn bad_edits_are_usage_errors_with_reasons() {
    let sb = demo_sandbox();
    let conv = ids(&sb);
    let first = shape(&sb)[0][0];
    let r = sb.run(&["merge", &conv[0], &conv[0]]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("same conversation"), "{}", r.stderr);
    let r = sb.run(&["merge", &conv[0], "ffffffffff"]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("no conversation ffffffffff"),
        "{}",
        r.stderr
    );
    let r = sb.run(&["split", &first.to_string()]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("already starts"), "{}", r.stderr);
    let r = sb.run(&["split", "99999"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("no segment 99999"), "{}", r.stderr);
}

#[test]
fn edits_survive_re_running_vad_with_other_settings() {
    let sb = demo_sandbox();
    let [a, b] = <[String; 2]>::try_from(ids(&sb)).unwrap();
    assert_eq!(sb.run(&["merge", &a, &b]).code, 0);
    let inner = shape(&sb)[0][8];
    assert_eq!(sb.run(&["split", &inner.to_string()]).code, 0);
    let before = shape(&sb);
    assert_eq!(before.len(), 2);
    let segments_before = before.iter().map(Vec::len).sum::<usize>();

    // Other VAD settings: segments change (ids, boundaries, count).
    std::fs::write(
        sb.dir.path().join("config.toml"),
        "[vad]\nthreshold = 0.6\nmin_silence_ms = 400\nspeech_pad_ms = 80\n",
    )
    .unwrap();
    let r = sb.run(&["vad", "--rerun"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = shape(&sb);
    let segments_after = after.iter().map(Vec::len).sum::<usize>();
    assert_ne!(
        segments_before, segments_after,
        "the new settings find different segments"
    );
    // Still: the merge holds the sessions together, and the split still splits.
    assert_eq!(after.len(), 2, "{after:?}");
    let t = sb.run(&["timeline", "--json"]).json();
    let c = &t["conversations"];
    assert!(
        c[0]["started_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-02T09:00")
    );
    assert!(
        c[1]["finished_at"]
            .as_str()
            .unwrap()
            .starts_with("2025-06-02T09:26"),
        "{c:#}"
    );
}

#[test]
fn auto_demo_runs_and_a_second_run_resumes() {
    let sb = Sandbox::new();
    let r = sb.run(&["--auto", "--source", "demo"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("2 conversations"), "{}", r.stdout);
    // The second run resumes: nothing new to import and nothing pushable
    // yet (no transcripts), so it says so with exit 9.
    let r = sb.run(&["--auto", "--source", "demo", "--json"]);
    assert_eq!(r.code, 9, "{}", r.stderr);
    let last: Value = serde_json::from_str(r.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["event"], "job_finished");
    assert_eq!(last["report"]["conversations"], 2);
    // Every line is one JSON event.
    for line in r.stdout.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
    }
    let r = sb.run(&["--auto", "timeline"]);
    assert_eq!(r.code, 2);
    let r = sb.run(&["--auto"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("--source demo"), "{}", r.stderr);
}
