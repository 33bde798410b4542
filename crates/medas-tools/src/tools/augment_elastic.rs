//! `augment.elastic`: a smooth random displacement field (Simard et al. 2003, as in
//! batchgenerators: uniform noise smoothed by a Gaussian, scaled by alpha), applied to the
//! image (linear) and its label (nearest neighbour) on the input's grid.

use crate::context::Context;
use crate::data::{Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, ToolSpec};
use crate::tools::augment::{Lower, SplitMix64, drawn_range, failed, generator, geometric_outputs, geometric_ports, image_and_label, parameter_table, range_params, seed_param, unit};
use crate::tools::augment_blur_crop::smooth;
use crate::tools::interpolate::fortran_values;
use medas_image::{Image, Scalar, VoxelArray, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;
use std::sync::Arc;

/// Per spatial axis, the displacement in voxels of every voxel (Fortran order).
struct Field {
    shape: [usize; 3],
    displacement: Vec<Vec<f32>>,
}

impl Field {
    /// Noise of axis a at voxel n: 2 u - 1, u from output a N + n of SplitMix64(key); smoothed
    /// by `sigma` mm, times `alpha` mm, divided by the axis' spacing.
    fn draw(key: u64, shape: [usize; 3], spacing: &[f64], alpha: f64, sigma: f64) -> Field {
        let total: usize = shape.iter().product();
        let sigmas: Vec<f64> = (0..3).map(|a| spacing.get(a).map_or(0.0, |s| sigma / s)).collect();
        let displacement = (0..spacing.len())
            .map(|a| {
                let noise: Vec<f32> = (0..total).into_par_iter().map(|n| (2.0 * unit(SplitMix64::at(key, (a * total + n) as u64)) - 1.0) as f32).collect();
                let scale = (alpha / spacing[a]) as f32;
                smooth(noise, &shape, &sigmas).into_iter().map(|d| d * scale).collect()
            })
            .collect();
        Field { shape, displacement }
    }

    /// The continuous input index voxel `n` samples, or None outside the input (ITK's rule).
    fn source(&self, n: usize) -> Option<[f64; 3]> {
        let s = self.shape;
        let index = [n % s[0], (n / s[0]) % s[1], n / (s[0] * s[1])];
        let x: [f64; 3] = std::array::from_fn(|a| index[a] as f64 + self.displacement.get(a).map_or(0.0, |d| f64::from(d[n])));
        (0..3).all(|a| x[a] >= -0.5 && x[a] < s[a] as f64 - 0.5).then_some(x)
    }

    fn linear<T: Scalar>(&self, values: &[T], fill: f64) -> Vec<f32> {
        let s = self.shape;
        let at = |i: [usize; 3]| values[i[0] + s[0] * (i[1] + s[1] * i[2])].to_f64();
        let sample = |x: [f64; 3]| {
            // Edge values repeat between the last voxel centre and the border.
            let (base, t): ([usize; 3], [f64; 3]) = {
                let base: [usize; 3] = std::array::from_fn(|a| x[a].floor().clamp(0.0, (s[a] - 1) as f64) as usize);
                (base, std::array::from_fn(|a| if base[a] + 1 < s[a] { (x[a] - base[a] as f64).clamp(0.0, 1.0) } else { 0.0 }))
            };
            let mut sum = 0.0;
            for corner in 0..8usize {
                let bit = |a: usize| (corner >> a) & 1;
                let weight: f64 = (0..3).map(|a| if bit(a) == 1 { t[a] } else { 1.0 - t[a] }).product();
                if weight > 0.0 {
                    sum += weight * at(std::array::from_fn(|a| base[a] + bit(a)));
                }
            }
            sum
        };
        (0..values.len()).into_par_iter().map(|n| self.source(n).map_or(fill, sample) as f32).collect()
    }

    /// Nearest voxel, halves rounded up (ITK); 0 outside.
    fn nearest<T: Scalar>(&self, values: &[T]) -> Vec<T> {
        let s = self.shape;
        let sample = |x: [f64; 3]| {
            let i: [usize; 3] = std::array::from_fn(|a| ((x[a] + 0.5).floor() as usize).min(s[a] - 1));
            values[i[0] + s[0] * (i[1] + s[1] * i[2])]
        };
        (0..values.len()).into_par_iter().map(|n| self.source(n).map_or(T::from_f64(0.0), sample)).collect()
    }
}

fn deformed(tool: &str, image: &Image, field: &Field, label: bool, fill: f64) -> Result<Image, ToolError> {
    fn apply<T: VoxelArray>(array: &ArcArray<T, IxDyn>, field: &Field, label: bool, fill: f64) -> Voxels {
        let values = fortran_values(array);
        let shape = array.shape();
        let voxels = if label { Voxels::from_fortran_vec(shape, field.nearest(&values)) } else { Voxels::from_fortran_vec(shape, field.linear(&values, fill)) };
        voxels.expect("one value per voxel")
    }
    let voxels = with_voxels!(image.voxels(), a => apply(a, field, label, fill));
    let mut out = image.with_voxels(voxels).map_err(|e| failed(tool, e))?;
    out.metadata = image.metadata.clone();
    Ok(out)
}

pub struct Elastic(ToolSpec);

impl Elastic {
    fn new() -> Elastic {
        let spec = ToolSpec::new(
            "augment.elastic",
            Category::Augment,
            "Random elastic deformation",
            "Moves every voxel by a smooth random displacement (Simard et al. 2003, as \
             batchgenerators' elastic deformation) and resamples the image (linear, edge values \
             repeated, float32) and its label (nearest neighbour, type kept) on their own grid; \
             points outside the input get fill_value (0 for the label). Along grid axis a the \
             displacement is alpha times the noise u_a (uniform in [-1, 1] per voxel) smoothed by \
             a normalised Gaussian of sigma mm (scipy gaussian_filter, mode nearest, truncate 4), \
             in mm. The draw from SplitMix64(seed): alpha, sigma (uniformly from their ranges), \
             then a 64-bit key; u_a at Fortran position n is 2 v - 1, v from output a N + n of \
             SplitMix64(key) (N voxels). The parameters table lists alpha, sigma and key.",
        )
        .param(seed_param())
        .params(range_params("alpha", "the displacement scale", (0.0, 1000.0), "mm").to_vec())
        .params(range_params("sigma", "the smoothing Gaussian's standard deviation", (10.0, 13.0), "mm").to_vec())
        .param(ParamSpec::float("fill_value", "Image value outside the input.").default(0.0));
        Elastic(geometric_ports(spec))
    }
}

impl Tool for Elastic {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let alpha_range = drawn_range(id, params, "alpha", Lower::AtLeast(0.0))?;
        let sigma_range = drawn_range(id, params, "sigma", Lower::AtLeast(0.0))?;
        let (image, label) = image_and_label(&mut inputs, id)?;
        if !(2..=3).contains(&image.dimension()) || image.components() != 1 {
            return Err(failed(id, format!("needs a scalar 2-D or 3-D image, got {}-D with {} components", image.dimension(), image.components())));
        }
        let mut rng = generator(params)?;
        let (alpha, sigma, key) = (rng.uniform_in(alpha_range), rng.uniform_in(sigma_range), rng.next_u64());
        let shape: [usize; 3] = std::array::from_fn(|a| image.size().get(a).copied().unwrap_or(1));
        let field = Field::draw(key, shape, image.geometry().spacing(), alpha, sigma);
        let image_out = deformed(id, &image, &field, false, params.float("fill_value")?)?;
        let label_out = label.map(|label| deformed(id, &label, &field, true, 0.0)).transpose()?;
        let rows = [("alpha".to_string(), alpha), ("sigma".to_string(), sigma), ("key".to_string(), key as f64)];
        geometric_outputs(id, image_out, label_out, parameter_table(&rows))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Elastic::new()) } }
