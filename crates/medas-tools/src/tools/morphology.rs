//! `preprocess.morphology`: binary dilation, erosion, opening and closing with a ball or box
//! structuring element, as scipy.ndimage's binary_* functions with `border_value=0`.
//!
//! The element is cut into segments along axis 0, one per `(dj, dk)` offset it covers, each
//! `[-w, w]` wide. An output row is then the OR (dilation) or AND (erosion) of its source rows'
//! runs widened or narrowed by `w`: no per-voxel neighbourhood loop, and rows are independent,
//! so they run in parallel.

use super::mask::{self, Runs, bad_param, failed};
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use rayon::prelude::*;
use serde_json::json;
use std::sync::Arc;

pub(crate) const OPERATIONS: [&str; 4] = ["dilate", "erode", "open", "close"];
pub(crate) const SHAPES: [&str; 2] = ["ball", "box"];

/// One segment of the element: rows at `(dj, dk)` from the output row, `[-w, w]` along axis 0.
pub(crate) type Segment = (isize, isize, u32);

pub struct Morphology(ToolSpec);

impl Morphology {
    fn new() -> Morphology {
        Morphology(
            ToolSpec::new(
                "preprocess.morphology",
                Category::Preprocess,
                "Binary morphology",
                "Dilates, erodes, opens (erode then dilate) or closes (dilate then erode) a binary mask \
                 with a ball (voxels with (di/ri)^2 + (dj/rj)^2 + (dk/rk)^2 <= 1) or a box (|di| <= ri, ...) \
                 of radii in voxels, giving what scipy.ndimage.binary_dilation / binary_erosion / \
                 binary_opening / binary_closing give with that structure: outside the image counts as \
                 background (border_value=0), so erosion, and hence closing, clears foreground within a \
                 radius of the edge (pad first to avoid it). Output uint8 0/1.",
            )
            .params(element_params())
            .input(super::mask::mask_input())
            .output(PortSpec::new("mask", PortType::LabelImage, "The uint8 result.")),
        )
    }
}

impl Tool for Morphology {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "mask")?;
        let runs = mask::foreground_runs(&image, id)?;
        let (segments, steps) = element(params, runs.grid.rank, id)?;
        context.progress(0.1);
        let mut current = runs;
        let mut result = Vec::new();
        for (n, &dilate) in steps.iter().enumerate() {
            context.check_cancelled(id)?;
            result = apply(&current, &segments, dilate);
            if n + 1 < steps.len() {
                current = Runs::build(current.grid, &result, |v| v != 0);
            }
            context.progress(0.1 + 0.9 * (n + 1) as f64 / steps.len() as f64);
        }
        let grid = current.grid;
        Ok(Outputs::from([("mask".to_string(), Data::Image(mask::image_like(&image, grid, result, id)?))]))
    }
}

/// The parameters of every morphology tool: operation, element shape and radius.
pub(crate) fn element_params() -> Vec<ParamSpec> {
    vec![
        ParamSpec::choice("operation", "dilate, erode, open or close.", &OPERATIONS).default("dilate"),
        ParamSpec::choice("shape", "Structuring element: ball or box.", &SHAPES).default("ball"),
        ParamSpec::list("radius", "Radius in voxels: one for every axis, or one per axis (i, j[, k]).", ParamKind::Int { min: Some(0), max: Some(100) })
            .range(1.0, 3.0)
            .default(json!([1]))
            .unit("voxels")
            .tunable(),
    ]
}

/// The element's row segments and the steps of the operation (true: dilate, false: erode).
pub(crate) fn element(params: &Params, rank: usize, id: &str) -> Result<(Vec<Segment>, &'static [bool]), ToolError> {
    let radius = radii(params, rank, id)?;
    let segments = match params.text("shape")? {
        "ball" => ball(radius),
        "box" => cuboid(radius),
        other => return Err(bad_param(id, "shape", other, &SHAPES)),
    };
    let steps: &[bool] = match params.text("operation")? {
        "dilate" => &[true],
        "erode" => &[false],
        "open" => &[false, true],
        "close" => &[true, false],
        other => return Err(bad_param(id, "operation", other, &OPERATIONS)),
    };
    Ok((segments, steps))
}

