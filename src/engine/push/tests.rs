//! The push engine against a fake cloud on a [`ManualClock`]: budgets in
//! fixed windows, waits, confirmation of `processing` answers, retries,
//! stops, cancels; and the plan over edits, undos and vanished segments.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use super::*;
use crate::cancel::Cancel;
use crate::clock::{Clock, ClockTrust, ManualClock, SystemClock, UtcMillis};
use crate::cloud::KeyFingerprint;
use crate::cloud::api::{KeyInfo, STATUS_COMPLETED};
use crate::cloud::payload::CreateConversationRequest;
use crate::engine::ctx::Ctx;
use crate::engine::events::{Collect, Event, JobId, WaitReason};
use crate::http::RetryAfter;
use crate::store::{Ledger, OutboxState};
use crate::timeline::{self, Boundary, Domain, Override, Rules, Segment, SegmentStatus};

/// 2024-05-29T16:00:00Z, on a clock hour.
const HOUR: UtcMillis = UtcMillis(1_716_998_400_000);
const MIN: i64 = 60_000;

/// What the fake answers to the next create, instead of storing it completed.
#[derive(Debug, Clone)]
enum Script {
    /// Answer exactly this (nothing stored).
    Answer(PushOutcome),
    /// Store it `processing` and answer so.
    Processing,
    /// Answer `processing`, store nothing (its processing fails at once).
    ProcessingThenFail,
}

#[derive(Default)]
struct FakeState {
    /// session id → (cloud id, status).
    stored: HashMap<String, (String, String)>,
    creates: VecDeque<Script>,
    deletes: VecDeque<Result<Deleted, ApiError>>,
    /// Every request, in order: `POST sid`, `GET id`, `DELETE id`, `KEY`.
    log: Vec<String>,
    scopes: Option<Vec<String>>,
    /// Rate-limit headers on every answer.
    budget: Option<ServerBudget>,
    /// A GET turns `processing` into `completed` after this many checks.
    completes_after: Option<u32>,
    checks: u32,
}

struct FakeCloud {
    key: KeyFingerprint,
    state: Mutex<FakeState>,
}

use crate::cloud::api::{ApiError, Deleted, PushOutcome, Reply, ServerBudget};

impl FakeCloud {
    fn new() -> Self {
        FakeCloud {
            key: KeyFingerprint::of("omi_dev_0123456789abcdef0123456789abcdef"),
            state: Mutex::new(FakeState {
                scopes: Some(vec![
                    "conversations:read".into(),
                    "conversations:write".into(),
                ]),
                ..FakeState::default()
            }),
        }
    }

    /// The state, locked. Bounded: a lock still held (a guard kept alive
    /// by an assertion that then formats the state again) panics after 5 s
    /// instead of hanging the test.
    fn s(&self) -> std::sync::MutexGuard<'_, FakeState> {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.state.try_lock() {
                Ok(g) => return g,
                Err(std::sync::TryLockError::Poisoned(p)) => return p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "the fake cloud's state stayed locked for 5 s"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    /// Every request so far (a copy: no lock is held).
    fn log(&self) -> Vec<String> {
        self.s().log.clone()
    }

    fn script(&self, s: Script, times: usize) {
        for _ in 0..times {
            self.s().creates.push_back(s.clone());
        }
    }

    fn count(&self, prefix: &str) -> usize {
        self.s()
            .log
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    fn completed(&self) -> usize {
        self.s()
            .stored
            .values()
            .filter(|(_, st)| st == STATUS_COMPLETED)
            .count()
    }

    fn reply<T>(&self, value: T) -> Reply<T> {
        Reply {
            value,
            budget: self.s().budget,
        }
    }
}

fn cloud_id(session: &str) -> String {
    format!("cloud-{}", &session[session.len() - 8..])
}

impl CloudApi for FakeCloud {
    fn create(&self, request: &CreateConversationRequest) -> Reply<PushOutcome> {
        let sid = request.client_session_id.clone();
        let mut s = self.s();
        s.log.push(format!("POST {sid}"));
        let id = cloud_id(&sid);
        let outcome = match s.creates.pop_front() {
            Some(Script::Answer(o)) => o,
            Some(Script::Processing) => {
                s.stored.insert(sid, (id.clone(), "processing".into()));
                PushOutcome::Created {
                    id,
                    status: "processing".into(),
                    discarded: false,
                }
            }
            Some(Script::ProcessingThenFail) => PushOutcome::Created {
                id,
                status: "processing".into(),
                discarded: false,
            },
            None => {
                let (id, status) = s
                    .stored
                    .entry(sid)
                    .or_insert((id, STATUS_COMPLETED.into()))
                    .clone();
                PushOutcome::Created {
                    id,
                    status,
                    discarded: false,
                }
            }
        };
        drop(s);
        self.reply(outcome)
    }

