//! What the engine reports while it works, for whichever frontend listens.
//!
//! The engine never draws anything and never words a sentence for a person:
//! it emits typed [`Event`]s, each in an [`Envelope`] that names the job it
//! belongs to and when it happened, to an [`EventSink`]. The command line
//! turns them into progress bars and lines, `--json` into NDJSON (one
//! envelope per line, versioned by [`EVENTS_VERSION`]), the TUI into its
//! views. Units ([`Unit`]), reasons for waiting ([`WaitReason`]), link states
//! ([`LinkState`]), origins of warnings ([`Origin`]) and what a person can do
//! about a failure ([`Remedy`]) are all typed, so no frontend matches strings.
//!
//! ```
//! use omi_sync::engine::events::{Envelope, Event, JobId, Stage, Unit};
//! use omi_sync::clock::UtcMillis;
//!
//! let e = Envelope::new(JobId(7), UtcMillis(1_717_000_000_000), Event::StageStarted {
//!     stage: Stage::Vad, total: 255, unit: Unit::AudioSeconds,
//! });
//! let line = serde_json::to_string(&e).unwrap();
//! assert_eq!(line, r#"{"v":1,"job":7,"at":"2024-05-29T16:26:40.000Z","event":"stage_started","stage":"vad","total":255,"unit":"audio_seconds"}"#);
//! assert_eq!(serde_json::from_str::<Envelope>(&line).unwrap(), e);
//! ```

use std::path::PathBuf;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::remedy::Remedy;
use super::report::{JobKind, JobReport, StageReport};
use crate::clock::{UtcMillis, rfc3339};
use crate::timeline::SegmentStatus;

/// The version of the event stream's shape (the `"v"` of every NDJSON line).
/// Adding an event or a field keeps it; renaming or removing one bumps it.
pub const EVENTS_VERSION: u32 = 1;

/// A job's id, unique within one process (the first job is 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub u64);

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "job {}", self.0)
    }
}

/// One event with the job it belongs to and when it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// [`EVENTS_VERSION`].
    pub v: u32,
    /// The job that emitted it.
    pub job: JobId,
    /// When (RFC 3339 UTC).
    #[serde(with = "rfc3339")]
    pub at: UtcMillis,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

impl Envelope {
    /// `event` of `job` at `at`, in the current version.
    pub fn new(job: JobId, at: UtcMillis, event: Event) -> Self {
        Envelope {
            v: EVENTS_VERSION,
            job,
            at,
            event,
        }
    }
}

/// A pipeline stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    /// Fetching a Whisper model.
    Download,
    /// Freeing local audio the cloud has (the janitor).
    Cleanup,
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
            Stage::Download => "download",
            Stage::Cleanup => "cleanup",
        }
    }
}

/// What a stage counts its work in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Files.
    Files,
    /// Bytes (a pull, a download: shown as kB/s).
    Bytes,
    /// Seconds of audio.
    AudioSeconds,
    /// Speech segments.
    Segments,
    /// Conversations.
    Conversations,
    /// Captures.
    Captures,
}

impl Unit {
    /// How a person reads it after a number.
    pub fn label(self) -> &'static str {
        match self {
            Unit::Files => "files",
            Unit::Bytes => "bytes",
            Unit::AudioSeconds => "s of audio",
            Unit::Segments => "segments",
            Unit::Conversations => "conversations",
            Unit::Captures => "captures",
        }
    }
}

/// Where a warning comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Origin {
    /// A file, at a byte offset when known.
    File {
        /// The file.
        path: PathBuf,
        /// Where in it.
        offset: Option<u64>,
    },
    /// A stored capture.
    Capture {
        /// Its ledger id.
        id: i64,
        /// Where its bytes came from (a file name, `ble:ID`, `image:PATH`).
        source: String,
    },
    /// A pendant or a card.
    Device {
        /// Its device key.
        id: String,
    },
    /// A conversation of the timeline.
    Conversation {
        /// Its timeline id.
        id: String,
    },
    /// A transcription window (a pool job).
    Window {
        /// Its index in the run's plan.
        index: usize,
    },
    /// A stage as a whole.
    Stage {
        /// Which.
        stage: Stage,
    },
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File {
                path,
                offset: Some(o),
            } => write!(f, "{} at byte {o}", path.display()),
            Origin::File { path, offset: None } => write!(f, "{}", path.display()),
            Origin::Capture { source, .. } => f.write_str(source),
            Origin::Device { id } => f.write_str(id),
            Origin::Conversation { id } => write!(f, "conversation {id}"),
            Origin::Window { index } => write!(f, "window {index}"),
            Origin::Stage { stage } => f.write_str(stage.label()),
        }
    }
}

/// The state of the link to a pendant during a pull.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LinkState {
    /// Connecting (the first attempt is 1).
    Connecting {
        /// Which attempt.
        attempt: u32,
    },
    /// Connected, with the negotiated ATT MTU.
    Connected {
        /// The MTU.
        mtu: u16,
    },
    /// The link dropped or timed out; what arrived is durable.
    Dropped {
        /// What the transport said.
        reason: String,
    },
    /// Reconnecting after this wait.
    Reconnecting {
        /// The wait, ms.
        after_ms: u64,
    },
    /// The session ended and the link is closed.
    Closed,
}

