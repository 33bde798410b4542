//! `preprocess.n4_bias_correction`: N4 bias field correction (Tustison et al., IEEE TMI 2010)
//! as ITK's N4BiasFieldCorrectionImageFilter runs it and SimpleITK users call it: the image and
//! mask shrunk by a factor, the log bias field fitted there by iterated histogram sharpening
//! (`n4_sharpen.rs`) and cubic B-spline approximation of the residual (`bspline_fit.rs`) over
//! several levels of control-point refinement, then the spline evaluated on the full grid.

use super::bspline_fit::{self, AxisBasis, Lattice, ORDER};
use super::mask::{MaskVisitor, fortran_slice, visit_mask};
use super::n4_sharpen::Sharpening;
use super::threshold::Histogram;
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::{bad_param, metadata_for_new_values};
use medas_image::{Image, Scalar, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn, Zip};
use rayon::prelude::*;
use serde_json::json;
use std::sync::Arc;

const ID: &str = "preprocess.n4_bias_correction";

/// Otsu bins of the default mask, as SimpleITK's N4 example: `OtsuThreshold(image, 0, 1, 200)`.
const OTSU_BINS: usize = 200;

/// Everything the parameters set.
#[derive(Debug, Clone, PartialEq)]
pub struct N4Settings {
    pub shrink_factor: usize,
    /// Maximum iterations per fitting level; its length is the number of levels.
    pub iterations: Vec<usize>,
    /// Control points per axis at the first level (at least `ORDER + 1`).
    pub control_points: [usize; 3],
    pub convergence_threshold: f64,
    pub sharpening: Sharpening,
}

/// The grid the field is fitted on: every `factor`-th voxel of the full grid along each axis
/// of more than one voxel, starting at `offset` (the voxel nearest the centre of each block
/// of `factor`, as ITK's ShrinkImageFilter picks it).
#[derive(Debug, Clone, Copy)]
struct Shrunk {
    full: [usize; 3],
    dims: [usize; 3],
    factor: [usize; 3],
    offset: [usize; 3],
}

impl Shrunk {
    fn new(full: [usize; 3], shrink: usize) -> Shrunk {
        let factor = full.map(|n| if n > 1 { shrink } else { 1 });
        let dims = [0, 1, 2].map(|a| full[a] / factor[a]);
        Shrunk { full, dims, factor, offset: factor.map(|f| f / 2) }
    }

    fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// The full-grid index (axis 0 fastest) of each shrunk voxel, in shrunk order.
    fn full_indices(&self) -> Vec<usize> {
        let [n0, n1, _] = self.full;
        let coordinate = |a: usize, s: usize| s * self.factor[a] + self.offset[a];
        (0..self.len())
            .map(|v| {
                let (i, j, k) = (v % self.dims[0], (v / self.dims[0]) % self.dims[1], v / (self.dims[0] * self.dims[1]));
                coordinate(0, i) + n0 * (coordinate(1, j) + n1 * coordinate(2, k))
            })
            .collect()
    }

    /// The bases of the shrunk grid (spread over the whole parametric domain, as ITK fits).
    fn bases(&self, control_points: [usize; 3]) -> [AxisBasis; 3] {
        [0, 1, 2].map(|a| if self.dims[a] > 1 { AxisBasis::spread(self.dims[a], control_points[a]) } else { AxisBasis::single() })
    }

    /// The bases of the full grid: full voxel `i` lies at shrunk index `(i - offset) / factor`,
    /// so the field is evaluated where the shrunk fit put it (extrapolated by the edge spans'
    /// cubics for the few voxels beyond the first and last shrunk voxel).
    fn full_bases(&self, control_points: [usize; 3]) -> [AxisBasis; 3] {
        [0, 1, 2].map(|a| {
            if self.dims[a] <= 1 {
                return AxisBasis::single();
            }
            let spans = (control_points[a] - ORDER) as f64;
            let per_voxel = spans / ((self.dims[a] - 1) * self.factor[a]) as f64;
            let offset = self.offset[a] as f64;
            AxisBasis::new(self.full[a], control_points[a], |i| (i as f64 - offset) * per_voxel)
        })
    }
}