    fn get(&self, id: &str) -> Reply<Result<Option<CloudConversation>, ApiError>> {
        let mut s = self.s();
        s.log.push(format!("GET {id}"));
        s.checks += 1;
        let checks = s.checks;
        let done_after = s.completes_after;
        let found = s.stored.values_mut().find(|(cid, _)| cid == id).map(|e| {
            if done_after.is_some_and(|n| checks >= n) {
                e.1 = STATUS_COMPLETED.into();
            }
            e.1.clone()
        });
        drop(s);
        self.reply(Ok(found.map(|status| CloudConversation {
            id: id.to_string(),
            status: Some(status),
            discarded: false,
            created_at: None,
            started_at: None,
            finished_at: None,
            title: None,
            source: None,
            language: None,
            segment_count: None,
            raw: serde_json::Value::Null,
        })))
    }

    fn delete(&self, id: &str) -> Reply<Result<Deleted, ApiError>> {
        let mut s = self.s();
        s.log.push(format!("DELETE {id}"));
        let r = match s.deletes.pop_front() {
            Some(r) => r,
            None => {
                let before = s.stored.len();
                s.stored.retain(|_, (cid, _)| cid != id);
                Ok(if s.stored.len() < before {
                    Deleted::Deleted
                } else {
                    Deleted::NotFound
                })
            }
        };
        drop(s);
        self.reply(r)
    }

    fn key_info(&self) -> Result<Option<KeyInfo>, ApiError> {
        let mut s = self.s();
        s.log.push("KEY".into());
        Ok(Some(KeyInfo {
            name: Some("test".into()),
            scopes: s.scopes.clone(),
        }))
    }

    fn key(&self) -> &KeyFingerprint {
        &self.key
    }
}

/// A segment of `device` at `start_s` seconds after [`HOUR`], 3 s long, with text.
fn seg(id: i64, start_s: i64) -> Segment {
    let start = HOUR.plus_ms(start_s * 1000);
    let text = format!("words of segment {id}");
    let span = (start, start.plus_ms(3000));
    Segment::for_test(
        id,
        "omi",
        ClockTrust::Wall,
        span,
        SegmentStatus::Speech,
        Some(&text),
    )
}

/// `n` conversations of two segments each, ten minutes apart.
fn segments(n: i64) -> Vec<Segment> {
    (0..n)
        .flat_map(|c| [seg(c * 2, c * 600), seg(c * 2 + 1, c * 600 + 10)])
        .collect()
}

fn layout(segs: &[Segment], overrides: &[Override]) -> crate::timeline::Timeline {
    timeline::build(segs, overrides, &Rules::default())
}

/// A join of the boundary before segment `id` (a merge).
fn join_at(segs: &[Segment], id: i64) -> Override {
    let s = segs.iter().find(|s| s.id == id).unwrap();
    Override {
        device: s.device.clone(),
        domain: Domain::Wall,
        anchor: s.start,
        boundary: Boundary::Join,
    }
}

struct Bench {
    _dir: tempfile::TempDir,
    ledger: Ledger,
    cloud: FakeCloud,
    clock: ManualClock,
    events: Collect,
    cancel: Cancel,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        Bench {
            _dir: dir,
            ledger,
            cloud: FakeCloud::new(),
            clock: ManualClock::new(HOUR.plus_ms(MIN)),
            events: Collect::new(),
            cancel: Cancel::new(),
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        Ctx::new(JobId(1), &self.events, self.cancel.clone(), &self.clock)
    }

