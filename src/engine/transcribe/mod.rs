//! Transcribing: the ledger's untranscribed speech through the worker pool,
//! each result stored the moment it lands.
//!
//! [`plan`] packs the segments still waiting (per conversation, windows of at
//! most 30 s); the pool's workers each decode a window's audio
//! ([`audio::SegmentAudio`]), transcribe it and map the words back to
//! segments. As each window lands, every segment it completes is written to
//! the ledger (`speech` with its words, or `silent`) and reported as an
//! [`Event::SegmentTranscribed`], so the timeline fills in while the rest
//! runs, and a crash loses at most the windows in flight. The timeline is a
//! pure function of the stored results, so completion order cannot change it.
//! What the hallucination guards dropped is stored with each segment too
//! ([`crate::store::drops`]), replacing what an earlier run dropped.
//!
//! Failures are sorted by what helps: a temporary one (network, rate limit)
//! leaves the segments pending for the next run; one that retrying cannot fix
//! for this window marks its segments `failed` with the reason; one that stops
//! every window (missing model, refused key) ends the run with that error.

pub mod again;
pub mod audio;
pub mod plan;
pub mod setup;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::ctx::Ctx;
use super::events::{Event, Origin, Stage, Unit};
use super::report::StageReport;
use crate::clock::UtcMillis;
use crate::store::{CLAIM_TTL, Ledger, NewDrop, StoreError, WordTiming, WorkKind, new_holder};
use crate::stt::engine::Engine;
use crate::stt::guards::GuardConfig;
use crate::stt::packing::{
    Assembler, DroppedWord, PackConfig, SegmentStatus as HeardStatus, SegmentTranscript, Window,
    WindowResult, transcribe_window,
};
use crate::stt::pool::{PoolEvent, WorkerPool};
use crate::stt::{self, SttError};
use crate::timeline::{Rules, SegmentStatus};
use audio::SegmentAudio;

/// How to transcribe.
#[derive(Debug, Clone)]
pub struct TranscribeOptions {
    /// Parallel workers (at least 1).
    pub workers: usize,
    /// How windows are packed.
    pub pack: PackConfig,
    /// Hallucination guards.
    pub guard: GuardConfig,
    /// What every engine call asks for (language, word timings).
    pub request: stt::TranscribeOptions,
    /// The timeline rules (which conversation a re-transcription redoes).
    pub rules: Rules,
}

impl TranscribeOptions {
    /// Defaults with `workers` workers.
    pub fn with_workers(workers: usize) -> Self {
        TranscribeOptions {
            workers: workers.max(1),
            pack: PackConfig::default(),
            guard: GuardConfig::default(),
            request: stt::TranscribeOptions::default(),
            rules: Rules::default(),
        }
    }
}

/// What a transcription run did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TranscribeReport {
    /// Segments that were waiting.
    pub segments: usize,
    /// Windows they were packed into.
    pub windows: usize,
    /// Segments now transcribed with words.
    pub speech: usize,
    /// Segments in which nothing was heard.
    pub silent: usize,
    /// Segments marked failed (see `omi-sync segments`).
    pub failed: usize,
    /// Segments left pending after a temporary failure (the next run retries).
    pub left_pending: usize,
    /// Segments skipped because another run had claimed them (it
    /// transcribes them).
    #[serde(default)]
    pub claimed_elsewhere: usize,
    /// The run was stopped before the end (what landed is kept).
    #[serde(default)]
    pub cancelled: bool,
    /// Seconds of speech planned.
    pub speech_s: f64,
    /// Wall-clock seconds the run took.
    pub elapsed_s: f64,
}

impl TranscribeReport {
    /// Adds another run's counts to these (a job that transcribed in
    /// several passes, e.g. while a pull was still going).
    pub fn absorb(&mut self, other: &TranscribeReport) {
        self.segments += other.segments;
        self.windows += other.windows;
        self.speech += other.speech;
        self.silent += other.silent;
        self.failed += other.failed;
        self.left_pending = other.left_pending;
        self.claimed_elsewhere += other.claimed_elsewhere;
        self.cancelled |= other.cancelled;
        self.speech_s += other.speech_s;
        self.elapsed_s += other.elapsed_s;
    }
}

/// Why a transcription run stopped.
#[derive(Debug, thiserror::Error)]
pub enum TranscribeError {
    /// The ledger failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The engine cannot work at all (missing model, refused key): nothing
    /// more was tried. Results that landed before are kept.
    #[error(transparent)]
    Engine(SttError),
}

/// One window and where its segments' audio is: a pool job.
struct WindowJob {
    window: Window,
    audio: Vec<SegmentAudio>,
    data_dir: Arc<PathBuf>,
}

