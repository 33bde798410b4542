//! `augment.affine`: a random rotation, isotropic scale and shear about the image centre,
//! resampled onto the input's own grid (image linear, label nearest) by `warp`, as
//! SimpleITK's Resample with an AffineTransform centred on the image.

use crate::context::Context;
use crate::data::{Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, ToolSpec};
use crate::tools::augment::{Lower, SplitMix64, drawn_range, failed, generator, geometric_outputs, geometric_ports, image_and_label, non_negative, parameter_table, range_params, seed_param};
use crate::tools::bad_param;
use crate::tools::resample::Interpolator;
use crate::tools::warp::{IndexMap, warp_voxels};
use medas_image::{Geometry, Image, with_voxels};
use std::sync::Arc;

type Matrix = [[f64; 3]; 3];

fn product(a: &Matrix, b: &Matrix) -> Matrix {
    std::array::from_fn(|r| std::array::from_fn(|c| (0..3).map(|k| a[r][k] * b[k][c]).sum()))
}

/// Rotation by `angle` radians in the plane of physical axes (p, q), from p towards q.
fn rotation(p: usize, q: usize, angle: f64) -> Matrix {
    let mut m: Matrix = std::array::from_fn(|r| std::array::from_fn(|c| f64::from(u8::from(r == c))));
    let (sin, cos) = angle.sin_cos();
    (m[p][p], m[p][q], m[q][p], m[q][q]) = (cos, -sin, sin, cos);
    m
}

/// The drawn parameters and the matrix they make: R_z R_y R_x H s (R about the physical axes
/// x, y, z; H upper triangular with the shears; s the isotropic scale). In 2-D, R_z and the
/// shear xy only.
struct Draw {
    rows: Vec<(String, f64)>,
    matrix: Matrix,
}

fn draw(rng: &mut SplitMix64, dimension: usize, rotation_max: f64, scale: (f64, f64), shear_max: f64) -> Draw {
    let planes: &[(usize, usize, &str)] = if dimension >= 3 { &[(1, 2, "x"), (2, 0, "y"), (0, 1, "z")] } else { &[(0, 1, "z")] };
    let mut rows = Vec::new();
    let mut matrix = rotation(0, 1, 0.0);
    for &(p, q, axis) in planes {
        let degrees = rng.uniform_in((-rotation_max, rotation_max));
        rows.push((format!("rotation_{axis}"), degrees));
        matrix = product(&rotation(p, q, degrees.to_radians()), &matrix);
    }
    let s = rng.uniform_in(scale);
    rows.push(("scale".into(), s));
    let shears: &[(usize, usize, &str)] = if dimension >= 3 { &[(0, 1, "xy"), (0, 2, "xz"), (1, 2, "yz")] } else { &[(0, 1, "xy")] };
    let mut shear = rotation(0, 1, 0.0);
    for &(r, c, name) in shears {
        shear[r][c] = rng.uniform_in((-shear_max, shear_max));
        rows.push((format!("shear_{name}"), shear[r][c]));
    }
    let scaled: Matrix = std::array::from_fn(|r| std::array::from_fn(|c| shear[r][c] * s));
    let matrix = product(&matrix, &scaled);
    (0..dimension).for_each(|r| (0..dimension).for_each(|c| rows.push((format!("matrix_{r}{c}"), matrix[r][c]))));
    Draw { rows, matrix }
}

/// The physical centre of the grid (the middle of the first and last voxel centres).
fn centre(image: &Image) -> Vec<f64> {
    let middle: Vec<f64> = image.size().iter().map(|&n| (n as f64 - 1.0) / 2.0).collect();
    image.geometry().index_to_point(&middle)
}

/// Output index -> input continuous index for output point p sampling input point
/// A (p - c) + c: the map is affine, so it is read off at the origin and the unit indices.
fn index_map(geometry: &Geometry, matrix: &Matrix, centre: &[f64]) -> IndexMap {
    let n = geometry.dimension();
    let sampled = |index: &[f64]| -> [f64; 3] {
        let p = geometry.index_to_point(index);
        let q: Vec<f64> = (0..n).map(|r| (0..n).map(|c| matrix[r][c] * (p[c] - centre[c])).sum::<f64>() + centre[r]).collect();
        let x = geometry.point_to_index(&q);
        std::array::from_fn(|a| x.get(a).copied().unwrap_or(0.0))
    };
    let start = sampled(&vec![0.0; n]);
    let columns = std::array::from_fn(|a| {
        if a >= n {
            return std::array::from_fn(|r| f64::from(u8::from(r == a)));
        }
        let unit: Vec<f64> = (0..n).map(|b| f64::from(u8::from(a == b))).collect();
        let x = sampled(&unit);
        std::array::from_fn(|r| x[r] - start[r])
    });
    IndexMap { start, columns }
}

