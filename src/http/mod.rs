//! HTTP for everything that talks to a server: the Omi cloud client and the
//! Deepgram and OpenAI-compatible speech engines.
//!
//! - [`Client`]: one per engine, a blocking `reqwest` client (rustls on the
//!   *ring* provider, no OpenSSL, no aws-lc) that reuses connections, has a
//!   connect and a whole-call timeout, follows no redirects (a redirect is
//!   an answer to report, and must not carry the key elsewhere) and ignores
//!   proxies for loopback addresses.
//! - [`Client::send`]: one request whose wait a [`Cancel`] ends at once (the
//!   request finishes or times out on its own thread; its answer is
//!   dropped), with the body read up to a limit. Transport failures come
//!   back as a [`Failure`] whose text never holds a secret.
//! - [`RetryAfter`]: the one `Retry-After` parser.
//!
//! Nothing here logs a request's headers: the key travels only in the
//! `Authorization` header, and no log level of any crate prints it (a test
//! runs the whole push and the HTTP speech engines at `RUST_LOG=trace` and
//! searches the output for it).

mod retry_after;

use std::io::Read;
use std::sync::Once;
use std::sync::mpsc;
use std::time::Duration;

pub use reqwest::Method;
pub use reqwest::blocking::{Request, RequestBuilder, Response};
pub use reqwest::header::HeaderMap;
pub use retry_after::RetryAfter;

use crate::cancel::Cancel;
use crate::cloud::credentials::scrub_secrets;

/// How often a wait for an answer looks at its [`Cancel`].
const CANCEL_POLL: Duration = Duration::from_millis(25);

/// How a [`Client`] connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Limit for establishing a connection (DNS, TCP, TLS).
    pub connect_timeout: Duration,
    /// Limit for a whole call, the answer's body included.
    pub timeout: Duration,
    /// Sent as `User-Agent`.
    pub user_agent: String,
    /// Talk to the server directly even if the environment names a proxy
    /// (for loopback servers: tests, a local contract server).
    pub no_proxy: bool,
}

impl Settings {
    /// `timeout` for the whole call, 10 s to connect, omi-sync's user agent.
    pub fn with_timeout(timeout: Duration) -> Self {
        Settings {
            connect_timeout: Duration::from_secs(10).min(timeout),
            timeout,
            user_agent: user_agent(),
            no_proxy: false,
        }
    }
}

/// Whether `url` names a loopback host (`localhost`, 127.0.0.0/8, `::1`).
pub fn is_loopback_url(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| match u.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    })
}

/// `omi-sync/VERSION`.
pub fn user_agent() -> String {
    format!("omi-sync/{}", env!("CARGO_PKG_VERSION"))
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The job was cancelled while the request was out; its answer, if one
    /// comes, is dropped.
    #[error("stopped before the answer came")]
    Cancelled,
    /// No answer within the time limit.
    #[error("no answer in time ({0})")]
    Timeout(String),
    /// No connection (refused, DNS, TLS).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The request could not be made at all (a bad URL or header).
    #[error("the request could not be made: {0}")]
    Request(String),
    /// The connection broke (a reset, an answer cut off).
    #[error("network error: {0}")]
    Transport(String),
}

impl Failure {
    /// Whether a later attempt may get an answer.
    pub fn is_temporary(&self) -> bool {
        !matches!(self, Failure::Request(_))
    }
}

/// A status, the headers and a bounded body.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// Every header of the answer.
    pub headers: HeaderMap,
    /// The body, at most the limit given to [`Client::send`].
    pub body: Vec<u8>,
    /// Whether the body was longer than the limit (and cut).
    pub truncated: bool,
}

impl Answer {
    /// A header's value, if present and readable.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One engine's HTTP client: cheap to clone (clones share the connection
/// pool).
#[derive(Clone)]
pub struct Client {
    inner: reqwest::blocking::Client,
    settings: Settings,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("settings", &self.settings)
            .finish()
    }
}

