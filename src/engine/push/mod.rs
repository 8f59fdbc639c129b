//! Pushing conversations to the Omi cloud, exactly once.
//!
//! Three steps, each re-runnable:
//!
//! 1. [`plan`]: compare the timeline with the outbox. A conversation is
//!    pushable when every member is transcribed, it has text, and its times
//!    are wall-clock (estimated times are held unless allowed). Its identity
//!    is its `client_session_id`, derived from its member segments. A queued
//!    or pushed conversation that is no longer on the timeline (a merge, split
//!    or undo changed it) is retracted: never sent if it was never sent, its
//!    cloud copy deleted if it may exist.
//! 2. [`apply`]: write that plan into the outbox.
//! 3. [`send`]: deletes first, then creates in time order, each written to
//!    the ledger as `sending` before the request leaves, under a client-side
//!    rate limiter persisted across runs, with the retry policy of
//!    [`crate::cloud::retry`].
//!
//! The cloud answers a repeated `client_session_id` with the conversation it
//! already has, so a crash, a retry or a second machine with the same ledger
//! never creates a duplicate.
//!
//! [`stage`] is the whole stage as a job runs it (dry run, or queue and send).

pub mod stage;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::clock::UtcMillis;
use crate::cloud::api::{ApiError, Deleted, OmiClient, PushOutcome};
use crate::cloud::payload::CreateConversationRequest;
use crate::cloud::payload::{self, PayloadError, Piece, PushConversation, SessionId};
use crate::cloud::ratelimit::{Limiter, RateLimit};
use crate::cloud::retry::{self, Jitter, NextStep, RetryPolicy, SplitMix64};
use crate::cloud::{KeyFingerprint, PushOutcome as Outcome};
use crate::engine::ctx::Ctx;
use crate::engine::events::{Event, Origin, Stage, Unit, WaitReason};
use crate::engine::report::StageReport;
use crate::store::{Ledger, LedgerReader, NewPush, OutboxRow, OutboxState, StoreError};
use crate::timeline::{Conversation, Domain, SegmentStatus, Timeline};

/// The cloud calls pushing needs: the real client, or a fake in tests.
pub trait CloudApi {
    /// `POST …/from-segments`.
    fn create(&self, request: &CreateConversationRequest) -> PushOutcome;
    /// `DELETE …/conversations/{id}`.
    fn delete(&self, cloud_id: &str) -> Result<Deleted, ApiError>;
    /// The key in use, as the rate limiter knows it.
    fn key(&self) -> &KeyFingerprint;
}

impl CloudApi for OmiClient {
    fn create(&self, request: &CreateConversationRequest) -> PushOutcome {
        self.create_conversation(request)
    }

    fn delete(&self, cloud_id: &str) -> Result<Deleted, ApiError> {
        self.delete_conversation(cloud_id)
    }

    fn key(&self) -> &KeyFingerprint {
        self.key_fingerprint()
    }
}

/// How to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Push conversations whose times are estimated (clock not set).
    pub allow_estimated: bool,
    /// Sleep through rate limits and backoffs until everything is done.
    pub wait: bool,
    /// Without `wait`, still sleep for waits up to this long within a run.
    pub max_wait_in_run: Duration,
    /// Transcript language sent with each conversation.
    pub language: String,
    /// The client-side rate limit.
    pub limit: RateLimit,
    /// When to retry.
    pub policy: RetryPolicy,
}

impl Default for PushOptions {
    fn default() -> Self {
        PushOptions {
            allow_estimated: false,
            wait: false,
            max_wait_in_run: Duration::from_secs(60),
            language: "en".into(),
            limit: RateLimit::default(),
            policy: RetryPolicy::default(),
        }
    }
}

/// Why a conversation is not pushed yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Hold {
    /// Its times are estimated: a person reviews them and allows it.
    EstimatedTime {
        /// Why they are estimated: `uptime` (the pendant's clock was not
        /// set) or `unknown` (no usable time at all, e.g. a file name
        /// without one).
        clock: crate::clock::ClockTrust,
    },
    /// Some members wait for transcription.
    WaitingForTranscription {
        /// How many.
        pending: usize,
    },
    /// Transcription failed for some members.
    TranscriptionFailed {
        /// How many.
        failed: usize,
    },
    /// Nothing to send: no member has text.
    NoText,
    /// It cannot be made into a valid request.
    Invalid {
        /// Why.
        message: String,
    },
}

