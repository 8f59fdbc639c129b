//! Desktop notices at the end of an `--auto` run, for the systemd timer.
//!
//! A run that pushed conversations says how many; a run that stopped
//! because it needs a person (a refused key, a full disk, no model, a
//! processor too old for local Whisper) says why. Nothing else is worth
//! interrupting someone for: "nothing to do" and "try again later" are the
//! timer's business. The notice goes over the desktop session's D-Bus
//! (`org.freedesktop.Notifications`, with zbus: no libdbus); without a
//! session bus, or with `[auto] notify = false`, nothing is shown and nothing
//! is said. Sending never holds the run up for more than [`SEND_TIMEOUT`].

use std::time::Duration;

use crate::config::AutoConfig;
use crate::exit::{CommandResult, ExitCode};

/// The longest a run waits for the notification service to answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// The application name notices carry.
const APP_NAME: &str = "omi-sync";

/// The longest reason shown (a notice is not a log).
const MAX_REASON_CHARS: usize = 300;

/// What an `--auto` run did that a person may want to hear about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoOutcome {
    /// Conversations created in the Omi cloud by this run.
    pub pushed: usize,
    /// Why the run stopped (or left work undone) until a person acts.
    pub needs_a_person: Option<String>,
}

impl AutoOutcome {
    /// Takes the run's result into account: a fatal failure (exit 7) is the
    /// reason a person is needed.
    pub fn ended(mut self, result: &CommandResult) -> Self {
        if let Err(f) = result
            && f.code == ExitCode::Fatal
        {
            self.needs_a_person = Some(format!("{:#}", f.error));
        }
        self
    }
}

/// A notice to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The one-line summary.
    pub summary: String,
    /// The text under it.
    pub body: String,
    /// Whether it needs a person (shown as critical).
    pub critical: bool,
}

/// The notice for an outcome, if it is worth one.
pub fn notice(outcome: &AutoOutcome) -> Option<Notice> {
    let pushed = match outcome.pushed {
        1 => "1 conversation".to_string(),
        n => format!("{n} conversations"),
    };
    match &outcome.needs_a_person {
        Some(reason) => {
            let mut body: String = reason.chars().take(MAX_REASON_CHARS).collect();
            if body.len() < reason.len() {
                body.push('…');
            }
            if outcome.pushed > 0 {
                body.push_str(&format!("\n({pushed} pushed before that.)"));
            }
            Some(Notice {
                summary: "omi-sync needs you".into(),
                body,
                critical: true,
            })
        }
        None if outcome.pushed > 0 => Some(Notice {
            summary: format!("omi-sync pushed {pushed}"),
            body: "to the Omi cloud; `omi-sync timeline` shows them.".into(),
            critical: false,
        }),
        None => None,
    }
}

/// Called once at the end of an `--auto` run: shows the run's notice, if it
/// has one, unless `[auto] notify = false`. Silent when there is no session
/// bus or no notification service; never fails the run.
pub fn auto_finished(config: &AutoConfig, outcome: &AutoOutcome) {
    if !config.notify {
        return;
    }
    let Some(notice) = notice(outcome) else {
        return;
    };
    match send(notice, SEND_TIMEOUT) {
        Ok(()) => tracing::debug!("desktop notice shown"),
        Err(why) => tracing::debug!("no desktop notice: {why}"),
    }
}

/// Sends `notice` on the session bus, giving up after `timeout` (the sending
/// thread is left to finish or die with the process).
fn send(notice: Notice, timeout: Duration) -> Result<(), String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("notify".into())
        .spawn(move || {
            let mut n = notify_rust::Notification::new();
            n.appname(APP_NAME)
                .summary(&notice.summary)
                .body(&notice.body)
                .icon(if notice.critical {
                    "dialog-warning"
                } else {
                    "dialog-information"
                });
            #[cfg(all(unix, not(target_os = "macos")))]
            n.urgency(if notice.critical {
                notify_rust::Urgency::Critical
            } else {
                notify_rust::Urgency::Normal
            });
            let _ = tx.send(n.show().map(|_| ()).map_err(|e| e.to_string()));
        })
        .map_err(|e| format!("cannot start the notice thread: {e}"))?;
    rx.recv_timeout(timeout)
        .map_err(|_| format!("the notification service did not answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Failure;

    #[test]
    fn only_pushes_and_needs_a_person_are_worth_a_notice() {
        assert_eq!(notice(&AutoOutcome::default()), None);
        let n = notice(&AutoOutcome {
            pushed: 2,
            needs_a_person: None,
        })
        .unwrap();
        assert_eq!(n.summary, "omi-sync pushed 2 conversations");
        assert!(!n.critical);
        let n = notice(&AutoOutcome {
            pushed: 1,
            needs_a_person: Some("the key was refused".into()),
        })
        .unwrap();
        assert_eq!(n.summary, "omi-sync needs you");
        assert_eq!(
            n.body,
            "the key was refused\n(1 conversation pushed before that.)"
        );
        assert!(n.critical);
    }

    #[test]
    fn a_fatal_failure_is_the_reason_and_others_are_not() {
        let fatal: CommandResult = Err(Failure::fatal(anyhow::anyhow!("disk full")));
        let outcome = AutoOutcome::default().ended(&fatal);
        assert_eq!(outcome.needs_a_person.as_deref(), Some("disk full"));
        let temporary: CommandResult = Err(Failure::new(
            ExitCode::Temporary,
            anyhow::anyhow!("rate limited"),
        ));
        assert_eq!(
            AutoOutcome::default().ended(&temporary),
            AutoOutcome::default()
        );
        assert_eq!(
            AutoOutcome::default().ended(&Ok(ExitCode::Done)),
            AutoOutcome::default()
        );
    }

    #[test]
    fn long_reasons_are_cut() {
        let n = notice(&AutoOutcome {
            pushed: 0,
            needs_a_person: Some("x".repeat(1000)),
        })
        .unwrap();
        assert_eq!(n.body.chars().count(), MAX_REASON_CHARS + 1);
    }
}
