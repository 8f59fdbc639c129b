//! The TUI's state and what each key does to it.
//!
//! [`App`] holds the latest [`Snapshot`] of the ledger and the person's
//! place in it (view, selected conversation and segment, prompt). A key is
//! looked up in the [`KeyMap`] and handled by [`App::act`]; edits are made
//! at once through [`crate::engine::edit`] and followed by a fresh
//! snapshot; jobs (push, transcription, re-transcription) run on the
//! engine's threads and report through their event sink. The snapshot is
//! retaken whenever the ledger's data version moves (another process, an
//! `--auto` timer run, a job here) or a job ends.

use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

use ratatui::crossterm::event::{
    Event as Input, KeyCode, KeyEventKind, MouseButton, MouseEventKind,
};
use ratatui::layout::Rect;

use super::keys::{Action, KeyMap};
use super::play::Player;
use super::theme::Theme;
use super::zone::Zone;
use crate::engine::edit::{self, EditOutcome, MergePreview};
use crate::engine::events::{Envelope, Event, EventSink, JobId, JobOutcome, Stage, Unit};
use crate::engine::export::{Clip, ClipReader, write_wav};
use crate::engine::jobs::{self, Job, JobHandle};
use crate::engine::push::CloudStatus;
use crate::engine::push::stage::PushRequest;
use crate::engine::report::JobKind;
use crate::engine::snapshot::Snapshot;
use crate::engine::transcribe::setup::SttChoice;
use crate::engine::workspace::Workspace;
use crate::store::{EditState, LedgerReader};
use crate::stt::engine::EngineKind;
use crate::timeline::{BoundaryReason, Conversation, Segment, boundary_reasons};

/// How the TUI looks and reads keys.
#[derive(Debug, Clone)]
pub struct Options {
    /// The zone times are shown in.
    pub zone: Zone,
    /// The colours.
    pub theme: Theme,
    /// The keys.
    pub keys: KeyMap,
}

impl Options {
    /// From the config, `TZ` and `NO_COLOR`.
    pub fn from_env(ws: &Workspace) -> Options {
        Options {
            zone: Zone::system(),
            theme: Theme::new(ws.config.tui.theme, Theme::no_color_env()),
            keys: KeyMap::new(&ws.config.tui.keys),
        }
    }
}

/// The views, in the order `1`-`5` and Tab visit them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// The time axis and the list of conversations.
    Timeline,
    /// One conversation's segments.
    Conversation,
    /// Every segment, filterable.
    Segments,
    /// The push plan and the outbox.
    Sync,
    /// Devices and jobs.
    Device,
}

impl View {
    /// Every view, in order.
    pub const ALL: [View; 5] = [
        View::Timeline,
        View::Conversation,
        View::Segments,
        View::Sync,
        View::Device,
    ];

    /// Its name in the tab bar.
    pub fn title(self) -> &'static str {
        match self {
            View::Timeline => "Timeline",
            View::Conversation => "Conversation",
            View::Segments => "Segments",
            View::Sync => "Sync",
            View::Device => "Device & jobs",
        }
    }

    fn index(self) -> usize {
        View::ALL.iter().position(|v| *v == self).unwrap_or(0)
    }

    /// The keys the command bar shows and help lists first in this view.
    pub fn main_actions(self) -> &'static [Action] {
        match self {
            View::Timeline => &[
                Action::Open,
                Action::Merge,
                Action::Undo,
                Action::Play,
                Action::ZoomIn,
                Action::Push,
                Action::Help,
                Action::Quit,
            ],
            View::Conversation => &[
                Action::Back,
                Action::Split,
                Action::Play,
                Action::Retranscribe,
                Action::WriteWav,
                Action::Undo,
                Action::Help,
                Action::Quit,
            ],
            View::Segments => &[
                Action::Filter,
                Action::Open,
                Action::Play,
                Action::WriteWav,
                Action::Help,
                Action::Quit,
            ],
            View::Sync => &[Action::Push, Action::Help, Action::Quit],
            View::Device => &[
                Action::Transcribe,
                Action::CancelJob,
                Action::Help,
                Action::Quit,
            ],
        }
    }

    /// Every key of this view beyond moving around (what help lists).
    pub fn actions(self) -> &'static [Action] {
        match self {
            View::Timeline => &[
                Action::Open,
                Action::Merge,
                Action::Undo,
                Action::Redo,
                Action::Play,
                Action::SeekBack,
                Action::SeekForward,
                Action::ZoomIn,
                Action::ZoomOut,
                Action::Retranscribe,
                Action::WriteWav,
                Action::Push,
                Action::Filter,
            ],
            View::Conversation => &[
                Action::Back,
                Action::Split,
                Action::Merge,
                Action::Undo,
                Action::Redo,
                Action::Play,
                Action::SeekBack,
                Action::SeekForward,
                Action::Retranscribe,
                Action::WriteWav,
                Action::Push,
            ],
            View::Segments => &[
                Action::Filter,
                Action::Open,
                Action::Play,
                Action::SeekBack,
                Action::SeekForward,
                Action::WriteWav,
            ],
            View::Sync => &[Action::Push, Action::Undo, Action::Redo],
            View::Device => &[
                Action::Transcribe,
                Action::CancelJob,
                Action::Retry,
                Action::Pull,
                Action::Import,
            ],
        }
    }

    /// The keys that work in every view (help lists them compactly).
    pub const EVERYWHERE: [Action; 15] = [
        Action::ViewTimeline,
        Action::ViewConversation,
        Action::ViewSegments,
        Action::ViewSync,
        Action::ViewDevice,
        Action::NextView,
        Action::PreviousView,
        Action::Up,
        Action::Down,
        Action::PageUp,
        Action::PageDown,
        Action::Top,
        Action::Bottom,
        Action::Help,
        Action::Quit,
    ];
}

