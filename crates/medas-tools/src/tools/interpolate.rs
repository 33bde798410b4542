//! Separable resampling kernels over flat voxel buffers stored first axis fastest (Fortran
//! order, as the readers produce them).
//!
//! When a grid's axes run along the input's (same direction, any origin and spacing), output
//! index `i` along an axis samples the input at the continuous index `x = start + i * step`
//! (`step` = new spacing ÷ old spacing), the same for every line: one [`AxisPlan`] per axis (input indices and weights for every output
//! index) turns a 3-D interpolation into one pass per axis, each a weighted sum of whole input
//! rows. Interpolation follows ITK: a sample exists where `-0.5 <= x < len - 0.5`
//! (`IsInsideBuffer`), linear clamps to the edge voxels, B-spline mirrors.

use medas_image::Scalar;
use ndarray::{ArrayViewMut3, Axis, ShapeBuilder, Zip};
use rayon::prelude::*;
use std::borrow::Cow;
use std::ops::Range;

/// For each output index along one axis: `taps` input indices and their weights. Every
/// constructor needs `len_in >= 1` (an empty axis has nothing to sample).
#[derive(Debug, Clone, PartialEq)]
pub struct AxisPlan {
    pub(crate) len_in: usize,
    pub(crate) len_out: usize,
    taps: usize,
    index: Vec<usize>,
    weight: Vec<f32>,
    /// Output indices whose sample point lies inside the input; the others take the default value.
    pub(crate) inside: Range<usize>,
}

impl AxisPlan {
    /// Builds a plan from `taps(x)`, which gives (first input index, weights) for the sample
    /// point `x`; indices outside `0..len_in` are folded back by `fold`.
    fn build<const N: usize>(
        len_in: usize,
        len_out: usize,
        (scale, shift): (f64, f64),
        taps: impl Fn(f64) -> (isize, [f64; N]),
        fold: impl Fn(isize) -> usize,
    ) -> AxisPlan {
        let (mut index, mut weight) = (Vec::with_capacity(len_out * N), Vec::with_capacity(len_out * N));
        let (mut first, mut end) = (len_out, 0);
        for i in 0..len_out {
            let x = shift + i as f64 * scale;
            if x >= -0.5 && x < len_in as f64 - 0.5 {
                first = first.min(i);
                end = i + 1;
            }
            let (start, weights) = taps(x);
            for (k, w) in weights.iter().enumerate() {
                index.push(fold(start + k as isize));
                weight.push(*w as f32);
            }
        }
        AxisPlan { len_in, len_out, taps: N, index, weight, inside: first.min(end)..end }
    }

    /// Nearest voxel, halves rounded up (ITK's `RoundHalfIntegerUp`). `step` is (scale, shift):
    /// output index `i` samples input index `shift + i * scale` (scale = new ÷ old spacing).
    pub fn nearest(len_in: usize, len_out: usize, step: (f64, f64)) -> AxisPlan {
        let clamp = move |k: isize| k.clamp(0, len_in as isize - 1) as usize;
        Self::build(len_in, len_out, step, |x| ((x + 0.5).floor() as isize, [1.0]), clamp)
    }

    /// Linear between the two neighbours; beyond the last voxel centre the edge value holds.
    pub fn linear(len_in: usize, len_out: usize, step: (f64, f64)) -> AxisPlan {
        let last = len_in as isize - 1;
        let clamp = move |k: isize| k.clamp(0, last) as usize;
        let taps = |x: f64| {
            let base = (x.floor() as isize).clamp(0, last);
            let t = if base < last { (x - base as f64).clamp(0.0, 1.0) } else { 0.0 };
            (base, [1.0 - t, t])
        };
        Self::build(len_in, len_out, step, taps, clamp)
    }

    /// Cubic B-spline on coefficients from [`bspline_prefilter`], mirror boundary.
    pub fn cubic_bspline(len_in: usize, len_out: usize, step: (f64, f64)) -> AxisPlan {
        let taps = |x: f64| (x.floor() as isize - 1, cubic_bspline_weights(x - x.floor()));
        Self::build(len_in, len_out, step, taps, move |k| mirror(k, len_in))
    }

