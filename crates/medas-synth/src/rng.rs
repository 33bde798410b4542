//! A small, portable PRNG (xoshiro256** seeded by SplitMix64) so datasets are identical on
//! every machine and with every thread count: each case, slice or structure draws from its own
//! stream derived from (seed, purpose, index), never from a shared generator.

/// One SplitMix64 step: the standard seeding mixer for the xoshiro family.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xoshiro256** (Blackman and Vigna) with Box–Muller normals.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    spare_normal: Option<f64>,
}

impl Rng {
    /// A generator whose state is SplitMix64-expanded from `seed`.
    pub fn new(seed: u64) -> Self {
        let mut state = seed;
        let s = [splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state), splitmix64(&mut state)];
        Self { s, spare_normal: None }
    }

    /// An independent stream for `(seed, path...)`, e.g. `(seed, [case, SLICES, k])`.
    pub fn stream(seed: u64, path: &[u64]) -> Self {
        let mut state = seed;
        let mut mixed = splitmix64(&mut state);
        for &part in path {
            let mut s = mixed ^ part.wrapping_mul(0xd605_bbb5_8c8a_be35);
            mixed = splitmix64(&mut s);
        }
        Self::new(mixed)
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1) with 53 random bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [low, high).
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        low + (high - low) * self.unit()
    }

    /// Uniform integer in [low, high] (inclusive).
    pub fn int(&mut self, low: usize, high: usize) -> usize {
        low + ((self.unit() * (high - low + 1) as f64) as usize).min(high - low)
    }

    /// `true` with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Standard normal by the Box–Muller transform (the second value is kept for the next call).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare_normal.take() {
            return z;
        }
        let u1 = 1.0 - self.unit(); // (0, 1]: ln never sees 0
        let u2 = self.unit();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = std::f64::consts::TAU * u2;
        self.spare_normal = Some(radius * angle.sin());
        radius * angle.cos()
    }

    /// A random unit vector in 3-D (uniform on the sphere).
    pub fn direction3(&mut self) -> [f64; 3] {
        let z = self.uniform(-1.0, 1.0);
        let angle = self.uniform(0.0, std::f64::consts::TAU);
        let r = (1.0 - z * z).sqrt();
        [r * angle.cos(), r * angle.sin(), z]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        let a: Vec<u64> = (0..4).map(|_| Rng::stream(7, &[1, 2]).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::stream(7, &[1, 2]).next_u64(), Rng::stream(7, &[2, 1]).next_u64());
        assert_ne!(Rng::stream(7, &[1]).next_u64(), Rng::stream(8, &[1]).next_u64());
    }

    #[test]
    fn normals_have_unit_variance() {
        let mut rng = Rng::new(3);
        let n = 200_000;
        let values: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = values.iter().sum::<f64>() / n as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "mean {mean} var {var}");
    }

    #[test]
    fn integers_cover_the_inclusive_range() {
        let mut rng = Rng::new(5);
        let mut seen = [false; 4];
        for _ in 0..1000 {
            seen[rng.int(2, 5) - 2] = true;
        }
        assert!(seen.iter().all(|&s| s));
    }
}
