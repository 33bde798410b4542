//! `pathology.stain_normalize`: H&E stain normalisation of a slide image to a target image's
//! appearance, by Macenko et al. (ISBI 2009) or Reinhard et al. (IEEE CG&A 2001), with the
//! conventions and defaults of torchstain 1.4.1's numpy backend, or by Vahadane et al. (IEEE
//! TMI 2016) as staintools 2.1.2 (see `stain_vahadane`).

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::rgb::{Pixels, Rgb};
use crate::tools::stain::invert;
use crate::tools::stain_math::{Lab, percentile, symmetric_eigen};
use crate::tools::stain_vahadane::{VahadaneFit, VahadaneParams, vahadane_fit, vahadane_normalize};
use medas_image::Image;
use rayon::prelude::*;
use std::sync::Arc;

/// Macenko's parameters: transmitted light intensity, the percentile of extreme angles, and
/// the optical density below which a channel counts as transparent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MacenkoParams {
    pub io: f64,
    pub alpha: f64,
    pub beta: f64,
}

impl Default for MacenkoParams {
    /// torchstain's defaults: Io = 240, alpha = 1, beta = 0.15.
    fn default() -> MacenkoParams {
        MacenkoParams { io: 240.0, alpha: 1.0, beta: 0.15 }
    }
}

/// What Macenko's method estimates from one image.
#[derive(Debug, Clone, PartialEq)]
pub struct MacenkoFit {
    /// The unit optical-density vectors of haematoxylin (`[0]`) and eosin (`[1]`), R, G, B.
    pub stains: [[f64; 3]; 2],
    /// The 99th percentile of each stain's concentration over all pixels.
    pub max_concentrations: [f64; 2],
    /// Least-squares concentrations from optical density: the pseudo-inverse of `stains`.
    unmix: [[f64; 3]; 2],
}

impl MacenkoFit {
    #[inline]
    fn concentrations(&self, od: [f64; 3]) -> [f64; 2] {
        self.unmix.map(|row| row[0] * od[0] + row[1] * od[1] + row[2] * od[2])
    }
}

/// The pixels of an 8-bit RGB image as optical densities `-ln((v + 1) / io)`.
fn optical_density<'a>(rgb: &Rgb<'a>, io: f64) -> Pixels<'a, impl Fn(f64) -> f64 + Sync> {
    rgb.pixels(move |v| -((v * 255.0 + 1.0) / io).ln())
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Macenko's estimate: the plane of the two main principal directions of the optical densities
/// of stained pixels (every channel >= beta), the extreme angles in it (the alpha and 100 -
/// alpha percentiles) as the two stain vectors, haematoxylin the one with more red density.
pub fn macenko_fit<F: Fn(f64) -> f64 + Sync>(od: &Pixels<'_, F>, params: MacenkoParams) -> Result<MacenkoFit, String> {
    let stained: Vec<[f64; 3]> = (0..od.len()).into_par_iter().map(|k| od.get(k)).filter(|p| p.iter().all(|&v| v >= params.beta)).collect();
    if stained.len() < 2 {
        return Err(format!(
            "{} pixel(s) have an optical density of at least beta ({}) in every channel; Macenko's method needs at least 2",
            stained.len(),
            params.beta
        ));
    }
    let (values, vectors) = symmetric_eigen(covariance(&stained));
    let mut order = [0, 1, 2];
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let column = |c: usize| [vectors[0][c], vectors[1][c], vectors[2][c]];
    let (second, mut first) = (column(order[1]), column(order[2]));
    // An eigenvector's sign is arbitrary; the main one points into the positive octant, so the
    // angles below never cross the branch cut of atan2.
    if first.iter().sum::<f64>() < 0.0 {
        first = first.map(|v| -v);
    }
    let mut angles: Vec<f64> = stained.par_iter().map(|&p| dot(p, first).atan2(dot(p, second))).collect();
    let (low, high) = (percentile(&mut angles, params.alpha), percentile(&mut angles, 100.0 - params.alpha));
    let direction = |phi: f64| std::array::from_fn(|c| second[c] * phi.cos() + first[c] * phi.sin());
    let (v_low, v_high): ([f64; 3], [f64; 3]) = (direction(low), direction(high));
    let stains = if v_low[0] > v_high[0] { [v_low, v_high] } else { [v_high, v_low] };
    let unmix = pseudo_inverse(&stains).ok_or("the two stain vectors found are parallel (alpha too close to 50?)")?;
    let mut fit = MacenkoFit { stains, max_concentrations: [0.0; 2], unmix };
    let (mut h, mut e): (Vec<f64>, Vec<f64>) = (0..od.len()).into_par_iter().map(|k| fit.concentrations(od.get(k))).map(|c| (c[0], c[1])).unzip();
    fit.max_concentrations = [percentile(&mut h, 99.0), percentile(&mut e, 99.0)];
    if !fit.max_concentrations.iter().all(|&m| m > 0.0) {
        return Err(format!("the 99th percentiles of the stain concentrations are {:?}; both must be positive", fit.max_concentrations));
    }
    Ok(fit)
}

