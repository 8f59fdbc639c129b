//! The terminal while the TUI is up: raw mode, the alternate screen, mouse
//! capture, and stderr sent to a log file (tracing, whisper.cpp and ALSA
//! write there, never over the UI). Everything is put back by
//! [`Session::finish`], by `Drop`, and by a panic hook, so a crash or a
//! SIGTERM leaves a usable shell.

use std::fs::OpenOptions;
use std::io::{Stdout, Write, stdout};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Once;

use anyhow::Context as _;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{DisableMouseCapture, EnableMouseCapture};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};

use super::app::App;

/// The terminal, taken over.
pub struct Session {
    terminal: Terminal<CrosstermBackend<Stdout>>,
    saved_stderr: Option<i32>,
    restored: bool,
}

/// Puts the terminal back as the shell had it (safe to call twice).
fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(
        stdout(),
        DisableMouseCapture,
        LeaveAlternateScreen,
        ratatui::crossterm::cursor::Show
    );
}

/// Sends this process's stderr to `log` (appending); returns the old stderr
/// to put back.
fn redirect_stderr(log: &Path) -> anyhow::Result<i32> {
    if let Some(dir) = log.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("cannot open the log {}", log.display()))?;
    // SAFETY: dup and dup2 on descriptors this process owns; the file stays
    // open through the duplicate on fd 2.
    let saved = unsafe { libc::dup(2) };
    if saved < 0 || unsafe { libc::dup2(file.as_raw_fd(), 2) } < 0 {
        anyhow::bail!("cannot send stderr to {}", log.display());
    }
    Ok(saved)
}

fn put_back_stderr(saved: i32) {
    // SAFETY: `saved` came from dup above and is closed once here.
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
}

impl Session {
    /// Takes the terminal over; stderr goes to `log` until [`Session::finish`].
    pub fn start(log: &Path, mouse: bool) -> anyhow::Result<Session> {
        static HOOK: Once = Once::new();
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore_terminal();
                previous(info);
            }));
        });
        let saved_stderr = Some(redirect_stderr(log)?);
        enable_raw_mode().context("cannot put the terminal in raw mode")?;
        let mut out = stdout();
        execute!(out, EnterAlternateScreen).context("cannot open the alternate screen")?;
        if mouse {
            execute!(out, EnableMouseCapture).context("cannot capture the mouse")?;
        }
        let terminal =
            Terminal::new(CrosstermBackend::new(out)).context("cannot use the terminal")?;
        Ok(Session {
            terminal,
            saved_stderr,
            restored: false,
        })
    }

    /// Draws one frame of `app`.
    pub fn draw(&mut self, app: &App) -> anyhow::Result<()> {
        self.terminal
            .draw(|f| super::draw::frame(f, app))
            .context("cannot draw")?;
        Ok(())
    }

    /// Gives the terminal back.
    pub fn finish(&mut self) -> anyhow::Result<()> {
        if !self.restored {
            self.restored = true;
            restore_terminal();
            let _ = stdout().flush();
            if let Some(fd) = self.saved_stderr.take() {
                put_back_stderr(fd);
            }
        }
        Ok(())
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}
