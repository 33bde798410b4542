//! Vahadane et al. (IEEE TMI 2016), "Structure-preserving color normalization and sparse stain
//! separation for histological images": the stain vectors of an H&E image by sparse
//! non-negative matrix factorisation of the optical densities of its tissue pixels, and
//! per-pixel stain concentrations by non-negative lasso, with the conventions of staintools
//! 2.1.2 (optical density `-ln(max(v, 1) / 255)`, tissue where L* < 100 x threshold,
//! haematoxylin the stain with more red density, 99th percentile scaling).
//!
//! The factorisation minimises `0.5 ||X - C D||² + λ ||C||₁` over `C >= 0` and stain rows
//! `D >= 0` of norm at most 1, by the alternation of scikit-learn's `dict_learning`: exact
//! codes for the current dictionary, then one block-coordinate pass over the stain rows
//! (clipped to >= 0, projected onto the unit ball), until the cost falls by less than
//! [`TOLERANCE`] of itself. It starts from Ruifrok and Johnston's H and E vectors, so the
//! result does not depend on a seed.

use crate::tools::rgb::{Pixels, Rgb};
use crate::tools::stain_math::{Lab, percentile};
use rayon::prelude::*;

/// Vahadane's parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VahadaneParams {
    /// L1 penalty of the dictionary learning (the paper's λ).
    pub lambda: f64,
    /// L1 penalty of the per-pixel concentrations.
    pub lambda_concentrations: f64,
    /// Tissue pixels are those with L* / 100 below this.
    pub luminosity: f64,
    /// At most this many tissue pixels, evenly spaced in pixel order, feed the factorisation.
    pub samples: usize,
}

impl Default for VahadaneParams {
    /// staintools' defaults (λ = 0.1, concentrations λ = 0.01, luminosity 0.8), 100 000 samples.
    fn default() -> VahadaneParams {
        VahadaneParams { lambda: 0.1, lambda_concentrations: 0.01, luminosity: 0.8, samples: 100_000 }
    }
}

/// Relative fall of the cost below which the factorisation stops (scikit-learn's default tol).
pub const TOLERANCE: f64 = 1e-8;
/// Most alternations of the factorisation (scikit-learn's default max_iter).
pub const MAX_ITERATIONS: usize = 1000;
/// The start: haematoxylin and eosin optical densities of Ruifrok and Johnston (2001).
const RUIFROK_HE: [[f64; 3]; 2] = [[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]];
/// Pixels per partial sum: sums are formed chunk by chunk, then added in order, so the result
/// does not depend on the number of threads.
const CHUNK: usize = 4096;

/// What Vahadane's method estimates from one image.
#[derive(Debug, Clone, PartialEq)]
pub struct VahadaneFit {
    /// Unit optical-density vectors of haematoxylin (`[0]`) and eosin (`[1]`), R, G, B.
    pub stains: [[f64; 3]; 2],
    /// The 99th percentile of each stain's concentration over all pixels.
    pub max_concentrations: [f64; 2],
    /// Alternations the factorisation took.
    pub iterations: usize,
}