/// A question waiting for an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// Merge `a` with `b` (the next conversation)?
    Merge {
        /// The selected conversation.
        a: String,
        /// The next one.
        b: String,
        /// What the merge would make.
        preview: MergePreview,
    },
    /// Push this many creations and deletions?
    Push {
        /// Conversations to create.
        creates: usize,
        /// Cloud copies to delete first.
        deletes: usize,
    },
    /// Transcribe `conversation` again with which engine?
    Retranscribe {
        /// The conversation.
        conversation: String,
        /// The engine picked (index into [`ENGINES`]).
        choice: usize,
    },
    /// Typing the segments filter.
    Filter,
}

/// The engines `r` offers, the configured one first.
pub const ENGINES: [EngineKind; 3] = [
    EngineKind::Whisper,
    EngineKind::Deepgram,
    EngineKind::Openai,
];

/// How a job stands.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    /// Still going.
    Running,
    /// Ended well, with a line on what it did.
    Done(String),
    /// Failed, with the error.
    Failed(String),
    /// Stopped on request.
    Cancelled,
}

/// A job started from the TUI.
#[derive(Debug)]
pub struct JobRow {
    /// Its id.
    pub id: JobId,
    /// What it is.
    pub kind: JobKind,
    /// The stage in progress.
    pub stage: Option<Stage>,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// What a unit is.
    pub unit: Option<Unit>,
    /// The pendant link, as last reported.
    pub link: Option<String>,
    /// How it stands.
    pub state: JobState,
    /// When it started.
    pub started: Instant,
    handle: Option<JobHandle>,
}

impl JobRow {
    /// Units per second so far.
    pub fn rate(&self) -> f64 {
        let s = self.started.elapsed().as_secs_f64();
        if s > 0.0 { self.done as f64 / s } else { 0.0 }
    }

    /// Seconds left at the rate so far.
    pub fn eta(&self) -> Option<f64> {
        let r = self.rate();
        (r > 0.0 && self.total > self.done).then(|| (self.total - self.done) as f64 / r)
    }
}

/// How a status line reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    /// News.
    Info,
    /// Worth a look.
    Warn,
    /// Something failed.
    Bad,
}

/// What plays, and where its parts are.
#[derive(Debug)]
pub struct Playing {
    /// The segments played, laid out.
    pub clip: Clip,
}

/// Screen areas drawn last, for the mouse: the list and what each of its
/// rows shows.
#[derive(Debug, Default)]
pub struct Hits {
    /// The list's rows (inside its border).
    pub list: Cell<Rect>,
    /// The item index each visible row shows (`None`: a row that is not an
    /// item, such as a silence between segments).
    pub rows: RefCell<Vec<Option<usize>>>,
}

impl Hits {
    /// Remembers a list drawn at `area` whose rows show these items.
    pub fn set(&self, area: Rect, rows: Vec<Option<usize>>) {
        self.list.set(area);
        *self.rows.borrow_mut() = rows;
    }

    /// The item under screen position (`x`, `y`).
    pub fn item_at(&self, x: u16, y: u16) -> Option<usize> {
        let area = self.list.get();
        if !area.contains((x, y).into()) {
            return None;
        }
        self.rows
            .borrow()
            .get(usize::from(y - area.y))
            .copied()
            .flatten()
    }
}

