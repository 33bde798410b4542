//! Resampling onto any grid whose index axes are an affine function of the input's (another
//! direction, a rotated reference): every output voxel samples the input at its own continuous
//! index, as ITK's ResampleImageFilter does with an identity transform. The separable passes of
//! `interpolate` are used instead whenever the grid's axes run along the input's.
//!
//! Sampling follows ITK: a point is inside where `-0.5 <= x < len - 0.5` on every axis;
//! nearest rounds halves up, linear repeats the edge voxels, B-spline mirrors its coefficients.

use crate::tools::interpolate::{bspline_prefilter, cubic_bspline_weights, fortran_values, mirror};
use crate::tools::resample::Interpolator;
use medas_image::{Scalar, VoxelArray, Voxels};
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;

/// Output index `o` samples input continuous index `start + matrix · o` (3-D; a 2-D image is
/// a 3-D one with one slice and an identity third row and column).
#[derive(Debug, Clone, PartialEq)]
pub struct IndexMap {
    pub start: [f64; 3],
    /// Column `a`: the step in input index per output index along axis `a`.
    pub columns: [[f64; 3]; 3],
}

/// One component of a Fortran-ordered 3-D volume of `shape`, resampled by `map` onto
/// `out_shape`: the voxel type for nearest, f32 for linear and B-spline. Lines along the first
/// output axis in parallel.
pub fn warp<T: Scalar>(input: &[T], shape: [usize; 3], out_shape: [usize; 3], map: &IndexMap, interpolator: Interpolator, default: f64) -> Warped<T> {
    let total: usize = out_shape.iter().product();
    let line = out_shape[0].max(1);
    match interpolator {
        Interpolator::Nearest => {
            let mut out = vec![T::from_f64(default); total];
            out.par_chunks_mut(line).enumerate().for_each(|(l, out)| {
                let start = line_start(map, l, out_shape);
                for i in inside_range(map, start, out.len(), shape) {
                    let x = point(map, start, i);
                    // Inside the input x + 0.5 >= 0, where truncating is flooring: one
                    // conversion instead of a libm floor and an unsigned conversion per axis.
                    let at = |a: usize| ((x[a] + 0.5) as i64 as usize).min(shape[a] - 1);
                    out[i] = input[at(0) + shape[0] * (at(1) + shape[1] * at(2))];
                }
            });
            Warped::Same(out)
        }
        // Read straight from the input's type: converting the whole volume to f32 first costs
        // more than the sampling itself.
        Interpolator::Linear => Warped::Float(sample_linear(input, shape, out_shape, map, default)),
        Interpolator::BSpline => {
            let mut values: Vec<f32> = input.iter().map(|v| v.to_f64() as f32).collect();
            (0..3).for_each(|axis| bspline_prefilter(&mut values, &shape, axis));
            let bspline_at = |values: &[f32], shape: [usize; 3], x: &[f64; 3]| interpolate(values, shape, x, &bspline_taps);
            Warped::Float(sample(&values, shape, out_shape, map, default, bspline_at))
        }
    }
}

/// Every output voxel inside the input as `at` (an interpolation of `values` at a continuous
/// index); `default` elsewhere.
fn sample<T: Scalar>(
    values: &[T],
    shape: [usize; 3],
    out_shape: [usize; 3],
    map: &IndexMap,
    default: f64,
    at: impl Fn(&[T], [usize; 3], &[f64; 3]) -> f32 + Sync,
) -> Vec<f32> {
    let mut out = vec![default as f32; out_shape.iter().product()];
    out.par_chunks_mut(out_shape[0].max(1)).enumerate().for_each(|(l, out)| {
        let start = line_start(map, l, out_shape);
        for i in inside_range(map, start, out.len(), shape) {
            out[i] = at(values, shape, &point(map, start, i));
        }
    });
    out
}

/// [`sample`] with trilinear interpolation. On each line the voxels whose eight neighbours all
/// lie inside the input (the interior span) step in fixed point and are interpolated eight at a
/// time; the few near the edges take the clamped [`linear_at`].
fn sample_linear<T: Scalar>(values: &[T], shape: [usize; 3], out_shape: [usize; 3], map: &IndexMap, default: f64) -> Vec<f32> {
    let mut out = vec![default as f32; out_shape.iter().product()];
    out.par_chunks_mut(out_shape[0].max(1)).enumerate().for_each(|(l, out)| {
        let start = line_start(map, l, out_shape);
        let inside = inside_range(map, start, out.len(), shape);
        let line = FixedLine::new(map, start, shape);
        let interior = line.interior(inside.clone());
        for i in (inside.start..interior.start).chain(interior.end..inside.end) {
            out[i] = linear_at(values, shape, &point(map, start, i));
        }
        line.fill(values, shape, interior.start, &mut out[interior]);
    });
    out
}

