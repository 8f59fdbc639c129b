//! When to try a request again, and when to stop.
//!
//! [`next_step`] is a pure function of the policy, what the server said (a
//! [`PushOutcome`]; other calls' errors convert to one), how many attempts
//! were made, the time and a source of jitter: the outbox persists the
//! attempt count and the time it returns, and tests pin both the clock and
//! the randomness.
//!
//! - `Created` and `completed` → done; `Created` but still `processing` →
//!   confirm later (the cloud deletes a conversation whose processing fails).
//! - `Temporary` (5xx, timeouts, resets) → exponential backoff with full
//!   jitter (a uniform wait between 0 and `min(cap, base · 2^(attempt-1))`),
//!   until `max_attempts`; then give up for this run.
//! - `InFlight` (409: a concurrent request is creating the same
//!   conversation) → check again, at least `in_flight_delay` later.
//! - `RateLimited` (429, or 503 with `Retry-After`) → at the time
//!   `Retry-After` gives, capped at `max_retry_after`, else after
//!   `rate_limited_fallback`. Never gives up: waiting is not a failure.
//! - `Rejected` (4xx validation) → mark rejected with the server's message.
//! - `Locked` (402) → a person must resolve it in the cloud; not retried.
//! - `Unauthorized` (401/403) → stop pushing with this key.
//! - `WrongEndpoint` (a redirect, 404/405 on create) → stop: the URL or
//!   the API is wrong, not the conversation.

use std::time::Duration;

use crate::cancel::Cancel;
use crate::clock::{Clock, UtcMillis};
use crate::cloud::answer::PushOutcome;
use crate::http::RetryAfter;

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A source of randomness for jitter: numbers in `[0, 1)`.
pub trait Jitter {
    /// The next number in `[0, 1)`.
    fn unit(&mut self) -> f64;
}

impl Jitter for fastrand::Rng {
    fn unit(&mut self) -> f64 {
        self.f64()
    }
}

impl<F: FnMut() -> f64> Jitter for F {
    fn unit(&mut self) -> f64 {
        self().clamp(0.0, 1.0 - f64::EPSILON)
    }
}

/// How patient to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The backoff ceiling after the first failed attempt.
    pub base_delay: Duration,
    /// The largest backoff ceiling.
    pub max_delay: Duration,
    /// Attempts (including the first) before temporary failures give up.
    pub max_attempts: u32,
    /// Wait after a 429 that gave no usable `Retry-After`.
    pub rate_limited_fallback: Duration,
    /// A `Retry-After` further away than this is cut to it.
    pub max_retry_after: Duration,
    /// The least wait after a 409 (a concurrent create of the same conversation).
    pub in_flight_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(10 * 60),
            max_attempts: 8,
            rate_limited_fallback: Duration::from_secs(5 * 60),
            max_retry_after: Duration::from_secs(2 * 60 * 60),
            in_flight_delay: Duration::from_secs(30),
        }
    }
}