/// The whole state of the TUI.
pub struct App {
    ws: Arc<Workspace>,
    reader: Option<LedgerReader>,
    version: Option<i64>,
    /// The latest snapshot (`None`: no ledger yet).
    pub snap: Option<Snapshot>,
    /// Why each conversation starts where it does (in timeline order).
    pub reasons: Vec<BoundaryReason>,
    /// Why the ledger could not be read, when it could not.
    pub error: Option<String>,
    /// The view in focus.
    pub view: View,
    /// The selected conversation (index into the timeline).
    pub conv: usize,
    /// The selected segment of that conversation.
    pub seg: usize,
    /// The selected row of the segments view.
    pub row: usize,
    /// The segments filter.
    pub filter: String,
    /// The open question, if any.
    pub prompt: Option<Prompt>,
    /// Whether help is open.
    pub help: bool,
    /// The status line.
    pub status: Option<(Tone, String)>,
    /// The time axis zoom (index into [`ZOOMS_MS`]).
    pub zoom: usize,
    /// Jobs started here.
    pub jobs: Vec<JobRow>,
    /// The selected job.
    pub job: usize,
    /// What plays.
    pub playing: Option<Playing>,
    /// Look and keys.
    pub opts: Options,
    /// Mouse targets.
    pub hits: Hits,
    player: Player,
    sink: Option<Arc<dyn EventSink>>,
    /// Frees confirmed audio as it falls due while the session is open
    /// (issue 12): nudged after every edit, finished job and change of the
    /// ledger by another process, stopped on quit.
    janitor: Option<crate::engine::janitor::Janitor>,
    quit: bool,
}

/// The time axis' widths, widest first: a week down to ten seconds.
pub const ZOOMS_MS: [i64; 9] = [
    7 * 86_400_000,
    86_400_000,
    6 * 3_600_000,
    3_600_000,
    15 * 60_000,
    5 * 60_000,
    60_000,
    30_000,
    10_000,
];

/// The longest stretch of audio one Space plays (from the selected segment on).
const MAX_PLAY_SAMPLES: u64 = 16_000 * 600;

impl App {
    /// Opens on `ws`'s ledger (which may not exist yet) at the first
    /// conversation not pushed yet.
    pub fn open(ws: Arc<Workspace>, opts: Options) -> anyhow::Result<App> {
        let mut app = App {
            ws,
            reader: None,
            version: None,
            snap: None,
            reasons: Vec::new(),
            error: None,
            view: View::Timeline,
            conv: 0,
            seg: 0,
            row: 0,
            filter: String::new(),
            prompt: None,
            help: false,
            status: None,
            zoom: 3,
            jobs: Vec::new(),
            job: 0,
            playing: None,
            opts,
            hits: Hits::default(),
            player: Player::default(),
            sink: None,
            janitor: None,
            quit: false,
        };
        app.refresh();
        app.conv = app.first_not_pushed();
        Ok(app)
    }

    /// Where jobs started here send their events.
    pub fn set_sink(&mut self, sink: Arc<dyn EventSink>) {
        self.sink = Some(sink);
    }

    /// Starts the janitor of this session on `clock`.
    pub fn start_janitor(&mut self, clock: Arc<dyn crate::clock::Clock>) -> std::io::Result<()> {
        let j = crate::engine::janitor::Janitor::spawn(
            (*self.ws).clone(),
            clock,
            crate::cancel::Cancel::new(),
        )?;
        self.janitor = Some(j);
        Ok(())
    }

    /// Whether the janitor runs.
    pub fn janitor_running(&self) -> bool {
        self.janitor.is_some()
    }

    /// Makes the janitor work its schedule out again (the ledger changed).
    fn nudge_janitor(&self) {
        if let Some(j) = &self.janitor {
            j.reschedule();
        }
    }

    /// Whether the person asked to quit.
    pub fn quitting(&self) -> bool {
        self.quit
    }

    /// Stops playback and asks running jobs to stop (on quit).
    pub fn stop(&mut self) {
        self.player.stop();
        if let Some(j) = self.janitor.take() {
            for r in j.stop() {
                tracing::info!(
                    "janitor: freed {} capture(s), {} failed",
                    r.freed.len(),
                    r.failed.len()
                );
            }
        }
        for j in &self.jobs {
            if let Some(h) = &j.handle {
                h.cancel();
            }
        }
    }

    /// The workspace.
    pub fn workspace(&self) -> &Workspace {
        &self.ws
    }

    /// Retakes the snapshot, keeping the selection on the same conversation.
    pub fn refresh(&mut self) {
        let keep = self.selected().map(|c| c.id.clone());
        self.refresh_to(keep.as_deref());
    }