/// 2^32: positions along a line are kept in 32.32 fixed point, so that a voxel's floor is a
/// shift and its fraction a mask, with no float-to-int conversion per voxel.
const FIXED_ONE: f64 = 4_294_967_296.0;

/// A line's continuous input index in fixed point: voxel `i` lies at `start + i * step` (an
/// axis of one voxel stays at 0). The drift from rounding the step is below 2^-22 voxel.
struct FixedLine {
    start: [i64; 3],
    step: [i64; 3],
    /// Per axis, `(len - 1) * 2^32`: a floor below `len - 1` leaves room for the upper neighbour.
    upper: [i64; 3],
}

impl FixedLine {
    fn new(map: &IndexMap, start: [f64; 3], shape: [usize; 3]) -> FixedLine {
        let fixed = |x: f64| (x * FIXED_ONE).round().clamp(-9.0e18, 9.0e18) as i64;
        let flat = |a: usize| shape[a] == 1;
        FixedLine {
            start: std::array::from_fn(|a| if flat(a) { 0 } else { fixed(start[a]) }),
            step: std::array::from_fn(|a| if flat(a) { 0 } else { fixed(map.columns[0][a]) }),
            upper: std::array::from_fn(|a| if flat(a) { 1 } else { (shape[a] as i64 - 1) << 32 }),
        }
    }

    /// The indices within `range` whose floor lies in `0 ..= len - 2` on every axis: an
    /// interval, since each position is linear in the index. Exact integer arithmetic.
    fn interior(&self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        let (mut from, mut to) = (range.start as i128, range.end as i128);
        for a in 0..3 {
            let (p, s, upper) = (self.start[a] as i128, self.step[a] as i128, self.upper[a] as i128);
            let (low, high) = match s.signum() {
                0 if (0..upper).contains(&p) => continue,
                0 => return range.start..range.start,
                // 0 <= p + i s < upper, solved for i.
                1 => (ceil_div(-p, s), ceil_div(upper - p, s)),
                _ => ((p - upper).div_euclid(-s) + 1, p.div_euclid(-s) + 1),
            };
            from = from.max(low);
            to = to.min(high);
        }
        if from >= to { range.start..range.start } else { from as usize..to as usize }
    }

    /// `out[n]` = voxel `first + n` of the line, all in the interior span. Eight voxels per
    /// step: their neighbours are gathered first, then interpolated together (vectorised).
    fn fill<T: Scalar>(&self, values: &[T], shape: [usize; 3], first: usize, out: &mut [f32]) {
        if out.is_empty() {
            return;
        }
        let at = |i: usize| -> [i64; 3] { std::array::from_fn(|a| self.start[a] + i as i64 * self.step[a]) };
        // Positions are linear in the index, so if both ends of the span have their floors in
        // range on every axis, so does every voxel between: the unchecked reads below are in bounds.
        for end in [at(first), at(first + out.len() - 1)] {
            assert!((0..3).all(|a| end[a] >= 0 && end[a] < self.upper[a]), "interior span left the input");
        }
        let stride = [usize::from(shape[0] > 1), shape[0] * usize::from(shape[1] > 1), shape[0] * shape[1] * usize::from(shape[2] > 1)];
        let corners: [usize; 8] = std::array::from_fn(|c| (0..3).filter(|a| c >> a & 1 == 1).map(|a| stride[a]).sum());
        // Positions of the lanes of a block, structure of arrays: [axis][lane].
        let lane_offsets: [[i64; LANES]; 3] = std::array::from_fn(|a| std::array::from_fn(|lane| lane as i64 * self.step[a]));
        let whole = out.len() / LANES * LANES;
        let (blocks, rest) = out.split_at_mut(whole);
        let mut block_start = at(first);
        for block in blocks.as_chunks_mut::<LANES>().0 {
            let positions = std::array::from_fn(|a| std::array::from_fn(|lane| block_start[a] + lane_offsets[a][lane]));
            *block = interpolate_lanes(values, &corners, &stride, &positions);
            (0..3).for_each(|a| block_start[a] += LANES as i64 * self.step[a]);
        }
        if !rest.is_empty() {
            // Lanes past the end repeat the line's last voxel.
            let lane_at = |lane: usize| at(first + whole + lane.min(rest.len() - 1));
            let positions = std::array::from_fn(|a| std::array::from_fn(|lane| lane_at(lane)[a]));
            let interpolated = interpolate_lanes(values, &corners, &stride, &positions);
            rest.copy_from_slice(&interpolated[..rest.len()]);
        }
    }
}

