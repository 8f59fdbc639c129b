//! The network's STFT magnitudes, by FFT.
//!
//! The model's STFT is a convolution with a 258 × 256 basis whose rows are
//! `w[n]·cos(2πkn/256)` and `-w[n]·sin(2πkn/256)` for k = 0..=128, with `w`
//! the periodic Hann window: a windowed real DFT. [`Stft::check_basis`]
//! verifies that of the weights, and [`Stft::magnitudes`] then computes
//! `|X[k]|` with a 128-point complex FFT of the even/odd samples plus the
//! usual real-input split, for eight frames at once (one per SIMD lane).
//! That is about 1/40 of the arithmetic of the convolution.

use std::f64::consts::PI;

/// Samples per STFT frame.
pub(crate) const FRAME: usize = 256;
/// Frequency bins of a frame's real DFT.
pub(crate) const BINS: usize = FRAME / 2 + 1;
/// Frames transformed together, one per lane.
pub(crate) const LANES: usize = 8;
/// Size of the complex FFT.
const HALF: usize = FRAME / 2;

type Lanes = [f32; LANES];

/// Tables for the windowed DFT, built once.
pub(crate) struct Stft {
    /// Periodic Hann window.
    window: [f32; FRAME],
    /// `e^{-2πij/128}` for j < 64, as (re, im).
    twiddles: [(f32, f32); HALF / 2],
    /// `e^{-2πik/256}` for k ≤ 128, for the real-input split.
    split: [(f32, f32); BINS],
    /// Bit reversal of 7-bit indices.
    bitrev: [u8; HALF],
}

/// Scratch for one transform of eight frames.
pub(crate) struct StftScratch {
    re: [Lanes; HALF],
    im: [Lanes; HALF],
}

impl StftScratch {
    /// Zeroed scratch.
    pub fn new() -> Self {
        StftScratch {
            re: [[0.0; LANES]; HALF],
            im: [[0.0; LANES]; HALF],
        }
    }
}

impl Stft {
    /// Builds the tables (in `f64`, rounded once to `f32`).
    pub fn new() -> Self {
        let window = std::array::from_fn(|n| {
            (0.5 - 0.5 * (2.0 * PI * n as f64 / FRAME as f64).cos()) as f32
        });
        let twiddles = std::array::from_fn(|j| {
            let a = -2.0 * PI * j as f64 / HALF as f64;
            (a.cos() as f32, a.sin() as f32)
        });
        let split = std::array::from_fn(|k| {
            let a = -2.0 * PI * k as f64 / FRAME as f64;
            (a.cos() as f32, a.sin() as f32)
        });
        let bitrev = std::array::from_fn(|i| (i as u8).reverse_bits() >> 1);
        Stft {
            window,
            twiddles,
            split,
            bitrev,
        }
    }

    /// The largest absolute difference between the model's STFT basis
    /// (258 × 256, row-major) and the periodic-Hann DFT computed here.
    pub fn check_basis(basis: &[f32]) -> f64 {
        assert_eq!(basis.len(), 2 * BINS * FRAME);
        let mut worst = 0.0f64;
        for k in 0..BINS {
            for n in 0..FRAME {
                let w = 0.5 - 0.5 * (2.0 * PI * n as f64 / FRAME as f64).cos();
                let a = 2.0 * PI * (k * n) as f64 / FRAME as f64;
                let re = f64::from(basis[k * FRAME + n]) - w * a.cos();
                let im = f64::from(basis[(BINS + k) * FRAME + n]) + w * a.sin();
                worst = worst.max(re.abs()).max(im.abs());
            }
        }
        worst
    }

