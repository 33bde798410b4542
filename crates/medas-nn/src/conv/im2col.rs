//! im2col and its adjoint col2im for one tile of output rows of one batch item.
//!
//! A tile covers output rows `rows.start..rows.end`, where a row is one (output depth, output
//! height) pair holding `output[2]` voxels, so a tile's columns are `rows.len() * output[2]`
//! consecutive output voxels. The column matrix has one row per (input channel, kernel tap),
//! channel-major, exactly the flattened order of the weight `[out, in, kD, kH, kW]`, so the
//! forward pass is `weight [out, in*taps] x col [in*taps, tile columns]`.

use std::ops::Range;

use rayon::prelude::*;

use super::ConvFloat;
use super::geometry::ConvGeometry;

/// Index range along the input of one output row's valid voxels for one kernel tap along width:
/// output columns `lo..hi` read input columns `lo*stride + offset ..`.
#[derive(Clone, Copy)]
struct WidthSpan {
    lo: usize,
    hi: usize,
    /// Input column of output column 0 (may be negative when it falls in the padding).
    offset: isize,
}

fn width_span(g: &ConvGeometry, kw: usize) -> WidthSpan {
    axis_span(g, 2, kw)
}

/// Output positions `lo..hi` along `axis` whose input position for kernel tap `tap` lies inside
/// the input; output position `o` reads input position `o * stride + offset`.
fn axis_span(g: &ConvGeometry, axis: usize, tap: usize) -> WidthSpan {
    let stride = g.stride[axis] as isize;
    let offset = (tap * g.dilation[axis]) as isize - g.pad_before[axis] as isize;
    let size = g.input[axis] as isize;
    // First output position whose input position is >= 0, and first whose is >= size.
    let lo = if offset >= 0 {
        0
    } else {
        (-offset + stride - 1) / stride
    };
    let hi = if size - offset <= 0 {
        0
    } else {
        (size - offset + stride - 1) / stride
    };
    let out = g.output[axis] as isize;
    let lo = lo.min(out) as usize;
    let hi = (hi.min(out) as usize).max(lo);
    WidthSpan { lo, hi, offset }
}

/// Input index of an output coordinate along one of the two outer axes, if inside the input.
#[inline]
fn input_coordinate(g: &ConvGeometry, axis: usize, out: usize, tap: usize) -> Option<usize> {
    let position =
        (out * g.stride[axis] + tap * g.dilation[axis]) as isize - g.pad_before[axis] as isize;
    (position >= 0 && (position as usize) < g.input[axis]).then_some(position as usize)
}

/// Calls `visit(col_row, tile_offset, input_row_start, span)` for every (kernel tap, output row)
/// pair of the tile; `input_row_start` indexes the start of the input row within one channel
/// plane, or is `None` when the row lies entirely in the padding.
#[inline]
fn for_each_row(
    g: &ConvGeometry,
    rows: &Range<usize>,
    mut visit: impl FnMut(usize, usize, Option<usize>, WidthSpan),
) {
    let [kd_n, kh_n, kw_n] = g.kernel;
    let out_w = g.output[2];
    let [_, h, w] = g.input;
    for kd in 0..kd_n {
        for kh in 0..kh_n {
            for kw in 0..kw_n {
                let tap = (kd * kh_n + kh) * kw_n + kw;
                let span = width_span(g, kw);
                for row in rows.clone() {
                    let (od, oh) = (row / g.output[1], row % g.output[1]);
                    let start = match (
                        input_coordinate(g, 0, od, kd),
                        input_coordinate(g, 1, oh, kh),
                    ) {
                        (Some(id), Some(ih)) => Some((id * h + ih) * w),
                        _ => None,
                    };
                    visit(tap, (row - rows.start) * out_w, start, span);
                }
            }
        }
    }
}

/// Fills `col` (`in_channels * taps` rows of `rows.len() * output[2]` columns) from one batch
/// item `x` (`[in, D, H, W]`, contiguous). With `parallel`, channels are split across the rayon
/// pool: for a lone task (batch 1, small image) im2col would otherwise run on one core while the
/// GEMM after it uses all of them.
pub fn im2col_tile<T: ConvFloat>(
    g: &ConvGeometry,
    x: &[T],
    rows: &Range<usize>,
    col: &mut [T],
    parallel: bool,
) {
    let block = rows.len() * g.output[2] * g.kernel_volume();
    let plane = g.input_plane();
    let col = &mut col[..g.in_channels * block];
    let channel = |(c, dst): (usize, &mut [T])| {
        im2col_channel(g, &x[c * plane..(c + 1) * plane], rows, dst);
    };
    if parallel {
        col.par_chunks_mut(block).enumerate().for_each(channel);
    } else {
        col.chunks_mut(block).enumerate().for_each(channel);
    }
}

