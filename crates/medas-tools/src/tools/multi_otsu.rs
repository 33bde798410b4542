//! `preprocess.multi_otsu`: the thresholds of `skimage.filters.threshold_multiotsu` (the same
//! histogram as the Otsu tool, the same single-precision search) and the class image
//! `numpy.digitize(image, thresholds)` gives.

use super::intensity_stats::{failed, take_greyscale};
use super::threshold::Histogram;
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::table::Table;
use crate::tools::metadata_for_new_values;
use medas_image::{Scalar, Voxels, with_voxels};
use ndarray::Zip;
use rayon::prelude::*;
use std::sync::Arc;

/// Most threshold combinations the exhaustive search may try (about a second on two cores).
const MAX_COMBINATIONS: f64 = 1e9;

/// skimage's lookup table of `S(i, j)^2 / P(i, j)` over bin ranges `i..=j` (P: probability,
/// S: first moment with bin index as value), upper triangle stored row after row, in f32 and
/// in skimage's order of operations so that ties break the same way.
struct VarianceTable {
    bins: usize,
    values: Vec<f32>,
}

impl VarianceTable {
    fn new(prob: &[f32]) -> VarianceTable {
        let bins = prob.len();
        let (mut zeroth, mut first) = (vec![0f32; bins], vec![0f32; bins]);
        // skimage starts the first moment at prob[0] (not 0 * prob[0]); kept for parity.
        zeroth[0] = prob[0];
        first[0] = prob[0];
        let mut values = vec![0f32; bins * (bins + 1) / 2];
        for i in 1..bins {
            zeroth[i] = zeroth[i - 1] + prob[i];
            first[i] = first[i - 1] + i as f32 * prob[i];
            if zeroth[i] > 0.0 {
                values[i] = first[i] * first[i] / zeroth[i];
            }
        }
        let mut at = bins;
        for i in 1..bins {
            for j in i..bins {
                let weight = zeroth[j] - zeroth[i - 1];
                if weight > 0.0 {
                    let moment = first[j] - first[i - 1];
                    values[at] = moment * moment / weight;
                }
                at += 1;
            }
        }
        VarianceTable { bins, values }
    }

    #[inline]
    fn get(&self, i: usize, j: usize) -> f32 {
        self.values[i * (2 * self.bins - i + 1) / 2 + j - i]
    }

    /// The criterion of thresholds `t` (ascending bin indices), summed in skimage's order.
    fn sigma(&self, t: &[usize]) -> f32 {
        let last = t.len() - 1;
        let mut sigma = self.get(0, t[0]) + self.get(t[last] + 1, self.bins - 1);
        for k in 0..last {
            sigma += self.get(t[k] + 1, t[k + 1]);
        }
        sigma
    }

    /// The first maximum, in lexicographic order, among the combinations starting with `chosen`.
    fn search(&self, chosen: &mut Vec<usize>, count: usize, best: &mut (f32, Vec<usize>)) {
        let level = chosen.len();
        if level == count {
            let sigma = self.sigma(chosen);
            if sigma > best.0 {
                *best = (sigma, chosen.clone());
            }
            return;
        }
        let start = chosen.last().map_or(0, |t| t + 1);
        for t in start..self.bins - count + level {
            chosen.push(t);
            self.search(chosen, count, best);
            chosen.pop();
        }
    }
}

/// The bins after which skimage's threshold_multiotsu puts its `classes - 1` thresholds,
/// or why there are none. Parallel over the first threshold; the first maximum wins, as in
/// skimage's sequential search.
pub fn multi_otsu_bins(counts: &[u64], classes: usize) -> Result<Vec<usize>, String> {
    let total: u64 = counts.iter().sum();
    let prob: Vec<f32> = counts.iter().map(|&c| (c as f64 / total as f64) as f32).collect();
    let occupied: Vec<usize> = (0..prob.len()).filter(|&b| prob[b] != 0.0).collect();
    if occupied.len() < classes {
        return Err(format!(
            "after binning, the image has only {} distinct values, too few for {classes} classes (try more bins)",
            occupied.len()
        ));
    }
    if occupied.len() == classes {
        return Ok(occupied[..classes - 1].to_vec());
    }
    let count = classes - 1;
    let table = VarianceTable::new(&prob);
    let firsts: Vec<(f32, Vec<usize>)> = (0..prob.len() - count)
        .into_par_iter()
        .map(|t0| {
            let mut best = (f32::NEG_INFINITY, Vec::new());
            table.search(&mut vec![t0], count, &mut best);
            best
        })
        .collect();
    let best = firsts.into_iter().fold((0f32, Vec::new()), |best, next| if next.0 > best.0 { next } else { best });
    Ok(best.1)
}

/// log10-free estimate of C(n, k), the number of combinations the search tries.
fn combinations(n: usize, k: usize) -> f64 {
    (0..k).fold(1.0, |c, i| c * (n - i) as f64 / (i + 1) as f64)
}

