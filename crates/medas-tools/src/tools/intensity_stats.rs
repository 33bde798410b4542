//! Kernels the intensity tools share: the voxels an optional mask selects, their mean and std,
//! their order statistics (numpy.percentile's), and float32 results on the input's grid.
//!
//! NaN voxels are never counted (as numpy's nan-functions); a mask is any image on the same
//! grid, a voxel is selected where the mask is non-zero (and not NaN).

use crate::data::Inputs;
use crate::error::ToolError;
use crate::tools::metadata_for_new_values;
use medas_image::{Image, Scalar, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn, Zip};
use std::cmp::Ordering;

/// 1 where the mask selects a voxel, 0 elsewhere, on the image's grid.
pub type Selection = ArcArray<u8, IxDyn>;

pub fn failed(tool: &str, message: impl Into<String>) -> ToolError {
    ToolError::Failed { tool: tool.into(), message: message.into() }
}

/// Refuses images with more than one value per voxel.
pub fn require_greyscale(image: &Image, tool: &str) -> Result<(), ToolError> {
    match image.components() {
        1 => Ok(()),
        n => Err(failed(tool, format!("needs a greyscale image, got {n} components per voxel"))),
    }
}

/// The image on input `port`, refused unless greyscale.
pub fn take_greyscale(inputs: &mut Inputs, tool: &str, port: &str) -> Result<Image, ToolError> {
    let image = crate::data::take_image(inputs, tool, port)?;
    require_greyscale(&image, tool)?;
    Ok(image)
}

/// Refuses `other` (the image on input `port`) unless it lies on `image`'s grid: the same size
/// and the same geometry to within 1e-6 (relative for spacing and origin).
pub fn require_same_grid(image: &Image, other: &Image, port: &str, tool: &str) -> Result<(), ToolError> {
    if image.size() == other.size() && image.geometry().approx_eq(other.geometry(), 1e-6) {
        return Ok(());
    }
    let describe = |i: &Image| {
        let g = i.geometry();
        format!("size {:?}, spacing {:?}, origin {:?}, direction {:?}", i.size(), g.spacing(), g.origin(), g.direction())
    };
    Err(failed(
        tool,
        format!(
            "the {port} must lie on the image's grid, but the image has {} and the {port} has {}; resample the {port} onto the image first",
            describe(image),
            describe(other)
        ),
    ))
}

/// The optional mask on input `mask`, checked against the image's grid, as a selection.
pub fn take_selection(inputs: &mut Inputs, image: &Image, tool: &str) -> Result<Option<Selection>, ToolError> {
    let Some(data) = inputs.remove("mask") else { return Ok(None) };
    let mask = data.into_image(tool, "mask")?;
    require_greyscale(&mask, tool)?;
    require_same_grid(image, &mask, "mask", tool)?;
    let selection = match mask.voxels() {
        Voxels::U8(a) => a.clone(),
        other => with_voxels!(other, a => Zip::from(a).par_map_collect(|v| {
            let x = v.to_f64();
            u8::from(x != 0.0 && !x.is_nan())
        }).into_shared()),
    };
    Ok(Some(selection))
}

/// Folds the selected non-NaN values (as f64) in parallel.
pub fn fold_selected<T: Scalar, A: Send>(
    array: &ArcArray<T, IxDyn>,
    selection: Option<&Selection>,
    identity: impl Fn() -> A + Send + Sync + Clone,
    fold: impl Fn(A, f64) -> A + Send + Sync,
    reduce: impl Fn(A, A) -> A + Send + Sync,
) -> A {
    let add = |acc: A, x: f64| if x.is_nan() { acc } else { fold(acc, x) };
    match selection {
        Some(s) => Zip::from(array).and(s).par_fold(identity, |acc, v, &on| if on != 0 { add(acc, v.to_f64()) } else { acc }, reduce),
        None => Zip::from(array).par_fold(identity, |acc, v| add(acc, v.to_f64()), reduce),
    }
}

