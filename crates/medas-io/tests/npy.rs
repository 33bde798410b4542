//! NumPy `.npy`/`.npz` reader and writer against numpy itself (`numpy.load`).
//!
//! Tolerance: exact for every dtype (no arithmetic touches the values; float16 is widened
//! exactly to float32). NumPy files have no geometry; arrays keep their stored axes.

use medas_io::{IoError, npy};
use medas_testkit::{mutate_and_parse, python, assert_voxels, image_voxels, reference};
use std::path::{Path, PathBuf};

#[test]
fn dipy_npy_files_match_numpy() {
    let names = [
        "C.npy",
        "circle.npy",
        "t1_coronal_slice.npy",
        "small_64D.bvals.npy",
        "small_64D.gradients.npy",
        "life_matlab_rmse.npy",
        "life_matlab_weights.npy",
    ];
    for name in names {
        let Some(path) = medas_testkit::file(&format!("dipy/{name}")) else { return };
        let image = npy::read(&path).unwrap();
        let r = reference("numpy", &path, &[]);
        assert_voxels(&image, &r, 0.0);
        assert_eq!(image.scalar_type().name(), r.dtype(), "{name}");
        // Byte comparison, because some of these arrays hold NaN.
        let bytes = |v: &medas_image::Voxels| medas_io::raw::encode(v, 1, medas_io::raw::ByteOrder::Little);
        assert_eq!(bytes(medas_io::read(&path).unwrap().voxels()), bytes(image.voxels()), "{name} via dispatch");
    }
}

#[test]
fn dipy_npz_files_match_numpy() {
    // The first array of each archive (what numpy lists first), plus named arrays.
    let cases = [
        ("evenly_distributed_sphere_642.npz", None), // Fortran-order arrays
        ("evenly_distributed_sphere_642.npz", Some("faces")),
        ("repulsion100.npz", None),
        ("repulsion100.npz", Some("faces")),
        ("cb_2.npz", None),
        ("cb_2.npz", Some("offsets")),
        ("dki_constraint.npz", Some("data")),
        ("test_ui_text_block.npz", None), // (700, 700, 3) uint8
    ];
    for (name, key) in cases {
        let Some(path) = medas_testkit::file(&format!("dipy/{name}")) else { return };
        let (image, r) = match key {
            Some(key) => (npy::read_npz_key(&path, key).unwrap(), reference("numpy", &path, &[&format!("key={key}")])),
            None => (npy::read(&path).unwrap(), reference("numpy", &path, &[])),
        };
        assert_voxels(&image, &r, 0.0);
        assert_eq!(image.scalar_type().name(), r.dtype(), "{name} {key:?}");
    }
    let Some(path) = medas_testkit::file("dipy/dki_constraint.npz") else { return };
    let e = npy::read_npz_key(&path, "format").unwrap_err(); // a bytes scalar, not an image
    assert!(matches!(e, IoError::Unsupported { .. }), "{e}");
}

