//! `preprocess.resize`: to a number of voxels per axis in index space, as
//! skimage.transform.resize (no anti-aliasing) computes it, with the geometry kept honest: the
//! resampling engine of `preprocess.resample` on the grid whose outer voxel edges are the
//! input's.

use crate::context::Context;
use crate::data::{Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::bad_param;
use crate::tools::orient::output;
use crate::tools::resample::{Grid, INTERPOLATORS, non_empty_image, per_axis, run_on_grid, size_param};
use std::sync::Arc;

pub struct Resize(ToolSpec);

impl Resize {
    fn new() -> Resize {
        Resize(
            ToolSpec::new(
                "preprocess.resize",
                Category::Preprocess,
                "Resize",
                "Resizes to `size` voxels per axis, as skimage.transform.resize(image, size, order, \
                 mode='edge', anti_aliasing=False) computes the values: output index i samples input \
                 index (i + 0.5) * old size / new size - 0.5, nearest (order 0, voxel type kept; halves \
                 rounded up), linear (order 1) or cubic B-spline (SimpleITK's, mirror boundary; not \
                 skimage's order 3), float32 for the last two. The geometry follows: spacing * old size \
                 / new size, direction kept, origin moved so that the outer edges of the first and last \
                 voxels stay where they were (the image covers the same physical box). \
                 preprocess.resample's mode shape keeps the first voxel's centre instead. With \
                 antialias, axes that shrink are first smoothed as in preprocess.resample.",
            )
            .param(size_param("Voxels per axis, or one value for all axes; each >= 1."))
            .param(ParamSpec::choice("interpolator", "How values between voxel centres are computed.", &INTERPOLATORS).default("linear"))
            .param(ParamSpec::bool("antialias", "Gaussian smoothing along axes that shrink, before sampling.").default(false))
            .input(PortSpec::new("image", PortType::Image, "The image to resize."))
            .output(PortSpec::new("image", PortType::Image, "The resized image.")),
        )
    }
}

impl Tool for Resize {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = non_empty_image(&mut inputs, id)?;
        let grid = Grid::of_shape(&image, &per_axis(id, params, "size", &image)?, true).map_err(|e| bad_param(id, "size", e))?;
        Ok(output(run_on_grid(id, &image, &grid, params, context)?))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(Resize::new()) } }
