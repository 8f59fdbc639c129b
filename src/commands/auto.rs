//! `omi-sync --auto`: the whole job, headless, for cron and systemd timers.

use anyhow::anyhow;

use super::Context;
use super::import::{analyze_options, import_exit_code};
use crate::engine::job::{self, Source};
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
    let (report, _timeline) = job::run(
        &mut ledger,
        &source,
        &analyze_options(ctx, false),
        &ctx.rules(),
        &progress,
    )?;
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
    Ok(match code {
        ExitCode::NothingToDo if report.vad.captures > 0 => ExitCode::Done,
        other => other,
    })
}
