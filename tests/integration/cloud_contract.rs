//! The API as the real backend behaves (`omi-facts.md` §5), as the contract
//! server models it and the client reads it: `processing` answers are
//! provisional, failed processing deletes the conversation, stale claims are
//! redone, one fixed-window budget is shared by every write and charged
//! before validation, 402 for locked conversations, 404 for a gone route,
//! tombstones after a delete, and the key's scopes.

use crate::support;

use std::thread;
use std::time::Duration;

use omi_sync::cloud::api::{ApiError, PushOutcome, STATUS_COMPLETED};
use omi_sync::cloud::payload::{self, CreateConversationRequest};
use omi_sync::http::RetryAfter;

use support::contract_server::{
    COMPLETED, ContractConfig, ContractServer, Fault, PROCESSING, Route, TEST_KEY,
};
use support::{client, client_with, conversation};

fn request(tag: &str) -> CreateConversationRequest {
    payload::build(&conversation(tag, 3)).unwrap().request
}

fn created(o: &PushOutcome) -> (String, String) {
    match o {
        PushOutcome::Created { id, status, .. } => (id.clone(), status.clone()),
        other => panic!("expected a created conversation, got {other:?}"),
    }
}

#[test]
fn a_repeat_while_processing_answers_200_processing_with_the_same_id() {
    let server = ContractServer::start(ContractConfig {
        processing_delay: Duration::from_millis(1500),
        ..ContractConfig::default()
    });
    let req = request("repeat");
    let (first, second) = thread::scope(|s| {
        let a = s.spawn(|| client(&server).create_conversation(&req));
        while server.create_requests().is_empty() {
            thread::sleep(Duration::from_millis(10));
        }
        let b = client(&server).create_conversation(&req);
        (a.join().unwrap(), b)
    });
    let (id, status) = created(&first);
    assert_eq!(status, STATUS_COMPLETED);
    assert_eq!(created(&second), (id.clone(), PROCESSING.to_string()));
    assert!(!second.is_completed(), "a processing answer is provisional");
    let got = client(&server).get_conversation(&id).unwrap().unwrap();
    assert!(got.is_completed());
    assert_eq!(server.creations_for(&req.client_session_id), 1);
    assert_eq!(server.answered(PROCESSING), 1);
}

#[test]
fn failed_processing_deletes_the_conversation_behind_a_processing_answer() {
    let server = ContractServer::start(ContractConfig {
        processing_delay: Duration::from_millis(300),
        ..ContractConfig::default()
    });
    let c = client(&server);
    let req = request("fails");
    server.inject_on(Route::Create, Fault::AnswerProcessingThenFail, 1);
    let (id, status) = created(&c.create_conversation(&req));
    assert_eq!(status, PROCESSING);
    thread::sleep(Duration::from_millis(600));
    assert_eq!(
        c.get_conversation(&id).unwrap(),
        None,
        "processing failed: gone"
    );
    assert_eq!(server.creations_for(&req.client_session_id), 0);
    // The same request again makes it, under the same id.
    let (again, status) = created(&c.create_conversation(&req));
    assert_eq!((again.as_str(), status.as_str()), (id.as_str(), COMPLETED));
    assert_eq!(server.creations_for(&req.client_session_id), 1);

    // A failure the first request sees itself is a 500, and the row is gone.
    let other = request("fails-direct");
    server.inject_on(Route::Create, Fault::ProcessingFails, 1);
    assert!(matches!(
        c.create_conversation(&other),
        PushOutcome::Temporary { .. }
    ));
    assert!(
        server
            .conversations()
            .iter()
            .all(|x| x.session_id.as_deref() != Some(other.client_session_id.as_str()))
    );
}

#[test]
fn a_stale_claim_is_dropped_and_redone_by_the_next_request() {
    let server = ContractServer::start(ContractConfig {
        stale_after: Duration::from_millis(800),
        ..ContractConfig::default()
    });
    let c = client(&server);
    let req = request("stale");
    server.inject_on(Route::Create, Fault::ProcessingHangs, 1);
    assert!(matches!(
        c.create_conversation(&req),
        PushOutcome::Temporary { .. }
    ));
    let (id, status) = created(&c.create_conversation(&req));
    assert_eq!(status, PROCESSING, "a fresh claim is answered as it is");
    thread::sleep(Duration::from_millis(900));
    assert_eq!(
        created(&c.create_conversation(&req)),
        (id, COMPLETED.to_string())
    );
    assert_eq!(server.creations_for(&req.client_session_id), 1);
    assert_eq!(server.conversations().len(), 1);
}

