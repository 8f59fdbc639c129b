//! The Omi developer API client, and what its answers mean for a push.
//!
//! A synchronous client (`ureq`, rustls on ring) for the calls omi-sync needs
//! (`omi-facts.md` §5), under a configurable base URL:
//!
//! | call | method and path |
//! |---|---|
//! | create | `POST /v1/dev/user/conversations/from-segments` |
//! | list | `GET /v1/dev/user/conversations?limit=&offset=` (limit ≤ 100) |
//! | get | `GET /v1/dev/user/conversations/{id}` |
//! | delete | `DELETE /v1/dev/user/conversations/{id}` |
//!
//! Every answer to a create is classified into a [`PushOutcome`] the outbox
//! can act on (see [`crate::cloud::retry`]). Odd answers (HTML error pages,
//! empty or huge bodies, JSON without an id) never panic: a success the client
//! cannot read is `Temporary`, which is safe to retry because the request's
//! `client_session_id` makes the server return the conversation it already
//! made. The key travels only in the `Authorization` header; it is never
//! logged, and server messages are scrubbed of anything that looks like it.
//!
//! Plain `http://` is refused except to loopback addresses (tests, a local
//! contract server), so the key cannot leak over an unencrypted link.

use std::fmt;
use std::io::Read;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::clock::UtcMillis;
use crate::cloud::credentials::{ApiKey, KeyFingerprint, scrub_secrets};
use crate::cloud::payload::CreateConversationRequest;
use crate::cloud::retry::RetryAfter;

/// The Omi cloud.
pub const DEFAULT_BASE_URL: &str = "https://api.omi.me";
/// Create a conversation from transcript segments.
pub const CREATE_PATH: &str = "/v1/dev/user/conversations/from-segments";
/// List conversations; `/{id}` for one.
pub const CONVERSATIONS_PATH: &str = "/v1/dev/user/conversations";
/// The largest page the list call returns.
pub const MAX_LIST_LIMIT: u32 = 100;
/// How much of an error body is read to find the server's message.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;
/// How long a kept server message may be.
const MESSAGE_LIMIT: usize = 500;

/// How to reach the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `https://api.omi.me` unless testing.
    pub base_url: String,
    /// Limit for establishing a connection (DNS, TCP, TLS).
    pub connect_timeout: Duration,
    /// Limit for a whole call, body included. Creating a conversation runs the
    /// cloud's processing (title, summary, memories) before it answers, so this
    /// is generous.
    pub timeout: Duration,
    /// The largest success body read (a list page with transcripts is large).
    pub max_response_bytes: u64,
    /// Sent as `User-Agent`.
    pub user_agent: String,
    /// Allow `http://` to hosts other than loopback (never in production: the
    /// key would travel in clear).
    pub allow_insecure_http: bool,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            base_url: DEFAULT_BASE_URL.to_string(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(180),
            max_response_bytes: 16 * 1024 * 1024,
            user_agent: format!("omi-sync/{}", env!("CARGO_PKG_VERSION")),
            allow_insecure_http: false,
        }
    }
}

impl ClientConfig {
    /// The defaults with another base URL.
    pub fn with_base_url(base_url: &str) -> Self {
        ClientConfig {
            base_url: base_url.to_string(),
            ..ClientConfig::default()
        }
    }
}

/// Why a client could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The base URL is not `http(s)://host[:port][/prefix]`.
    #[error("the API base URL `{0}` is not an http(s) URL with a host")]
    BadBaseUrl(String),
    /// `http://` to a host that is not loopback.
    #[error(
        "the API base URL `{0}` is plain http to a non-local host: the API key would travel \
         unencrypted; use https"
    )]
    InsecureBaseUrl(String),
}

