//! `preprocess.grey_morphology`: grey-level dilation, erosion, opening and closing with a ball
//! or box, as scipy.ndimage's grey_dilation / grey_erosion / grey_opening / grey_closing with
//! that footprint and their default border mode (`reflect`).
//!
//! The element is a set of rows along axis 0 (`morphology.rs`): for each half-width w in it,
//! the running max (or min) of every image row over [i - w, i + w] is computed once (van Herk /
//! Gil-Werman, three comparisons per voxel whatever w), and each output row is the max (min)
//! over the element's rows of those running values in the rows it reaches.

use super::mask::failed;
use super::morphology::{Segment, element, element_params};
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, PortSpec, PortType, ToolSpec};
use medas_image::{Scalar, Voxels, with_voxels};
use rayon::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

pub struct GreyMorphology(ToolSpec);

impl GreyMorphology {
    fn new() -> GreyMorphology {
        GreyMorphology(
            ToolSpec::new(
                "preprocess.grey_morphology",
                Category::Preprocess,
                "Grey-level morphology",
                "Grey-level dilation (the max over the element), erosion (the min), opening (erosion \
                 then dilation) or closing (dilation then erosion) of a scalar 2-D or 3-D image with a \
                 ball or box of radii in voxels, as scipy.ndimage.grey_dilation / grey_erosion / \
                 grey_opening / grey_closing with that footprint and mode='reflect' (the image mirrored \
                 at its edges). The voxel type is kept; near NaN voxels the result is unspecified, as in scipy.",
            )
            .params(element_params())
            .input(PortSpec::new("image", PortType::Image, "A scalar 2-D or 3-D image."))
            .output(PortSpec::new("image", PortType::Image, "The result, same voxel type.")),
        )
    }
}

impl Tool for GreyMorphology {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let grid = super::mask::grid_of(&image, id)?;
        let (segments, steps) = element(params, grid.rank, id)?;
        let voxels = with_voxels!(image.voxels(), a => {
            let mut values: Vec<_> = match super::mask::fortran_slice(a) {
                Some(values) => values.to_vec(),
                None => a.view().reversed_axes().iter().copied().collect(),
            };
            for (n, &dilate) in steps.iter().enumerate() {
                context.check_cancelled(id)?;
                values = apply(&values, grid.dims, &segments, dilate);
                context.progress((n + 1) as f64 / steps.len() as f64);
            }
            Voxels::from_fortran_vec(&grid.shape(), values).map_err(|e| failed(id, e.to_string()))?
        });
        let result = image.with_voxels(voxels).map_err(|e| failed(id, e.to_string()))?;
        Ok(Outputs::from([("image".to_string(), Data::Image(result))]))
    }
}

/// Whether `b` should replace `a` as the running extreme.
#[inline]
fn better<T: Scalar>(a: T, b: T, dilate: bool) -> bool {
    if dilate { b > a } else { b < a }
}

/// One dilation (`dilate`) or erosion of Fortran-order `values` of shape `dims`.
fn apply<T: Scalar>(values: &[T], dims: [usize; 3], segments: &[Segment], dilate: bool) -> Vec<T> {
    let [n0, n1, n2] = dims;
    let n0 = n0.max(1);
    // Running extremes along axis 0, one volume per half-width the element uses.
    let widths: Vec<u32> = segments.iter().map(|s| s.2).collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let running: BTreeMap<u32, Vec<T>> = widths
        .into_iter()
        .map(|w| {
            let mut out = values.to_vec();
            if w > 0 {
                out.par_chunks_mut(n0).zip(values.par_chunks(n0)).for_each(|(row, source)| window_extremes(source, w as usize, dilate, row));
            }
            (w, out)
        })
        .collect();
    let mut out = values.to_vec();
    out.par_chunks_mut(n0).enumerate().for_each(|(line, row)| {
        let (j, k) = ((line % n1) as isize, (line / n1) as isize);
        let mut first = true;
        for &(dj, dk, w) in segments {
            let source = reflect(j + dj, n1) + n1 * reflect(k + dk, n2);
            let values = &running[&w][source * n0..(source + 1) * n0];
            if first {
                row.copy_from_slice(values);
                first = false;
            } else {
                row.iter_mut().zip(values).for_each(|(o, &v)| {
                    if better(*o, v, dilate) {
                        *o = v;
                    }
                });
            }
        }
    });
    out
}

/// scipy's `reflect` border: `d c b a | a b c d | d c b a`, for any offset.
fn reflect(index: isize, len: usize) -> usize {
    let period = 2 * len as isize;
    let folded = index.rem_euclid(period);
    (if folded < len as isize { folded } else { period - 1 - folded }) as usize
}

/// The extreme of `row` over each window [i - w, i + w] clipped to the row (which `reflect`
/// equals for a window symmetric about i). The row is padded with w copies of each end value
/// (which leaves every clipped window's extreme unchanged), so every window spans exactly one
/// block of 2w + 1 or the end of one and the start of the next: prefix and suffix extremes of
/// the blocks give each window in one comparison.
fn window_extremes<T: Scalar>(row: &[T], w: usize, dilate: bool, out: &mut [T]) {
    let n = row.len();
    let size = 2 * w + 1;
    let pick = |a: T, b: T| if better(a, b, dilate) { b } else { a };
    let mut padded = Vec::with_capacity(n + 2 * w);
    padded.extend(std::iter::repeat_n(row[0], w));
    padded.extend_from_slice(row);
    padded.extend(std::iter::repeat_n(row[n - 1], w));
    let (mut prefix, mut suffix) = (padded.clone(), padded.clone());
    for start in (0..padded.len()).step_by(size) {
        let end = (start + size).min(padded.len());
        for i in start + 1..end {
            prefix[i] = pick(prefix[i - 1], padded[i]);
        }
        for i in (start..end - 1).rev() {
            suffix[i] = pick(suffix[i + 1], padded[i]);
        }
    }
    // Output i's window is padded[i..=i + 2w].
    for (i, o) in out.iter_mut().enumerate() {
        *o = pick(suffix[i], prefix[i + 2 * w]);
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(GreyMorphology::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_extremes_match_a_direct_scan() {
        let row: Vec<i32> = vec![3, 9, 1, 4, 7, 2, 8, 5, 6, 0, 11];
        for w in 0..5 {
            let mut out = vec![0; row.len()];
            window_extremes(&row, w, true, &mut out);
            let direct: Vec<i32> = (0..row.len()).map(|i| *row[i.saturating_sub(w)..=(i + w).min(row.len() - 1)].iter().max().unwrap()).collect();
            assert_eq!(out, direct, "max, w = {w}");
            window_extremes(&row, w, false, &mut out);
            let direct: Vec<i32> = (0..row.len()).map(|i| *row[i.saturating_sub(w)..=(i + w).min(row.len() - 1)].iter().min().unwrap()).collect();
            assert_eq!(out, direct, "min, w = {w}");
        }
    }

    #[test]
    fn reflect_mirrors_with_the_edge_repeated() {
        let folded: Vec<usize> = (-5..9).map(|i| reflect(i, 4)).collect();
        assert_eq!(folded, vec![3, 3, 2, 1, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0]);
    }
}