impl WindowJob {
    fn run(
        &self,
        engine: &mut dyn stt::Transcriber,
        opts: &TranscribeOptions,
    ) -> Result<WindowResult, SttError> {
        transcribe_window(engine, &self.window, &opts.request, &opts.guard, |part| {
            let i = self
                .window
                .parts
                .iter()
                .position(|p| p == part)
                .unwrap_or(0);
            self.audio[i].load(&self.data_dir, part.load_start_ms(), part.abs_end_ms)
        })
    }

    fn segment_ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.window.parts.iter().map(|p| p.segment_id)
    }
}

/// Transcribes every untranscribed segment in `ledger` with `engine`.
pub fn transcribe(
    ledger: &Ledger,
    engine: &Engine,
    opts: &TranscribeOptions,
    ctx: &Ctx,
) -> Result<TranscribeReport, TranscribeError> {
    transcribe_only(ledger, engine, opts, None, ctx)
}

/// [`transcribe`], restricted to the segments in `only` when given.
pub fn transcribe_only(
    ledger: &Ledger,
    engine: &Engine,
    opts: &TranscribeOptions,
    only: Option<&HashSet<i64>>,
    ctx: &Ctx,
) -> Result<TranscribeReport, TranscribeError> {
    let started = Instant::now();
    let plan = plan::plan_only(ledger, &opts.pack, only)?;
    let report = TranscribeReport {
        segments: plan.segments(),
        windows: plan.windows.len(),
        speech_s: plan.speech_ms as f64 / 1000.0,
        ..Default::default()
    };
    if plan.windows.is_empty() {
        return Ok(report);
    }
    let total = report.segments as u64;
    ctx.emit(Event::StageStarted {
        stage: Stage::Transcribe,
        total,
        unit: Unit::Segments,
    });
    let workers = opts.workers.max(1).min(plan.windows.len());
    let mut pool = {
        let (engine, opts, cancel) = (engine.clone(), opts.clone(), ctx.cancel().clone());
        WorkerPool::start(
            workers,
            move |_| engine.worker(&cancel),
            move |t: &mut Box<dyn stt::Transcriber>, job: &WindowJob| job.run(t.as_mut(), &opts),
        )
    };
    let data_dir = Arc::new(ledger.data_dir().to_path_buf());
    // Bounded work in flight: a window's audio is decoded by the worker that
    // runs it, so memory does not grow with the backlog.
    let in_flight_max = workers * 2;
    let mut jobs = plan.windows.into_iter().map(|window| {
        let audio = window
            .parts
            .iter()
            .map(|p| plan.audio[&p.segment_id].clone())
            .collect();
        WindowJob {
            window,
            audio,
            data_dir: data_dir.clone(),
        }
    });
    let (engine_name, model) = engine_label(engine);
    let mut sink = ResultSink {
        ledger,
        ctx,
        engine: engine_name,
        model,
        drops: HashMap::new(),
        assembler: Assembler::new(),
        report,
        done: 0,
        total,
        fatal: None,
    };
    // Each window's segments are claimed in the ledger before it is
    // submitted, so another run on this data directory never transcribes
    // them too; claims are renewed while the run goes on, released at its end.
    let holder = new_holder();
    let mut renewed = Instant::now();
    let mut in_flight = 0usize;
    let mut stopped = false;
    loop {
        if ctx.cancel().is_cancelled() && !stopped {
            stopped = true;
            pool.cancel();
        }
        while in_flight < in_flight_max && sink.fatal.is_none() && !stopped {
            let Some(job) = jobs.next() else { break };
            let ids: Vec<i64> = job.segment_ids().collect();
            let got = ledger.claim(WorkKind::Transcription, &ids, &holder, ctx.now(), CLAIM_TTL)?;
            if got.len() < ids.len() {
                ledger.release_claims(WorkKind::Transcription, &holder, Some(&got))?;
                sink.report.claimed_elsewhere += ids.len();
                continue;
            }
            pool.submit(job);
            in_flight += 1;
        }
        if in_flight == 0 {
            break;
        }
        if renewed.elapsed() > CLAIM_TTL / 3 {
            ledger.renew_claims(&holder, ctx.now(), CLAIM_TTL)?;
            renewed = Instant::now();
        }
        let ev = match pool.events().recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if let PoolEvent::Done(_) = ev {
            in_flight -= 1;
        }
        if let Err(e) = sink.take(ev) {
            pool.cancel();
            return Err(e.into());
        }
        if sink.fatal.is_some() {
            pool.cancel();
        }
    }
    let mut store_error = None;
    pool.finish(|ev| {
        if store_error.is_none()
            && let Err(e) = sink.take(ev)
        {
            store_error = Some(e);
        }
    });
    ledger.release_claims(WorkKind::Transcription, &holder, None)?;
    if let Some(e) = store_error {
        return Err(e.into());
    }
    let fatal = sink.fatal.take();
    let mut report = sink.report;
    report.left_pending += sink.assembler.pending().len();
    report.left_pending += jobs.map(|j| j.window.parts.len()).sum::<usize>();
    report.cancelled = stopped;
    report.elapsed_s = started.elapsed().as_secs_f64();
    if let Some(e) = fatal {
        return Err(TranscribeError::Engine(e));
    }
    ctx.stage_finished(started, StageReport::Transcribe(report.clone()));
    Ok(report)
}

