//! The ledger: one SQLite database and the raw capture files beside it.
//!
//! Every stage of the pipeline reads its input from the ledger and writes its
//! output back, so any stage can be re-run, resumed after a crash, or
//! inspected. The database runs in WAL mode with versioned migrations
//! ([`migrations`]); raw bytes are stored content-addressed and durably
//! ([`files`]) before a row refers to them. Times are absolute UTC
//! milliseconds.
//!
//! The API is split by what it owns: [`captures`](Ledger::add_capture)
//! (imported bytes, their runs and anomalies), [`segments`](Ledger::segments)
//! (speech found by VAD and its transcripts), the edit log
//! ([`record_edit`](Ledger::record_edit), undo, redo), the outbox of
//! conversations for the cloud ([`outbox`](Ledger::outbox)), small
//! key/value state ([`meta`](Ledger::meta)), what was pulled from
//! pendants' rings ([`ring`]: streams, resume points, duplicates), what
//! the hallucination guards dropped from transcripts ([`drops`]), and what
//! each pendant last said about itself ([`device_reports`]).

mod captures;
pub mod cards;
mod carry;
pub mod claims;
pub mod device_reports;
pub mod drops;
mod edits;
pub mod files;
mod lock;
pub mod migrations;
mod outbox;
pub mod private;
pub mod rebuild;
pub mod retention;
pub mod ring;
mod segments;
pub mod synthetic;
#[cfg(test)]
pub(crate) mod testdata;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension};

pub use captures::{AnomalyRow, CaptureRow, NewCapture, RunRow, Stored};
pub use claims::{CLAIM_TTL, Claim, WorkKind, new_holder};
pub use device_reports::{DeviceReport, NewestRecord, Skew};
pub use drops::{DropRow, NewDrop};
pub use edits::{EditAction, EditKind, EditState};
pub use lock::{Holder, LockError, RunLock, Section, holders};
pub use outbox::{HeldFor, NewPush, OutboxRow, OutboxState};
pub use retention::AudioState;
pub use ring::{RingBatch, RingSpan, RingStored};
pub use segments::{NewSegment, SegmentRow, WordTiming};

/// The database file inside the data directory.
pub const LEDGER_FILE: &str = "ledger.sqlite3";

/// Why the ledger could not do something.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("ledger {context}: {source}")]
    Sql {
        /// What was being done.
        context: String,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// A capture file failed.
    #[error(transparent)]
    File(#[from] files::FileError),
    /// The schema could not be migrated.
    #[error(transparent)]
    Migration(#[from] migrations::MigrationError),
    /// A row that should exist does not.
    #[error("{0}")]
    NotFound(String),
    /// A stored value is not what this build understands.
    #[error("ledger holds an unexpected value: {0}")]
    Corrupt(String),
    /// The ledger is missing, empty or damaged while captured audio is in
    /// the data directory: starting a new, empty ledger over it would lose
    /// every segment, transcript, edit and push record without a word.
    #[error(
        "the ledger {} is {why}, but {captures} captured audio files are in {}: \
         refusing to start a new, empty ledger over them",
        path.display(),
        path.parent().map_or_else(String::new, |d| d.join("captures").display().to_string())
    )]
    LedgerLost {
        /// The ledger file.
        path: PathBuf,
        /// What is wrong with it: "missing", "empty (0 bytes)", "damaged (…)".
        why: String,
        /// How many capture files are there.
        captures: usize,
    },
}

/// [`StoreError::LedgerLost`] when captures are in the data directory and
/// the ledger at `path` is missing or empty (or `why`, when the caller found
/// something else wrong with it).
fn lost_check(path: &Path, why: Option<&str>) -> Result<(), StoreError> {
    let why = match (why, std::fs::metadata(path)) {
        (Some(why), _) => why.to_string(),
        (None, Err(_)) => "missing".to_string(),
        (None, Ok(m)) if m.len() == 0 => "empty (0 bytes)".to_string(),
        (None, Ok(_)) => return Ok(()),
    };
    let data_dir = path.parent().unwrap_or(Path::new("."));
    match files::stored_hashes(data_dir).len() {
        0 => Ok(()),
        captures => Err(StoreError::LedgerLost {
            path: path.to_path_buf(),
            why,
            captures,
        }),
    }
}

