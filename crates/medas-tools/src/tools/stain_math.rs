//! Numerical pieces of the stain tools: numpy's linear-interpolation percentile, a 3x3
//! symmetric eigen-decomposition, and sRGB <-> CIE L*a*b* as torchstain's numpy backend
//! converts (sRGB primaries, D65 white 0.95047, 1, 1.08883).

use crate::tools::rgb::Pixels;
use rayon::prelude::*;

/// `numpy.percentile(values, q)` (linear interpolation between the order statistics around
/// position `q / 100 * (n - 1)`, numpy's two-sided lerp). Reorders `values`; `q` in [0, 100],
/// `values` not empty.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    let position = q / 100.0 * (values.len() - 1) as f64;
    let below = position.floor() as usize;
    let t = position - below as f64;
    let (_, &mut low, above) = values.select_nth_unstable_by(below, f64::total_cmp);
    if t == 0.0 || above.is_empty() {
        return low;
    }
    let high = above.iter().copied().fold(f64::INFINITY, f64::min);
    let step = high - low;
    if t < 0.5 { low + step * t } else { high - step * (1.0 - t) }
}

/// Eigenvalues and unit eigenvectors (columns of the returned matrix, `vectors[row][column]`)
/// of a symmetric 3x3 matrix, by cyclic Jacobi rotations; no particular order.
pub fn symmetric_eigen(mut a: [[f64; 3]; 3]) -> ([f64; 3], [[f64; 3]; 3]) {
    let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let scale: f64 = a.iter().flatten().map(|x| x * x).sum();
    for _ in 0..64 {
        let off = a[0][1] * a[0][1] + a[0][2] * a[0][2] + a[1][2] * a[1][2];
        if off.is_nan() || off <= 1e-32 * scale {
            break;
        }
        for (p, q) in [(0, 1), (0, 2), (1, 2)] {
            if a[p][q] == 0.0 {
                continue;
            }
            // The rotation that zeroes a[p][q] (Numerical Recipes' stable form).
            let theta = (a[q][q] - a[p][p]) / (2.0 * a[p][q]);
            let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
            let c = 1.0 / (t * t + 1.0).sqrt();
            let s = t * c;
            for row in a.iter_mut().chain(v.iter_mut()) {
                let (kp, kq) = (row[p], row[q]);
                row[p] = c * kp - s * kq;
                row[q] = s * kp + c * kq;
            }
            let (row_p, row_q) = (a[p], a[q]);
            a[p] = std::array::from_fn(|k| c * row_p[k] - s * row_q[k]);
            a[q] = std::array::from_fn(|k| s * row_p[k] + c * row_q[k]);
        }
    }
    ([a[0][0], a[1][1], a[2][2]], v)
}

/// Per-channel mean and (population) standard deviation of L*, a*, b*.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LabStats {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

/// sRGB <-> CIE L*a*b* (D65), the formulas and constants of torchstain's rgb2lab / lab2rgb.
pub struct Lab;

impl Lab {
    /// Linear RGB -> XYZ (the sRGB primaries as torchstain writes them).
    pub const XYZ_FROM_RGB: [[f64; 3]; 3] = [[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169], [0.019334, 0.119193, 0.950227]];
    const WHITE: [f64; 3] = [0.95047, 1.0, 1.08883];

    /// sRGB channel value in [0, 1] -> linear light.
    pub fn linearize(v: f64) -> f64 {
        if v > 0.04045 { ((v + 0.055) / 1.055).powf(2.4) } else { v / 12.92 }
    }

