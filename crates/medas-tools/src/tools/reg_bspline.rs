//! The cubic B-spline free-form deformation of `preprocess.register`, in ITK's `BSplineTransform`
//! conventions so that a saved transform maps points exactly as `sitk.ReadTransform` reads it:
//! a grid of `mesh + 3` control points per axis with origin `o`, spacing `s` and direction `D`;
//! a point `x` has the continuous grid index `c = (D diag(s))^-1 (x - o)`, and if
//! `1 <= c < size - 2` on every axis it moves by `sum w(c) * coefficient` over the 4x4x4 nodes
//! from `floor(c) - 1`, with the uniform cubic B-spline weights of `c - floor(c)`; elsewhere it
//! stays put. The parameters are the x displacements of all nodes (x index fastest), then y's,
//! then z's, in mm.

use crate::tools::bspline_fit::cubic_weights;
use crate::tools::reg_transform::{Matrix, Point, apply_matrix};
use crate::tools::reg_volume::invert;
use serde_json::json;

/// The control points acting at a point: the first node per axis and the four weights per axis.
pub type Support = ([usize; 3], [[f64; 4]; 3]);

/// A cubic B-spline displacement field on a regular control-point grid.
#[derive(Debug, Clone, PartialEq)]
pub struct BSpline {
    /// Control points per axis (mesh size + 3).
    pub size: [usize; 3],
    pub origin: Point,
    pub spacing: Point,
    pub direction: Matrix,
    to_index: Matrix,
    /// `3 * nodes` displacements (mm): all x, then all y, then all z.
    pub coefficients: Vec<f64>,
}

/// Whether every entry of `m` is 0 or ±1 (a flip or permutation of the axes).
fn is_signed_permutation(m: &Matrix) -> bool {
    m.iter().flatten().all(|v| v.abs() < 1e-6 || (v.abs() - 1.0).abs() < 1e-6)
}

impl BSpline {
    pub fn new(size: [usize; 3], origin: Point, spacing: Point, direction: Matrix, coefficients: Vec<f64>) -> Result<BSpline, String> {
        if size.iter().any(|&n| n < 4) || spacing.iter().any(|&s| s.is_nan() || s <= 0.0) {
            return Err(format!("a B-spline grid needs at least 4 control points and a positive spacing per axis, got {size:?} and {spacing:?}"));
        }
        let nodes: usize = size.iter().product();
        if coefficients.len() != 3 * nodes {
            return Err(format!("a B-spline grid of {size:?} control points needs {} parameters, got {}", 3 * nodes, coefficients.len()));
        }
        let scaled: Matrix = [0, 1, 2].map(|r| [0, 1, 2].map(|c| direction[r][c] * spacing[c]));
        let to_index = invert(&scaled);
        if to_index.iter().flatten().chain(&origin).chain(&coefficients).any(|v| !v.is_finite()) {
            return Err("the B-spline grid holds a value that is not a finite number (or a singular direction)".into());
        }
        Ok(BSpline { size, origin, spacing, direction, to_index, coefficients })
    }

