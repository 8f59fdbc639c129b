//! Raw capture files on disk: content-addressed, written atomically and durably.
//!
//! Imported or pulled bytes are copied into `<data dir>/captures/xx/<sha256>`
//! by writing a temporary file in the same directory, fsyncing it, renaming
//! it into place and fsyncing the directory. Only then is the capture recorded
//! in the ledger, so a crash at any point leaves either nothing or a complete
//! file (which a re-run adopts by its hash), never a torn one.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Where a capture with this hash lives, relative to the data directory.
pub fn relative_path(sha256: &str) -> PathBuf {
    let shard = sha256.get(..2).unwrap_or("00");
    PathBuf::from("captures").join(shard).join(sha256)
}

/// Why a capture file could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A filesystem call failed.
    #[error("{action} {path}: {source}{hint}", hint = crate::disk::full_hint(source))]
    Io {
        /// What was being done.
        action: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
    /// A stored file no longer matches the hash it is stored under.
    #[error("capture file {path} is damaged: its SHA-256 is {found}, expected {expected}")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What it should hash to.
        expected: String,
        /// What it hashes to.
        found: String,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> FileError + 'a {
    move |source| FileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Creates a directory (and parents) readable only by the user: it holds
/// recordings of people's conversations.
pub fn create_private_dir(dir: &Path) -> Result<(), FileError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(io_err("cannot create directory", dir))
}

/// Durably stores `bytes` under the data directory by content; returns the
/// hash and the path relative to `data_dir`. Storing the same bytes again is
/// cheap and leaves the existing file alone.
pub fn store(data_dir: &Path, bytes: &[u8]) -> Result<(String, PathBuf), FileError> {
    store_hashed(data_dir, bytes, sha256_hex(bytes))
}

/// [`store`] for bytes whose hash the caller already computed
/// ([`sha256_hex`] of exactly these bytes), so large captures are hashed once.
pub fn store_hashed(
    data_dir: &Path,
    bytes: &[u8],
    sha: String,
) -> Result<(String, PathBuf), FileError> {
    let rel = relative_path(&sha);
    let path = data_dir.join(&rel);
    if let Ok(meta) = fs::metadata(&path)
        && meta.len() == bytes.len() as u64
    {
        return Ok((sha, rel));
    }
    let dir = path.parent().expect("capture paths have a parent");
    create_private_dir(dir)?;
    write_atomically(&path, bytes)?;
    Ok((sha, rel))
}

/// Writes `bytes` to `path` via a temporary file, fsync and rename, then
/// fsyncs the directory so the rename itself survives a crash.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}{TEMP_MARK}{}",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("capture"),
        std::process::id()
    ));
    let result = (|| {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            // Recordings of people: readable by their owner only.
            options.mode(0o600);
        }
        let mut f = options.open(&tmp).map_err(io_err("cannot create", &tmp))?;
        f.write_all(bytes).map_err(io_err("cannot write", &tmp))?;
        f.sync_all().map_err(io_err("cannot flush to disk", &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(io_err("cannot move into place", path))?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// What marks a temporary file of [`write_atomically`]: `.<name>.tmp-<pid>`.
const TEMP_MARK: &str = ".tmp-";

/// How old a temporary file whose writer still seems to run must be before
/// it is taken for a leftover (its pid reused by another process): no write
/// of one capture takes this long.
pub const STALE_TEMP_AGE: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The pid that wrote a temporary file of [`write_atomically`], from its
/// name; `None` for any other name.
fn temp_writer(name: &str) -> Option<u32> {
    let (base, pid) = name.strip_prefix('.')?.rsplit_once(TEMP_MARK)?;
    (!base.is_empty() && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        .then(|| pid.parse().ok())
        .flatten()
}

/// Removes the temporary files a killed run left under `<data>/captures`:
/// only names [`write_atomically`] makes, and only when the process that
/// wrote one is gone (a live writer, another run storing a capture now, is
/// never disturbed) or the file is older than [`STALE_TEMP_AGE`]. Returns
/// the paths removed.
pub fn remove_stale_temp_files(data_dir: &Path) -> Vec<PathBuf> {
    let now = std::time::SystemTime::now();
    let Ok(shards) = fs::read_dir(data_dir.join("captures")) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for file in shards
        .flatten()
        .filter_map(|shard| fs::read_dir(shard.path()).ok())
        .flat_map(|files| files.flatten())
    {
        let Some(pid) = file.file_name().to_str().and_then(temp_writer) else {
            continue;
        };
        let old = file
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > STALE_TEMP_AGE);
        let writer_gone = pid != std::process::id() && super::claims::process_is_gone(pid);
        if (writer_gone || old) && fs::remove_file(file.path()).is_ok() {
            removed.push(file.path());
        }
    }
    removed
}

fn sync_dir(dir: &Path) -> Result<(), FileError> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("cannot flush directory", dir))?;
    }
    let _ = dir;
    Ok(())
}