/// Logs (at trace level) where a window's parts sit and every word the
/// engine heard with its window time, to diagnose a word landing in the
/// wrong segment (`RUST_LOG=omi_sync=trace`).
fn trace_window(window: &Window, raw: &stt::Transcript) {
    let parts: Vec<String> = window
        .parts
        .iter()
        .map(|p| format!("#{} {}-{} ms", p.segment_id, p.offset_ms, p.window_end_ms()))
        .collect();
    let words: Vec<String> = raw
        .pieces
        .iter()
        .flat_map(|piece| piece.words_or_synthesized())
        .map(|w| format!("{} {:.2}-{:.2}", w.text.trim(), w.start, w.end))
        .collect();
    tracing::trace!(
        "window {}: parts [{}]; words [{}]",
        window.index,
        parts.join(", "),
        words.join(", ")
    );
}

/// The engine's name and its model (a Whisper model by its file name), as
/// stored with what the guards dropped.
fn engine_label(engine: &Engine) -> (&'static str, Option<String>) {
    let model = match engine {
        Engine::Whisper { model, .. } => model
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned()),
        Engine::Deepgram(cfg) => Some(cfg.model.clone()),
        Engine::OpenAi(cfg) => Some(cfg.model.clone()),
    };
    (engine.kind().name(), model)
}

/// Adds a window's dropped words to the drops gathered per segment (a split
/// segment's come from several windows): consecutive drops of one guard in
/// one segment become one entry.
fn gather_drops(into: &mut HashMap<i64, Vec<NewDrop>>, window: &Window, dropped: &[DroppedWord]) {
    for d in dropped {
        let Some(part) = d.part.and_then(|i| window.parts.get(i)) else {
            continue;
        };
        let list = into.entry(part.segment_id).or_default();
        match list.last_mut() {
            Some(last) if last.guard == d.reason => {
                last.text.push(' ');
                last.text.push_str(d.text.trim());
                last.pieces += 1;
            }
            _ => list.push(NewDrop {
                guard: d.reason,
                text: d.text.trim().to_string(),
                pieces: 1,
                at: UtcMillis(part.to_abs(d.window_ms)),
            }),
        }
    }
}

/// Where results go as they land: the ledger, the events, the report.
struct ResultSink<'a> {
    ledger: &'a Ledger,
    ctx: &'a Ctx<'a>,
    /// The engine's name and model, stored with what the guards dropped.
    engine: &'static str,
    model: Option<String>,
    /// What the guards dropped, per segment not yet stored.
    drops: HashMap<i64, Vec<NewDrop>>,
    assembler: Assembler,
    report: TranscribeReport,
    done: u64,
    total: u64,
    fatal: Option<SttError>,
}