/// An error opening the ledger, as [`StoreError::LedgerLost`] when SQLite
/// says the file is not a database (or a damaged one) and captures are there.
fn damaged(path: &Path, e: StoreError) -> StoreError {
    let code = match &e {
        StoreError::Sql {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        }
        | StoreError::Migration(migrations::MigrationError::Sql {
            source: rusqlite::Error::SqliteFailure(f, _),
            ..
        }) => Some(f.code),
        _ => None,
    };
    match code {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            lost_check(path, Some(&format!("damaged ({e})")))
                .err()
                .unwrap_or(e)
        }
        _ => e,
    }
}

/// SQLite's own check of the ledger's pages (`PRAGMA quick_check`), run the
/// first time a process opens each ledger file: a garbled page is found
/// before anything is read from it or written over it. Damaged with captures
/// there is [`StoreError::LedgerLost`] (rebuild from them); damaged without
/// is [`StoreError::Corrupt`]. The file is left as it is either way.
fn integrity_check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    once_per_process("integrity check", path, || check_integrity(conn, path))
}

fn check_integrity(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let found = conn
        .query_row("PRAGMA quick_check(3)", [], |r| r.get::<_, String>(0))
        .map_err(|e| StoreError::Sql {
            context: format!("cannot check {}", path.display()),
            source: e,
        })
        .map_err(|e| damaged(path, e))?;
    if found != "ok" {
        let why = format!("damaged (SQLite's integrity check: {})", found.trim());
        lost_check(path, Some(&why))?;
        return Err(StoreError::Corrupt(format!(
            "the ledger {} is {why}; it was left as it is: restore it from a backup, or move it aside to start anew",
            path.display()
        )));
    }
    Ok(())
}

/// Runs `work` (named `what`) for `path` the first time this process asks,
/// and again only if it failed: the checks and the upkeep that walk a whole
/// ledger or data directory are done once per process, not on every open
/// (the TUI opens the ledger on every edit).
fn once_per_process<E>(
    what: &'static str,
    path: &Path,
    work: impl FnOnce() -> Result<(), E>,
) -> Result<(), E> {
    static DONE: std::sync::Mutex<Vec<(&'static str, PathBuf)>> = std::sync::Mutex::new(Vec::new());
    let key = (
        what,
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
    );
    if DONE.lock().map(|d| d.contains(&key)).unwrap_or(false) {
        return Ok(());
    }
    work()?;
    if let Ok(mut done) = DONE.lock() {
        done.push(key);
    }
    Ok(())
}

/// Wraps a rusqlite error with what was being done.
pub(crate) trait SqlContext<T> {
    /// Adds context to an SQLite error.
    fn ctx(self, context: &str) -> Result<T, StoreError>;
}

impl<T> SqlContext<T> for Result<T, rusqlite::Error> {
    fn ctx(self, context: &str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Sql {
            context: context.to_string(),
            source,
        })
    }
}

/// A ledger opened for reading only: it has no method that writes, and
/// [`LedgerReader::open`] never creates, migrates or locks anything. The
/// read-write [`Ledger`] is built on it (it derefs to one), so every query is
/// written once and both have it.
pub struct LedgerReader {
    conn: Connection,
    data_dir: PathBuf,
}

/// An open ledger, for reading and writing.
pub struct Ledger {
    reader: LedgerReader,
}

impl std::ops::Deref for Ledger {
    type Target = LedgerReader;

    fn deref(&self) -> &LedgerReader {
        &self.reader
    }
}

impl std::ops::DerefMut for Ledger {
    fn deref_mut(&mut self) -> &mut LedgerReader {
        &mut self.reader
    }
}

impl Ledger {
    /// Opens (creating if needed) the ledger in `data_dir` and migrates it.
    ///
    /// A ledger that is missing, empty or damaged while captures are in the
    /// data directory is [`StoreError::LedgerLost`], never silently
    /// replaced: [`Ledger::rebuild`] makes a new one from the captures.
    pub fn open(data_dir: &Path) -> Result<Ledger, StoreError> {
        let path = data_dir.join(LEDGER_FILE);
        lost_check(&path, None)?;
        let ledger = Self::open_as_is(data_dir, false).map_err(|e| damaged(&path, e))?;
        ledger.card_every_capture()?;
        Ok(ledger)
    }