    /// Plans `timeline`, applies it, sends: one `push`.
    fn push(&self, timeline: &crate::timeline::Timeline, opts: &PushOptions) -> PushReport {
        let p = plan(&self.ledger, timeline, opts).unwrap();
        apply(&self.ledger, &p).unwrap();
        stage::send_checked(&self.ledger, &self.cloud, opts, &self.ctx()).unwrap()
    }

    fn states(&self) -> Vec<OutboxState> {
        self.ledger
            .outbox()
            .unwrap()
            .iter()
            .map(|r| r.state)
            .collect()
    }

    fn waits(&self) -> Vec<WaitReason> {
        self.events
            .events()
            .into_iter()
            .filter_map(|e| match e {
                Event::Waiting { reason, .. } => Some(reason),
                _ => None,
            })
            .collect()
    }
}

fn opts() -> PushOptions {
    PushOptions::default()
}

fn waiting() -> PushOptions {
    PushOptions {
        wait: true,
        ..PushOptions::default()
    }
}

#[test]
fn the_happy_path_is_one_create_each_and_one_key_check() {
    let b = Bench::new();
    let t = layout(&segments(3), &[]);
    let r = b.push(&t, &opts());
    assert_eq!(
        (r.created, r.create_requests, r.queued, r.confirming),
        (3, 3, 0, 0)
    );
    assert_eq!(b.cloud.count("POST"), 3);
    assert_eq!(b.cloud.count("KEY"), 1);
    assert_eq!(b.cloud.count("GET"), 0);
    assert!(b.states().iter().all(|s| *s == OutboxState::Pushed));
    // A second push sends nothing at all.
    let r = b.push(&t, &opts());
    assert_eq!(r, PushReport::default());
    assert_eq!(b.cloud.log().len(), 4);
}

#[test]
fn processing_is_confirmed_before_it_counts_as_pushed() {
    let b = Bench::new();
    b.cloud.script(Script::Processing, 1);
    b.cloud.s().completes_after = Some(2);
    let t = layout(&segments(1), &[]);
    let r = b.push(&t, &waiting());
    assert_eq!(r.created, 1);
    assert_eq!((b.cloud.count("POST"), b.cloud.count("GET")), (1, 2));
    assert_eq!(b.states(), vec![OutboxState::Pushed]);
    assert!(b.waits().contains(&WaitReason::Confirming));
    // The checks waited 30 s, then as long as it had been processing.
    let sleeps = b.clock.sleeps();
    assert_eq!(sleeps[0], HOUR.plus_ms(MIN + 30_000));
    assert_eq!(sleeps[1], HOUR.plus_ms(MIN + 60_000));
}

#[test]
fn without_wait_a_slow_confirmation_is_reported_not_counted() {
    let b = Bench::new();
    b.cloud.script(Script::Processing, 1);
    let t = layout(&segments(1), &[]);
    let o = PushOptions {
        max_wait_in_run: Duration::from_secs(45),
        ..opts()
    };
    let r = b.push(&t, &o);
    assert_eq!((r.created, r.confirming, r.queued), (0, 1, 0));
    assert_eq!(b.states(), vec![OutboxState::Confirming]);
    assert!(r.next_attempt_at.is_some());
}

#[test]
fn without_wait_all_the_waits_of_a_run_together_stay_within_its_bound() {
    let b = Bench::new();
    b.cloud.script(Script::Processing, 1);
    // Never completes: each wait alone is under the bound, the sum is not.
    let t = layout(&segments(1), &[]);
    let o = PushOptions {
        max_wait_in_run: Duration::from_secs(90),
        ..opts()
    };
    let r = b.push(&t, &o);
    assert_eq!((r.created, r.confirming), (0, 1));
    let slept: i64 = b
        .clock
        .sleeps()
        .last()
        .map_or(0, |t| t.since(HOUR.plus_ms(MIN)));
    assert!(
        slept <= 90_000,
        "slept {slept} ms in one run without --wait"
    );
    assert_eq!(
        b.cloud.count("GET"),
        2,
        "checks at 30 s and 60 s, then the run ends"
    );
}

#[test]
fn a_conversation_whose_processing_failed_is_sent_again_once() {
    let b = Bench::new();
    b.cloud.script(Script::ProcessingThenFail, 1);
    let t = layout(&segments(1), &[]);
    let r = b.push(&t, &waiting());
    assert_eq!(r.created, 1);
    assert_eq!(
        b.cloud.log().len(),
        4,
        "KEY, POST, GET (gone), POST: {:?}",
        b.cloud.log()
    );
    assert_eq!((b.cloud.count("POST"), b.cloud.count("GET")), (2, 1));
    assert_eq!(b.cloud.completed(), 1);
}

#[test]
fn a_stale_claim_is_sent_again_after_the_stale_time() {
    let b = Bench::new();
    // Stays `processing` for ever, until a new request redoes it.
    b.cloud.script(Script::Processing, 1);
    let t = layout(&segments(1), &[]);
    let o = PushOptions {
        wait: true,
        confirm: ConfirmPolicy {
            stale_after: Duration::from_secs(15 * 60),
            ..ConfirmPolicy::default()
        },
        ..opts()
    };
    // The redo: the fake's stored row is replaced by a completed one.
    let sid = plan(&b.ledger, &t, &o).unwrap().new[0]
        .push
        .session_id
        .clone();
    let r = {
        let p = plan(&b.ledger, &t, &o).unwrap();
        apply(&b.ledger, &p).unwrap();
        let ctx = b.ctx();
        send(&b.ledger, &b.cloud, &o, &ctx).unwrap()
    };
    // First run: checks until stale, then sends again; the fake still says
    // processing for the stored claim, so the redo needs the server to drop it.
    assert!(
        b.clock.now().since(HOUR.plus_ms(MIN)) >= 15 * MIN,
        "waited out the stale time"
    );
    assert!(b.cloud.count("POST") >= 2, "{:?}", b.cloud.log());
    let _ = (sid, r);
}

#[test]
fn the_hourly_budget_is_shared_waited_for_in_fixed_windows() {
    let b = Bench::new();
    let t = layout(&segments(5), &[]);
    let o = PushOptions {
        wait: true,
        limit: RateLimit {
            max_per_window: 2,
            window: Duration::from_secs(3600),
        },
        ..opts()
    };
    let r = b.push(&t, &o);
    assert_eq!((r.created, r.queued), (5, 0));
    assert_eq!(b.cloud.count("POST"), 5);
    // 2 at 16:01, 2 at 17:00, 1 at 18:00: on the clock hours.
    let sleeps = b.clock.sleeps();
    assert_eq!(
        sleeps,
        vec![HOUR.plus_ms(60 * MIN), HOUR.plus_ms(120 * MIN)]
    );
    assert!(matches!(
        b.waits()[0],
        WaitReason::HourlyBudget { limit: 2, .. }
    ));
}

#[test]
fn without_wait_a_spent_budget_stops_and_says_when() {
    let b = Bench::new();
    let t = layout(&segments(5), &[]);
    let o = PushOptions {
        limit: RateLimit {
            max_per_window: 2,
            window: Duration::from_secs(3600),
        },
        ..opts()
    };
    let r = b.push(&t, &o);
    assert_eq!((r.created, r.queued), (2, 3));
    assert_eq!(r.next_attempt_at, Some(HOUR.plus_ms(60 * MIN)));
    assert_eq!(r.all_sent_by, Some(HOUR.plus_ms(120 * MIN)));
    assert!(
        b.clock.sleeps().is_empty(),
        "never sleeps for the budget without --wait"
    );
    // Deletes draw on the same budget: a merge now waits too.
    let segs = segments(5);
    let merged = layout(&segs, &[join_at(&segs, 2)]);
    b.clock.advance(60 * MIN);
    let r = b.push(&merged, &o);
    assert_eq!(
        r.deleted + r.created,
        2,
        "two writes in the new hour: {r:?}"
    );
}

#[test]
fn the_servers_count_and_a_429_or_503_are_honoured() {
    for status in [429, 503] {
        let b = Bench::new();
        b.cloud.script(
            Script::Answer(PushOutcome::RateLimited {
                status,
                retry_after: Some(RetryAfter::Delay(Duration::from_secs(40))),
            }),
            1,
        );
        let t = layout(&segments(1), &[]);
        let r = b.push(&t, &opts());
        assert_eq!(r.created, 1, "{status}: a 40 s wait is waited in the run");
        assert!(b.clock.sleeps()[0] >= HOUR.plus_ms(MIN + 40_000));
        assert!(b.waits().contains(&WaitReason::ServerAsked { status }));
    }
    // The server says none are left until 16:30: the next waits for that.
    let b = Bench::new();
    b.cloud.s().budget = Some(ServerBudget {
        limit: Some(25),
        remaining: Some(0),
        reset: Some(RetryAfter::At(HOUR.plus_ms(30 * MIN))),
    });
    let t = layout(&segments(2), &[]);
    let r = b.push(&t, &waiting());
    assert_eq!(r.created, 2);
    assert_eq!(b.clock.sleeps()[0], HOUR.plus_ms(30 * MIN));
}

#[test]
fn temporary_failures_back_off_and_a_run_gives_up_after_its_bound() {
    let b = Bench::new();
    let temp = || {
        Script::Answer(PushOutcome::Temporary {
            reason: "HTTP 502".into(),
        })
    };
    b.cloud.script(temp(), 2);
    let t = layout(&segments(1), &[]);
    let r = b.push(&t, &waiting());
    assert_eq!((r.created, b.cloud.count("POST")), (1, 3));
    // A server that never answers well: the run stops after `max_failing`,
    // with everything still queued, and says so.
    let b = Bench::new();
    b.cloud.script(temp(), 1000);
    let t = layout(&segments(3), &[]);
    let o = PushOptions {
        wait: true,
        max_failing: Duration::from_secs(600),
        ..opts()
    };
    let r = b.push(&t, &o);
    assert!(
        matches!(r.stop, Some(PushStop::Unreachable { .. })),
        "{r:?}"
    );
    assert_eq!((r.created, r.queued), (0, 3));
    assert!(b.clock.now().since(HOUR.plus_ms(MIN)) <= 30 * MIN);
}

#[test]
fn retries_that_run_out_leave_it_queued_for_the_next_run() {
    let b = Bench::new();
    b.cloud.script(
        Script::Answer(PushOutcome::Temporary {
            reason: "HTTP 500".into(),
        }),
        100,
    );
    let t = layout(&segments(1), &[]);
    let o = PushOptions {
        wait: true,
        max_failing: Duration::from_secs(24 * 3600),
        ..opts()
    };
    let r = b.push(&t, &o);
    assert_eq!((r.failed.len(), r.queued), (1, 1), "{r:?}");
    assert_eq!(b.states(), vec![OutboxState::Failed]);
}

#[test]
fn a_cancel_ends_an_hour_long_wait_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = Ledger::open(dir.path()).unwrap();
    let cloud = FakeCloud::new();
    let t = layout(&segments(3), &[]);
    let o = PushOptions {
        wait: true,
        limit: RateLimit {
            max_per_window: 1,
            window: Duration::from_secs(3600),
        },
        ..opts()
    };
    let p = plan(&ledger, &t, &o).unwrap();
    apply(&ledger, &p).unwrap();
    let cancel = Cancel::new();
    let firing = cancel.clone();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        firing.cancel();
    });
    let events = Collect::new();
    let ctx = Ctx::new(JobId(1), &events, cancel, &SystemClock);
    let started = std::time::Instant::now();
    let r = send(&ledger, &cloud, &o, &ctx).unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    assert_eq!((r.created, r.queued), (1, 2));
}

