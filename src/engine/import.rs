//! Importing the phone app's `.bin` files (single files or whole folders).
//!
//! Each file is read, its name checked with the backend's rules, its body
//! framed, and its bytes stored durably in the ledger (a second import of the
//! same bytes is a no-op). A bad file never stops the others: it is reported
//! with its path and the reason, and everything else is imported. A file
//! whose name has no usable time (missing, before 2024, in the future) is
//! still kept, with its time estimated from the file's modification time and
//! flagged, so no audio is lost; estimated audio is held back from the cloud.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ctx::Ctx;
use super::events::{Event, Stage, Unit};
use super::report::StageReport;
use crate::audio::{Codec, opus_packet_samples};
use crate::clock::{ClockTrust, UtcMillis};
use crate::device::capture::{self, Anomaly, CaptureFormat};
use crate::device::{wal, wal_read};
use crate::store::{Ledger, NewCapture, StoreError, Stored};
use crate::timeline::Domain;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOutcome {
    /// The file.
    pub path: PathBuf,
    /// `imported`, `already_imported` or `rejected`.
    pub status: FileStatus,
    /// The capture it became.
    pub capture_id: Option<i64>,
    /// Audio it holds, in seconds.
    pub duration_s: f64,
    /// When its audio starts.
    pub start: Option<String>,
    /// `wall` or `estimated`.
    pub clock: Option<Domain>,
    /// The codec.
    pub codec: Option<String>,
    /// Problems found (the file may still have been imported).
    pub anomalies: Vec<String>,
    /// Why it was not imported, if it was not.
    pub error: Option<String>,
}

/// Whether a file made it into the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileStatus {
    /// Stored now.
    Imported,
    /// The same bytes were stored before.
    AlreadyImported,
    /// Not stored; `error` says why.
    Rejected,
}

/// The result of an import.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImportReport {
    /// One entry per file considered, in order.
    pub files: Vec<FileOutcome>,
    /// Paths given that were neither files nor folders, or unreadable folders.
    pub errors: Vec<String>,
    /// Files in the folders that were skipped because they are not `.bin`.
    pub skipped_other_files: usize,
    /// What in the folders was passed over, and why: a link back to a folder
    /// already walked (a loop), a `.bin` name on something that is not a
    /// regular file (a FIFO, a socket).
    #[serde(default)]
    pub skipped: Vec<String>,
    /// The run was stopped before every file was imported.
    #[serde(default)]
    pub cancelled: bool,
}

impl ImportReport {
    /// Captures newly stored.
    pub fn new_captures(&self) -> Vec<i64> {
        self.files
            .iter()
            .filter(|f| f.status == FileStatus::Imported)
            .filter_map(|f| f.capture_id)
            .collect()
    }
}

/// Expands paths into the `.bin` files to import: files as given, folders
/// walked recursively (sorted, so imports are reproducible). Symbolic links
/// are followed, but a folder is walked once: a link back to one already
/// walked (a loop, or a second way to the same folder) is noted in
/// [`ImportReport::skipped`]. In folders, `.bin` names on anything but a
/// regular file are noted there too, never opened.
pub fn collect_files(paths: &[PathBuf], report: &mut ImportReport) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut walked = Walked::default();
    for p in paths {
        match std::fs::metadata(p) {
            Ok(m) if m.is_dir() => walk(p, &m, &mut walked, &mut out, report),
            Ok(_) => out.push(p.clone()),
            // A dangling link or a missing file: let import report it per file.
            Err(_) if p.extension().is_some_and(|e| e == "bin") => out.push(p.clone()),
            Err(e) => report.errors.push(format!("{}: {e}", p.display())),
        }
    }
    out
}

/// The folders walked so far, by identity (device and inode), with the path
/// each was first reached by.
#[derive(Default)]
struct Walked(std::collections::HashMap<(u64, u64), PathBuf>);

