//! Key in, state out: every edit and prompt, on the fixture backlog.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::*;
use crate::tui::fixture;

fn press(app: &mut App, keys: &str) {
    for c in keys.chars() {
        app.on_key(&KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
    }
}

fn key(app: &mut App, code: KeyCode) {
    app.on_key(&KeyEvent::new(code, KeyModifiers::NONE));
}

fn count(dir: &std::path::Path) -> usize {
    let ws = Workspace::new(crate::config::Config::default(), None, dir.to_path_buf());
    ws.timeline(&ws.ledger().unwrap())
        .unwrap()
        .conversations
        .len()
}

#[test]
fn it_opens_on_the_first_conversation_and_moves() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    assert_eq!(app.conversations().len(), 4);
    assert_eq!((app.view, app.conv), (View::Timeline, 0));
    press(&mut app, "jj");
    assert_eq!(app.conv, 2);
    press(&mut app, "jjj");
    assert_eq!(app.conv, 3, "stops at the last");
    press(&mut app, "g");
    assert_eq!(app.conv, 0);
    press(&mut app, "3");
    assert_eq!(app.view, View::Segments);
    key(&mut app, KeyCode::Tab);
    assert_eq!(app.view, View::Sync);
    key(&mut app, KeyCode::BackTab);
    key(&mut app, KeyCode::BackTab);
    assert_eq!(app.view, View::Conversation);
    press(&mut app, "q");
    assert!(app.quitting());
}

#[test]
fn a_merge_asks_first_then_undo_and_redo_walk_it() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "m");
    let Some(Prompt::Merge { preview, .. }) = &app.prompt else {
        panic!("no merge prompt: {:?}", app.prompt)
    };
    assert_eq!(preview.conversations, 2);
    assert!(!preview.bridges_over_an_hour());
    press(&mut app, "n");
    assert!(app.prompt.is_none());
    assert_eq!(count(dir.path()), 4, "n merges nothing");

    press(&mut app, "my");
    assert_eq!(count(dir.path()), 3);
    assert_eq!(app.conversations().len(), 3, "shown at once");
    assert_eq!(app.selected().unwrap().members().count(), 3);
    assert!(app.status.as_ref().unwrap().1.starts_with("Merged"));

    press(&mut app, "u");
    assert_eq!((count(dir.path()), app.conversations().len()), (4, 4));
    app.on_key(&KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL));
    assert_eq!((count(dir.path()), app.conversations().len()), (3, 3));
    // The edit log is in the ledger: a new session undoes it.
    let mut again = fixture::app(dir.path());
    press(&mut again, "u");
    assert_eq!(count(dir.path()), 4);
    press(&mut again, "uu");
    assert_eq!(again.status.as_ref().unwrap().1, "nothing to undo");
}

#[test]
fn a_merge_across_clocks_is_refused_with_the_reason() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "jjm");
    assert!(app.prompt.is_none());
    let (tone, text) = app.status.clone().unwrap();
    assert_eq!(tone, Tone::Bad);
    assert!(text.starts_with("cannot merge"), "{text}");
    press(&mut app, "jm");
    assert!(
        app.status
            .as_ref()
            .unwrap()
            .1
            .contains("no next conversation")
    );
}

#[test]
fn split_works_in_a_conversation_before_the_selected_segment() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "s");
    assert_eq!(count(dir.path()), 4, "not from the timeline");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Conversation);
    press(&mut app, "j");
    assert_eq!(app.seg, 1);
    let seg = app.selected_segment().unwrap().id;
    press(&mut app, "s");
    assert_eq!(count(dir.path()), 5);
    assert_eq!(
        app.selected().unwrap().segments[0].id,
        seg,
        "on the new one"
    );
    assert_eq!(
        app.reasons[app.conv],
        BoundaryReason::Edit { silence_ms: 500 }
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.view, View::Timeline);
    press(&mut app, "u");
    assert_eq!(count(dir.path()), 4);
}

#[test]
fn the_filter_narrows_the_segments_and_esc_clears_it() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "/");
    assert_eq!(
        (app.view, app.prompt.clone()),
        (View::Segments, Some(Prompt::Filter))
    );
    press(&mut app, "part");
    assert_eq!(app.segment_rows().len(), 2);
    press(&mut app, "q");
    assert!(!app.quitting(), "q is a letter while typing");
    assert!(app.segment_rows().is_empty());
    key(&mut app, KeyCode::Backspace);
    key(&mut app, KeyCode::Enter);
    assert_eq!((app.prompt.clone(), app.segment_rows().len()), (None, 2));
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.view, View::Conversation);
    assert_eq!(
        app.selected_segment().unwrap().text.as_deref(),
        Some("first part")
    );
    press(&mut app, "/");
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.segment_rows().len(), 6);
}

