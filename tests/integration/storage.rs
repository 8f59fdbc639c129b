//! `omi-sync storage` and the janitor: local audio is freed only once the
//! cloud has every conversation it feeds, after the retention window, and a
//! failed delete neither stops the run nor loses track of the capture.

use crate::common::{Run, Sandbox};
use crate::push::{config, demo_ready, push};
use crate::support::contract_server::{ContractConfig, ContractServer};

use serde_json::Value;

/// `storage --json`, as the test's clock has it (`now`: RFC 3339 or None).
fn storage(sb: &Sandbox, now: Option<&str>) -> Value {
    let mut cmd = sb.cmd();
    cmd.args(["storage", "--json"]);
    if let Some(now) = now {
        cmd.env("OMI_SYNC_NOW", now);
    }
    let out = cmd.output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn prune(sb: &Sandbox, args: &[&str], now: Option<&str>) -> Run {
    let mut cmd = sb.cmd();
    cmd.args(["storage", "prune"]).args(args);
    if let Some(now) = now {
        cmd.env("OMI_SYNC_NOW", now);
    }
    Run::from(cmd.output().unwrap())
}

/// Every capture's custody (`kept`, `due`, `freed`) and stored path.
fn custody(v: &Value) -> Vec<(String, String)> {
    v["captures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["custody"].as_str().unwrap().to_string(),
                c["stored_path"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn files_present(sb: &Sandbox, v: &Value) -> usize {
    custody(v)
        .iter()
        .filter(|(_, p)| sb.data().join(p).exists())
        .count()
}

#[test]
fn nothing_is_freed_before_the_cloud_has_it_then_all_of_it_is() {
    let sb = demo_ready();
    config(&sb, "[storage]\nkeep_days = 0\n");
    let before = storage(&sb, None);
    let n = custody(&before).len();
    assert!(n >= 5, "the demo has several captures: {before}");
    // Not pushed: every capture with speech is kept, and says why.
    let kept: Vec<&Value> = before["captures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["custody"] == "kept")
        .collect();
    assert!(!kept.is_empty());
    assert!(kept.iter().all(|c| c["reason"] == "not_pushed"), "{before}");
    let r = prune(&sb, &[], None);
    assert!(r.code == 0 || r.code == 9, "{}", r.stderr);
    let after_first = storage(&sb, None);
    assert_eq!(
        files_present(&sb, &after_first),
        n - custody(&after_first)
            .iter()
            .filter(|(c, _)| c == "freed")
            .count()
    );
    assert!(
        custody(&after_first)
            .iter()
            .filter(|(c, _)| c == "freed")
            .all(|(_, p)| !sb.data().join(p).exists())
    );
    assert!(
        kept.iter()
            .all(|c| sb.data().join(c["stored_path"].as_str().unwrap()).exists()),
        "nothing unpushed was deleted"
    );

    // Pushed and confirmed: all of it is due now. A dry run lists it and
    // deletes nothing.
    let server = ContractServer::start(ContractConfig::default());
    let r = push(&sb, &server, &[]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let timeline_before = sb.run(&["timeline", "--json"]).json();
    let present = files_present(&sb, &storage(&sb, None));
    let dry = prune(&sb, &["--dry-run"], None);
    assert_eq!(dry.code, 0, "{}", dry.stderr);
    assert!(dry.stdout.contains("would free"), "{}", dry.stdout);
    assert_eq!(files_present(&sb, &storage(&sb, None)), present);

    let r = prune(&sb, &[], None);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let after = storage(&sb, None);
    assert!(custody(&after).iter().all(|(c, _)| c == "freed"), "{after}");
    assert_eq!(files_present(&sb, &after), 0);
    // The timeline, transcripts and cloud states are as they were.
    assert_eq!(sb.run(&["timeline", "--json"]).json(), timeline_before);
    // Nothing left: a second prune has nothing to do.
    assert_eq!(prune(&sb, &[], None).code, 9);
    // A VAD re-run leaves freed captures alone instead of failing.
    let r = sb.run(&["vad", "--rerun"]);
    assert!(r.code == 0 || r.code == 9, "{}\n{}", r.stdout, r.stderr);
}

#[test]
fn the_retention_window_counts_from_the_confirmation() {
    let sb = demo_ready();
    config(&sb, "[storage]\nkeep_days = 30\n");
    let server = ContractServer::start(ContractConfig::default());
    assert_eq!(push(&sb, &server, &[]).code, 0);
    let s = storage(&sb, None);
    assert!(custody(&s).iter().all(|(c, _)| c == "due"), "{s}");
    assert_eq!(s["due_now_bytes"], 0, "not before 30 days: {s}");
    assert_eq!(prune(&sb, &[], None).code, 9);
    assert_eq!(files_present(&sb, &s), custody(&s).len());
    // 31 days on, all of it goes.
    let later = (time_now() + 31 * 86_400).to_string();
    let r = prune(&sb, &[], Some(&later));
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(files_present(&sb, &s), 0);
}

#[test]
fn keep_days_never_keeps_everything() {
    let sb = demo_ready();
    config(&sb, "[storage]\nkeep_days = \"never\"\n");
    let server = ContractServer::start(ContractConfig::default());
    assert_eq!(push(&sb, &server, &[]).code, 0);
    let s = storage(&sb, Some("2100-01-01T00:00:00Z"));
    assert!(
        s["captures"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["reason"] == "kept_forever"),
        "{s}"
    );
    assert_eq!(prune(&sb, &[], Some("2100-01-01T00:00:00Z")).code, 9);
}

#[test]
fn an_edit_after_the_push_keeps_the_audio_until_the_replacement_is_confirmed() {
    let sb = demo_ready();
    config(&sb, "[storage]\nkeep_days = 0\n");
    let server = ContractServer::start(ContractConfig::default());
    assert_eq!(push(&sb, &server, &[]).code, 0);
    let t = sb.run(&["timeline", "--json"]).json();
    let ids: Vec<&str> = t["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    let r = sb.run(&["merge", ids[0], ids[1]]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let s = storage(&sb, None);
    let speech: Vec<&Value> = s["captures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["custody"] == "kept")
        .collect();
    assert!(!speech.is_empty(), "{s}");
    assert!(speech.iter().all(|c| c["reason"] == "not_pushed"), "{s}");
    let present = files_present(&sb, &s);
    prune(&sb, &[], None);
    assert!(files_present(&sb, &s) >= speech.len());
    assert!(files_present(&sb, &s) <= present);
    // The replacement pushed and confirmed: now it goes.
    assert_eq!(push(&sb, &server, &[]).code, 0);
    assert_eq!(prune(&sb, &[], None).code, 0);
    assert_eq!(files_present(&sb, &storage(&sb, None)), 0);
}

#[test]
fn a_failed_delete_is_reported_retried_and_does_not_stop_the_rest() {
    let sb = demo_ready();
    config(&sb, "[storage]\nkeep_days = 0\n");
    let server = ContractServer::start(ContractConfig::default());
    assert_eq!(push(&sb, &server, &[]).code, 0);
    let s = storage(&sb, None);
    let paths = custody(&s);
    // One capture's file replaced by a non-empty directory: it cannot be
    // deleted as a file (not even by root).
    let stuck = sb.data().join(&paths[0].1);
    std::fs::remove_file(&stuck).unwrap();
    std::fs::create_dir_all(stuck.join("x")).unwrap();
    let r = prune(&sb, &[], None);
    assert_eq!(r.code, 3, "partial: {}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("not freed"), "{}", r.stdout);
    let after = storage(&sb, None);
    let caps = after["captures"].as_array().unwrap();
    assert_eq!(caps[0]["custody"], "due", "still due, tried again: {after}");
    assert!(
        caps[0]["free_error"]
            .as_str()
            .unwrap()
            .contains("cannot delete")
    );
    assert!(caps[1..].iter().all(|c| c["custody"] == "freed"), "{after}");
    // Fixed: the next prune frees it.
    std::fs::remove_dir_all(&stuck).unwrap();
    assert_eq!(prune(&sb, &[], None).code, 0);
    let last = storage(&sb, None);
    assert!(custody(&last).iter().all(|(c, _)| c == "freed"));
    assert!(last["captures"][0]["free_error"].is_null());
}

fn time_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