/// Where one conversation of the timeline stands with the cloud.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum CloudStatus {
    /// Not pushable yet.
    Held {
        /// Why.
        #[serde(flatten)]
        hold: Hold,
    },
    /// To be queued now (not in the outbox yet).
    New {
        /// Its `client_session_id`.
        session_id: String,
        /// Cloud conversations it replaces (edited after they were pushed).
        replaces: Vec<String>,
    },
    /// In the outbox, not pushed yet.
    Queued {
        /// Its `client_session_id`.
        session_id: String,
        /// Not before this.
        retry_at: Option<String>,
        /// Requests sent so far.
        attempts: u32,
        /// The last failure.
        last_error: Option<String>,
    },
    /// In the cloud.
    Pushed {
        /// Its `client_session_id`.
        session_id: String,
        /// The cloud's id.
        cloud_id: String,
    },
    /// The server refused it.
    Rejected {
        /// Its `client_session_id`.
        session_id: String,
        /// The server's message.
        message: String,
    },
}

/// A conversation on the timeline and its cloud status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationStatus {
    /// The timeline's id.
    pub conversation: String,
    /// Its start.
    pub started_at: UtcMillis,
    /// Its cloud status.
    pub status: CloudStatus,
}

/// A conversation to queue, with its request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewConversation {
    /// The outbox row to write.
    pub push: NewPush,
    /// The request, as sent.
    pub request: CreateConversationRequest,
    /// Readable notes from building the request (pieces joined, ...).
    pub notes: Vec<String>,
}

/// What to do about outbox rows no longer on the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retraction {
    /// Never sent: drop it.
    Supersede(String),
    /// May be in the cloud: delete it there.
    Delete(String),
}

/// The comparison of timeline and outbox.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Every conversation of the timeline, in order, with its status.
    pub conversations: Vec<ConversationStatus>,
    /// Conversations to queue.
    pub new: Vec<NewConversation>,
    /// Outbox rows to retract.
    pub retract: Vec<Retraction>,
}

/// The pieces of a conversation's transcript, one per transcribed member.
fn pieces(conv: &Conversation) -> Vec<Piece> {
    conv.members()
        .filter(|s| s.status == SegmentStatus::Speech)
        .filter_map(|s| {
            let text = s.text.as_deref()?.trim();
            (!text.is_empty()).then(|| Piece {
                start: s.start,
                end: s.end,
                text: text.to_string(),
                speaker: None,
            })
        })
        .collect()
}

/// Why `conv` cannot be pushed, if it cannot.
fn hold_for(conv: &Conversation, allow_estimated: bool) -> Option<Hold> {
    if conv.domain == Domain::Estimated && !allow_estimated {
        let clock = conv
            .members()
            .map(|s| s.clock)
            .find(|c| !c.is_wall())
            .unwrap_or(crate::clock::ClockTrust::Unknown);
        return Some(Hold::EstimatedTime { clock });
    }
    let count = |st: SegmentStatus| conv.members().filter(|s| s.status == st).count();
    let pending = count(SegmentStatus::Pending);
    if pending > 0 {
        return Some(Hold::WaitingForTranscription { pending });
    }
    let failed = count(SegmentStatus::Failed);
    if failed > 0 {
        return Some(Hold::TranscriptionFailed { failed });
    }
    None
}

/// The cloud request for a pushable conversation.
pub fn request_for(
    conv: &Conversation,
    language: &str,
) -> Result<(NewPush, CreateConversationRequest, Vec<String>), Hold> {
    let members: Vec<String> = conv.members().map(|s| s.key.clone()).collect();
    let push = PushConversation {
        member_segment_keys: members.clone(),
        started_at: conv.started_at,
        finished_at: conv.finished_at,
        pieces: pieces(conv),
        language: language.to_string(),
        device_id: Some(conv.device.clone()),
    };
    let built = payload::build(&push).map_err(|e| match e {
        PayloadError::NoText { .. } => Hold::NoText,
        other => Hold::Invalid {
            message: other.to_string(),
        },
    })?;
    let request_json = serde_json::to_string(&built.request).unwrap_or_default();
    Ok((
        NewPush {
            session_id: built.session_id.as_str().to_string(),
            conversation: conv.id.clone(),
            device: conv.device.clone(),
            members,
            started_at: conv.started_at,
            finished_at: conv.finished_at,
            segments: built.request.transcript_segments.len() as u32,
            request: request_json,
        },
        built.request,
        built.notes.iter().map(|n| n.to_string()).collect(),
    ))
}