const LANES: usize = 8;

/// Trilinear interpolation at `LANES` fixed-point positions (`positions[axis][lane]`) whose
/// eight neighbours are all inside `values` (checked by the caller).
#[inline]
fn interpolate_lanes<T: Scalar>(values: &[T], corners: &[usize; 8], stride: &[usize; 3], positions: &[[i64; LANES]; 3]) -> [f32; LANES] {
    // The top 24 bits of the fraction (all an f32 holds), as an i32 so that the conversion vectorises.
    const FRACTION: f32 = 1.0 / 16_777_216.0;
    let base: [usize; LANES] = std::array::from_fn(|lane| (0..3).map(|a| (positions[a][lane] >> 32) as usize * stride[a]).sum());
    let fraction: [[f32; LANES]; 3] = std::array::from_fn(|a| std::array::from_fn(|lane| ((positions[a][lane] & 0xFFFF_FFFF) >> 8) as i32 as f32 * FRACTION));
    // SAFETY: `FixedLine::fill` asserted that every lane's floors lie in 0..=len-2 on each
    // axis of more than one voxel, so base + corner offset < values.len().
    let gathered: [[T; LANES]; 8] = std::array::from_fn(|c| std::array::from_fn(|lane| unsafe { *values.get_unchecked(base[lane] + corners[c]) }));
    let value = |corner: usize| -> [f32; LANES] { gathered[corner].map(|v| v.to_f64() as f32) };
    let lerp = |a: [f32; LANES], b: [f32; LANES], t: &[f32; LANES]| -> [f32; LANES] { std::array::from_fn(|n| a[n] + t[n] * (b[n] - a[n])) };
    let [ti, tj, tk] = &fraction;
    let near = lerp(lerp(value(0), value(1), ti), lerp(value(2), value(3), ti), tj);
    let far = lerp(lerp(value(4), value(5), ti), lerp(value(6), value(7), ti), tj);
    lerp(near, far, tk)
}

fn ceil_div(a: i128, b: i128) -> i128 {
    -((-a).div_euclid(b))
}

/// A 2-D or 3-D image's voxels (`components` values per voxel, on a last axis) resampled by
/// `map` onto `out_size` (one size per spatial axis), component by component.
pub fn warp_voxels<T: VoxelArray>(
    array: &ArcArray<T, IxDyn>,
    components: usize,
    out_size: &[usize],
    map: &IndexMap,
    interpolator: Interpolator,
    default: f64,
) -> Voxels {
    let values = fortran_values(array);
    let spatial = out_size.len();
    let pad = |size: &[usize]| -> [usize; 3] { std::array::from_fn(|a| size.get(a).copied().unwrap_or(1)) };
    let (shape, out_shape) = (pad(&array.shape()[..spatial]), pad(out_size));
    let volume: usize = shape.iter().product();
    let parts: Vec<Warped<T>> = (0..components.max(1))
        .map(|c| warp(&values[c * volume..(c + 1) * volume], shape, out_shape, map, interpolator, default))
        .collect();
    let mut full_shape = out_size.to_vec();
    if components > 1 {
        full_shape.push(components);
    }
    let joined = |parts: Vec<Warped<T>>| -> Voxels {
        let mut same = Vec::new();
        let mut float = Vec::new();
        for part in parts {
            match part {
                Warped::Same(v) => same.extend(v),
                Warped::Float(v) => float.extend(v),
            }
        }
        let voxels = if float.is_empty() { Voxels::from_fortran_vec(&full_shape, same) } else { Voxels::from_fortran_vec(&full_shape, float) };
        voxels.expect("every component fills the output shape")
    };
    joined(parts)
}

