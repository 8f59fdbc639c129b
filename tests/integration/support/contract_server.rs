//! A contract test server for the Omi developer API, on loopback.
//!
//! It enforces the API as the upstream backend behaves (`omi-facts.md` §5,
//! `routers/developer.py`, `utils/rate_limit_config.py`), independently of
//! omi-sync's own types: it reads raw JSON.
//!
//! - Auth: `Authorization: Bearer omi_dev_[0-9a-f]{32}`, else 401. Keys listed
//!   as revoked get 401; keys listed as read-only lack `conversations:write`
//!   (403 on writes). `GET /v1/dev/key` returns the key's name and scopes.
//! - The shared budget: creates, DELETEs and PATCHes of one key draw on one
//!   count per fixed window (clock hours; 25), charged after auth and
//!   **before** the body is validated, so a 422 uses one too. Every write
//!   answer carries `X-RateLimit-Limit`, `-Remaining` and `-Reset` (epoch
//!   seconds); a 429 also `Retry-After`.
//! - `POST /v1/dev/user/conversations/from-segments`: the field rules
//!   ([`validate_create`]; 422 with upstream's messages), then idempotency by
//!   `client_session_id`. The conversation is stored `processing` at once
//!   and `completed` when processing ends (after `processing_delay`); a
//!   repeat meanwhile answers **200 `processing`** with the same id. If
//!   processing fails ([`Fault::ProcessingFails`]) the row is deleted and
//!   the request answers 500; a claim still `processing` after `stale_after`
//!   ([`Fault::ProcessingHangs`] leaves one) is dropped and redone by the
//!   next request with that session id. Ids are derived from (key, session
//!   id) as upstream's UUIDv5. A DELETE leaves a tombstone: a later create
//!   with that session id is refused with 410 when `refuse_after_delete` is
//!   set (upstream's behaviour there is not settled), else made again.
//! - `GET /v1/dev/user/conversations?limit=&offset=&include_transcript=`
//!   (limit clamped to 1-100, 25 with transcripts; completed, unlocked
//!   conversations only, newest first), `GET`, `PATCH` (`title`,
//!   `discarded`) and `DELETE /v1/dev/user/conversations/{id}` (404 when
//!   unknown; a locked conversation, see [`ContractServer::lock`], is 404 on
//!   GET and 402 on PATCH and DELETE). With `create_route_gone` the create
//!   route answers 404 (the "developer API removal").
//! - Faults on demand ([`Fault`]): a queue consumed by the next matching
//!   requests: an error status, a raw body (HTML, empty, huge), 429, a 503
//!   from the limiter with `Retry-After`, a stall past the client's timeout,
//!   a dropped connection (RST), the nasty ones where the conversation IS
//!   created but the answer is lost, and failed or hung processing.
//! - Inspection: every request (method, path, session id, key fingerprint,
//!   status, the conversation status answered), the conversations stored,
//!   completions per session id (the exactly-once count).
//!
//! Use from a test: `let server = ContractServer::start(ContractConfig::default());`
//! then `server.base_url()`. Standalone: `cargo run --example contract_server`
//! prints the URL and serves until stdin closes; it also answers
//! `GET /_contract/stats`, `POST /_contract/faults` and `POST /_contract/reset`
//! (not part of the Omi API; see [`admin_fault`] for the fault JSON).

#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::connect_info::{ConnectInfo, Connected};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::serve::{IncomingStream, Listener};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// A well-formed key the server accepts.
pub const TEST_KEY: &str = "omi_dev_0123456789abcdef0123456789abcdef";
/// Another well-formed key (a second account).
pub const OTHER_KEY: &str = "omi_dev_fedcba9876543210fedcba9876543210";
/// The create path.
pub const CREATE_PATH: &str = "/v1/dev/user/conversations/from-segments";
/// The list path; `/{id}` for one.
pub const CONVERSATIONS_PATH: &str = "/v1/dev/user/conversations";
/// The calling key's metadata and scopes.
pub const KEY_PATH: &str = "/v1/dev/key";
/// The status of a conversation whose processing is done.
pub const COMPLETED: &str = "completed";
/// The status of a conversation still being processed.
pub const PROCESSING: &str = "processing";
/// Upstream's ConversationSource values.
pub const SOURCES: &[&str] = &[
    "friend",
    "omi",
    "fieldy",
    "bee",
    "plaud",
    "frame",
    "friend_com",
    "apple_watch",
    "phone",
    "desktop",
    "openglass",
    "screenpipe",
    "workflow",
    "sdcard",
    "external_integration",
    "limitless",
    "onboarding",
];

/// How the server behaves.
#[derive(Debug, Clone)]
pub struct ContractConfig {
    /// Writes (creates, DELETEs, PATCHes) allowed per key per window (the
    /// cloud: 25).
    pub hourly_limit: u32,
    /// The fixed window (the cloud: one clock hour).
    pub window: Duration,
    /// How long a create's processing takes (a repeat meanwhile answers 200
    /// `processing`).
    pub processing_delay: Duration,
    /// A claim still `processing` this long is dropped and redone by the
    /// next request with its session id (the cloud: 15 minutes).
    pub stale_after: Duration,
    /// A create with the session id of a deleted conversation is refused
    /// (410) instead of made again.
    pub refuse_after_delete: bool,
    /// The create route is gone: 404 (upstream's "developer API removal").
    pub create_route_gone: bool,
    /// Send `Retry-After` as an HTTP-date instead of delta-seconds.
    pub retry_after_as_date: bool,
    /// Refuse creates without `client_session_id` (omi-sync always sends one;
    /// upstream makes it optional).
    pub require_session_id: bool,
    /// Well-formed keys that get 401.
    pub revoked_keys: Vec<String>,
    /// Keys without `conversations:write`: 403 on create and delete.
    pub read_only_keys: Vec<String>,
    /// Misbehave: repeat the Authorization header in 401 messages (to test
    /// that the client scrubs what servers echo).
    pub echo_auth_in_errors: bool,
}

