//! The whole job without a person (`omi-sync --auto`): bring in the backlog
//! from a source, find the speech, transcribe it, lay out the timeline.
//!
//! It resumes whatever an earlier run left: captures imported but not
//! analysed are analysed, and importing what is already in the ledger is a
//! no-op.

use std::path::PathBuf;

use serde::Serialize;

use super::analyze::{AnalyzeOptions, AnalyzeReport, analyze};
use super::events::{Event, EventSink, Stage};
use super::import::{FileStatus, ImportReport, import_bytes, import_paths};
use super::transcribe::{TranscribeError, TranscribeOptions, TranscribeReport, transcribe};
use crate::clock::UtcMillis;
use crate::device::demo;
use crate::store::{Ledger, StoreError};
use crate::stt::engine::Engine;
use crate::timeline::{Domain, Rules, Timeline, build};

/// Where `--auto` takes the backlog from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in demo backlog.
    Demo,
    /// A phone-app `.bin` file or a folder of them.
    Files(PathBuf),
}

impl Source {
    /// Parses `demo` or a path.
    pub fn parse(text: &str) -> Result<Source, String> {
        match text {
            "" => Err("an empty source: use `demo` or a path to .bin files".into()),
            "demo" => Ok(Source::Demo),
            path => Ok(Source::Files(PathBuf::from(path))),
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct JobReport {
    /// The import stage.
    pub import: ImportReport,
    /// The VAD stage.
    pub vad: AnalyzeReport,
    /// The transcription stage (`None` when it did not run).
    pub transcribe: Option<TranscribeReport>,
    /// Conversations on the timeline afterwards.
    pub conversations: usize,
    /// Of which with estimated times (held back from the cloud).
    pub estimated_conversations: usize,
    /// Segments still waiting for transcription.
    pub pending_segments: usize,
}

/// Imports the source's files (new ones only).
pub fn import_source(
    ledger: &mut Ledger,
    source: &Source,
    events: &dyn EventSink,
) -> Result<ImportReport, StoreError> {
    match source {
        Source::Files(path) => import_paths(ledger, std::slice::from_ref(path), events),
        Source::Demo => {
            let now = UtcMillis::now();
            let mut report = ImportReport::default();
            events.emit(Event::StageStarted {
                stage: Stage::Import,
                total: demo::FILES.len() as u64,
                unit: "files",
            });
            for (i, f) in demo::FILES.iter().enumerate() {
                // The phone writes a file when its chunk ends: 60 s after its start.
                let written = crate::device::wal::parse_timestamp(f.name, now)
                    .map_or(now, |t| t.plus_ms(60_000));
                report.files.push(import_bytes(
                    ledger,
                    f.name,
                    f.bytes.to_vec(),
                    &format!("demo:{}", f.name),
                    written,
                    now,
                )?);
                events.emit(Event::Progress {
                    stage: Stage::Import,
                    done: i as u64 + 1,
                    total: demo::FILES.len() as u64,
                });
            }
            let new = report
                .files
                .iter()
                .filter(|f| f.status == FileStatus::Imported)
                .count();
            events.emit(Event::StageFinished {
                stage: Stage::Import,
                summary: format!(
                    "{new} new demo files, {} already imported",
                    demo::FILES.len() - new
                ),
            });
            Ok(report)
        }
    }
}

/// Runs import and VAD, transcribes with `stt` when given, then lays out
/// the timeline.
pub fn run(
    ledger: &mut Ledger,
    source: &Source,
    vad: &AnalyzeOptions,
    stt: Option<(&Engine, &TranscribeOptions)>,
    rules: &Rules,
    events: &dyn EventSink,
) -> Result<(JobReport, Timeline), TranscribeError> {
    let import = import_source(ledger, source, events)?;
    let vad = analyze(ledger, vad, events)?;
    let transcribe = match stt {
        Some((engine, opts)) => Some(transcribe(ledger, engine, opts, events)?),
        None => None,
    };
    let segments: Vec<_> = ledger.segments()?.iter().map(|s| s.to_timeline()).collect();
    let timeline = build(&segments, &ledger.active_overrides()?, rules);
    let report = JobReport {
        import,
        vad,
        transcribe,
        conversations: timeline.conversations.len(),
        estimated_conversations: timeline
            .conversations
            .iter()
            .filter(|c| c.domain == Domain::Estimated)
            .count(),
        pending_segments: segments
            .iter()
            .filter(|s| s.status == crate::timeline::SegmentStatus::Pending)
            .count(),
    };
    Ok((report, timeline))
}
