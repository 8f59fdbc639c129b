//! The Silero VAD v6 network at 16 kHz, in plain Rust.
//!
//! Per 512-sample chunk, exactly as `silero_vad_16k_op15.onnx` run through
//! the package's `OnnxWrapper`:
//!
//! 1. prepend the last 64 samples of the previous chunk (zeros at the start)
//!    and reflect-pad 64 samples on the right: 640 samples;
//! 2. STFT as a convolution (kernel 256, stride 128, no bias; the basis is a
//!    periodic-Hann DFT) → 258 × 4; magnitude of 129 bins
//!    `sqrt(re² + im²)` from rows `k` and `k + 129`;
//! 3. four conv + ReLU layers (129→128 k3 p1; 128→64 k3 s2 p1;
//!    64→64 k3 s2 p1; 64→128 k3 p1) → 128 × 1;
//! 4. one LSTM cell (hidden and cell state of 128 carried across chunks);
//! 5. ReLU(h), a 1×1 conv 128→1 with bias, sigmoid.
//!
//! Read off the ONNX graph itself: the padding is reflect-only on the right
//! (pads `[0, 64]`); the LSTM's weights are stored in PyTorch's gate order
//! and re-sliced to ONNX's (i, o, f, c) inside the graph; the decoder's
//! dropout is gone (eval export) and the 1×1 conv sees ReLU(h), while the
//! state handed back is the raw (h, c); the output is a mean over the time
//! axis, which has length 1 for a 576-sample input; `sr` only enters as
//! `state + 0 · sr`; its `If` nodes only squeeze shapes or fall back to a
//! zero state. The context is not in the graph: the Python wrapper prepends
//! it and keeps the last 64 samples of each 576-sample input.
//!
//! Only the LSTM recurrence is sequential, so [`SileroVad`] runs steps 1-3
//! and the LSTM's input projection for a block of chunks at once, then walks
//! the recurrence chunk by chunk. The STFT is an FFT (the basis is checked
//! to be the DFT it replaces), and every dense product adds its terms in the
//! same order whatever the block size, so a window's probability is the
//! same bit for bit whether it is computed alone or in a block.

use std::sync::OnceLock;

use super::WINDOW_SAMPLES;
use super::kernels::{Columns, Dense, GATES, HIDDEN, lstm_step, panel_recurrent_weights, sigmoid};
use super::spectrum::{BINS, FRAME, LANES, Stft, StftScratch};
use super::weights::{EMBEDDED, Weights, WeightsError};

/// Samples of the previous chunk prepended to each chunk.
const CONTEXT: usize = 64;
/// Context plus chunk: the model's input.
const INPUT: usize = CONTEXT + WINDOW_SAMPLES;
/// Input after reflect-padding 64 samples on the right.
const PADDED: usize = INPUT + 64;
/// STFT hop.
const HOP: usize = 128;
/// STFT frames per chunk: (640 - 256) / 128 + 1.
const FRAMES: usize = (PADDED - FRAME) / HOP + 1;
/// Channels after each convolution.
const C1: usize = 128;
const C2: usize = 64;
const C3: usize = 64;
const C4: usize = 128;
/// Chunks run through the convolutions together.
pub(crate) const BLOCK: usize = 32;
/// Magnitude the network accepts; samples are clamped to ±this so that
/// its arithmetic stays finite whatever the input.
const SAMPLE_LIMIT: f32 = 1000.0;

/// The weights rearranged for the forward pass.
struct Model {
    /// The STFT (the basis checked to be a periodic-Hann DFT).
    stft: Stft,
    /// conv1..conv4 as dense layers over im2col columns, taps outermost
    /// (feature `tap · C_in + c`). conv3's single output position sees the
    /// left padding through tap 0, so only taps 1 and 2 are kept; conv4 runs
    /// on a length-1 input, so only its centre tap is.
    conv1: Dense,
    conv2: Dense,
    conv3: Dense,
    conv4: Dense,
    /// The LSTM's input projection, with bias `b_ih + b_hh`.
    input: Dense,
    /// Recurrent weights, in panels (see [`panel_recurrent_weights`]).
    w_hh: Vec<f32>,
    /// The 1×1 output convolution.
    w_out: [f32; HIDDEN],
    b_out: f32,
}

/// A conv1d weight `[out][in][3]` as a dense `out × (taps · in)` matrix
/// over the given taps, tap-major.
fn conv_taps(w: &[f32], out: usize, inp: usize, taps: &[usize]) -> Vec<f32> {
    let mut m = Vec::with_capacity(out * inp * taps.len());
    for o in 0..out {
        for &tap in taps {
            for c in 0..inp {
                m.push(w[(o * inp + c) * 3 + tap]);
            }
        }
    }
    m
}

