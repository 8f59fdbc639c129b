//! What a path on disk is, in words, and opening a user's input file without
//! blocking on it.
//!
//! The inputs a user names (phone-app `.bin` files, folders of them, card
//! images) can be anything the file system holds. A FIFO blocks an `open`
//! until something writes to it, and a character device can have effects of
//! its own, so every reader of user input asks [`kind`] first and opens with
//! [`open_nonblocking`], which also re-checks what it opened (the path could
//! have been swapped in between).

use std::fs::{File, FileType, OpenOptions};
use std::io;
use std::path::Path;

/// The kind of node a file type is, in words a message can carry:
/// "a regular file", "a directory", "a FIFO (named pipe)", ….
pub fn kind(ft: FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_file() {
        "a regular file"
    } else if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    }
}

/// Opens `path` for reading (and writing, if `write`) without blocking,
/// then returns the file with its type as opened. Reads and writes of
/// regular files and block devices ignore the non-blocking flag, so the
/// file is used as it is; a FIFO opens at once (and its caller refuses it).
pub fn open_nonblocking(path: &Path, write: bool) -> io::Result<(File, FileType)> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let ft = file.metadata()?.file_type();
    Ok((file, ft))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_opens_at_once_and_says_what_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe.bin");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let (_, ft) = open_nonblocking(&fifo, false).unwrap();
        assert_eq!(kind(ft), "a FIFO (named pipe)");
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert_eq!(
            kind(open_nonblocking(&file, false).unwrap().1),
            "a regular file"
        );
        assert_eq!(
            kind(std::fs::metadata(dir.path()).unwrap().file_type()),
            "a directory"
        );
    }
}
