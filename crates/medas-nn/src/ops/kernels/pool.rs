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
    /// Plane offsets of the cells, in PyTorch's scan order (d, then h, then w).
    fn cells(self) -> impl Iterator<Item = usize> {
        let Window {
            d,
            h,
            x,
            rows,
            cols,
        } = self;
        d.iter()
            .flat_map(move |&d| h.iter().map(move |&h| (d * rows + h) * cols))
            .flat_map(move |row| x.iter().map(move |&x| row + x))
    }
}

fn plane_lengths(w: &PoolWindow) -> (usize, usize) {
    (w.input.iter().product(), w.output.iter().product())
}

/// Max pooling of `planes` planes; also returns, per output cell, the offset of the chosen input
/// cell inside its plane. Ties keep the first cell in window order and NaN wins, as in PyTorch.
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
                let (mut best, mut best_at) = (T::NEG_INFINITY, usize::MAX);
                for cell in window.cells() {
                    let v = plane[cell];
                    if best_at == usize::MAX || v > best || v.is_nan() {
                        (best, best_at) = (v, cell);
                        if v.is_nan() {
                            break;
                        }
                    }
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
                input_grad[at as usize] += g;
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
                let sum = window.cells().fold(T::ZERO, |sum, cell| sum + plane[cell]);
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
                for cell in window.cells() {
                    input_grad[cell] += share;
                }
            });
        });
    input_grad
}
