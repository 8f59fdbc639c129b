//! `omi-sync storage` and `omi-sync storage prune [--dry-run]`: what local
//! audio is kept and why, and freeing what is due ([`crate::engine::janitor`]).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Context;
use crate::cli::StorageCommand;
use crate::clock::{SystemClock, UtcMillis};
use crate::engine::janitor::{self, CaptureCustody, Custody, KeptFor, PruneError, Schedule};
use crate::engine::jobs::JobError;
use crate::exit::{CommandResult, ExitCode};
use crate::term::say::{self, wall};
use crate::term::{DIM, GOOD, WARN, paint};

/// `omi-sync storage [prune [--dry-run]]`
pub fn run(ctx: &Context, action: Option<&StorageCommand>) -> CommandResult {
    let ledger = ctx.ledger()?;
    match action {
        None => {
            let sched = janitor::schedule(&ctx.ws, &ledger, UtcMillis::now())
                .map_err(|e| ctx.failure(JobError::Store(e)))?;
            show(ctx, &sched);
            Ok(ExitCode::Done)
        }
        Some(StorageCommand::Prune { dry_run }) => {
            let report =
                janitor::prune(&ctx.ws, &ledger, &SystemClock, *dry_run).map_err(|e| match e {
                    PruneError::Store(e) => ctx.failure(JobError::Store(e)),
                    PruneError::Busy(e) => ctx.failure(JobError::Lock(e)),
                })?;
            if ctx.out.json {
                ctx.out.print_json(&report);
            } else {
                for f in &report.freed {
                    anstream::println!(
                        "{} capture {} ({}, {}), due {}",
                        if report.dry_run {
                            "would free"
                        } else {
                            "freed"
                        },
                        f.capture_id,
                        f.file_name,
                        say::bytes(f.bytes),
                        wall(f.due)
                    );
                }
                for f in &report.failed {
                    anstream::println!(
                        "{} capture {} ({}): {}",
                        paint(WARN, "not freed:"),
                        f.capture_id,
                        f.file_name,
                        f.error
                    );
                }
                anstream::println!(
                    "{} {}",
                    paint(GOOD, "storage:"),
                    say::stage_report(&crate::engine::report::StageReport::Cleanup(report.clone()))
                );
            }
            Ok(if !report.failed.is_empty() {
                ExitCode::Partial
            } else if report.freed.is_empty() {
                ExitCode::NothingToDo
            } else {
                ExitCode::Done
            })
        }
    }
}

/// The schedule as `storage --json` prints it.
#[derive(Serialize)]
struct StorageJson<'a> {
    kept_bytes: u64,
    due_now_bytes: u64,
    #[serde(flatten)]
    schedule: &'a Schedule,
}

fn show(ctx: &Context, sched: &Schedule) {
    let (kept, due_now) = sched.bytes(sched.at);
    if ctx.out.json {
        ctx.out.print_json(&StorageJson {
            kept_bytes: kept,
            due_now_bytes: due_now,
            schedule: sched,
        });
        return;
    }
    let window = match sched.keep_ms {
        Some(ms) => format!("{} days after the cloud confirms it", ms / 86_400_000),
        None => "for ever ([storage] keep_days = \"never\")".into(),
    };
    anstream::println!(
        "Local audio: {} in {} captures; kept {window}.",
        say::bytes(kept),
        sched
            .captures
            .iter()
            .filter(|c| !matches!(c.custody, Custody::Freed { .. }))
            .count()
    );
    // Kept, by reason.
    let mut by_reason: BTreeMap<String, (usize, u64)> = BTreeMap::new();
    for c in &sched.captures {
        if let Custody::Kept { why } = &c.custody {
            let e = by_reason.entry(reason(why)).or_default();
            e.0 += 1;
            e.1 += c.bytes;
        }
    }
    for (why, (n, b)) in &by_reason {
        anstream::println!("  kept: {n} ({}) {why}", say::bytes(*b));
    }
    let mut due: Vec<&CaptureCustody> = sched
        .captures
        .iter()
        .filter(|c| matches!(c.custody, Custody::Due { .. }))
        .collect();
    due.sort_by_key(|c| match c.custody {
        Custody::Due { at } => at,
        _ => UtcMillis(i64::MAX),
    });
    for c in &due {
        let Custody::Due { at } = c.custody else {
            continue;
        };
        let when = if at <= sched.at {
            paint(GOOD, "due now").to_string()
        } else {
            format!("freed from {}", wall(at))
        };
        anstream::println!(
            "  capture {} ({}, {}): {when}",
            c.capture_id,
            c.file_name,
            say::bytes(c.bytes)
        );
    }
    let freed = sched
        .captures
        .iter()
        .filter(|c| matches!(c.custody, Custody::Freed { .. }))
        .count();
    if freed > 0 {
        anstream::println!(
            "{}",
            paint(DIM, format!("  {freed} captures freed earlier"))
        );
    }
    for c in sched.captures.iter().filter(|c| c.free_error.is_some()) {
        anstream::println!(
            "  {} capture {}: {}",
            paint(WARN, "last free failed:"),
            c.capture_id,
            c.free_error.as_deref().unwrap_or_default()
        );
    }
    if due_now > 0 {
        anstream::println!(
            "{} is due now: `omi-sync storage prune` frees it (`--dry-run` lists it), as the next --auto run will.",
            say::bytes(due_now)
        );
    }
}

/// Why a capture is kept, in words.
fn reason(why: &KeptFor) -> String {
    match why {
        KeptFor::NotAnalysed => "not searched for speech yet".into(),
        KeptFor::Untranscribed { .. } => "speech not transcribed yet".into(),
        KeptFor::Held { .. } => "a conversation held back (estimated times)".into(),
        KeptFor::NotPushed { .. } => "a conversation not confirmed in the cloud yet".into(),
        KeptFor::Refused { .. } => "a conversation the cloud refused".into(),
        KeptFor::KeptForever => "kept for ever".into(),
    }
}
