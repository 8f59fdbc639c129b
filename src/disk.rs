//! What the disk said: a full disk told apart from other I/O failures (one
//! rule for every write site: captures, the ledger's files, WAV exports,
//! model downloads, the janitor), and the words a person reads about it.

use std::io;

/// Whether an OS error means the disk (or the user's quota) is full.
pub fn is_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(28 | 122)) // ENOSPC, EDQUOT
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
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
}
