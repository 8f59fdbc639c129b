//! `omi-sync --auto`: the whole job, headless, for cron and systemd timers.

use anyhow::anyhow;

use super::Context;
use super::import::import_exit_code;
use super::push::{self as push_cmd, print_dry_run};
use super::transcribe;
use crate::cli::PushArgs;
use crate::engine::auto::{AutoReport, Pulled, Source};
use crate::engine::jobs::Job;
use crate::engine::pendant::Pendant;
use crate::engine::report::JobReport;
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::notify::AutoOutcome;
use crate::runlog::RunLog;
use crate::term::{GOOD, paint, say};

/// `omi-sync --auto [--source SOURCE] [--sim-faults SPEC] [--dry-run] [--wait] [--allow-estimated-times]`
/// At the end, a desktop notice says what a person should hear about
/// ([`crate::notify`]).
pub fn run(
    ctx: &Context,
    source: Option<&str>,
    sim_faults: Option<&str>,
    push_args: &PushArgs,
) -> CommandResult {
    let mut outcome = AutoOutcome::default();
    let result = job(ctx, source, sim_faults, push_args, &mut outcome);
    crate::notify::auto_finished(&ctx.ws.config.auto, &outcome.ended(&result));
    result
}

fn job(
    ctx: &Context,
    source: Option<&str>,
    sim_faults: Option<&str>,
    push_args: &PushArgs,
    outcome: &mut AutoOutcome,
) -> CommandResult {
    let source = source.ok_or_else(|| {
        Failure::usage(anyhow!(
            "--auto needs a source: `--source demo` for the built-in demo, `--source PATH` for phone-app .bin files, \
             `image:PATH` for the pendant's card, `device:ID` for the pendant over Bluetooth, or `sim:PATH` for the \
             simulated pendant (or set `source` under [auto] in the config file)"
        ))
    })?;
    let mut source = Source::parse(source).map_err(|e| Failure::usage(anyhow!(e)))?;
    if let Some(spec) = sim_faults {
        let Source::Pendant(Pendant::Sim { faults, .. }) = &mut source else {
            return Err(Failure::usage(anyhow!(
                "--sim-faults goes with a simulated pendant: --source sim:PATH"
            )));
        };
        *faults = spec.to_string();
    }
    let job = Job::Auto {
        source,
        push: push_cmd::request(push_args),
    };
    let JobReport::Auto(report) = ctx.run_job_logged(job, true, &RunLog)? else {
        unreachable!("an --auto job reports an --auto run")
    };
    let stage = &report.push;
    outcome.pushed = stage.report.as_ref().map_or(0, |r| r.created);
    if report.pending_segments > 0 {
        outcome.needs_a_person = report
            .transcribe_skipped
            .as_ref()
            .map(|r| format!("{}; speech waits untranscribed", say::remedy(r)));
    }
    // With --json the events were the output: the last, `job_finished`,
    // carries this report (and a dry run's requests).
    if let Some(requests) = stage.dry_run.as_ref().filter(|_| !ctx.out.json) {
        print_dry_run(ctx, stage, requests);
    }
    if !ctx.out.json && !ctx.out.quiet {
        anstream::println!(
            "{} {} conversations ({} with estimated times), {} segments waiting for transcription.",
            paint(GOOD, "done:"),
            report.conversations,
            report.estimated_conversations,
            report.pending_segments
        );
        if let Some(r) = &stage.report {
            anstream::println!(
                "{} {}",
                paint(GOOD, "push:"),
                push_cmd::summary(r, stage, crate::clock::UtcMillis::now())
            );
        }
    }
    let import_code = import_exit_code(&report.import);
    let pull_code = pull_exit_code(&report);
    let push_code = match &stage.report {
        Some(r) => push_cmd::exit_code(r)?,
        None => ExitCode::NothingToDo,
    };
    let stt_code = report.transcribe.as_ref().map(transcribe::exit_code);
    let did_something = report.import.new_captures().len() + report.vad.captures > 0
        || pull_code == ExitCode::Done
        || stt_code == Some(ExitCode::Done)
        || push_code == ExitCode::Done
        || stage.dry_run.as_ref().is_some_and(|r| !r.is_empty());
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

/// The pull's part of the exit code: 5 when it stopped half-way (run again
/// to continue), 3 when audio on a card was unreadable, 0 when it brought
/// something new, else 9.
fn pull_exit_code(report: &AutoReport) -> ExitCode {
    let (new, code) = match &report.pulled {
        None => return ExitCode::NothingToDo,
        Some(Pulled::Pendant(s)) if s.error.is_some() => return ExitCode::Temporary,
        Some(Pulled::Image(s)) if s.lost_audio() => return ExitCode::Partial,
        Some(Pulled::Pendant(s)) => (s.stored.new_records, ExitCode::Done),
        Some(Pulled::Image(s)) => (s.stored.new_records, ExitCode::Done),
    };
    if new > 0 { code } else { ExitCode::NothingToDo }
}
