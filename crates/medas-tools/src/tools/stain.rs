//! `pathology.color_deconvolution` and `pathology.color_reconvolution`: Ruifrok & Johnston's
//! colour deconvolution (Anal. Quant. Cytol. Histol. 23(4), 2001) as scikit-image 0.26 computes
//! it in `separate_stains` / `rgb2hed` and its inverse `combine_stains` / `hed2rgb`.

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::rgb::Rgb;
use crate::tools::{bad_param, metadata_for_new_values};
use medas_image::Image;
use rayon::prelude::*;
use serde_json::json;
use std::sync::Arc;

pub type Matrix = [[f64; 3]; 3];

/// skimage's `rgb_from_hed`: rows are the optical-density RGB vectors of haematoxylin, eosin
/// and DAB (Ruifrok & Johnston's values, not normalised, as skimage uses them).
pub const RGB_FROM_HED: Matrix = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]];

/// skimage's `rgb_from_hdx`: haematoxylin, DAB, and their cross product as the third vector.
pub fn rgb_from_hdab() -> Matrix {
    let (h, d) = ([0.650, 0.704, 0.286], [0.268, 0.570, 0.776]);
    [h, d, cross(h, d)]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

/// The inverse of `m`, or `None` when its rows are (numerically) linearly dependent: the
/// determinant is at most 1e-10 times the product of the row lengths.
pub fn invert(m: &Matrix) -> Option<Matrix> {
    let cofactor = |r: usize, c: usize| {
        let (r1, r2, c1, c2) = ((r + 1) % 3, (r + 2) % 3, (c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det: f64 = (0..3).map(|c| m[0][c] * cofactor(0, c)).sum();
    let scale: f64 = m.iter().map(|row| row.iter().map(|v| v * v).sum::<f64>().sqrt()).product();
    if det.is_nan() || det.abs() <= 1e-10 * scale {
        return None;
    }
    // inverse[c][r] = cofactor(r, c) / det (the adjugate is the transposed cofactor matrix).
    Some(std::array::from_fn(|c| std::array::from_fn(|r| cofactor(r, c) / det)))
}

/// `log(1e-6)`: skimage clips intensities at 1e-6 and divides optical densities by this.
fn log_floor() -> f64 {
    1e-6f64.ln()
}

/// Stain concentrations of one pixel (channel values already `log(max(v, 1e-6)) / log(1e-6)`):
/// `max(0, values · stains_from_rgb)`, as `separate_stains`.
#[inline]
fn separate(values: [f64; 3], stains_from_rgb: &Matrix) -> [f32; 3] {
    std::array::from_fn(|j| (0..3).map(|c| values[c] * stains_from_rgb[c][j]).sum::<f64>().max(0.0) as f32)
}

/// RGB of one pixel from its stain concentrations, as `combine_stains`:
/// `clip(exp(-(stains * -log(1e-6)) · rgb_from_stains), 0, 1)`.
#[inline]
fn combine(stains: [f64; 3], rgb_from_stains: &Matrix) -> [f32; 3] {
    let adjust = -log_floor();
    std::array::from_fn(|c| {
        let log_rgb = -(0..3).map(|j| stains[j] * adjust * rgb_from_stains[j][c]).sum::<f64>();
        log_rgb.exp().clamp(0.0, 1.0) as f32
    })
}

const STAINS: [&str; 3] = ["hed", "hdab", "custom"];
const CHANNELS: [&str; 4] = ["all", "first", "second", "third"];

/// The `stains` and `matrix` parameters both tools take.
fn stain_params(spec: ToolSpec) -> ToolSpec {
    spec.param(
        ParamSpec::choice(
            "stains",
            "Stain vectors: hed (haematoxylin, eosin, DAB: skimage's rgb_from_hed), hdab (haematoxylin, \
             DAB and their cross product: skimage's rgb_from_hdx), or custom (the matrix parameter).",
            &STAINS,
        )
        .default("hed"),
    )
    .param(
        ParamSpec::list(
            "matrix",
            "For stains = custom: the 3x3 matrix whose rows are the optical-density RGB vectors of the \
             three stains (row-major, 9 numbers, as skimage's rgb_from_* matrices; used as given).",
            ParamKind::Float { min: None, max: None },
        )
        .default(json!([])),
    )
}

/// The stain-vector matrix (rows = stains) the parameters choose.
fn rgb_from_stains(params: &Params, tool: &str) -> Result<Matrix, ToolError> {
    let given: Vec<f64> = params.value("matrix").and_then(|v| v.as_array()).map(|a| a.iter().filter_map(|v| v.as_f64()).collect()).unwrap_or_default();
    match params.text("stains")? {
        "hed" => Ok(RGB_FROM_HED),
        "hdab" => Ok(rgb_from_hdab()),
        _ if given.len() != 9 => Err(bad_param(tool, "matrix", format!("must hold 9 numbers (3 rows of 3) when stains is custom, got {}", given.len()))),
        _ => Ok(std::array::from_fn(|r| std::array::from_fn(|c| given[3 * r + c]))),
    }
}

/// The stain-vector matrix the parameters choose and its inverse, or an error when the
/// vectors are linearly dependent.
fn stain_matrices(params: &Params, tool: &str) -> Result<(Matrix, Matrix), ToolError> {
    let rgb_from = rgb_from_stains(params, tool)?;
    match invert(&rgb_from) {
        Some(inverse) => Ok((rgb_from, inverse)),
        None => Err(bad_param(tool, "matrix", format!("must have linearly independent rows (one vector per stain), got {rgb_from:?}"))),
    }
}

/// The tools' output: new values on the input's grid, which no longer have its unit.
fn output(mut image: Image, input: &Image) -> Outputs {
    image.metadata = metadata_for_new_values(&input.metadata);
    Outputs::from([("image".to_string(), Data::Image(image))])
}

pub struct ColorDeconvolution(ToolSpec);

impl ColorDeconvolution {
    fn new() -> ColorDeconvolution {
        let spec = ToolSpec::new(
            "pathology.color_deconvolution",
            Category::Pathology,
            "Colour deconvolution (stain separation)",
            "Separates an RGB image into stain concentrations by Ruifrok & Johnston's colour \
             deconvolution, exactly as scikit-image 0.26's separate_stains (rgb2hed for stains = hed): \
             channel values scaled to [0, 1] (uint8 / 255, uint16 / 65535, floats as given), clipped \
             below at 1e-6, optical density log(v) / log(1e-6), multiplied by the inverse of the stain \
             matrix, negative concentrations set to 0. Computed in double precision, stored as float32; \
             geometry kept. The output has the three concentrations per pixel, or one of them.",
        )
        .param(ParamSpec::choice("channel", "Which concentrations to output: all three, or one (for hed: first = haematoxylin, second = eosin, third = DAB).", &CHANNELS).default("all"))
        .input(PortSpec::new("image", PortType::Image, "An RGB image (uint8, uint16 or float in [0, 1])."))
        .output(PortSpec::new("image", PortType::Image, "Stain concentrations, float32 (3 components, or 1)."));
        ColorDeconvolution(stain_params(spec))
    }
}

impl Tool for ColorDeconvolution {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let (_, stains_from_rgb) = stain_matrices(params, id)?;
        let rgb = Rgb::of(&image, id)?;
        let wanted = params.text("channel")?;
        let channel = CHANNELS.iter().position(|c| *c == wanted).unwrap_or(0);
        let floor = log_floor();
        let pixels = rgb.pixels(|v| v.max(1e-6).ln() / floor);
        let concentrations = (0..pixels.len()).into_par_iter().map(|k| separate(pixels.get(k), &stains_from_rgb));
        let out = match channel {
            0 => rgb.image_from(concentrations.collect::<Vec<[f32; 3]>>().into_flattened(), 3)?,
            c => rgb.image_from(concentrations.map(|s| s[c - 1]).collect::<Vec<f32>>(), 1)?,
        };
        Ok(output(out, &image))
    }
}

pub struct ColorReconvolution(ToolSpec);

impl ColorReconvolution {
    fn new() -> ColorReconvolution {
        let spec = ToolSpec::new(
            "pathology.color_reconvolution",
            Category::Pathology,
            "Colour reconvolution (stains to RGB)",
            "The inverse of colour deconvolution: RGB from three stain concentrations per pixel, \
             exactly as scikit-image 0.26's combine_stains (hed2rgb for stains = hed): \
             clip(exp(-(concentrations * -log(1e-6)) · stain matrix), 0, 1). Computed in double \
             precision, stored as float32 in [0, 1]; geometry kept.",
        )
        .input(PortSpec::new("image", PortType::Image, "Stain concentrations, 3 components per pixel (as colour deconvolution gives them)."))
        .output(PortSpec::new("image", PortType::Image, "RGB, float32 in [0, 1]."));
        ColorReconvolution(stain_params(spec))
    }
}

impl Tool for ColorReconvolution {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let (rgb_from, _) = stain_matrices(params, id)?;
        let stains = Rgb::of(&image, id)?;
        let pixels = stains.pixels(|v| v);
        let rgb: Vec<[f32; 3]> = (0..pixels.len()).into_par_iter().map(|k| combine(pixels.get(k), &rgb_from)).collect();
        Ok(output(stains.image_from(rgb.into_flattened(), 3)?, &image))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(ColorDeconvolution::new()) } }
inventory::submit! { ToolEntry { build: || Arc::new(ColorReconvolution::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_times_matrix_is_identity_and_dependent_rows_are_refused() {
        for m in [RGB_FROM_HED, rgb_from_hdab()] {
            let inv = invert(&m).unwrap();
            for (r, c) in (0..3).flat_map(|r| (0..3).map(move |c| (r, c))) {
                let product: f64 = (0..3).map(|k| m[r][k] * inv[k][c]).sum();
                assert!((product - (r == c) as u8 as f64).abs() < 1e-12, "{r} {c}: {product}");
            }
        }
        assert!(invert(&[[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 0.0]]).is_none());
        assert!(invert(&[[0.0; 3], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]).is_none());
    }

    #[test]
    fn separating_combined_stains_gives_the_concentrations_back() {
        let (floor, stains_from_rgb) = (log_floor(), invert(&RGB_FROM_HED).unwrap());
        let stains = [0.05, 0.02, 0.01];
        let rgb = combine(stains, &RGB_FROM_HED);
        let back = separate(rgb.map(|v| (v as f64).ln() / floor), &stains_from_rgb);
        for j in 0..3 {
            assert!((back[j] as f64 - stains[j]).abs() < 1e-6, "{back:?} vs {stains:?}");
        }
    }
}