impl Walked {
    /// Records `dir`; if it was walked before, returns the path it was walked as.
    fn first_visit(&mut self, dir: &Path, meta: &std::fs::Metadata) -> Result<(), PathBuf> {
        use std::os::unix::fs::MetadataExt;
        match self.0.entry((meta.dev(), meta.ino())) {
            std::collections::hash_map::Entry::Occupied(e) => Err(e.get().clone()),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(dir.to_path_buf());
                Ok(())
            }
        }
    }
}

fn walk(
    dir: &Path,
    meta: &std::fs::Metadata,
    walked: &mut Walked,
    out: &mut Vec<PathBuf>,
    report: &mut ImportReport,
) {
    if let Err(first) = walked.first_visit(dir, meta) {
        let why = if dir.starts_with(&first) {
            "a link back to a folder it is inside (a loop)"
        } else {
            "the same folder reached a second way"
        };
        report.skipped.push(format!(
            "{}: {why}, {}; walked once",
            dir.display(),
            first.display()
        ));
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            report
                .errors
                .push(format!("cannot read folder {}: {e}", dir.display()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let is_bin = p.extension().is_some_and(|e| e == "bin");
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => walk(&p, &m, walked, out, report),
            Ok(m) if is_bin && !m.is_file() => report.skipped.push(format!(
                "{}: {}, not a file: not opened",
                p.display(),
                crate::fsnode::kind(m.file_type())
            )),
            // A dangling link named .bin is reported by import, per file.
            _ if is_bin => out.push(p),
            _ => report.skipped_other_files += 1,
        }
    }
}

/// Imports the files and folders in `paths`. Per-file problems are in the
/// report (not emitted as events, so a frontend shows each once).
pub fn import_paths(
    ledger: &mut Ledger,
    paths: &[PathBuf],
    ctx: &Ctx,
) -> Result<ImportReport, StoreError> {
    let started = std::time::Instant::now();
    let mut report = ImportReport::default();
    let files = collect_files(paths, &mut report);
    let now = UtcMillis::now();
    ctx.emit(Event::StageStarted {
        stage: Stage::Import,
        total: files.len() as u64,
        unit: Unit::Files,
    });
    for (i, path) in files.iter().enumerate() {
        if ctx.cancel().is_cancelled() {
            report.cancelled = true;
            break;
        }
        let outcome = import_file(ledger, path, now)?;
        report.files.push(outcome);
        ctx.emit(Event::Progress {
            stage: Stage::Import,
            done: i as u64 + 1,
            total: files.len() as u64,
        });
    }
    ctx.stage_finished(started, StageReport::Import(report.clone()));
    Ok(report)
}

fn rejected(path: &Path, error: String) -> FileOutcome {
    FileOutcome {
        path: path.to_path_buf(),
        status: FileStatus::Rejected,
        capture_id: None,
        duration_s: 0.0,
        start: None,
        clock: None,
        codec: None,
        anomalies: Vec::new(),
        error: Some(error),
    }
}

/// Imports one file. Problems with the file are in the outcome; only a
/// failure of the ledger itself (disk full, database broken) is an error.
pub fn import_file(
    ledger: &mut Ledger,
    path: &Path,
    now: UtcMillis,
) -> Result<FileOutcome, StoreError> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let prepared = prepare(path, file_name, now);
    store_prepared(ledger, path, &path.display().to_string(), prepared)
}

/// Imports a phone-app file held in memory (the built-in demo). `origin`
/// names where it came from; `captured_at` is when it was written.
pub fn import_bytes(
    ledger: &mut Ledger,
    file_name: &str,
    bytes: Vec<u8>,
    origin: &str,
    captured_at: UtcMillis,
    now: UtcMillis,
) -> Result<FileOutcome, StoreError> {
    let prepared = check(bytes, file_name, origin, captured_at, now);
    store_prepared(ledger, Path::new(file_name), origin, prepared)
}

