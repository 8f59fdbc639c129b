//! `omi-sync` with no command (and no terminal): what is in the ledger, and
//! what to do next.

use serde::Serialize;

use super::Context;
use crate::engine::overview::Overview;
use crate::exit::{CommandResult, ExitCode};
use crate::term::{BOLD, DIM, duration, paint};

#[derive(Serialize)]
struct OverviewJson<'a> {
    data_dir: String,
    #[serde(flatten)]
    overview: &'a Overview,
}

/// `omi-sync`
pub fn run(ctx: &Context) -> CommandResult {
    let ledger = ctx.ledger()?;
    let timeline = ctx.ws.timeline(&ledger)?;
    let o = Overview::of(&ledger, &timeline)?;
    let data_dir = ctx.data_dir().display().to_string();
    if ctx.out.json {
        ctx.out.print_json(&OverviewJson {
            data_dir,
            overview: &o,
        });
        return Ok(ExitCode::Done);
    }
    anstream::println!("{} {}", paint(BOLD, "omi-sync"), paint(DIM, &data_dir));
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
