//! The speech-and-conversations section: speech per hour of audio; every
//! conversation with the reason it starts where it does (gap, device,
//! clock, edit); very short conversations (the "chopped up" complaint) and
//! why each was cut; the edit log and which edits are not in the cloud yet;
//! audio held back because its time is estimated.

use super::Finding;
use crate::engine::push::{CloudStatus, Hold};
use crate::engine::remedy::Remedy;
use crate::engine::snapshot::Snapshot;
use crate::engine::workspace::Workspace;
use crate::store::{EditKind, EditState, LedgerReader, StoreError};
use crate::timeline::{BoundaryReason, Conversation, boundary_reasons};

/// A conversation shorter than this is "very short".
pub const SHORT_CONVERSATION_MS: i64 = 60_000;

/// What the section found, and the reasons (for the chart).
pub struct SpeechFindings {
    /// Its lines.
    pub findings: Vec<Finding>,
    /// The boundary reason of each conversation, in timeline order.
    pub reasons: Vec<BoundaryReason>,
}

fn seconds(ms: i64) -> String {
    crate::term::duration(ms as f64 / 1000.0)
}

fn conversation_line(c: &Conversation, reason: &BoundaryReason, text: bool) -> String {
    let mut line = format!(
        "conversation {} by {}, {} to {} ({}), {} segment(s), starts: {}",
        c.id,
        c.device,
        c.started_at.to_rfc3339(),
        c.finished_at.to_rfc3339(),
        seconds(c.finished_at.since(c.started_at)),
        c.segments.len(),
        reason.short()
    );
    if text {
        let words: Vec<&str> = c.members().filter_map(|s| s.text.as_deref()).collect();
        if !words.is_empty() {
            line.push_str(": ");
            line.push_str(&words.join(" "));
        }
    }
    line
}

/// Checks the speech and conversations of `snap` (read from `reader`).
pub fn check(
    reader: &LedgerReader,
    snap: &Snapshot,
    ws: &Workspace,
    include_transcripts: bool,
) -> Result<SpeechFindings, StoreError> {
    let overrides = reader.active_overrides()?;
    let tl = &snap.timeline;
    let reasons = boundary_reasons(tl, &overrides, &ws.rules());
    let mut out = Vec::new();

    let speech_ms: i64 = tl
        .conversations
        .iter()
        .flat_map(|c| c.segments.iter())
        .map(|s| s.end.since(s.start))
        .sum();
    let hours = snap.overview.audio_s / 3600.0;
    out.push(Finding::ok(
        "speech.per_hour",
        if hours > 0.0 {
            format!(
                "{} of speech in {} of audio ({} per hour)",
                seconds(speech_ms),
                crate::term::duration(snap.overview.audio_s),
                seconds((speech_ms as f64 / hours) as i64)
            )
        } else {
            "no audio in the ledger".to_string()
        },
    ));

    let mut by_reason: std::collections::BTreeMap<String, usize> = Default::default();
    for r in &reasons {
        let key = match r {
            BoundaryReason::Gap { .. } => "gap".to_string(),
            other => other.short(),
        };
        *by_reason.entry(key).or_default() += 1;
    }
    out.push(
        Finding::ok(
            "speech.conversations",
            format!(
                "{} conversation(s); they start at: {}",
                tl.conversations.len(),
                by_reason
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
        .detail(
            tl.conversations
                .iter()
                .zip(&reasons)
                .map(|(c, r)| conversation_line(c, r, include_transcripts)),
        ),
    );

    for (c, r) in tl.conversations.iter().zip(&reasons) {
        let len = c.finished_at.since(c.started_at);
        if len < SHORT_CONVERSATION_MS {
            let why = match r {
                BoundaryReason::First => "it is the first of its device and clock".to_string(),
                BoundaryReason::Gap { silence_ms } => format!(
                    "{} of silence before it reach the {} s rule",
                    seconds(*silence_ms),
                    ws.config.timeline.gap_secs
                ),
                BoundaryReason::Edit { .. } => "a person split it there".to_string(),
                BoundaryReason::OtherDevice { device } => {
                    format!("the conversation before it is {device}'s")
                }
                BoundaryReason::OtherClock { .. } => {
                    "the audio before it is on the other clock (wall versus estimated)".to_string()
                }
            };
            out.push(
                Finding::warning(
                    "speech.short_conversation",
                    format!("a very short conversation ({}): {why}", seconds(len)),
                )
                .at(format!("conversation {}", c.id))
                .fix(Remedy::ReviewTimeline),
            );
        }
    }

    let active: Vec<_> = snap
        .edits
        .iter()
        .filter(|e| e.state == EditState::Active)
        .collect();
    let mut unpushed = Vec::new();
    let mut lines = Vec::new();
    for e in &snap.edits {
        let convs: Vec<&Conversation> = e
            .overrides
            .iter()
            .filter_map(|o| {
                tl.conversations.iter().find(|c| {
                    c.device == o.device
                        && c.domain == o.domain
                        && c.started_at <= o.anchor
                        && o.anchor <= c.finished_at
                })
            })
            .collect();
        let pushed = !convs.is_empty()
            && convs.iter().all(|c| {
                matches!(
                    snap.cloud_of(&c.id).map(|s| &s.status),
                    Some(CloudStatus::Pushed { .. })
                )
            });
        let kind = match e.kind {
            EditKind::Merge => "merge",
            EditKind::Split => "split",
        };
        let state = match e.state {
            EditState::Active => "in effect",
            EditState::Undone => "undone",
        };
        lines.push(format!(
            "edit {} ({kind}, {state}, {}): {}{}",
            e.id,
            e.created_at.to_rfc3339(),
            e.summary,
            if e.state == EditState::Active && !pushed {
                "; not pushed yet"
            } else {
                ""
            }
        ));
        if e.state == EditState::Active && !pushed {
            unpushed.push(e.id);
        }
    }
    out.push(
        Finding::ok(
            "speech.edits",
            format!(
                "{} edit(s) in the log, {} in effect, {} of them not pushed yet",
                snap.edits.len(),
                active.len(),
                unpushed.len()
            ),
        )
        .detail(lines),
    );

    let held: Vec<&Conversation> = tl
        .conversations
        .iter()
        .filter(|c| {
            matches!(
                snap.cloud_of(&c.id).map(|s| &s.status),
                Some(CloudStatus::Held {
                    hold: Hold::EstimatedTime { .. }
                })
            )
        })
        .collect();
    if !held.is_empty() {
        let ms: i64 = held.iter().map(|c| c.finished_at.since(c.started_at)).sum();
        out.push(
            Finding::warning(
                "speech.estimated_held",
                format!(
                    "{} conversation(s) ({}) held back from the cloud: their times are estimated",
                    held.len(),
                    seconds(ms)
                ),
            )
            .at(held
                .iter()
                .map(|c| format!("conversation {}", c.id))
                .collect::<Vec<_>>()
                .join(", "))
            .fix(Remedy::ReviewTimeline),
        );
    }
    Ok(SpeechFindings {
        findings: out,
        reasons,
    })
}
