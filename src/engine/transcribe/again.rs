//! Re-transcription: the text of one conversation done again, with the same
//! engine or another.
//!
//! The conversation's segments are put back to `pending`
//! ([`Ledger::reset_transcripts`]) and transcribed through the same pipeline
//! as everything else, restricted to them ([`super::transcribe_only`]), so
//! results land one by one and a cancelled run leaves the rest pending for
//! the next `transcribe`. When the conversation was already pushed and its
//! text changed, its cloud copy is marked for replacement (delete, then a
//! new create), and the push plan shows the new text replacing it.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::{TranscribeError, TranscribeOptions, TranscribeReport, transcribe_only};
use crate::engine::ctx::Ctx;
use crate::engine::push::{self, CloudStatus, PushOptions};
use crate::store::{Ledger, StoreError};
use crate::stt::engine::Engine;
use crate::timeline::{Conversation, Rules};

/// What a re-transcription did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AgainReport {
    /// The conversation, as it was named when the run started.
    pub conversation: String,
    /// The conversations now holding its segments (a segment heard as
    /// silence before may now be speech, which changes the id).
    pub now: Vec<String>,
    /// Whether the text differs from before.
    pub changed: bool,
    /// The cloud copy this text will replace at the next push, if it was pushed.
    pub replaces: Option<String>,
    /// The transcription run.
    pub transcribe: TranscribeReport,
}

/// The transcript of a conversation, member by member.
fn text_of(conv: &Conversation) -> Vec<Option<String>> {
    conv.segments.iter().map(|s| s.text.clone()).collect()
}

/// Transcribes `conv` (a conversation of `ledger`'s timeline under `rules`)
/// again with `engine`; `push` are the options the push plan runs with.
pub fn again(
    ledger: &mut Ledger,
    conv: &Conversation,
    engine: &Engine,
    opts: &TranscribeOptions,
    push: &PushOptions,
    ctx: &Ctx,
) -> Result<AgainReport, TranscribeError> {
    let ids: Vec<i64> = conv.segment_ids().collect();
    let pushed = pushed_copy(ledger, &opts.rules, &conv.id, push)?;
    ledger.reset_transcripts(&ids)?;
    let only: HashSet<i64> = ids.iter().copied().collect();
    let transcribe = transcribe_only(ledger, engine, opts, Some(&only), ctx)?;
    let after = ledger.timeline(&opts.rules)?;
    let mut now: Vec<String> = Vec::new();
    for c in &after.conversations {
        if c.segment_ids().any(|id| only.contains(&id)) {
            now.push(c.id.clone());
        }
    }
    let same = after.conversations.iter().find(|c| c.id == conv.id);
    let changed = same.is_none_or(|c| text_of(c) != text_of(conv));
    let replaces = match (pushed, same) {
        (Some((session_id, cloud_id)), Some(c)) if changed && c.is_transcribed() => {
            // Same members, new words: the cloud copy goes, the new text is created.
            ledger.queue_delete(&session_id)?;
            Some(cloud_id)
        }
        // New members: the push plan retracts the old copy by itself.
        (Some((_, cloud_id)), None) => Some(cloud_id),
        _ => None,
    };
    Ok(AgainReport {
        conversation: conv.id.clone(),
        now,
        changed,
        replaces,
        transcribe,
    })
}

/// The session and cloud ids of the pushed copy of conversation `id`.
fn pushed_copy(
    ledger: &Ledger,
    rules: &Rules,
    id: &str,
    opts: &PushOptions,
) -> Result<Option<(String, String)>, StoreError> {
    let timeline = ledger.timeline(rules)?;
    let plan = push::plan(ledger, &timeline, opts)?;
    Ok(plan
        .conversations
        .into_iter()
        .find(|c| c.conversation == id)
        .and_then(|c| match c.status {
            CloudStatus::Pushed {
                session_id,
                cloud_id,
            } => Some((session_id, cloud_id)),
            _ => None,
        }))
}
