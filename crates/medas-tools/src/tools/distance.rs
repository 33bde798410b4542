//! `preprocess.distance_transform`: the exact Euclidean distance, in millimetres, from every
//! foreground voxel to the nearest background voxel, as
//! `scipy.ndimage.distance_transform_edt(mask, sampling=spacing)`, or the signed distance
//! `edt(~mask) - edt(mask)` (negative inside).
//!
//! Separable (Felzenszwalb and Huttenlocher 2012): squared distances along axis 2 by two sweeps
//! over whole slices, then along axis 0 and axis 1 by the lower envelope of parabolas
//! `(x - p)^2 + f(p)` on each line, in parallel over lines. The squared distances live in the
//! output buffer throughout; envelopes are computed in f64.

use super::mask::{self, Grid, MaskVisitor, failed, visit_mask};
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use rayon::prelude::*;
use std::sync::Arc;

pub struct DistanceTransform(ToolSpec);

impl DistanceTransform {
    fn new() -> DistanceTransform {
        DistanceTransform(
            ToolSpec::new(
                "preprocess.distance_transform",
                Category::Preprocess,
                "Euclidean distance transform",
                "For every foreground (non-zero) voxel, the exact Euclidean distance in millimetres to \
                 the nearest background voxel, using the image spacing; 0 on the background. Matches \
                 scipy.ndimage.distance_transform_edt(mask, sampling=spacing) to float32 precision. With \
                 signed, background voxels get their distance to the nearest foreground voxel and \
                 foreground voxels minus their distance to the nearest background voxel: \
                 edt(~mask) - edt(mask) with scipy (the level-set convention, negative inside). A mask \
                 with no background voxel (or, signed, no foreground voxel) is an error: the distance is \
                 undefined.",
            )
            .param(ParamSpec::bool("signed", "Signed distance: positive outside, negative inside.").default(false))
            .input(super::mask::mask_input())
            .output(PortSpec::new("distance", PortType::Image, "float32 distances in mm.")),
        )
    }
}

impl Tool for DistanceTransform {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "mask")?;
        let grid = mask::grid_of(&image, id)?;
        let distance = if params.bool("signed")? {
            let outside = exact_distances(&image, grid, Targets::Foreground, context, id)?;
            let mut inside = exact_distances(&image, grid, Targets::Background, context, id)?;
            inside.par_iter_mut().zip(outside.par_iter()).for_each(|(d, &o)| *d = o - *d);
            inside
        } else {
            exact_distances(&image, grid, Targets::Background, context, id)?
        };
        context.progress(1.0);
        Ok(Outputs::from([("distance".to_string(), Data::Image(mask::image_like(&image, grid, distance, id)?))]))
    }
}

/// What distances are measured to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Targets {
    /// The zero voxels: distances of the foreground, 0 on the background.
    Background,
    /// The non-zero voxels: distances of the background, 0 on the foreground.
    Foreground,
}

/// The exact distance in mm from every voxel to the nearest voxel of `targets` (0 on them).
fn exact_distances(image: &medas_image::Image, grid: Grid, targets: Targets, context: &Context, id: &str) -> Result<Vec<f32>, ToolError> {
    let spacing = image.geometry().spacing();
    let [s0, s1] = [spacing[0], spacing[1]];
    let s2 = if grid.rank == 3 { spacing[2] } else { 1.0 };
    let mut squared = along_slices(image, grid, s2, targets, id)?;
    if !squared.par_iter().any(|&d| d == 0.0) && !squared.is_empty() {
        let message = match targets {
            Targets::Background => "the mask has no background voxel, so distances to the background are undefined",
            Targets::Foreground => "the mask has no foreground voxel, so distances to the foreground are undefined",
        };
        return Err(failed(id, message));
    }
    context.check_cancelled(id)?;
    let n0 = grid.dims[0].max(1);
    squared.par_chunks_mut(n0).for_each_init(Envelope::default, |envelope, line| envelope.line(line, 1, s0));
    context.check_cancelled(id)?;
    let plane = (grid.dims[0] * grid.dims[1]).max(1);
    squared.par_chunks_mut(plane).for_each_init(Envelope::default, |envelope, slice| {
        for i in 0..n0 {
            envelope.line(&mut slice[i..], n0, s1);
        }
    });
    context.check_cancelled(id)?;
    squared.par_iter_mut().for_each(|d| *d = d.sqrt());
    Ok(squared)
}

