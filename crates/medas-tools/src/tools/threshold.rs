//! `preprocess.otsu_threshold`: Otsu's threshold as `skimage.filters.threshold_otsu` computes it
//! from a histogram, and the mask it gives.

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::{bad_param, metadata_for_new_values};
use medas_image::{Scalar, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn, Zip};
use rayon::prelude::*;
use std::sync::Arc;

/// Counts of the finite values in `counts.len()` equal bins over `[min, max]`, binned as
/// `numpy.histogram(values, bins, range=(min, max))` bins them: bin `b` holds
/// `edge(b) <= x < edge(b + 1)`, the last bin also holds `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub counts: Vec<u64>,
}

impl Histogram {
    /// The histogram of the finite voxels over their own range, or `None` when there are
    /// fewer than two distinct finite values (no range to bin). `bins` must be at least 1.
    pub fn of(voxels: &Voxels, bins: usize) -> Option<Histogram> {
        let stats = voxels.stats();
        if stats.count == 0 || stats.min >= stats.max {
            return None;
        }
        let empty = Histogram { min: stats.min, max: stats.max, counts: vec![0; bins.max(1)] };
        Some(with_voxels!(voxels, a => empty.count_array(a)))
    }

    fn count_array<T: Scalar>(self, array: &ArcArray<T, IxDyn>) -> Histogram {
        let span = self.max - self.min;
        let counts = if !T::TYPE.is_float() && span < 65536.0 {
            // Integers over a short range: count every value once (as skimage's bincount), then
            // put each value's count in its bin, instead of binning every voxel.
            let per_value = tally(array, span as usize + 1, |x| (x - self.min) as usize);
            let mut counts = vec![0; self.counts.len()];
            for (k, &n) in per_value.iter().enumerate().filter(|(_, n)| **n > 0) {
                counts[self.bin(self.min + k as f64)] += n;
            }
            counts
        } else {
            tally(array, self.counts.len(), |x| self.bin(x))
        };
        Histogram { counts, ..self }
    }

    /// Lower edge of bin `b` (`edge(bins)` is `max`), as `numpy.linspace(min, max, bins + 1)`.
    pub fn edge(&self, b: usize) -> f64 {
        let bins = self.counts.len();
        if b >= bins { self.max } else { self.min + b as f64 * ((self.max - self.min) / bins as f64) }
    }

    /// Centre of bin `b`, the value skimage reports for it.
    pub fn centre(&self, b: usize) -> f64 {
        (self.edge(b) + self.edge(b + 1)) / 2.0
    }

    /// The bin of a finite value within `[min, max]`: estimated by scaling, then corrected
    /// against the edges so that rounding never moves a value across one.
    pub fn bin(&self, x: f64) -> usize {
        let bins = self.counts.len();
        let scaled = (x - self.min) * (bins as f64 / (self.max - self.min));
        let mut b = (scaled.max(0.0) as usize).min(bins - 1);
        if b > 0 && x < self.edge(b) {
            b -= 1;
        } else if b + 1 < bins && x >= self.edge(b + 1) {
            b += 1;
        }
        b
    }

    /// Otsu's threshold: the centre of the bin `k` that maximises the between-class variance
    /// `w1(k) w2(k+1) (m1(k) - m2(k+1))^2`, where class 1 is bins `..=k` and class 2 bins
    /// `k+1..` (weights are voxel counts, means use the bin centres); the first maximum wins.
    /// Returns the bin and its centre.
    pub fn otsu(&self) -> (usize, f64) {
        let bins = self.counts.len();
        let centres: Vec<f64> = (0..bins).map(|b| self.centre(b)).collect();
        // Class 2 sums from the top, as cumulative sums over the reversed histogram.
        let mut upper_weight = vec![0.0; bins + 1];
        let mut upper_sum = vec![0.0; bins + 1];
        for b in (0..bins).rev() {
            upper_weight[b] = upper_weight[b + 1] + self.counts[b] as f64;
            upper_sum[b] = upper_sum[b + 1] + self.counts[b] as f64 * centres[b];
        }
        let (mut weight, mut sum) = (0.0, 0.0);
        let mut best = (0, f64::NEG_INFINITY);
        for k in 0..bins.saturating_sub(1) {
            weight += self.counts[k] as f64;
            sum += self.counts[k] as f64 * centres[k];
            let (mean1, mean2) = (sum / weight, upper_sum[k + 1] / upper_weight[k + 1]);
            let variance = weight * upper_weight[k + 1] * (mean1 - mean2).powi(2);
            // NaN (an empty class) never wins; skimage's bins never leave a class empty either.
            if variance > best.1 {
                best = (k, variance);
            }
        }
        (best.0, centres[best.0])
    }
}

/// Counts of the finite values by `slot(value)` (which must be below `slots`), in parallel.
fn tally<T: Scalar>(array: &ArcArray<T, IxDyn>, slots: usize, slot: impl Fn(f64) -> usize + Sync) -> Vec<u64> {
    let add = |mut counts: Vec<u64>, value: &T| {
        let x = value.to_f64();
        if x.is_finite() {
            counts[slot(x)] += 1;
        }
        counts
    };
    match array.as_slice_memory_order() {
        Some(values) => values
            .par_chunks(1 << 16)
            .fold(|| vec![0u64; slots], |counts, chunk| chunk.iter().fold(counts, add))
            .reduce(|| vec![0u64; slots], |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            }),
        None => array.iter().fold(vec![0u64; slots], add),
    }
}

