//! When to try a push again, and when to stop.
//!
//! [`next_step`] is a pure function of the policy, what the server said (a
//! [`PushOutcome`]), how many attempts were made, the time and a source of
//! jitter: the outbox persists the attempt count and the time it returns, and
//! tests pin both the clock and the randomness.
//!
//! - `Created` → done.
//! - `Temporary` (5xx, timeouts, resets) → exponential backoff with full
//!   jitter (a uniform wait between 0 and `min(cap, base · 2^(attempt-1))`),
//!   until `max_attempts`; then give up (the conversation waits for a person or
//!   a later run).
//! - `InFlight` (409: the same conversation is being created by a concurrent
//!   request) → check again later, at least `in_flight_delay` from now: the
//!   retry carries the same `client_session_id` and returns the conversation.
//! - `RateLimited` (429) → at the time `Retry-After` gives (delta-seconds or an
//!   HTTP-date), capped at `max_retry_after`, else after `rate_limited_fallback`.
//!   Never gives up: being rate limited is not the conversation's fault.
//! - `Rejected` (4xx validation) → mark rejected with the server's message.
//! - `Unauthorized` (401/403) → stop pushing with this key until the person
//!   fixes it.

use std::time::Duration;

use crate::clock::UtcMillis;
use crate::cloud::api::PushOutcome;

/// What a `Retry-After` header said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAfter {
    /// delta-seconds: wait this long from when the answer came.
    Delay(Duration),
    /// An HTTP-date: wait until then.
    At(UtcMillis),
}

impl RetryAfter {
    /// Parses a `Retry-After` value: delta-seconds (`120`) or an HTTP-date
    /// (`Wed, 21 Oct 2015 07:28:00 GMT`, also the obsolete RFC 850 and asctime
    /// forms). Anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.is_empty() {
            return None;
        }
        if value.bytes().all(|b| b.is_ascii_digit()) {
            return value
                .parse::<u64>()
                .ok()
                .map(|s| RetryAfter::Delay(Duration::from_secs(s)));
        }
        let t = httpdate::parse_http_date(value).ok()?;
        let ms = match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).ok()?,
            Err(e) => -i64::try_from(e.duration().as_millis()).ok()?,
        };
        Some(RetryAfter::At(UtcMillis(ms)))
    }

    /// The instant it names, counting a delay from `now`.
    pub fn resolve(&self, now: UtcMillis) -> UtcMillis {
        match *self {
            RetryAfter::Delay(d) => now.plus_ms(duration_ms(d)),
            RetryAfter::At(t) => t,
        }
    }
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A source of randomness for jitter: numbers in `[0, 1)`.
pub trait Jitter {
    /// The next number in `[0, 1)`.
    fn unit(&mut self) -> f64;
}

impl<F: FnMut() -> f64> Jitter for F {
    fn unit(&mut self) -> f64 {
        self().clamp(0.0, 1.0 - f64::EPSILON)
    }
}

