//! Jobs: what a face asks the engine to do, run blocking or on a thread.
//!
//! A [`Job`] names the work (import these files, pull that pendant, push,
//! the whole `--auto` run, ...). [`run`] does it on the calling thread;
//! [`spawn`] on its own thread and returns a [`JobHandle`] with the job's
//! id, its [`Cancel`] token and, at the end, its result. Either way the job
//! reports `job_started`, its stages' events and `job_finished` through one
//! [`EventSink`], each in an envelope with the job's id.
//!
//! A failure is a [`JobError`] with a [`class`](JobError::class) (usage,
//! temporary, needs a person, failed: the command line's exit codes come
//! from it) and, where a person can do something, a [`Remedy`].

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use super::analyze::{AnalyzeReport, analyze};
use super::auto::{self, Pulled, Source};
use super::ctx::Ctx;
use super::events::{Event, EventSink, JobId, JobOutcome, Stage, Unit};
use super::image::{ImageStop, pull_image};
use super::import::{ImportReport, import_paths};
use super::pendant::{Pendant, PendantError};
use super::pull::{PullStop, Renamed, device_status, pull};
use super::push::stage::{self as push_stage, PushError, PushRequest};
use super::remedy::{KeyService, Remedy};
use super::report::{JobKind, JobReport, StageReport};
use super::transcribe::again::{AgainReport, again};
use super::transcribe::setup::{SetupError, SttChoice, setup};
use super::transcribe::{TranscribeError, TranscribeReport, transcribe};
use super::workspace::Workspace;
use crate::cancel::Cancel;
use crate::clock::{Clock, SystemClock};
use crate::device::link::Connector;
use crate::store::{LockError, Section, StoreError};
use crate::stt::SttError;
use crate::stt::models::ModelError;

/// Work a face can ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// Import phone-app files and folders, then find the speech in them.
    Import {
        /// Files or folders.
        paths: Vec<PathBuf>,
    },
    /// Pull a pendant or a card, then find the speech in what arrived.
    Pull(PullRequest),
    /// Find speech in the captures not analysed yet (all with `rerun`).
    Vad {
        /// Analyse every capture again.
        rerun: bool,
    },
    /// Transcribe what is pending.
    Transcribe(SttChoice),
    /// Transcribe one conversation again (`transcribe --again`, the TUI's `r`).
    Retranscribe {
        /// Its id (or a unique prefix).
        conversation: String,
        /// The engine and model to use.
        choice: SttChoice,
    },
    /// Read a pendant's storage status (fill, unread, dropped, clock); changes nothing.
    Status(Pendant),
    /// Push conversations to the cloud.
    Push(PushRequest),
    /// The whole job without a person (`--auto`).
    Auto {
        /// Where the backlog comes from.
        source: Source,
        /// How to push.
        push: PushRequest,
    },
    /// Fetch a Whisper model into the data directory (resumable, checked).
    Download {
        /// The model's name in the table, e.g. `tiny.en`.
        name: String,
        /// A mirror of whisper.cpp's model repository.
        mirror: Option<String>,
    },
}

impl Job {
    /// What kind of job it is.
    pub fn kind(&self) -> JobKind {
        match self {
            Job::Import { .. } => JobKind::Import,
            Job::Pull(_) => JobKind::Pull,
            Job::Vad { .. } => JobKind::Vad,
            Job::Transcribe(_) | Job::Retranscribe { .. } => JobKind::Transcribe,
            Job::Status(_) => JobKind::Status,
            Job::Push(_) => JobKind::Push,
            Job::Auto { .. } => JobKind::Auto,
            Job::Download { .. } => JobKind::Download,
        }
    }
}

/// Where a pull reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullFrom {
    /// A pendant (Bluetooth or simulated).
    Pendant(Pendant),
    /// A card image or block device (only ever read).
    Image(PathBuf),
}

/// A pull, as a person asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequest {
    /// From where.
    pub from: PullFrom,
    /// Never tell the pendant to free anything.
    pub keep_on_device: bool,
    /// With an image: also list what else is on the card.
    pub forensic: bool,
    /// The name the pendant goes by in the ledger (default: its own).
    pub name: Option<String>,
}

