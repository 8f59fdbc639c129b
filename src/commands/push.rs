//! `omi-sync push`, `login`, `logout`, and how the push stage of `--auto`
//! is shown.

use anyhow::anyhow;
use serde::Serialize;

use super::Context;
use crate::cli::PushArgs;
use crate::clock::UtcMillis;
use crate::cloud::credentials::{self, ApiKey};
use crate::engine::jobs::Job;
use crate::engine::push::stage::{self, KeyCheck, PushRequest, PushStage, RequestPreview};
use crate::engine::push::{
    self, CloudStatus, ConversationStatus, PushReport, PushStop, Vanished, VanishedDecision,
};
use crate::engine::remedy::{KeyService, Remedy};
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
        retry_rejected: args.retry_rejected,
        forget_vanished: args.forget_vanished,
        replace_vanished: args.replace_vanished,
    }
}

#[derive(Serialize)]
struct DryRunJson<'a> {
    requests: &'a [RequestPreview],
    conversations: &'a [ConversationStatus],
    vanished: &'a [Vanished],
}

/// Prints a dry run's requests and statuses (with `--json`, one object).
pub(super) fn print_dry_run(ctx: &Context, stage: &PushStage, requests: &[RequestPreview]) {
    if ctx.out.json {
        ctx.out.print_json(&DryRunJson {
            requests,
            conversations: &stage.conversations,
            vanished: &stage.vanished,
        });
        return;
    }
    for r in requests {
        println!("{r}");
    }
    print_statuses(&stage.conversations, &stage.vanished);
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

/// Each conversation's cloud status on a line, then the vanished ones.
pub(super) fn print_statuses(conversations: &[ConversationStatus], vanished: &[Vanished]) {
    for c in conversations {
        let (label, detail) = status_line(&c.status);
        anstream::println!(
            "  {label}  {}  {}  {detail}",
            c.conversation,
            wall(c.started_at)
        );
    }
    for v in vanished {
        anstream::println!(
            "  {}  {}  {}  {}",
            paint(WARN, "vanished"),
            v.conversation,
            wall(v.started_at),
            vanished_line(v)
        );
    }
}

/// A status's label (8 wide) and what it means.
fn status_line(status: &CloudStatus) -> (String, String) {
    match status {
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
                (None, Some(e)) => format!("to be pushed (last: {e})"),
                (None, None) => "to be pushed".to_string(),
            },
        ),
        CloudStatus::Confirming { cloud_id, .. } => (
            paint(BOLD, "confirm "),
            format!("sent as {cloud_id}; being confirmed (the cloud is still processing it)"),
        ),
        CloudStatus::Pushed { cloud_id, .. } => (
            paint(GOOD, "pushed  "),
            format!("in the cloud as {cloud_id}"),
        ),
        CloudStatus::Rejected { message, .. } => (
            paint(WARN, "rejected"),
            format!("{message} (push --retry-rejected sends it again)"),
        ),
        CloudStatus::Locked {
            cloud_id, message, ..
        } => (
            paint(WARN, "locked  "),
            format!(
                "{message}: {}",
                say::remedy(&Remedy::ResolveInCloud {
                    cloud_id: cloud_id.clone().unwrap_or_else(|| "it".into())
                })
            ),
        ),
    }
}

/// What became of a conversation whose segments vanished.
pub(super) fn vanished_line(v: &Vanished) -> String {
    let copy = v
        .cloud_id
        .as_deref()
        .map(|c| format!(" (in the cloud as {c})"))
        .unwrap_or_default();
    match v.decision {
        VanishedDecision::Held => format!(
            "{} of its {} segments are gone, not by an edit{copy}: held. `omi-sync push \
             --forget-vanished` keeps the cloud copy as it is; `--replace-vanished` deletes it \
             and pushes what the timeline has there now",
            v.missing, v.members
        ),
        VanishedDecision::Forget => format!("forgotten; its cloud copy{copy} is kept"),
        VanishedDecision::Replace => format!("its cloud copy{copy} is deleted"),
    }
}

/// The exit code a push report calls for: one per situation.
///
/// | situation | code |
/// |---|---|
/// | the key is refused or lacks a scope; the API route is gone or redirects | 7 |
/// | the budget is configured as zero | 2 |
/// | anything still queued or being confirmed (retries that ran out included) | 5 |
/// | a conversation refused or locked in this run, the rest done | 3 |
/// | something pushed or replaced | 0 |
/// | nothing to do | 9 |
pub(super) fn exit_code(report: &PushReport) -> Result<ExitCode, Failure> {
    if let Some(stop) = report.stop.as_ref().filter(|s| !s.is_temporary()) {
        let code = match stop {
            PushStop::NoBudget { .. } => ExitCode::Usage,
            _ => ExitCode::Fatal,
        };
        let remedy = stop.remedy();
        let mut f = Failure::new(
            code,
            anyhow!("{stop}. Nothing was lost: the conversations stay queued."),
        );
        f.hint = Some(say::remedy(&remedy));
        f.remedy = Some(remedy);
        return Err(f);
    }
    Ok(if report.queued + report.confirming > 0 {
        ExitCode::Temporary
    } else if !report.rejected.is_empty() || !report.locked.is_empty() {
        ExitCode::Partial
    } else if report.created + report.deleted == 0 {
        ExitCode::NothingToDo
    } else {
        ExitCode::Done
    })
}

