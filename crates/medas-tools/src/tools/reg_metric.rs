//! Similarity metrics of the registration tools, evaluated over fixed-image samples with their
//! gradient over the transform parameters (rayon-parallel over samples): mean squares, negated
//! normalised cross-correlation and negated Mattes mutual information (Mattes et al. 2003, as
//! ITK's MattesMutualInformationImageToImageMetricv4: fixed values in box-window bins, moving
//! values in cubic B-spline Parzen windows, 2 padding bins each side). Lower is better for all.

use crate::tools::reg_mapping::Mapping;
use crate::tools::reg_transform::Point;
use crate::tools::reg_volume::Volume;
use rayon::prelude::*;

/// Which similarity measure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Metric {
    MeanSquares,
    Correlation,
    Mattes { bins: usize },
}

/// How the moving image's gradient at a mapped point is taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ImageGradient {
    /// The exact gradient of the linear interpolation (the metric's true derivative).
    Linear,
    /// ITK's CentralDifferenceImageFunction: half the difference of the interpolated values one
    /// voxel either side per axis (0 along an axis where one falls outside).
    Central,
}

/// How fixed voxels are chosen as samples.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Strategy {
    /// Every voxel.
    All,
    /// Each voxel with probability `fraction` (seeded, so runs repeat).
    Random { fraction: f64, seed: u64 },
    /// Every `round(1 / fraction)`-th voxel in storage order.
    Regular { fraction: f64 },
}

/// Fixed-image sample points (physical) and values.
pub struct Samples {
    pub points: Vec<Point>,
    pub values: Vec<f32>,
    /// Smallest and largest sample value.
    pub range: (f64, f64),
}

/// The samples of `fixed` chosen by `strategy` among voxels where `inside` holds.
pub fn draw_samples(fixed: &Volume, strategy: Strategy, inside: impl Fn(&Point) -> bool + Sync) -> Samples {
    let keep: Box<dyn Fn(usize) -> bool + Sync> = match strategy {
        Strategy::All => Box::new(|_| true),
        Strategy::Random { fraction, seed } => Box::new(move |n| {
            // splitmix64 of (seed, n): independent of the thread layout.
            let mut z = seed.wrapping_add((n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64 <= fraction
        }),
        Strategy::Regular { fraction } => {
            let every = (1.0 / fraction).round().max(1.0) as usize;
            Box::new(move |n| n % every == 0)
        }
    };
    let chosen: Vec<(Point, f32)> = (0..fixed.len())
        .into_par_iter()
        .with_min_len(4096)
        .filter(|&n| keep(n))
        .filter_map(|n| {
            let point = fixed.point(&fixed.unravel(n));
            inside(&point).then_some((point, fixed.values[n]))
        })
        .collect();
    let (points, values): (Vec<Point>, Vec<f32>) = chosen.into_iter().unzip();
    let range = values.iter().fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v as f64), b.max(v as f64)));
    Samples { points, values, range }
}

/// A metric value and its gradient over the transform parameters.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub value: f64,
    pub gradient: Vec<f64>,
    /// Samples whose mapped point fell inside the moving image.
    pub used: usize,
}

/// The moving value and physical gradient at each sample's mapped point (`None`: outside).
type Probe = Option<(f32, Point)>;

/// Evaluates `metric` between the `samples` and `moving` through `mapping`, with the moving
/// image's gradient taken as `image_gradient` says. Fails when fewer
/// than 16 samples map inside the moving image (the images do not overlap).
pub fn evaluate(metric: Metric, image_gradient: ImageGradient, samples: &Samples, moving: &Volume, mapping: &Mapping) -> Result<Evaluation, String> {
    let prepared = mapping.prepare();
    let probe = |x: &Point| {
        let index = moving.index(&prepared.map(x));
        match image_gradient {
            ImageGradient::Linear => moving.linear_with_gradient(&index),
            ImageGradient::Central => central_probe(moving, &index),
        }
    };
    let probes: Vec<Probe> = samples.points.par_iter().with_min_len(1024).map(probe).collect();
    let used = probes.iter().filter(|p| p.is_some()).count();
    if used < 16 {
        return Err(format!("only {used} of {} samples map inside the moving image: the images do not overlap", probes.len()));
    }
    let (value, weights) = match metric {
        Metric::MeanSquares => mean_squares(&samples.values, &probes, used),
        Metric::Correlation => correlation(&samples.values, &probes, used),
        Metric::Mattes { bins } => mattes(samples, &probes, used, bins, moving.range),
    };
    let n = prepared.parameter_count;
    let gradient = samples
        .points
        .par_iter()
        .zip(probes.par_iter().zip(weights.par_iter()))
        .with_min_len(1024)
        .fold(
            || vec![0.0; n],
            |mut sum, (x, (probe, w))| {
                if let Some((_, g)) = probe {
                    prepared.project(x, g, *w, &mut sum);
                }
                sum
            },
        )
        .reduce(|| vec![0.0; n], |a, b| a.iter().zip(&b).map(|(a, b)| a + b).collect());
    Ok(Evaluation { value, gradient, used })
}

