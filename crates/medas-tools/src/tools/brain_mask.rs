//! `preprocess.brain_mask`: a brain mask of a T1 MR image by registering it to the MNI152
//! template and carrying the template's brain mask back through the inverse transform with
//! nearest-neighbour interpolation. The
//! registration is `preprocess.register` itself and the optional dilation is
//! `preprocess.distance_transform`, both run through the registry, so this tool adds only the
//! template mask, the checks and the nearest-neighbour carry.

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Registry, Tool, ToolEntry, run_resolved};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::metadata_for_new_values;
use crate::tools::reg_transform::{Kind, Transform};
use crate::tools::reg_mapping::Mapping;
use crate::tools::reg_volume::{Sampling, Volume, check_3d, invert, warp};
use medas_image::{Image, Voxels};
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::Arc;

/// The parameters handed on unchanged to `preprocess.register`.
const REGISTER_PARAMS: [&str; 9] =
    ["transform", "metric", "initializer", "sampling_percentage", "seed", "iterations", "shrink_factors", "smoothing_sigmas", "transform_path"];

/// How far the template mask's grid may differ from the template's (mm, and direction cosines).
const GRID_TOLERANCE: f64 = 1e-4;

pub struct BrainMask(ToolSpec);

impl BrainMask {
    fn new() -> BrainMask {
        let non_negative = ParamKind::Float { min: Some(0.0), max: None };
        BrainMask(
            ToolSpec::new(
                "preprocess.brain_mask",
                Category::Preprocess,
                "Brain mask by template registration",
                "Computes a brain mask of a 3-D T1-weighted MR image: registers the image to the MNI152 T1 \
                 template with preprocess.register (fixed: the template, whose field of view is mostly \
                 brain, so that the sampled points fall on it; moving: the image; Mattes mutual \
                 information, 10% random samples, pyramid shrink [4, 2] with sigmas [2, 1] voxels and the \
                 centre-of-mass initializer by default), inverts the found affine map, then resamples the \
                 template's brain mask onto the image's grid through it with nearest-neighbour \
                 interpolation, as sitk.Resample(template_mask, image, transform.GetInverse(), \
                 sitk.sitkNearestNeighbor, 0) does, and \
                 optionally dilates it by a distance in mm (exact Euclidean, the voxels within that \
                 distance of the mask). The template is nilearn's MNI ICBM152 2009a T1 \
                 (mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz in nilearn/datasets/data/ of the \
                 nilearn wheel; `pip download --no-deps nilearn` and unzip). Without a template_mask \
                 the mask is nilearn's load_mni152_brain_mask(resolution=1): template / its maximum > \
                 template_threshold. Outputs a uint8 0/1 mask on the image's grid (geometry exact), the \
                 image resampled onto the template's grid (for checking the fit) and the transform file \
                 (image point to template point, saved as an AffineTransform in ITK text or JSON as \
                 preprocess.register saves transforms: preprocess.apply_transform with it moves any \
                 template-space map onto the image).",
            )
            .writes_files()
            .param(ParamSpec::choice("transform", "Transform family of the registration.", &["rigid", "affine"]).default("affine"))
            .param(ParamSpec::choice("metric", "Similarity metric (mattes copes with differing contrast and bias).", &["mse", "ncc", "mattes"]).default("mattes"))
            .param(ParamSpec::choice("initializer", "Initial alignment: centres of mass or grid centres.", &["moments", "geometry"]).default("moments"))
            .param(ParamSpec::float("sampling_percentage", "Fraction of image voxels sampled by the metric.").range(1e-6, 1.0).default(0.1))
            .param(ParamSpec::int("seed", "Seed of the random sampling.").range(0.0, 4294967295.0).default(42))
            .param(ParamSpec::int("iterations", "Most optimizer iterations per level.").range(1.0, 100000.0).default(200))
            .param(ParamSpec::list("shrink_factors", "Shrink factor per pyramid level, coarse to fine.", ParamKind::Int { min: Some(1), max: Some(64) }).range(1.0, 8.0).default(json!([4, 2])))
            .param(ParamSpec::list("smoothing_sigmas", "Gaussian sigma per level, in full-resolution voxels.", non_negative).range(1.0, 8.0).default(json!([2.0, 1.0])).unit("voxels"))
            .param(ParamSpec::float("template_threshold", "Without template_mask: the brain is template / max > this (nilearn: 0.2).").range(0.0, 1.0).default(0.2))
            .param(ParamSpec::float("dilation", "Grow the mask by this distance (0: as carried).").range(0.0, 100.0).default(0.0).unit("mm").tunable())
            .param(ParamSpec::path("transform_path", "Where to save the transform (.tfm or .json).").default("brain_mask_transform.tfm"))
            .input(PortSpec::new("image", PortType::Image, "The 3-D T1-weighted image to mask (its grid is the mask's)."))
            .input(PortSpec::new(
                "template",
                PortType::Image,
                "The MNI152 T1 template: nilearn's mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz (nilearn/datasets/data/ in the nilearn wheel).",
            ))
            .input(PortSpec::new("template_mask", PortType::LabelImage, "The template's brain mask (non-zero), on the template's grid; default: nilearn's threshold rule.").optional())
            .output(PortSpec::new("mask", PortType::LabelImage, "uint8 brain mask (1) on the image's grid."))
            .output(PortSpec::new("registered_image", PortType::Image, "The image resampled linearly onto the template's grid (float32)."))
            .output(PortSpec::new("transform", PortType::File, "The saved transform (image point to template point).")),
        )
    }
}

