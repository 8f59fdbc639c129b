//! Sending what the outbox holds: deletes, confirmations, creates, within
//! the hourly budget, until everything is done or the rest must wait longer
//! than this run may.
//!
//! Every request is recorded before it leaves (a create's `sending`, a
//! delete's attempt, the budget's charge), so a crash or a cancel at any
//! point re-sends it next time with the same session id and never counts it
//! as done. A run ends with a [`PushReport`] that says truthfully what is
//! still queued and being confirmed, and why it stopped early when it did
//! ([`PushStop`]).

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::{CloudApi, PushOptions};
use crate::clock::UtcMillis;
use crate::cloud::api::{ApiError, PushOutcome, ServerBudget, WRITE_SCOPE};
use crate::cloud::payload::CreateConversationRequest;
use crate::cloud::ratelimit::{KeyWindow, Limiter, RateLimit};
use crate::cloud::retry::{self, NextStep, RetryWait};
use crate::engine::ctx::Ctx;
use crate::engine::events::{Event, Origin, Stage, Unit, WaitReason};
use crate::engine::remedy::{KeyService, Remedy};
use crate::engine::report::StageReport;
use crate::store::{Ledger, LedgerReader, OutboxRow, OutboxState, StoreError};

/// Where the budget is kept (`meta`).
const LIMITER_KEY: &str = "cloud.budget";
/// Where the first version kept it.
const LEGACY_LIMITER_KEY: &str = "cloud.limiter";

/// Why a run stopped before the outbox was empty, for a reason that is
/// not one conversation's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "stop", rename_all = "snake_case")]
pub enum PushStop {
    /// The cloud refused the key (401).
    KeyRefused {
        /// The HTTP status.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// The key lacks a scope it needs (`conversations:write`).
    MissingScope {
        /// The scope.
        scope: String,
        /// What the server said.
        message: String,
    },
    /// The create route answered 404/405: the developer API is gone from
    /// this address.
    RouteGone {
        /// The HTTP status.
        status: u16,
        /// What the server said.
        message: String,
    },
    /// The server redirected: the base URL points elsewhere.
    Redirected {
        /// The HTTP status.
        status: u16,
        /// What the server said and where it pointed.
        message: String,
    },
    /// The budget is zero requests per window: nothing can ever be sent.
    NoBudget {
        /// The setting.
        setting: String,
    },
    /// Requests kept failing (timeouts, 5xx, resets) for too long.
    Unreachable {
        /// For how long, seconds.
        for_s: u64,
        /// The last failure.
        last_error: String,
    },
}

impl PushStop {
    /// What a person can do about it.
    pub fn remedy(&self) -> Remedy {
        match self {
            PushStop::KeyRefused { .. } => Remedy::CheckKey {
                service: KeyService::Omi,
                scope: None,
            },
            PushStop::MissingScope { scope, .. } => Remedy::CheckKey {
                service: KeyService::Omi,
                scope: Some(scope.clone()),
            },
            PushStop::RouteGone { .. } => Remedy::ApiGone,
            PushStop::Redirected { .. } => Remedy::FixSetting {
                key: "cloud.api_url".into(),
            },
            PushStop::NoBudget { setting } => Remedy::FixSetting {
                key: setting.clone(),
            },
            PushStop::Unreachable { .. } => Remedy::RetryLater { at: None },
        }
    }

