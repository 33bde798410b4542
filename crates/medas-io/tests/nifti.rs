//! NIfTI reader and writer against the readers of record (nibabel 5.4, SimpleITK 2.5) on the
//! real files shipped with nibabel, dipy and nilearn.
//!
//! Tolerances: voxels exact for integer data, 1e-5 relative for float data (scaled values are
//! computed in float32 by all three readers); geometry 1e-5 relative (1e-5 mm floor of 1).

use medas_io::nifti;
use medas_testkit::{assert_geometry, assert_voxels, file, python, reference, scratch_dir};
use std::path::Path;

const GEOMETRY_TOL: f64 = 1e-5;

fn voxel_tolerance(dtype: &str) -> f64 {
    if dtype.starts_with("float") { 1e-5 } else { 0.0 }
}

/// Compares our read of `path` with nibabel (voxels, 3-D affine) and, when `with_sitk`, with
/// SimpleITK (voxels and full N-D geometry).
fn check_file(path: &Path, with_sitk: bool) {
    let image = nifti::read(path).unwrap_or_else(|e| panic!("{e}"));
    let nib = reference("nibabel", path, &[]);
    assert_voxels(&image, &nib, voxel_tolerance(nib.dtype()));
    // nibabel reports the 3-D spatial part only.
    let spatial = image.geometry().with_dimension(3);
    for (ours, theirs, what) in [
        (spatial.spacing().to_vec(), nib.spacing(), "spacing"),
        (spatial.origin().to_vec(), nib.origin(), "origin"),
        (spatial.direction().to_vec(), nib.direction(), "direction"),
    ] {
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() <= GEOMETRY_TOL * a.abs().max(1.0), "{}: {what} {ours:?} vs nibabel {theirs:?}", path.display());
        }
    }
    if with_sitk {
        let sitk = reference("sitk", path, &[]);
        assert_voxels(&image, &sitk, voxel_tolerance(sitk.dtype()));
        assert_geometry(&image, &sitk, GEOMETRY_TOL);
    }
}

#[test]
fn big_endian_int16_and_float32() {
    for name in ["nibabel/anatomical.nii", "nibabel/reoriented_anat_moved.nii"] {
        let Some(path) = file(name) else { return };
        check_file(&path, true);
    }
    // This file holds 153 NaN voxels: nibabel (and we) keep them, SimpleITK turns them into 0,
    // so SimpleITK is the reference for geometry only here.
    let Some(path) = file("nibabel/resampled_anat_moved.nii") else { return };
    check_file(&path, false);
    let image = nifti::read(&path).unwrap();
    assert_eq!(image.voxels().stats().non_finite, 153);
    assert_geometry(&image, &reference("sitk", &path, &[]), GEOMETRY_TOL);
}

#[test]
fn gzipped_3d_and_4d() {
    for name in [
        "nibabel/standard.nii.gz",
        "nibabel/example4d.nii.gz",
        "nibabel/functional.nii",
        "dipy/aniso_vox.nii.gz",
        "dipy/small_64D.nii",
        "dipy/small_25.nii.gz",
        "dipy/test_piesno.nii.gz",
        "dipy/func_coef.nii.gz",
    ] {
        let Some(path) = file(name) else { return };
        check_file(&path, true);
    }
}

#[test]
fn anisotropic_voxels_have_their_spacing() {
    let Some(path) = file("dipy/aniso_vox.nii.gz") else { return };
    let image = nifti::read(&path).unwrap();
    // dipy documents this file as 4 x 4 x 5 mm voxels.
    assert_eq!(image.geometry().spacing(), &[4.0, 4.0, 5.0]);
}

#[test]
fn mni_template_from_nilearn() {
    let Some(path) = file("nilearn/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz") else { return };
    check_file(&path, true);
    let image = nifti::read(&path).unwrap();
    assert_eq!(image.size(), &[197, 233, 189]);
}

