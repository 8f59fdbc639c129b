//! Finding speech: decode every run of a capture, run Silero VAD, store segments.
//!
//! Captures are analysed in parallel (one per worker thread), each in bounded
//! memory: audio streams from the decoder into the VAD a block at a time.
//! Results are written to the ledger by the calling thread as each capture
//! finishes. A segment's key is derived from the capture's hash and its sample
//! range, so re-running VAD keeps the rows (and transcripts) of segments that
//! did not change.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::ctx::Ctx;
use super::events::{Event, Origin, Stage, Unit};
use super::import::wal_start;
use super::lead_in;
use super::report::StageReport;
use super::streams;
use crate::audio::{self, DecodeError};
use crate::cancel::Cancel;
use crate::clock::ClockTrust;
use crate::device::capture::{self, Anomaly, CaptureFormat, Layout, Run};
use crate::store::{
    CLAIM_TTL, CaptureRow, Ledger, NewSegment, RunRow, StoreError, WorkKind, files, new_holder,
};
use crate::vad::{SpeechDetector, VadParams};

/// How to analyse.
#[derive(Debug, Clone)]
pub struct AnalyzeOptions {
    /// VAD settings.
    pub params: VadParams,
    /// Re-run over captures already analysed (e.g. after changing settings).
    pub rerun_all: bool,
    /// Worker threads (at least 1).
    pub workers: usize,
}

/// What analysis found.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnalyzeReport {
    /// Captures analysed.
    pub captures: usize,
    /// Captures that could not be analysed (see warnings).
    pub failed: usize,
    /// Speech segments found.
    pub segments: usize,
    /// Audio analysed, seconds.
    pub audio_s: f64,
    /// Speech found, seconds.
    pub speech_s: f64,
    /// Frames that could not be decoded (concealed).
    pub bad_frames: u64,
    /// Captures already analysed whose estimated times moved (re-placed
    /// with the rest of their stream; their segments moved with them).
    pub retimed: usize,
    /// Captures skipped because another run had claimed them (it analyses them).
    #[serde(default)]
    pub claimed_elsewhere: usize,
    /// The run was stopped before the end (captures not finished stay
    /// unanalysed for the next run).
    #[serde(default)]
    pub cancelled: bool,
    /// Captures a re-run left alone because their audio was freed (the
    /// cloud has their conversations; their segments stay as they were).
    #[serde(default)]
    pub audio_freed: usize,
}

impl AnalyzeReport {
    /// Adds another run's counts to these (a job that analysed in two steps).
    pub fn absorb(&mut self, other: &AnalyzeReport) {
        self.captures += other.captures;
        self.failed += other.failed;
        self.segments += other.segments;
        self.audio_s += other.audio_s;
        self.speech_s += other.speech_s;
        self.bad_frames += other.bad_frames;
        self.retimed += other.retimed;
        self.claimed_elsewhere += other.claimed_elsewhere;
        self.cancelled |= other.cancelled;
        self.audio_freed += other.audio_freed;
    }
}

