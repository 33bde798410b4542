//! The weighted sums the windows' outputs are added into: one value per class and voxel of the
//! (padded) input and one weight sum per voxel, nothing else the size of the volume.

/// Weighted sums over a grid (D, H, W) for `classes` channels, row-major (W fastest).
pub(crate) struct Accumulator {
    classes: usize,
    grid: [usize; 3],
    sums: Vec<f32>,
    weights: Vec<f32>,
}

impl Accumulator {
    pub(crate) fn new(classes: usize, grid: [usize; 3]) -> Accumulator {
        let voxels = grid.iter().product::<usize>();
        Accumulator { classes, grid, sums: vec![0.0; classes * voxels], weights: vec![0.0; voxels] }
    }

    pub(crate) fn classes(&self) -> usize {
        self.classes
    }

    /// Adds one window's values (classes, patch D, H, W) at `start`, each voxel times its
    /// `blend` weight (patch D, H, W).
    pub(crate) fn add(&mut self, start: [usize; 3], patch: [usize; 3], values: &[f32], blend: &[f32]) {
        let [_, gh, gw] = self.grid;
        let [pd, ph, pw] = patch;
        let patch_voxels = pd * ph * pw;
        let grid_voxels = self.weights.len();
        for d in 0..pd {
            for h in 0..ph {
                let row = (d * ph + h) * pw;
                let at = ((start[0] + d) * gh + start[1] + h) * gw + start[2];
                let weights = &blend[row..row + pw];
                for (sum, w) in self.weights[at..at + pw].iter_mut().zip(weights) {
                    *sum += w;
                }
                for class in 0..self.classes {
                    let source = &values[class * patch_voxels + row..][..pw];
                    let target = &mut self.sums[class * grid_voxels + at..][..pw];
                    for ((sum, v), w) in target.iter_mut().zip(source).zip(weights) {
                        *sum += v * w;
                    }
                }
            }
        }
    }

    /// The weighted means (classes, D, H, W) over the region starting at `offset` of size
    /// `size` (the input without its padding).
    pub(crate) fn finish(self, offset: [usize; 3], size: [usize; 3]) -> Vec<f32> {
        let [_, gh, gw] = self.grid;
        let grid_voxels = self.weights.len();
        let mut out = Vec::with_capacity(self.classes * size.iter().product::<usize>());
        for class in 0..self.classes {
            for d in 0..size[0] {
                for h in 0..size[1] {
                    let at = ((offset[0] + d) * gh + offset[1] + h) * gw + offset[2];
                    let sums = &self.sums[class * grid_voxels + at..][..size[2]];
                    // Every voxel lies in some window and every blend weight is positive.
                    out.extend(sums.iter().zip(&self.weights[at..at + size[2]]).map(|(s, w)| s / w));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_windows_give_the_weighted_mean() {
        // Grid 1x1x3, windows of 2 at 0 and 1: the middle voxel is (1*a + 3*b) / (1 + 3).
        let mut acc = Accumulator::new(1, [1, 1, 3]);
        acc.add([0, 0, 0], [1, 1, 2], &[2.0, 4.0], &[1.0, 1.0]);
        acc.add([0, 0, 1], [1, 1, 2], &[8.0, 6.0], &[3.0, 1.0]);
        assert_eq!(acc.finish([0, 0, 0], [1, 1, 3]), [2.0, (4.0 + 24.0) / 4.0, 6.0]);
    }
}
