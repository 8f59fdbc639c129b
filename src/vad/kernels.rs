//! The network's numeric inner loops: dense layers over columns of
//! activations (the convolutions and the LSTM's input projection), the LSTM
//! recurrence, and the activation functions.
//!
//! Everything here is single-threaded `f32`. The hot kernels are compiled
//! twice, once for the baseline target and once with AVX2 and FMA, and pick
//! one at run time.

/// Output rows per panel of a [`Dense`] layer (two AVX registers).
const ROWS: usize = 16;
/// Columns computed together by the [`Dense`] kernel: 6 columns × 2
/// registers of accumulators, plus the weights and one broadcast, fill the
/// 16 AVX registers.
const TILE: usize = 6;

/// Where the columns of an activation matrix live in a slice: column `j`
/// starts at `base + (j / per_group) · group_step + (j % per_group) · step`
/// and holds its features contiguously. Overlapping columns let a
/// convolution read its taps without an im2col copy.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Columns {
    pub base: usize,
    pub per_group: usize,
    pub step: usize,
    pub group_step: usize,
}

impl Columns {
    /// Columns packed one after another, `len` apart.
    pub fn packed(len: usize) -> Self {
        Columns {
            base: 0,
            per_group: 1,
            step: len,
            group_step: len,
        }
    }

    fn offset(&self, j: usize) -> usize {
        self.base + (j / self.per_group) * self.group_step + (j % self.per_group) * self.step
    }
}

/// A dense layer `y = act(W · x + b)` applied to columns, with `W` stored in
/// panels of [`ROWS`] output rows, each column by column.
///
/// Every output element is `b[o]` plus the products `W[o][k] · x[k]` added
/// one at a time in `k` order, however many columns are computed at once:
/// a window's result does not depend on how windows are batched.
pub(crate) struct Dense {
    rows: usize,
    k: usize,
    panels: Vec<f32>,
    bias: Vec<f32>,
}

impl Dense {
    /// From `w` (`rows × k`, row-major) and `bias` (`rows`); `rows` must be a
    /// multiple of 16.
    pub fn new(w: &[f32], rows: usize, k: usize, bias: &[f32]) -> Self {
        assert!(rows.is_multiple_of(ROWS) && w.len() == rows * k && bias.len() == rows);
        let mut panels = Vec::with_capacity(w.len());
        for p in 0..rows / ROWS {
            for kk in 0..k {
                for l in 0..ROWS {
                    panels.push(w[(p * ROWS + l) * k + kk]);
                }
            }
        }
        Dense {
            rows,
            k,
            panels,
            bias: bias.to_vec(),
        }
    }

    /// Computes `n` output columns: column `j` of `x` (laid out by `xc`,
    /// `k` features) gives column `j` of `y` (laid out by `yc`, `rows`
    /// features), with a ReLU when `relu`.
    ///
    /// # Panics
    /// If a column reaches past its slice (a programming error).
    pub fn apply(&self, x: &[f32], xc: Columns, n: usize, y: &mut [f32], yc: Columns, relu: bool) {
        if n == 0 {
            return;
        }
        assert!(xc.offset(n - 1) + self.k <= x.len() && yc.offset(n - 1) + self.rows <= y.len());
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports the features the function is compiled for.
                unsafe { self.apply_avx2(x, xc, n, y, yc, relu) };
                return;
            }
        }
        self.apply_generic::<false>(x, xc, n, y, yc, relu);
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    fn apply_avx2(&self, x: &[f32], xc: Columns, n: usize, y: &mut [f32], yc: Columns, relu: bool) {
        self.apply_generic::<true>(x, xc, n, y, yc, relu)
    }

    #[inline(always)]
    fn apply_generic<const FUSED: bool>(
        &self,
        x: &[f32],
        xc: Columns,
        n: usize,
        y: &mut [f32],
        yc: Columns,
        relu: bool,
    ) {
        let k = self.k;
        for (p, panel) in self.panels.chunks_exact(ROWS * k).enumerate() {
            let bias: &[f32; ROWS] = self.bias[p * ROWS..(p + 1) * ROWS]
                .try_into()
                .expect("ROWS wide");
            let mut j = 0;
            while j + TILE <= n {
                self.tile_into::<TILE, FUSED>(panel, p, bias, x, xc, j, y, yc, relu);
                j += TILE;
            }
            match n - j {
                0 => {}
                1 => self.tile_into::<1, FUSED>(panel, p, bias, x, xc, j, y, yc, relu),
                2 => self.tile_into::<2, FUSED>(panel, p, bias, x, xc, j, y, yc, relu),
                3 => self.tile_into::<3, FUSED>(panel, p, bias, x, xc, j, y, yc, relu),
                4 => self.tile_into::<4, FUSED>(panel, p, bias, x, xc, j, y, yc, relu),
                _ => self.tile_into::<5, FUSED>(panel, p, bias, x, xc, j, y, yc, relu),
            }
        }
    }

    /// Columns `j..j + C` of output panel `p`.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn tile_into<const C: usize, const FUSED: bool>(
        &self,
        panel: &[f32],
        p: usize,
        bias: &[f32; ROWS],
        x: &[f32],
        xc: Columns,
        j: usize,
        y: &mut [f32],
        yc: Columns,
        relu: bool,
    ) {
        let xs: [&[f32]; C] = std::array::from_fn(|c| &x[xc.offset(j + c)..][..self.k]);
        let acc = tile::<C, FUSED>(panel, bias, xs);
        for (c, a) in acc.iter().enumerate() {
            store(&mut y[yc.offset(j + c) + p * ROWS..][..ROWS], a, relu);
        }
    }
}