#[test]
fn a_zero_budget_never_sleeps() {
    let b = Bench::new();
    let t = layout(&segments(2), &[]);
    let o = PushOptions {
        wait: true,
        limit: RateLimit {
            max_per_window: 0,
            window: Duration::from_secs(3600),
        },
        ..opts()
    };
    let r = b.push(&t, &o);
    assert!(matches!(r.stop, Some(PushStop::NoBudget { .. })), "{r:?}");
    assert_eq!((r.created, r.queued), (0, 2));
    assert!(b.clock.sleeps().is_empty());
    assert_eq!(b.cloud.count("POST"), 0);
}

#[test]
fn stops_a_person_must_resolve() {
    // No write scope: found before anything is sent.
    let b = Bench::new();
    b.cloud.s().scopes = Some(vec!["conversations:read".into()]);
    let r = b.push(&layout(&segments(2), &[]), &opts());
    assert!(
        matches!(r.stop, Some(PushStop::MissingScope { ref scope, .. }) if scope == "conversations:write")
    );
    assert_eq!(b.cloud.count("POST"), 0);
    assert!(matches!(
        r.stop.unwrap().remedy(),
        crate::engine::remedy::Remedy::CheckKey { scope: Some(_), .. }
    ));
    // The create route is gone: stop, nothing rejected, all still queued.
    let b = Bench::new();
    b.cloud.script(
        Script::Answer(PushOutcome::WrongEndpoint {
            status: 404,
            message: "Not Found".into(),
        }),
        1,
    );
    let r = b.push(&layout(&segments(2), &[]), &opts());
    assert!(matches!(
        r.stop,
        Some(PushStop::RouteGone { status: 404, .. })
    ));
    assert_eq!((r.rejected.len(), b.cloud.count("POST")), (0, 1));
    assert!(b.states().iter().all(|s| *s == OutboxState::Pending));
    assert_eq!(
        r.stop.unwrap().remedy(),
        crate::engine::remedy::Remedy::ApiGone
    );
}

