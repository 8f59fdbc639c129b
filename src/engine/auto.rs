//! The whole job without a person (`omi-sync --auto`): bring in the backlog
//! from a source, find the speech, transcribe it, lay out the timeline, push.
//!
//! It resumes whatever an earlier run left: captures imported but not
//! analysed are analysed, importing what is already in the ledger is a
//! no-op, and a pull continues from the ledger's resume point.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::analyze::{AnalyzeReport, analyze};
use super::ctx::Ctx;
use super::events::{Event, Origin, Stage, Unit};
use super::follow::{self, Followed, Tally};
use super::image::{ImageSummary, pull_image};
use super::import::{ImportReport, import_bytes, import_paths};
use super::janitor::{self, PruneReport};
use super::jobs::{JobError, error_chain};
use super::pendant::Pendant;
use super::pull::{PullStop, PullSummary, pull};
use super::push::stage::{self as push_stage, PushRequest, PushStage};
use super::remedy::Remedy;
use super::report::StageReport;
use super::transcribe::setup::{SttChoice, setup};
use super::transcribe::{TranscribeReport, transcribe};
use super::workspace::Workspace;
use crate::clock::UtcMillis;
use crate::device::demo;
use crate::store::{Ledger, Section, StoreError};
use crate::timeline::Domain;

/// How long `device:ID` scans for the pendant before giving up.
pub const DEVICE_SCAN: Duration = Duration::from_secs(20);

/// Where `--auto` takes the backlog from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in demo backlog.
    Demo,
    /// A phone-app `.bin` file or a folder of them.
    Files(PathBuf),
    /// A card image or block device of the pendant's storage (`image:PATH`).
    Image(PathBuf),
    /// A pendant to pull from: `device:ID` over Bluetooth, `sim:PATH` simulated.
    Pendant(Pendant),
}

impl Source {
    /// Parses `demo`, `image:PATH`, `sim:PATH`, `device:ID`, or a path to
    /// phone-app `.bin` files.
    pub fn parse(text: &str) -> Result<Source, String> {
        let nonempty = |kind: &str, rest: &str| {
            if rest.is_empty() {
                Err(format!(
                    "`{kind}:` needs a value after the colon, e.g. `{kind}:{}`",
                    match kind {
                        "device" => "AA:BB:CC:DD:EE:FF",
                        _ => "/path/to/ring.img",
                    }
                ))
            } else {
                Ok(rest.to_string())
            }
        };
        if let Some(rest) = text.strip_prefix("image:") {
            return Ok(Source::Image(nonempty("image", rest)?.into()));
        }
        if let Some(rest) = text.strip_prefix("sim:") {
            return Ok(Source::Pendant(Pendant::Sim {
                image: nonempty("sim", rest)?.into(),
                faults: String::new(),
            }));
        }
        if let Some(rest) = text.strip_prefix("device:") {
            return Ok(Source::Pendant(Pendant::Bluetooth {
                id: nonempty("device", rest)?,
                scan: DEVICE_SCAN,
            }));
        }
        match text {
            "" => Err(
                "an empty source: use `demo`, a path to .bin files, `image:PATH`, `sim:PATH` or `device:ID`"
                    .into(),
            ),
            "demo" => Ok(Source::Demo),
            path => Ok(Source::Files(PathBuf::from(path))),
        }
    }
}

/// What a pull from a pendant or a card brought in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Pulled {
    /// Over Bluetooth or from the simulated pendant.
    Pendant(PullSummary),
    /// From a card image or block device.
    Image(ImageSummary),
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AutoReport {
    /// The import stage (phone-app files and the demo).
    pub import: ImportReport,
    /// The pull (pendant and card sources).
    pub pulled: Option<Pulled>,
    /// The VAD stage.
    pub vad: AnalyzeReport,
    /// The transcription stage (`None` when it did not run).
    pub transcribe: Option<TranscribeReport>,
    /// Why transcription did not run, when it could not (no model, no key):
    /// the speech waits, pending, for a run that has one.
    pub transcribe_skipped: Option<Remedy>,
    /// The push stage.
    pub push: PushStage,
    /// Local audio freed at the end (`None` when the janitor could not run:
    /// see the warning).
    pub storage: Option<PruneReport>,
    /// Conversations on the timeline afterwards.
    pub conversations: usize,
    /// Of which with estimated times (held back from the cloud).
    pub estimated_conversations: usize,
    /// Segments still waiting for transcription.
    pub pending_segments: usize,
}

/// Imports the source's files (new ones only). Pendants and cards are
/// pulled, not imported: for them this imports nothing (see [`run`]).
pub fn import_source(
    ledger: &mut Ledger,
    source: &Source,
    ctx: &Ctx,
) -> Result<ImportReport, StoreError> {
    match source {
        Source::Files(path) => import_paths(ledger, std::slice::from_ref(path), ctx),
        Source::Image(_) | Source::Pendant(_) => Ok(ImportReport::default()),
        Source::Demo => {
            let started = std::time::Instant::now();
            let now = UtcMillis::now();
            let mut report = ImportReport::default();
            ctx.emit(Event::StageStarted {
                stage: Stage::Import,
                total: demo::FILES.len() as u64,
                unit: Unit::Files,
            });
            for (i, f) in demo::FILES.iter().enumerate() {
                if ctx.cancel().is_cancelled() {
                    report.cancelled = true;
                    break;
                }
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
                ctx.emit(Event::Progress {
                    stage: Stage::Import,
                    done: i as u64 + 1,
                    total: demo::FILES.len() as u64,
                });
            }
            ctx.stage_finished(started, StageReport::Import(report.clone()));
            Ok(report)
        }
    }
}

