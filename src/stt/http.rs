//! What the HTTP speech engines share: one [`crate::http::Client`] per
//! engine (clones of its settings share it), the retry loop (exponential
//! backoff with full jitter on 5xx and network errors, `Retry-After` on
//! 429), waits a [`Cancel`] ends at once, and turning statuses into
//! classified [`SttError`]s.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use super::SttError;
use crate::cancel::Cancel;
use crate::clock::UtcMillis;
use crate::http::{self, Failure, RequestBuilder, RetryAfter};

/// The largest answer body read.
const BODY_LIMIT: u64 = 64 * 1024 * 1024;

/// How an HTTP engine retries and times out.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Retries after the first attempt (so `max_retries + 1` attempts).
    pub max_retries: u32,
    /// First backoff ceiling; doubles each retry (full jitter: the actual
    /// sleep is uniform in `0..=ceiling`).
    pub base_delay: Duration,
    /// Largest backoff ceiling.
    pub max_delay: Duration,
    /// On 429, wait at most this long by ourselves; a longer `Retry-After`
    /// comes back to the caller as [`SttError::RateLimited`].
    pub max_retry_after: Duration,
    /// Timeout for one whole request (connect, upload, transcription, answer).
    pub timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            timeout: Duration::from_secs(300),
        }
    }
}

impl RetryPolicy {
    /// The full-jitter backoff before retry number `attempt` (0-based).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self
            .base_delay
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX))
            .min(self.max_delay);
        let ms = ceiling.as_millis().min(u64::MAX as u128) as u64;
        Duration::from_millis(fastrand::u64(0..=ms))
    }
}

/// One engine's HTTP client, made on first use and shared by every clone
/// of the settings that hold it (so the workers of one engine share one
/// connection pool). It is a cache: it never makes two settings differ.
#[derive(Clone, Default)]
pub struct SharedClient(Arc<OnceLock<Result<http::Client, String>>>);

impl SharedClient {
    /// The client for requests to `base_url` with `policy`'s timeout.
    pub(crate) fn get(
        &self,
        engine: &'static str,
        base_url: &str,
        policy: &RetryPolicy,
    ) -> Result<http::Client, SttError> {
        self.0
            .get_or_init(|| {
                let mut settings = http::Settings::with_timeout(policy.timeout);
                settings.no_proxy = http::is_loopback_url(base_url);
                http::Client::new(settings).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(|message| SttError::BadRequest { engine, message })
    }
}

impl PartialEq for SharedClient {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for SharedClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedClient")
    }
}

/// A short excerpt of a server message, safe for logs.
pub(crate) fn excerpt(body: &str) -> String {
    let t: String = body.chars().take(300).collect();
    let t = t.replace(['\n', '\r'], " ");
    if body.chars().count() > 300 {
        format!("{t}…")
    } else {
        t
    }
}

fn failure_error(engine: &'static str, f: Failure) -> SttError {
    match f {
        Failure::Cancelled => SttError::Cancelled,
        Failure::Request(message) => SttError::BadRequest {
            engine,
            message: format!("bad URL or request: {message}"),
        },
        other => SttError::Temporary {
            engine,
            message: other.to_string(),
        },
    }
}

/// Sends with retries. `request` builds one attempt. Retries 5xx, 408 and
/// network errors with full-jitter backoff; waits out 429 `Retry-After` up
/// to the policy's limit; classifies what is left. Every wait, and the wait
/// for an answer, ends at once when `cancel` fires.
pub(crate) fn send_with_retries(
    engine: &'static str,
    policy: &RetryPolicy,
    client: &http::Client,
    cancel: &Cancel,
    mut request: impl FnMut() -> RequestBuilder,
) -> Result<String, SttError> {
    let mut attempt = 0u32;
    loop {
        let err = match client.send(request(), BODY_LIMIT, cancel) {
            Ok(a) if a.is_success() && !a.truncated => return Ok(a.text()),
            Ok(a) if a.is_success() => SttError::BadResponse {
                engine,
                message: format!("the answer is larger than {BODY_LIMIT} bytes"),
            },
            Ok(a) => {
                let retry_after = a
                    .header("retry-after")
                    .and_then(RetryAfter::parse)
                    .map(|r| r.wait_from(UtcMillis::now()));
                classify(engine, a.status, retry_after, &a.text())
            }
            Err(f) => failure_error(engine, f),
        };
        let wait = match &err {
            SttError::RateLimited { retry_after, .. } => match retry_after {
                Some(d) if *d > policy.max_retry_after => return Err(err),
                Some(d) => *d,
                None => policy.backoff(attempt),
            },
            SttError::Temporary { .. } => policy.backoff(attempt),
            _ => return Err(err),
        };
        if attempt >= policy.max_retries {
            return Err(err);
        }
        tracing::warn!(engine, attempt, wait_ms = wait.as_millis() as u64, error = %err, "retrying");
        if cancel.sleep(wait).is_err() {
            return Err(SttError::Cancelled);
        }
        attempt += 1;
    }
}

/// Turns a non-2xx answer into an error.
pub(crate) fn classify(
    engine: &'static str,
    status: u16,
    retry_after: Option<Duration>,
    body: &str,
) -> SttError {
    let message = format!("HTTP {status}: {}", excerpt(body));
    match status {
        401 | 403 => SttError::Auth { engine, message },
        429 => SttError::RateLimited {
            engine,
            retry_after,
            message,
        },
        408 | 500..=599 => SttError::Temporary { engine, message },
        _ => SttError::BadRequest { engine, message },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_jittered_under_a_doubling_ceiling() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            ..Default::default()
        };
        for attempt in 0..10 {
            let ceiling = (100u64 << attempt).min(1000);
            for _ in 0..50 {
                assert!(p.backoff(attempt).as_millis() as u64 <= ceiling);
            }
        }
        let spread: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(3)).collect();
        assert!(spread.len() > 5, "full jitter varies");
        let _ = p.backoff(u32::MAX);
    }

    #[test]
    fn statuses_are_classified() {
        let body = "x".repeat(1000);
        let c = |status| classify("e", status, None, &body);
        assert!(matches!(c(401), SttError::Auth { .. }));
        assert!(matches!(c(429), SttError::RateLimited { .. }));
        assert!(matches!(c(503), SttError::Temporary { .. }));
        assert!(matches!(c(400), SttError::BadRequest { .. }));
        assert!(c(500).to_string().len() < 400, "bodies are cut");
    }

    #[test]
    fn clones_share_one_client() {
        let shared = SharedClient::default();
        let twin = shared.clone();
        let p = RetryPolicy::default();
        shared.get("e", "http://127.0.0.1:1", &p).unwrap();
        assert!(twin.0.get().is_some(), "made once, seen by the clone");
    }

    #[test]
    fn a_cancel_stops_the_retries_at_once() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/x");
        let p = RetryPolicy {
            max_retries: 100,
            base_delay: Duration::from_secs(60),
            max_delay: Duration::from_secs(60),
            ..Default::default()
        };
        let client = SharedClient::default().get("e", &url, &p).unwrap();
        let cancel = Cancel::new();
        let firing = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(150));
            firing.cancel();
        });
        let started = std::time::Instant::now();
        let r = send_with_retries("e", &p, &client, &cancel, || {
            client.request(http::Method::GET, &url)
        });
        assert!(matches!(r, Err(SttError::Cancelled)), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
