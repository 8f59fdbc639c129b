//! `omi-sync --auto`: the whole job, headless, for cron and systemd timers.

use anyhow::anyhow;

use super::Context;
use super::import::{analyze_options, import_exit_code};
use super::transcribe;
use crate::cli::TranscribeArgs;
use crate::engine::job::{self, Source};
use crate::engine::{Event, EventSink};
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::term::{GOOD, paint};

/// `omi-sync --auto [--source SOURCE]`
pub fn run(ctx: &Context, source: Option<&str>) -> CommandResult {
    let source = source.ok_or_else(|| {
        Failure::usage(anyhow!(
            "--auto needs a source: `--source demo` for the built-in demo, or `--source PATH` for phone-app .bin files \
             (or set `source` under [auto] in the config file)"
        ))
    })?;
    let source = Source::parse(source).map_err(|e| Failure::usage(anyhow!(e)))?;
    let mut ledger = ctx.ledger()?;
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
    let (report, _timeline) = job::run(
        &mut ledger,
        &source,
        &analyze_options(ctx, false),
        stt.as_ref().map(|(e, o)| (e, o)),
        &ctx.rules(),
        &progress,
    )
    .map_err(transcribe::failure)?;
    if ctx.out.json {
        let line = serde_json::json!({ "event": "done", "report": report });
        println!("{line}");
    } else if !ctx.out.quiet {
        anstream::println!(
            "{} {} conversations ({} with estimated times, held back), {} segments waiting for transcription.",
            paint(GOOD, "done:"),
            report.conversations,
            report.estimated_conversations,
            report.pending_segments
        );
    }
    let code = import_exit_code(&report.import);
    let stt_code = report.transcribe.as_ref().map(transcribe::exit_code);
    Ok(match (code, stt_code) {
        (ExitCode::Partial, _) | (_, Some(ExitCode::Partial)) => ExitCode::Partial,
        (ExitCode::NothingToDo, _) if report.vad.captures > 0 => ExitCode::Done,
        (ExitCode::NothingToDo, Some(ExitCode::Done)) => ExitCode::Done,
        (other, _) => other,
    })
}