    /// This plan applied to the input smoothed first by a sampled Gaussian of `sigma` input
    /// voxels (truncated at 4 sigma, normalised, edge values repeated beyond the ends:
    /// `scipy.ndimage.gaussian_filter1d(..., mode="nearest")`), as one plan: each output index
    /// gets the combined weights over a window of input indices. `sigma` is capped at the axis
    /// length (a wider Gaussian only flattens the axis further), which bounds the work.
    pub fn smoothed(&self, sigma: f64) -> AxisPlan {
        let len = self.len_in;
        let sigma = sigma.min(len as f64);
        if sigma.is_nan() || sigma <= 0.0 {
            return self.clone();
        }
        let radius = (4.0 * sigma + 0.5) as isize;
        let kernel: Vec<f64> = (-radius..=radius).map(|k| (-0.5 * (k as f64 / sigma).powi(2)).exp()).collect();
        let total: f64 = kernel.iter().sum();
        let clamp = |k: isize| k.clamp(0, len as isize - 1) as usize;
        // Per output index: the first input index of its window and the window's weights.
        let windows: Vec<(usize, Vec<f64>)> = (0..self.len_out)
            .map(|i| {
                let taps: Vec<(usize, f32)> = self.taps_of(i).collect();
                let low = taps.iter().map(|&(j, _)| clamp(j as isize - radius)).min().unwrap_or(0);
                let high = taps.iter().map(|&(j, _)| clamp(j as isize + radius)).max().unwrap_or(0);
                let mut weights = vec![0.0; high + 1 - low];
                for (j, w) in taps {
                    for (k, g) in (-radius..=radius).zip(&kernel) {
                        weights[clamp(j as isize + k) - low] += w as f64 * g / total;
                    }
                }
                (low, weights)
            })
            .collect();
        let taps = windows.iter().map(|(_, w)| w.len()).max().unwrap_or(1);
        let (mut index, mut weight) = (Vec::with_capacity(self.len_out * taps), Vec::with_capacity(self.len_out * taps));
        for (low, weights) in windows {
            // Windows are padded with zero weights to the widest; shifted left where they would
            // pass the end (the widest fits, being at most the axis length).
            let start = low.min(len - taps);
            for t in 0..taps {
                index.push(start + t);
                weight.push(weights.get((start + t).wrapping_sub(low)).copied().unwrap_or(0.0) as f32);
            }
        }
        AxisPlan { len_in: len, len_out: self.len_out, taps, index, weight, inside: self.inside.clone() }
    }

    /// Input index of each output index (the first tap), `None` outside: the nearest map.
    pub fn nearest_map(&self) -> Vec<Option<usize>> {
        (0..self.len_out).map(|i| self.inside.contains(&i).then(|| self.index[i * self.taps])).collect()
    }

    fn taps_of(&self, i: usize) -> impl Iterator<Item = (usize, f32)> + '_ {
        let at = i * self.taps..(i + 1) * self.taps;
        self.index[at.clone()].iter().copied().zip(self.weight[at].iter().copied())
    }
}

/// The weights of the cubic B-spline coefficients at `floor(x) - 1 .. floor(x) + 2` for a
/// point at fraction `t = x - floor(x)` past a voxel centre.
pub(crate) fn cubic_bspline_weights(t: f64) -> [f64; 4] {
    [
        (1.0 - t).powi(3) / 6.0,
        (4.0 - 6.0 * t * t + 3.0 * t.powi(3)) / 6.0,
        (1.0 + 3.0 * t + 3.0 * t * t - 3.0 * t.powi(3)) / 6.0,
        t.powi(3) / 6.0,
    ]
}

/// Whole-sample mirror of index `k` into `0..len` (period `2 len - 2`), ITK's B-spline boundary.
pub(crate) fn mirror(k: isize, len: usize) -> usize {
    if len == 1 {
        return 0;
    }
    let period = 2 * len as isize - 2;
    let k = k.rem_euclid(period);
    (if k >= len as isize { period - k } else { k }) as usize
}

/// Sizes of the axes before `axis` (one row) and after it, for a Fortran-ordered `shape`.
fn split(shape: &[usize], axis: usize) -> (usize, usize) {
    (shape[..axis].iter().product(), shape[axis + 1..].iter().product())
}

/// The voxels in Fortran order: borrowed when the array is stored that way, copied otherwise.
pub fn fortran_values<T: Copy>(array: &ndarray::ArcArray<T, ndarray::IxDyn>) -> Cow<'_, [T]> {
    match array.view().reversed_axes().to_slice() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(array.view().reversed_axes().iter().copied().collect()),
    }
}

