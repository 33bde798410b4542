//! Binary masks: `preprocess.threshold`, `preprocess.connected_components`,
//! `preprocess.keep_largest_component` and `preprocess.fill_holes`, matching SimpleITK's
//! BinaryThreshold and scipy.ndimage's `label` and `binary_fill_holes`. The kernels (runs of
//! voxels, union-find labelling) live in `mask.rs`.

use super::mask::{self, CONNECTIVITY_DOC, Connectivity, Runs, failed, mask_input};
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::{ParamProblem, ToolError};
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use medas_image::{Image, Scalar, with_voxels};
use rayon::prelude::*;
use serde_json::json;
use std::sync::Arc;


fn connectivity_param() -> ParamSpec {
    ParamSpec::int("connectivity", CONNECTIVITY_DOC).default(6)
}

fn output(port: &str, image: Image) -> (String, Data) {
    (port.to_string(), Data::Image(image))
}

pub struct Threshold(ToolSpec);

impl Threshold {
    fn new() -> Threshold {
        let bound = |name: &str, doc: &str| {
            ParamSpec::list(name, doc, ParamKind::Float { min: None, max: None }).range(0.0, 1.0).default(json!([]))
        };
        Threshold(
            ToolSpec::new(
                "preprocess.threshold",
                Category::Preprocess,
                "Binary threshold",
                "Voxels with lower <= value <= upper (both inclusive) become `inside`, all others (NaN \
                 included) `outside`, as SimpleITK's BinaryThreshold; an omitted bound is open (-inf or \
                 +inf). The result is a uint8 mask on the same grid, geometry and metadata kept.",
            )
            .param(bound("lower", "Lowest value inside (inclusive); empty for no lower bound.").unit("image units"))
            .param(bound("upper", "Highest value inside (inclusive); empty for no upper bound.").unit("image units"))
            .param(ParamSpec::int("inside", "Value of voxels within the bounds.").range(0.0, 255.0).default(1))
            .param(ParamSpec::int("outside", "Value of the other voxels.").range(0.0, 255.0).default(0))
            .input(PortSpec::new("image", PortType::Image, "A scalar image of any voxel type."))
            .output(PortSpec::new("mask", PortType::LabelImage, "The uint8 mask.")),
        )
    }
}

/// The single value of an optional bound (`[]` or `[x]`).
fn bound(params: &Params, name: &str, open: f64) -> Result<f64, ToolError> {
    Ok(params.value(name).and_then(|v| v.as_array()).and_then(|a| a.first()).and_then(|v| v.as_f64()).unwrap_or(open))
}

impl Tool for Threshold {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let (lower, upper) = (bound(params, "lower", f64::NEG_INFINITY)?, bound(params, "upper", f64::INFINITY)?);
        if lower > upper {
            let problem = ParamProblem::OutOfRange { value: lower.to_string(), min: "-inf".into(), max: format!("upper ({upper})") };
            return Err(ToolError::Param { tool: id.clone(), param: "lower".into(), problem });
        }
        if image.components() != 1 {
            return Err(failed(id, format!("thresholds one value per voxel, this image has {} components", image.components())));
        }
        let (inside, outside) = (params.int("inside")? as u8, params.int("outside")? as u8);
        let pick = move |v: f64| if v >= lower && v <= upper { inside } else { outside };
        let voxels = with_voxels!(image.voxels(), a => {
            match mask::fortran_slice(a) {
                Some(slice) => {
                    let values = threshold_values(slice, lower, upper, inside, outside);
                    medas_image::Voxels::from_fortran_vec(a.shape(), values).map_err(|e| failed(id, e.to_string()))?
                }
                None => medas_image::Voxels::from(a.map(|v| pick(v.to_f64()))),
            }
        });
        context.progress(1.0);
        let mask = image.with_voxels(voxels).map_err(|e| failed(id, e.to_string()))?;
        Ok(Outputs::from([output("mask", mask)]))
    }
}

