//! `preprocess.resample`: resampling to a new voxel spacing in physical space, as SimpleITK
//! users write it (`sitk.Resample` onto a grid with the same origin and direction).

use crate::context::Context;
use crate::data::{Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::bad_param;
use crate::tools::interpolate::{AxisPlan, bspline_prefilter, fill_outside, fortran_values, gather, resample_axis};
use crate::tools::mask::failed;
use crate::tools::orient::output;
use crate::tools::warp::{IndexMap, warp_voxels};
use medas_image::{Geometry, Image, Scalar, VoxelArray, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn};
use serde_json::json;
use std::sync::Arc;

/// Largest output accepted, in values (8 GiB as float32), so that a tiny spacing is an error
/// rather than an out-of-memory abort.
const MAX_VALUES: usize = 1 << 31;
pub const INTERPOLATORS: [&str; 3] = ["nearest", "linear", "bspline"];
const MODES: [&str; 3] = ["spacing", "reference", "shape"];
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

/// The output grid: its size and geometry, and how its indices map to the image's. Made by
/// [`Grid::at_spacing`] (same origin and direction, size per axis
/// `max(1, round(size * old_spacing / new_spacing))` with ties to even, Python's `round`),
/// [`Grid::of_shape`] and [`Grid::onto`].
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    size: Vec<usize>,
    geometry: Geometry,
    /// Per index axis (step, start): output index `i` samples input index `start + i * step`
    /// along the same axis. `None` when the grid's axes do not run along the image's.
    steps: Option<Vec<(f64, f64)>>,
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
        let steps = old.spacing().iter().zip(&new_spacing).map(|(from, to)| (to / from, 0.0)).collect();
        let geometry =
            Geometry::new(new_spacing, old.origin().to_vec(), old.direction().to_vec()).map_err(|e| e.to_string())?;
        Ok(Grid { size, geometry, steps: Some(steps) })
    }

    /// `size` voxels per axis over the same physical extent: spacing `spacing * n / size`, and
    /// either the same origin (`keep_edges` false: voxel 0 stays where it was) or the origin
    /// moved so that the outer edges of the first and last voxels stay where they were
    /// (`keep_edges`: skimage's `resize`, input index `(i + 0.5) * n / size - 0.5`).
    pub fn of_shape(image: &Image, size: &[usize], keep_edges: bool) -> Result<Grid, String> {
        if size.len() != image.dimension() || size.contains(&0) {
            return Err(format!("needs {} sizes of at least 1, got {size:?}", image.dimension()));
        }
        let old = image.geometry();
        let steps: Vec<(f64, f64)> = image
            .size()
            .iter()
            .zip(size)
            .map(|(&n, &m)| {
                let step = n as f64 / m as f64;
                (step, if keep_edges { (step - 1.0) / 2.0 } else { 0.0 })
            })
            .collect();
        let spacing = old.spacing().iter().zip(&steps).map(|(s, (step, _))| s * step).collect();
        let start: Vec<f64> = steps.iter().map(|(_, start)| *start).collect();
        let geometry = Geometry::new(spacing, old.index_to_point(&start), old.direction().to_vec()).map_err(|e| e.to_string())?;
        Ok(Grid { size: size.to_vec(), geometry, steps: Some(steps) })
    }

    /// The grid of `size` voxels placed by `geometry` (a reference image's), as
    /// sitk.Resample(image, reference) samples it. The dimensions must agree.
    pub fn onto(image: &Image, size: &[usize], geometry: Geometry) -> Grid {
        let n = image.dimension();
        let (start, columns) = index_affine(image.geometry(), &geometry);
        let aligned = (0..n).all(|a| (0..n).all(|r| r == a || columns[a][r].abs() <= 1e-12 * columns[a][a].abs()));
        let steps = aligned.then(|| (0..n).map(|a| (columns[a][a], start[a])).collect());
        Grid { size: size.to_vec(), geometry, steps }
    }

    /// Whether [`resample`] can use this grid for `image`: always when the grid's axes run along
    /// the image's, otherwise for 2-D and 3-D images only.
    pub fn supports(&self, image: &Image) -> bool {
        self.steps.is_some() || image.dimension() <= 3
    }

    /// Voxels per index axis.
    pub fn size(&self) -> &[usize] {
        &self.size
    }

    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The index axes whose sampling changes, with their (step, start) in input voxels.
    fn changed_axes(&self, image: &Image) -> Vec<(usize, (f64, f64))> {
        let Some(steps) = &self.steps else { return Vec::new() };
        let changed = |&a: &usize| steps[a] != (1.0, 0.0) || self.size[a] != image.size()[a];
        (0..image.dimension()).filter(changed).map(|a| (a, steps[a])).collect()
    }

    /// The general index map of a 2-D or 3-D grid (for grids whose axes are not the image's).
    fn index_map(&self, image: &Image) -> Option<IndexMap> {
        let n = image.dimension();
        if n > 3 {
            return None;
        }
        let (start, columns) = index_affine(image.geometry(), &self.geometry);
        let padded = |column: Option<&Vec<f64>>, a: usize| {
            std::array::from_fn(|r| column.map_or((r == a) as u8 as f64, |c| c.get(r).copied().unwrap_or(0.0)))
        };
        Some(IndexMap {
            start: std::array::from_fn(|r| start.get(r).copied().unwrap_or(0.0)),
            columns: std::array::from_fn(|a| padded(columns.get(a), a)),
        })
    }
}

