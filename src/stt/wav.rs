//! A minimal WAV writer and reader: 16-bit PCM, mono, written by hand so the
//! HTTP engines can upload audio without an extra dependency.

/// Why bytes are not the WAV this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// The bytes end before the header or a chunk does.
    #[error("WAV truncated at byte {0}")]
    Truncated(usize),
    /// Not a RIFF/WAVE file.
    #[error("not a RIFF/WAVE file")]
    NotWav,
    /// A format this reader does not take (only 16-bit integer PCM).
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
}

/// A decoded WAV: its format and its samples scaled to [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Wav {
    /// Samples per second.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u16,
    /// Bits per sample.
    pub bits_per_sample: u16,
    /// Interleaved samples scaled to [-1, 1].
    pub samples: Vec<f32>,
}

/// Encodes mono `f32` samples (clamped to [-1, 1]) as a 16-bit PCM WAV file.
pub fn encode_pcm16(samples: &[f32], sample_rate: u32) -> Vec<u8> {
    let mut out = pcm16_header(samples.len(), sample_rate);
    out.extend_from_slice(&pcm16_samples(samples));
    out
}

/// The 44-byte header of a mono 16-bit PCM WAV file holding `samples`
/// samples (for writing the samples after it in pieces).
pub fn pcm16_header(samples: usize, sample_rate: u32) -> Vec<u8> {
    let data_len = (samples * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVE");
    out.extend_from_slice(b"fmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes()); // byte rate
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    out
}

/// Mono `f32` samples (clamped to [-1, 1]) as 16-bit little-endian PCM.
pub fn pcm16_samples(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&s| ((s.clamp(-1.0, 1.0) * 32767.0).round() as i16).to_le_bytes())
        .collect()
}

fn u16_at(b: &[u8], at: usize) -> Result<u16, WavError> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(WavError::Truncated(at))
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, WavError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(WavError::Truncated(at))
}

/// Decodes a 16-bit PCM WAV (any rate, any channel count), skipping chunks it
/// does not need. Never panics on malformed input.
pub fn decode(bytes: &[u8]) -> Result<Wav, WavError> {
    if bytes.len() < 12 {
        return Err(WavError::Truncated(bytes.len()));
    }
    if &bytes[0..4] != b"RIFF" || &bytes[8..12] != b"WAVE" {
        return Err(WavError::NotWav);
    }
    let mut at = 12;
    let mut fmt: Option<(u16, u16, u32, u16)> = None;
    loop {
        let id = bytes.get(at..at + 4).ok_or(WavError::Truncated(at))?;
        let size = u32_at(bytes, at + 4)? as usize;
        let body = at + 8;
        if id == b"fmt " {
            let format = u16_at(bytes, body)?;
            let channels = u16_at(bytes, body + 2)?;
            let rate = u32_at(bytes, body + 4)?;
            let bits = u16_at(bytes, body + 14)?;
            fmt = Some((format, channels, rate, bits));
        } else if id == b"data" {
            let (format, channels, sample_rate, bits_per_sample) =
                fmt.ok_or_else(|| WavError::Unsupported("data before fmt".into()))?;
            if format != 1 || bits_per_sample != 16 || channels == 0 {
                return Err(WavError::Unsupported(format!(
                    "format {format}, {bits_per_sample} bits, {channels} channels"
                )));
            }
            let data = bytes
                .get(body..body.saturating_add(size))
                .ok_or(WavError::Truncated(bytes.len()))?;
            let samples = data
                .chunks_exact(2)
                .map(|c| i16::from_le_bytes([c[0], c[1]]) as f32 / 32768.0)
                .collect();
            return Ok(Wav {
                sample_rate,
                channels,
                bits_per_sample,
                samples,
            });
        }
        // Chunks are padded to an even size.
        at = body
            .checked_add(size + (size & 1))
            .ok_or(WavError::Truncated(at))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s: Vec<f32> = (0..1600).map(|i| ((i as f32) * 0.01).sin() * 0.5).collect();
        let bytes = encode_pcm16(&s, 16_000);
        assert_eq!(bytes.len(), 44 + 3200);
        let w = decode(&bytes).unwrap();
        assert_eq!(
            (w.sample_rate, w.channels, w.bits_per_sample),
            (16_000, 1, 16)
        );
        assert_eq!(w.samples.len(), 1600);
        assert!(w.samples.iter().zip(&s).all(|(a, b)| (a - b).abs() < 1e-4));
    }

    #[test]
    fn clamps_out_of_range() {
        let w = decode(&encode_pcm16(&[2.0, -2.0], 8000)).unwrap();
        assert!(w.samples[0] > 0.999 && w.samples[1] < -0.999);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(decode(b"RIF"), Err(WavError::Truncated(3)));
        assert_eq!(decode(b"RIFF\0\0\0\0WAVX"), Err(WavError::NotWav));
        let mut b = encode_pcm16(&[0.1; 10], 16_000);
        b.truncate(30);
        assert!(decode(&b).is_err());
        let mut b = encode_pcm16(&[0.1; 10], 16_000);
        b[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&b).is_err());
    }
}
