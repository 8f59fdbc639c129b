//! The phone app's backlog files (`.bin` "WAL" files): names, bodies, writing.
//!
//! A body is repeated `[u32 LE frame length][frame bytes]` with no header and
//! no timestamps. Everything else is in the name:
//! `audio_{device}_{codec}_{rate}_{channels}_fs{frameSize}_{unixStart}.bin`.
//! The rules here are the Omi backend's (`omi-facts.md` §3): the timestamp is
//! the text after the last `_`; over 10 000 000 000 it is milliseconds; it
//! must be on or after 2024-01-01 UTC and not in the future. A zero or
//! oversized length, or a truncated frame, ends the body.

use std::fmt;
use std::io::{self, Write};
use std::path::Path;

use crate::audio::Codec;
use crate::clock::{EARLIEST_PLAUSIBLE, UtcMillis};

/// The largest frame length the backend accepts.
pub const MAX_FRAME_LEN: u32 = 65_536;
/// Timestamps above this are milliseconds, not seconds.
pub const MILLIS_THRESHOLD: i64 = 10_000_000_000;
/// How far ahead of our clock a name may be before it counts as "in the
/// future". The backend allows none; a phone and a desktop disagree by a few
/// seconds, so a few minutes of skew is forgiven.
pub const FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

/// What a phone-app file name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalName {
    /// The device segment of the name (e.g. `omi`), or `phone` if absent.
    pub device: String,
    /// The codec, with its frame size or sample rate.
    pub codec: Codec,
    /// The recording start, from the name.
    pub start: UtcMillis,
    /// Notes about a name that parsed only by the backend's lenient rules.
    pub notes: Vec<String>,
}

/// Why a file name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Not a `.bin` file.
    #[error("not a phone-app backlog file (name does not end in .bin)")]
    NotBin,
    /// No `_<digits>` before `.bin`.
    #[error("no timestamp in the name (expected `_<unix seconds or ms>.bin` at the end)")]
    NoTimestamp,
    /// Before 2024-01-01.
    #[error("timestamp {raw} is {shown}, before 2024-01-01: not an Omi recording time")]
    TooEarly {
        /// The digits in the name.
        raw: i64,
        /// The time they denote.
        shown: String,
    },
    /// After now.
    #[error("timestamp {raw} is {shown}, in the future (now is {now})")]
    InFuture {
        /// The digits in the name.
        raw: i64,
        /// The time they denote.
        shown: String,
        /// Our clock.
        now: String,
    },
    /// A codec omi-sync cannot decode.
    #[error(
        "codec `{0}` is not supported (omi-sync decodes opus, opus_fs320, pcm16 and pcm8; \
         AAC and LC3 backlogs come from other devices)"
    )]
    UnsupportedCodec(String),
    /// A rate or channel count the name declares that omi-sync would
    /// decode wrongly (the pendant records 16 kHz mono).
    #[error(
        "{0}: omi-sync decodes mono audio, and Opus only at 16 kHz; decoding this as the pendant's 16 kHz mono would garble it"
    )]
    UnsupportedLayout(String),
}

impl NameError {
    /// Whether the name is otherwise fine and only its time is unusable, so the
    /// audio can still be kept with an estimated time.
    pub fn is_time_only(&self) -> bool {
        matches!(
            self,
            NameError::NoTimestamp | NameError::TooEarly { .. } | NameError::InFuture { .. }
        )
    }
}

/// Parses and checks a phone-app file name against the clock `now`.
pub fn parse_name(file_name: &str, now: UtcMillis) -> Result<WalName, NameError> {
    let (codec, device, notes) = parse_codec_and_device(file_name)?;
    let start = parse_timestamp(file_name, now)?;
    Ok(WalName {
        device,
        codec,
        start,
        notes,
    })
}

