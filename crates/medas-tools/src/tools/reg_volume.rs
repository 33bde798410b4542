//! The images of a registration as float volumes in physical space: index ↔ point maps, linear
//! interpolation with its gradient (what the metrics sample), the levels of the multi-resolution
//! pyramid, and warping an image through a transform onto another grid.

use crate::tools::interpolate::{AxisPlan, fortran_values, resample_axis};
use crate::tools::reg_mapping::Mapping;
use crate::tools::reg_transform::{Matrix, Point, apply_matrix, multiply};
use crate::tools::resample::Interpolator;
use crate::tools::warp::{IndexMap, warp_voxels};
use medas_image::{Geometry, Image, Scalar, Voxels, with_voxels};
use rayon::prelude::*;

/// A 3-D scalar volume as f32 in Fortran order with its index → point map `x = M i + origin`.
#[derive(Debug, Clone)]
pub struct Volume {
    pub values: Vec<f32>,
    pub size: [usize; 3],
    pub to_point: (Matrix, Point),
    pub to_index: (Matrix, Point),
    /// Smallest and largest value (Mattes MI's histogram range).
    pub range: (f64, f64),
}

fn value_range(values: &[f32]) -> (f64, f64) {
    let fold = |(a, b): (f32, f32), v: &f32| (a.min(*v), b.max(*v));
    let (low, high) = values.par_chunks(1 << 16).map(|c| c.iter().fold((f32::MAX, f32::MIN), fold)).reduce(
        || (f32::MAX, f32::MIN),
        |x, y| (x.0.min(y.0), x.1.max(y.1)),
    );
    (low as f64, high as f64)
}

/// `M = direction * diag(spacing)` and its inverse map, from a 3-D geometry.
fn index_maps(geometry: &Geometry) -> ((Matrix, Point), (Matrix, Point)) {
    let spacing = geometry.spacing();
    let m: Matrix = [0, 1, 2].map(|r| [0, 1, 2].map(|c| geometry.direction_at(r, c) * spacing[c]));
    let origin = [0, 1, 2].map(|i| geometry.origin()[i]);
    let inverse = invert(&m);
    let back = apply_matrix(&inverse, &origin).map(|v| -v);
    ((m, origin), (inverse, back))
}

