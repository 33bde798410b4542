//! `preprocess.histogram_match`: ITK's HistogramMatchingImageFilter (Nyúl-style piecewise
//! linear matching of histogram quantiles), with its parameters and defaults.

use super::intensity_stats::{self as stats, failed, fold_selected, take_greyscale};
use crate::context::Context;
use crate::data::{Data, Inputs, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use medas_image::{Image, with_voxels};
use std::sync::Arc;

/// What ITK takes from one image: its range, the threshold below which voxels are left out of
/// the histogram (the mean, or the minimum), and the quantiles of the histogram above it.
#[derive(Debug, Clone, PartialEq)]
struct Landmarks {
    min: f64,
    max: f64,
    /// `[threshold, quantile(1/(m+1)), ..., quantile(m/(m+1)), max]` for m match points.
    points: Vec<f64>,
}

impl Landmarks {
    fn of(image: &Image, levels: usize, match_points: usize, at_mean: bool, what: &str, tool: &str) -> Result<Landmarks, ToolError> {
        let summary = stats::summary(image.voxels(), None);
        if summary.count == 0 || summary.min >= summary.max {
            let why = if summary.count == 0 { "has no non-NaN value".to_string() } else { format!("is constant ({})", summary.min) };
            return Err(failed(tool, format!("the {what} {why}, so it has no histogram to match")));
        }
        let (min, max) = (summary.min, summary.max);
        let threshold = if at_mean { summary.mean } else { min };
        let counts = counts_above(image, threshold, max, levels);
        let histogram = ItkHistogram { threshold, min, max, counts };
        let mut points = vec![threshold];
        let delta = 1.0 / (match_points as f64 + 1.0);
        points.extend((1..=match_points).map(|j| histogram.quantile(j as f64 * delta)));
        points.push(max);
        Ok(Landmarks { min, max, points })
    }
}

/// Counts of the values in `[threshold, max]` in `levels` equal bins from the threshold (the
/// maximum in the last bin), as ITK's ConstructHistogramFromIntensityRange fills them.
fn counts_above(image: &Image, threshold: f64, max: f64, levels: usize) -> Vec<f64> {
    let scale = levels as f64 / (max - threshold);
    let counts = with_voxels!(image.voxels(), a => fold_selected(
        a,
        None,
        || vec![0u64; levels],
        |mut c, x| {
            if x >= threshold && x <= max {
                c[(((x - threshold) * scale) as usize).min(levels - 1)] += 1;
            }
            c
        },
        |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        },
    ));
    counts.into_iter().map(|c| c as f64).collect()
}

/// ITK's histogram over `[threshold, max]` whose first bin is widened down to the image's
/// minimum (so that quantiles falling in it interpolate over the whole low range, as ITK's).
struct ItkHistogram {
    threshold: f64,
    min: f64,
    max: f64,
    counts: Vec<f64>,
}

impl ItkHistogram {
    fn bin_bounds(&self, b: usize) -> (f64, f64) {
        let levels = self.counts.len();
        let width = (self.max - self.threshold) / levels as f64;
        let low = if b == 0 { self.min } else { self.threshold + b as f64 * width };
        let high = if b + 1 == levels { self.max } else { self.threshold + (b + 1) as f64 * width };
        (low, high)
    }

    /// itk::Statistics::Histogram::Quantile: walks from the nearer end to the bin where the
    /// cumulative fraction crosses `p` and interpolates linearly inside that bin.
    fn quantile(&self, p: f64) -> f64 {
        let total: f64 = self.counts.iter().sum();
        let levels = self.counts.len();
        let (mut cumulated, mut previous, mut fraction, mut bin) = (0.0, 0.0, 0.0, 0);
        if p < 0.5 {
            for (b, &count) in self.counts.iter().enumerate() {
                cumulated += count;
                (previous, bin) = (fraction, b);
                fraction = cumulated / total;
                if fraction >= p {
                    break;
                }
            }
            let (low, high) = self.bin_bounds(bin);
            low + (p - previous) / (self.counts[bin] / total) * (high - low)
        } else {
            fraction = 1.0;
            for b in (0..levels).rev() {
                cumulated += self.counts[b];
                (previous, bin) = (fraction, b);
                fraction = 1.0 - cumulated / total;
                if fraction <= p {
                    break;
                }
            }
            let (low, high) = self.bin_bounds(bin);
            high - (previous - p) / (self.counts[bin] / total) * (high - low)
        }
    }
}

/// The piecewise-linear map from source to reference intensities, as ITK applies it.
struct Matching {
    source: Landmarks,
    reference: Landmarks,
    gradients: Vec<f64>,
    lower_gradient: f64,
    upper_gradient: f64,
}

/// ITK's `Math::NotAlmostEquals(d, 0.0)` for the denominators involved.
fn slope(rise: f64, run: f64) -> f64 {
    if run.abs() > 0.1 * f64::EPSILON { rise / run } else { 0.0 }
}