fn store_prepared(
    ledger: &mut Ledger,
    path: &Path,
    origin: &str,
    prepared: Result<Prepared, String>,
) -> Result<FileOutcome, StoreError> {
    let Prepared {
        bytes,
        meta,
        duration_s,
        start,
        anomalies,
    } = match prepared {
        Ok(p) => p,
        Err(error) => {
            let anomaly = Anomaly {
                offset: None,
                message: format!("not imported: {error}"),
            };
            ledger.add_anomaly(None, origin, &anomaly)?;
            return Ok(rejected(path, error));
        }
    };
    let (stored, row) = ledger.add_capture(&bytes, &meta)?;
    let mut anomalies = anomalies;
    if stored == Stored::New {
        for a in &anomalies {
            ledger.add_anomaly(Some(row.id), origin, a)?;
        }
    } else if row.meta.file_name != meta.file_name {
        // The same audio under another name: say which one the ledger keeps.
        anomalies.push(Anomaly {
            offset: None,
            message: format!(
                "the same bytes were imported before as {} (from {}); that file's time is kept",
                row.meta.file_name, row.meta.origin
            ),
        });
    }
    // What the ledger holds is what counts: the earlier file's time.
    let (start, clock) = match stored {
        Stored::New => (start, meta.clock),
        Stored::AlreadyImported => (
            wal_start(&row.meta, (duration_s * 1000.0).round() as i64),
            row.meta.clock,
        ),
    };
    Ok(FileOutcome {
        path: path.to_path_buf(),
        status: match stored {
            Stored::New => FileStatus::Imported,
            Stored::AlreadyImported => FileStatus::AlreadyImported,
        },
        capture_id: Some(row.id),
        duration_s,
        start: Some(start.to_rfc3339()),
        clock: Some(Domain::of(clock)),
        codec: Some(meta.codec.name().to_string()),
        anomalies: anomalies.iter().map(|a| a.to_string()).collect(),
        error: None,
    })
}

/// A phone-app file as `import` would take it, checked but not stored
/// (`diagnose`): nothing is written anywhere.
#[derive(Debug, Clone)]
pub struct Inspected {
    /// What the capture would be.
    pub meta: NewCapture,
    /// Audio in it, seconds.
    pub duration_s: f64,
    /// Where its audio starts.
    pub start: UtcMillis,
    /// SHA-256 of the bytes that would be stored (equal ones are duplicates).
    pub sha256: String,
    /// Everything odd, located.
    pub anomalies: Vec<Anomaly>,
}

/// Reads and checks the phone-app file at `path` exactly as [`import_file`]
/// does, storing nothing; the error says why it would not be imported.
pub fn inspect_file(path: &Path, now: UtcMillis) -> Result<Inspected, String> {
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let p = prepare(path, file_name, now)?;
    Ok(Inspected {
        sha256: crate::store::files::sha256_hex(&p.bytes),
        meta: p.meta,
        duration_s: p.duration_s,
        start: p.start,
        anomalies: p.anomalies,
    })
}

struct Prepared {
    bytes: Vec<u8>,
    meta: NewCapture,
    duration_s: f64,
    start: UtcMillis,
    anomalies: Vec<Anomaly>,
}

/// Reads and checks a file: everything short of storing it. The file is
/// opened without blocking and read as a stream (see
/// [`wal_read`](crate::device::wal_read)): a FIFO is refused, and a huge
/// sparse file costs what its frames cost.
fn prepare(path: &Path, file_name: &str, now: UtcMillis) -> Result<Prepared, String> {
    if !file_name.ends_with(".bin") {
        return Err("not a phone-app backlog file (expected a name ending in .bin)".into());
    }
    let cannot_read = |e: std::io::Error| format!("cannot read the file: {e}");
    let (mut file, ft) = crate::fsnode::open_nonblocking(path, false).map_err(cannot_read)?;
    if !ft.is_file() {
        return Err(format!(
            "it is {}, not a file: nothing was read from it",
            crate::fsnode::kind(ft)
        ));
    }
    let body = wal_read::read_body(&mut file).map_err(cannot_read)?;
    let captured_at = file
        .metadata()
        .ok()
        .and_then(|m| UtcMillis::modified_of(&m))
        .unwrap_or(now);
    if let (true, Some(left)) = (body.bytes.is_empty(), body.left_out)
        && left.zeros
    {
        return Err(format!(
            "no audio frames in the file: its {} bytes are all zeros",
            left.len
        ));
    }
    let mut prepared = check(
        body.bytes,
        file_name,
        &path.display().to_string(),
        captured_at,
        now,
    )?;
    if let Some(left) = body.left_out {
        prepared.anomalies.push(Anomaly {
            offset: Some(left.offset),
            message: left.to_string(),
        });
    }
    Ok(prepared)
}