/// What a create call came to.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    /// The conversation exists (just made, or made before under the same
    /// `client_session_id`; a concurrent duplicate may answer with status
    /// `processing`).
    Created {
        /// The cloud's conversation id.
        id: String,
        /// Its processing status (`completed`, `processing`, …).
        status: String,
        /// Whether the cloud discarded it as not worth keeping.
        discarded: bool,
    },
    /// 429: too many creations; try again after `retry_after` (when given).
    RateLimited {
        /// The server's `Retry-After`, if it gave a usable one.
        retry_after: Option<RetryAfter>,
    },
    /// 409: the same conversation is being created by another request; check
    /// again later with the same `client_session_id`.
    InFlight,
    /// A 4xx refusal of this request (validation): retrying will not help.
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 401/403: the key is wrong, revoked, or lacks `conversations:write`.
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 5xx, a timeout, a reset or refused connection, an unreadable answer:
    /// worth retrying.
    Temporary {
        /// What happened.
        reason: String,
    },
}

impl PushOutcome {
    /// Whether the conversation now exists in the cloud.
    pub fn is_created(&self) -> bool {
        matches!(self, PushOutcome::Created { .. })
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
            PushOutcome::RateLimited { retry_after } => match retry_after {
                Some(RetryAfter::Delay(d)) => {
                    write!(f, "rate limited: retry after {} s", d.as_secs())
                }
                Some(RetryAfter::At(t)) => write!(f, "rate limited: retry after {t}"),
                None => f.write_str("rate limited"),
            },
            PushOutcome::InFlight => f.write_str("already being created by another request (409)"),
            PushOutcome::Rejected { status, message } => {
                write!(f, "rejected (HTTP {status}): {message}")
            }
            PushOutcome::Unauthorized { status, message } => {
                write!(f, "API key refused (HTTP {status}): {message}")
            }
            PushOutcome::Temporary { reason } => write!(f, "temporary failure: {reason}"),
        }
    }
}

/// Why a list, get or delete call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 401/403.
    #[error("the Omi API key was refused (HTTP {status}): {message}")]
    Unauthorized {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// 429.
    #[error("rate limited by the Omi cloud")]
    RateLimited {
        /// The server's `Retry-After`, if usable.
        retry_after: Option<RetryAfter>,
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

/// A conversation as the list and get calls describe it. Only `id` is
/// required; everything else is kept if present.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The cloud's id.
    pub id: String,
    /// When the cloud made it (RFC 3339, as sent).
    pub created_at: Option<String>,
    /// When it started.
    pub started_at: Option<UtcMillis>,
    /// When it finished.
    pub finished_at: Option<UtcMillis>,
    /// `structured.title`.
    pub title: Option<String>,
    /// The source (`sdcard`, …).
    pub source: Option<String>,
    /// The language code.
    pub language: Option<String>,
    /// The number of transcript segments, when the answer included them.
    pub segment_count: Option<usize>,
    /// The whole object as received.
    pub raw: Value,
}

impl Conversation {
    fn from_json(v: Value) -> Option<Self> {
        let id = v.get("id")?.as_str()?.trim().to_string();
        if id.is_empty() {
            return None;
        }
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let t = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .and_then(UtcMillis::parse_flexible)
        };
        Some(Conversation {
            id,
            created_at: s("created_at"),
            started_at: t("started_at"),
            finished_at: t("finished_at"),
            title: v
                .get("structured")
                .and_then(|st| st.get("title"))
                .and_then(Value::as_str)
                .map(str::to_string),
            source: s("source"),
            language: s("language"),
            segment_count: v
                .get("transcript_segments")
                .and_then(Value::as_array)
                .map(Vec::len),
            raw: v,
        })
    }
}

/// A page request for the list call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Page size, 1 to 100 (clamped).
    pub limit: u32,
    /// Conversations to skip.
    pub offset: u32,
    /// Include transcript segments (the cloud then caps pages at 25).
    pub include_transcript: bool,
    /// Only conversations from this time on.
    pub start_date: Option<UtcMillis>,
    /// Only conversations up to this time.
    pub end_date: Option<UtcMillis>,
}

impl Default for ListQuery {
    fn default() -> Self {
        ListQuery {
            limit: MAX_LIST_LIMIT,
            offset: 0,
            include_transcript: false,
            start_date: None,
            end_date: None,
        }
    }
}

/// What a delete came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    /// It existed and is gone.
    Deleted,
    /// There was nothing to delete (404): already gone, which is what a
    /// replace (delete, then create) wants anyway.
    NotFound,
}