/// Optical density as staintools computes it: `max(-ln(max(v, 1) / 255), 1e-6)` of 8-bit `v`.
pub fn optical_density<'a>(rgb: &Rgb<'a>) -> Pixels<'a, impl Fn(f64) -> f64 + Sync> {
    rgb.pixels(|v| (-((v * 255.0).round().max(1.0) / 255.0).ln()).max(1e-6))
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// The non-negative lasso code of `x` on two atoms: argmin over `a >= 0` of
/// `0.5 ||x - a0 d0 - a1 d1||² + lambda (a0 + a1)`, exactly. `gram` is `D Dᵀ`.
#[inline]
pub fn nonnegative_lasso(x: [f64; 3], atoms: &[[f64; 3]; 2], gram: &[[f64; 2]; 2], lambda: f64) -> [f64; 2] {
    let c = [dot(atoms[0], x) - lambda, dot(atoms[1], x) - lambda];
    let det = gram[0][0] * gram[1][1] - gram[0][1] * gram[0][1];
    if det > 1e-12 * gram[0][0] * gram[1][1] {
        // The stationary point, when inside the positive quadrant, is the minimum.
        let a = [(gram[1][1] * c[0] - gram[0][1] * c[1]) / det, (gram[0][0] * c[1] - gram[0][1] * c[0]) / det];
        if a[0] > 0.0 && a[1] > 0.0 {
            return a;
        }
    }
    // Otherwise the minimum lies on an axis: the better of the two one-atom solutions.
    let single = |k: usize| if gram[k][k] > 0.0 { (c[k] / gram[k][k]).max(0.0) } else { 0.0 };
    let (a0, a1) = (single(0), single(1));
    // Objective change from a = 0 along each axis: 0.5 g a² - c a.
    if 0.5 * gram[1][1] * a1 * a1 - c[1] * a1 < 0.5 * gram[0][0] * a0 * a0 - c[0] * a0 { [0.0, a1] } else { [a0, 0.0] }
}

fn gram(atoms: &[[f64; 3]; 2]) -> [[f64; 2]; 2] {
    let g01 = dot(atoms[0], atoms[1]);
    [[dot(atoms[0], atoms[0]), g01], [g01, dot(atoms[1], atoms[1])]]
}

/// Sums over the samples of a code step: `CᵀC` (3 values), `XᵀC` (6), `||C||₁`, `||X||²`.
type Stats = [f64; 11];

fn code_stats(samples: &[[f64; 3]], atoms: &[[f64; 3]; 2], lambda: f64) -> Stats {
    let g = gram(atoms);
    let partial: Vec<Stats> = samples
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut s = [0.0; 11];
            for &x in chunk {
                let a = nonnegative_lasso(x, atoms, &g, lambda);
                let terms = [a[0] * a[0], a[0] * a[1], a[1] * a[1], x[0] * a[0], x[1] * a[0], x[2] * a[0], x[0] * a[1], x[1] * a[1], x[2] * a[1], a[0] + a[1], dot(x, x)];
                for (sum, term) in s.iter_mut().zip(terms) {
                    *sum += term;
                }
            }
            s
        })
        .collect();
    partial.iter().fold([0.0; 11], |a, b| std::array::from_fn(|i| a[i] + b[i]))
}

/// scikit-learn's `_update_dict` for two atoms: each row in turn moves to its least-squares
/// optimum given the other, is clipped to >= 0 and projected onto the unit ball.
fn update_atoms(atoms: &mut [[f64; 3]; 2], s: &Stats) -> Result<(), String> {
    let a = [[s[0], s[1]], [s[1], s[2]]];
    let b = [[s[3], s[4], s[5]], [s[6], s[7], s[8]]];
    for k in 0..2 {
        if a[k][k] <= 1e-6 {
            return Err(format!(
                "the {} stain is not used by the tissue pixels (its codes sum of squares is {:.2e}); the image may show only one stain",
                ["haematoxylin-like first", "second"][k],
                a[k][k]
            ));
        }
        let row: [f64; 3] = std::array::from_fn(|c| {
            let moved = atoms[k][c] + (b[k][c] - a[k][0] * atoms[0][c] - a[k][1] * atoms[1][c]) / a[k][k];
            moved.max(0.0)
        });
        let norm = dot(row, row).sqrt().max(1.0);
        atoms[k] = row.map(|v| v / norm);
    }
    Ok(())
}

/// `0.5 ||X - C D||² + lambda ||C||₁` from the code statistics, for atoms `d`.
fn cost(s: &Stats, d: &[[f64; 3]; 2], lambda: f64) -> f64 {
    let cross = dot([s[3], s[4], s[5]], d[0]) + dot([s[6], s[7], s[8]], d[1]);
    let fitted = s[0] * dot(d[0], d[0]) + 2.0 * s[1] * dot(d[0], d[1]) + s[2] * dot(d[1], d[1]);
    0.5 * (s[10] - 2.0 * cross + fitted) + lambda * s[9]
}