    fn refresh_to(&mut self, select: Option<&str>) {
        if self.reader.is_none() {
            match LedgerReader::open(self.ws.data_dir()) {
                Ok(r) => self.reader = Some(r),
                Err(_) => {
                    self.snap = None;
                    return;
                }
            }
        }
        let Some(reader) = &self.reader else { return };
        self.version = reader.data_version().ok();
        match Snapshot::take(&self.ws, reader) {
            Ok(snap) => {
                let overrides: Vec<_> = snap
                    .edits
                    .iter()
                    .filter(|a| a.state == EditState::Active)
                    .flat_map(|a| a.overrides.iter().cloned())
                    .collect();
                self.reasons = boundary_reasons(&snap.timeline, &overrides, &self.ws.rules());
                let n = snap.timeline.conversations.len();
                if let Some(i) = select
                    .and_then(|id| snap.timeline.conversations.iter().position(|c| c.id == id))
                {
                    self.conv = i;
                }
                self.conv = self.conv.min(n.saturating_sub(1));
                self.snap = Some(snap);
                self.error = None;
                self.clamp();
            }
            Err(e) => self.error = Some(e.to_string()),
        }
    }

    fn clamp(&mut self) {
        let segs = self.selected().map_or(0, |c| c.segments.len());
        self.seg = self.seg.min(segs.saturating_sub(1));
        let rows = self.segment_rows().len();
        self.row = self.row.min(rows.saturating_sub(1));
        self.job = self.job.min(self.jobs.len().saturating_sub(1));
    }

    fn first_not_pushed(&self) -> usize {
        let Some(snap) = &self.snap else { return 0 };
        snap.timeline
            .conversations
            .iter()
            .position(|c| {
                !matches!(
                    snap.cloud_of(&c.id).map(|s| &s.status),
                    Some(CloudStatus::Pushed { .. })
                )
            })
            .unwrap_or(0)
    }

    /// The conversations, in time order.
    pub fn conversations(&self) -> &[Conversation] {
        self.snap
            .as_ref()
            .map_or(&[][..], |s| &s.timeline.conversations[..])
    }

    /// The selected conversation.
    pub fn selected(&self) -> Option<&Conversation> {
        self.conversations().get(self.conv)
    }

    /// The selected segment of the selected conversation.
    pub fn selected_segment(&self) -> Option<&Segment> {
        self.selected().and_then(|c| c.segments.get(self.seg))
    }

    /// The segments view's rows: every segment (loose silent ones too) in
    /// time order, those matching the filter.
    pub fn segment_rows(&self) -> Vec<&Segment> {
        let Some(snap) = &self.snap else {
            return Vec::new();
        };
        let needle = self.filter.to_lowercase();
        let mut rows: Vec<&Segment> = snap
            .timeline
            .conversations
            .iter()
            .flat_map(|c| c.segments.iter())
            .chain(snap.timeline.loose_silent.iter())
            .filter(|s| needle.is_empty() || self.matches(s, &needle))
            .collect();
        rows.sort_by_key(|s| (s.start, s.id));
        rows
    }

    fn matches(&self, s: &Segment, needle: &str) -> bool {
        s.text
            .as_deref()
            .unwrap_or("")
            .to_lowercase()
            .contains(needle)
            || s.status.as_str().contains(needle)
            || s.device.to_lowercase().contains(needle)
            || self.opts.zone.full(s.start).contains(needle)
    }

    /// Where playback is in its clip, and the segment heard.
    pub fn heard(&self) -> Option<i64> {
        let at = self.player.position()?;
        self.playing
            .as_ref()
            .and_then(|p| p.clip.part_at(at))
            .map(|p| p.segment)
    }

    /// Whether something plays.
    pub fn is_playing(&self) -> bool {
        self.player.position().is_some()
    }

    fn say(&mut self, tone: Tone, text: impl Into<String>) {
        self.status = Some((tone, text.into()));
    }

    /// Handles a terminal event; true when the screen must be redrawn.
    pub fn on_input(&mut self, input: &Input) -> bool {
        match input {
            Input::Key(k) if k.kind != KeyEventKind::Release => {
                self.on_key(k);
                true
            }
            Input::Mouse(m) if self.ws.config.tui.mouse => self.on_mouse(m.kind, m.column, m.row),
            Input::Resize(..) => true,
            _ => false,
        }
    }

    fn on_mouse(&mut self, kind: MouseEventKind, x: u16, y: u16) -> bool {
        match kind {
            MouseEventKind::ScrollDown => self.act(Action::Down),
            MouseEventKind::ScrollUp => self.act(Action::Up),
            MouseEventKind::Down(MouseButton::Left) => {
                let Some(i) = self.hits.item_at(x, y) else {
                    return false;
                };
                self.select_row(i);
            }
            _ => return false,
        }
        true
    }

    fn select_row(&mut self, i: usize) {
        match self.view {
            View::Timeline => self.conv = i,
            View::Conversation => self.seg = i,
            View::Segments => self.row = i,
            View::Device => self.job = i,
            View::Sync => {}
        }
        self.clamp();
    }

    /// Handles one key press.
    pub fn on_key(&mut self, key: &ratatui::crossterm::event::KeyEvent) {
        if let Some(prompt) = self.prompt.clone() {
            self.answer(prompt, key);
            return;
        }
        if let Some(action) = self.opts.keys.action(key) {
            if self.help && !matches!(action, Action::Help | Action::Back | Action::Quit) {
                return;
            }
            self.act(action);
        }
    }

