//! Finding and transcribing speech while a pull is still bringing the audio
//! in, so a job takes about as long as its pull.
//!
//! [`alongside`] runs the pull on the calling thread and a follower on its
//! own thread with its own ledger connection. Each time the pull makes
//! captures durable the follower analyses them ([`analyze`]: a stream's
//! estimated times are re-placed as more of it arrives, and a transcript
//! carries over to speech found again), then transcribes the conversations
//! that are **closed** (followed by a full conversation gap of analysed
//! audio from the same device, so no speech still to come can join them),
//! and of the conversation still open the speech that ends at least
//! [`SETTLED_MS`] before the analysed audio does: enough to fill whole
//! Whisper windows, so only the last minute waits for the pull to end.
//! When the pull ends, the job's usual stages run once more over whatever
//! is left (the open conversations, anything the follower could not do:
//! its errors are met again there and reported as usual).
//!
//! The follower's passes are silent (their stage events would interleave
//! with the pull's); its counts are folded into the final stages' reports
//! by [`Tally`], so a frontend sees one VAD and one transcription report
//! for the whole job.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::analyze::{AnalyzeReport, analyze};
use super::ctx::Ctx;
use super::events::{Envelope, Event, EventSink};
use super::report::StageReport;
use super::transcribe::{TranscribeOptions, TranscribeReport, transcribe_only};
use super::workspace::Workspace;
use crate::store::{Ledger, StoreError};
use crate::stt::engine::Engine;
use crate::timeline::{SegmentStatus, Timeline};

/// Speech of a conversation still open is transcribed alongside once this
/// much analysed audio follows it (two Whisper windows).
pub const SETTLED_MS: i64 = 60_000;

/// How often the follower looks for newly durable captures.
const POLL: Duration = Duration::from_millis(250);

/// What the follower did before the pull ended.
#[derive(Debug, Clone, Default)]
pub struct Followed {
    /// Its VAD passes, folded.
    pub vad: Option<AnalyzeReport>,
    /// Its transcription passes, folded.
    pub transcribe: Option<TranscribeReport>,
}

/// Runs `bring_in` (a pull) on this thread while a follower analyses and
/// transcribes what it has made durable (see the module docs). `stt` is
/// the engine to transcribe with, when one could be made ready.
pub fn alongside<T>(
    ws: &Workspace,
    stt: Option<&(Engine, TranscribeOptions)>,
    ctx: &Ctx,
    bring_in: impl FnOnce() -> T,
) -> (T, Followed) {
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let follower = scope.spawn(|| follow(ws, stt, ctx, &done));
        let out = bring_in();
        done.store(true, Ordering::SeqCst);
        let followed = follower.join().unwrap_or_default();
        (out, followed)
    })
}

/// The follower's loop: until `done`, each new durable capture is analysed
/// and each newly closed conversation transcribed.
fn follow(
    ws: &Workspace,
    stt: Option<&(Engine, TranscribeOptions)>,
    ctx: &Ctx,
    done: &AtomicBool,
) -> Followed {
    let quiet = Quiet(ctx.sink());
    let ctx = ctx.with_sink(&quiet);
    let mut followed = Followed::default();
    let Ok(mut ledger) = ws.ledger() else {
        return followed;
    };
    let opts = ws.analyze_options(false);
    let mut transcribing = stt.is_some();
    while !done.load(Ordering::SeqCst) && !ctx.cancel().is_cancelled() {
        let waiting = ledger.unanalyzed_captures().map(|c| !c.is_empty());
        if !matches!(waiting, Ok(true)) {
            std::thread::sleep(POLL);
            continue;
        }
        match analyze(&mut ledger, &opts, &ctx) {
            Ok(r) => followed.vad.get_or_insert_default().absorb(&r),
            Err(e) => {
                tracing::debug!("analysis alongside the pull stopped: {e}");
                break;
            }
        }
        let Some((engine, topts)) = stt.filter(|_| transcribing) else {
            continue;
        };
        match ready_pending(&ledger, ws)
            .map_err(super::transcribe::TranscribeError::from)
            .and_then(|ids| match ids.is_empty() {
                true => Ok(None),
                false => transcribe_only(&ledger, engine, topts, Some(&ids), &ctx).map(Some),
            }) {
            Ok(Some(r)) => followed.transcribe.get_or_insert_default().absorb(&r),
            Ok(None) => {}
            Err(e) => {
                tracing::debug!("transcription alongside the pull stopped: {e}");
                transcribing = false;
            }
        }
    }
    followed
}

/// The untranscribed segments ready to transcribe (see the module docs).
fn ready_pending(ledger: &Ledger, ws: &Workspace) -> Result<HashSet<i64>, StoreError> {
    let timeline = ws.timeline(ledger)?;
    let mut analysed_to: HashMap<String, i64> = HashMap::new();
    for (device, start, samples, _) in ledger.recorded_spans()? {
        let end = start.0 + (samples / 16) as i64;
        let e = analysed_to.entry(device).or_insert(end);
        *e = (*e).max(end);
    }
    Ok(ready_segments(&timeline, &analysed_to, ws.rules().gap_ms))
}

