//! The transcription section: segments waiting for text and those that
//! failed (grouped by reason, with their ids), the engine and model set up,
//! and the segments transcribed with no words (silence, or speech whose
//! every piece the hallucination guards dropped).

use std::collections::BTreeMap;

use super::Finding;
use crate::engine::remedy::Remedy;
use crate::engine::workspace::Workspace;
use crate::store::{LedgerReader, StoreError};
use crate::stt::engine::EngineKind;
use crate::timeline::SegmentStatus;

/// At most this many segment ids are named per line.
const IDS_SHOWN: usize = 20;

fn ids(v: &[i64]) -> String {
    let mut s: Vec<String> = v.iter().take(IDS_SHOWN).map(|i| i.to_string()).collect();
    if v.len() > IDS_SHOWN {
        s.push(format!("and {} more", v.len() - IDS_SHOWN));
    }
    format!("segment {}", s.join(", "))
}

/// Checks the transcription state of `reader`'s ledger under `ws`.
pub fn check(reader: &LedgerReader, ws: &Workspace) -> Result<Vec<Finding>, StoreError> {
    let stt = &ws.config.stt;
    let mut out = vec![Finding::ok(
        "transcription.engine",
        match stt.engine {
            EngineKind::Whisper => format!(
                "engine whisper (local), model `{}`{}",
                stt.model,
                stt.model_path
                    .as_ref()
                    .map_or_else(String::new, |p| format!(" from {}", p.display()))
            ),
            other => format!("engine {}", other.name()),
        },
    )];
    let segments = reader.segments()?;
    let mut pending = Vec::new();
    let mut failed: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut silent = 0usize;
    for s in &segments {
        match s.status {
            SegmentStatus::Pending => pending.push(s.id),
            SegmentStatus::Failed => failed
                .entry(
                    s.error
                        .clone()
                        .unwrap_or_else(|| "no reason recorded".into()),
                )
                .or_default()
                .push(s.id),
            SegmentStatus::Silent => silent += 1,
            SegmentStatus::Speech => {}
        }
    }
    out.push(if pending.is_empty() {
        Finding::ok(
            "transcription.pending",
            "no segment waits for transcription",
        )
    } else {
        Finding::warning(
            "transcription.pending",
            format!("{} segment(s) wait for transcription", pending.len()),
        )
        .at(ids(&pending))
        .fix(Remedy::Transcribe)
    });
    for (why, segs) in &failed {
        out.push(
            Finding::problem(
                "transcription.failed",
                format!("{} segment(s) failed: {why}", segs.len()),
            )
            .at(ids(segs))
            .fix(Remedy::Transcribe),
        );
    }
    out.push(Finding::ok(
        "transcription.no_words",
        format!(
            "{silent} of {} segment(s) got no words (silence, or everything the hallucination \
             guards dropped; the guards' drops are logged with -vv while transcribing, not kept)",
            segments.len()
        ),
    ));
    Ok(out)
}
