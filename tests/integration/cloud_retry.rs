//! Exactly once: a push retried through 5xx, timeouts, resets and lost
//! answers, with the real retry policy, ends with the conversation created
//! once on the contract server.

use crate::support;

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use omi_sync::cancel::{Cancel, Cancelled};
use omi_sync::clock::{Clock, SystemClock, UtcMillis};
use omi_sync::cloud::api::{OmiClient, PushOutcome};
use omi_sync::cloud::payload;
use omi_sync::cloud::ratelimit::{KeyWindow, RateLimit};
use omi_sync::cloud::retry::{self, NextStep, RetryPolicy, RunReport};

use support::contract_server::{ContractConfig, ContractServer, Fault, Route, TEST_KEY};
use support::{T0, client, client_with, conversation};

/// A virtual clock: a sleep moves it to the deadline at once (after a few
/// real ms, so the server's stalled handlers move on) and adds up how long
/// was slept.
struct VirtualClock {
    now: Mutex<UtcMillis>,
    slept: Mutex<Duration>,
}

impl VirtualClock {
    fn new() -> Self {
        VirtualClock {
            now: Mutex::new(UtcMillis(T0)),
            slept: Mutex::new(Duration::ZERO),
        }
    }

    fn slept(&self) -> Duration {
        *self.slept.lock().unwrap()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> UtcMillis {
        *self.now.lock().unwrap()
    }

    fn sleep_until(&self, until: UtcMillis, cancel: &Cancel) -> Result<(), Cancelled> {
        cancel.check()?;
        thread::sleep(Duration::from_millis(5));
        let mut now = self.now.lock().unwrap();
        let ms = until.since(*now).max(0);
        *self.slept.lock().unwrap() += Duration::from_millis(ms as u64);
        *now = (*now).max(until);
        Ok(())
    }
}

/// Runs the retry loop against the real server with a virtual clock.
fn push_on(
    clock: &dyn Clock,
    seed: u64,
    client: &OmiClient,
    req: &payload::CreateConversationRequest,
    policy: &RetryPolicy,
) -> RunReport {
    retry::run_blocking(
        policy,
        &mut fastrand::Rng::with_seed(seed),
        clock,
        &Cancel::new(),
        None,
        &mut |_| client.create_conversation(req),
    )
}

fn push(
    client: &OmiClient,
    req: &payload::CreateConversationRequest,
    policy: &RetryPolicy,
) -> RunReport {
    push_on(&VirtualClock::new(), 42, client, req, policy)
}

#[test]
fn retried_through_every_fault_it_is_created_exactly_once() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client_with(&server, TEST_KEY, Duration::from_secs(1));
    let built = payload::build(&conversation("once", 40)).unwrap();
    let faults = [
        Fault::Status(500),
        Fault::Status(503),
        Fault::Stall(Duration::from_secs(3)),
        Fault::Reset,
        Fault::Raw {
            status: 502,
            content_type: "text/html".into(),
            body: b"<html><title>Bad Gateway</title></html>".to_vec(),
        },
        // The nasty ones: the conversation is made, the answer is lost.
        Fault::ProcessThenReset,
        Fault::ProcessThenStatus(502),
        Fault::ProcessThenStall(Duration::from_secs(3)),
        Fault::Status(409),
    ];
    for f in &faults {
        server.inject_on(Route::Create, f.clone(), 1);
    }
    let policy = RetryPolicy {
        max_attempts: 20,
        ..RetryPolicy::default()
    };
    let report = push(&c, &built.request, &policy);
    assert_eq!(report.step, NextStep::Done, "{report:?}");
    // One attempt per fault plus the one that succeeds (more only if the
    // machine is so loaded that a healthy answer took over a second).
    assert!(report.attempts as usize > faults.len(), "{report:?}");
    assert_eq!(server.pending_faults(), 0);

    let session = built.session_id.as_str();
    assert_eq!(server.creations_for(session), 1, "created more than once");
    assert_eq!(server.conversations().len(), 1);
    let PushOutcome::Created { id, .. } = &report.outcome else {
        panic!("{report:?}")
    };
    assert_eq!(&server.conversations()[0].id, id);
    // Every attempt reached the server with the same idempotency key.
    let creates = server.create_requests();
    assert_eq!(creates.len(), report.attempts as usize);
    assert!(
        creates
            .iter()
            .all(|r| r.session_id.as_deref() == Some(session))
    );
}