/// `inside` where `lower <= v <= upper`, else `outside`. Integers are compared in their own
/// type against the bounds rounded inwards (what makes the loop vectorise); floats in f64, where
/// NaN is outside.
fn threshold_values<T: Scalar>(values: &[T], lower: f64, upper: f64, inside: u8, outside: u8) -> Vec<u8> {
    let mut out = vec![outside; values.len()];
    const CHUNK: usize = 1 << 16;
    if T::TYPE.is_float() {
        out.par_chunks_mut(CHUNK).zip(values.par_chunks(CHUNK)).for_each(|(out, values)| {
            out.iter_mut().zip(values).for_each(|(o, v)| *o = select(v.to_f64() >= lower && v.to_f64() <= upper, inside, outside));
        });
        return out;
    }
    // The type's range (saturating conversions), to clamp the bounds into it.
    let (min, max) = (T::from_f64(f64::NEG_INFINITY).to_f64(), T::from_f64(f64::INFINITY).to_f64());
    let (low, high) = (lower.ceil().max(min), upper.floor().min(max));
    if low > high {
        return out; // no integer of this type lies within the bounds
    }
    let (low, high) = (T::from_f64(low), T::from_f64(high));
    out.par_chunks_mut(CHUNK).zip(values.par_chunks(CHUNK)).for_each(|(out, values)| {
        out.iter_mut().zip(values).for_each(|(o, &v)| *o = select((v >= low) & (v <= high), inside, outside));
    });
    out
}

/// `inside` where `condition` holds, else `outside`, without a branch: an `if` here became a
/// lookup in a two-entry table on the stack and kept the loop from vectorising.
#[inline(always)]
fn select(condition: bool, inside: u8, outside: u8) -> u8 {
    outside ^ ((inside ^ outside) & 0u8.wrapping_sub(u8::from(condition)))
}

pub struct ConnectedComponents(ToolSpec);

impl ConnectedComponents {
    fn new() -> ConnectedComponents {
        ConnectedComponents(
            ToolSpec::new(
                "preprocess.connected_components",
                Category::Preprocess,
                "Connected components",
                "Labels the connected regions of a binary mask 1, 2, ... as scipy.ndimage.label does with \
                 the structure of the same connectivity: the same regions, numbered in the same order \
                 (by each region's first voxel in C order of the [i, j, k] array). Background stays 0. \
                 Union-find over runs of voxels, parallel over blocks of rows.",
            )
            .param(connectivity_param())
            .input(mask_input())
            .output(PortSpec::new("labels", PortType::LabelImage, "int32 labels, 0 for background."))
            .output(PortSpec::new("count", PortType::Scalar, "The number of regions.")),
        )
    }
}

/// The runs of the mask on `inputs`, and the connectivity asked for.
fn runs_and_connectivity(inputs: &mut Inputs, params: &Params, id: &str) -> Result<(Image, Runs, Connectivity), ToolError> {
    let image = take_image(inputs, id, "mask")?;
    let runs = mask::foreground_runs(&image, id)?;
    let connectivity = Connectivity::parse(params.int("connectivity")?, runs.grid.rank, id)?;
    Ok((image, runs, connectivity))
}

impl Tool for ConnectedComponents {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let (image, runs, connectivity) = runs_and_connectivity(&mut inputs, params, id)?;
        context.progress(0.3);
        context.check_cancelled(id)?;
        let components = mask::label(&runs, connectivity);
        if components.count() > i32::MAX as usize {
            return Err(failed(id, format!("{} regions do not fit int32 labels", components.count())));
        }
        context.progress(0.7);
        context.check_cancelled(id)?;
        let labels = mask::paint(&runs, |r| components.label_of_run[r] as i32);
        let labels = mask::image_like(&image, runs.grid, labels, id)?;
        context.progress(1.0);
        Ok(Outputs::from([output("labels", labels), ("count".to_string(), Data::Scalar(components.count() as f64))]))
    }
}

pub struct KeepLargest(ToolSpec);

