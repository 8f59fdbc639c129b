//! A streaming windowed-sinc resampler for PCM captures not at 16 kHz.

use std::f64::consts::PI;

/// Half-width of the interpolation kernel, in input samples.
const HALF_TAPS: usize = 16;

/// Converts a stream from one sample rate to another. Output sample `j` is
/// taken at input time `j * from / to` through a Hann-windowed sinc low-pass
/// (cut at the lower Nyquist), so the two streams stay aligned in time.
pub struct Resampler {
    from: u32,
    to: u32,
    cutoff: f64,
    /// Input not yet fully used, starting at absolute input index `base`.
    pending: Vec<f32>,
    base: u64,
    /// Next output sample index.
    next_out: u64,
    /// Total input seen.
    seen: u64,
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz.
    pub fn new(from: u32, to: u32) -> Self {
        Resampler {
            from: from.max(1),
            to: to.max(1),
            cutoff: (to as f64 / from.max(1) as f64).min(1.0),
            pending: Vec::new(),
            base: 0,
            next_out: 0,
            seen: 0,
        }
    }

    /// Feeds input and appends every output sample that is now computable.
    pub fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        self.pending.extend_from_slice(input);
        self.seen += input.len() as u64;
        self.drain(out, false);
    }

    /// Flushes the tail (treating input after the end as silence).
    pub fn finish(&mut self, out: &mut Vec<f32>) {
        self.drain(out, true);
    }

    fn drain(&mut self, out: &mut Vec<f32>, at_end: bool) {
        let total_out = self.seen * self.to as u64 / self.from as u64;
        loop {
            if self.next_out >= total_out && at_end {
                break;
            }
            // Input position of this output sample, as a fraction.
            let num = self.next_out * self.from as u64;
            let centre = num / self.to as u64;
            let frac = (num % self.to as u64) as f64 / self.to as f64;
            if !at_end && centre + HALF_TAPS as u64 + 1 > self.seen {
                break;
            }
            if self.next_out >= total_out {
                break;
            }
            out.push(self.sample_at(centre, frac));
            self.next_out += 1;
        }
        // Drop input no longer needed by any future output.
        let next_centre = self.next_out * self.from as u64 / self.to as u64;
        let keep_from = next_centre.saturating_sub(HALF_TAPS as u64);
        if keep_from > self.base {
            let drop = ((keep_from - self.base) as usize).min(self.pending.len());
            self.pending.drain(..drop);
            self.base += drop as u64;
        }
    }

    fn sample_at(&self, centre: u64, frac: f64) -> f32 {
        let mut acc = 0.0f64;
        let lo = centre as i64 - HALF_TAPS as i64 + 1;
        let hi = centre as i64 + HALF_TAPS as i64;
        for i in lo..=hi {
            if i < self.base as i64 {
                continue;
            }
            let Some(&x) = self.pending.get((i - self.base as i64) as usize) else {
                continue;
            };
            let t = (i - centre as i64) as f64 - frac;
            acc += x as f64 * kernel(t, self.cutoff);
        }
        acc as f32
    }
}

fn kernel(t: f64, cutoff: f64) -> f64 {
    let half = HALF_TAPS as f64;
    if t.abs() >= half {
        return 0.0;
    }
    let window = 0.5 * (1.0 + (PI * t / half).cos());
    let x = PI * t * cutoff;
    let sinc = if x.abs() < 1e-9 { 1.0 } else { x.sin() / x };
    cutoff * sinc * window
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, hz: f64, secs: f64) -> Vec<f32> {
        (0..(rate as f64 * secs) as usize)
            .map(|i| (2.0 * PI * hz * i as f64 / rate as f64).sin() as f32 * 0.5)
            .collect()
    }

    #[test]
    fn upsamples_8k_to_16k_with_the_right_length_and_shape() {
        let input = tone(8000, 440.0, 1.0);
        let mut r = Resampler::new(8000, 16000);
        let mut out = Vec::new();
        for chunk in input.chunks(123) {
            r.process(chunk, &mut out);
        }
        r.finish(&mut out);
        assert_eq!(out.len(), 16000);
        let expect = tone(16000, 440.0, 1.0);
        // Away from the edges the result matches the ideal tone closely.
        let err = out[100..15900]
            .iter()
            .zip(&expect[100..15900])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 0.01, "max error {err}");
    }

    #[test]
    fn downsamples_44k1_and_removes_content_above_nyquist() {
        let high = tone(44100, 12000.0, 0.5); // above 8 kHz: must vanish
        let mut r = Resampler::new(44100, 16000);
        let mut out = Vec::new();
        r.process(&high, &mut out);
        r.finish(&mut out);
        assert_eq!(out.len(), 8000);
        let rms = (out[200..7800].iter().map(|x| x * x).sum::<f32>() / 7600.0).sqrt();
        assert!(rms < 0.02, "rms {rms}");
    }
}
