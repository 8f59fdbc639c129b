//! Every view drawn on a `TestBackend` and compared with its snapshot
//! (`src/tui/draw/snapshots/`), on the fixture backlog in UTC: the views at
//! 80x24, the empty ledger, a narrow terminal, one too small, help and the
//! prompts.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::tui::app::App;
use crate::tui::fixture;

/// The screen as text, one line per row, the data directory masked.
fn screen(app: &App, w: u16, h: u16) -> String {
    let mut term = Terminal::new(TestBackend::new(w, h)).unwrap();
    term.draw(|f| super::frame(f, app)).unwrap();
    let buf = term.backend().buffer();
    let mut out = String::new();
    for y in 0..h {
        for x in 0..w {
            out.push_str(buf[(x, y)].symbol());
        }
        out.push('\n');
    }
    let dir = app.workspace().data_dir().display().to_string();
    out.replace(&dir, "[DATA]")
}

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        app.on_key(&KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
}

#[test]
fn timeline() {
    let dir = fixture::backlog();
    let app = fixture::app(dir.path());
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn timeline_zoomed_out_on_the_estimated_conversation_wide() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "G--");
    insta::assert_snapshot!(screen(&app, 120, 30));
}

#[test]
fn conversation() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "jj2j");
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn segments_filtered() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "/part");
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn sync() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "4");
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn device_and_jobs() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "5");
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn device_reports_three_hours_old() {
    let dir = fixture::backlog();
    fixture::device_reports(dir.path());
    let mut app = fixture::app(dir.path());
    let snap = app.snap.as_mut().unwrap();
    snap.taken_at = snap.devices[0].read_at.plus_ms(3 * 3_600_000);
    press(&mut app, "5");
    insta::assert_snapshot!(screen(&app, 100, 30));
}

#[test]
fn help() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "2?");
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn merge_prompt() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "m");
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn merge_refused() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "jjm");
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn empty_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let app = fixture::app(dir.path());
    insta::assert_snapshot!(screen(&app, 80, 24));
}

#[test]
fn narrow() {
    let dir = fixture::backlog();
    let app = fixture::app(dir.path());
    insta::assert_snapshot!(screen(&app, 60, 16));
}

#[test]
fn too_small() {
    let dir = fixture::backlog();
    let app = fixture::app(dir.path());
    insta::assert_snapshot!(screen(&app, 40, 10));
}