/// The output of [`warp`]: the input's type (nearest) or f32.
pub enum Warped<T> {
    Same(Vec<T>),
    Float(Vec<f32>),
}

/// The continuous input index of output voxel (0, j, k) of line `l = j + n1 * k`.
fn line_start(map: &IndexMap, l: usize, out_shape: [usize; 3]) -> [f64; 3] {
    let (j, k) = ((l % out_shape[1].max(1)) as f64, (l / out_shape[1].max(1)) as f64);
    std::array::from_fn(|r| map.start[r] + map.columns[1][r] * j + map.columns[2][r] * k)
}

fn point(map: &IndexMap, start: [f64; 3], i: usize) -> [f64; 3] {
    std::array::from_fn(|r| start[r] + map.columns[0][r] * i as f64)
}

fn inside(x: &[f64; 3], shape: [usize; 3]) -> bool {
    (0..3).all(|a| x[a] >= -0.5 && x[a] < shape[a] as f64 - 0.5)
}

/// The output indices `i < len` of the line from `start` whose points lie inside the input: an
/// interval, since each coordinate is monotonic in `i`. Solved per axis, then settled against
/// [`inside`] itself so that rounding never moves a voxel across the border.
fn inside_range(map: &IndexMap, start: [f64; 3], len: usize, shape: [usize; 3]) -> std::ops::Range<usize> {
    let (mut low, mut high) = (0.0f64, len as f64);
    for a in 0..3 {
        let (s, c, top) = (start[a], map.columns[0][a], shape[a] as f64 - 0.5);
        if c == 0.0 {
            if !(s >= -0.5 && s < top) {
                return 0..0;
            }
            continue;
        }
        let (from, to) = ((-0.5 - s) / c, (top - s) / c);
        let (from, to) = if c > 0.0 { (from, to) } else { (to, from) };
        low = low.max(from.floor() - 1.0);
        high = high.min(to.ceil() + 1.0);
    }
    // NaN bounds (a NaN grid) give an empty span too.
    if low.partial_cmp(&high) != Some(std::cmp::Ordering::Less) {
        return 0..0;
    }
    let is_inside = |i: usize| inside(&point(map, start, i), shape);
    let (mut first, mut end) = (low.max(0.0) as usize, (high.min(len as f64) as usize).min(len));
    while first < end && !is_inside(first) {
        first += 1;
    }
    while end > first && !is_inside(end - 1) {
        end -= 1;
    }
    first..end
}

/// Trilinear interpolation at `x` (inside the input), edge voxels repeated. Away from the
/// upper edges the eight neighbours are read at fixed offsets with no clamping (an axis of one
/// voxel, as the third of a 2-D image, steps by 0).
fn linear_at<T: Scalar>(values: &[T], shape: [usize; 3], x: &[f64; 3]) -> f32 {
    let flat = shape.map(|n| n == 1);
    let floor: [f64; 3] = std::array::from_fn(|a| if flat[a] { 0.0 } else { fast_floor(x[a]) });
    let interior = (0..3).all(|a| flat[a] || (floor[a] >= 0.0 && floor[a] < shape[a] as f64 - 1.0));
    if !interior {
        return interpolate(values, shape, x, &linear_taps);
    }
    let [i, j, k] = floor.map(|f| f as usize);
    let [ti, tj, tk] = std::array::from_fn(|a| (x[a] - floor[a]) as f32 * f32::from(u8::from(!flat[a])));
    let step_i = usize::from(!flat[0]);
    let step_j = if flat[1] { 0 } else { shape[0] };
    let step_k = if flat[2] { 0 } else { shape[0] * shape[1] };
    let base = i + shape[0] * (j + shape[1] * k);
    let v = |offset: usize| values[base + offset].to_f64() as f32;
    let along = |offset: usize| v(offset) + ti * (v(offset + step_i) - v(offset));
    let near = along(0) + tj * (along(step_j) - along(0));
    let far = along(step_k) + tj * (along(step_k + step_j) - along(step_k));
    near + tk * (far - near)
}

/// `x.floor()` for the small values of an index, without the libm call that baseline x86-64
/// makes of it (a tenth of the time of oblique resampling).
#[inline]
fn fast_floor(x: f64) -> f64 {
    let truncated = x as i64 as f64;
    if truncated > x { truncated - 1.0 } else { truncated }
}