#[test]
fn push_asks_with_the_counts_and_n_sends_nothing() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "p");
    assert_eq!(
        app.prompt,
        Some(Prompt::Push {
            creates: 3,
            deletes: 0
        }),
        "the estimated one is held"
    );
    key(&mut app, KeyCode::Esc);
    assert!(app.prompt.is_none() && app.jobs.is_empty());
}

#[test]
fn retranscribe_offers_the_engines_and_esc_cancels() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "r");
    let id = app.selected().unwrap().id.clone();
    assert_eq!(
        app.prompt,
        Some(Prompt::Retranscribe {
            conversation: id.clone(),
            choice: 0
        })
    );
    press(&mut app, "jjj");
    assert_eq!(
        app.prompt,
        Some(Prompt::Retranscribe {
            conversation: id,
            choice: 0
        }),
        "the choice wraps"
    );
    key(&mut app, KeyCode::Esc);
    assert!(app.prompt.is_none() && app.jobs.is_empty());
}

#[test]
fn play_plays_or_says_why_not_and_w_writes_a_wav() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, " ");
    let warned = matches!(&app.status, Some((Tone::Warn, t)) if t.contains("playback is off"));
    assert!(app.is_playing() || warned, "{:?}", app.status);
    press(&mut app, "w");
    let c = app.selected().unwrap().id.clone();
    let path = dir
        .path()
        .join("exports")
        .join(format!("conversation-{c}.wav"));
    let wav = crate::stt::wav::decode(&std::fs::read(&path).unwrap()).unwrap();
    // 1 s + 0.5 s of silence + 1.5 s.
    assert_eq!(wav.samples.len(), 48_000);
}

#[test]
fn help_opens_and_closes_and_blocks_edits_while_open() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    press(&mut app, "?");
    assert!(app.help);
    press(&mut app, "my");
    assert!(app.prompt.is_none() && count(dir.path()) == 4);
    key(&mut app, KeyCode::Esc);
    assert!(!app.help);
}

#[test]
fn an_empty_data_dir_opens_and_fills_when_a_ledger_appears() {
    let dir = tempfile::tempdir().unwrap();
    let mut app = fixture::app(dir.path());
    assert!(app.snap.is_none());
    press(&mut app, "jmsu p");
    assert!(!app.quitting());
    {
        let mut l = crate::store::Ledger::open(dir.path()).unwrap();
        crate::store::testdata::add_tone_capture(
            &mut l,
            "omi",
            crate::clock::UtcMillis(fixture::T0),
            crate::clock::ClockTrust::Wall,
            &[(0, 1000)],
        );
    }
    assert!(app.on_tick());
    assert_eq!(app.conversations().len(), 1);
}

#[test]
fn another_process_editing_shows_on_the_next_tick() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    assert!(!app.on_tick(), "nothing changed");
    let ws = Workspace::new(
        crate::config::Config::default(),
        None,
        dir.path().to_path_buf(),
    );
    let t = ws.timeline(&ws.ledger().unwrap()).unwrap();
    let (a, b) = (t.conversations[0].id.clone(), t.conversations[1].id.clone());
    edit::merge(&mut ws.ledger().unwrap(), &ws.rules(), &a, &b).unwrap();
    assert!(app.on_tick());
    assert_eq!(app.conversations().len(), 3);
}

#[test]
fn the_session_runs_the_janitor_and_it_frees_nothing_unpushed() {
    let dir = fixture::backlog();
    let mut app = fixture::app(dir.path());
    // keep_days = 0: anything confirmed in the cloud would be due at once.
    let mut ws = app.workspace().clone();
    ws.config.storage.keep_days = crate::config::KeepDays::Days(0);
    app.ws = Arc::new(ws);
    app.start_janitor(Arc::new(crate::clock::SystemClock))
        .unwrap();
    assert!(app.janitor_running());
    let files = || {
        let l = crate::store::LedgerReader::open(dir.path()).unwrap();
        l.captures()
            .unwrap()
            .iter()
            .filter(|c| dir.path().join(&c.stored_path).is_file())
            .count()
    };
    let before = files();
    assert_eq!(before, 4);
    // An edit nudges it; it works the schedule out again and frees nothing:
    // no conversation of the backlog is pushed.
    press(&mut app, "my");
    assert!(
        app.status
            .as_ref()
            .is_some_and(|(_, s)| s.contains("Merged")),
        "{:?}",
        app.status
    );
    std::thread::sleep(std::time::Duration::from_millis(300));
    app.on_tick();
    // Quitting stops (joins) it.
    app.stop();
    assert!(!app.janitor_running());
    assert_eq!(files(), before);
}
