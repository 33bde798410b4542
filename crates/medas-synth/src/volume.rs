//! A 3-D phantom being built: intensities and labels on a voxel grid with full geometry, painted
//! structure by structure with partial-volume edges, then given a bias field and noise.

use crate::noise::SmoothNoise;
use crate::rng::Rng;
use crate::shapes::{Point, Shape};
use crate::SynthError;
use medas_image::{Geometry, Image, Voxels};
use rayon::prelude::*;

/// What painting does to the label of the voxels a structure covers (coverage ≥ 0.5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Label {
    /// Leave labels alone (the structure is background texture inside whatever holds it).
    Keep,
    /// Set this label (0 clears: an unlabelled structure in front of a labelled one).
    Set(u8),
}

/// Intensity a structure fills with, as a function of the world point (texture) or constant.
pub type Fill<'a> = &'a (dyn Fn(Point) -> f64 + Sync);

pub struct Volume {
    pub size: [usize; 3],
    pub geometry: Geometry,
    pub values: Vec<f32>,
    pub labels: Vec<u8>,
    grid: Grid,
    /// Width (mm) of the coverage ramp across an edge: the mean voxel size.
    edge_width: f64,
}

impl Volume {
    /// A volume of `size` voxels centred on world point `centre` (mm), filled with `background`.
    pub fn new(size: [usize; 3], spacing: Point, centre: Point, direction: [f64; 9], background: f64) -> Result<Self, SynthError> {
        let steps: [Point; 3] = std::array::from_fn(|k| std::array::from_fn(|r| direction[r * 3 + k] * spacing[k]));
        let origin: Point = std::array::from_fn(|r| {
            centre[r] - (0..3).map(|k| steps[k][r] * (size[k] as f64 - 1.0) / 2.0).sum::<f64>()
        });
        let geometry = Geometry::new(spacing.to_vec(), origin.to_vec(), direction.to_vec())?;
        let count = size.iter().product();
        Ok(Self {
            size,
            geometry,
            values: vec![background as f32; count],
            labels: vec![0; count],
            grid: Grid { origin, steps },
            edge_width: spacing.iter().sum::<f64>() / 3.0,
        })
    }

    /// World point (mm) of voxel centre (i, j, k).
    pub fn point(&self, i: usize, j: usize, k: usize) -> Point {
        self.grid.point(i, j, k)
    }

    /// Intensity of the voxel nearest to world point `p`, if it lies in the volume.
    pub fn value_near(&self, p: Point) -> Option<f32> {
        let index = self.geometry.point_to_index(&p);
        let mut at = 0;
        for a in (0..3).rev() {
            let i = index[a].round();
            if !(0.0..self.size[a] as f64).contains(&i) {
                return None;
            }
            at = at * self.size[a] + i as usize;
        }
        Some(self.values[at])
    }

    /// World box (mm) holding every voxel centre.
    pub fn world_bounds(&self) -> (Point, Point) {
        corner_bounds(|c| self.point(c[0] * (self.size[0] - 1), c[1] * (self.size[1] - 1), c[2] * (self.size[2] - 1)))
    }

    /// Index ranges (inclusive start, exclusive end) of the voxels whose centres may lie within
    /// the world box `low..high` grown by two edge widths.
    fn index_ranges(&self, low: Point, high: Point) -> [(usize, usize); 3] {
        let margin = 2.0 * self.edge_width;
        let (low, high) = (low.map(|v| v - margin), high.map(|v| v + margin));
        let (lo, hi) = corner_bounds(|c| {
            let p = [if c[0] == 0 { low[0] } else { high[0] }, if c[1] == 0 { low[1] } else { high[1] }, if c[2] == 0 { low[2] } else { high[2] }];
            let index = self.geometry.point_to_index(&p);
            [index[0], index[1], index[2]]
        });
        std::array::from_fn(|a| {
            let start = lo[a].floor().max(0.0) as usize;
            let end = ((hi[a].ceil() + 1.0).max(0.0) as usize).min(self.size[a]);
            (start.min(end), end)
        })
    }

    /// Paints `shape` over what is there: each voxel blends towards `fill` by the fraction of
    /// it the shape covers (a linear ramp of the signed distance across one voxel width).
    pub fn paint(&mut self, shape: &dyn Shape, fill: Fill, label: Label) {
        let (low, high) = shape.bounds();
        let [(i0, i1), (j0, j1), (k0, k1)] = self.index_ranges(low, high);
        let [nx, ny, _] = self.size;
        let plane = nx * ny;
        let (edge, grid) = (self.edge_width, self.grid);
        let values = self.values[k0 * plane..k1 * plane].par_chunks_mut(plane);
        let labels = self.labels[k0 * plane..k1 * plane].par_chunks_mut(plane);
        values.zip(labels).enumerate().for_each(|(dk, (values, labels))| {
            for j in j0..j1 {
                for i in i0..i1 {
                    let p = grid.point(i, j, k0 + dk);
                    let coverage = (0.5 - shape.distance(p) / edge).clamp(0.0, 1.0);
                    if coverage <= 0.0 {
                        continue;
                    }
                    let at = i + nx * j;
                    let old = values[at] as f64;
                    values[at] = (old + (fill(p) - old) * coverage) as f32;
                    if let Label::Set(l) = label
                        && coverage >= 0.5
                    {
                        labels[at] = l;
                    }
                }
            }
        });
    }