#[test]
fn a_locked_conversation_waits_for_a_person_and_is_not_retried() {
    let b = Bench::new();
    let segs = segments(2);
    b.push(&layout(&segs, &[]), &opts());
    b.cloud.s().deletes.push_back(Err(ApiError::Locked {
        message: "conversation is locked".into(),
    }));
    let merged = layout(&segs, &[join_at(&segs, 2)]);
    let r = b.push(&merged, &opts());
    assert_eq!(r.locked.len(), 1, "{r:?}");
    assert_eq!(r.deleted, 1);
    let before = b.cloud.log().len();
    let r = b.push(&merged, &opts());
    assert_eq!(b.cloud.log().len(), before, "nothing sent again: {r:?}");
    // After a person unlocks it: --retry-rejected deletes it.
    let again = PushOptions {
        retry_rejected: true,
        ..opts()
    };
    let r = b.push(&merged, &again);
    assert_eq!(r.deleted, 1, "{r:?}");
}

#[test]
fn undo_after_a_pushed_merge_costs_exactly_what_it_needs_then_nothing() {
    let b = Bench::new();
    let segs = segments(2);
    let apart = layout(&segs, &[]);
    let merged = layout(&segs, &[join_at(&segs, 2)]);
    b.push(&apart, &opts());
    let r = b.push(&merged, &opts());
    assert_eq!((r.deleted, r.created), (2, 1));
    // Undo: one delete (the merged copy), two creates (new generations).
    let r = b.push(&apart, &opts());
    assert_eq!((r.deleted, r.created), (1, 2), "{r:?}");
    for _ in 0..3 {
        let before = b.cloud.log().len();
        let r = b.push(&apart, &opts());
        assert_eq!(
            b.cloud.log().len(),
            before,
            "stable: {r:?} {:?}",
            b.cloud.log()
        );
    }
    assert_eq!(b.cloud.completed(), 2);
}

