//! `omi-sync --auto`: the whole job, headless, for cron and systemd timers.

use anyhow::anyhow;

use super::Context;
use super::device::pendant_failure;
use super::import::{analyze_options, import_exit_code};
use crate::engine::image::ImageStop;
use crate::engine::job::{self, JobError, JobReport, Pulled, Source};
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::term::{GOOD, paint};

/// `omi-sync --auto [--source SOURCE]`
pub fn run(ctx: &Context, source: Option<&str>) -> CommandResult {
    let source = source.ok_or_else(|| {
        Failure::usage(anyhow!(
            "--auto needs a source: `--source demo` for the built-in demo, `--source PATH` for phone-app .bin files, \
             `image:PATH` for the pendant's card, `device:ID` for the pendant over Bluetooth, or `sim:PATH` for the \
             simulated pendant (or set `source` under [auto] in the config file)"
        ))
    })?;
    let source = Source::parse(source).map_err(|e| Failure::usage(anyhow!(e)))?;
    let mut ledger = ctx.ledger()?;
    let progress = ctx.out.event_stream();
    let (report, _timeline) = job::run(
        &mut ledger,
        &source,
        &analyze_options(ctx, false),
        &ctx.rules(),
        &progress,
    )
    .map_err(job_failure)?;
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
    Ok(exit_code(&report))
}

fn job_failure(e: JobError) -> Failure {
    match e {
        JobError::Store(e) => Failure::from(e),
        JobError::Pendant(e) => pendant_failure(e),
        JobError::Image(ImageStop::Ledger(e)) => Failure::from(e),
        JobError::Image(e) => Failure::new(ExitCode::Failed, e),
    }
}

/// 5 when a pull stopped half-way (run again to continue), 3 when some
/// input was unusable, 9 when nothing new came in, else 0.
fn exit_code(report: &JobReport) -> ExitCode {
    let code = match &report.pulled {
        Some(Pulled::Pendant(s)) if s.error.is_some() => return ExitCode::Temporary,
        Some(Pulled::Image(s)) if s.lost_audio() => return ExitCode::Partial,
        Some(_) => ExitCode::NothingToDo,
        None => import_exit_code(&report.import),
    };
    match code {
        ExitCode::NothingToDo if report.vad.captures > 0 => ExitCode::Done,
        other => other,
    }
}