/// The hashes of every capture file under `<data dir>/captures`, sorted
/// (cards, temporary files and anything else there are not captures).
pub fn stored_hashes(data_dir: &Path) -> Vec<String> {
    let is_hash = |n: &str| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit());
    let Ok(shards) = fs::read_dir(data_dir.join("captures")) else {
        return Vec::new();
    };
    let mut out: Vec<String> = shards
        .flatten()
        .filter_map(|shard| fs::read_dir(shard.path()).ok())
        .flat_map(|files| files.flatten())
        .filter_map(|f| f.file_name().into_string().ok())
        .filter(|n| is_hash(n))
        .collect();
    out.sort();
    out
}

/// Reads a stored capture back and checks it against its hash.
pub fn load(data_dir: &Path, rel: &Path, sha256: &str) -> Result<Vec<u8>, FileError> {
    let path = data_dir.join(rel);
    let bytes = fs::read(&path).map_err(io_err("cannot read capture file", &path))?;
    let found = sha256_hex(&bytes);
    if found != sha256 {
        return Err(FileError::Damaged {
            path,
            expected: sha256.to_string(),
            found,
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_by_content_and_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let (sha, rel) = store(dir.path(), b"hello").unwrap();
        assert_eq!(sha, sha256_hex(b"hello"));
        assert!(rel.starts_with("captures"));
        assert_eq!(load(dir.path(), &rel, &sha).unwrap(), b"hello");
        // Again: same place, no error.
        assert_eq!(store(dir.path(), b"hello").unwrap().1, rel);
        // No temporary files are left behind.
        let shard = dir.path().join(rel.parent().unwrap());
        assert_eq!(fs::read_dir(shard).unwrap().count(), 1);
    }

    #[test]
    fn only_our_temp_files_whose_writer_is_gone_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (_, rel) = store(dir.path(), b"hello").unwrap();
        let shard = dir.path().join(rel.parent().unwrap());
        // A pid above the kernel's pid_max: its writer cannot be running.
        let dead = shard.join(".abc.tmp-4294967295");
        let live = shard.join(format!(".abc.tmp-{}", std::process::id()));
        let other = shard.join("notes.tmp-1");
        for p in [&dead, &live, &other] {
            fs::write(p, b"partial").unwrap();
        }
        assert_eq!(temp_writer(".abc.tmp-12"), Some(12));
        assert_eq!(temp_writer(".abc.tmp-"), None);
        assert_eq!(temp_writer("abc.tmp-12"), None);
        let removed = remove_stale_temp_files(dir.path());
        if std::path::Path::new("/proc/self").exists() {
            assert_eq!(removed, vec![dead.clone()]);
            assert!(!dead.exists());
        }
        assert!(live.exists(), "a live writer's file is kept");
        assert!(other.exists(), "not ours by name");
        assert!(dir.path().join(&rel).exists(), "captures are kept");
    }

    #[test]
    fn damage_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let (sha, rel) = store(dir.path(), b"hello").unwrap();
        fs::write(dir.path().join(&rel), b"jello").unwrap();
        let e = load(dir.path(), &rel, &sha).unwrap_err();
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn an_unwritable_directory_is_a_clear_error_naming_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("captures");
        fs::write(&blocker, b"a file where a directory should be").unwrap();
        let e = store(dir.path(), b"x").unwrap_err();
        assert!(e.to_string().contains("captures"), "{e}");
    }

    #[test]
    fn enospc_gets_a_hint() {}
}
