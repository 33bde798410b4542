//! N4's histogram sharpening (Tustison et al. 2010, after Sled's N3), as ITK's
//! N4BiasFieldCorrectionImageFilter::SharpenImage does it: the histogram of the log intensities
//! is taken to be the true histogram blurred by a Gaussian of the bias field's width, is
//! deconvolved by a Wiener filter, and every voxel is moved to the expected true intensity
//! given its blurred one, E(u | v).

use rayon::prelude::*;
use std::ops::{Add, Mul, Sub};

/// The sharpening parameters (ITK's defaults: 200 bins, FWHM 0.15, Wiener noise 0.01).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sharpening {
    pub bins: usize,
    /// Full width at half maximum of the Gaussian blur, in log-intensity units.
    pub fwhm: f64,
    pub wiener_noise: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Complex(f64, f64);

impl Add for Complex {
    type Output = Complex;
    fn add(self, o: Complex) -> Complex {
        Complex(self.0 + o.0, self.1 + o.1)
    }
}
impl Sub for Complex {
    type Output = Complex;
    fn sub(self, o: Complex) -> Complex {
        Complex(self.0 - o.0, self.1 - o.1)
    }
}
impl Mul for Complex {
    type Output = Complex;
    fn mul(self, o: Complex) -> Complex {
        Complex(self.0 * o.0 - self.1 * o.1, self.0 * o.1 + self.1 * o.0)
    }
}

/// In-place radix-2 FFT of a power-of-two length; `inverse` uses the conjugate twiddles and
/// divides by the length.
fn fft(data: &mut [Complex], inverse: bool) {
    let n = data.len();
    let mut j = 0;
    for i in 1..n {
        let mut bit = n >> 1;
        while j & bit != 0 {
            j ^= bit;
            bit >>= 1;
        }
        j |= bit;
        if i < j {
            data.swap(i, j);
        }
    }
    let sign = if inverse { 1.0 } else { -1.0 };
    let mut len = 2;
    while len <= n {
        let angle = sign * 2.0 * std::f64::consts::PI / len as f64;
        for start in (0..n).step_by(len) {
            for k in 0..len / 2 {
                let w = Complex((angle * k as f64).cos(), (angle * k as f64).sin());
                let (a, b) = (data[start + k], data[start + k + len / 2] * w);
                data[start + k] = a + b;
                data[start + k + len / 2] = a - b;
            }
        }
        len <<= 1;
    }
    if inverse {
        data.iter_mut().for_each(|c| *c = Complex(c.0 / n as f64, c.1 / n as f64));
    }
}

/// Circular convolution of a real signal with the kernel whose transform is `kernel`.
fn convolve(signal: &[f64], kernel: &[Complex]) -> Vec<f64> {
    let mut data: Vec<Complex> = signal.iter().map(|&x| Complex(x, 0.0)).collect();
    fft(&mut data, false);
    data.iter_mut().zip(kernel).for_each(|(d, k)| *d = *d * *k);
    fft(&mut data, true);
    data.iter().map(|c| c.0).collect()
}

impl Sharpening {
    /// The sharpened values of `values` at the voxels marked in `included` (0 elsewhere).
    /// Returns the values unchanged when they are all equal inside (nothing to sharpen).
    pub fn sharpen(&self, values: &[f64], included: &[bool]) -> Vec<f64> {
        let inside = || values.par_iter().zip(included).filter(|(_, inside)| **inside).map(|(v, _)| *v);
        let min = inside().reduce(|| f64::INFINITY, f64::min);
        let max = inside().reduce(|| f64::NEG_INFINITY, f64::max);
        // Also true when nothing is included (min is then +inf).
        if max.partial_cmp(&min) != Some(std::cmp::Ordering::Greater) {
            return values.to_vec();
        }
        let slope = (max - min) / (self.bins - 1) as f64;
        let histogram = self.histogram(values, included, min, slope);
        let mapping = self.expected_intensities(&histogram, min, slope);
        let last = mapping.len() - 1;
        values
            .par_iter()
            .zip(included)
            .map(|(&v, &inside)| {
                if !inside {
                    return 0.0;
                }
                let position = (v - min) / slope;
                let bin = position.floor() as usize;
                if bin < last { mapping[bin] + (mapping[bin + 1] - mapping[bin]) * (position - bin as f64) } else { mapping[last] }
            })
            .collect()
    }