    /// Answers the open prompt with `key`.
    fn answer(&mut self, prompt: Prompt, key: &ratatui::crossterm::event::KeyEvent) {
        let yes = matches!(key.code, KeyCode::Char('y') | KeyCode::Enter);
        let no = matches!(key.code, KeyCode::Char('n') | KeyCode::Esc);
        match prompt {
            Prompt::Filter => match key.code {
                KeyCode::Esc => {
                    self.filter.clear();
                    self.prompt = None;
                }
                KeyCode::Enter => self.prompt = None,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => {}
            },
            Prompt::Retranscribe {
                conversation,
                choice,
            } => match key.code {
                KeyCode::Esc => self.prompt = None,
                KeyCode::Char('j') | KeyCode::Down => {
                    self.prompt = Some(Prompt::Retranscribe {
                        conversation,
                        choice: (choice + 1) % ENGINES.len(),
                    });
                }
                KeyCode::Char('k') | KeyCode::Up => {
                    self.prompt = Some(Prompt::Retranscribe {
                        conversation,
                        choice: (choice + ENGINES.len() - 1) % ENGINES.len(),
                    });
                }
                KeyCode::Enter => {
                    self.prompt = None;
                    let choice = SttChoice {
                        engine: Some(ENGINES[choice]),
                        ..SttChoice::default()
                    };
                    self.start(Job::Retranscribe {
                        conversation,
                        choice,
                    });
                }
                _ => {}
            },
            Prompt::Merge { a, b, .. } if yes => {
                self.prompt = None;
                self.merge(&a, &b);
            }
            Prompt::Push { .. } if yes => {
                self.prompt = None;
                self.start(Job::Push(PushRequest::default()));
            }
            Prompt::Merge { .. } | Prompt::Push { .. } if no => {
                self.prompt = None;
                self.say(Tone::Info, "nothing changed");
            }
            Prompt::Merge { .. } | Prompt::Push { .. } => {}
        }
        self.clamp();
    }

    /// Does what `action` asks.
    pub fn act(&mut self, action: Action) {
        match action {
            Action::Quit => self.quit = true,
            Action::Help => self.help = !self.help,
            Action::Back if self.help => self.help = false,
            Action::Back => {
                if self.view == View::Conversation {
                    self.view = View::Timeline;
                } else if self.player.position().is_some() {
                    self.player.stop();
                }
            }
            Action::NextView => self.view = View::ALL[(self.view.index() + 1) % View::ALL.len()],
            Action::PreviousView => {
                self.view = View::ALL[(self.view.index() + View::ALL.len() - 1) % View::ALL.len()]
            }
            Action::ViewTimeline => self.view = View::Timeline,
            Action::ViewConversation => self.view = View::Conversation,
            Action::ViewSegments => self.view = View::Segments,
            Action::ViewSync => self.view = View::Sync,
            Action::ViewDevice => self.view = View::Device,
            Action::Up => self.step(-1),
            Action::Down => self.step(1),
            Action::PageUp => self.step(-10),
            Action::PageDown => self.step(10),
            Action::Top => self.step(i64::MIN / 2),
            Action::Bottom => self.step(i64::MAX / 2),
            Action::Open => self.open_selected(),
            Action::Merge => self.ask_merge(),
            Action::Split => self.split(),
            Action::Undo => self.undo_redo(true),
            Action::Redo => self.undo_redo(false),
            Action::Play => self.play(),
            Action::SeekBack => self.player.seek(-5),
            Action::SeekForward => self.player.seek(5),
            Action::Push => self.ask_push(),
            Action::Retranscribe => match self.selected() {
                Some(c) => {
                    self.prompt = Some(Prompt::Retranscribe {
                        conversation: c.id.clone(),
                        choice: 0,
                    })
                }
                None => self.say(Tone::Warn, "no conversation selected"),
            },
            Action::Filter => {
                self.view = View::Segments;
                self.prompt = Some(Prompt::Filter);
            }
            Action::CancelJob => self.cancel_job(),
            Action::Retry => self.retry_job(),
            Action::ZoomIn => self.zoom = (self.zoom + 1).min(ZOOMS_MS.len() - 1),
            Action::ZoomOut => self.zoom = self.zoom.saturating_sub(1),
            Action::WriteWav => self.write_wav(),
            Action::Transcribe => self.start(Job::Transcribe(SttChoice::default())),
            Action::Import | Action::Pull | Action::DeviceStatus => self.say(
                Tone::Info,
                "pull and import run from the command line for now: `omi-sync pull`, `omi-sync import`",
            ),
        }
        self.clamp();
    }

