//! `omi-sync push`, and the push stage of `--auto`.

use std::time::Duration;

use anyhow::anyhow;
use serde::Serialize;

use super::Context;
use super::timeline::wall;
use crate::cli::PushArgs;
use crate::clock::UtcMillis;
use crate::cloud::api::{ClientConfig, DryRun, OmiClient, render_create, render_delete};
use crate::cloud::credentials;
use crate::cloud::payload::CreateConversationRequest;
use crate::cloud::ratelimit::RateLimit;
use crate::engine::EventSink;
use crate::engine::push::{self, CloudStatus, Plan, PushOptions, PushReport, RealTime, Retraction};
use crate::exit::{ExitCode, Failure};
use crate::store::{Ledger, OutboxState};
use crate::term::{BOLD, DIM, GOOD, WARN, duration, paint};
use crate::timeline::Timeline;

/// The push options from flags and config.
pub(super) fn options(ctx: &Context, args: &PushArgs) -> PushOptions {
    let c = &ctx.config.cloud;
    PushOptions {
        allow_estimated: args.allow_estimated_times || c.allow_estimated_times,
        wait: args.wait,
        language: c.language.clone(),
        limit: RateLimit {
            max_per_window: c.pushes_per_hour,
            window: Duration::from_secs(c.rate_window_secs.max(1)),
        },
        ..PushOptions::default()
    }
}

/// The API base URL: the flag (or `OMI_API_URL`), else the config.
pub(super) fn api_url(ctx: &Context) -> String {
    ctx.api_url
        .clone()
        .unwrap_or_else(|| ctx.config.cloud.api_url.clone())
}

/// The cloud client with the user's key.
fn client(ctx: &Context) -> Result<OmiClient, Failure> {
    let loaded = credentials::load().map_err(Failure::fatal)?;
    let config = ClientConfig {
        timeout: Duration::from_secs(ctx.config.cloud.request_timeout_secs.max(1)),
        ..ClientConfig::with_base_url(&api_url(ctx))
    };
    OmiClient::new(config, loaded.key).map_err(Failure::usage)
}