    /// Whether trying again later, unchanged, can help.
    pub fn is_temporary(&self) -> bool {
        matches!(self, PushStop::Unreachable { .. })
    }
}

impl std::fmt::Display for PushStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushStop::KeyRefused { status, message } => {
                write!(
                    f,
                    "the Omi cloud refused the API key (HTTP {status}: {message})"
                )
            }
            PushStop::MissingScope { scope, message } => write!(
                f,
                "the API key lacks the `{scope}` scope, which creating and deleting \
                 conversations needs ({message})"
            ),
            PushStop::RouteGone { status, message } => write!(
                f,
                "the Omi API's create route is gone (HTTP {status}): {message}"
            ),
            PushStop::Redirected { status, message } => {
                write!(
                    f,
                    "the Omi API address redirects (HTTP {status}): {message}"
                )
            }
            PushStop::NoBudget { setting } => write!(
                f,
                "the request budget is 0 per window (`{setting}`): nothing can be sent"
            ),
            PushStop::Unreachable { for_s, last_error } => write!(
                f,
                "the Omi cloud has not answered properly for {for_s} s (last: {last_error}); \
                 stopped for now"
            ),
        }
    }
}

/// A conversation the cloud refused to change because it is locked there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedConversation {
    /// The timeline's id.
    pub conversation: String,
    /// The cloud's id, when known.
    pub cloud_id: Option<String>,
    /// What the server said.
    pub message: String,
}

impl LockedConversation {
    /// What a person can do about it.
    pub fn remedy(&self) -> Remedy {
        Remedy::ResolveInCloud {
            cloud_id: self
                .cloud_id
                .clone()
                .unwrap_or_else(|| format!("(conversation {})", self.conversation)),
        }
    }
}

/// What a run of [`send`] did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushReport {
    /// Conversations completed in the cloud in this run (confirmations of
    /// earlier `processing` answers included).
    pub created: usize,
    /// Cloud conversations deleted in this run (replaced by an edit).
    pub deleted: usize,
    /// Create requests sent.
    pub create_requests: usize,
    /// Delete requests sent.
    pub delete_requests: usize,
    /// Confirmation requests (GET) sent.
    pub confirm_requests: usize,
    /// Conversations refused by the server in this run.
    pub rejected: Vec<(String, String)>,
    /// Conversations the cloud refused to change because they are locked.
    pub locked: Vec<LockedConversation>,
    /// Conversations given up on for this run (temporary failures); they
    /// stay queued.
    pub failed: Vec<(String, String)>,
    /// Still to send at the end of the run: creates and deletes (given-up
    /// ones included).
    pub queued: usize,
    /// Sent, and still being confirmed (the cloud said `processing`).
    pub confirming: usize,
    /// When the next request may go, if anything is left.
    pub next_attempt_at: Option<UtcMillis>,
    /// When the last queued request can go under the budget (if every
    /// answer is good): when a `--wait` run would finish.
    pub all_sent_by: Option<UtcMillis>,
    /// Why the run stopped early, when it did for a reason of its own.
    pub stop: Option<PushStop>,
}

impl PushReport {
    /// A report of a run that did nothing but stop.
    pub fn stopped(stop: PushStop) -> Self {
        PushReport {
            stop: Some(stop),
            ..PushReport::default()
        }
    }
}

/// What the key's check before a run's first push found, when it stops the run.
pub fn check_key(api: &dyn CloudApi) -> Option<PushStop> {
    match api.key_info() {
        Ok(Some(info)) if info.has_scope(WRITE_SCOPE) == Some(false) => {
            Some(PushStop::MissingScope {
                scope: WRITE_SCOPE.to_string(),
                message: format!(
                    "the key{} has {}",
                    info.name.map(|n| format!(" `{n}`")).unwrap_or_default(),
                    match info.scopes.as_deref() {
                        Some([]) | None => "no scopes".to_string(),
                        Some(s) => format!("only {}", s.join(", ")),
                    }
                ),
            })
        }
        Err(e @ ApiError::Unauthorized { .. }) => stop_of(&PushOutcome::from(&e)),
        // Scopes unknown (an older server), or the check itself failed: the
        // first create will tell.
        _ => None,
    }
}