    fn step(&mut self, by: i64) {
        let (cur, len) = match self.view {
            View::Timeline => (self.conv, self.conversations().len()),
            View::Conversation => (self.seg, self.selected().map_or(0, |c| c.segments.len())),
            View::Segments => (self.row, self.segment_rows().len()),
            View::Device => (self.job, self.jobs.len()),
            View::Sync => return,
        };
        let to = (cur as i64)
            .saturating_add(by)
            .clamp(0, len.saturating_sub(1) as i64) as usize;
        if self.view == View::Timeline && to != self.conv {
            self.seg = 0;
        }
        self.select_row(to);
    }

    fn open_selected(&mut self) {
        match self.view {
            View::Timeline if self.selected().is_some() => {
                self.view = View::Conversation;
                self.seg = 0;
            }
            View::Segments => {
                let Some(id) = self.segment_rows().get(self.row).map(|s| s.id) else {
                    return;
                };
                let found =
                    self.conversations().iter().enumerate().find_map(|(i, c)| {
                        c.segments.iter().position(|s| s.id == id).map(|j| (i, j))
                    });
                match found {
                    Some((i, j)) => {
                        self.conv = i;
                        self.seg = j;
                        self.view = View::Conversation;
                    }
                    None => self.say(Tone::Info, "a silent segment outside any conversation"),
                }
            }
            _ => {}
        }
    }

    fn ask_merge(&mut self) {
        let (Some(a), Some(b)) = (
            self.conversations().get(self.conv),
            self.conversations().get(self.conv + 1),
        ) else {
            self.say(Tone::Warn, "no next conversation to merge with");
            return;
        };
        let (a, b) = (a.id.clone(), b.id.clone());
        let Some(snap) = &self.snap else { return };
        match edit::preview_merge(&snap.timeline, &a, &b) {
            Ok(preview) => self.prompt = Some(Prompt::Merge { a, b, preview }),
            Err(e) => self.say(Tone::Bad, format!("cannot merge: {e}")),
        }
    }

    fn merge(&mut self, a: &str, b: &str) {
        let rules = self.ws.rules();
        let result = self
            .ws
            .ledger()
            .map_err(edit::EditFailure::from)
            .and_then(|mut l| edit::merge(&mut l, &rules, a, b));
        self.edited(result.map(Some), "merge");
    }

    fn split(&mut self) {
        if self.view != View::Conversation {
            self.say(Tone::Info, "open a conversation (Enter) to split it");
            return;
        }
        let Some(seg) = self.selected_segment().map(|s| s.id) else {
            return;
        };
        let rules = self.ws.rules();
        let result = self
            .ws
            .ledger()
            .map_err(edit::EditFailure::from)
            .and_then(|mut l| edit::split(&mut l, &rules, seg));
        let done = result.is_ok();
        self.edited(result.map(Some), "split");
        if done {
            // Stay on the segment split before: it now opens its conversation.
            if let Some(i) = self
                .conversations()
                .iter()
                .position(|c| c.segments.first().is_some_and(|s| s.id == seg))
            {
                self.conv = i;
                self.seg = 0;
            }
        }
    }

    fn undo_redo(&mut self, undo: bool) {
        let rules = self.ws.rules();
        let result = self.ws.ledger().and_then(|mut l| {
            if undo {
                edit::undo(&mut l, &rules)
            } else {
                edit::redo(&mut l, &rules)
            }
        });
        let what = if undo { "undo" } else { "redo" };
        match result {
            Ok(None) => self.say(Tone::Info, format!("nothing to {what}")),
            other => self.edited(other.map_err(edit::EditFailure::from), what),
        }
    }

    /// Shows an edit's result at once: a fresh snapshot, the selection on
    /// the conversation it made, and what it did in the status line.
    fn edited(&mut self, result: Result<Option<EditOutcome>, edit::EditFailure>, what: &str) {
        match result {
            Ok(Some(out)) => {
                self.nudge_janitor();
                self.refresh_to(out.touched.first().map(String::as_str));
                let replaces = self.selected().and_then(|c| {
                    match self.snap.as_ref()?.cloud_of(&c.id).map(|s| &s.status) {
                        Some(CloudStatus::New { replaces, .. }) if !replaces.is_empty() => {
                            Some(replaces.join(", "))
                        }
                        _ => None,
                    }
                });
                let mut line = match out.verb {
                    edit::EditVerb::Undo => format!("undone: {}", out.summary),
                    edit::EditVerb::Redo => format!("redone: {}", out.summary),
                    edit::EditVerb::Merge | edit::EditVerb::Split => out.summary,
                };
                if let Some(r) = replaces {
                    line.push_str(&format!("; the next push replaces cloud copy {r}"));
                }
                self.say(Tone::Info, line);
            }
            Ok(None) => self.say(Tone::Info, format!("nothing to {what}")),
            Err(e) => self.say(Tone::Bad, format!("cannot {what}: {e}")),
        }
    }

