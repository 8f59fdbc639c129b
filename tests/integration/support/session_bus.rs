//! A private D-Bus session bus for a test (`dbus-daemon --session` on a
//! socket of its own), stopped when dropped. The desktop-notice and keyring
//! tests put their services on it, so no test ever touches the user's bus.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A running private session bus.
pub struct SessionBus {
    daemon: Child,
    /// Its address, for `DBUS_SESSION_BUS_ADDRESS`.
    pub address: String,
    _dir: tempfile::TempDir,
}

impl SessionBus {
    /// Starts one, or `None` (outside CI) when there is no `dbus-daemon`;
    /// under CI (`CI` set) a missing one fails the test, naming `needed_by`.
    pub fn start(needed_by: &str) -> Option<SessionBus> {
        let dir = tempfile::tempdir().unwrap();
        let spawned = Command::new("dbus-daemon")
            .args(["--session", "--nofork", "--nosyslog", "--print-address=1"])
            .arg(format!(
                "--address=unix:path={}",
                dir.path().join("bus").display()
            ))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let mut daemon = match spawned {
            Ok(c) => c,
            Err(e) => {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "dbus-daemon is needed for {needed_by} (scripts/setup installs it): {e}"
                );
                eprintln!("{needed_by} skipped: no dbus-daemon ({e})");
                return None;
            }
        };
        let mut line = String::new();
        BufReader::new(daemon.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(line.starts_with("unix:"), "dbus-daemon said {line:?}");
        Some(SessionBus {
            daemon,
            address: line.trim().to_string(),
            _dir: dir,
        })
    }
}

impl Drop for SessionBus {
    fn drop(&mut self) {
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
    }
}