/// Resamples `axis` of the Fortran-ordered `input` of `shape` by `plan`, as f32; every output
/// row along the axis is a weighted sum of whole input rows, in parallel.
pub fn resample_axis<T: Scalar>(input: &[T], shape: &[usize], axis: usize, plan: &AxisPlan) -> Vec<f32> {
    let (inner, outer) = split(shape, axis);
    let (n, m) = (plan.len_in, plan.len_out);
    debug_assert_eq!(shape[axis], n);
    let mut out = vec![0f32; inner * m * outer];
    if inner == 1 {
        let lines = out.par_chunks_mut(m).zip(input.par_chunks(n)).with_min_len((1 << 14) / m.max(1) + 1);
        lines.for_each(|(out, line)| {
            for (i, value) in out.iter_mut().enumerate() {
                *value = plan.taps_of(i).map(|(j, w)| w * line[j].to_f64() as f32).sum();
            }
        });
    } else {
        let rows = out.par_chunks_mut(inner).enumerate().with_min_len((1 << 14) / inner + 1);
        rows.for_each(|(c, row)| {
            let slab = &input[(c / m) * n * inner..][..n * inner];
            // The first tap is written, not added: reading the fresh zeroed pages first would
            // map the shared zero page and fault again, with a TLB shootdown, on the write.
            for (t, (j, w)) in plan.taps_of(c % m).enumerate() {
                let source = row.iter_mut().zip(&slab[j * inner..(j + 1) * inner]);
                if t == 0 {
                    source.for_each(|(o, v)| *o = w * v.to_f64() as f32);
                } else {
                    source.for_each(|(o, v)| *o += w * v.to_f64() as f32);
                }
            }
        });
    }
    out
}

/// Nearest-neighbour resampling of every axis at once by per-axis maps (`None`: outside,
/// `default` there), keeping the voxel type. `maps[a]` has one entry per output index.
pub fn gather<T: Scalar>(input: &[T], shape: &[usize], maps: &[Vec<Option<usize>>], default: T) -> Vec<T> {
    let out_shape: Vec<usize> = maps.iter().map(Vec::len).collect();
    let strides: Vec<usize> = (0..shape.len()).map(|a| shape[..a].iter().product()).collect();
    let total: usize = out_shape.iter().product();
    let line = out_shape.first().copied().unwrap_or(1).max(1);
    let mut out = vec![default; total];
    out.par_chunks_mut(line).enumerate().with_min_len((1 << 14) / line + 1).for_each(|(l, out)| {
        let mut rest = l;
        let mut base = Some(0);
        for a in 1..out_shape.len() {
            let j = rest % out_shape[a];
            rest /= out_shape[a];
            base = base.and_then(|b| maps[a][j].map(|x| b + x * strides[a]));
        }
        if let Some(base) = base {
            for (o, x) in out.iter_mut().zip(&maps[0]) {
                if let Some(x) = x {
                    *o = input[base + x];
                }
            }
        }
    });
    out
}

/// Sets every voxel whose index along `axis` lies outside `inside` to `value`.
pub fn fill_outside(data: &mut [f32], shape: &[usize], axis: usize, inside: &Range<usize>, value: f32) {
    let (inner, _) = split(shape, axis);
    let slab = inner * shape[axis];
    if inside.start == 0 && inside.end == shape[axis] || slab == 0 {
        return;
    }
    data.par_chunks_mut(slab).for_each(|slab| {
        slab[..inside.start * inner].fill(value);
        slab[inside.end * inner..].fill(value);
    });
}

/// Cubic B-spline pole and gain (Unser 1993): the samples times the gain, filtered causally
/// and anti-causally by the pole, are the interpolating coefficients.
const POLE: f64 = -0.267_949_192_431_122_7; // sqrt(3) - 2
const GAIN: f64 = 6.0; // (1 - z)(1 - 1/z)
/// Terms of the causal start-up sum kept (|z|^18 < 1e-10, ITK's tolerance).
const HORIZON: usize = 18;

/// Replaces the samples along `axis` by cubic B-spline coefficients with mirror boundaries
/// (what ITK's BSplineDecompositionImageFilter computes), in place; lines in parallel.
pub fn bspline_prefilter(data: &mut [f32], shape: &[usize], axis: usize) {
    let (inner, outer) = split(shape, axis);
    let n = shape[axis];
    if n < 2 || data.is_empty() {
        return;
    }
    let mut view = ArrayViewMut3::from_shape((inner, n, outer).f(), data).expect("shape matches the buffer");
    Zip::from(view.lanes_mut(Axis(1))).par_for_each(|mut lane| {
        let mut c: Vec<f64> = lane.iter().map(|&v| v as f64 * GAIN).collect();
        c[0] = causal_start(&c);
        for k in 1..n {
            c[k] += POLE * c[k - 1];
        }
        c[n - 1] = POLE / (POLE * POLE - 1.0) * (c[n - 1] + POLE * c[n - 2]);
        for k in (0..n - 1).rev() {
            c[k] = POLE * (c[k + 1] - c[k]);
        }
        lane.iter_mut().zip(&c).for_each(|(v, c)| *v = *c as f32);
    });
}

