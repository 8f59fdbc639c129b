//! What the HTTP engines share: the agent, the retry loop (exponential
//! backoff with full jitter on 5xx and network errors, `Retry-After` on
//! 429), and turning statuses into classified [`SttError`]s.

use std::time::Duration;

use super::SttError;

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

/// Builds the agent: statuses are answers, not errors; one global timeout.
pub(crate) fn agent(policy: &RetryPolicy) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(policy.timeout))
        .user_agent(concat!("omi-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// A server's answer, read whole.
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

/// Parses `Retry-After`: delta seconds or an HTTP date.
pub(crate) fn parse_retry_after(v: &str) -> Option<Duration> {
    let v = v.trim();
    if let Ok(s) = v.parse::<u64>() {
        return Some(Duration::from_secs(s));
    }
    if let Ok(s) = v.parse::<f64>()
        && s.is_finite()
        && s >= 0.0
    {
        return Some(Duration::from_secs_f64(s.min(1e9)));
    }
    let when =
        time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc2822).ok()?;
    let now = time::OffsetDateTime::now_utc();
    let d = when - now;
    Some(if d.is_positive() {
        Duration::from_secs(d.whole_seconds() as u64)
    } else {
        Duration::ZERO
    })
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

fn transport_error(engine: &'static str, e: ureq::Error) -> SttError {
    use ureq::Error as E;
    match e {
        E::BadUri(_) | E::InvalidProxyUrl | E::RequireHttpsOnly(_) | E::Http(_) => {
            SttError::BadRequest {
                engine,
                message: format!("bad URL or request: {e}"),
            }
        }
        other => SttError::Temporary {
            engine,
            message: format!("network: {other}"),
        },
    }
}

/// Sends with retries. `send` makes one attempt. Retries 5xx, 408 and
/// network errors with full-jitter backoff; waits out 429 `Retry-After` up to
/// the policy's limit; classifies what is left.
pub(crate) fn send_with_retries(
    engine: &'static str,
    policy: &RetryPolicy,
    mut send: impl FnMut() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<String, SttError> {
    let mut attempt = 0u32;
    loop {
        let outcome = send()
            .map_err(|e| transport_error(engine, e))
            .and_then(|mut resp| {
                let status = resp.status().as_u16();
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(parse_retry_after);
                let body = resp
                    .body_mut()
                    .with_config()
                    .limit(64 * 1024 * 1024)
                    .read_to_string()
                    .map_err(|e| SttError::Temporary {
                        engine,
                        message: format!("reading the answer: {e}"),
                    })?;
                Ok(Answer {
                    status,
                    retry_after,
                    body,
                })
            });
        let err = match outcome {
            Ok(a) if (200..300).contains(&a.status) => return Ok(a.body),
            Ok(a) => classify(engine, &a),
            Err(e) => e,
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
        std::thread::sleep(wait);
        attempt += 1;
    }
}

/// Turns a non-2xx answer into an error.
pub(crate) fn classify(engine: &'static str, a: &Answer) -> SttError {
    let message = format!("HTTP {}: {}", a.status, excerpt(&a.body));
    match a.status {
        401 | 403 => SttError::Auth { engine, message },
        429 => SttError::RateLimited {
            engine,
            retry_after: a.retry_after,
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
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after(" 1.5 "),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert!(
            parse_retry_after("Fri, 01 Jan 2100 00:00:00 GMT").unwrap()
                > Duration::from_secs(1e9 as u64)
        );
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("-3"), None);
    }

    #[test]
    fn statuses_are_classified() {
        let a = |status| Answer {
            status,
            retry_after: None,
            body: "x".repeat(1000),
        };
        assert!(matches!(classify("e", &a(401)), SttError::Auth { .. }));
        assert!(matches!(
            classify("e", &a(429)),
            SttError::RateLimited { .. }
        ));
        assert!(matches!(classify("e", &a(503)), SttError::Temporary { .. }));
        assert!(matches!(
            classify("e", &a(400)),
            SttError::BadRequest { .. }
        ));
        assert!(
            classify("e", &a(500)).to_string().len() < 400,
            "bodies are cut"
        );
    }
}
