//! The `--auto` log: what each headless run did, in a file that rotates by
//! size, so a person can find out what the timer did last night.
//!
//! The file is `auto.log` in the XDG state directory
//! ([`crate::config::default_log_path`], `~/.local/state/omi-sync/`),
//! private to the user (0600 in a 0700 directory); when it passes
//! [`MAX_BYTES`] it becomes `auto.log.1` (the older ones move up, the oldest
//! beyond [`KEEP`] is deleted). Each run writes a line when it starts, one
//! per stage finished, warning and wait ([`Tee`]), omi-sync's own log at
//! info level, and a line with its exit code (and error) when it ends
//! ([`finished`]). Stderr, which the systemd journal shows, stays as it is.
//!
//! What the file never holds: transcripts (a segment's event is logged
//! without its text), and secrets: its filter is fixed (omi-sync at info,
//! every other crate at warn) and does not follow `RUST_LOG`, so tracing an
//! HTTP client's request for debugging never writes headers into it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::engine::events::{Envelope, Event, EventSink};
use crate::term::say;

/// The tracing target of the run's own lines; the stderr log leaves it out.
pub const TARGET: &str = "omi_sync::runlog";

/// The size past which the log rotates.
pub const MAX_BYTES: u64 = 1024 * 1024;

/// How many rotated logs are kept besides the current one.
pub const KEEP: usize = 3;

/// A log file that rotates by size, for `tracing-subscriber`'s fmt layer.
/// Each event's line is written whole (one `write` of one buffer) and
/// flushed, so a killed run loses at most the line in progress.
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    keep: usize,
    state: Mutex<Open>,
}

struct Open {
    file: File,
    len: u64,
}

impl RotatingFile {
    /// Opens (creating it and its directory if needed) the log at `path`.
    pub fn open(path: &Path, max_bytes: u64, keep: usize) -> io::Result<Self> {
        if let Some(dir) = path.parent() {
            create_private_dir(dir)?;
        }
        let file = open_append(path)?;
        let len = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            keep,
            state: Mutex::new(Open { file, len }),
        })
    }

    /// The log's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `path.N`.
    fn rotated(&self, n: usize) -> PathBuf {
        let mut s = self.path.clone().into_os_string();
        s.push(format!(".{n}"));
        PathBuf::from(s)
    }

    /// Appends one line, rotating first if it would pass the size limit.
    fn append(&self, line: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if state.len > 0 && state.len + line.len() as u64 > self.max_bytes {
            for n in (1..self.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    std::fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            if self.keep == 0 {
                std::fs::remove_file(&self.path)?;
            } else {
                std::fs::rename(&self.path, self.rotated(1))?;
            }
            *state = Open {
                file: open_append(&self.path)?,
                len: 0,
            };
        }
        state.file.write_all(line)?;
        state.file.flush()?;
        state.len += line.len() as u64;
        Ok(())
    }
}

fn open_append(path: &Path) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o.open(path)
}

fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// One event's line, written to the file when the formatter is done with it.
pub struct LineWriter<'a> {
    sink: &'a RotatingFile,
    buf: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            // A log that cannot be written must not stop the run.
            let _ = self.sink.append(&self.buf);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RotatingFile {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            sink: self,
            buf: Vec::with_capacity(256),
        }
    }
}

/// An event sink that writes the run's stages, warnings, waits and link
/// changes to the log (progress ticks and transcripts are left out). Put it
/// beside the terminal's sink with [`crate::engine::events::Tee`].
pub struct RunLog;

impl EventSink for RunLog {
    fn emit(&self, envelope: Envelope) {
        log_event(&envelope.event);
    }
}

fn log_event(event: &Event) {
    match event {
        Event::StageStarted { stage, total, unit } => {
            tracing::info!(target: TARGET, "{} started: {total} {}", stage.label(), unit.label())
        }
        Event::StageFinished { elapsed_ms, report } => tracing::info!(
            target: TARGET,
            "{}: {} [{:.1}s]",
            report.stage().label(),
            say::stage_report(report),
            *elapsed_ms as f64 / 1000.0
        ),
        Event::Waiting {
            stage,
            until,
            reason,
        } => tracing::info!(
            target: TARGET,
            "{} waits until {}: {}",
            stage.label(),
            say::wall(*until),
            say::wait_reason(reason)
        ),
        Event::Link { device, state } => {
            tracing::info!(target: TARGET, "{device}: {}", say::link_state(state))
        }
        Event::Warning { origin, message } => {
            tracing::warn!(target: TARGET, "{origin}: {message}")
        }
        Event::JobStarted { .. }
        | Event::JobFinished { .. }
        | Event::Progress { .. }
        | Event::SegmentTranscribed { .. }
        | Event::ConversationPushed { .. } => {}
    }
}

/// The line a run writes when it starts.
pub fn started() {
    tracing::info!(
        target: TARGET,
        "omi-sync {} --auto started (pid {})",
        env!("CARGO_PKG_VERSION"),
        std::process::id()
    );
}

/// The line a run writes when it ends: its exit code and, on failure, the
/// error with its causes.
pub fn finished(code: u8, error: Option<&anyhow::Error>) {
    match error {
        None => tracing::info!(target: TARGET, "finished: exit {code}"),
        Some(e) => tracing::error!(target: TARGET, "finished: exit {code}: {e:#}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_by_size_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/omi-sync/auto.log");
        let log = RotatingFile::open(&path, 100, 2).unwrap();
        for i in 0..12 {
            log.append(format!("line {i:02} {}\n", "x".repeat(30)).as_bytes())
                .unwrap();
        }
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        // Two lines of 39 bytes fit in 100; the third starts a new file.
        assert!(read(path.clone()).starts_with("line 10"));
        assert!(read(log.rotated(1)).starts_with("line 08"));
        assert!(read(log.rotated(2)).starts_with("line 06"));
        assert!(!log.rotated(3).exists(), "only KEEP old logs");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(path.parent().unwrap()), 0o700);
        }
    }

    #[test]
    fn reopening_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auto.log");
        RotatingFile::open(&path, 1000, 1)
            .unwrap()
            .append(b"one\n")
            .unwrap();
        let log = RotatingFile::open(&path, 1000, 1).unwrap();
        log.append(b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(log.path()).unwrap(), "one\ntwo\n");
    }
}
