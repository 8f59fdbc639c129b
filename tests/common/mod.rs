//! Shared helpers for integration tests: running the real binary against a
//! throwaway data directory, and building phone-app files from the demo.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use omi_sync::device::{demo, wal};

/// A throwaway data directory and a way to run `omi-sync` against it.
pub struct Sandbox {
    /// Holds the temporary directory alive.
    pub dir: tempfile::TempDir,
}

/// What a run printed and how it ended.
pub struct Run {
    /// Exit code.
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Stdout parsed as JSON (panics with both streams if it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Sandbox {
    /// A new, empty sandbox.
    pub fn new() -> Self {
        Sandbox {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The data directory.
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// A folder inside the sandbox for input files.
    pub fn inputs(&self) -> PathBuf {
        let p = self.dir.path().join("inputs");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The base command, isolated from the user's config and data.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_omi-sync"));
        c.arg("--data-dir")
            .arg(self.data())
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("NO_COLOR", "1")
            .env_remove("OMI_SYNC_DATA_DIR")
            .env_remove("OMI_SYNC_CONFIG")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `omi-sync ARGS...` and collects its output.
    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.cmd().args(args).output().expect("run omi-sync");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Writes the demo backlog's files into `dir`.
pub fn write_demo(dir: &Path) -> Vec<PathBuf> {
    demo::FILES
        .iter()
        .map(|f| {
            let p = dir.join(f.name);
            std::fs::write(&p, f.bytes).unwrap();
            p
        })
        .collect()
}

/// The frames of a demo file.
pub fn demo_frames(index: usize) -> Vec<Vec<u8>> {
    wal::Frames::new(demo::FILES[index].bytes)
        .map(|(_, f)| f.to_vec())
        .collect()
}

/// A phone-app body from frames.
pub fn body(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    wal::write_body(&mut out, frames.iter().map(|f| &f[..])).unwrap();
    out
}
