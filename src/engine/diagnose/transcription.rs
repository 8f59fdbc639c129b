//! The transcription section: segments waiting for text and those that
//! failed (grouped by reason, with their ids), the engine and model set up,
//! what the hallucination guards dropped (counts per guard, and each
//! segment with its conversation and time; the dropped text only with
//! `--include-transcripts`), and the segments transcribed with no words
//! (silence, or speech whose every piece the guards dropped).

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::Finding;
use crate::engine::remedy::Remedy;
use crate::engine::snapshot::Snapshot;
use crate::engine::workspace::Workspace;
use crate::store::{DropRow, LedgerReader, StoreError};
use crate::stt::engine::EngineKind;
use crate::stt::guards::DropReason;
use crate::timeline::SegmentStatus;

/// At most this many segments get a detail line about their drops (the
/// JSON report's `guard_drops` lists every one).
const DROP_LINES_SHOWN: usize = 200;

/// Text a hallucination guard dropped from a segment, as the JSON report
/// lists it (`guard_drops`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardDrop {
    /// The segment.
    pub segment: i64,
    /// The conversation the segment is in, if any (a silent segment outside
    /// every conversation is in none).
    pub conversation: Option<String>,
    /// Where in the audio, RFC 3339 UTC.
    pub at: String,
    /// Which guard (`no_speech`, `low_confidence`, `annotation`,
    /// `noise_phrase`, `silence`, `loop`, `outside_audio`).
    pub guard: String,
    /// How many pieces or words in a row it dropped there.
    pub pieces: u32,
    /// The engine that heard it.
    pub engine: String,
    /// Its model, when known.
    pub model: Option<String>,
    /// When that transcription ran, RFC 3339 UTC.
    pub transcribed_at: String,
    /// The dropped text: only with `--include-transcripts`.
    pub text: Option<String>,
}

/// What the section found.
pub struct TranscriptionFindings {
    /// Its lines.
    pub findings: Vec<Finding>,
    /// Every drop, in segment order.
    pub drops: Vec<GuardDrop>,
}

/// At most this many segment ids are named per line.
const IDS_SHOWN: usize = 20;

fn ids(v: &[i64]) -> String {
    let mut s: Vec<String> = v.iter().take(IDS_SHOWN).map(|i| i.to_string()).collect();
    if v.len() > IDS_SHOWN {
        s.push(format!("and {} more", v.len() - IDS_SHOWN));
    }
    format!("segment {}", s.join(", "))
}

/// Checks the transcription state of `reader`'s ledger (whose conversations
/// `snap` holds) under `ws`; dropped text is kept only when `include_text`.
pub fn check(
    reader: &LedgerReader,
    snap: &Snapshot,
    ws: &Workspace,
    include_text: bool,
) -> Result<TranscriptionFindings, StoreError> {
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
    let rows = reader.guard_drops()?;
    let conversation: HashMap<i64, &str> = snap
        .timeline
        .conversations
        .iter()
        .flat_map(|c| c.segment_ids().map(move |id| (id, c.id.as_str())))
        .collect();
    let drops: Vec<GuardDrop> = rows
        .iter()
        .map(|r| GuardDrop {
            segment: r.segment_id,
            conversation: conversation.get(&r.segment_id).map(|c| c.to_string()),
            at: r.drop.at.to_rfc3339(),
            guard: r.drop.guard.as_str().to_string(),
            pieces: r.drop.pieces,
            engine: r.engine.clone(),
            model: r.model.clone(),
            transcribed_at: r.dropped_at.to_rfc3339(),
            text: include_text.then(|| r.drop.text.clone()),
        })
        .collect();
    out.push(drops_line(&rows, &drops));
    let with_drops: HashSet<i64> = rows.iter().map(|r| r.segment_id).collect();
    let all_dropped = segments
        .iter()
        .filter(|s| s.status == SegmentStatus::Silent && with_drops.contains(&s.id))
        .count();
    out.push(Finding::ok(
        "transcription.no_words",
        if silent == 0 {
            format!("0 of {} segment(s) got no words", segments.len())
        } else {
            format!(
                "{silent} of {} segment(s) got no words: {all_dropped} because the hallucination \
                 guards dropped everything heard in them (transcription.guard_drops), {} silence",
                segments.len(),
                silent - all_dropped
            )
        },
    ));
    Ok(TranscriptionFindings {
        findings: out,
        drops,
    })
}

/// The `transcription.guard_drops` line: counts per guard, where, and a
/// detail line per segment (with the text when `drops` carries it).
fn drops_line(rows: &[DropRow], drops: &[GuardDrop]) -> Finding {
    if rows.is_empty() {
        return Finding::ok(
            "transcription.guard_drops",
            "the hallucination guards dropped nothing from the stored transcripts",
        );
    }
    let mut per_guard: BTreeMap<usize, (DropReason, u32)> = BTreeMap::new();
    for r in rows {
        let i = DropReason::ALL
            .iter()
            .position(|g| *g == r.drop.guard)
            .unwrap_or(0);
        per_guard.entry(i).or_insert((r.drop.guard, 0)).1 += r.drop.pieces;
    }
    let mut by_segment: BTreeMap<i64, Vec<&GuardDrop>> = BTreeMap::new();
    for d in drops {
        by_segment.entry(d.segment).or_default().push(d);
    }
    let seg_ids: Vec<i64> = by_segment.keys().copied().collect();
    let mut detail: Vec<String> = per_guard
        .values()
        .map(|(g, n)| format!("{}: {n} ({})", g.as_str(), g.describe()))
        .collect();
    for (id, list) in by_segment.iter().take(DROP_LINES_SHOWN) {
        let first = list[0];
        let what: Vec<String> = list
            .iter()
            .map(|d| match &d.text {
                Some(t) => format!("{} \"{t}\"", d.guard),
                None => format!("{} x{}", d.guard, d.pieces),
            })
            .collect();
        detail.push(format!(
            "segment {id} ({}, {}), heard by {}{}: {}",
            first.conversation.as_deref().map_or_else(
                || "in no conversation".to_string(),
                |c| format!("conversation {c}")
            ),
            first.at,
            first.engine,
            first
                .model
                .as_deref()
                .map_or_else(String::new, |m| format!(" ({m})")),
            what.join(", ")
        ));
    }
    if by_segment.len() > DROP_LINES_SHOWN {
        detail.push(format!(
            "and {} more segment(s) (see guard_drops in --json)",
            by_segment.len() - DROP_LINES_SHOWN
        ));
    }
    let pieces: u32 = per_guard.values().map(|(_, n)| n).sum();
    Finding::ok(
        "transcription.guard_drops",
        format!(
            "the hallucination guards dropped {pieces} piece(s) of text from {} segment(s): {}",
            seg_ids.len(),
            per_guard
                .values()
                .map(|(g, n)| format!("{} {n}", g.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
    .at(ids(&seg_ids))
    .detail(detail)
}
