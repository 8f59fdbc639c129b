//! What jobs and stages report when they finish, as types.
//!
//! Each stage's own report type lives with the stage ([`ImportReport`] in
//! [`super::import`], [`AnalyzeReport`] in [`super::analyze`], ...); this
//! module names them together, so an event or a frontend can carry any of
//! them: [`StageReport`] (one stage, in a `stage_finished` event) and
//! [`JobReport`] (a whole job, in `job_finished`). Frontends render them in
//! their own words; nothing here is a sentence.

use super::janitor::PruneReport;
use serde::{Deserialize, Serialize};

use super::analyze::AnalyzeReport;
use super::auto::{AutoReport, Pulled};
use super::events::Stage;
use super::import::ImportReport;
use super::jobs::{DownloadJob, ImportJob, PullJob};
use super::pull::DeviceStatus;
use super::push::PushReport;
use super::push::stage::PushStage;
use super::transcribe::TranscribeReport;
use super::transcribe::again::AgainReport;

/// What kind of job is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// Import phone-app files, and find the speech in them.
    Import,
    /// Pull a pendant or a card, and find the speech.
    Pull,
    /// Find speech in captures not analysed yet (or all again).
    Vad,
    /// Transcribe what is pending.
    Transcribe,
    /// Push conversations to the cloud.
    Push,
    /// The whole job without a person (`--auto`).
    Auto,
    /// Fetch a Whisper model.
    Download,
    /// Read a pendant's storage status.
    Status,
}

/// What one stage did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", rename_all = "snake_case")]
pub enum StageReport {
    /// Files imported.
    Import(ImportReport),
    /// A pendant or card pulled.
    Pull(Box<Pulled>),
    /// Speech found.
    Vad(AnalyzeReport),
    /// Speech transcribed.
    Transcribe(TranscribeReport),
    /// Conversations pushed.
    Push(PushReport),
    /// A model fetched.
    Download(DownloadJob),
    /// Local audio freed (or, in a dry run, listed).
    Cleanup(PruneReport),
}

impl StageReport {
    /// The stage it reports on.
    pub fn stage(&self) -> Stage {
        match self {
            StageReport::Import(_) => Stage::Import,
            StageReport::Pull(_) => Stage::Pull,
            StageReport::Vad(_) => Stage::Vad,
            StageReport::Transcribe(_) => Stage::Transcribe,
            StageReport::Push(_) => Stage::Push,
            StageReport::Download(_) => Stage::Download,
            StageReport::Cleanup(_) => Stage::Cleanup,
        }
    }
}

/// What a whole job did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum JobReport {
    /// An import (and the speech found in it).
    Import(ImportJob),
    /// A pull (and the speech found in what arrived).
    Pull(Box<PullJob>),
    /// VAD.
    Vad(AnalyzeReport),
    /// Transcription.
    Transcribe(TranscribeReport),
    /// A push.
    Push(PushStage),
    /// `--auto`.
    Auto(Box<AutoReport>),
    /// A model download.
    Download(DownloadJob),
    /// One conversation transcribed again.
    Retranscribe(AgainReport),
    /// A pendant's storage status.
    Status(Box<DeviceStatus>),
}