/// The first causal coefficient, `sum_k z^k c[k]` over the mirrored, periodic line: exact for
/// short lines, truncated at [`HORIZON`] terms for long ones.
fn causal_start(c: &[f64]) -> f64 {
    let n = c.len();
    if n > HORIZON {
        return c[..HORIZON].iter().rev().fold(0.0, |sum, v| sum * POLE + v);
    }
    // c0 + z^(n-1) c[n-1] + sum_{m=1}^{n-2} (z^m + z^(2n-2-m)) c[m], over 1 - z^(2n-2).
    let power = |e: usize| POLE.powi(e as i32);
    let middle: f64 = (1..n - 1).map(|m| (power(m) + power(2 * n - 2 - m)) * c[m]).sum();
    (c[0] + power(n - 1) * c[n - 1] + middle) / (1.0 - power(2 * n - 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_halves_and_clamps_at_the_far_edge() {
        // 4 samples at spacing 1 read at spacing 0.5: x = 0, 0.5, ..., 3.5.
        let plan = AxisPlan::linear(4, 8, (0.5, 0.0));
        let out = resample_axis(&[0i16, 10, 20, 40], &[4], 0, &plan);
        assert_eq!(out, vec![0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 40.0]);
        // x = 3.5 is outside [-0.5, 3.5).
        assert_eq!(plan.inside, 0..7);
    }

    #[test]
    fn rows_along_a_slow_axis_match_lines_along_the_fast_one() {
        let values: Vec<f32> = (0..12).map(|v| (v * v) as f32).collect();
        let plan = AxisPlan::linear(4, 3, (1.5, 0.0));
        // shape [3, 4]: resample axis 1; the same as resampling each of the 3 rows of the transposed data.
        let along_rows = resample_axis(&values, &[3, 4], 1, &plan);
        let transposed: Vec<f32> = (0..12).map(|k| values[(k % 4) * 3 + k / 4]).collect();
        let along_lines = resample_axis(&transposed, &[4, 3], 0, &plan);
        for i in 0..3 {
            for j in 0..3 {
                assert_eq!(along_rows[i + 3 * j], along_lines[j + 3 * i]);
            }
        }
    }

    #[test]
    fn bspline_coefficients_interpolate_the_samples() {
        let samples = [3.0f32, -1.0, 4.0, 1.0, -5.0, 9.0, 2.0, 6.0];
        for len in [2, 3, 8] {
            let mut coefficients = samples[..len].to_vec();
            bspline_prefilter(&mut coefficients, &[len], 0);
            let back = resample_axis(&coefficients, &[len], 0, &AxisPlan::cubic_bspline(len, len, (1.0, 0.0)));
            for (a, b) in back.iter().zip(&samples) {
                assert!((a - b).abs() < 1e-5, "{len}: {back:?}");
            }
        }
        // A long line takes the truncated start-up sum, still interpolating.
        let long: Vec<f32> = (0..40).map(|k| ((k * 7) % 11) as f32).collect();
        let mut coefficients = long.clone();
        bspline_prefilter(&mut coefficients, &[40], 0);
        let back = resample_axis(&coefficients, &[40], 0, &AxisPlan::cubic_bspline(40, 40, (1.0, 0.0)));
        assert!(back.iter().zip(&long).all(|(a, b)| (a - b).abs() < 1e-4), "{back:?}");
    }

    #[test]
    fn mirror_folds_whole_samples() {
        let folded: Vec<usize> = (-3..8).map(|k| mirror(k, 4)).collect();
        assert_eq!(folded, vec![3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
        assert_eq!(mirror(-5, 1), 0);
    }

    #[test]
    fn gather_keeps_type_and_fills_outside() {
        let values: Vec<u8> = (0..6).collect(); // shape [3, 2]
        let maps = vec![vec![Some(2), Some(0), None], vec![Some(1)]];
        assert_eq!(gather(&values, &[3, 2], &maps, 9), vec![5, 3, 9]);
    }

    #[test]
    fn smoothing_folded_into_a_plan_equals_a_gaussian_pass_then_the_plan() {
        let values: Vec<f32> = (0..40).map(|k| ((k * 13) % 17) as f32).collect();
        let blur = AxisPlan::linear(40, 40, (1.0, 0.0)).smoothed(1.5);
        let twice = resample_axis(&resample_axis(&values, &[40], 0, &blur), &[40], 0, &AxisPlan::linear(40, 13, (3.1, 0.0)));
        let once = resample_axis(&values, &[40], 0, &AxisPlan::linear(40, 13, (3.1, 0.0)).smoothed(1.5));
        assert!(once.iter().zip(&twice).all(|(a, b)| (a - b).abs() < 1e-4), "{once:?} vs {twice:?}");
        // Constants stay constant, and a Gaussian far wider than the axis flattens it to its mean-ish.
        let flat = resample_axis(&[2.0f32; 5], &[5], 0, &AxisPlan::linear(5, 5, (1.0, 0.0)).smoothed(1.0));
        assert!(flat.iter().all(|v| (v - 2.0).abs() < 1e-6), "{flat:?}");
        let wide = AxisPlan::linear(40, 1, (1e9, 0.0)).smoothed(1e9);
        assert_eq!((wide.taps, wide.len_out), (40, 1));
    }
}
