//! What the server's answers mean: every status and body of the developer
//! API classified into a [`PushOutcome`] (creates) or an [`ApiError`] (the
//! other calls), the server's message in a line, and the rate-limit headers.
//!
//! Odd answers (HTML error pages, empty or huge bodies, JSON without an id)
//! never panic: a success the client cannot read is `Temporary`, which is
//! safe to retry because the request's `client_session_id` makes the server
//! return the conversation it already made. Messages are scrubbed of
//! anything that looks like a key.

use std::fmt;

use serde_json::Value;

use crate::cloud::credentials::scrub_secrets;
use crate::http::{Answer, RetryAfter};

/// How long a kept server message may be.
const MESSAGE_LIMIT: usize = 500;
/// How much of an error body is looked at.
pub(crate) const ERROR_BODY_LIMIT: usize = 64 * 1024;
/// The processing status of a finished conversation.
pub const STATUS_COMPLETED: &str = "completed";

/// What a create call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    /// The server has the conversation: just made, or made before under the
    /// same `client_session_id`. Only `completed` is final: `processing`
    /// (a repeat while the first request still runs) is provisional, since a
    /// failed processing deletes the conversation again.
    Created {
        /// The cloud's conversation id.
        id: String,
        /// Its processing status (`completed`, `processing`, …).
        status: String,
        /// Whether the cloud discarded it as not worth keeping.
        discarded: bool,
    },
    /// 429 (or a 503 with `Retry-After`): the server asks to wait.
    RateLimited {
        /// 429 or 503.
        status: u16,
        /// The server's `Retry-After`, if it gave a usable one.
        retry_after: Option<RetryAfter>,
    },
    /// 409: the same conversation is being created right now (a narrow
    /// race); check again later with the same `client_session_id`.
    InFlight,
    /// A 4xx refusal of this request (validation): sending it again as it is
    /// will not help.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 402: the conversation is locked in the cloud; a person must resolve it.
    Locked {
        /// The server's message.
        message: String,
    },
    /// 401/403: the key is wrong, revoked, or lacks a scope.
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// The scope the server said is missing, if it named one.
        scope: Option<String>,
    },
    /// A redirect, or 404/405 on the create route: the route is gone or the
    /// base URL points elsewhere. Not this conversation's fault.
    WrongEndpoint {
        /// The HTTP status.
        status: u16,
        /// What the server said (and where a redirect pointed).
        message: String,
    },
    /// 5xx, a timeout, a reset or refused connection, an unreadable answer:
    /// worth retrying.
    Temporary {
        /// What happened.
        reason: String,
    },
    /// The job was cancelled while the request was out; whether the server
    /// got it is unknown (the request is re-sent, idempotently, next time).
    Cancelled,
}

impl PushOutcome {
    /// Whether the conversation now exists in the cloud (perhaps still
    /// processing).
    pub fn is_created(&self) -> bool {
        matches!(self, PushOutcome::Created { .. })
    }

    /// Whether the cloud has the conversation completed.
    pub fn is_completed(&self) -> bool {
        matches!(self, PushOutcome::Created { status, .. } if status == STATUS_COMPLETED)
    }
}

impl fmt::Display for PushOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushOutcome::Created {
                id,
                status,
                discarded,
            } => {
                write!(f, "created {id} ({status}")?;
                if *discarded {
                    f.write_str(", discarded by the cloud")?;
                }
                f.write_str(")")
            }
            PushOutcome::RateLimited {
                status,
                retry_after,
            } => match retry_after {
                Some(RetryAfter::Delay(d)) => {
                    write!(
                        f,
                        "rate limited (HTTP {status}): retry after {} s",
                        d.as_secs()
                    )
                }
                Some(RetryAfter::At(t)) => {
                    write!(f, "rate limited (HTTP {status}): retry after {t}")
                }
                None => write!(f, "rate limited (HTTP {status})"),
            },
            PushOutcome::InFlight => f.write_str("already being created by another request (409)"),
            PushOutcome::Rejected { status, message } => {
                write!(f, "rejected (HTTP {status}): {message}")
            }
            PushOutcome::Locked { message } => {
                write!(f, "locked in the cloud (HTTP 402): {message}")
            }
            PushOutcome::Unauthorized {
                status, message, ..
            } => write!(f, "API key refused (HTTP {status}): {message}"),
            PushOutcome::WrongEndpoint { status, message } => {
                write!(f, "wrong endpoint (HTTP {status}): {message}")
            }
            PushOutcome::Temporary { reason } => write!(f, "temporary failure: {reason}"),
            PushOutcome::Cancelled => f.write_str("stopped before the answer came"),
        }
    }
}

