//! How results reach the terminal: colour policy, progress bars, JSON.
//!
//! Results go to stdout (text, or JSON with `--json`); progress, warnings and
//! errors go to stderr. Progress bars appear only when stderr is a terminal
//! and neither `--quiet` nor `--json` is given; otherwise progress is plain
//! lines (or nothing when quiet). Colour follows `--color` and `NO_COLOR`.
//!
//! [`progress`] shows a job's events as they come; [`say`] words the engine's
//! typed reports, waits and remedies in the command line's own sentences.

pub mod progress;
pub mod say;

pub use progress::Progress;

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use serde::Serialize;

use crate::cli::{ColorWhen, GlobalArgs};

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

/// Whether stderr gets colour (log lines included): `--color always`, or
/// `auto` on a terminal with `NO_COLOR` unset or empty; never otherwise.
pub fn stderr_color(when: ColorWhen) -> bool {
    color_for(
        when,
        std::env::var_os("NO_COLOR"),
        std::io::stderr().is_terminal(),
    )
}

/// The rule of [`stderr_color`], given `NO_COLOR` and whether the stream is
/// a terminal.
fn color_for(when: ColorWhen, no_color: Option<std::ffi::OsString>, terminal: bool) -> bool {
    match when {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
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
    fn colour_only_when_asked_or_on_a_terminal_without_no_color() {
        let set = || Some(std::ffi::OsString::from("1"));
        let empty = || Some(std::ffi::OsString::new());
        assert!(color_for(ColorWhen::Always, set(), false));
        assert!(!color_for(ColorWhen::Never, None, true));
        assert!(color_for(ColorWhen::Auto, None, true));
        assert!(color_for(ColorWhen::Auto, empty(), true));
        assert!(!color_for(ColorWhen::Auto, set(), true));
        assert!(!color_for(ColorWhen::Auto, None, false), "a pipe");
    }

    #[test]
    fn paint_wraps_in_escapes_that_strip_cleanly() {
        let p = paint(GOOD, "ok");
        assert!(p.contains("\x1b["));
        assert_eq!(anstream::adapter::strip_str(&p).to_string(), "ok");
    }
}
