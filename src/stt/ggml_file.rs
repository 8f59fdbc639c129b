//! Checking a Whisper model file before whisper.cpp reads it.
//!
//! whisper.cpp trusts its input: a file that is only the 4-byte `ggml`
//! magic, or the magic and random bytes, makes it throw a C++ exception or
//! trip a `GGML_ASSERT`, which aborts the whole process (exit 134). So the
//! file is walked here first, as whisper.cpp will read it: the magic, the
//! hyper-parameters (each within what a Whisper model can have), the mel
//! filters, the vocabulary, then every tensor header with its data fitting
//! in the file. Anything else is a clear error naming the file and what is
//! wrong at which byte.

use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// `ggml`, as whisper.cpp's magic reads in little-endian.
const MAGIC: u32 = 0x6767_6d6c;

/// Checks that `path` is a whole whisper.cpp ggml model; the error says
/// what is wrong and where.
pub fn check(path: &Path) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot read it: {e}"))?
        .len();
    let mut r = Walker {
        inner: BufReader::new(file),
        at: 0,
        size,
    };
    if r.u32()? != MAGIC {
        return Err("it does not start with the ggml magic: not a whisper.cpp model".into());
    }
    let names = [
        "n_vocab",
        "n_audio_ctx",
        "n_audio_state",
        "n_audio_head",
        "n_audio_layer",
        "n_text_ctx",
        "n_text_state",
        "n_text_head",
        "n_text_layer",
        "n_mels",
        "ftype",
    ];
    let ranges: [(i32, i32); 11] = [
        (50_000, 60_000),
        (1, 4096),
        (64, 8192),
        (1, 128),
        (1, 128),
        (1, 4096),
        (64, 8192),
        (1, 128),
        (1, 128),
        (1, 512),
        (0, 4096),
    ];
    let mut hp = [0i32; 11];
    for (i, (name, (lo, hi))) in names.iter().zip(ranges).enumerate() {
        let at = r.at;
        hp[i] = r.i32()?;
        // ftype carries the quantisation version in its thousands.
        let value = if *name == "ftype" {
            hp[i] % 1000
        } else {
            hp[i]
        };
        if value < lo || value > hi {
            return Err(format!(
                "at byte {at}: {name} = {} is not what a Whisper model has (a damaged or partial file)",
                hp[i]
            ));
        }
    }
    let n_vocab = hp[0];
    // Mel filters.
    let (n_mel, n_fft) = (r.i32()?, r.i32()?);
    if !(1..=512).contains(&n_mel) || !(1..=4096).contains(&n_fft) {
        return Err(format!(
            "at byte {}: mel filters {n_mel} x {n_fft} are not what a Whisper model has",
            r.at - 8
        ));
    }
    r.skip(4 * n_mel as u64 * n_fft as u64, "the mel filters")?;
    // Vocabulary.
    let at = r.at;
    let words = r.i32()?;
    if words <= 0 || words > n_vocab {
        return Err(format!(
            "at byte {at}: a vocabulary of {words} words (the header says {n_vocab})"
        ));
    }
    for _ in 0..words {
        let at = r.at;
        let len = r.u32()?;
        if len > 1024 {
            return Err(format!("at byte {at}: a vocabulary word of {len} bytes"));
        }
        r.skip(u64::from(len), "the vocabulary")?;
    }
    // Tensors, to the end of the file.
    let mut tensors = 0;
    while r.at < size {
        let at = r.at;
        let (n_dims, name_len, ttype) = (r.i32()?, r.i32()?, r.i32()?);
        if !(1..=4).contains(&n_dims) || !(1..=256).contains(&name_len) {
            return Err(format!(
                "at byte {at}: tensor {tensors} has a damaged header"
            ));
        }
        let mut elements: u64 = 1;
        for _ in 0..n_dims {
            let d = r.i32()?;
            if d <= 0 {
                return Err(format!(
                    "at byte {at}: tensor {tensors} has a dimension of {d}"
                ));
            }
            elements = elements.saturating_mul(d as u64);
        }
        r.skip(name_len as u64, "a tensor name")?;
        let Some((block_bytes, block)) = type_size(ttype) else {
            // A type this check does not know: whisper.cpp decides.
            return Ok(());
        };
        r.skip(elements.div_ceil(block) * block_bytes, "a tensor's data")?;
        tensors += 1;
    }
    if tensors == 0 {
        return Err(format!("the file ends at byte {size}, before any weights"));
    }
    Ok(())
}

