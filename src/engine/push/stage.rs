//! The push stage as a job runs it: plan, then a dry run (the exact
//! requests, nothing sent) or queue and send.
//!
//! [`run`] is what `omi-sync push`, the push stage of `--auto` and the TUI's
//! push all call. A dry run lists the requests in send order (deletes, then
//! creates) with the key masked, and changes nothing, not even the outbox.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{CloudStatus, ConversationStatus, Plan, PushOptions, PushReport, Retraction};
use crate::cloud::api::{ClientConfig, DryRun, OmiClient, render_create, render_delete};
use crate::cloud::credentials::{self, CredentialError};
use crate::cloud::payload::CreateConversationRequest;
use crate::cloud::ratelimit::RateLimit;
use crate::engine::ctx::Ctx;
use crate::engine::workspace::Workspace;
use crate::store::{Ledger, LockError, OutboxState, Section, StoreError};
use crate::timeline::Timeline;

/// What a person asked of a push.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRequest {
    /// List the requests; send nothing and queue nothing.
    pub dry_run: bool,
    /// Sleep through rate limits and retries until everything is sent.
    pub wait: bool,
    /// Push conversations whose times are estimated too.
    pub allow_estimated_times: bool,
}

/// One request as a dry run shows it (the key masked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestPreview {
    /// `POST` or `DELETE`.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Headers in send order; `Authorization` is masked.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`null` for a DELETE).
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
    /// The API URL or client settings are unusable.
    #[error("cannot use the Omi API at {url}: {message}")]
    Client {
        /// The base URL.
        url: String,
        /// What is wrong.
        message: String,
    },
}

/// The push options from the workspace's `[cloud]` and the request.
pub fn options(ws: &Workspace, req: &PushRequest) -> PushOptions {
    let c = &ws.config.cloud;
    PushOptions {
        allow_estimated: req.allow_estimated_times || c.allow_estimated_times,
        wait: req.wait,
        language: c.language.clone(),
        limit: RateLimit {
            max_per_window: c.pushes_per_hour,
            window: Duration::from_secs(c.rate_window_secs.max(1)),
        },
        ..PushOptions::default()
    }
}

/// The cloud client with the user's key.
fn client(ws: &Workspace) -> Result<OmiClient, PushError> {
    let loaded = credentials::load()?;
    let url = ws.api_url();
    let config = ClientConfig {
        timeout: Duration::from_secs(ws.config.cloud.request_timeout_secs.max(1)),
        ..ClientConfig::with_base_url(&url)
    };
    OmiClient::new(config, loaded.key).map_err(|e| PushError::Client {
        url,
        message: e.to_string(),
    })
}

/// Whether the outbox holds anything still to send.
pub fn has_work(ledger: &Ledger) -> Result<bool, StoreError> {
    Ok(ledger.outbox()?.iter().any(|o| o.state.needs_sending()))
}

/// The requests a push would send now, in order: deletes, then creates.
pub fn pending_requests(
    ws: &Workspace,
    ledger: &Ledger,
    plan: &Plan,
) -> Result<Vec<RequestPreview>, StoreError> {
    let shown_key = match credentials::load() {
        Ok(k) => k.key.masked(),
        Err(_) => "(no API key configured)".to_string(),
    };
    let agent = format!("omi-sync/{}", env!("CARGO_PKG_VERSION"));
    let url = ws.api_url();
    let outbox = ledger.outbox()?;
    let mut out = Vec::new();
    for r in &plan.retract {
        if let Retraction::Delete(id) = r
            && let Some(cloud_id) = outbox
                .iter()
                .find(|o| &o.push.session_id == id)
                .and_then(|o| o.cloud_id.clone())
        {
            out.push(render_delete(&url, &agent, &shown_key, &cloud_id).into());
        }
    }
    for o in outbox
        .iter()
        .filter(|o| o.state == OutboxState::DeletePending)
    {
        if let Some(cloud_id) = &o.cloud_id {
            out.push(render_delete(&url, &agent, &shown_key, cloud_id).into());
        }
    }
    let retracted: Vec<&str> = plan
        .retract
        .iter()
        .map(|r| match r {
            Retraction::Supersede(id) | Retraction::Delete(id) => id.as_str(),
        })
        .collect();
    let queued = outbox
        .iter()
        .filter(|o| o.state.needs_sending() && o.state != OutboxState::DeletePending)
        .filter(|o| !retracted.contains(&o.push.session_id.as_str()))
        .filter_map(|o| serde_json::from_str::<CreateConversationRequest>(&o.push.request).ok());
    for request in queued.chain(plan.new.iter().map(|n| n.request.clone())) {
        out.push(render_create(&url, &agent, &shown_key, &request).into());
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
    let opts = options(ws, req);
    let plan = super::plan(ledger, timeline, &opts)?;
    if req.dry_run {
        let requests = pending_requests(ws, ledger, &plan)?;
        return Ok(PushStage {
            conversations: plan.conversations,
            dry_run: Some(requests),
            report: None,
        });
    }
    // One run at a time sends the outbox (and spends the rate budget).
    let _lock = ws.lock(Section::Push)?;
    super::apply(ledger, &plan)?;
    if !has_work(ledger)? {
        return Ok(PushStage {
            conversations: plan.conversations,
            dry_run: None,
            report: Some(PushReport::default()),
        });
    }
    let api = client(ws)?;
    let report = super::send(ledger, &api, &opts, ctx)?;
    Ok(PushStage {
        conversations: plan.conversations,
        dry_run: None,
        report: Some(report),
    })
}