/// The linearly interpolated value at continuous `index` with ITK's central-difference image
/// gradient (CentralDifferenceImageFunction: the interpolated values one voxel either side,
/// 0 along an axis where one falls outside), in physical units.
fn central_probe(moving: &Volume, index: &Point) -> Probe {
    let (value, _) = moving.linear_with_gradient(index)?;
    let mut d = [0.0; 3];
    for (a, d) in d.iter_mut().enumerate() {
        let mut side = *index;
        side[a] += 1.0;
        let up = moving.linear_with_gradient(&side);
        side[a] -= 2.0;
        if let (Some((up, _)), Some((down, _))) = (up, moving.linear_with_gradient(&side)) {
            *d = 0.5 * (up as f64 - down as f64);
        }
    }
    let m = &moving.to_index.0;
    Some((value, [0, 1, 2].map(|i| m[0][i] * d[0] + m[1][i] * d[1] + m[2][i] * d[2])))
}

/// Mean of `(f - m)^2`; per-sample weights are d value / d m.
fn mean_squares(fixed: &[f32], probes: &[Probe], used: usize) -> (f64, Vec<f64>) {
    let n = used as f64;
    let diffs: Vec<f64> = fixed.iter().zip(probes).map(|(f, p)| p.map_or(0.0, |(m, _)| *f as f64 - m as f64)).collect();
    let value = diffs.iter().map(|d| d * d).sum::<f64>() / n;
    (value, diffs.iter().map(|d| -2.0 * d / n).collect())
}

/// `-sum(f' m') / sqrt(sum f'^2 sum m'^2)` over the samples inside (primes: minus the mean).
fn correlation(fixed: &[f32], probes: &[Probe], used: usize) -> (f64, Vec<f64>) {
    let pairs = || fixed.iter().zip(probes).filter_map(|(f, p)| p.map(|(m, _)| (*f as f64, m as f64)));
    let n = used as f64;
    let (fm, mm) = pairs().fold((0.0, 0.0), |(a, b), (f, m)| (a + f / n, b + m / n));
    let (cross, ff, mm2) =
        pairs().fold((0.0, 0.0, 0.0), |(c, a, b), (f, m)| (c + (f - fm) * (m - mm), a + (f - fm).powi(2), b + (m - mm).powi(2)));
    if ff <= 0.0 || mm2 <= 0.0 {
        return (0.0, vec![0.0; fixed.len()]);
    }
    let root = (ff * mm2).sqrt();
    let weights = fixed
        .iter()
        .zip(probes)
        .map(|(f, p)| p.map_or(0.0, |(m, _)| -((*f as f64 - fm) / root - cross * (m as f64 - mm) / (ff.sqrt() * mm2.powf(1.5)))))
        .collect();
    (-cross / root, weights)
}

/// Cubic B-spline and its derivative.
fn bspline3(u: f64) -> (f64, f64) {
    let a = u.abs();
    if a < 1.0 {
        ((4.0 - 6.0 * a * a + 3.0 * a * a * a) / 6.0, -2.0 * u + 1.5 * u * a)
    } else if a < 2.0 {
        ((2.0 - a).powi(3) / 6.0, -(2.0 - a).powi(2) * u.signum() / 2.0)
    } else {
        (0.0, 0.0)
    }
}

