//! Intensity normalisation: `preprocess.zscore` (as nnU-Net's and MONAI's NormalizeIntensity,
//! optionally inside a mask), `preprocess.clip_percentiles` (numpy.percentile) and
//! `preprocess.rescale` (SimpleITK RescaleIntensity). The shared kernels are in
//! `intensity_stats.rs`.

use super::intensity_stats::{self as stats, failed, take_greyscale, take_selection};
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::bad_param;
use std::sync::Arc;

fn optional_mask(doc: &str) -> PortSpec {
    PortSpec::new("mask", PortType::LabelImage, doc).optional()
}

fn image_output(image: medas_image::Image) -> (String, Data) {
    ("image".to_string(), Data::Image(image))
}

pub struct ZScore(ToolSpec);

impl ZScore {
    fn new() -> ZScore {
        ZScore(
            ToolSpec::new(
                "preprocess.zscore",
                Category::Preprocess,
                "Z-score normalisation",
                "(x - mean) / std, with the mean and the population standard deviation (ddof = 0, as \
                 numpy's std and the z-score of nnU-Net and MONAI NormalizeIntensity) computed in double \
                 precision over the non-NaN voxels, or only over those a mask selects (non-zero). With a \
                 mask, voxels outside it become 0 (outside_mask = zero, as nnU-Net) or are normalised with \
                 the same mean and std (normalize). NaN stays NaN. An image (or masked region) whose std \
                 is 0 or not finite is refused. float32 output, geometry kept.",
            )
            .param(ParamSpec::choice("outside_mask", "What voxels outside the mask become: 0, or normalised like the rest.", &["zero", "normalize"]).default("zero"))
            .input(PortSpec::new("image", PortType::Image, "A greyscale image."))
            .input(optional_mask("Optional mask on the image's grid: the statistics come from its non-zero voxels."))
            .output(PortSpec::new("image", PortType::Image, "The normalised image, float32."))
            .output(PortSpec::new("mean", PortType::Scalar, "The mean used, in the image's unit."))
            .output(PortSpec::new("std", PortType::Scalar, "The standard deviation used, in the image's unit.")),
        )
    }
}

impl Tool for ZScore {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_greyscale(&mut inputs, id, "image")?;
        let selection = take_selection(&mut inputs, &image, id)?;
        let summary = stats::summary(image.voxels(), selection.as_ref());
        let region = if selection.is_some() { "masked voxels" } else { "voxels" };
        if summary.count == 0 {
            return Err(failed(id, format!("there are no non-NaN {region}, so no mean and std")));
        }
        let (mean, std) = (summary.mean, stats::std_about(image.voxels(), selection.as_ref(), &summary));
        if !(std.is_finite() && std > 0.0) {
            return Err(failed(id, format!("the std of the {} {region} is {std}, so they cannot be z-scored", summary.count)));
        }
        context.progress(0.5);
        context.check_cancelled(id)?;
        let zero_outside = params.text("outside_mask")? == "zero";
        let restrict = if zero_outside { selection.as_ref() } else { None };
        let normalised = stats::map_to_f32(&image, restrict, 0.0, |x| (x - mean) / std, id)?;
        Ok(Outputs::from([image_output(normalised), ("mean".into(), Data::Scalar(mean)), ("std".into(), Data::Scalar(std))]))
    }
}

pub struct ClipPercentiles(ToolSpec);

impl ClipPercentiles {
    fn new() -> ClipPercentiles {
        ClipPercentiles(
            ToolSpec::new(
                "preprocess.clip_percentiles",
                Category::Preprocess,
                "Clip to percentiles",
                "Clips every voxel to [p_lower, p_upper], the `lower` and `upper` percentiles of the \
                 non-NaN voxels (or of those a mask selects), computed exactly as numpy.percentile with \
                 its default 'linear' method (numpy.nanpercentile when there is NaN; NaN stays NaN). \
                 Integer images are ranked by counting values, others by selection on one copy. \
                 float32 output, geometry kept; the two bounds are also returned.",
            )
            .param(ParamSpec::float("lower", "Lower percentile, 0 to 100, below upper.").range(0.0, 100.0).default(0.5).unit("%").tunable())
            .param(ParamSpec::float("upper", "Upper percentile, 0 to 100, above lower.").range(0.0, 100.0).default(99.5).unit("%").tunable())
            .input(PortSpec::new("image", PortType::Image, "A greyscale image."))
            .input(optional_mask("Optional mask on the image's grid: the percentiles come from its non-zero voxels."))
            .output(PortSpec::new("image", PortType::Image, "The clipped image, float32."))
            .output(PortSpec::new("lower_value", PortType::Scalar, "The lower percentile, in the image's unit."))
            .output(PortSpec::new("upper_value", PortType::Scalar, "The upper percentile, in the image's unit.")),
        )
    }
}