/// [`macenko_fit`] of an 8-bit RGB image, the estimate `pathology.stain_normalize` makes of
/// the image and of the target.
pub fn macenko_fit_image(image: &Image, params: MacenkoParams) -> Result<MacenkoFit, ToolError> {
    let rgb = Rgb::of_u8(image, "pathology.stain_normalize")?;
    macenko_fit(&optical_density(&rgb, params.io), params).map_err(|message| rgb.failed(message))
}

/// Covariance of the points (normalised by n - 1, as numpy.cov).
fn covariance(points: &[[f64; 3]]) -> [[f64; 3]; 3] {
    let n = points.len() as f64;
    let sum = points.par_iter().copied().reduce(|| [0.0; 3], |a, b| std::array::from_fn(|c| a[c] + b[c]));
    let mean = sum.map(|s| s / n);
    let products = points
        .par_iter()
        .map(|p| {
            let d: [f64; 3] = std::array::from_fn(|c| p[c] - mean[c]);
            [d[0] * d[0], d[0] * d[1], d[0] * d[2], d[1] * d[1], d[1] * d[2], d[2] * d[2]]
        })
        .reduce(|| [0.0; 6], |a, b| std::array::from_fn(|c| a[c] + b[c]))
        .map(|s| s / (n - 1.0));
    let [xx, xy, xz, yy, yz, zz] = products;
    [[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]]
}

/// `(SᵀS)⁻¹Sᵀ` for the 3x2 matrix whose columns are `stains`: least-squares unmixing, as
/// numpy.linalg.lstsq gives it for a full-rank system.
fn pseudo_inverse(stains: &[[f64; 3]; 2]) -> Option<[[f64; 3]; 2]> {
    let [a, b] = *stains;
    let (aa, ab, bb) = (dot(a, a), dot(a, b), dot(b, b));
    let det = aa * bb - ab * ab;
    if det.is_nan() || det <= 1e-12 * aa * bb {
        return None;
    }
    Some([std::array::from_fn(|c| (bb * a[c] - ab * b[c]) / det), std::array::from_fn(|c| (aa * b[c] - ab * a[c]) / det)])
}

/// Macenko normalisation of every source pixel: its concentrations under the source's stain
/// vectors, scaled so that the 99th percentiles match the target's, recoloured with the
/// target's stain vectors: `min(io * exp(-stains_T · c), 255)`, truncated to uint8 as torchstain.
fn macenko_normalize(source: &Rgb<'_>, target: &Rgb<'_>, params: MacenkoParams, fail: impl Fn(String) -> ToolError) -> Result<Vec<u8>, ToolError> {
    let target_fit = macenko_fit(&optical_density(target, params.io), params).map_err(|e| fail(format!("target: {e}")))?;
    let od = optical_density(source, params.io);
    let fit = macenko_fit(&od, params).map_err(|e| fail(format!("image: {e}")))?;
    let scale: [f64; 2] = std::array::from_fn(|s| target_fit.max_concentrations[s] / fit.max_concentrations[s]);
    let [h, e] = target_fit.stains;
    let pixels: Vec<[u8; 3]> = (0..od.len())
        .into_par_iter()
        .map(|k| {
            let c = fit.concentrations(od.get(k));
            let (ch, ce) = (c[0] * scale[0], c[1] * scale[1]);
            std::array::from_fn(|i| (params.io * (-(h[i] * ch + e[i] * ce)).exp()).min(255.0) as u8)
        })
        .collect();
    Ok(pixels.into_flattened())
}