/// Sends what the outbox holds: deletes, then confirmations, then creates,
/// until everything is done or the rest must wait longer than this run is
/// allowed to. Time is read and waited for only through `ctx`.
pub fn send(
    ledger: &Ledger,
    api: &dyn CloudApi,
    opts: &PushOptions,
    ctx: &Ctx,
) -> Result<PushReport, StoreError> {
    let started = Instant::now();
    ledger.revive_failed_pushes()?;
    let mut run = Run {
        ledger,
        api,
        opts,
        ctx,
        limiter: load_limiter(ledger)?,
        rng: fastrand::Rng::new(),
        report: PushReport::default(),
        failing_since: None,
        last_failure: String::new(),
        block_status: 429,
        waited_ms: 0,
        done: 0,
        total: 0,
    };
    let work = run.work()?;
    if work.is_empty() {
        return Ok(run.report);
    }
    run.total = work.len() as u64;
    ctx.emit(Event::StageStarted {
        stage: Stage::Push,
        total: run.total,
        unit: Unit::Conversations,
    });
    run.drive()?;
    run.finish()?;
    ctx.stage_finished(started, StageReport::Push(run.report.clone()));
    Ok(run.report)
}

/// The client-side rate limiter's state as the last push left it.
pub fn load_limiter(ledger: &LedgerReader) -> Result<Limiter, StoreError> {
    let stored = match ledger.meta(LIMITER_KEY)? {
        Some(j) => Some(j),
        None => ledger.meta(LEGACY_LIMITER_KEY)?,
    };
    Ok(stored
        .as_deref()
        .and_then(Limiter::from_json)
        .unwrap_or_default())
}

/// What a row waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Delete,
    Confirm,
    Create,
}

fn kind(row: &OutboxRow) -> Kind {
    match row.state {
        OutboxState::DeletePending => Kind::Delete,
        OutboxState::Confirming => Kind::Confirm,
        _ => Kind::Create,
    }
}

/// One run's state.
struct Run<'a> {
    ledger: &'a Ledger,
    api: &'a dyn CloudApi,
    opts: &'a PushOptions,
    ctx: &'a Ctx<'a>,
    limiter: Limiter,
    rng: fastrand::Rng,
    report: PushReport,
    /// When the current streak of failed requests began.
    failing_since: Option<UtcMillis>,
    last_failure: String,
    /// The status of the server's last request to wait (429 or 503).
    block_status: u16,
    /// How long this run has slept so far: without `--wait`, all waits of a
    /// run together stay within `max_wait_in_run`.
    waited_ms: i64,
    done: u64,
    total: u64,
}