impl Default for ContractConfig {
    fn default() -> Self {
        ContractConfig {
            hourly_limit: 25,
            window: Duration::from_secs(3600),
            processing_delay: Duration::ZERO,
            stale_after: Duration::from_secs(15 * 60),
            refuse_after_delete: true,
            create_route_gone: false,
            retry_after_as_date: false,
            require_session_id: true,
            revoked_keys: Vec::new(),
            read_only_keys: Vec::new(),
            echo_auth_in_errors: false,
        }
    }
}

/// A fault for the next matching request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and `{"detail": …}`; nothing is processed.
    Status(u16),
    /// Answer with exactly this; nothing is processed.
    Raw {
        /// Status.
        status: u16,
        /// `Content-Type`.
        content_type: String,
        /// Body.
        body: Vec<u8>,
    },
    /// 429 with this `Retry-After` (or none); nothing is processed.
    TooManyRequests {
        /// The header value.
        retry_after: Option<String>,
    },
    /// Wait this long, then answer 503; nothing is processed.
    Stall(Duration),
    /// Drop the connection (RST) without answering; nothing is processed.
    Reset,
    /// Process normally (a create IS stored), then answer with this status.
    ProcessThenStatus(u16),
    /// Process normally, then drop the connection.
    ProcessThenReset,
    /// Process normally, then wait this long before answering.
    ProcessThenStall(Duration),
    /// A create's processing fails: the server deletes the conversation and
    /// answers 500 (a repeat meanwhile saw 200 `processing`).
    ProcessingFails,
    /// A create's processing never ends (the worker died): the row stays
    /// `processing` until it is stale, and the connection drops.
    ProcessingHangs,
    /// What a repeat sees while another request's processing runs: the
    /// conversation is stored `processing` and the answer is 200
    /// `processing` at once; its processing completes `processing_delay`
    /// later.
    AnswerProcessing,
    /// Like [`Fault::AnswerProcessing`], but the processing then fails and
    /// the conversation is deleted: the `processing` answer was provisional.
    AnswerProcessingThenFail,
    /// 503 from the limiter with this `Retry-After`; nothing is processed.
    LimiterUnavailable {
        /// The header value.
        retry_after: String,
    },
}

impl Fault {
    fn processes_first(&self) -> bool {
        matches!(
            self,
            Fault::ProcessThenStatus(_)
                | Fault::ProcessThenReset
                | Fault::ProcessThenStall(_)
                | Fault::ProcessingFails
                | Fault::ProcessingHangs
                | Fault::AnswerProcessing
                | Fault::AnswerProcessingThenFail
        )
    }

    fn name(&self) -> String {
        match self {
            Fault::Status(s) => format!("status {s}"),
            Fault::Raw { status, .. } => format!("raw {status}"),
            Fault::TooManyRequests { .. } => "429".to_string(),
            Fault::Stall(d) => format!("stall {} ms", d.as_millis()),
            Fault::Reset => "reset".to_string(),
            Fault::ProcessThenStatus(s) => format!("process then status {s}"),
            Fault::ProcessThenReset => "process then reset".to_string(),
            Fault::ProcessThenStall(d) => format!("process then stall {} ms", d.as_millis()),
            Fault::ProcessingFails => "processing fails".to_string(),
            Fault::ProcessingHangs => "processing hangs".to_string(),
            Fault::AnswerProcessing => "answer processing".to_string(),
            Fault::AnswerProcessingThenFail => "answer processing, then fail".to_string(),
            Fault::LimiterUnavailable { .. } => "503 from the limiter".to_string(),
        }
    }
}

/// Which requests a fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Any API request.
    Any,
    /// `POST …/from-segments`.
    Create,
    /// `GET …/conversations`.
    List,
    /// `GET …/conversations/{id}`.
    Get,
    /// `DELETE …/conversations/{id}`.
    Delete,
    /// `PATCH …/conversations/{id}`.
    Patch,
    /// `GET /v1/dev/key`.
    Key,
}

impl Route {
    /// Whether it draws on the shared hourly budget.
    fn is_write(self) -> bool {
        matches!(self, Route::Create | Route::Delete | Route::Patch)
    }
}

/// A request as the server saw it. The key is kept only as a fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string.
    pub query: Option<String>,
    /// `client_session_id` of a create, if readable.
    pub session_id: Option<String>,
    /// First 8 hex of SHA-256 of the bearer token, if any.
    pub key_fingerprint: Option<String>,
    /// The status answered; 0 if the connection was dropped or the answer is
    /// still pending (a stall).
    pub status: u16,
    /// The fault applied, if any.
    pub fault: Option<String>,
    /// The conversation `status` the answer carried (`completed`,
    /// `processing`), for creates and gets.
    pub answered: Option<String>,
}

/// A conversation the server holds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConversation {
    /// Its id.
    pub id: String,
    /// The session id it was created under.
    pub session_id: Option<String>,
    /// The owning key's fingerprint.
    pub key_fingerprint: String,
    /// The create request's body.
    pub body: Value,
    /// Server time of creation (ms since 1970).
    pub created_ms: i64,
    /// Whether it has been deleted (by a DELETE, or its processing failed
    /// or went stale).
    pub deleted: bool,
    /// `processing` or `completed`.
    pub status: String,
    /// When its current claim began (server ms).
    pub claimed_ms: i64,
    /// Locked in the cloud (404 on GET, 402 on PATCH and DELETE).
    pub locked: bool,
    /// Set by a PATCH.
    pub title: Option<String>,
    /// Set by a PATCH.
    pub discarded: bool,
}

