//! Intensity augmentations, as batchgenerators (nnU-Net) defines them: Gaussian noise, gamma
//! on the image's intensity range, and multiplicative brightness followed by contrast about the
//! mean. Each draws its parameters from the seed, then maps every voxel (in f64, stored as
//! float32) on the input's grid. Labels are unaffected by these, so the tools take none.

use crate::context::Context;
use crate::data::{Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ToolSpec};
use crate::tools::augment::{Lower, SplitMix64, drawn_range, failed, generator, intensity_outputs, intensity_ports, normal_at, parameter_table, range_params, seed_param};
use crate::tools::interpolate::fortran_values;
use crate::tools::metadata_for_new_values;
use medas_image::{Image, Scalar, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn};
use rayon::prelude::*;
use std::sync::Arc;

/// Every value `x` at Fortran position `n` replaced by `f(n, x)`, as float32, in parallel.
pub fn map_values(voxels: &Voxels, f: impl Fn(usize, f64) -> f64 + Sync) -> Voxels {
    with_voxels!(voxels, a => map_array(a, f))
}

fn map_array<T: Scalar>(array: &ArcArray<T, IxDyn>, f: impl Fn(usize, f64) -> f64 + Sync) -> Voxels {
    let values = fortran_values(array);
    let out: Vec<f32> = values.par_iter().enumerate().map(|(n, v)| f(n, v.to_f64()) as f32).collect();
    Voxels::from_fortran_vec(array.shape(), out).expect("one value per voxel")
}

/// `image` with its values mapped by `f`; unit and display windows dropped when `rescales`.
fn mapped(tool: &str, image: &Image, rescales: bool, f: impl Fn(usize, f64) -> f64 + Sync) -> Result<Image, ToolError> {
    let mut out = image.with_voxels(map_values(image.voxels(), f)).map_err(|e| failed(tool, e))?;
    if rescales {
        out.metadata = metadata_for_new_values(&image.metadata);
    }
    Ok(out)
}

fn non_empty(inputs: &mut Inputs, tool: &str) -> Result<Image, ToolError> {
    let image = take_image(inputs, tool, "image")?;
    if image.voxels().is_empty() {
        return Err(failed(tool, "the image has no voxels"));
    }
    Ok(image)
}

pub struct GaussianNoise(ToolSpec);

impl GaussianNoise {
    fn new() -> GaussianNoise {
        let spec = ToolSpec::new(
            "augment.gaussian_noise",
            Category::Augment,
            "Random Gaussian noise",
            "Adds zero-mean Gaussian noise of a standard deviation drawn uniformly from \
             [std_min, std_max] (image units), as batchgenerators' GaussianNoiseTransform. The \
             draw from SplitMix64(seed): the std (one uniform), then a 64-bit noise key; the noise \
             of the voxel at Fortran position n is Box-Muller (cosine branch) of outputs 2n and \
             2n + 1 of SplitMix64(key), so it does not depend on threads. Output float32; the \
             parameters table lists std and key.",
        )
        .param(seed_param())
        .params(range_params("std", "the noise standard deviation", (0.0, 0.1), "").to_vec());
        GaussianNoise(intensity_ports(spec))
    }
}

impl Tool for GaussianNoise {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let range = drawn_range(id, params, "std", Lower::AtLeast(0.0))?;
        let image = non_empty(&mut inputs, id)?;
        let mut rng = generator(params)?;
        let std = rng.uniform_in(range);
        let key = rng.next_u64();
        let out = mapped(id, &image, false, |n, x| x + std * normal_at(key, n as u64))?;
        // The key as a float loses its low bits; the table shows it for inspection only.
        Ok(intensity_outputs(out, parameter_table(&[("std".into(), std), ("key".into(), key as f64)])))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(GaussianNoise::new()) } }

/// batchgenerators' epsilon in the gamma transform (keeps the range positive).
const GAMMA_EPSILON: f64 = 1e-7;

pub struct Gamma(ToolSpec);

impl Gamma {
    fn new() -> Gamma {
        let spec = ToolSpec::new(
            "augment.gamma",
            Category::Augment,
            "Random gamma",
            "Gamma correction on the image's intensity range, as batchgenerators' \
             augment_gamma: with m = min, r = max - min + 1e-7, x -> ((x - m) / r)^gamma r + m, \
             so the minimum is kept and the maximum moves by at most 1e-7. gamma is drawn \
             uniformly from [gamma_min, gamma_max] (one uniform from SplitMix64(seed)). Output \
             float32; the parameters table lists gamma.",
        )
        .param(seed_param())
        .params(range_params("gamma", "gamma", (0.7, 1.5), "").to_vec());
        Gamma(intensity_ports(spec))
    }
}

impl Tool for Gamma {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let range = drawn_range(id, params, "gamma", Lower::Above(0.0))?;
        let image = non_empty(&mut inputs, id)?;
        let gamma = generator(params)?.uniform_in(range);
        let stats = image.voxels().stats();
        let (low, span) = (stats.min, stats.max - stats.min + GAMMA_EPSILON);
        let out = mapped(id, &image, false, |_, x| ((x - low) / span).powf(gamma) * span + low)?;
        Ok(intensity_outputs(out, parameter_table(&[("gamma".into(), gamma)])))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Gamma::new()) } }

pub struct BrightnessContrast(ToolSpec);

impl BrightnessContrast {
    fn new() -> BrightnessContrast {
        let spec = ToolSpec::new(
            "augment.brightness_contrast",
            Category::Augment,
            "Random brightness / contrast",
            "Multiplies every value by a brightness factor, then scales the result about its \
             mean by a contrast factor and clips it to its own range before the contrast step, as \
             batchgenerators' BrightnessMultiplicativeTransform followed by ContrastAugmentation \
             (preserve_range): y = b x; z = clip((y - mean y) c + mean y, min y, max y). b and c \
             are drawn uniformly, in that order, from SplitMix64(seed). Output float32; the \
             parameters table lists brightness and contrast.",
        )
        .param(seed_param())
        .params(range_params("brightness", "the brightness factor", (0.75, 1.25), "").to_vec())
        .params(range_params("contrast", "the contrast factor", (0.75, 1.25), "").to_vec());
        BrightnessContrast(intensity_ports(spec))
    }
}

impl Tool for BrightnessContrast {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let brightness_range = drawn_range(id, params, "brightness", Lower::AtLeast(0.0))?;
        let contrast_range = drawn_range(id, params, "contrast", Lower::AtLeast(0.0))?;
        let image = non_empty(&mut inputs, id)?;
        let mut rng: SplitMix64 = generator(params)?;
        let (b, c) = (rng.uniform_in(brightness_range), rng.uniform_in(contrast_range));
        // Statistics of y = b x follow from those of x (b >= 0): no second pass.
        let stats = image.voxels().stats();
        let (mean, low, high) = (b * stats.mean, b * stats.min, b * stats.max);
        let out = mapped(id, &image, true, |_, x| ((b * x - mean) * c + mean).max(low).min(high))?;
        Ok(intensity_outputs(out, parameter_table(&[("brightness".into(), b), ("contrast".into(), c)])))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(BrightnessContrast::new()) } }
