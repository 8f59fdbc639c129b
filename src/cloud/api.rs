//! The Omi developer API client.
//!
//! A blocking client ([`crate::http`]: `reqwest`, rustls on *ring*) for the
//! calls omi-sync needs (`omi-facts.md` §5), under a configurable base URL:
//!
//! | call | method and path |
//! |---|---|
//! | create | `POST /v1/dev/user/conversations/from-segments` |
//! | list | `GET /v1/dev/user/conversations?limit=&offset=` (limit ≤ 100) |
//! | get | `GET /v1/dev/user/conversations/{id}` |
//! | delete | `DELETE /v1/dev/user/conversations/{id}` |
//! | the key's scopes | `GET /v1/dev/key` |
//!
//! What each answer means is [`crate::cloud::answer`]'s to say; every call
//! also returns the answer's rate-limit headers ([`Reply`]), since creates,
//! deletes and patches share one hourly budget. The key travels only in the
//! `Authorization` header (marked sensitive); it is never logged, and
//! server messages are scrubbed of anything that looks like it. Plain
//! `http://` is refused except to loopback addresses ([`BaseUrl`]).

use std::fmt;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::Value;

pub use super::answer::{ApiError, PushOutcome, STATUS_COMPLETED, ServerBudget};
use super::answer::{budget_of, classify_create, error_for, success_json};
pub use super::url::{BaseUrl, UrlError};
use crate::cancel::Cancel;
use crate::clock::UtcMillis;
use crate::cloud::credentials::{ApiKey, KeyFingerprint};
use crate::cloud::payload::CreateConversationRequest;
use crate::http::{self, Answer, Failure, Method};

/// The Omi cloud.
pub const DEFAULT_BASE_URL: &str = "https://api.omi.me";
/// Create a conversation from transcript segments.
pub const CREATE_PATH: &str = "/v1/dev/user/conversations/from-segments";
/// List conversations; `/{id}` for one.
pub const CONVERSATIONS_PATH: &str = "/v1/dev/user/conversations";
/// The calling key's metadata and scopes.
pub const KEY_PATH: &str = "/v1/dev/key";
/// The scope a key needs to create and delete conversations.
pub const WRITE_SCOPE: &str = "conversations:write";
/// The largest page the list call returns.
pub const MAX_LIST_LIMIT: u32 = 100;

/// How to reach the cloud.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// `https://api.omi.me` unless testing.
    pub base_url: String,
    /// Where the base URL came from, for messages.
    pub url_from: String,
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
            url_from: "the client settings".to_string(),
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(180),
            max_response_bytes: 16 * 1024 * 1024,
            user_agent: http::user_agent(),
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
    /// The base URL is unusable.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The HTTP client could not be set up.
    #[error("{0}")]
    Setup(String),
}

/// A call's result with the rate-limit headers its answer carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply<T> {
    /// What the call came to.
    pub value: T,
    /// `X-RateLimit-*`, when the answer had them.
    pub budget: Option<ServerBudget>,
}

impl<T> Reply<T> {
    fn bare(value: T) -> Self {
        Reply {
            value,
            budget: None,
        }
    }
}

/// A conversation as the list and get calls describe it. Only `id` is
/// required; everything else is kept if present.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    /// The cloud's id.
    pub id: String,
    /// Its processing status (`completed`, `processing`), when given.
    pub status: Option<String>,
    /// Whether the cloud discarded it.
    pub discarded: bool,
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
            status: s("status"),
            discarded: v.get("discarded").and_then(Value::as_bool).unwrap_or(false),
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

    /// Whether the cloud reports it finished (a missing status counts as
    /// finished: older servers only return finished conversations).
    pub fn is_completed(&self) -> bool {
        self.status.as_deref().is_none_or(|s| s == STATUS_COMPLETED)
    }
}

