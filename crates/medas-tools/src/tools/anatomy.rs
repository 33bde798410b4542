//! Masks of anatomy by fixed recipes of the mask kernels: `preprocess.body_mask` (the patient,
//! without table, air and clothing folds) and `preprocess.lung_mask` (both lungs on CT in HU).
//! Each step is one of the kernels `mask.rs` shares with the single-purpose mask tools, so
//! each recipe can be checked against the same steps written with scipy.ndimage.

use super::mask::{self, Connectivity, Grid, Runs, failed};
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::bad_param;
use medas_image::{Image, Scalar, with_voxels};
use rayon::prelude::*;
use std::sync::Arc;

/// The runs of the voxels of a scalar 3-D image whose value passes `on`, read in place when
/// the voxels lie in Fortran order.
fn runs_where(image: &Image, tool: &str, on: impl Fn(f64) -> bool + Sync) -> Result<Runs, ToolError> {
    let grid = mask::grid_of(image, tool)?;
    if grid.rank != 3 {
        return Err(failed(tool, format!("needs a 3-D image, this one is {}-D", grid.rank)));
    }
    Ok(with_voxels!(image.voxels(), a => match mask::fortran_slice(a) {
        Some(values) => Runs::build(grid, values, |v| on(v.to_f64())),
        None => {
            let copy: Vec<_> = a.view().reversed_axes().iter().copied().collect();
            Runs::build(grid, &copy, |v| on(v.to_f64()))
        }
    }))
}

/// The body: the largest face-connected region above `threshold`, with the holes of every
/// axial slice filled (lungs, bowel gas and airways inside the body become body).
fn body(image: &Image, tool: &str, threshold: f64, context: &Context) -> Result<(Grid, Vec<u8>), ToolError> {
    let above = runs_where(image, tool, |v| v > threshold)?;
    if above.is_empty() {
        return Err(failed(tool, format!("no voxel is above the body threshold {threshold}")));
    }
    context.check_cancelled(tool)?;
    let regions = mask::label(&above, Connectivity::Face);
    let keep = regions.largest(1, 0);
    let largest = mask::paint(&above, |r| u8::from(keep[regions.label_of_run[r] as usize]));
    context.progress(0.4);
    context.check_cancelled(tool)?;
    let largest = Runs::build(above.grid, &largest, |v| v != 0);
    Ok((above.grid, mask::fill_holes(&largest, true)))
}

fn threshold_param(doc: &str, default: f64) -> ParamSpec {
    ParamSpec::float("body_threshold", doc).default(default).unit("image units")
}

pub struct BodyMask(ToolSpec);

impl BodyMask {
    fn new() -> BodyMask {
        BodyMask(
            ToolSpec::new(
                "preprocess.body_mask",
                Category::Preprocess,
                "Body mask",
                "The patient's body on a 3-D image: voxels above body_threshold (default -500 HU, between \
                 air and fat on CT; for MR give a threshold above the background noise, e.g. from \
                 preprocess.otsu_threshold), then the largest face-connected region (drops the table, \
                 cables and noise), then the holes of every axial slice (fixed k) filled, so that lungs, \
                 airways and bowel gas count as body. Equal to scipy.ndimage: largest region of \
                 label(a > t), then binary_fill_holes per slice. Output uint8 0/1 on the same grid.",
            )
            .param(threshold_param("Voxels above this value are candidate body.", -500.0).tunable())
            .input(PortSpec::new("image", PortType::Image, "A 3-D scalar image (CT in HU for the default)."))
            .output(PortSpec::new("mask", PortType::LabelImage, "uint8 body mask."))
            .output(PortSpec::new("volume_ml", PortType::Scalar, "The body's volume in millilitres.")),
        )
    }
}

impl Tool for BodyMask {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let (grid, body) = body(&image, id, params.float("body_threshold")?, context)?;
        let voxels = body.par_iter().filter(|&&v| v != 0).count();
        context.progress(1.0);
        finish(&image, grid, body, voxels, id)
    }
}

/// The mask output and its volume in millilitres (1 ml = 1000 mm³).
fn finish(image: &Image, grid: Grid, mask: Vec<u8>, voxels: usize, tool: &str) -> Result<Outputs, ToolError> {
    let volume_ml = voxels as f64 * voxel_volume_mm3(image) / 1000.0;
    Ok(Outputs::from([
        ("mask".to_string(), Data::Image(mask::image_like(image, grid, mask, tool)?)),
        ("volume_ml".to_string(), Data::Scalar(volume_ml)),
    ]))
}