/// The exact request a create would send, with the key redacted: for
/// `--dry-run` and for review.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    /// `POST`.
    pub method: &'static str,
    /// The full URL.
    pub url: String,
    /// Headers in send order; `Authorization` is redacted.
    pub headers: Vec<(String, String)>,
    /// The JSON body.
    pub body: Value,
}

impl fmt::Display for DryRun {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} {}", self.method, self.url)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        writeln!(f)?;
        if !self.body.is_null() {
            let body = serde_json::to_string_pretty(&self.body).unwrap_or_default();
            writeln!(f, "{body}")?;
        }
        Ok(())
    }
}

/// The create request for `request` as it would be sent to `base_url`, with
/// `shown_key` in place of the key (masked, or a note that none is set).
pub fn render_create(
    base_url: &str,
    user_agent: &str,
    shown_key: &str,
    request: &CreateConversationRequest,
) -> DryRun {
    DryRun {
        method: "POST",
        url: format!("{}{CREATE_PATH}", base_url.trim_end_matches('/')),
        headers: vec![
            ("Authorization".to_string(), format!("Bearer {shown_key}")),
            ("Content-Type".to_string(), "application/json".to_string()),
            ("Accept".to_string(), "application/json".to_string()),
            ("User-Agent".to_string(), user_agent.to_string()),
        ],
        body: serde_json::to_value(request).unwrap_or(Value::Null),
    }
}

/// The delete request for cloud conversation `cloud_id`, rendered like
/// [`render_create`] (no body).
pub fn render_delete(base_url: &str, user_agent: &str, shown_key: &str, cloud_id: &str) -> DryRun {
    DryRun {
        method: "DELETE",
        url: format!(
            "{}{CONVERSATIONS_PATH}/{}",
            base_url.trim_end_matches('/'),
            encode_segment(cloud_id)
        ),
        headers: vec![
            ("Authorization".to_string(), format!("Bearer {shown_key}")),
            ("Accept".to_string(), "application/json".to_string()),
            ("User-Agent".to_string(), user_agent.to_string()),
        ],
        body: Value::Null,
    }
}

/// The client. Cheap to share between threads by reference; connections are
/// pooled.
pub struct OmiClient {
    agent: ureq::Agent,
    base: String,
    key: ApiKey,
    config: ClientConfig,
}

impl fmt::Debug for OmiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OmiClient")
            .field("base", &self.base)
            .field("key", &self.key)
            .finish()
    }
}

/// Splits `scheme://host[:port]/…` and returns (scheme, host).
fn scheme_and_host(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    if authority.contains('@') {
        return None; // no credentials in URLs
    }
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority.split(':').next()?
    };
    (!host.is_empty()).then_some((scheme, host))
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Percent-encodes a path segment (ids are UUIDs, but never trust them).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A status, headers and (bounded) body.
struct Answer {
    status: u16,
    retry_after: Option<String>,
    location: Option<String>,
    content_type: Option<String>,
    body: Vec<u8>,
    truncated: bool,
}