/// Of `timeline`, the pending or failed segments of each conversation that
/// ends at least `gap_ms` before its device's analysed audio does (closed),
/// and of the others those that end [`SETTLED_MS`] before it.
fn ready_segments(
    timeline: &Timeline,
    analysed_to: &HashMap<String, i64>,
    gap_ms: i64,
) -> HashSet<i64> {
    let mut ready = HashSet::new();
    for c in &timeline.conversations {
        let Some(&end) = analysed_to.get(&c.device) else {
            continue;
        };
        let closed = c.finished_at.0 + gap_ms <= end;
        ready.extend(
            c.segments
                .iter()
                .filter(|s| matches!(s.status, SegmentStatus::Pending | SegmentStatus::Failed))
                .filter(|s| closed || s.end.0 + SETTLED_MS <= end)
                .map(|s| s.id),
        );
    }
    ready
}

/// The follower's sink: its stage events are dropped (the pull's own show),
/// everything else (warnings) passes.
struct Quiet<'a>(&'a dyn EventSink);

impl EventSink for Quiet<'_> {
    fn emit(&self, envelope: Envelope) {
        let stage_event = matches!(
            envelope.event,
            Event::StageStarted { .. } | Event::Progress { .. } | Event::StageFinished { .. }
        );
        if !stage_event {
            self.0.emit(envelope);
        }
    }
}

/// The final stages' sink: each VAD or transcription report it passes on
/// is the follower's counts plus the final pass's. [`Tally::finish`]
/// reports what only the follower did (the final pass had nothing left).
pub struct Tally<'a> {
    inner: &'a dyn EventSink,
    followed: Followed,
    /// Which stages' final reports went by: (VAD, transcription).
    reported: Mutex<(bool, bool)>,
}

/// `prior`'s counts plus `report`'s.
fn fold<R: Clone>(prior: &Option<R>, report: &R, absorb: fn(&mut R, &R)) -> R {
    match prior {
        Some(p) => {
            let mut all = p.clone();
            absorb(&mut all, report);
            all
        }
        None => report.clone(),
    }
}

impl<'a> Tally<'a> {
    /// Folds `followed` into the reports passing to `inner`.
    pub fn new(inner: &'a dyn EventSink, followed: Followed) -> Self {
        Tally {
            inner,
            followed,
            reported: Mutex::new((false, false)),
        }
    }

    /// The job's VAD report: the follower's and the final pass's `report`.
    pub fn vad(&self, report: &AnalyzeReport) -> AnalyzeReport {
        fold(&self.followed.vad, report, AnalyzeReport::absorb)
    }

    /// The job's transcription report: the follower's and the final pass's.
    pub fn transcribe(&self, report: &TranscribeReport) -> TranscribeReport {
        fold(&self.followed.transcribe, report, TranscribeReport::absorb)
    }

    /// Emits, through `ctx`, the reports of stages only the follower ran.
    pub fn finish(&self, ctx: &Ctx) {
        let (vad, stt) = *self.lock();
        let started = std::time::Instant::now();
        if let Some(r) = self.followed.vad.clone().filter(|_| !vad) {
            ctx.stage_finished(started, StageReport::Vad(r));
        }
        if let Some(r) = self.followed.transcribe.clone().filter(|_| !stt) {
            ctx.stage_finished(started, StageReport::Transcribe(r));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (bool, bool)> {
        self.reported.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl EventSink for Tally<'_> {
    fn emit(&self, mut envelope: Envelope) {
        if let Event::StageFinished { report, .. } = &mut envelope.event {
            match report {
                StageReport::Vad(r) => {
                    *r = self.vad(r);
                    self.lock().0 = true;
                }
                StageReport::Transcribe(r) => {
                    *r = self.transcribe(r);
                    self.lock().1 = true;
                }
                _ => {}
            }
        }
        self.inner.emit(envelope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{ClockTrust, UtcMillis};
    use crate::timeline::{Rules, Segment, build};

    fn seg(id: i64, start: i64, end: i64, status: SegmentStatus) -> Segment {
        let span = (UtcMillis(start), UtcMillis(end));
        Segment::for_test(id, "omi", ClockTrust::Wall, span, status, None)
    }

    #[test]
    fn closed_conversations_and_settled_speech_are_ready() {
        let rules = Rules { gap_ms: 120_000 };
        let t = build(
            &[
                seg(1, 0, 5_000, SegmentStatus::Speech),
                seg(2, 6_000, 9_000, SegmentStatus::Pending),
                seg(3, 300_000, 305_000, SegmentStatus::Pending),
            ],
            &[],
            &rules,
        );
        let to = |end: i64| HashMap::from([("omi".to_string(), end)]);
        let ready = |end| ready_segments(&t, &to(end), rules.gap_ms);
        assert!(
            ready(60_000).is_empty(),
            "the gap is not full, the speech not settled"
        );
        assert_eq!(ready(69_000), HashSet::from([2]), "settled");
        assert_eq!(ready(129_000), HashSet::from([2]), "closed");
        assert_eq!(
            ready(300_000),
            HashSet::from([2]),
            "the next one just began"
        );
        assert_eq!(ready(425_000), HashSet::from([2, 3]));
        assert!(
            ready_segments(&t, &HashMap::new(), rules.gap_ms).is_empty(),
            "another device's audio says nothing"
        );
    }
}