#[derive(Default)]
struct Inner {
    conversations: Vec<StoredConversation>,
    /// (key fp, session id) → index of the live conversation.
    by_session: HashMap<(String, String), usize>,
    /// (key fp, session id) of deleted conversations.
    tombstones: HashSet<(String, String)>,
    /// Session id → how many times a conversation under it was completed.
    creations: HashMap<String, u32>,
    faults: VecDeque<(Route, Fault)>,
    requests: Vec<RecordedRequest>,
    /// key fp → (start of its current window, writes counted in it).
    window: HashMap<String, (i64, u32)>,
    anonymous_ids: u64,
}

struct Shared {
    config: Mutex<ContractConfig>,
    inner: Mutex<Inner>,
    clock_offset_ms: AtomicU64,
}

impl Shared {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn config(&self) -> ContractConfig {
        self.config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        real + self.clock_offset_ms.load(Ordering::SeqCst) as i64
    }
}

/// A running server. Dropping it stops it.
pub struct ContractServer {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl ContractServer {
    /// Starts a server on `127.0.0.1` on a free port.
    pub fn start(config: ContractConfig) -> Self {
        Self::start_on("127.0.0.1:0", config).expect("start contract server")
    }

    /// Starts a server on this address (e.g. `127.0.0.1:8080`).
    pub fn start_on(addr: &str, config: ContractConfig) -> io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("contract-server")
            .enable_all()
            .build()?;
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            inner: Mutex::new(Inner::default()),
            clock_offset_ms: AtomicU64::new(0),
        });
        let listener = runtime.block_on(TcpListener::bind(addr))?;
        let local = listener.local_addr()?;
        let app = Router::new()
            .fallback(handle)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<ConnKill>();
        runtime.spawn(async move {
            let _ = axum::serve(KillableListener { inner: listener }, app).await;
        });
        Ok(ContractServer {
            runtime: Some(runtime),
            addr: local,
            shared,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Applies `fault` to the next `times` API requests of any kind.
    pub fn inject(&self, fault: Fault, times: usize) {
        self.inject_on(Route::Any, fault, times);
    }

    /// Applies `fault` to the next `times` requests of this kind.
    pub fn inject_on(&self, route: Route, fault: Fault, times: usize) {
        let mut inner = self.shared.inner();
        for _ in 0..times {
            inner.faults.push_back((route, fault.clone()));
        }
    }

    /// Faults not yet used.
    pub fn pending_faults(&self) -> usize {
        self.shared.inner().faults.len()
    }

    /// Drops all pending faults.
    pub fn clear_faults(&self) {
        self.shared.inner().faults.clear();
    }

    /// Changes the configuration from now on.
    pub fn set_config(&self, config: ContractConfig) {
        *self.shared.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// Moves the server's clock forward (for the rate limit window).
    pub fn advance_clock(&self, by: Duration) {
        self.shared
            .clock_offset_ms
            .fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Every API request received, in order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.inner().requests.clone()
    }

    /// Requests to the create path.
    pub fn create_requests(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "POST" && r.path == CREATE_PATH)
            .collect()
    }

    /// Conversations not deleted, oldest first.
    pub fn conversations(&self) -> Vec<StoredConversation> {
        self.shared
            .inner()
            .conversations
            .iter()
            .filter(|c| !c.deleted)
            .cloned()
            .collect()
    }

    /// Every conversation ever stored, deleted ones included.
    pub fn all_conversations(&self) -> Vec<StoredConversation> {
        self.shared.inner().conversations.clone()
    }

    /// How many times a conversation under this session id was completed
    /// (the exactly-once count: a failed or dropped claim does not count).
    pub fn creations_for(&self, session_id: &str) -> u32 {
        self.shared
            .inner()
            .creations
            .get(session_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many conversations were completed in all.
    pub fn total_creations(&self) -> u32 {
        self.shared.inner().creations.values().sum()
    }

    /// Locks a conversation, as the cloud does when a subscription lapses:
    /// GET answers 404, PATCH and DELETE 402, the list hides it.
    pub fn lock(&self, id: &str, locked: bool) {
        for c in self
            .shared
            .inner()
            .conversations
            .iter_mut()
            .filter(|c| c.id == id)
        {
            c.locked = locked;
        }
    }

    /// Requests the server answered with this conversation status
    /// (`processing`, `completed`).
    pub fn answered(&self, status: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.answered.as_deref() == Some(status))
            .count()
    }

    /// Forgets the rate-limit history.
    pub fn reset_rate_limit(&self) {
        self.shared.inner().window.clear();
    }

    /// Stops the server (also done on drop).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for ContractServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The fingerprint the server records for a token.
pub fn fingerprint(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..4])
}

/// Whether a header value is `Bearer omi_dev_` + 32 lowercase hex.
pub fn bearer_token(value: &str) -> Option<&str> {
    let token = value.strip_prefix("Bearer ")?;
    let hex_part = token.strip_prefix("omi_dev_")?;
    let ok = hex_part.len() == 32
        && hex_part
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    ok.then_some(token)
}

/// What a valid create body says.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidCreate {
    /// The trimmed session id, if any.
    pub session_id: Option<String>,
    /// Number of segments.
    pub segments: usize,
}

/// Python's `str.strip()`: also strips the separators U+001C-U+001F.
fn python_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

