//! Critical sections of a data directory, one run at a time each: an
//! exclusive lock on `<data>/lock-<section>`.
//!
//! Only what must never run twice at once is locked, and only while it runs:
//! a pull from a pendant (its ADVANCEs must follow one durable copy) and a
//! push send (one outbox, one rate budget). Importing, finding speech and
//! transcribing need no lock (the ledger's transactions and its work claims
//! keep two runs from doing the same work twice), so a long TUI session and
//! a timer's `--auto` never block each other for more than a section. The
//! OS releases a lock when its process ends, however it ends (a `kill -9`
//! included), so a stale lock never blocks the next run. [`holders`] says
//! who holds which lock without taking any (it reads `/proc/locks`).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// A part of the work that one run at a time may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Section {
    /// Pulling from a pendant or a card (ADVANCE follows the durable copy).
    Pull,
    /// Sending the outbox to the cloud.
    Push,
    /// Deleting local audio the cloud has (the janitor).
    Cleanup,
}

impl Section {
    /// Every section.
    pub const ALL: [Section; 3] = [Section::Pull, Section::Push, Section::Cleanup];

    /// Its name, as in its lock file.
    pub fn as_str(self) -> &'static str {
        match self {
            Section::Pull => "pull",
            Section::Push => "push",
            Section::Cleanup => "cleanup",
        }
    }

    /// Its lock file in `data_dir`.
    pub fn lock_file(self, data_dir: &Path) -> PathBuf {
        data_dir.join(format!("lock-{}", self.as_str()))
    }
}

/// Held while a run is inside a section.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
    path: PathBuf,
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another run holds it.
    #[error("another omi-sync run is {doing} in {dir} ({holder}); try again when it has finished")]
    Busy {
        /// The data directory.
        dir: PathBuf,
        /// What the other run is doing (the section, in words).
        doing: &'static str,
        /// Who holds it, as it wrote itself into the lock file.
        holder: String,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl RunLock {
    /// Takes the lock of `section` on `data_dir` without waiting.
    pub fn acquire(data_dir: &Path, section: Section) -> Result<RunLock, LockError> {
        let path = section.lock_file(data_dir);
        let io = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        if !data_dir.exists() {
            let dir = data_dir.to_path_buf();
            super::files::create_private_dir(data_dir).map_err(|e| LockError::Io {
                path: dir,
                source: std::io::Error::other(e.to_string()),
            })?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                return Err(LockError::Busy {
                    dir: data_dir.to_path_buf(),
                    doing: match section {
                        Section::Pull => "pulling from a pendant",
                        Section::Push => "pushing to the cloud",
                        Section::Cleanup => "freeing local audio",
                    },
                    holder: if holder.trim().is_empty() {
                        "another process".into()
                    } else {
                        holder.trim().to_string()
                    },
                });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        // Say who holds it, for the message another run will print.
        let _ = file.set_len(0);
        let _ = file.seek(SeekFrom::Start(0));
        let _ = write!(
            file,
            "pid {} since {}",
            std::process::id(),
            crate::clock::UtcMillis::now()
        );
        let _ = file.flush();
        Ok(RunLock { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A section held by some process, as [`holders`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The section.
    pub section: Section,
    /// The holding process.
    pub pid: u32,
    /// What it wrote into the lock file (`pid N since T`).
    pub note: String,
}

/// Who holds which section of `data_dir` right now, found without taking
/// or touching any lock: the kernel's table of file locks (`/proc/locks`)
/// is matched against the lock files' inodes. Empty where that table does
/// not exist (not Linux).
pub fn holders(data_dir: &Path) -> Vec<Holder> {
    let Ok(table) = std::fs::read_to_string("/proc/locks") else {
        return Vec::new();
    };
    Section::ALL
        .into_iter()
        .filter_map(|section| {
            let path = section.lock_file(data_dir);
            let inode = inode_of(&path)?;
            let pid = holder_pid(&table, inode)?;
            let note = std::fs::read_to_string(&path).unwrap_or_default();
            Some(Holder {
                section,
                pid,
                note: note.trim().to_string(),
            })
        })
        .collect()
}

#[cfg(unix)]
fn inode_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

#[cfg(not(unix))]
fn inode_of(_path: &Path) -> Option<u64> {
    None
}

/// The pid holding a lock on `inode`, from `/proc/locks` lines like
/// `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF`.
fn holder_pid(table: &str, inode: u64) -> Option<u32> {
    table.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // Blocked waiters are marked `->` and shift the fields.
        let f = if fields.get(1) == Some(&"->") {
            &fields[2..]
        } else {
            &fields[1..]
        };
        let (pid, dev_inode) = (f.get(3)?, f.get(4)?);
        let ino = dev_inode.rsplit(':').next()?.parse::<u64>().ok()?;
        (ino == inode).then(|| pid.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path(), Section::Push).unwrap();
        let e = RunLock::acquire(dir.path(), Section::Push).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("pushing"), "{text}");
        // Another section is free.
        let _pull = RunLock::acquire(dir.path(), Section::Pull).unwrap();
        drop(first);
        RunLock::acquire(dir.path(), Section::Push).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn holders_are_found_without_taking_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        assert!(holders(dir.path()).is_empty());
        let lock = RunLock::acquire(dir.path(), Section::Pull).unwrap();
        let h = holders(dir.path());
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h[0].section, Section::Pull);
        assert_eq!(h[0].pid, std::process::id());
        assert!(h[0].note.starts_with("pid "), "{h:?}");
        drop(lock);
        assert!(holders(dir.path()).is_empty(), "released");
    }

    #[test]
    fn proc_locks_lines_parse_with_and_without_waiters() {
        let table = "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF\n\
                     2: POSIX  ADVISORY  READ 99 00:2a:77 0 EOF\n\
                     2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:555 0 EOF\n";
        assert_eq!(holder_pid(table, 1_234_567), Some(4242));
        assert_eq!(holder_pid(table, 77), Some(99));
        assert_eq!(holder_pid(table, 555), Some(5151));
        assert_eq!(holder_pid(table, 1), None);
    }
}
