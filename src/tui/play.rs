//! Playback through the default sound output (cpal).
//!
//! A [`Player`] plays one buffer of 16 kHz samples (a segment, or a
//! conversation from a segment on, as [`crate::engine::export::Clip`] lays
//! it out), resampled on the fly to the device's rate, and tells where it
//! is, so the transcript line being heard can be highlighted. Without a
//! sound card (no device, or a device that cannot be opened) every call
//! returns a one-line reason for the status line; nothing panics. ALSA's own
//! complaints go to stderr, which the TUI sends to its log file.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::audio::TARGET_RATE;

/// Playback state shared with the audio callback.
#[derive(Debug, Default)]
struct Shared {
    /// Position in the buffer, in 16 kHz samples, times [`FRACTION`].
    pos: AtomicU64,
    /// Set once the end is reached.
    done: AtomicBool,
}

/// Fixed-point steps for the resampler.
const FRACTION: u64 = 1 << 16;

/// What is playing.
struct Playing {
    _stream: cpal::Stream,
    shared: Arc<Shared>,
    len: u64,
}

/// The sound output and what it is playing.
#[derive(Default)]
pub struct Player {
    playing: Option<Playing>,
}

impl std::fmt::Debug for Player {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Player")
            .field("playing", &self.playing.is_some())
            .finish()
    }
}

impl Player {
    /// Plays `samples` (16 kHz mono) from sample `from`, stopping what played.
    pub fn play(&mut self, samples: Vec<f32>, from: u64) -> Result<(), String> {
        self.stop();
        let host = cpal::default_host();
        let device = host
            .default_output_device()
            .ok_or_else(|| "no sound output device: playback is off".to_string())?;
        let config = device
            .default_output_config()
            .map_err(|e| format!("no usable sound output ({e}): playback is off"))?;
        let rate = u64::from(config.sample_rate()).max(1);
        let channels = usize::from(config.channels()).max(1);
        let stream_config: cpal::StreamConfig = config.into();
        let len = samples.len() as u64;
        let shared = Arc::new(Shared::default());
        shared
            .pos
            .store(from.min(len) * FRACTION, Ordering::Relaxed);
        let step = u64::from(TARGET_RATE) * FRACTION / rate;
        let cb = shared.clone();
        let stream = device
            .build_output_stream(
                stream_config,
                move |data: &mut [f32], _: &cpal::OutputCallbackInfo| {
                    let mut pos = cb.pos.load(Ordering::Relaxed);
                    for frame in data.chunks_mut(channels) {
                        let i = (pos / FRACTION) as usize;
                        let v = samples.get(i).copied().unwrap_or(0.0);
                        frame.fill(v);
                        if i < samples.len() {
                            pos += step;
                        }
                    }
                    cb.pos.store(pos, Ordering::Relaxed);
                    if pos / FRACTION >= samples.len() as u64 {
                        cb.done.store(true, Ordering::Relaxed);
                    }
                },
                |e| tracing::warn!("playback: {e}"),
                None,
            )
            .map_err(|e| format!("cannot open the sound output ({e}): playback is off"))?;
        stream
            .play()
            .map_err(|e| format!("cannot start playback ({e})"))?;
        self.playing = Some(Playing {
            _stream: stream,
            shared,
            len,
        });
        Ok(())
    }

    /// Stops playing.
    pub fn stop(&mut self) {
        self.playing = None;
    }

    /// Where playback is, in 16 kHz samples of the buffer; `None` when
    /// nothing plays (or it reached the end).
    pub fn position(&self) -> Option<u64> {
        let p = self.playing.as_ref()?;
        if p.shared.done.load(Ordering::Relaxed) {
            return None;
        }
        Some((p.shared.pos.load(Ordering::Relaxed) / FRACTION).min(p.len))
    }

    /// Moves playback by `seconds` (negative: back), within the buffer.
    pub fn seek(&self, seconds: i64) {
        if let Some(p) = &self.playing {
            let now = p.shared.pos.load(Ordering::Relaxed) / FRACTION;
            let to = now
                .saturating_add_signed(seconds * i64::from(TARGET_RATE))
                .min(p.len);
            p.shared.pos.store(to * FRACTION, Ordering::Relaxed);
        }
    }

    /// Ends playback that reached the end; true when it did.
    pub fn reap(&mut self) -> bool {
        let ended = self
            .playing
            .as_ref()
            .is_some_and(|p| p.shared.done.load(Ordering::Relaxed));
        if ended {
            self.playing = None;
        }
        ended
    }
}