/// The N4 log-field fit on the shrunk grid: `log_input` and `included` per shrunk voxel.
struct Fit<'a> {
    settings: &'a N4Settings,
    shrunk: Shrunk,
    log_input: Vec<f64>,
    included: Vec<bool>,
}

impl Fit<'_> {
    /// Runs every level and returns the final control-point lattice of the log field.
    fn run(&self, context: &Context) -> Result<Lattice, ToolError> {
        let settings = self.settings;
        let mut points = [0, 1, 2].map(|a| if self.shrunk.dims[a] > 1 { settings.control_points[a] } else { 1 });
        let mut lattice = Lattice::zeros(points);
        let mut field = vec![0.0; self.shrunk.len()];
        let total: usize = settings.iterations.iter().sum::<usize>().max(1);
        let mut done = 0;
        let levels = settings.iterations.len();
        for (level, &maximum) in settings.iterations.iter().enumerate() {
            let bases = self.shrunk.bases(points);
            let omega = bspline_fit::fit_weights(&self.included, &bases);
            let (mut iterations, mut convergence) = (0, f64::INFINITY);
            while iterations < maximum && convergence > settings.convergence_threshold {
                context.check_cancelled(ID)?;
                let residual = self.residual(&field);
                lattice.add(&bspline_fit::fit(&residual, &self.included, &bases, &omega));
                let mut updated = vec![0.0; field.len()];
                bspline_fit::evaluate_into(&lattice, &bases, &mut updated, |x| x);
                convergence = self.convergence(&field, &updated);
                field = updated;
                iterations += 1;
                context.progress(0.9 * (done + iterations) as f64 / total as f64);
            }
            done += maximum;
            context.log(&format!(
                "N4 level {}/{levels}: {points:?} control points, {iterations} of {maximum} iterations, \
                 convergence {convergence:.6} (threshold {})",
                level + 1,
                settings.convergence_threshold
            ));
            if level + 1 < levels {
                lattice = lattice.refine([true; 3]);
                points = lattice.dims;
            }
        }
        Ok(lattice)
    }

    /// What sharpening the current corrected log image leaves: `uncorrected - sharpened`,
    /// where `uncorrected = log_input - field` (0 outside the fit).
    fn residual(&self, field: &[f64]) -> Vec<f64> {
        let uncorrected: Vec<f64> = self.log_input.par_iter().zip(field).map(|(v, f)| v - f).collect();
        let sharpened = self.settings.sharpening.sharpen(&uncorrected, &self.included);
        uncorrected
            .par_iter()
            .zip(&sharpened)
            .zip(&self.included)
            .map(|((u, s), &inside)| if inside { u - s } else { 0.0 })
            .collect()
    }

    /// ITK's convergence measure: the coefficient of variation (sample standard deviation over
    /// mean) of `exp(old - new)` over the fitted voxels.
    fn convergence(&self, old: &[f64], new: &[f64]) -> f64 {
        let ratios = || old.par_iter().zip(new).zip(&self.included).filter(|(_, inside)| **inside).map(|((a, b), _)| (a - b).exp());
        let n = ratios().count() as f64;
        let mean = ratios().sum::<f64>() / n;
        let variance = ratios().map(|r| (r - mean) * (r - mean)).sum::<f64>() / (n - 1.0).max(1.0);
        variance.sqrt() / mean
    }
}

/// The voxel values at the given full-grid indices, as f64.
fn sample(voxels: &Voxels, indices: &[usize], full: [usize; 3]) -> Vec<f64> {
    fn gather<T: Scalar>(array: &ArcArray<T, IxDyn>, indices: &[usize], full: [usize; 3]) -> Vec<f64> {
        match fortran_slice(array) {
            Some(values) => indices.par_iter().map(|&v| values[v].to_f64()).collect(),
            None => {
                let at = |v: usize| [v % full[0], (v / full[0]) % full[1], v / (full[0] * full[1])];
                let rank = array.ndim();
                indices.par_iter().map(|&v| array[IxDyn(&at(v)[..rank])].to_f64()).collect()
            }
        }
    }
    with_voxels!(voxels, a => gather(a, indices, full))
}

/// Whether the mask is non-zero at the given full-grid indices.
struct MaskAt<'a>(&'a [usize]);

