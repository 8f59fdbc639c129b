//! The Omi cloud: the API client and everything a push needs around it.
//!
//! This module owns the cloud side of omi-sync (`omi-facts.md` §5): the
//! developer API key ([`credentials`]), the request a conversation becomes
//! ([`payload`]), the HTTP client and how it classifies what the server said
//! ([`api`]), when to try again ([`retry`]) and how fast we may create
//! conversations ([`ratelimit`]).
//!
//! Nothing here touches the ledger: the pieces are plain values and pure
//! functions over an explicit `now`, so the outbox (which persists what it
//! needs in SQLite) can drive them, and tests can pin every decision.
//!
//! How a push is meant to go:
//!
//! ```text
//! PushConversation ─payload::build─▶ BuiltPayload (request + client_session_id)
//!        │
//!        ▼  ratelimit::KeyWindow::next_allowed_at(now) ≤ now ?
//! api::OmiClient::create_conversation ─▶ PushOutcome
//!        │
//!        ▼
//! retry::next_step(policy, outcome, attempt, now, rng) ─▶ Done / RetryAt / GiveUp / MarkRejected / NeedsCredentials
//! ```
//!
//! Exactly-once rests on the server's idempotency: every push of the same
//! conversation carries the same `client_session_id`, so a retry after a
//! timeout or a lost response returns the conversation that already exists.

pub mod api;
pub mod credentials;
pub mod payload;
pub mod ratelimit;
pub mod retry;

pub use api::{ClientConfig, OmiClient, PushOutcome};
pub use credentials::{ApiKey, KeyFingerprint, Redacted};
pub use payload::{Piece, PushConversation, SessionId};
pub use ratelimit::{KeyWindow, RateLimit};
pub use retry::{NextStep, RetryPolicy};
