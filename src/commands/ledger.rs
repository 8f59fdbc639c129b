//! `omi-sync ledger rebuild`: a new ledger from the captured audio when the
//! old one is lost ([`crate::store::rebuild`]).

use super::Context;
use crate::engine::jobs::{Job, JobError};
use crate::engine::report::JobReport;
use crate::exit::{CommandResult, ExitCode};
use crate::store::Ledger;
use crate::term::{DIM, WARN, paint};

/// `omi-sync ledger rebuild`
pub fn rebuild(ctx: &Context) -> CommandResult {
    let rebuilt = Ledger::rebuild(ctx.data_dir()).map_err(|e| ctx.failure(JobError::Store(e)))?;
    let Some((ledger, report)) = rebuilt else {
        if ctx.out.json {
            ctx.out.print_json(&serde_json::json!({ "rebuilt": false }));
        } else {
            anstream::println!("The ledger is fine: nothing to rebuild.");
        }
        return Ok(ExitCode::NothingToDo);
    };
    drop(ledger);
    // Find the speech again, so the timeline is back.
    let JobReport::Vad(vad) = ctx.run_job(Job::Vad { rerun: false }, false)? else {
        unreachable!("a VAD job reports VAD")
    };
    if ctx.out.json {
        ctx.out.print_json(&serde_json::json!({
            "rebuilt": true,
            "ledger": report,
            "vad": vad,
        }));
    } else {
        for p in &report.kept_aside {
            anstream::println!("kept the old ledger file as {}", p.display());
        }
        anstream::println!(
            "Recorded {} phone-app captures and {} pendant records again; found {} speech segments.",
            report.phone_files,
            report.ring_records,
            vad.segments
        );
        if !report.without_card.is_empty() {
            anstream::println!(
                "{} {} captures had no card: recorded with an estimated time, held from the cloud until reviewed.",
                paint(WARN, "!"),
                report.without_card.len()
            );
        }
        for e in &report.not_recovered {
            anstream::println!("{} not recorded (its file stays): {e}", paint(WARN, "!"));
        }
        anstream::println!(
            "Transcripts, merges, splits and the push record were only in the old ledger. Next: {}, then check {} before pushing.",
            paint(DIM, "omi-sync transcribe"),
            paint(DIM, "omi-sync timeline")
        );
    }
    Ok(if report.not_recovered.is_empty() {
        ExitCode::Done
    } else {
        ExitCode::Partial
    })
}
