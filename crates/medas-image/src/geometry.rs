use crate::ImageError;
use serde::{Deserialize, Serialize};

/// Where the voxels of an image sit in physical (LPS, millimetre) space.
///
/// For an index `idx` (continuous or integer), the physical point is
/// `origin + direction · (spacing ⊙ idx)`, exactly as in ITK/SimpleITK.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Geometry {
    /// Distance between voxel centres along each index axis, in mm (seconds for a time axis).
    spacing: Vec<f64>,
    /// Physical position of the centre of voxel (0, 0, ...), in mm.
    origin: Vec<f64>,
    /// Direction cosines, row-major `n × n`; column `k` is the unit vector of index axis `k`.
    direction: Vec<f64>,
}

impl Geometry {
    /// Unit spacing, zero origin and identity direction in `dimension` dimensions.
    pub fn identity(dimension: usize) -> Self {
        let mut direction = vec![0.0; dimension * dimension];
        for k in 0..dimension {
            direction[k * dimension + k] = 1.0;
        }
        Self { spacing: vec![1.0; dimension], origin: vec![0.0; dimension], direction }
    }

    /// Builds a geometry after checking that every part is finite, the sizes agree,
    /// spacing is positive and the direction matrix is invertible.
    pub fn new(spacing: Vec<f64>, origin: Vec<f64>, direction: Vec<f64>) -> Result<Self, ImageError> {
        let n = spacing.len();
        if !(1..=4).contains(&n) {
            return Err(ImageError::UnsupportedDimension(n));
        }
        if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
            return Err(ImageError::BadSpacing(spacing));
        }
        if origin.len() != n || origin.iter().any(|o| !o.is_finite()) {
            return Err(ImageError::BadOrigin(origin));
        }
        let bad_direction = direction.len() != n * n
            || direction.iter().any(|d| !d.is_finite())
            || invert(&direction, n).is_none();
        if bad_direction {
            return Err(ImageError::BadDirection { n, values: direction });
        }
        Ok(Self { spacing, origin, direction })
    }

    pub fn dimension(&self) -> usize {
        self.spacing.len()
    }
    pub fn spacing(&self) -> &[f64] {
        &self.spacing
    }
    pub fn origin(&self) -> &[f64] {
        &self.origin
    }
    /// Row-major `n × n` direction cosines.
    pub fn direction(&self) -> &[f64] {
        &self.direction
    }
    /// Direction cosine `(row, column)`: component `row` of index axis `column`'s unit vector.
    pub fn direction_at(&self, row: usize, column: usize) -> f64 {
        self.direction[row * self.dimension() + column]
    }

    /// Physical point (mm) of a continuous index.
    pub fn index_to_point(&self, index: &[f64]) -> Vec<f64> {
        let n = self.dimension();
        (0..n)
            .map(|r| {
                self.origin[r]
                    + (0..n).map(|c| self.direction[r * n + c] * self.spacing[c] * index[c]).sum::<f64>()
            })
            .collect()
    }

    /// Continuous index of a physical point (mm); the inverse of [`Self::index_to_point`].
    pub fn point_to_index(&self, point: &[f64]) -> Vec<f64> {
        let n = self.dimension();
        let inverse = invert(&self.direction, n).expect("direction was checked to be invertible");
        let delta: Vec<f64> = (0..n).map(|r| point[r] - self.origin[r]).collect();
        (0..n)
            .map(|r| (0..n).map(|c| inverse[r * n + c] * delta[c]).sum::<f64>() / self.spacing[r])
            .collect()
    }

    /// The `(n+1) × (n+1)` row-major homogeneous matrix mapping index to LPS point.
    pub fn affine(&self) -> Vec<f64> {
        let n = self.dimension();
        let m = n + 1;
        let mut affine = vec![0.0; m * m];
        for r in 0..n {
            for c in 0..n {
                affine[r * m + c] = self.direction[r * n + c] * self.spacing[c];
            }
            affine[r * m + n] = self.origin[r];
        }
        affine[m * m - 1] = 1.0;
        affine
    }

    /// Inverse of [`Self::affine`]: splits an `(n+1) × (n+1)` index→LPS matrix into
    /// spacing (column norms), direction (normalised columns) and origin.
    pub fn from_affine(affine: &[f64], n: usize) -> Result<Self, ImageError> {
        let m = n + 1;
        if affine.len() != m * m {
            return Err(ImageError::BadDirection { n, values: affine.to_vec() });
        }
        let mut spacing = vec![0.0; n];
        let mut direction = vec![0.0; n * n];
        for c in 0..n {
            let norm = (0..n).map(|r| affine[r * m + c].powi(2)).sum::<f64>().sqrt();
            spacing[c] = norm;
            for r in 0..n {
                direction[r * n + c] = if norm > 0.0 { affine[r * m + c] / norm } else { 0.0 };
            }
        }
        let origin = (0..n).map(|r| affine[r * m + n]).collect();
        Self::new(spacing, origin, direction)
    }

    /// The same geometry with `dimension` axes: extra axes get unit spacing, zero origin and
    /// identity direction; removed axes drop their rows and columns.
    pub fn with_dimension(&self, dimension: usize) -> Self {
        let n = self.dimension();
        let mut out = Self::identity(dimension);
        for r in 0..dimension.min(n) {
            out.spacing[r] = self.spacing[r];
            out.origin[r] = self.origin[r];
            for c in 0..dimension.min(n) {
                out.direction[r * dimension + c] = self.direction[r * n + c];
            }
        }
        out
    }

    /// Orientation code of the first three index axes, one letter per axis naming the
    /// anatomical direction it points to (`L`/`R`, `P`/`A`, `S`/`I`), e.g. `LPS` for the
    /// identity direction. Oblique axes get the letter of their largest component.
    pub fn orientation_code(&self) -> String {
        let n = self.dimension().min(3);
        let positive = ['L', 'P', 'S'];
        let negative = ['R', 'A', 'I'];
        (0..n)
            .map(|c| {
                let (row, value) = (0..n)
                    .map(|r| (r, self.direction_at(r, c)))
                    .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))
                    .unwrap_or((c, 1.0));
                if value >= 0.0 { positive[row] } else { negative[row] }
            })
            .collect()
    }

    /// True when both describe the same grid within `tolerance` (relative for spacing, mm for origin).
    pub fn approx_eq(&self, other: &Self, tolerance: f64) -> bool {
        let close = |a: &[f64], b: &[f64], scale: bool| {
            a.len() == b.len()
                && a.iter().zip(b).all(|(x, y)| {
                    let bound = if scale { tolerance * x.abs().max(y.abs()).max(1.0) } else { tolerance };
                    (x - y).abs() <= bound
                })
        };
        close(&self.spacing, &other.spacing, true)
            && close(&self.origin, &other.origin, true)
            && close(&self.direction, &other.direction, false)
    }
}

