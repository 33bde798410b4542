//! `augment.gaussian_blur` (a Gaussian of random width in mm) and `augment.random_crop` (a
//! window of fixed size at a random position, image and label together).

use crate::context::Context;
use crate::data::{Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ToolSpec};
use crate::tools::augment::{Lower, drawn_range, failed, fortran_voxels, generator, geometric_outputs, geometric_ports, image_and_label, intensity_outputs, intensity_ports, parameter_table, range_params, seed_param};
use crate::tools::bad_param;
use crate::tools::interpolate::{AxisPlan, fortran_values, resample_axis};
use crate::tools::resample::{per_axis, size_param};
use medas_image::{Geometry, Image, Scalar, VoxelArray, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn, Slice};
use std::sync::Arc;

const AXES: [&str; 3] = ["i", "j", "k"];

/// The voxels smoothed along each spatial axis `a` by a Gaussian of `sigmas[a]` voxels, as f32.
fn blurred<T: Scalar>(array: &ArcArray<T, IxDyn>, sigmas: &[f64]) -> Voxels {
    let shape = array.shape().to_vec();
    let values: Vec<f32> = fortran_values(array).iter().map(|v| v.to_f64() as f32).collect();
    Voxels::from_fortran_vec(&shape, smooth(values, &shape, sigmas)).expect("smoothing keeps the shape")
}

/// Fortran-ordered `values` of `shape` smoothed along axis `a` by a Gaussian of `sigmas[a]`
/// voxels (scipy.ndimage.gaussian_filter, mode nearest, truncate 4).
pub fn smooth(mut values: Vec<f32>, shape: &[usize], sigmas: &[f64]) -> Vec<f32> {
    for (axis, &sigma) in sigmas.iter().enumerate().filter(|(_, s)| **s > 0.0) {
        let n = shape[axis];
        values = resample_axis(&values, shape, axis, &AxisPlan::linear(n, n, (1.0, 0.0)).smoothed(sigma));
    }
    values
}

pub struct GaussianBlur(ToolSpec);

impl GaussianBlur {
    fn new() -> GaussianBlur {
        let spec = ToolSpec::new(
            "augment.gaussian_blur",
            Category::Augment,
            "Random Gaussian blur",
            "Smooths the image with a Gaussian whose standard deviation, in mm and the same on \
             every axis, is drawn uniformly from [sigma_min, sigma_max] (one uniform from \
             SplitMix64(seed)); on axis a it is sigma / spacing_a voxels. The kernel is sampled, \
             truncated at 4 sigma and normalised, edge values repeated, as \
             scipy.ndimage.gaussian_filter(mode=\"nearest\", truncate=4). Output float32 on the \
             input's grid; the parameters table lists sigma (mm).",
        )
        .param(seed_param())
        .params(range_params("sigma", "the Gaussian's standard deviation", (0.5, 1.5), "mm").to_vec());
        GaussianBlur(intensity_ports(spec))
    }
}

impl Tool for GaussianBlur {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let range = drawn_range(id, params, "sigma", Lower::AtLeast(0.0))?;
        let image = take_image(&mut inputs, id, "image")?;
        if image.voxels().is_empty() {
            return Err(failed(id, "the image has no voxels"));
        }
        let sigma = generator(params)?.uniform_in(range);
        let sigmas: Vec<f64> = image.geometry().spacing().iter().map(|s| sigma / s).collect();
        let voxels = with_voxels!(image.voxels(), a => blurred(a, &sigmas));
        let out = image.with_voxels(voxels).map_err(|e| failed(id, e))?;
        Ok(intensity_outputs(out, parameter_table(&[("sigma".into(), sigma)])))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(GaussianBlur::new()) } }

/// `image` cut to `size` voxels from `offsets`, with the origin moved to the first kept voxel.
fn cropped(tool: &str, image: &Image, offsets: &[usize], size: &[usize]) -> Result<Image, ToolError> {
    fn cut<T: VoxelArray>(array: &ArcArray<T, IxDyn>, offsets: &[usize], size: &[usize]) -> Voxels {
        let view = array.slice_each_axis(|axis| match (offsets.get(axis.axis.index()), size.get(axis.axis.index())) {
            (Some(&start), Some(&len)) => Slice::from(start..start + len),
            _ => Slice::from(..),
        });
        fortran_voxels(view)
    }
    let voxels = with_voxels!(image.voxels(), a => cut(a, offsets, size));
    let geometry = image.geometry();
    let origin = geometry.index_to_point(&offsets.iter().map(|&o| o as f64).collect::<Vec<_>>());
    let geometry = Geometry::new(geometry.spacing().to_vec(), origin, geometry.direction().to_vec()).map_err(|e| failed(tool, e))?;
    let mut out = Image::with_components(voxels, image.components(), geometry).map_err(|e| failed(tool, e))?;
    out.metadata = image.metadata.clone();
    Ok(out)
}

pub struct RandomCrop(ToolSpec);

impl RandomCrop {
    fn new() -> RandomCrop {
        let spec = ToolSpec::new(
            "augment.random_crop",
            Category::Augment,
            "Random crop",
            "Cuts a window of size voxels (one value for every axis, or one per axis) out of the \
             image and its label at the same random position: per axis i, j[, k] in that order, \
             the first index is drawn uniformly from 0 to (image size - window size) inclusive, \
             floor((n - s + 1) u) for a uniform u from SplitMix64(seed). Values and type are kept; \
             the origin moves to the first kept voxel (spacing and direction kept), as SimpleITK's \
             RegionOfInterest. The parameters table lists offset_i, offset_j[, offset_k].",
        )
        .param(seed_param())
        .param(size_param("Window size in voxels: one value for every axis, or one per axis (at most the image size)."));
        RandomCrop(geometric_ports(spec))
    }
}

impl Tool for RandomCrop {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let (image, label) = image_and_label(&mut inputs, id)?;
        let size = per_axis(id, params, "size", &image)?;
        if size.iter().zip(image.size()).any(|(s, n)| s > n) {
            return Err(bad_param(id, "size", format!("must not exceed the image size {:?} on any axis, got {size:?}", image.size())));
        }
        let mut rng = generator(params)?;
        let offsets: Vec<usize> = size.iter().zip(image.size()).map(|(s, n)| rng.below((n - s + 1) as u64) as usize).collect();
        let rows: Vec<(String, f64)> = offsets.iter().enumerate().map(|(a, &o)| (format!("offset_{}", AXES[a.min(2)]), o as f64)).collect();
        let image_out = cropped(id, &image, &offsets, &size)?;
        let label_out = label.map(|label| cropped(id, &label, &offsets, &size)).transpose()?;
        geometric_outputs(id, image_out, label_out, parameter_table(&rows))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(RandomCrop::new()) } }