/// `numpy.digitize(x, thresholds)`: how many thresholds are <= x (NaN: all of them), as uint8.
fn digitize(voxels: &Voxels, thresholds: &[f64]) -> Voxels {
    let class = |x: f64| if x.is_nan() { thresholds.len() as u8 } else { thresholds.iter().take_while(|&&t| t <= x).count() as u8 };
    with_voxels!(voxels, a => Voxels::U8(Zip::from(a).par_map_collect(|v| class(v.to_f64())).into_shared()))
}

pub struct MultiOtsu(ToolSpec);

impl MultiOtsu {
    fn new() -> MultiOtsu {
        MultiOtsu(
            ToolSpec::new(
                "preprocess.multi_otsu",
                Category::Preprocess,
                "Multi-Otsu thresholds",
                "The classes - 1 thresholds that maximise the between-class variance of a histogram of \
                 `bins` equal bins over the image's [min, max] (finite values), found by the same \
                 exhaustive single-precision search as skimage.filters.threshold_multiotsu(image, classes, \
                 nbins) on a float image, so the same bin centres come out; like preprocess.otsu_threshold, \
                 integer images are binned into `bins` bins too (skimage uses one bin per integer value \
                 for them). Also returns the class of every voxel, numpy.digitize(image, thresholds): 0 \
                 below the first threshold, k from the k-th on (uint8; NaN gets the last class). Refuses \
                 images with fewer distinct binned values than classes, and searches of more than 1e9 \
                 threshold combinations.",
            )
            // Version 2: the thresholds became a table (they were a 1-D image).
            .version(2)
            .param(ParamSpec::int("classes", "Number of classes (thresholds + 1).").range(2.0, 32.0).default(3).tunable())
            .param(ParamSpec::int("bins", "Number of histogram bins over [min, max].").range(2.0, 4096.0).default(256))
            .input(PortSpec::new("image", PortType::Image, "A greyscale image."))
            .output(PortSpec::new("labels", PortType::LabelImage, "The class of each voxel, 0 to classes - 1 (uint8)."))
            .output(PortSpec::new(
                "thresholds",
                PortType::Table,
                "The thresholds in ascending order: a table of classes - 1 rows with one column, threshold.",
            )),
        )
    }
}

impl Tool for MultiOtsu {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_greyscale(&mut inputs, id, "image")?;
        let (classes, bins) = (params.int("classes")?.max(2) as usize, params.int("bins")?.max(2) as usize);
        let tries = combinations(bins - 1, classes - 1);
        if tries > MAX_COMBINATIONS {
            let message = format!("{classes} classes over {bins} bins means {tries:.2e} threshold combinations, more than 1e9; use fewer classes or bins");
            return Err(failed(id, message));
        }
        let histogram = Histogram::of(image.voxels(), bins).ok_or_else(|| {
            let stats = image.voxels().stats();
            match stats.count {
                0 => failed(id, "the image has no finite values, so no thresholds"),
                _ => failed(id, format!("every finite value of the image is {}, so no thresholds", stats.min)),
            }
        })?;
        context.progress(0.3);
        context.check_cancelled(id)?;
        let chosen = multi_otsu_bins(&histogram.counts, classes).map_err(|m| failed(id, m))?;
        let thresholds: Vec<f64> = chosen.iter().map(|&b| histogram.centre(b)).collect();
        context.progress(0.7);
        context.check_cancelled(id)?;
        let fail = |e: medas_image::ImageError| failed(id, e.to_string());
        let mut labels = image.with_voxels(digitize(image.voxels(), &thresholds)).map_err(fail)?;
        labels.metadata = metadata_for_new_values(&image.metadata);
        let list = Table::new().with_numbers("threshold", thresholds).map_err(|m| failed(id, m))?;
        Ok(Outputs::from([("labels".to_string(), Data::Image(labels)), ("thresholds".to_string(), Data::Table(list))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(MultiOtsu::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_separated_clusters_split_between_them() {
        // Bins 0-1, 5-6 and 9: thresholds after bins 1 (or anywhere in the empty gap) and 6.
        let counts = [10, 5, 0, 0, 0, 8, 8, 0, 0, 12];
        let bins = multi_otsu_bins(&counts, 3).unwrap();
        assert_eq!(bins.len(), 2);
        assert!((1..5).contains(&bins[0]) && (6..9).contains(&bins[1]), "{bins:?}");
    }

    #[test]
    fn as_many_values_as_classes_split_between_them_and_fewer_are_refused() {
        assert_eq!(multi_otsu_bins(&[3, 0, 4, 0, 5], 3).unwrap(), vec![0, 2]);
        let e = multi_otsu_bins(&[3, 0, 4, 0, 0], 3).unwrap_err();
        assert!(e.contains("only 2 distinct values, too few for 3 classes"), "{e}");
    }

    #[test]
    fn digitize_counts_thresholds_at_or_below() {
        let voxels = Voxels::from_fortran_vec(&[5], vec![0.0f32, 1.0, 1.5, 2.0, f32::NAN]).unwrap();
        let classes = digitize(&voxels, &[1.0, 2.0]);
        assert_eq!(classes.as_array::<u8>().unwrap().iter().copied().collect::<Vec<_>>(), vec![0, 1, 1, 2, 2]);
        assert_eq!(combinations(255, 2), 255.0 * 254.0 / 2.0);
    }
}