impl MaskVisitor for MaskAt<'_> {
    type Output = Vec<bool>;
    fn visit<T: Copy + Default + PartialEq + Send + Sync>(self, values: &[T]) -> Vec<bool> {
        let zero = T::default();
        self.0.par_iter().map(|&v| values[v] != zero).collect()
    }
}

/// Which shrunk voxels the fit uses: inside the mask (or above Otsu's threshold when no mask is
/// given and `otsu` is set, or everywhere), with a finite positive value to take the log of.
fn included_voxels(image: &Image, mask: Option<&Image>, otsu: bool, values: &[f64], indices: &[usize]) -> Result<Vec<bool>, ToolError> {
    let selected = match mask {
        Some(mask) => visit_mask(mask, ID, MaskAt(indices))?,
        None if otsu => {
            let threshold = Histogram::of(image.voxels(), OTSU_BINS).map_or(f64::NEG_INFINITY, |h| h.otsu().1);
            values.iter().map(|&v| v > threshold).collect()
        }
        None => vec![true; values.len()],
    };
    Ok(selected.iter().zip(values).map(|(&s, &v)| s && v > 0.0 && v.is_finite()).collect())
}

/// The image's size as three axes (1 for a 2-D image's third), or why N4 cannot take it.
fn grid(image: &Image) -> Result<[usize; 3], ToolError> {
    let fail = |message: String| ToolError::Failed { tool: ID.into(), message };
    if image.components() != 1 {
        return Err(fail(format!("needs a greyscale image, got {} components per voxel", image.components())));
    }
    match *image.size() {
        [n0, n1] => Ok([n0, n1, 1]),
        [n0, n1, n2] => Ok([n0, n1, n2]),
        ref size => Err(fail(format!("needs a 2-D or 3-D image, got {}-D", size.len()))),
    }
}

/// Checks that the mask lies on the image's grid.
fn check_mask(image: &Image, mask: &Image) -> Result<(), ToolError> {
    if mask.size() != image.size() || !mask.geometry().approx_eq(image.geometry(), 1e-6) {
        let message = format!(
            "the mask's grid (size {:?}, spacing {:?}, origin {:?}) differs from the image's (size {:?}, spacing {:?}, origin {:?}); resample it onto the image first",
            mask.size(),
            mask.geometry().spacing(),
            mask.geometry().origin(),
            image.size(),
            image.geometry().spacing(),
            image.geometry().origin()
        );
        return Err(ToolError::Failed { tool: ID.into(), message });
    }
    Ok(())
}

/// The bias field `exp(spline)` on the full grid and the corrected image `input / field`.
fn full_resolution(image: &Image, lattice: &Lattice, shrunk: &Shrunk) -> Result<(Voxels, Voxels), ToolError> {
    let bases = shrunk.full_bases(lattice.dims);
    let mut field = vec![0f32; shrunk.full.iter().product()];
    bspline_fit::evaluate_into(lattice, &bases, &mut field, |x| x.exp() as f32);
    let failed = |e: medas_image::ImageError| ToolError::Failed { tool: ID.into(), message: e.to_string() };
    let field = Voxels::from_fortran_vec(image.size(), field).map_err(failed)?;
    let field_array = field.as_array::<f32>().expect("built as f32");
    fn divide<T: Scalar>(input: &ArcArray<T, IxDyn>, field: &ArcArray<f32, IxDyn>) -> Voxels {
        Voxels::F32(Zip::from(input).and(field).par_map_collect(|v, f| (v.to_f64() / *f as f64) as f32).into_shared())
    }
    let corrected = with_voxels!(image.voxels(), a => divide(a, field_array));
    Ok((corrected, field))
}