/// Compares the timeline with the outbox (reads only).
pub fn plan(
    ledger: &LedgerReader,
    timeline: &Timeline,
    opts: &PushOptions,
) -> Result<Plan, StoreError> {
    let outbox: BTreeMap<String, OutboxRow> = ledger
        .outbox()?
        .into_iter()
        .map(|r| (r.push.session_id.clone(), r))
        .collect();
    let mut plan = Plan::default();
    let mut wanted: HashSet<String> = HashSet::new();
    for conv in &timeline.conversations {
        let status = match hold_for(conv, opts.allow_estimated)
            .map_or_else(|| request_for(conv, &opts.language), Err)
        {
            Err(hold) => CloudStatus::Held { hold },
            Ok((mut push, mut request, notes)) => {
                let latest = latest_generation(&outbox, &push.session_id);
                let reusable = latest.filter(|(_, row)| !row.state.is_retired());
                if let (None, Some((generation, _))) = (reusable, latest) {
                    // Its earlier copy was retracted: push it as a new generation.
                    let base =
                        SessionId::from_stored(&push.session_id).expect("derived ids are valid");
                    let id = base.generation(generation + 1).as_str().to_string();
                    request.client_session_id = id.clone();
                    push.session_id = id;
                    push.request = serde_json::to_string(&request).unwrap_or_default();
                }
                let session_id = push.session_id.clone();
                wanted.insert(session_id.clone());
                match reusable.map(|(_, row)| row) {
                    None => {
                        let keys: HashSet<&str> = push.members.iter().map(String::as_str).collect();
                        let replaces = outbox
                            .values()
                            // Pushed copies it overlaps, and copies already
                            // being deleted for it (a re-transcription).
                            .filter(|r| {
                                matches!(r.state, OutboxState::Pushed | OutboxState::DeletePending)
                            })
                            .filter(|r| r.push.members.iter().any(|k| keys.contains(k.as_str())))
                            .filter_map(|r| r.cloud_id.clone())
                            .collect();
                        plan.new.push(NewConversation {
                            push,
                            request,
                            notes,
                        });
                        CloudStatus::New {
                            session_id,
                            replaces,
                        }
                    }
                    Some(row) => status_of_row(row),
                }
            }
        };
        plan.conversations.push(ConversationStatus {
            conversation: conv.id.clone(),
            started_at: conv.started_at,
            status,
        });
    }
    for row in outbox.values() {
        if wanted.contains(&row.push.session_id) {
            continue;
        }
        let id = row.push.session_id.clone();
        match row.state {
            OutboxState::Superseded | OutboxState::Deleted | OutboxState::DeletePending => {}
            OutboxState::Rejected => plan.retract.push(Retraction::Supersede(id)),
            OutboxState::Pending | OutboxState::Failed if row.attempts == 0 => {
                plan.retract.push(Retraction::Supersede(id))
            }
            // Pushed, or sent at least once with the answer unknown or failed:
            // it may exist in the cloud.
            _ => plan.retract.push(Retraction::Delete(id)),
        }
    }
    Ok(plan)
}

/// The newest generation of the conversation whose first-generation id is
/// `base`, and its outbox row.
fn latest_generation<'a>(
    outbox: &'a BTreeMap<String, OutboxRow>,
    base: &str,
) -> Option<(u32, &'a OutboxRow)> {
    let base_id = SessionId::from_stored(base)?;
    outbox
        .range(base.to_string()..)
        .take_while(|(id, _)| id.starts_with(base))
        .filter_map(|(id, row)| Some((SessionId::from_stored(id)?.generation_of(&base_id)?, row)))
        .max_by_key(|(generation, _)| *generation)
}

fn status_of_row(row: &OutboxRow) -> CloudStatus {
    let session_id = row.push.session_id.clone();
    match (row.state, &row.cloud_id) {
        (OutboxState::Pushed, Some(cloud_id)) => CloudStatus::Pushed {
            session_id,
            cloud_id: cloud_id.clone(),
        },
        (OutboxState::Rejected, _) => CloudStatus::Rejected {
            session_id,
            message: row.last_error.clone().unwrap_or_default(),
        },
        _ => CloudStatus::Queued {
            session_id,
            retry_at: row.retry_at.map(|t| t.to_rfc3339()),
            attempts: row.attempts,
            last_error: row.last_error.clone(),
        },
    }
}

