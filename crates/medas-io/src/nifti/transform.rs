//! NIfTI qform/sform ⇄ MEDAS geometry (LPS).
//!
//! Which transform wins on read (SimpleITK ≥ 5.3 and nibabel agree on every file we test):
//! 1. the **sform** when `sform_code > 0` and its columns are orthogonal (a rotation times
//!    a scaling);
//! 2. otherwise the **qform** when `qform_code > 0` (quaternion, `qfac = pixdim[0]`,
//!    spacing `pixdim[1..=3]`); a sheared sform therefore falls back to the qform, as ITK does
//!    (nibabel would keep the shear);
//! 3. otherwise (both codes 0) ITK's choice: spacing `pixdim[1..=3]`, identity RAS orientation,
//!    origin 0. nibabel instead centres the volume (the old Analyze convention); we follow
//!    SimpleITK because its geometry is what the rest of the medical toolchain uses.
//!
//! A sheared sform with no qform keeps the normalised, non-orthogonal columns as direction.
//! In every case the spacing is `pixdim[1..=3]` (as in ITK; nibabel uses the column norms of
//! the sform, which differ only when a writer left pixdim inconsistent with the sform).

use super::header::Header;
use medas_image::Geometry;

/// RAS (NIfTI) ⇄ LPS (MEDAS): negate the first two rows.
const RAS_TO_LPS: [f64; 3] = [-1.0, -1.0, 1.0];

/// The 3 × 4 RAS matrix the header's codes select, per the rules in the module doc.
pub fn chosen_affine(h: &Header) -> [[f64; 4]; 3] {
    if h.sform_code > 0 && is_orthogonal(&h.srow) {
        return h.srow;
    }
    if h.qform_code > 0 {
        return qform_affine(h);
    }
    if h.sform_code > 0 {
        return h.srow;
    }
    let mut affine = [[0.0; 4]; 3];
    for k in 0..3 {
        affine[k][k] = positive_or_one(h.pixdim[k + 1]);
    }
    affine
}

fn positive_or_one(v: f64) -> f64 {
    if v.is_finite() && v > 0.0 { v } else { 1.0 }
}

