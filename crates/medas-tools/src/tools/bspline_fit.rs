//! Cubic B-spline approximation of values sampled on a regular grid, as ITK's
//! BSplineScatteredDataPointSetToImageFilter fits them (one level of Lee, Wolberg and Shin's
//! multilevel B-spline approximation) and BSplineControlPointImageFilter evaluates and refines
//! the control-point lattice.
//!
//! Control point `c` of an axis acts on parametric positions `u` in `(c - 3, c + 1)`: a sample at
//! `u` (in spans, `0 <= u < control_points - 3`) is moved by the four control points
//! `floor(u) .. floor(u) + 3`, with the cubic B-spline weights of `t = u - floor(u)`.
//! Because the samples lie on a grid, the weight of a control point for a voxel is a product of
//! one weight per axis, so fitting and evaluation are done one axis at a time (a few multiply-adds
//! per voxel and axis instead of 64 per voxel), in parallel over planes.

use rayon::prelude::*;

/// The spline order (cubic); a lattice needs at least `ORDER + 1` control points per axis.
pub const ORDER: usize = 3;

/// Relative margin that keeps the last sample inside the half-open parametric domain, as ITK's
/// B-spline epsilon does.
const EPSILON: f64 = 1e-9;

/// The uniform cubic B-spline weights of the four control points acting at fraction `t`.
/// For `t` outside `[0, 1)` they continue the same cubic (used to extrapolate at the edges).
pub fn cubic_weights(t: f64) -> [f64; 4] {
    let s = 1.0 - t;
    let (t2, t3) = (t * t, t * t * t);
    [s * s * s / 6.0, (3.0 * t3 - 6.0 * t2 + 4.0) / 6.0, (-3.0 * t3 + 3.0 * t2 + 3.0 * t + 1.0) / 6.0, t3 / 6.0]
}

/// How the voxels along one axis see that axis's control points.
#[derive(Debug, Clone)]
pub struct AxisBasis {
    /// Per voxel, the first of the control points acting on it.
    pub first: Vec<usize>,
    /// Per voxel, the weights of control points `first .. first + taps`.
    pub weights: Vec<[f64; 4]>,
    /// 4, or 1 on an axis of one voxel (a 2-D image's third axis), which has one control point.
    pub taps: usize,
    pub control_points: usize,
}

impl AxisBasis {
    /// The basis of `voxels` voxels placed at parametric positions `position(i)` (in spans) of
    /// a lattice of `control_points` control points. Positions are clamped into the domain
    /// `[0, control_points - 3)` for the choice of control points only; beyond it, the edge
    /// span's cubic continues.
    pub fn new(voxels: usize, control_points: usize, position: impl Fn(usize) -> f64) -> AxisBasis {
        let spans = control_points - ORDER;
        let mut first = Vec::with_capacity(voxels);
        let mut weights = Vec::with_capacity(voxels);
        for i in 0..voxels {
            let u = position(i).min(spans as f64 * (1.0 - EPSILON));
            let span = (u.max(0.0).floor() as usize).min(spans - 1);
            first.push(span);
            weights.push(cubic_weights(u - span as f64));
        }
        AxisBasis { first, weights, taps: ORDER + 1, control_points }
    }

    /// The basis of a grid of `voxels` samples spread over the whole domain: voxel `i` at
    /// `u = spans * i / (voxels - 1)`, as ITK places the points of an image it fits.
    pub fn spread(voxels: usize, control_points: usize) -> AxisBasis {
        let spans = (control_points - ORDER) as f64;
        let step = spans / (voxels.max(2) - 1) as f64;
        AxisBasis::new(voxels, control_points, |i| i as f64 * step)
    }

    /// The basis of an axis of one voxel: one control point of weight 1.
    pub fn single() -> AxisBasis {
        AxisBasis { first: vec![0], weights: vec![[1.0, 0.0, 0.0, 0.0]], taps: 1, control_points: 1 }
    }

    fn len(&self) -> usize {
        self.first.len()
    }
}

/// Control-point values on a 3-D lattice, axis 0 fastest.
#[derive(Debug, Clone, PartialEq)]
pub struct Lattice {
    pub dims: [usize; 3],
    pub values: Vec<f64>,
}

impl Lattice {
    pub fn zeros(dims: [usize; 3]) -> Lattice {
        Lattice { dims, values: vec![0.0; dims.iter().product()] }
    }

    pub fn add(&mut self, other: &Lattice) {
        self.values.iter_mut().zip(&other.values).for_each(|(a, b)| *a += b);
    }