/// Why a list, get, delete or key call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 401/403.
    #[error("the Omi API key was refused (HTTP {status}): {message}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
        /// The scope the server said is missing, if it named one.
        scope: Option<String>,
    },
    /// 429, or 503 with `Retry-After`.
    #[error("rate limited by the Omi cloud (HTTP {status})")]
    RateLimited {
        /// 429 or 503.
        status: u16,
        /// The server's `Retry-After`, if usable.
        retry_after: Option<RetryAfter>,
    },
    /// 402: the conversation is locked.
    #[error("the conversation is locked in the Omi cloud (HTTP 402): {message}")]
    Locked {
        /// The server's message.
        message: String,
    },
    /// A redirect or 405: the base URL points elsewhere.
    #[error("the Omi API answered from the wrong place (HTTP {status}): {message}")]
    WrongEndpoint {
        /// The HTTP status.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// Another 4xx.
    #[error("the Omi cloud refused the request (HTTP {status}): {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 5xx, timeouts, connection failures.
    #[error("temporary failure talking to the Omi cloud: {reason}")]
    Temporary {
        /// What happened.
        reason: String,
    },
    /// A success answer that is not what the API documents.
    #[error("unexpected answer from the Omi cloud: {reason}")]
    BadResponse {
        /// What was wrong.
        reason: String,
    },
    /// The job was cancelled while the request was out.
    #[error("stopped before the answer came")]
    Cancelled,
}

impl ApiError {
    /// Whether trying again later may help.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            ApiError::Temporary { .. }
                | ApiError::RateLimited { .. }
                | ApiError::BadResponse { .. }
        )
    }
}

impl From<&ApiError> for PushOutcome {
    /// The create outcome an error of another call amounts to, so one retry
    /// policy decides for every call.
    fn from(e: &ApiError) -> Self {
        match e.clone() {
            ApiError::Unauthorized {
                status,
                message,
                scope,
            } => PushOutcome::Unauthorized {
                status,
                message,
                scope,
            },
            ApiError::RateLimited {
                status,
                retry_after,
            } => PushOutcome::RateLimited {
                status,
                retry_after,
            },
            ApiError::Locked { message } => PushOutcome::Locked { message },
            ApiError::WrongEndpoint { status, message } => {
                PushOutcome::WrongEndpoint { status, message }
            }
            ApiError::Rejected { status, message } => PushOutcome::Rejected { status, message },
            ApiError::Temporary { reason } | ApiError::BadResponse { reason } => {
                PushOutcome::Temporary { reason }
            }
            ApiError::Cancelled => PushOutcome::Cancelled,
        }
    }
}

/// What the rate-limit headers of an answer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerBudget {
    /// `X-RateLimit-Limit`.
    pub limit: Option<u32>,
    /// `X-RateLimit-Remaining`.
    pub remaining: Option<u32>,
    /// `X-RateLimit-Reset`: epoch seconds, delta-seconds or an HTTP-date.
    pub reset: Option<RetryAfter>,
}

/// The rate-limit headers of `answer`, if it had any.
pub fn budget_of(answer: &Answer) -> Option<ServerBudget> {
    let number = |name: &str| {
        answer
            .header(name)
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let limit = number("x-ratelimit-limit").map(|n| n.min(u64::from(u32::MAX)) as u32);
    let remaining = number("x-ratelimit-remaining").map(|n| n.min(u64::from(u32::MAX)) as u32);
    let reset = answer.header("x-ratelimit-reset").and_then(parse_reset);
    (limit.is_some() || remaining.is_some() || reset.is_some()).then_some(ServerBudget {
        limit,
        remaining,
        reset,
    })
}

/// `X-RateLimit-Reset`: a large integer is a Unix time in seconds, a small
/// one seconds from now; else an HTTP-date.
fn parse_reset(value: &str) -> Option<RetryAfter> {
    let v = value.trim();
    match v.parse::<i64>() {
        Ok(n) if n >= 1_000_000_000 => Some(RetryAfter::At(crate::clock::UtcMillis::from_secs(n))),
        Ok(n) if n >= 0 => Some(RetryAfter::Delay(std::time::Duration::from_secs(n as u64))),
        Ok(_) => None,
        Err(_) => RetryAfter::parse(v),
    }
}

/// The server's message from an error body: FastAPI's `detail` (a string, a
/// list of validation errors, or an object with `message`), `message`,
/// `error`, an HTML page's title, or the text itself; scrubbed and shortened.
pub fn server_message(answer: &Answer) -> String {
    let body = &answer.body[..answer.body.len().min(ERROR_BODY_LIMIT)];
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    let msg = if trimmed.is_empty() {
        "(empty body)".to_string()
    } else if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        json_message(&v).unwrap_or_else(|| one_line(trimmed))
    } else if looks_like_html(trimmed, answer.header("content-type")) {
        match html_title(trimmed) {
            Some(title) => format!("HTML error page: {title}"),
            None => format!("HTML error page ({} bytes)", answer.body.len()),
        }
    } else {
        one_line(trimmed)
    };
    let msg = if answer.truncated || answer.body.len() > ERROR_BODY_LIMIT {
        format!("{msg} (answer cut at {} bytes)", body.len())
    } else {
        msg
    };
    shorten(&scrub_secrets(&msg), MESSAGE_LIMIT)
}

