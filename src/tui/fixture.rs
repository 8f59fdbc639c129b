//! A backlog for the TUI's tests: four conversations on one pendant (three
//! on its wall clock, one with estimated times), transcribed, times fixed,
//! shown in UTC with no colours.

use std::sync::Arc;

use super::app::{App, Options};
use super::keys::KeyMap;
use super::theme::Theme;
use super::zone::Zone;
use crate::clock::{ClockTrust, UtcMillis};
use crate::config::Config;
use crate::engine::workspace::Workspace;
use crate::store::Ledger;
use crate::store::testdata::add_tone_capture;
use crate::timeline::SegmentStatus;

/// 2025-06-02 09:00:00 UTC.
pub const T0: i64 = 1_748_854_800_000;

/// One capture of the backlog: its offset from [`T0`], its clock, its
/// segments (start, end ms) and their words.
type Capture = (
    i64,
    ClockTrust,
    &'static [(i64, i64)],
    &'static [&'static str],
);

/// A data directory holding the backlog.
pub fn backlog() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("tui").tempdir().unwrap();
    let mut l = Ledger::open(dir.path()).unwrap();
    let caps: [Capture; 4] = [
        (
            0,
            ClockTrust::Wall,
            &[(0, 1000), (1500, 3000)],
            &["good morning", "how are you"],
        ),
        (
            600_000,
            ClockTrust::Wall,
            &[(0, 2000)],
            &["the meeting starts at ten"],
        ),
        (
            1_200_000,
            ClockTrust::Wall,
            &[(0, 1000), (3000, 3900)],
            &["first part", "second part"],
        ),
        (
            3_600_000,
            ClockTrust::Uptime,
            &[(0, 1500)],
            &["an estimated time"],
        ),
    ];
    for (at, clock, spans, words) in caps {
        let ids = add_tone_capture(&mut l, "omi", UtcMillis(T0 + at), clock, spans);
        for (id, w) in ids.iter().zip(words) {
            l.set_transcript(*id, SegmentStatus::Speech, Some(w), None)
                .unwrap();
        }
    }
    dir
}

/// Two pendants' last reports beside the backlog, read at
/// 2025-06-02 10:00:00 UTC: `omi` 85 % full with a skew estimate, `omi-2`
/// 97 % full with its clock not set and no records in its last pull.
pub fn device_reports(dir: &std::path::Path) {
    let l = Ledger::open(dir).unwrap();
    let warn = crate::store::testdata::sample_device_report();
    let mut bad = warn.clone();
    bad.device = "omi-2".into();
    bad.unread_after = Some(970);
    bad.status = bad.status.map(|s| crate::device::ring::StorageStatus {
        clock_valid: false,
        ..s
    });
    bad.clock_written = false;
    bad.newest = None;
    l.set_device_report(&warn).unwrap();
    l.set_device_report(&bad).unwrap();
}

/// The options every test draws with.
pub fn options() -> Options {
    Options {
        zone: Zone::utc(),
        theme: Theme::mono(),
        keys: KeyMap::default(),
    }
}

/// The TUI open on `dir`.
pub fn app(dir: &std::path::Path) -> App {
    let ws = Workspace::new(Config::default(), None, dir.to_path_buf());
    App::open(Arc::new(ws), options()).unwrap()
}