    /// L*, a*, b* of a pixel given in linear RGB.
    #[inline]
    pub fn from_linear_rgb(rgb: [f64; 3]) -> [f64; 3] {
        let f = |row: usize| {
            let m = Self::XYZ_FROM_RGB[row];
            let t = (m[0] * rgb[0] + m[1] * rgb[1] + m[2] * rgb[2]) / Self::WHITE[row];
            if t > 0.008856 { t.cbrt() } else { 7.787 * t + 16.0 / 116.0 }
        };
        let (fx, fy, fz) = (f(0), f(1), f(2));
        [116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)]
    }

    /// sRGB in [0, 1] (clipped) of L*, a*, b*; `rgb_from_xyz` is the inverse of [`Lab::XYZ_FROM_RGB`].
    pub fn to_rgb(lab: [f64; 3], rgb_from_xyz: &[[f64; 3]; 3]) -> [f64; 3] {
        Lab::to_linear_rgb(lab, rgb_from_xyz).map(|linear| {
            let v = if linear > 0.0031308 { 1.055 * linear.powf(1.0 / 2.4) - 0.055 } else { linear * 12.92 };
            v.clamp(0.0, 1.0)
        })
    }

    /// Linear RGB (not clipped) of L*, a*, b*.
    #[inline]
    pub fn to_linear_rgb(lab: [f64; 3], rgb_from_xyz: &[[f64; 3]; 3]) -> [f64; 3] {
        let fy = (lab[0] + 16.0) / 116.0;
        let f = [lab[1] / 500.0 + fy, fy, fy - lab[2] / 200.0];
        let xyz: [f64; 3] = std::array::from_fn(|c| {
            let t = if f[c] > 0.2068966 { f[c].powi(3) } else { (f[c] - 16.0 / 116.0) / 7.787 };
            t * Self::WHITE[c]
        });
        rgb_from_xyz.map(|m| m[0] * xyz[0] + m[1] * xyz[1] + m[2] * xyz[2])
    }

    /// Mean and standard deviation of L*, a*, b* over pixels read through [`Lab::linearize`].
    pub fn stats<F: Fn(f64) -> f64 + Sync>(pixels: &Pixels<'_, F>) -> LabStats {
        let n = pixels.len() as f64;
        let sums = (0..pixels.len())
            .into_par_iter()
            .map(|k| {
                let lab = Lab::from_linear_rgb(pixels.get(k));
                [lab[0], lab[1], lab[2], lab[0] * lab[0], lab[1] * lab[1], lab[2] * lab[2]]
            })
            .reduce(|| [0.0; 6], |a, b| std::array::from_fn(|c| a[c] + b[c]));
        let mean: [f64; 3] = std::array::from_fn(|c| sums[c] / n);
        LabStats { mean, std: std::array::from_fn(|c| (sums[c + 3] / n - mean[c] * mean[c]).max(0.0).sqrt()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_as_numpy() {
        let mut values = vec![4.0, 1.0, 3.0, 2.0, 10.0];
        // numpy.percentile([1, 2, 3, 4, 10], q) for q = 0, 10, 50, 99, 100.
        for (q, expected) in [(0.0, 1.0), (10.0, 1.4), (50.0, 3.0), (99.0, 9.76), (100.0, 10.0)] {
            let got = percentile(&mut values, q);
            assert!((got - expected).abs() < 1e-12, "q {q}: {got} vs {expected}");
        }
    }

    #[test]
    fn eigenvectors_satisfy_the_equation() {
        let a = [[2.0, 0.5, 0.3], [0.5, 1.0, -0.2], [0.3, -0.2, 0.7]];
        let (values, v) = symmetric_eigen(a);
        for c in 0..3 {
            for r in 0..3 {
                let av: f64 = (0..3).map(|k| a[r][k] * v[k][c]).sum();
                assert!((av - values[c] * v[r][c]).abs() < 1e-12, "column {c} row {r}");
            }
        }
        assert!((values.iter().sum::<f64>() - 3.7).abs() < 1e-12, "trace kept");
    }

    #[test]
    fn lab_round_trip_and_white() {
        let rgb_from_xyz = crate::tools::stain::invert(&Lab::XYZ_FROM_RGB).unwrap();
        let white = Lab::from_linear_rgb([1.0; 3]);
        assert!((white[0] - 100.0).abs() < 1e-3 && white[1].abs() < 0.01 && white[2].abs() < 0.01, "{white:?}");
        let rgb = [0.8, 0.4, 0.6];
        let back = Lab::to_rgb(Lab::from_linear_rgb(rgb.map(Lab::linearize)), &rgb_from_xyz);
        for c in 0..3 {
            assert!((back[c] - rgb[c]).abs() < 1e-5, "{back:?}");
        }
    }
}
