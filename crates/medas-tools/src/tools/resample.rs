//! `preprocess.resample`: resampling to a new voxel spacing in physical space, as SimpleITK
//! users write it (`sitk.Resample` onto a grid with the same origin and direction).

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::bad_param;
use crate::tools::interpolate::{AxisPlan, bspline_prefilter, fill_outside, fortran_values, gather, resample_axis};
use medas_image::{Geometry, Image, Scalar, VoxelArray, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn};
use serde_json::json;
use std::sync::Arc;

/// Largest output accepted, in values (8 GiB as float32), so that a tiny spacing is an error
/// rather than an out-of-memory abort.
const MAX_VALUES: usize = 1 << 31;
const INTERPOLATORS: [&str; 3] = ["nearest", "linear", "bspline"];
/// Spacing items: the spec checks `>= 0`, `run` refuses 0 with its own message.
const POSITIVE: ParamKind = ParamKind::Float { min: Some(0.0), max: None };

/// How values between voxel centres are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolator {
    /// Nearest voxel; keeps the voxel type (labels stay labels).
    Nearest,
    /// Trilinear, edge voxels repeated.
    Linear,
    /// Cubic B-spline (SimpleITK's `sitkBSpline`), mirror boundary.
    BSpline,
}

/// The output grid: same origin and direction, new spacing, size per axis
/// `max(1, round(size * old_spacing / new_spacing))` with ties to even (Python's `round`).
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    size: Vec<usize>,
    geometry: Geometry,
}

impl Grid {
    /// The grid of `image` at `spacing` (mm), one value per spatial axis (the first three; a
    /// time axis keeps its spacing). Fails on a non-positive spacing or an empty image.
    pub fn at_spacing(image: &Image, spacing: &[f64]) -> Result<Grid, String> {
        let old = image.geometry();
        if spacing.len() != image.dimension().min(3) {
            return Err(format!("needs {} spacing values, got {}", image.dimension().min(3), spacing.len()));
        }
        if let Some(bad) = spacing.iter().find(|s| !(**s > 0.0 && s.is_finite())) {
            return Err(format!("every spacing must be a positive number of mm, got {bad}"));
        }
        if image.size().contains(&0) {
            return Err(format!("the image has no voxels (size {:?})", image.size()));
        }
        let mut new_spacing = old.spacing().to_vec();
        new_spacing[..spacing.len()].copy_from_slice(spacing);
        let size = image
            .size()
            .iter()
            .zip(old.spacing().iter().zip(&new_spacing))
            .map(|(&n, (&from, &to))| if from == to { n } else { ((n as f64 * from / to).round_ties_even() as usize).max(1) })
            .collect();
        let geometry =
            Geometry::new(new_spacing, old.origin().to_vec(), old.direction().to_vec()).map_err(|e| e.to_string())?;
        Ok(Grid { size, geometry })
    }

