//! The Silero VAD weights: the embedded blob, its format and its checks.
//!
//! `scripts/silero/extract_weights.py` copies the 15 initializers of
//! `silero_vad_16k_op15.onnx` (silero-vad 6.2.3, MIT) into
//! `assets/silero/silero_vad_16k_op15.bin`, which is compiled into the binary.
//! The format (little-endian):
//!
//! ```text
//! magic  b"SILEROW1"
//! count  u32
//! count × { name_len u16, name (UTF-8), ndim u8, dims ndim × u32, data prod(dims) × f32 }
//! crc32  u32 (IEEE, of every byte before it)
//! ```
//!
//! [`Weights::parse`] checks the magic, the checksum, that the tensors are
//! exactly [`TENSORS`] (names, order, shapes), that every value is finite and
//! that nothing trails. A failure on the embedded blob is a build bug.

use std::fmt;

/// The embedded weight blob.
pub(crate) static EMBEDDED: &[u8] = include_bytes!("../../assets/silero/silero_vad_16k_op15.bin");

const MAGIC: &[u8; 8] = b"SILEROW1";

/// The tensors of the blob, in order, with their ONNX shapes.
pub const TENSORS: [(&str, &[usize]); 15] = [
    ("model.stft.forward_basis_buffer", &[258, 1, 256]),
    ("model.encoder.0.reparam_conv.weight", &[128, 129, 3]),
    ("model.encoder.0.reparam_conv.bias", &[128]),
    ("model.encoder.1.reparam_conv.weight", &[64, 128, 3]),
    ("model.encoder.1.reparam_conv.bias", &[64]),
    ("model.encoder.2.reparam_conv.weight", &[64, 64, 3]),
    ("model.encoder.2.reparam_conv.bias", &[64]),
    ("model.encoder.3.reparam_conv.weight", &[128, 64, 3]),
    ("model.encoder.3.reparam_conv.bias", &[128]),
    ("model.decoder.rnn.weight_ih", &[512, 128]),
    ("model.decoder.rnn.weight_hh", &[512, 128]),
    ("model.decoder.rnn.bias_ih", &[512]),
    ("model.decoder.rnn.bias_hh", &[512]),
    ("model.decoder.decoder.2.weight", &[1, 128, 1]),
    ("model.decoder.decoder.2.bias", &[1]),
];

/// Why a weight blob was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightsError {
    /// The blob does not start with `SILEROW1`.
    #[error("not a Silero weight blob (bad magic)")]
    BadMagic,
    /// The blob ends before the structure it announces.
    #[error("weight blob truncated at byte {offset} (reading {what})")]
    Truncated {
        /// Where the missing bytes should have started.
        offset: usize,
        /// What was being read.
        what: &'static str,
    },
    /// The stored CRC-32 does not match the contents.
    #[error("weight blob checksum mismatch (stored {stored:08x}, computed {computed:08x})")]
    Checksum {
        /// The CRC-32 at the end of the blob.
        stored: u32,
        /// The CRC-32 of the bytes before it.
        computed: u32,
    },
    /// The blob holds a different number of tensors.
    #[error("weight blob has {found} tensors, expected {expected}")]
    Count {
        /// Tensors announced by the blob.
        found: u32,
        /// Tensors the network needs.
        expected: usize,
    },
    /// A tensor is not the one expected at its position.
    #[error("weight tensor #{index} is {found:?}, expected {expected:?}")]
    Name {
        /// Position in the blob.
        index: usize,
        /// The name found there.
        found: String,
        /// The name expected there.
        expected: &'static str,
    },
    /// A tensor has the wrong shape.
    #[error("weight tensor {name} has shape {found:?}, expected {expected:?}")]
    Shape {
        /// The tensor.
        name: &'static str,
        /// Its shape in the blob.
        found: Vec<usize>,
        /// The shape the network needs.
        expected: &'static [usize],
    },
    /// A tensor holds NaN or an infinity.
    #[error("weight tensor {name} holds a non-finite value at element {element}")]
    NonFinite {
        /// The tensor.
        name: &'static str,
        /// The first bad element.
        element: usize,
    },
    /// Bytes follow the last tensor.
    #[error("weight blob has {0} unexpected trailing bytes")]
    Trailing(usize),
    /// The STFT basis is not the periodic-Hann DFT the fast path computes.
    #[error("the STFT basis differs from a periodic-Hann DFT by {0:e}")]
    NotHannDft(f64),
}

/// The 15 tensors, in [`TENSORS`] order, each flattened row-major.
pub struct Weights {
    tensors: Vec<Vec<f32>>,
}

impl fmt::Debug for Weights {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Weights")
            .field("tensors", &self.tensors.len())
            .finish()
    }
}