/// Bytes per block and elements per block of a ggml tensor type.
fn type_size(ttype: i32) -> Option<(u64, u64)> {
    Some(match ttype {
        0 => (4, 1),   // F32
        1 => (2, 1),   // F16
        2 => (18, 32), // Q4_0
        3 => (20, 32), // Q4_1
        6 => (22, 32), // Q5_0
        7 => (24, 32), // Q5_1
        8 => (34, 32), // Q8_0
        _ => return None,
    })
}

/// Reads a model file front to back, knowing where it is.
struct Walker<R> {
    inner: R,
    at: u64,
    size: u64,
}

impl<R: Read + Seek> Walker<R> {
    fn u32(&mut self) -> Result<u32, String> {
        let mut b = [0u8; 4];
        self.inner.read_exact(&mut b).map_err(|_| {
            format!(
                "the file ends at byte {}, inside the header: a partial download?",
                self.size
            )
        })?;
        self.at += 4;
        Ok(u32::from_le_bytes(b))
    }

    fn i32(&mut self) -> Result<i32, String> {
        self.u32().map(|v| v as i32)
    }

    fn skip(&mut self, n: u64, what: &str) -> Result<(), String> {
        if self.at.saturating_add(n) > self.size {
            return Err(format!(
                "the file ends at byte {}, inside {what} (which needs {} bytes from byte {}): a partial download?",
                self.size, n, self.at
            ));
        }
        self.inner
            .seek(SeekFrom::Current(n as i64))
            .map_err(|e| format!("cannot read it: {e}"))?;
        self.at += n;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked(bytes: &[u8]) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.bin");
        std::fs::write(&p, bytes).unwrap();
        check(&p)
    }

    /// A tiny but whole model: header, mel filters, vocabulary, one tensor.
    fn tiny_model() -> Vec<u8> {
        let mut v = MAGIC.to_le_bytes().to_vec();
        for x in [51864, 1500, 384, 6, 4, 448, 384, 6, 4, 80, 1] {
            v.extend(i32::to_le_bytes(x));
        }
        v.extend(2i32.to_le_bytes());
        v.extend(3i32.to_le_bytes());
        v.extend([0u8; 24]);
        v.extend(2i32.to_le_bytes());
        for w in [&b"a"[..], b"bc"] {
            v.extend((w.len() as u32).to_le_bytes());
            v.extend(w);
        }
        for x in [2, 4, 1, 3, 5] {
            v.extend(i32::to_le_bytes(x));
        }
        v.extend(b"abcd");
        v.extend([0u8; 30]);
        v
    }

    #[test]
    fn a_whole_model_passes_and_damage_is_named() {
        assert_eq!(checked(&tiny_model()), Ok(()));
        let magic_only = checked(&MAGIC.to_le_bytes()).unwrap_err();
        assert!(magic_only.contains("inside the header"), "{magic_only}");
        let mut random = MAGIC.to_le_bytes().to_vec();
        random.extend((0..4000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8));
        let e = checked(&random).unwrap_err();
        assert!(e.contains("at byte 4: n_vocab"), "{e}");
        let m = tiny_model();
        let e = checked(&m[..m.len() - 1]).unwrap_err();
        assert!(e.contains("inside a tensor's data"), "{e}");
        let e = checked(b"<html>not a model</html>").unwrap_err();
        assert!(e.contains("ggml magic"), "{e}");
    }
}
