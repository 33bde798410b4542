//! Convolution forward and backward as im2col + GEMM over cache-sized tiles.
//!
//! Work is split into (batch item, tile of output rows) tasks run by rayon; each task builds its
//! im2col tile in a per-thread buffer and calls the single-threaded `gemm` kernel, so the two
//! levels of parallelism never compete. Slices are contiguous, channel-first:
//! `x [batch, in, D, H, W]`, `weight [out, in, kD, kH, kW]`, `dy [batch, out, oD, oH, oW]`.

use std::ops::Range;

use gemm::Parallelism;
use rayon::prelude::*;

use super::ConvFloat;
use super::geometry::ConvGeometry;
use super::im2col::{col2im_tile, im2col_tile};

/// A raw pointer that tasks writing disjoint parts of one buffer may share.
#[derive(Clone, Copy)]
struct SharedMut<T>(*mut T);
// SAFETY: every task writes a region no other task touches (see the callers).
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// A method (not field access) so closures capture the whole `Send` wrapper.
    fn get(self) -> *mut T {
        self.0
    }
}

/// A row-major or strided matrix operand for `gemm`.
#[derive(Clone, Copy)]
struct Operand<T> {
    ptr: *const T,
    row_stride: isize,
    col_stride: isize,
}

/// `dst [m, n] (+)= lhs [m, k] x rhs [k, n]`, threaded only as `parallelism` says (callers
/// parallelise over tasks; see [`inner_parallelism`]).
///
/// # Safety
/// Every operand must be valid for its extent and `dst` must not alias `lhs` or `rhs`.
unsafe fn matmul<T: ConvFloat>(
    [m, n, k]: [usize; 3],
    dst: *mut T,
    dst_row_stride: isize,
    accumulate: bool,
    lhs: Operand<T>,
    rhs: Operand<T>,
    parallelism: Parallelism,
) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst,
            1,
            dst_row_stride,
            accumulate,
            lhs.ptr,
            lhs.col_stride,
            lhs.row_stride,
            rhs.ptr,
            rhs.col_stride,
            rhs.row_stride,
            T::ONE,
            T::ONE,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Too few tasks (batch 1 of a deep, small-image layer is a single tile) cannot keep every core
/// busy on their own: then gemm also splits each product across the pool.
fn inner_parallelism(task_count: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if threads > 1 && task_count < 2 * threads {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    }
}

/// Tiles of output rows; every batch item is split the same way.
fn row_tiles(g: &ConvGeometry) -> Vec<Range<usize>> {
    let step = g.rows_per_tile();
    (0..g.output_rows())
        .step_by(step)
        .map(|start| start..(start + step).min(g.output_rows()))
        .collect()
}

fn tasks(g: &ConvGeometry) -> Vec<(usize, Range<usize>)> {
    let tiles = row_tiles(g);
    (0..g.batch)
        .flat_map(|n| tiles.iter().map(move |rows| (n, rows.clone())))
        .collect()
}

/// The im2col matrix of one tile as a GEMM operand `[in*taps, tile columns]`; pointwise
/// convolutions use the input itself, anything else is written into `buffer` (by the whole pool
/// when the GEMMs get it too).
fn col_operand<T: ConvFloat>(
    g: &ConvGeometry,
    x_n: &[T],
    rows: &Range<usize>,
    buffer: &mut Vec<T>,
    parallelism: Parallelism,
) -> Operand<T> {
    let columns = rows.len() * g.output[2];
    if g.is_pointwise() {
        return Operand {
            ptr: x_n[rows.start * g.output[2]..].as_ptr(),
            row_stride: g.input_plane() as isize,
            col_stride: 1,
        };
    }
    buffer.resize(g.col_rows() * columns, T::ZERO);
    im2col_tile(
        g,
        x_n,
        rows,
        buffer,
        matches!(parallelism, Parallelism::Rayon(_)),
    );
    Operand {
        ptr: buffer.as_ptr(),
        row_stride: columns as isize,
        col_stride: 1,
    }
}