    /// The histogram of the included values in `bins` bins centred on `min + b * slope`, each
    /// value shared linearly between its two nearest bins (triangular Parzen window).
    fn histogram(&self, values: &[f64], included: &[bool], min: f64, slope: f64) -> Vec<f64> {
        let bins = self.bins;
        let add = |mut h: Vec<f64>, (&v, &inside): (&f64, &bool)| {
            if inside {
                let position = (v - min) / slope;
                let bin = position.floor() as usize;
                let offset = position - bin as f64;
                if offset == 0.0 {
                    h[bin.min(bins - 1)] += 1.0;
                } else if bin < bins - 1 {
                    h[bin] += 1.0 - offset;
                    h[bin + 1] += offset;
                }
            }
            h
        };
        values.par_iter().zip(included).fold(|| vec![0.0; bins], add).reduce(
            || vec![0.0; bins],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
    }

    /// E(u | v) per bin: the histogram is zero-padded (centred) to twice the next power of
    /// two, deconvolved by the Wiener filter of the Gaussian, clamped at 0, and then the
    /// expected intensity under the Gaussian around each bin is taken from the estimate.
    fn expected_intensities(&self, histogram: &[f64], min: f64, slope: f64) -> Vec<f64> {
        let bins = self.bins;
        let padded = 1usize << ((bins as f64).log2().ceil() as u32 + 1);
        let offset = (padded - bins) / 2;
        let mut blurred = vec![Complex::default(); padded];
        for (b, &h) in histogram.iter().enumerate() {
            blurred[b + offset] = Complex(h, 0.0);
        }
        fft(&mut blurred, false);
        let gaussian = self.gaussian_transform(padded, slope);
        let noise = self.wiener_noise;
        let mut estimate: Vec<Complex> = blurred
            .iter()
            .zip(&gaussian)
            .map(|(v, g)| {
                let wiener = g.0 / (g.0 * g.0 + g.1 * g.1 + noise);
                Complex(v.0 * wiener, v.1 * wiener)
            })
            .collect();
        fft(&mut estimate, true);
        let true_histogram: Vec<f64> = estimate.iter().map(|c| c.0.max(0.0)).collect();
        let centre = |n: usize| min + (n as f64 - offset as f64) * slope;
        let weighted: Vec<f64> = true_histogram.iter().enumerate().map(|(n, u)| centre(n) * u).collect();
        let numerator = convolve(&weighted, &gaussian);
        let denominator = convolve(&true_histogram, &gaussian);
        (offset..offset + bins).map(|n| if denominator[n] != 0.0 { numerator[n] / denominator[n] } else { 0.0 }).collect()
    }

    /// The transform of the unit-area Gaussian of FWHM `fwhm` (in bins of `slope`), sampled
    /// at integer bins around 0 with wrap-around. The Gaussian is real and even, so the
    /// transform is real.
    fn gaussian_transform(&self, padded: usize, slope: f64) -> Vec<Complex> {
        let fwhm = self.fwhm / slope;
        let exponent = 4.0 * std::f64::consts::LN_2 / (fwhm * fwhm);
        let scale = 2.0 * (std::f64::consts::LN_2 / std::f64::consts::PI).sqrt() / fwhm;
        let mut gaussian: Vec<Complex> = (0..padded)
            .map(|n| {
                let distance = n.min(padded - n) as f64;
                Complex(scale * (-distance * distance * exponent).exp(), 0.0)
            })
            .collect();
        fft(&mut gaussian, false);
        gaussian
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fft_round_trip_and_known_transform() {
        let signal: Vec<Complex> = (0..8).map(|k| Complex(k as f64, 0.0)).collect();
        let mut data = signal.clone();
        fft(&mut data, false);
        // The DC term is the sum; the Nyquist term the alternating sum.
        assert!((data[0].0 - 28.0).abs() < 1e-12 && (data[4].0 + 4.0).abs() < 1e-12);
        fft(&mut data, true);
        data.iter().zip(&signal).for_each(|(a, b)| assert!((a.0 - b.0).abs() < 1e-12 && a.1.abs() < 1e-12));
    }

    #[test]
    fn the_gaussian_has_unit_area() {
        let sharpening = Sharpening { bins: 200, fwhm: 0.15, wiener_noise: 0.01 };
        let transform = sharpening.gaussian_transform(512, 0.01);
        assert!((transform[0].0 - 1.0).abs() < 1e-6, "{:?}", transform[0]);
        assert!(transform.iter().all(|c| c.1.abs() < 1e-9));
    }

    #[test]
    fn two_blurred_peaks_move_apart() {
        // Two tissue classes at log intensities 0 and 1, spread by a smooth ramp: sharpening
        // pulls the voxels of each class towards its centre, so the spread shrinks.
        let values: Vec<f64> = (0..4000).map(|v| (v % 2) as f64 + 0.2 * ((v / 2) as f64 / 1999.0 - 0.5)).collect();
        let included = vec![true; values.len()];
        let sharpened = Sharpening { bins: 200, fwhm: 0.15, wiener_noise: 0.01 }.sharpen(&values, &included);
        let spread = |xs: &[f64], class: usize| {
            let class: Vec<f64> = xs.iter().skip(class).step_by(2).copied().collect();
            class.iter().cloned().fold(f64::NEG_INFINITY, f64::max) - class.iter().cloned().fold(f64::INFINITY, f64::min)
        };
        for class in 0..2 {
            assert!(spread(&sharpened, class) < spread(&values, class), "class {class}");
        }
        let constant = Sharpening { bins: 200, fwhm: 0.15, wiener_noise: 0.01 }.sharpen(&[3.0; 5], &[true; 5]);
        assert_eq!(constant, vec![3.0; 5]);
    }
}