/// The codec and device a name declares, without looking at its timestamp.
/// Names that do not follow the full pattern fall back to the backend's
/// lenient rules (codec from `_pcm16_`/`_pcm8_`, else Opus; frame size from the
/// first `_fs<N>`), with a note saying so.
pub fn parse_codec_and_device(file_name: &str) -> Result<(Codec, String, Vec<String>), NameError> {
    let stem = file_name.strip_suffix(".bin").ok_or(NameError::NotBin)?;
    let tokens: Vec<&str> = stem.split('_').collect();
    for bad in ["aac", "lc3"] {
        if tokens.contains(&bad) {
            let shown = if bad == "lc3" { "lc3_fs1030" } else { bad };
            return Err(NameError::UnsupportedCodec(shown.to_string()));
        }
    }
    if let Some(parsed) = parse_strict(&tokens)? {
        return Ok((parsed.0, parsed.1, Vec::new()));
    }
    let mut notes = vec![
        "name does not follow audio_{device}_{codec}_{rate}_{channels}_fs{N}_{start}.bin; \
         codec and frame size taken by the backend's lenient rules"
            .to_string(),
    ];
    let rate_after = |codec: &str| -> Option<u32> {
        let i = tokens.iter().position(|t| *t == codec)?;
        tokens.get(i + 1)?.parse().ok()
    };
    let codec = if tokens.contains(&"pcm16") {
        Codec::Pcm16 {
            sample_rate: rate_after("pcm16").unwrap_or(16_000),
        }
    } else if tokens.contains(&"pcm8") {
        Codec::Pcm8 {
            sample_rate: rate_after("pcm8").unwrap_or(8_000),
        }
    } else {
        let fs = tokens
            .iter()
            .find_map(|t| t.strip_prefix("fs").and_then(|n| n.parse::<u32>().ok()))
            .unwrap_or(160);
        if fs != 160 && fs != 320 {
            notes.push(format!("unusual Opus frame size {fs}; decoding with it"));
        }
        Codec::Opus { frame_samples: fs }
    };
    let device = if tokens.len() > 2 && tokens[0] == "audio" {
        tokens[1].to_string()
    } else {
        "phone".to_string()
    };
    Ok((codec, device, notes))
}

/// `audio_{device...}_{codec}_{rate}_{channels}_fs{N}_{ts}`, parsed from the
/// right. `None` when the name is not of that shape (the lenient rules take
/// over); an error when it is, but declares a codec, a rate or channels that
/// would be decoded wrongly: never guessed as the pendant's Opus.
fn parse_strict(tokens: &[&str]) -> Result<Option<(Codec, String)>, NameError> {
    let n = tokens.len();
    if n < 7 || tokens[0] != "audio" {
        return Ok(None);
    }
    let shape = || -> Option<(u32, u32, u32)> {
        Some((
            tokens[n - 2].strip_prefix("fs")?.parse().ok()?,
            tokens[n - 3].parse().ok()?,
            tokens[n - 4].parse().ok()?,
        ))
    };
    let Some((frame_size, channels, rate)) = shape() else {
        return Ok(None);
    };
    let (codec, codec_start) = if n >= 8 && tokens[n - 6] == "opus" && tokens[n - 5] == "fs320" {
        (Codec::Opus { frame_samples: 320 }, n - 6)
    } else {
        let c = match tokens[n - 5] {
            "opus" => Codec::Opus {
                frame_samples: frame_size,
            },
            "pcm16" => Codec::Pcm16 { sample_rate: rate },
            "pcm8" => Codec::Pcm8 { sample_rate: rate },
            other => return Err(NameError::UnsupportedCodec(other.to_string())),
        };
        (c, n - 5)
    };
    if codec_start < 2 {
        return Ok(None);
    }
    if channels != 1 {
        return Err(NameError::UnsupportedLayout(format!("{channels} channels")));
    }
    if matches!(codec, Codec::Opus { .. }) && rate != 16_000 {
        return Err(NameError::UnsupportedLayout(format!("Opus at {rate} Hz")));
    }
    Ok(Some((codec, tokens[1..codec_start].join("_"))))
}

/// The start time a name declares, checked against `now`.
pub fn parse_timestamp(file_name: &str, now: UtcMillis) -> Result<UtcMillis, NameError> {
    let stem = file_name.strip_suffix(".bin").ok_or(NameError::NotBin)?;
    let digits = stem
        .rsplit_once('_')
        .map(|(_, t)| t)
        .ok_or(NameError::NoTimestamp)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NameError::NoTimestamp);
    }
    let raw: i64 = digits.parse().map_err(|_| NameError::NoTimestamp)?;
    let start = if raw > MILLIS_THRESHOLD {
        UtcMillis(raw)
    } else {
        UtcMillis::from_secs(raw)
    };
    if start < EARLIEST_PLAUSIBLE {
        return Err(NameError::TooEarly {
            raw,
            shown: start.to_rfc3339(),
        });
    }
    if start.since(now) > FUTURE_SKEW_MS {
        return Err(NameError::InFuture {
            raw,
            shown: start.to_rfc3339(),
            now: now.to_rfc3339(),
        });
    }
    Ok(start)
}

