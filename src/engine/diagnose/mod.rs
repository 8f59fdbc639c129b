//! `diagnose`: a read-only report on what a user has (a data directory, a
//! card image, a folder of phone-app files, a pendant in reach), for the
//! support person untangling their backlog.
//!
//! Nothing here writes: the ledger is read through a private copy
//! ([`LedgerCopy`]), an image is only read ([`ImageReader`]), phone-app
//! files are checked without storing them, a pendant gets status and INFO
//! reads only ([`device_status`]), and the cloud is not contacted.
//!
//! Each section is a module that turns what it reads into [`Finding`]s (one
//! line each: severity, what, where, and the [`Remedy`]), in the manner of
//! `flutter doctor`: [`environment`], [`card`] (the pendant or its card),
//! [`captures`], [`speech`] (speech and conversations), [`transcription`]
//! and [`cloud`]. [`Report::findings`] lists the ones needing attention,
//! worst first. [`chart`] is the timeline picture the HTML report draws, and
//! [`redact`] replaces device ids and file names by stable pseudonyms, the
//! home directory by `~`, and keeps transcripts out unless asked.
//!
//! [`LedgerCopy`]: crate::store::LedgerCopy
//! [`ImageReader`]: crate::device::usb::ImageReader
//! [`device_status`]: crate::engine::pull::device_status

pub mod captures;
pub mod card;
pub mod chart;
pub mod cloud;
pub mod environment;
pub mod redact;
pub mod speech;
pub mod transcription;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::remedy::Remedy;
use super::snapshot::Snapshot;
use super::workspace::Workspace;
use crate::cancel::Cancel;
use crate::clock::UtcMillis;
use crate::device::link::Connector;
use crate::store::LedgerCopy;

/// The version of the report's JSON shape (`docs/diagnose.schema.json`):
/// raised when a field changes meaning or is removed, not when one is added.
pub const SCHEMA_VERSION: u32 = 1;

/// How much a check's result needs attention, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Fine.
    Ok,
    /// Worth a look; nothing is lost yet.
    Warning,
    /// Audio, text or a push is lost, stuck or at risk: needs a person.
    Problem,
}

impl Severity {
    /// The word the reports use.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Problem => "problem",
        }
    }
}

/// One check's result: one line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// How much it needs attention.
    pub severity: Severity,
    /// A stable name of the check, e.g. `card.torn_batch`.
    pub check: String,
    /// What was found.
    pub what: String,
    /// Where: file and byte offset, sector, segment or conversation id.
    #[serde(rename = "where")]
    pub place: Option<String>,
    /// What to do about it.
    pub fix: Option<Remedy>,
    /// More, for `-v` (and the HTML report).
    #[serde(default)]
    pub detail: Vec<String>,
}

impl Finding {
    /// A finding with no place, fix or detail.
    pub fn new(severity: Severity, check: &str, what: impl Into<String>) -> Self {
        Finding {
            severity,
            check: check.to_string(),
            what: what.into(),
            place: None,
            fix: None,
            detail: Vec::new(),
        }
    }

    /// An `ok` line.
    pub fn ok(check: &str, what: impl Into<String>) -> Self {
        Self::new(Severity::Ok, check, what)
    }

    /// A warning.
    pub fn warning(check: &str, what: impl Into<String>) -> Self {
        Self::new(Severity::Warning, check, what)
    }

    /// A problem.
    pub fn problem(check: &str, what: impl Into<String>) -> Self {
        Self::new(Severity::Problem, check, what)
    }

    /// Says where.
    pub fn at(mut self, place: impl Into<String>) -> Self {
        self.place = Some(place.into());
        self
    }

    /// Says what to do.
    pub fn fix(mut self, remedy: Remedy) -> Self {
        self.fix = Some(remedy);
        self
    }

    /// Adds detail lines.
    pub fn detail(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.detail.extend(lines);
        self
    }
}

/// The report's parts, in the order they are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionId {
    /// This machine and omi-sync's setup.
    Environment,
    /// The pendant, or its card image.
    Card,
    /// What was captured, from where, and what is odd about it.
    Captures,
    /// Speech and conversations.
    Speech,
    /// Speech to text.
    Transcription,
    /// The outbox and the cloud's answers.
    Cloud,
}

impl SectionId {
    /// Its heading.
    pub fn title(self) -> &'static str {
        match self {
            SectionId::Environment => "Environment",
            SectionId::Card => "Pendant or card",
            SectionId::Captures => "Captures",
            SectionId::Speech => "Speech and conversations",
            SectionId::Transcription => "Transcription",
            SectionId::Cloud => "Cloud",
        }
    }
}

/// One part of the report: its checks, in the order they were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Section {
    /// Which part.
    pub id: SectionId,
    /// Its heading.
    pub title: String,
    /// Its lines.
    pub checks: Vec<Finding>,
}

