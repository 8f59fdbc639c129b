//! Requests per conversation, end to end through `omi-sync push` against the
//! contract server: on the happy path and under each fault it can inject,
//! the conversation is created exactly once, and the outbox counts it as
//! pushed only when the cloud holds it completed. Prints a table with
//! `--nocapture` (issue 11, "Measure").

use std::time::Duration;

use crate::common::{Sandbox, synthetic_backlog};
use crate::support::contract_server::{ContractConfig, ContractServer, Fault, Route, TEST_KEY};

use omi_sync::store::{LedgerReader, OutboxState};

/// At most this many `push` runs to settle a conversation.
const RUNS: usize = 4;

#[test]
fn each_fault_ends_with_one_conversation_created_once_and_counted_truthfully() {
    let html = Fault::Raw {
        status: 502,
        content_type: "text/html".into(),
        body: b"<html>Bad Gateway</html>".to_vec(),
    };
    let cases: Vec<(&str, Option<Fault>)> = vec![
        ("happy path", None),
        ("500", Some(Fault::Status(500))),
        ("502 html", Some(html)),
        (
            "429 Retry-After 1",
            Some(Fault::TooManyRequests {
                retry_after: Some("1".into()),
            }),
        ),
        (
            "503 limiter Retry-After 1",
            Some(Fault::LimiterUnavailable {
                retry_after: "1".into(),
            }),
        ),
        (
            "timeout (stall 2 s)",
            Some(Fault::Stall(Duration::from_secs(2))),
        ),
        ("connection reset", Some(Fault::Reset)),
        ("processed, answer 502", Some(Fault::ProcessThenStatus(502))),
        ("processed, reset", Some(Fault::ProcessThenReset)),
        (
            "processed, timeout",
            Some(Fault::ProcessThenStall(Duration::from_secs(2))),
        ),
        ("processing fails (500)", Some(Fault::ProcessingFails)),
        ("200 processing", Some(Fault::AnswerProcessing)),
        (
            "200 processing, then gone",
            Some(Fault::AnswerProcessingThenFail),
        ),
    ];
    let mut table = vec![format!(
        "| {:<28} | {:>7} | {:>6} | {:>5} | {:>4} | {:>7} | {:>6} |",
        "fault on the first create", "creates", "GETs", "other", "runs", "created", "pushed"
    )];
    table.push(format!(
        "|{:-<30}|{:-<9}|{:-<8}|{:-<7}|{:-<6}|{:-<9}|{:-<8}|",
        "", "", "", "", "", "", ""
    ));
    for (name, fault) in cases {
        let sb = Sandbox::new();
        // The first check of a `processing` answer after 1 s, not the
        // default 30 s: the two processing cases waited out 30 s each.
        std::fs::write(
            sb.dir.path().join("config.toml"),
            "[cloud]\nrequest_timeout_secs = 1\nconfirm_check_secs = 1\n",
        )
        .unwrap();
        synthetic_backlog(&sb.data(), 1);
        let server = ContractServer::start(ContractConfig::default());
        if let Some(f) = fault {
            server.inject_on(Route::Create, f, 1);
        }
        let mut runs = 0;
        let settled = |data: &std::path::Path| {
            LedgerReader::open(data)
                .unwrap()
                .outbox()
                .unwrap()
                .iter()
                .all(|o| o.state == OutboxState::Pushed)
        };
        while runs < RUNS {
            runs += 1;
            let r = crate::common::Run::from(
                sb.cmd()
                    .args(["push", "--quiet", "--api-url"])
                    .arg(server.base_url())
                    .env("OMI_API_KEY", TEST_KEY)
                    .output()
                    .unwrap(),
            );
            assert!(
                [0, 5].contains(&r.code),
                "{name}: run {runs} exit {}: {}",
                r.code,
                r.stderr
            );
            if settled(&sb.data()) {
                break;
            }
        }
        let outbox = LedgerReader::open(&sb.data()).unwrap().outbox().unwrap();
        assert_eq!(outbox.len(), 1, "{name}");
        let row = &outbox[0];
        assert_eq!(row.state, OutboxState::Pushed, "{name}: {row:?}");
        let live = server.conversations();
        assert_eq!(live.len(), 1, "{name}: the cloud holds it once");
        assert_eq!(live[0].status, "completed", "{name}");
        assert_eq!(row.cloud_id.as_deref(), Some(live[0].id.as_str()), "{name}");
        let session = row.push.session_id.as_str();
        assert_eq!(
            server.creations_for(session),
            1,
            "{name}: created more than once"
        );
        let requests = server.requests();
        let creates = server.create_requests().len();
        let gets = requests
            .iter()
            .filter(|r| r.method == "GET" && r.path.contains("/conversations/"))
            .count();
        let other = requests.len() - creates - gets;
        if name == "happy path" {
            assert_eq!(creates, 1, "exactly one create on the happy path");
        }
        table.push(format!(
            "| {name:<28} | {creates:>7} | {gets:>6} | {other:>5} | {runs:>4} | {:>7} | {:>6} |",
            server.creations_for(session),
            "yes"
        ));
    }
    println!("\n{}", table.join("\n"));
}