const MAKE_ARRAYS: &str = r#"
import sys, os, numpy as np
d = sys.argv[1]
rng = np.random.default_rng(7)
base = rng.normal(size=(5, 4, 3)) * 1000
for dt in ["u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "f4", "f8"]:
    for order in "<>":
        a = base.astype(order + dt)
        np.save(os.path.join(d, "c%s%s.npy" % ("le" if order == "<" else "be", dt)), a)
        np.save(os.path.join(d, "f%s%s.npy" % ("le" if order == "<" else "be", dt)), np.asfortranarray(a))
np.save(os.path.join(d, "bool.npy"), base > 0)
np.save(os.path.join(d, "fbool.npy"), np.asfortranarray(base > 0))
np.save(os.path.join(d, "vol4d.npy"), rng.normal(size=(3, 4, 5, 2)).astype(np.float32).T)
np.save(os.path.join(d, "vec1d.npy"), np.arange(7, dtype=">i4"))
h = (base / 100).astype(np.float16)
np.save(os.path.join(d, "half.npy"), h); np.save(os.path.join(d, "half_as_f32.npy"), h.astype(np.float32))
np.savez_compressed(os.path.join(d, "compressed.npz"), first=base.astype(np.int16), second=base)
np.savez(os.path.join(d, "stored.npz"), np.asfortranarray(base.astype(">f4")))
"#;

#[test]
fn numpy_written_arrays_match_numpy() {
    let Some(_) = medas_testkit::file("dipy/C.npy") else { return };
    let dir = medas_testkit::scratch_dir("npy-numpy");
    python(MAKE_ARRAYS, &[&dir]);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    let mut checked = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_string_lossy();
        if name.starts_with("half") {
            continue;
        }
        let image = npy::read(path).unwrap_or_else(|e| panic!("{e}"));
        let r = reference("numpy", path, &[]);
        assert_voxels(&image, &r, 0.0);
        let expected = if r.dtype() == "bool" { "uint8" } else { r.dtype() };
        assert_eq!(image.scalar_type().name(), expected, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 46);
    let second = npy::read_npz_key(&dir.join("compressed.npz"), "second").unwrap();
    assert_voxels(&second, &reference("numpy", &dir.join("compressed.npz"), &["key=second"]), 0.0);
    // float16 widens exactly to float32.
    let half = npy::read(&dir.join("half.npy")).unwrap();
    assert_voxels(&half, &reference("numpy", &dir.join("half_as_f32.npy"), &[]), 0.0);
}

#[test]
fn our_npy_is_read_by_numpy_in_index_order() {
    let Some(path) = medas_testkit::file("pyradiomics/brain1_image.nrrd") else { return };
    let brain = medas_io::read(&path).unwrap();
    let dir = medas_testkit::scratch_dir("npy-writer");
    let out = dir.join("brain.npy");
    npy::write(&brain, &out).unwrap();
    // numpy sees the array in index order (i, j, k), Fortran layout, same values.
    let r = reference("numpy", &out, &[]);
    assert_eq!(r.shape(), brain.size());
    assert_voxels(&brain, &r, 0.0);
    python(
        "import sys, numpy as np; a = np.load(sys.argv[1]); assert a.flags['F_CONTIGUOUS'] and a.dtype == np.int16, a.dtype",
        &[&out],
    );
    assert_eq!(npy::read(&out).unwrap().voxels(), brain.voxels());
}

#[test]
fn our_npz_keeps_geometry_and_components() {
    let Some(path) = medas_testkit::file("pyradiomics/lung1_label.nrrd") else { return };
    let label = medas_io::read(&path).unwrap();
    let dir = medas_testkit::scratch_dir("npz-writer");
    let out = dir.join("label.npz");
    medas_io::write(&label, &out).unwrap();
    let back = medas_io::read(&out).unwrap();
    assert_eq!(back.voxels(), label.voxels());
    assert_eq!(back.geometry(), label.geometry());
    // numpy reads the same arrays under the documented keys.
    assert_voxels(&label, &reference("numpy", &out, &["key=image"]), 0.0);
    let check = "import sys, numpy as np; z = np.load(sys.argv[1]); g = [float(v) for v in sys.argv[2].split(',')]
assert list(z.keys()) == ['image', 'spacing', 'origin', 'direction'], list(z.keys())
assert np.allclose(z['spacing'], g[:3], rtol=0, atol=0) and z['direction'].shape == (3, 3)";
    let spacing: Vec<String> = label.geometry().spacing().iter().map(f64::to_string).collect();
    python(check, &[&out, Path::new(&spacing.join(","))]);
    // An RGB image keeps its component axis.
    let rgb = medas_image::Voxels::from_interleaved_vec(&[4, 3], 3, (0..36u8).collect()).unwrap();
    let geometry = medas_image::Geometry::new(vec![0.5, 2.0], vec![1.0, -1.0], vec![0.0, 1.0, 1.0, 0.0]).unwrap();
    let rgb = medas_image::Image::with_components(rgb, 3, geometry).unwrap();
    let out = dir.join("rgb.npz");
    npy::write(&rgb, &out).unwrap();
    let back = npy::read(&out).unwrap();
    assert_eq!((back.components(), back.geometry()), (3, rgb.geometry()));
    assert_eq!(image_voxels(back.voxels()), image_voxels(rgb.voxels()));
}

#[test]
fn damaged_and_hostile_files_give_errors() {
    let Some(path) = medas_testkit::file("dipy/t1_coronal_slice.npy") else { return };
    let bytes = std::fs::read(&path).unwrap();
    let p = Path::new("x.npy");
    let cut = npy::read_bytes(&bytes[..bytes.len() - 1], p).unwrap_err();
    assert!(cut.to_string().contains("truncated"), "{cut}");
    for n in 0..200.min(bytes.len()) {
        assert!(npy::read_bytes(&bytes[..n], p).is_err(), "prefix {n}");
    }
    let header = |descr: &str, shape: &str| {
        let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}\n").into_bytes();
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.append(&mut h);
        out.extend([0u8; 64]);
        out
    };
    assert!(npy::read_bytes(&header("<f8", "(100000, 100000, 100000)"), p).is_err());
    assert!(npy::read_bytes(&header("<f8", "(18446744073709551615, 3)"), p).is_err());
    assert!(npy::read_bytes(&header("<f8", "(1, 1, 1, 1, 1, 2)"), p).is_err()); // 6 axes
    assert!(npy::read_bytes(&header("<f8", "()"), p).is_err()); // a scalar is not an image
    assert!(matches!(npy::read_bytes(&header("|O", "(2,)"), p), Err(IoError::Unsupported { .. })));
    assert!(matches!(npy::read_bytes(&header("<U5", "(2,)"), p), Err(IoError::Unsupported { .. })));
    let mut state = 0x9E3779B97F4A7C15u64;
    let random: Vec<u8> = (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    assert!(npy::read_bytes(&random, p).is_err());
    let Some(npz) = medas_testkit::file("dipy/repulsion100.npz") else { return };
    let zip = std::fs::read(&npz).unwrap();
    for n in [4, 30, zip.len() / 2, zip.len() - 10] {
        assert!(npy::read_bytes(&zip[..n], Path::new("x.npz")).is_err(), "npz prefix {n}");
    }
    mutate_and_parse(&bytes[..300], |b| drop(npy::read_bytes(b, p)));
    mutate_and_parse(&zip, |b| drop(npy::read_bytes(b, Path::new("mutant.npz"))));
}
