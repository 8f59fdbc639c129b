//! `omi-sync merge`, `split`, `undo`, `redo`: a person's edits to the timeline.

use serde::Serialize;

use super::Context;
use super::timeline::{ConversationJson, TimelineJson, wall};
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::store::{EditAction, EditKind};
use crate::term::{BOLD, GOOD, paint};
use crate::timeline::{Timeline, join_overrides, split_override};

#[derive(Serialize)]
struct EditJson {
    action: &'static str,
    summary: String,
    conversations: Vec<ConversationJson>,
}

/// The conversations that now hold these segment ids.
fn touched(t: &Timeline, segment_ids: &[i64]) -> Vec<ConversationJson> {
    let mut ids: Vec<&str> = segment_ids
        .iter()
        .filter_map(|s| t.conversation_of(*s).map(|c| c.id.as_str()))
        .collect();
    ids.dedup();
    let all = TimelineJson::from_timeline(t);
    all.conversations
        .into_iter()
        .filter(|c| ids.contains(&c.id.as_str()))
        .collect()
}

fn report(
    ctx: &Context,
    action: &'static str,
    summary: String,
    conversations: Vec<ConversationJson>,
) {
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
    let before = ctx.timeline(&ledger)?;
    let overrides = join_overrides(&before, a, b).map_err(Failure::usage)?;
    let (ca, cb) = (
        before.find(a).map_err(Failure::usage)?,
        before.find(b).map_err(Failure::usage)?,
    );
    let summary = format!("Merged conversations {} and {}", ca.id, cb.id);
    let anchor_segment = ca.segments[0].id;
    if overrides.is_empty() {
        return Err(Failure::usage(anyhow::anyhow!(
            "nothing to merge between {} and {}",
            ca.id,
            cb.id
        )));
    }
    ledger.record_edit(EditKind::Merge, &summary, &overrides)?;
    let after = ctx.timeline(&ledger)?;
    report(ctx, "merge", summary, touched(&after, &[anchor_segment]));
    Ok(ExitCode::Done)
}

/// `omi-sync split SEGMENT_ID`
pub fn split(ctx: &Context, segment: i64) -> CommandResult {
    let mut ledger = ctx.ledger()?;
    let before = ctx.timeline(&ledger)?;
    let o = split_override(&before, segment).map_err(Failure::usage)?;
    let conv = before
        .conversation_of(segment)
        .expect("split_override found it");
    let first = conv.segments[0].id;
    let summary = format!(
        "Split conversation {} at segment {segment} ({})",
        conv.id,
        wall(o.anchor)
    );
    ledger.record_edit(EditKind::Split, &summary, &[o])?;
    let after = ctx.timeline(&ledger)?;
    report(ctx, "split", summary, touched(&after, &[first, segment]));
    Ok(ExitCode::Done)
}

fn walk_log(
    ctx: &Context,
    action: &'static str,
    step: impl FnOnce(&mut crate::store::Ledger) -> Result<Option<EditAction>, crate::store::StoreError>,
) -> CommandResult {
    let mut ledger = ctx.ledger()?;
    match step(&mut ledger)? {
        None => {
            if ctx.out.json {
                ctx.out.print_json(&EditJson {
                    action,
                    summary: format!("nothing to {action}"),
                    conversations: Vec::new(),
                });
            } else {
                anstream::println!("Nothing to {action}.");
            }
            Ok(ExitCode::NothingToDo)
        }
        Some(done) => {
            let verb = if action == "undo" { "Undid" } else { "Redid" };
            let after = ctx.timeline(&ledger)?;
            let segs: Vec<i64> = done
                .overrides
                .iter()
                .filter_map(|o| {
                    after
                        .conversations
                        .iter()
                        .flat_map(|c| c.segments.iter())
                        .find(|s| s.device == o.device && s.start >= o.anchor)
                        .map(|s| s.id)
                })
                .collect();
            report(
                ctx,
                action,
                format!("{verb}: {}", done.summary),
                touched(&after, &segs),
            );
            Ok(ExitCode::Done)
        }
    }
}

/// `omi-sync undo`
pub fn undo(ctx: &Context) -> CommandResult {
    walk_log(ctx, "undo", |l| l.undo())
}

/// `omi-sync redo`
pub fn redo(ctx: &Context) -> CommandResult {
    walk_log(ctx, "redo", |l| l.redo())
}
