//! The review TUI (`omi-sync review`, or `omi-sync` alone on a terminal):
//! look at the backlog, hear it, fix the grouping, then send it.
//!
//! The pieces, each owning one thing:
//!
//! - [`app`]: the state (view, selection, prompt, status) and what each key
//!   does to it; edits go through [`crate::engine::edit`], jobs through
//!   [`crate::engine::jobs::spawn`], and the screen is drawn from a
//!   [`crate::engine::snapshot::Snapshot`] taken afresh whenever the ledger
//!   changed, never rebuilt from events.
//! - [`draw`]: one module per view, the command bar, help and the notices.
//! - [`play`]: playback with cpal, degrading to a one-line notice without a
//!   sound card.
//! - [`terminal`]: raw mode and the alternate screen, restored on exit, on
//!   panic and on SIGTERM; stderr sent to a log file while the UI is up.
//! - [`config`], [`keys`], [`theme`], [`zone`]: settings, the key map, the
//!   colours, local times.
//!
//! One loop ([`run`]) is fed by an input thread, a ticker and the jobs'
//! event sinks through one channel, as bottom does.

pub mod app;
pub mod config;
pub mod draw;
pub mod keys;
pub mod play;
pub mod terminal;
pub mod theme;
pub mod zone;

#[cfg(test)]
mod fixture;

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::Duration;

use ratatui::crossterm::event::{self, Event as Input};

use crate::cancel::Cancel;
use crate::engine::events::Envelope;
use crate::engine::workspace::Workspace;
use crate::exit::ExitCode;
use app::App;

/// How often the loop looks for a changed ledger and finished jobs.
const TICK: Duration = Duration::from_millis(250);

/// What wakes the loop.
#[derive(Debug)]
pub enum Msg {
    /// A key, a click, a resize.
    Input(Input),
    /// A job's event.
    Job(Box<Envelope>),
    /// Time to look for changes.
    Tick,
}

/// Opens the TUI on `ws` until the person quits or `cancel` fires
/// (SIGTERM); the terminal is restored either way.
pub fn run(ws: &Workspace, cancel: Cancel) -> anyhow::Result<ExitCode> {
    let log_path = ws.data_dir().join("logs").join("review.log");
    let mut app = App::open(Arc::new(ws.clone()), app::Options::from_env(ws))?;
    let mut term = terminal::Session::start(&log_path, ws.config.tui.mouse)?;
    let (tx, rx) = mpsc::channel();
    app.set_sink(job_sink(tx.clone()));
    if let Err(e) = app.start_janitor(Arc::new(crate::clock::SystemClock)) {
        tracing::warn!("janitor: cannot start: {e}");
    }
    spawn_input(tx.clone());
    spawn_ticker(tx);
    let code = event_loop(&mut app, &mut term, &rx, &cancel);
    term.finish()?;
    code
}

fn event_loop(
    app: &mut App,
    term: &mut terminal::Session,
    rx: &Receiver<Msg>,
    cancel: &Cancel,
) -> anyhow::Result<ExitCode> {
    term.draw(app)?;
    while let Ok(msg) = rx.recv() {
        if cancel.is_cancelled() {
            app.stop();
            return Ok(ExitCode::Interrupted);
        }
        let redraw = match msg {
            Msg::Input(input) => app.on_input(&input),
            Msg::Job(env) => app.on_job_event(&env),
            Msg::Tick => app.on_tick(),
        };
        if app.quitting() {
            app.stop();
            return Ok(ExitCode::Done);
        }
        if redraw {
            term.draw(app)?;
        }
    }
    Ok(ExitCode::Done)
}

fn job_sink(tx: Sender<Msg>) -> Arc<dyn crate::engine::events::EventSink> {
    let tx = std::sync::Mutex::new(tx);
    Arc::new(move |env: Envelope| {
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(Msg::Job(Box::new(env)));
        }
    })
}

fn spawn_input(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        while let Ok(ev) = event::read() {
            if tx.send(Msg::Input(ev)).is_err() {
                break;
            }
        }
    });
}

fn spawn_ticker(tx: Sender<Msg>) {
    std::thread::spawn(move || {
        while tx.send(Msg::Tick).is_ok() {
            std::thread::sleep(TICK);
        }
    });
}