    /// [`Ledger::open`] without asking whether a missing or empty ledger
    /// was lost; with `new_over_captures`, a ledger with no schema yet is
    /// made even though captures are there (a rebuild).
    fn open_as_is(data_dir: &Path, new_over_captures: bool) -> Result<Ledger, StoreError> {
        files::create_private_dir(data_dir)?;
        let path = data_dir.join(LEDGER_FILE);
        private::precreate_file(&path).map_err(|source| files::FileError::Io {
            action: "cannot create",
            path: path.clone(),
            source,
        })?;
        // Both walk every capture: once per process is enough (new files
        // are made private, and a live writer's temp file is never stale).
        let _ = once_per_process("upkeep", data_dir, || {
            private::tighten(data_dir, LEDGER_FILE);
            for stale in files::remove_stale_temp_files(data_dir) {
                tracing::info!(
                    "removed {}, left by a run that was stopped",
                    stale.display()
                );
            }
            Ok::<(), std::convert::Infallible>(())
        });
        let mut conn = Connection::open(&path).ctx(&format!("cannot open {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .ctx("cannot set busy timeout")?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .ctx("cannot enable WAL mode")?;
        conn.pragma_update(None, "synchronous", "FULL")
            .ctx("cannot set synchronous")?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .ctx("cannot enable foreign keys")?;
        let version = conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .ctx(&format!("cannot read {}", path.display()))?;
        if version == 0 && !new_over_captures {
            // No schema yet: fine for a new data directory, not for one
            // that holds captures.
            lost_check(&path, Some("empty (it has no tables)"))?;
        }
        if !new_over_captures {
            integrity_check(&conn, &path)?;
        }
        migrations::migrate(&mut conn)?;
        Ok(Ledger {
            reader: LedgerReader {
                conn,
                data_dir: data_dir.to_path_buf(),
            },
        })
    }

    /// Sets a small piece of persisted state.
    pub fn set_meta(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )
            .ctx("cannot write state")?;
        Ok(())
    }
}

impl LedgerReader {
    /// Opens an existing ledger read-only, as it is: nothing is created,
    /// migrated or written, and no lock is taken beyond what SQLite needs to
    /// read a database other processes may be writing (the TUI, a snapshot).
    pub fn open(data_dir: &Path) -> Result<LedgerReader, StoreError> {
        let path = data_dir.join(LEDGER_FILE);
        lost_check(&path, None)?;
        if !path.is_file() {
            return Err(StoreError::NotFound(format!(
                "no ledger at {} (nothing has been imported into this data directory)",
                path.display()
            )));
        }
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ctx(&format!("cannot open {} read-only", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .ctx("cannot set busy timeout")?;
        let found: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .ctx(&format!("cannot read {}", path.display()))
            .map_err(|e| damaged(&path, e))?;
        integrity_check(&conn, &path)?;
        if found as usize > migrations::CURRENT_VERSION {
            return Err(migrations::MigrationError::TooNew {
                found: found as usize,
            }
            .into());
        }
        Ok(LedgerReader {
            conn,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// The data directory this ledger lives in.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The schema version of the database.
    pub fn schema_version(&self) -> Result<usize, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))
            .map(|v| v as usize)
            .ctx("cannot read the schema version")
    }

    /// A small piece of persisted state by key.
    pub fn meta(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .ctx("cannot read state")
    }

    /// A number that changes whenever another connection (another process,
    /// or a [`Ledger`] in this one) commits a change to the database: the
    /// cheap way to know a snapshot is stale.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .pragma_query_value(None, "data_version", |r| r.get(0))
            .ctx("cannot read the data version")
    }

    /// Runs `f` inside one read transaction, so everything it reads is one
    /// consistent moment of the ledger even while another process writes.
    pub fn in_one_read<T>(
        &self,
        f: impl FnOnce(&LedgerReader) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .ctx("cannot begin a read")?;
        let out = f(self);
        let _ = self.conn.execute_batch("COMMIT");
        out
    }
}

/// A copy of a data directory's ledger, opened for reading (`diagnose`).
///
/// The database and its WAL are copied into a private temporary directory
/// and the copy is brought up to this build's schema there, so a data
/// directory from a user's machine (read-only, from an older omi-sync, with
/// an un-checkpointed WAL) is read as it is while not one byte of it changes.
pub struct LedgerCopy {
    reader: LedgerReader,
    _dir: tempfile::TempDir,
}

impl std::ops::Deref for LedgerCopy {
    type Target = LedgerReader;

