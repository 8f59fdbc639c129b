//! Encoding 16 kHz mono audio exactly as the pendant does (fixtures, demo, export).
//!
//! The consumer pendant encodes Opus at 16 kHz mono in 20 ms frames, 32 kbps
//! VBR, complexity 3, CELT only (`omi-facts.md` §1). Frames come out at about
//! 60-80 bytes.

use super::codec::TARGET_RATE;

/// Samples in one pendant frame (20 ms at 16 kHz).
pub const PENDANT_FRAME: usize = 320;

/// An Opus encoder with the pendant's settings.
pub struct PendantEncoder {
    enc: opus::Encoder,
}

impl PendantEncoder {
    /// A new encoder.
    pub fn new() -> Result<Self, opus::Error> {
        let mut enc = opus::Encoder::new(
            TARGET_RATE,
            opus::Channels::Mono,
            opus::Application::LowDelay,
        )?;
        enc.set_bitrate(opus::Bitrate::Bits(32_000))?;
        enc.set_vbr(true)?;
        enc.set_complexity(3)?;
        Ok(PendantEncoder { enc })
    }

    /// Encodes 16 kHz mono samples in [-1, 1] into 20 ms frames (the last one
    /// zero-padded).
    pub fn encode(&mut self, samples: &[f32]) -> Result<Vec<Vec<u8>>, opus::Error> {
        let mut frames = Vec::with_capacity(samples.len() / PENDANT_FRAME + 1);
        let mut buf = [0i16; PENDANT_FRAME];
        for chunk in samples.chunks(PENDANT_FRAME) {
            buf.fill(0);
            for (b, s) in buf.iter_mut().zip(chunk) {
                *b = (s.clamp(-1.0, 1.0) * 32767.0) as i16;
            }
            frames.push(self.enc.encode_vec(&buf, 400)?);
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audio::{Codec, FrameDecoder};

    #[test]
    fn frames_are_pendant_sized_and_decode_back() {
        let tone: Vec<f32> = (0..16000)
            .map(|i| (i as f32 * 440.0 * std::f32::consts::TAU / 16000.0).sin() * 0.3)
            .collect();
        let frames = PendantEncoder::new().unwrap().encode(&tone).unwrap();
        assert_eq!(frames.len(), 50);
        let avg = frames.iter().map(Vec::len).sum::<usize>() / frames.len();
        assert!((40..=160).contains(&avg), "average frame {avg} bytes");
        assert!(frames.iter().all(|f| f.len() <= 160));
        let mut d = FrameDecoder::new(Codec::PENDANT).unwrap();
        let mut out = Vec::new();
        for f in &frames {
            assert!(d.decode(f, &mut out));
        }
        assert_eq!(out.len(), 16000);
    }
}
