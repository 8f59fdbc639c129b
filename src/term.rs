//! How results reach the terminal: colour policy, progress bars, JSON.
//!
//! Results go to stdout (text, or JSON with `--json`); progress, warnings and
//! errors go to stderr. Progress bars appear only when stderr is a terminal
//! and neither `--quiet` nor `--json` is given; otherwise progress is plain
//! lines (or nothing when quiet). Colour follows `--color` and `NO_COLOR`.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anstyle::{AnsiColor, Style};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

use crate::cli::{ColorWhen, GlobalArgs};
use crate::engine::{Event, EventSink, Stage};

/// Bold.
pub const BOLD: Style = Style::new().bold();
/// Dimmed (secondary details).
pub const DIM: Style = Style::new().dimmed();
/// Good news.
pub const GOOD: Style = AnsiColor::Green.on_default();
/// Warnings.
pub const WARN: Style = AnsiColor::Yellow.on_default();
/// Errors.
pub const BAD: Style = AnsiColor::Red.on_default().bold();

/// `text` in `style` (stripped later when colour is off).
pub fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{}{text}{}", style.render(), style.render_reset())
}

/// The output settings of one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON on stdout instead of text.
    pub json: bool,
    /// Only errors and results.
    pub quiet: bool,
    /// Extra detail.
    pub verbose: u8,
    /// Whether progress bars can be drawn.
    pub bars: bool,
}

impl Output {
    /// Settings from the global flags; also fixes the colour policy.
    pub fn new(global: &GlobalArgs) -> Self {
        let choice = match global.color {
            ColorWhen::Always => anstream::ColorChoice::Always,
            ColorWhen::Never => anstream::ColorChoice::Never,
            ColorWhen::Auto => anstream::ColorChoice::Auto,
        };
        choice.write_global();
        let bars = !global.quiet && !global.json && std::io::stderr().is_terminal();
        Output {
            json: global.json,
            quiet: global.quiet,
            verbose: global.verbose,
            bars,
        }
    }

    /// Prints a value as JSON on stdout.
    pub fn print_json<T: Serialize>(&self, value: &T) {
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, value);
        let _ = writeln!(out);
    }

    /// A note for a person on stderr (not when quiet).
    pub fn note(&self, text: impl std::fmt::Display) {
        if !self.quiet {
            anstream::eprintln!("{text}");
        }
    }

    /// A warning on stderr (always).
    pub fn warn(&self, origin: &str, message: &str) {
        anstream::eprintln!("{} {}: {message}", paint(WARN, "warning:"), origin);
    }

    /// The event sink for a command's progress: bars or lines on stderr
    /// (with `--json`, only warnings, so stdout holds just the result).
    pub fn progress(&self) -> Progress {
        Progress::new(*self, false)
    }

    /// The event sink for `--auto`: like [`progress`](Self::progress), but
    /// with `--json` every event is a line of JSON on stdout (NDJSON).
    pub fn event_stream(&self) -> Progress {
        Progress::new(*self, self.json)
    }
}

/// Shows engine events: progress bars on a terminal, plain lines otherwise,
/// NDJSON with `--json`.
pub struct Progress {
    out: Output,
    ndjson: bool,
    multi: MultiProgress,
    bars: Mutex<HashMap<Stage, ProgressBar>>,
    /// When each stage started (or, for a stage that did not announce
    /// itself, when the one before it finished): for its elapsed time.
    clock: Mutex<StageClock>,
}

/// Times the stages of one run.
struct StageClock {
    started: HashMap<Stage, Instant>,
    last_finished: Instant,
}

impl StageClock {
    /// Seconds `stage` took, now that it finished.
    fn finish(&mut self, stage: Stage) -> f64 {
        let now = Instant::now();
        let since = self.started.remove(&stage).unwrap_or(self.last_finished);
        self.last_finished = now;
        now.duration_since(since).as_secs_f64()
    }
}