    /// The same function on a lattice of half the knot spacing along the axes marked in
    /// `axes` (`n` control points become `2 (n - 3) + 3`), as ITK's RefineControlPointLattice.
    pub fn refine(&self, axes: [bool; 3]) -> Lattice {
        let mut lattice = self.clone();
        for axis in (0..3).filter(|&a| axes[a] && self.dims[a] > ORDER) {
            lattice = lattice.refine_axis(axis);
        }
        lattice
    }

    /// Halves the knot spacing along one axis by cubic subdivision: new point `2i` is
    /// `(c[i] + c[i+1]) / 2` and `2i + 1` is `(c[i] + 6 c[i+1] + c[i+2]) / 8`.
    fn refine_axis(&self, axis: usize) -> Lattice {
        let n = self.dims[axis];
        let mut dims = self.dims;
        dims[axis] = 2 * (n - ORDER) + ORDER;
        let stride: usize = self.dims[..axis].iter().product();
        let (new_stride, outer) = (stride, self.dims[axis + 1..].iter().product::<usize>());
        let mut values = vec![0.0; dims.iter().product()];
        for o in 0..outer {
            for inner in 0..stride {
                let old = |c: usize| self.values[inner + stride * (c + n * o)];
                let at = |c: usize| inner + new_stride * (c + dims[axis] * o);
                for c in 0..dims[axis] {
                    let i = c / 2;
                    values[at(c)] = if c % 2 == 0 {
                        (old(i) + old(i + 1)) / 2.0
                    } else {
                        (old(i) + 6.0 * old(i + 1) + old(i + 2)) / 8.0
                    };
                }
            }
        }
        Lattice { dims, values }
    }
}

/// Sums `values` (on a grid of `dims`, axis 0 fastest) onto the control points of `basis`
/// along `axis`, each voxel's value times its weight to the power `power`.
fn contract(values: &[f64], dims: [usize; 3], axis: usize, basis: &AxisBasis, power: i32) -> (Vec<f64>, [usize; 3]) {
    let mut out_dims = dims;
    out_dims[axis] = basis.control_points;
    let inner: usize = dims[..axis].iter().product();
    let (n, m) = (dims[axis], basis.control_points);
    let outer: usize = dims[axis + 1..].iter().product();
    let powered: Vec<[f64; 4]> = basis.weights.iter().map(|w| w.map(|x| x.powi(power))).collect();
    let mut out = vec![0.0; inner * m * outer];
    out.par_chunks_mut((inner * m).max(1)).enumerate().for_each(|(o, block)| {
        for i in 0..n {
            let source = &values[inner * (i + n * o)..][..inner];
            for t in 0..basis.taps {
                let w = powered[i][t];
                let target = &mut block[inner * (basis.first[i] + t)..][..inner];
                target.iter_mut().zip(source).for_each(|(y, x)| *y += w * x);
            }
        }
    });
    (out, out_dims)
}

/// Contracts a grid along all three axes.
fn contract_all(values: &[f64], dims: [usize; 3], bases: &[AxisBasis; 3], power: i32) -> Vec<f64> {
    let (a, dims) = contract(values, dims, 0, &bases[0], power);
    let (b, dims) = contract(&a, dims, 1, &bases[1], power);
    contract(&b, dims, 2, &bases[2], power).0
}

/// The per-control-point sums of squared weights of the voxels in the fit (`omega` in Lee et
/// al.): they depend only on which voxels are fitted and the basis, so a level reuses them.
pub fn fit_weights(included: &[bool], bases: &[AxisBasis; 3]) -> Vec<f64> {
    let dims = [bases[0].len(), bases[1].len(), bases[2].len()];
    let ones: Vec<f64> = included.par_iter().map(|&inside| f64::from(u8::from(inside))).collect();
    contract_all(&ones, dims, bases, 2)
}

/// One level of multilevel B-spline approximation of `values` at the voxels marked in
/// `included` (weight 1 each): every voxel asks each of its control points for the value that
/// alone would reproduce it, `w z / sum(w^2)`, and each control point takes the average of
/// those requests weighted by `w^2`. Control points no voxel reaches stay 0.
pub fn fit(values: &[f64], included: &[bool], bases: &[AxisBasis; 3], omega: &[f64]) -> Lattice {
    let dims = [bases[0].len(), bases[1].len(), bases[2].len()];
    let norm = |basis: &AxisBasis| -> Vec<f64> {
        basis.weights.iter().map(|w| w[..basis.taps].iter().map(|x| x * x).sum::<f64>()).collect()
    };
    let norms = [norm(&bases[0]), norm(&bases[1]), norm(&bases[2])];
    let scaled: Vec<f64> = (0..values.len())
        .into_par_iter()
        .map(|v| {
            if !included[v] {
                return 0.0;
            }
            let (i, j, k) = (v % dims[0], (v / dims[0]) % dims[1], v / (dims[0] * dims[1]));
            values[v] / (norms[0][i] * norms[1][j] * norms[2][k])
        })
        .collect();
    let delta = contract_all(&scaled, dims, bases, 3);
    let values = delta.iter().zip(omega).map(|(d, w)| if *w > 0.0 { d / w } else { 0.0 }).collect();
    Lattice { dims: [bases[0].control_points, bases[1].control_points, bases[2].control_points], values }
}

