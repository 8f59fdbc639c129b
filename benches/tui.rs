//! Criterion benchmarks of the review TUI on a ledger of 10 000 segments
//! (2 500 conversations of four, ten minutes apart): one frame drawn at
//! 200x50 in each main view, and a merge from the key press to the redrawn
//! frame (timed; then undone, untimed, so every iteration merges the same two).
//!
//! Measured 2026-12-02 on the shared 2-core build machine (other builds
//! running, load average 5-7), in the bench profile (release settings) with
//! `cargo bench --bench tui -- --warm-up-time 1 --measurement-time 3 --sample-size 20`.
//! Medians from `target/criterion/*/new/estimates.json`, with criterion's
//! 95 % interval:
//!
//! | benchmark (200x50, 10 000 segments) | median   | interval          |
//! |-------------------------------------|----------|-------------------|
//! | frame_timeline                      | 0.65 ms  | 0.63 - 0.67 ms    |
//! | frame_conversation                  | 0.27 ms  | 0.24 - 0.28 ms    |
//! | frame_segments                      | 0.41 ms  | 0.40 - 0.42 ms    |
//! | frame_sync                          | 1.31 ms  | 1.25 - 1.38 ms    |
//! | merge_key_to_frame                  | 53.3 ms  | 48.3 - 57.1 ms    |
//!
//! Every frame is well under the 16 ms goal. A merge's key-to-frame time
//! (profiled with `perf record --call-graph dwarf` and timing spans) went
//! to SQLite reading all 10 000 segments: twice in the edit (the timeline
//! before and after), and twice more in the fresh snapshot (its timeline,
//! then the overview's counts), plus a quadratic search for each
//! boundary's reason (about 17 ms). The snapshot now reads the segments
//! once and the reasons are found in one pass: side by side in one session
//! (bench profile, `--bench merge_key_to_frame --measurement-time 4
//! --sample-size 10`, three alternating runs each) the merge went from
//! 64-68 ms to 37-51 ms. What is left is mostly the edit's two timelines
//! and the snapshot's one (the segment reads). Peak memory on a 4 h
//! backlog is not measured yet.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use omi_sync::config::Config;
use omi_sync::engine::workspace::Workspace;
use omi_sync::store::Ledger;
use omi_sync::tui::app::{App, Options};
use omi_sync::tui::keys::KeyMap;
use omi_sync::tui::theme::Theme;
use omi_sync::tui::zone::Zone;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

const SEGMENTS: usize = 10_000;

/// A ledger of `SEGMENTS` segments, 2 500 conversations of four.
fn backlog(dir: &std::path::Path) {
    let mut ledger = Ledger::open(dir).unwrap();
    omi_sync::store::synthetic::add_backlog(&mut ledger, "omi", SEGMENTS / 4, 4, "bench").unwrap();
}

fn key(app: &mut App, c: char) {
    app.on_key(&KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE));
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    backlog(dir.path());
    let ws = Workspace::new(Config::default(), None, dir.path().to_path_buf());
    let opts = Options {
        zone: Zone::utc(),
        theme: Theme::new(Default::default(), false),
        keys: KeyMap::default(),
    };
    let mut app = App::open(Arc::new(ws), opts).unwrap();
    assert_eq!(app.conversations().len(), SEGMENTS / 4);
    let mut term = Terminal::new(TestBackend::new(200, 50)).unwrap();
    // The middle of the backlog.
    for _ in 0..SEGMENTS / 8 {
        key(&mut app, 'j');
    }
    let mut g = c.benchmark_group("tui_10k_segments_200x50");
    g.sample_size(30);
    for (view, name) in [
        ('1', "frame_timeline"),
        ('2', "frame_conversation"),
        ('3', "frame_segments"),
        ('4', "frame_sync"),
    ] {
        key(&mut app, view);
        g.bench_function(name, |b| {
            b.iter(|| {
                term.draw(|f| omi_sync::tui::draw::frame(f, black_box(&app)))
                    .unwrap();
            })
        });
    }
    key(&mut app, '1');
    g.sample_size(10);
    g.bench_function("merge_key_to_frame", |b| {
        b.iter_custom(|iters| {
            let mut took = std::time::Duration::ZERO;
            for _ in 0..iters {
                let start = std::time::Instant::now();
                key(&mut app, 'm');
                key(&mut app, 'y');
                term.draw(|f| omi_sync::tui::draw::frame(f, &app)).unwrap();
                took += start.elapsed();
                key(&mut app, 'u');
            }
            took
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