/// A source the report was pointed at and could not read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unreadable {
    /// `data_dir`, `image`, `wal` or `device`.
    pub source: String,
    /// Why.
    pub error: String,
}

/// What the report was made from (redacted as the rest).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sources {
    /// The data directory.
    pub data_dir: Option<String>,
    /// The card image or block device.
    pub image: Option<String>,
    /// The folder of phone-app files.
    pub wal: Option<String>,
    /// The pendant.
    pub device: Option<String>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The omi-sync that made it.
    pub omi_sync_version: String,
    /// When, RFC 3339.
    pub generated_at: String,
    /// Whether ids, names and paths are pseudonymised and text left out.
    pub redacted: bool,
    /// Whether transcript text is included.
    pub transcripts_included: bool,
    /// What it was made from.
    pub sources: Sources,
    /// Sources that could not be read (exit 7).
    pub unreadable: Vec<Unreadable>,
    /// Every check that needs attention, worst first.
    pub findings: Vec<Finding>,
    /// Every check, by section.
    pub sections: Vec<Section>,
    /// The timeline picture, when there is anything on a timeline.
    pub chart: Option<chart::Chart>,
    /// Text the hallucination guards dropped, per segment (its text only
    /// with `--include-transcripts`).
    #[serde(default)]
    pub guard_drops: Vec<transcription::GuardDrop>,
    /// Pairs of captures holding the same audio (one recording imported
    /// from two sources).
    #[serde(default)]
    pub shared_audio: Vec<captures::SharedAudio>,
}

impl Report {
    /// The worst severity found (`Ok` when nothing needs attention).
    pub fn worst(&self) -> Severity {
        self.findings.first().map_or(Severity::Ok, |f| f.severity)
    }
}

/// What to diagnose.
#[derive(Debug, Clone, Default)]
pub struct Request {
    /// A data directory (read through a private copy of its ledger).
    pub data_dir: Option<PathBuf>,
    /// A card image or a card reader's block device.
    pub image: Option<PathBuf>,
    /// A folder (or file) of phone-app `.bin` files.
    pub wal: Option<PathBuf>,
    /// Keep transcript text in the report.
    pub include_transcripts: bool,
    /// Keep ids, names and paths as they are (for the user's own eyes).
    pub no_redact: bool,
    /// Where the pendant is (`ble:ID`, `sim:PATH`), when one is asked about.
    pub pendant_origin: Option<String>,
    /// Why the config file did not load, if it did not (the defaults are
    /// used and the environment section says so).
    pub config_error: Option<String>,
}

/// The findings that need attention, worst first (stable within a severity:
/// the order the sections made them in).
pub fn worst_first(sections: &[Section]) -> Vec<Finding> {
    let mut out: Vec<Finding> = sections
        .iter()
        .flat_map(|s| s.checks.iter())
        .filter(|f| f.severity > Severity::Ok)
        .cloned()
        .collect();
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    out
}