/// One line saying what happened, and when to come back.
pub(super) fn summary(report: &PushReport, stage: &PushStage, now: UtcMillis) -> String {
    let mut s = format!(
        "{} pushed, {} replaced, {} rejected, {} held",
        report.created,
        report.deleted,
        report.rejected.len(),
        stage.held()
    );
    if !report.locked.is_empty() {
        s.push_str(&format!(", {} locked in the cloud", report.locked.len()));
    }
    if report.confirming > 0 {
        s.push_str(&format!(
            "; {} sent and still being confirmed (the cloud is processing them)",
            report.confirming
        ));
    }
    let vanished = stage
        .vanished
        .iter()
        .filter(|v| v.decision == VanishedDecision::Held)
        .count();
    if vanished > 0 {
        s.push_str(&format!(
            "; {vanished} held because their segments vanished (see above)"
        ));
    }
    if let Some(stop) = report.stop.as_ref().filter(|s| s.is_temporary()) {
        s.push_str(&format!("; {stop}"));
    }
    if report.queued + report.confirming > 0 {
        let when = report.next_attempt_at.unwrap_or(now);
        let in_about = duration(when.since(now).max(0) as f64 / 1000.0);
        s.push_str(&format!(
            "; {} still queued: the next can go at {} (in about {in_about}): run omi-sync push again then, or use --wait",
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
        ctx.out.print_json(&serde_json::json!({
            "report": report,
            "conversations": stage.conversations,
            "vanished": stage.vanished,
        }));
    } else {
        let ledger = ctx.ledger()?;
        let timeline = ctx.ws.timeline(&ledger)?;
        let after = push::plan(&ledger, &timeline, &stage::options(&ctx.ws, &request(args)))?;
        print_statuses(&after.conversations, &after.vanished);
        for l in &report.locked {
            anstream::println!(
                "  {} {}",
                paint(WARN, "what to do:"),
                say::remedy(&l.remedy())
            );
        }
        anstream::println!("{}", summary(&report, &stage, UtcMillis::now()));
    }
    exit_code(&report)
}

/// `omi-sync login`: checks the key's shape and, with the cloud, its
/// scopes; stores it only if it can push (or the check could not be made).
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
    let key = ApiKey::parse(&raw).map_err(|shape| {
        Failure::usage(credentials::CredentialError::BadShape {
            source_name: "the input".into(),
            shape,
            advice: String::new(),
        })
    })?;
    let check = stage::check_login_key(&ctx.ws, &key).map_err(|e| ctx.failure(e.into()))?;
    let refused = |error: anyhow::Error, scope: Option<String>| {
        let remedy = Remedy::CheckKey {
            service: KeyService::Omi,
            scope,
        };
        let mut f = Failure::fatal(error);
        f.hint = Some(say::remedy(&remedy));
        f.remedy = Some(remedy);
        f
    };
    match &check {
        KeyCheck::Refused { message } => {
            return Err(refused(
                anyhow!("the Omi cloud refused this key ({message}); it was not stored"),
                None,
            ));
        }
        KeyCheck::MissingScope { scope, has } => {
            return Err(refused(
                anyhow!(
                    "this key lacks the `{scope}` scope, which pushing needs (it has: {}); it \
                     was not stored. Create a developer key with `{scope}` in the Omi app",
                    if has.is_empty() {
                        "none".to_string()
                    } else {
                        has.join(", ")
                    }
                ),
                Some(scope.clone()),
            ));
        }
        KeyCheck::CanWrite { .. } | KeyCheck::Unknown { .. } => {}
    }
    let store = credentials::OsKeyring::default();
    let key = credentials::login(&store, key.expose_secret()).map_err(Failure::fatal)?;
    ctx.out.note(format!(
        "Stored the key (fingerprint {}) in the OS keyring.",
        key.fingerprint().as_str()
    ));
    match check {
        KeyCheck::CanWrite { name } => ctx.out.note(format!(
            "The cloud confirms the key{} may create and delete conversations.",
            name.map(|n| format!(" `{n}`")).unwrap_or_default()
        )),
        KeyCheck::Unknown { reason } => ctx.out.note(format!(
            "Could not check the key's scopes with the cloud ({reason}); the first push will."
        )),
        _ => {}
    }
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