impl Model {
    fn new(w: &Weights) -> Result<Self, WeightsError> {
        let basis_error = Stft::check_basis(w.get("model.stft.forward_basis_buffer"));
        if basis_error > 1e-6 {
            return Err(WeightsError::NotHannDft(basis_error));
        }
        let conv = |i: usize, out: usize, inp: usize, taps: &[usize]| {
            let weight = w.get(&format!("model.encoder.{i}.reparam_conv.weight"));
            let bias = w.get(&format!("model.encoder.{i}.reparam_conv.bias"));
            Dense::new(
                &conv_taps(weight, out, inp, taps),
                out,
                inp * taps.len(),
                bias,
            )
        };
        let b_gates: Vec<f32> = w
            .get("model.decoder.rnn.bias_ih")
            .iter()
            .zip(w.get("model.decoder.rnn.bias_hh"))
            .map(|(a, b)| a + b)
            .collect();
        Ok(Model {
            stft: Stft::new(),
            conv1: conv(0, C1, BINS, &[0, 1, 2]),
            conv2: conv(1, C2, C1, &[0, 1, 2]),
            conv3: conv(2, C3, C2, &[1, 2]),
            conv4: conv(3, C4, C3, &[1]),
            input: Dense::new(
                w.get("model.decoder.rnn.weight_ih"),
                GATES,
                HIDDEN,
                &b_gates,
            ),
            w_hh: panel_recurrent_weights(w.get("model.decoder.rnn.weight_hh")),
            w_out: w
                .get("model.decoder.decoder.2.weight")
                .try_into()
                .expect("checked shape"),
            b_out: w.get("model.decoder.decoder.2.bias")[0],
        })
    }

    /// The model built from the embedded blob, parsed once per process.
    fn embedded() -> Result<&'static Model, WeightsError> {
        static MODEL: OnceLock<Result<Model, WeightsError>> = OnceLock::new();
        MODEL
            .get_or_init(|| Weights::parse(EMBEDDED).and_then(|w| Model::new(&w)))
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// Slots per chunk in the magnitude buffer: a zero frame, the four frames,
/// a zero frame. conv1's column for frame `f` is then the three slots from
/// `f` on, padding included.
const MAG_SLOTS: usize = FRAMES + 2;
/// Slots per chunk in conv1's output: a zero position, then the four. conv2
/// (stride 2) reads slots 0-2 and 2-4.
const Y1_SLOTS: usize = FRAMES + 1;

/// Buffers for one block of chunks, allocated once. The zero slots are
/// never written.
struct Scratch {
    /// Each chunk with its context and padding, 640 × BLOCK.
    padded: Vec<f32>,
    stft: StftScratch,
    lanes: [[f32; LANES]; BINS],
    /// STFT magnitudes, (6 × 129) × BLOCK.
    mags: Vec<f32>,
    /// conv1 output, (5 × 128) × BLOCK.
    y1: Vec<f32>,
    /// conv2 output, 2 × 64 per chunk; conv3 and conv4 outputs.
    y2: Vec<f32>,
    y3: Vec<f32>,
    y4: Vec<f32>,
    /// LSTM input projections, 512 per chunk.
    gates_x: Vec<f32>,
    pre: [f32; GATES],
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            padded: vec![0.0; PADDED * BLOCK],
            stft: StftScratch::new(),
            lanes: [[0.0; LANES]; BINS],
            mags: vec![0.0; MAG_SLOTS * BINS * BLOCK],
            y1: vec![0.0; Y1_SLOTS * C1 * BLOCK],
            y2: vec![0.0; 2 * C2 * BLOCK],
            y3: vec![0.0; C3 * BLOCK],
            y4: vec![0.0; C4 * BLOCK],
            gates_x: vec![0.0; GATES * BLOCK],
            pre: [0.0; GATES],
        }
    }
}

/// The streaming Silero VAD v6 network at 16 kHz: one speech probability
/// per 512-sample window, with the LSTM state and the 64-sample context
/// carried from window to window.
///
/// Samples are expected in [-1, 1]. NaN and infinite samples are taken as
/// 0, and finite ones are clamped to ±1000, so no input makes the output
/// NaN.
pub struct SileroVad {
    model: &'static Model,
    h: [f32; HIDDEN],
    c: [f32; HIDDEN],
    context: [f32; CONTEXT],
    scratch: Box<Scratch>,
}

impl std::fmt::Debug for SileroVad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SileroVad").finish_non_exhaustive()
    }
}