/// Reinhard normalisation: in CIE L*a*b*, every source channel standardised (mean 0, standard
/// deviation 1 over the image) and given the target's mean and standard deviation; back to
/// sRGB, clipped to [0, 1], times 255 truncated to uint8 as torchstain. A constant source
/// channel takes the target's mean.
fn reinhard_normalize(source: &Rgb<'_>, target: &Rgb<'_>) -> Vec<u8> {
    let target_stats = Lab::stats(&target.pixels(Lab::linearize));
    let pixels = source.pixels(Lab::linearize);
    let stats = Lab::stats(&pixels);
    let gain: [f64; 3] = std::array::from_fn(|c| if stats.std[c] > 0.0 { target_stats.std[c] / stats.std[c] } else { 0.0 });
    let rgb_from_xyz = invert(&Lab::XYZ_FROM_RGB).expect("the sRGB matrix is invertible");
    // floor(255 * sRGB(x)) is the number of levels k in 1..=255 with x >= linearize(k / 255):
    // a search in 255 thresholds instead of a power per channel.
    let thresholds: Vec<f64> = (1..=255).map(|k| Lab::linearize(k as f64 / 255.0)).collect();
    let to_u8 = |linear: f64| thresholds.partition_point(|&t| t <= linear) as u8;
    let out: Vec<[u8; 3]> = (0..pixels.len())
        .into_par_iter()
        .map(|k| {
            let lab = Lab::from_linear_rgb(pixels.get(k));
            let mapped = std::array::from_fn(|c| (lab[c] - stats.mean[c]) * gain[c] + target_stats.mean[c]);
            Lab::to_linear_rgb(mapped, &rgb_from_xyz).map(to_u8)
        })
        .collect();
    out.into_flattened()
}

/// [`vahadane_fit`] of an 8-bit RGB image, the estimate `pathology.stain_normalize` makes of
/// the image and of the target with method vahadane.
pub fn vahadane_fit_image(image: &Image, params: VahadaneParams) -> Result<VahadaneFit, ToolError> {
    let rgb = Rgb::of_u8(image, "pathology.stain_normalize")?;
    vahadane_fit(&rgb, params).map_err(|message| rgb.failed(message))
}

const METHODS: [&str; 3] = ["macenko", "reinhard", "vahadane"];

pub struct StainNormalize(ToolSpec);