/// Makes the report: every source in `req` (and the pendant behind
/// `pendant`, with status and INFO reads only; an `Err` is why its
/// transport could not be opened), under `ws`'s settings. Never writes
/// anything anywhere but a private temporary directory.
pub fn diagnose(
    ws: &Workspace,
    req: &Request,
    pendant: Option<Result<&mut dyn Connector, String>>,
    cancel: &Cancel,
) -> Report {
    let now = UtcMillis::now();
    let mut unreadable = Vec::new();
    let mut sections = Vec::new();

    let env =
        environment::Environment::probe(ws, req.config_error.as_deref(), req.data_dir.as_deref());
    let mut redactor = redact::Redactor::new(!req.no_redact, env.key_secret.as_deref());
    sections.push(Section::of(SectionId::Environment, env.findings));

    let mut card_checks = Vec::new();
    let mut image_spans = None;
    if let Some(path) = &req.image {
        match card::image(path) {
            Ok(img) => {
                card_checks.extend(img.findings);
                image_spans = Some(img.lanes);
            }
            Err(e) => unreadable.push(Unreadable {
                source: "image".into(),
                error: e,
            }),
        }
    }
    if let Some(origin) = &req.pendant_origin {
        redactor.origin(origin);
        redactor.device(origin);
    }
    let mut device_name = req.pendant_origin.clone();
    match pendant {
        Some(Ok(conn)) => {
            let id = conn.device_id();
            redactor.origin(&id);
            device_name = Some(redactor.device(&id));
            match card::pendant(conn, cancel) {
                Ok(f) => card_checks.extend(f),
                Err(e) => unreadable.push(Unreadable {
                    source: "device".into(),
                    error: e,
                }),
            }
        }
        Some(Err(e)) => unreadable.push(Unreadable {
            source: "device".into(),
            error: e,
        }),
        None => {}
    }
    let mut capture_checks = Vec::new();
    if let Some(dir) = &req.wal {
        match captures::phone_files(dir, now) {
            Ok(found) => {
                found.files.iter().for_each(|f| {
                    redactor.file(f);
                });
                found.devices.iter().for_each(|d| {
                    redactor.device(d);
                });
                capture_checks.extend(found.findings);
            }
            Err(e) => unreadable.push(Unreadable {
                source: "wal".into(),
                error: e,
            }),
        }
    }

    let mut chart = image_spans.map(chart::Chart::from_lanes);
    let mut guard_drops = Vec::new();
    let mut shared_audio = Vec::new();
    if let Some(dir) = &req.data_dir {
        match LedgerCopy::open(dir).and_then(|copy| {
            redactor.learn(&copy)?;
            let snap = Snapshot::take(ws, &copy)?;
            let mut ledger = captures::ledger(&copy, &snap, now)?;
            let same = captures::same_audio(&copy)?;
            ledger.extend(same.findings);
            let speech = speech::check(&copy, &snap, ws, req.include_transcripts)?;
            let text = transcription::check(&copy, &snap, ws, req.include_transcripts)?;
            let cloud = cloud::check(&snap, ws, now);
            let picture = chart::Chart::of(&snap, &speech.reasons);
            let kept = card::last_reports(&snap.devices, now);
            Ok((ledger, same.pairs, speech, text, cloud, picture, kept))
        }) {
            Ok((ledger, same, speech, text, cloud, picture, kept)) => {
                shared_audio = same;
                card_checks.extend(kept);
                capture_checks.extend(ledger);
                sections.push(Section::of(SectionId::Captures, capture_checks));
                sections.push(Section::of(SectionId::Speech, speech.findings));
                sections.push(Section::of(SectionId::Transcription, text.findings));
                guard_drops = text.drops;
                sections.push(Section::of(SectionId::Cloud, cloud));
                chart = Some(match chart {
                    Some(c) => c.with(picture),
                    None => picture,
                });
            }
            // A data directory nothing was ever imported into, beside a
            // card, a folder or a pendant to look at: not a failure to
            // read, just nothing there (support staff given only a card).
            Err(crate::store::StoreError::NotFound(_))
                if req.image.is_some() || req.wal.is_some() || device_name.is_some() =>
            {
                if !capture_checks.is_empty() {
                    sections.push(Section::of(SectionId::Captures, capture_checks));
                }
            }
            Err(e) => {
                unreadable.push(Unreadable {
                    source: "data_dir".into(),
                    error: e.to_string(),
                });
                if !capture_checks.is_empty() {
                    sections.push(Section::of(SectionId::Captures, capture_checks));
                }
            }
        }
    } else if !capture_checks.is_empty() {
        sections.push(Section::of(SectionId::Captures, capture_checks));
    }
    if req.image.is_some() || device_name.is_some() || !card_checks.is_empty() {
        sections.push(Section::of(SectionId::Card, card_checks));
    }
    sections.sort_by_key(|s| s.id);

    let findings = worst_first(&sections);
    let report = Report {
        schema_version: SCHEMA_VERSION,
        omi_sync_version: env!("CARGO_PKG_VERSION").to_string(),
        generated_at: now.to_rfc3339(),
        redacted: !req.no_redact,
        transcripts_included: req.include_transcripts,
        sources: Sources {
            data_dir: req.data_dir.as_ref().map(|p| redactor.home(p)),
            image: req.image.as_ref().map(|p| redactor.file(p)),
            wal: req.wal.as_ref().map(|p| redactor.home(p)),
            device: device_name,
        },
        unreadable,
        findings,
        sections,
        chart: chart.filter(|c| !c.lanes.is_empty()),
        guard_drops,
        shared_audio,
    };
    redactor.apply(report)
}

impl Section {
    fn of(id: SectionId, checks: Vec<Finding>) -> Section {
        Section {
            id,
            title: id.title().to_string(),
            checks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_are_worst_first_and_leave_ok_lines_out() {
        let sections = vec![
            Section::of(
                SectionId::Environment,
                vec![
                    Finding::ok("a", "fine"),
                    Finding::warning("b", "first warning"),
                ],
            ),
            Section::of(
                SectionId::Cloud,
                vec![
                    Finding::warning("c", "second warning"),
                    Finding::problem("d", "a problem"),
                ],
            ),
        ];
        let f = worst_first(&sections);
        let checks: Vec<&str> = f.iter().map(|f| f.check.as_str()).collect();
        assert_eq!(checks, ["d", "b", "c"]);
        assert!(Severity::Problem > Severity::Warning && Severity::Warning > Severity::Ok);
    }
}
