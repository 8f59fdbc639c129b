//! The push stage as a job runs it: plan, then a dry run (the exact
//! requests, nothing sent) or queue and send.
//!
//! [`run`] is what `omi-sync push`, the push stage of `--auto` and the TUI's
//! push all call. The API URL is checked first (a bad one is a usage error,
//! whichever of `--api-url`, `OMI_API_URL` and `[cloud] api_url` gave it),
//! and before the run's first request the key's scopes ([`check_key`]). A
//! dry run lists the requests in send order (deletes, confirmations,
//! creates) with the key masked, and queues nothing (it may assign this
//! install's id, which every later request carries).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    CloudApi, CloudStatus, ConversationStatus, Plan, PushOptions, PushReport, Retraction, Vanished,
};
use crate::cloud::api::{
    BaseUrl, ClientConfig, DryRun, KeyInfo, OmiClient, UrlError, WRITE_SCOPE, render_create,
    render_delete, render_get,
};
use crate::cloud::credentials::{self, ApiKey, CredentialError};
use crate::cloud::payload::CreateConversationRequest;
use crate::cloud::ratelimit::RateLimit;
use crate::engine::ctx::Ctx;
use crate::engine::events::{Event, Origin, Stage};
use crate::engine::jobs::ErrorClass;
use crate::engine::remedy::{KeyService, Remedy};
use crate::engine::workspace::Workspace;
use crate::store::{Ledger, LockError, OutboxState, Section, StoreError};
use crate::timeline::Timeline;

/// With `--wait`, how long requests may keep failing before the run stops.
const MAX_FAILING_WITH_WAIT: Duration = Duration::from_secs(60 * 60);

/// What a person asked of a push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    /// List the requests; send nothing and queue nothing.
    pub dry_run: bool,
    /// Sleep through rate limits and retries until everything is sent.
    pub wait: bool,
    /// Push conversations whose times are estimated too.
    pub allow_estimated_times: bool,
    /// Queue refused and locked conversations again.
    #[serde(default)]
    pub retry_rejected: bool,
    /// Conversations whose segments vanished: keep the cloud copies, stop
    /// tracking them.
    #[serde(default)]
    pub forget_vanished: bool,
    /// Conversations whose segments vanished: delete the cloud copies and
    /// push what the timeline has there now.
    #[serde(default)]
    pub replace_vanished: bool,
}

/// One request as a dry run shows it (the key masked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPreview {
    /// `POST`, `GET` or `DELETE`.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Headers in send order; `Authorization` is masked.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`null` without one).
    pub body: serde_json::Value,
}

impl From<DryRun> for RequestPreview {
    fn from(d: DryRun) -> Self {
        RequestPreview {
            method: d.method.to_string(),
            url: d.url,
            headers: d.headers,
            body: d.body,
        }
    }
}