impl StainNormalize {
    fn new() -> StainNormalize {
        StainNormalize(
            ToolSpec::new(
                "pathology.stain_normalize",
                Category::Pathology,
                "Stain normalisation (Macenko, Reinhard, Vahadane)",
                "Gives an 8-bit RGB H&E image the stain appearance of a target image, as torchstain \
                 1.4.1's numpy normalisers (fit on the target, normalize the image). macenko (Macenko \
                 et al. 2009): optical density OD = -ln((v + 1) / io); pixels with OD >= beta in every \
                 channel span a plane (the two main eigenvectors of their covariance); the alpha and \
                 100 - alpha percentiles of the angles in it are the stain vectors (haematoxylin = more \
                 red density); per-pixel least-squares concentrations are scaled so that their 99th \
                 percentiles match the target's and recoloured with the target's vectors, \
                 min(io * exp(-OD), 255). reinhard (Reinhard et al. 2001): per-channel mean and standard \
                 deviation matched in CIE L*a*b* (sRGB, D65 white), back to sRGB clipped to [0, 1]. \
                 vahadane (Vahadane et al. 2016, as staintools 2.1.2): OD = max(-ln(max(v, 1) / 255), \
                 1e-6); tissue pixels have CIE L* < 100 * luminosity; up to `samples` of them, evenly \
                 spaced in pixel order (deterministic, no seed), are factorised as sparse non-negative \
                 codes times two non-negative stain vectors of norm <= 1, minimising 0.5 |OD - C S|^2 + \
                 lambda |C|_1 by scikit-learn dict_learning's alternation (tol 1e-8, at most 1000 rounds) \
                 from Ruifrok and Johnston's H and E vectors; haematoxylin = more red density; \
                 per-pixel concentrations by non-negative lasso (lambda_concentrations), scaled so that \
                 their 99th percentiles match the target's, recoloured as 255 * exp(-C S_target). \
                 Output values are truncated to uint8 as torchstain and staintools do; geometry and \
                 metadata of the image are kept.",
            )
            .param(ParamSpec::choice("method", "Normalisation method.", &METHODS).default("macenko"))
            .param(ParamSpec::float("io", "Macenko: transmitted light intensity (background brightness).").range(1.0, 255.0).default(240.0))
            .param(ParamSpec::float("alpha", "Macenko: percentile of the extreme stain angles.").range(0.0, 49.0).default(1.0).unit("%").tunable())
            .param(ParamSpec::float("beta", "Macenko: optical density below which a channel counts as unstained.").range(0.0, 5.0).default(0.15).tunable())
            .param(ParamSpec::float("lambda", "Vahadane: L1 penalty on the codes of the stain dictionary learning.").range(0.0, 10.0).default(0.1).tunable())
            .param(ParamSpec::float("lambda_concentrations", "Vahadane: L1 penalty on the per-pixel stain concentrations.").range(0.0, 10.0).default(0.01))
            .param(ParamSpec::float("luminosity", "Vahadane: pixels with CIE L* / 100 below this are tissue.").range(0.01, 1.0).default(0.8))
            .param(ParamSpec::int("samples", "Vahadane: at most this many tissue pixels (evenly spaced) are factorised.").range(100.0, 1e9).default(100_000))
            .input(PortSpec::new("image", PortType::Image, "The H&E image to normalise, 8-bit RGB."))
            .input(PortSpec::new("target", PortType::Image, "An H&E image with the wanted stain appearance, 8-bit RGB."))
            .output(PortSpec::new("image", PortType::Image, "The normalised image, 8-bit RGB.")),
        )
    }
}

impl Tool for StainNormalize {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let target_image = take_image(&mut inputs, id, "target")?;
        let (source, target) = (Rgb::of_u8(&image, id)?, Rgb::of_u8(&target_image, id)?);
        let fail = |message: String| ToolError::Failed { tool: id.clone(), message };
        if target.pixels(|v| v).is_empty() || source.pixels(|v| v).is_empty() {
            return Err(fail("the image and the target must have pixels".into()));
        }
        let values = match params.text("method")? {
            "reinhard" => reinhard_normalize(&source, &target),
            "vahadane" => vahadane_normalize(&source, &target, vahadane_params(params)?).map_err(fail)?,
            _ => {
                let macenko = MacenkoParams { io: params.float("io")?, alpha: params.float("alpha")?, beta: params.float("beta")? };
                macenko_normalize(&source, &target, macenko, fail)?
            }
        };
        context.check_cancelled(id)?;
        let out = source.image_from(values, 3)?;
        Ok(Outputs::from([("image".to_string(), Data::Image(out))]))
    }
}

fn vahadane_params(params: &Params) -> Result<VahadaneParams, ToolError> {
    Ok(VahadaneParams {
        lambda: params.float("lambda")?,
        lambda_concentrations: params.float("lambda_concentrations")?,
        luminosity: params.float("luminosity")?,
        samples: params.int("samples")? as usize,
    })
}

inventory::submit! { ToolEntry { build: || Arc::new(StainNormalize::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudo_inverse_unmixes_a_mixture() {
        let stains = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]].map(|v: [f64; 3]| v.map(|x| x / dot(v, v).sqrt()));
        let unmix = pseudo_inverse(&stains).unwrap();
        let od: [f64; 3] = std::array::from_fn(|c| 0.8 * stains[0][c] + 0.3 * stains[1][c]);
        let c = unmix.map(|row| dot(row, od));
        assert!((c[0] - 0.8).abs() < 1e-12 && (c[1] - 0.3).abs() < 1e-12, "{c:?}");
        assert!(pseudo_inverse(&[stains[0], stains[0]]).is_none());
    }
}
