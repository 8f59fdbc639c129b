//! Keeping a data directory private: it holds recordings and transcripts of
//! people's conversations, so only its owner may read it.
//!
//! New files are made private when created (the data directory 0700, capture
//! files 0600, the ledger before SQLite first opens it). A data directory
//! from an older omi-sync, or made by hand, may be readable by every local
//! user: [`tighten`] brings the directory to 0700 and the ledger, its
//! `-wal`/`-shm` and every file under `captures/` to 0600 when the ledger is
//! opened read-write, and says so once, naming what changed and its old mode.
//! Where it cannot (another user owns the file), it warns and goes on.

use std::path::Path;

/// The mode of a private directory.
const DIR_MODE: u32 = 0o700;
/// The mode of a private file.
const FILE_MODE: u32 = 0o600;

/// Creates `path` empty and private if it does not exist yet (so SQLite,
/// which keeps an existing file's mode and gives its `-wal` and `-shm` the
/// same, never makes a readable ledger).
pub fn precreate_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(FILE_MODE);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// What [`tighten`] did to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tightened {
    /// Its mode was loosened (`old`) and is now private.
    Changed {
        /// The path.
        path: std::path::PathBuf,
        /// Its mode before.
        old: u32,
    },
    /// Its mode is loose and could not be changed.
    Failed {
        /// The path.
        path: std::path::PathBuf,
        /// Its mode.
        old: u32,
        /// Why not.
        error: String,
    },
}

/// Makes the data directory, its ledger files and its captures private (see
/// the module docs), logs a warning for each change or failure (captures
/// counted, not listed one by one), and returns what it did.
pub fn tighten(data_dir: &Path, ledger_file: &str) -> Vec<Tightened> {
    let mut done = Vec::new();
    make_private(data_dir, DIR_MODE, &mut done);
    for suffix in ["", "-wal", "-shm"] {
        make_private(
            &data_dir.join(format!("{ledger_file}{suffix}")),
            FILE_MODE,
            &mut done,
        );
    }
    let named = done.len();
    let captures = data_dir.join("captures");
    make_private(&captures, DIR_MODE, &mut done);
    for shard in std::fs::read_dir(&captures).into_iter().flatten().flatten() {
        let path = shard.path();
        if path.is_dir() {
            make_private(&path, DIR_MODE, &mut done);
            for file in std::fs::read_dir(&path).into_iter().flatten().flatten() {
                make_private(&file.path(), FILE_MODE, &mut done);
            }
        }
    }
    say(&done[..named], &done[named..], &captures);
    done
}

/// Logs what changed: each of `named` by path, `in_captures` as a count
/// with the first of them as an example.
fn say(named: &[Tightened], in_captures: &[Tightened], captures: &Path) {
    for t in named {
        match t {
            Tightened::Changed { path, old } => tracing::warn!(
                "{} was readable by other users (mode {old:04o}); made it private ({:04o})",
                path.display(),
                if path.is_dir() { DIR_MODE } else { FILE_MODE }
            ),
            Tightened::Failed { path, old, error } => tracing::warn!(
                "{} is readable by other users (mode {old:04o}) and cannot be made private: {error}",
                path.display()
            ),
        }
    }
    let changed: Vec<_> = in_captures
        .iter()
        .filter_map(|t| match t {
            Tightened::Changed { path, old } => Some((path, old)),
            Tightened::Failed { .. } => None,
        })
        .collect();
    if let Some((first, old)) = changed.first() {
        tracing::warn!(
            "{} entries under {} were readable by other users (e.g. {}, mode {old:04o}); made them private",
            changed.len(),
            captures.display(),
            first.display()
        );
    }
    for t in in_captures {
        if let Tightened::Failed { path, old, error } = t {
            tracing::warn!(
                "{} is readable by other users (mode {old:04o}) and cannot be made private: {error}",
                path.display()
            );
        }
    }
}

#[cfg(unix)]
fn make_private(path: &Path, mode: u32, done: &mut Vec<Tightened>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.file_type().is_symlink() {
        return;
    }
    let old = meta.permissions().mode() & 0o7777;
    if old & 0o077 == 0 {
        return;
    }
    let new = old & !0o077 | (mode & 0o700);
    let path = path.to_path_buf();
    match std::fs::set_permissions(&path, std::fs::Permissions::from_mode(new)) {
        Ok(()) => done.push(Tightened::Changed { path, old }),
        Err(e) => done.push(Tightened::Failed {
            path,
            old,
            error: e.to_string(),
        }),
    }
}

#[cfg(not(unix))]
fn make_private(_path: &Path, _mode: u32, _done: &mut Vec<Tightened>) {}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    fn chmod(p: &Path, m: u32) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    }

    #[test]
    fn a_readable_data_dir_is_made_private_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        let shard = data.join("captures/ab");
        std::fs::create_dir_all(&shard).unwrap();
        let ledger = data.join("ledger.sqlite3");
        let capture = shard.join("ab12");
        std::fs::write(&ledger, b"").unwrap();
        std::fs::write(&capture, b"x").unwrap();
        for (p, m) in [
            (&data, 0o755),
            (&shard, 0o755),
            (&ledger, 0o644),
            (&capture, 0o644),
        ] {
            chmod(p, m);
        }
        let done = tighten(&data, "ledger.sqlite3");
        assert!(
            done.contains(&Tightened::Changed {
                path: data.clone(),
                old: 0o755
            }),
            "{done:?}"
        );
        assert!(
            done.contains(&Tightened::Changed {
                path: ledger.clone(),
                old: 0o644
            }),
            "{done:?}"
        );
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&shard), 0o700);
        assert_eq!(mode(&ledger), 0o600);
        assert_eq!(mode(&capture), 0o600);
        assert!(tighten(&data, "ledger.sqlite3").is_empty(), "only once");
    }

    #[test]
    fn a_new_file_is_private_and_an_existing_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        precreate_file(&p).unwrap();
        assert_eq!(mode(&p), 0o600);
        std::fs::write(&p, b"data").unwrap();
        precreate_file(&p).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"data");
    }
}