/// The sparse non-negative factorisation of `samples`: two stain rows, in the order found.
pub fn learn_stains(samples: &[[f64; 3]], lambda: f64) -> Result<([[f64; 3]; 2], usize), String> {
    let mut atoms = RUIFROK_HE.map(|v| v.map(|x| x / dot(v, v).sqrt()));
    let mut previous = f64::NAN;
    for iteration in 1..=MAX_ITERATIONS {
        let stats = code_stats(samples, &atoms, lambda);
        update_atoms(&mut atoms, &stats)?;
        let current = cost(&stats, &atoms, lambda);
        if iteration > 1 && previous - current < TOLERANCE * current {
            return Ok((atoms, iteration));
        }
        previous = current;
    }
    Ok((atoms, MAX_ITERATIONS))
}

/// The optical densities of the tissue pixels (L* < 100 x luminosity), at most `samples` of
/// them: indices `floor(k n / samples)` of the n tissue pixels in pixel order.
fn tissue_samples(rgb: &Rgb<'_>, params: VahadaneParams) -> Result<Vec<[f64; 3]>, String> {
    let linear = rgb.pixels(Lab::linearize);
    let od = optical_density(rgb);
    let limit = 100.0 * params.luminosity;
    let tissue: Vec<usize> = (0..linear.len()).into_par_iter().filter(|&k| Lab::from_linear_rgb(linear.get(k))[0] < limit).collect();
    if tissue.len() < 2 {
        return Err(format!("{} pixel(s) are darker than the luminosity threshold (L* < {limit}); Vahadane's method needs at least 2", tissue.len()));
    }
    let (n, m) = (tissue.len(), params.samples.min(tissue.len()));
    Ok((0..m).into_par_iter().map(|k| od.get(tissue[(k as u128 * n as u128 / m as u128) as usize])).collect())
}

/// Vahadane's estimate of the stain vectors and concentration percentiles of an 8-bit image.
pub fn vahadane_fit(rgb: &Rgb<'_>, params: VahadaneParams) -> Result<VahadaneFit, String> {
    let samples = tissue_samples(rgb, params)?;
    let (mut atoms, iterations) = learn_stains(&samples, params.lambda)?;
    // staintools orders before normalising: haematoxylin has the larger red density.
    if atoms[0][0] < atoms[1][0] {
        atoms.swap(0, 1);
    }
    if atoms.iter().any(|v| dot(*v, *v) == 0.0) {
        return Err("a stain vector came out zero".into());
    }
    let stains = atoms.map(|v| v.map(|x| x / dot(v, v).sqrt()));
    let concentrations = concentrations(&optical_density(rgb), &stains, params.lambda_concentrations);
    let (mut h, mut e): (Vec<f64>, Vec<f64>) = concentrations.into_par_iter().map(|c| (c[0], c[1])).unzip();
    let max_concentrations = [percentile(&mut h, 99.0), percentile(&mut e, 99.0)];
    if !max_concentrations.iter().all(|&m| m > 0.0) {
        return Err(format!("the 99th percentiles of the stain concentrations are {max_concentrations:?}; both must be positive"));
    }
    Ok(VahadaneFit { stains, max_concentrations, iterations })
}

/// Non-negative lasso concentrations of every pixel (as staintools' spams.lasso call).
fn concentrations<F: Fn(f64) -> f64 + Sync>(od: &Pixels<'_, F>, stains: &[[f64; 3]; 2], lambda: f64) -> Vec<[f64; 2]> {
    let g = gram(stains);
    (0..od.len()).into_par_iter().map(|k| nonnegative_lasso(od.get(k), stains, &g, lambda)).collect()
}