#[test]
fn gives_up_after_max_attempts_of_temporary_failures() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    let built = payload::build(&conversation("giveup", 3)).unwrap();
    server.inject_on(Route::Create, Fault::Status(500), 10);
    let policy = RetryPolicy {
        max_attempts: 4,
        ..RetryPolicy::default()
    };
    let report = push(&c, &built.request, &policy);
    assert!(matches!(report.step, NextStep::GiveUp { ref reason } if reason.contains("HTTP 500")));
    assert_eq!(report.attempts, 4);
    assert_eq!(server.total_creations(), 0);
}

#[test]
fn rejection_and_bad_credentials_stop_at_once() {
    let server = ContractServer::start(ContractConfig {
        revoked_keys: vec![TEST_KEY.to_string()],
        ..ContractConfig::default()
    });
    let c = client(&server);
    let built = payload::build(&conversation("stop", 3)).unwrap();
    let report = push(&c, &built.request, &RetryPolicy::default());
    assert!(matches!(report.step, NextStep::NeedsCredentials { .. }));
    assert_eq!(report.attempts, 1);

    server.set_config(ContractConfig::default());
    let mut bad = built.request.clone();
    bad.transcript_segments[0].text = " ".into();
    let report = push(&c, &bad, &RetryPolicy::default());
    assert!(matches!(
        report.step,
        NextStep::MarkRejected { status: 422, ref message } if message.contains("text cannot be empty")
    ));
    assert_eq!(report.attempts, 1);
}

#[test]
fn rate_limited_push_waits_for_retry_after_then_lands_once() {
    let server = ContractServer::start(ContractConfig::default());
    let c = client(&server);
    let built = payload::build(&conversation("ratelimited", 3)).unwrap();
    server.inject_on(
        Route::Create,
        Fault::TooManyRequests {
            retry_after: Some("120".into()),
        },
        2,
    );
    let clock = VirtualClock::new();
    let report = push_on(&clock, 1, &c, &built.request, &RetryPolicy::default());
    assert_eq!(report.step, NextStep::Done);
    assert_eq!(report.attempts, 3);
    assert!(
        clock.slept() >= Duration::from_secs(240),
        "{:?}",
        clock.slept()
    );
    assert_eq!(server.creations_for(built.session_id.as_str()), 1);
}

#[test]
fn concurrent_pushes_of_one_conversation_create_it_once() {
    let server = ContractServer::start(ContractConfig {
        processing_delay: Duration::from_millis(1500),
        ..ContractConfig::default()
    });
    let built = payload::build(&conversation("race", 5)).unwrap();
    let policy = RetryPolicy {
        in_flight_delay: Duration::from_millis(100),
        ..RetryPolicy::default()
    };
    let ids: Vec<String> = thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let server = &server;
                let built = &built;
                let policy = &policy;
                s.spawn(move || {
                    thread::sleep(Duration::from_millis(i * 30));
                    let c = client(server);
                    let report = push_on(&SystemClock, i, &c, &built.request, policy);
                    match report.outcome {
                        PushOutcome::Created { id, .. } => id,
                        other => panic!("{other:?}"),
                    }
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(ids.windows(2).all(|w| w[0] == w[1]), "{ids:?}");
    assert_eq!(server.creations_for(built.session_id.as_str()), 1);
    assert!(
        server.answered("processing") >= 1,
        "the race should have produced at least one 200 `processing`"
    );
}

#[test]
fn client_side_limiter_keeps_pushes_under_the_server_limit() {
    // The server allows 3 per hour; the local limiter is told the same, so
    // pushing 5 conversations never meets a 429: the limiter makes the 4th
    // and 5th wait until the window moves on (the server's clock is moved
    // along with the virtual one).
    let server = ContractServer::start(ContractConfig {
        hourly_limit: 3,
        ..ContractConfig::default()
    });
    let c = client(&server);
    let limit = RateLimit {
        max_per_window: 3,
        window: Duration::from_secs(3600),
    };
    let mut window = KeyWindow::new();
    // In step with the server's clock (which only runs ahead of it), so both
    // see the same fixed windows.
    let mut now = UtcMillis::now();
    for i in 0..5 {
        let at = window
            .next_allowed_at(&limit, now)
            .expect("a budget above zero");
        if at > now {
            let wait = at.since(now);
            server.advance_clock(Duration::from_millis(wait as u64 + 1000));
            now = at.plus_ms(1000);
        }
        let built = payload::build(&conversation(&format!("limited-{i}"), 2)).unwrap();
        window.charge(&limit, now);
        let o = c.create_conversation(&built.request);
        assert!(o.is_created(), "push {i}: {o:?}");
        now = now.plus_ms(60_000);
        server.advance_clock(Duration::from_secs(60));
    }
    assert_eq!(server.total_creations(), 5);
    assert!(server.create_requests().iter().all(|r| r.status != 429));
}