/// Installs rustls' *ring* provider as the process default (once).
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Fails only if another provider is installed already: then that one serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    /// A client with these settings.
    pub fn new(settings: Settings) -> Result<Self, Failure> {
        install_crypto_provider();
        let mut builder = reqwest::blocking::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .user_agent(settings.user_agent.clone())
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(90));
        if settings.no_proxy {
            builder = builder.no_proxy();
        }
        let inner = builder
            .build()
            .map_err(|e| Failure::Request(format!("cannot set up HTTPS: {}", chain(&e))))?;
        Ok(Client { inner, settings })
    }

    /// The settings it was made with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Starts a request to `url`.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.inner.request(method, url)
    }

    /// Sends a request on this thread and returns the answer with its body
    /// still to read, for large downloads that stream to disk (the caller
    /// checks its own cancel between reads).
    pub fn open(&self, request: RequestBuilder) -> Result<Response, Failure> {
        let request = request
            .build()
            .map_err(|e| Failure::Request(chain(&e.without_url())))?;
        self.inner
            .execute(request)
            .map_err(|e| describe(&e, self.settings.timeout))
    }

    /// Sends a request and reads its answer (at most `body_limit` bytes of
    /// body), giving up the wait as soon as `cancel` fires.
    pub fn send(
        &self,
        request: RequestBuilder,
        body_limit: u64,
        cancel: &Cancel,
    ) -> Result<Answer, Failure> {
        let request = request
            .build()
            .map_err(|e| Failure::Request(chain(&e.without_url())))?;
        cancel.check().map_err(|_| Failure::Cancelled)?;
        let (tx, rx) = mpsc::channel();
        let client = self.inner.clone();
        let timeout = self.settings.timeout;
        let spawned = std::thread::Builder::new()
            .name("omi-sync http".into())
            .spawn(move || {
                let _ = tx.send(exchange(&client, request, body_limit, timeout));
            });
        if let Err(e) = spawned {
            return Err(Failure::Transport(format!(
                "cannot start the request's thread: {e}"
            )));
        }
        loop {
            match rx.recv_timeout(CANCEL_POLL) {
                Ok(result) => return result,
                Err(mpsc::RecvTimeoutError::Timeout) if cancel.is_cancelled() => {
                    return Err(Failure::Cancelled);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(Failure::Transport(
                        "the request ended without an answer".into(),
                    ));
                }
            }
        }
    }
}

/// One request on the calling thread.
fn exchange(
    client: &reqwest::blocking::Client,
    request: Request,
    body_limit: u64,
    timeout: Duration,
) -> Result<Answer, Failure> {
    let response = client.execute(request).map_err(|e| describe(&e, timeout))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let read = response
        .take(body_limit.saturating_add(1))
        .read_to_end(&mut body);
    if let Err(e) = read
        && (200..300).contains(&status)
    {
        // A success whose body broke off is no answer; an error status is
        // still one, whatever its body.
        return Err(Failure::Transport(scrub_secrets(&format!(
            "the answer (HTTP {status}) broke off: {e}"
        ))));
    }
    let truncated = body.len() as u64 > body_limit;
    body.truncate(usize::try_from(body_limit).unwrap_or(usize::MAX));
    Ok(Answer {
        status,
        headers,
        body,
        truncated,
    })
}

/// A transport error in words, without the URL's query or any secret.
fn describe(e: &reqwest::Error, timeout: Duration) -> Failure {
    let detail = chain(e);
    if e.is_timeout() {
        Failure::Timeout(format!(
            "limit {} s for the whole call: {detail}",
            timeout.as_secs_f32()
        ))
    } else if e.is_connect() {
        Failure::Connect(detail)
    } else if e.is_builder() {
        Failure::Request(detail)
    } else {
        Failure::Transport(detail)
    }
}

/// The innermost causes of an error, joined, scrubbed of secrets.
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    if parts.is_empty() {
        parts.push(e.to_string());
    }
    scrub_secrets(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_connection_is_a_temporary_connect_failure() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut s = Settings::with_timeout(Duration::from_secs(2));
        s.no_proxy = true;
        let c = Client::new(s).unwrap();
        let r = c.send(
            c.request(Method::GET, &format!("http://127.0.0.1:{port}/x")),
            1024,
            &Cancel::new(),
        );
        match r {
            Err(f @ Failure::Connect(_)) => assert!(f.is_temporary()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_cancel_ends_the_wait_for_a_silent_server_at_once() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and never answers.
        let _hold = std::thread::spawn(move || {
            let conns: Vec<_> = listener.incoming().take(1).collect();
            std::thread::sleep(Duration::from_secs(30));
            drop(conns);
        });
        let mut s = Settings::with_timeout(Duration::from_secs(60));
        s.no_proxy = true;
        let c = Client::new(s).unwrap();
        let cancel = Cancel::new();
        let firing = cancel.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            firing.cancel();
        });
        let started = std::time::Instant::now();
        let r = c.send(
            c.request(Method::GET, &format!("http://{addr}/")),
            1024,
            &cancel,
        );
        assert_eq!(r.unwrap_err(), Failure::Cancelled);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_bad_url_is_a_request_failure_not_temporary() {
        let c = Client::new(Settings::with_timeout(Duration::from_secs(1))).unwrap();
        let e = c
            .send(c.request(Method::GET, "not a url"), 10, &Cancel::new())
            .unwrap_err();
        assert!(matches!(e, Failure::Request(_)), "{e:?}");
        assert!(!e.is_temporary());
    }
}