/// `y = conv(x, weight) + bias`.
pub fn forward<T: ConvFloat>(
    g: &ConvGeometry,
    x: &[T],
    weight: &[T],
    bias: Option<&[T]>,
) -> Vec<T> {
    let (plane_in, plane_out) = (g.in_channels * g.input_plane(), g.output_plane());
    let mut y = vec![T::ZERO; g.batch * g.out_channels * plane_out];
    let y_ptr = SharedMut(y.as_mut_ptr());
    let tasks = tasks(g);
    let parallelism = inner_parallelism(tasks.len());
    tasks
        .into_par_iter()
        .for_each_init(Vec::new, |buffer, (n, rows)| {
            let columns = rows.len() * g.output[2];
            let col = col_operand(
                g,
                &x[n * plane_in..(n + 1) * plane_in],
                &rows,
                buffer,
                parallelism,
            );
            let lhs = Operand {
                ptr: weight.as_ptr(),
                row_stride: g.col_rows() as isize,
                col_stride: 1,
            };
            let offset = n * g.out_channels * plane_out + rows.start * g.output[2];
            // SAFETY: this task alone writes columns `rows` of batch item `n` in every output
            // channel; `y` outlives the parallel loop.
            unsafe {
                let dst = y_ptr.get().add(offset);
                if let Some(bias) = bias {
                    for (o, &b) in bias.iter().enumerate() {
                        std::slice::from_raw_parts_mut(dst.add(o * plane_out), columns).fill(b);
                    }
                }
                let shape = [g.out_channels, columns, g.col_rows()];
                matmul(
                    shape,
                    dst,
                    plane_out as isize,
                    bias.is_some(),
                    lhs,
                    col,
                    parallelism,
                );
            }
        });
    y
}

/// Gradient of the input: `dcol = weightᵀ dy` per tile, scattered back by col2im.
///
/// Tasks are (batch item, block of input channels): col2im of neighbouring tiles overlaps in
/// space, but different channels never do, so each task owns its channel planes outright.
pub fn backward_input<T: ConvFloat>(g: &ConvGeometry, weight: &[T], dy: &[T]) -> Vec<T> {
    if let Some((transposed, flipped)) = transposed_problem(g, weight) {
        return forward(&transposed, dy, &flipped, None);
    }
    let plane_in = g.input_plane();
    let plane_out = g.output_plane();
    let taps = g.kernel_volume();
    let threads = rayon::current_num_threads();
    let blocks = (2 * threads).div_ceil(g.batch).clamp(1, g.in_channels);
    let per_block = g.in_channels.div_ceil(blocks);
    let mut dx = vec![T::ZERO; g.batch * g.in_channels * plane_in];
    let tiles = row_tiles(g);
    let parallelism = inner_parallelism(g.batch * g.in_channels.div_ceil(per_block));
    let batch_len = g.in_channels * plane_in;
    dx.par_chunks_mut(batch_len)
        .enumerate()
        .for_each(|(n, dx_n)| {
            let dy_n = &dy[n * g.out_channels * plane_out..(n + 1) * g.out_channels * plane_out];
            dx_n.par_chunks_mut(per_block * plane_in)
                .enumerate()
                .for_each_init(Vec::new, |buffer, (block, dx_block)| {
                    let c0 = block * per_block;
                    let weight = &weight[c0 * taps..];
                    input_block_gradient(g, weight, dy_n, &tiles, parallelism, buffer, dx_block);
                });
        });
    dx
}

/// With unit stride the input gradient is itself a convolution: of `dy` with the weight's
/// channels swapped and taps reversed, padded by `dilation * (kernel - 1) - padding`. That runs
/// on the forward kernel (a GEMM with the long inner dimension `out * taps` and no scatter),
/// when the new padding is not negative.
fn transposed_problem<T: ConvFloat>(
    g: &ConvGeometry,
    weight: &[T],
) -> Option<(ConvGeometry, Vec<T>)> {
    if g.stride != [1, 1, 1] {
        return None;
    }
    let new_padding = |axis: usize| {
        let reach = g.dilation[axis] * (g.kernel[axis] - 1);
        // Unit stride: output = input + before + after - reach.
        let pad_after = g.output[axis] + reach - g.input[axis] - g.pad_before[axis];
        (g.pad_before[axis] <= reach && pad_after <= reach).then(|| reach - g.pad_before[axis])
    };
    let pad_before = [new_padding(0)?, new_padding(1)?, new_padding(2)?];
    let transposed = ConvGeometry {
        in_channels: g.out_channels,
        out_channels: g.in_channels,
        input: g.output,
        output: g.input,
        pad_before,
        ..*g
    };
    let taps = g.kernel_volume();
    let mut flipped = vec![T::ZERO; weight.len()];
    for o in 0..g.out_channels {
        for c in 0..g.in_channels {
            let src = &weight[(o * g.in_channels + c) * taps..][..taps];
            let dst = &mut flipped[(c * g.out_channels + o) * taps..][..taps];
            dst.iter_mut()
                .zip(src.iter().rev())
                .for_each(|(d, &s)| *d = s);
        }
    }
    Some((transposed, flipped))
}

