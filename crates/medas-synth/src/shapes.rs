//! Solid shapes as approximate signed distances in mm (negative inside), so painting can turn
//! the distance at a voxel centre into a partial-volume coverage fraction.

use crate::noise::SmoothNoise;
use crate::rng::Rng;

pub type Point = [f64; 3];

/// A solid with a signed distance (mm, negative inside) and a world-space bounding box.
pub trait Shape: Sync {
    fn distance(&self, p: Point) -> f64;
    /// Lower and upper corners (mm) of a box holding the whole solid.
    fn bounds(&self) -> (Point, Point);
}

fn sub(a: Point, b: Point) -> Point {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}
fn dot(a: Point, b: Point) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// `v` scaled to unit length.
pub fn normalise(v: Point) -> Point {
    let n = dot(v, v).sqrt().max(1e-12);
    v.map(|c| c / n)
}

/// Rotation rows (the ellipsoid's local axes in world coordinates) for rotations about z, then
/// y, then x by the given angles (radians).
pub fn rotation(about_z: f64, about_y: f64, about_x: f64) -> [Point; 3] {
    let (sz, cz) = about_z.sin_cos();
    let (sy, cy) = about_y.sin_cos();
    let (sx, cx) = about_x.sin_cos();
    // R = Rz · Ry · Rx; rows of Rᵀ are the local axes.
    let r = [
        [cz * cy, cz * sy * sx - sz * cx, cz * sy * cx + sz * sx],
        [sz * cy, sz * sy * sx + cz * cx, sz * sy * cx - cz * sx],
        [-sy, cy * sx, cy * cx],
    ];
    std::array::from_fn(|row| std::array::from_fn(|col| r[col][row]))
}

/// Axes given in a rotated frame (`inner`, relative to `frame`'s axes) expressed in world
/// coordinates: a rotation applied within a rotated body.
pub fn in_frame(inner: [Point; 3], frame: [Point; 3]) -> [Point; 3] {
    std::array::from_fn(|a| std::array::from_fn(|w| (0..3).map(|b| inner[a][b] * frame[b][w]).sum()))
}

/// An ellipsoid, optionally rotated and with its surface pushed in and out by smooth noise
/// (radius scaled by `1 + amplitude · noise`), the building block of organs.
pub struct Ellipsoid {
    centre: Point,
    axes: [Point; 3],
    radii: Point,
    deform: Option<(SmoothNoise, f64)>,
}

impl Ellipsoid {
    pub fn new(centre: Point, radii: Point) -> Self {
        Self { centre, axes: rotation(0.0, 0.0, 0.0), radii, deform: None }
    }

    pub fn rotated(mut self, axes: [Point; 3]) -> Self {
        self.axes = axes;
        self
    }

    /// Deforms the surface by up to `amplitude` (fraction of the radius) with lumps about
    /// `wavelength` mm across.
    pub fn deformed(mut self, rng: &mut Rng, amplitude: f64, wavelength: f64) -> Self {
        let reach = self.reach();
        let low = sub(self.centre, [reach; 3]);
        let high = [self.centre[0] + reach, self.centre[1] + reach, self.centre[2] + reach];
        self.deform = Some((SmoothNoise::new(rng, low, high, wavelength), amplitude));
        self
    }

    fn reach(&self) -> f64 {
        let amplitude = self.deform.as_ref().map_or(0.0, |d| d.1);
        self.radii.iter().cloned().fold(0.0, f64::max) * (1.0 + amplitude)
    }
}

/// Beyond this distance (mm) from the band the deformation can reach, the noise is not looked
/// up: the coverage there is 0 or 1 whatever the noise, for any voxel size under 20 mm.
const FAR: f64 = 10.0;

