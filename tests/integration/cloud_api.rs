//! The API client against the contract server over loopback: every server
//! outcome is classified right, and list/get/delete work.

use crate::support;

use std::net::TcpListener;
use std::time::Duration;

use omi_sync::cloud::api::{ApiError, ClientConfig, Deleted, ListQuery, OmiClient, PushOutcome};
use omi_sync::cloud::credentials::ApiKey;
use omi_sync::cloud::payload::{self, CreateConversationRequest};
use omi_sync::http::RetryAfter;

use support::contract_server::{
    CONVERSATIONS_PATH, CREATE_PATH, ContractConfig, ContractServer, Fault, OTHER_KEY, Route,
    TEST_KEY,
};
use support::{client, client_with, conversation};

fn request(tag: &str) -> CreateConversationRequest {
    payload::build(&conversation(tag, 4)).unwrap().request
}

fn assert_temporary(o: &PushOutcome, needle: &str) {
    match o {
        PushOutcome::Temporary { reason } => {
            assert!(
                reason.to_lowercase().contains(needle),
                "reason {reason:?} lacks {needle:?}"
            )
        }
        other => panic!("expected Temporary containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn created_then_repeat_returns_the_same_conversation() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    let req = request("a");
    let first = c.create_conversation(&req);
    let PushOutcome::Created {
        id,
        status,
        discarded,
    } = &first
    else {
        panic!("{first:?}")
    };
    assert_eq!(status, "completed");
    assert!(!discarded);
    let again = c.create_conversation(&req);
    assert_eq!(again, first);
    assert_eq!(server.creations_for(&req.client_session_id), 1);
    assert_eq!(server.conversations().len(), 1);
    assert_eq!(&server.conversations()[0].id, id);
    let reqs = server.create_requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(
        reqs[0].session_id.as_deref(),
        Some(req.client_session_id.as_str())
    );
    assert_eq!(
        reqs[0].key_fingerprint.as_deref(),
        Some(ApiKey::parse(TEST_KEY).unwrap().fingerprint().as_str())
    );
}

#[test]
fn created_201_is_accepted() {
    let server = ContractServer::start(ContractConfig::default());
    server.inject_on(
        Route::Create,
        Fault::Raw {
            status: 201,
            content_type: "application/json".into(),
            body: br#"{"id":"x-201","status":"processing","discarded":false}"#.to_vec(),
        },
        1,
    );
    let o = client(&server).create_conversation(&request("b"));
    assert_eq!(
        o,
        PushOutcome::Created {
            id: "x-201".into(),
            status: "processing".into(),
            discarded: false
        }
    );
}

#[test]
fn unauthorized_and_forbidden_keep_the_message() {
    let server = ContractServer::start(ContractConfig {
        revoked_keys: vec![OTHER_KEY.to_string()],
        read_only_keys: vec![TEST_KEY.to_string()],
        ..ContractConfig::default()
    });
    let revoked = client_with(&server, OTHER_KEY, Duration::from_secs(5));
    match revoked.create_conversation(&request("c")) {
        PushOutcome::Unauthorized {
            status: 401,
            message,
            ..
        } => assert_eq!(message, "Invalid API key"),
        other => panic!("{other:?}"),
    }
    let read_only = client(&server);
    match read_only.create_conversation(&request("c")) {
        PushOutcome::Unauthorized {
            status: 403,
            message,
            ..
        } => {
            assert!(message.contains("conversations:write"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // Reads still work with a read-only key; a revoked one fails them too.
    assert!(read_only.list_conversations(&ListQuery::default()).is_ok());
    assert!(matches!(
        revoked.list_conversations(&ListQuery::default()),
        Err(ApiError::Unauthorized { status: 401, .. })
    ));
    assert_eq!(server.total_creations(), 0);
}

#[test]
fn validation_errors_are_rejected_with_the_servers_message() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    let mut req = request("d");
    req.transcript_segments[2].end = req.transcript_segments[2].start;
    match c.create_conversation(&req) {
        PushOutcome::Rejected {
            status: 422,
            message,
        } => {
            assert_eq!(message, "Segment 2: end time must be after start time")
        }
        other => panic!("{other:?}"),
    }
    let mut req = request("d");
    req.source = "pendant".into();
    assert!(matches!(
        c.create_conversation(&req),
        PushOutcome::Rejected { status: 422, message } if message.contains("source")
    ));
    let mut req = request("d");
    req.finished_at = req.started_at.clone();
    assert!(matches!(
        c.create_conversation(&req),
        PushOutcome::Rejected { status: 422, message } if message == "finished_at must be after started_at"
    ));
    let mut req = request("d");
    req.client_session_id = "x".repeat(201);
    assert!(matches!(
        c.create_conversation(&req),
        PushOutcome::Rejected { status: 422, message } if message.contains("1-200")
    ));
    assert_eq!(server.total_creations(), 0);
}

#[test]
fn a_409_in_the_narrow_race_is_in_flight() {
    // The real backend answers a repeat 200 `processing` (`cloud_contract`);
    // 409 happens only in a narrow race, injected here.
    let server = ContractServer::start(ContractConfig::default());
    let req = request("e");
    server.inject_on(Route::Create, Fault::Status(409), 1);
    assert_eq!(
        client(&server).create_conversation(&req),
        PushOutcome::InFlight
    );
    assert!(client(&server).create_conversation(&req).is_completed());
    assert_eq!(server.creations_for(&req.client_session_id), 1);
}

#[test]
fn hourly_limit_gives_429_with_retry_after_seconds_or_date() {
    let server = ContractServer::start(ContractConfig {
        hourly_limit: 2,
        ..ContractConfig::default()
    });
    let c = client(&server);
    assert!(c.create_conversation(&request("f1")).is_created());
    assert!(c.create_conversation(&request("f2")).is_created());
    match c.create_conversation(&request("f3")) {
        PushOutcome::RateLimited {
            status: 429,
            retry_after: Some(RetryAfter::Delay(d)),
        } => assert!(
            d <= Duration::from_secs(3600),
            "until the next clock hour: {d:?}"
        ),
        other => panic!("{other:?}"),
    }
    // Another key has its own window.
    let other = client_with(&server, OTHER_KEY, Duration::from_secs(5));
    assert!(other.create_conversation(&request("f3")).is_created());
    // In the next window, creation works again.
    server.advance_clock(Duration::from_secs(3600));
    assert!(c.create_conversation(&request("f3")).is_created());

    server.set_config(ContractConfig {
        hourly_limit: 0,
        retry_after_as_date: true,
        ..ContractConfig::default()
    });
    match c.create_conversation(&request("f4")) {
        PushOutcome::RateLimited {
            retry_after: Some(RetryAfter::At(_)),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    server.inject_on(
        Route::Create,
        Fault::TooManyRequests { retry_after: None },
        1,
    );
    assert_eq!(
        c.create_conversation(&request("f5")),
        PushOutcome::RateLimited {
            status: 429,
            retry_after: None
        }
    );
}

#[test]
fn server_errors_are_temporary() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    server.inject_on(Route::Create, Fault::Status(500), 1);
    assert_temporary(&c.create_conversation(&request("g")), "http 500");
    server.inject_on(
        Route::Create,
        Fault::Raw {
            status: 502,
            content_type: "text/html".into(),
            body: b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
                .to_vec(),
        },
        1,
    );
    assert_temporary(
        &c.create_conversation(&request("g")),
        "html error page: 502 bad gateway",
    );
    server.inject_on(
        Route::Create,
        Fault::Raw {
            status: 503,
            content_type: "text/plain".into(),
            body: vec![b'z'; 3 * 1024 * 1024],
        },
        1,
    );
    let o = c.create_conversation(&request("g"));
    assert_temporary(&o, "http 503");
    assert!(o.to_string().len() < 1000);
    assert_eq!(server.total_creations(), 0);
}

#[test]
fn odd_success_answers_are_temporary_not_panics() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    for body in [
        &b""[..],
        b"<html>maintenance</html>",
        b"{\"status\":\"completed\"}",
        b"\xff\xfe\x00garbage",
    ] {
        server.inject_on(
            Route::Create,
            Fault::Raw {
                status: 200,
                content_type: "application/json".into(),
                body: body.to_vec(),
            },
            1,
        );
        assert_temporary(&c.create_conversation(&request("h")), "retrying is safe");
    }
    // A success body larger than the client reads.
    let small = OmiClient::new(
        ClientConfig {
            max_response_bytes: 1024,
            ..ClientConfig::with_base_url(&server.base_url())
        },
        ApiKey::parse(TEST_KEY).unwrap(),
    )
    .unwrap();
    let mut huge = br#"{"id":"x","pad":""#.to_vec();
    huge.extend(std::iter::repeat_n(b'a', 5 * 1024 * 1024));
    huge.extend(br#""}"#);
    server.inject_on(
        Route::Create,
        Fault::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: huge,
        },
        1,
    );
    assert_temporary(&small.create_conversation(&request("h")), "too large");
}

#[test]
fn timeouts_resets_and_refusals_are_temporary() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client_with(&server, TEST_KEY, Duration::from_millis(400));
    server.inject_on(Route::Create, Fault::Stall(Duration::from_secs(3)), 1);
    assert_temporary(&c.create_conversation(&request("i")), "no answer in time");

    server.inject_on(Route::Create, Fault::Reset, 1);
    let o = c.create_conversation(&request("i"));
    match &o {
        PushOutcome::Temporary { reason } => assert!(
            reason.contains("reset") || reason.contains("closed"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.total_creations(), 0);
    assert_eq!(server.create_requests().last().unwrap().status, 0);

    // Nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nowhere = OmiClient::new(
        ClientConfig::with_base_url(&format!("http://127.0.0.1:{port}")),
        ApiKey::parse(TEST_KEY).unwrap(),
    )
    .unwrap();
    assert_temporary(&nowhere.create_conversation(&request("i")), "refused");
    assert!(matches!(
        nowhere.get_conversation("x"),
        Err(ApiError::Temporary { .. })
    ));
}

#[test]
fn list_get_delete() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    let mut ids = Vec::new();
    for tag in ["l1", "l2", "l3"] {
        match c.create_conversation(&request(tag)) {
            PushOutcome::Created { id, .. } => ids.push(id),
            other => panic!("{other:?}"),
        }
    }
    // Someone else's conversation is invisible.
    let other = client_with(&server, OTHER_KEY, Duration::from_secs(5));
    assert!(other.create_conversation(&request("l4")).is_created());

    let all = c.list_all(2, 1000).unwrap();
    let mut listed: Vec<_> = all.iter().map(|x| x.id.clone()).collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(all.iter().all(|x| x.source.as_deref() == Some("sdcard")));
    let page = c
        .list_conversations(&ListQuery {
            limit: 500, // clamped to 100
            ..ListQuery::default()
        })
        .unwrap();
    assert_eq!(page.len(), 3);
    let lists: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == CONVERSATIONS_PATH)
        .collect();
    assert!(
        lists
            .iter()
            .all(|r| r.query.as_deref().unwrap().contains("limit="))
    );
    assert!(
        lists
            .last()
            .unwrap()
            .query
            .as_deref()
            .unwrap()
            .contains("limit=100")
    );

    let one = c.get_conversation(&ids[1]).unwrap().unwrap();
    assert_eq!(one.id, ids[1]);
    assert!(one.started_at.is_some());
    assert_eq!(c.delete_conversation(&ids[1]).unwrap(), Deleted::Deleted);
    assert_eq!(c.get_conversation(&ids[1]).unwrap(), None);
    assert_eq!(c.delete_conversation(&ids[1]).unwrap(), Deleted::NotFound);
    assert_eq!(c.list_all(100, 1000).unwrap().len(), 2);
    assert_eq!(c.get_conversation("../../etc/passwd").unwrap(), None);

    // A deleted conversation leaves a tombstone: a create under the same
    // session id is refused (upstream has not settled this, so omi-sync
    // re-pushes under a new session id, and the server models the strict case).
    assert!(matches!(
        c.create_conversation(&request("l2")),
        PushOutcome::Rejected { status: 410, .. }
    ));
    assert_eq!(server.creations_for(&request("l2").client_session_id), 1);

    server.inject_on(Route::Delete, Fault::Status(500), 1);
    assert!(matches!(
        c.delete_conversation(&ids[0]),
        Err(ApiError::Temporary { .. })
    ));
    server.inject_on(Route::Get, Fault::Status(500), 1);
    assert!(c.get_conversation(&ids[0]).unwrap_err().is_temporary());
    server.inject_on(
        Route::List,
        Fault::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: b"{\"not\":\"a list\"}".to_vec(),
        },
        1,
    );
    assert!(matches!(
        c.list_conversations(&ListQuery::default()),
        Err(ApiError::BadResponse { .. })
    ));
    server.inject_on(
        Route::List,
        Fault::Raw {
            status: 200,
            content_type: "application/json".into(),
            body: br#"[{"id":"ok"},{"no":"id"},7]"#.to_vec(),
        },
        1,
    );
    let page = c.list_conversations(&ListQuery::default()).unwrap();
    assert_eq!(page.len(), 1);
}

#[test]
fn unknown_path_means_the_route_is_gone_not_retried() {
    let server = ContractServer::start(ContractConfig::default());
    let c = OmiClient::new(
        ClientConfig::with_base_url(&format!("{}/wrong-prefix", server.base_url())),
        ApiKey::parse(TEST_KEY).unwrap(),
    )
    .unwrap();
    // A 404 on the create route is no conversation's fault: the route is
    // gone (or the address is wrong), and the run stops on it.
    assert!(matches!(
        c.create_conversation(&request("m")),
        PushOutcome::WrongEndpoint { status: 404, .. }
    ));
    assert_eq!(server.requests().len(), 1, "not retried");
    assert!(server.requests().iter().all(|r| r.path != CREATE_PATH));
}