fn parse_time(v: &Value, field: &str) -> Result<Option<OffsetDateTime>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => OffsetDateTime::parse(s, &Rfc3339)
            .map(Some)
            .map_err(|_| format!("{field}: not an ISO 8601 date-time with a time zone: {s:?}")),
        Some(_) => Err(format!("{field}: must be a string")),
    }
}

fn opt_string(v: &Value, field: &str) -> Result<Option<String>, String> {
    match v.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(format!("{field}: must be a string")),
    }
}

/// The field rules of `POST …/from-segments`, on the raw JSON body, with
/// upstream's messages. `Err` is the 422 `detail`.
pub fn validate_create(body: &Value) -> Result<ValidCreate, String> {
    let Value::Object(_) = body else {
        return Err("body must be a JSON object".to_string());
    };
    let segs = match body.get("transcript_segments") {
        None | Some(Value::Null) => return Err("transcript_segments: field required".to_string()),
        Some(Value::Array(a)) => a,
        Some(_) => return Err("transcript_segments: must be a list".to_string()),
    };
    if segs.is_empty() {
        return Err("transcript_segments cannot be empty".to_string());
    }
    if segs.len() > 500 {
        return Err("Maximum 500 transcript segments allowed".to_string());
    }
    let mut last_end = 0.0;
    for (idx, seg) in segs.iter().enumerate() {
        let Value::Object(_) = seg else {
            return Err(format!("Segment {idx}: must be an object"));
        };
        let text = match seg.get("text") {
            Some(Value::String(s)) => s,
            _ => {
                return Err(format!(
                    "Segment {idx}: text is required and must be a string"
                ));
            }
        };
        let num = |k: &str| seg.get(k).and_then(Value::as_f64);
        let (Some(start), Some(end)) = (num("start"), num("end")) else {
            return Err(format!("Segment {idx}: start and end are required numbers"));
        };
        match seg.get("speaker") {
            None | Some(Value::Null) | Some(Value::String(_)) => {}
            Some(_) => return Err(format!("Segment {idx}: speaker must be a string")),
        }
        match seg.get("speaker_id") {
            None | Some(Value::Null) => {}
            Some(v) if v.is_i64() || v.is_u64() => {}
            Some(_) => return Err(format!("Segment {idx}: speaker_id must be an integer")),
        }
        match seg.get("is_user") {
            None | Some(Value::Bool(_)) => {}
            Some(_) => return Err(format!("Segment {idx}: is_user must be a boolean")),
        }
        if end <= start {
            return Err(format!("Segment {idx}: end time must be after start time"));
        }
        if start < 0.0 {
            return Err(format!("Segment {idx}: start time cannot be negative"));
        }
        if python_strip(text).is_empty() {
            return Err(format!("Segment {idx}: text cannot be empty"));
        }
        last_end = end;
    }
    let session_id = match body.get("client_session_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            let t = s.trim();
            let n = t.chars().count();
            if n == 0 || n > 200 {
                return Err(format!(
                    "client_session_id must be 1-200 characters (got {n})"
                ));
            }
            Some(t.to_string())
        }
        Some(_) => return Err("client_session_id: must be a string".to_string()),
    };
    if let Some(source) = opt_string(body, "source")?
        && !SOURCES.contains(&source.as_str())
    {
        return Err(format!(
            "source: Input should be one of {}",
            SOURCES.join(", ")
        ));
    }
    opt_string(body, "language")?;
    opt_string(body, "client_device_id")?;
    opt_string(body, "client_platform")?;
    match body.get("geolocation") {
        None | Some(Value::Null) => {}
        Some(g)
            if g.get("latitude").and_then(Value::as_f64).is_some()
                && g.get("longitude").and_then(Value::as_f64).is_some() => {}
        Some(_) => return Err("geolocation: latitude and longitude are required".to_string()),
    }
    let started = parse_time(body, "started_at")?.unwrap_or_else(OffsetDateTime::now_utc);
    let finished = match parse_time(body, "finished_at")? {
        Some(f) => f,
        None => started + time::Duration::seconds_f64(last_end),
    };
    if finished <= started {
        return Err("finished_at must be after started_at".to_string());
    }
    Ok(ValidCreate {
        session_id,
        segments: segs.len(),
    })
}

fn detail(status: u16, message: impl Into<String>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code, axum::Json(json!({ "detail": message.into() }))).into_response()
}

fn conversation_id(key_fp: &str, session: &str) -> String {
    let d = Sha256::digest(format!("{key_fp}\0{session}").as_bytes());
    let h = hex::encode(&d[..16]);
    format!(
        "{}-{}-5{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[13..16],
        &h[16..20],
        &h[20..32]
    )
}

fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_default()
}

fn render(c: &StoredConversation, include_transcript: bool) -> Value {
    let mut v = json!({
        "id": c.id,
        "created_at": rfc3339_ms(c.created_ms),
        "started_at": c.body.get("started_at").cloned().unwrap_or(Value::Null),
        "finished_at": c.body.get("finished_at").cloned().unwrap_or(Value::Null),
        "status": c.status,
        "discarded": c.discarded,
        "structured": {
            "title": c.title.clone().unwrap_or_else(|| format!("Conversation {}", &c.id[..8])),
            "overview": "",
            "emoji": "🧠",
            "category": "other",
            "action_items": [],
            "events": [],
        },
        "language": c.body.get("language").cloned().unwrap_or(json!("en")),
        "source": c.body.get("source").cloned().unwrap_or(json!("phone")),
    });
    if include_transcript {
        v["transcript_segments"] = c
            .body
            .get("transcript_segments")
            .cloned()
            .unwrap_or(json!([]));
    }
    v
}

