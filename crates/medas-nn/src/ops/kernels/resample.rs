//! Trilinear / nearest resampling of `[D, H, W]` planes, forward and backward, as three 1-D
//! passes (w, then h, then d; the backward runs the transposed passes in reverse). Trilinear
//! weights are a product of per-axis weights, so the passes give the same sums as blending the
//! 2 x 2 x 2 neighbours directly, with about 2.3 times fewer multiplications when upsampling by 2
//! and contiguous inner rows for the h and d passes. Nearest has zero upper weights.

use rayon::prelude::*;

use super::Real;
use crate::ops::{AxisTaps, ResizePlan};

/// One axis: for every output index, the two source indices and their weights.
struct Axis<T> {
    lower: Vec<usize>,
    upper: Vec<usize>,
    lower_weight: Vec<T>,
    upper_weight: Vec<T>,
    input: usize,
}

impl<T: Real> Axis<T> {
    fn new(taps: AxisTaps, input: usize) -> Self {
        Self {
            lower: taps.lower,
            lower_weight: taps.weight.iter().map(|w| T::from_f64(1.0 - w)).collect(),
            upper_weight: taps.weight.iter().map(|&w| T::from_f64(w)).collect(),
            upper: taps.upper,
            input,
        }
    }

    fn output(&self) -> usize {
        self.lower.len()
    }

    /// `dst[o, i, :] = a_i src[o, lower_i, :] + b_i src[o, upper_i, :]` for `src` shaped
    /// `[outer, input, inner]` and `dst` shaped `[outer, output, inner]`.
    fn blend(&self, src: &[T], dst: &mut [T], inner: usize) {
        let (src_block, dst_block) = (self.input * inner, self.output() * inner);
        for (src, dst) in src
            .chunks_exact(src_block)
            .zip(dst.chunks_exact_mut(dst_block))
        {
            for (i, dst) in dst.chunks_exact_mut(inner).enumerate() {
                let lower = &src[self.lower[i] * inner..][..inner];
                let upper = &src[self.upper[i] * inner..][..inner];
                let (a, b) = (self.lower_weight[i], self.upper_weight[i]);
                for ((d, &l), &u) in dst.iter_mut().zip(lower).zip(upper) {
                    *d = a * l + b * u;
                }
            }
        }
    }

    /// The transpose of [`Self::blend`]: `dst` (shaped `[outer, input, inner]`, zeroed) gathers
    /// every `src[o, i, :]` back into its two source rows.
    fn spread(&self, src: &[T], dst: &mut [T], inner: usize) {
        let (src_block, dst_block) = (self.output() * inner, self.input * inner);
        for (src, dst) in src
            .chunks_exact(src_block)
            .zip(dst.chunks_exact_mut(dst_block))
        {
            for (i, src) in src.chunks_exact(inner).enumerate() {
                let (a, b) = (self.lower_weight[i], self.upper_weight[i]);
                let lower = &mut dst[self.lower[i] * inner..][..inner];
                lower.iter_mut().zip(src).for_each(|(d, &s)| *d += a * s);
                let upper = &mut dst[self.upper[i] * inner..][..inner];
                upper.iter_mut().zip(src).for_each(|(d, &s)| *d += b * s);
            }
        }
    }
}

struct Plan<T> {
    /// `[d, h, w]`.
    axes: [Axis<T>; 3],
}

impl<T: Real> Plan<T> {
    fn new(plan: &ResizePlan) -> Self {
        Self {
            axes: plan.axes.map(|axis| Axis::new(axis.taps(), axis.input)),
        }
    }

    fn input_len(&self) -> usize {
        self.axes.iter().map(|a| a.input).product()
    }

    fn output_len(&self) -> usize {
        self.axes.iter().map(Axis::output).product()
    }
}

pub(crate) fn forward<T: Real>(input: &[T], plan: &ResizePlan) -> Vec<T> {
    let plan = Plan::<T>::new(plan);
    let [ad, ah, aw] = &plan.axes;
    let (in_len, out_len) = (plan.input_len(), plan.output_len());
    let mut output = vec![T::ZERO; input.len() / in_len * out_len];
    output
        .par_chunks_mut(out_len)
        .zip(input.par_chunks(in_len))
        .for_each(|(output, plane)| {
            let mut along_w = vec![T::ZERO; ad.input * ah.input * aw.output()];
            aw.blend(plane, &mut along_w, 1);
            let mut along_h = vec![T::ZERO; ad.input * ah.output() * aw.output()];
            ah.blend(&along_w, &mut along_h, aw.output());
            ad.blend(&along_h, output, ah.output() * aw.output());
        });
    output
}

pub(crate) fn backward<T: Real>(grad: &[T], plan: &ResizePlan) -> Vec<T> {
    let plan = Plan::<T>::new(plan);
    let [ad, ah, aw] = &plan.axes;
    let (in_len, out_len) = (plan.input_len(), plan.output_len());
    let mut input_grad = vec![T::ZERO; grad.len() / out_len * in_len];
    input_grad
        .par_chunks_mut(in_len)
        .zip(grad.par_chunks(out_len))
        .for_each(|(input_grad, grad)| {
            let mut along_d = vec![T::ZERO; ad.input * ah.output() * aw.output()];
            ad.spread(grad, &mut along_d, ah.output() * aw.output());
            let mut along_h = vec![T::ZERO; ad.input * ah.input * aw.output()];
            ah.spread(&along_d, &mut along_h, aw.output());
            aw.spread(&along_h, input_grad, 1);
        });
    input_grad
}