/// `C` columns of one panel: `bias + Σ_k panel[k] · x[c][k]`, in `k` order.
#[inline(always)]
fn tile<const C: usize, const FUSED: bool>(
    panel: &[f32],
    bias: &[f32; ROWS],
    xs: [&[f32]; C],
) -> [[f32; ROWS]; C] {
    let k = panel.len() / ROWS;
    assert!(panel.len() == k * ROWS && xs.iter().all(|x| x.len() == k));
    let mut acc = [*bias; C];
    for kk in 0..k {
        let w: &[f32; ROWS] = panel[kk * ROWS..(kk + 1) * ROWS]
            .try_into()
            .expect("ROWS wide");
        for c in 0..C {
            let xv = xs[c][kk];
            for l in 0..ROWS {
                acc[c][l] = if FUSED {
                    w[l].mul_add(xv, acc[c][l])
                } else {
                    acc[c][l] + w[l] * xv
                };
            }
        }
    }
    acc
}

#[inline(always)]
fn store(out: &mut [f32], acc: &[f32; ROWS], relu: bool) {
    for (o, &a) in out.iter_mut().zip(acc) {
        *o = if relu { a.max(0.0) } else { a };
    }
}

/// Width of the LSTM's hidden state.
pub(crate) const HIDDEN: usize = 128;
/// Gate pre-activations: i, f, g, o, each [`HIDDEN`] wide (PyTorch order).
pub(crate) const GATES: usize = 4 * HIDDEN;
/// Gate rows per panel of the recurrent weights: 64 accumulators fill eight
/// AVX registers.
const PANEL: usize = 64;

/// The LSTM's recurrent weights `W_hh` (`GATES × HIDDEN`, row-major in the
/// model) rearranged for [`lstm_step`]: panels of [`PANEL`] gate rows, each
/// stored column by column, so the product is a run of contiguous
/// multiply-adds with no horizontal sums.
pub(crate) fn panel_recurrent_weights(w_hh: &[f32]) -> Vec<f32> {
    assert_eq!(w_hh.len(), GATES * HIDDEN);
    let mut out = Vec::with_capacity(w_hh.len());
    for panel in 0..GATES / PANEL {
        for k in 0..HIDDEN {
            for l in 0..PANEL {
                out.push(w_hh[(panel * PANEL + l) * HIDDEN + k]);
            }
        }
    }
    out
}

/// One LSTM step. `gates_x` holds `W_ih · x + b_ih + b_hh` for this step;
/// `w_hh` comes from [`panel_recurrent_weights`]. Updates `h` and `c` in
/// place, with PyTorch's gate order (i, f, g, o) and activations.
pub(crate) fn lstm_step(
    gates_x: &[f32; GATES],
    w_hh: &[f32],
    h: &mut [f32; HIDDEN],
    c: &mut [f32; HIDDEN],
    scratch: &mut [f32; GATES],
) {
    assert_eq!(w_hh.len(), GATES * HIDDEN);
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features the function is compiled for.
            unsafe { lstm_step_avx2(gates_x, w_hh, h, c, scratch) };
            return;
        }
    }
    lstm_step_generic::<false>(gates_x, w_hh, h, c, scratch);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn lstm_step_avx2(
    gates_x: &[f32; GATES],
    w_hh: &[f32],
    h: &mut [f32; HIDDEN],
    c: &mut [f32; HIDDEN],
    scratch: &mut [f32; GATES],
) {
    lstm_step_generic::<true>(gates_x, w_hh, h, c, scratch)
}