impl OmiClient {
    /// A client for `config.base_url` using `key`.
    pub fn new(config: ClientConfig, key: ApiKey) -> Result<Self, ClientError> {
        let base = config.base_url.trim().trim_end_matches('/').to_string();
        let (scheme, host) =
            scheme_and_host(&base).ok_or_else(|| ClientError::BadBaseUrl(base.clone()))?;
        let loopback = is_loopback(host);
        match scheme.to_ascii_lowercase().as_str() {
            "https" => {}
            "http" if loopback || config.allow_insecure_http => {}
            "http" => return Err(ClientError::InsecureBaseUrl(base)),
            _ => return Err(ClientError::BadBaseUrl(base)),
        }
        let mut builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(config.connect_timeout))
            .timeout_global(Some(config.timeout))
            .user_agent(config.user_agent.as_str());
        if loopback {
            // A proxy from the environment must not swallow loopback traffic.
            builder = builder.proxy(None);
        }
        let agent = builder.build().new_agent();
        Ok(OmiClient {
            agent,
            base,
            key,
            config,
        })
    }

    /// The base URL in use (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The key's fingerprint (what logs and the rate limiter use).
    pub fn key_fingerprint(&self) -> &KeyFingerprint {
        self.key.fingerprint()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    fn bearer(&self) -> String {
        format!("Bearer {}", self.key.expose_secret())
    }

    /// The request [`create_conversation`](Self::create_conversation) would
    /// send, with the key redacted.
    pub fn dry_run_create(&self, request: &CreateConversationRequest) -> DryRun {
        render_create(
            &self.base,
            &self.config.user_agent,
            &self.key.masked(),
            request,
        )
    }

    /// Sends one request; a transport failure comes back as its reason.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        success_limit: u64,
    ) -> Result<Answer, String> {
        let url = self.url(path);
        let started = Instant::now();
        let result = match (method, body) {
            ("POST", Some(bytes)) => self
                .agent
                .post(&url)
                .header("Authorization", &self.bearer())
                .header("Content-Type", "application/json")
                .header("Accept", "application/json")
                .send(bytes),
            ("DELETE", _) => self
                .agent
                .delete(&url)
                .header("Authorization", &self.bearer())
                .header("Accept", "application/json")
                .call(),
            _ => self
                .agent
                .get(&url)
                .header("Authorization", &self.bearer())
                .header("Accept", "application/json")
                .call(),
        };
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                let reason = self.describe_transport_error(&e);
                tracing::debug!(
                    method,
                    path = %path.split('?').next().unwrap_or(path),
                    key = %self.key.fingerprint(),
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    %reason,
                    "omi api request failed"
                );
                return Err(reason);
            }
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let retry_after = header("retry-after");
        let location = header("location");
        let content_type = header("content-type");
        let limit = if (200..300).contains(&status) {
            success_limit
        } else {
            ERROR_BODY_LIMIT
        };
        let mut body = Vec::new();
        let read = response
            .body_mut()
            .as_reader()
            .take(limit.saturating_add(1))
            .read_to_end(&mut body);
        if let Err(e) = read {
            let e: ureq::Error = e.into();
            // A body cut off mid-way on an error answer still has a status.
            if (200..300).contains(&status) {
                return Err(format!(
                    "the answer (HTTP {status}) broke off: {}",
                    self.describe_transport_error(&e)
                ));
            }
        }
        let truncated = body.len() as u64 > limit;
        body.truncate(limit as usize);
        tracing::debug!(
            method,
            path = %path.split('?').next().unwrap_or(path),
            key = %self.key.fingerprint(),
            status,
            bytes = body.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "omi api request"
        );
        Ok(Answer {
            status,
            retry_after,
            location,
            content_type,
            body,
            truncated,
        })
    }

    fn describe_transport_error(&self, e: &ureq::Error) -> String {
        use std::io::ErrorKind as K;
        let text = match e {
            ureq::Error::Timeout(which) => format!(
                "no answer in time ({which}; limits: connect {} s, whole call {} s)",
                self.config.connect_timeout.as_secs_f32(),
                self.config.timeout.as_secs_f32()
            ),
            ureq::Error::Io(io) => match io.kind() {
                K::ConnectionRefused => "connection refused".to_string(),
                K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => {
                    format!("connection reset before the answer ({io})")
                }
                K::UnexpectedEof => "connection closed before the answer".to_string(),
                K::TimedOut | K::WouldBlock => format!("network timeout ({io})"),
                _ => format!("network error: {io}"),
            },
            ureq::Error::HostNotFound => "cannot resolve the API host (DNS)".to_string(),
            ureq::Error::ConnectionFailed => "could not connect to the API host".to_string(),
            ureq::Error::Protocol(p) => format!("malformed HTTP answer: {p}"),
            other => format!("request failed: {other}"),
        };
        scrub_secrets(&text)
    }

    /// `POST /v1/dev/user/conversations/from-segments`, classified.
    pub fn create_conversation(&self, request: &CreateConversationRequest) -> PushOutcome {
        let body = match serde_json::to_vec(request) {
            Ok(b) => b,
            Err(e) => {
                return PushOutcome::Rejected {
                    status: 0,
                    message: format!("the request could not be encoded as JSON: {e}"),
                };
            }
        };
        match self.send(
            "POST",
            CREATE_PATH,
            Some(&body),
            self.config.max_response_bytes,
        ) {
            Ok(answer) => classify_create(&answer),
            Err(reason) => PushOutcome::Temporary { reason },
        }
    }

    /// One page of `GET /v1/dev/user/conversations`.
    pub fn list_conversations(&self, query: &ListQuery) -> Result<Vec<Conversation>, ApiError> {
        let limit = query.limit.clamp(1, MAX_LIST_LIMIT);
        let mut path = format!(
            "{CONVERSATIONS_PATH}?limit={limit}&offset={}&include_transcript={}",
            query.offset, query.include_transcript
        );
        if let Some(t) = query.start_date {
            path.push_str(&format!("&start_date={}", encode_segment(&t.to_rfc3339())));
        }
        if let Some(t) = query.end_date {
            path.push_str(&format!("&end_date={}", encode_segment(&t.to_rfc3339())));
        }
        let answer = self
            .send("GET", &path, None, self.config.max_response_bytes)
            .map_err(|reason| ApiError::Temporary { reason })?;
        let v = success_json(&answer)?;
        let Value::Array(items) = v else {
            return Err(ApiError::BadResponse {
                reason: "the list is not a JSON array".to_string(),
            });
        };
        // One malformed item does not spoil the page.
        Ok(items
            .into_iter()
            .filter_map(Conversation::from_json)
            .collect())
    }

    /// Every conversation, page by page (offset pagination), at most
    /// `max_items`.
    pub fn list_all(
        &self,
        page_size: u32,
        max_items: usize,
    ) -> Result<Vec<Conversation>, ApiError> {
        let page_size = page_size.clamp(1, MAX_LIST_LIMIT);
        let mut all = Vec::new();
        let mut offset = 0u32;
        while all.len() < max_items {
            let page = self.list_conversations(&ListQuery {
                limit: page_size,
                offset,
                ..ListQuery::default()
            })?;
            let n = page.len();
            all.extend(page);
            if n < page_size as usize {
                break;
            }
            offset = offset.saturating_add(page_size);
        }
        all.truncate(max_items);
        Ok(all)
    }

    /// `GET /v1/dev/user/conversations/{id}`; `None` if it does not exist.
    pub fn get_conversation(&self, id: &str) -> Result<Option<Conversation>, ApiError> {
        let path = format!("{CONVERSATIONS_PATH}/{}", encode_segment(id));
        let answer = self
            .send("GET", &path, None, self.config.max_response_bytes)
            .map_err(|reason| ApiError::Temporary { reason })?;
        if answer.status == 404 {
            return Ok(None);
        }
        let v = success_json(&answer)?;
        Conversation::from_json(v)
            .map(Some)
            .ok_or_else(|| ApiError::BadResponse {
                reason: "the conversation has no id".to_string(),
            })
    }

    /// `DELETE /v1/dev/user/conversations/{id}`.
    pub fn delete_conversation(&self, id: &str) -> Result<Deleted, ApiError> {
        let path = format!("{CONVERSATIONS_PATH}/{}", encode_segment(id));
        let answer = self
            .send("DELETE", &path, None, ERROR_BODY_LIMIT)
            .map_err(|reason| ApiError::Temporary { reason })?;
        match answer.status {
            200..=299 => Ok(Deleted::Deleted),
            404 => Ok(Deleted::NotFound),
            _ => Err(error_for(&answer)),
        }
    }
}

