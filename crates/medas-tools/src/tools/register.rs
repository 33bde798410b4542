//! `preprocess.register` and `preprocess.apply_transform`: intensity-based registration composed,
//! as SimpleITK's ImageRegistrationMethod, of a transform (reg_transform), a metric with linear
//! interpolation of the moving image (reg_metric, reg_volume), an optimizer (reg_optimizer) and
//! a multi-resolution pyramid; and re-applying a saved transform to another image. Rigid and
//! affine transforms, or a cubic B-spline deformation after an optional fixed initial transform
//! (reg_bspline, reg_mapping).

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::bad_param;
use crate::tools::reg_metric::{ImageGradient, Metric, Strategy, draw_samples, evaluate};
use crate::tools::reg_bspline::BSpline;
use crate::tools::reg_mapping::Mapping;
use crate::tools::reg_optimizer::{LbfgsSettings, StepSettings, descend, lbfgs, physical_shift_scales};
use crate::tools::reg_transform::{Kind, Point, Transform};
use crate::tools::reg_volume::{Sampling, Volume, check_3d, warp};
use medas_image::Image;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const TRANSFORMS: [&str; 3] = ["rigid", "affine", "bspline"];
const OPTIMIZERS: [&str; 3] = ["auto", "regular_step", "lbfgs"];
const METRICS: [&str; 3] = ["mse", "ncc", "mattes"];
const SAMPLING: [&str; 3] = ["random", "regular", "none"];
const INITIALIZERS: [&str; 2] = ["geometry", "moments"];
const IMAGE_GRADIENTS: [&str; 3] = ["auto", "linear", "central"];

pub struct Register(ToolSpec);

