//! What the janitor costs with many deletions pending: builds a ledger of N
//! analysed captures with no speech (each falls due `keep_days` after VAD
//! looked at it, so all N wait in the schedule), then measures the time to
//! work the schedule out (median of `--runs`), the threads a running
//! [`Janitor`] adds, and the memory the schedule and the running janitor
//! take. Used by `bench/janitor/cost.sh`.
//!
//! ```text
//! cargo run --release --example janitor_cost -- [--captures 10000] [--runs 5]
//! ```
//!
//! Prints one JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use omi_sync::audio::Codec;
use omi_sync::cancel::Cancel;
use omi_sync::clock::{ClockTrust, SystemClock, UtcMillis};
use omi_sync::config::Config;
use omi_sync::device::capture::{CaptureFormat, Run};
use omi_sync::engine::janitor::{self, Janitor};
use omi_sync::engine::workspace::Workspace;
use omi_sync::store::{Ledger, LedgerReader, NewCapture, RunRow};

fn main() {
    if let Err(e) = run() {
        eprintln!("janitor_cost: {e}");
        std::process::exit(2);
    }
}

fn flag(args: &[String], name: &str, default: usize) -> Result<usize, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

/// A line of `/proc/self/status` (`Threads`, `VmRSS` in kB).
fn status(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let captures = flag(&args, "--captures", 10_000)?;
    let runs = flag(&args, "--runs", 5)?.max(1);
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let data = dir.path().join("data");

    let built = Instant::now();
    {
        let mut ledger = Ledger::open(&data).map_err(|e| e.to_string())?;
        let t0 = 1_748_854_800_000i64;
        for i in 0..captures {
            // A few distinct samples: every capture is its own file.
            let mut body = 32u32.to_le_bytes().to_vec();
            body.extend((i as u64).to_le_bytes());
            body.extend([0u8; 24]);
            let start = UtcMillis(t0 + i as i64 * 60_000);
            let (_, cap) = ledger
                .add_capture(
                    &body,
                    &NewCapture {
                        format: CaptureFormat::Wal,
                        codec: Codec::Pcm16 {
                            sample_rate: 16_000,
                        },
                        device: "omi".into(),
                        origin: "janitor-cost".into(),
                        file_name: format!("audio_omi_pcm16_16000_1_fs160_{}.bin", start.0 / 1000),
                        name_start: Some(start),
                        clock: ClockTrust::Wall,
                        first_seq: None,
                        ring_id: None,
                        captured_at: start,
                    },
                )
                .map_err(|e| e.to_string())?;
            let run = RunRow {
                run: Run {
                    first_frame: 0,
                    frame_count: 1,
                    samples: 16,
                    start,
                    clock: ClockTrust::Wall,
                },
                bad_frames: 0,
            };
            ledger
                .save_analysis(cap.id, &[run], &[], &[], "{}")
                .map_err(|e| e.to_string())?;
        }
    }
    let built = built.elapsed();

    let ws = Workspace::new(Config::default(), None, data.clone());
    let reader = LedgerReader::open(&data).map_err(|e| e.to_string())?;
    let rss_before = status("VmRSS");
    let mut times = Vec::new();
    let mut due = 0;
    for _ in 0..runs {
        let t = Instant::now();
        let schedule =
            janitor::schedule(&ws, &reader, UtcMillis::now()).map_err(|e| e.to_string())?;
        times.push(t.elapsed());
        due = schedule
            .captures
            .iter()
            .filter(|c| matches!(c.custody, janitor::Custody::Due { .. }))
            .count();
    }
    times.sort();
    let rss_schedule = status("VmRSS");

    let threads_before = status("Threads");
    let cancel = Cancel::new();
    let running = Janitor::spawn(ws, Arc::new(SystemClock), cancel).map_err(|e| e.to_string())?;
    // Let it work the schedule out and go to sleep until the first due time.
    std::thread::sleep(Duration::from_millis(1500));
    let threads_running = status("Threads");
    let rss_running = status("VmRSS");
    let reports = running.stop();

    println!(
        "{}",
        serde_json::json!({
            "captures": captures,
            "pending_deletions": due,
            "ledger_built_s": built.as_secs_f64(),
            "schedule_ms_median": times[times.len() / 2].as_secs_f64() * 1000.0,
            "schedule_ms_all": times.iter().map(|t| t.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "threads_added_by_janitor": threads_running.saturating_sub(threads_before),
            "rss_kb_before_schedule": rss_before,
            "rss_kb_after_schedule": rss_schedule,
            "rss_kb_janitor_running": rss_running,
            "freed_while_running": reports.iter().map(|r| r.freed.len()).sum::<usize>(),
        })
    );
    Ok(())
}
