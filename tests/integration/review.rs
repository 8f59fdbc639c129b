//! `omi-sync review` in a real terminal: tmux runs it on the demo backlog,
//! keys go in with `send-keys`, the screen comes back with `capture-pane`,
//! and a second process checks the ledger with `timeline --json`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::{Sandbox, transcribe_from_script};

/// A tmux server of its own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.args(["-L", &self.socket]);
        c
    }

    fn start(socket: &str, shell_line: &str) -> Tmux {
        let t = Tmux {
            socket: socket.into(),
        };
        let ok = t
            .cmd()
            .args([
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "r",
                "-x",
                "100",
                "-y",
                "30",
            ])
            .arg(shell_line)
            .status()
            .expect("tmux is installed by scripts/setup");
        assert!(ok.success(), "tmux new-session failed");
        t
    }

    fn keys(&self, keys: &[&str]) {
        let ok = self
            .cmd()
            .args(["send-keys", "-t", "r"])
            .args(keys)
            .status()
            .unwrap();
        assert!(ok.success());
    }

    fn screen(&self) -> String {
        let out = self
            .cmd()
            .args(["capture-pane", "-p", "-t", "r"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until the screen shows `text` (10 s at most).
    fn wait_for(&self, text: &str) -> String {
        let start = Instant::now();
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the screen never showed {text:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd().arg("kill-server").status();
    }
}

/// The member count of each conversation, from a second process.
fn shape(sb: &Sandbox) -> Vec<usize> {
    sb.run(&["timeline", "--json"]).json()["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["segments"].as_array().unwrap().len())
        .collect()
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

#[test]
fn review_merges_undoes_splits_and_restores_the_terminal() {
    let sb = Sandbox::new();
    let filled = sb.run(&["--auto", "--source", "demo", "--dry-run"]);
    assert_eq!(filled.code, 0, "{}", filled.stderr);
    transcribe_from_script(&sb.data());
    let before = shape(&sb);
    // The demo backlog is two conversations: enough to merge, then split.
    assert!(before.len() >= 2, "{before:?}");

    let line = format!(
        "env NO_COLOR=1 TZ=UTC DBUS_SESSION_BUS_ADDRESS=unix:path=/nonexistent {} --data-dir {} --config {} review; echo \"EXIT=$?\"; stty -a; echo STTY-DONE; sleep 30",
        shell_quote(&crate::common::binary()),
        shell_quote(&sb.data()),
        shell_quote(&sb.dir.path().join("config.toml")),
    );
    let socket = format!("omi-sync-test-{}", std::process::id());
    let t = Tmux::start(&socket, &line);
    t.wait_for("Conversations (");

    // Move to the second conversation and back, then merge the first two.
    t.keys(&["j"]);
    t.keys(&["k"]);
    t.keys(&["m"]);
    t.wait_for("y merges");
    t.keys(&["y"]);
    t.wait_for("Merged conversations");
    let merged = shape(&sb);
    assert_eq!(merged.len(), before.len() - 1, "{merged:?}");
    assert_eq!(merged[0], before[0] + before[1]);

    t.keys(&["u"]);
    t.wait_for("undone:");
    assert_eq!(shape(&sb), before);

    // Split the first conversation with two segments before its second.
    let i = before
        .iter()
        .position(|n| *n >= 2)
        .expect("a conversation of two segments");
    for _ in 0..i {
        t.keys(&["j"]);
    }
    t.keys(&["Enter"]);
    t.wait_for("Segments (s splits");
    t.keys(&["j", "s"]);
    t.wait_for("Split conversation");
    let split = shape(&sb);
    assert_eq!(split.len(), before.len() + 1, "{split:?}");

    t.keys(&["q"]);
    // Wait for stty's whole report, not just the exit line before it.
    let after = t.wait_for("STTY-DONE");
    assert!(after.contains("EXIT=0"), "{after}");
    assert!(
        !after.contains("Conversations ("),
        "left the alternate screen:\n{after}"
    );
    assert!(
        after.contains(" icanon") && !after.contains("-icanon") && !after.contains("-echo "),
        "the terminal is back in cooked mode:\n{after}"
    );
}