fn failed(id: &str, message: String) -> ToolError {
    ToolError::Failed { tool: id.into(), message }
}

fn check_input(id: &str, port: &str, image: &Image) -> Result<(), ToolError> {
    check_3d(image).map_err(|e| failed(id, format!("input {port:?} {e}")))
}

/// A uint8 0/1 image on `like`'s grid from Fortran-ordered flags.
fn binary_image(like: &Image, on: impl Iterator<Item = bool>) -> Image {
    let values: Vec<u8> = on.map(u8::from).collect();
    let voxels = Voxels::from_fortran_vec(like.size(), values).expect("one flag per voxel of a 3-D image");
    let mut mask = like.with_voxels(voxels).expect("the same grid");
    mask.metadata = metadata_for_new_values(&like.metadata);
    mask
}

/// nilearn's `load_mni152_brain_mask(resolution=1, threshold)`: the template divided by its
/// maximum (in float32) above `threshold`. None when the template has no positive value.
pub fn template_brain_mask(template: &Image, threshold: f64) -> Option<Image> {
    let volume = Volume::from_image(template);
    let max = volume.range.1 as f32;
    (max > 0.0).then(|| binary_image(template, volume.values.iter().map(|&v| v / max > threshold as f32)))
}

/// The template mask given (made 0/1, after checking it lies on the template's grid) or derived.
fn template_mask(id: &str, given: Option<Image>, template: &Image, threshold: f64) -> Result<Image, ToolError> {
    let Some(mask) = given else {
        return template_brain_mask(template, threshold).ok_or_else(|| failed(id, "input \"template\" has no positive value: not a T1 template".into()));
    };
    check_input(id, "template_mask", &mask)?;
    if mask.size() != template.size() || !mask.geometry().approx_eq(template.geometry(), GRID_TOLERANCE) {
        let describe = |image: &Image| format!("size {:?}, spacing {:?}, origin {:?}", image.size(), image.geometry().spacing(), image.geometry().origin());
        let message = format!("input \"template_mask\" must lie on the template's grid ({}), got {}", describe(template), describe(&mask));
        return Err(failed(id, message));
    }
    let volume = Volume::from_image(&mask);
    Ok(binary_image(&mask, volume.values.iter().map(|&v| v != 0.0)))
}

/// Runs another catalog tool with `given` parameters (defaults filled by its spec); its errors
/// come back under this tool's id, naming the stage.
fn run_stage(id: &str, stage: &str, inputs: Inputs, given: Map<String, Value>, context: &Context) -> Result<Outputs, ToolError> {
    let wrap = |e: ToolError| failed(id, e.to_string());
    let tool = Registry::global().get(stage).map_err(wrap)?;
    let params = Params::resolve(tool.spec(), &given).map_err(wrap)?;
    run_resolved(tool.as_ref(), inputs, &params, context).map_err(wrap)
}

/// Registers the image to the template: the transform file (template point to image point) and
/// the image on the template's grid.
fn register(id: &str, image: &Image, template: Image, params: &Params, context: &Context) -> Result<(PathBuf, Image), ToolError> {
    let given: Map<String, Value> = REGISTER_PARAMS.iter().filter_map(|&name| Some((name.to_string(), params.value(name)?.clone()))).collect();
    let inputs: Inputs = [("fixed".to_string(), Data::Image(template)), ("moving".to_string(), Data::Image(image.clone()))].into();
    let mut outputs = run_stage(id, "preprocess.register", inputs, given, context)?;
    match (outputs.remove("transform"), outputs.remove("image")) {
        (Some(Data::File(path)), Some(Data::Image(registered))) => Ok((path, registered)),
        _ => Err(failed(id, "preprocess.register returned no transform".into())),
    }
}

/// The inverse of a rigid or affine `T(x) = A (x - c) + c + t`, as an affine transform about
/// `T(c)`: `A^-1 (y - T(c)) + c`.
pub fn inverse(transform: &Transform) -> Transform {
    let a_inverse = invert(&transform.matrix());
    let moved_center = transform.apply(&transform.center);
    let mut parameters: Vec<f64> = a_inverse.iter().flatten().copied().collect();
    parameters.extend((0..3).map(|i| transform.center[i] - moved_center[i]));
    Transform { kind: Kind::Affine, parameters, center: moved_center }
}

