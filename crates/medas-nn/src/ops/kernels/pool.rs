//! Max and average pooling over `[D, H, W]` planes, forward and backward.

use rayon::prelude::*;

use super::{Real, window_taps};
use crate::ops::PoolWindow;

/// The in-range taps of every output index on the three axes.
struct Taps([Vec<Vec<usize>>; 3]);

impl Taps {
    fn new(w: &PoolWindow) -> Self {
        Self(std::array::from_fn(|a| {
            window_taps(
                w.input[a],
                w.output[a],
                w.kernel[a],
                w.stride[a],
                w.padding[a],
                w.dilation[a],
            )
        }))
    }

    /// Calls `visit(output offset, its window)` for every output cell of a plane, in row-major
    /// output order.
    fn for_each_window(&self, w: &PoolWindow, mut visit: impl FnMut(usize, Window<'_>)) {
        let [_, rows, cols] = w.input;
        let [taps_d, taps_h, taps_w] = &self.0;
        let mut out = 0;
        for d in taps_d {
            for h in taps_h {
                for x in taps_w {
                    visit(
                        out,
                        Window {
                            d,
                            h,
                            x,
                            rows,
                            cols,
                        },
                    );
                    out += 1;
                }
            }
        }
    }
}

/// The in-range cells of one window, as per-axis input indices.
#[derive(Clone, Copy)]
struct Window<'a> {
    d: &'a [usize],
    h: &'a [usize],
    x: &'a [usize],
    rows: usize,
    cols: usize,
}

impl Window<'_> {
    /// The plane offset of the window's first in-range cell, if any.
    fn first_cell(self) -> Option<usize> {
        let (d, h, x) = (self.d.first()?, self.h.first()?, self.x.first()?);
        Some((d * self.rows + h) * self.cols + x)
    }

    /// Calls `visit(plane offset)` for each cell, in PyTorch's scan order (d, then h, then w).
    #[inline(always)]
    fn for_each_cell(self, mut visit: impl FnMut(usize)) {
        for &d in self.d {
            for &h in self.h {
                let row = (d * self.rows + h) * self.cols;
                for &x in self.x {
                    visit(row + x);
                }
            }
        }
    }
}

/// The argmax of a window with no in-range cell.
pub(crate) const NO_CELL: u32 = u32::MAX;

fn plane_lengths(w: &PoolWindow) -> (usize, usize) {
    (w.input.iter().product(), w.output.iter().product())
}

/// Max pooling of `planes` planes; also returns, per output cell, the offset of the chosen input
/// cell inside its plane. Ties keep the first cell in window order and NaN wins, as in PyTorch
/// (which records the last NaN's position where this records the first).
pub(crate) fn max_forward<T: Real>(input: &[T], w: &PoolWindow) -> (Vec<T>, Vec<u32>) {
    let (in_len, out_len) = plane_lengths(w);
    let planes = input.len() / in_len;
    let taps = Taps::new(w);
    let mut values = vec![T::ZERO; planes * out_len];
    let mut argmax = vec![0u32; planes * out_len];
    values
        .par_chunks_mut(out_len)
        .zip(argmax.par_chunks_mut(out_len))
        .zip(input.par_chunks(in_len))
        .for_each(|((values, argmax), plane)| {
            taps.for_each_window(w, |out, window| {
                // PyTorch starts from -inf at the window's first in-range cell.
                let Some(first) = window.first_cell() else {
                    // Dilation can make a window all padding: -inf, and no gradient.
                    (values[out], argmax[out]) = (T::NEG_INFINITY, NO_CELL);
                    return;
                };
                let (mut best, mut best_at, mut saw_nan) = (T::NEG_INFINITY, first, false);
                window.for_each_cell(|cell| {
                    let v = plane[cell];
                    // Selects, not branches, and NaN only noted: branching on it doubled the time.
                    let take = v > best;
                    best = if take { v } else { best };
                    best_at = if take { cell } else { best_at };
                    saw_nan |= v.is_nan();
                });
                if saw_nan {
                    window.for_each_cell(|cell| {
                        if plane[cell].is_nan() && !best.is_nan() {
                            (best, best_at) = (plane[cell], cell);
                        }
                    });
                }
                values[out] = best;
                argmax[out] = best_at as u32;
            });
        });
    (values, argmax)
}