/// What `GET /v1/dev/key` says about the calling key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    /// The key's name, as its owner gave it.
    pub name: Option<String>,
    /// Its effective scopes, when the server listed them.
    pub scopes: Option<Vec<String>>,
}

impl KeyInfo {
    /// Whether the key has `scope` (`None` when the server did not say).
    pub fn has_scope(&self, scope: &str) -> Option<bool> {
        self.scopes.as_ref().map(|s| s.iter().any(|x| x == scope))
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
    /// `POST` or `DELETE`.
    pub method: &'static str,
    /// The full URL.
    pub url: String,
    /// Headers in send order; `Authorization` is redacted.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`null` for a DELETE).
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

fn shown_headers(shown_key: &str, user_agent: &str, json_body: bool) -> Vec<(String, String)> {
    let mut h = vec![("Authorization".to_string(), format!("Bearer {shown_key}"))];
    if json_body {
        h.push(("Content-Type".to_string(), "application/json".to_string()));
    }
    h.push(("Accept".to_string(), "application/json".to_string()));
    h.push(("User-Agent".to_string(), user_agent.to_string()));
    h
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
        headers: shown_headers(shown_key, user_agent, true),
        body: serde_json::to_value(request).unwrap_or(Value::Null),
    }
}

/// The delete request for cloud conversation `cloud_id`, rendered like
/// [`render_create`] (no body).
pub fn render_delete(base_url: &str, user_agent: &str, shown_key: &str, cloud_id: &str) -> DryRun {
    render_one("DELETE", base_url, user_agent, shown_key, cloud_id)
}

/// The request that checks on cloud conversation `cloud_id`, rendered like
/// [`render_create`] (no body).
pub fn render_get(base_url: &str, user_agent: &str, shown_key: &str, cloud_id: &str) -> DryRun {
    render_one("GET", base_url, user_agent, shown_key, cloud_id)
}

fn render_one(
    method: &'static str,
    base_url: &str,
    user_agent: &str,
    shown_key: &str,
    cloud_id: &str,
) -> DryRun {
    DryRun {
        method,
        url: format!(
            "{}{CONVERSATIONS_PATH}/{}",
            base_url.trim_end_matches('/'),
            encode_segment(cloud_id)
        ),
        headers: shown_headers(shown_key, user_agent, false),
        body: Value::Null,
    }
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

/// The client. Cheap to share between threads by reference; connections are
/// pooled.
pub struct OmiClient {
    http: http::Client,
    base: BaseUrl,
    key: ApiKey,
    config: ClientConfig,
    cancel: Cancel,
}

impl fmt::Debug for OmiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OmiClient")
            .field("base", &self.base.as_str())
            .field("key", &self.key)
            .finish()
    }
}

impl OmiClient {
    /// A client for `config.base_url` using `key`.
    pub fn new(config: ClientConfig, key: ApiKey) -> Result<Self, ClientError> {
        let base = BaseUrl::parse(
            &config.base_url,
            &config.url_from,
            config.allow_insecure_http,
        )?;
        let http = http::Client::new(http::Settings {
            connect_timeout: config.connect_timeout,
            timeout: config.timeout,
            user_agent: config.user_agent.clone(),
            // A proxy from the environment must not swallow loopback traffic.
            no_proxy: base.is_loopback(),
        })
        .map_err(|e| ClientError::Setup(e.to_string()))?;
        Ok(OmiClient {
            http,
            base,
            key,
            config,
            cancel: Cancel::new(),
        })
    }

    /// The same client, whose waits for answers end when `cancel` fires.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }

    /// The base URL in use (no trailing slash).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// The key's fingerprint (what logs and the rate limiter use).
    pub fn key_fingerprint(&self) -> &KeyFingerprint {
        self.key.fingerprint()
    }

    /// The request [`create_conversation`](Self::create_conversation) would
    /// send, with the key redacted.
    pub fn dry_run_create(&self, request: &CreateConversationRequest) -> DryRun {
        render_create(
            self.base.as_str(),
            &self.config.user_agent,
            &self.key.masked(),
            request,
        )
    }