/// Squared distances (mm²) to the nearest target voxel along axis 2 alone (infinite where
/// a line has none), by a forward and a backward sweep over whole slices.
fn along_slices(image: &medas_image::Image, grid: Grid, spacing: f64, targets: Targets, id: &str) -> Result<Vec<f32>, ToolError> {
    let mut steps = visit_mask(image, id, Unbounded(targets))?;
    let plane = (grid.dims[0] * grid.dims[1]).max(1);
    // Step counts to the nearest background voxel: forward, then backward.
    for k in 1..grid.dims[2] {
        let (before, after) = steps.split_at_mut(k * plane);
        let previous = &before[(k - 1) * plane..];
        after[..plane].par_iter_mut().zip(previous.par_iter()).for_each(|(d, &p)| *d = d.min(p + 1.0));
    }
    for k in (0..grid.dims[2].saturating_sub(1)).rev() {
        let (before, after) = steps.split_at_mut((k + 1) * plane);
        let current = &mut before[k * plane..];
        current.par_iter_mut().zip(after[..plane].par_iter()).for_each(|(d, &n)| *d = d.min(n + 1.0));
    }
    let spacing = spacing as f32;
    steps.par_iter_mut().for_each(|d| *d = (*d * spacing) * (*d * spacing));
    Ok(steps)
}

/// 0 on the target voxels, infinite elsewhere.
struct Unbounded(Targets);

impl MaskVisitor for Unbounded {
    type Output = Vec<f32>;
    fn visit<T: Copy + Default + PartialEq + Send + Sync>(self, values: &[T]) -> Vec<f32> {
        let zero = T::default();
        let on_foreground = self.0 == Targets::Foreground;
        values.par_iter().map(|&v| if (v != zero) == on_foreground { 0.0 } else { f32::INFINITY }).collect()
    }
}

/// Work buffers for the lower envelope of parabolas on one line.
#[derive(Default)]
struct Envelope {
    values: Vec<f64>,
    sites: Vec<usize>,
    bounds: Vec<f64>,
}

impl Envelope {
    /// Replaces the squared distances of the line `data[0], data[stride], ...` (within `data`)
    /// by their minimum over the line of `(spacing * (q - p))^2 + f(p)`.
    fn line(&mut self, data: &mut [f32], stride: usize, spacing: f64) {
        self.values.clear();
        self.values.extend(data.iter().step_by(stride).map(|&v| v as f64));
        self.sites.clear();
        self.bounds.clear();
        let f = &self.values;
        for q in (0..f.len()).filter(|&q| f[q].is_finite()) {
            let p = q as f64 * spacing;
            loop {
                let Some(&v) = self.sites.last() else {
                    self.bounds.push(f64::NEG_INFINITY);
                    self.sites.push(q);
                    break;
                };
                let pv = v as f64 * spacing;
                let cross = ((f[q] + p * p) - (f[v] + pv * pv)) / (2.0 * (p - pv));
                if cross <= *self.bounds.last().unwrap_or(&f64::NEG_INFINITY) {
                    self.sites.pop();
                    self.bounds.pop();
                } else {
                    self.bounds.push(cross);
                    self.sites.push(q);
                    break;
                }
            }
        }
        if self.sites.is_empty() {
            return; // no finite value: the line stays infinite
        }
        let mut at = 0;
        for (q, out) in data.iter_mut().step_by(stride).enumerate() {
            let x = q as f64 * spacing;
            while at + 1 < self.sites.len() && self.bounds[at + 1] < x {
                at += 1;
            }
            let p = self.sites[at] as f64 * spacing;
            *out = ((x - p) * (x - p) + f[self.sites[at]]) as f32;
        }
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(DistanceTransform::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_gives_squared_distances_to_zeros() {
        let mut line = [f32::INFINITY, 0.0, f32::INFINITY, f32::INFINITY, 0.0, f32::INFINITY, f32::INFINITY];
        Envelope::default().line(&mut line, 1, 2.0);
        assert_eq!(line, [4.0, 0.0, 4.0, 4.0, 0.0, 4.0, 16.0]);
        let mut strided = [1.0f32, 9.0, f32::INFINITY, 9.0, 0.0, 9.0];
        Envelope::default().line(&mut strided, 2, 1.0);
        assert_eq!(strided, [1.0, 9.0, 1.0, 9.0, 0.0, 9.0]);
    }
}