/// The `taps` rows of one input channel `src` (one plane).
fn im2col_channel<T: ConvFloat>(g: &ConvGeometry, src: &[T], rows: &Range<usize>, dst: &mut [T]) {
    if g.stride[1] == 1 && g.stride[2] == 1 && g.input[2] == g.output[2] {
        im2col_channel_merged(g, src, rows, dst);
        return;
    }
    let columns = rows.len() * g.output[2];
    let stride = g.stride[2];
    let out_w = g.output[2];
    for_each_row(g, rows, |tap, at, row_start, span| {
        // Every value of the tile is written exactly once: zeros where the tap reads padding.
        let segment = &mut dst[tap * columns + at..][..out_w];
        let Some(row_start) = row_start else {
            segment.fill(T::ZERO);
            return;
        };
        // Most rows need no padding at either end; skip the (library-call) fills then.
        if span.lo > 0 {
            segment[..span.lo].fill(T::ZERO);
        }
        if span.hi < out_w {
            segment[span.hi..].fill(T::ZERO);
        }
        let out = &mut segment[span.lo..span.hi];
        let first =
            (row_start as isize + span.lo as isize * stride as isize + span.offset) as usize;
        if stride == 1 {
            out.copy_from_slice(&src[first..first + out.len()]);
        } else {
            for (i, value) in out.iter_mut().enumerate() {
                *value = src[first + i * stride];
            }
        }
    });
}

/// [`im2col_channel`] when output rows and input rows have the same length and unit stride in
/// height and width (the usual "same" convolution): then, within one output depth plane, a
/// tap's consecutive output rows read consecutive input rows at a constant offset, so each run of
/// valid rows is one long copy, after which the few columns that fall in the left/right padding
/// are zeroed. Rows of 8-32 values (3-D and deep layers) made per-row copies the main cost.
fn im2col_channel_merged<T: ConvFloat>(
    g: &ConvGeometry,
    src: &[T],
    rows: &Range<usize>,
    dst: &mut [T],
) {
    let [kd_n, kh_n, kw_n] = g.kernel;
    let (out_h, out_w) = (g.output[1], g.output[2]);
    let columns = rows.len() * out_w;
    let in_h = g.input[1];
    for kd in 0..kd_n {
        for kh in 0..kh_n {
            let height = axis_span(g, 1, kh);
            for kw in 0..kw_n {
                let tap = (kd * kh_n + kh) * kw_n + kw;
                let width = width_span(g, kw);
                let dst = &mut dst[tap * columns..(tap + 1) * columns];
                // One run per output depth plane that the tile touches.
                let mut start = rows.start;
                while start < rows.end {
                    let od = start / out_h;
                    let end = rows.end.min((od + 1) * out_h);
                    let oh = (start - od * out_h)..(end - od * out_h);
                    let at = (start - rows.start) * out_w;
                    let run = &mut dst[at..at + oh.len() * out_w];
                    let depth = input_coordinate(g, 0, od, kd);
                    // Rows of the run whose input row exists.
                    let valid = oh.start.max(height.lo)..oh.end.min(height.hi);
                    match depth {
                        Some(id) if !valid.is_empty() => {
                            let first_valid = valid.start - oh.start;
                            let last_valid = valid.end - oh.start;
                            run[..first_valid * out_w].fill(T::ZERO);
                            run[last_valid * out_w..].fill(T::ZERO);
                            let ih = (valid.start as isize + height.offset) as usize;
                            let source = (id * in_h + ih) * g.input[2];
                            copy_valid_rows(
                                &mut run[first_valid * out_w..last_valid * out_w],
                                src,
                                source,
                                width,
                                out_w,
                            );
                        }
                        _ => run.fill(T::ZERO),
                    }
                    start = end;
                }
            }
        }
    }
}

/// Copies consecutive rows (each `out_w` long) that start at input index `source`, then zeroes
/// the columns outside `width.lo..width.hi`, which the single long copy filled with neighbours.
fn copy_valid_rows<T: ConvFloat>(
    out: &mut [T],
    src: &[T],
    source: usize,
    width: WidthSpan,
    out_w: usize,
) {
    let rows = out.len() / out_w;
    let first = width.lo;
    let last = (rows - 1) * out_w + width.hi;
    if first < last {
        let from = (source as isize + first as isize + width.offset) as usize;
        out[first..last].copy_from_slice(&src[from..from + (last - first)]);
    }
    for row in out.chunks_exact_mut(out_w) {
        if width.lo > 0 {
            row[..width.lo].fill(T::ZERO);
        }
        if width.hi < out_w {
            row[width.hi..].fill(T::ZERO);
        }
    }
}