#[test]
fn nifti2_single_file() {
    // SimpleITK cannot read NIfTI-2 .nii.gz: nibabel is the reference.
    let Some(path) = file("nibabel/example_nifti2.nii.gz") else { return };
    check_file(&path, false);
    let image = nifti::read(&path).unwrap();
    assert_eq!(image.size(), &[32, 20, 12, 2]);
}

#[test]
fn hdr_img_pairs_v1_and_v2_and_scaling() {
    let Some(source) = file("nibabel/anatomical.nii") else { return };
    let dir = scratch_dir("nifti-pairs");
    // nibabel writes pairs (NIfTI-1 and -2, one gzipped) and a file with scl_slope/scl_inter.
    python(
        r#"
import sys, nibabel as nib, numpy as np
src, out = sys.argv[1], sys.argv[2]
img = nib.load(src)
data = np.asanyarray(img.dataobj).astype(np.int16)
nib.save(nib.Nifti1Pair(data, img.affine), out + "/pair1.img")
nib.save(nib.Nifti2Pair(data, img.affine), out + "/pair2.hdr")
nib.save(nib.Nifti1Pair(data, img.affine), out + "/pairgz.img.gz")
scaled = nib.Nifti1Image(data, img.affine)
scaled.header.set_slope_inter(0.25, -12.5)
nib.save(scaled, out + "/scaled.nii.gz")
wide = nib.Nifti1Image(data.astype(np.float64), img.affine)
wide.header.set_slope_inter(3.0, 1.0)
nib.save(wide, out + "/scaled64.nii")
"#,
        &[source.to_str().unwrap(), dir.to_str().unwrap()],
    );
    for name in ["pair1.img", "pair1.hdr", "pair2.hdr", "pairgz.img.gz"] {
        check_file(&dir.join(name), false);
    }
    check_file(&dir.join("scaled.nii.gz"), true);
    check_file(&dir.join("scaled64.nii"), true);
    let scaled = nifti::read(&dir.join("scaled.nii.gz")).unwrap();
    assert_eq!(scaled.scalar_type(), medas_image::ScalarType::F32);
    assert_eq!(nifti::read(&dir.join("scaled64.nii")).unwrap().scalar_type(), medas_image::ScalarType::F64);
}

#[test]
fn qform_only_sform_only_and_sheared_sform_follow_simpleitk() {
    let dir = scratch_dir("nifti-xforms");
    python(
        r#"
import sys, nibabel as nib, numpy as np
out = sys.argv[1]
rng = np.random.default_rng(7)
data = rng.integers(-500, 500, size=(9, 7, 5)).astype(np.int16)
t = np.radians(20)
rot = np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])
aff = np.eye(4); aff[:3, :3] = rot @ np.diag([0.8, 1.1, 3.0]); aff[:3, 3] = [10, -20, 35]
# qform only, left-handed (qfac = -1)
flip = aff @ np.diag([1, 1, -1, 1])
q = nib.Nifti1Image(data, None); q.set_qform(flip, code=1); q.set_sform(None, code=0)
nib.save(q, out + "/qform_only.nii")
s = nib.Nifti1Image(data, None); s.set_sform(aff, code=2); s.set_qform(None, code=0)
nib.save(s, out + "/sform_only.nii")
shear = aff.copy(); shear[0, 1] += 0.4
b = nib.Nifti1Image(data, None); b.set_sform(shear, code=1); b.set_qform(aff, code=1)
nib.save(b, out + "/sheared_sform.nii")
"#,
        &[dir.to_str().unwrap()],
    );
    for name in ["qform_only.nii", "sform_only.nii", "sheared_sform.nii"] {
        let path = dir.join(name);
        let image = nifti::read(&path).unwrap();
        let sitk = reference("sitk", &path, &[]);
        assert_voxels(&image, &sitk, 0.0);
        assert_geometry(&image, &sitk, GEOMETRY_TOL);
    }
    // nibabel agrees for the qform. For the sform-only file nibabel left pixdim at 1 while the
    // sform says 0.8 x 1.1 x 3 mm: ITK (and we) take spacing from pixdim, nibabel from the sform.
    check_file(&dir.join("qform_only.nii"), true);
}