impl Shape for Ellipsoid {
    fn distance(&self, p: Point) -> f64 {
        let d = sub(p, self.centre);
        let q: Point = std::array::from_fn(|a| dot(self.axes[a], d));
        let rho = (0..3).map(|a| (q[a] / self.radii[a]).powi(2)).sum::<f64>().sqrt();
        let smallest = self.radii.iter().cloned().fold(f64::INFINITY, f64::min);
        if rho < 1e-9 {
            return -smallest;
        }
        let gradient = ((0..3).map(|a| (q[a] / (self.radii[a] * self.radii[a])).powi(2)).sum::<f64>().sqrt() / rho).max(1e-12);
        let scale = match &self.deform {
            None => 1.0,
            Some((_, amplitude)) if (rho - 1.0 - amplitude) / gradient > FAR => 1.0 + amplitude,
            Some((_, amplitude)) if (rho - 1.0 + amplitude) / gradient < -FAR => 1.0 - amplitude,
            Some((noise, amplitude)) => 1.0 + amplitude * noise.at(p),
        };
        // First-order distance to the level set rho = scale.
        ((rho - scale) / gradient).max(-smallest * scale)
    }

    fn bounds(&self) -> (Point, Point) {
        let grow = 1.0 + self.deform.as_ref().map_or(0.0, |d| d.1);
        // Half extent along world axis w of a rotated ellipsoid: sqrt(sum_a (r_a · axis_a[w])²).
        let half: Point = std::array::from_fn(|w| (0..3).map(|a| (self.radii[a] * self.axes[a][w]).powi(2)).sum::<f64>().sqrt() * grow);
        (sub(self.centre, half), std::array::from_fn(|w| self.centre[w] + half[w]))
    }
}

/// A tube along a polyline whose radius varies linearly along each segment (vessels, airways,
/// the oesophagus).
pub struct Tube {
    points: Vec<Point>,
    radii: Vec<f64>,
}

impl Tube {
    /// `points` and `radii` have the same length (at least 2).
    pub fn new(points: Vec<Point>, radii: Vec<f64>) -> Self {
        debug_assert!(points.len() >= 2 && points.len() == radii.len());
        Self { points, radii }
    }
}

impl Shape for Tube {
    fn distance(&self, p: Point) -> f64 {
        let mut best = f64::INFINITY;
        for s in 0..self.points.len() - 1 {
            let (a, b) = (self.points[s], self.points[s + 1]);
            let ab = sub(b, a);
            let t = (dot(sub(p, a), ab) / dot(ab, ab).max(1e-12)).clamp(0.0, 1.0);
            let closest = [a[0] + t * ab[0], a[1] + t * ab[1], a[2] + t * ab[2]];
            let radius = self.radii[s] + t * (self.radii[s + 1] - self.radii[s]);
            best = best.min(dot(sub(p, closest), sub(p, closest)).sqrt() - radius);
        }
        best
    }

    fn bounds(&self) -> (Point, Point) {
        let reach = self.radii.iter().cloned().fold(0.0, f64::max);
        let mut low = [f64::INFINITY; 3];
        let mut high = [f64::NEG_INFINITY; 3];
        for p in &self.points {
            for a in 0..3 {
                low[a] = low[a].min(p[a] - reach);
                high[a] = high[a].max(p[a] + reach);
            }
        }
        (low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sphere_distance_is_exact() {
        let sphere = Ellipsoid::new([1.0, 2.0, 3.0], [5.0; 3]);
        assert!((sphere.distance([1.0, 2.0, 10.0]) - 2.0).abs() < 1e-9);
        assert!((sphere.distance([1.0, 4.0, 3.0]) + 3.0).abs() < 1e-9);
    }

    #[test]
    fn rotation_keeps_axes_orthonormal() {
        let axes = rotation(0.3, -0.2, 0.7);
        for a in 0..3 {
            for b in 0..3 {
                let expected = if a == b { 1.0 } else { 0.0 };
                assert!((dot(axes[a], axes[b]) - expected).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn tube_distance_to_axis() {
        let tube = Tube::new(vec![[0.0; 3], [0.0, 0.0, 10.0]], vec![2.0, 4.0]);
        assert!((tube.distance([5.0, 0.0, 5.0]) - 2.0).abs() < 1e-9);
    }
}