/// `mask` grown by `distance` mm: the voxels whose distance to the mask is at most that (the
/// distance transform of the complement measures it).
fn dilate(id: &str, mask: &Image, distance: f64, context: &Context) -> Result<Image, ToolError> {
    let flags = Volume::from_image(mask).values;
    let outside = binary_image(mask, flags.iter().map(|&v| v == 0.0));
    let inputs: Inputs = [("mask".to_string(), Data::Image(outside))].into();
    let mut outputs = run_stage(id, "preprocess.distance_transform", inputs, Map::new(), context)?;
    let Some(Data::Image(to_mask)) = outputs.remove("distance") else {
        return Err(failed(id, "preprocess.distance_transform returned no distances".into()));
    };
    let distances = Volume::from_image(&to_mask).values;
    Ok(binary_image(mask, distances.iter().map(|&d| d as f64 <= distance)))
}

impl Tool for BrainMask {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = self.0.id.as_str();
        let image = take_image(&mut inputs, id, "image")?;
        let template = take_image(&mut inputs, id, "template")?;
        check_input(id, "image", &image)?;
        check_input(id, "template", &template)?;
        let given_mask = inputs.remove("template_mask").map(|data| data.into_image(id, "template_mask")).transpose()?;
        let brain = template_mask(id, given_mask, &template, params.float("template_threshold")?)?;
        let (path, registered) = register(id, &image, template, params, context)?;
        // Saved the other way round: image point to template point, what carrying template maps needs.
        let transform = inverse(&Transform::load(&path).map_err(|e| failed(id, e))?);
        transform.save(&path).map_err(|e| failed(id, e))?;
        let carried = warp(&brain, &image, &Mapping::Linear(transform), Sampling::Nearest, 0.0);
        let carried = Volume::from_image(&carried).values;
        if carried.iter().all(|&v| v == 0.0) {
            return Err(failed(id, "the carried brain mask is empty: the registration moved the template off the image".into()));
        }
        let mut mask = binary_image(&image, carried.iter().map(|&v| v != 0.0));
        let distance = params.float("dilation")?;
        if distance > 0.0 {
            mask = dilate(id, &mask, distance, context)?;
        }
        Ok(Outputs::from([
            ("mask".to_string(), Data::Image(mask)),
            ("registered_image".to_string(), Data::Image(registered)),
            ("transform".to_string(), Data::File(path)),
        ]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(BrainMask::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    fn cube(values: Vec<f32>) -> Image {
        Image::from_voxels(Voxels::from_fortran_vec(&[4, 4, 4], values).unwrap()).unwrap()
    }

    #[test]
    fn the_template_mask_follows_nilearns_threshold_on_the_scaled_template() {
        // 51 / 255 is 0.2 in float32: not above the threshold, as in nilearn.
        let values: Vec<f32> = (0..64).map(|n| [0.0, 51.0, 52.0, 255.0][n % 4]).collect();
        let mask = template_brain_mask(&cube(values), 0.2).unwrap();
        let flags: Vec<u8> = Volume::from_image(&mask).values.iter().map(|&v| v as u8).collect();
        assert_eq!(&flags[..4], &[0, 0, 1, 1]);
        assert!(template_brain_mask(&cube(vec![0.0; 64]), 0.2).is_none());
    }

    #[test]
    fn the_inverse_undoes_the_transform() {
        let mut rigid = Transform::identity(Kind::Rigid, [10.0, -5.0, 3.0]);
        rigid.parameters = vec![0.2, -0.1, 0.3, 5.0, -7.0, 2.0];
        let mut affine = Transform::identity(Kind::Affine, [1.0, 2.0, 3.0]);
        affine.parameters = vec![1.1, 0.05, 0.0, -0.03, 0.9, 0.1, 0.02, 0.0, 1.05, 4.0, 3.0, -2.0];
        for transform in [rigid, affine] {
            let back = inverse(&transform);
            for x in [[0.0, 0.0, 0.0], [50.0, -20.0, 30.0]] {
                let y = back.apply(&transform.apply(&x));
                assert!((0..3).all(|i| (y[i] - x[i]).abs() < 1e-9), "{x:?} -> {y:?}");
            }
        }
    }

    #[test]
    fn dilation_reaches_exactly_the_distance_in_mm() {
        let mask = binary_image(&cube(vec![0.0; 64]), (0..64).map(|n| n == 0));
        let (cancel, log) = (crate::context::CancelToken::new(), |_: &str| {});
        let context = Context::new(&|_| {}, &log, &cancel, None);
        let grown = dilate("t", &mask, 1.5, &context).unwrap();
        let count = Volume::from_image(&grown).values.iter().filter(|&&v| v != 0.0).count();
        // The corner voxel and its neighbours within 1.5 mm: 3 faces and 3 edge diagonals (sqrt 2).
        assert_eq!(count, 7);
    }
}