fn is_orthogonal(m: &[[f64; 4]; 3]) -> bool {
    let col = |c: usize| [m[0][c], m[1][c], m[2][c]];
    let norm = |v: [f64; 3]| (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
    let (a, b, c) = (col(0), col(1), col(2));
    let (na, nb, nc) = (norm(a), norm(b), norm(c));
    if na == 0.0 || nb == 0.0 || nc == 0.0 {
        return false;
    }
    let dot = |u: [f64; 3], v: [f64; 3]| u[0] * v[0] + u[1] * v[1] + u[2] * v[2];
    let tolerance = 1e-4;
    dot(a, b).abs() / (na * nb) < tolerance
        && dot(a, c).abs() / (na * nc) < tolerance
        && dot(b, c).abs() / (nb * nc) < tolerance
}

/// The qform as a 3 × 4 RAS matrix (NIfTI-1 standard, quaternion with `a ≥ 0`).
pub fn qform_affine(h: &Header) -> [[f64; 4]; 3] {
    let [b, c, d] = h.quatern;
    let a_squared = 1.0 - (b * b + c * c + d * d);
    let (a, b, c, d) = if a_squared < 1e-7 {
        // Rotation by 180°: a = 0 and (b, c, d) renormalised.
        let n = (b * b + c * c + d * d).sqrt().max(f64::MIN_POSITIVE);
        (0.0, b / n, c / n, d / n)
    } else {
        (a_squared.sqrt(), b, c, d)
    };
    let rotation = [
        [a * a + b * b - c * c - d * d, 2.0 * (b * c - a * d), 2.0 * (b * d + a * c)],
        [2.0 * (b * c + a * d), a * a + c * c - b * b - d * d, 2.0 * (c * d - a * b)],
        [2.0 * (b * d - a * c), 2.0 * (c * d + a * b), a * a + d * d - c * c - b * b],
    ];
    let qfac = if h.pixdim[0] < 0.0 { -1.0 } else { 1.0 };
    let scale = [positive_or_one(h.pixdim[1]), positive_or_one(h.pixdim[2]), qfac * positive_or_one(h.pixdim[3])];
    let mut affine = [[0.0; 4]; 3];
    for r in 0..3 {
        for k in 0..3 {
            affine[r][k] = rotation[r][k] * scale[k];
        }
        affine[r][3] = h.qoffset[r];
    }
    affine
}

/// Replaces the column norms of a 3 × 4 affine by `pixdim[1..=3]` (where positive): ITK takes
/// voxel spacing from pixdim and only the orientation and origin from the sform/qform, so a
/// float32-rounded sform does not perturb the spacing (4.0 stays 4.0, not 3.9999999).
pub fn with_pixdim_spacing(affine: &[[f64; 4]; 3], pixdim: &[f64; 8]) -> [[f64; 4]; 3] {
    let mut out = *affine;
    for c in 0..3 {
        let norm = (0..3).map(|r| affine[r][c].powi(2)).sum::<f64>().sqrt();
        let spacing = pixdim[c + 1];
        if norm > 0.0 && spacing.is_finite() && spacing > 0.0 {
            for row in out.iter_mut() {
                row[c] *= spacing / norm;
            }
        }
    }
    out
}

/// Converts a RAS 3 × 4 affine into LPS geometry with `dimension` axes (extra axes — time,
/// ... — get spacing `extra_spacing[k]` and identity direction).
pub fn geometry_from_affine(
    affine: &[[f64; 4]; 3],
    dimension: usize,
    extra_spacing: &[f64],
) -> Result<Geometry, medas_image::ImageError> {
    let mut lps = vec![0.0; 16];
    for r in 0..3 {
        for c in 0..4 {
            lps[r * 4 + c] = RAS_TO_LPS[r] * affine[r][c];
        }
    }
    lps[15] = 1.0;
    let spatial = Geometry::from_affine(&lps, 3)?;
    if dimension == 3 {
        return Ok(spatial);
    }
    let widened = spatial.with_dimension(dimension);
    let mut spacing = widened.spacing().to_vec();
    for k in 3..dimension {
        spacing[k] = positive_or_one(extra_spacing.get(k - 3).copied().unwrap_or(1.0));
    }
    Geometry::new(spacing, widened.origin().to_vec(), widened.direction().to_vec())
}

/// RAS 3 × 4 affine of the first three axes of a geometry (missing axes padded as identity).
pub fn affine_from_geometry(geometry: &Geometry) -> [[f64; 4]; 3] {
    let g = geometry.with_dimension(3);
    let lps = g.affine();
    let mut affine = [[0.0; 4]; 3];
    for r in 0..3 {
        for c in 0..4 {
            affine[r][c] = RAS_TO_LPS[r] * lps[r * 4 + c];
        }
    }
    affine
}

/// Quaternion `(b, c, d)` and `qfac` of the rotation part of a RAS affine with the given
/// voxel sizes. Columns are normalised first; a left-handed frame gets `qfac = -1`.
pub fn quaternion_from_affine(affine: &[[f64; 4]; 3]) -> ([f64; 3], f64) {
    let mut r = [[0.0; 3]; 3];
    for c in 0..3 {
        let n = (0..3).map(|k| affine[k][c].powi(2)).sum::<f64>().sqrt();
        for k in 0..3 {
            r[k][c] = if n > 0.0 { affine[k][c] / n } else if k == c { 1.0 } else { 0.0 };
        }
    }
    let det = r[0][0] * (r[1][1] * r[2][2] - r[1][2] * r[2][1]) - r[0][1] * (r[1][0] * r[2][2] - r[1][2] * r[2][0])
        + r[0][2] * (r[1][0] * r[2][1] - r[1][1] * r[2][0]);
    let qfac = if det < 0.0 {
        for row in r.iter_mut() {
            row[2] = -row[2];
        }
        -1.0
    } else {
        1.0
    };
    let trace = r[0][0] + r[1][1] + r[2][2] + 1.0;
    let (mut a, mut b, mut c, mut d);
    if trace > 0.5 {
        a = 0.5 * trace.sqrt();
        b = 0.25 * (r[2][1] - r[1][2]) / a;
        c = 0.25 * (r[0][2] - r[2][0]) / a;
        d = 0.25 * (r[1][0] - r[0][1]) / a;
    } else {
        let xd = 1.0 + r[0][0] - (r[1][1] + r[2][2]);
        let yd = 1.0 + r[1][1] - (r[0][0] + r[2][2]);
        let zd = 1.0 + r[2][2] - (r[0][0] + r[1][1]);
        if xd > 1.0 {
            b = 0.5 * xd.sqrt();
            c = 0.25 * (r[0][1] + r[1][0]) / b;
            d = 0.25 * (r[0][2] + r[2][0]) / b;
            a = 0.25 * (r[2][1] - r[1][2]) / b;
        } else if yd > 1.0 {
            c = 0.5 * yd.sqrt();
            b = 0.25 * (r[0][1] + r[1][0]) / c;
            d = 0.25 * (r[1][2] + r[2][1]) / c;
            a = 0.25 * (r[0][2] - r[2][0]) / c;
        } else {
            d = 0.5 * zd.sqrt();
            b = 0.25 * (r[0][2] + r[2][0]) / d;
            c = 0.25 * (r[1][2] + r[2][1]) / d;
            a = 0.25 * (r[1][0] - r[0][1]) / d;
        }
        if a < 0.0 {
            (a, b, c, d) = (-a, -b, -c, -d);
        }
    }
    let _ = a;
    ([b, c, d], qfac)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nifti::header::Version;
    use crate::raw::ByteOrder;

    fn header_with_quaternion(quatern: [f64; 3], qfac: f64) -> Header {
        Header {
            version: Version::Nifti1,
            order: ByteOrder::NATIVE,
            dim: [3, 2, 2, 2, 1, 1, 1, 1],
            datatype: 2,
            bitpix: 8,
            pixdim: [qfac, 0.5, 0.75, 2.5, 0.0, 0.0, 0.0, 0.0],
            vox_offset: 352.0,
            scl_slope: 0.0,
            scl_inter: 0.0,
            cal_min: 0.0,
            cal_max: 0.0,
            toffset: 0.0,
            xyzt_units: 0,
            intent_code: 0,
            descrip: String::new(),
            qform_code: 1,
            sform_code: 0,
            quatern,
            qoffset: [10.0, -20.0, 30.0],
            srow: [[0.0; 4]; 3],
            single_file: true,
        }
    }

    #[test]
    fn quaternion_round_trip_through_affine() {
        // 40° about an oblique axis, left-handed (qfac -1).
        let axis = [0.3f64, -0.5, 0.812];
        let n = axis.iter().map(|v| v * v).sum::<f64>().sqrt();
        let half = 20f64.to_radians();
        let q = [axis[0] / n * half.sin(), axis[1] / n * half.sin(), axis[2] / n * half.sin()];
        let h = header_with_quaternion(q, -1.0);
        let affine = qform_affine(&h);
        let (q2, qfac) = quaternion_from_affine(&affine);
        assert_eq!(qfac, -1.0);
        for k in 0..3 {
            assert!((q[k] - q2[k]).abs() < 1e-12, "{q:?} vs {q2:?}");
        }
    }

    #[test]
    fn identity_quaternion_gives_scaled_identity_in_lps() {
        let h = header_with_quaternion([0.0, 0.0, 0.0], 1.0);
        let g = geometry_from_affine(&qform_affine(&h), 3, &[]).unwrap();
        assert_eq!(g.spacing(), &[0.5, 0.75, 2.5]);
        assert_eq!(g.origin(), &[-10.0, 20.0, 30.0]);
        assert_eq!(g.direction(), &[-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn sheared_sform_falls_back_to_qform() {
        let mut h = header_with_quaternion([0.0, 0.0, 0.0], 1.0);
        h.sform_code = 1;
        h.srow = [[1.0, 0.5, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]];
        assert_eq!(chosen_affine(&h), qform_affine(&h));
        h.srow = [[0.0, 2.0, 0.0, 5.0], [-3.0, 0.0, 0.0, 6.0], [0.0, 0.0, 1.0, 7.0]];
        assert_eq!(chosen_affine(&h), h.srow);
    }
}
