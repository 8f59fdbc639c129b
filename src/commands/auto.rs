//! `omi-sync --auto`: the whole job, headless, for cron and systemd timers.

use anyhow::anyhow;
use serde::Serialize;

use super::Context;
use super::device::pendant_failure;
use super::import::{analyze_options, import_exit_code};
use super::push::{self as push_cmd, PushStage};
use super::transcribe;
use crate::cli::{PushArgs, TranscribeArgs};
use crate::engine::image::ImageStop;
use crate::engine::job::{self, JobError, JobReport, Pulled, Source};
use crate::engine::push::CloudStatus;
use crate::engine::{Event, EventSink};
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::term::{GOOD, paint};

#[derive(Serialize)]
struct Done<'a> {
    event: &'static str,
    report: &'a JobReport,
    push: &'a PushStage,
}

/// `omi-sync --auto [--source SOURCE] [--dry-run] [--wait] [--allow-estimated-times]`
pub fn run(ctx: &Context, source: Option<&str>, push_args: &PushArgs) -> CommandResult {
    let mut outcome = crate::notify::AutoOutcome::default();
    let result = job(ctx, source, push_args, &mut outcome);
    crate::notify::auto_finished(&ctx.config.auto, &outcome.ended(&result));
    result
}

fn job(
    ctx: &Context,
    source: Option<&str>,
    push_args: &PushArgs,
    outcome: &mut crate::notify::AutoOutcome,
) -> CommandResult {
    let source = source.ok_or_else(|| {
        Failure::usage(anyhow!(
            "--auto needs a source: `--source demo` for the built-in demo, `--source PATH` for phone-app .bin files, \
             `image:PATH` for the pendant's card, `device:ID` for the pendant over Bluetooth, or `sim:PATH` for the \
             simulated pendant (or set `source` under [auto] in the config file)"
        ))
    })?;
    let source = Source::parse(source).map_err(|e| Failure::usage(anyhow!(e)))?;
    let mut ledger = ctx.ledger()?;
    let _lock = ctx.run_lock()?;
    let progress = crate::runlog::Tee(ctx.out.event_stream());
    // Without an engine (no model, no key) the rest still runs: the speech
    // waits, pending, for a run that has one, and the warning says how.
    let mut stt_problem = None;
    let stt = match transcribe::setup(ctx, &TranscribeArgs::default()) {
        Ok(s) => Some(s),
        Err(f) => {
            stt_problem = Some(format!("{:#}; speech waits untranscribed", f.error));
            progress.emit(Event::Warning {
                origin: "transcribe".into(),
                message: format!("{:#}; transcription skipped this run", f.error),
            });
            None
        }
    };
    let (report, timeline) = job::run(
        &mut ledger,
        &source,
        &analyze_options(ctx, false),
        stt.as_ref().map(|(e, o)| (e, o)),
        &ctx.rules(),
        &progress,
    )
    .map_err(job_failure)?;
    if report.pending_segments > 0 {
        outcome.needs_a_person = stt_problem;
    }
    let pushed = push_cmd::stage(ctx, &ledger, &timeline, push_args, &progress, true)?;
    outcome.pushed = pushed.report.as_ref().map_or(0, |r| r.created);
    let held = pushed
        .conversations
        .iter()
        .filter(|c| matches!(c.status, CloudStatus::Held { .. }))
        .count();
    if ctx.out.json {
        let line = serde_json::to_string(&Done {
            event: "done",
            report: &report,
            push: &pushed,
        })
        .unwrap_or_default();
        println!("{line}");
    } else if !ctx.out.quiet {
        anstream::println!(
            "{} {} conversations ({} with estimated times), {} segments waiting for transcription.",
            paint(GOOD, "done:"),
            report.conversations,
            report.estimated_conversations,
            report.pending_segments
        );
        if let Some(r) = &pushed.report {
            anstream::println!("{} {}", paint(GOOD, "push:"), push_cmd::summary(r, held));
        }
    }
    let import_code = import_exit_code(&report.import);
    let pull_code = pull_exit_code(&report);
    let push_code = match &pushed.report {
        Some(r) => push_cmd::exit_code(r)?,
        None => ExitCode::NothingToDo,
    };
    let stt_code = report.transcribe.as_ref().map(transcribe::exit_code);
    let did_something = report.import.new_captures().len() + report.vad.captures > 0
        || pull_code == ExitCode::Done
        || stt_code == Some(ExitCode::Done)
        || push_code == ExitCode::Done
        || pushed.dry_run.is_some_and(|n| n > 0);
    let codes = [import_code, pull_code, push_code];
    Ok(if codes.contains(&ExitCode::Temporary) {
        ExitCode::Temporary
    } else if codes.contains(&ExitCode::Partial) {
        ExitCode::Partial
    } else if did_something {
        ExitCode::Done
    } else {
        ExitCode::NothingToDo
    })
}

fn job_failure(e: JobError) -> Failure {
    match e {
        JobError::Store(e) => Failure::from(e),
        JobError::Pendant(e) => pendant_failure(e),
        JobError::Image(ImageStop::Ledger(e)) => Failure::from(e),
        JobError::Image(e) => Failure::new(ExitCode::Failed, e),
        JobError::Transcribe(e) => transcribe::failure(e),
    }
}

/// The pull's part of the exit code: 5 when it stopped half-way (run again
/// to continue), 3 when audio on a card was unreadable, 0 when it brought
/// something new, else 9.
fn pull_exit_code(report: &JobReport) -> ExitCode {
    let (new, code) = match &report.pulled {
        None => return ExitCode::NothingToDo,
        Some(Pulled::Pendant(s)) if s.error.is_some() => return ExitCode::Temporary,
        Some(Pulled::Image(s)) if s.lost_audio() => return ExitCode::Partial,
        Some(Pulled::Pendant(s)) => (s.stored.new_records, ExitCode::Done),
        Some(Pulled::Image(s)) => (s.stored.new_records, ExitCode::Done),
    };
    if new > 0 { code } else { ExitCode::NothingToDo }
}
