//! What the engine reports while it works, for whichever frontend listens.
//!
//! The engine never draws anything: it emits [`Event`]s to an [`EventSink`].
//! The command line turns them into progress bars or plain lines, `--json`
//! into NDJSON, the TUI into its views.

use serde::Serialize;

/// A pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Copying files into the ledger.
    Import,
    /// Pulling records from a pendant or image.
    Pull,
    /// Finding speech.
    Vad,
    /// Turning speech into text.
    Transcribe,
    /// Sending conversations to the cloud.
    Push,
}

impl Stage {
    /// A short human name.
    pub fn label(self) -> &'static str {
        match self {
            Stage::Import => "import",
            Stage::Pull => "pull",
            Stage::Vad => "find speech",
            Stage::Transcribe => "transcribe",
            Stage::Push => "push",
        }
    }
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A stage began; `total` units of work (`unit` says what they are).
    StageStarted {
        /// Which stage.
        stage: Stage,
        /// Units of work, if known.
        total: u64,
        /// What a unit is (files, seconds, segments...).
        unit: &'static str,
    },
    /// Work done so far in a stage.
    Progress {
        /// Which stage.
        stage: Stage,
        /// Units done.
        done: u64,
        /// Units in all.
        total: u64,
    },
    /// A stage ended.
    StageFinished {
        /// Which stage.
        stage: Stage,
        /// A one-line summary.
        summary: String,
    },
    /// A segment's transcript landed (or its transcription failed) and is
    /// stored: the timeline can be redrawn.
    SegmentTranscribed {
        /// The segment's ledger id.
        segment: i64,
        /// `speech`, `silent` or `failed`.
        status: crate::timeline::SegmentStatus,
        /// Its text, when it has words.
        text: Option<String>,
    },
    /// The stage is waiting (rate limit, backoff) before it goes on.
    Waiting {
        /// Which stage.
        stage: Stage,
        /// Until when (RFC 3339 UTC).
        until: String,
        /// Why.
        reason: String,
    },
    /// Something a person should know, located.
    Warning {
        /// The file, capture or device it concerns.
        origin: String,
        /// What happened and what was done about it.
        message: String,
    },
}

/// Where events go.
pub trait EventSink: Send + Sync {
    /// Reports one event. Must not block for long.
    fn emit(&self, event: Event);
}

impl<F: Fn(Event) + Send + Sync> EventSink for F {
    fn emit(&self, event: Event) {
        self(event)
    }
}

/// A sink that drops everything (tests, library use).
pub struct Silent;

impl EventSink for Silent {
    fn emit(&self, _event: Event) {}
}