/// Writes a plan into the outbox: queues new conversations, retracts old ones.
pub fn apply(ledger: &Ledger, plan: &Plan) -> Result<(), StoreError> {
    for r in &plan.retract {
        match r {
            Retraction::Supersede(id) => ledger.mark_superseded(id)?,
            Retraction::Delete(id) => ledger.queue_delete(id)?,
        }
    }
    for n in &plan.new {
        ledger.enqueue_push(&n.push)?;
    }
    Ok(())
}

/// What a run of [`send`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushReport {
    /// Conversations created in the cloud in this run.
    pub created: usize,
    /// Cloud conversations deleted in this run (replaced by an edit).
    pub deleted: usize,
    /// Create requests sent.
    pub create_requests: usize,
    /// Delete requests sent.
    pub delete_requests: usize,
    /// Conversations refused by the server in this run.
    pub rejected: Vec<(String, String)>,
    /// Conversations given up on for this run (temporary failures).
    pub failed: Vec<(String, String)>,
    /// Still queued at the end of the run.
    pub queued: usize,
    /// When the next attempt may be made, if anything is queued.
    pub next_attempt_at: Option<UtcMillis>,
    /// When the last queued conversation can be created under the rate limit
    /// (if every answer is good): when a `--wait` run would finish.
    pub all_sent_by: Option<UtcMillis>,
    /// Set when the key was refused: nothing more can be pushed without a person.
    pub credentials_problem: Option<String>,
}

const LIMITER_KEY: &str = "cloud.limiter";

/// The client-side rate limiter's state as the last push left it.
pub fn load_limiter(ledger: &LedgerReader) -> Result<Limiter, StoreError> {
    Ok(ledger
        .meta(LIMITER_KEY)?
        .and_then(|j| serde_json::from_str(&j).ok())
        .unwrap_or_default())
}

fn save_limiter(ledger: &Ledger, limiter: &Limiter) -> Result<(), StoreError> {
    ledger.set_meta(
        LIMITER_KEY,
        &serde_json::to_string(limiter).unwrap_or_default(),
    )
}

