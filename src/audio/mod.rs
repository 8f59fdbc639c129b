//! Audio: codecs, decoding to 16 kHz mono, and reading the audio of a run.
//!
//! Everything downstream (VAD, Whisper, playback) works on 16 kHz mono `f32`
//! samples in [-1, 1]. [`FrameDecoder`] turns one encoded frame into such
//! samples; [`PendantEncoder`] encodes as the pendant does; [`decode_run`] streams a whole run of a capture through it in
//! bounded memory; [`decode_range`] fetches the samples of one segment.

mod codec;
mod decode;
mod encode;
mod resample;
mod stream;

pub use codec::{Codec, TARGET_RATE, opus_packet_samples};
pub use decode::{DecodeError, FrameDecoder};
pub use encode::{PENDANT_FRAME, PendantEncoder};
pub use resample::Resampler;
pub use stream::{DecodeStats, decode_range, decode_run};