/// The radius per axis `[ri, rj, rk]` (`rk = 0` for 2-D images).
pub(crate) fn radii(params: &Params, rank: usize, id: &str) -> Result<[u32; 3], ToolError> {
    let given: Vec<u32> =
        params.value("radius").and_then(|v| v.as_array()).into_iter().flatten().filter_map(|v| v.as_u64()).map(|v| v as u32).collect();
    let mut radius = match given.as_slice() {
        [r] => [*r; 3],
        list if list.len() == rank => [list[0], list[1], list.get(2).copied().unwrap_or(0)],
        list => {
            let message = format!("parameter \"radius\" holds {} values; give one for all axes or one per axis ({rank})", list.len());
            return Err(failed(id, message));
        }
    };
    if rank == 2 {
        radius[2] = 0;
    }
    Ok(radius)
}

/// Whether offset `d` lies in the ball of radii `r` (exact integer test; an axis of radius 0
/// allows only offset 0).
fn in_ball(d: [i64; 3], r: [i64; 3]) -> bool {
    if (0..3).any(|a| r[a] == 0 && d[a] != 0) {
        return false;
    }
    let scale: i64 = r.iter().filter(|&&x| x > 0).map(|x| x * x).product();
    let sum: i64 = (0..3).filter(|&a| r[a] > 0).map(|a| d[a] * d[a] * (scale / (r[a] * r[a]))).sum();
    sum <= scale
}

pub(crate) fn ball(radius: [u32; 3]) -> Vec<Segment> {
    let r = radius.map(i64::from);
    let mut segments = Vec::new();
    for dk in -r[2]..=r[2] {
        for dj in -r[1]..=r[1] {
            if let Some(w) = (0..=r[0]).rev().find(|&di| in_ball([di, dj, dk], r)) {
                segments.push((dj as isize, dk as isize, w as u32));
            }
        }
    }
    segments
}

pub(crate) fn cuboid(radius: [u32; 3]) -> Vec<Segment> {
    let r = radius.map(|x| x as isize);
    let mut segments = Vec::new();
    for dk in -r[2]..=r[2] {
        for dj in -r[1]..=r[1] {
            segments.push((dj, dk, radius[0]));
        }
    }
    segments
}

/// One dilation (`dilate`) or erosion of the runs by the element, as a uint8 volume.
fn apply(runs: &Runs, segments: &[Segment], dilate: bool) -> Vec<u8> {
    let [n0, n1, n2] = runs.grid.dims;
    let mut out = vec![0u8; runs.grid.len()];
    out.par_chunks_mut(n0.max(1)).enumerate().for_each(|(line, row)| {
        let (j, k) = ((line % n1) as isize, (line / n1) as isize);
        let source = |&(dj, dk, w): &Segment| {
            let (sj, sk) = (j + dj, k + dk);
            let inside = sj >= 0 && sk >= 0 && (sj as usize) < n1 && (sk as usize) < n2;
            inside.then(|| (runs.of_line(sj as usize + n1 * sk as usize), w as usize))
        };
        if dilate {
            for (source_runs, w) in segments.iter().filter_map(source) {
                for &(s, e) in source_runs {
                    row[(s as usize).saturating_sub(w)..(e as usize + w).min(n0)].fill(1);
                }
            }
        } else {
            row.fill(1);
            for segment in segments {
                match source(segment) {
                    Some((source_runs, w)) => clear_gaps(row, source_runs, w),
                    None => row.fill(0), // the element reaches outside: border_value 0
                }
            }
        }
    });
    out
}

/// Clears every voxel within `w` of a background voxel of `runs` (outside the row counts as
/// background).
fn clear_gaps(row: &mut [u8], runs: &[(u32, u32)], w: usize) {
    let n0 = row.len();
    let mut gap_start = None; // None: the gap reaching in from before the row
    for &(s, e) in runs {
        let from = gap_start.map_or(0, |g: usize| g.saturating_sub(w));
        row[from.min(n0)..(s as usize + w).min(n0)].fill(0);
        gap_start = Some(e as usize);
    }
    let from = gap_start.map_or(0, |g| g.saturating_sub(w));
    row[from.min(n0)..].fill(0);
}

inventory::submit! { ToolEntry { build: || Arc::new(Morphology::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ball_of_radius_two_has_the_scipy_voxel_count() {
        // 33 voxels: sum over segments of 2w+1.
        let count: u32 = ball([2, 2, 2]).iter().map(|s| 2 * s.2 + 1).sum();
        assert_eq!(count, 33);
        assert_eq!(cuboid([1, 1, 1]).len(), 9);
        assert_eq!(ball([0, 0, 0]), vec![(0, 0, 0)]);
    }

    #[test]
    fn erosion_of_a_row_clears_near_gaps_and_edges() {
        let mut row = vec![1u8; 10];
        clear_gaps(&mut row, &[(0, 4), (5, 10)], 1);
        assert_eq!(row, [0, 1, 1, 0, 0, 0, 1, 1, 1, 0]);
    }
}
