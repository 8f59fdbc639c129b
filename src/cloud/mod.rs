//! The Omi cloud: the API client and everything a push needs around it.
//!
//! This module owns the cloud side of omi-sync (`omi-facts.md` §5): the
//! developer API key ([`credentials`]), the base URL ([`url`]), the request
//! a conversation becomes ([`payload`]), the HTTP client ([`api`]) and what
//! the server's answers mean ([`answer`]), when to try again ([`retry`])
//! and how many requests the hourly budget leaves ([`ratelimit`]).
//!
//! Nothing here touches the ledger: the pieces are plain values and pure
//! functions over an explicit `now`, so the push engine (which persists
//! what it needs in the outbox) can drive them, and tests can pin every
//! decision.
//!
//! How a push goes (the engine's loop, `engine::push`):
//!
//! ```text
//! PushConversation ─payload::build─▶ BuiltPayload (request + client_session_id)
//!        │
//!        ▼  ratelimit::KeyWindow::next_allowed_at(now) ≤ now ?
//! api::OmiClient::create ─▶ Reply<PushOutcome> (+ X-RateLimit-*)
//!        │
//!        ▼
//! retry::next_step ─▶ Done / Confirm (processing: GET later) / RetryAt / GiveUp / …
//! ```
//!
//! Exactly-once rests on the server's idempotency: every push of the same
//! conversation carries the same `client_session_id`, so a retry after a
//! timeout or a lost response returns the conversation that already exists;
//! and a conversation counts as pushed only once the cloud reports it
//! `completed`, since a failed processing deletes it again.

pub mod answer;
pub mod api;
pub mod credentials;
pub mod payload;
pub mod ratelimit;
pub mod retry;
pub mod url;

pub use api::{ClientConfig, OmiClient, PushOutcome};
pub use credentials::{ApiKey, KeyFingerprint, Redacted};
pub use payload::{Piece, PushConversation, SessionId};
pub use ratelimit::{KeyWindow, RateLimit};
pub use retry::{NextStep, RetryPolicy};