const PAD: usize = 2;

/// Bin layout of one image: `bin(v) = (v - min) / width + PAD`.
struct Bins {
    min: f64,
    width: f64,
    count: usize,
}

impl Bins {
    fn new(min: f64, max: f64, count: usize) -> Bins {
        let width = ((max - min) / (count - 2 * PAD) as f64).max(f64::MIN_POSITIVE);
        Bins { min, width, count }
    }

    /// Continuous bin position, kept where a 4-bin window fits.
    fn term(&self, v: f64) -> f64 {
        ((v - self.min) / self.width + PAD as f64).clamp(PAD as f64, (self.count - PAD - 1) as f64)
    }

    /// First of the four bins of the Parzen window around `term`.
    fn window(&self, term: f64) -> usize {
        (term.floor() as usize).saturating_sub(1).min(self.count - 4)
    }
}

/// Negated Mattes mutual information over the samples inside.
/// Bins span the fixed samples' range and the moving image's (at this pyramid level).
fn mattes(samples: &Samples, probes: &[Probe], used: usize, bins: usize, moving_range: (f64, f64)) -> (f64, Vec<f64>) {
    let fixed = &samples.values;
    let fixed_bins = Bins::new(samples.range.0, samples.range.1, bins);
    let moving_bins = Bins::new(moving_range.0, moving_range.1, bins);
    let fixed_bin = |f: f32| fixed_bins.term(f as f64).floor() as usize;
    let joint = fixed
        .par_iter()
        .zip(probes.par_iter())
        .with_min_len(4096)
        .fold(
            || vec![0.0; bins * bins],
            |mut joint, (f, p)| {
                if let Some((m, _)) = p {
                    let (row, term) = (fixed_bin(*f) * bins, moving_bins.term(*m as f64));
                    let start = moving_bins.window(term);
                    (start..start + 4).for_each(|j| joint[row + j] += bspline3(j as f64 - term).0);
                }
                joint
            },
        )
        .reduce(|| vec![0.0; bins * bins], |a, b| a.iter().zip(&b).map(|(a, b)| a + b).collect());
    let total: f64 = joint.iter().sum();
    let p: Vec<f64> = joint.iter().map(|v| v / total).collect();
    let fixed_pdf: Vec<f64> = (0..bins).map(|i| p[i * bins..(i + 1) * bins].iter().sum()).collect();
    let moving_pdf: Vec<f64> = (0..bins).map(|j| (0..bins).map(|i| p[i * bins + j]).sum()).collect();
    let mut information = 0.0;
    // log(p(i,j) / p_moving(j)): the factor of each joint-histogram derivative in dMI.
    let mut ratio = vec![0.0; bins * bins];
    for i in 0..bins {
        for j in 0..bins {
            let pij = p[i * bins + j];
            if pij > 1e-16 && moving_pdf[j] > 1e-16 {
                information += pij * (pij / (fixed_pdf[i] * moving_pdf[j])).ln();
                ratio[i * bins + j] = (pij / moving_pdf[j]).ln();
            }
        }
    }
    let scale = 1.0 / (used as f64 * moving_bins.width);
    let weights = fixed
        .par_iter()
        .zip(probes.par_iter())
        .with_min_len(4096)
        .map(|(f, p)| {
            p.map_or(0.0, |(m, _)| {
                let (row, term) = (fixed_bin(*f) * bins, moving_bins.term(m as f64));
                let start = moving_bins.window(term);
                scale * (start..start + 4).map(|j| ratio[row + j] * bspline3(j as f64 - term).1).sum::<f64>()
            })
        })
        .collect();
    (-information, weights)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::reg_transform::{Kind, Transform};
    use medas_image::{Geometry, Image, Voxels};

    fn blob(shift: f64) -> Volume {
        let n = 20;
        let values: Vec<f32> = (0..n * n * n)
            .map(|k| {
                let (x, y, z) = ((k % n) as f64, ((k / n) % n) as f64, (k / (n * n)) as f64);
                let r2 = (x - 9.5 - shift).powi(2) + (y - 9.0).powi(2) * 1.5 + (z - 10.0).powi(2) * 0.7;
                (100.0 * (-r2 / 20.0).exp()) as f32
            })
            .collect();
        let image = Image::new(Voxels::from_fortran_vec(&[n, n, n], values).unwrap(), Geometry::identity(3)).unwrap();
        Volume::from_image(&image)
    }

    /// Each metric's analytic gradient against central differences of its value.
    #[test]
    fn gradients_match_finite_differences() {
        let (fixed, moving) = (blob(0.0), blob(1.3));
        let samples = draw_samples(&fixed, Strategy::All, |_| true);
        let mut transform = Transform::identity(Kind::Affine, [9.5, 9.5, 9.5]);
        transform.parameters = vec![1.02, 0.03, 0.0, -0.02, 0.98, 0.01, 0.0, 0.02, 1.01, 0.4, -0.3, 0.2];
        for metric in [Metric::MeanSquares, Metric::Correlation, Metric::Mattes { bins: 20 }] {
            let analytic = evaluate(metric, ImageGradient::Linear, &samples, &moving, &Mapping::Linear(transform.clone())).unwrap().gradient;
            for k in [0, 4, 9, 11] {
                let h = 1e-4;
                let (mut plus, mut minus) = (transform.clone(), transform.clone());
                plus.parameters[k] += h;
                minus.parameters[k] -= h;
                let value = |t: &Transform| evaluate(metric, ImageGradient::Linear, &samples, &moving, &Mapping::Linear(t.clone())).unwrap().value;
                let numeric = (value(&plus) - value(&minus)) / (2.0 * h);
                let tolerance = 0.05 * numeric.abs().max(analytic.iter().map(|g| g.abs()).fold(0.0, f64::max) * 0.01);
                assert!((analytic[k] - numeric).abs() <= tolerance, "{metric:?} parameter {k}: {} vs {numeric}", analytic[k]);
            }
        }
    }

    /// The B-spline coefficients' gradient through a fixed affine initial transform (dT/dc = A w).
    #[test]
    fn bspline_gradients_match_finite_differences() {
        let (fixed, moving) = (blob(0.0), blob(1.3));
        let samples = draw_samples(&fixed, Strategy::All, |_| true);
        let mut spline = crate::tools::reg_bspline::BSpline::covering(fixed.size, &fixed.to_point, [3, 3, 3]);
        spline.coefficients.iter_mut().enumerate().for_each(|(n, c)| *c = ((n * 7 % 5) as f64 - 2.0) * 0.2);
        let mut initial = Transform::identity(Kind::Affine, [9.5, 9.5, 9.5]);
        initial.parameters = vec![1.02, 0.03, 0.0, -0.02, 0.98, 0.01, 0.0, 0.02, 1.01, 0.4, -0.3, 0.2];
        let mapping = Mapping::Deformable { initial: Some(initial), spline };
        let analytic = evaluate(Metric::MeanSquares, ImageGradient::Linear, &samples, &moving, &mapping).unwrap().gradient;
        let largest = analytic.iter().map(|g| g.abs()).fold(0.0, f64::max);
        let value = |p: &[f64]| evaluate(Metric::MeanSquares, ImageGradient::Linear, &samples, &moving, &mapping.with_parameters(p)).unwrap().value;
        for k in (0..analytic.len()).step_by(37) {
            let (mut plus, mut minus) = (mapping.parameters().to_vec(), mapping.parameters().to_vec());
            plus[k] += 1e-4;
            minus[k] -= 1e-4;
            let numeric = (value(&plus) - value(&minus)) / 2e-4;
            assert!((analytic[k] - numeric).abs() <= 0.05 * numeric.abs().max(0.01 * largest), "coefficient {k}: {} vs {numeric}", analytic[k]);
        }
    }

    #[test]
    fn random_sampling_keeps_about_the_fraction_and_repeats() {
        let fixed = blob(0.0);
        let strategy = Strategy::Random { fraction: 0.2, seed: 7 };
        let a = draw_samples(&fixed, strategy, |_| true);
        let b = draw_samples(&fixed, strategy, |_| true);
        assert_eq!(a.values, b.values);
        let fraction = a.values.len() as f64 / fixed.len() as f64;
        assert!((fraction - 0.2).abs() < 0.02, "{fraction}");
    }
}