impl Register {
    fn new() -> Register {
        let non_negative = ParamKind::Float { min: Some(0.0), max: None };
        Register(
            ToolSpec::new(
                "preprocess.register",
                Category::Preprocess,
                "Register images",
                "Finds the transform that maps the fixed image's physical space (LPS, mm) onto the moving \
                 image's, as SimpleITK's ImageRegistrationMethod with: transform rigid (Euler3DTransform) or \
                 affine, its centre and translation initialised as sitk.CenteredTransformInitializer \
                 (geometry: the grid centres; moments: the intensity centres of mass), or bspline: a cubic \
                 B-spline free-form deformation (sitk.BSplineTransform, order 3) with mesh_size spans per \
                 axis over the fixed image's domain as sitk.BSplineTransformInitializer lays it out, starting \
                 from zero, composed before the optional initial_transform (a rigid or affine transform held \
                 fixed, as SetMovingInitialTransform: T(x) = initial(x + d(x))); metric mse (mean \
                 squares), ncc (negated normalised correlation) or mattes (negated Mattes mutual \
                 information, cubic B-spline Parzen windows); the moving image linearly interpolated; \
                 optimizer regular_step: regular-step gradient descent with scales from physical shifts \
                 (SetOptimizerScalesFromPhysicalShift: a step of the learning rate moves the image by \
                 about that many mm; B-spline coefficients have scale 1) and the stopping rules of ITK's \
                 RegularStepGradientDescentOptimizerv4 (step times relaxation when the direction turns back, \
                 by ITK's test; step below min_step; iterations; the metric gradient's length below \
                 gradient_tolerance), or lbfgs: limited-memory BFGS as L-BFGS-B without bounds (corrections pairs, \
                 Moré-Thuente line search for the strong Wolfe conditions with ftol 1e-3 and gtol 0.9, \
                 first step 1 mm) over the same scaled parameters, stopping as SetOptimizerAsLBFGSB does \
                 (largest gradient component below gradient_tolerance, relative decrease below 1e7 \
                 machine epsilons, a failed line search along the gradient, or iterations); auto: lbfgs \
                 for bspline, regular_step otherwise; the metric's gradient takes the moving image's \
                 gradient as image_gradient says: linear, the exact gradient of the linear interpolation, \
                 or central, ITK's central differences of the interpolated image one voxel either side \
                 (CentralDifferenceImageFunction, what ImageRegistrationMethod uses with its gradient \
                 filters off; SimpleITK's default Gaussian-derivative image is not offered), auto: central \
                 for bspline, linear otherwise; the B-spline mesh stays the same at every level; a \
                 pyramid with one shrink factor and one Gaussian smoothing sigma \
                 (in voxels of the full-resolution image, as SetSmoothingSigmasAreSpecifiedInPhysicalUnits \
                 (False)) per level, coarse to fine. Samples: random (each voxel with the given \
                 probability, fixed seed), regular (every round(1/percentage)-th voxel) or none (every \
                 voxel), only where fixed_mask is non-zero. Logs iterations, stop reason and final metric \
                 value per level. Outputs the transform, saved as ITK text (.tfm, readable by \
                 sitk.ReadTransform; a bspline with an initial transform as a CompositeTransform of the \
                 initial transform then the BSplineTransform) or JSON, and the moving image resampled linearly \
                 onto the fixed grid.",
            )
            .writes_files()
            .param(ParamSpec::choice("transform", "Transform family.", &TRANSFORMS).default("rigid"))
            .param(ParamSpec::choice("initializer", "Initial centre and translation (rigid, affine).", &INITIALIZERS).default("geometry"))
            .param(ParamSpec::int("mesh_size", "B-spline control-point spans per axis (bspline).").range(1.0, 256.0).default(8))
            .param(ParamSpec::choice("optimizer", "auto: lbfgs for bspline, regular_step otherwise.", &OPTIMIZERS).default("auto"))
            .param(ParamSpec::choice("image_gradient", "Moving-image gradient: auto (central for bspline, linear otherwise), linear (exact), central (ITK's central differences).", &IMAGE_GRADIENTS).default("auto"))
            .param(ParamSpec::int("corrections", "Curvature pairs kept by lbfgs.").range(1.0, 100.0).default(5))
            .param(ParamSpec::choice("metric", "Similarity metric.", &METRICS).default("mattes"))
            .param(ParamSpec::int("bins", "Histogram bins of Mattes mutual information.").range(5.0, 512.0).default(50))
            .param(ParamSpec::choice("sampling", "How fixed voxels are sampled for the metric.", &SAMPLING).default("random"))
            .param(ParamSpec::float("sampling_percentage", "Fraction of voxels sampled (random, regular).").range(1e-6, 1.0).default(0.2))
            .param(ParamSpec::int("seed", "Seed of random sampling.").range(0.0, 4294967295.0).default(42))
            .param(ParamSpec::float("learning_rate", "First step length.").range(1e-9, 1e6).default(1.0).unit("mm"))
            .param(ParamSpec::float("min_step", "Smallest step length before stopping.").range(0.0, 1e6).default(1e-3).unit("mm"))
            .param(ParamSpec::int("iterations", "Most iterations per level.").range(1.0, 100000.0).default(200))
            .param(ParamSpec::float("relaxation", "Step factor when the gradient turns back.").range(0.01, 0.99).default(0.5))
            .param(ParamSpec::float("gradient_tolerance", "Stop when the gradient is this small (regular_step: its length; lbfgs: its largest scaled component).").range(0.0, 1e6).default(1e-4))
            .param(ParamSpec::list("shrink_factors", "Shrink factor per level, coarse to fine.", ParamKind::Int { min: Some(1), max: Some(64) }).range(1.0, 8.0).default(json!([4, 2, 1])))
            .param(ParamSpec::list("smoothing_sigmas", "Gaussian sigma per level, in full-resolution voxels.", non_negative).range(1.0, 8.0).default(json!([2.0, 1.0, 0.0])).unit("voxels"))
            .param(ParamSpec::float("default_value", "Value of resampled voxels outside the moving image.").default(0.0))
            .param(ParamSpec::path("transform_path", "Where to save the transform (.tfm or .json).").default("transform.tfm"))
            .input(PortSpec::new("fixed", PortType::Image, "The 3-D image that stays put (its grid is the output's)."))
            .input(PortSpec::new("moving", PortType::Image, "The 3-D image to align to it."))
            .input(PortSpec::new("fixed_mask", PortType::LabelImage, "Where to sample the fixed image (non-zero), any grid.").optional())
            .input(PortSpec::new("initial_transform", PortType::File, "A rigid or affine transform applied after the B-spline and kept fixed (bspline only), e.g. an earlier rigid or affine result.").optional())
            .output(PortSpec::new("image", PortType::Image, "The moving image resampled onto the fixed grid (float32)."))
            .output(PortSpec::new("transform", PortType::File, "The saved transform (fixed point to moving point).")),
        )
    }