    fn ask_push(&mut self) {
        let Some(snap) = &self.snap else {
            self.say(Tone::Warn, "nothing to push yet");
            return;
        };
        let creates = snap
            .cloud
            .iter()
            .filter(|c| {
                matches!(
                    c.status,
                    CloudStatus::New { .. } | CloudStatus::Queued { .. }
                )
            })
            .count();
        let deletes = snap
            .retract
            .iter()
            .filter(|r| matches!(r, crate::engine::push::Retraction::Delete(_)))
            .count()
            + snap
                .outbox
                .iter()
                .filter(|r| r.state == crate::store::OutboxState::DeletePending)
                .count();
        if creates + deletes == 0 {
            self.say(
                Tone::Info,
                "nothing to push: every conversation is sent or held (see 4)",
            );
            return;
        }
        self.prompt = Some(Prompt::Push { creates, deletes });
    }

    /// The segments Space or `w` would take: in the conversation view the
    /// selected segment on to the conversation's end, in the timeline the
    /// whole conversation, in the segments view the segment.
    fn clip_ids(&self, whole: bool) -> Vec<i64> {
        match self.view {
            View::Segments => self
                .segment_rows()
                .get(self.row)
                .map(|s| s.ids().collect())
                .unwrap_or_default(),
            View::Conversation if !whole => self
                .selected()
                .map(|c| c.segments[self.seg.min(c.segments.len().saturating_sub(1))..].iter())
                .map(|it| it.flat_map(Segment::ids).collect())
                .unwrap_or_default(),
            _ => self
                .selected()
                .map(|c| c.segment_ids().collect())
                .unwrap_or_default(),
        }
    }

    fn play(&mut self) {
        if self.player.position().is_some() {
            self.player.stop();
            self.playing = None;
            self.say(Tone::Info, "stopped");
            return;
        }
        let ids = self.clip_ids(false);
        let Some(reader) = &self.reader else { return };
        let clip = match Clip::of(reader, &ids) {
            Ok(c) if !c.parts.is_empty() => c,
            Ok(_) => return self.say(Tone::Info, "nothing to play here"),
            Err(e) => return self.say(Tone::Bad, format!("cannot play: {e}")),
        };
        let mut samples = Vec::new();
        let mut decoder = ClipReader::new(self.ws.data_dir());
        for part in &clip.parts {
            if part.end() > MAX_PLAY_SAMPLES {
                break;
            }
            samples.resize(part.at as usize, 0.0);
            match decoder.samples(part) {
                Ok(s) => samples.extend(s),
                Err(e) => return self.say(Tone::Bad, format!("cannot play: {e}")),
            }
        }
        match self.player.play(samples, 0) {
            Ok(()) => {
                self.playing = Some(Playing { clip });
                self.say(Tone::Info, "playing (Space stops, ←/→ seek 5 s)");
            }
            Err(why) => self.say(Tone::Warn, why),
        }
    }

    fn write_wav(&mut self) {
        let whole = self.view != View::Segments;
        let ids = self.clip_ids(whole);
        let name = match (self.view, self.selected()) {
            (View::Segments, _) => ids.first().map(|id| format!("segment-{id}.wav")),
            (_, Some(c)) => Some(format!("conversation-{}.wav", c.id)),
            _ => None,
        };
        let Some(name) = name else {
            return self.say(Tone::Info, "nothing selected to write");
        };
        let Some(reader) = &self.reader else { return };
        let path = self.ws.data_dir().join("exports").join(name);
        let result = std::fs::create_dir_all(self.ws.data_dir().join("exports"))
            .map_err(|e| e.to_string())
            .and_then(|()| Clip::of(reader, &ids).map_err(|e| e.to_string()))
            .and_then(|clip| {
                write_wav(
                    self.ws.data_dir(),
                    &clip,
                    &path,
                    &crate::cancel::Cancel::new(),
                )
                .map_err(|e| e.to_string())
            });
        match result {
            Ok(done) => self.say(
                Tone::Info,
                format!(
                    "wrote {} ({} segments, {})",
                    done.path.display(),
                    done.segments,
                    crate::term::duration(done.seconds)
                ),
            ),
            Err(e) => self.say(Tone::Bad, format!("cannot write the WAV file: {e}")),
        }
    }

    fn start(&mut self, job: Job) {
        let Some(sink) = self.sink.clone() else {
            return self.say(Tone::Bad, "jobs cannot start here");
        };
        let handle = jobs::spawn(self.ws.clone(), job, sink);
        self.say(
            Tone::Info,
            format!("started {:?} job {}", handle.kind(), handle.id().0),
        );
        self.jobs.push(JobRow {
            id: handle.id(),
            kind: handle.kind(),
            stage: None,
            done: 0,
            total: 0,
            unit: None,
            link: None,
            state: JobState::Running,
            started: Instant::now(),
            handle: Some(handle),
        });
        self.job = self.jobs.len() - 1;
    }