#[test]
fn an_undo_before_the_delete_went_out_takes_the_copy_back_for_free() {
    let b = Bench::new();
    let segs = segments(2);
    let apart = layout(&segs, &[]);
    let merged = layout(&segs, &[join_at(&segs, 2)]);
    b.push(&apart, &opts());
    // The merge is planned and applied, but nothing is sent (a zero budget).
    let none = PushOptions {
        limit: RateLimit {
            max_per_window: 0,
            window: Duration::from_secs(3600),
        },
        ..opts()
    };
    b.push(&merged, &none);
    let before = b.cloud.log().len();
    let r = b.push(&apart, &opts());
    assert_eq!(
        (r.created, r.deleted, b.cloud.log().len() - before),
        (0, 0, 0),
        "nothing to send, so not even the key check: {:?}",
        b.cloud.log()
    );
    assert!(
        b.states()
            .iter()
            .filter(|s| **s == OutboxState::Pushed)
            .count()
            == 2
    );
}

#[test]
fn vanished_segments_hold_their_cloud_copies_until_a_person_decides() {
    let b = Bench::new();
    let segs = segments(2);
    b.push(&layout(&segs, &[]), &opts());
    // A VAD re-run dropped every segment of the first conversation and
    // found one new segment inside its span.
    let mut rerun: Vec<Segment> = segs[2..].to_vec();
    rerun.push(seg(99, 5));
    let t = layout(&rerun, &[]);
    let p = plan(&b.ledger, &t, &opts()).unwrap();
    assert_eq!(p.vanished.len(), 1);
    assert_eq!(p.vanished[0].decision, VanishedDecision::Held);
    assert!(
        p.retract
            .iter()
            .all(|r| !matches!(r, Retraction::Delete(_))),
        "{:?}",
        p.retract
    );
    assert!(matches!(
        p.conversations[0].status,
        CloudStatus::Held {
            hold: Hold::OverlapsVanished { .. }
        }
    ));
    let before = b.cloud.log().len();
    let r = b.push(&t, &opts());
    assert_eq!((r.deleted, r.created), (0, 0));
    assert_eq!(b.cloud.log().len(), before, "nothing sent");
    // The segments come back (the VAD settings fixed): released, nothing sent.
    let r = b.push(&layout(&segs, &[]), &opts());
    assert_eq!((r.deleted, r.created), (0, 0));
    assert!(b.ledger.outbox().unwrap().iter().all(|r| r.held.is_none()));
    // Gone again, and a person chooses: replace.
    let replace = PushOptions {
        replace_vanished: true,
        ..opts()
    };
    let r = b.push(&t, &replace);
    assert_eq!((r.deleted, r.created), (1, 1), "{r:?}");
}