    /// Voxels per index axis.
    pub fn size(&self) -> &[usize] {
        &self.size
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The index axes whose size or spacing changes, with new ÷ old spacing (the step, in input
    /// voxels, between output voxels).
    fn changed_axes(&self, image: &Image) -> Vec<(usize, f64)> {
        let (from, to) = (image.geometry().spacing(), self.geometry.spacing());
        let changed = |&a: &usize| from[a] != to[a] || self.size[a] != image.size()[a];
        (0..image.dimension()).filter(changed).map(|a| (a, to[a] / from[a])).collect()
    }
}

/// Resamples `image` onto `grid` (which must share its origin and direction, as
/// [`Grid::at_spacing`] makes). `antialias` smooths every axis that gets coarser with a
/// Gaussian of sigma `(new/old - 1) / 2` input voxels first ([`AxisPlan::smoothed`]; ignored
/// for nearest, which must keep labels intact). `step` is called with the fraction done
/// between passes; its error stops the work.
pub fn resample<E>(
    image: &Image,
    grid: &Grid,
    interpolator: Interpolator,
    antialias: bool,
    default: f64,
    step: impl FnMut(f64) -> Result<(), E>,
) -> Result<Image, E> {
    let voxels = with_voxels!(image.voxels(), a => match interpolator {
        Interpolator::Nearest => Ok(nearest(a, image, grid, default)),
        _ => smooth(a, image, grid, interpolator, antialias, default, step),
    })?;
    let mut out = Image::with_components(voxels, image.components(), grid.geometry.clone())
        .expect("the output shape follows the grid and the image's components");
    out.metadata = image.metadata.clone();
    Ok(out)
}

fn nearest<T: VoxelArray>(array: &ArcArray<T, IxDyn>, image: &Image, grid: &Grid, default: f64) -> Voxels {
    let shape = array.shape().to_vec();
    let mut maps: Vec<Vec<Option<usize>>> = shape.iter().map(|&n| (0..n).map(Some).collect()).collect();
    for (axis, scale) in grid.changed_axes(image) {
        maps[axis] = AxisPlan::nearest(shape[axis], grid.size[axis], scale).nearest_map();
    }
    let out_shape: Vec<usize> = maps.iter().map(Vec::len).collect();
    let values = gather(&fortran_values(array), &shape, &maps, T::from_f64(default));
    Voxels::from_fortran_vec(&out_shape, values).expect("gather fills the output shape")
}

/// The passes of a linear or B-spline resampling, in order: one per changed axis, those that
/// shrink most first so that intermediates stay small; with `antialias`, the plans of axes that
/// get coarser include the Gaussian.
fn plan_passes(image: &Image, grid: &Grid, interpolator: Interpolator, antialias: bool) -> Vec<(usize, AxisPlan)> {
    let size = image.size();
    let mut axes = grid.changed_axes(image);
    let growth = |axis: usize| grid.size[axis] as f64 / size[axis] as f64;
    axes.sort_by(|a, b| growth(a.0).total_cmp(&growth(b.0)));
    let plan = |&(axis, scale): &(usize, f64)| {
        let (from, to) = (size[axis], grid.size[axis]);
        let plan = match interpolator {
            Interpolator::BSpline => AxisPlan::cubic_bspline(from, to, scale),
            _ => AxisPlan::linear(from, to, scale),
        };
        (axis, if antialias && scale > 1.0 { plan.smoothed((scale - 1.0) / 2.0) } else { plan })
    };
    axes.iter().map(plan).collect()
}

/// Linear or B-spline: B-spline coefficients along the changed axes, the passes of
/// [`plan_passes`], then the default value outside the input.
fn smooth<T: Scalar, E>(
    array: &ArcArray<T, IxDyn>,
    image: &Image,
    grid: &Grid,
    interpolator: Interpolator,
    antialias: bool,
    default: f64,
    mut step: impl FnMut(f64) -> Result<(), E>,
) -> Result<Voxels, E> {
    let input = fortran_values(array);
    let mut shape = array.shape().to_vec();
    let passes = plan_passes(image, grid, interpolator, antialias);
    let as_floats = || input.iter().map(|v| v.to_f64() as f32).collect::<Vec<f32>>();
    let mut current: Option<Vec<f32>> = None;
    if interpolator == Interpolator::BSpline && !passes.is_empty() {
        let mut coefficients = as_floats();
        passes.iter().for_each(|(axis, _)| bspline_prefilter(&mut coefficients, &shape, *axis));
        current = Some(coefficients);
        step(0.5 / (passes.len() as f64 + 1.0))?;
    }
    let total = passes.len() as f64 + 1.0;
    for (done, (axis, plan)) in passes.iter().enumerate() {
        let next = match &current {
            Some(values) => resample_axis(values, &shape, *axis, plan),
            None => resample_axis(&input, &shape, *axis, plan),
        };
        shape[*axis] = plan.len_out;
        current = Some(next);
        step((done + 1) as f64 / total)?;
    }
    let mut values = current.unwrap_or_else(as_floats);
    for (axis, plan) in &passes {
        fill_outside(&mut values, &shape, *axis, &plan.inside, default as f32);
    }
    Ok(Voxels::from_fortran_vec(&shape, values).expect("the passes fill the output shape"))
}

pub struct Resample(ToolSpec);

impl Resample {
    fn new() -> Resample {
        Resample(
            ToolSpec::new(
                "preprocess.resample",
                Category::Preprocess,
                "Resample to spacing",
                "Resamples an image to a new voxel spacing in physical space, keeping origin and \
                 direction: the new size per axis is round(size * old spacing / new spacing) (at least 1), \
                 and every output voxel takes the value at its physical centre, as sitk.Resample onto \
                 that grid (identity transform) computes it: nearest (voxel type kept), linear or cubic \
                 B-spline (sitkBSpline: mirror-boundary coefficients; both float32). Points outside \
                 the input (beyond half a voxel past the edge centres) get default_value. With \
                 antialias, axes that get coarser are first smoothed by a Gaussian of sigma \
                 (new/old - 1)/2 input voxels, as skimage's resize (scipy gaussian_filter, mode nearest, \
                 sigma at most the axis length; for B-spline it smooths the spline coefficients, the \
                 same away from the edges); off by default, as in SimpleITK. Nearest never smooths.",
            )
            .param(
                ParamSpec::list("spacing", "New spacing per axis (i, j, k), or one value for all axes; each > 0.", POSITIVE)
                    .range(1.0, 3.0)
                    .default(json!([1.0, 1.0, 1.0]))
                    .unit("mm"),
            )
            .param(ParamSpec::choice("interpolator", "How values between voxel centres are computed.", &INTERPOLATORS).default("linear"))
            .param(ParamSpec::bool("antialias", "Gaussian smoothing along axes that get coarser, before sampling.").default(false))
            .param(ParamSpec::float("default_value", "Value of output voxels whose centre lies outside the input.").default(0.0))
            .input(PortSpec::new("image", PortType::Image, "The image to resample."))
            .output(PortSpec::new("image", PortType::Image, "The image on the new grid.")),
        )
    }

    /// The spacing list of the parameters, one value per spatial axis of `image`.
    fn spacing(&self, params: &Params, image: &Image) -> Result<Vec<f64>, ToolError> {
        let id = &self.0.id;
        let list = params.value("spacing").and_then(|v| v.as_array());
        let values: Vec<f64> = list.map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
        let axes = image.dimension().min(3);
        match values.as_slice() {
            [one] => Ok(vec![*one; axes]),
            list if list.len() == axes => Ok(list.to_vec()),
            list => {
                let message = format!("holds {} values; this {}-D image needs 1 or {axes}", list.len(), image.dimension());
                Err(bad_param(id, "spacing", message))
            }
        }
    }
}

impl Tool for Resample {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        if image.size().contains(&0) {
            let message = format!("the image has no voxels (size {:?})", image.size());
            return Err(ToolError::Failed { tool: id.clone(), message });
        }
        let grid = Grid::at_spacing(&image, &self.spacing(params, &image)?).map_err(|e| bad_param(id, "spacing", e))?;
        let values = grid.size.iter().try_fold(image.components(), |n, &s| n.checked_mul(s)).filter(|&n| n <= MAX_VALUES);
        if values.is_none() {
            let message = format!("would make a {:?} image, more than {MAX_VALUES} values", grid.size);
            return Err(bad_param(id, "spacing", message));
        }
        let interpolator = match params.text("interpolator")? {
            "nearest" => Interpolator::Nearest,
            "bspline" => Interpolator::BSpline,
            _ => Interpolator::Linear,
        };
        let step = |fraction: f64| {
            context.progress(fraction);
            context.check_cancelled(id)
        };
        let antialias = params.bool("antialias")?;
        if antialias && interpolator == Interpolator::Nearest {
            context.log("antialias is ignored with nearest interpolation (labels are not smoothed)");
        }
        let out = resample(&image, &grid, interpolator, antialias, params.float("default_value")?, step)?;
        Ok(Outputs::from([("image".to_string(), Data::Image(out))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Resample::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    fn image(shape: &[usize], spacing: Vec<f64>, values: Vec<i16>) -> Image {
        let n = shape.len();
        let geometry = Geometry::new(spacing, vec![10.0; n], Geometry::identity(n).direction().to_vec()).unwrap();
        Image::new(Voxels::from_fortran_vec(shape, values).unwrap(), geometry).unwrap()
    }

    fn run(image: &Image, spacing: &[f64], interpolator: Interpolator) -> Image {
        let grid = Grid::at_spacing(image, spacing).unwrap();
        resample(image, &grid, interpolator, false, -1.0, |_| Ok::<(), ()>(())).unwrap()
    }

    #[test]
    fn grid_sizes_round_and_keep_origin_and_direction() {
        let img = image(&[5, 4, 3], vec![1.0, 2.0, 3.0], vec![0; 60]);
        let grid = Grid::at_spacing(&img, &[2.0, 0.5, 10.0]).unwrap();
        // 5 * 1/2 = 2.5 -> 2 (ties to even), 4 * 2/0.5 = 16, 3 * 3/10 = 0.9 -> 1.
        assert_eq!(grid.size, vec![2, 16, 1]);
        assert_eq!(grid.geometry.origin(), img.geometry().origin());
        assert!(Grid::at_spacing(&img, &[1.0, 0.0, 1.0]).is_err());
        assert!(Grid::at_spacing(&img, &[1.0, 1.0]).is_err());
    }

    #[test]
    fn linear_upsampling_of_one_axis_by_hand() {
        let img = image(&[3, 2], vec![2.0, 1.0], vec![0, 10, 20, 100, 110, 120]);
        let out = run(&img, &[1.0, 1.0], Interpolator::Linear);
        assert_eq!(out.size(), &[6, 2]);
        let values: Vec<f32> = out.voxels().as_array::<f32>().unwrap().view().reversed_axes().iter().copied().collect();
        // x = 0, .5, 1, 1.5, 2, 2.5; the last is outside [-0.5, 2.5) and gets the default.
        assert_eq!(values, vec![0.0, 5.0, 10.0, 15.0, 20.0, -1.0, 100.0, 105.0, 110.0, 115.0, 120.0, -1.0]);
        assert_eq!(out.geometry().spacing(), &[1.0, 1.0]);
    }

    #[test]
    fn nearest_keeps_the_type_and_rounds_halves_up() {
        let img = image(&[4], vec![1.0], vec![1, 2, 3, 4]);
        let out = run(&img, &[1.5], Interpolator::Nearest);
        // x = 0, 1.5, 3 -> 0, 2, 3.
        assert_eq!(out.voxels().as_array::<i16>().unwrap().iter().copied().collect::<Vec<_>>(), vec![1, 3, 4]);
    }

    #[test]
    fn bspline_at_the_same_spacing_returns_the_samples() {
        let values: Vec<i16> = (0..60).map(|v| (v * 37 % 23) as i16).collect();
        let img = image(&[5, 4, 3], vec![1.0, 1.0, 1.0], values.clone());
        let grid = Grid { size: vec![5, 4, 3], geometry: img.geometry().clone() };
        // Force every axis through the prefilter and the spline by asking for one more voxel per axis.
        let bigger = Grid { size: vec![6, 5, 4], ..grid };
        let out = resample(&img, &bigger, Interpolator::BSpline, false, 0.0, |_| Ok::<(), ()>(())).unwrap();
        let array = out.voxels().as_array::<f32>().unwrap();
        for (index, v) in img.voxels().as_array::<i16>().unwrap().indexed_iter() {
            assert!((array[index.clone()] - *v as f32).abs() < 1e-3, "{index:?}");
        }
    }

    #[test]
    fn antialias_with_a_huge_spacing_stays_bounded() {
        let img = image(&[50, 4, 3], vec![1.0; 3], (0..600).map(|v| (v % 50) as i16).collect());
        let grid = Grid::at_spacing(&img, &[1e12, 1.0, 1.0]).unwrap();
        for interpolator in [Interpolator::Linear, Interpolator::BSpline] {
            let out = resample(&img, &grid, interpolator, true, 0.0, |_| Ok::<(), ()>(())).unwrap();
            assert_eq!(out.size(), &[1, 4, 3]);
            // One sample at x = 0 of lines 0..49, smoothed over the whole line: between its ends.
            let value = out.voxels().as_array::<f32>().unwrap()[[0, 0, 0]];
            assert!(value > 0.0 && value < 49.0, "{value}");
        }
    }

    #[test]
    fn components_ride_along_and_memory_order_does_not_matter() {
        // A 4x3 RGB image stored component-fastest, and the same values in C order.
        let values: Vec<u8> = (0..36).map(|v| (v * 7 % 256) as u8).collect();
        let rgb = Voxels::from_interleaved_vec(&[4, 3], 3, values).unwrap();
        let array = rgb.as_array::<u8>().unwrap();
        let c_order = Voxels::U8(array.as_standard_layout().into_owned().into_shared());
        let outputs: Vec<Vec<f64>> = [rgb, c_order]
            .into_iter()
            .map(|voxels| {
                let img = Image::with_components(voxels, 3, Geometry::identity(2)).unwrap();
                let out = run(&img, &[0.5, 2.0], Interpolator::Linear);
                assert_eq!((out.size(), out.components()), (&[8usize, 2][..], 3));
                out.voxels().as_array::<f32>().unwrap().iter().map(|&v| v as f64).collect()
            })
            .collect();
        assert_eq!(outputs[0], outputs[1]);
    }
}
