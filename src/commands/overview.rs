//! `omi-sync` with no command: what is in the ledger, and what to do next.

use serde::Serialize;

use super::Context;
use crate::exit::{CommandResult, ExitCode};
use crate::term::{BOLD, DIM, duration, paint};
use crate::timeline::{Domain, SegmentStatus};

#[derive(Serialize)]
struct Overview {
    data_dir: String,
    captures: usize,
    audio_s: f64,
    segments: usize,
    pending: usize,
    speech: usize,
    silent: usize,
    failed: usize,
    conversations: usize,
    estimated_conversations: usize,
}

/// `omi-sync`
pub fn run(ctx: &Context) -> CommandResult {
    let ledger = ctx.ledger()?;
    let captures = ledger.captures()?;
    let mut audio_samples = 0u64;
    for c in &captures {
        audio_samples += ledger
            .runs(c.id)?
            .iter()
            .map(|r| r.run.samples)
            .sum::<u64>();
    }
    let segments = ledger.segments()?;
    let count = |st: SegmentStatus| segments.iter().filter(|s| s.status == st).count();
    let timeline = ctx.timeline(&ledger)?;
    let o = Overview {
        data_dir: ctx.data_dir.display().to_string(),
        captures: captures.len(),
        audio_s: audio_samples as f64 / 16_000.0,
        segments: segments.len(),
        pending: count(SegmentStatus::Pending),
        speech: count(SegmentStatus::Speech),
        silent: count(SegmentStatus::Silent),
        failed: count(SegmentStatus::Failed),
        conversations: timeline.conversations.len(),
        estimated_conversations: timeline
            .conversations
            .iter()
            .filter(|c| c.domain == Domain::Estimated)
            .count(),
    };
    if ctx.out.json {
        ctx.out.print_json(&o);
        return Ok(ExitCode::Done);
    }
    anstream::println!("{} {}", paint(BOLD, "omi-sync"), paint(DIM, &o.data_dir));
    if o.captures == 0 {
        anstream::println!("The ledger is empty. Try the demo: omi-sync --auto --source demo");
        anstream::println!(
            "or import the phone app's files: omi-sync import PATH   (omi-sync --help for more)"
        );
        return Ok(ExitCode::Done);
    }
    anstream::println!(
        "  {} captures, {} of audio",
        o.captures,
        duration(o.audio_s)
    );
    anstream::println!(
        "  {} speech segments: {} waiting for transcription, {} transcribed, {} silent, {} failed",
        o.segments,
        o.pending,
        o.speech,
        o.silent,
        o.failed
    );
    anstream::println!(
        "  {} conversations ({} with estimated times)",
        o.conversations,
        o.estimated_conversations
    );
    anstream::println!(
        "{}",
        paint(
            DIM,
            "Next: omi-sync timeline   (omi-sync --help for every command)"
        )
    );
    Ok(ExitCode::Done)
}