/// Adds the column-matrix tile `col` (the rows of `channels` consecutive input channels) back
/// onto those channels of one batch item's input gradient `dx` (`channels` planes): the adjoint
/// of [`im2col_tile`].
pub fn col2im_tile<T: ConvFloat>(
    g: &ConvGeometry,
    col: &[T],
    rows: &Range<usize>,
    channels: usize,
    dx: &mut [T],
) {
    let columns = rows.len() * g.output[2];
    let taps = g.kernel_volume();
    let plane = g.input_plane();
    let stride = g.stride[2];
    for channel in 0..channels {
        let src = &col[channel * taps * columns..(channel + 1) * taps * columns];
        let dst = &mut dx[channel * plane..(channel + 1) * plane];
        for_each_row(g, rows, |tap, at, row_start, span| {
            let Some(row_start) = row_start else { return };
            let values = &src[tap * columns + at..][span.lo..span.hi];
            let first =
                (row_start as isize + span.lo as isize * stride as isize + span.offset) as usize;
            if stride == 1 {
                for (out, &value) in dst[first..first + values.len()].iter_mut().zip(values) {
                    *out += value;
                }
            } else {
                for (i, &value) in values.iter().enumerate() {
                    dst[first + i * stride] += value;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::geometry::ConvParams;

    fn geometry(
        input: [usize; 2],
        kernel: [usize; 2],
        stride: usize,
        pad: usize,
        dil: usize,
    ) -> ConvGeometry {
        let params = ConvParams {
            stride: [1, stride, stride],
            padding: [(0, 0), (pad, pad), (pad, pad)],
            dilation: [1, dil, dil],
        };
        ConvGeometry::new(
            [1, 2, 1, input[0], input[1]],
            [1, 2, 1, kernel[0], kernel[1]],
            &params,
        )
        .unwrap()
    }

    /// Direct definition of the column matrix, for comparison.
    fn naive_col(g: &ConvGeometry, x: &[f64]) -> Vec<f64> {
        let (oh_n, ow_n) = (g.output[1], g.output[2]);
        let taps = g.kernel_volume();
        let mut col = vec![0.0; g.in_channels * taps * oh_n * ow_n];
        for c in 0..g.in_channels {
            for kh in 0..g.kernel[1] {
                for kw in 0..g.kernel[2] {
                    for oh in 0..oh_n {
                        for ow in 0..ow_n {
                            let ih = (oh * g.stride[1] + kh * g.dilation[1]) as isize
                                - g.pad_before[1] as isize;
                            let iw = (ow * g.stride[2] + kw * g.dilation[2]) as isize
                                - g.pad_before[2] as isize;
                            let inside = ih >= 0
                                && iw >= 0
                                && (ih as usize) < g.input[1]
                                && (iw as usize) < g.input[2];
                            let row = c * taps + kh * g.kernel[2] + kw;
                            col[row * oh_n * ow_n + oh * ow_n + ow] = if inside {
                                x[c * g.input_plane() + ih as usize * g.input[2] + iw as usize]
                            } else {
                                0.0
                            };
                        }
                    }
                }
            }
        }
        col
    }

    #[test]
    fn im2col_matches_definition_and_col2im_is_its_adjoint() {
        for (input, kernel, stride, pad, dil) in [
            ([5, 6], [3, 3], 1, 1, 1),
            ([7, 5], [3, 2], 2, 1, 1),
            ([9, 8], [3, 3], 2, 2, 2),
            ([4, 4], [1, 1], 1, 0, 1),
            ([3, 3], [3, 3], 3, 2, 1),
        ] {
            let g = geometry(input, kernel, stride, pad, dil);
            let x: Vec<f64> = (0..2 * g.input_plane())
                .map(|i| (i as f64 * 0.37).sin())
                .collect();
            let rows = 0..g.output_rows();
            let mut col = vec![f64::NAN; g.col_rows() * g.output_plane()];
            im2col_tile(&g, &x, &rows, &mut col, true);
            assert_eq!(
                col,
                naive_col(&g, &x),
                "{input:?} {kernel:?} s{stride} p{pad} d{dil}"
            );

            // <col2im(c), x> == <c, im2col(x)> for any c.
            let c: Vec<f64> = (0..col.len()).map(|i| (i as f64 * 0.11).cos()).collect();
            let mut dx = vec![0.0; x.len()];
            col2im_tile(&g, &c, &rows, 2, &mut dx);
            let lhs: f64 = dx.iter().zip(&x).map(|(a, b)| a * b).sum();
            let rhs: f64 = c.iter().zip(&col).map(|(a, b)| a * b).sum();
            assert!((lhs - rhs).abs() < 1e-9 * rhs.abs().max(1.0));
        }
    }

    #[test]
    fn tiles_concatenate_to_the_whole_matrix() {
        let g = geometry([7, 6], [3, 3], 1, 1, 1);
        let x: Vec<f64> = (0..2 * g.input_plane()).map(|i| i as f64).collect();
        let full = naive_col(&g, &x);
        let columns = g.output_plane();
        for rows in [0..3, 3..7] {
            let width = rows.len() * g.output[2];
            let mut col = vec![0.0; g.col_rows() * width];
            im2col_tile(&g, &x, &rows, &mut col, false);
            for r in 0..g.col_rows() {
                let start = r * columns + rows.start * g.output[2];
                assert_eq!(
                    &col[r * width..(r + 1) * width],
                    &full[start..start + width]
                );
            }
        }
    }
}