/// Why analysis of one capture failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    /// Its bytes could not be read back.
    #[error(transparent)]
    File(#[from] files::FileError),
    /// The job was cancelled before it finished this capture.
    #[error("cancelled")]
    Cancelled,
    /// No decoder for its codec.
    #[error(transparent)]
    Decode(#[from] DecodeError),
}

/// One capture's analysis, ready to store.
#[derive(Debug, Clone)]
pub struct Analysis {
    /// Its runs with decode counts.
    pub runs: Vec<RunRow>,
    /// Speech found.
    pub segments: Vec<NewSegment>,
    /// Everything odd.
    pub anomalies: Vec<Anomaly>,
    /// Audio in samples.
    pub audio_samples: u64,
    /// Speech in samples.
    pub speech_samples: u64,
}

/// Places a stored capture's frames on time.
pub fn layout_of(capture: &CaptureRow, bytes: &[u8]) -> Layout {
    let meta = &capture.meta;
    match meta.format {
        CaptureFormat::Wal => {
            let mut layout = capture::wal_layout(bytes, meta.codec, meta.captured_at, meta.clock);
            let duration = capture::samples_to_ms(layout.samples());
            for run in &mut layout.runs {
                run.start = wal_start(meta, duration);
            }
            layout
        }
        CaptureFormat::Ring => capture::ring_layout(bytes, meta.codec, meta.captured_at),
    }
}

/// The stable key of a segment: the same speech found again gets the same key.
pub fn segment_key(capture_sha: &str, run_index: usize, start: u64, end: u64) -> String {
    let digest = Sha256::digest(format!("{capture_sha}:{run_index}:{start}:{end}"));
    hex::encode(&digest[..12])
}

/// Analyses one capture's bytes, placed on time by `layout` (its
/// [`layout_of`], or its part of a stream's). `lead_in` is the end of the
/// capture it continues, if any ([`lead_in`]): when it ends inside speech,
/// the first run is analysed by a detector that heard it, so the speech
/// already going is heard from the first sample. `on_samples` is told how
/// many samples have been processed, as they are; `cancel` stops it mid-way.
pub fn analyze_capture(
    capture: &CaptureRow,
    bytes: &[u8],
    layout: &Layout,
    lead_in: &[f32],
    params: &VadParams,
    on_samples: &dyn Fn(u64),
    cancel: &Cancel,
) -> Result<Analysis, AnalysisError> {
    let mut anomalies = layout.anomalies.clone();
    let mut runs = Vec::with_capacity(layout.runs.len());
    let mut segments = Vec::new();
    let (mut audio_samples, mut speech_samples) = (0, 0);
    for (i, run) in layout.runs.iter().enumerate() {
        // A detector that has heard the capture before is kept only when
        // that capture ends inside speech; otherwise the run is analysed on
        // its own, exactly as it would be without a capture before it.
        // Speech wholly in the lead-in is the capture before's: the spans
        // the warm detector closes there are discarded, and later ones are
        // clipped to this run below.
        let warm = (i == 0 && !lead_in.is_empty())
            .then(|| {
                let mut d = SpeechDetector::new(params.clone());
                let _ = d.push(lead_in);
                d
            })
            .filter(SpeechDetector::in_speech);
        // Samples of the capture before, ahead of this run's first sample.
        let lead = if warm.is_some() {
            lead_in.len() as u64
        } else {
            0
        };
        let mut detector = warm.unwrap_or_else(|| SpeechDetector::new(params.clone()));
        let mut spans = Vec::new();
        let stats = audio::decode_run(
            capture.meta.format,
            bytes,
            capture.meta.codec,
            run,
            |block| {
                spans.extend(detector.push(block));
                on_samples(block.len() as u64);
                if cancel.is_cancelled() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )?;
        if stats.stopped {
            return Err(AnalysisError::Cancelled);
        }
        spans.extend(detector.finish());
        if stats.bad_frames > 0 {
            anomalies.push(Anomaly {
                offset: stats.first_bad_offset,
                message: format!(
                    "{} of {} frames could not be decoded (first at byte {}); each was replaced by \
                     silence of its length so the times after it stay right",
                    stats.bad_frames,
                    stats.frames,
                    stats.first_bad_offset.unwrap_or(0)
                ),
            });
        }
        audio_samples += stats.samples;
        for span in spans {
            // Speech wholly in the lead-in is the capture before's.
            let start = span.start.saturating_sub(lead);
            let end = span.end.saturating_sub(lead).min(run.samples);
            if end <= start {
                continue;
            }
            speech_samples += end - start;
            segments.push(NewSegment {
                key: segment_key(&capture.sha256, i, start, end),
                run_index: i as u32,
                sample_start: start,
                sample_end: end,
                device: capture.meta.device.clone(),
                clock: run.clock,
                start: run.time_at(start),
                end: run.time_at(end),
            });
        }
        runs.push(RunRow {
            run: *run,
            bad_frames: stats.bad_frames,
        });
    }
    if runs.is_empty() {
        anomalies.push(Anomaly {
            offset: None,
            message: "no audio frames in this capture".into(),
        });
    }
    Ok(Analysis {
        runs,
        segments,
        anomalies,
        audio_samples,
        speech_samples,
    })
}

/// Analyses every capture that needs it (all of them with `rerun_all`), in
/// parallel, storing each result as soon as every capture before it is stored.
pub fn analyze(
    ledger: &mut Ledger,
    opts: &AnalyzeOptions,
    ctx: &Ctx,
) -> Result<AnalyzeReport, StoreError> {
    let started = std::time::Instant::now();
    let mut report = AnalyzeReport::default();
    let mut todo = if opts.rerun_all {
        let freed: std::collections::HashSet<i64> = ledger
            .audio_states()?
            .into_iter()
            .filter(|a| a.freed_at.is_some())
            .map(|a| a.capture_id)
            .collect();
        let mut all = ledger.captures()?;
        all.retain(|c| !freed.contains(&c.id));
        report.audio_freed = freed.len();
        all
    } else {
        ledger.unanalyzed_captures()?
    };
    if todo.is_empty() {
        return Ok(report);
    }
    // Ring captures are placed with the rest of the stream they were pulled in.
    let plan = streams::plan(ledger, &todo)?;
    for (capture_id, runs) in &plan.retime {
        ledger.retime_runs(*capture_id, runs)?;
        report.retimed += 1;
    }
    todo.extend(plan.reanalyze);
    todo.sort_by_key(|c| c.id);
    // Claimed first, so another run on this data directory does not analyse
    // the same captures at the same time.
    let holder = new_holder();
    let ids: Vec<i64> = todo.iter().map(|c| c.id).collect();
    let got = ledger.claim(WorkKind::Analysis, &ids, &holder, ctx.now(), CLAIM_TTL)?;
    report.claimed_elsewhere = ids.len() - got.len();
    todo.retain(|c| got.contains(&c.id));
    let layouts = plan.layouts;
    let data_dir = ledger.data_dir().to_path_buf();
    let layout_for = |c: &CaptureRow, bytes: &[u8]| -> Layout {
        layouts
            .get(&c.id)
            .cloned()
            .unwrap_or_else(|| layout_of(c, bytes))
    };
    // Each capture's runs as laid out from frame counts: the total audio
    // for the progress bar, and where each capture starts and ends.
    let placed: HashMap<i64, Vec<Run>> = todo
        .iter()
        .filter_map(|c| match layouts.get(&c.id) {
            Some(l) => Some((c.id, l.runs.clone())),
            None => files::load(&data_dir, c.stored_path.as_ref(), &c.sha256)
                .ok()
                .map(|b| (c.id, layout_of(c, &b).runs)),
        })
        .collect();
    let total: u64 = placed.values().flatten().map(|r| r.samples).sum();
    let lead_ins = lead_in::find(ledger, &todo, &placed)?;
    let seconds = |samples: u64| samples / audio::TARGET_RATE as u64;
    ctx.emit(Event::StageStarted {
        stage: Stage::Vad,
        total: seconds(total),
        unit: Unit::AudioSeconds,
    });
    let params_json = serde_json::to_string(&opts.params).unwrap_or_default();
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let last_reported = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel();
    std::thread::scope(|scope| {
        for _ in 0..opts.workers.max(1).min(todo.len()) {
            let tx = tx.clone();
            let (todo, next, done, last_reported, data_dir, layout_for, lead_ins) = (
                &todo,
                &next,
                &done,
                &last_reported,
                &data_dir,
                &layout_for,
                &lead_ins,
            );
            scope.spawn(move || {
                loop {
                    if ctx.cancel().is_cancelled() {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::SeqCst) as usize;
                    let Some(capture) = todo.get(i) else { break };
                    let on_samples = |n: u64| {
                        let now = done.fetch_add(n, Ordering::Relaxed) + n;
                        // Report every 10 s of audio, not every decoded block.
                        let prev = last_reported.load(Ordering::Relaxed);
                        if seconds(now) >= seconds(prev) + 10 || now >= total {
                            last_reported.store(now, Ordering::Relaxed);
                            ctx.emit(Event::Progress {
                                stage: Stage::Vad,
                                done: seconds(now).min(seconds(total)),
                                total: seconds(total),
                            });
                        }
                    };
                    let result =
                        files::load(data_dir, capture.stored_path.as_ref(), &capture.sha256)
                            .map_err(AnalysisError::from)
                            .and_then(|bytes| {
                                let layout = layout_for(capture, &bytes);
                                let lead = lead_ins
                                    .get(&capture.id)
                                    .and_then(|l| l.samples(data_dir))
                                    .unwrap_or_default();
                                analyze_capture(
                                    capture,
                                    &bytes,
                                    &layout,
                                    &lead,
                                    &opts.params,
                                    &on_samples,
                                    ctx.cancel(),
                                )
                            });
                    if tx.send((i, result)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // Store results in capture order (so segment ids follow time order),
        // holding back any that finish before their predecessors.
        let mut waiting = std::collections::BTreeMap::new();
        let mut next_to_store = 0usize;
        let in_order = rx.into_iter().flat_map(|(i, result)| {
            waiting.insert(i, result);
            let mut ready = Vec::new();
            while let Some(r) = waiting.remove(&next_to_store) {
                ready.push((next_to_store, r));
                next_to_store += 1;
            }
            ready
        });
        for (i, result) in in_order {
            let capture = &todo[i];
            match result {
                Ok(a) => {
                    report.captures += 1;
                    report.segments += a.segments.len();
                    report.audio_s += a.audio_samples as f64 / audio::TARGET_RATE as f64;
                    report.speech_s += a.speech_samples as f64 / audio::TARGET_RATE as f64;
                    report.bad_frames += a.runs.iter().map(|r| r.bad_frames).sum::<u64>();
                    for an in &a.anomalies {
                        ctx.emit(Event::Warning {
                            origin: capture_origin(capture),
                            message: an.to_string(),
                        });
                    }
                    ledger.save_analysis(
                        capture.id,
                        &a.runs,
                        &a.segments,
                        &a.anomalies,
                        &params_json,
                    )?;
                }
                Err(AnalysisError::Cancelled) => report.cancelled = true,
                Err(e) => {
                    report.failed += 1;
                    ctx.emit(Event::Warning {
                        origin: capture_origin(capture),
                        message: format!("could not find speech: {e}"),
                    });
                }
            }
        }
        Ok::<(), StoreError>(())
    })?;
    ledger.release_claims(WorkKind::Analysis, &holder, None)?;
    ctx.stage_finished(started, StageReport::Vad(report.clone()));
    Ok(report)
}

/// Where a capture's warnings come from.
pub fn capture_origin(capture: &CaptureRow) -> Origin {
    Origin::Capture {
        id: capture.id,
        source: capture.meta.origin.clone(),
    }
}

/// The clock label of a capture's runs (for reports): `wall`, `estimated`, or `mixed`.
pub fn clock_summary(runs: &[RunRow]) -> &'static str {
    let wall = runs
        .iter()
        .filter(|r| r.run.clock == ClockTrust::Wall)
        .count();
    match (wall, runs.len()) {
        (_, 0) => "none",
        (w, n) if w == n => "wall",
        (0, _) => "estimated",
        _ => "mixed",
    }
}
