//! What to transcribe: the ledger's untranscribed segments, grouped by the
//! stream they were recorded in and packed into windows.
//!
//! Only segments still `pending` (or `failed` earlier) are planned, so a
//! re-run after a crash does only what is missing. Segments are grouped by
//! device and clock trust, not by conversation, and packed with
//! [`packing::pack`]: a window may hold the speech of several short
//! conversations, so a backlog of them pays one Whisper encoder pass per
//! 30 s of speech instead of one per conversation, and the words map back
//! to their segments by time. Speech of two devices, or of a clock that
//! cannot be trusted beside one that can, is never packed together (their
//! times may interleave).

use std::collections::{HashMap, HashSet};

use crate::timeline::Domain;

use super::audio::SegmentAudio;
use crate::store::{Ledger, RunRow, SegmentRow, StoreError};
use crate::stt::packing::{self, PackConfig, SpeechSegment, Window};
use crate::timeline;

/// The work of one transcription run.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Windows in time order within each conversation.
    pub windows: Vec<Window>,
    /// Where each planned segment's audio is, by segment id.
    pub audio: HashMap<i64, SegmentAudio>,
    /// The planned segments' total length, ms.
    pub speech_ms: i64,
}

impl Plan {
    /// How many segments are planned.
    pub fn segments(&self) -> usize {
        self.audio.len()
    }
}

/// Plans the untranscribed segments of `ledger`.
pub fn plan(ledger: &Ledger, pack: &PackConfig) -> Result<Plan, StoreError> {
    plan_only(ledger, pack, None)
}

/// Plans the untranscribed segments of `ledger`, only those in `only` when
/// given (a re-transcription of one conversation).
pub fn plan_only(
    ledger: &Ledger,
    pack: &PackConfig,
    only: Option<&HashSet<i64>>,
) -> Result<Plan, StoreError> {
    let all = ledger.segments()?;
    let todo: Vec<&SegmentRow> = all
        .iter()
        .filter(|s| {
            matches!(
                s.status,
                timeline::SegmentStatus::Pending | timeline::SegmentStatus::Failed
            )
        })
        .filter(|s| only.is_none_or(|ids| ids.contains(&s.id)))
        .collect();
    if todo.is_empty() {
        return Ok(Plan::default());
    }
    let mut streams: HashMap<(String, Domain), i64> = HashMap::new();
    let mut runs: HashMap<i64, Vec<RunRow>> = HashMap::new();
    let mut captures = HashMap::new();
    let mut audio = HashMap::new();
    let mut speech = Vec::with_capacity(todo.len());
    for s in todo {
        if let std::collections::hash_map::Entry::Vacant(e) = captures.entry(s.capture_id) {
            e.insert(ledger.capture(s.capture_id)?);
            runs.insert(s.capture_id, ledger.runs(s.capture_id)?);
        }
        audio.insert(
            s.id,
            SegmentAudio::of(s, &captures[&s.capture_id], &runs[&s.capture_id])?,
        );
        let next = streams.len() as i64;
        let stream = *streams
            .entry((s.found.device.clone(), Domain::of(s.found.clock)))
            .or_insert(next);
        speech.push(SpeechSegment {
            id: s.id,
            group: stream,
            start_ms: s.found.start.0,
            end_ms: s.found.end.0,
        });
    }
    let speech_ms = speech.iter().map(SpeechSegment::len_ms).sum();
    Ok(Plan {
        windows: packing::pack(&speech, pack),
        audio,
        speech_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ClockTrust, UtcMillis};
    use crate::store::testdata::add_tone_capture;

    #[test]
    fn short_conversations_share_windows_and_devices_never_do() {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let t0 = UtcMillis(1_750_000_000_000);
        // Ten conversations of 2 s of speech, five minutes apart, on one
        // pendant; one more on another pendant in between.
        for i in 0..10 {
            add_tone_capture(
                &mut l,
                "omi",
                t0.plus_ms(i * 300_000),
                ClockTrust::Wall,
                &[(1000, 3000)],
            );
        }
        add_tone_capture(
            &mut l,
            "other",
            t0.plus_ms(150_000),
            ClockTrust::Wall,
            &[(1000, 3000)],
        );
        let rules = crate::timeline::Rules::default();
        assert_eq!(l.timeline(&rules).unwrap().conversations.len(), 11);

        let plan = plan(&l, &PackConfig::default()).unwrap();
        assert_eq!(plan.segments(), 11);
        assert_eq!(
            plan.windows.len(),
            2,
            "one window for the ten short conversations, one for the other device: {:#?}",
            plan.windows
        );
        let devices: Vec<HashSet<String>> = plan
            .windows
            .iter()
            .map(|w| {
                w.parts
                    .iter()
                    .map(|p| l.segment(p.segment_id).unwrap().found.device)
                    .collect()
            })
            .collect();
        assert!(devices.iter().all(|d| d.len() == 1), "{devices:?}");
    }
}