impl std::fmt::Display for RequestPreview {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "{} {}", self.method, self.url)?;
        for (k, v) in &self.headers {
            writeln!(f, "{k}: {v}")?;
        }
        if !self.body.is_null() {
            writeln!(f)?;
            writeln!(
                f,
                "{}",
                serde_json::to_string_pretty(&self.body).unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

/// What the push stage did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PushStage {
    /// Every conversation's cloud status before sending.
    pub conversations: Vec<ConversationStatus>,
    /// Conversations whose segments vanished, and what became of them.
    #[serde(default)]
    pub vanished: Vec<Vanished>,
    /// On a dry run: the requests a push would send now, in order.
    pub dry_run: Option<Vec<RequestPreview>>,
    /// What sending did (none on a dry run).
    pub report: Option<PushReport>,
}

impl PushStage {
    /// Conversations held back (not pushable yet).
    pub fn held(&self) -> usize {
        self.conversations
            .iter()
            .filter(|c| matches!(c.status, CloudStatus::Held { .. }))
            .count()
    }
}

/// Why the push stage could not run.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The ledger failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No usable API key.
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    /// Another run is sending the outbox.
    #[error(transparent)]
    Busy(#[from] LockError),
    /// The API URL is unusable.
    #[error(transparent)]
    Url(#[from] UrlError),
    /// The HTTP client could not be set up.
    #[error("cannot use the Omi API at {url}: {message}")]
    Client {
        /// The base URL.
        url: String,
        /// What is wrong.
        message: String,
    },
}

impl PushError {
    /// What kind of help it needs.
    pub fn class(&self) -> ErrorClass {
        match self {
            PushError::Credentials(_) => ErrorClass::NeedsPerson,
            PushError::Url(_) | PushError::Client { .. } => ErrorClass::Usage,
            PushError::Store(e) => crate::engine::jobs::classify(e),
            PushError::Busy(LockError::Busy { .. }) => ErrorClass::Temporary,
            PushError::Busy(e) => crate::engine::jobs::classify(e),
        }
    }

    /// What a person can do about it, when something can be done.
    pub fn remedy(&self) -> Option<Remedy> {
        match self {
            PushError::Credentials(CredentialError::Missing { .. }) => Some(Remedy::ProvideKey {
                service: KeyService::Omi,
            }),
            PushError::Credentials(_) => Some(Remedy::CheckKey {
                service: KeyService::Omi,
                scope: None,
            }),
            PushError::Url(_) | PushError::Client { .. } => Some(Remedy::FixSetting {
                key: "cloud.api_url".into(),
            }),
            PushError::Busy(LockError::Busy { holder, .. }) => Some(Remedy::WaitForOtherRun {
                holder: holder.clone(),
            }),
            PushError::Store(_) | PushError::Busy(_) => None,
        }
    }
}

/// The push options from the workspace's `[cloud]` and the request.
pub fn options(ws: &Workspace, req: &PushRequest) -> PushOptions {
    let c = &ws.config.cloud;
    let defaults = PushOptions::default();
    PushOptions {
        allow_estimated: req.allow_estimated_times || c.allow_estimated_times,
        wait: req.wait,
        max_failing: if req.wait {
            MAX_FAILING_WITH_WAIT
        } else {
            defaults.max_failing
        },
        language: c.language.clone(),
        limit: RateLimit {
            max_per_window: c.pushes_per_hour,
            window: Duration::from_secs(c.rate_window_secs.max(1)),
        },
        read_limit: RateLimit {
            window: Duration::from_secs(c.rate_window_secs.max(1)),
            ..defaults.read_limit
        },
        confirm: super::ConfirmPolicy {
            first_check: Duration::from_secs(c.confirm_check_secs.max(1)),
            stale_after: Duration::from_secs(c.stale_claim_secs.max(1)),
            ..defaults.confirm.clone()
        },
        retry_rejected: req.retry_rejected,
        forget_vanished: req.forget_vanished,
        replace_vanished: req.replace_vanished,
        ..defaults
    }
}

/// The API base URL in use, checked, and where it came from.
pub fn base_url(ws: &Workspace) -> Result<BaseUrl, UrlError> {
    let from = match (&ws.api_url_override, &ws.config_path) {
        (Some(_), _) => "--api-url or OMI_API_URL".to_string(),
        (None, Some(p)) => format!("[cloud] api_url in {}", p.display()),
        (None, None) => "[cloud] api_url".to_string(),
    };
    BaseUrl::parse(&ws.api_url(), &from, false)
}

/// The cloud client for `key` at `base` with this whole-call timeout.
fn client_for(base: &BaseUrl, key: ApiKey, timeout: Duration) -> Result<OmiClient, PushError> {
    let config = ClientConfig {
        timeout,
        connect_timeout: Duration::from_secs(10).min(timeout),
        ..ClientConfig::with_base_url(base.as_str())
    };
    OmiClient::new(config, key).map_err(|e| PushError::Client {
        url: base.to_string(),
        message: e.to_string(),
    })
}

fn request_timeout(ws: &Workspace) -> Duration {
    Duration::from_secs(ws.config.cloud.request_timeout_secs.max(1))
}

/// Whether the outbox holds anything still to send.
pub fn has_work(ledger: &Ledger) -> Result<bool, StoreError> {
    Ok(ledger.outbox()?.iter().any(|o| o.needs_work()))
}

/// What a key check at `login` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyCheck {
    /// The key may create and delete conversations.
    CanWrite {
        /// Its name, when the server gave it.
        name: Option<String>,
    },
    /// The key works but lacks a scope pushing needs.
    MissingScope {
        /// The scope.
        scope: String,
        /// What the key has instead.
        has: Vec<String>,
    },
    /// The cloud refused the key.
    Refused {
        /// What it said.
        message: String,
    },
    /// It could not be checked (no network, an older server).
    Unknown {
        /// Why.
        reason: String,
    },
}

/// Asks the cloud what `key` may do (`GET /v1/dev/key`), for `login`.
pub fn check_login_key(ws: &Workspace, key: &ApiKey) -> Result<KeyCheck, PushError> {
    let base = base_url(ws)?;
    let api = client_for(&base, key.clone(), Duration::from_secs(20))?;
    Ok(match api.key_info() {
        Ok(Some(KeyInfo { name, scopes })) => match scopes {
            Some(s) if !s.iter().any(|x| x == WRITE_SCOPE) => KeyCheck::MissingScope {
                scope: WRITE_SCOPE.into(),
                has: s,
            },
            _ => KeyCheck::CanWrite { name },
        },
        Ok(None) => KeyCheck::Unknown {
            reason: format!("{} does not report a key's scopes", base),
        },
        Err(crate::cloud::api::ApiError::Unauthorized {
            message,
            scope: Some(scope),
            ..
        }) => KeyCheck::MissingScope {
            scope,
            has: vec![message],
        },
        Err(crate::cloud::api::ApiError::Unauthorized { message, .. }) => {
            KeyCheck::Refused { message }
        }
        Err(e) => KeyCheck::Unknown {
            reason: e.to_string(),
        },
    })
}

/// The requests a push would send now, in order: deletes, confirmations,
/// creates.
pub fn pending_requests(
    base: &BaseUrl,
    ledger: &Ledger,
    plan: &Plan,
) -> Result<Vec<RequestPreview>, StoreError> {
    let shown_key = match credentials::load() {
        Ok(k) => k.key.masked(),
        Err(_) => "(no API key configured)".to_string(),
    };
    let agent = crate::http::user_agent();
    let url = base.as_str();
    let outbox = ledger.outbox()?;
    let row = |id: &str| outbox.iter().find(|o| o.push.session_id == id);
    let mut out: Vec<RequestPreview> = Vec::new();
    // A delete of a copy whose id is unknown (its create's answer was lost)
    // sends that create again first, to learn the id.
    let delete = |out: &mut Vec<RequestPreview>, id: &str| {
        let known = row(id).and_then(|o| o.cloud_id.clone());
        if known.is_none()
            && let Some(request) = row(id).and_then(|o| {
                serde_json::from_str::<CreateConversationRequest>(&o.push.request).ok()
            })
        {
            out.push(render_create(url, &agent, &shown_key, &request).into());
        }
        let cloud_id = known.unwrap_or_else(|| "ID-FROM-THAT-ANSWER".into());
        out.push(render_delete(url, &agent, &shown_key, &cloud_id).into());
    };
    let retracted: Vec<&str> = plan
        .retract
        .iter()
        .map(|r| match r {
            Retraction::Supersede(id)
            | Retraction::Delete(id)
            | Retraction::Hold(id)
            | Retraction::Forget(id) => id.as_str(),
        })
        .collect();
    for r in &plan.retract {
        if let Retraction::Delete(id) = r {
            delete(&mut out, id);
        }
    }
    let waiting = outbox
        .iter()
        .filter(|o| o.needs_work() && !retracted.contains(&o.push.session_id.as_str()));
    for o in waiting
        .clone()
        .filter(|o| o.state == OutboxState::DeletePending)
    {
        delete(&mut out, &o.push.session_id);
    }
    for o in waiting
        .clone()
        .filter(|o| o.state == OutboxState::Confirming)
    {
        let cloud_id = o.cloud_id.clone().unwrap_or_default();
        out.push(render_get(url, &agent, &shown_key, &cloud_id).into());
    }
    let requeued: Vec<&str> = plan.requeue.iter().map(|r| r.session_id.as_str()).collect();
    let queued = waiting
        .filter(|o| {
            !matches!(
                o.state,
                OutboxState::DeletePending | OutboxState::Confirming
            )
        })
        .filter(|o| !requeued.contains(&o.push.session_id.as_str()))
        .filter_map(|o| serde_json::from_str::<CreateConversationRequest>(&o.push.request).ok());
    let creates = queued
        .chain(plan.requeue.iter().map(|r| r.request.clone()))
        .chain(plan.new.iter().map(|n| n.request.clone()));
    for request in creates {
        out.push(render_create(url, &agent, &shown_key, &request).into());
    }
    Ok(out)
}

/// Plans, then dry-runs or queues and sends (see the module docs).
pub fn run(
    ws: &Workspace,
    ledger: &Ledger,
    timeline: &Timeline,
    req: &PushRequest,
    ctx: &Ctx,
) -> Result<PushStage, PushError> {
    let base = base_url(ws)?;
    let mut opts = options(ws, req);
    // A dry run writes nothing, not even the install id it would draw.
    opts.payload.client_device_id = Some(if req.dry_run {
        super::install::client_device_id_unsaved(ledger)?
    } else {
        super::client_device_id(ledger)?
    });
    let plan = super::plan(ledger, timeline, &opts)?;
    for v in &plan.vanished {
        ctx.emit(Event::Warning {
            origin: Origin::Conversation {
                id: v.conversation.clone(),
            },
            message: vanished_note(v),
        });
    }
    let mut stage = PushStage {
        conversations: plan.conversations.clone(),
        vanished: plan.vanished.clone(),
        dry_run: None,
        report: None,
    };
    if req.dry_run {
        stage.dry_run = Some(pending_requests(&base, ledger, &plan)?);
        return Ok(stage);
    }
    // One run at a time sends the outbox (and spends the rate budget).
    let _lock = ws.lock(Section::Push)?;
    super::apply(ledger, &plan)?;
    if !has_work(ledger)? {
        stage.report = Some(PushReport::default());
        return Ok(stage);
    }
    let key = credentials::load()?.key;
    let api = client_for(&base, key, request_timeout(ws))?.with_cancel(ctx.cancel().clone());
    stage.report = Some(send_checked(ledger, &api, &opts, ctx)?);
    Ok(stage)
}

/// Checks the key's scopes, then sends (the stage without the plan).
pub fn send_checked(
    ledger: &Ledger,
    api: &dyn CloudApi,
    opts: &PushOptions,
    ctx: &Ctx,
) -> Result<PushReport, StoreError> {
    // Only a run that has something to send asks (a call of its own).
    if !has_work(ledger)? {
        return Ok(PushReport::default());
    }
    if let Some(stop) = super::check_key(api) {
        ctx.emit(Event::Warning {
            origin: Origin::Stage { stage: Stage::Push },
            message: stop.to_string(),
        });
        return Ok(PushReport::stopped(stop));
    }
    super::send(ledger, api, opts, ctx)
}

/// What the engine says about a vanished conversation (the frontends word
/// the flags that decide).
fn vanished_note(v: &Vanished) -> String {
    let copy = v
        .cloud_id
        .as_deref()
        .map(|c| format!(" (in the cloud as {c})"))
        .unwrap_or_default();
    match v.decision {
        super::VanishedDecision::Held => format!(
            "{} of its {} segments are gone from the ledger, not by an edit{copy}: its cloud copy \
             is neither deleted nor replaced until a person decides",
            v.missing, v.members
        ),
        super::VanishedDecision::Forget => {
            format!("its segments are gone; its cloud copy{copy} is kept and no longer tracked")
        }
        super::VanishedDecision::Replace => {
            format!("its segments are gone; its cloud copy{copy} is deleted as asked")
        }
    }
}