    fn cancel_job(&mut self) {
        match self.jobs.get(self.job).and_then(|j| j.handle.as_ref()) {
            Some(h) => {
                h.cancel();
                let id = h.id().0;
                self.say(Tone::Info, format!("asked job {id} to stop"));
            }
            None => self.say(Tone::Info, "no running job selected (5 lists them)"),
        }
    }

    fn retry_job(&mut self) {
        let Some(j) = self.jobs.get(self.job) else {
            return;
        };
        match (j.kind, &j.state) {
            (JobKind::Push, JobState::Failed(_)) => self.start(Job::Push(PushRequest::default())),
            (JobKind::Transcribe, JobState::Failed(_)) => {
                self.start(Job::Transcribe(SttChoice::default()))
            }
            _ => self.say(
                Tone::Info,
                "only a failed push or transcription can be retried here",
            ),
        }
    }

    /// Takes a job's event; true when the screen must be redrawn.
    pub fn on_job_event(&mut self, env: &Envelope) -> bool {
        let Some(row) = self.jobs.iter_mut().find(|j| j.id == env.job) else {
            return false;
        };
        match &env.event {
            Event::StageStarted { stage, total, unit } => {
                row.stage = Some(*stage);
                row.total = *total;
                row.done = 0;
                row.unit = Some(*unit);
            }
            Event::Progress { stage, done, total } => {
                row.stage = Some(*stage);
                row.done = *done;
                row.total = *total;
            }
            Event::Link { state, .. } => row.link = Some(crate::term::say::link_state(state)),
            Event::JobFinished { outcome } => {
                row.state = match outcome {
                    JobOutcome::Done { .. } => JobState::Done("done".into()),
                    JobOutcome::Cancelled => JobState::Cancelled,
                    JobOutcome::Failed { error, remedy } => JobState::Failed(match remedy {
                        Some(r) => format!("{error} ({})", crate::term::say::remedy(r)),
                        None => error.clone(),
                    }),
                };
            }
            _ => return false,
        }
        true
    }

    /// Periodic work: reap finished jobs and playback, retake the snapshot
    /// when the ledger changed. True when the screen must be redrawn.
    pub fn on_tick(&mut self) -> bool {
        let mut redraw = self.player.reap() || self.is_playing();
        if self.player.position().is_none() && self.playing.is_some() {
            self.playing = None;
        }
        let mut ended = Vec::new();
        for j in &mut self.jobs {
            if j.handle.as_ref().is_some_and(JobHandle::is_finished)
                && let Some(h) = j.handle.take()
            {
                let line = match h.join() {
                    Ok(_) if j.state == JobState::Cancelled => "stopped".to_string(),
                    Ok(report) => describe(&report),
                    Err(e) => {
                        j.state = JobState::Failed(e.to_string());
                        format!("failed: {e}")
                    }
                };
                if let JobState::Running | JobState::Done(_) = j.state {
                    j.state = JobState::Done(line.clone());
                }
                ended.push(format!("{:?} job {}: {line}", j.kind, j.id.0));
            }
        }
        if let Some(last) = ended.pop() {
            let tone = if last.contains("failed") {
                Tone::Bad
            } else {
                Tone::Info
            };
            self.say(tone, last);
            self.nudge_janitor();
            self.refresh();
            return true;
        }
        let stale = match &self.reader {
            Some(r) => r.data_version().ok() != self.version,
            None => self.ws.data_dir().join(crate::store::LEDGER_FILE).is_file(),
        };
        if stale {
            self.nudge_janitor();
            self.refresh();
            redraw = true;
        }
        redraw
    }
}

/// One line on what a finished job did.
fn describe(report: &crate::engine::report::JobReport) -> String {
    use crate::engine::report::JobReport;
    match report {
        JobReport::Retranscribe(r) => format!(
            "conversation {} transcribed again; the text {}{}",
            r.conversation,
            if r.changed { "changed" } else { "is the same" },
            r.replaces
                .as_ref()
                .map(|c| format!("; the next push replaces cloud copy {c}"))
                .unwrap_or_default()
        ),
        JobReport::Transcribe(t) => format!(
            "{} with words, {} silent, {} failed",
            t.speech, t.silent, t.failed
        ),
        JobReport::Push(p) => match &p.report {
            Some(r) => {
                crate::term::say::stage_report(&crate::engine::report::StageReport::Push(r.clone()))
            }
            None => format!("{} held, nothing sent", p.held()),
        },
        _ => "done".to_string(),
    }
}

#[cfg(test)]
mod tests;