/// The spline of `lattice` at every voxel of the grid the bases describe, written into `out`
/// (axis 0 fastest) through `store`. Parallel over planes of constant `k`.
pub fn evaluate_into<T: Send>(lattice: &Lattice, bases: &[AxisBasis; 3], out: &mut [T], store: impl Fn(f64) -> T + Sync) {
    let [l0, l1, _] = lattice.dims;
    let (n0, n1) = (bases[0].len(), bases[1].len());
    out.par_chunks_mut((n0 * n1).max(1)).enumerate().for_each(|(k, plane_out)| {
        // The lattice collapsed along axis 2 at this k, then along axis 1 per row.
        let mut plane = vec![0.0; l0 * l1];
        for t in 0..bases[2].taps {
            let (c, w) = (bases[2].first[k] + t, bases[2].weights[k][t]);
            plane.iter_mut().zip(&lattice.values[l0 * l1 * c..][..l0 * l1]).for_each(|(p, x)| *p += w * x);
        }
        let mut row = vec![0.0; l0];
        for (j, line) in plane_out.chunks_mut(n0.max(1)).enumerate() {
            row.fill(0.0);
            for t in 0..bases[1].taps {
                let (b, w) = (bases[1].first[j] + t, bases[1].weights[j][t]);
                row.iter_mut().zip(&plane[l0 * b..][..l0]).for_each(|(r, x)| *r += w * x);
            }
            for (i, voxel) in line.iter_mut().enumerate() {
                let (a, w) = (bases[0].first[i], &bases[0].weights[i]);
                let value = (0..bases[0].taps).map(|t| w[t] * row[a + t]).sum();
                *voxel = store(value);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases(dims: [usize; 3], points: [usize; 3]) -> [AxisBasis; 3] {
        [0, 1, 2].map(|a| AxisBasis::spread(dims[a], points[a]))
    }

    fn evaluate(lattice: &Lattice, bases: &[AxisBasis; 3]) -> Vec<f64> {
        let mut out = vec![0.0; bases.iter().map(AxisBasis::len).product()];
        evaluate_into(lattice, bases, &mut out, |x| x);
        out
    }

    /// The direct sum over the 64 control points of one voxel, for comparison.
    fn direct(lattice: &Lattice, bases: &[AxisBasis; 3], [i, j, k]: [usize; 3]) -> f64 {
        let mut sum = 0.0;
        for (c, wc) in bases[2].weights[k].iter().enumerate() {
            for (b, wb) in bases[1].weights[j].iter().enumerate() {
                for (a, wa) in bases[0].weights[i].iter().enumerate() {
                    let (a, b, c) = (bases[0].first[i] + a, bases[1].first[j] + b, bases[2].first[k] + c);
                    sum += wa * wb * wc * lattice.values[a + lattice.dims[0] * (b + lattice.dims[1] * c)];
                }
            }
        }
        sum
    }

    #[test]
    fn weights_sum_to_one_and_reproduce_linear_functions() {
        for t in [0.0, 0.25, 0.5, 0.99] {
            let w = cubic_weights(t);
            assert!((w.iter().sum::<f64>() - 1.0).abs() < 1e-12);
            // Control point c sits at u = c - 1, so sum w_k (span + k - 1) = u.
            let u: f64 = w.iter().enumerate().map(|(k, w)| w * (k as f64 - 1.0)).sum();
            assert!((u - t).abs() < 1e-12, "{t}: {u}");
        }
    }

    #[test]
    fn separable_evaluation_equals_the_direct_sum() {
        let dims = [7, 5, 6];
        let lattice = Lattice { dims: [5, 4, 6], values: (0..120).map(|v| ((v * 37) % 11) as f64 - 5.0).collect() };
        let bases = bases(dims, [5, 4, 6]);
        let fast = evaluate(&lattice, &bases);
        for (v, value) in fast.iter().enumerate() {
            let ijk = [v % 7, (v / 7) % 5, v / 35];
            assert!((value - direct(&lattice, &bases, ijk)).abs() < 1e-12);
        }
    }

    #[test]
    fn refinement_keeps_the_function() {
        let lattice = Lattice { dims: [4, 5, 4], values: (0..80).map(|v| ((v * 13) % 7) as f64).collect() };
        let refined = lattice.refine([true, false, true]);
        assert_eq!(refined.dims, [5, 5, 5]);
        let dims = [9, 6, 8];
        let before = evaluate(&lattice, &bases(dims, [4, 5, 4]));
        let after = evaluate(&refined, &bases(dims, [5, 5, 5]));
        before.iter().zip(&after).for_each(|(a, b)| assert!((a - b).abs() < 1e-12, "{a} vs {b}"));
    }

    /// Lee et al.'s fit point by point: each voxel sends `w^2 * (w z / sum w^2)` and `w^2` to
    /// each of its 64 control points.
    fn direct_fit(values: &[f64], included: &[bool], bases: &[AxisBasis; 3], dims: [usize; 3]) -> Vec<f64> {
        let points = [0, 1, 2].map(|a| bases[a].control_points);
        let (mut delta, mut omega) = (vec![0.0; points.iter().product()], vec![0.0; points.iter().product()]);
        for v in (0..values.len()).filter(|&v| included[v]) {
            let ijk = [v % dims[0], (v / dims[0]) % dims[1], v / (dims[0] * dims[1])];
            let mut taps = Vec::new();
            for c in 0..bases[2].taps {
                for b in 0..bases[1].taps {
                    for a in 0..bases[0].taps {
                        let w = bases[0].weights[ijk[0]][a] * bases[1].weights[ijk[1]][b] * bases[2].weights[ijk[2]][c];
                        let at = [bases[0].first[ijk[0]] + a, bases[1].first[ijk[1]] + b, bases[2].first[ijk[2]] + c];
                        taps.push((at[0] + points[0] * (at[1] + points[1] * at[2]), w));
                    }
                }
            }
            let norm: f64 = taps.iter().map(|(_, w)| w * w).sum();
            for (at, w) in taps {
                delta[at] += w * w * (w * values[v] / norm);
                omega[at] += w * w;
            }
        }
        delta.iter().zip(&omega).map(|(d, w)| if *w > 0.0 { d / w } else { 0.0 }).collect()
    }

    #[test]
    fn separable_fit_equals_the_point_by_point_fit_and_approximates() {
        let dims = [20, 16, 12];
        let bases = bases(dims, [6, 5, 7]);
        let n = dims.iter().product();
        // A mask with holes, so that some control points see few voxels.
        let included: Vec<bool> = (0..n).map(|v| v % 7 != 0 && (v % 20) < 15).collect();
        let truth: Vec<f64> = (0..n).map(|v| ((v % 20) as f64 / 19.0 - 0.5) * ((v / 320) as f64 / 11.0) + 2.0).collect();
        let omega = fit_weights(&included, &bases);
        let lattice = fit(&truth, &included, &bases, &omega);
        let direct = direct_fit(&truth, &included, &bases, dims);
        lattice.values.iter().zip(&direct).for_each(|(a, b)| assert!((a - b).abs() < 1e-12, "{a} vs {b}"));
        // One MBA level approximates, it does not project: along each axis of dense samples the
        // fit of a constant is 1 to 1.15 times it (each voxel asks its control points for
        // `w z / sum w^2`), so 1 to 1.15^3 times it in 3-D. N4 iterates on the residual.
        let all = vec![true; n];
        let constant = fit(&vec![2.5; n], &all, &bases, &fit_weights(&all, &bases));
        evaluate(&constant, &bases).iter().for_each(|v| assert!(*v >= 2.5 - 1e-9 && *v <= 2.5 * 1.15f64.powi(3), "{v}"));
    }

    #[test]
    fn a_single_voxel_axis_has_one_control_point() {
        let bases = [AxisBasis::spread(8, 4), AxisBasis::spread(6, 5), AxisBasis::single()];
        let included = vec![true; 48];
        let omega = fit_weights(&included, &bases);
        let values: Vec<f64> = (0..48).map(|v| (v % 8) as f64).collect();
        let lattice = fit(&values, &included, &bases, &omega);
        assert_eq!(lattice.dims, [4, 5, 1]);
        let direct = direct_fit(&values, &included, &bases, [8, 6, 1]);
        lattice.values.iter().zip(&direct).for_each(|(a, b)| assert!((a - b).abs() < 1e-12, "{a} vs {b}"));
    }
}
