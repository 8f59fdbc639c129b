//! A contract test server for the Omi developer API, on loopback.
//!
//! It enforces the documented contract of the calls omi-sync makes
//! (`omi-facts.md` §5, checked against the upstream backend's
//! `routers/developer.py`), independently of omi-sync's own types: it reads
//! raw JSON.
//!
//! - Auth: `Authorization: Bearer omi_dev_[0-9a-f]{32}`, else 401. Keys listed
//!   as revoked get 401; keys listed as read-only get 403 on writes.
//! - `POST /v1/dev/user/conversations/from-segments`: the field rules
//!   ([`validate_create`]; 422 with upstream's messages), then the hourly
//!   limit per key (429 with `Retry-After`), then idempotency by
//!   `client_session_id`: a repeat answers with the existing conversation, a
//!   duplicate while the first is still being processed gets 409. Ids are
//!   derived from (key, session id) as upstream does, so a conversation
//!   deleted and created again under the same session id gets the same id.
//!   Every authenticated, valid create counts against the limit (repeats too).
//! - `GET /v1/dev/user/conversations?limit=&offset=&include_transcript=`
//!   (limit clamped to 1-100, 25 with transcripts; newest first), `GET` and
//!   `DELETE /v1/dev/user/conversations/{id}` (404 when unknown).
//! - Faults on demand ([`Fault`]): a queue consumed by the next matching
//!   requests: an error status, a raw body (HTML, empty, huge), 429, a stall
//!   past the client's timeout, a dropped connection (RST), and the nasty
//!   ones where the conversation IS created but the answer is lost.
//! - Inspection: every request (method, path, session id, key fingerprint,
//!   status), the conversations stored, creations per session id.
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
    /// Creations allowed per key per window (the cloud: 25).
    pub hourly_limit: u32,
    /// The window (the cloud: one hour).
    pub window: Duration,
    /// How long a create stays "in flight" (a second create with the same
    /// session id meanwhile gets 409).
    pub processing_delay: Duration,
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
}