/// The per-connection switch that turns the next write into a reset.
#[derive(Clone)]
struct ConnKill(Arc<AtomicBool>);

impl Connected<IncomingStream<'_, KillableListener>> for ConnKill {
    fn connect_info(stream: IncomingStream<'_, KillableListener>) -> Self {
        ConnKill(stream.io().kill.clone())
    }
}

struct KillableListener {
    inner: TcpListener,
}

impl Listener for KillableListener {
    type Io = KillableStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    return (
                        KillableStream {
                            inner: stream,
                            kill: Arc::new(AtomicBool::new(false)),
                        },
                        addr,
                    );
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A TCP stream that, once killed, fails every operation; the failure makes
/// the server drop it, and zero linger makes the drop an RST.
struct KillableStream {
    inner: TcpStream,
    kill: Arc<AtomicBool>,
}

impl KillableStream {
    fn killed(&self) -> Option<io::Error> {
        if self.kill.load(Ordering::SeqCst) {
            let _ = self.inner.set_zero_linger();
            Some(io::Error::new(
                io::ErrorKind::ConnectionReset,
                "killed by fault",
            ))
        } else {
            None
        }
    }
}

impl AsyncRead for KillableStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for KillableStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if let Some(e) = this.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(e) = this.killed() {
            return Poll::Ready(Err(e));
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

fn route_of(
    config: &ContractConfig,
    method: &Method,
    path: &str,
) -> Option<(Route, Option<String>)> {
    if path == CREATE_PATH {
        return (method == Method::POST && !config.create_route_gone)
            .then_some((Route::Create, None));
    }
    if path == KEY_PATH {
        return (method == Method::GET).then_some((Route::Key, None));
    }
    if path == CONVERSATIONS_PATH {
        return (method == Method::GET).then_some((Route::List, None));
    }
    let id = path.strip_prefix(CONVERSATIONS_PATH)?.strip_prefix('/')?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    match *method {
        Method::GET => Some((Route::Get, Some(id.to_string()))),
        Method::DELETE => Some((Route::Delete, Some(id.to_string()))),
        Method::PATCH => Some((Route::Patch, Some(id.to_string()))),
        _ => None,
    }
}

fn query_params(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k.to_string(), v.to_string())
        })
        .collect()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(kill): ConnectInfo<ConnKill>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    if let Some(admin) = path.strip_prefix("/_contract/") {
        return handle_admin(&shared, &method, admin, &body);
    }
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    let session_id = json_body
        .as_ref()
        .and_then(|b| b.get("client_session_id"))
        .and_then(Value::as_str)
        .map(|s| s.trim().to_string());
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let key_fingerprint = auth
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(fingerprint);
    let mut record = RecordedRequest {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().map(str::to_string),
        session_id,
        key_fingerprint,
        status: 0,
        fault: None,
        answered: None,
    };
    let route = route_of(&shared.config(), &method, &path);
    let fault = route.as_ref().and_then(|(r, _)| {
        let mut inner = shared.inner();
        let pos = inner
            .faults
            .iter()
            .position(|(fr, _)| *fr == Route::Any || fr == r)?;
        inner.faults.remove(pos).map(|(_, f)| f)
    });
    record.fault = fault.as_ref().map(Fault::name);
    // Recorded on arrival (a stalled request counts at once); the status is
    // filled in when the answer is ready.
    let slot = {
        let mut inner = shared.inner();
        inner.requests.push(record);
        inner.requests.len() - 1
    };

    let response = match (&fault, route) {
        (Some(f), Some(_)) if !f.processes_first() => apply_fault(f, &kill).await,
        (_, None) => detail(404, "Not Found"),
        (_, Some((route, id))) => {
            let response = serve_api(
                &shared,
                route,
                id,
                &uri,
                auth.as_deref(),
                &body,
                json_body,
                fault.as_ref(),
            )
            .await;
            match &fault {
                // The create ran its processing as the fault says: its
                // answer stands (a hang drops the connection).
                Some(
                    Fault::ProcessingFails
                    | Fault::AnswerProcessing
                    | Fault::AnswerProcessingThenFail,
                ) => response,
                Some(f) => apply_fault(f, &kill).await,
                None => response,
            }
        }
    };
    let status = if kill.0.load(Ordering::SeqCst) {
        0
    } else {
        response.status().as_u16()
    };
    let answered = response
        .headers()
        .get(ANSWERED_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    if let Some(r) = shared.inner().requests.get_mut(slot) {
        r.status = status;
        r.answered = if status == 0 { None } else { answered };
    }
    response
}