/// Runs N4 on `image` (optionally within `mask`) and returns the corrected image and the
/// multiplicative bias field, both float32 on the image's grid.
pub fn n4(image: &Image, mask: Option<&Image>, otsu: bool, settings: &N4Settings, context: &Context) -> Result<(Image, Image), ToolError> {
    let full = grid(image)?;
    if let Some(mask) = mask {
        check_mask(image, mask)?;
    }
    let shrunk = Shrunk::new(full, settings.shrink_factor);
    if let Some(axis) = (0..3).find(|&a| full[a] > 1 && shrunk.dims[a] < 2) {
        let message = format!("{} leaves fewer than 2 voxels along axis {axis} (size {})", settings.shrink_factor, full[axis]);
        return Err(bad_param(ID, "shrink_factor", message));
    }
    let indices = shrunk.full_indices();
    let values = sample(image.voxels(), &indices, full);
    let included = included_voxels(image, mask, otsu, &values, &indices)?;
    if !included.iter().any(|&inside| inside) {
        return Err(ToolError::Failed { tool: ID.into(), message: "no voxel of the (shrunk) mask has a positive value to fit".into() });
    }
    let log_input = values.iter().zip(&included).map(|(&v, &inside)| if inside { v.ln() } else { 0.0 }).collect();
    context.progress(0.02);
    let fit = Fit { settings, shrunk, log_input, included };
    let lattice = fit.run(context)?;
    context.check_cancelled(ID)?;
    let (corrected, field) = full_resolution(image, &lattice, &shrunk)?;
    let failed = |e: medas_image::ImageError| ToolError::Failed { tool: ID.into(), message: e.to_string() };
    let mut corrected = image.with_voxels(corrected).map_err(failed)?;
    corrected.metadata.remove(medas_image::keys::WINDOWS);
    let mut field = image.with_voxels(field).map_err(failed)?;
    field.metadata = metadata_for_new_values(&image.metadata);
    context.progress(1.0);
    Ok((corrected, field))
}

pub struct N4BiasCorrection(ToolSpec);

impl N4BiasCorrection {
    fn new() -> N4BiasCorrection {
        let positive_int = ParamKind::Int { min: Some(1), max: None };
        N4BiasCorrection(
            ToolSpec::new(
                ID,
                Category::Preprocess,
                "N4 bias field correction",
                "N4 (Tustison et al. 2010) as ITK's N4BiasFieldCorrectionImageFilter, called the way \
                 SimpleITK users call it: the image and mask are shrunk by shrink_factor (every factor-th \
                 voxel, as sitk.Shrink), the log bias field is fitted there, and the cubic B-spline field is \
                 evaluated at full resolution (as GetLogBiasFieldAsImage). Each iteration sharpens the \
                 histogram of the corrected log intensities inside the mask (histogram_bins bins, Wiener \
                 deconvolution of a Gaussian of FWHM bias_field_fwhm with wiener_noise), and fits the \
                 residual with one level of B-spline scattered-data approximation (spline order 3, as \
                 BSplineScatteredDataPointSetToImageFilter); a level stops after its iterations or when the \
                 coefficient of variation of the field update falls below convergence_threshold, and the \
                 control-point lattice is refined (knot spacing halved) between levels. Without a mask, \
                 the voxels above Otsu's threshold (200 bins, as SimpleITK's N4 example: \
                 OtsuThreshold(image, 0, 1, 200)) are used, or all voxels when default_mask is all; \
                 voxels <= 0 are never fitted (no logarithm). Outputs: the corrected image input / field \
                 and the multiplicative bias field, float32, geometry kept. The field is defined up to a \
                 constant factor, as in ITK.",
            )
            .param(ParamSpec::int("shrink_factor", "Shrink factor applied to every axis before fitting.").default(4))
            .param(
                ParamSpec::list("iterations", "Maximum iterations per fitting level; the number of entries is the number of levels.", positive_int)
                    .range(1.0, 10.0)
                    .default(json!([50, 50, 50, 50])),
            )
            .param(
                ParamSpec::list("control_points", "Control points per axis at the first level (one value for all axes, or one per axis); at least spline order + 1 = 4.", ParamKind::Int { min: None, max: None })
                    .range(1.0, 3.0)
                    .default(json!([4])),
            )
            .param(ParamSpec::float("convergence_threshold", "A level stops once the coefficient of variation of exp(field change) is at or below this.").range(0.0, 1.0).default(0.001))
            .param(ParamSpec::float("bias_field_fwhm", "FWHM of the Gaussian the bias field blurs the log-intensity histogram with.").range(1e-6, 10.0).default(0.15))
            .param(ParamSpec::float("wiener_noise", "Noise term of the Wiener deconvolution.").range(1e-12, 10.0).default(0.01))
            .param(ParamSpec::int("histogram_bins", "Bins of the log-intensity histogram.").range(2.0, 65536.0).default(200))
            .param(ParamSpec::choice("default_mask", "Voxels fitted when no mask is connected.", &["otsu", "all"]).default("otsu"))
            .input(PortSpec::new("image", PortType::Image, "A 2-D or 3-D greyscale image (MR), any voxel type."))
            .input(PortSpec::new("mask", PortType::LabelImage, "Optional integer mask on the image's grid; the field is fitted on its non-zero voxels.").optional())
            .output(PortSpec::new("image", PortType::Image, "The corrected image, input / bias_field, float32."))
            .output(PortSpec::new("bias_field", PortType::Image, "The multiplicative bias field, float32.")),
        )
    }

