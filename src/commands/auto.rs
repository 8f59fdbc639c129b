//! `omi-sync --auto`: the whole job, headless, for cron and systemd timers.

use anyhow::anyhow;
use serde::Serialize;

use super::Context;
use super::import::{analyze_options, import_exit_code};
use super::push::{self as push_cmd, PushStage};
use super::transcribe;
use crate::cli::{PushArgs, TranscribeArgs};
use crate::engine::job::{self, JobReport, Source};
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
    let source = source.ok_or_else(|| {
        Failure::usage(anyhow!(
            "--auto needs a source: `--source demo` for the built-in demo, or `--source PATH` for phone-app .bin files \
             (or set `source` under [auto] in the config file)"
        ))
    })?;
    let source = Source::parse(source).map_err(|e| Failure::usage(anyhow!(e)))?;
    let mut ledger = ctx.ledger()?;
    let _lock = push_cmd::lock(ctx)?;
    let progress = ctx.out.event_stream();
    // Without an engine (no model, no key) the rest still runs: the speech
    // waits, pending, for a run that has one, and the warning says how.
    let stt = match transcribe::setup(ctx, &TranscribeArgs::default()) {
        Ok(s) => Some(s),
        Err(f) => {
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
    .map_err(transcribe::failure)?;
    let pushed = push_cmd::stage(ctx, &ledger, &timeline, push_args, &progress)?;
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
    let push_code = match &pushed.report {
        Some(r) => push_cmd::exit_code(r)?,
        None => ExitCode::NothingToDo,
    };
    let stt_code = report.transcribe.as_ref().map(transcribe::exit_code);
    let did_something = report.import.new_captures().len() + report.vad.captures > 0
        || stt_code == Some(ExitCode::Done)
        || push_code == ExitCode::Done
        || pushed.dry_run.is_some_and(|n| n > 0);
    Ok(if push_code == ExitCode::Temporary {
        ExitCode::Temporary
    } else if import_code == ExitCode::Partial
        || push_code == ExitCode::Partial
        || stt_code == Some(ExitCode::Partial)
    {
        ExitCode::Partial
    } else if did_something {
        ExitCode::Done
    } else {
        ExitCode::NothingToDo
    })
}
