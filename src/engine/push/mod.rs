//! Pushing conversations to the Omi cloud, exactly once.
//!
//! Three steps, each re-runnable:
//!
//! 1. [`plan`]: compare the timeline with the outbox. A conversation is
//!    pushable when every member is transcribed, it has text, and its times
//!    are wall-clock (estimated times are held unless allowed). Its identity
//!    is its `client_session_id`, derived from its member segments. A
//!    conversation the cloud already has exactly (a live outbox row of the
//!    same members, or a retracted one whose cloud copy is still there) is
//!    taken as it is; one retracted and gone from the cloud is queued under
//!    a new generation of its id. A queued or pushed conversation no longer
//!    on the timeline is retracted: because of a person's edit (its segments
//!    are all still there) its cloud copy is deleted, as the plan shows
//!    first; because its segments vanished (a VAD re-run, a lost capture) it
//!    is held, with a warning, until a person decides.
//! 2. [`apply`]: write that plan into the outbox.
//! 3. [`send`]: deletes first, then confirmations, then creates in time
//!    order, each written to the ledger before the request leaves, within
//!    the hourly budget shared by every write ([`crate::cloud::ratelimit`],
//!    persisted across runs), with the retry policy of
//!    [`crate::cloud::retry`]. A create the cloud answers `processing` is
//!    confirmed later with a GET, and sent again if the cloud dropped it:
//!    only a `completed` conversation counts as pushed.
//!
//! Time is read and waited for only through the job's clock
//! ([`Ctx::now`], [`Ctx::sleep_until`]), so a cancel stops a run within a
//! moment, even in an hour-long wait, and the tests run it on a
//! [`ManualClock`](crate::clock::ManualClock) against a fake cloud.
//!
//! [`stage`] is the whole stage as a job runs it (dry run, or queue and send).

mod install;
mod plan;
mod send;
pub mod stage;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use install::{client_device_id, install_id};
pub use plan::{
    CloudStatus, ConversationStatus, Hold, NewConversation, Plan, Requeue, RequeueWhy, Retraction,
    Vanished, VanishedDecision, apply, plan, request_for,
};
pub use send::{LockedConversation, PushReport, PushStop, check_key, load_limiter, send};

use crate::cloud::KeyFingerprint;
use crate::cloud::api::{
    ApiError, Conversation as CloudConversation, Deleted, KeyInfo, OmiClient, PushOutcome, Reply,
};
use crate::cloud::payload::{CreateConversationRequest, PayloadOptions};
use crate::cloud::ratelimit::RateLimit;
use crate::cloud::retry::RetryPolicy;

/// The cloud calls pushing needs: the real client, or a fake in tests.
pub trait CloudApi {
    /// `POST …/from-segments`.
    fn create(&self, request: &CreateConversationRequest) -> Reply<PushOutcome>;
    /// `GET …/conversations/{id}`: `None` when the cloud does not have it.
    fn get(&self, cloud_id: &str) -> Reply<Result<Option<CloudConversation>, ApiError>>;
    /// `DELETE …/conversations/{id}`.
    fn delete(&self, cloud_id: &str) -> Reply<Result<Deleted, ApiError>>;
    /// `GET /v1/dev/key`: `None` when the server has no such route.
    fn key_info(&self) -> Result<Option<KeyInfo>, ApiError>;
    /// The key in use, as the rate limiter knows it.
    fn key(&self) -> &KeyFingerprint;
}

impl CloudApi for OmiClient {
    fn create(&self, request: &CreateConversationRequest) -> Reply<PushOutcome> {
        OmiClient::create(self, request)
    }

    fn get(&self, cloud_id: &str) -> Reply<Result<Option<CloudConversation>, ApiError>> {
        OmiClient::get(self, cloud_id)
    }

    fn delete(&self, cloud_id: &str) -> Reply<Result<Deleted, ApiError>> {
        OmiClient::delete(self, cloud_id)
    }

    fn key_info(&self) -> Result<Option<KeyInfo>, ApiError> {
        OmiClient::key_info(self)
    }

    fn key(&self) -> &KeyFingerprint {
        self.key_fingerprint()
    }
}

/// How a conversation the cloud answered `processing` is confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfirmPolicy {
    /// The first check, this long after the answer.
    pub first_check: Duration,
    /// Checks after that wait as long as the conversation has been
    /// processing so far, at most this long.
    pub max_interval: Duration,
    /// Still `processing` this long after the first answer: the cloud drops
    /// such a claim (after 15 minutes) and redoes it on the next request
    /// with the session id, so the same request is sent again.
    pub stale_after: Duration,
}

impl Default for ConfirmPolicy {
    fn default() -> Self {
        ConfirmPolicy {
            first_check: Duration::from_secs(30),
            max_interval: Duration::from_secs(5 * 60),
            stale_after: Duration::from_secs(16 * 60),
        }
    }
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Push conversations whose times are estimated (clock not set).
    pub allow_estimated: bool,
    /// Sleep through rate limits, backoffs and confirmations until
    /// everything is done.
    pub wait: bool,
    /// Without `wait`, still sleep for waits up to this long within a run
    /// (never for a spent hourly budget).
    pub max_wait_in_run: Duration,
    /// Stop the run once requests have failed (timeouts, 5xx, resets) for
    /// this long without one getting through: what is left stays queued.
    pub max_failing: Duration,
    /// Transcript language sent with each conversation.
    pub language: String,
    /// How requests are built (source, platform, this install's id).
    pub payload: PayloadOptions,
    /// The hourly budget of writes (creates and deletes), shared.
    pub limit: RateLimit,
    /// The hourly budget of reads of one conversation (confirmations).
    pub read_limit: RateLimit,
    /// When to retry.
    pub policy: RetryPolicy,
    /// How to confirm `processing` answers.
    pub confirm: ConfirmPolicy,
    /// Queue refused and locked conversations again.
    pub retry_rejected: bool,
    /// Conversations whose segments vanished: keep their cloud copies as
    /// they are and stop tracking them.
    pub forget_vanished: bool,
    /// Conversations whose segments vanished: delete their cloud copies (and
    /// push what the timeline has there now).
    pub replace_vanished: bool,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            allow_estimated: false,
            wait: false,
            max_wait_in_run: Duration::from_secs(60),
            max_failing: Duration::from_secs(5 * 60),
            language: "en".into(),
            payload: PayloadOptions::default(),
            limit: RateLimit::default(),
            read_limit: RateLimit::reads(),
            policy: RetryPolicy::default(),
            confirm: ConfirmPolicy::default(),
            retry_rejected: false,
            forget_vanished: false,
            replace_vanished: false,
        }
    }
}