/// The server's message from an error body: FastAPI's `detail` (a string, a
/// list of validation errors, or an object with `message`), `message`,
/// `error`, an HTML page's title, or the text itself; scrubbed and shortened.
fn server_message(answer: &Answer) -> String {
    let body = &answer.body;
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    let msg = if trimmed.is_empty() {
        "(empty body)".to_string()
    } else if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
        json_message(&v).unwrap_or_else(|| one_line(trimmed))
    } else if looks_like_html(trimmed, answer.content_type.as_deref()) {
        match html_title(trimmed) {
            Some(title) => format!("HTML error page: {title}"),
            None => format!("HTML error page ({} bytes)", body.len()),
        }
    } else {
        one_line(trimmed)
    };
    let msg = if answer.truncated {
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
            Value::Object(_) => ["message", "msg", "detail", "error"]
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

fn shorten(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max_chars).collect();
    s.push('…');
    s
}

fn retry_after_of(answer: &Answer) -> Option<RetryAfter> {
    answer.retry_after.as_deref().and_then(RetryAfter::parse)
}

/// Classifies a create answer.
fn classify_create(answer: &Answer) -> PushOutcome {
    let status = answer.status;
    match status {
        200..=299 => parse_created(answer).unwrap_or_else(|why| PushOutcome::Temporary {
            reason: format!("HTTP {status} but {why}; retrying is safe (same client_session_id)"),
        }),
        300..=399 => PushOutcome::Rejected {
            status,
            message: redirect_message(answer),
        },
        401 | 403 => PushOutcome::Unauthorized {
            status,
            message: server_message(answer),
        },
        409 => PushOutcome::InFlight,
        429 => PushOutcome::RateLimited {
            retry_after: retry_after_of(answer),
        },
        408 | 425 => PushOutcome::Temporary {
            reason: format!("HTTP {status}: {}", server_message(answer)),
        },
        404 | 405 => PushOutcome::Rejected {
            status,
            message: format!(
                "{} (the create endpoint is not there: check the API base URL)",
                server_message(answer)
            ),
        },
        400..=499 => PushOutcome::Rejected {
            status,
            message: server_message(answer),
        },
        _ => PushOutcome::Temporary {
            reason: format!("HTTP {status}: {}", server_message(answer)),
        },
    }
}

