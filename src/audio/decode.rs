//! One frame at a time, from Opus or PCM to 16 kHz mono samples.

use super::codec::{Codec, TARGET_RATE};
use super::resample::Resampler;

/// Why a decoder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// libopus refused to create a decoder.
    #[error("cannot create an Opus decoder: {0}")]
    Opus(#[from] opus::Error),
    /// The codec's parameters make no sense.
    #[error("unusable codec parameters: {0}")]
    BadCodec(String),
}

/// Decodes frames of one codec, keeping the state that Opus and resampling
/// carry from frame to frame.
pub struct FrameDecoder {
    codec: Codec,
    opus: Option<opus::Decoder>,
    resampler: Option<Resampler>,
    scratch: Vec<f32>,
    bad_frames: u64,
}

/// The largest Opus packet duration at 16 kHz (120 ms).
const MAX_OPUS_SAMPLES: usize = 1920;

impl FrameDecoder {
    /// A decoder for `codec`.
    pub fn new(codec: Codec) -> Result<Self, DecodeError> {
        let (opus, resampler) = match codec {
            Codec::Opus { frame_samples } => {
                if frame_samples == 0 || frame_samples as usize > MAX_OPUS_SAMPLES {
                    return Err(DecodeError::BadCodec(format!(
                        "Opus frame size {frame_samples} samples"
                    )));
                }
                (
                    Some(opus::Decoder::new(TARGET_RATE, opus::Channels::Mono)?),
                    None,
                )
            }
            Codec::Pcm16 { sample_rate } | Codec::Pcm8 { sample_rate } => {
                if !(4000..=192_000).contains(&sample_rate) {
                    return Err(DecodeError::BadCodec(format!(
                        "PCM sample rate {sample_rate} Hz"
                    )));
                }
                let r =
                    (sample_rate != TARGET_RATE).then(|| Resampler::new(sample_rate, TARGET_RATE));
                (None, r)
            }
        };
        Ok(FrameDecoder {
            codec,
            opus,
            resampler,
            scratch: vec![0.0; MAX_OPUS_SAMPLES],
            bad_frames: 0,
        })
    }

    /// Frames so far that could not be decoded (each was replaced by
    /// concealment of its nominal length, so time stays aligned).
    pub fn bad_frames(&self) -> u64 {
        self.bad_frames
    }

    /// Decodes one frame, appending its samples to `out`. Returns `false` if
    /// the frame was undecodable (and concealed instead).
    pub fn decode(&mut self, frame: &[u8], out: &mut Vec<f32>) -> bool {
        match self.codec {
            Codec::Opus { frame_samples } => {
                let n = frame_samples as usize;
                let dec = self.opus.as_mut().expect("opus codec has a decoder");
                let ok = match dec.decode_float(frame, &mut self.scratch, false) {
                    Ok(got) => {
                        // Keep the nominal frame length whatever the packet
                        // says, so placement by frame count stays exact.
                        let got = got.min(n);
                        out.extend_from_slice(&self.scratch[..got]);
                        out.resize(out.len() + (n - got), 0.0);
                        true
                    }
                    Err(_) => {
                        // Packet-loss concealment for the frame's duration.
                        match dec.decode_float(&[], &mut self.scratch[..n], false) {
                            Ok(got) => {
                                out.extend_from_slice(&self.scratch[..got.min(n)]);
                                out.resize(out.len() + n.saturating_sub(got), 0.0);
                            }
                            Err(_) => out.resize(out.len() + n, 0.0),
                        }
                        false
                    }
                };
                if !ok {
                    self.bad_frames += 1;
                }
                ok
            }
            Codec::Pcm16 { .. } => {
                let samples: Vec<f32> = frame
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]) as f32 / 32768.0)
                    .collect();
                self.push_pcm(&samples, out);
                if !frame.len().is_multiple_of(2) {
                    self.bad_frames += 1;
                    return false;
                }
                true
            }
            Codec::Pcm8 { .. } => {
                let samples: Vec<f32> = frame.iter().map(|&b| (b as f32 - 128.0) / 128.0).collect();
                self.push_pcm(&samples, out);
                true
            }
        }
    }

    fn push_pcm(&mut self, samples: &[f32], out: &mut Vec<f32>) {
        match &mut self.resampler {
            Some(r) => r.process(samples, out),
            None => out.extend_from_slice(samples),
        }
    }

    /// Flushes what a resampler still holds (call at the end of a run).
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        if let Some(r) = &mut self.resampler {
            r.finish(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_tone(frames: usize) -> Vec<Vec<u8>> {
        let mut enc =
            opus::Encoder::new(16000, opus::Channels::Mono, opus::Application::Voip).unwrap();
        (0..frames)
            .map(|f| {
                let pcm: Vec<i16> = (0..320)
                    .map(|i| {
                        let t = (f * 320 + i) as f32 / 16000.0;
                        ((t * 300.0 * std::f32::consts::TAU).sin() * 8000.0) as i16
                    })
                    .collect();
                enc.encode_vec(&pcm, 400).unwrap()
            })
            .collect()
    }

    #[test]
    fn decodes_opus_frames_to_nominal_length() {
        let frames = encode_tone(10);
        let mut d = FrameDecoder::new(Codec::PENDANT).unwrap();
        let mut out = Vec::new();
        for f in &frames {
            assert!(d.decode(f, &mut out));
        }
        assert_eq!(out.len(), 3200);
        let rms = (out[1600..].iter().map(|x| x * x).sum::<f32>() / 1600.0).sqrt();
        assert!(rms > 0.1, "a 300 Hz tone decodes to real signal, rms {rms}");
    }

    #[test]
    fn garbage_is_concealed_counted_and_keeps_time() {
        let frames = encode_tone(4);
        let mut d = FrameDecoder::new(Codec::PENDANT).unwrap();
        let mut out = Vec::new();
        d.decode(&frames[0], &mut out);
        // A code-3 packet claiming more frames than it holds: libopus rejects it.
        assert!(!d.decode(&[0xFF, 0xFF, 0xFF], &mut out));
        d.decode(&frames[1], &mut out);
        assert_eq!(out.len(), 960);
        assert_eq!(d.bad_frames(), 1);
    }

    #[test]
    fn pcm8_is_unsigned_and_resampled_to_16k() {
        let mut d = FrameDecoder::new(Codec::Pcm8 { sample_rate: 8000 }).unwrap();
        let mut out = Vec::new();
        for _ in 0..10 {
            d.decode(&[128u8; 160], &mut out);
        }
        d.finish(&mut out);
        assert_eq!(out.len(), 3200);
        assert!(out.iter().all(|x| x.abs() < 1e-6));
    }

    #[test]
    fn pcm16_passes_through() {
        let mut d = FrameDecoder::new(Codec::Pcm16 { sample_rate: 16000 }).unwrap();
        let mut out = Vec::new();
        d.decode(&[0x00, 0x40, 0x00, 0xC0], &mut out);
        assert_eq!(out, vec![0.5, -0.5]);
    }

    #[test]
    fn absurd_codecs_are_errors() {
        assert!(FrameDecoder::new(Codec::Opus { frame_samples: 0 }).is_err());
        assert!(FrameDecoder::new(Codec::Pcm16 { sample_rate: 12 }).is_err());
    }
}