#[test]
fn forgetting_a_vanished_conversation_keeps_its_cloud_copy() {
    let b = Bench::new();
    let segs = segments(2);
    b.push(&layout(&segs, &[]), &opts());
    let t = layout(&segs[2..], &[]);
    let forget = PushOptions {
        forget_vanished: true,
        ..opts()
    };
    let r = b.push(&t, &forget);
    assert_eq!((r.deleted, r.created), (0, 0));
    assert_eq!(b.cloud.completed(), 2, "both cloud copies stay");
    assert!(b.states().contains(&OutboxState::Forgotten));
    // If the segments come back it is taken back as it is: no request.
    let before = b.cloud.log().len();
    b.push(&layout(&segs, &[]), &opts());
    assert_eq!(b.cloud.log().len(), before, "{:?}", b.cloud.log());
}

#[test]
fn refusals_that_were_not_its_fault_go_again_and_the_rest_on_request() {
    let b = Bench::new();
    let t = layout(&segments(2), &[]);
    b.cloud.script(
        Script::Answer(PushOutcome::Rejected {
            status: 422,
            message: "too fancy".into(),
        }),
        1,
    );
    let r = b.push(&t, &opts());
    assert_eq!((r.created, r.rejected.len()), (1, 1));
    // A rejection from an old version for a redirect: re-queued on its own.
    let id = b
        .ledger
        .outbox()
        .unwrap()
        .into_iter()
        .find(|r| r.state == OutboxState::Rejected)
        .unwrap()
        .push
        .session_id;
    let r = b.push(&t, &opts());
    assert_eq!(r.create_requests, 0, "a 422 stays refused: {r:?}");
    b.ledger.mark_rejected(&id, 301, "HTTP 301: moved").unwrap();
    let r = b.push(&t, &opts());
    assert_eq!(r.created, 1, "a 301 is the address's fault: {r:?}");
    b.ledger.mark_rejected(&id, 422, "HTTP 422: again").unwrap();
    let again = PushOptions {
        retry_rejected: true,
        ..opts()
    };
    let r = b.push(&t, &again);
    assert_eq!(r.created, 1, "{r:?}");
}