    /// The zero field over a grid of `size` voxels with index → point map `(m, origin)`, with
    /// `mesh` spans per axis, as `sitk.BSplineTransformInitializer(image, mesh)` lays it out: the
    /// domain spans the voxels' outer edges plus an eighth of a voxel each side; for a flipped or
    /// permuted direction it is the axis-aligned box of that domain (identity direction),
    /// otherwise it keeps the image's direction.
    pub fn covering(size: [usize; 3], (m, origin): &(Matrix, Point), mesh: [usize; 3]) -> BSpline {
        let spacing = [0, 1, 2].map(|c| (0..3).map(|r| m[r][c] * m[r][c]).sum::<f64>().sqrt());
        let image_direction: Matrix = [0, 1, 2].map(|r| [0, 1, 2].map(|c| m[r][c] / spacing[c]));
        let (low, high) = (-0.625, size.map(|n| n as f64 - 0.375));
        let point = |i: &Point| {
            let v = apply_matrix(m, i);
            [0, 1, 2].map(|a| v[a] + origin[a])
        };
        let (direction, domain_origin, extent) = if is_signed_permutation(&image_direction) {
            let corners: Vec<Point> = (0..8).map(|c| point(&[0, 1, 2].map(|a| if c >> a & 1 == 1 { high[a] } else { low }))).collect();
            let min = [0, 1, 2].map(|a| corners.iter().map(|p| p[a]).fold(f64::MAX, f64::min));
            let max = [0, 1, 2].map(|a| corners.iter().map(|p| p[a]).fold(f64::MIN, f64::max));
            let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
            (identity, min, [0, 1, 2].map(|a| max[a] - min[a]))
        } else {
            (image_direction, point(&[low; 3]), [0, 1, 2].map(|a| (high[a] - low) * spacing[a]))
        };
        let grid_spacing = [0, 1, 2].map(|a| extent[a] / mesh[a] as f64);
        // The first control point lies one spacing before the domain (cubic: (3 - 1) / 2).
        let back = apply_matrix(&direction, &grid_spacing);
        let grid_origin = [0, 1, 2].map(|a| domain_origin[a] - back[a]);
        let size = mesh.map(|n| n + 3);
        let nodes: usize = size.iter().product();
        BSpline::new(size, grid_origin, grid_spacing, direction, vec![0.0; 3 * nodes]).expect("a valid image geometry gives a valid grid")
    }

    pub fn node_count(&self) -> usize {
        self.size.iter().product()
    }

    /// The nodes acting at `x` and their weights; `None` outside the region the grid covers.
    pub fn support(&self, x: &Point) -> Option<Support> {
        let d = [x[0] - self.origin[0], x[1] - self.origin[1], x[2] - self.origin[2]];
        let c = apply_matrix(&self.to_index, &d);
        let mut start = [0usize; 3];
        let mut weights = [[0.0; 4]; 3];
        for a in 0..3 {
            if !(c[a] >= 1.0 && c[a] < (self.size[a] - 2) as f64) {
                return None;
            }
            let floor = c[a].floor();
            start[a] = floor as usize - 1;
            weights[a] = cubic_weights(c[a] - floor);
        }
        Some((start, weights))
    }

    /// Calls `visit(node, weight)` for the 64 nodes of `support`.
    fn for_each_node(&self, (start, w): &Support, mut visit: impl FnMut(usize, f64)) {
        let [nx, ny, _] = self.size;
        for k in 0..4 {
            for j in 0..4 {
                let (row, wjk) = (start[0] + nx * (start[1] + j + ny * (start[2] + k)), w[1][j] * w[2][k]);
                (0..4).for_each(|i| visit(row + i, w[0][i] * wjk));
            }
        }
    }

    /// The displacement (mm) at `x`.
    pub fn displacement(&self, x: &Point) -> Point {
        let Some(support) = self.support(x) else { return [0.0; 3] };
        let n = self.node_count();
        let c = &self.coefficients;
        let mut d = [0.0; 3];
        self.for_each_node(&support, |node, w| (0..3).for_each(|a| d[a] += w * c[a * n + node]));
        d
    }

    pub fn apply(&self, x: &Point) -> Point {
        let d = self.displacement(x);
        [x[0] + d[0], x[1] + d[1], x[2] + d[2]]
    }

    /// Adds `weight * g^T d(x + displacement(x))/d coefficient` to `out` (one entry per
    /// coefficient): each node of the support gets its B-spline weight times `g` on its axis.
    pub fn project(&self, x: &Point, g: &Point, weight: f64, out: &mut [f64]) {
        let Some(support) = self.support(x) else { return };
        let n = self.node_count();
        let g = g.map(|v| v * weight);
        self.for_each_node(&support, |node, w| (0..3).for_each(|a| out[a * n + node] += w * g[a]));
    }

    /// ITK's FixedParameters: grid size, origin, spacing, direction (row by row).
    pub fn fixed_parameters(&self) -> Vec<f64> {
        let mut fixed: Vec<f64> = self.size.iter().map(|&n| n as f64).collect();
        fixed.extend(self.origin);
        fixed.extend(self.spacing);
        fixed.extend(self.direction.iter().flatten());
        fixed
    }