/// Inverse of a row-major `n × n` matrix by Gauss-Jordan elimination with partial pivoting.
fn invert(matrix: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut a = matrix.to_vec();
    let mut inv = vec![0.0; n * n];
    for k in 0..n {
        inv[k * n + k] = 1.0;
    }
    for col in 0..n {
        let pivot = (col..n).max_by(|&x, &y| a[x * n + col].abs().total_cmp(&a[y * n + col].abs()))?;
        if a[pivot * n + col].abs() < 1e-12 {
            return None;
        }
        for k in 0..n {
            a.swap(col * n + k, pivot * n + k);
            inv.swap(col * n + k, pivot * n + k);
        }
        let p = a[col * n + col];
        for k in 0..n {
            a[col * n + k] /= p;
            inv[col * n + k] /= p;
        }
        for r in 0..n {
            if r != col {
                let f = a[r * n + col];
                if f != 0.0 {
                    for k in 0..n {
                        a[r * n + k] -= f * a[col * n + k];
                        inv[r * n + k] -= f * inv[col * n + k];
                    }
                }
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oblique() -> Geometry {
        // 30° rotation about z, anisotropic spacing.
        let (s, c) = (30f64.to_radians().sin(), 30f64.to_radians().cos());
        Geometry::new(vec![0.5, 0.7, 2.5], vec![-100.0, 20.0, 5.0], vec![c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0])
            .unwrap()
    }

    #[test]
    fn index_to_point_by_hand() {
        let g = oblique();
        let p = g.index_to_point(&[2.0, 0.0, 1.0]);
        // 2 voxels along x axis (0.5 mm each) rotated by 30°, plus one 2.5 mm slice.
        let (s, c) = (0.5f64, 3f64.sqrt() / 2.0);
        assert!((p[0] - (-100.0 + 1.0 * c)).abs() < 1e-12);
        assert!((p[1] - (20.0 + 1.0 * s)).abs() < 1e-12);
        assert!((p[2] - 7.5).abs() < 1e-12);
    }

    #[test]
    fn point_to_index_inverts() {
        let g = oblique();
        let idx = [3.25, -1.5, 7.0];
        let back = g.point_to_index(&g.index_to_point(&idx));
        for (a, b) in idx.iter().zip(&back) {
            assert!((a - b).abs() < 1e-9, "{idx:?} vs {back:?}");
        }
    }

    #[test]
    fn affine_round_trip() {
        let g = oblique();
        let again = Geometry::from_affine(&g.affine(), 3).unwrap();
        assert!(g.approx_eq(&again, 1e-12));
    }

    #[test]
    fn orientation_codes() {
        assert_eq!(Geometry::identity(3).orientation_code(), "LPS");
        let ras = Geometry::new(vec![1.0; 3], vec![0.0; 3], vec![-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]).unwrap();
        assert_eq!(ras.orientation_code(), "RAS");
        // Coronal slices: i -> L, j -> I (down), k -> P.
        let coronal = Geometry::new(vec![1.0; 3], vec![0.0; 3], vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, -1.0, 0.0]).unwrap();
        assert_eq!(coronal.orientation_code(), "LIP");
    }

    #[test]
    fn rejects_bad_parts() {
        assert!(Geometry::new(vec![1.0, 0.0], vec![0.0, 0.0], vec![1.0, 0.0, 0.0, 1.0]).is_err());
        assert!(Geometry::new(vec![1.0, 1.0], vec![0.0, f64::NAN], vec![1.0, 0.0, 0.0, 1.0]).is_err());
        assert!(Geometry::new(vec![1.0, 1.0], vec![0.0, 0.0], vec![1.0, 1.0, 1.0, 1.0]).is_err());
        assert!(Geometry::new(vec![1.0; 5], vec![0.0; 5], vec![0.0; 25]).is_err());
    }
}