/// Why a retry waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryWait {
    /// Backing off after a temporary failure of this attempt.
    Backoff {
        /// The attempt that failed (1 for the first).
        attempt: u32,
    },
    /// The server asked (429 or 503 with `Retry-After`).
    ServerAsked {
        /// Its status.
        status: u16,
    },
    /// Another request is creating the same conversation (409).
    InFlight,
}

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// The cloud has the conversation, completed: record its id.
    Done,
    /// The cloud has it but is still processing it: confirm later.
    Confirm,
    /// Try again at `at` (not before).
    RetryAt {
        /// The earliest time for the next attempt.
        at: UtcMillis,
        /// Why, for logs and the UI.
        reason: String,
        /// What kind of wait it is.
        wait: RetryWait,
    },
    /// Temporary failures went on for `max_attempts`: stop trying in this run.
    GiveUp {
        /// The last failure.
        reason: String,
    },
    /// The server refused the request itself: mark the conversation rejected.
    MarkRejected {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The conversation is locked in the cloud: a person must resolve it.
    Locked {
        /// The server's message.
        message: String,
    },
    /// The key is wrong or lacks permission: stop all pushes with this key.
    NeedsCredentials {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// The scope the server said is missing, if it named one.
        scope: Option<String>,
    },
    /// The route is gone or the URL points elsewhere: stop all pushes.
    WrongEndpoint {
        /// The HTTP status.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// The job was cancelled while the request was out.
    Stopped,
}

/// The backoff ceiling after `attempt` failed attempts (1-based):
/// `min(max_delay, base_delay · 2^(attempt-1))`.
pub fn backoff_ceiling(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    policy
        .base_delay
        .saturating_mul(1u32 << exp)
        .min(policy.max_delay)
}

/// A full-jitter backoff: uniform in `[0, ceiling)`.
pub fn backoff(policy: &RetryPolicy, attempt: u32, rng: &mut dyn Jitter) -> Duration {
    backoff_ceiling(policy, attempt).mul_f64(rng.unit())
}

/// When a server's wait ends: `Retry-After` from `now`, capped; without
/// one, the fallback.
pub fn server_wait_until(
    policy: &RetryPolicy,
    retry_after: Option<RetryAfter>,
    now: UtcMillis,
) -> UtcMillis {
    let cap = now.plus_ms(duration_ms(policy.max_retry_after));
    match retry_after {
        Some(ra) => ra.resolve(now).clamp(now, cap),
        None => now.plus_ms(duration_ms(policy.rate_limited_fallback)),
    }
}

/// Decides what follows `outcome`, the result of attempt number `attempt`
/// (1 for the first), at time `now`.
pub fn next_step(
    policy: &RetryPolicy,
    outcome: &PushOutcome,
    attempt: u32,
    now: UtcMillis,
    rng: &mut dyn Jitter,
) -> NextStep {
    match outcome {
        PushOutcome::Created { .. } if outcome.is_completed() => NextStep::Done,
        PushOutcome::Created { .. } => NextStep::Confirm,
        PushOutcome::Rejected { status, message } => NextStep::MarkRejected {
            status: *status,
            message: message.clone(),
        },
        PushOutcome::Locked { message } => NextStep::Locked {
            message: message.clone(),
        },
        PushOutcome::Unauthorized {
            status,
            message,
            scope,
        } => NextStep::NeedsCredentials {
            status: *status,
            message: message.clone(),
            scope: scope.clone(),
        },
        PushOutcome::WrongEndpoint { status, message } => NextStep::WrongEndpoint {
            status: *status,
            message: message.clone(),
        },
        PushOutcome::Cancelled => NextStep::Stopped,
        PushOutcome::RateLimited {
            status,
            retry_after,
        } => {
            // A little spread so two processes on one key do not collide.
            let spread = duration_ms(policy.base_delay.mul_f64(rng.unit()));
            NextStep::RetryAt {
                at: server_wait_until(policy, *retry_after, now).plus_ms(spread),
                reason: match retry_after {
                    Some(_) => format!("the cloud asked to wait (HTTP {status}, Retry-After)"),
                    None => format!("the cloud asked to wait (HTTP {status}, no Retry-After)"),
                },
                wait: RetryWait::ServerAsked { status: *status },
            }
        }
        PushOutcome::InFlight => {
            if attempt >= policy.max_attempts {
                return NextStep::GiveUp {
                    reason: format!(
                        "the server still reports this conversation as being created after \
                         {attempt} attempts (409)"
                    ),
                };
            }
            let wait = backoff(policy, attempt, rng).max(policy.in_flight_delay);
            NextStep::RetryAt {
                at: now.plus_ms(duration_ms(wait)),
                reason: "a concurrent request is creating this conversation (409); checking again"
                    .to_string(),
                wait: RetryWait::InFlight,
            }
        }
        PushOutcome::Temporary { reason } => {
            if attempt >= policy.max_attempts {
                return NextStep::GiveUp {
                    reason: format!("gave up after {attempt} attempts; last: {reason}"),
                };
            }
            NextStep::RetryAt {
                at: now.plus_ms(duration_ms(backoff(policy, attempt, rng))),
                reason: reason.clone(),
                wait: RetryWait::Backoff { attempt },
            }
        }
    }
}

/// How a blocking run of attempts ended.
#[derive(Debug, Clone, PartialEq)]
pub struct RunReport {
    /// The last outcome.
    pub outcome: PushOutcome,
    /// Attempts made.
    pub attempts: u32,
    /// The decision after the last outcome: anything but `RetryAt`, or a
    /// `RetryAt` past the deadline.
    pub step: NextStep,
}

/// Runs `attempt` (given the 1-based attempt number) until [`next_step`]
/// says anything but "retry", sleeping in between on `clock` (which a
/// `cancel` wakes: then the pending step comes back). Stops early,
/// returning the pending `RetryAt`, if the next attempt would be after
/// `deadline`. For one-shot pushes and tests; the push engine keeps the
/// schedule in the outbox instead.
pub fn run_blocking(
    policy: &RetryPolicy,
    rng: &mut dyn Jitter,
    clock: &dyn Clock,
    cancel: &Cancel,
    deadline: Option<UtcMillis>,
    attempt: &mut dyn FnMut(u32) -> PushOutcome,
) -> RunReport {
    let mut n = 0u32;
    loop {
        n += 1;
        let outcome = attempt(n);
        let step = next_step(policy, &outcome, n, clock.now(), rng);
        match &step {
            NextStep::RetryAt { at, .. }
                if deadline.is_none_or(|d| *at <= d) && clock.sleep_until(*at, cancel).is_ok() => {}
            _ => {
                return RunReport {
                    outcome,
                    attempts: n,
                    step,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    const NOW: UtcMillis = UtcMillis(1_717_000_000_000);

    fn temp() -> PushOutcome {
        PushOutcome::Temporary {
            reason: "HTTP 503".into(),
        }
    }

    fn created(status: &str) -> PushOutcome {
        PushOutcome::Created {
            id: "c1".into(),
            status: status.into(),
            discarded: false,
        }
    }

    fn fixed(v: f64) -> impl FnMut() -> f64 {
        move || v
    }

    #[test]
    fn full_jitter_stays_under_a_growing_capped_ceiling() {
        let p = RetryPolicy::default();
        assert_eq!(backoff_ceiling(&p, 1), Duration::from_secs(2));
        assert_eq!(backoff_ceiling(&p, 2), Duration::from_secs(4));
        assert_eq!(backoff_ceiling(&p, 5), Duration::from_secs(32));
        assert_eq!(backoff_ceiling(&p, 20), p.max_delay);
        assert_eq!(backoff_ceiling(&p, u32::MAX), p.max_delay);
        assert_eq!(backoff(&p, 3, &mut fixed(0.0)), Duration::ZERO);
        assert_eq!(backoff(&p, 3, &mut fixed(0.5)), Duration::from_secs(4));
        let mut rng = fastrand::Rng::with_seed(7);
        let waits: Vec<Duration> = (1..30).map(|a| backoff(&p, a, &mut rng)).collect();
        for (i, d) in waits.iter().enumerate() {
            assert!(*d < backoff_ceiling(&p, i as u32 + 1));
        }
        let mut again = fastrand::Rng::with_seed(7);
        let same: Vec<Duration> = (1..30).map(|a| backoff(&p, a, &mut again)).collect();
        assert_eq!(waits, same, "a seeded generator repeats itself");
    }

    #[test]
    fn temporary_backs_off_then_gives_up() {
        let p = RetryPolicy::default();
        match next_step(&p, &temp(), 3, NOW, &mut fixed(0.5)) {
            NextStep::RetryAt { at, reason, wait } => {
                assert_eq!(at, NOW.plus_ms(4000));
                assert_eq!(reason, "HTTP 503");
                assert_eq!(wait, RetryWait::Backoff { attempt: 3 });
            }
            other => panic!("{other:?}"),
        }
        match next_step(&p, &temp(), p.max_attempts, NOW, &mut fixed(0.5)) {
            NextStep::GiveUp { reason } => assert!(reason.contains("HTTP 503")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_429_or_503_honours_retry_after_and_never_gives_up() {
        let p = RetryPolicy::default();
        for status in [429, 503] {
            let o = PushOutcome::RateLimited {
                status,
                retry_after: Some(RetryAfter::Delay(Duration::from_secs(600))),
            };
            let step = next_step(&p, &o, 1000, NOW, &mut fixed(0.0));
            assert!(
                matches!(step, NextStep::RetryAt { at, wait: RetryWait::ServerAsked { status: s }, .. } if at == NOW.plus_ms(600_000) && s == status),
                "{step:?}"
            );
        }
        let o = PushOutcome::RateLimited {
            status: 429,
            retry_after: Some(RetryAfter::At(UtcMillis(0))),
        };
        assert!(
            matches!(next_step(&p, &o, 1, NOW, &mut fixed(0.0)), NextStep::RetryAt { at, .. } if at == NOW)
        );
        let o = PushOutcome::RateLimited {
            status: 429,
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(86_400 * 30))),
        };
        let cap = NOW.plus_ms(duration_ms(p.max_retry_after));
        assert!(
            matches!(next_step(&p, &o, 1, NOW, &mut fixed(0.0)), NextStep::RetryAt { at, .. } if at == cap)
        );
        let o = PushOutcome::RateLimited {
            status: 429,
            retry_after: None,
        };
        let fb = NOW.plus_ms(duration_ms(p.rate_limited_fallback));
        assert!(
            matches!(next_step(&p, &o, 1, NOW, &mut fixed(0.0)), NextStep::RetryAt { at, .. } if at == fb)
        );
    }

    #[test]
    fn in_flight_waits_at_least_the_minimum() {
        let p = RetryPolicy::default();
        let step = next_step(&p, &PushOutcome::InFlight, 1, NOW, &mut fixed(0.0));
        assert!(matches!(step, NextStep::RetryAt { at, .. } if at == NOW.plus_ms(30_000)));
        let step = next_step(
            &p,
            &PushOutcome::InFlight,
            p.max_attempts,
            NOW,
            &mut fixed(0.0),
        );
        assert!(matches!(step, NextStep::GiveUp { .. }));
    }

    #[test]
    fn final_outcomes() {
        let p = RetryPolicy::default();
        let mut r = fixed(0.3);
        assert_eq!(
            next_step(&p, &created("completed"), 1, NOW, &mut r),
            NextStep::Done
        );
        assert_eq!(
            next_step(&p, &created("processing"), 1, NOW, &mut r),
            NextStep::Confirm
        );
        let rej = PushOutcome::Rejected {
            status: 422,
            message: "Segment 3: text cannot be empty".into(),
        };
        assert!(matches!(
            next_step(&p, &rej, 1, NOW, &mut r),
            NextStep::MarkRejected { status: 422, .. }
        ));
        let locked = PushOutcome::Locked {
            message: "locked".into(),
        };
        assert!(matches!(
            next_step(&p, &locked, 1, NOW, &mut r),
            NextStep::Locked { .. }
        ));
        let un = PushOutcome::Unauthorized {
            status: 403,
            message: "Insufficient permissions".into(),
            scope: Some("conversations:write".into()),
        };
        assert!(matches!(
            next_step(&p, &un, 1, NOW, &mut r),
            NextStep::NeedsCredentials {
                status: 403,
                scope: Some(_),
                ..
            }
        ));
        let gone = PushOutcome::WrongEndpoint {
            status: 404,
            message: "Not Found".into(),
        };
        assert!(matches!(
            next_step(&p, &gone, 1, NOW, &mut r),
            NextStep::WrongEndpoint { status: 404, .. }
        ));
        assert_eq!(
            next_step(&p, &PushOutcome::Cancelled, 1, NOW, &mut r),
            NextStep::Stopped
        );
    }

    #[test]
    fn run_blocking_retries_on_the_clock_until_done() {
        let p = RetryPolicy::default();
        let clock = ManualClock::new(NOW);
        let mut outcomes = vec![temp(), PushOutcome::InFlight, created("completed")].into_iter();
        let report = run_blocking(
            &p,
            &mut fixed(0.5),
            &clock,
            &Cancel::new(),
            None,
            &mut |_| outcomes.next().unwrap(),
        );
        assert_eq!(report.attempts, 3);
        assert_eq!(report.step, NextStep::Done);
        assert_eq!(clock.sleeps(), vec![NOW.plus_ms(1000), NOW.plus_ms(31_000)]);
    }

    #[test]
    fn run_blocking_stops_at_the_deadline_and_on_a_cancel() {
        let p = RetryPolicy::default();
        let clock = ManualClock::new(NOW);
        let limited = || PushOutcome::RateLimited {
            status: 429,
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(60))),
        };
        let report = run_blocking(
            &p,
            &mut fixed(0.0),
            &clock,
            &Cancel::new(),
            Some(NOW.plus_ms(1000)),
            &mut |_| limited(),
        );
        assert_eq!(report.attempts, 1);
        assert!(matches!(report.step, NextStep::RetryAt { .. }));
        assert!(clock.sleeps().is_empty());

        let cancel = Cancel::new();
        cancel.cancel();
        let report = run_blocking(&p, &mut fixed(0.0), &clock, &cancel, None, &mut |_| {
            limited()
        });
        assert_eq!(report.attempts, 1, "a cancelled sleep ends the run");
    }
}