    fn settings(&self, params: &Params) -> Result<(StepSettings, Vec<(usize, f64)>), ToolError> {
        let id = &self.0.id;
        let list = |name: &str| -> Vec<f64> {
            params.value(name).and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default()
        };
        let (shrinks, sigmas) = (list("shrink_factors"), list("smoothing_sigmas"));
        if shrinks.len() != sigmas.len() {
            let message = format!("holds {} values but shrink_factors holds {}: one sigma per level", sigmas.len(), shrinks.len());
            return Err(bad_param(id, "smoothing_sigmas", message));
        }
        let settings = StepSettings {
            learning_rate: params.float("learning_rate")?,
            min_step: params.float("min_step")?,
            iterations: params.int("iterations")? as usize,
            relaxation: params.float("relaxation")?,
            gradient_tolerance: params.float("gradient_tolerance")?,
        };
        if settings.min_step >= settings.learning_rate {
            let message = format!("{} must be smaller than learning_rate ({})", settings.min_step, settings.learning_rate);
            return Err(bad_param(id, "min_step", message));
        }
        Ok((settings, shrinks.iter().zip(&sigmas).map(|(&f, &s)| (f as usize, s)).collect()))
    }

    /// The mapping to optimise: the initialised rigid or affine transform, or a zero B-spline
    /// over the fixed image after `initial`.
    fn start(&self, params: &Params, fixed: &Volume, moving: &Volume, initial: Option<Transform>) -> Result<Mapping, ToolError> {
        let id = self.0.id.as_str();
        let kind = match params.text("transform")? {
            "bspline" => {
                let mesh = params.int("mesh_size")? as usize;
                if let Some(axis) = (0..3).find(|&a| fixed.size[a] < mesh) {
                    let message = format!("{mesh} spans exceed the fixed image's {} voxels along axis {axis}: at most one span per voxel", fixed.size[axis]);
                    return Err(bad_param(id, "mesh_size", message));
                }
                let spline = BSpline::covering(fixed.size, &fixed.to_point, [mesh; 3]);
                return Ok(Mapping::Deformable { initial, spline });
            }
            "affine" => Kind::Affine,
            _ => Kind::Rigid,
        };
        if initial.is_some() {
            let message = "input \"initial_transform\" is only used with transform \"bspline\" (rigid and affine start from the initializer)";
            return Err(ToolError::Failed { tool: id.into(), message: message.into() });
        }
        Ok(Mapping::Linear(initial_transform(kind, fixed, moving, params.text("initializer")? == "moments")))
    }

    fn metric_and_strategy(params: &Params) -> Result<(Metric, Strategy), ToolError> {
        let metric = match params.text("metric")? {
            "mse" => Metric::MeanSquares,
            "ncc" => Metric::Correlation,
            _ => Metric::Mattes { bins: params.int("bins")? as usize },
        };
        let fraction = params.float("sampling_percentage")?;
        let strategy = match params.text("sampling")? {
            "none" => Strategy::All,
            "regular" => Strategy::Regular { fraction },
            _ => Strategy::Random { fraction, seed: params.int("seed")? as u64 },
        };
        Ok((metric, strategy))
    }
}

/// The initial transform: centre at the fixed image's grid centre or centre of mass, translation
/// to the moving image's (sitk.CenteredTransformInitializer).
fn initial_transform(kind: Kind, fixed: &Volume, moving: &Volume, moments: bool) -> Transform {
    let (c_fixed, c_moving) = if moments { (center_of_mass(fixed), center_of_mass(moving)) } else { (fixed.center(), moving.center()) };
    let mut transform = Transform::identity(kind, c_fixed);
    transform.set_translation([0, 1, 2].map(|i| c_moving[i] - c_fixed[i]));
    transform
}