/// Count, range and mean of the selected values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub count: u64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// The summary of the selected values, in one parallel pass, in double precision.
pub fn summary(voxels: &Voxels, selection: Option<&Selection>) -> Summary {
    let (count, sum, min, max) = with_voxels!(voxels, a => fold_selected(
        a,
        selection,
        || (0u64, 0.0, f64::INFINITY, f64::NEG_INFINITY),
        |(n, s, lo, hi), x| (n + 1, s + x, lo.min(x), hi.max(x)),
        |a, b| (a.0 + b.0, a.1 + b.1, a.2.min(b.2), a.3.max(b.3)),
    ));
    Summary { count, min, max, mean: sum / count as f64 }
}

/// The population standard deviation (ddof = 0) of the selected values about their `mean`,
/// from the squared deviations as numpy's std computes it.
pub fn std_about(voxels: &Voxels, selection: Option<&Selection>, summary: &Summary) -> f64 {
    let mean = summary.mean;
    let squares = with_voxels!(voxels, a => fold_selected(a, selection, || 0.0, |s, x| s + (x - mean) * (x - mean), |a, b| a + b));
    (squares / summary.count as f64).sqrt()
}

/// numpy.percentile(values, q) with its default 'linear' method, for each `q` in 0..=100,
/// over the selected non-NaN values (numpy.nanpercentile, then). `None` when none is selected.
pub fn percentiles(voxels: &Voxels, selection: Option<&Selection>, qs: &[f64]) -> Option<Vec<f64>> {
    let range = summary(voxels, selection);
    if range.count == 0 {
        return None;
    }
    // numpy: virtual index (n - 1) * q / 100 between the ranks floor and floor + 1.
    let n = range.count;
    let positions: Vec<(usize, usize, f64)> = qs
        .iter()
        .map(|q| {
            let virtual_index = (n - 1) as f64 * (q / 100.0);
            if virtual_index >= (n - 1) as f64 {
                (n as usize - 1, n as usize - 1, 0.0)
            } else {
                let below = virtual_index.floor().max(0.0);
                (below as usize, below as usize + 1, virtual_index - below)
            }
        })
        .collect();
    let mut ranks: Vec<usize> = positions.iter().flat_map(|&(a, b, _)| [a, b]).collect();
    ranks.sort_unstable();
    ranks.dedup();
    let values = with_voxels!(voxels, a => ranked_values(a, selection, &ranks, range));
    let value_at = |rank: usize| values[ranks.binary_search(&rank).unwrap_or(0)];
    Some(positions.iter().map(|&(a, b, t)| lerp(value_at(a), value_at(b), t)).collect())
}

/// numpy's `_lerp`: from the nearer end, so that t = 1 gives `b` exactly.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let difference = b - a;
    if t >= 0.5 { b - difference * (1.0 - t) } else { a + difference * t }
}

/// Integer ranges up to this many values are ranked by counting each value (no copy).
const COUNTED_RANGE: f64 = 65536.0;