/// A small, fast, seedable generator (SplitMix64): plenty for jitter.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with this seed (tests).
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// A generator seeded from the clock and the process id, so that two
    /// omi-sync processes pushing with one key do not retry in lockstep.
    pub fn from_entropy() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        SplitMix64(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl Jitter for SplitMix64 {
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
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

/// What to do after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NextStep {
    /// The conversation exists in the cloud: record its id.
    Done,
    /// Try again at `at` (not before).
    RetryAt {
        /// The earliest time for the next attempt.
        at: UtcMillis,
        /// Why, for logs and the UI.
        reason: String,
    },
    /// Temporary failures went on for `max_attempts`: stop and tell the person.
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
    /// The key is wrong or lacks permission: stop all pushes with this key.
    NeedsCredentials {
        /// The server's message.
        message: String,
    },
}

/// The backoff ceiling after `attempt` failed attempts (1-based):
/// `min(max_delay, base_delay · 2^(attempt-1))`.
pub fn backoff_ceiling(policy: &RetryPolicy, attempt: u32) -> Duration {
    let exp = attempt.saturating_sub(1).min(32);
    policy
        .base_delay
        .saturating_mul(1u32 << exp.min(31))
        .min(policy.max_delay)
}

/// A full-jitter backoff: uniform in `[0, ceiling)`.
pub fn backoff(policy: &RetryPolicy, attempt: u32, rng: &mut dyn Jitter) -> Duration {
    backoff_ceiling(policy, attempt).mul_f64(rng.unit())
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
        PushOutcome::Created { .. } => NextStep::Done,
        PushOutcome::Rejected { status, message } => NextStep::MarkRejected {
            status: *status,
            message: message.clone(),
        },
        PushOutcome::Unauthorized { status, message } => NextStep::NeedsCredentials {
            message: format!("HTTP {status}: {message}"),
        },
        PushOutcome::RateLimited { retry_after } => {
            let cap = now.plus_ms(duration_ms(policy.max_retry_after));
            let at = match retry_after {
                Some(ra) => ra.resolve(now).clamp(now, cap),
                None => now.plus_ms(duration_ms(policy.rate_limited_fallback)),
            };
            // A little spread so two processes on one key do not collide.
            let spread = duration_ms(policy.base_delay.mul_f64(rng.unit()));
            NextStep::RetryAt {
                at: at.plus_ms(spread),
                reason: match retry_after {
                    Some(_) => "rate limited by the server (Retry-After)".to_string(),
                    None => "rate limited by the server (no Retry-After)".to_string(),
                },
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

/// Runs `attempt` (given the 1-based attempt number) until [`next_step`] says
/// anything but "retry", sleeping in between with `sleep` and reading time
/// from `clock`. Stops early, returning the pending `RetryAt`, if the next
/// attempt would be after `deadline`. For one-shot pushes and tests; the
/// outbox persists the schedule instead of sleeping.
pub fn run_blocking(
    policy: &RetryPolicy,
    rng: &mut dyn Jitter,
    clock: &mut dyn FnMut() -> UtcMillis,
    sleep: &mut dyn FnMut(Duration),
    deadline: Option<UtcMillis>,
    attempt: &mut dyn FnMut(u32) -> PushOutcome,
) -> RunReport {
    let mut n = 0u32;
    loop {
        n += 1;
        let outcome = attempt(n);
        let now = clock();
        let step = next_step(policy, &outcome, n, now, rng);
        match &step {
            NextStep::RetryAt { at, .. } if deadline.is_none_or(|d| *at <= d) => {
                let wait = at.since(now).max(0) as u64;
                sleep(Duration::from_millis(wait));
            }
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

    const NOW: UtcMillis = UtcMillis(1_717_000_000_000);

    fn temp() -> PushOutcome {
        PushOutcome::Temporary {
            reason: "HTTP 503".into(),
        }
    }

    fn fixed(v: f64) -> impl FnMut() -> f64 {
        move || v
    }

    #[test]
    fn parses_retry_after_forms() {
        assert_eq!(
            RetryAfter::parse(" 120 "),
            Some(RetryAfter::Delay(Duration::from_secs(120)))
        );
        assert_eq!(
            RetryAfter::parse("Wed, 29 May 2024 16:26:40 GMT"),
            Some(RetryAfter::At(UtcMillis(1_717_000_000_000)))
        );
        // RFC 850 and asctime forms.
        assert_eq!(
            RetryAfter::parse("Wednesday, 29-May-24 16:26:40 GMT"),
            Some(RetryAfter::At(UtcMillis(1_717_000_000_000)))
        );
        assert_eq!(
            RetryAfter::parse("Wed May 29 16:26:40 2024"),
            Some(RetryAfter::At(UtcMillis(1_717_000_000_000)))
        );
        for bad in [
            "",
            "-5",
            "1.5",
            "soon",
            "99999999999999999999999",
            "Wed, 32 May 2024",
        ] {
            assert_eq!(RetryAfter::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn resolves_against_now() {
        let d = RetryAfter::Delay(Duration::from_secs(3));
        assert_eq!(d.resolve(NOW), NOW.plus_ms(3000));
        let a = RetryAfter::At(UtcMillis(5));
        assert_eq!(a.resolve(NOW), UtcMillis(5));
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
        let mut rng = SplitMix64::new(7);
        for attempt in 1..30 {
            let d = backoff(&p, attempt, &mut rng);
            assert!(d < backoff_ceiling(&p, attempt));
        }
    }

    #[test]
    fn splitmix_is_uniformish_and_seeded() {
        let mut a = SplitMix64::new(1);
        let mut b = SplitMix64::new(1);
        let xs: Vec<f64> = (0..1000).map(|_| a.unit()).collect();
        let ys: Vec<f64> = (0..1000).map(|_| b.unit()).collect();
        assert_eq!(xs, ys);
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
    }

    #[test]
    fn temporary_backs_off_then_gives_up() {
        let p = RetryPolicy::default();
        match next_step(&p, &temp(), 3, NOW, &mut fixed(0.5)) {
            NextStep::RetryAt { at, reason } => {
                assert_eq!(at, NOW.plus_ms(4000));
                assert_eq!(reason, "HTTP 503");
            }
            other => panic!("{other:?}"),
        }
        match next_step(&p, &temp(), p.max_attempts, NOW, &mut fixed(0.5)) {
            NextStep::GiveUp { reason } => assert!(reason.contains("HTTP 503")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rate_limited_honours_retry_after_and_never_gives_up() {
        let p = RetryPolicy::default();
        let o = PushOutcome::RateLimited {
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(600))),
        };
        let step = next_step(&p, &o, 1000, NOW, &mut fixed(0.0));
        assert!(matches!(step, NextStep::RetryAt { at, .. } if at == NOW.plus_ms(600_000)));

        let o = PushOutcome::RateLimited {
            retry_after: Some(RetryAfter::At(NOW.plus_ms(90_000))),
        };
        let step = next_step(&p, &o, 1, NOW, &mut fixed(0.0));
        assert!(matches!(step, NextStep::RetryAt { at, .. } if at == NOW.plus_ms(90_000)));

        // A date in the past means "now"; an absurd one is capped.
        let o = PushOutcome::RateLimited {
            retry_after: Some(RetryAfter::At(UtcMillis(0))),
        };
        let step = next_step(&p, &o, 1, NOW, &mut fixed(0.0));
        assert!(matches!(step, NextStep::RetryAt { at, .. } if at == NOW));
        let o = PushOutcome::RateLimited {
            retry_after: Some(RetryAfter::Delay(Duration::from_secs(86_400 * 30))),
        };
        let step = next_step(&p, &o, 1, NOW, &mut fixed(0.0));
        let cap = NOW.plus_ms(p.max_retry_after.as_millis() as i64);
        assert!(matches!(step, NextStep::RetryAt { at, .. } if at == cap));

        let o = PushOutcome::RateLimited { retry_after: None };
        let step = next_step(&p, &o, 1, NOW, &mut fixed(0.0));
        let fb = NOW.plus_ms(p.rate_limited_fallback.as_millis() as i64);
        assert!(matches!(step, NextStep::RetryAt { at, .. } if at == fb));
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
        let created = PushOutcome::Created {
            id: "c1".into(),
            status: "completed".into(),
            discarded: false,
        };
        assert_eq!(next_step(&p, &created, 1, NOW, &mut r), NextStep::Done);
        let rej = PushOutcome::Rejected {
            status: 422,
            message: "Segment 3: text cannot be empty".into(),
        };
        assert_eq!(
            next_step(&p, &rej, 1, NOW, &mut r),
            NextStep::MarkRejected {
                status: 422,
                message: "Segment 3: text cannot be empty".into()
            }
        );
        let un = PushOutcome::Unauthorized {
            status: 401,
            message: "Invalid API key".into(),
        };
        assert!(matches!(
            next_step(&p, &un, 1, NOW, &mut r),
            NextStep::NeedsCredentials { message } if message.contains("401")
        ));
    }

    #[test]
    fn run_blocking_retries_until_done_with_injected_time() {
        let p = RetryPolicy::default();
        let now = std::cell::Cell::new(NOW);
        let slept = std::cell::RefCell::new(Vec::new());
        let mut outcomes = vec![
            temp(),
            PushOutcome::InFlight,
            PushOutcome::Created {
                id: "c1".into(),
                status: "completed".into(),
                discarded: false,
            },
        ]
        .into_iter();
        let report = run_blocking(
            &p,
            &mut fixed(0.5),
            &mut || now.get(),
            &mut |d| {
                slept.borrow_mut().push(d);
                now.set(now.get().plus_ms(d.as_millis() as i64));
            },
            None,
            &mut |_| outcomes.next().unwrap(),
        );
        assert_eq!(report.attempts, 3);
        assert_eq!(report.step, NextStep::Done);
        assert_eq!(
            *slept.borrow(),
            vec![Duration::from_secs(1), Duration::from_secs(30)]
        );
    }

    #[test]
    fn run_blocking_stops_at_the_deadline() {
        let p = RetryPolicy::default();
        let report = run_blocking(
            &p,
            &mut fixed(0.0),
            &mut || NOW,
            &mut |_| panic!("must not sleep"),
            Some(NOW.plus_ms(1000)),
            &mut |_| PushOutcome::RateLimited {
                retry_after: Some(RetryAfter::Delay(Duration::from_secs(60))),
            },
        );
        assert_eq!(report.attempts, 1);
        assert!(matches!(report.step, NextStep::RetryAt { .. }));
    }
}