/// The requests `push` would send now, in order: deletes, then creates.
fn pending_requests(ctx: &Context, ledger: &Ledger, plan: &Plan) -> Result<Vec<DryRun>, Failure> {
    let shown_key = match credentials::load() {
        Ok(k) => k.key.masked(),
        Err(_) => "(no API key configured: omi-sync login, or OMI_API_KEY)".to_string(),
    };
    let agent = format!("omi-sync/{}", env!("CARGO_PKG_VERSION"));
    let url = api_url(ctx);
    let outbox = ledger.outbox()?;
    let mut out = Vec::new();
    for r in &plan.retract {
        if let Retraction::Delete(id) = r
            && let Some(cloud_id) = outbox
                .iter()
                .find(|o| &o.push.session_id == id)
                .and_then(|o| o.cloud_id.clone())
        {
            out.push(render_delete(&url, &agent, &shown_key, &cloud_id));
        }
    }
    for o in outbox
        .iter()
        .filter(|o| o.state == OutboxState::DeletePending)
    {
        if let Some(cloud_id) = &o.cloud_id {
            out.push(render_delete(&url, &agent, &shown_key, cloud_id));
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
        .filter(|o| {
            matches!(
                o.state,
                OutboxState::Pending | OutboxState::Sending | OutboxState::Failed
            )
        })
        .filter(|o| !retracted.contains(&o.push.session_id.as_str()))
        .filter_map(|o| serde_json::from_str::<CreateConversationRequest>(&o.push.request).ok());
    for request in queued.chain(plan.new.iter().map(|n| n.request.clone())) {
        out.push(render_create(&url, &agent, &shown_key, &request));
    }
    Ok(out)
}

#[derive(Serialize)]
struct DryRunJson {
    /// `"dry_run"` when it is one line of an NDJSON event stream (`--auto`).
    #[serde(skip_serializing_if = "Option::is_none")]
    event: Option<&'static str>,
    requests: Vec<RequestJson>,
    conversations: Vec<push::ConversationStatus>,
}

#[derive(Serialize)]
struct RequestJson {
    method: &'static str,
    url: String,
    headers: Vec<(String, String)>,
    body: serde_json::Value,
}

/// Prints the requests a push would send; returns how many. With `--json`,
/// one object, or one NDJSON line when `ndjson` (inside `--auto`'s events).
fn dry_run(ctx: &Context, ledger: &Ledger, plan: &Plan, ndjson: bool) -> Result<usize, Failure> {
    let requests = pending_requests(ctx, ledger, plan)?;
    if ctx.out.json {
        let json = DryRunJson {
            event: ndjson.then_some("dry_run"),
            requests: requests
                .iter()
                .map(|r| RequestJson {
                    method: r.method,
                    url: r.url.clone(),
                    headers: r.headers.clone(),
                    body: r.body.clone(),
                })
                .collect(),
            conversations: plan.conversations.clone(),
        };
        if ndjson {
            println!("{}", serde_json::to_string(&json).unwrap_or_default());
        } else {
            ctx.out.print_json(&json);
        }
    } else {
        for r in &requests {
            println!("{r}");
        }
        print_statuses(plan);
        anstream::println!(
            "{}",
            paint(
                DIM,
                format!(
                    "Dry run: {} request(s) would be sent; nothing was sent and nothing was queued.",
                    requests.len()
                )
            )
        );
    }
    Ok(requests.len())
}

fn print_statuses(plan: &Plan) {
    for c in &plan.conversations {
        let (label, detail) = match &c.status {
            CloudStatus::Held { hold } => (paint(WARN, "held    "), hold.to_string()),
            CloudStatus::New { replaces, .. } if !replaces.is_empty() => (
                paint(BOLD, "replaces"),
                format!(
                    "edited after it was pushed: will replace {}",
                    replaces.join(", ")
                ),
            ),
            CloudStatus::New { .. } => (paint(BOLD, "new     "), "to be pushed".to_string()),
            CloudStatus::Queued {
                retry_at,
                last_error,
                ..
            } => (
                paint(BOLD, "queued  "),
                match (retry_at, last_error) {
                    (Some(t), Some(e)) => format!("next attempt at {t} ({e})"),
                    (Some(t), None) => format!("next attempt at {t}"),
                    _ => "to be pushed".to_string(),
                },
            ),
            CloudStatus::Pushed { cloud_id, .. } => (
                paint(GOOD, "pushed  "),
                format!("in the cloud as {cloud_id}"),
            ),
            CloudStatus::Rejected { message, .. } => (paint(WARN, "rejected"), message.clone()),
        };
        anstream::println!(
            "  {label}  {}  {}  {detail}",
            c.conversation,
            wall(c.started_at)
        );
    }
}

/// What the push stage did: the plan, and the report when something was sent.
#[derive(Debug, Serialize)]
pub(super) struct PushStage {
    /// Every conversation's cloud status before sending.
    pub conversations: Vec<push::ConversationStatus>,
    /// What sending did (none on a dry run).
    pub report: Option<PushReport>,
    /// On a dry run: how many requests would be sent.
    #[serde(skip)]
    pub dry_run: Option<usize>,
}

/// Plans, queues and sends. Shared by `push` and `--auto` (which already
/// holds the run lock, and whose `--json` output is NDJSON: `ndjson`).
pub(super) fn stage(
    ctx: &Context,
    ledger: &Ledger,
    timeline: &Timeline,
    args: &PushArgs,
    events: &dyn EventSink,
    ndjson: bool,
) -> Result<PushStage, Failure> {
    let opts = options(ctx, args);
    let plan = push::plan(ledger, timeline, &opts)?;
    if args.dry_run {
        let requests = dry_run(ctx, ledger, &plan, ndjson)?;
        return Ok(PushStage {
            conversations: plan.conversations,
            report: None,
            dry_run: Some(requests),
        });
    }
    push::apply(ledger, &plan)?;
    let has_work = ledger.outbox()?.iter().any(|o| {
        matches!(
            o.state,
            OutboxState::Pending
                | OutboxState::Sending
                | OutboxState::Failed
                | OutboxState::DeletePending
        )
    });
    if !has_work {
        return Ok(PushStage {
            conversations: plan.conversations,
            report: Some(PushReport::default()),
            dry_run: None,
        });
    }
    let api = client(ctx)?;
    let report = push::send(ledger, &api, &opts, &RealTime, events)?;
    Ok(PushStage {
        conversations: plan.conversations,
        report: Some(report),
        dry_run: None,
    })
}

/// The exit code a push report calls for.
pub(super) fn exit_code(report: &PushReport) -> Result<ExitCode, Failure> {
    if let Some(problem) = &report.credentials_problem {
        return Err(Failure::fatal(anyhow!(
            "the Omi cloud refused the API key ({problem}); check it (omi-sync login) and that it \
             has the conversations:write scope. Nothing was lost: the conversations stay queued."
        )));
    }
    Ok(if report.queued > 0 {
        ExitCode::Temporary
    } else if !report.rejected.is_empty() || !report.failed.is_empty() {
        ExitCode::Partial
    } else if report.created + report.deleted == 0 {
        ExitCode::NothingToDo
    } else {
        ExitCode::Done
    })
}

/// One line saying what happened, and when to come back.
pub(super) fn summary(report: &PushReport, held: usize) -> String {
    let mut s = format!(
        "{} pushed, {} replaced, {} rejected, {} held",
        report.created,
        report.deleted,
        report.rejected.len(),
        held
    );
    if report.queued > 0 {
        let when = report.next_attempt_at.unwrap_or_else(UtcMillis::now);
        let in_about = duration(when.since(UtcMillis::now()).max(0) as f64 / 1000.0);
        s.push_str(&format!(
            "; {} queued: the next can go at {} (in about {in_about}): run omi-sync push again then, or use --wait",
            report.queued,
            wall(when)
        ));
        if let Some(last) = report.all_sent_by.filter(|t| *t > when) {
            s.push_str(&format!(" (all sent by about {})", wall(last)));
        }
    }
    s
}

/// `omi-sync push`
pub fn run(ctx: &Context, args: &PushArgs) -> Result<ExitCode, Failure> {
    let ledger = ctx.ledger()?;
    let _lock = if args.dry_run {
        None
    } else {
        Some(ctx.run_lock()?)
    };
    let timeline = ctx.timeline(&ledger)?;
    let progress = ctx.out.progress();
    let stage = stage(ctx, &ledger, &timeline, args, &progress, false)?;
    let Some(report) = stage.report else {
        return Ok(match stage.dry_run {
            Some(n) if n > 0 => ExitCode::Done,
            _ => ExitCode::NothingToDo,
        });
    };
    let held = stage
        .conversations
        .iter()
        .filter(|c| matches!(c.status, CloudStatus::Held { .. }))
        .count();
    if ctx.out.json {
        ctx.out.print_json(
            &serde_json::json!({ "report": report, "conversations": stage.conversations }),
        );
    } else {
        let after = push::plan(&ledger, &timeline, &options(ctx, args))?;
        print_statuses(&after);
        anstream::println!("{}", summary(&report, held));
    }
    exit_code(&report)
}

/// `omi-sync login`
pub fn login(ctx: &Context) -> Result<ExitCode, Failure> {
    use std::io::IsTerminal;
    let raw = if std::io::stdin().is_terminal() {
        rpassword::prompt_password("Omi developer API key (omi_dev_…, not echoed): ")
            .map_err(|e| Failure::usage(anyhow!("cannot read the key: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(anyhow!("cannot read the key from standard input: {e}")))?;
        line
    };
    let store = credentials::OsKeyring::default();
    let key = credentials::login(&store, raw.trim()).map_err(|e| match e {
        credentials::CredentialError::BadShape { .. } => Failure::usage(e),
        other => Failure::fatal(other),
    })?;
    ctx.out.note(format!(
        "Stored the key (fingerprint {}) in the OS keyring.",
        key.fingerprint().as_str()
    ));
    Ok(ExitCode::Done)
}

/// `omi-sync logout`
pub fn logout(ctx: &Context) -> Result<ExitCode, Failure> {
    let store = credentials::OsKeyring::default();
    if credentials::logout(&store).map_err(Failure::fatal)? {
        ctx.out.note("Removed the API key from the OS keyring.");
        Ok(ExitCode::Done)
    } else {
        ctx.out.note("No API key was stored in the OS keyring.");
        Ok(ExitCode::NothingToDo)
    }
}