/// Brings the source in (import, or pull), finds the speech in whatever is
/// waiting, transcribes it when an engine can be made ready (without one
/// the speech stays pending and the report says why), lays out the
/// timeline and pushes (or dry-runs the push). A pull that stopped half-way
/// keeps what arrived; its summary says why it stopped.
pub fn run(
    ws: &Workspace,
    ledger: &mut Ledger,
    source: &Source,
    push: &PushRequest,
    ctx: &Ctx,
) -> Result<AutoReport, JobError> {
    // The engine is made ready first, so the speech a pull brings in is
    // transcribed while the pull goes on.
    let stt = match source {
        Source::Demo | Source::Files(_) => None,
        Source::Image(_) | Source::Pendant(_) => Some(setup(ws, &SttChoice::default())),
    };
    let ready = stt.as_ref().and_then(|r| r.as_ref().ok());
    let (import, pulled, followed) = match source {
        Source::Demo | Source::Files(_) => (
            import_source(ledger, source, ctx)?,
            None,
            Followed::default(),
        ),
        Source::Image(path) => {
            let device = format!("image:{}", path.display());
            let _lock = ws.lock(Section::Pull)?;
            let (s, followed) = follow::alongside(ws, ready, ctx, || {
                pull_image(ledger, path, &device, false, ctx)
            });
            (ImportReport::default(), Some(Pulled::Image(s?)), followed)
        }
        Source::Pendant(p) => {
            let _lock = ws.lock(Section::Pull)?;
            let mut connector = p.connector()?;
            let opts = p.pull_options(false);
            let ((s, stop), followed) = follow::alongside(ws, ready, ctx, || {
                pull(ledger, connector.as_mut(), &p.origin(), &opts, ctx)
            });
            if let Some(PullStop::Ledger(e)) = stop {
                return Err(e.into());
            }
            (ImportReport::default(), Some(Pulled::Pendant(s)), followed)
        }
    };
    ctx.check()?;
    // What the follower left: the open conversations, and anything it could
    // not do. One report per stage for the whole job.
    let tally = Tally::new(ctx.sink(), followed);
    let final_ctx = ctx.with_sink(&tally);
    let vad = tally.vad(&analyze(ledger, &ws.analyze_options(false), &final_ctx)?);
    ctx.check()?;
    let stt = stt.unwrap_or_else(|| setup(ws, &SttChoice::default()));
    let (transcribe, transcribe_skipped) = match stt {
        Ok((engine, opts)) => {
            let report = tally.transcribe(&transcribe(ledger, &engine, &opts, &final_ctx)?);
            (Some(report), None)
        }
        Err(e) => {
            let remedy = e.remedy(ws);
            ctx.emit(Event::Warning {
                origin: Origin::Stage {
                    stage: Stage::Transcribe,
                },
                message: format!("{}; transcription skipped this run", error_chain(&e)),
            });
            (None, Some(remedy))
        }
    };
    tally.finish(ctx);
    let timeline = ws.timeline(ledger)?;
    ctx.check()?;
    let push_report = push_stage::run(ws, ledger, &timeline, push, ctx)?;
    ctx.check()?;
    let storage = janitor::stage(ws, ledger, push.dry_run, ctx);
    Ok(AutoReport {
        import,
        pulled,
        vad,
        transcribe,
        transcribe_skipped,
        push: push_report,
        storage,
        conversations: timeline.conversations.len(),
        estimated_conversations: timeline
            .conversations
            .iter()
            .filter(|c| c.domain == Domain::Estimated)
            .count(),
        pending_segments: timeline
            .conversations
            .iter()
            .flat_map(|c| c.segments.iter())
            .filter(|s| s.status == crate::timeline::SegmentStatus::Pending)
            .count(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse_by_prefix() {
        assert_eq!(Source::parse("demo").unwrap(), Source::Demo);
        assert_eq!(
            Source::parse("image:/dev/sdb").unwrap(),
            Source::Image("/dev/sdb".into())
        );
        assert!(matches!(
            Source::parse("sim:/tmp/r.img").unwrap(),
            Source::Pendant(Pendant::Sim { image, .. }) if image == std::path::Path::new("/tmp/r.img")
        ));
        assert!(matches!(
            Source::parse("device:AA:BB:CC:DD:EE:FF").unwrap(),
            Source::Pendant(Pendant::Bluetooth { id, .. }) if id == "AA:BB:CC:DD:EE:FF"
        ));
        assert_eq!(
            Source::parse("/home/me/omi").unwrap(),
            Source::Files("/home/me/omi".into())
        );
        let e = Source::parse("device:").unwrap_err();
        assert!(e.contains("`device:` needs a value"), "{e}");
        assert!(Source::parse("").is_err());
    }
}