/// The canonical name for a file of `codec` audio from `device` starting at `start`.
pub fn file_name(device: &str, codec: Codec, start: UtcMillis) -> String {
    let (rate, fs) = match codec {
        Codec::Opus { frame_samples } => (16_000, frame_samples),
        Codec::Pcm16 { sample_rate } | Codec::Pcm8 { sample_rate } => (sample_rate, 160),
    };
    let device = if device.is_empty() { "omi" } else { device };
    format!(
        "audio_{device}_{}_{rate}_1_fs{fs}_{}.bin",
        codec.name(),
        start.as_secs()
    )
}

/// Why a body stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyEnd {
    /// Fewer than 4 bytes left for a length prefix.
    TruncatedLength {
        /// Byte offset of the partial prefix.
        offset: u64,
        /// How many bytes were left.
        left: usize,
    },
    /// A length of zero.
    ZeroLength {
        /// Byte offset of the prefix.
        offset: u64,
    },
    /// A length over [`MAX_FRAME_LEN`].
    OversizedLength {
        /// Byte offset of the prefix.
        offset: u64,
        /// The length it claimed.
        len: u32,
    },
    /// A frame that runs past the end of the file.
    TruncatedFrame {
        /// Byte offset of the prefix.
        offset: u64,
        /// The length it claimed.
        len: u32,
        /// How many bytes were actually there.
        available: usize,
    },
}

impl BodyEnd {
    /// Bytes of the file left unread from the stopping point.
    pub fn offset(&self) -> u64 {
        match self {
            BodyEnd::TruncatedLength { offset, .. }
            | BodyEnd::ZeroLength { offset }
            | BodyEnd::OversizedLength { offset, .. }
            | BodyEnd::TruncatedFrame { offset, .. } => *offset,
        }
    }
}

impl fmt::Display for BodyEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyEnd::TruncatedLength { offset, left } => write!(
                f,
                "at byte {offset}: {left} stray byte(s) where a 4-byte frame length should be; ignored"
            ),
            BodyEnd::ZeroLength { offset } => {
                write!(
                    f,
                    "at byte {offset}: frame length 0 ends the audio; the rest is ignored"
                )
            }
            BodyEnd::OversizedLength { offset, len } => write!(
                f,
                "at byte {offset}: frame length {len} is over {MAX_FRAME_LEN}; the rest is ignored"
            ),
            BodyEnd::TruncatedFrame {
                offset,
                len,
                available,
            } => write!(
                f,
                "at byte {offset}: last frame is truncated ({available} of {len} bytes); dropped"
            ),
        }
    }
}

/// Iterates the frames of a body: `(byte offset of the frame data, frame bytes)`.
/// When it stops early, [`Frames::end`] says why.
pub struct Frames<'a> {
    body: &'a [u8],
    pos: usize,
    end: Option<BodyEnd>,
}

impl<'a> Frames<'a> {
    /// Starts at the beginning of `body`.
    pub fn new(body: &'a [u8]) -> Self {
        Frames {
            body,
            pos: 0,
            end: None,
        }
    }

    /// Why iteration stopped before the end of the body, once it has.
    pub fn end(&self) -> Option<&BodyEnd> {
        self.end.as_ref()
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = (u64, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if self.end.is_some() || self.pos >= self.body.len() {
            return None;
        }
        let offset = self.pos as u64;
        let rest = &self.body[self.pos..];
        if rest.len() < 4 {
            self.end = Some(BodyEnd::TruncatedLength {
                offset,
                left: rest.len(),
            });
            return None;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        if len == 0 {
            self.end = Some(BodyEnd::ZeroLength { offset });
            return None;
        }
        if len > MAX_FRAME_LEN {
            self.end = Some(BodyEnd::OversizedLength { offset, len });
            return None;
        }
        let available = rest.len() - 4;
        if available < len as usize {
            self.end = Some(BodyEnd::TruncatedFrame {
                offset,
                len,
                available,
            });
            return None;
        }
        self.pos += 4 + len as usize;
        Some((offset + 4, &rest[4..4 + len as usize]))
    }
}

/// Writes frames as a body.
pub fn write_body<'f, W: Write>(
    mut out: W,
    frames: impl IntoIterator<Item = &'f [u8]>,
) -> io::Result<()> {
    for frame in frames {
        if frame.is_empty() || frame.len() > MAX_FRAME_LEN as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes cannot be stored in a .bin file",
                    frame.len()
                ),
            ));
        }
        out.write_all(&(frame.len() as u32).to_le_bytes())?;
        out.write_all(frame)?;
    }
    out.flush()
}