#[test]
fn creates_deletes_and_patches_share_one_fixed_window_charged_before_validation() {
    let server = ContractServer::start(ContractConfig {
        hourly_limit: 3,
        ..ContractConfig::default()
    });
    let c = client(&server);
    let ok = c.create(&request("budget-1"));
    let (id, _) = created(&ok.value);
    let budget = ok.budget.expect("X-RateLimit-* on a write");
    assert_eq!((budget.limit, budget.remaining), (Some(3), Some(2)));
    assert!(
        matches!(budget.reset, Some(RetryAfter::At(_))),
        "{budget:?}"
    );
    // A 422 is charged too.
    let mut bad = request("budget-2");
    bad.transcript_segments.clear();
    let refused = c.create(&bad);
    assert!(matches!(
        refused.value,
        PushOutcome::Rejected { status: 422, .. }
    ));
    assert_eq!(refused.budget.and_then(|b| b.remaining), Some(1));
    // Reads are not.
    assert!(c.get_conversation(&id).unwrap().is_some());
    let deleted = c.delete(&id);
    assert!(deleted.value.is_ok());
    assert_eq!(deleted.budget.and_then(|b| b.remaining), Some(0));
    // The fourth write of the window waits for the next clock hour.
    match c.create(&request("budget-3")).value {
        PushOutcome::RateLimited {
            status: 429,
            retry_after: Some(RetryAfter::Delay(d)),
        } => assert!(d <= Duration::from_secs(3600), "{d:?}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        c.delete_conversation("no-such-id"),
        Err(ApiError::RateLimited { status: 429, .. })
    ));
    server.advance_clock(Duration::from_secs(3600));
    assert!(c.create_conversation(&request("budget-3")).is_completed());
}

#[test]
fn a_503_from_the_limiter_asks_to_wait_like_a_429() {
    let server = ContractServer::start(ContractConfig::default());
    server.inject_on(
        Route::Create,
        Fault::LimiterUnavailable {
            retry_after: "7".into(),
        },
        1,
    );
    assert_eq!(
        client(&server).create_conversation(&request("503")),
        PushOutcome::RateLimited {
            status: 503,
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(7)))
        }
    );
}

#[test]
fn a_locked_conversation_is_hidden_and_refuses_changes_with_402() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    let (id, _) = created(&c.create_conversation(&request("locked")));
    server.lock(&id, true);
    assert_eq!(c.get_conversation(&id).unwrap(), None);
    assert!(
        c.list_conversations(&Default::default())
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        c.delete_conversation(&id),
        Err(ApiError::Locked { .. })
    ));
    server.lock(&id, false);
    assert!(c.delete_conversation(&id).is_ok());
}

#[test]
fn a_gone_create_route_is_a_wrong_endpoint_not_a_rejection() {
    let server = ContractServer::start(ContractConfig {
        create_route_gone: true,
        ..ContractConfig::default()
    });
    match client(&server).create_conversation(&request("gone")) {
        PushOutcome::WrongEndpoint {
            status: 404,
            message,
        } => {
            assert!(message.contains("no create route"), "{message}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_deleted_session_id_is_tombstoned() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    let req = request("tomb");
    let (id, _) = created(&c.create_conversation(&req));
    assert!(c.delete_conversation(&id).is_ok());
    assert!(matches!(
        c.create_conversation(&req),
        PushOutcome::Rejected { status: 410, .. }
    ));
    server.set_config(ContractConfig {
        refuse_after_delete: false,
        ..ContractConfig::default()
    });
    assert!(c.create_conversation(&req).is_completed());
}

#[test]
fn the_key_route_lists_the_scopes() {
    let read_only = "omi_dev_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let server = ContractServer::start(ContractConfig {
        read_only_keys: vec![read_only.into()],
        ..ContractConfig::default()
    });
    let full = client(&server).key_info().unwrap().unwrap();
    assert_eq!(full.has_scope("conversations:write"), Some(true));
    let ro = client_with(&server, read_only, Duration::from_secs(5))
        .key_info()
        .unwrap()
        .unwrap();
    assert_eq!(ro.has_scope("conversations:write"), Some(false));
    assert_ne!(read_only, TEST_KEY);
}