fn center_of_mass(volume: &Volume) -> Point {
    let (mut sum, mut weight) = ([0.0; 3], 0.0);
    for (n, &v) in volume.values.iter().enumerate() {
        if v > 0.0 {
            let p = volume.point(&volume.unravel(n));
            (0..3).for_each(|a| sum[a] += v as f64 * p[a]);
            weight += v as f64;
        }
    }
    if weight > 0.0 { sum.map(|s| s / weight) } else { volume.center() }
}

/// Whether physical point `p` falls in a non-zero voxel of `mask` (nearest voxel).
fn in_mask(mask: &Volume, p: &Point) -> bool {
    let i = mask.index(p);
    let k = [0, 1, 2].map(|a| (i[a] + 0.5).floor());
    (0..3).all(|a| k[a] >= 0.0 && k[a] < mask.size[a] as f64)
        && mask.values[k[0] as usize + mask.size[0] * (k[1] as usize + mask.size[1] * k[2] as usize)] != 0.0
}

/// The file given on `port`, if any.
fn take_file(id: &str, inputs: &mut Inputs, port: &str) -> Result<Option<PathBuf>, ToolError> {
    match inputs.remove(port) {
        Some(Data::File(path)) => Ok(Some(path)),
        Some(other) => Err(ToolError::PortType { tool: id.into(), port: port.into(), expected: "file", got: other.kind_name() }),
        None => Ok(None),
    }
}

/// The optional rigid or affine `initial_transform` of a B-spline registration.
fn take_initial(id: &str, inputs: &mut Inputs) -> Result<Option<Transform>, ToolError> {
    let Some(path) = take_file(id, inputs, "initial_transform")? else { return Ok(None) };
    let failed = |message: String| ToolError::Failed { tool: id.into(), message: format!("input \"initial_transform\": {message}") };
    match Mapping::load(&path).map_err(failed)? {
        Mapping::Linear(transform) => Ok(Some(transform)),
        Mapping::Deformable { .. } => Err(failed(format!("{}: must be a rigid or affine transform, not a B-spline", path.display()))),
    }
}

fn check_image(id: &str, port: &str, image: &Image) -> Result<(), ToolError> {
    check_3d(image).map_err(|e| ToolError::Failed { tool: id.into(), message: format!("input {port:?} {e}") })
}

impl Tool for Register {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = self.0.id.as_str();
        let fixed_image = take_image(&mut inputs, id, "fixed")?;
        let moving_image = take_image(&mut inputs, id, "moving")?;
        check_image(id, "fixed", &fixed_image)?;
        check_image(id, "moving", &moving_image)?;
        let mask = match inputs.remove("fixed_mask") {
            Some(data) => Some(data.into_image(id, "fixed_mask")?),
            None => None,
        };
        if let Some(mask) = &mask {
            check_image(id, "fixed_mask", mask)?;
        }
        let (settings, levels) = self.settings(params)?;
        let (metric, strategy) = Self::metric_and_strategy(params)?;
        let initial = take_initial(id, &mut inputs)?;
        let (fixed, moving) = (Volume::from_image(&fixed_image), Volume::from_image(&moving_image));
        let mut mapping = self.start(params, &fixed, &moving, initial)?;
        let use_lbfgs = match params.text("optimizer")? {
            "auto" => matches!(mapping, Mapping::Deformable { .. }),
            chosen => chosen == "lbfgs",
        };
        let image_gradient = match params.text("image_gradient")? {
            "central" => ImageGradient::Central,
            "linear" => ImageGradient::Linear,
            _ if matches!(mapping, Mapping::Deformable { .. }) => ImageGradient::Central,
            _ => ImageGradient::Linear,
        };
        let lbfgs_settings = LbfgsSettings { iterations: settings.iterations, gradient_tolerance: settings.gradient_tolerance, corrections: params.int("corrections")? as usize };
        let mask_volume = mask.as_ref().map(Volume::from_image);
        let inside = |p: &Point| mask_volume.as_ref().is_none_or(|mask| in_mask(mask, p));
        let failed = |message: String| ToolError::Failed { tool: id.into(), message };
        let total = (levels.len() * settings.iterations) as f64;
        for (level, &(factor, sigma)) in levels.iter().enumerate() {
            let (fixed_level, moving_level) = (fixed.shrink(factor, sigma), moving.shrink(factor, sigma));
            let samples = draw_samples(&fixed_level, strategy, inside);
            let scales = match &mapping {
                Mapping::Linear(transform) => physical_shift_scales(transform, &fixed_level.corners()),
                Mapping::Deformable { spline, .. } => vec![1.0; spline.coefficients.len()],
            };
            if samples.values.len() < 16 {
                return Err(failed(format!("level {}: only {} fixed samples (mask or sampling too sparse)", level + 1, samples.values.len())));
            }
            let evaluate_at = |p: &[f64]| {
                evaluate(metric, image_gradient, &samples, &moving_level, &mapping.with_parameters(p))
                    .map(|e| (e.value, e.gradient))
                    .map_err(|e| failed(format!("level {}: {e}", level + 1)))
            };
            let each = |iteration: usize| {
                context.progress((level * settings.iterations + iteration) as f64 / total);
                context.check_cancelled(id)
            };
            let mut parameters = mapping.parameters().to_vec();
            let result = if use_lbfgs {
                lbfgs(&mut parameters, &scales, &lbfgs_settings, evaluate_at, each)?
            } else {
                descend(&mut parameters, &scales, &settings, evaluate_at, each)?
            };
            mapping.set_parameters(&parameters);
            context.log(&format!(
                "level {} (shrink {factor}, sigma {sigma} voxels, {} samples): {} iterations, metric {:.6}, stopped: {}",
                level + 1,
                samples.values.len(),
                result.iterations,
                result.value,
                result.reason
            ));
        }
        let path = context.output_path(Path::new(params.text("transform_path")?));
        mapping.save(&path).map_err(|e| bad_param(id, "transform_path", e))?;
        let image = warp(&moving_image, &fixed_image, &mapping, Sampling::Linear, params.float("default_value")?);
        context.progress(1.0);
        Ok(Outputs::from([("image".to_string(), Data::Image(image)), ("transform".to_string(), Data::File(path))]))
    }
}