/// Vahadane normalisation as staintools' StainNormalizer: source concentrations scaled so that
/// their 99th percentiles match the target's, recoloured with the target's stains,
/// `255 exp(-C S)` truncated to uint8. Errors name the image they concern.
pub fn vahadane_normalize(source: &Rgb<'_>, target: &Rgb<'_>, params: VahadaneParams) -> Result<Vec<u8>, String> {
    let target_fit = vahadane_fit(target, params).map_err(|e| format!("target: {e}"))?;
    let fit = vahadane_fit(source, params).map_err(|e| format!("image: {e}"))?;
    let scale: [f64; 2] = std::array::from_fn(|s| target_fit.max_concentrations[s] / fit.max_concentrations[s]);
    let [h, e] = target_fit.stains;
    let od = optical_density(source);
    let g = gram(&fit.stains);
    let pixels: Vec<[u8; 3]> = (0..od.len())
        .into_par_iter()
        .map(|k| {
            let c = nonnegative_lasso(od.get(k), &fit.stains, &g, params.lambda_concentrations);
            let (ch, ce) = (c[0] * scale[0], c[1] * scale[1]);
            std::array::from_fn(|i| (255.0 * (-(h[i] * ch + e[i] * ce)).exp()) as u8)
        })
        .collect();
    Ok(pixels.into_flattened())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form against a brute-force search of the objective on a fine grid.
    #[test]
    fn nonnegative_lasso_is_the_minimum() {
        let atoms = [[0.6, 0.7, 0.3], [0.1, 0.9, 0.4]];
        let g = gram(&atoms);
        let objective = |x: [f64; 3], a: [f64; 2], lambda: f64| {
            let r: [f64; 3] = std::array::from_fn(|c| x[c] - a[0] * atoms[0][c] - a[1] * atoms[1][c]);
            0.5 * dot(r, r) + lambda * (a[0] + a[1])
        };
        for (x, lambda) in [([0.5, 0.9, 0.4], 0.1), ([0.9, 0.2, 0.1], 0.01), ([0.05, 0.05, 0.05], 0.2), ([0.1, 1.2, 0.6], 0.0)] {
            let a = nonnegative_lasso(x, &atoms, &g, lambda);
            assert!(a[0] >= 0.0 && a[1] >= 0.0, "{a:?}");
            let best = (0..=300).flat_map(|i| (0..=300).map(move |j| [i as f64 / 150.0, j as f64 / 150.0])).map(|b| objective(x, b, lambda)).fold(f64::INFINITY, f64::min);
            assert!(objective(x, a, lambda) <= best + 1e-12, "{x:?}: {a:?}");
        }
    }

    /// Pixels mixed from two known non-negative stains with sparse concentrations: the
    /// factorisation finds the stains back (the L1 penalty shrinks them only slightly).
    #[test]
    fn learns_two_mixed_stains() {
        let truth = [[0.8, 0.55, 0.24], [0.2, 0.95, 0.24]].map(|v: [f64; 3]| v.map(|x| x / dot(v, v).sqrt()));
        let samples: Vec<[f64; 3]> = (0..2000)
            .map(|k| {
                let (t, u) = ((k % 41) as f64 / 40.0, (k % 37) as f64 / 36.0);
                let (h, e) = if k % 3 == 0 { (1.5 * t, 0.0) } else if k % 3 == 1 { (0.0, 1.2 * u) } else { (t, 0.5 * u) };
                std::array::from_fn(|c| h * truth[0][c] + e * truth[1][c])
            })
            .collect();
        let (atoms, iterations) = learn_stains(&samples, 0.01).unwrap();
        assert!(iterations < MAX_ITERATIONS);
        for (found, expected) in atoms.iter().zip(truth) {
            let unit = found.map(|x| x / dot(*found, *found).sqrt());
            assert!((0..3).all(|c| (unit[c] - expected[c]).abs() < 0.02), "{unit:?} vs {expected:?}");
        }
    }
}