fn json_message(v: &Value) -> Option<String> {
    fn from(v: &Value) -> Option<String> {
        match v {
            Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
            Value::Array(items) if !items.is_empty() => {
                let parts: Vec<String> = items.iter().filter_map(from_item).collect();
                (!parts.is_empty()).then(|| parts.join("; "))
            }
            Value::Object(_) => ["message", "msg", "detail", "error", "code"]
                .iter()
                .find_map(|k| v.get(*k).and_then(from)),
            _ => None,
        }
    }
    fn from_item(item: &Value) -> Option<String> {
        let msg = from(item)?;
        let loc = item.get("loc").and_then(Value::as_array).map(|l| {
            l.iter()
                .map(|p| match p {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect::<Vec<_>>()
                .join(".")
        });
        Some(match loc {
            Some(loc) if !loc.is_empty() => format!("{loc}: {msg}"),
            _ => msg,
        })
    }
    ["detail", "message", "error", "title"]
        .iter()
        .find_map(|k| v.get(*k).and_then(from))
        .or_else(|| from(v))
}

fn looks_like_html(text: &str, content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| c.to_ascii_lowercase().contains("html")) || text.starts_with('<')
}

fn html_title(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let start = lower.find("<title")?;
    let open_end = start + lower[start..].find('>')? + 1;
    let close = open_end + lower[open_end..].find("</title")?;
    let title = one_line(&text[open_end..close]);
    (!title.is_empty()).then_some(title)
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect()
}

/// At most `max_chars` characters of `text`, with `…` when cut.
pub fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max_chars).collect();
    s.push('…');
    s
}

/// The scope a 403 message names (`… Required scope: conversations:write`).
fn scope_in(message: &str) -> Option<String> {
    message
        .split(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '(' | ')' | '"' | '\'' | '`'))
        .map(|w| w.trim_end_matches('.'))
        .find(|w| {
            w.split_once(':').is_some_and(|(a, b)| {
                !a.is_empty()
                    && !b.is_empty()
                    && a.chars()
                        .chain(b.chars())
                        .all(|c| c.is_ascii_lowercase() || c == '_' || c == '.')
            })
        })
        .map(str::to_string)
}

fn unauthorized(answer: &Answer) -> (u16, String, Option<String>) {
    let message = server_message(answer);
    let scope = (answer.status == 403).then(|| scope_in(&message)).flatten();
    (answer.status, message, scope)
}

fn retry_after_of(answer: &Answer) -> Option<RetryAfter> {
    answer.header("retry-after").and_then(RetryAfter::parse)
}

fn redirect_message(answer: &Answer) -> String {
    let to = answer
        .header("location")
        .map(|l| scrub_secrets(&shorten(l, 200)))
        .unwrap_or_else(|| "elsewhere".to_string());
    format!("the server redirected to {to}: check the API base URL")
}

/// Classifies a create answer.
pub fn classify_create(answer: &Answer) -> PushOutcome {
    let status = answer.status;
    match status {
        200..=299 => parse_created(answer).unwrap_or_else(|why| PushOutcome::Temporary {
            reason: format!("HTTP {status} but {why}; retrying is safe (same client_session_id)"),
        }),
        404 | 405 => PushOutcome::WrongEndpoint {
            status,
            message: format!(
                "{} (there is no create route at this address: the developer API may have \
                 been removed, or the base URL points at something else)",
                server_message(answer)
            ),
        },
        409 => PushOutcome::InFlight,
        _ => PushOutcome::from(&error_for(answer)),
    }
}