fn redirect_message(answer: &Answer) -> String {
    let to = answer
        .location
        .as_deref()
        .map(|l| scrub_secrets(&shorten(l, 200)))
        .unwrap_or_else(|| "elsewhere".to_string());
    format!("the server redirected to {to}: check the API base URL")
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
            .unwrap_or("completed")
            .to_string(),
        discarded: v.get("discarded").and_then(Value::as_bool).unwrap_or(false),
    })
}

fn error_for(answer: &Answer) -> ApiError {
    let status = answer.status;
    match status {
        401 | 403 => ApiError::Unauthorized {
            status,
            message: server_message(answer),
        },
        429 => ApiError::RateLimited {
            retry_after: retry_after_of(answer),
        },
        300..=399 => ApiError::Rejected {
            status,
            message: redirect_message(answer),
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

fn success_json(answer: &Answer) -> Result<Value, ApiError> {
    if !(200..300).contains(&answer.status) {
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
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            location: None,
            content_type: None,
            body: body.as_bytes().to_vec(),
            truncated: false,
        }
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
        let o = classify_create(&answer(201, r#"{"id":"c2"}"#));
        assert!(
            matches!(o, PushOutcome::Created { ref status, discarded: false, .. } if status == "completed")
        );
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
            PushOutcome::Unauthorized { status: 401, ref message } if message == "Invalid API key"
        ));
        assert!(matches!(
            classify_create(&answer(
                403,
                r#"{"detail":"Missing scope conversations:write"}"#
            )),
            PushOutcome::Unauthorized { status: 403, .. }
        ));
        assert!(matches!(
            classify_create(&answer(422, r#"{"detail":"Segment 0: text cannot be empty"}"#)),
            PushOutcome::Rejected { status: 422, ref message } if message == "Segment 0: text cannot be empty"
        ));
        assert!(matches!(
            classify_create(&answer(402, r#"{"detail":"A paid plan is required"}"#)),
            PushOutcome::Rejected { status: 402, .. }
        ));
        assert!(matches!(
            classify_create(&answer(404, r#"{"detail":"Not Found"}"#)),
            PushOutcome::Rejected { status: 404, ref message } if message.contains("base URL")
        ));
        assert!(matches!(
            classify_create(&answer(500, "boom")),
            PushOutcome::Temporary { .. }
        ));
        assert!(matches!(
            classify_create(&answer(503, "")),
            PushOutcome::Temporary { .. }
        ));
        assert!(matches!(
            classify_create(&answer(408, "")),
            PushOutcome::Temporary { .. }
        ));
        let mut r = answer(429, "");
        r.retry_after = Some("17".into());
        assert_eq!(
            classify_create(&r),
            PushOutcome::RateLimited {
                retry_after: Some(RetryAfter::Delay(Duration::from_secs(17)))
            }
        );
        r.retry_after = Some("whenever".into());
        assert_eq!(
            classify_create(&r),
            PushOutcome::RateLimited { retry_after: None }
        );
        let mut redirect = answer(301, "");
        redirect.location = Some("https://elsewhere.example/v1".into());
        assert!(matches!(
            classify_create(&redirect),
            PushOutcome::Rejected { status: 301, ref message } if message.contains("base URL")
        ));
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
        let mut untitled = answer(502, "<html><body>oops</body></html>");
        untitled.content_type = Some("text/html".into());
        assert!(server_message(&untitled).starts_with("HTML error page ("));
        let long = "x".repeat(5000);
        assert!(server_message(&answer(400, &long)).chars().count() <= MESSAGE_LIMIT + 1);
        let binary = answer(400, "\u{0}\u{1}\u{2}bin");
        assert_eq!(server_message(&binary), "bin");
    }

    #[test]
    fn messages_never_carry_the_key() {
        let key = "omi_dev_0123456789abcdef0123456789abcdef";
        let body = format!(r#"{{"detail":"bad token Bearer {key} for {key}"}}"#);
        let m = server_message(&answer(401, &body));
        assert!(!m.contains("0123456789abcdef"), "{m}");
    }

    #[test]
    fn base_urls_are_checked() {
        let key = ApiKey::parse("omi_dev_0123456789abcdef0123456789abcdef").unwrap();
        let ok = |u: &str| OmiClient::new(ClientConfig::with_base_url(u), key.clone());
        assert!(ok("https://api.omi.me/").is_ok());
        assert_eq!(
            ok("https://api.omi.me/").unwrap().base_url(),
            "https://api.omi.me"
        );
        assert!(ok("http://127.0.0.1:8080").is_ok());
        assert!(ok("http://localhost:1").is_ok());
        assert!(ok("http://[::1]:9").is_ok());
        assert!(matches!(
            ok("http://api.omi.me"),
            Err(ClientError::InsecureBaseUrl(_))
        ));
        assert!(matches!(ok("ftp://x"), Err(ClientError::BadBaseUrl(_))));
        assert!(matches!(ok("api.omi.me"), Err(ClientError::BadBaseUrl(_))));
        assert!(matches!(
            ok("https://user:pw@host"),
            Err(ClientError::BadBaseUrl(_))
        ));
        let mut cfg = ClientConfig::with_base_url("http://10.0.0.5");
        cfg.allow_insecure_http = true;
        assert!(OmiClient::new(cfg, key.clone()).is_ok());
    }

    #[test]
    fn debug_of_client_hides_key() {
        let key = ApiKey::parse("omi_dev_0123456789abcdef0123456789abcdef").unwrap();
        let c = OmiClient::new(ClientConfig::default(), key).unwrap();
        assert!(!format!("{c:?}").contains("0123456789abcdef"));
    }

    #[test]
    fn segments_are_encoded() {
        assert_eq!(encode_segment("abc-123_x.y~z"), "abc-123_x.y~z");
        assert_eq!(encode_segment("../a b/?"), "..%2Fa%20b%2F%3F");
    }

    #[test]
    fn conversations_parse_leniently() {
        let v = serde_json::json!({
            "id": "c1", "created_at": "2024-05-29T16:26:40Z",
            "started_at": "2024-05-29T16:26:40.000Z", "finished_at": "garbage",
            "structured": {"title": "Standup"}, "source": "sdcard",
            "transcript_segments": [{}, {}]
        });
        let c = Conversation::from_json(v).unwrap();
        assert_eq!(c.title.as_deref(), Some("Standup"));
        assert_eq!(c.started_at, Some(UtcMillis(1_717_000_000_000)));
        assert_eq!(c.finished_at, None);
        assert_eq!(c.segment_count, Some(2));
        assert!(Conversation::from_json(serde_json::json!({"title": "x"})).is_none());
    }
}
