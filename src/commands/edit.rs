//! `omi-sync merge`, `split`, `undo`, `redo`: a person's edits to the
//! timeline, through the engine's edit API.

use serde::Serialize;

use super::Context;
use super::timeline::{ConversationJson, TimelineJson};
use crate::engine::edit::{self, EditFailure, EditOutcome};
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::term::{BOLD, GOOD, paint};

#[derive(Serialize)]
struct EditJson {
    action: &'static str,
    summary: String,
    conversations: Vec<ConversationJson>,
}

fn failure(e: EditFailure) -> Failure {
    match e {
        EditFailure::Store(e) => Failure::from(e),
        refused => Failure::usage(refused),
    }
}

fn report(ctx: &Context, action: &'static str, summary: String, outcome: &EditOutcome) {
    let conversations: Vec<ConversationJson> = TimelineJson::from_timeline(&outcome.timeline)
        .conversations
        .into_iter()
        .filter(|c| outcome.touched.contains(&c.id))
        .collect();
    if ctx.out.json {
        ctx.out.print_json(&EditJson {
            action,
            summary,
            conversations,
        });
        return;
    }
    anstream::println!("{}", paint(GOOD, summary));
    for c in conversations {
        anstream::println!(
            "  {} {}  {} → {}  {} segments",
            paint(BOLD, "conversation"),
            paint(BOLD, &c.id),
            c.started_at,
            c.finished_at,
            c.segments.len()
        );
    }
}

/// `omi-sync merge CONV_A CONV_B`
pub fn merge(ctx: &Context, a: &str, b: &str) -> CommandResult {
    let mut ledger = ctx.ledger()?;
    let done = edit::merge(&mut ledger, &ctx.ws.rules(), a, b).map_err(failure)?;
    report(ctx, "merge", done.summary.clone(), &done);
    Ok(ExitCode::Done)
}

/// `omi-sync split SEGMENT_ID`
pub fn split(ctx: &Context, segment: i64) -> CommandResult {
    let mut ledger = ctx.ledger()?;
    let done = edit::split(&mut ledger, &ctx.ws.rules(), segment).map_err(failure)?;
    report(ctx, "split", done.summary.clone(), &done);
    Ok(ExitCode::Done)
}

fn walked(ctx: &Context, action: &'static str, done: Option<EditOutcome>) -> CommandResult {
    let Some(done) = done else {
        if ctx.out.json {
            ctx.out.print_json(&EditJson {
                action,
                summary: format!("nothing to {action}"),
                conversations: Vec::new(),
            });
        } else {
            anstream::println!("Nothing to {action}.");
        }
        return Ok(ExitCode::NothingToDo);
    };
    let verb = if action == "undo" { "Undid" } else { "Redid" };
    report(ctx, action, format!("{verb}: {}", done.summary), &done);
    Ok(ExitCode::Done)
}

/// `omi-sync undo`
pub fn undo(ctx: &Context) -> CommandResult {
    let mut ledger = ctx.ledger()?;
    let done = edit::undo(&mut ledger, &ctx.ws.rules())?;
    walked(ctx, "undo", done)
}

/// `omi-sync redo`
pub fn redo(ctx: &Context) -> CommandResult {
    let mut ledger = ctx.ledger()?;
    let done = edit::redo(&mut ledger, &ctx.ws.rules())?;
    walked(ctx, "redo", done)
}