/// Where the voxel 0 of grid `new` and one step along each of its index axes land in the
/// continuous index of grid `old`: (start, one column per axis of `new`).
fn index_affine(old: &Geometry, new: &Geometry) -> (Vec<f64>, Vec<Vec<f64>>) {
    let n = old.dimension();
    let start = old.point_to_index(new.origin());
    let column = |a: usize| {
        let unit: Vec<f64> = (0..n).map(|r| (r == a) as u8 as f64).collect();
        let to = old.point_to_index(&new.index_to_point(&unit));
        to.iter().zip(&start).map(|(t, s)| t - s).collect()
    };
    let columns = (0..n).map(column).collect();
    (start, columns)
}

/// Resamples `image` onto `grid`: by separable passes when the grid's axes run along the
/// image's, voxel by voxel ([`warp_voxels`]) otherwise. `antialias` smooths every axis that gets
/// coarser with a Gaussian of sigma `(new/old - 1) / 2` input voxels first
/// ([`AxisPlan::smoothed`]; separable case only, and ignored for nearest, which must keep labels
/// intact). `step` is called with the fraction done between passes; its error stops the work.
/// Panics on a grid whose axes are not the image's for an image of more than 3 dimensions
/// ([`Grid::supports`] says whether a grid can be used).
pub fn resample<E>(
    image: &Image,
    grid: &Grid,
    interpolator: Interpolator,
    antialias: bool,
    default: f64,
    step: impl FnMut(f64) -> Result<(), E>,
) -> Result<Image, E> {
    let general = grid.steps.is_none().then(|| grid.index_map(image).expect("a 2-D or 3-D image (Grid::supports)"));
    let voxels = with_voxels!(image.voxels(), a => match (interpolator, &general) {
        (_, Some(map)) => Ok(warp_voxels(a, image.components(), &grid.size, map, interpolator, default)),
        (Interpolator::Nearest, None) => Ok(nearest(a, image, grid, default)),
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
    for (axis, step) in grid.changed_axes(image) {
        maps[axis] = AxisPlan::nearest(shape[axis], grid.size[axis], step).nearest_map();
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
    let plan = |&(axis, step): &(usize, (f64, f64))| {
        let (from, to) = (size[axis], grid.size[axis]);
        let plan = match interpolator {
            Interpolator::BSpline => AxisPlan::cubic_bspline(from, to, step),
            _ => AxisPlan::linear(from, to, step),
        };
        let scale = step.0.abs();
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
                "Resample",
                "Resamples an image in physical space onto a new grid; every output voxel takes the value \
                 at its physical centre, as sitk.Resample onto that grid with the identity transform \
                 computes it: nearest (voxel type kept), linear or cubic B-spline (sitkBSpline: \
                 mirror-boundary coefficients; both float32). Grids: mode spacing keeps origin and \
                 direction, new size per axis round(size * old spacing / new spacing) (at least 1, ties to \
                 even); mode reference takes the size, origin, spacing and direction of the `reference` \
                 input, exactly sitk.Resample(image, reference, identity, interpolator); mode shape takes \
                 `size` voxels per axis over the same physical extent, spacing * old size / new size, \
                 origin and direction kept (voxel 0 stays put; preprocess.resize keeps the outer edges \
                 instead). Points outside the input (beyond half a voxel past the edge centres) get \
                 default_value. With antialias, axes that get coarser are first smoothed by a Gaussian \
                 of sigma (new/old - 1)/2 input voxels, as skimage's resize (scipy gaussian_filter, \
                 mode nearest, sigma at most the axis length; for B-spline it smooths the spline \
                 coefficients, the same away from the edges); off by default, as in SimpleITK; only \
                 for grids whose axes run along the image's. Nearest never smooths. Onto a grid with \
                 other axes (another direction), images must be 2-D or 3-D.",
            )
            .param(ParamSpec::choice("mode", "What defines the new grid.", &MODES).default("spacing"))
            .param(
                ParamSpec::list("spacing", "mode spacing: new spacing per axis (i, j, k), or one value for all axes; each > 0.", POSITIVE)
                    .range(1.0, 3.0)
                    .default(json!([1.0, 1.0, 1.0]))
                    .unit("mm"),
            )
            .param(size_param("mode shape: voxels per axis, or one value for all axes; each >= 1."))
            .param(ParamSpec::choice("interpolator", "How values between voxel centres are computed.", &INTERPOLATORS).default("linear"))
            .param(ParamSpec::bool("antialias", "Gaussian smoothing along axes that get coarser, before sampling.").default(false))
            .param(ParamSpec::float("default_value", "Value of output voxels whose centre lies outside the input.").default(0.0))
            .input(PortSpec::new("image", PortType::Image, "The image to resample."))
            .input(PortSpec::new("reference", PortType::Image, "mode reference: the image whose grid the output takes.").optional())
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

    fn grid(&self, inputs: &mut Inputs, params: &Params, image: &Image) -> Result<Grid, ToolError> {
        let id = &self.0.id;
        match params.text("mode")? {
            "reference" => {
                let reference = take_image(inputs, id, "reference")?;
                if reference.dimension() != image.dimension() {
                    let message = format!("the reference is {}-D, the image {}-D", reference.dimension(), image.dimension());
                    return Err(ToolError::Failed { tool: id.clone(), message });
                }
                Ok(Grid::onto(image, reference.size(), reference.geometry().clone()))
            }
            "shape" => Grid::of_shape(image, &per_axis(id, params, "size", image)?, false).map_err(|e| bad_param(id, "size", e)),
            _ => Grid::at_spacing(image, &self.spacing(params, image)?).map_err(|e| bad_param(id, "spacing", e)),
        }
    }
}

/// The `size` parameter of the shape modes.
pub fn size_param(doc: &str) -> ParamSpec {
    ParamSpec::list("size", doc, ParamKind::Int { min: Some(1), max: None }).range(1.0, 4.0).default(json!([256]))
}

/// The integer list parameter `name` (`size`, `margin`, ...) as one value per spatial axis of
/// `image` (one value given: the same for every axis).
pub fn per_axis(tool: &str, params: &Params, name: &str, image: &Image) -> Result<Vec<usize>, ToolError> {
    let list = params.value(name).and_then(|v| v.as_array()).cloned().unwrap_or_default();
    let values: Vec<usize> = list.iter().filter_map(|v| v.as_u64()).map(|v| v as usize).collect();
    let n = image.dimension();
    match values[..] {
        [one] => Ok(vec![one; n]),
        _ if values.len() == n => Ok(values),
        _ => Err(bad_param(tool, name, format!("holds {} values; this {n}-D image needs 1 or {n}", values.len()))),
    }
}

/// The image on input `image`, refused when it has no voxels.
pub fn non_empty_image(inputs: &mut Inputs, tool: &str) -> Result<Image, ToolError> {
    let image = take_image(inputs, tool, "image")?;
    if image.size().contains(&0) {
        return Err(failed(tool, format!("the image has no voxels (size {:?})", image.size())));
    }
    Ok(image)
}

/// Checks `grid` (size limit, supported axes), then resamples `image` onto it with the
/// interpolator, antialias and default_value (0 when the tool has none) parameters, reporting
/// progress to `context`.
pub fn run_on_grid(tool: &str, image: &Image, grid: &Grid, params: &Params, context: &Context) -> Result<Image, ToolError> {
    let values = grid.size.iter().try_fold(image.components(), |n, &s| n.checked_mul(s)).filter(|&n| n <= MAX_VALUES);
    if values.is_none() {
        let message = format!("would make a {:?} image, more than {MAX_VALUES} values", grid.size);
        return Err(failed(tool, message));
    }
    if !grid.supports(image) {
        let message = format!("a {}-D image resamples only onto grids whose axes run along its own", image.dimension());
        return Err(failed(tool, message));
    }
    let interpolator = match params.text("interpolator")? {
        "nearest" => Interpolator::Nearest,
        "bspline" => Interpolator::BSpline,
        _ => Interpolator::Linear,
    };
    let step = |fraction: f64| {
        context.progress(fraction);
        context.check_cancelled(tool)
    };
    let antialias = params.bool("antialias")?;
    if antialias && interpolator == Interpolator::Nearest {
        context.log("antialias is ignored with nearest interpolation (labels are not smoothed)");
    }
    let default = params.value("default_value").and_then(|v| v.as_f64()).unwrap_or(0.0);
    resample(image, grid, interpolator, antialias, default, step)
}

impl Tool for Resample {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = non_empty_image(&mut inputs, id)?;
        let grid = self.grid(&mut inputs, params, &image)?;
        Ok(output(run_on_grid(id, &image, &grid, params, context)?))
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
        let grid = Grid { size: vec![5, 4, 3], geometry: img.geometry().clone(), steps: Some(vec![(1.0, 0.0); 3]) };
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
