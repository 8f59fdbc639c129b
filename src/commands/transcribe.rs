//! `omi-sync transcribe`: speech segments to text, through the engine's
//! transcription job.

use super::Context;
use crate::cli::TranscribeArgs;
use crate::engine::jobs::Job;
use crate::engine::report::JobReport;
use crate::engine::transcribe::TranscribeReport;
use crate::engine::transcribe::setup::SttChoice;
use crate::exit::{CommandResult, ExitCode};
use crate::term::{GOOD, paint};

/// The engine choice from the flags.
pub(super) fn choice(args: &TranscribeArgs) -> SttChoice {
    SttChoice {
        engine: args.engine,
        workers: args.workers.map(usize::from),
        threads: args.threads.map(usize::from),
        model: args.model.clone(),
    }
}

/// 9 when nothing was waiting, 3 when some segments failed or stay pending.
pub(super) fn exit_code(r: &TranscribeReport) -> ExitCode {
    if r.segments == 0 {
        ExitCode::NothingToDo
    } else if r.failed > 0 || r.left_pending > 0 {
        ExitCode::Partial
    } else {
        ExitCode::Done
    }
}

/// `omi-sync transcribe [--engine E] [--workers N] [--threads N] [--model PATH] [--again CONV]`
pub fn run(ctx: &Context, args: &TranscribeArgs) -> CommandResult {
    if let Some(conversation) = &args.again {
        return again(ctx, conversation, args);
    }
    let JobReport::Transcribe(report) = ctx.run_job(Job::Transcribe(choice(args)), false)? else {
        unreachable!("a transcription job reports transcription")
    };
    if ctx.out.json {
        ctx.out.print_json(&report);
    } else if report.segments == 0 {
        ctx.out
            .note("Nothing to transcribe: every segment has its transcript.");
    } else if !ctx.out.quiet {
        anstream::println!(
            "{} {} segments with words, {} silent, {} failed, {} left for the next run \
                 ({:.0} s of speech in {:.1} s). `omi-sync timeline` shows the text.",
            paint(GOOD, "transcribed:"),
            report.speech,
            report.silent,
            report.failed,
            report.left_pending,
            report.speech_s,
            report.elapsed_s
        );
    }
    Ok(exit_code(&report))
}

/// `omi-sync transcribe --again CONV`: one conversation's text done again.
fn again(ctx: &Context, conversation: &str, args: &TranscribeArgs) -> CommandResult {
    let job = Job::Retranscribe {
        conversation: conversation.to_string(),
        choice: choice(args),
    };
    let JobReport::Retranscribe(report) = ctx.run_job(job, false)? else {
        unreachable!("a re-transcription reports itself")
    };
    if ctx.out.json {
        ctx.out.print_json(&report);
    } else if !ctx.out.quiet {
        let t = &report.transcribe;
        anstream::println!(
            "{} conversation {}: {} segments with words, {} silent, {} failed, {} left for the next run; the text {}.",
            paint(GOOD, "transcribed again:"),
            report.conversation,
            t.speech,
            t.silent,
            t.failed,
            t.left_pending,
            if report.changed {
                "changed"
            } else {
                "is the same"
            }
        );
        if report.now != [report.conversation.clone()] {
            anstream::println!("  it is now: {}", report.now.join(", "));
        }
        if let Some(cloud_id) = &report.replaces {
            anstream::println!(
                "  the next `omi-sync push` replaces its cloud copy {cloud_id} with the new text"
            );
        }
    }
    Ok(exit_code(&report.transcribe))
}