/// Sends what the outbox holds: deletes, then creates, until everything is
/// done or the rest must wait longer than this run is allowed to.
pub fn send(
    ledger: &Ledger,
    api: &dyn CloudApi,
    opts: &PushOptions,
    ctx: &Ctx,
) -> Result<PushReport, StoreError> {
    let started = std::time::Instant::now();
    let mut report = PushReport::default();
    let mut rng = SplitMix64::from_entropy();
    ledger.revive_failed_pushes()?;
    let mut limiter = load_limiter(ledger)?;
    let work = |l: &Ledger| -> Result<Vec<OutboxRow>, StoreError> {
        Ok(l.outbox()?
            .into_iter()
            // A row given up on in this run (failed) waits for the next one.
            .filter(|r| r.state.needs_sending() && r.state != OutboxState::Failed)
            .collect())
    };
    let total = work(ledger)?.len() as u64;
    if total == 0 {
        return Ok(report);
    }
    ctx.emit(Event::StageStarted {
        stage: Stage::Push,
        total,
        unit: Unit::Conversations,
    });
    let mut done = 0u64;
    loop {
        let rows = work(ledger)?;
        if rows.is_empty() {
            break;
        }
        let now = UtcMillis::now();
        let due = |r: &OutboxRow| r.retry_at.is_none_or(|t| t <= now);
        // Deletes first: an edit replaces its cloud copy by delete, then create.
        if let Some(row) = rows
            .iter()
            .find(|r| r.state == OutboxState::DeletePending && due(r))
        {
            if let Some(problem) =
                delete_one(ledger, api, row, opts, &mut limiter, &mut rng, &mut report)?
            {
                report.credentials_problem = Some(problem);
                break;
            }
            if ledger
                .outbox_row(&row.push.session_id)?
                .is_some_and(|r| r.state == OutboxState::Deleted)
            {
                done += 1;
                ctx.emit(Event::Progress {
                    stage: Stage::Push,
                    done,
                    total,
                });
            }
            continue;
        }
        let creates: Vec<&OutboxRow> = rows
            .iter()
            .filter(|r| r.state != OutboxState::DeletePending && due(r))
            .collect();
        let allowed_at = limiter.next_allowed_at(api.key(), &opts.limit, now);
        if let Some(row) = creates.first().filter(|_| allowed_at <= now) {
            let outcome = create_one(
                ledger,
                api,
                row,
                opts,
                &mut limiter,
                &mut rng,
                &mut report,
                ctx,
            )?;
            match outcome {
                Some(CreateEnd::Done) => {
                    done += 1;
                    ctx.emit(Event::Progress {
                        stage: Stage::Push,
                        done,
                        total,
                    });
                }
                Some(CreateEnd::Credentials(problem)) => {
                    report.credentials_problem = Some(problem);
                    break;
                }
                None => {}
            }
            continue;
        }
        // Nothing is due now: wait for the earliest of the next retry and the
        // rate limiter, if this run may wait that long.
        let next_retry = rows
            .iter()
            .filter_map(|r| r.retry_at)
            .filter(|t| *t > now)
            .min();
        let next = match (creates.is_empty(), next_retry) {
            (false, Some(r)) => allowed_at.min(r),
            (false, None) => allowed_at,
            (true, Some(r)) => r,
            (true, None) => break,
        };
        let wait_ms = next.since(now);
        // A spent hourly budget is only waited out with --wait; a short retry
        // delay is waited in any run.
        let budget_spent = next == allowed_at
            && !creates.is_empty()
            && limiter.window(api.key()).remaining(&opts.limit, now) == 0;
        let short = wait_ms <= opts.max_wait_in_run.as_millis() as i64;
        if opts.wait || (short && !budget_spent) {
            ctx.emit(Event::Waiting {
                stage: Stage::Push,
                until: next,
                reason: if budget_spent {
                    WaitReason::HourlyBudget {
                        limit: opts.limit.max_per_window,
                        window_s: opts.limit.window.as_secs(),
                    }
                } else if next == allowed_at && !creates.is_empty() {
                    WaitReason::ServerAsked { status: 429 }
                } else {
                    WaitReason::Backoff { attempt: 0 }
                },
            });
            if ctx.sleep_until(next).is_err() {
                break;
            }
            continue;
        }
        break;
    }
    let left = work(ledger)?;
    report.queued = left.len();
    let now = UtcMillis::now();
    report.next_attempt_at = left
        .iter()
        .map(|r| {
            let t = r.retry_at.unwrap_or(now);
            if r.state == OutboxState::DeletePending {
                t
            } else {
                t.max(limiter.next_allowed_at(api.key(), &opts.limit, now))
            }
        })
        .min();
    let creates_left = left
        .iter()
        .filter(|r| r.state != OutboxState::DeletePending)
        .count();
    if creates_left > 0 {
        // When the last would go under the limit, if every answer is good.
        let mut window = limiter.window(api.key());
        let mut at = report.next_attempt_at.unwrap_or(now);
        for _ in 0..creates_left {
            at = window.next_allowed_at(&opts.limit, at);
            window.record(&opts.limit, at);
        }
        report.all_sent_by = Some(at);
    }
    ctx.stage_finished(started, StageReport::Push(report.clone()));
    Ok(report)
}

enum CreateEnd {
    Done,
    Credentials(String),
}