impl Progress {
    fn new(out: Output, ndjson: bool) -> Self {
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
            clock: Mutex::new(StageClock {
                started: HashMap::new(),
                last_finished: Instant::now(),
            }),
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
}

impl EventSink for Progress {
    fn emit(&self, event: Event) {
        let elapsed = {
            let mut clock = self.clock.lock().unwrap_or_else(|p| p.into_inner());
            match &event {
                Event::StageStarted { stage, .. } => {
                    clock.started.insert(*stage, Instant::now());
                    None
                }
                Event::StageFinished { stage, .. } => Some(clock.finish(*stage)),
                _ => None,
            }
        };
        if self.ndjson {
            let mut line = serde_json::to_value(&event).unwrap_or_default();
            if let (Some(secs), Some(obj)) = (elapsed, line.as_object_mut()) {
                obj.insert(
                    "elapsed_s".into(),
                    ((secs * 1000.0).round() / 1000.0).into(),
                );
            }
            let mut out = std::io::stdout().lock();
            let _ = serde_json::to_writer(&mut out, &line);
            let _ = writeln!(out);
            return;
        }
        let mut bars = self.bars.lock().unwrap_or_else(|p| p.into_inner());
        match event {
            Event::StageStarted { stage, total, unit } => {
                if self.out.bars {
                    let bar = self.multi.add(ProgressBar::new(total));
                    // Bytes (a pull) read as kB and kB/s; other units as counts.
                    let counts = if unit == "bytes" {
                        "{bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta})".to_string()
                    } else {
                        format!("{{pos}}/{{len}} {unit} ({{per_sec}}, ETA {{eta}})")
                    };
                    let style = ProgressStyle::with_template(&format!(
                        "{{spinner}} {:<12} [{{bar:30}}] {counts}",
                        stage.label()
                    ))
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
                    bar.set_style(style);
                    bar.enable_steady_tick(Duration::from_millis(200));
                    bars.insert(stage, bar);
                } else if !self.out.quiet && self.out.verbose > 0 {
                    self.line(format!("{}: {total} {unit}", stage.label()));
                }
            }
            Event::Progress { stage, done, .. } => {
                if let Some(bar) = bars.get(&stage) {
                    bar.set_position(done);
                }
            }
            Event::StageFinished { stage, summary } => {
                if let Some(bar) = bars.remove(&stage) {
                    bar.finish_and_clear();
                }
                if !self.out.quiet && !self.out.json {
                    drop(bars);
                    let took = match elapsed {
                        Some(secs) if self.out.verbose > 0 => format!(" [{}]", duration(secs)),
                        _ => String::new(),
                    };
                    self.line(format!(
                        "{} {summary}{took}",
                        paint(GOOD, format!("{}:", stage.label()))
                    ));
                }
            }
            Event::SegmentTranscribed { .. } => {}
            Event::Waiting {
                stage,
                until,
                reason,
            } => {
                drop(bars);
                if !self.out.quiet {
                    self.line(format!(
                        "{} waiting until {until}: {reason}",
                        paint(DIM, format!("{}:", stage.label()))
                    ));
                }
            }
            Event::Warning { origin, message } => {
                drop(bars);
                self.line(format!("{} {origin}: {message}", paint(WARN, "warning:")));
            }
        }
    }
}

/// Seconds as `1h02m03s`, `4m05s` or `6.1s`.
pub fn duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        return format!("{s:.1}s");
    }
    let total = s.round() as u64;
    let (h, m, sec) = (total / 3600, total % 3600 / 60, total % 60);
    if h > 0 {
        format!("{h}h{m:02}m{sec:02}s")
    } else {
        format!("{m}m{sec:02}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(6.12), "6.1s");
        assert_eq!(duration(245.0), "4m05s");
        assert_eq!(duration(3723.0), "1h02m03s");
    }

    #[test]
    fn paint_wraps_in_escapes_that_strip_cleanly() {
        let p = paint(GOOD, "ok");
        assert!(p.contains("\x1b["));
        assert_eq!(anstream::adapter::strip_str(&p).to_string(), "ok");
    }
}