impl Fault {
    fn processes_first(&self) -> bool {
        matches!(
            self,
            Fault::ProcessThenStatus(_) | Fault::ProcessThenReset | Fault::ProcessThenStall(_)
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
    /// Whether it has been deleted.
    pub deleted: bool,
}

#[derive(Default)]
struct Inner {
    conversations: Vec<StoredConversation>,
    /// (key fp, session id) → index of the live conversation.
    by_session: HashMap<(String, String), usize>,
    in_flight: HashSet<(String, String)>,
    creations: HashMap<String, u32>,
    faults: VecDeque<(Route, Fault)>,
    requests: Vec<RecordedRequest>,
    /// key fp → times (server ms) of counted creates.
    window: HashMap<String, VecDeque<i64>>,
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

    /// How many conversations were created under this session id.
    pub fn creations_for(&self, session_id: &str) -> u32 {
        self.shared
            .inner()
            .creations
            .get(session_id)
            .copied()
            .unwrap_or(0)
    }

    /// How many conversations were created in all.
    pub fn total_creations(&self) -> u32 {
        self.shared.inner().creations.values().sum()
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
        "structured": {
            "title": format!("Conversation {}", &c.id[..8]),
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

fn route_of(method: &Method, path: &str) -> Option<(Route, Option<String>)> {
    if path == CREATE_PATH {
        return (method == Method::POST).then_some((Route::Create, None));
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
    };
    let route = route_of(&method, &path);
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
            let response =
                serve_api(&shared, route, id, &uri, auth.as_deref(), &body, json_body).await;
            match &fault {
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
    if let Some(r) = shared.inner().requests.get_mut(slot) {
        r.status = status;
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
        Fault::Reset | Fault::ProcessThenReset => {
            kill.0.store(true, Ordering::SeqCst);
            detail(500, "never sent")
        }
    }
}

async fn serve_api(
    shared: &Arc<Shared>,
    route: Route,
    id: Option<String>,
    uri: &Uri,
    auth: Option<&str>,
    raw_body: &Bytes,
    body: Option<Value>,
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
    let writes = matches!(route, Route::Create | Route::Delete);
    if writes && config.read_only_keys.iter().any(|k| k == token) {
        return detail(403, "This API key lacks the conversations:write scope");
    }
    let fp = fingerprint(token);
    match route {
        Route::Create => create(shared, &config, &fp, raw_body, body).await,
        Route::List => list(shared, &fp, uri),
        Route::Get => {
            let id = id.unwrap_or_default();
            let inner = shared.inner();
            match inner
                .conversations
                .iter()
                .find(|c| c.id == id && c.key_fingerprint == fp && !c.deleted)
            {
                Some(c) => {
                    let include = query_params(uri)
                        .get("include_transcript")
                        .is_some_and(|v| v == "true");
                    axum::Json(render(c, include)).into_response()
                }
                None => detail(404, "Conversation not found"),
            }
        }
        Route::Delete => {
            let id = id.unwrap_or_default();
            let mut inner = shared.inner();
            let Some(pos) = inner
                .conversations
                .iter()
                .position(|c| c.id == id && c.key_fingerprint == fp && !c.deleted)
            else {
                return detail(404, "Conversation not found");
            };
            inner.conversations[pos].deleted = true;
            if let Some(s) = inner.conversations[pos].session_id.clone() {
                inner.by_session.remove(&(fp.clone(), s));
            }
            axum::Json(json!({ "success": true })).into_response()
        }
        Route::Any => detail(404, "Not Found"),
    }
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
    let window_ms = config.window.as_millis() as i64;
    {
        let mut inner = shared.inner();
        let times = inner.window.entry(fp.to_string()).or_default();
        while times.front().is_some_and(|t| *t <= now - window_ms) {
            times.pop_front();
        }
        if times.len() >= config.hourly_limit as usize {
            let idx = times.len() - config.hourly_limit.max(1) as usize;
            let wait = times.get(idx).map_or(window_ms, |t| t + window_ms - now);
            let mut r = detail(
                429,
                "Rate limit exceeded: too many conversations created this hour",
            );
            if let Ok(v) = HeaderValue::from_str(&retry_after_value(config, shared, wait)) {
                r.headers_mut().insert("retry-after", v);
            }
            return r;
        }
        times.push_back(now);
    }
    let key = valid.session_id.clone().map(|s| (fp.to_string(), s));
    if let Some(key) = &key {
        let mut inner = shared.inner();
        if let Some(&i) = inner.by_session.get(key) {
            let c = &inner.conversations[i];
            return axum::Json(json!({"id": c.id, "status": "completed", "discarded": false}))
                .into_response();
        }
        if inner.in_flight.contains(key) {
            return detail(409, "Conversation creation already in progress");
        }
        inner.in_flight.insert(key.clone());
    }
    // A real server finishes a create it has accepted even when the client
    // hangs up meanwhile (hyper drops this handler's future on disconnect),
    // so the rest runs as its own task.
    let task = tokio::spawn(store_created(
        Arc::clone(shared),
        config.processing_delay,
        fp.to_string(),
        key,
        valid.session_id.clone(),
        body,
    ));
    match task.await {
        Ok(r) => r,
        Err(e) => detail(500, format!("create task failed: {e}")),
    }
}

/// The processing part of a create: waits the configured delay, stores the
/// conversation and releases its in-flight mark.
async fn store_created(
    shared: Arc<Shared>,
    processing_delay: Duration,
    fp: String,
    key: Option<(String, String)>,
    session_id: Option<String>,
    body: Value,
) -> Response {
    let fp = fp.as_str();
    if !processing_delay.is_zero() {
        tokio::time::sleep(processing_delay).await;
    }
    let mut inner = shared.inner();
    let id = match &key {
        Some((fp, s)) => conversation_id(fp, s),
        None => {
            inner.anonymous_ids += 1;
            conversation_id(fp, &format!("\0anonymous-{}", inner.anonymous_ids))
        }
    };
    let idx = inner.conversations.len();
    inner.conversations.push(StoredConversation {
        id: id.clone(),
        session_id,
        key_fingerprint: fp.to_string(),
        body,
        created_ms: shared.now_ms(),
        deleted: false,
    });
    if let Some(key) = key {
        inner.in_flight.remove(&key);
        *inner.creations.entry(key.1.clone()).or_default() += 1;
        inner.by_session.insert(key, idx);
    } else {
        *inner.creations.entry(String::new()).or_default() += 1;
    }
    axum::Json(json!({"id": id, "status": "completed", "discarded": false})).into_response()
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
        .filter(|c| c.key_fingerprint == fp && !c.deleted)
        .skip(offset)
        .take(limit)
        .map(|c| render(c, include))
        .collect();
    axum::Json(Value::Array(page)).into_response()
}

/// Parses one fault of the admin JSON:
/// `{"route": "any|create|list|get|delete", "times": 1, "kind": "status|raw|too_many|stall|reset|process_then_status|process_then_reset|process_then_stall", "status": 500, "ms": 2000, "retry_after": "60", "body": "…", "content_type": "text/html"}`.
pub fn admin_fault(v: &Value) -> Result<(Route, Fault, usize), String> {
    let route = match v.get("route").and_then(Value::as_str).unwrap_or("any") {
        "any" => Route::Any,
        "create" => Route::Create,
        "list" => Route::List,
        "get" => Route::Get,
        "delete" => Route::Delete,
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