/// 1 where `value > threshold` (`above`) or `value <= threshold` (otherwise), else 0; NaN is 0.
pub fn threshold_mask(voxels: &Voxels, threshold: f64, above: bool) -> Voxels {
    fn mask<T: Scalar>(array: &ArcArray<T, IxDyn>, threshold: f64, above: bool) -> Voxels {
        let inside = |x: f64| if above { x > threshold } else { x <= threshold };
        Voxels::U8(Zip::from(array).par_map_collect(|v| inside(v.to_f64()) as u8).into_shared())
    }
    with_voxels!(voxels, a => mask(a, threshold, above))
}

pub struct OtsuThreshold(ToolSpec);

impl OtsuThreshold {
    fn new() -> OtsuThreshold {
        OtsuThreshold(
            ToolSpec::new(
                "preprocess.otsu_threshold",
                Category::Preprocess,
                "Otsu threshold",
                "Finds Otsu's threshold from a histogram of `bins` equal bins over the image's \
                 [min, max] (finite values only) and returns the centre of the bin that maximises \
                 the between-class variance, exactly as skimage.filters.threshold_otsu(image, nbins) \
                 does for float images; skimage ignores nbins for integer images and uses one bin per \
                 integer value, whereas this tool always uses `bins` (the two agree to within one bin \
                 width). The mask is image > threshold (inside = above) or image <= threshold \
                 (inside = below), uint8 0/1 with the image's geometry. An image with fewer than two \
                 distinct values has no threshold and is refused.",
            )
            .param(ParamSpec::int("bins", "Number of histogram bins over [min, max].").range(2.0, 65536.0).default(256).tunable())
            .param(ParamSpec::choice("inside", "Which side of the threshold the mask marks.", &["above", "below"]).default("above"))
            .input(PortSpec::new("image", PortType::Image, "A greyscale image."))
            .output(PortSpec::new("mask", PortType::LabelImage, "1 inside, 0 outside (uint8)."))
            .output(PortSpec::new("threshold", PortType::Scalar, "The threshold, in the image's unit.")),
        )
    }
}

impl Tool for OtsuThreshold {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let bins = usize::try_from(params.int("bins")?).map_err(|_| bad_param(id, "bins", "must be at least 2"))?;
        let failed = |message: String| ToolError::Failed { tool: id.clone(), message };
        if image.components() > 1 {
            return Err(failed(format!("needs a greyscale image, got {} components per voxel", image.components())));
        }
        let histogram = Histogram::of(image.voxels(), bins).ok_or_else(|| {
            let stats = image.voxels().stats();
            match stats.count {
                0 => failed("the image has no finite values, so it has no Otsu threshold".into()),
                _ => failed(format!("every finite value of the image is {}, so it has no Otsu threshold", stats.min)),
            }
        })?;
        context.progress(0.5);
        context.check_cancelled(id)?;
        let (_, threshold) = histogram.otsu();
        let mask = threshold_mask(image.voxels(), threshold, params.text("inside")? == "above");
        let mut mask = image.with_voxels(mask).map_err(|e| failed(e.to_string()))?;
        mask.metadata = metadata_for_new_values(&image.metadata);
        Ok(Outputs::from([("mask".to_string(), Data::Image(mask)), ("threshold".to_string(), Data::Scalar(threshold))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(OtsuThreshold::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    fn voxels(values: Vec<f32>) -> Voxels {
        Voxels::from_fortran_vec(&[values.len()], values).unwrap()
    }

    #[test]
    fn bins_follow_numpy_edges_and_the_maximum_lands_in_the_last_bin() {
        let histogram = Histogram::of(&voxels(vec![0.0, 0.25, 0.5, 0.74, 0.75, 1.0, f32::NAN]), 4).unwrap();
        assert_eq!(histogram.counts, vec![1, 1, 2, 2]);
        assert_eq!((histogram.edge(1), histogram.centre(3)), (0.25, 0.875));
    }

    #[test]
    fn two_clusters_split_between_them() {
        let mut values = vec![10.0; 50];
        values.extend([11.0, 12.0, 90.0, 91.0]);
        values.extend(vec![100.0; 30]);
        let histogram = Histogram::of(&voxels(values.clone()), 9).unwrap();
        let (bin, threshold) = histogram.otsu();
        // Bins are 10 wide from 10: every split in the empty bins 1..=7 gives the same variance as
        // splitting after bin 0, and the first maximum wins, as in numpy's argmax.
        assert_eq!((bin, threshold), (0, 15.0));
        let mask = threshold_mask(&voxels(values), threshold, true);
        assert_eq!(mask.as_array::<u8>().unwrap().iter().map(|&m| m as usize).sum::<usize>(), 32);
    }

    #[test]
    fn integers_counted_by_value_bin_as_floats_do() {
        let values: Vec<i16> = (0..5000).map(|k| ((k * 7919) % 3001 - 1000) as i16).collect();
        let floats: Vec<f32> = values.iter().map(|&v| v as f32).collect();
        let integers = Histogram::of(&Voxels::from_fortran_vec(&[5000], values).unwrap(), 37).unwrap();
        assert_eq!(integers, Histogram::of(&voxels(floats), 37).unwrap());
        assert_eq!(integers.counts.iter().sum::<u64>(), 5000);
    }

    #[test]
    fn constant_and_empty_images_have_no_histogram() {
        assert!(Histogram::of(&voxels(vec![3.0; 10]), 256).is_none());
        assert!(Histogram::of(&voxels(vec![f32::NAN; 3]), 256).is_none());
        assert!(Histogram::of(&voxels(vec![]), 256).is_none());
    }
}