/// Why a stage is waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum WaitReason {
    /// The hourly budget of cloud requests is spent.
    HourlyBudget {
        /// Requests allowed per window.
        limit: u32,
        /// The window, seconds.
        window_s: u64,
    },
    /// The server asked to wait (429 or 503 with `Retry-After`).
    ServerAsked {
        /// Its status.
        status: u16,
    },
    /// Backing off before a retry.
    Backoff {
        /// The attempt that failed.
        attempt: u32,
    },
    /// Waiting for the cloud to finish processing before confirming.
    Confirming,
    /// Another run holds what this one needs.
    Busy {
        /// Who holds it, as it says.
        holder: String,
    },
}

/// How a job ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum JobOutcome {
    /// It ran to the end (which may have left work for later: see the report).
    Done {
        /// What it did.
        report: Box<JobReport>,
    },
    /// It stopped on a cancel; everything written before is kept.
    Cancelled,
    /// It failed.
    Failed {
        /// What went wrong, with its causes.
        error: String,
        /// What a person can do about it, when something can.
        remedy: Option<Remedy>,
    },
}

/// Something that happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A job began.
    JobStarted {
        /// What it is.
        kind: JobKind,
    },
    /// A job ended.
    JobFinished {
        /// How.
        #[serde(flatten)]
        outcome: JobOutcome,
    },
    /// A stage began; `total` units of work.
    StageStarted {
        /// Which stage.
        stage: Stage,
        /// Units of work, if known (0 when not).
        total: u64,
        /// What a unit is.
        unit: Unit,
    },
    /// Work done so far in a stage.
    Progress {
        /// Which stage.
        stage: Stage,
        /// Units done.
        done: u64,
        /// Units in all (it may grow while a pull or import is still running).
        total: u64,
    },
    /// A stage ended, with what it did.
    StageFinished {
        /// How long it took, ms.
        elapsed_ms: u64,
        /// What it did (names the stage).
        #[serde(flatten)]
        report: StageReport,
    },
    /// The link to a pendant changed.
    Link {
        /// The pendant.
        device: String,
        /// Its new state.
        #[serde(flatten)]
        state: LinkState,
    },
    /// A segment's transcript landed (or its transcription failed) and is
    /// stored: the timeline can be redrawn.
    SegmentTranscribed {
        /// The segment's ledger id.
        segment: i64,
        /// `speech`, `silent` or `failed`.
        status: SegmentStatus,
        /// Its text, when it has words.
        text: Option<String>,
    },
    /// A conversation is confirmed in the cloud.
    ConversationPushed {
        /// The timeline's id.
        conversation: String,
        /// Its `client_session_id`.
        session_id: String,
        /// The cloud's id.
        cloud_id: String,
    },
    /// A stage waits before it goes on.
    Waiting {
        /// Which stage.
        stage: Stage,
        /// Until when (RFC 3339 UTC).
        #[serde(with = "rfc3339")]
        until: UtcMillis,
        /// Why.
        #[serde(flatten)]
        reason: WaitReason,
    },
    /// Something a person should know, located.
    Warning {
        /// What it concerns.
        origin: Origin,
        /// What happened and what was done about it.
        message: String,
    },
}

/// Where events go.
pub trait EventSink: Send + Sync {
    /// Takes one event. Must not block for long.
    fn emit(&self, envelope: Envelope);
}

impl<F: Fn(Envelope) + Send + Sync> EventSink for F {
    fn emit(&self, envelope: Envelope) {
        self(envelope)
    }
}

/// A sink that drops everything (tests, library use).
pub struct Silent;

impl EventSink for Silent {
    fn emit(&self, _envelope: Envelope) {}
}

/// A sink that keeps everything, in order (tests, and frontends that read
/// a finished job's events).
#[derive(Default)]
pub struct Collect(Mutex<Vec<Envelope>>);

impl Collect {
    /// An empty collector.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every envelope so far.
    pub fn envelopes(&self) -> Vec<Envelope> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every event so far.
    pub fn events(&self) -> Vec<Event> {
        self.envelopes().into_iter().map(|e| e.event).collect()
    }
}

impl EventSink for Collect {
    fn emit(&self, envelope: Envelope) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(envelope);
    }
}

/// Sends every event to two sinks, in turn.
pub struct Tee<'a>(pub &'a dyn EventSink, pub &'a dyn EventSink);

