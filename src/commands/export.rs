//! `omi-sync export`: a segment's or a conversation's audio as a WAV file.

use std::path::PathBuf;

use anyhow::anyhow;

use super::Context;
use crate::engine::export::{Clip, ExportError, write_wav};
use crate::exit::{CommandResult, ExitCode, Failure};
use crate::store::LedgerReader;
use crate::term::{GOOD, duration, paint};

fn failure(e: ExportError) -> Failure {
    match e {
        ExportError::Store(e) => Failure::from(e),
        ExportError::Cancelled => Failure::new(
            ExitCode::Interrupted,
            anyhow!("stopped on request; no file was left behind"),
        ),
        ExportError::Write { ref source, .. } if crate::disk::is_full(source) => {
            Failure::new(ExitCode::Fatal, e)
        }
        other => Failure::new(ExitCode::Failed, other),
    }
}

/// `omi-sync export --segment ID | --conversation CONV [-o FILE]`
pub fn run(
    ctx: &Context,
    segment: Option<i64>,
    conversation: Option<&str>,
    output: Option<PathBuf>,
) -> CommandResult {
    let ledger = LedgerReader::open(ctx.data_dir()).map_err(Failure::from)?;
    let (ids, name) = match (segment, conversation) {
        (Some(id), _) => (vec![id], format!("segment-{id}.wav")),
        (None, Some(c)) => {
            let timeline = ledger.timeline(&ctx.ws.rules())?;
            let conv = timeline.find(c).map_err(Failure::usage)?;
            let ids = conv.members().map(|s| s.id).collect();
            (ids, format!("conversation-{}.wav", conv.id))
        }
        (None, None) => unreachable!("clap requires one of them"),
    };
    let clip = Clip::of(&ledger, &ids).map_err(failure)?;
    let path = output.unwrap_or_else(|| PathBuf::from(name));
    let done = write_wav(ctx.data_dir(), &clip, &path, &ctx.cancel).map_err(failure)?;
    if ctx.out.json {
        ctx.out.print_json(&done);
    } else if !ctx.out.quiet {
        anstream::println!(
            "{} {} ({} segments, {})",
            paint(GOOD, "wrote"),
            done.path.display(),
            done.segments,
            duration(done.seconds)
        );
    }
    Ok(ExitCode::Done)
}