impl Default for SileroVad {
    fn default() -> Self {
        Self::new()
    }
}

impl SileroVad {
    /// A network with the embedded weights and a fresh state.
    ///
    /// # Panics
    /// Only if the embedded weight blob is corrupt, which is a build bug
    /// (a unit test parses it); [`SileroVad::try_new`] returns the error
    /// instead.
    pub fn new() -> Self {
        Self::try_new().unwrap_or_else(|e| panic!("embedded Silero VAD weights: {e}"))
    }

    /// A network with the embedded weights, or why they cannot be used.
    pub fn try_new() -> Result<Self, WeightsError> {
        Ok(SileroVad {
            model: Model::embedded()?,
            h: [0.0; HIDDEN],
            c: [0.0; HIDDEN],
            context: [0.0; CONTEXT],
            scratch: Box::new(Scratch::new()),
        })
    }

    /// Forgets all audio seen so far (state and context back to zeros).
    pub fn reset(&mut self) {
        self.h = [0.0; HIDDEN];
        self.c = [0.0; HIDDEN];
        self.context = [0.0; CONTEXT];
    }

    /// The speech probability of the next 512-sample window. A shorter
    /// `chunk` is zero-padded to 512; samples past 512 are ignored.
    pub fn process_chunk(&mut self, chunk: &[f32]) -> f32 {
        let mut window = [0.0f32; WINDOW_SAMPLES];
        let n = chunk.len().min(WINDOW_SAMPLES);
        window[..n].copy_from_slice(&chunk[..n]);
        let mut out = [0.0f32];
        self.forward_block(&window, &mut out);
        out[0]
    }

    /// One speech probability per 512-sample window of `samples`, the last
    /// partial window zero-padded: the same values as calling
    /// [`SileroVad::process_chunk`] on each window in turn, and like it
    /// continuing from (and updating) the current state.
    pub fn probabilities(&mut self, samples: &[f32]) -> Vec<f32> {
        let windows = samples.len().div_ceil(WINDOW_SAMPLES);
        let mut out = vec![0.0f32; windows];
        let whole = samples.len() / WINDOW_SAMPLES;
        let (full, tail) = samples.split_at(whole * WINDOW_SAMPLES);
        self.run_windows(full, &mut out[..whole]);
        if !tail.is_empty() {
            out[whole] = self.process_chunk(tail);
        }
        out
    }

    /// Probabilities of whole windows: `samples.len() == 512 · out.len()`.
    pub(crate) fn run_windows(&mut self, samples: &[f32], out: &mut [f32]) {
        assert_eq!(samples.len(), out.len() * WINDOW_SAMPLES);
        for (chunks, probs) in samples
            .chunks(BLOCK * WINDOW_SAMPLES)
            .zip(out.chunks_mut(BLOCK))
        {
            self.forward_block(chunks, probs);
        }
    }

