//! Reading a phone-app `.bin` file from disk as a stream, keeping what is
//! worth storing.
//!
//! A body ends at its first zero or oversized length ([`super::wal::Frames`]);
//! nothing after that point is ever decoded. A file can be far larger than
//! its frames (a sparse 1.5 GB file holding 10 s of audio, a copy padded
//! with zeros), so the file is read frame by frame and never held whole:
//! - zeros after the frames are counted, not stored;
//! - a short non-frame tail (up to [`MAX_KEPT_TAIL`]) is stored with the
//!   frames, as it is, so the anomaly it causes stays inspectable;
//! - a longer one is counted, not stored, and said so.

use std::io::{self, Read};

use super::wal::MAX_FRAME_LEN;

/// The most bytes after the last frame that are stored with the frames.
pub const MAX_KEPT_TAIL: usize = 16 << 20;

/// A body as read: the bytes to store, and what was left out of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBody {
    /// The frames (and any short tail after them), from the file's start.
    pub bytes: Vec<u8>,
    /// What followed the frames and was not stored.
    pub left_out: Option<LeftOut>,
}

/// The part of a file after its frames that was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftOut {
    /// Its byte offset in the file (where the frames end).
    pub offset: u64,
    /// Its length in bytes.
    pub len: u64,
    /// Whether every byte of it is zero (padding, a sparse hole).
    pub zeros: bool,
}

impl std::fmt::Display for LeftOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let LeftOut { offset, len, zeros } = *self;
        if zeros {
            write!(
                f,
                "at byte {offset}: the rest of the file is {len} bytes of zeros, not frames; not stored"
            )
        } else {
            write!(
                f,
                "at byte {offset}: the rest of the file is {len} bytes that are not frames (over the {} MiB \
                 kept for inspection); not stored, the file itself is left as it is",
                MAX_KEPT_TAIL >> 20
            )
        }
    }
}

/// Reads `reader` to its end, frame by frame (see the module docs).
pub fn read_body(reader: &mut impl Read) -> io::Result<ReadBody> {
    let mut bytes = Vec::new();
    let done = |bytes| {
        Ok(ReadBody {
            bytes,
            left_out: None,
        })
    };
    // The frames.
    let first_tail = loop {
        let mut len = [0u8; 4];
        let n = read_up_to(reader, &mut len)?;
        if n < 4 {
            bytes.extend_from_slice(&len[..n]);
            return done(bytes);
        }
        let frame_len = u32::from_le_bytes(len);
        if frame_len == 0 || frame_len > MAX_FRAME_LEN {
            break len;
        }
        bytes.extend_from_slice(&len);
        let got = reader
            .by_ref()
            .take(u64::from(frame_len))
            .read_to_end(&mut bytes)?;
        if got < frame_len as usize {
            // A truncated last frame: stored as it is (the body reports it).
            return done(bytes);
        }
    };
    // What follows them.
    let offset = bytes.len() as u64;
    let mut tail = first_tail.to_vec();
    let mut len = tail.len() as u64;
    let mut zeros = tail.iter().all(|&b| b == 0);
    let mut chunk = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        len += n as u64;
        zeros &= chunk[..n].iter().all(|&b| b == 0);
        if tail.len() + n <= MAX_KEPT_TAIL {
            tail.extend_from_slice(&chunk[..n]);
        }
    }
    if !zeros && len <= MAX_KEPT_TAIL as u64 {
        bytes.extend_from_slice(&tail);
        return done(bytes);
    }
    Ok(ReadBody {
        bytes,
        left_out: Some(LeftOut { offset, len, zeros }),
    })
}

/// Fills `buf` as far as the reader goes; returns how much was read.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(n: usize) -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let f = vec![i as u8 + 1; 40];
                let mut v = (f.len() as u32).to_le_bytes().to_vec();
                v.extend(f);
                v
            })
            .collect()
    }

    fn read(bytes: &[u8]) -> ReadBody {
        read_body(&mut &bytes[..]).unwrap()
    }

    #[test]
    fn a_whole_body_is_read_as_it_is() {
        let body = frames(5);
        assert_eq!(
            read(&body),
            ReadBody {
                bytes: body,
                left_out: None
            }
        );
        // Truncated in a length or in a frame: kept as it is.
        for cut in [3, 46, 100] {
            let body = &frames(5)[..cut];
            assert_eq!(read(body).bytes, body, "cut at {cut}");
        }
    }

    #[test]
    fn zeros_after_the_frames_are_counted_not_stored() {
        let mut file = frames(3);
        let end = file.len() as u64;
        file.resize(file.len() + 3_000_000, 0);
        let r = read(&file);
        assert_eq!(r.bytes, frames(3));
        assert_eq!(
            r.left_out,
            Some(LeftOut {
                offset: end,
                len: 3_000_000,
                zeros: true
            })
        );
        assert!(
            r.left_out
                .unwrap()
                .to_string()
                .contains("3000000 bytes of zeros")
        );
    }

    #[test]
    fn a_short_garbled_tail_is_kept_a_long_one_is_not() {
        let mut file = frames(2);
        file.extend([0xff; 8]);
        assert_eq!(read(&file).bytes, file);
        let mut big = frames(2);
        let end = big.len() as u64;
        big.extend(std::iter::repeat_n(0xabu8, MAX_KEPT_TAIL + 10));
        let r = read(&big);
        assert_eq!(r.bytes, frames(2));
        assert_eq!(
            r.left_out,
            Some(LeftOut {
                offset: end,
                len: MAX_KEPT_TAIL as u64 + 10,
                zeros: false
            })
        );
    }

    #[test]
    fn zeros_then_data_is_not_all_zeros() {
        let mut file = frames(1);
        file.extend([0u8; 100]);
        file.extend([7u8; 3]);
        assert_eq!(read(&file).bytes, file);
    }
}