impl Matching {
    fn new(source: Landmarks, reference: Landmarks) -> Matching {
        let (s, r) = (&source.points, &reference.points);
        let gradients = (0..s.len() - 1).map(|j| slope(r[j + 1] - r[j], s[j + 1] - s[j])).collect();
        let lower_gradient = slope(r[0] - reference.min, s[0] - source.min);
        let last = s.len() - 1;
        // The last source point is the source maximum, so ITK's upper gradient is always 0.
        let upper_gradient = slope(r[last] - reference.max, s[last] - source.max);
        Matching { source, reference, gradients, lower_gradient, upper_gradient }
    }

    #[inline]
    fn map(&self, x: f64) -> f64 {
        let s = &self.source.points;
        let j = s.iter().position(|&p| x < p).unwrap_or(s.len());
        if j == 0 {
            self.reference.min + (x - self.source.min) * self.lower_gradient
        } else if j == s.len() {
            self.reference.max + (x - self.source.max) * self.upper_gradient
        } else {
            self.reference.points[j - 1] + (x - s[j - 1]) * self.gradients[j - 1]
        }
    }
}

pub struct HistogramMatch(ToolSpec);

impl HistogramMatch {
    fn new() -> HistogramMatch {
        HistogramMatch(
            ToolSpec::new(
                "preprocess.histogram_match",
                Category::Preprocess,
                "Histogram matching",
                "Maps the image's intensities onto the reference image's as SimpleITK's \
                 HistogramMatchingImageFilter (same parameters and defaults): each image's histogram \
                 of `levels` bins over [threshold, max] (threshold = mean intensity, or the minimum when \
                 threshold_at_mean is off), `match_points` quantiles of it, and a piecewise-linear map \
                 through (threshold, quantiles, max) of both images, extended below the threshold down to \
                 the minimum; values at or above the source maximum map to the reference maximum. \
                 Computed in double precision over non-NaN voxels; float32 output on the image's grid. \
                 The reference may have any grid and voxel type.",
            )
            .param(ParamSpec::int("levels", "Number of histogram bins.").range(2.0, 65536.0).default(256))
            .param(ParamSpec::int("match_points", "Number of quantiles matched between the threshold and the maximum.").range(1.0, 1000.0).default(1).tunable())
            .param(ParamSpec::bool("threshold_at_mean", "Leave voxels below the mean (background) out of the histograms.").default(true))
            .input(PortSpec::new("image", PortType::Image, "The greyscale image to map."))
            .input(PortSpec::new("reference", PortType::Image, "The greyscale image whose histogram to match."))
            .output(PortSpec::new("image", PortType::Image, "The matched image, float32.")),
        )
    }
}

impl Tool for HistogramMatch {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_greyscale(&mut inputs, id, "image")?;
        let reference = take_greyscale(&mut inputs, id, "reference")?;
        let levels = params.int("levels")?.max(2) as usize;
        let points = params.int("match_points")?.max(1) as usize;
        let at_mean = params.bool("threshold_at_mean")?;
        let target = Landmarks::of(&reference, levels, points, at_mean, "reference", id)?;
        context.progress(0.3);
        context.check_cancelled(id)?;
        let source = Landmarks::of(&image, levels, points, at_mean, "image", id)?;
        context.progress(0.6);
        context.check_cancelled(id)?;
        let matching = Matching::new(source, target);
        let mut matched = stats::map_to_f32(&image, None, 0.0, |x| matching.map(x), id)?;
        // The values are now in the reference's unit.
        matched.metadata = image.metadata.clone();
        for key in [medas_image::keys::VALUE_UNIT, medas_image::keys::WINDOWS] {
            match reference.metadata.get(key) {
                Some(value) => matched.metadata.set(key, value.clone()),
                None => _ = matched.metadata.remove(key),
            }
        }
        Ok(Outputs::from([("image".to_string(), Data::Image(matched))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(HistogramMatch::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(counts: Vec<f64>) -> ItkHistogram {
        ItkHistogram { threshold: 0.0, min: -10.0, max: 4.0, counts }
    }

    #[test]
    fn quantiles_interpolate_inside_the_crossing_bin_from_the_nearer_end() {
        // Bins of width 1 over [0, 4]: [-10, 1), [1, 2), [2, 3), [3, 4].
        let h = histogram(vec![1.0, 1.0, 1.0, 1.0]);
        assert_eq!(h.quantile(0.5), 2.0);
        assert_eq!(h.quantile(0.75), 3.0);
        assert_eq!(h.quantile(0.375), 1.5);
        // A quantile in the first bin spans down to the image minimum, as ITK's widened bin.
        assert_eq!(h.quantile(0.125), -10.0 + 0.5 * 11.0);
    }

    #[test]
    fn the_map_is_piecewise_linear_through_the_landmarks() {
        let source = Landmarks { min: 0.0, max: 10.0, points: vec![2.0, 4.0, 10.0] };
        let reference = Landmarks { min: 100.0, max: 200.0, points: vec![120.0, 150.0, 200.0] };
        let m = Matching::new(source, reference);
        assert_eq!([m.map(0.0), m.map(1.0), m.map(2.0), m.map(3.0), m.map(7.0), m.map(10.0), m.map(12.0)], [
            100.0, 110.0, 120.0, 135.0, 175.0, 200.0, 200.0
        ]);
        assert!(m.map(f64::NAN).is_nan());
    }
}
