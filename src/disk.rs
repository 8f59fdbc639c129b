//! What the disk said: a full disk told apart from other I/O failures (one
//! rule for every write site: captures, the ledger's files, WAV exports,
//! model downloads, the janitor), and the words a person reads about it.

use std::io;
use std::path::Path;

/// Whether an OS error means the disk (or the user's quota) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122)) // ENOSPC, EDQUOT
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
}

/// Whether the file system holding `path` has no space left for an
/// ordinary user (SQLite reports a full disk under a write to its `-shm` or
/// WAL as a plain "disk I/O error": this tells the two apart). `false` when
/// it cannot tell.
pub fn no_space_left(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is written by
    // statvfs before it is read, only when it returns 0.
    let ok = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } == 0;
    // SAFETY: statvfs returned 0, so it filled `st`.
    ok && unsafe { st.assume_init() }.f_bavail == 0
}

/// What to add to a message about `e` when the disk is full, else "".
pub fn full_hint(e: &io::Error) -> &'static str {
    if is_full(e) {
        " (the disk is full: free some space and run the command again; nothing was lost)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_and_quota_are_full_other_errors_are_not() {
        assert!(is_full(&io::Error::from_raw_os_error(28)));
        assert!(is_full(&io::Error::from_raw_os_error(122)));
        assert!(full_hint(&io::Error::from_raw_os_error(28)).contains("disk is full"));
        let denied = io::Error::from(io::ErrorKind::PermissionDenied);
        assert!(!is_full(&denied));
        assert_eq!(full_hint(&denied), "");
    }

    #[test]
    fn a_disk_with_room_is_not_full() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!no_space_left(dir.path()));
        assert!(!no_space_left(Path::new("/nonexistent/omi-sync")));
    }
}
