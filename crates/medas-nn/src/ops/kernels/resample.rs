//! Trilinear / nearest resampling of `[D, H, W]` planes, forward and backward. Each output cell
//! blends the 2 x 2 x 2 source cells given by the per-axis taps (nearest has zero upper weights,
//! so it reads the same cell with weight one).

use rayon::prelude::*;

use super::Real;
use crate::ops::{AxisTaps, ResizePlan};

/// Per-axis source offsets (already multiplied by the axis stride in the plane) and weights.
struct Axis<T> {
    lower: Vec<usize>,
    upper: Vec<usize>,
    lower_weight: Vec<T>,
    upper_weight: Vec<T>,
}

impl<T: Real> Axis<T> {
    fn new(taps: AxisTaps, stride: usize) -> Self {
        Self {
            lower: taps.lower.iter().map(|i| i * stride).collect(),
            upper: taps.upper.iter().map(|i| i * stride).collect(),
            lower_weight: taps.weight.iter().map(|w| T::from_f64(1.0 - w)).collect(),
            upper_weight: taps.weight.iter().map(|&w| T::from_f64(w)).collect(),
        }
    }

    /// The two (offset, weight) pairs of output index `i`.
    fn pairs(&self, i: usize) -> [(usize, T); 2] {
        [
            (self.lower[i], self.lower_weight[i]),
            (self.upper[i], self.upper_weight[i]),
        ]
    }
}

struct Plan<T> {
    axes: [Axis<T>; 3],
    in_len: usize,
    out_len: usize,
}

impl<T: Real> Plan<T> {
    fn new(plan: &ResizePlan) -> Self {
        let [d, h, w] = plan.axes;
        Self {
            axes: [
                Axis::new(d.taps(), h.input * w.input),
                Axis::new(h.taps(), w.input),
                Axis::new(w.taps(), 1),
            ],
            in_len: d.input * h.input * w.input,
            out_len: plan.output().iter().product(),
        }
    }

    /// Calls `visit(first output offset of the row, the four (d, h) source rows)` for every
    /// output row `(od, oh)` of a plane; each source row is (plane offset, weight).
    #[inline(always)]
    fn for_each_row(&self, mut visit: impl FnMut(usize, [(usize, T); 4])) {
        let [ad, ah, aw] = &self.axes;
        let width = aw.lower.len();
        let mut out = 0;
        for od in 0..ad.lower.len() {
            for oh in 0..ah.lower.len() {
                let [[r0, r1], [r2, r3]] = ad
                    .pairs(od)
                    .map(|(d, wd)| ah.pairs(oh).map(|(h, wh)| (d + h, wd * wh)));
                visit(out, [r0, r1, r2, r3]);
                out += width;
            }
        }
    }
}

pub(crate) fn forward<T: Real>(input: &[T], plan: &ResizePlan) -> Vec<T> {
    let plan = Plan::<T>::new(plan);
    let planes = input.len() / plan.in_len;
    let cols = &plan.axes[2];
    let width = cols.lower.len();
    let mut output = vec![T::ZERO; planes * plan.out_len];
    output
        .par_chunks_mut(plan.out_len)
        .zip(input.par_chunks(plan.in_len))
        .for_each(|(output, plane)| {
            plan.for_each_row(|start, rows| {
                for (ow, value) in output[start..start + width].iter_mut().enumerate() {
                    let [(c0, w0), (c1, w1)] = cols.pairs(ow);
                    let mut sum = T::ZERO;
                    for (row, weight) in rows {
                        sum += weight * (plane[row + c0] * w0 + plane[row + c1] * w1);
                    }
                    *value = sum;
                }
            });
        });
    output
}

pub(crate) fn backward<T: Real>(grad: &[T], plan: &ResizePlan) -> Vec<T> {
    let plan = Plan::<T>::new(plan);
    let planes = grad.len() / plan.out_len;
    let cols = &plan.axes[2];
    let width = cols.lower.len();
    let mut input_grad = vec![T::ZERO; planes * plan.in_len];
    input_grad
        .par_chunks_mut(plan.in_len)
        .zip(grad.par_chunks(plan.out_len))
        .for_each(|(input_grad, grad)| {
            plan.for_each_row(|start, rows| {
                for (ow, &g) in grad[start..start + width].iter().enumerate() {
                    let [(c0, w0), (c1, w1)] = cols.pairs(ow);
                    for (row, weight) in rows {
                        let share = g * weight;
                        input_grad[row + c0] += share * w0;
                        input_grad[row + c1] += share * w1;
                    }
                }
            });
        });
    input_grad
}