/// The step, written so that the compiler vectorises it: `FUSED` uses
/// fused multiply-adds (only where the target has them).
#[inline(always)]
fn lstm_step_generic<const FUSED: bool>(
    gates_x: &[f32; GATES],
    w_hh: &[f32],
    h: &mut [f32; HIDDEN],
    c: &mut [f32; HIDDEN],
    pre: &mut [f32; GATES],
) {
    for ((panel, gx), out) in w_hh
        .chunks_exact(PANEL * HIDDEN)
        .zip(gates_x.chunks_exact(PANEL))
        .zip(pre.chunks_exact_mut(PANEL))
    {
        let mut acc: [f32; PANEL] = gx.try_into().expect("PANEL wide");
        for (column, &hk) in panel.chunks_exact(PANEL).zip(h.iter()) {
            let column: &[f32; PANEL] = column.try_into().expect("PANEL wide");
            for l in 0..PANEL {
                acc[l] = if FUSED {
                    column[l].mul_add(hk, acc[l])
                } else {
                    acc[l] + column[l] * hk
                };
            }
        }
        out.copy_from_slice(&acc);
    }
    let (i, rest) = pre.split_at(HIDDEN);
    let (f, rest) = rest.split_at(HIDDEN);
    let (g, o) = rest.split_at(HIDDEN);
    for j in 0..HIDDEN {
        let cj = sigmoid(f[j]) * c[j] + sigmoid(i[j]) * tanh(g[j]);
        c[j] = cj;
        h[j] = sigmoid(o[j]) * tanh(cj);
    }
}