    fn deref(&self) -> &LedgerReader {
        &self.reader
    }
}

impl LedgerCopy {
    /// Copies and opens the ledger of `data_dir` (see the type's docs).
    pub fn open(data_dir: &Path) -> Result<LedgerCopy, StoreError> {
        let path = data_dir.join(LEDGER_FILE);
        lost_check(&path, None)?;
        if !path.is_file() {
            return Err(StoreError::NotFound(format!(
                "no ledger at {} (nothing has been imported into this data directory)",
                path.display()
            )));
        }
        let dir = tempfile::Builder::new()
            .prefix("omi-sync-ledger-copy")
            .tempdir()
            .map_err(|source| {
                StoreError::File(files::FileError::Io {
                    action: "create a temporary copy of",
                    path: path.clone(),
                    source,
                })
            })?;
        for suffix in ["", "-wal"] {
            let from = data_dir.join(format!("{LEDGER_FILE}{suffix}"));
            if from.is_file() {
                let to = dir.path().join(format!("{LEDGER_FILE}{suffix}"));
                std::fs::copy(&from, &to).map_err(|source| {
                    StoreError::File(files::FileError::Io {
                        action: "copy",
                        path: from.clone(),
                        source,
                    })
                })?;
            }
        }
        let copy = dir.path().join(LEDGER_FILE);
        let mut conn =
            Connection::open(&copy).ctx(&format!("cannot open a copy of {}", path.display()))?;
        migrations::migrate(&mut conn)?;
        Ok(LedgerCopy {
            reader: LedgerReader {
                conn,
                data_dir: data_dir.to_path_buf(),
            },
            _dir: dir,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A ledger in a temporary directory holding one small PCM capture.
    pub(crate) fn ledger_with_capture() -> (tempfile::TempDir, Ledger, i64) {
        let dir = tempfile::tempdir().unwrap();
        let mut l = Ledger::open(dir.path()).unwrap();
        let meta = NewCapture {
            format: crate::device::capture::CaptureFormat::Wal,
            codec: crate::audio::Codec::Pcm16 {
                sample_rate: 16_000,
            },
            device: "omi".into(),
            origin: "test".into(),
            file_name: "t.bin".into(),
            name_start: Some(crate::clock::UtcMillis(0)),
            clock: crate::clock::ClockTrust::Wall,
            first_seq: None,
            ring_id: None,
            captured_at: crate::clock::UtcMillis(0),
        };
        let (_, cap) = l.add_capture(b"\x02\x00\x00\x00ab", &meta).unwrap();
        (dir, l, cap.id)
    }

    #[test]
    fn opens_creates_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        {
            let l = Ledger::open(&data).unwrap();
            l.set_meta("k", "v1").unwrap();
            l.set_meta("k", "v2").unwrap();
        }
        let l = Ledger::open(&data).unwrap();
        assert_eq!(l.meta("k").unwrap().as_deref(), Some("v2"));
        assert_eq!(l.meta("missing").unwrap(), None);
        let mode: String = l
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
    }

    #[test]
    fn read_only_refuses_to_create_and_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        assert!(LedgerReader::open(dir.path()).is_err());
        assert!(!dir.path().join(LEDGER_FILE).exists());
        Ledger::open(dir.path()).unwrap();
        let ro = LedgerReader::open(dir.path()).unwrap();
        // A reader has no method that writes; its connection refuses SQL that does.
        assert!(
            ro.conn
                .execute("INSERT INTO meta VALUES ('k', 'v')", [])
                .is_err()
        );
    }

    #[cfg(unix)]
    #[test]
    fn data_dir_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        Ledger::open(&data).unwrap();
        let mode = std::fs::metadata(&data).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