#[test]
fn our_files_read_identically_in_nibabel_and_simpleitk() {
    let Some(source) = file("nibabel/example4d.nii.gz") else { return };
    let Some(anat) = file("nibabel/anatomical.nii") else { return };
    let dir = scratch_dir("nifti-write");
    for (input, name) in [(&anat, "anat.nii.gz"), (&anat, "anat.hdr"), (&source, "func4d.nii"), (&anat, "anat_f64.nii")] {
        let mut image = nifti::read(input).unwrap();
        if name.contains("f64") {
            image = image.cast(medas_image::ScalarType::F64);
        }
        let out = dir.join(name);
        nifti::write(&image, &out).unwrap();
        let back = nifti::read(&out).unwrap();
        assert_eq!(back.voxels(), image.voxels(), "{name}");
        assert!(back.geometry().approx_eq(image.geometry(), 1e-6), "{name}");
        // Both readers of record see exactly what we wrote (SimpleITK does not open pairs).
        let nib = reference("nibabel", &out, &[]);
        assert_voxels(&image, &nib, 0.0);
        if !name.ends_with(".hdr") {
            let sitk = reference("sitk", &out, &[]);
            assert_voxels(&image, &sitk, 0.0);
            assert_geometry(&image, &sitk, GEOMETRY_TOL);
        }
    }
}

#[test]
fn single_time_point_is_three_dimensional_like_simpleitk() {
    let dir = scratch_dir("nifti-singleton");
    python(
        r#"
import sys, nibabel as nib, numpy as np
a = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6, 1)
nib.save(nib.Nifti1Image(a, np.diag([2.0, 3.0, 4.0, 1.0])), sys.argv[1] + "/t1.nii")
b = np.arange(4 * 5, dtype=np.int16).reshape(4, 5, 1)
nib.save(nib.Nifti1Image(b, np.diag([2.0, 3.0, 4.0, 1.0])), sys.argv[1] + "/z1.nii")
"#,
        &[dir.to_str().unwrap()],
    );
    for (name, size) in [("t1.nii", vec![4, 5, 6]), ("z1.nii", vec![4, 5, 1])] {
        let path = dir.join(name);
        let image = nifti::read(&path).unwrap();
        assert_eq!(image.size(), &size[..], "{name}");
        let sitk = reference("sitk", &path, &[]);
        assert_voxels(&image, &sitk, 0.0);
        assert_geometry(&image, &sitk, GEOMETRY_TOL);
    }
}

#[test]
fn broken_files_are_errors_not_panics() {
    let Some(path) = file("nibabel/example4d.nii.gz") else { return };
    let bytes = std::fs::read(&path).unwrap();
    let dir = scratch_dir("nifti-broken");
    for (name, content) in [
        ("truncated.nii.gz", bytes[..bytes.len() / 3].to_vec()),
        ("trailer_cut.nii.gz", bytes[..bytes.len() - 4].to_vec()),
        ("random.nii", (0..5000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect()),
        ("empty.nii", vec![]),
    ] {
        let out = dir.join(name);
        std::fs::write(&out, &content).unwrap();
        let error = nifti::read(&out).expect_err(name).to_string();
        assert!(error.contains(name), "error should name the file: {error}");
    }
    // A header claiming a huge image over a tiny body must fail without allocating it.
    let image = nifti::read(&file("nibabel/anatomical.nii").unwrap()).unwrap();
    let out = dir.join("huge.nii");
    nifti::write(&image, &out).unwrap();
    let mut bytes = std::fs::read(&out).unwrap();
    bytes[42..44].copy_from_slice(&i16::MAX.to_ne_bytes());
    bytes[44..46].copy_from_slice(&i16::MAX.to_ne_bytes());
    bytes[46..48].copy_from_slice(&i16::MAX.to_ne_bytes());
    std::fs::write(&out, &bytes).unwrap();
    assert!(nifti::read(&out).is_err());
}
