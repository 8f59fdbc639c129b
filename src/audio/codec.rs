//! The audio codecs an Omi capture can hold, and their frame timing.

use std::fmt;

/// The sample rate everything downstream (VAD, Whisper) works at.
pub const TARGET_RATE: u32 = 16_000;

/// How a capture's frames are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Opus at 16 kHz mono; `frame_samples` is 320 (20 ms, the consumer
    /// pendant, codec id 21) or 160 (10 ms, codec id 20).
    Opus {
        /// Samples per frame at 16 kHz.
        frame_samples: u32,
    },
    /// Signed 16-bit little-endian PCM, mono.
    Pcm16 {
        /// Samples per second.
        sample_rate: u32,
    },
    /// Unsigned 8-bit PCM, mono (the phone app writes one byte a sample).
    Pcm8 {
        /// Samples per second.
        sample_rate: u32,
    },
}

impl Codec {
    /// The consumer pendant's codec: Opus, 20 ms frames.
    pub const PENDANT: Codec = Codec::Opus { frame_samples: 320 };

    /// The codec string used in phone-app file names and in the ledger.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Opus { frame_samples: 320 } => "opus_fs320",
            Codec::Opus { .. } => "opus",
            Codec::Pcm16 { .. } => "pcm16",
            Codec::Pcm8 { .. } => "pcm8",
        }
    }

    /// The source sample rate.
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::Opus { .. } => TARGET_RATE,
            Codec::Pcm16 { sample_rate } | Codec::Pcm8 { sample_rate } => sample_rate,
        }
    }

    /// Reconstructs a codec from its ledger fields.
    pub fn from_parts(name: &str, sample_rate: u32, frame_samples: u32) -> Option<Codec> {
        match name {
            "opus_fs320" => Some(Codec::Opus { frame_samples: 320 }),
            "opus" => Some(Codec::Opus {
                frame_samples: if frame_samples == 0 {
                    160
                } else {
                    frame_samples
                },
            }),
            "pcm16" => Some(Codec::Pcm16 { sample_rate }),
            "pcm8" => Some(Codec::Pcm8 { sample_rate }),
            _ => None,
        }
    }

    /// Samples per frame as recorded in the ledger (0 for PCM, whose frames vary).
    pub fn frame_samples(self) -> u32 {
        match self {
            Codec::Opus { frame_samples } => frame_samples,
            _ => 0,
        }
    }

    /// Duration of a frame of `len` bytes, in samples at 16 kHz.
    pub fn frame_samples_at_target(self, len: usize) -> u64 {
        match self {
            Codec::Opus { frame_samples } => frame_samples as u64,
            Codec::Pcm16 { sample_rate } => {
                (len as u64 / 2) * TARGET_RATE as u64 / sample_rate.max(1) as u64
            }
            Codec::Pcm8 { sample_rate } => {
                len as u64 * TARGET_RATE as u64 / sample_rate.max(1) as u64
            }
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Codec::Opus { frame_samples } => write!(f, "opus ({} ms frames)", frame_samples / 16),
            Codec::Pcm16 { sample_rate } => write!(f, "pcm16 @ {sample_rate} Hz"),
            Codec::Pcm8 { sample_rate } => write!(f, "pcm8 @ {sample_rate} Hz"),
        }
    }
}

/// Samples at 16 kHz that an Opus packet holds, read from its TOC byte
/// (RFC 6716 §3.1) without decoding. `None` for an empty or malformed packet.
pub fn opus_packet_samples(packet: &[u8]) -> Option<u32> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame duration in tenths of a millisecond.
    let tenths_ms: u32 = match config {
        0..=11 => [100, 200, 400, 600][(config % 4) as usize],
        12..=15 => [100, 200][(config % 2) as usize],
        _ => [25, 50, 100, 200][(config % 4) as usize],
    };
    let frames = match toc & 0x3 {
        0 => 1,
        1 | 2 => 2,
        _ => (*packet.get(1)? & 0x3F) as u32,
    };
    if frames == 0 {
        return None;
    }
    Some(tenths_ms * frames * TARGET_RATE / 10_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toc_gives_frame_durations() {
        // CELT 20 ms, one frame (config 31 << 3, code 0).
        assert_eq!(opus_packet_samples(&[31 << 3, 0xAA]), Some(320));
        // CELT 10 ms.
        assert_eq!(opus_packet_samples(&[30 << 3]), Some(160));
        // SILK 20 ms, two frames (code 1).
        assert_eq!(opus_packet_samples(&[(1 << 3) | 1]), Some(640));
        // Code 3 with 3 frames of 20 ms CELT.
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3, 3]), Some(960));
        assert_eq!(opus_packet_samples(&[]), None);
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3]), None);
        assert_eq!(opus_packet_samples(&[(31 << 3) | 3, 0]), None);
    }

    #[test]
    fn names_round_trip_through_ledger_parts() {
        for c in [
            Codec::PENDANT,
            Codec::Opus { frame_samples: 160 },
            Codec::Pcm16 { sample_rate: 16000 },
            Codec::Pcm8 { sample_rate: 8000 },
        ] {
            assert_eq!(
                Codec::from_parts(c.name(), c.sample_rate(), c.frame_samples()),
                Some(c)
            );
        }
    }

    #[test]
    fn frame_durations() {
        assert_eq!(Codec::PENDANT.frame_samples_at_target(80), 320);
        assert_eq!(
            Codec::Pcm16 { sample_rate: 16000 }.frame_samples_at_target(640),
            320
        );
        assert_eq!(
            Codec::Pcm8 { sample_rate: 8000 }.frame_samples_at_target(160),
            320
        );
    }
}