impl Tool for ClipPercentiles {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let (lower, upper) = (params.float("lower")?, params.float("upper")?);
        if upper <= lower {
            return Err(bad_param(id, "upper", format!("must be greater than lower ({lower}), got {upper}")));
        }
        let image = take_greyscale(&mut inputs, id, "image")?;
        let selection = take_selection(&mut inputs, &image, id)?;
        let region = if selection.is_some() { "masked voxels" } else { "voxels" };
        let bounds = stats::percentiles(image.voxels(), selection.as_ref(), &[lower, upper])
            .ok_or_else(|| failed(id, format!("there are no non-NaN {region} to take percentiles of")))?;
        context.progress(0.5);
        context.check_cancelled(id)?;
        let (low, high) = (bounds[0], bounds[1]);
        // NaN passes through (neither comparison holds), as in numpy.clip.
        let clip = move |x: f64| if x < low { low } else if x > high { high } else { x };
        let clipped = stats::map_to_f32(&image, None, 0.0, clip, id)?;
        Ok(Outputs::from([image_output(clipped), ("lower_value".into(), Data::Scalar(low)), ("upper_value".into(), Data::Scalar(high))]))
    }
}

pub struct Rescale(ToolSpec);

impl Rescale {
    fn new() -> Rescale {
        Rescale(
            ToolSpec::new(
                "preprocess.rescale",
                Category::Preprocess,
                "Rescale intensity",
                "Maps the image's [min, max] (finite voxels) linearly onto [output_min, output_max], as \
                 SimpleITK's RescaleIntensity (x * scale + shift in double precision, clamped to the \
                 output range; SimpleITK's defaults are 0 and 255, these are 0 and 1). A constant image \
                 becomes output_min everywhere, as in ITK. NaN stays NaN. float32 output, geometry kept.",
            )
            .param(ParamSpec::float("output_min", "Value the image's minimum maps to.").default(0.0))
            .param(ParamSpec::float("output_max", "Value the image's maximum maps to (must be > output_min).").default(1.0))
            .input(PortSpec::new("image", PortType::Image, "A greyscale image."))
            .output(PortSpec::new("image", PortType::Image, "The rescaled image, float32.")),
        )
    }
}

/// ITK's RescaleIntensity coefficients: `(scale, shift)` with output `x * scale + shift`.
pub fn rescale_coefficients(min: f64, max: f64, out_min: f64, out_max: f64) -> (f64, f64) {
    let scale = if min != max {
        (out_max - out_min) / (max - min)
    } else if max != 0.0 {
        (out_max - out_min) / max
    } else {
        0.0
    };
    (scale, out_min - min * scale)
}

impl Tool for Rescale {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let (out_min, out_max) = (params.float("output_min")?, params.float("output_max")?);
        if out_max <= out_min {
            return Err(bad_param(id, "output_max", format!("must be greater than output_min ({out_min}), got {out_max}")));
        }
        let image = take_greyscale(&mut inputs, id, "image")?;
        let range = image.voxels().stats();
        if range.count == 0 {
            return Err(failed(id, "the image has no finite value, so no range to rescale"));
        }
        let (scale, shift) = rescale_coefficients(range.min, range.max, out_min, out_max);
        let map = move |x: f64| {
            let y = x * scale + shift;
            if y < out_min { out_min } else if y > out_max { out_max } else { y }
        };
        Ok(Outputs::from([image_output(stats::map_to_f32(&image, None, 0.0, map, id)?)]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(ZScore::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(ClipPercentiles::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(Rescale::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constant_images_rescale_to_output_min_as_itk() {
        for constant in [0.0, 5.0, -3.0] {
            let (scale, shift) = rescale_coefficients(constant, constant, -1.0, 1.0);
            assert_eq!(constant * scale + shift, -1.0);
        }
        assert_eq!(rescale_coefficients(10.0, 20.0, 0.0, 1.0), (0.1, -1.0));
    }
}