    /// The final intensities: `finish(value, bias, rng)` per voxel, where `bias` is a smooth
    /// field in [-1, 1] and `rng` is the voxel's slice stream (so results do not depend on
    /// the thread count), rounded and clamped into i16.
    pub fn finish_i16(&self, seed: u64, stream: &[u64], finish: impl Fn(f64, f64, &mut Rng) -> f64 + Sync) -> Vec<i16> {
        let (low, high) = self.world_bounds();
        let extent = (0..3).map(|a| high[a] - low[a]).fold(0.0, f64::max);
        let bias = SmoothNoise::new(&mut Rng::stream(seed, &[stream, &[u64::MAX]].concat()), low, high, extent / 1.5);
        let [nx, ny, _] = self.size;
        let mut out = vec![0i16; self.values.len()];
        out.par_chunks_mut(nx * ny).enumerate().for_each(|(k, slice)| {
            let mut rng = Rng::stream(seed, &[stream, &[k as u64]].concat());
            for j in 0..ny {
                for i in 0..nx {
                    let value = self.values[i + nx * (j + ny * k)] as f64;
                    let finished = finish(value, bias.at(self.point(i, j, k)), &mut rng);
                    slice[i + nx * j] = finished.round().clamp(i16::MIN as f64, i16::MAX as f64) as i16;
                }
            }
        });
        out
    }

    /// The intensity image (from [`Volume::finish_i16`]) with this volume's geometry.
    pub fn image_i16(&self, data: Vec<i16>) -> Result<Image, SynthError> {
        Ok(Image::new(Voxels::from_fortran_vec(&self.size, data)?, self.geometry.clone())?)
    }

    /// The label image (u8) with this volume's geometry.
    pub fn label_image(&self) -> Result<Image, SynthError> {
        Ok(Image::new(Voxels::from_fortran_vec(&self.size, self.labels.clone())?, self.geometry.clone())?)
    }
}

/// Voxel index → world point, small enough to copy into parallel loops.
#[derive(Debug, Clone, Copy)]
struct Grid {
    origin: Point,
    /// Column k: the world step (mm) of one voxel along index axis k.
    steps: [Point; 3],
}

impl Grid {
    fn point(&self, i: usize, j: usize, k: usize) -> Point {
        let index = [i as f64, j as f64, k as f64];
        std::array::from_fn(|r| self.origin[r] + (0..3).map(|a| self.steps[a][r] * index[a]).sum::<f64>())
    }
}

/// Component-wise bounds of the eight points `corner([0|1, 0|1, 0|1])`.
fn corner_bounds(corner: impl Fn([usize; 3]) -> Point) -> (Point, Point) {
    let mut low = [f64::INFINITY; 3];
    let mut high = [f64::NEG_INFINITY; 3];
    for c in 0..8 {
        let p = corner([c & 1, (c >> 1) & 1, (c >> 2) & 1]);
        for a in 0..3 {
            low[a] = low[a].min(p[a]);
            high[a] = high[a].max(p[a]);
        }
    }
    (low, high)
}

/// A direction matrix (row-major) rotating the index axes by small angles (radians) about the
/// world axes, as in an oblique acquisition.
pub fn oblique_direction(about_z: f64, about_y: f64, about_x: f64) -> [f64; 9] {
    let rows = crate::shapes::rotation(about_z, about_y, about_x);
    // rows[a] is the local axis a in world coordinates: index axis a's direction = column a.
    std::array::from_fn(|n| rows[n % 3][n / 3])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::Ellipsoid;

    #[test]
    fn sphere_is_labelled_with_soft_edges() {
        let mut volume = Volume::new([32, 32, 32], [1.0; 3], [0.0; 3], oblique_direction(0.0, 0.0, 0.0), 0.0).unwrap();
        volume.paint(&Ellipsoid::new([0.0; 3], [8.0; 3]), &|_| 100.0, Label::Set(2));
        let labelled = volume.labels.iter().filter(|&&l| l == 2).count() as f64;
        let expected = 4.0 / 3.0 * std::f64::consts::PI * 512.0;
        assert!((labelled - expected).abs() / expected < 0.05, "{labelled} vs {expected}");
        let partial = volume.values.iter().filter(|&&v| v > 1.0 && v < 99.0).count();
        assert!(partial > 100, "edges are blended: {partial}");
        assert_eq!(volume.geometry.index_to_point(&[15.5, 15.5, 15.5]), vec![0.0, 0.0, 0.0]);
    }
}