impl Run<'_> {
    fn work(&self) -> Result<Vec<OutboxRow>, StoreError> {
        Ok(self
            .ledger
            .outbox()?
            .into_iter()
            .filter(OutboxRow::needs_work)
            .collect())
    }

    fn writes(&mut self) -> &mut KeyWindow {
        self.limiter.writes(self.api.key())
    }

    fn reads(&mut self) -> &mut KeyWindow {
        self.limiter.reads(self.api.key())
    }

    /// The budget and limit a row's request draws on.
    fn gate(&mut self, k: Kind) -> (KeyWindow, RateLimit) {
        match k {
            Kind::Confirm => (self.reads().clone(), self.opts.read_limit),
            Kind::Delete | Kind::Create => (self.writes().clone(), self.opts.limit),
        }
    }

    /// When a row's request may go: `None` never (a zero budget).
    fn due_at(&mut self, row: &OutboxRow, now: UtcMillis) -> Option<UtcMillis> {
        let (window, limit) = self.gate(kind(row));
        let base = row.retry_at.unwrap_or(now).max(now);
        window.next_allowed_at(&limit, base)
    }

    fn save_limiter(&self) -> Result<(), StoreError> {
        self.ledger.set_meta(LIMITER_KEY, &self.limiter.to_json())
    }

    /// Counts a request against its budget before it leaves.
    fn charge(&mut self, k: Kind) -> Result<UtcMillis, StoreError> {
        let now = self.ctx.now();
        let (limit, window) = match k {
            Kind::Confirm => (self.opts.read_limit, self.reads()),
            _ => (self.opts.limit, self.writes()),
        };
        window.charge(&limit, now);
        self.save_limiter()?;
        Ok(now)
    }

    /// Records when the answer came and what its headers said.
    fn answered(
        &mut self,
        k: Kind,
        sent: UtcMillis,
        budget: Option<ServerBudget>,
    ) -> Result<UtcMillis, StoreError> {
        let now = self.ctx.now();
        let (limit, window) = match k {
            Kind::Confirm => (self.opts.read_limit, self.reads()),
            _ => (self.opts.limit, self.writes()),
        };
        window.answered(sent, now);
        if let Some(b) = budget
            && let Some(remaining) = b.remaining
        {
            window.observe(&limit, remaining, now, b.reset.map(|r| r.resolve(now)));
        }
        self.save_limiter()?;
        Ok(now)
    }

    fn block(&mut self, k: Kind, until: UtcMillis, status: u16) -> Result<(), StoreError> {
        self.block_status = status;
        match k {
            Kind::Confirm => self.reads().block_until(until),
            _ => self.writes().block_until(until),
        }
        self.save_limiter()
    }

    fn failed_attempt(&mut self, now: UtcMillis, reason: &str) {
        self.failing_since.get_or_insert(now);
        self.last_failure = reason.to_string();
    }

    fn got_through(&mut self) {
        self.failing_since = None;
    }

    fn progress(&mut self) {
        self.done += 1;
        self.ctx.emit(Event::Progress {
            stage: Stage::Push,
            done: self.done,
            total: self.total,
        });
    }

    fn warn(&self, row: &OutboxRow, message: String) {
        self.ctx.emit(Event::Warning {
            origin: Origin::Conversation {
                id: row.push.conversation.clone(),
            },
            message,
        });
    }

    /// The loop: one request per turn, or a wait, until nothing is left
    /// that this run may send.
    fn drive(&mut self) -> Result<(), StoreError> {
        loop {
            if self.ctx.check().is_err() || self.report.stop.is_some() {
                return Ok(());
            }
            let now = self.ctx.now();
            if let Some(since) = self.failing_since
                && now.since(since) >= self.opts.max_failing.as_millis() as i64
            {
                self.report.stop = Some(PushStop::Unreachable {
                    for_s: (now.since(since) / 1000) as u64,
                    last_error: self.last_failure.clone(),
                });
                return Ok(());
            }
            // A row given up on in this run (`failed`) waits for the next run.
            let rows: Vec<OutboxRow> = self
                .work()?
                .into_iter()
                .filter(|r| r.state != OutboxState::Failed)
                .collect();
            if rows.is_empty() {
                // Every row left gave up while the server kept failing: say
                // so, rather than end as if the run were merely done.
                if let Some(since) = self.failing_since
                    && !self.report.failed.is_empty()
                {
                    self.report.stop = Some(PushStop::Unreachable {
                        for_s: (now.since(since) / 1000) as u64,
                        last_error: self.last_failure.clone(),
                    });
                }
                return Ok(());
            }
            let due = |r: &&OutboxRow, run: &mut Self| run.due_at(r, now) == Some(now);
            let mut next: Option<&OutboxRow> = None;
            for k in [Kind::Delete, Kind::Confirm, Kind::Create] {
                if let Some(r) = rows.iter().filter(|r| kind(r) == k).find(|r| due(r, self)) {
                    next = Some(r);
                    break;
                }
            }
            match next {
                Some(row) => match kind(row) {
                    Kind::Delete => self.delete_one(row)?,
                    Kind::Confirm => self.confirm_one(row)?,
                    Kind::Create => self.create_one(row)?,
                },
                None => {
                    if !self.wait_for_next(&rows, now)? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Nothing is due now: waits for the earliest row, if this run may wait
    /// that long. `false` ends the run.
    fn wait_for_next(&mut self, rows: &[OutboxRow], now: UtcMillis) -> Result<bool, StoreError> {
        let mut soonest: Option<(UtcMillis, &OutboxRow)> = None;
        for r in rows {
            if let Some(at) = self.due_at(r, now)
                && soonest.is_none_or(|(s, _)| at < s)
            {
                soonest = Some((at, r));
            }
        }
        let Some((until, row)) = soonest else {
            // Every row waits for a budget of zero.
            self.report.stop = Some(PushStop::NoBudget {
                setting: "cloud.pushes_per_hour".into(),
            });
            return Ok(false);
        };
        let k = kind(row);
        let (window, limit) = self.gate(k);
        let ready = row.retry_at.unwrap_or(now).max(now);
        let server_block = window.blocked_until.is_some_and(|b| b >= until && b > now);
        let reason = if server_block {
            // The server asked (429, or 503 with `Retry-After`): the row's
            // own retry time is the same instant, so this comes first.
            WaitReason::ServerAsked {
                status: self.block_status,
            }
        } else if until > ready {
            if window.remaining(&limit, ready) == 0 {
                WaitReason::HourlyBudget {
                    limit: limit.max_per_window,
                    window_s: limit.window.as_secs(),
                }
            } else {
                WaitReason::ServerAsked {
                    status: self.block_status,
                }
            }
        } else if k == Kind::Confirm {
            WaitReason::Confirming
        } else {
            WaitReason::Backoff {
                attempt: row.attempts,
            }
        };
        let wait_ms = until.since(now).max(0);
        let short =
            self.waited_ms.saturating_add(wait_ms) <= self.opts.max_wait_in_run.as_millis() as i64;
        let budget_spent = matches!(reason, WaitReason::HourlyBudget { .. });
        if !(self.opts.wait || (short && !budget_spent)) {
            return Ok(false);
        }
        self.ctx.emit(Event::Waiting {
            stage: Stage::Push,
            until,
            reason,
        });
        self.waited_ms = self.waited_ms.saturating_add(wait_ms);
        Ok(self.ctx.sleep_until(until).is_ok())
    }

    fn create_one(&mut self, row: &OutboxRow) -> Result<(), StoreError> {
        let id = &row.push.session_id;
        let request: CreateConversationRequest = match serde_json::from_str(&row.push.request) {
            Ok(r) => r,
            Err(e) => {
                let message = format!("the queued request is unreadable: {e}");
                self.ledger.mark_rejected(id, 0, &message)?;
                self.report
                    .rejected
                    .push((row.push.conversation.clone(), message));
                self.progress();
                return Ok(());
            }
        };
        // Written before the request leaves: after a crash it is sent again
        // with the same session id, which the cloud answers idempotently.
        self.ledger.mark_sending(id)?;
        let sent = self.charge(Kind::Create)?;
        self.report.create_requests += 1;
        let reply = self.api.create(&request);
        let now = self.answered(Kind::Create, sent, reply.budget)?;
        self.after_create(row, &reply.value, now, row.attempts + 1)
    }

    fn after_create(
        &mut self,
        row: &OutboxRow,
        outcome: &PushOutcome,
        now: UtcMillis,
        attempt: u32,
    ) -> Result<(), StoreError> {
        let id = &row.push.session_id;
        if let Some(stop) = stop_of(outcome) {
            // Not this conversation's fault: back in the queue, untouched.
            self.ledger.mark_retry(id, now, &outcome.to_string())?;
            self.report.stop = Some(stop);
            return Ok(());
        }
        let step = retry::next_step(&self.opts.policy, outcome, attempt, now, &mut self.rng);
        if !matches!(
            step,
            NextStep::RetryAt {
                wait: RetryWait::Backoff { .. },
                ..
            } | NextStep::GiveUp { .. }
                | NextStep::Stopped
        ) {
            self.got_through();
        }
        let cloud_id = match outcome {
            PushOutcome::Created { id, .. } => Some(id.clone()),
            _ => None,
        };
        match step {
            NextStep::Done => {
                let cloud_id = cloud_id.unwrap_or_default();
                self.ledger.mark_pushed(id, &cloud_id)?;
                self.pushed(row, cloud_id);
            }
            NextStep::Confirm => {
                let cloud_id = cloud_id.unwrap_or_default();
                let check = now.plus_ms(self.opts.confirm.first_check.as_millis() as i64);
                self.ledger.mark_confirming(id, &cloud_id, check, now)?;
            }
            NextStep::RetryAt { at, reason, wait } => {
                match wait {
                    RetryWait::ServerAsked { status } => self.block(Kind::Create, at, status)?,
                    RetryWait::Backoff { .. } => self.failed_attempt(now, &reason),
                    RetryWait::InFlight => {}
                }
                self.ledger.mark_retry(id, at, &reason)?;
            }
            NextStep::GiveUp { reason } => {
                self.failed_attempt(now, &reason);
                self.ledger.mark_failed(id, &reason)?;
                self.warn(row, format!("not pushed in this run: {reason}"));
                self.report
                    .failed
                    .push((row.push.conversation.clone(), reason));
            }
            NextStep::MarkRejected { status, message } => {
                let message = format!("HTTP {status}: {message}");
                self.ledger.mark_rejected(id, status, &message)?;
                self.warn(row, format!("refused by the Omi cloud: {message}"));
                self.report
                    .rejected
                    .push((row.push.conversation.clone(), message));
                self.progress();
            }
            NextStep::Locked { message } => self.locked(row, message)?,
            // The request may have reached the server: the row stays
            // `sending` and goes again (idempotently) next time. (Refused
            // keys and wrong addresses stopped the run above.)
            NextStep::Stopped
            | NextStep::NeedsCredentials { .. }
            | NextStep::WrongEndpoint { .. } => {}
        }
        Ok(())
    }

    fn pushed(&mut self, row: &OutboxRow, cloud_id: String) {
        self.report.created += 1;
        self.ctx.emit(Event::ConversationPushed {
            conversation: row.push.conversation.clone(),
            session_id: row.push.session_id.clone(),
            cloud_id,
        });
        self.progress();
    }

    fn locked(&mut self, row: &OutboxRow, message: String) -> Result<(), StoreError> {
        self.ledger.mark_locked(&row.push.session_id, &message)?;
        let locked = LockedConversation {
            conversation: row.push.conversation.clone(),
            cloud_id: row.cloud_id.clone(),
            message,
        };
        self.warn(
            row,
            format!(
                "the Omi cloud refused to change it because it is locked there ({}): it waits \
                 for a person",
                locked.message
            ),
        );
        self.report.locked.push(locked);
        self.progress();
        Ok(())
    }

    /// Asks the cloud whether a conversation it answered `processing` is done.
    fn confirm_one(&mut self, row: &OutboxRow) -> Result<(), StoreError> {
        let id = &row.push.session_id;
        let Some(cloud_id) = row.cloud_id.clone() else {
            return self
                .ledger
                .mark_resend(id, "no cloud id to confirm: sending it again");
        };
        let sent = self.charge(Kind::Confirm)?;
        self.report.confirm_requests += 1;
        let reply = self.api.get(&cloud_id);
        let now = self.answered(Kind::Confirm, sent, reply.budget)?;
        match reply.value {
            Ok(Some(c)) if c.is_completed() => {
                self.got_through();
                self.ledger.mark_pushed(id, &cloud_id)?;
                self.pushed(row, cloud_id);
            }
            Ok(Some(_)) => {
                self.got_through();
                let since = row.confirm_since.unwrap_or(now);
                let busy = now.since(since);
                if busy >= self.opts.confirm.stale_after.as_millis() as i64 {
                    self.resend(
                        row,
                        &format!(
                            "still processing after {} min: the cloud drops such a claim and \
                             redoes it on the next request, so the same request goes again",
                            busy / 60_000
                        ),
                    )?;
                } else {
                    let c = &self.opts.confirm;
                    let wait = busy.clamp(
                        c.first_check.as_millis() as i64,
                        c.max_interval.as_millis() as i64,
                    );
                    self.ledger.reschedule(
                        id,
                        now.plus_ms(wait),
                        "the cloud is still processing it",
                    )?;
                }
            }
            Ok(None) => {
                self.got_through();
                self.resend(
                    row,
                    "the cloud no longer has it (its processing failed, or the claim was \
                     dropped): the same request goes again",
                )?;
            }
            Err(e) => {
                let outcome = PushOutcome::from(&e);
                if let Some(stop) = stop_of(&outcome) {
                    self.report.stop = Some(stop);
                    return Ok(());
                }
                match retry::next_step(&self.opts.policy, &outcome, 1, now, &mut self.rng) {
                    NextStep::RetryAt { at, reason, wait } => {
                        match wait {
                            RetryWait::ServerAsked { status } => {
                                self.block(Kind::Confirm, at, status)?
                            }
                            _ => self.failed_attempt(now, &reason),
                        }
                        self.ledger.reschedule(id, at, &reason)?;
                    }
                    NextStep::Stopped => {}
                    _ => {
                        let at = now.plus_ms(self.opts.confirm.max_interval.as_millis() as i64);
                        self.ledger.reschedule(id, at, &e.to_string())?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The cloud does not have a conversation it once answered for: the
    /// same request goes again, unless this run has tried it too often.
    fn resend(&mut self, row: &OutboxRow, why: &str) -> Result<(), StoreError> {
        let id = &row.push.session_id;
        if row.attempts >= self.opts.policy.max_attempts {
            let reason = format!("{why}; gave up after {} attempts", row.attempts);
            self.ledger.mark_failed(id, &reason)?;
            self.warn(row, format!("not pushed in this run: {reason}"));
            self.report
                .failed
                .push((row.push.conversation.clone(), reason));
            return Ok(());
        }
        self.warn(row, why.to_string());
        self.ledger.mark_resend(id, why)
    }

    /// Deletes one cloud copy. A row whose cloud id is unknown (its create
    /// was sent but the answer lost) first sends the create again with the
    /// same session id, which returns the existing conversation's id
    /// without making another.
    fn delete_one(&mut self, row: &OutboxRow) -> Result<(), StoreError> {
        let id = &row.push.session_id;
        let Some(cloud_id) = row.cloud_id.clone() else {
            return self.learn_cloud_id(row);
        };
        self.ledger.mark_delete_sending(id)?;
        let sent = self.charge(Kind::Delete)?;
        self.report.delete_requests += 1;
        let reply = self.api.delete(&cloud_id);
        let now = self.answered(Kind::Delete, sent, reply.budget)?;
        let e = match reply.value {
            Ok(_) => {
                self.got_through();
                self.ledger.mark_deleted(id)?;
                self.report.deleted += 1;
                self.progress();
                return Ok(());
            }
            Err(e) => e,
        };
        let outcome = PushOutcome::from(&e);
        if let Some(stop) = stop_of(&outcome) {
            self.report.stop = Some(stop);
            return Ok(());
        }
        let step = retry::next_step(
            &self.opts.policy,
            &outcome,
            row.attempts + 1,
            now,
            &mut self.rng,
        );
        match step {
            NextStep::RetryAt { at, reason, wait } => {
                match wait {
                    RetryWait::ServerAsked { status } => self.block(Kind::Delete, at, status)?,
                    _ => self.failed_attempt(now, &reason),
                }
                self.ledger
                    .reschedule(id, at, &format!("delete of {cloud_id}: {reason}"))?;
            }
            NextStep::Locked { message } => {
                self.got_through();
                self.locked(row, message)?;
            }
            NextStep::Stopped => {}
            // Gave up, or an odd refusal: tried again in a later run.
            other => {
                let reason = match other {
                    NextStep::GiveUp { reason } => reason,
                    _ => e.to_string(),
                };
                self.failed_attempt(now, &reason);
                let at = now.plus_ms(self.opts.policy.max_delay.as_millis() as i64);
                self.ledger
                    .reschedule(id, at, &format!("delete of {cloud_id}: {reason}"))?;
                self.report
                    .failed
                    .push((row.push.conversation.clone(), reason));
            }
        }
        Ok(())
    }

    fn learn_cloud_id(&mut self, row: &OutboxRow) -> Result<(), StoreError> {
        let id = &row.push.session_id;
        let Ok(request) = serde_json::from_str::<CreateConversationRequest>(&row.push.request)
        else {
            // Never readable, so never sent as it is: nothing to delete.
            return self.ledger.mark_deleted(id);
        };
        let sent = self.charge(Kind::Create)?;
        self.report.create_requests += 1;
        let reply = self.api.create(&request);
        let now = self.answered(Kind::Create, sent, reply.budget)?;
        match reply.value {
            PushOutcome::Created { id: cloud_id, .. } => {
                self.got_through();
                self.ledger.record_cloud_id(id, &cloud_id)
            }
            // The cloud never accepted it: nothing to delete.
            PushOutcome::Rejected { .. } => {
                self.got_through();
                self.ledger.mark_deleted(id)
            }
            other => {
                if let Some(stop) = stop_of(&other) {
                    self.report.stop = Some(stop);
                    return Ok(());
                }
                let attempt = row.attempts + 1;
                match retry::next_step(&self.opts.policy, &other, attempt, now, &mut self.rng) {
                    NextStep::Stopped => Ok(()),
                    NextStep::Locked { message } => self.locked(row, message),
                    NextStep::RetryAt { at, reason, wait } => {
                        match wait {
                            RetryWait::ServerAsked { status } => {
                                self.block(Kind::Create, at, status)?
                            }
                            _ => self.failed_attempt(now, &reason),
                        }
                        self.ledger.reschedule(id, at, &reason)
                    }
                    step => {
                        let reason = format!("{other} ({step:?})");
                        self.failed_attempt(now, &reason);
                        let at = now.plus_ms(self.opts.policy.max_delay.as_millis() as i64);
                        self.ledger.reschedule(id, at, &reason)
                    }
                }
            }
        }
    }

    /// Fills in what is left, truthfully.
    fn finish(&mut self) -> Result<(), StoreError> {
        let left = self.work()?;
        let now = self.ctx.now();
        self.report.confirming = left.iter().filter(|r| kind(r) == Kind::Confirm).count();
        self.report.queued = left.len() - self.report.confirming;
        let mut next: Option<UtcMillis> = None;
        for r in &left {
            if let Some(at) = self.due_at(r, now) {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        self.report.next_attempt_at = next;
        let writes = left.iter().filter(|r| kind(r) != Kind::Confirm).count();
        if writes > 0 {
            let from = next.unwrap_or(now);
            let limit = self.opts.limit;
            self.report.all_sent_by = self.writes().all_sent_by(&limit, from, writes);
        }
        let (writes_limit, reads_limit) = (self.opts.limit, self.opts.read_limit);
        self.limiter.prune(&writes_limit, &reads_limit, now);
        self.save_limiter()
    }
}

/// The run-wide stop an outcome calls for: a refused key or a wrong
/// address is no one conversation's, and stops every request.
fn stop_of(outcome: &PushOutcome) -> Option<PushStop> {
    match outcome.clone() {
        PushOutcome::Unauthorized {
            scope: Some(scope),
            message,
            ..
        } => Some(PushStop::MissingScope { scope, message }),
        PushOutcome::Unauthorized {
            status, message, ..
        } => Some(PushStop::KeyRefused { status, message }),
        PushOutcome::WrongEndpoint { status, message } if (300..400).contains(&status) => {
            Some(PushStop::Redirected { status, message })
        }
        PushOutcome::WrongEndpoint { status, message } => {
            Some(PushStop::RouteGone { status, message })
        }
        _ => None,
    }
}