#[allow(clippy::too_many_arguments)]
fn create_one(
    ledger: &Ledger,
    api: &dyn CloudApi,
    row: &OutboxRow,
    opts: &PushOptions,
    limiter: &mut Limiter,
    rng: &mut dyn Jitter,
    report: &mut PushReport,
    ctx: &Ctx,
) -> Result<Option<CreateEnd>, StoreError> {
    let id = &row.push.session_id;
    let request: CreateConversationRequest = match serde_json::from_str(&row.push.request) {
        Ok(r) => r,
        Err(e) => {
            ledger.mark_rejected(id, &format!("the queued request is unreadable: {e}"))?;
            return Ok(None);
        }
    };
    // Written before the request leaves: after a crash it is sent again with
    // the same session id, which the cloud answers idempotently.
    ledger.mark_sending(id)?;
    let now = UtcMillis::now();
    limiter.record(api.key(), &opts.limit, now);
    save_limiter(ledger, limiter)?;
    report.create_requests += 1;
    let outcome = api.create(&request);
    limiter.restamp(api.key(), now, UtcMillis::now());
    save_limiter(ledger, limiter)?;
    let attempt = row.attempts + 1;
    match retry::next_step(&opts.policy, &outcome, attempt, UtcMillis::now(), rng) {
        NextStep::Done => {
            let Outcome::Created { id: cloud_id, .. } = &outcome else {
                unreachable!("Done only follows Created")
            };
            ledger.mark_pushed(id, cloud_id)?;
            report.created += 1;
            ctx.emit(Event::ConversationPushed {
                conversation: row.push.conversation.clone(),
                session_id: id.clone(),
                cloud_id: cloud_id.clone(),
            });
            Ok(Some(CreateEnd::Done))
        }
        NextStep::RetryAt { at, reason } => {
            if matches!(outcome, Outcome::RateLimited { .. }) {
                limiter.block_until(api.key(), at);
                save_limiter(ledger, limiter)?;
            }
            ledger.mark_retry(id, at, &reason)?;
            Ok(None)
        }
        NextStep::GiveUp { reason } => {
            ledger.mark_failed(id, &reason)?;
            ctx.emit(Event::Warning {
                origin: Origin::Conversation {
                    id: row.push.conversation.clone(),
                },
                message: format!("not pushed in this run: {reason}"),
            });
            report.failed.push((row.push.conversation.clone(), reason));
            Ok(None)
        }
        NextStep::MarkRejected { status, message } => {
            let message = format!("HTTP {status}: {message}");
            ledger.mark_rejected(id, &message)?;
            ctx.emit(Event::Warning {
                origin: Origin::Conversation {
                    id: row.push.conversation.clone(),
                },
                message: format!("refused by the Omi cloud: {message}"),
            });
            report
                .rejected
                .push((row.push.conversation.clone(), message));
            Ok(None)
        }
        NextStep::NeedsCredentials { message } => {
            // Not this conversation's fault: back in the queue, untouched.
            ledger.mark_retry(id, UtcMillis::now(), &message)?;
            Ok(Some(CreateEnd::Credentials(message)))
        }
    }
}

/// Deletes one cloud copy. A row whose cloud id is unknown (its create was
/// sent but the answer lost) is first created again with the same session id,
/// which returns the existing conversation's id without making another.
fn delete_one(
    ledger: &Ledger,
    api: &dyn CloudApi,
    row: &OutboxRow,
    opts: &PushOptions,
    limiter: &mut Limiter,
    rng: &mut dyn Jitter,
    report: &mut PushReport,
) -> Result<Option<String>, StoreError> {
    let id = &row.push.session_id;
    let cloud_id = match &row.cloud_id {
        Some(c) => c.clone(),
        None => {
            let now = UtcMillis::now();
            if limiter.next_allowed_at(api.key(), &opts.limit, now) > now {
                let at = limiter.next_allowed_at(api.key(), &opts.limit, now);
                ledger.delay_delete(
                    id,
                    at,
                    "waiting for the rate limit to confirm what the cloud holds",
                )?;
                return Ok(None);
            }
            let Ok(request) = serde_json::from_str::<CreateConversationRequest>(&row.push.request)
            else {
                ledger.mark_deleted(id)?;
                return Ok(None);
            };
            limiter.record(api.key(), &opts.limit, now);
            save_limiter(ledger, limiter)?;
            report.create_requests += 1;
            match api.create(&request) {
                Outcome::Created { id: cloud_id, .. } => {
                    ledger.record_cloud_id(id, &cloud_id)?;
                    cloud_id
                }
                Outcome::Rejected { .. } => {
                    // The cloud never accepted it: nothing to delete.
                    ledger.mark_deleted(id)?;
                    return Ok(None);
                }
                Outcome::Unauthorized { status, message } => {
                    return Ok(Some(format!("HTTP {status}: {message}")));
                }
                other => {
                    let at = match retry::next_step(&opts.policy, &other, 1, now, rng) {
                        NextStep::RetryAt { at, .. } => at,
                        _ => now.plus_ms(60_000),
                    };
                    ledger.delay_delete(id, at, &other.to_string())?;
                    return Ok(None);
                }
            }
        }
    };
    report.delete_requests += 1;
    match api.delete(&cloud_id) {
        Ok(Deleted::Deleted) | Ok(Deleted::NotFound) => {
            ledger.mark_deleted(id)?;
            report.deleted += 1;
            Ok(None)
        }
        Err(ApiError::Unauthorized { status, message }) => {
            Ok(Some(format!("HTTP {status}: {message}")))
        }
        Err(e) => {
            let at = UtcMillis::now()
                .plus_ms(retry::backoff(&opts.policy, 2, rng).as_millis().max(1000) as i64);
            ledger.delay_delete(id, at, &format!("delete of {cloud_id}: {e}"))?;
            Ok(None)
        }
    }
}