    /// Sends one request; a transport failure comes back as its reason.
    fn call(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Answer, Failure> {
        let started = Instant::now();
        let mut bearer = HeaderValue::from_str(&format!("Bearer {}", self.key.expose_secret()))
            .map_err(|_| Failure::Request("the API key cannot be sent as a header".into()))?;
        bearer.set_sensitive(true);
        let mut request = self
            .http
            .request(method.clone(), &self.base.join(path))
            .header(AUTHORIZATION, bearer)
            .header(ACCEPT, "application/json");
        if let Some(bytes) = body {
            request = request.header(CONTENT_TYPE, "application/json").body(bytes);
        }
        let result = self
            .http
            .send(request, self.config.max_response_bytes, &self.cancel);
        let route = path.split('?').next().unwrap_or(path);
        match &result {
            Ok(a) => tracing::debug!(
                method = %method,
                path = %route,
                key = %self.key.fingerprint(),
                status = a.status,
                bytes = a.body.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "omi api request"
            ),
            Err(e) => tracing::debug!(
                method = %method,
                path = %route,
                key = %self.key.fingerprint(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                reason = %e,
                "omi api request failed"
            ),
        }
        result
    }

    /// `POST …/from-segments`, classified, with the answer's rate-limit headers.
    pub fn create(&self, request: &CreateConversationRequest) -> Reply<PushOutcome> {
        let body = match serde_json::to_vec(request) {
            Ok(b) => b,
            Err(e) => {
                return Reply::bare(PushOutcome::Rejected {
                    status: 0,
                    message: format!("the request could not be encoded as JSON: {e}"),
                });
            }
        };
        match self.call(Method::POST, CREATE_PATH, Some(body)) {
            Ok(answer) => Reply {
                value: classify_create(&answer),
                budget: budget_of(&answer),
            },
            Err(Failure::Cancelled) => Reply::bare(PushOutcome::Cancelled),
            Err(e) => Reply::bare(PushOutcome::Temporary {
                reason: e.to_string(),
            }),
        }
    }

    /// [`create`](Self::create) without the headers.
    pub fn create_conversation(&self, request: &CreateConversationRequest) -> PushOutcome {
        self.create(request).value
    }

    fn read(&self, path: &str) -> Result<Answer, ApiError> {
        self.call(Method::GET, path, None).map_err(failure_error)
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
        let v = success_json(&self.read(&path)?)?;
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

    /// `GET /v1/dev/user/conversations/{id}`; `None` if the cloud does not
    /// have it (or it is locked: the cloud hides locked conversations).
    pub fn get(&self, id: &str) -> Reply<Result<Option<Conversation>, ApiError>> {
        let path = format!("{CONVERSATIONS_PATH}/{}", encode_segment(id));
        let answer = match self.read(&path) {
            Ok(a) => a,
            Err(e) => return Reply::bare(Err(e)),
        };
        let budget = budget_of(&answer);
        let value = if answer.status == 404 {
            Ok(None)
        } else {
            success_json(&answer).and_then(|v| {
                Conversation::from_json(v)
                    .map(Some)
                    .ok_or_else(|| ApiError::BadResponse {
                        reason: "the conversation has no id".to_string(),
                    })
            })
        };
        Reply { value, budget }
    }

    /// [`get`](Self::get) without the headers.
    pub fn get_conversation(&self, id: &str) -> Result<Option<Conversation>, ApiError> {
        self.get(id).value
    }

    /// `DELETE /v1/dev/user/conversations/{id}`, with the answer's
    /// rate-limit headers.
    pub fn delete(&self, id: &str) -> Reply<Result<Deleted, ApiError>> {
        let path = format!("{CONVERSATIONS_PATH}/{}", encode_segment(id));
        let answer = match self.call(Method::DELETE, &path, None) {
            Ok(a) => a,
            Err(e) => return Reply::bare(Err(failure_error(e))),
        };
        let value = match answer.status {
            200..=299 => Ok(Deleted::Deleted),
            404 => Ok(Deleted::NotFound),
            _ => Err(error_for(&answer)),
        };
        Reply {
            value,
            budget: budget_of(&answer),
        }
    }

    /// [`delete`](Self::delete) without the headers.
    pub fn delete_conversation(&self, id: &str) -> Result<Deleted, ApiError> {
        self.delete(id).value
    }

    /// `GET /v1/dev/key`: the calling key's name and scopes. `None` when
    /// the server has no such route (older backends).
    pub fn key_info(&self) -> Result<Option<KeyInfo>, ApiError> {
        let answer = self.read(KEY_PATH)?;
        if answer.status == 404 {
            return Ok(None);
        }
        let v = success_json(&answer)?;
        let scopes = v.get("scopes").and_then(Value::as_array).map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        });
        Ok(Some(KeyInfo {
            name: v.get("name").and_then(Value::as_str).map(str::to_string),
            scopes,
        }))
    }
}

/// A transport failure as an error of a call.
fn failure_error(e: Failure) -> ApiError {
    match e {
        Failure::Cancelled => ApiError::Cancelled,
        other => ApiError::Temporary {
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "omi_dev_0123456789abcdef0123456789abcdef";

    #[test]
    fn base_urls_are_checked() {
        let key = ApiKey::parse(KEY).unwrap();
        let ok = |u: &str| OmiClient::new(ClientConfig::with_base_url(u), key.clone());
        assert_eq!(
            ok("https://api.omi.me/").unwrap().base_url(),
            "https://api.omi.me"
        );
        assert!(ok("http://127.0.0.1:8080").is_ok());
        assert!(ok("http://localhost:1").is_ok());
        assert!(ok("http://[::1]:9").is_ok());
        assert!(matches!(
            ok("http://api.omi.me"),
            Err(ClientError::Url(UrlError::Insecure { .. }))
        ));
        assert!(matches!(ok("ftp://x"), Err(ClientError::Url(_))));
        assert!(matches!(ok("api.omi.me"), Err(ClientError::Url(_))));
        assert!(matches!(
            ok("https://user:pw@host"),
            Err(ClientError::Url(UrlError::Credentials { .. }))
        ));
        let mut cfg = ClientConfig::with_base_url("http://10.0.0.5");
        cfg.allow_insecure_http = true;
        assert!(OmiClient::new(cfg, key.clone()).is_ok());
    }

    #[test]
    fn debug_of_client_hides_key() {
        let key = ApiKey::parse(KEY).unwrap();
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
            "id": "c1", "created_at": "2024-05-29T16:26:40Z", "status": "processing",
            "started_at": "2024-05-29T16:26:40.000Z", "finished_at": "garbage",
            "structured": {"title": "Standup"}, "source": "sdcard",
            "transcript_segments": [{}, {}]
        });
        let c = Conversation::from_json(v).unwrap();
        assert_eq!(c.title.as_deref(), Some("Standup"));
        assert_eq!(c.started_at, Some(UtcMillis(1_717_000_000_000)));
        assert_eq!(c.finished_at, None);
        assert_eq!(c.segment_count, Some(2));
        assert!(!c.is_completed());
        let done = Conversation::from_json(serde_json::json!({"id": "c2"})).unwrap();
        assert!(done.is_completed());
        assert!(Conversation::from_json(serde_json::json!({"title": "x"})).is_none());
    }

    #[test]
    fn key_info_knows_what_it_does_not_know() {
        let k = KeyInfo {
            name: None,
            scopes: Some(vec!["conversations:read".into()]),
        };
        assert_eq!(k.has_scope(WRITE_SCOPE), Some(false));
        let unknown = KeyInfo {
            name: None,
            scopes: None,
        };
        assert_eq!(unknown.has_scope(WRITE_SCOPE), None);
    }
}