    /// `|DFT(window · frame)|` of up to eight 256-sample frames: bin `k` of
    /// frame `l` lands in `out[k][l]`. Missing frames (`None`) give zeros.
    pub fn magnitudes(
        &self,
        frames: &[Option<&[f32]>; LANES],
        scratch: &mut StftScratch,
        out: &mut [[f32; LANES]; BINS],
    ) {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU supports the features the function is compiled for.
                unsafe { self.magnitudes_avx2(frames, scratch, out) };
                return;
            }
        }
        self.magnitudes_generic(frames, scratch, out);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn magnitudes_avx2(
        &self,
        frames: &[Option<&[f32]>; LANES],
        scratch: &mut StftScratch,
        out: &mut [[f32; LANES]; BINS],
    ) {
        self.magnitudes_generic(frames, scratch, out)
    }

    #[inline(always)]
    fn magnitudes_generic(
        &self,
        frames: &[Option<&[f32]>; LANES],
        s: &mut StftScratch,
        out: &mut [[f32; LANES]; BINS],
    ) {
        // z[m] = x[2m] + i·x[2m+1], windowed, in bit-reversed order.
        for (lane, frame) in frames.iter().enumerate() {
            match frame {
                Some(x) => {
                    let x: &[f32; FRAME] = (*x).try_into().expect("FRAME samples");
                    for m in 0..HALF {
                        let at = self.bitrev[m] as usize;
                        s.re[at][lane] = x[2 * m] * self.window[2 * m];
                        s.im[at][lane] = x[2 * m + 1] * self.window[2 * m + 1];
                    }
                }
                None => {
                    for m in 0..HALF {
                        s.re[m][lane] = 0.0;
                        s.im[m][lane] = 0.0;
                    }
                }
            }
        }
        // Radix-2 decimation in time, all lanes at once.
        let mut half = 1;
        while half < HALF {
            let stride = HALF / (2 * half);
            for start in (0..HALF).step_by(2 * half) {
                for j in 0..half {
                    let (wr, wi) = self.twiddles[j * stride];
                    let (a, b) = (start + j, start + j + half);
                    let (ar, ai, br, bi) = (s.re[a], s.im[a], s.re[b], s.im[b]);
                    let (mut nar, mut nai, mut nbr, mut nbi) =
                        ([0.0; LANES], [0.0; LANES], [0.0; LANES], [0.0; LANES]);
                    for l in 0..LANES {
                        let tr = wr * br[l] - wi * bi[l];
                        let ti = wr * bi[l] + wi * br[l];
                        nar[l] = ar[l] + tr;
                        nai[l] = ai[l] + ti;
                        nbr[l] = ar[l] - tr;
                        nbi[l] = ai[l] - ti;
                    }
                    (s.re[a], s.im[a], s.re[b], s.im[b]) = (nar, nai, nbr, nbi);
                }
            }
            half *= 2;
        }
        // Real-input split: X[k] = E[k] + e^{-2πik/256}·O[k] with
        // E = (Z[k] + conj Z[-k]) / 2 and O = (Z[k] - conj Z[-k]) / 2i.
        for (k, (mag, &(wr, wi))) in out.iter_mut().zip(&self.split).enumerate() {
            let (p, q) = (k % HALF, (HALF - k) % HALF);
            let (zr, zi, cr, ci) = (s.re[p], s.im[p], s.re[q], s.im[q]);
            for l in 0..LANES {
                let er = 0.5 * (zr[l] + cr[l]);
                let ei = 0.5 * (zi[l] - ci[l]);
                let or = 0.5 * (zi[l] + ci[l]);
                let oi = -0.5 * (zr[l] - cr[l]);
                let xr = er + wr * or - wi * oi;
                let xi = ei + wr * oi + wi * or;
                mag[l] = (xr * xr + xi * xi).sqrt();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magnitudes_match_a_direct_windowed_dft() {
        let stft = Stft::new();
        let frames: Vec<Vec<f32>> = (0..LANES)
            .map(|l| {
                (0..FRAME)
                    .map(|n| {
                        let t = n as f32;
                        (0.37 * t * (l as f32 + 1.0)).sin() * 0.5
                            + ((n * 7919 + l * 31) % 101) as f32 / 202.0
                            - 0.25
                    })
                    .collect()
            })
            .collect();
        let mut input: [Option<&[f32]>; LANES] =
            std::array::from_fn(|l| Some(frames[l].as_slice()));
        input[5] = None;
        let mut out = [[0.0; LANES]; BINS];
        stft.magnitudes(&input, &mut StftScratch::new(), &mut out);
        // The portable version (no AVX2) computes the same thing.
        let mut portable = [[0.0; LANES]; BINS];
        stft.magnitudes_generic(&input, &mut StftScratch::new(), &mut portable);
        for (a, b) in portable.iter().flatten().zip(out.iter().flatten()) {
            assert!((a - b).abs() < 1e-6);
        }
        for (l, frame) in frames.iter().enumerate() {
            for (k, bin) in out.iter().enumerate() {
                let (mut re, mut im) = (0.0f64, 0.0f64);
                if l != 5 {
                    for (n, &x) in frame.iter().enumerate() {
                        let w = 0.5 - 0.5 * (2.0 * PI * n as f64 / FRAME as f64).cos();
                        let a = 2.0 * PI * (k * n) as f64 / FRAME as f64;
                        re += w * f64::from(x) * a.cos();
                        im -= w * f64::from(x) * a.sin();
                    }
                }
                let want = re.hypot(im);
                assert!(
                    (f64::from(bin[l]) - want).abs() < 2e-5,
                    "lane {l} bin {k}: {} vs {want}",
                    bin[l]
                );
            }
        }
    }

    #[test]
    fn the_model_basis_is_a_hann_dft() {
        let w = super::super::weights::Weights::parse(super::super::weights::EMBEDDED).unwrap();
        let err = Stft::check_basis(w.get("model.stft.forward_basis_buffer"));
        assert!(err < 1e-6, "{err}");
        let mut other = w.get("model.stft.forward_basis_buffer").to_vec();
        other[300] += 0.01;
        assert!(Stft::check_basis(&other) > 0.009);
    }
}