/// Inverse of a 3x3 matrix (geometries are checked invertible when built).
pub fn invert(m: &Matrix) -> Matrix {
    let cofactor = |r: usize, c: usize| {
        let (r1, r2, c1, c2) = ((r + 1) % 3, (r + 2) % 3, (c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det: f64 = (0..3).map(|c| m[0][c] * cofactor(0, c)).sum();
    [0, 1, 2].map(|r| [0, 1, 2].map(|c| cofactor(c, r) / det))
}

fn map(affine: &(Matrix, Point), v: &Point) -> Point {
    let m = apply_matrix(&affine.0, v);
    [0, 1, 2].map(|i| m[i] + affine.1[i])
}

/// Whether `image` is a 3-D scalar image; the message says what it is otherwise.
pub fn check_3d(image: &Image) -> Result<(), String> {
    if image.dimension() != 3 || image.components() != 1 || image.size().contains(&0) {
        let comps = if image.components() == 1 { String::new() } else { format!(" with {} components", image.components()) };
        return Err(format!("must be a non-empty 3-D scalar image, got a {}-D image of size {:?}{comps}", image.dimension(), image.size()));
    }
    Ok(())
}

impl Volume {
    /// The voxels of a 3-D scalar image (see [`check_3d`]) as f32.
    pub fn from_image(image: &Image) -> Volume {
        let values: Vec<f32> = with_voxels!(image.voxels(), a => fortran_values(a).iter().map(|v| v.to_f64() as f32).collect());
        let size = [image.size()[0], image.size()[1], image.size()[2]];
        let (to_point, to_index) = index_maps(image.geometry());
        Volume { range: value_range(&values), values, size, to_point, to_index }
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn point(&self, index: &Point) -> Point {
        map(&self.to_point, index)
    }

    pub fn index(&self, point: &Point) -> Point {
        map(&self.to_index, point)
    }

    /// Voxel `n` (Fortran order) as a whole index.
    pub fn unravel(&self, n: usize) -> Point {
        let [a, b, _] = self.size;
        [(n % a) as f64, ((n / a) % b) as f64, (n / (a * b)) as f64]
    }

    /// The physical centre of the grid.
    pub fn center(&self) -> Point {
        self.point(&self.size.map(|n| (n as f64 - 1.0) / 2.0))
    }

    /// The physical points of the grid's eight corner voxels.
    pub fn corners(&self) -> Vec<Point> {
        let last = self.size.map(|n| (n - 1) as f64);
        (0..8).map(|c| self.point(&[0, 1, 2].map(|a| if c >> a & 1 == 1 { last[a] } else { 0.0 }))).collect()
    }

    /// Trilinear value and physical gradient at continuous `index`, `None` outside the voxel
    /// centres' box (where the metric ignores a point, as ITK does).
    pub fn linear_with_gradient(&self, index: &Point) -> Option<(f32, Point)> {
        let mut base = [0usize; 3];
        let mut t = [0f64; 3];
        for a in 0..3 {
            let last = (self.size[a] - 1) as f64;
            if !(index[a] >= 0.0 && index[a] <= last) {
                return None;
            }
            let b = (index[a].floor() as usize).min(self.size[a].saturating_sub(2));
            base[a] = b;
            t[a] = index[a] - b as f64;
        }
        let [sx, sy, _] = self.size;
        let step = [usize::from(sx > 1), if self.size[1] > 1 { sx } else { 0 }, if self.size[2] > 1 { sx * sy } else { 0 }];
        let at = base[0] + sx * (base[1] + sy * base[2]);
        let v = |dx: usize, dy: usize, dz: usize| self.values[at + dx * step[0] + dy * step[1] + dz * step[2]] as f64;
        let (c000, c100, c010, c110) = (v(0, 0, 0), v(1, 0, 0), v(0, 1, 0), v(1, 1, 0));
        let (c001, c101, c011, c111) = (v(0, 0, 1), v(1, 0, 1), v(0, 1, 1), v(1, 1, 1));
        let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
        let (y0z0, y1z0) = (lerp(c000, c100, t[0]), lerp(c010, c110, t[0]));
        let (y0z1, y1z1) = (lerp(c001, c101, t[0]), lerp(c011, c111, t[0]));
        let (z0, z1) = (lerp(y0z0, y1z0, t[1]), lerp(y0z1, y1z1, t[1]));
        let value = lerp(z0, z1, t[2]);
        let dx = lerp(lerp(c100 - c000, c110 - c010, t[1]), lerp(c101 - c001, c111 - c011, t[1]), t[2]);
        let dy = lerp(y1z0 - y0z0, y1z1 - y0z1, t[2]);
        let dz = z1 - z0;
        // d value / d point = M^-T (d value / d index).
        let m = &self.to_index.0;
        let gradient = [0, 1, 2].map(|i| m[0][i] * dx + m[1][i] * dy + m[2][i] * dz);
        Some((value as f32, gradient))
    }

    /// One pyramid level: Gaussian smoothing of `sigma` voxels (of this volume), then every
    /// `factor`-th voxel from the first (size `max(1, n / factor)`, ITK's shrink), keeping the
    /// first voxel's position so the geometry stays exact.
    pub fn shrink(&self, factor: usize, sigma: f64) -> Volume {
        if factor <= 1 && sigma <= 0.0 {
            return self.clone();
        }
        let mut shape = self.size.to_vec();
        let mut values = self.values.clone();
        for axis in 0..3 {
            let out = (shape[axis] / factor).max(1);
            let plan = AxisPlan::linear(shape[axis], out, (factor as f64, 0.0)).smoothed(sigma.min((shape[axis] / 2) as f64));
            values = resample_axis(&values, &shape, axis, &plan);
            shape[axis] = out;
        }
        let mut m = self.to_point.0;
        m.iter_mut().for_each(|row| row.iter_mut().for_each(|v| *v *= factor as f64));
        let inverse = invert(&m);
        let back = apply_matrix(&inverse, &self.to_point.1).map(|v| -v);
        let size = [shape[0], shape[1], shape[2]];
        Volume { range: value_range(&values), values, size, to_point: (m, self.to_point.1), to_index: (inverse, back) }
    }
}

/// How [`warp`] reads the moving image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Nearest voxel (halves up), voxel type kept: for labels.
    Nearest,
    /// Trilinear, edge values held up to half a voxel past the edge centres; float32.
    Linear,
}

/// `image` (3-D scalar) resampled onto the grid of `reference` through `mapping` (a reference
/// point `x` takes the image's value at `T(x)`, as `sitk.Resample`); `default` outside.
pub fn warp(image: &Image, reference: &Image, mapping: &Mapping, sampling: Sampling, default: f64) -> Image {
    let (_, to_index) = index_maps(image.geometry());
    let (to_point, _) = index_maps(reference.geometry());
    let prepared = mapping.prepare();
    let out = [reference.size()[0], reference.size()[1], reference.size()[2]];
    let voxels = match prepared.linear() {
        // Reference index -> image index is one affine map: the resampler that steps along
        // output lines (the same sampling rules, several times faster than point by point).
        Some((a, o)) => {
            let m = multiply(&to_index.0, &multiply(&a, &to_point.0));
            let start = map(&to_index, &map(&(a, o), &to_point.1));
            let index_map = IndexMap { start, columns: [0, 1, 2].map(|c| [m[0][c], m[1][c], m[2][c]]) };
            let interpolator = match sampling {
                Sampling::Nearest => Interpolator::Nearest,
                Sampling::Linear => Interpolator::Linear,
            };
            with_voxels!(image.voxels(), array => warp_voxels(array, 1, &out, &index_map, interpolator, default))
        }
        None => warp_point_by_point(image, out, &|x| map(&to_index, &prepared.map(&map(&to_point, x))), sampling, default),
    };
    let mut result = Image::new(voxels, reference.geometry().clone()).expect("the reference grid is 3-D");
    result.metadata = image.metadata.clone();
    result
}

/// [`warp`] for a deformable mapping: each output voxel's image index from `index_of` (its own
/// index in, as f64).
fn warp_point_by_point(image: &Image, out: [usize; 3], index_of: &(dyn Fn(&Point) -> Point + Sync), sampling: Sampling, default: f64) -> Voxels {
    let size = [image.size()[0], image.size()[1], image.size()[2]];
    let inside = |x: &Point| (0..3).all(|k| x[k] >= -0.5 && x[k] < size[k] as f64 - 0.5);
    let unravel = move |n: usize| [(n % out[0]) as f64, ((n / out[0]) % out[1]) as f64, (n / (out[0] * out[1])) as f64];
    let total = out.iter().product::<usize>();
    match sampling {
        Sampling::Nearest => with_voxels!(image.voxels(), arr => {
            let values = fortran_values(arr);
            let fill = Scalar::from_f64(default);
            let data: Vec<_> = (0..total).into_par_iter().with_min_len(4096).map(|n| {
                let x = index_of(&unravel(n));
                if !inside(&x) { return fill; }
                let k = [0, 1, 2].map(|a| ((x[a] + 0.5).floor() as usize).min(size[a] - 1));
                values[k[0] + size[0] * (k[1] + size[1] * k[2])]
            }).collect();
            Voxels::from_fortran_vec(&out, data).expect("one value per reference voxel")
        }),
        Sampling::Linear => {
            let volume = Volume::from_image(image);
            let data: Vec<f32> = (0..total)
                .into_par_iter()
                .with_min_len(4096)
                .map(|n| {
                    let x = index_of(&unravel(n));
                    if !inside(&x) {
                        return default as f32;
                    }
                    let clamped = [0, 1, 2].map(|a| x[a].clamp(0.0, (size[a] - 1) as f64));
                    volume.linear_with_gradient(&clamped).map_or(default as f32, |(v, _)| v)
                })
                .collect();
            Voxels::from_fortran_vec(&out, data).expect("one value per reference voxel")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Image {
        let values: Vec<f32> = (0..4 * 5 * 6).map(|n| (n % 4) as f32 * 2.0 + ((n / 4) % 5) as f32 * 3.0 + (n / 20) as f32).collect();
        let direction = vec![0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let geometry = Geometry::new(vec![2.0, 1.0, 0.5], vec![10.0, -5.0, 3.0], direction).unwrap();
        Image::new(Voxels::from_fortran_vec(&[4, 5, 6], values).unwrap(), geometry).unwrap()
    }

    #[test]
    fn linear_gradient_is_the_physical_slope() {
        let image = ramp();
        let volume = Volume::from_image(&image);
        let index = [1.3, 2.6, 3.1];
        let (value, gradient) = volume.linear_with_gradient(&index).unwrap();
        assert!((value as f64 - (1.3 * 2.0 + 2.6 * 3.0 + 3.1)).abs() < 1e-5);
        // Moving 1 mm along a physical axis changes the value by the gradient's component.
        let p = volume.point(&index);
        for a in 0..3 {
            let mut q = p;
            q[a] += 0.01;
            let (moved, _) = volume.linear_with_gradient(&volume.index(&q)).unwrap();
            assert!(((moved - value) as f64 / 0.01 - gradient[a]).abs() < 1e-2, "axis {a}: {gradient:?}");
        }
    }

    #[test]
    fn warping_by_the_identity_onto_the_same_grid_keeps_the_image() {
        let image = ramp();
        let identity = crate::tools::reg_transform::Transform::identity(crate::tools::reg_transform::Kind::Rigid, [0.0; 3]);
        let same = warp(&image, &image, &Mapping::Linear(identity), Sampling::Nearest, -1.0);
        assert_eq!(same.voxels().as_array::<f32>(), image.voxels().as_array::<f32>());
    }

    #[test]
    fn shrinking_keeps_the_first_voxel_and_scales_the_spacing() {
        let volume = Volume::from_image(&ramp());
        let level = volume.shrink(2, 0.0);
        assert_eq!(level.size, [2, 2, 3]);
        assert_eq!(level.point(&[0.0; 3]), volume.point(&[0.0; 3]));
        let p = level.point(&[1.0, 1.0, 1.0]);
        assert!(volume.index(&p).iter().all(|v| (v - 2.0).abs() < 1e-9));
        assert_eq!(level.values[1 + 2 + 4], volume.values[2 + 4 * 2 + 20 * 2]);
    }
}
