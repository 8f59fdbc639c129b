//! `omi-sync segments`: every speech segment VAD found.

use serde::Serialize;

use super::Context;
use crate::exit::{CommandResult, ExitCode};
use crate::term::say::{clock_time, wall};
use crate::term::{DIM, WARN, paint};
use crate::timeline::SegmentStatus;

/// One segment in `segments --json`.
#[derive(Debug, Serialize)]
struct SegmentJson<'a> {
    id: i64,
    key: &'a str,
    capture_id: i64,
    device: &'a str,
    clock: &'static str,
    start: String,
    end: String,
    duration_s: f64,
    status: SegmentStatus,
    text: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Debug, Serialize)]
struct SegmentsJson<'a> {
    segments: Vec<SegmentJson<'a>>,
}

/// `omi-sync segments`
pub fn run(ctx: &Context) -> CommandResult {
    let ledger = ctx.ledger()?;
    let rows = ledger.segments()?;
    if ctx.out.json {
        let segments = rows
            .iter()
            .map(|r| SegmentJson {
                id: r.id,
                key: &r.found.key,
                capture_id: r.capture_id,
                device: &r.found.device,
                clock: r.found.clock.shown(),
                start: r.found.start.to_rfc3339(),
                end: r.found.end.to_rfc3339(),
                duration_s: r.found.end.since(r.found.start) as f64 / 1000.0,
                status: r.status,
                text: r.text.as_deref(),
                error: r.error.as_deref(),
            })
            .collect();
        ctx.out.print_json(&SegmentsJson { segments });
        return Ok(ExitCode::Done);
    }
    if rows.is_empty() {
        anstream::println!("No speech segments yet. Import some audio first: omi-sync import PATH");
        return Ok(ExitCode::NothingToDo);
    }
    anstream::println!(
        "{}",
        paint(
            DIM,
            format!(
                "{:>6}  {:<19}  {:>12}  {:>6}  {:<8} {:<9} status",
                "id", "date (UTC)", "end", "secs", "device", "clock"
            )
        )
    );
    for r in &rows {
        let s = &r.found;
        let clock = s.clock.shown();
        anstream::println!(
            "{:>6}  {}  {:>12}  {:>6.1}  {:<8} {:<9} {}{}",
            r.id,
            wall(s.start),
            clock_time(s.end),
            s.end.since(s.start) as f64 / 1000.0,
            s.device,
            if clock == "wall" {
                clock.to_string()
            } else {
                paint(WARN, format!("{clock:<9}"))
            },
            r.status.as_str(),
            r.text
                .as_deref()
                .map(|t| format!("  {t}"))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::Done)
}