pub struct ApplyTransform(ToolSpec);

impl ApplyTransform {
    fn new() -> ApplyTransform {
        ApplyTransform(
            ToolSpec::new(
                "preprocess.apply_transform",
                Category::Preprocess,
                "Apply transform",
                "Resamples a 3-D image onto the grid of a reference image through a saved transform \
                 (ITK text .tfm with an Euler3DTransform, AffineTransform or BSplineTransform (order 3), or a \
                 CompositeTransform of an Euler3D or affine transform then a B-spline, as sitk.WriteTransform \
                 and preprocess.register save them, or preprocess.register's JSON): each reference voxel takes the \
                 image's value at T(its physical point), as sitk.Resample(image, reference, transform, ...). \
                 Nearest (halves up, voxel type kept: for label maps) or linear (float32). Points outside \
                 the image get default_value.",
            )
            .param(ParamSpec::choice("interpolator", "nearest for labels, linear for intensities.", &["nearest", "linear"]).default("nearest"))
            .param(ParamSpec::float("default_value", "Value of voxels mapped outside the image.").default(0.0))
            .input(PortSpec::new("image", PortType::Image, "The 3-D image (or label map) to move."))
            .input(PortSpec::new("reference", PortType::Image, "The image whose grid the output takes."))
            .input(PortSpec::new("transform", PortType::File, "The transform file (reference point to image point)."))
            .output(PortSpec::new("image", PortType::Image, "The image on the reference grid.")),
        )
    }
}

impl Tool for ApplyTransform {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = self.0.id.as_str();
        let image = take_image(&mut inputs, id, "image")?;
        let reference = take_image(&mut inputs, id, "reference")?;
        check_image(id, "image", &image)?;
        check_image(id, "reference", &reference)?;
        let path = take_file(id, &mut inputs, "transform")?.ok_or_else(|| ToolError::MissingInput { tool: id.into(), port: "transform".into() })?;
        let mapping = Mapping::load(&path).map_err(|message| ToolError::Failed { tool: id.into(), message })?;
        let sampling = if params.text("interpolator")? == "linear" { Sampling::Linear } else { Sampling::Nearest };
        let out = warp(&image, &reference, &mapping, sampling, params.float("default_value")?);
        Ok(Outputs::from([("image".to_string(), Data::Image(out))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Register::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(ApplyTransform::new()) } }