/// Checks the bytes of a phone-app file named `file_name`. `captured_at` is
/// when it was written (the basis of an estimated time).
fn check(
    bytes: Vec<u8>,
    file_name: &str,
    origin: &str,
    captured_at: UtcMillis,
    now: UtcMillis,
) -> Result<Prepared, String> {
    if bytes.is_empty() {
        return Err("the file is empty (0 bytes): no audio to import".into());
    }
    let mut anomalies = Vec::new();
    let (mut codec, device, notes) =
        wal::parse_codec_and_device(file_name).map_err(|e| e.to_string())?;
    let lenient = !notes.is_empty();
    anomalies.extend(notes.into_iter().map(|message| Anomaly {
        offset: None,
        message,
    }));
    if let (true, Codec::Opus { frame_samples }) = (lenient, codec) {
        // The name does not say the frame size: the packets do.
        if let Some(sniffed) = wal::Frames::new(&bytes)
            .next()
            .and_then(|(_, f)| opus_packet_samples(f))
            && sniffed != frame_samples
        {
            anomalies.push(Anomaly {
                offset: Some(4),
                message: format!(
                    "the Opus packets hold {} ms frames; decoding them as such (the name implies {} ms)",
                    sniffed / 16,
                    frame_samples / 16
                ),
            });
            codec = Codec::Opus {
                frame_samples: sniffed,
            };
        }
    }
    let name_time = wal::parse_timestamp(file_name, now);
    let probe = capture::wal_layout(&bytes, codec, UtcMillis(0), ClockTrust::Wall);
    if probe.frames() == 0 {
        let why = probe
            .anomalies
            .first()
            .map(|a| format!(": {a}"))
            .unwrap_or_default();
        return Err(format!("no audio frames in the file{why}"));
    }
    anomalies.extend(probe.anomalies.iter().cloned());
    let duration_ms = capture::samples_to_ms(probe.samples());
    let (name_start, clock, start) = match name_time {
        Ok(t) => (Some(t), ClockTrust::Wall, t),
        Err(e) => {
            let start = estimated_start(captured_at, duration_ms);
            anomalies.push(Anomaly {
                offset: None,
                message: format!(
                    "{e}; kept with an estimated time ({}, from the file's modification time), \
                     held back from the cloud until reviewed",
                    start.to_rfc3339()
                ),
            });
            (None, ClockTrust::Unknown, start)
        }
    };
    Ok(Prepared {
        bytes,
        meta: NewCapture {
            format: CaptureFormat::Wal,
            codec,
            device,
            origin: origin.to_string(),
            file_name: file_name.to_string(),
            name_start,
            clock,
            first_seq: None,
            ring_id: None,
            captured_at,
        },
        duration_s: duration_ms as f64 / 1000.0,
        start,
        anomalies,
    })
}

/// The estimated start of a file without a usable time: the phone writes a
/// file as its chunk ends, so it began one duration before it was written.
pub fn estimated_start(captured_at: UtcMillis, duration_ms: i64) -> UtcMillis {
    captured_at.plus_ms(-duration_ms)
}

/// The start of a WAL capture as recorded: its name's time, or the estimate.
pub fn wal_start(meta: &NewCapture, duration_ms: i64) -> UtcMillis {
    meta.name_start
        .unwrap_or_else(|| estimated_start(meta.captured_at, duration_ms))
}
