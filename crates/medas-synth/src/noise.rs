//! Smooth random fields: value noise on a coarse lattice, interpolated with a C¹ fade, used for
//! shape deformation, tissue texture and the bias field. 2-D users evaluate at z = 0.

use crate::rng::Rng;

/// Random values in [-1, 1] on a lattice of `cell` mm over a box, smoothly interpolated.
#[derive(Debug, Clone)]
pub struct SmoothNoise {
    low: [f64; 3],
    cell: f64,
    dims: [usize; 3],
    values: Vec<f32>,
}

impl SmoothNoise {
    /// A field covering the box `low..high` (mm) with lattice spacing `cell` (mm).
    pub fn new(rng: &mut Rng, low: [f64; 3], high: [f64; 3], cell: f64) -> Self {
        let dims: [usize; 3] = std::array::from_fn(|a| ((high[a] - low[a]).max(0.0) / cell).ceil() as usize + 2);
        let values = (0..dims.iter().product::<usize>()).map(|_| rng.uniform(-1.0, 1.0) as f32).collect();
        Self { low, cell, dims, values }
    }

    /// The field at point `p` (mm); points outside the box take the nearest edge value.
    pub fn at(&self, p: [f64; 3]) -> f64 {
        let mut base = [0usize; 3];
        let mut weight = [0f64; 3];
        for a in 0..3 {
            let u = ((p[a] - self.low[a]) / self.cell).clamp(0.0, (self.dims[a] - 1) as f64 - 1e-9);
            let cell = u.floor();
            base[a] = (cell as usize).min(self.dims[a].saturating_sub(2));
            let t = (u - base[a] as f64).clamp(0.0, 1.0);
            weight[a] = t * t * (3.0 - 2.0 * t);
        }
        let [nx, ny, _] = self.dims;
        let at = |i: usize, j: usize, k: usize| self.values[i + nx * (j + ny * k)] as f64;
        let lerp = |a: f64, b: f64, t: f64| a + (b - a) * t;
        let [i, j, k] = base;
        let (k1, j1) = ((k + 1).min(self.dims[2] - 1), (j + 1).min(ny - 1));
        let plane = |k: usize| {
            let lower = lerp(at(i, j, k), at(i + 1, j, k), weight[0]);
            let upper = lerp(at(i, j1, k), at(i + 1, j1, k), weight[0]);
            lerp(lower, upper, weight[1])
        };
        lerp(plane(k), plane(k1), weight[2])
    }
}

/// A sum of [`SmoothNoise`] octaves (each half the cell size and half the amplitude),
/// normalised so its values stay in about [-1, 1].
#[derive(Debug, Clone)]
pub struct Fractal {
    octaves: Vec<SmoothNoise>,
}

impl Fractal {
    pub fn new(rng: &mut Rng, low: [f64; 3], high: [f64; 3], cell: f64, octaves: usize) -> Self {
        let octaves = (0..octaves.max(1)).map(|o| SmoothNoise::new(rng, low, high, cell / (1 << o) as f64)).collect();
        Self { octaves }
    }

    pub fn at(&self, p: [f64; 3]) -> f64 {
        let (mut sum, mut norm, mut amplitude) = (0.0, 0.0, 1.0);
        for octave in &self.octaves {
            sum += amplitude * octave.at(p);
            norm += amplitude;
            amplitude *= 0.5;
        }
        sum / norm
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_is_bounded_and_continuous() {
        let mut rng = Rng::new(1);
        let field = SmoothNoise::new(&mut rng, [0.0; 3], [100.0; 3], 10.0);
        let mut previous = field.at([0.0, 50.0, 50.0]);
        for step in 1..=1000 {
            let value = field.at([step as f64 * 0.1, 50.0, 50.0]);
            assert!(value.abs() <= 1.0);
            assert!((value - previous).abs() < 0.05, "jump at step {step}");
            previous = value;
        }
    }
}