/// Input gradient of one batch item's channel block `dx_block` (whole planes); `weight` starts
/// at the block's first channel.
fn input_block_gradient<T: ConvFloat>(
    g: &ConvGeometry,
    weight: &[T],
    dy_n: &[T],
    tiles: &[Range<usize>],
    parallelism: Parallelism,
    buffer: &mut Vec<T>,
    dx_block: &mut [T],
) {
    let (plane_in, plane_out) = (g.input_plane(), g.output_plane());
    let taps = g.kernel_volume();
    let channels = dx_block.len() / plane_in;
    // weightᵀ restricted to this block: element (c*taps + t, o) is weight[o, c, t].
    let lhs = Operand {
        ptr: weight.as_ptr(),
        row_stride: 1,
        col_stride: g.col_rows() as isize,
    };
    for rows in tiles {
        let columns = rows.len() * g.output[2];
        let rhs = Operand {
            ptr: dy_n[rows.start * g.output[2]..].as_ptr(),
            row_stride: plane_out as isize,
            col_stride: 1,
        };
        let shape = [channels * taps, columns, g.out_channels];
        buffer.resize(channels * taps * columns, T::ZERO);
        // SAFETY: `buffer` holds exactly `channels*taps` rows of `columns` values.
        unsafe {
            matmul(
                shape,
                buffer.as_mut_ptr(),
                columns as isize,
                false,
                lhs,
                rhs,
                parallelism,
            )
        };
        col2im_tile(g, buffer, rows, channels, dx_block);
    }
}

/// Gradients of the weight (`Σₙ dy col(x)ᵀ`) and of the bias (`Σ dy`). The (batch item,
/// tile) tasks are cut into at most [`SUM_GROUPS`] fixed groups whose partial sums are added in
/// order: the result does not depend on how rayon schedules the work, so a seeded training run
/// gives the same numbers every time.
pub fn backward_weight_bias<T: ConvFloat>(g: &ConvGeometry, x: &[T], dy: &[T]) -> (Vec<T>, Vec<T>) {
    let (plane_in, plane_out) = (g.in_channels * g.input_plane(), g.output_plane());
    let weight_len = g.out_channels * g.col_rows();
    let zero = || (vec![T::ZERO; weight_len], vec![T::ZERO; g.out_channels]);
    let tasks = tasks(g);
    let parallelism = inner_parallelism(tasks.len());
    let per_group = tasks.len().div_ceil(SUM_GROUPS).max(1);
    let accumulate = |(mut dw, mut db): (Vec<T>, Vec<T>),
                      buffer: &mut Vec<T>,
                      (n, rows): &(usize, std::ops::Range<usize>)| {
        let (n, rows) = (*n, rows.clone());
        let columns = rows.len() * g.output[2];
        let first = n * g.out_channels * plane_out + rows.start * g.output[2];
        let x_n = &x[n * plane_in..(n + 1) * plane_in];
        let col = col_operand(g, x_n, &rows, buffer, parallelism);
        for (o, sum) in db.iter_mut().enumerate() {
            let start = first + o * plane_out;
            *sum += dy[start..start + columns]
                .iter()
                .fold(T::ZERO, |a, &b| a + b);
        }
        let lhs = Operand {
            ptr: dy[first..].as_ptr(),
            row_stride: plane_out as isize,
            col_stride: 1,
        };
        // colᵀ: element (p, k) of the [columns, in*taps] matrix is col (k, p).
        let rhs = Operand {
            ptr: col.ptr,
            row_stride: col.col_stride,
            col_stride: col.row_stride,
        };
        let shape = [g.out_channels, g.col_rows(), columns];
        // SAFETY: `dw` is this fold's own [out, in*taps] accumulator.
        unsafe {
            matmul(
                shape,
                dw.as_mut_ptr(),
                g.col_rows() as isize,
                true,
                lhs,
                rhs,
                parallelism,
            )
        };
        (dw, db)
    };
    let partials: Vec<(Vec<T>, Vec<T>)> = tasks
        .par_chunks(per_group)
        .map(|group| {
            let mut buffer = Vec::new();
            group
                .iter()
                .fold(zero(), |sums, task| accumulate(sums, &mut buffer, task))
        })
        .collect();
    partials
        .into_iter()
        .reduce(|(mut dw, mut db), (dw2, db2)| {
            dw.iter_mut().zip(dw2).for_each(|(a, b)| *a += b);
            db.iter_mut().zip(db2).for_each(|(a, b)| *a += b);
            (dw, db)
        })
        .unwrap_or_else(zero)
}

/// The number of partial sums of the weight gradient (fixed, so sums are reproducible).
const SUM_GROUPS: usize = 8;