impl Weights {
    /// Parses and checks a blob.
    pub fn parse(blob: &[u8]) -> Result<Self, WeightsError> {
        if blob.len() < MAGIC.len() || &blob[..MAGIC.len()] != MAGIC {
            return Err(WeightsError::BadMagic);
        }
        if blob.len() < MAGIC.len() + 8 {
            return Err(WeightsError::Truncated {
                offset: blob.len(),
                what: "header",
            });
        }
        let (body, crc) = blob.split_at(blob.len() - 4);
        let stored = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
        let computed = crc32fast::hash(body);
        if stored != computed {
            return Err(WeightsError::Checksum { stored, computed });
        }

        let mut r = Reader {
            buf: body,
            pos: MAGIC.len(),
        };
        let count = r.u32("tensor count")?;
        if count as usize != TENSORS.len() {
            return Err(WeightsError::Count {
                found: count,
                expected: TENSORS.len(),
            });
        }
        let mut tensors = Vec::with_capacity(TENSORS.len());
        for (index, (name, shape)) in TENSORS.iter().enumerate() {
            let len = r.u16("name length")? as usize;
            let found = r.take(len, "name")?;
            if found != name.as_bytes() {
                return Err(WeightsError::Name {
                    index,
                    found: String::from_utf8_lossy(found).into_owned(),
                    expected: name,
                });
            }
            let ndim = r.u8("rank")? as usize;
            let mut dims = Vec::with_capacity(ndim);
            for _ in 0..ndim {
                dims.push(r.u32("dimension")? as usize);
            }
            if dims != *shape {
                return Err(WeightsError::Shape {
                    name,
                    found: dims,
                    expected: shape,
                });
            }
            let numel: usize = shape.iter().product();
            let bytes = r.take(numel * 4, "tensor data")?;
            let data: Vec<f32> = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            if let Some(element) = data.iter().position(|v| !v.is_finite()) {
                return Err(WeightsError::NonFinite { name, element });
            }
            tensors.push(data);
        }
        if r.pos != body.len() {
            return Err(WeightsError::Trailing(body.len() - r.pos));
        }
        Ok(Weights { tensors })
    }

    /// The tensor called `name` (one of [`TENSORS`]), flattened row-major.
    ///
    /// # Panics
    /// If `name` is not in [`TENSORS`] (a programming error, not a data one).
    pub fn get(&self, name: &str) -> &[f32] {
        let index = TENSORS
            .iter()
            .position(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("{name} is not a Silero VAD tensor"));
        &self.tensors[index]
    }
}

/// A bounds-checked little-endian cursor.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WeightsError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or(WeightsError::Truncated {
                offset: self.pos,
                what,
            })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WeightsError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WeightsError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WeightsError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Recomputes the trailing CRC so a test can corrupt the structure
    /// without tripping the checksum first.
    fn reseal(mut blob: Vec<u8>) -> Vec<u8> {
        let n = blob.len() - 4;
        let crc = crc32fast::hash(&blob[..n]);
        blob[n..].copy_from_slice(&crc.to_le_bytes());
        blob
    }

    #[test]
    fn embedded_blob_parses_with_expected_shapes() {
        let w = Weights::parse(EMBEDDED).expect("embedded weights");
        for (name, shape) in TENSORS {
            assert_eq!(w.get(name).len(), shape.iter().product::<usize>(), "{name}");
        }
        // Spot values: the first basis row is the periodic Hann window.
        let basis = w.get("model.stft.forward_basis_buffer");
        assert_eq!(basis[0], 0.0);
        assert!((basis[128] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn flipped_data_bit_is_a_checksum_error() {
        let mut blob = EMBEDDED.to_vec();
        blob[5000] ^= 0x10;
        assert!(matches!(
            Weights::parse(&blob),
            Err(WeightsError::Checksum { .. })
        ));
    }

    #[test]
    fn structural_corruption_is_named() {
        assert_eq!(
            Weights::parse(b"not weights").unwrap_err(),
            WeightsError::BadMagic
        );
        assert!(matches!(
            Weights::parse(&EMBEDDED[..1000]),
            Err(WeightsError::Checksum { .. })
        ));
        // Truncated but resealed: the reader reports where.
        let cut = reseal(EMBEDDED[..1000].to_vec());
        assert!(matches!(
            Weights::parse(&cut),
            Err(WeightsError::Truncated {
                what: "tensor data",
                ..
            })
        ));
        // Wrong count.
        let mut blob = EMBEDDED.to_vec();
        blob[8] = 14;
        assert_eq!(
            Weights::parse(&reseal(blob)).unwrap_err(),
            WeightsError::Count {
                found: 14,
                expected: 15
            }
        );
        // Renamed first tensor ("model." -> "modeL.").
        let mut blob = EMBEDDED.to_vec();
        blob[8 + 4 + 2 + 4] = b'L';
        let err = Weights::parse(&reseal(blob)).unwrap_err();
        assert!(matches!(err, WeightsError::Name { index: 0, .. }), "{err}");
        assert!(err.to_string().contains("modeL.stft"));
        // Wrong first dimension of the basis (258 -> 257).
        let mut blob = EMBEDDED.to_vec();
        let dims_at = 8 + 4 + 2 + "model.stft.forward_basis_buffer".len() + 1;
        blob[dims_at] = 1;
        let err = Weights::parse(&reseal(blob)).unwrap_err();
        assert!(matches!(err, WeightsError::Shape { .. }), "{err}");
        assert!(err.to_string().contains("[257, 1, 256]"), "{err}");
        // A NaN weight.
        let mut blob = EMBEDDED.to_vec();
        let data_at = dims_at + 12;
        blob[data_at..data_at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(matches!(
            Weights::parse(&reseal(blob)).unwrap_err(),
            WeightsError::NonFinite { element: 0, .. }
        ));
        // Trailing garbage.
        let mut blob = EMBEDDED[..EMBEDDED.len() - 4].to_vec();
        blob.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            Weights::parse(&reseal(blob)).unwrap_err(),
            WeightsError::Trailing(4)
        );
    }
}
