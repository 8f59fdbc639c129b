//! A job's events on the terminal: progress bars when stderr is a terminal,
//! plain lines otherwise, NDJSON on stdout for `--auto --json`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{DIM, GOOD, Output, WARN, duration, paint, say};
use crate::engine::events::{Envelope, Event, EventSink, LinkState, Stage, Unit};

/// Shows engine events (see the module docs).
pub struct Progress {
    out: Output,
    ndjson: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<Stage, ProgressBar>>,
}

impl Progress {
    /// Bars or lines on stderr; with `ndjson`, every envelope as a line of
    /// JSON on stdout instead.
    pub fn new(out: Output, ndjson: bool) -> Self {
        let target = if out.bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            out,
            ndjson,
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn line(&self, text: String) {
        if self.out.bars {
            let _ = self
                .multi
                .println(anstream::adapter::strip_str(&text).to_string());
        } else {
            anstream::eprintln!("{text}");
        }
    }

    fn bar(&self, stage: Stage, total: u64, unit: Unit) -> ProgressBar {
        let bar = self.multi.add(ProgressBar::new(total));
        // Bytes (a pull, a download) read as kB and kB/s; other units as counts.
        let counts = if unit == Unit::Bytes {
            "{bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})".to_string()
        } else {
            format!(
                "{{pos}}/{{len}} {} ({{per_sec}}, ETA {{eta}})",
                unit.label()
            )
        };
        let style = ProgressStyle::with_template(&format!(
            "{{spinner}} {:<12} [{{bar:30}}] {counts}",
            stage.label()
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

impl EventSink for Progress {
    fn emit(&self, envelope: Envelope) {
        if self.ndjson {
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer(&mut out, &envelope);
            let _ = writeln!(out);
            return;
        }
        let quiet = self.out.quiet;
        let verbose = self.out.verbose > 0;
        match envelope.event {
            Event::StageStarted { stage, total, unit } => {
                if self.out.bars {
                    let bar = self.bar(stage, total, unit);
                    self.bars
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(stage, bar);
                } else if !quiet && verbose {
                    self.line(format!("{}: {total} {}", stage.label(), unit.label()));
                }
            }
            Event::Progress { stage, done, total } => {
                let bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(bar) = bars.get(&stage) {
                    if bar.length() != Some(total) {
                        bar.set_length(total);
                    }
                    bar.set_position(done);
                }
            }
            Event::StageFinished { elapsed_ms, report } => {
                let stage = report.stage();
                let bar = self
                    .bars
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&stage);
                if let Some(bar) = bar {
                    bar.finish_and_clear();
                }
                if !quiet && !self.out.json {
                    let took = if verbose {
                        format!(" [{}]", duration(elapsed_ms as f64 / 1000.0))
                    } else {
                        String::new()
                    };
                    self.line(format!(
                        "{} {}{took}",
                        paint(GOOD, format!("{}:", stage.label())),
                        say::stage_report(&report)
                    ));
                }
            }
            Event::Waiting {
                stage,
                until,
                reason,
            } => {
                if !quiet {
                    self.line(format!(
                        "{} waiting until {}: {}",
                        paint(DIM, format!("{}:", stage.label())),
                        say::wall(until),
                        say::wait_reason(&reason)
                    ));
                }
            }
            Event::Warning { origin, message } => {
                self.line(format!("{} {origin}: {message}", paint(WARN, "warning:")));
            }
            Event::Link { device, state } => {
                let worth_saying = matches!(
                    state,
                    LinkState::Dropped { .. } | LinkState::Reconnecting { .. }
                ) || verbose;
                if !quiet && worth_saying {
                    self.line(format!(
                        "{} {}",
                        paint(DIM, format!("{device}:")),
                        say::link_state(&state)
                    ));
                }
            }
            Event::ConversationPushed {
                conversation,
                cloud_id,
                ..
            } => {
                if !quiet && verbose {
                    self.line(format!(
                        "{} conversation {conversation} is in the cloud as {cloud_id}",
                        paint(GOOD, "pushed:")
                    ));
                }
            }
            Event::JobStarted { .. }
            | Event::JobFinished { .. }
            | Event::SegmentTranscribed { .. } => {}
        }
    }
}