/// Writes a whole file (named by [`file_name`]) into `dir`, returning its path.
pub fn write_file<'f>(
    dir: &Path,
    device: &str,
    codec: Codec,
    start: UtcMillis,
    frames: impl IntoIterator<Item = &'f [u8]>,
) -> io::Result<std::path::PathBuf> {
    let path = dir.join(file_name(device, codec, start));
    let mut body = Vec::new();
    write_body(&mut body, frames)?;
    std::fs::write(&path, body)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: UtcMillis = UtcMillis(1_800_000_000_000);

    #[test]
    fn parses_the_documented_example() {
        let n = parse_name("audio_omi_opus_fs320_16000_1_fs320_1717000000.bin", NOW).unwrap();
        assert_eq!(n.device, "omi");
        assert_eq!(n.codec, Codec::Opus { frame_samples: 320 });
        assert_eq!(n.start, UtcMillis(1_717_000_000_000));
        assert!(n.notes.is_empty(), "{:?}", n.notes);
    }

    #[test]
    fn parses_other_codecs_and_devices_with_underscores() {
        let n = parse_name("audio_my_omi_pcm16_16000_1_fs160_1717000000.bin", NOW).unwrap();
        assert_eq!(n.device, "my_omi");
        assert_eq!(n.codec, Codec::Pcm16 { sample_rate: 16000 });
        let n = parse_name("audio_omi_pcm8_8000_1_fs160_1717000000.bin", NOW).unwrap();
        assert_eq!(n.codec, Codec::Pcm8 { sample_rate: 8000 });
        let n = parse_name("audio_omi_opus_16000_1_fs160_1717000000.bin", NOW).unwrap();
        assert_eq!(n.codec, Codec::Opus { frame_samples: 160 });
        assert!(n.notes.is_empty());
    }

    #[test]
    fn milliseconds_are_recognised() {
        let n = parse_name("audio_omi_opus_fs320_16000_1_fs320_1717000000123.bin", NOW).unwrap();
        assert_eq!(n.start, UtcMillis(1_717_000_000_123));
    }

    #[test]
    fn exactly_the_threshold_is_seconds() {
        // 10_000_000_000 s is year 2286: in the future, proving it was read as seconds.
        let e = parse_timestamp("x_10000000000.bin", NOW).unwrap_err();
        assert!(matches!(e, NameError::InFuture { .. }), "{e}");
    }

    #[test]
    fn refuses_impossible_times() {
        let e = parse_name("audio_omi_opus_fs320_16000_1_fs320_1600000000.bin", NOW).unwrap_err();
        assert!(matches!(e, NameError::TooEarly { .. }));
        assert!(e.to_string().contains("2020-09-13"), "{e}");
        let e = parse_name("audio_omi_opus_fs320_16000_1_fs320_1900000000.bin", NOW).unwrap_err();
        assert!(matches!(e, NameError::InFuture { .. }));
        assert!(e.is_time_only());
        let e = parse_name("audio_omi_opus_fs320_16000_1_fs320_.bin", NOW).unwrap_err();
        assert_eq!(e, NameError::NoTimestamp);
        let e = parse_name("recording.bin", NOW).unwrap_err();
        assert_eq!(e, NameError::NoTimestamp);
        // A little clock skew is forgiven; more is not.
        assert!(parse_timestamp("a_1800000060.bin", NOW).is_ok());
        assert!(parse_timestamp("a_1800000400.bin", NOW).is_err());
    }

    #[test]
    fn refuses_aac_and_lc3_clearly() {
        let e = parse_name("audio_omi_aac_16000_1_fs160_1717000000.bin", NOW).unwrap_err();
        assert!(e.to_string().contains("aac"));
        assert!(!e.is_time_only());
        let e = parse_name("audio_omi_lc3_fs1030_16000_1_fs1030_1717000000.bin", NOW).unwrap_err();
        assert!(e.to_string().contains("lc3_fs1030"));
    }

    #[test]
    fn lenient_names_get_a_note() {
        let n = parse_name("backlog_fs320_1717000000.bin", NOW).unwrap();
        assert_eq!(n.codec, Codec::Opus { frame_samples: 320 });
        assert_eq!(n.device, "phone");
        assert!(!n.notes.is_empty());
    }

    #[test]
    fn file_name_round_trips() {
        let name = file_name("omi", Codec::PENDANT, UtcMillis(1_717_000_000_000));
        assert_eq!(name, "audio_omi_opus_fs320_16000_1_fs320_1717000000.bin");
        let n = parse_name(&name, NOW).unwrap();
        assert_eq!(n.codec, Codec::PENDANT);
    }

    #[test]
    fn body_round_trips_and_reports_each_kind_of_end() {
        let mut body = Vec::new();
        write_body(&mut body, [&[1u8, 2, 3][..], &[4u8; 70][..]]).unwrap();
        let frames: Vec<_> = Frames::new(&body).collect();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0], (4, &[1u8, 2, 3][..]));

        let mut truncated = body.clone();
        truncated.extend_from_slice(&100u32.to_le_bytes());
        truncated.extend_from_slice(&[0u8; 10]);
        let mut it = Frames::new(&truncated);
        assert_eq!(it.by_ref().count(), 2);
        assert_eq!(
            it.end(),
            Some(&BodyEnd::TruncatedFrame {
                offset: 81,
                len: 100,
                available: 10
            })
        );

        let mut zero = body.clone();
        zero.extend_from_slice(&0u32.to_le_bytes());
        zero.extend_from_slice(&[9u8; 20]);
        let mut it = Frames::new(&zero);
        assert_eq!(it.by_ref().count(), 2);
        assert_eq!(it.end(), Some(&BodyEnd::ZeroLength { offset: 81 }));

        let mut big = body.clone();
        big.extend_from_slice(&70_000u32.to_le_bytes());
        let mut it = Frames::new(&big);
        assert_eq!(it.by_ref().count(), 2);
        assert!(matches!(
            it.end(),
            Some(BodyEnd::OversizedLength { len: 70_000, .. })
        ));

        let mut stray = body.clone();
        stray.extend_from_slice(&[1, 2]);
        let mut it = Frames::new(&stray);
        assert_eq!(it.by_ref().count(), 2);
        assert!(matches!(
            it.end(),
            Some(BodyEnd::TruncatedLength { left: 2, .. })
        ));
        assert!(it.end().unwrap().to_string().contains("byte 81"));
    }

    #[test]
    fn empty_body_has_no_frames_and_no_error() {
        let mut it = Frames::new(&[]);
        assert_eq!(it.next(), None);
        assert_eq!(it.end(), None);
    }

    proptest::proptest! {
        #[test]
        fn frames_never_panic_and_stay_in_bounds(body in proptest::collection::vec(proptest::num::u8::ANY, 0..2048)) {
            let mut it = Frames::new(&body);
            let mut last_end = 0u64;
            for (off, frame) in it.by_ref() {
                proptest::prop_assert!(off >= last_end + 4);
                proptest::prop_assert!(!frame.is_empty());
                last_end = off + frame.len() as u64;
                proptest::prop_assert!(last_end as usize <= body.len());
            }
            if let Some(end) = it.end() {
                proptest::prop_assert!(end.offset() as usize <= body.len());
            }
        }

        #[test]
        fn names_never_panic(name in "[a-z0-9_]{0,40}(\\.bin)?") {
            let _ = parse_name(&name, NOW);
        }
    }

    #[test]
    fn a_name_that_declares_what_we_would_decode_wrongly_is_refused() {
        let refused = |name: &str| parse_codec_and_device(name).unwrap_err().to_string();
        assert!(refused("audio_omi_flac_16000_1_fs160_1748854800.bin").contains("codec `flac`"));
        let stereo = refused("audio_omi_opus_16000_2_fs160_1748854800.bin");
        assert!(stereo.contains("2 channels"), "{stereo}");
        let fast = refused("audio_omi_opus_48000_1_fs960_1748854800.bin");
        assert!(fast.contains("Opus at 48000 Hz"), "{fast}");
        // What the pendant writes, and PCM at its own rate, still decode.
        let (codec, device, notes) =
            parse_codec_and_device("audio_omi_pcm16_48000_1_fs160_1748854800.bin").unwrap();
        assert_eq!(
            codec,
            Codec::Pcm16 {
                sample_rate: 48_000
            }
        );
        assert_eq!((device.as_str(), notes.len()), ("omi", 0));
        assert!(
            parse_codec_and_device("audio_omi_opus_fs320_16000_1_fs320_1748854800.bin").is_ok()
        );
    }
}