    /// The settings the parameters give, for an image of `rank` axes.
    fn settings(params: &Params, rank: usize) -> Result<N4Settings, ToolError> {
        let shrink_factor = params.int("shrink_factor")?;
        if shrink_factor < 1 {
            return Err(bad_param(ID, "shrink_factor", format!("must be at least 1, got {shrink_factor}")));
        }
        let list = |name: &str| -> Vec<i64> {
            params.value(name).and_then(|v| v.as_array()).map_or(Vec::new(), |a| a.iter().filter_map(|v| v.as_i64()).collect())
        };
        let iterations = list("iterations").into_iter().map(|n| n as usize).collect();
        let points = list("control_points");
        let control_points = match points[..] {
            [n] => [n; 3],
            [a, b] if rank == 2 => [a, b, ORDER as i64 + 1],
            [a, b, c] if rank == 3 => [a, b, c],
            _ => return Err(bad_param(ID, "control_points", format!("needs 1 or {rank} values for a {rank}-D image, got {}", points.len()))),
        };
        if let Some(&few) = control_points.iter().find(|&&n| n < ORDER as i64 + 1) {
            let message = format!("must be at least spline order + 1 = {} per axis, got {few}", ORDER + 1);
            return Err(bad_param(ID, "control_points", message));
        }
        let sharpening = Sharpening {
            bins: params.int("histogram_bins")? as usize,
            fwhm: params.float("bias_field_fwhm")?,
            wiener_noise: params.float("wiener_noise")?,
        };
        Ok(N4Settings {
            shrink_factor: shrink_factor as usize,
            iterations,
            control_points: control_points.map(|n| n as usize),
            convergence_threshold: params.float("convergence_threshold")?,
            sharpening,
        })
    }
}

impl Tool for N4BiasCorrection {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let image = take_image(&mut inputs, ID, "image")?;
        let mask = match inputs.remove("mask") {
            Some(data) => Some(data.into_image(ID, "mask")?),
            None => None,
        };
        let settings = Self::settings(params, image.dimension())?;
        let otsu = params.text("default_mask")? == "otsu";
        let (corrected, field) = n4(&image, mask.as_ref(), otsu, &settings, context)?;
        Ok(Outputs::from([("image".to_string(), Data::Image(corrected)), ("bias_field".to_string(), Data::Image(field))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(N4BiasCorrection::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_grid_sees_the_field_the_shrunk_grid_was_fitted_with() {
        let shrunk = Shrunk::new([23, 17, 1], 3);
        assert_eq!((shrunk.dims, shrunk.offset), ([7, 5, 1], [1, 1, 0]));
        let points = [5, 6, 1];
        let (coarse, fine) = (shrunk.bases(points), shrunk.full_bases(points));
        for axis in 0..2 {
            for s in 0..shrunk.dims[axis] {
                let i = s * 3 + 1;
                assert_eq!(coarse[axis].first[s], fine[axis].first[i], "axis {axis}, voxel {s}");
                for (a, b) in coarse[axis].weights[s].iter().zip(&fine[axis].weights[i]) {
                    assert!((a - b).abs() < 1e-9, "axis {axis}, voxel {s}: {a} vs {b}");
                }
            }
        }
        let indices = shrunk.full_indices();
        assert_eq!((indices[0], indices[1], indices[7]), (1 + 23, 4 + 23, 1 + 23 * 4));
    }
}