    /// From ITK's Parameters and FixedParameters.
    pub fn from_itk(parameters: Vec<f64>, fixed: &[f64]) -> Result<BSpline, String> {
        if fixed.len() != 18 {
            return Err(format!("BSplineTransform needs 18 fixed parameters (grid size, origin, spacing, direction), got {}", fixed.len()));
        }
        if fixed[..3].iter().any(|&n| n.fract() != 0.0 || !(4.0..=1e6).contains(&n)) {
            return Err(format!("BSplineTransform grid size {:?} is not a whole number of at least 4 control points per axis", &fixed[..3]));
        }
        let triple = |at: usize| [fixed[at], fixed[at + 1], fixed[at + 2]];
        let direction = [triple(9), triple(12), triple(15)];
        BSpline::new(triple(0).map(|n| n as usize), triple(3), triple(6), direction, parameters)
    }

    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "transform": "BSplineTransform_double_3_3",
            "grid_size": self.size,
            "grid_origin": self.origin,
            "grid_spacing": self.spacing,
            "grid_direction": self.direction,
            "parameters": self.coefficients,
        })
    }

    pub fn from_json(value: &serde_json::Value) -> Result<BSpline, String> {
        let numbers = |key: &str| -> Vec<f64> { value[key].as_array().map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default() };
        let rows: Vec<f64> = value["grid_direction"].as_array().map(|r| r.iter().flat_map(|row| row.as_array().cloned().unwrap_or_default()).filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
        let fixed: Vec<f64> = [numbers("grid_size"), numbers("grid_origin"), numbers("grid_spacing"), rows].concat();
        BSpline::from_itk(numbers("parameters"), &fixed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid() -> BSpline {
        let m = [[0.0, -2.0, 0.0], [1.5, 0.0, 0.0], [0.0, 0.0, 3.0]];
        let mut spline = BSpline::covering([12, 9, 7], &(m, [4.0, -3.0, 2.0]), [3, 2, 4]);
        spline.coefficients.iter_mut().enumerate().for_each(|(n, c)| *c = ((n * 37 % 11) as f64 - 5.0) * 0.3);
        spline
    }

    #[test]
    fn projection_matches_finite_differences_of_the_mapping() {
        let spline = grid();
        let x = [5.0, 1.0, 10.0];
        let g = [0.4, -0.7, 1.1];
        let mut analytic = vec![0.0; spline.coefficients.len()];
        spline.project(&x, &g, 2.0, &mut analytic);
        assert!(analytic.iter().filter(|v| **v != 0.0).count() <= 3 * 64);
        for k in (0..analytic.len()).step_by(7) {
            let mut moved = spline.clone();
            moved.coefficients[k] += 1e-3;
            let (p, q) = (moved.apply(&x), spline.apply(&x));
            let numeric: f64 = (0..3).map(|a| 2.0 * g[a] * (p[a] - q[a]) / 1e-3).sum();
            assert!((analytic[k] - numeric).abs() < 1e-9, "coefficient {k}: {} vs {numeric}", analytic[k]);
        }
    }

    #[test]
    fn weights_sum_to_one_and_outside_points_stay() {
        let mut spline = grid();
        spline.coefficients.iter_mut().for_each(|c| *c = 0.0);
        let n = spline.node_count();
        spline.coefficients[..n].iter_mut().for_each(|c| *c = 2.5);
        let d = spline.displacement(&[5.0, 1.0, 10.0]);
        assert!((d[0] - 2.5).abs() < 1e-12 && d[1] == 0.0, "{d:?}");
        assert_eq!(spline.apply(&[1e4, 0.0, 0.0]), [1e4, 0.0, 0.0]);
    }

    #[test]
    fn itk_parameters_and_json_round_trip() {
        let spline = grid();
        assert_eq!(BSpline::from_itk(spline.coefficients.clone(), &spline.fixed_parameters()).unwrap(), spline);
        assert_eq!(BSpline::from_json(&spline.to_json()).unwrap(), spline);
        assert!(BSpline::from_itk(vec![0.0; 3], &spline.fixed_parameters()).is_err());
    }
}