/// The values of the given ranks (ascending, each below `count`) in the sorted selection.
fn ranked_values<T: Scalar>(array: &ArcArray<T, IxDyn>, selection: Option<&Selection>, ranks: &[usize], range: Summary) -> Vec<f64> {
    let (min, max) = (range.min, range.max);
    if !T::TYPE.is_float() && max - min < COUNTED_RANGE {
        let slots = (max - min) as usize + 1;
        let counts = fold_selected(
            array,
            selection,
            || vec![0u64; slots],
            |mut c, x| {
                c[(x - min) as usize] += 1;
                c
            },
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        );
        let mut values = Vec::with_capacity(ranks.len());
        let (mut below, mut slot) = (0u64, 0usize);
        for &rank in ranks {
            while below + counts[slot] <= rank as u64 {
                below += counts[slot];
                slot += 1;
            }
            values.push(min + slot as f64);
        }
        return values;
    }
    // Other types: one copy of the selected values, partially sorted around each rank.
    let mut copy: Vec<T> = match selection {
        Some(s) => Zip::from(array).and(s).par_fold(Vec::new, |mut v, x, &on| {
            if on != 0 && !x.to_f64().is_nan() {
                v.push(*x);
            }
            v
        }, append),
        None => Zip::from(array).par_fold(Vec::new, |mut v, x| {
            if !x.to_f64().is_nan() {
                v.push(*x);
            }
            v
        }, append),
    };
    let order = |a: &T, b: &T| a.partial_cmp(b).unwrap_or(Ordering::Equal);
    let mut values = Vec::with_capacity(ranks.len());
    let (mut rest, mut offset) = (copy.as_mut_slice(), 0);
    for &rank in ranks {
        let (_, value, after) = rest.select_nth_unstable_by(rank - offset, order);
        values.push(value.to_f64());
        offset = rank + 1;
        rest = after;
    }
    values
}

fn append<T>(mut a: Vec<T>, mut b: Vec<T>) -> Vec<T> {
    a.append(&mut b);
    a
}

/// A float32 image on `image`'s grid with `map(value)` where the selection (if any) is on and
/// `outside` elsewhere; geometry kept, unit and display windows dropped.
pub fn map_to_f32(image: &Image, selection: Option<&Selection>, outside: f32, map: impl Fn(f64) -> f64 + Send + Sync, tool: &str) -> Result<Image, ToolError> {
    let voxels = with_voxels!(image.voxels(), a => {
        let values = match selection {
            Some(s) => Zip::from(a).and(s).par_map_collect(|v, &on| if on != 0 { map(v.to_f64()) as f32 } else { outside }),
            None => Zip::from(a).par_map_collect(|v| map(v.to_f64()) as f32),
        };
        Voxels::F32(values.into_shared())
    });
    let mut out = image.with_voxels(voxels).map_err(|e| failed(tool, e.to_string()))?;
    out.metadata = metadata_for_new_values(&image.metadata);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voxels<T: medas_image::VoxelArray>(values: Vec<T>) -> Voxels {
        Voxels::from_fortran_vec(&[values.len()], values).unwrap()
    }

    #[test]
    fn percentiles_follow_numpy_linear_for_counted_and_copied_types() {
        // numpy.percentile([7, 1, 3, 3, 10], [0, 10, 50, 62.5, 100]) = [1, 1.8, 3, 5, 10]
        let expected = vec![1.0, 1.8, 3.0, 5.0, 10.0];
        let qs = [0.0, 10.0, 50.0, 62.5, 100.0];
        let integers = percentiles(&voxels(vec![7i16, 1, 3, 3, 10]), None, &qs).unwrap();
        let floats = percentiles(&voxels(vec![7.0f32, 1.0, f32::NAN, 3.0, 3.0, 10.0]), None, &qs).unwrap();
        for (got, want) in integers.iter().chain(&floats).zip(expected.iter().chain(&expected)) {
            assert!((got - want).abs() < 1e-12, "{got} vs {want}");
        }
        assert!(percentiles(&voxels(vec![f64::NAN]), None, &qs).is_none());
    }

    #[test]
    fn selection_limits_moments_and_percentiles() {
        let values = voxels(vec![1u8, 2, 3, 100]);
        let selection = ArcArray::from_shape_vec(IxDyn(&[4]), vec![1u8, 1, 1, 0]).unwrap();
        let s = summary(&values, Some(&selection));
        assert_eq!((s.count, s.min, s.max, s.mean), (3, 1.0, 3.0, 2.0));
        assert!((std_about(&values, Some(&selection), &s) - (2.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(percentiles(&values, Some(&selection), &[50.0, 100.0]).unwrap(), vec![2.0, 3.0]);
    }
}