impl KeepLargest {
    fn new() -> KeepLargest {
        KeepLargest(
            ToolSpec::new(
                "preprocess.keep_largest_component",
                Category::Preprocess,
                "Keep largest component",
                "Keeps the `count` largest connected regions of a binary mask (by voxel count) and clears \
                 the rest; ties go to the region scipy.ndimage.label numbers first, so count=1 equals \
                 `labels == argmax(bincount(labels)[1:]) + 1`. An empty mask is an error.",
            )
            .param(ParamSpec::int("count", "How many of the largest regions to keep.").range(1.0, 1e9).default(1))
            .param(connectivity_param())
            .input(mask_input())
            .output(PortSpec::new("mask", PortType::LabelImage, "uint8 mask, 1 in the kept regions.")),
        )
    }
}

impl Tool for KeepLargest {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let (image, runs, connectivity) = runs_and_connectivity(&mut inputs, params, id)?;
        if runs.is_empty() {
            return Err(failed(id, "the mask has no foreground voxel, so no region to keep"));
        }
        context.check_cancelled(id)?;
        let components = mask::label(&runs, connectivity);
        context.progress(0.6);
        context.check_cancelled(id)?;
        let keep = components.largest(params.int("count")?.max(1) as usize, 0);
        let kept = mask::paint(&runs, |r| u8::from(keep[components.label_of_run[r] as usize]));
        context.progress(1.0);
        Ok(Outputs::from([output("mask", mask::image_like(&image, runs.grid, kept, id)?)]))
    }
}

pub struct FillHoles(ToolSpec);

impl FillHoles {
    fn new() -> FillHoles {
        FillHoles(
            ToolSpec::new(
                "preprocess.fill_holes",
                Category::Preprocess,
                "Fill holes",
                "Background regions not connected to the image border become foreground, as \
                 scipy.ndimage.binary_fill_holes with its default structure (face connectivity: 6 in \
                 3-D, 4 in 2-D). With slice_by_slice, each axial slice (fixed k) is filled on its own in \
                 2-D, as for lung masks whose airways reach the top of the volume.",
            )
            .param(ParamSpec::bool("slice_by_slice", "Fill each axial slice (fixed k) in 2-D instead of the volume in 3-D.").default(false))
            .input(mask_input())
            .output(PortSpec::new("mask", PortType::LabelImage, "uint8 mask, 1 in the mask and its holes.")),
        )
    }
}

impl Tool for FillHoles {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "mask")?;
        let runs = mask::foreground_runs(&image, id)?;
        context.progress(0.3);
        context.check_cancelled(id)?;
        let filled = mask::fill_holes(&runs, params.bool("slice_by_slice")?);
        context.progress(1.0);
        Ok(Outputs::from([output("mask", mask::image_like(&image, runs.grid, filled, id)?)]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Threshold::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(ConnectedComponents::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(KeepLargest::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(FillHoles::new()) } }

#[cfg(test)]
mod threshold_tests {
    use super::threshold_values;

    /// Integer and float paths against the plain f64 rule, with fractional bounds, bounds
    /// beyond the type's range and NaN.
    #[test]
    fn typed_comparison_matches_the_f64_rule() {
        let ints: Vec<i16> = (-40..40).map(|n| n * 819).chain([i16::MIN, i16::MAX]).collect();
        let floats: Vec<f32> = ints.iter().map(|&v| v as f32 * 0.37).chain([f32::NAN]).collect();
        let bounds = [(-400.5, 300.2), (f64::NEG_INFINITY, -1.0), (-1e9, 1e9), (40000.0, f64::INFINITY), (2.2, 2.8), (-32768.0, -32768.0)];
        for (lower, upper) in bounds {
            let rule = |v: f64| if v >= lower && v <= upper { 7 } else { 3 };
            assert_eq!(threshold_values(&ints, lower, upper, 7, 3), ints.iter().map(|&v| rule(v as f64)).collect::<Vec<u8>>(), "{lower}..{upper}");
            assert_eq!(threshold_values(&floats, lower, upper, 7, 3), floats.iter().map(|&v| rule(v as f64)).collect::<Vec<u8>>(), "{lower}..{upper}");
        }
    }
}