async fn apply_fault(fault: &Fault, kill: &ConnKill) -> Response {
    match fault {
        Fault::Status(s) | Fault::ProcessThenStatus(s) => {
            detail(*s, format!("injected fault: HTTP {s}"))
        }
        Fault::Raw {
            status,
            content_type,
            body,
        } => {
            let mut r = (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                body.clone(),
            )
                .into_response();
            if let Ok(v) = HeaderValue::from_str(content_type) {
                r.headers_mut().insert("content-type", v);
            }
            r
        }
        Fault::TooManyRequests { retry_after } => {
            let mut r = detail(429, "injected fault: rate limited");
            if let Some(v) = retry_after
                .as_deref()
                .and_then(|v| HeaderValue::from_str(v).ok())
            {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
        Fault::Stall(d) => {
            tokio::time::sleep(*d).await;
            detail(503, "injected fault: stalled")
        }
        Fault::ProcessThenStall(d) => {
            tokio::time::sleep(*d).await;
            detail(503, "injected fault: stalled after processing")
        }
        Fault::Reset | Fault::ProcessThenReset | Fault::ProcessingHangs => {
            kill.0.store(true, Ordering::SeqCst);
            detail(500, "never sent")
        }
        Fault::ProcessingFails => detail(500, "injected fault: processing failed"),
        Fault::AnswerProcessing | Fault::AnswerProcessingThenFail => {
            detail(500, "injected fault: handled by the create")
        }
        Fault::LimiterUnavailable { retry_after } => {
            let mut r = detail(503, "injected fault: rate limiter unavailable");
            if let Ok(v) = HeaderValue::from_str(retry_after) {
                r.headers_mut().insert("retry-after", v);
            }
            r
        }
    }
}

/// An internal header naming the conversation status an answer carried (for
/// [`RecordedRequest::answered`]; the client ignores it).
const ANSWERED_HEADER: &str = "x-contract-answered";

/// A JSON answer naming a conversation's status.
fn conversation_answer(v: Value, status: &str) -> Response {
    let mut r = axum::Json(v).into_response();
    if let Ok(h) = HeaderValue::from_str(status) {
        r.headers_mut().insert(ANSWERED_HEADER, h);
    }
    r
}

/// Charges one write to `fp` in the current fixed window and returns the
/// budget left. `Err` is the 429 answer.
fn charge_write(
    shared: &Shared,
    config: &ContractConfig,
    fp: &str,
) -> Result<BudgetHeaders, Box<Response>> {
    let now = shared.now_ms();
    let window_ms = (config.window.as_millis() as i64).max(1);
    let start = now - now.rem_euclid(window_ms);
    let end = start + window_ms;
    let headers = |used: u32| BudgetHeaders {
        limit: config.hourly_limit,
        remaining: config.hourly_limit.saturating_sub(used),
        reset_s: (end + 999) / 1000,
    };
    let mut inner = shared.inner();
    let entry = inner.window.entry(fp.to_string()).or_insert((start, 0));
    if entry.0 != start {
        *entry = (start, 0);
    }
    if entry.1 >= config.hourly_limit {
        let mut r = detail(429, "Rate limit exceeded. Try again later.");
        headers(entry.1).apply(&mut r);
        if let Ok(v) = HeaderValue::from_str(&retry_after_value(config, shared, end - now)) {
            r.headers_mut().insert("retry-after", v);
        }
        return Err(Box::new(r));
    }
    entry.1 += 1;
    Ok(headers(entry.1))
}

/// The `X-RateLimit-*` headers of a write's answer.
#[derive(Debug, Clone, Copy)]
struct BudgetHeaders {
    limit: u32,
    remaining: u32,
    reset_s: i64,
}

impl BudgetHeaders {
    fn apply(self, r: &mut Response) {
        for (name, value) in [
            ("x-ratelimit-limit", self.limit.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            ("x-ratelimit-reset", self.reset_s.to_string()),
        ] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                r.headers_mut().insert(name, v);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn serve_api(
    shared: &Arc<Shared>,
    route: Route,
    id: Option<String>,
    uri: &Uri,
    auth: Option<&str>,
    raw_body: &Bytes,
    body: Option<Value>,
    fault: Option<&Fault>,
) -> Response {
    let config = shared.config();
    let Some(token) = auth.and_then(bearer_token) else {
        let mut msg =
            "Invalid or missing API key (expected `Authorization: Bearer omi_dev_…`)".to_string();
        if config.echo_auth_in_errors {
            msg.push_str(&format!(" (got {:?})", auth.unwrap_or("")));
        }
        return detail(401, msg);
    };
    if config.revoked_keys.iter().any(|k| k == token) {
        let mut msg = "Invalid API key".to_string();
        if config.echo_auth_in_errors {
            msg.push_str(&format!(": {}", auth.unwrap_or("")));
        }
        return detail(401, msg);
    }
    let read_only = config.read_only_keys.iter().any(|k| k == token);
    let fp = fingerprint(token);
    if route == Route::Key {
        let mut scopes = vec!["conversations:read", "memories:read"];
        if !read_only {
            scopes.push("conversations:write");
        }
        return axum::Json(json!({"id": fp, "name": "contract test key", "scopes": scopes}))
            .into_response();
    }
    if route.is_write() && read_only {
        return detail(
            403,
            "Insufficient permissions. Required scope: conversations:write",
        );
    }
    // Writes are charged before anything else is looked at.
    let budget = if route.is_write() {
        match charge_write(shared, &config, &fp) {
            Ok(b) => Some(b),
            Err(r) => return *r,
        }
    } else {
        None
    };
    let mut response = match route {
        Route::Create => create(shared, &config, &fp, raw_body, body, fault).await,
        Route::List => list(shared, &fp, uri),
        Route::Get => {
            let id = id.unwrap_or_default();
            let inner = shared.inner();
            match inner
                .conversations
                .iter()
                .find(|c| c.id == id && c.key_fingerprint == fp && !c.deleted && !c.locked)
            {
                Some(c) => {
                    let include = query_params(uri)
                        .get("include_transcript")
                        .is_some_and(|v| v == "true");
                    conversation_answer(render(c, include), &c.status)
                }
                None => detail(404, "Conversation not found"),
            }
        }
        Route::Delete | Route::Patch => {
            let id = id.unwrap_or_default();
            let mut inner = shared.inner();
            let Some(pos) = inner
                .conversations
                .iter()
                .position(|c| c.id == id && c.key_fingerprint == fp && !c.deleted)
            else {
                return with_budget(detail(404, "Conversation not found"), budget);
            };
            if inner.conversations[pos].locked {
                return with_budget(
                    detail(402, "This conversation is locked. Upgrade to access it."),
                    budget,
                );
            }
            if route == Route::Patch {
                let c = &mut inner.conversations[pos];
                if let Some(t) = body
                    .as_ref()
                    .and_then(|b| b.get("title"))
                    .and_then(Value::as_str)
                {
                    c.title = Some(t.to_string());
                }
                if let Some(d) = body
                    .as_ref()
                    .and_then(|b| b.get("discarded"))
                    .and_then(Value::as_bool)
                {
                    c.discarded = d;
                }
                let v = render(c, false);
                drop(inner);
                axum::Json(v).into_response()
            } else {
                inner.conversations[pos].deleted = true;
                if let Some(s) = inner.conversations[pos].session_id.clone() {
                    inner.by_session.remove(&(fp.clone(), s.clone()));
                    inner.tombstones.insert((fp.clone(), s));
                }
                axum::Json(json!({ "success": true })).into_response()
            }
        }
        Route::Any | Route::Key => detail(404, "Not Found"),
    };
    if let Some(b) = budget {
        b.apply(&mut response);
    }
    response
}

fn with_budget(mut r: Response, budget: Option<BudgetHeaders>) -> Response {
    if let Some(b) = budget {
        b.apply(&mut r);
    }
    r
}

fn retry_after_value(config: &ContractConfig, shared: &Shared, wait_ms: i64) -> String {
    let secs = ((wait_ms.max(1) + 999) / 1000).max(1);
    if config.retry_after_as_date {
        let at = shared.now_ms() + secs * 1000;
        httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(at as u64))
    } else {
        secs.to_string()
    }
}

async fn create(
    shared: &Arc<Shared>,
    config: &ContractConfig,
    fp: &str,
    raw_body: &Bytes,
    body: Option<Value>,
    fault: Option<&Fault>,
) -> Response {
    let Some(body) = body else {
        let what = if raw_body.is_empty() {
            "empty body"
        } else {
            "JSON decode error"
        };
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            axum::Json(json!({"detail": [{"loc": ["body"], "msg": what, "type": "json_invalid"}]})),
        )
            .into_response();
    };
    let valid = match validate_create(&body) {
        Ok(v) => v,
        Err(msg) => return detail(422, msg),
    };
    if config.require_session_id && valid.session_id.is_none() {
        return detail(422, "client_session_id is required by this contract");
    }
    let now = shared.now_ms();
    let stale_ms = config.stale_after.as_millis() as i64;
    let key = valid.session_id.clone().map(|s| (fp.to_string(), s));
    let idx = {
        let mut inner = shared.inner();
        if let Some(key) = &key {
            if config.refuse_after_delete && inner.tombstones.contains(key) {
                return detail(410, "This conversation was deleted");
            }
            if let Some(&i) = inner.by_session.get(key) {
                let c = &inner.conversations[i];
                if c.status == COMPLETED || now - c.claimed_ms < stale_ms {
                    return conversation_answer(
                        json!({"id": c.id, "status": c.status, "discarded": false,
                               "meeting_treatment_eligible": false}),
                        &c.status.clone(),
                    );
                }
                // A stale claim: dropped, and redone by this request.
                inner.conversations[i].deleted = true;
                inner.by_session.remove(key);
            }
        }
        let id = match &key {
            Some((fp, s)) => conversation_id(fp, s),
            None => {
                inner.anonymous_ids += 1;
                conversation_id(fp, &format!("\0anonymous-{}", inner.anonymous_ids))
            }
        };
        let idx = inner.conversations.len();
        inner.conversations.push(StoredConversation {
            id,
            session_id: valid.session_id.clone(),
            key_fingerprint: fp.to_string(),
            body,
            created_ms: now,
            deleted: false,
            status: PROCESSING.to_string(),
            claimed_ms: now,
            locked: false,
            title: None,
            discarded: false,
        });
        if let Some(key) = &key {
            inner.by_session.insert(key.clone(), idx);
        }
        idx
    };
    // A real server finishes a create it has accepted even when the client
    // hangs up meanwhile (hyper drops this handler's future on disconnect),
    // so the processing runs as its own task.
    let task = tokio::spawn(process(
        Arc::clone(shared),
        config.processing_delay,
        idx,
        key,
        fault.cloned(),
    ));
    if let Some(Fault::AnswerProcessing | Fault::AnswerProcessingThenFail) = fault {
        let inner = shared.inner();
        let id = inner.conversations[idx].id.clone();
        return conversation_answer(
            json!({"id": id, "status": PROCESSING, "discarded": false,
                   "meeting_treatment_eligible": false}),
            PROCESSING,
        );
    }
    match task.await {
        Ok(r) => r,
        Err(e) => detail(500, format!("create task failed: {e}")),
    }
}

/// A create's processing: waits the configured delay, then completes the
/// conversation, or (as the fault says) deletes it or leaves it hanging.
async fn process(
    shared: Arc<Shared>,
    processing_delay: Duration,
    idx: usize,
    key: Option<(String, String)>,
    fault: Option<Fault>,
) -> Response {
    if !processing_delay.is_zero() {
        tokio::time::sleep(processing_delay).await;
    }
    let mut inner = shared.inner();
    let Some(c) = inner.conversations.get_mut(idx).filter(|c| !c.deleted) else {
        return detail(500, "the conversation was dropped while processing");
    };
    match fault {
        Some(Fault::ProcessingHangs) => {
            let v = json!({"id": c.id, "status": PROCESSING});
            return conversation_answer(v, PROCESSING);
        }
        Some(Fault::ProcessingFails | Fault::AnswerProcessingThenFail) => {
            c.deleted = true;
            if let Some(key) = &key {
                inner.by_session.remove(key);
            }
            return detail(500, "Failed to process conversation");
        }
        _ => {}
    }
    c.status = COMPLETED.to_string();
    let id = c.id.clone();
    let session = c.session_id.clone().unwrap_or_default();
    *inner.creations.entry(session).or_default() += 1;
    conversation_answer(
        json!({"id": id, "status": COMPLETED, "discarded": false,
               "meeting_treatment_eligible": false}),
        COMPLETED,
    )
}

fn list(shared: &Arc<Shared>, fp: &str, uri: &Uri) -> Response {
    let q = query_params(uri);
    let int = |k: &str, default: i64| -> Result<i64, String> {
        match q.get(k) {
            None => Ok(default),
            Some(v) => v
                .parse::<i64>()
                .map_err(|_| format!("{k}: Input should be a valid integer")),
        }
    };
    let include = q.get("include_transcript").is_some_and(|v| v == "true");
    let (limit, offset) = match (int("limit", 25), int("offset", 0)) {
        (Ok(l), Ok(o)) => (
            l.clamp(1, if include { 25 } else { 100 }) as usize,
            o.max(0) as usize,
        ),
        (Err(e), _) | (_, Err(e)) => return detail(422, e),
    };
    let inner = shared.inner();
    let page: Vec<Value> = inner
        .conversations
        .iter()
        .rev()
        .filter(|c| {
            c.key_fingerprint == fp
                && !c.deleted
                && !c.locked
                && !c.discarded
                && c.status == COMPLETED
        })
        .skip(offset)
        .take(limit)
        .map(|c| render(c, include))
        .collect();
    axum::Json(Value::Array(page)).into_response()
}

/// Parses one fault of the admin JSON:
/// `{"route": "any|create|list|get|delete|patch|key", "times": 1, "kind": "status|raw|too_many|stall|reset|process_then_status|process_then_reset|process_then_stall|processing_fails|processing_hangs|answer_processing|answer_processing_then_fail|limiter_503", "status": 500, "ms": 2000, "retry_after": "60", "body": "…", "content_type": "text/html"}`.
pub fn admin_fault(v: &Value) -> Result<(Route, Fault, usize), String> {
    let route = match v.get("route").and_then(Value::as_str).unwrap_or("any") {
        "any" => Route::Any,
        "create" => Route::Create,
        "list" => Route::List,
        "get" => Route::Get,
        "delete" => Route::Delete,
        "patch" => Route::Patch,
        "key" => Route::Key,
        other => return Err(format!("unknown route {other:?}")),
    };
    let times = v.get("times").and_then(Value::as_u64).unwrap_or(1) as usize;
    let status = v.get("status").and_then(Value::as_u64).unwrap_or(500) as u16;
    let ms = Duration::from_millis(v.get("ms").and_then(Value::as_u64).unwrap_or(5000));
    let fault = match v.get("kind").and_then(Value::as_str).unwrap_or("") {
        "status" => Fault::Status(status),
        "raw" => Fault::Raw {
            status,
            content_type: v
                .get("content_type")
                .and_then(Value::as_str)
                .unwrap_or("text/plain")
                .to_string(),
            body: v
                .get("body")
                .and_then(Value::as_str)
                .unwrap_or("")
                .as_bytes()
                .to_vec(),
        },
        "too_many" => Fault::TooManyRequests {
            retry_after: v
                .get("retry_after")
                .and_then(Value::as_str)
                .map(str::to_string),
        },
        "stall" => Fault::Stall(ms),
        "reset" => Fault::Reset,
        "process_then_status" => Fault::ProcessThenStatus(status),
        "process_then_reset" => Fault::ProcessThenReset,
        "process_then_stall" => Fault::ProcessThenStall(ms),
        "processing_fails" => Fault::ProcessingFails,
        "processing_hangs" => Fault::ProcessingHangs,
        "answer_processing" => Fault::AnswerProcessing,
        "answer_processing_then_fail" => Fault::AnswerProcessingThenFail,
        "limiter_503" => Fault::LimiterUnavailable {
            retry_after: v
                .get("retry_after")
                .and_then(Value::as_str)
                .unwrap_or("60")
                .to_string(),
        },
        other => return Err(format!("unknown fault kind {other:?}")),
    };
    Ok((route, fault, times))
}

fn handle_admin(shared: &Arc<Shared>, method: &Method, what: &str, body: &Bytes) -> Response {
    match (method.as_str(), what) {
        ("GET", "stats") => {
            let inner = shared.inner();
            axum::Json(json!({
                "requests": inner.requests.len(),
                "conversations": inner.conversations.iter().filter(|c| !c.deleted).count(),
                "processing": inner.conversations.iter().filter(|c| !c.deleted && c.status == PROCESSING).count(),
                "creations": inner.creations,
                "pending_faults": inner.faults.len(),
            }))
            .into_response()
        }
        ("POST", "faults") => {
            let v: Value = match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(e) => return detail(400, format!("not JSON: {e}")),
            };
            let items = match v {
                Value::Array(items) => items,
                one => vec![one],
            };
            let mut parsed = Vec::new();
            for item in &items {
                match admin_fault(item) {
                    Ok(f) => parsed.push(f),
                    Err(e) => return detail(400, e),
                }
            }
            let mut inner = shared.inner();
            for (route, fault, times) in parsed {
                for _ in 0..times {
                    inner.faults.push_back((route, fault.clone()));
                }
            }
            axum::Json(json!({"pending_faults": inner.faults.len()})).into_response()
        }
        ("POST", "reset") => {
            *shared.inner() = Inner::default();
            axum::Json(json!({"reset": true})).into_response()
        }
        _ => detail(404, "unknown admin call"),
    }
}