/// Scatters the output gradient back to the cells `max_forward` chose.
pub(crate) fn max_backward<T: Real>(grad: &[T], argmax: &[u32], w: &PoolWindow) -> Vec<T> {
    let (in_len, out_len) = plane_lengths(w);
    let planes = grad.len() / out_len;
    let mut input_grad = vec![T::ZERO; planes * in_len];
    input_grad
        .par_chunks_mut(in_len)
        .zip(grad.par_chunks(out_len).zip(argmax.par_chunks(out_len)))
        .for_each(|(input_grad, (grad, argmax))| {
            for (&g, &at) in grad.iter().zip(argmax) {
                if at != NO_CELL {
                    input_grad[at as usize] += g;
                }
            }
        });
    input_grad
}

/// The divisor of every output cell: the full kernel volume when padding counts, else the number
/// of in-range cells (separable, so a product of per-axis counts).
fn divisors(w: &PoolWindow, taps: &Taps, count_include_pad: bool) -> Vec<f64> {
    let [taps_d, taps_h, taps_w] = &taps.0;
    let full = w.kernel.iter().product::<usize>() as f64;
    let mut divisors = Vec::with_capacity(w.output.iter().product());
    for td in taps_d {
        for th in taps_h {
            for tw in taps_w {
                let count = (td.len() * th.len() * tw.len()) as f64;
                divisors.push(if count_include_pad { full } else { count });
            }
        }
    }
    divisors
}

pub(crate) fn avg_forward<T: Real>(input: &[T], w: &PoolWindow, count_include_pad: bool) -> Vec<T> {
    let (in_len, out_len) = plane_lengths(w);
    let planes = input.len() / in_len;
    let taps = Taps::new(w);
    let scales: Vec<T> = divisors(w, &taps, count_include_pad)
        .iter()
        .map(|d| T::from_f64(1.0 / d))
        .collect();
    let mut values = vec![T::ZERO; planes * out_len];
    values
        .par_chunks_mut(out_len)
        .zip(input.par_chunks(in_len))
        .for_each(|(values, plane)| {
            taps.for_each_window(w, |out, window| {
                let mut sum = T::ZERO;
                window.for_each_cell(|cell| sum += plane[cell]);
                values[out] = sum * scales[out];
            });
        });
    values
}

pub(crate) fn avg_backward<T: Real>(grad: &[T], w: &PoolWindow, count_include_pad: bool) -> Vec<T> {
    let (in_len, out_len) = plane_lengths(w);
    let planes = grad.len() / out_len;
    let taps = Taps::new(w);
    let scales: Vec<T> = divisors(w, &taps, count_include_pad)
        .iter()
        .map(|d| T::from_f64(1.0 / d))
        .collect();
    let mut input_grad = vec![T::ZERO; planes * in_len];
    input_grad
        .par_chunks_mut(in_len)
        .zip(grad.par_chunks(out_len))
        .for_each(|(input_grad, grad)| {
            taps.for_each_window(w, |out, window| {
                let share = grad[out] * scales[out];
                window.for_each_cell(|cell| input_grad[cell] += share);
            });
        });
    input_grad
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::MaxPool3dConfig;

    /// 1 x 1 x 4 plane in two windows of 2: [3, NaN | 5, 4] -> [NaN, 5]; the NaN cell (1) and
    /// the 5 (2) receive the gradient. A window of -inf picks its first cell.
    #[test]
    fn max_propagates_nan_and_routes_its_gradient() {
        let window = MaxPool3dConfig::new([1, 1, 2]).window([1, 1, 4]).unwrap();
        let (values, argmax) = max_forward(&[3.0f32, f32::NAN, 5.0, 4.0], &window);
        assert!(values[0].is_nan());
        assert_eq!((values[1], argmax.clone()), (5.0, vec![1, 2]));
        assert_eq!(
            max_backward(&[1.0f32, 2.0], &argmax, &window),
            vec![0.0, 1.0, 2.0, 0.0]
        );
        let single = MaxPool3dConfig::new([1, 1, 2]).window([1, 1, 2]).unwrap();
        let (values, argmax) = max_forward(&[f32::NEG_INFINITY; 2], &single);
        assert_eq!((values, argmax), (vec![f32::NEG_INFINITY], vec![0]));
    }
}