impl EventSink for Tee<'_> {
    fn emit(&self, envelope: Envelope) {
        self.0.emit(envelope.clone());
        self.1.emit(envelope);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::analyze::AnalyzeReport;
    use crate::engine::auto::{AutoReport, Pulled};
    use crate::engine::import::ImportReport;
    use crate::engine::pull::PullSummary;
    use crate::engine::push::PushReport;
    use crate::engine::push::stage::PushStage;
    use crate::engine::transcribe::TranscribeReport;

    /// One of every event, every unit, origin, link state and wait reason.
    fn every_event() -> Vec<Event> {
        let mut v = vec![
            Event::JobStarted {
                kind: JobKind::Auto,
            },
            Event::JobFinished {
                outcome: JobOutcome::Cancelled,
            },
            Event::JobFinished {
                outcome: JobOutcome::Failed {
                    error: "disk full".into(),
                    remedy: Some(Remedy::FreeSpace { path: "/d".into() }),
                },
            },
            Event::JobFinished {
                outcome: JobOutcome::Done {
                    report: Box::new(JobReport::Auto(Box::new(AutoReport {
                        import: ImportReport::default(),
                        pulled: None,
                        vad: AnalyzeReport::default(),
                        transcribe: None,
                        transcribe_skipped: Some(Remedy::GetModel {
                            name: "tiny.en".into(),
                        }),
                        push: PushStage::default(),
                        storage: Some(Default::default()),
                        conversations: 2,
                        estimated_conversations: 0,
                        pending_segments: 5,
                    }))),
                },
            },
            Event::Progress {
                stage: Stage::Pull,
                done: 4,
                total: 9,
            },
            Event::SegmentTranscribed {
                segment: 3,
                status: SegmentStatus::Speech,
                text: Some("hello".into()),
            },
            Event::ConversationPushed {
                conversation: "abc".into(),
                session_id: "s".into(),
                cloud_id: "c".into(),
            },
        ];
        for unit in [
            Unit::Files,
            Unit::Bytes,
            Unit::AudioSeconds,
            Unit::Segments,
            Unit::Conversations,
            Unit::Captures,
        ] {
            v.push(Event::StageStarted {
                stage: Stage::Vad,
                total: 1,
                unit,
            });
        }
        for report in [
            StageReport::Import(ImportReport::default()),
            StageReport::Vad(AnalyzeReport::default()),
            StageReport::Transcribe(TranscribeReport::default()),
            StageReport::Push(PushReport::default()),
            StageReport::Cleanup(crate::engine::janitor::PruneReport {
                next_due: Some(UtcMillis(1_717_000_000_000)),
                ..Default::default()
            }),
            StageReport::Pull(Box::new(Pulled::Pendant(PullSummary {
                device: "sim:x".into(),
                origin: "sim:x".into(),
                stored: Default::default(),
                link: Default::default(),
                notes: vec!["n".into()],
                error: None,
            }))),
        ] {
            v.push(Event::StageFinished {
                elapsed_ms: 12,
                report,
            });
        }
        for state in [
            LinkState::Connecting { attempt: 2 },
            LinkState::Connected { mtu: 247 },
            LinkState::Dropped { reason: "r".into() },
            LinkState::Reconnecting { after_ms: 10 },
            LinkState::Closed,
        ] {
            v.push(Event::Link {
                device: "sim:x".into(),
                state,
            });
        }
        for reason in [
            WaitReason::HourlyBudget {
                limit: 25,
                window_s: 3600,
            },
            WaitReason::ServerAsked { status: 429 },
            WaitReason::Backoff { attempt: 1 },
            WaitReason::Confirming,
            WaitReason::Busy {
                holder: "pid 1".into(),
            },
        ] {
            v.push(Event::Waiting {
                stage: Stage::Push,
                until: UtcMillis(1_717_000_000_000),
                reason,
            });
        }
        for origin in [
            Origin::File {
                path: "/a.bin".into(),
                offset: Some(8),
            },
            Origin::Capture {
                id: 1,
                source: "x".into(),
            },
            Origin::Device { id: "d".into() },
            Origin::Conversation { id: "c".into() },
            Origin::Window { index: 2 },
            Origin::Stage {
                stage: Stage::Transcribe,
            },
        ] {
            v.push(Event::Warning {
                origin,
                message: "m".into(),
            });
        }
        v
    }

    #[test]
    fn every_event_round_trips_through_its_ndjson_line() {
        for (i, event) in every_event().into_iter().enumerate() {
            let e = Envelope::new(JobId(i as u64 + 1), UtcMillis(1_717_000_000_123), event);
            let line = serde_json::to_string(&e).unwrap();
            assert!(!line.contains('\n'), "one line: {line}");
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(v["v"], EVENTS_VERSION, "{line}");
            assert!(v["event"].is_string(), "{line}");
            let back: Envelope = serde_json::from_str(&line)
                .unwrap_or_else(|err| panic!("{line} does not read back: {err}"));
            assert_eq!(back, e, "{line}");
        }
    }

    #[test]
    fn a_collector_keeps_order_and_a_tee_feeds_both() {
        let (a, b) = (Collect::new(), Collect::new());
        let tee = Tee(&a, &b);
        for i in 0..3 {
            tee.emit(Envelope::new(
                JobId(1),
                UtcMillis(i),
                Event::Progress {
                    stage: Stage::Import,
                    done: i as u64,
                    total: 3,
                },
            ));
        }
        assert_eq!(a.envelopes(), b.envelopes());
        let at: Vec<i64> = a.envelopes().iter().map(|e| e.at.0).collect();
        assert_eq!(at, vec![0, 1, 2]);
    }
}