fn voxel_volume_mm3(image: &Image) -> f64 {
    image.geometry().spacing().iter().product()
}

pub struct LungMask(ToolSpec);

impl LungMask {
    fn new() -> LungMask {
        LungMask(
            ToolSpec::new(
                "preprocess.lung_mask",
                Category::Preprocess,
                "Lung mask (CT)",
                "Both lungs on a chest CT in HU, by the classic recipe: the body (preprocess.body_mask \
                 with body_threshold), then the voxels inside it below air_threshold (default -320 HU: \
                 aerated lung, airways, bowel gas), then the `count` largest face-connected regions of at \
                 least min_volume_ml each (default 2 regions of >= 50 ml: the lungs, or one region when \
                 the airways join them; the trachea and main bronchi stay in), then the holes of every \
                 axial slice filled so vessels and nodules inside the lung are included. Equal to the \
                 same steps written with scipy.ndimage. Fails with a clear error when no region is large \
                 enough (not a chest CT, or not in HU).",
            )
            .param(threshold_param("Voxels above this value are candidate body.", -500.0))
            .param(ParamSpec::float("air_threshold", "Voxels inside the body below this value are candidate lung.").default(-320.0).unit("HU").tunable())
            .param(ParamSpec::int("count", "How many of the largest air regions to keep (2 lungs).").range(1.0, 10.0).default(2))
            .param(ParamSpec::float("min_volume_ml", "Smallest region kept, in millilitres.").range(0.0, 1e6).default(50.0).unit("ml"))
            .input(PortSpec::new("image", PortType::Image, "A 3-D chest CT in HU."))
            .output(PortSpec::new("mask", PortType::LabelImage, "uint8 lung mask."))
            .output(PortSpec::new("volume_ml", PortType::Scalar, "The lungs' volume in millilitres.")),
        )
    }
}

impl Tool for LungMask {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let (body_threshold, air_threshold) = (params.float("body_threshold")?, params.float("air_threshold")?);
        if air_threshold > body_threshold + 1000.0 || air_threshold <= -1100.0 {
            let message = format!("must lie between -1100 HU and body_threshold + 1000 ({}), got {air_threshold}", body_threshold + 1000.0);
            return Err(bad_param(id, "air_threshold", message));
        }
        let (grid, mut air) = body(&image, id, body_threshold, context)?;
        // The body mask becomes the air-inside-the-body mask in place.
        let is_air = |inside: u8, value: f64| u8::from(inside != 0 && value < air_threshold);
        with_voxels!(image.voxels(), a => match mask::fortran_slice(a) {
            Some(values) => air.par_iter_mut().zip(values).for_each(|(b, v)| *b = is_air(*b, v.to_f64())),
            None => air.iter_mut().zip(a.view().reversed_axes().iter()).for_each(|(b, v)| *b = is_air(*b, v.to_f64())),
        });
        let air = Runs::build(grid, &air, |v| v != 0);
        context.progress(0.6);
        context.check_cancelled(id)?;
        let regions = mask::label(&air, Connectivity::Face);
        let min_voxels = (params.float("min_volume_ml")? * 1000.0 / voxel_volume_mm3(&image)).ceil() as u64;
        let keep = regions.largest(params.int("count")? as usize, min_voxels);
        if !keep.contains(&true) {
            let largest = regions.sizes.iter().max().copied().unwrap_or(0) as f64 * voxel_volume_mm3(&image) / 1000.0;
            let message = format!(
                "no air region inside the body is as large as min_volume_ml ({} ml); the largest has {largest:.1} ml \
                 (is this a chest CT in HU?)",
                params.float("min_volume_ml")?
            );
            return Err(failed(id, message));
        }
        let lungs = Runs::build(grid, &mask::paint(&air, |r| u8::from(keep[regions.label_of_run[r] as usize])), |v| v != 0);
        context.progress(0.8);
        context.check_cancelled(id)?;
        let filled = mask::fill_holes(&lungs, true);
        let voxels = filled.par_iter().filter(|&&v| v != 0).count();
        context.progress(1.0);
        finish(&image, grid, filled, voxels, id)
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(BodyMask::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(LungMask::new()) } }