    /// Runs `out.len()` (at most [`BLOCK`]) whole windows.
    fn forward_block(&mut self, samples: &[f32], out: &mut [f32]) {
        let n = out.len();
        debug_assert!(n <= BLOCK && samples.len() == n * WINDOW_SAMPLES);
        let m = self.model;
        let s = &mut *self.scratch;

        // 1. Context and reflect padding.
        for (chunk, p) in samples
            .chunks_exact(WINDOW_SAMPLES)
            .zip(s.padded.chunks_exact_mut(PADDED))
        {
            p[..CONTEXT].copy_from_slice(&self.context);
            for (d, &x) in p[CONTEXT..INPUT].iter_mut().zip(chunk) {
                *d = sanitize(x);
            }
            for i in 0..PADDED - INPUT {
                p[INPUT + i] = p[INPUT - 2 - i];
            }
            self.context.copy_from_slice(&p[INPUT - CONTEXT..INPUT]);
        }
        // 2. STFT magnitudes, eight frames (two chunks) at a time.
        const CHUNKS_PER_GROUP: usize = LANES / FRAMES;
        for first in (0..n).step_by(CHUNKS_PER_GROUP) {
            let frames: [Option<&[f32]>; LANES] = std::array::from_fn(|lane| {
                let t = first + lane / FRAMES;
                let at = t * PADDED + (lane % FRAMES) * HOP;
                (t < n).then(|| &s.padded[at..at + FRAME])
            });
            m.stft.magnitudes(&frames, &mut s.stft, &mut s.lanes);
            for lane in 0..LANES.min((n - first) * FRAMES) {
                let (t, f) = (first + lane / FRAMES, lane % FRAMES);
                let slot = &mut s.mags[(t * MAG_SLOTS + 1 + f) * BINS..][..BINS];
                for (d, bin) in slot.iter_mut().zip(&s.lanes) {
                    *d = bin[lane];
                }
            }
        }

        // 3. The convolutions, reading their taps from overlapping columns.
        let grouped = |per_group, step, slots, len| Columns {
            base: 0,
            per_group,
            step: step * len,
            group_step: slots * len,
        };
        m.conv1.apply(
            &s.mags,
            grouped(FRAMES, 1, MAG_SLOTS, BINS),
            FRAMES * n,
            &mut s.y1,
            Columns {
                base: C1,
                ..grouped(FRAMES, 1, Y1_SLOTS, C1)
            },
            true,
        );
        m.conv2.apply(
            &s.y1,
            grouped(2, 2, Y1_SLOTS, C1),
            2 * n,
            &mut s.y2,
            Columns::packed(C2),
            true,
        );
        m.conv3.apply(
            &s.y2,
            Columns::packed(2 * C2),
            n,
            &mut s.y3,
            Columns::packed(C3),
            true,
        );
        m.conv4.apply(
            &s.y3,
            Columns::packed(C3),
            n,
            &mut s.y4,
            Columns::packed(C4),
            true,
        );
        // 4. The LSTM's input projection for every chunk.
        m.input.apply(
            &s.y4,
            Columns::packed(C4),
            n,
            &mut s.gates_x,
            Columns::packed(GATES),
            false,
        );
        // The recurrence, then 5. ReLU, 1×1 conv, sigmoid.
        for (t, prob) in out.iter_mut().enumerate() {
            let gx: &[f32; GATES] = s.gates_x[t * GATES..(t + 1) * GATES]
                .try_into()
                .expect("GATES wide");
            lstm_step(gx, &m.w_hh, &mut self.h, &mut self.c, &mut s.pre);
            let logit = m.b_out
                + m.w_out
                    .iter()
                    .zip(&self.h)
                    .map(|(w, h)| w * h.max(0.0))
                    .sum::<f32>();
            *prob = sigmoid(logit);
        }
    }
}

/// What the network sees of a sample: NaN and infinities as 0, the rest
/// clamped to ±[`SAMPLE_LIMIT`].
#[inline]
fn sanitize(x: f32) -> f32 {
    if x.is_finite() {
        x.clamp(-SAMPLE_LIMIT, SAMPLE_LIMIT)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic test signal: a chirp-like tone with some noise.
    fn signal(n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| {
                let t = i as f32 / 16_000.0;
                0.3 * (2.0 * std::f32::consts::PI * (200.0 + 300.0 * t) * t).sin()
                    + ((i * 7919 % 1009) as f32 / 1009.0 - 0.5) * 0.05
            })
            .collect()
    }

    #[test]
    fn probabilities_continue_the_state_across_calls() {
        let x = signal(40 * WINDOW_SAMPLES + 100);
        let whole = SileroVad::new().probabilities(&x);
        assert_eq!(whole.len(), 41);
        let mut vad = SileroVad::new();
        let mut parts = vad.probabilities(&x[..7 * WINDOW_SAMPLES]);
        parts.extend(vad.probabilities(&x[7 * WINDOW_SAMPLES..]));
        assert_eq!(parts, whole);
        // Samples past 512 in one chunk are ignored.
        let mut a = SileroVad::new();
        let mut b = SileroVad::new();
        assert_eq!(
            a.process_chunk(&x[..WINDOW_SAMPLES + 50]),
            b.process_chunk(&x[..WINDOW_SAMPLES])
        );
    }

    #[test]
    fn a_basis_that_is_not_a_hann_dft_is_refused() {
        let mut blob = EMBEDDED.to_vec();
        // First basis value (row 0, n = 0; the window's zero) -> 0.5.
        let at = 8 + 4 + 2 + "model.stft.forward_basis_buffer".len() + 1 + 12;
        blob[at..at + 4].copy_from_slice(&0.5f32.to_le_bytes());
        let n = blob.len() - 4;
        let crc = crc32fast::hash(&blob[..n]);
        blob[n..].copy_from_slice(&crc.to_le_bytes());
        let w = Weights::parse(&blob).expect("structurally fine");
        match Model::new(&w) {
            Err(WeightsError::NotHannDft(e)) => assert!((e - 0.5).abs() < 1e-6, "{e}"),
            other => panic!("expected NotHannDft, got {:?}", other.err()),
        }
        assert!(Model::new(&Weights::parse(EMBEDDED).unwrap()).is_ok());
    }
}
