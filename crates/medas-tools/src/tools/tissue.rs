//! `pathology.tissue_mask`: tissue versus bright background on a slide image, by Otsu's
//! threshold on the grey level (tissue is darker, as histolab's tissue filters) or on the HSV
//! saturation (tissue is coloured).

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::rgb::Rgb;
use crate::tools::threshold::Histogram;
use crate::tools::{bad_param, metadata_for_new_values};
use medas_image::Image;
use rayon::prelude::*;
use std::sync::Arc;

/// skimage.color.rgb2gray: the Rec. 709 luminance of the channel values in [0, 1].
#[inline]
pub fn grey(rgb: [f64; 3]) -> f64 {
    0.2125 * rgb[0] + 0.7154 * rgb[1] + 0.0721 * rgb[2]
}

/// skimage.color.rgb2hsv's saturation: (max - min) / max, 0 where max = min.
#[inline]
pub fn saturation(rgb: [f64; 3]) -> f64 {
    let max = rgb[0].max(rgb[1]).max(rgb[2]);
    let delta = max - rgb[0].min(rgb[1]).min(rgb[2]);
    if delta == 0.0 { 0.0 } else { delta / max }
}

/// [`Histogram::bin`] with its divisions done once: the same scaling and the same edges, so
/// the same bins, at a fraction of the cost per value.
struct Binner {
    min: f64,
    scale: f64,
    edges: Vec<f64>,
}

impl Binner {
    fn new(histogram: &Histogram) -> Binner {
        let bins = histogram.counts.len();
        let scale = bins as f64 / (histogram.max - histogram.min);
        Binner { min: histogram.min, scale, edges: (0..=bins).map(|b| histogram.edge(b)).collect() }
    }

    #[inline]
    fn bin(&self, x: f64) -> usize {
        let bins = self.edges.len() - 1;
        let mut b = (((x - self.min) * self.scale).max(0.0) as usize).min(bins - 1);
        if b > 0 && x < self.edges[b] {
            b -= 1;
        } else if b + 1 < bins && x >= self.edges[b + 1] {
            b += 1;
        }
        b
    }
}

/// Pixels per sequential block of the parallel passes.
const BLOCK: usize = 1 << 15;

const METHODS: [&str; 2] = ["grey", "saturation"];

pub struct TissueMask(ToolSpec);

impl TissueMask {
    fn new() -> TissueMask {
        TissueMask(
            ToolSpec::new(
                "pathology.tissue_mask",
                Category::Pathology,
                "Tissue mask",
                "Separates tissue from the bright background of a slide image (typically a thumbnail or \
                 a low-resolution level) by Otsu's threshold, computed as skimage.filters.threshold_otsu \
                 (bins equal bins over the value range, centre of the best bin). grey: the grey level of \
                 skimage.color.rgb2gray (0.2125 R + 0.7154 G + 0.0721 B, channels scaled to [0, 1]); tissue \
                 is grey < threshold, the relation of histolab's OtsuThreshold filter. saturation: the HSV \
                 saturation of skimage.color.rgb2hsv; tissue is saturation > threshold (less fooled by \
                 dark but grey pen marks and dust). No morphology is applied: follow with fill holes or \
                 an opening as needed. The mask is uint8 0/1 on the image's grid.",
            )
            .param(ParamSpec::choice("method", "The value thresholded.", &METHODS).default("grey"))
            .param(ParamSpec::int("bins", "Histogram bins for Otsu's threshold.").range(2.0, 65536.0).default(256))
            .input(PortSpec::new("image", PortType::Image, "An RGB slide image (uint8, uint16 or float in [0, 1])."))
            .output(PortSpec::new("mask", PortType::LabelImage, "1 on tissue, 0 on background (uint8)."))
            .output(PortSpec::new("threshold", PortType::Scalar, "Otsu's threshold of the grey level or saturation.")),
        )
    }
}

impl Tool for TissueMask {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let bins = usize::try_from(params.int("bins")?).map_err(|_| bad_param(id, "bins", "must be at least 2"))?;
        let by_saturation = params.text("method")? == "saturation";
        let (mask, threshold) = tissue_mask(&image, by_saturation, bins, id)?;
        Ok(Outputs::from([("mask".to_string(), Data::Image(mask)), ("threshold".to_string(), Data::Scalar(threshold))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(TissueMask::new()) } }

/// The tissue mask (uint8 0/1 on the image's grid) of an RGB slide image and Otsu's threshold
/// of the grey level (tissue below) or of the saturation (tissue above), as the tool
/// `pathology.tissue_mask` describes; shared by the tools that filter by tissue.
pub fn tissue_mask(image: &Image, by_saturation: bool, bins: usize, tool: &str) -> Result<(Image, f64), ToolError> {
    let rgb = Rgb::of(image, tool)?;
    let pixels = rgb.pixels(|v| v);
    let measure = |k: usize| if by_saturation { saturation(pixels.get(k)) } else { grey(pixels.get(k)) };
    // Three passes that recompute the value (a few products) instead of storing it: range,
    // histogram, mask.
    // Sequential loops over blocks of pixels inside each parallel task, so the per-pixel
    // work is inlined (a rayon adaptor chain per pixel cost 3x the arithmetic).
    let blocks = |n: usize| (0..n.div_ceil(BLOCK)).into_par_iter().map(move |b| b * BLOCK..((b + 1) * BLOCK).min(n));
    let (min, max) = blocks(pixels.len())
        .map(|block| {
            block.map(measure).filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
        })
        .reduce(|| (f64::INFINITY, f64::NEG_INFINITY), |a, b| (a.0.min(b.0), a.1.max(b.1)));
    if min >= max {
        let what = if by_saturation { "saturation" } else { "grey level" };
        return Err(rgb.failed(format!("the {what} has fewer than two distinct finite values, so it has no Otsu threshold")));
    }
    let mut histogram = Histogram { min, max, counts: vec![0; bins] };
    let binner = Binner::new(&histogram);
    histogram.counts = blocks(pixels.len())
        .map(|block| {
            let mut counts = vec![0u64; bins];
            block.map(measure).filter(|v| v.is_finite()).for_each(|v| counts[binner.bin(v)] += 1);
            counts
        })
        .reduce(|| vec![0u64; bins], |mut a, b| {
            a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
            a
        });
    let (_, threshold) = histogram.otsu();
    let inside = |v: f64| if by_saturation { v > threshold } else { v < threshold };
    let mask: Vec<u8> = (0..pixels.len()).into_par_iter().map(|k| inside(measure(k)) as u8).collect();
    let mut mask = rgb.image_from(mask, 1)?;
    mask.metadata = metadata_for_new_values(&image.metadata);
    Ok((mask, threshold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_and_saturation_follow_skimage() {
        assert_eq!(grey([1.0, 1.0, 1.0]), 1.0);
        assert_eq!(saturation([0.5, 0.5, 0.5]), 0.0);
        assert_eq!(saturation([0.0; 3]), 0.0);
        assert!((saturation([0.8, 0.4, 0.2]) - 0.75).abs() < 1e-15);
    }

    #[test]
    fn binner_bins_as_the_histogram() {
        let histogram = Histogram { min: 0.1, max: 0.9, counts: vec![0; 7] };
        let binner = Binner::new(&histogram);
        for k in 0..=1000 {
            let x = 0.1 + 0.8 * k as f64 / 1000.0;
            assert_eq!(binner.bin(x), histogram.bin(x), "{x}");
        }
    }
}