impl ResultSink<'_> {
    fn take(&mut self, ev: PoolEvent<WindowJob, WindowResult>) -> Result<(), StoreError> {
        let outcome = match ev {
            PoolEvent::Done(o) => o,
            PoolEvent::WorkerFailed { worker, error } => {
                tracing::warn!("transcription worker {worker} could not start: {error}");
                return Ok(());
            }
        };
        match outcome.result {
            Ok(result) => {
                if tracing::enabled!(tracing::Level::TRACE) {
                    trace_window(&outcome.job.window, &result.raw);
                }
                for d in &result.dropped {
                    tracing::debug!(
                        "dropped `{}` at {} ms of window {}: {:?}",
                        d.text,
                        d.window_ms,
                        outcome.job.window.index,
                        d.reason
                    );
                }
                gather_drops(&mut self.drops, &outcome.job.window, &result.dropped);
                for seg in self.assembler.add(result.parts) {
                    self.store(seg)?;
                }
            }
            Err(e) => self.failed(&outcome.job, e)?,
        }
        Ok(())
    }

    fn store(&mut self, seg: SegmentTranscript) -> Result<(), StoreError> {
        let words: Vec<WordTiming> = seg
            .words
            .iter()
            .map(|w| WordTiming {
                start_ms: w.start_ms,
                end_ms: w.end_ms,
                text: w.text.clone(),
            })
            .collect();
        let mut drops = self.drops.remove(&seg.segment_id).unwrap_or_default();
        drops.sort_by_key(|d| d.at);
        self.ledger.replace_guard_drops(
            seg.segment_id,
            &drops,
            self.engine,
            self.model.as_deref(),
        )?;
        self.ledger.record_transcript(seg.segment_id, &words)?;
        let status = match seg.status {
            HeardStatus::Speech => {
                self.report.speech += 1;
                SegmentStatus::Speech
            }
            HeardStatus::Silent => {
                self.report.silent += 1;
                SegmentStatus::Silent
            }
        };
        self.ctx.emit(Event::SegmentTranscribed {
            segment: seg.segment_id,
            status,
            text: (!seg.text.is_empty()).then_some(seg.text),
        });
        self.progress();
        Ok(())
    }

    fn failed(&mut self, job: &WindowJob, e: SttError) -> Result<(), StoreError> {
        let segments = job.window.parts.len();
        if matches!(e, SttError::Model { .. } | SttError::Auth { .. }) {
            self.report.left_pending += segments;
            self.fatal.get_or_insert(e);
            return Ok(());
        }
        if e.is_retryable() {
            self.report.left_pending += segments;
            if e != SttError::Cancelled {
                self.ctx.emit(Event::Warning {
                    origin: Origin::Window {
                        index: job.window.index,
                    },
                    message: format!("{e}; its {segments} segments stay pending for the next run"),
                });
            }
            return Ok(());
        }
        let message = e.to_string();
        for id in job.segment_ids() {
            // A failed transcript drops nothing: what an earlier one dropped goes.
            self.drops.remove(&id);
            self.ledger
                .replace_guard_drops(id, &[], self.engine, self.model.as_deref())?;
            self.ledger
                .set_transcript(id, SegmentStatus::Failed, None, Some(&message))?;
            self.report.failed += 1;
            self.ctx.emit(Event::SegmentTranscribed {
                segment: id,
                status: SegmentStatus::Failed,
                text: None,
            });
            self.progress();
        }
        self.ctx.emit(Event::Warning {
            origin: Origin::Window {
                index: job.window.index,
            },
            message: format!("{message}; its {segments} segments are marked failed"),
        });
        Ok(())
    }

    fn progress(&mut self) {
        self.done += 1;
        self.ctx.emit(Event::Progress {
            stage: Stage::Transcribe,
            done: self.done.min(self.total),
            total: self.total,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stt::guards::DropReason;
    use crate::stt::packing::Part;

    fn part(segment_id: i64, offset_ms: i64, len_ms: i64) -> Part {
        Part {
            segment_id,
            part_index: 0,
            part_count: 1,
            abs_start_ms: 1_000_000 * segment_id,
            abs_end_ms: 1_000_000 * segment_id + len_ms,
            offset_ms,
            pre_roll_ms: 0,
        }
    }

    fn dropped(text: &str, window_ms: i64, reason: DropReason, part: usize) -> DroppedWord {
        DroppedWord {
            text: text.into(),
            window_ms,
            reason,
            part: Some(part),
        }
    }

    #[test]
    fn drops_go_to_their_part_and_a_guard_run_is_one_entry() {
        let window = Window {
            index: 0,
            group: 0,
            parts: vec![part(1, 0, 2_000), part(2, 3_000, 2_000)],
            duration_ms: 5_000,
        };
        let mut into = HashMap::new();
        gather_drops(
            &mut into,
            &window,
            &[
                dropped(" Thank you.", 500, DropReason::NoisePhrase, 0),
                dropped("go", 3_200, DropReason::Loop, 1),
                dropped("go", 3_400, DropReason::Loop, 1),
                // In the gap, nearer the second part (the packer says which).
                dropped("ghost", 2_800, DropReason::OutsideAudio, 1),
            ],
        );
        let first = &into[&1];
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].text, "Thank you.");
        assert_eq!(first[0].at, UtcMillis(1_000_500));
        let second = &into[&2];
        assert_eq!(second.len(), 2, "{second:?}");
        assert_eq!((second[0].text.as_str(), second[0].pieces), ("go go", 2));
        assert_eq!(second[0].at, UtcMillis(2_000_200));
        assert_eq!(second[1].guard, DropReason::OutsideAudio);
        // Clamped into the part it went to.
        assert_eq!(second[1].at, UtcMillis(2_000_000));
    }
}