/// `e^x` to about 1 ulp for |x| < 87, branch-free so that loops over it
/// vectorise (Cody-Waite range reduction and Cephes' `expf` polynomial).
/// Saturates instead of overflowing: the input is clamped to [-87, 88].
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding and subtracting 1.5 · 2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * (r * r) + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The logistic function.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// The hyperbolic tangent, as `1 - 2 / (e^{2x} + 1)` (absolute error
/// about 1e-7).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(w: &[f32], rows: usize, k: usize, b: &[f32], x: &[f32]) -> Vec<f64> {
        (0..rows)
            .map(|o| {
                f64::from(b[o])
                    + (0..k)
                        .map(|kk| f64::from(w[o * k + kk]) * f64::from(x[kk]))
                        .sum::<f64>()
            })
            .collect()
    }

    #[test]
    fn dense_matches_naive_for_any_batching_and_layout() {
        let (rows, k) = (32, 37);
        let w: Vec<f32> = (0..rows * k)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2)
            .collect();
        let b: Vec<f32> = (0..rows).map(|i| i as f32 * 0.01 - 0.1).collect();
        let layer = Dense::new(&w, rows, k, &b);
        // Seven columns overlapping by all but 3 features, in groups of 2
        // with a gap: columns start at 0, 3, 20, 23, 40, 43, 60.
        let x: Vec<f32> = (0..200)
            .map(|i| ((i * 31 % 97) as f32 / 97.0) - 0.5)
            .collect();
        let xc = Columns {
            base: 0,
            per_group: 2,
            step: 3,
            group_step: 20,
        };
        let n = 7;
        let mut y = vec![f32::NAN; n * rows + 5];
        let yc = Columns {
            base: 5,
            ..Columns::packed(rows)
        };
        layer.apply(&x, xc, n, &mut y, yc, false);
        for j in 0..n {
            let want = naive(&w, rows, k, &b, &x[xc.offset(j)..][..k]);
            for o in 0..rows {
                let got = y[5 + j * rows + o];
                assert!((f64::from(got) - want[o]).abs() < 1e-5, "col {j} row {o}");
            }
            // One column at a time gives bit-identical results.
            let mut single = vec![0.0; rows];
            layer.apply(
                &x[xc.offset(j)..][..k],
                Columns::packed(k),
                1,
                &mut single,
                Columns::packed(rows),
                false,
            );
            assert_eq!(single[..], y[5 + j * rows..5 + (j + 1) * rows]);
        }
        // The portable (unfused) version agrees to rounding.
        let mut portable = vec![f32::NAN; n * rows + 5];
        layer.apply_generic::<false>(&x, xc, n, &mut portable, yc, false);
        for (a, b) in portable[5..].iter().zip(&y[5..]) {
            assert!((a - b).abs() < 1e-5);
        }
        // ReLU.
        layer.apply(&x, xc, n, &mut y, yc, true);
        assert!(y[5..].iter().all(|&v| v >= 0.0) && y[5..].iter().any(|&v| v > 0.0));
    }

    #[test]
    #[should_panic]
    fn dense_refuses_a_column_past_its_slice() {
        let layer = Dense::new(&[0.0; 16 * 4], 16, 4, &[0.0; 16]);
        let mut y = [0.0; 32];
        layer.apply(
            &[0.0; 7],
            Columns::packed(4),
            2,
            &mut y,
            Columns::packed(16),
            false,
        );
    }

    #[test]
    fn activations_are_accurate_and_saturate() {
        let mut worst = (0.0f64, 0.0f64, 0.0f64);
        for i in -40_000..=40_000 {
            let x = i as f32 * 0.0025; // -100 .. 100
            let xd = f64::from(x);
            if x.abs() < 87.0 {
                let rel = (f64::from(exp(x)) - xd.exp()).abs() / xd.exp();
                worst.0 = worst.0.max(rel);
            }
            worst.1 = worst
                .1
                .max((f64::from(sigmoid(x)) - 1.0 / (1.0 + (-xd).exp())).abs());
            worst.2 = worst.2.max((f64::from(tanh(x)) - xd.tanh()).abs());
        }
        assert!(worst.0 < 3e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 2e-7, "sigmoid absolute error {}", worst.1);
        assert!(worst.2 < 3e-7, "tanh absolute error {}", worst.2);
        assert!((0.0..1e-37).contains(&sigmoid(-1e30)));
        assert!(sigmoid(1e30) == 1.0 && tanh(1e30) == 1.0 && tanh(-1e30) == -1.0);
        assert!(exp(1e30).is_finite() && exp(-1e30) >= 0.0);
    }

    #[test]
    fn lstm_step_matches_a_naive_cell() {
        let w_hh: Vec<f32> = (0..GATES * HIDDEN)
            .map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.2)
            .collect();
        let gx: [f32; GATES] = std::array::from_fn(|i| ((i * 31 % 97) as f32 / 97.0 - 0.5) * 3.0);
        let mut h: [f32; HIDDEN] = std::array::from_fn(|i| (i as f32 / 64.0) - 1.0);
        let mut c: [f32; HIDDEN] = std::array::from_fn(|i| ((i % 5) as f32) - 2.0);
        let (h0, c0) = (h, c);
        let mut pre = [0.0; GATES];
        let panels = panel_recurrent_weights(&w_hh);
        lstm_step(&gx, &panels, &mut h, &mut c, &mut pre);
        // The portable (unfused) version, used on CPUs without AVX2 and FMA.
        let (mut h_portable, mut c_portable) = (h0, c0);
        lstm_step_generic::<false>(&gx, &panels, &mut h_portable, &mut c_portable, &mut pre);
        let sig = |x: f64| 1.0 / (1.0 + (-x).exp());
        for j in 0..HIDDEN {
            let g = |k: usize| {
                gx[k * HIDDEN + j] as f64
                    + (0..HIDDEN)
                        .map(|m| w_hh[(k * HIDDEN + j) * HIDDEN + m] as f64 * h0[m] as f64)
                        .sum::<f64>()
            };
            let cj = sig(g(1)) * c0[j] as f64 + sig(g(0)) * g(2).tanh();
            let hj = sig(g(3)) * cj.tanh();
            assert!((c[j] as f64 - cj).abs() < 1e-5, "c[{j}]");
            assert!((h[j] as f64 - hj).abs() < 1e-5, "h[{j}]");
            assert!((c_portable[j] as f64 - cj).abs() < 1e-5, "portable c[{j}]");
            assert!((h_portable[j] as f64 - hj).abs() < 1e-5, "portable h[{j}]");
        }
    }
}