/// The error class: what kind of help a failure needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request itself was wrong (bad arguments, a bad setting).
    Usage,
    /// Trying again later can help (network, a busy device, a rate limit).
    Temporary,
    /// A person must fix something first (disk full, no model, refused key).
    NeedsPerson,
    /// Anything else.
    Failed,
}

/// Why a job stopped.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The request was wrong.
    #[error("{0}")]
    Usage(String),
    /// The ledger failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The pendant could not be reached at all.
    #[error(transparent)]
    Pendant(#[from] PendantError),
    /// The card image could not be read.
    #[error(transparent)]
    Image(#[from] ImageStop),
    /// No transcription engine could be made ready.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Transcription could not go on.
    #[error(transparent)]
    Transcribe(#[from] TranscribeError),
    /// The push stage could not run.
    #[error(transparent)]
    Push(#[from] PushError),
    /// A model could not be fetched.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Another run holds the data directory.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The pendant's status could not be read.
    #[error("cannot read the status of {device}: {message}")]
    Status {
        /// The pendant.
        device: String,
        /// What the link said.
        message: String,
    },
    /// The job was cancelled before it could finish.
    #[error("cancelled")]
    Cancelled,
}

impl From<crate::cancel::Cancelled> for JobError {
    fn from(_: crate::cancel::Cancelled) -> Self {
        JobError::Cancelled
    }
}

impl JobError {
    /// What kind of help it needs.
    pub fn class(&self) -> ErrorClass {
        match self {
            JobError::Usage(_) => ErrorClass::Usage,
            JobError::Cancelled => ErrorClass::Failed,
            JobError::Pendant(e) if e.is_usage() => ErrorClass::Usage,
            JobError::Pendant(e) if e.is_temporary() => ErrorClass::Temporary,
            JobError::Pendant(_) | JobError::Setup(_) => ErrorClass::NeedsPerson,
            JobError::Status { .. } => ErrorClass::Temporary,
            JobError::Transcribe(TranscribeError::Engine(_)) => ErrorClass::NeedsPerson,
            JobError::Push(e) => e.class(),
            JobError::Image(e) if e.is_usage() => ErrorClass::Usage,
            JobError::Image(ImageStop::Image(_)) => ErrorClass::Failed,
            JobError::Model(ModelError::Download { .. }) => ErrorClass::Temporary,
            JobError::Model(ModelError::Unknown { .. }) => ErrorClass::Usage,
            JobError::Model(ModelError::Cancelled) => ErrorClass::Failed,
            JobError::Model(_) => ErrorClass::NeedsPerson,
            JobError::Lock(LockError::Busy { .. }) => ErrorClass::Temporary,
            JobError::Store(StoreError::LedgerLost { .. }) => ErrorClass::NeedsPerson,
            other => classify(other),
        }
    }

    /// What a person can do about it, when something can be done.
    pub fn remedy(&self, ws: &Workspace) -> Option<Remedy> {
        match self {
            JobError::Setup(e) => Some(e.remedy(ws)),
            JobError::Transcribe(TranscribeError::Engine(SttError::Model { .. })) => {
                Some(Remedy::GetModel {
                    name: crate::stt::models::short_name(&ws.config.stt.model).to_string(),
                })
            }
            JobError::Transcribe(TranscribeError::Engine(SttError::Auth { engine, .. })) => {
                Some(Remedy::CheckKey {
                    service: if *engine == "deepgram" {
                        KeyService::Deepgram
                    } else {
                        KeyService::Openai
                    },
                    scope: None,
                })
            }
            JobError::Push(e @ (PushError::Store(_) | PushError::Busy(LockError::Io { .. }))) => {
                storage_remedy(e, ws)
            }
            JobError::Push(e) => e.remedy(),
            JobError::Pendant(PendantError::Bluetooth(e)) if e.is_temporary() => {
                Some(Remedy::ReachPendant)
            }
            JobError::Pendant(PendantError::Bluetooth(_)) => Some(Remedy::FixBluetooth),
            JobError::Store(StoreError::LedgerLost { .. }) => Some(Remedy::RebuildLedger {
                data_dir: ws.data_dir.clone(),
            }),
            JobError::Status { .. } => Some(Remedy::ReachPendant),
            JobError::Lock(LockError::Busy { holder, .. }) => Some(Remedy::WaitForOtherRun {
                holder: holder.clone(),
            }),
            other => storage_remedy(other, ws),
        }
    }
}

/// The class of an error from what its causes are: a full disk, a
/// read-only or damaged database, a permission problem need a person.
pub fn classify(error: &(dyn std::error::Error + 'static)) -> ErrorClass {
    if io_cause(error).is_some_and(needs_a_person)
        || sqlite_code(error).is_some_and(sqlite_needs_a_person)
    {
        ErrorClass::NeedsPerson
    } else {
        ErrorClass::Failed
    }
}

/// Whether an OS error is one a retry cannot fix.
fn needs_a_person(io: &std::io::Error) -> bool {
    crate::disk::is_full(io)
        || io.kind() == std::io::ErrorKind::PermissionDenied
        || io.kind() == std::io::ErrorKind::ReadOnlyFilesystem
}

fn sqlite_needs_a_person(code: rusqlite::ErrorCode) -> bool {
    use rusqlite::ErrorCode::*;
    matches!(
        code,
        DiskFull
            | ReadOnly
            | DatabaseCorrupt
            | NotADatabase
            | CannotOpen
            | PermissionDenied
            | SystemIoFailure
    )
}

/// The first OS error in the chain of causes.
fn io_cause<'e>(error: &'e (dyn std::error::Error + 'static)) -> Option<&'e std::io::Error> {
    std::iter::successors(Some(error), |e| e.source())
        .find_map(|e| e.downcast_ref::<std::io::Error>())
}

/// The first SQLite error code in the chain of causes.
fn sqlite_code(error: &(dyn std::error::Error + 'static)) -> Option<rusqlite::ErrorCode> {
    std::iter::successors(Some(error), |e| e.source()).find_map(|e| match e.downcast_ref() {
        Some(rusqlite::Error::SqliteFailure(f, _)) => Some(f.code),
        _ => None,
    })
}

/// What to do about a failure of the disk or the database, if it is one.
fn storage_remedy(error: &(dyn std::error::Error + 'static), ws: &Workspace) -> Option<Remedy> {
    let full = io_cause(error).is_some_and(crate::disk::is_full)
        || sqlite_code(error) == Some(rusqlite::ErrorCode::DiskFull)
        || (sqlite_code(error) == Some(rusqlite::ErrorCode::SystemIoFailure)
            && crate::disk::no_space_left(&ws.data_dir));
    if full {
        return Some(Remedy::FreeSpace {
            path: ws.data_dir.clone(),
        });
    }
    let denied = io_cause(error).is_some_and(|io| {
        matches!(
            io.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        )
    }) || matches!(
        sqlite_code(error),
        Some(
            rusqlite::ErrorCode::ReadOnly
                | rusqlite::ErrorCode::PermissionDenied
                // SQLite cannot open (or create the -wal/-shm of) the
                // ledger: a read-only or someone else's data directory.
                | rusqlite::ErrorCode::CannotOpen
        )
    );
    denied.then(|| Remedy::FixPermissions {
        path: ws.data_dir.clone(),
    })
}

/// What an import job did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImportJob {
    /// The files.
    #[serde(flatten)]
    pub import: ImportReport,
    /// The speech found in them.
    pub vad: AnalyzeReport,
}

/// What a pull job did.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PullJob {
    /// The pull (its summary says why it stopped early, if it did).
    #[serde(flatten)]
    pub pulled: Pulled,
    /// The speech found in what arrived.
    pub vad: AnalyzeReport,
}

/// What a model download did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DownloadJob {
    /// The model's name.
    pub name: String,
    /// Where it is now.
    pub path: PathBuf,
    /// Its size, bytes.
    pub size: u64,
    /// Its SHA-256 (checked).
    pub sha256: String,
}

fn download_job(
    ws: &Workspace,
    name: &str,
    mirror: Option<&str>,
    ctx: &Ctx,
) -> Result<DownloadJob, JobError> {
    let started = std::time::Instant::now();
    let store = ws.model_store(mirror);
    let info = store.info(name)?.clone();
    ctx.emit(Event::StageStarted {
        stage: Stage::Download,
        total: info.size,
        unit: Unit::Bytes,
    });
    let mut last = 0u64;
    let path = store.download(
        name,
        &mut |p| {
            // Every 256 kB, not every chunk.
            if p.done >= last + (256 << 10) || p.done == p.total {
                last = p.done;
                ctx.emit(Event::Progress {
                    stage: Stage::Download,
                    done: p.done,
                    total: p.total,
                });
            }
        },
        ctx.cancel(),
    );
    let path = match path {
        Err(ModelError::Cancelled) => return Err(JobError::Cancelled),
        other => other?,
    };
    let job = DownloadJob {
        name: info.name.clone(),
        path,
        size: info.size,
        sha256: info.sha256.clone(),
    };
    ctx.stage_finished(started, StageReport::Download(job.clone()));
    Ok(job)
}

/// How long a status read waits for the pendant's INFO answer.
const STATUS_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide job counter.
static NEXT_JOB: AtomicU64 = AtomicU64::new(1);

/// A fresh job id.
pub fn next_job_id() -> JobId {
    JobId(NEXT_JOB.fetch_add(1, Ordering::Relaxed))
}

/// Runs `job` on this thread under `ctx` (whose id it takes), reporting
/// `job_started` and `job_finished` around it.
pub fn run(ws: &Workspace, job: &Job, ctx: &Ctx) -> Result<JobReport, JobError> {
    ctx.emit(Event::JobStarted { kind: job.kind() });
    let result = match ctx.check() {
        Err(_) => Err(JobError::Cancelled),
        Ok(()) => dispatch(ws, job, ctx),
    };
    let outcome = match &result {
        Ok(report) if ctx.cancel().is_cancelled() => {
            let _ = report;
            JobOutcome::Cancelled
        }
        Ok(report) => JobOutcome::Done {
            report: Box::new(report.clone()),
        },
        Err(JobError::Cancelled) => JobOutcome::Cancelled,
        Err(e) => JobOutcome::Failed {
            error: error_chain(e),
            remedy: e.remedy(ws),
        },
    };
    ctx.emit(Event::JobFinished { outcome });
    result
}

/// An error and its causes on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        cause = c.source();
    }
    s
}

/// A job running on its own thread.
#[derive(Debug)]
pub struct JobHandle {
    id: JobId,
    kind: JobKind,
    cancel: Cancel,
    thread: JoinHandle<Result<JobReport, JobError>>,
}

impl JobHandle {
    /// The job's id (as in its events).
    pub fn id(&self) -> JobId {
        self.id
    }

    /// What kind of job it is.
    pub fn kind(&self) -> JobKind {
        self.kind
    }

    /// Asks the job to stop; it finishes the write in hand, then ends.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The job's stop token.
    pub fn cancel_token(&self) -> &Cancel {
        &self.cancel
    }

    /// Whether the job has ended.
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Waits for the job to end and returns its result.
    pub fn join(self) -> Result<JobReport, JobError> {
        self.thread
            .join()
            .unwrap_or_else(|_| Err(JobError::Usage("the job's thread panicked".into())))
    }
}

/// Starts `job` on its own thread, reporting to `sink` on the system clock.
pub fn spawn(ws: Arc<Workspace>, job: Job, sink: Arc<dyn EventSink>) -> JobHandle {
    spawn_with_clock(ws, job, sink, Arc::new(SystemClock))
}

/// [`spawn`] with another clock (tests).
pub fn spawn_with_clock(
    ws: Arc<Workspace>,
    job: Job,
    sink: Arc<dyn EventSink>,
    clock: Arc<dyn Clock>,
) -> JobHandle {
    let id = next_job_id();
    let cancel = Cancel::new();
    let kind = job.kind();
    let token = cancel.clone();
    let thread = std::thread::Builder::new()
        .name(format!("omi-sync job {}", id.0))
        .spawn(move || {
            let ctx = Ctx::new(id, sink.as_ref(), token, clock.as_ref());
            run(&ws, &job, &ctx)
        })
        .expect("a thread can be started");
    JobHandle {
        id,
        kind,
        cancel,
        thread,
    }
}

fn dispatch(ws: &Workspace, job: &Job, ctx: &Ctx) -> Result<JobReport, JobError> {
    match job {
        Job::Import { paths } => {
            let mut ledger = ws.ledger()?;
            let import = import_paths(&mut ledger, paths, ctx)?;
            ctx.check()?;
            let vad = analyze(&mut ledger, &ws.analyze_options(false), ctx)?;
            Ok(JobReport::Import(ImportJob { import, vad }))
        }
        Job::Pull(req) => pull_job(ws, req, ctx).map(|p| JobReport::Pull(Box::new(p))),
        Job::Vad { rerun } => {
            let mut ledger = ws.ledger()?;
            Ok(JobReport::Vad(analyze(
                &mut ledger,
                &ws.analyze_options(*rerun),
                ctx,
            )?))
        }
        Job::Transcribe(choice) => transcribe_job(ws, choice, ctx).map(JobReport::Transcribe),
        Job::Retranscribe {
            conversation,
            choice,
        } => retranscribe_job(ws, conversation, choice, ctx).map(JobReport::Retranscribe),
        Job::Status(pendant) => {
            let mut connector = pendant.connector()?;
            device_status(connector.as_mut(), STATUS_TIMEOUT, ctx.cancel())
                .map(|s| JobReport::Status(Box::new(s)))
                .map_err(|e| JobError::Status {
                    device: connector.device_id(),
                    message: e.to_string(),
                })
        }
        Job::Push(req) => {
            let ledger = ws.ledger()?;
            let timeline = ws.timeline(&ledger)?;
            Ok(JobReport::Push(push_stage::run(
                ws, &ledger, &timeline, req, ctx,
            )?))
        }
        Job::Download { name, mirror } => {
            download_job(ws, name, mirror.as_deref(), ctx).map(JobReport::Download)
        }
        Job::Auto { source, push } => {
            auto_job(ws, source, push, ctx).map(|a| JobReport::Auto(Box::new(a)))
        }
    }
}

fn pull_job(ws: &Workspace, req: &PullRequest, ctx: &Ctx) -> Result<PullJob, JobError> {
    let mut ledger = ws.ledger()?;
    let pulled = {
        let _lock = ws.lock(Section::Pull)?;
        match &req.from {
            PullFrom::Image(path) => {
                let device = req
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("image:{}", path.display()));
                Pulled::Image(pull_image(&mut ledger, path, &device, req.forensic, ctx)?)
            }
            PullFrom::Pendant(pendant) => {
                if req.forensic {
                    return Err(JobError::Usage(
                        "a forensic pass reads a card: use it with an image".into(),
                    ));
                }
                let mut connector = pendant.connector()?;
                let opts = pendant.pull_options(req.keep_on_device);
                let mut renamed;
                let connector = match &req.name {
                    Some(name) => {
                        renamed = Renamed::new(connector.as_mut(), name.clone());
                        &mut renamed as &mut dyn Connector
                    }
                    None => connector.as_mut(),
                };
                let (summary, stop) = pull(&mut ledger, connector, &pendant.origin(), &opts, ctx);
                if let Some(PullStop::Ledger(e)) = stop {
                    return Err(e.into());
                }
                Pulled::Pendant(summary)
            }
        }
    };
    // What arrived is analysed even when the pull stopped half-way.
    ctx.check()?;
    let vad = analyze(&mut ledger, &ws.analyze_options(false), ctx)?;
    Ok(PullJob { pulled, vad })
}

fn transcribe_job(
    ws: &Workspace,
    choice: &SttChoice,
    ctx: &Ctx,
) -> Result<TranscribeReport, JobError> {
    let ledger = ws.ledger()?;
    if ledger.untranscribed_segments()?.is_empty() {
        return Ok(TranscribeReport::default());
    }
    let (engine, opts) = setup(ws, choice)?;
    Ok(transcribe(&ledger, &engine, &opts, ctx)?)
}

fn retranscribe_job(
    ws: &Workspace,
    conversation: &str,
    choice: &SttChoice,
    ctx: &Ctx,
) -> Result<AgainReport, JobError> {
    let mut ledger = ws.ledger()?;
    let timeline = ws.timeline(&ledger)?;
    let conv = timeline
        .find(conversation)
        .map_err(|e| JobError::Usage(e.to_string()))?
        .clone();
    // The engine is made ready first: a missing model leaves the text as it is.
    let (engine, opts) = setup(ws, choice)?;
    let push = push_stage::options(ws, &PushRequest::default());
    Ok(again(&mut ledger, &conv, &engine, &opts, &push, ctx)?)
}

fn auto_job(
    ws: &Workspace,
    source: &Source,
    push: &PushRequest,
    ctx: &Ctx,
) -> Result<auto::AutoReport, JobError> {
    let mut ledger = ws.ledger()?;
    auto::run(ws, &mut ledger, source, push, ctx)
}