fn parse_created(answer: &Answer) -> Result<PushOutcome, String> {
    if answer.truncated {
        return Err("the answer was too large".to_string());
    }
    let v: Value = serde_json::from_slice(&answer.body).map_err(|_| {
        if answer.body.iter().all(u8::is_ascii_whitespace) {
            "the answer was empty".to_string()
        } else {
            "the answer is not JSON".to_string()
        }
    })?;
    let id = v
        .get("id")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or("the answer has no conversation id")?;
    Ok(PushOutcome::Created {
        id: id.to_string(),
        status: v
            .get("status")
            .and_then(Value::as_str)
            .unwrap_or(STATUS_COMPLETED)
            .to_string(),
        discarded: v.get("discarded").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// Classifies a failed answer of any call (404 is the caller's to read:
/// for a get or a delete it means "no such conversation").
pub fn error_for(answer: &Answer) -> ApiError {
    let status = answer.status;
    match status {
        300..=399 => ApiError::WrongEndpoint {
            status,
            message: redirect_message(answer),
        },
        401 | 403 => {
            let (status, message, scope) = unauthorized(answer);
            ApiError::Unauthorized {
                status,
                message,
                scope,
            }
        }
        402 => ApiError::Locked {
            message: server_message(answer),
        },
        405 => ApiError::WrongEndpoint {
            status,
            message: server_message(answer),
        },
        429 => ApiError::RateLimited {
            status,
            retry_after: retry_after_of(answer),
        },
        503 if retry_after_of(answer).is_some() => ApiError::RateLimited {
            status,
            retry_after: retry_after_of(answer),
        },
        408 | 425 => ApiError::Temporary {
            reason: format!("HTTP {status}: {}", server_message(answer)),
        },
        400..=499 => ApiError::Rejected {
            status,
            message: server_message(answer),
        },
        _ => ApiError::Temporary {
            reason: format!("HTTP {status}: {}", server_message(answer)),
        },
    }
}

/// The JSON of a success answer, or the error it is.
pub fn success_json(answer: &Answer) -> Result<Value, ApiError> {
    if !answer.is_success() {
        return Err(error_for(answer));
    }
    if answer.truncated {
        return Err(ApiError::BadResponse {
            reason: format!("the answer is larger than {} bytes", answer.body.len()),
        });
    }
    serde_json::from_slice(&answer.body).map_err(|e| ApiError::BadResponse {
        reason: format!("the answer is not JSON ({e})"),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::http::HeaderMap;
    use std::time::Duration;

    /// An answer with this status and body (and headers).
    pub(crate) fn answer_with(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, v.parse().unwrap());
        }
        Answer {
            status,
            headers: map,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
    }

    fn answer(status: u16, body: &str) -> Answer {
        answer_with(status, body, &[])
    }

    #[test]
    fn created_is_parsed_leniently() {
        let o = classify_create(&answer(
            200,
            r#"{"id":"c1","status":"processing","discarded":true}"#,
        ));
        assert_eq!(
            o,
            PushOutcome::Created {
                id: "c1".into(),
                status: "processing".into(),
                discarded: true
            }
        );
        assert!(o.is_created() && !o.is_completed());
        let o = classify_create(&answer(201, r#"{"id":"c2"}"#));
        assert!(o.is_completed(), "{o:?}");
    }

    #[test]
    fn odd_success_bodies_are_temporary() {
        for body in [
            "",
            "   ",
            "<html>ok</html>",
            "{}",
            r#"{"id":""}"#,
            r#"{"id":5}"#,
            "[]",
            "null",
        ] {
            let o = classify_create(&answer(200, body));
            assert!(
                matches!(o, PushOutcome::Temporary { .. }),
                "{body:?} -> {o:?}"
            );
        }
        let mut big = answer(200, r#"{"id":"c1"}"#);
        big.truncated = true;
        assert!(matches!(
            classify_create(&big),
            PushOutcome::Temporary { .. }
        ));
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(classify_create(&answer(409, "")), PushOutcome::InFlight);
        assert!(matches!(
            classify_create(&answer(401, r#"{"detail":"Invalid API key"}"#)),
            PushOutcome::Unauthorized { status: 401, ref message, scope: None } if message == "Invalid API key"
        ));
        assert!(matches!(
            classify_create(&answer(403, r#"{"detail":"Insufficient permissions. Required scope: conversations:write"}"#)),
            PushOutcome::Unauthorized { status: 403, scope: Some(ref s), .. } if s == "conversations:write"
        ));
        assert!(matches!(
            classify_create(&answer(422, r#"{"detail":"Segment 0: text cannot be empty"}"#)),
            PushOutcome::Rejected { status: 422, ref message } if message == "Segment 0: text cannot be empty"
        ));
        assert!(matches!(
            classify_create(&answer(402, r#"{"detail":"Conversation is locked"}"#)),
            PushOutcome::Locked { ref message } if message.contains("locked")
        ));
        for s in [404, 405] {
            assert!(matches!(
                classify_create(&answer(s, r#"{"detail":"Not Found"}"#)),
                PushOutcome::WrongEndpoint { ref message, .. } if message.contains("no create route")
            ));
        }
        for s in [500, 502, 503, 408] {
            assert!(
                matches!(
                    classify_create(&answer(s, "boom")),
                    PushOutcome::Temporary { .. }
                ),
                "{s}"
            );
        }
        let r = answer_with(429, "", &[("retry-after", "17")]);
        assert_eq!(
            classify_create(&r),
            PushOutcome::RateLimited {
                status: 429,
                retry_after: Some(RetryAfter::Delay(Duration::from_secs(17)))
            }
        );
        let r = answer_with(503, "", &[("retry-after", "9")]);
        assert!(matches!(
            classify_create(&r),
            PushOutcome::RateLimited { status: 503, .. }
        ));
        let r = answer_with(429, "", &[("retry-after", "whenever")]);
        assert_eq!(
            classify_create(&r),
            PushOutcome::RateLimited {
                status: 429,
                retry_after: None
            }
        );
        for s in [301, 307, 308] {
            let redirect = answer_with(s, "", &[("location", "https://elsewhere.example/v1")]);
            assert!(matches!(
                classify_create(&redirect),
                PushOutcome::WrongEndpoint { ref message, .. } if message.contains("elsewhere.example")
            ));
        }
    }

    #[test]
    fn rate_limit_headers_are_read_in_every_form() {
        let a = answer_with(
            200,
            "{}",
            &[
                ("x-ratelimit-limit", "25"),
                ("x-ratelimit-remaining", "3"),
                ("x-ratelimit-reset", "1717000000"),
            ],
        );
        assert_eq!(
            budget_of(&a),
            Some(ServerBudget {
                limit: Some(25),
                remaining: Some(3),
                reset: Some(RetryAfter::At(crate::clock::UtcMillis(1_717_000_000_000)))
            })
        );
        let a = answer_with(200, "{}", &[("x-ratelimit-reset", "120")]);
        assert_eq!(
            budget_of(&a).unwrap().reset,
            Some(RetryAfter::Delay(Duration::from_secs(120)))
        );
        assert_eq!(budget_of(&answer(200, "{}")), None);
        let a = answer_with(200, "{}", &[("x-ratelimit-remaining", "lots")]);
        assert_eq!(budget_of(&a), None);
    }

    #[test]
    fn messages_from_fastapi_shapes() {
        let pydantic = r#"{"detail":[{"loc":["body","transcript_segments",0,"end"],"msg":"field required","type":"missing"}]}"#;
        assert_eq!(
            server_message(&answer(422, pydantic)),
            "body.transcript_segments.0.end: field required"
        );
        let obj = r#"{"detail":{"code":"byok_rate_limit","message":"provider rate limited"}}"#;
        assert_eq!(server_message(&answer(429, obj)), "provider rate limited");
        assert_eq!(server_message(&answer(400, r#"{"error":"nope"}"#)), "nope");
        assert_eq!(server_message(&answer(400, "")), "(empty body)");
        assert_eq!(server_message(&answer(400, "plain\n text ")), "plain text");
        let html = "<!DOCTYPE html><html><head><title>502 Bad\nGateway</title></head><body>x</body></html>";
        assert_eq!(
            server_message(&answer(502, html)),
            "HTML error page: 502 Bad Gateway"
        );
        let untitled = answer_with(
            502,
            "<html><body>oops</body></html>",
            &[("content-type", "text/html")],
        );
        assert!(server_message(&untitled).starts_with("HTML error page ("));
        let long = "x".repeat(5000);
        assert!(server_message(&answer(400, &long)).chars().count() <= MESSAGE_LIMIT + 1);
        assert_eq!(server_message(&answer(400, "\u{0}\u{1}\u{2}bin")), "bin");
    }

    #[test]
    fn messages_never_carry_the_key() {
        let key = "omi_dev_0123456789abcdef0123456789abcdef";
        let body = format!(r#"{{"detail":"bad token Bearer {key} for {key}"}}"#);
        let m = server_message(&answer(401, &body));
        assert!(!m.contains("0123456789abcdef"), "{m}");
    }
}