fn warped(tool: &str, image: &Image, map: &IndexMap, interpolator: Interpolator, fill: f64) -> Result<Image, ToolError> {
    let voxels = with_voxels!(image.voxels(), a => warp_voxels(a, image.components(), image.size(), map, interpolator, fill));
    let mut out = Image::with_components(voxels, image.components(), image.geometry().clone()).map_err(|e| failed(tool, e))?;
    out.metadata = image.metadata.clone();
    Ok(out)
}

pub struct RandomAffine(ToolSpec);

impl RandomAffine {
    fn new() -> RandomAffine {
        let spec = ToolSpec::new(
            "augment.affine",
            Category::Augment,
            "Random affine",
            "Resamples the image (linear, float32) and its label (nearest neighbour, type kept) \
             onto their own grid through the affine map p -> A (p - c) + c from output to input \
             physical points, c the grid's centre, exactly as SimpleITK's Resample with an \
             AffineTransform of matrix A and centre c (points outside the input get fill_value, \
             0 for the label). A = Rz Ry Rx H s: rotations about the physical x, y, z axes (LPS; \
             z only in 2-D) by angles drawn uniformly from [-rotation_max, rotation_max] degrees \
             in the order x, y, z; then s drawn uniformly from [scale_min, scale_max] (s > 1 \
             samples a larger region, so the content shrinks); then the shears xy, xz, yz (xy \
             only in 2-D) of the upper triangular H, drawn uniformly from [-shear_max, \
             shear_max]; all from SplitMix64(seed). The parameters table lists the angles, the \
             scale, the shears and A's entries (matrix_rc), so the transform can be replayed.",
        )
        .param(seed_param())
        .param(ParamSpec::float("rotation_max", "Largest rotation about each axis (0 to 180).").default(15.0).unit("degrees").tunable())
        .params(range_params("scale", "the isotropic scale", (0.85, 1.15), "").to_vec())
        .param(ParamSpec::float("shear_max", "Largest magnitude of each shear coefficient (>= 0).").default(0.0).tunable())
        .param(ParamSpec::float("fill_value", "Image value outside the input.").default(0.0));
        RandomAffine(geometric_ports(spec))
    }
}

impl Tool for RandomAffine {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let rotation_max = params.float("rotation_max")?;
        if !(0.0..=180.0).contains(&rotation_max) {
            return Err(bad_param(id, "rotation_max", format!("must be between 0 and 180 degrees, got {rotation_max}")));
        }
        let scale = drawn_range(id, params, "scale", Lower::Above(0.0))?;
        let shear_max = non_negative(id, params, "shear_max")?;
        let (image, label) = image_and_label(&mut inputs, id)?;
        if !(2..=3).contains(&image.dimension()) {
            return Err(failed(id, format!("needs a 2-D or 3-D image, got {}-D", image.dimension())));
        }
        let drawn = draw(&mut generator(params)?, image.dimension(), rotation_max, scale, shear_max);
        let map = index_map(image.geometry(), &drawn.matrix, &centre(&image));
        let image_out = warped(id, &image, &map, Interpolator::Linear, params.float("fill_value")?)?;
        let label_out = label.map(|label| warped(id, &label, &map, Interpolator::Nearest, 0.0)).transpose()?;
        geometric_outputs(id, image_out, label_out, parameter_table(&drawn.rows))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(RandomAffine::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_draw_maps_every_index_to_itself() {
        let geometry = Geometry::new(vec![0.5, 2.0, 3.0], vec![1.0, -2.0, 5.0], vec![0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
        let drawn = draw(&mut SplitMix64::new(4), 3, 0.0, (1.0, 1.0), 0.0);
        let map = index_map(&geometry, &drawn.matrix, &[3.0, 1.0, -4.0]);
        let identity = IndexMap { start: [0.0; 3], columns: std::array::from_fn(|a| std::array::from_fn(|r| f64::from(u8::from(a == r)))) };
        (0..3).for_each(|r| assert!((map.start[r] - identity.start[r]).abs() < 1e-12));
        (0..3).for_each(|a| (0..3).for_each(|r| assert!((map.columns[a][r] - identity.columns[a][r]).abs() < 1e-12)));
    }
}
