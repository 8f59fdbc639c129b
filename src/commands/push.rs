//! `omi-sync push`, and how the push stage of `--auto` is shown.

use anyhow::anyhow;
use serde::Serialize;

use super::Context;
use crate::cli::PushArgs;
use crate::clock::UtcMillis;
use crate::cloud::credentials;
use crate::engine::jobs::Job;
use crate::engine::push::stage::{PushRequest, PushStage, RequestPreview};
use crate::engine::push::{self, CloudStatus, ConversationStatus, PushReport};
use crate::engine::report::JobReport;
use crate::exit::{ExitCode, Failure};
use crate::term::say::{self, wall};
use crate::term::{BOLD, DIM, GOOD, WARN, duration, paint};

/// The push request from the flags.
pub(super) fn request(args: &PushArgs) -> PushRequest {
    PushRequest {
        dry_run: args.dry_run,
        wait: args.wait,
        allow_estimated_times: args.allow_estimated_times,
    }
}

#[derive(Serialize)]
struct DryRunJson<'a> {
    requests: &'a [RequestPreview],
    conversations: &'a [ConversationStatus],
}

/// Prints a dry run's requests and statuses (with `--json`, one object).
pub(super) fn print_dry_run(ctx: &Context, stage: &PushStage, requests: &[RequestPreview]) {
    if ctx.out.json {
        ctx.out.print_json(&DryRunJson {
            requests,
            conversations: &stage.conversations,
        });
        return;
    }
    for r in requests {
        println!("{r}");
    }
    print_statuses(&stage.conversations);
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

fn print_statuses(conversations: &[ConversationStatus]) {
    for c in conversations {
        let (label, detail) = match &c.status {
            CloudStatus::Held { hold } => (paint(WARN, "held    "), say::hold(hold)),
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
    let JobReport::Push(stage) = ctx.run_job(Job::Push(request(args)), false)? else {
        unreachable!("a push job reports a push")
    };
    if let Some(requests) = &stage.dry_run {
        print_dry_run(ctx, &stage, requests);
        return Ok(if requests.is_empty() {
            ExitCode::NothingToDo
        } else {
            ExitCode::Done
        });
    }
    let report = stage.report.clone().unwrap_or_default();
    if ctx.out.json {
        ctx.out.print_json(
            &serde_json::json!({ "report": report, "conversations": stage.conversations }),
        );
    } else {
        let ledger = ctx.ledger()?;
        let timeline = ctx.ws.timeline(&ledger)?;
        let after = push::plan(
            &ledger,
            &timeline,
            &crate::engine::push::stage::options(&ctx.ws, &request(args)),
        )?;
        print_statuses(&after.conversations);
        anstream::println!("{}", summary(&report, stage.held()));
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
