//! Shared helpers for integration tests: running the real binary against a
//! throwaway data directory, building phone-app files and pendant storage
//! images from the demo, and reading back what the ledger holds of a ring.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use omi_sync::device::record::RECORD_BYTES;
use omi_sync::device::usb::Variant;
use omi_sync::device::usb::fixture::FixtureBuilder;
pub use omi_sync::device::usb::fixture::pack_records;
use omi_sync::device::{demo, wal};
use omi_sync::store::{Ledger, LedgerReader};
use omi_sync::timeline::SegmentStatus;

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

impl From<Output> for Run {
    /// A finished command's exit code and output.
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// The omi-sync under test: this build's, or the one `OMI_SYNC_BIN` names
/// (a release build, or a frozen copy while a long campaign runs beside a
/// rebuild).
pub fn binary() -> PathBuf {
    std::env::var_os("OMI_SYNC_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_omi-sync")))
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

    /// The sandbox's XDG state directory (`--auto` logs to `omi-sync/auto.log` in it).
    pub fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// A folder inside the sandbox for input files.
    pub fn inputs(&self) -> PathBuf {
        let p = self.dir.path().join("inputs");
        std::fs::create_dir_all(&p).unwrap();
        p
    }

    /// The base command, isolated from the user's config and data.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(binary());
        c.arg("--data-dir")
            .arg(self.data())
            .arg("--config")
            .arg(self.dir.path().join("config.toml"))
            .env("NO_COLOR", "1")
            // `--auto` keeps its log in the state directory: the sandbox's.
            .env("XDG_STATE_HOME", self.state())
            // Never touch the user's real keyring or API key.
            .env(
                "DBUS_SESSION_BUS_ADDRESS",
                "unix:path=/nonexistent/omi-sync-test",
            )
            .env_remove("OMI_API_KEY")
            .env_remove("OMI_API_URL")
            .env_remove("OMI_SYNC_DATA_DIR")
            .env_remove("OMI_SYNC_CONFIG")
            // Hermetic: no Whisper model unless a test gives one, so `--auto`
            // transcribes only in the tests that mean it to.
            .env_remove("OMI_SYNC_MODEL")
            .env_remove("RUST_LOG");
        c
    }

    /// Runs `omi-sync ARGS...` and collects its output.
    pub fn run(&self, args: &[&str]) -> Run {
        let out: Output = self.cmd().args(args).output().expect("run omi-sync");
        Run::from(out)
    }

    /// Runs `omi-sync ARGS...` but kills it and fails the test if it is
    /// still running after `limit` (for inputs that used to hang it).
    pub fn run_within(&self, args: &[&str], limit: std::time::Duration) -> Run {
        use std::process::Stdio;
        let child = self
            .cmd()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run omi-sync");
        // Drain both pipes as it runs, so a chatty run never blocks on them.
        let out = std::thread::spawn(move || {
            let mut child = child;
            let (mut o, mut e) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
            let err = std::thread::spawn(move || {
                let mut s = Vec::new();
                std::io::Read::read_to_end(&mut e, &mut s).ok();
                s
            });
            let mut stdout = Vec::new();
            std::io::Read::read_to_end(&mut o, &mut stdout).ok();
            let status = child.wait().expect("wait for omi-sync");
            Output {
                status,
                stdout,
                stderr: err.join().unwrap(),
            }
        });
        let t = std::time::Instant::now();
        while !out.is_finished() {
            if t.elapsed() > limit {
                // The child's pid is not ours any more: kill by command line.
                let _ = Command::new("pkill")
                    .arg("-KILL")
                    .arg("-f")
                    .arg(self.data().to_string_lossy().as_ref())
                    .status();
                panic!(
                    "`omi-sync {}` still running after {limit:?}",
                    args.join(" ")
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Run::from(out.join().unwrap())
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

/// When the speech image's first session starts (unix seconds).
pub const SPEECH_T0: u32 = 1_748_854_800;

/// A variant C storage image holding the demo's speech as the pendant
/// records it: session A (demo files 0-2, three minutes) from
/// [`SPEECH_T0`], then session B (files 3-4) an hour later. Returns the
/// image and the records in it (seqs from 0).
pub fn speech_image() -> (Vec<u8>, Vec<u8>) {
    let mut records = Vec::new();
    let session_a: Vec<Vec<u8>> = (0..3).flat_map(demo_frames).collect();
    records.extend(pack_records(&session_a, SPEECH_T0));
    let session_b: Vec<Vec<u8>> = (3..5).flat_map(demo_frames).collect();
    records.extend(pack_records(&session_b, SPEECH_T0 + 3600));
    let count = (records.len() / RECORD_BYTES) as u64;
    let mut b = FixtureBuilder::new(Variant::C, count / 36 + 8).expect("format image");
    for commit in records.chunks(36 * RECORD_BYTES) {
        b.writer().append(commit).expect("append records");
    }
    (b.finish(), records)
}

/// Every record the ledger holds for a pulled `device`, as (stream, seq,
/// bytes), in stream and seq order, read back from its captures.
pub fn ring_records(ledger: &LedgerReader, device: &str) -> Vec<(i64, u64, Vec<u8>)> {
    let mut out = Vec::new();
    for stream in ledger.ring_streams(device).expect("streams") {
        for span in ledger.ring_spans(stream).expect("spans") {
            let c = ledger.capture(span.capture_id).expect("capture");
            let bytes = ledger.capture_bytes(&c).expect("capture bytes");
            assert_eq!(bytes.len() as u64, (span.seqs.end - span.seqs.start) * 444);
            for (i, r) in bytes.chunks_exact(RECORD_BYTES).enumerate() {
                out.push((stream, span.seqs.start + i as u64, r.to_vec()));
            }
        }
    }
    out
}

/// Stands in for transcription, deterministically: every segment gets the
/// demo script's words for the utterance it overlaps most (speech), or none
/// (silent). Returns how many segments got text.
pub fn transcribe_from_script(data: &Path) -> usize {
    let ledger = Ledger::open(data).unwrap();
    let script = demo::transcript();
    let mut spoken = 0;
    for s in ledger.segments().unwrap() {
        let (a, b) = (
            s.found.start.0 as f64 / 1000.0,
            s.found.end.0 as f64 / 1000.0,
        );
        let best = script
            .iter()
            .map(|(st, en, text)| ((b.min(*en) - a.max(*st)).max(0.0), *text))
            .max_by(|x, y| x.0.total_cmp(&y.0));
        match best {
            Some((overlap, text)) if overlap > 0.0 => {
                ledger
                    .set_transcript(s.id, SegmentStatus::Speech, Some(text), None)
                    .unwrap();
                spoken += 1;
            }
            _ => ledger
                .set_transcript(s.id, SegmentStatus::Silent, None, None)
                .unwrap(),
        }
    }
    spoken
}

/// A ledger holding `n` transcribed conversations, ten minutes apart, each of
/// two short segments (a synthetic backlog for push tests). The segments point
/// into one real capture; their times are what matters here.
pub fn synthetic_backlog(data: &Path, n: usize) {
    synthetic_backlog_of(data, n, "omi");
}

/// [`synthetic_backlog`] recorded by `device`.
pub fn synthetic_backlog_of(data: &Path, n: usize, device: &str) {
    let mut ledger = Ledger::open(data).unwrap();
    omi_sync::store::synthetic::add_backlog(&mut ledger, device, n, 2, "synthetic").unwrap();
    for s in ledger.segments().unwrap() {
        let text = format!("Synthetic sentence {} of the backlog.", s.found.key);
        ledger
            .set_transcript(s.id, SegmentStatus::Speech, Some(&text), None)
            .unwrap();
    }
}

/// Fails if `text` holds any piece of ten characters or more of `secret`,
/// as text or as a hex dump (spaced or not): an HTTP trace that hex-dumps
/// a request cuts the key across lines, so a search for the whole key
/// would miss it.
pub fn assert_no_piece_of(what: &str, text: &str, secret: &str) {
    let lower = text.to_ascii_lowercase();
    let bytes = secret.as_bytes();
    for piece in bytes.windows(10.min(bytes.len())) {
        let plain = String::from_utf8_lossy(piece);
        assert!(
            !text.contains(plain.as_ref()),
            "{what} shows `{plain}` of the key"
        );
        let hex: Vec<String> = piece.iter().map(|b| format!("{b:02x}")).collect();
        for dump in [hex.join(""), hex.join(" ")] {
            assert!(
                !lower.contains(&dump),
                "{what} hex-dumps `{plain}` of the key"
            );
        }
    }
}