/// Along one axis of `len` voxels at `x`: the two neighbours and their weights (edge repeated).
fn linear_taps(x: f64, len: usize) -> ([usize; 2], [f32; 2]) {
    let last = len - 1;
    let base = (x.floor().max(0.0) as usize).min(last);
    let t = if base < last { (x - base as f64).clamp(0.0, 1.0) } else { 0.0 };
    ([base, (base + 1).min(last)], [(1.0 - t) as f32, t as f32])
}

/// Along one axis of `len` voxels at `x`: the four coefficients (mirrored) and their weights.
fn bspline_taps(x: f64, len: usize) -> ([usize; 4], [f32; 4]) {
    let weights = cubic_bspline_weights(x - x.floor());
    let first = x.floor() as isize - 1;
    (std::array::from_fn(|k| mirror(first + k as isize, len)), weights.map(|w| w as f32))
}

fn interpolate<T: Scalar, const N: usize>(values: &[T], shape: [usize; 3], x: &[f64; 3], taps: &impl Fn(f64, usize) -> ([usize; N], [f32; N])) -> f32 {
    let [(i, wi), (j, wj), (k, wk)] = [0, 1, 2].map(|a| taps(x[a], shape[a]));
    let mut sum = 0.0f32;
    for c in 0..N {
        for b in 0..N {
            let row = &values[shape[0] * (j[b] + shape[1] * k[c])..];
            let along: f32 = (0..N).map(|a| wi[a] * row[i[a]].to_f64() as f32).sum();
            sum += wk[c] * wj[b] * along;
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(start: [f64; 3], columns: [[f64; 3]; 3]) -> IndexMap {
        IndexMap { start, columns }
    }

    #[test]
    fn a_swap_of_axes_reads_the_transpose() {
        let values: Vec<i16> = (0..6).collect(); // shape [3, 2, 1]
        let swap = map([0.0; 3], [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]);
        for interpolator in [Interpolator::Nearest, Interpolator::Linear, Interpolator::BSpline] {
            let got: Vec<f64> = match warp(&values, [3, 2, 1], [2, 3, 1], &swap, interpolator, -1.0) {
                Warped::Same(v) => v.iter().map(|&v| v as f64).collect(),
                Warped::Float(v) => v.iter().map(|&v| v as f64).collect(),
            };
            let expected = [0.0, 3.0, 1.0, 4.0, 2.0, 5.0];
            assert!(got.iter().zip(expected).all(|(a, b)| (a - b).abs() < 1e-4), "{interpolator:?}: {got:?}");
        }
    }

    /// The fixed-point, eight-at-a-time path against the per-voxel clamped one, on oblique
    /// lines that enter and leave the input (short last blocks and edge voxels included).
    #[test]
    fn fixed_point_lines_match_per_voxel_linear() {
        let shape = [23, 17, 5];
        let values: Vec<i16> = (0..shape.iter().product::<usize>()).map(|n| ((n * 7919) % 2001) as i16 - 1000).collect();
        let (c, s) = (0.3f64.cos(), 0.3f64.sin());
        let oblique = map([-2.3, 1.1, 0.2], [[0.9 * c, 0.9 * s, 0.05], [-0.8 * s, 0.8 * c, 0.0], [0.0, 0.1, 0.7]]);
        let out_shape = [29, 21, 7];
        let fast = sample_linear(&values, shape, out_shape, &oblique, -5.0);
        let slow = sample(&values, shape, out_shape, &oblique, -5.0, linear_at);
        let worst = fast.iter().zip(&slow).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        let sampled = slow.iter().filter(|&&v| v != -5.0).count();
        assert!(sampled > 1000, "the lines cross the input ({sampled} voxels inside)");
        // Values up to 1000: f32 interpolation with 24-bit fractions agrees to ~1e-4.
        assert!(worst < 2e-3, "largest difference {worst}");
    }

    #[test]
    fn linear_between_voxels_and_default_outside() {
        let values = [0.0f32, 10.0, 20.0, 30.0]; // shape [2, 2, 1]
        let half = map([0.5, 0.25, 0.0], [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]);
        let Warped::Float(got) = warp(&values, [2, 2, 1], [2, 1, 1], &half, Interpolator::Linear, -7.0) else { panic!() };
        // (0.5, 0.25): 5 + 0.25 * 20 = 10; (1.5, 0.25) lies past 1.5, outside.
        assert_eq!(got, vec![10.0, -7.0]);
    }
}
