//! The geometry tools on real data against their references: reorient vs sitk.DICOMOrient,
//! flip/rot90 vs numpy with the physical points of the corners from SimpleITK, crop/pad vs
//! numpy slicing and np.pad with origins from sitk.Crop/ConstantPad/RegionOfInterest, and
//! sub-voxel split vs numpy strided slicing with geometry from SimpleITK's slicing, resampling
//! onto a reference grid or to a shape vs sitk.Resample, and resize vs skimage's resize. Data: CT lung1 (512x512x48 int16, LPS) and nibabel's
//! anatomical.nii (33x41x25 int16, LAS, odd sizes). The references are computed once per test
//! run by one Python script in the reference venv and read back with medas-io.

use medas_image::Image;
use medas_testkit::{expect_error, file, image_voxels, max_mean_difference, python, scratch_dir};
use medas_tools::{Data, Inputs, Outputs, Registry, ToolError, run_tool};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const REFERENCES: &str = r#"
import json, sys
import numpy as np
import SimpleITK as sitk

out = sys.argv[3]
images = {"lung1": sitk.ReadImage(sys.argv[1]), "anat": sitk.ReadImage(sys.argv[2])}
ijk = lambda img: sitk.GetArrayFromImage(img).transpose(2, 1, 0)  # numpy axes = our i, j, k

def save(img, name):
    sitk.WriteImage(img, f"{out}/{name}.nrrd")

def check(img, expected, what):
    assert np.array_equal(ijk(img), expected), what

# Reorient: exactly sitk.DICOMOrient.
for name, img in images.items():
    for code in ("RAS", "LPS", "RAI", "PIR", "SLA"):
        save(sitk.DICOMOrient(img, code), f"reorient_{name}_{code}")

# Flip / rot90 on lung1: voxels by numpy; for the 8 corners of the result, the physical point
# (SimpleITK) of the input voxel numpy put there.
img = images["lung1"]
a = ijk(img)
linear = np.arange(a.size).reshape(a.shape)
ops = {"flip_0": lambda m: np.flip(m, 0), "flip_12": lambda m: np.flip(m, (1, 2)),
       "flip_012": lambda m: np.flip(m, (0, 1, 2)), "rot90_1_01": lambda m: np.rot90(m, 1, (0, 1)),
       "rot90_2_01": lambda m: np.rot90(m, 2, (0, 1)), "rot90_-1_02": lambda m: np.rot90(m, -1, (0, 2)),
       "rot90_3_12": lambda m: np.rot90(m, 3, (1, 2))}
corners = {}
for key, op in ops.items():
    np.save(f"{out}/{key}.npy", op(a))
    moved = op(linear)
    rows = []
    for corner in np.ndindex(2, 2, 2):
        index = [c * (n - 1) for c, n in zip(corner, moved.shape)]
        source = np.unravel_index(moved[tuple(index)], a.shape)
        rows.append([index, list(img.TransformIndexToPhysicalPoint([int(s) for s in source]))])
    corners[key] = rows
json.dump(corners, open(f"{out}/corners.json", "w"))

# Crop / pad: numpy for the voxels, SimpleITK for the geometry (and the same voxels).
def centred(n, m):
    return (n - m) // 2 if n >= m else -((m - n) // 2)

def window(img, start, size, value):
    arr = ijk(img)
    before = [max(0, -s) for s in start]
    after = [max(0, s + m - n) for s, m, n in zip(start, size, arr.shape)]
    padded = np.pad(arr, list(zip(before, after)), constant_values=value)
    lo = [s + b for s, b in zip(start, before)]
    expected = padded[tuple(slice(l, l + m) for l, m in zip(lo, size))]
    ref = sitk.ConstantPad(img, before, after, value)
    ref = sitk.Crop(ref, lo, [p - l - m for p, l, m in zip(ref.GetSize(), lo, size)])
    check(ref, expected, f"window {start} {size}")
    return ref

size = [300, 600, 40]
save(window(img, [centred(n, m) for n, m in zip(img.GetSize(), size)], size, -1024), "crop_centre")
multiple = [7, 10, 32]
size = [-(-n // k) * k for n, k in zip(img.GetSize(), multiple)]
save(window(img, [centred(n, m) for n, m in zip(img.GetSize(), size)], size, 0), "crop_multiple")
mask = (a > 300).astype(np.uint8)
mask_img = sitk.GetImageFromArray(mask.transpose(2, 1, 0))
mask_img.CopyInformation(img)
save(mask_img, "bone_mask")
nz = np.nonzero(mask)
margin = [5, 0, 2]
lo = [max(0, int(v.min()) - m) for v, m in zip(nz, margin)]
hi = [min(n, int(v.max()) + m + 1) for v, m, n in zip(nz, margin, a.shape)]
roi = sitk.RegionOfInterest(img, [h - l for l, h in zip(lo, hi)], lo)
check(roi, a[tuple(slice(l, h) for l, h in zip(lo, hi))], "mask box")
save(roi, "crop_mask")

# Sub-voxel split: numpy strided slicing; SimpleITK's slicing gives the geometry.
for name, img in images.items():
    arr = ijk(img)
    half = [n // 2 for n in img.GetSize()]
    for offset in (0, 1):
        ref = img[tuple(slice(offset, offset + 2 * h - 1, 2) for h in half)]
        check(ref, arr[tuple(slice(offset, offset + 2 * h - 1, 2) for h in half)], f"split {name} {offset}")
        save(ref, f"split_{name}_{offset}")

# Resampling lung1 onto reference grids (one along its axes, one rotated 10 deg about z and
# 5 deg about x) and to a shape: sitk.Resample with the identity transform.
img = images["lung1"]
interpolators = {"nearest": (sitk.sitkNearestNeighbor, sitk.sitkUnknown),
                 "linear": (sitk.sitkLinear, sitk.sitkFloat32), "bspline": (sitk.sitkBSpline, sitk.sitkFloat32)}
def grid(size, spacing, origin, direction):
    ref = sitk.Image(size, sitk.sitkUInt8)
    ref.SetSpacing(spacing); ref.SetOrigin(origin); ref.SetDirection(direction)
    return ref
c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
rz = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
c, s = np.cos(np.radians(5)), np.sin(np.radians(5))
rx = np.array([[1, 0, 0], [0, c, -s], [0, s, c]])
refs = {"aligned": grid([300, 280, 170], (1.1, 1.2, 1.3), (-150.3, -300.7, -770.2), img.GetDirection()),
        "oblique": grid([200, 190, 150], (1.5, 1.5, 1.5), (-130.0, -340.0, -800.0), tuple((rz @ rx).ravel()))}
size = [300, 300, 60]
spacing = [sp * n / m for sp, n, m in zip(img.GetSpacing(), img.GetSize(), size)]
for key, (interpolator, pixel) in interpolators.items():
    for ref_name, ref in refs.items():
        save(sitk.Resample(img, ref, sitk.Transform(), interpolator, 0.0, pixel), f"resample_{ref_name}_{key}")
    shaped = sitk.Resample(img, size, sitk.Transform(), interpolator, img.GetOrigin(), spacing, img.GetDirection(), 0.0, pixel)
    save(shaped, f"resample_shape_{key}")
for ref_name, ref in refs.items():
    save(ref, f"grid_{ref_name}")

# Resize: skimage.transform.resize (index space, outer edges kept), orders 0 and 1.
from skimage.transform import resize
for order in (0, 1):
    np.save(f"{out}/resize_{order}.npy", resize(a, (200, 300, 60), order=order, mode="edge", anti_aliasing=False, preserve_range=True))
"#;

/// lung1, nibabel's anatomical.nii and the folder of references (computed once per binary).
struct Fixture {
    lung1: Image,
    anat: Image,
    dir: PathBuf,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    let lung1 = file("pyradiomics/lung1_image.nrrd")?;
    let anat = file("nibabel/anatomical.nii")?;
    Some(FIXTURE.get_or_init(|| {
        let dir = scratch_dir("tools-geometry");
        python(REFERENCES, &[lung1.as_os_str(), anat.as_os_str(), dir.as_os_str()]);
        Fixture { lung1: read(&lung1), anat: read(&anat), dir }
    }))
}

fn read(path: &Path) -> Image {
    medas_io::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs tool `id` with images on the named inputs and parameters given as JSON.
fn run_with(id: &str, inputs: &[(&str, &Image)], given: Value) -> Result<Outputs, ToolError> {
    let tool = Registry::global().get(id)?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let inputs: Inputs = inputs.iter().map(|(port, image)| (port.to_string(), Data::Image((*image).clone()))).collect();
    run_tool(tool.as_ref(), inputs, &given)
}

fn run(id: &str, image: &Image, given: Value) -> Result<Outputs, ToolError> {
    run_with(id, &[("image", image)], given)
}

fn output(mut outputs: Outputs, port: &str) -> Image {
    match outputs.remove(port) {
        Some(Data::Image(image)) => image,
        other => panic!("output {port}: {other:?}"),
    }
}

/// Same size, type and voxels, geometry within 1e-9 (relative for spacing and origin).
fn assert_identical(ours: &Image, theirs: &Image, what: &str) {
    assert_eq!(ours.size(), theirs.size(), "{what}: size");
    assert_eq!(ours.scalar_type(), theirs.scalar_type(), "{what}: voxel type");
    assert!(ours.geometry().approx_eq(theirs.geometry(), 1e-9), "{what}: {:?} vs {:?}", ours.geometry(), theirs.geometry());
    assert!(image_voxels(ours.voxels()) == image_voxels(theirs.voxels()), "{what}: voxels differ");
}

#[test]
fn reorient_matches_simpleitk_dicom_orient() {
    let Some(f) = fixture() else { return };
    for (name, image) in [("lung1", &f.lung1), ("anat", &f.anat)] {
        for code in ["RAS", "LPS", "RAI", "PIR", "SLA"] {
            let ours = output(run("preprocess.reorient", image, json!({"orientation": code.to_lowercase()})).unwrap(), "image");
            let theirs = read(&f.dir.join(format!("reorient_{name}_{code}.nrrd")));
            assert_identical(&ours, &theirs, &format!("reorient {name} to {code}"));
            assert_eq!(ours.geometry().orientation_code(), code);
            assert_eq!(ours.metadata, image.metadata, "metadata kept");
        }
        eprintln!("reorient {name} {:?}: 5 codes, voxels identical to sitk.DICOMOrient, geometry within 1e-9", image.size());
    }
}

#[test]
fn flip_and_rot90_match_numpy_and_keep_physical_positions() {
    let Some(f) = fixture() else { return };
    let corners: Value = serde_json::from_str(&std::fs::read_to_string(f.dir.join("corners.json")).unwrap()).unwrap();
    let cases = [
        ("flip_0", "preprocess.flip", json!({"axes": [0]})),
        ("flip_12", "preprocess.flip", json!({"axes": "1, 2"})),
        ("flip_012", "preprocess.flip", json!({"axes": [2, 0, 1]})),
        ("rot90_1_01", "preprocess.rot90", json!({})),
        ("rot90_2_01", "preprocess.rot90", json!({"k": 2})),
        ("rot90_-1_02", "preprocess.rot90", json!({"k": -1, "axes": [0, 2]})),
        ("rot90_3_12", "preprocess.rot90", json!({"k": 7, "axes": [1, 2]})),
    ];
    for (key, id, given) in cases {
        let ours = output(run(id, &f.lung1, given).unwrap(), "image");
        let numpy = read(&f.dir.join(format!("{key}.npy")));
        assert!(image_voxels(ours.voxels()) == image_voxels(numpy.voxels()), "{key}: voxels differ from numpy");
        let mut worst = 0.0f64;
        for row in corners[key].as_array().unwrap() {
            let index: Vec<f64> = row[0].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
            let point = ours.geometry().index_to_point(&index);
            for (a, b) in point.iter().zip(row[1].as_array().unwrap()) {
                worst = worst.max((a - b.as_f64().unwrap()).abs());
            }
        }
        eprintln!("{key} {:?}: voxels identical to numpy, corners within {worst:e} mm of SimpleITK's points", ours.size());
        assert!(worst <= 1e-9, "{key}: corners {worst} mm away");
    }
}

#[test]
fn crop_pad_matches_numpy_and_simpleitk_origins() {
    let Some(f) = fixture() else { return };
    let mask = read(&f.dir.join("bone_mask.nrrd"));
    let cases = [
        ("crop_centre", vec![("image", &f.lung1)], json!({"size": [300, 600, 40], "pad_value": -1024})),
        ("crop_multiple", vec![("image", &f.lung1)], json!({"mode": "multiple", "multiple": [7, 10, 32]})),
        ("crop_mask", vec![("image", &f.lung1), ("mask", &mask)], json!({"mode": "mask", "margin": [5, 0, 2]})),
    ];
    for (key, inputs, given) in cases {
        let ours = output(run_with("preprocess.crop_pad", &inputs, given).unwrap(), "image");
        assert_identical(&ours, &read(&f.dir.join(format!("{key}.nrrd"))), key);
        eprintln!("{key} {:?}: voxels identical to numpy, geometry within 1e-9 of SimpleITK", ours.size());
    }
}

#[test]
fn subvoxel_split_matches_strided_slicing() {
    let Some(f) = fixture() else { return };
    for (name, image) in [("lung1", &f.lung1), ("anat", &f.anat)] {
        let mut outputs = run("preprocess.subvoxel_split", image, json!({})).unwrap();
        for (offset, port) in [(0, "first"), (1, "second")] {
            let ours = outputs.remove(port).and_then(|d| d.into_image("t", port).ok()).unwrap();
            assert_identical(&ours, &read(&f.dir.join(format!("split_{name}_{offset}.nrrd"))), &format!("{name} {port}"));
        }
        eprintln!("subvoxel split {name} {:?}: both halves identical to numpy, geometry to SimpleITK", image.size());
    }
}

/// The issue's tolerance (mean |difference| at most 0.5 % of lung1's range) for linear and
/// B-spline, with the much tighter figures they reach asserted too; nearest must be identical.
fn assert_resampled(ours: &Image, theirs: &Image, interpolator: &str, range: f64, what: &str) {
    assert_eq!(ours.size(), theirs.size(), "{what}: size");
    assert_eq!(ours.scalar_type(), theirs.scalar_type(), "{what}: voxel type");
    assert!(ours.geometry().approx_eq(theirs.geometry(), 1e-9), "{what}: {:?} vs {:?}", ours.geometry(), theirs.geometry());
    let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &image_voxels(theirs.voxels()));
    eprintln!("{what} {interpolator} {:?}: max |ours - reference| {max:.3e}, mean {mean:.3e}", ours.size());
    let (mean_bound, max_bound) = match interpolator {
        "nearest" => (0.0, 0.0),
        "linear" => (1e-4, 1e-2),
        _ => (1e-3, 1e-1),
    };
    assert!(mean <= 0.005 * range, "{what} {interpolator}: mean {mean} over 0.5 % of the range");
    assert!(mean <= mean_bound && max <= max_bound, "{what} {interpolator}: mean {mean}, max {max}");
}

#[test]
fn resampling_onto_a_reference_or_a_shape_matches_simpleitk() {
    let Some(f) = fixture() else { return };
    let stats = f.lung1.voxels().stats();
    let range = stats.max - stats.min;
    for interpolator in ["nearest", "linear", "bspline"] {
        for grid in ["aligned", "oblique"] {
            let reference = read(&f.dir.join(format!("grid_{grid}.nrrd")));
            let inputs = [("image", &f.lung1), ("reference", &reference)];
            let given = json!({"mode": "reference", "interpolator": interpolator});
            let ours = output(run_with("preprocess.resample", &inputs, given).unwrap(), "image");
            let theirs = read(&f.dir.join(format!("resample_{grid}_{interpolator}.nrrd")));
            assert_resampled(&ours, &theirs, interpolator, range, &format!("onto the {grid} reference"));
        }
        let given = json!({"mode": "shape", "size": [300, 300, 60], "interpolator": interpolator});
        let ours = output(run("preprocess.resample", &f.lung1, given).unwrap(), "image");
        let theirs = read(&f.dir.join(format!("resample_shape_{interpolator}.nrrd")));
        assert_resampled(&ours, &theirs, interpolator, range, "to shape 300x300x60");
    }
}

#[test]
fn resize_matches_skimage_and_keeps_the_physical_box() {
    let Some(f) = fixture() else { return };
    for (order, interpolator, bound) in [(0, "nearest", 0.0), (1, "linear", 1e-3)] {
        let given = json!({"size": [200, 300, 60], "interpolator": interpolator});
        let ours = output(run("preprocess.resize", &f.lung1, given).unwrap(), "image");
        let skimage = read(&f.dir.join(format!("resize_{order}.npy")));
        let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &image_voxels(skimage.voxels()));
        eprintln!("resize order {order} {:?}: max |ours - skimage| {max:.3e}, mean {mean:.3e}", ours.size());
        assert!(max <= bound, "order {order}: max {max}");
        // The outer corner of the last voxel (index size - 0.5) is where the input's was.
        let (old, new) = (f.lung1.geometry(), ours.geometry());
        let corners = [(vec![-0.5; 3], vec![-0.5; 3]), (vec![511.5, 511.5, 47.5], vec![199.5, 299.5, 59.5])];
        for (a, b) in corners {
            let (p, q) = (old.index_to_point(&a), new.index_to_point(&b));
            assert!(p.iter().zip(&q).all(|(x, y)| (x - y).abs() < 1e-9), "{p:?} vs {q:?}");
        }
    }
}

fn tiny(size: &[usize]) -> Image {
    let values: Vec<i16> = (0..size.iter().product::<usize>() as i16).collect();
    Image::from_voxels(medas_image::Voxels::from_fortran_vec(size, values).unwrap()).unwrap()
}

#[test]
fn bad_parameters_are_refused_with_clear_messages() {
    let image = tiny(&[4, 3, 2]);
    let cases = [
        ("preprocess.reorient", json!({"orientation": "RAX"}), "parameter \"orientation\" must be three letters, one of L/R, one of P/A and one of S/I (e.g. RAS, LPS, RAI), got \"RAX\""),
        ("preprocess.reorient", json!({"orientation": "RRS"}), "got \"RRS\""),
        ("preprocess.flip", json!({"axes": [3]}), "parameter \"axes\" holds axis 3; this 3-D image has axes 0 to 2"),
        ("preprocess.flip", json!({"axes": [1, 1]}), "parameter \"axes\" names axis 1 twice"),
        ("preprocess.flip", json!({"axes": [-1]}), "parameter \"axes\" item 0 -1 is outside the allowed range 0 to 3"),
        ("preprocess.rot90", json!({"axes": [0]}), "parameter \"axes\" holds 1 items, expected 2 to 2"),
        ("preprocess.rot90", json!({"axes": [2, 2]}), "parameter \"axes\" names axis 2 twice"),
        ("preprocess.crop_pad", json!({"size": [10, -2, 3]}), "parameter \"size\" item 1 -2 is outside the allowed range 1 to inf"),
        ("preprocess.crop_pad", json!({"size": [10, 3]}), "parameter \"size\" holds 2 values; this 3-D image needs 1 or 3"),
        ("preprocess.crop_pad", json!({"mode": "multiple", "multiple": [0]}), "parameter \"multiple\" item 0 0 is outside the allowed range 1 to inf"),
        ("preprocess.crop_pad", json!({"mode": "mask"}), "preprocess.crop_pad: input \"mask\""),
        ("preprocess.crop_pad", json!({"size": [100000, 100000, 1000]}), "would make a [100000, 100000, 1000] image, more than 2147483648 values"),
        ("preprocess.resample", json!({"mode": "shape", "size": [0]}), "parameter \"size\" item 0 0 is outside the allowed range 1 to inf"),
        ("preprocess.resample", json!({"mode": "shape", "size": [5, -5, 5]}), "parameter \"size\" item 1 -5 is outside the allowed range 1 to inf"),
        ("preprocess.resample", json!({"mode": "shape", "size": [5, 5]}), "parameter \"size\" holds 2 values; this 3-D image needs 1 or 3"),
        ("preprocess.resample", json!({"mode": "reference"}), "preprocess.resample: input \"reference\""),
        ("preprocess.resize", json!({"size": [4, 0, 2]}), "parameter \"size\" item 1 0 is outside the allowed range 1 to inf"),
    ];
    for (id, given, expected) in cases {
        let error = expect_error(run(id, &image, given.clone()), &format!("{id} {given}")).to_string();
        assert!(error.starts_with(id) && error.contains(expected), "{id} {given}: {error}");
    }
    let flat = tiny(&[4, 3]);
    let error = expect_error(run("preprocess.reorient", &flat, json!({})), "reorient 2-D").to_string();
    assert!(error.ends_with("reorienting needs a 3-D or 4-D image, this one is 2-D"), "{error}");
    let error = expect_error(run("preprocess.subvoxel_split", &tiny(&[4, 1, 2]), json!({})), "split").to_string();
    assert!(error.ends_with("every axis needs at least 2 voxels to split, the image has [4, 1, 2]"), "{error}");
}

#[test]
fn crop_to_a_mask_refuses_other_grids_and_empty_masks() {
    let image = tiny(&[4, 3, 2]);
    let mut moved = medas_image::Voxels::from_fortran_vec(&[4, 3, 2], vec![1u8; 24]).map(Image::from_voxels).unwrap().unwrap();
    let geometry = medas_image::Geometry::new(vec![1.0; 3], vec![0.0, 0.0, 0.5], medas_image::Geometry::identity(3).direction().to_vec());
    moved.set_geometry(geometry.unwrap()).unwrap();
    let given = json!({"mode": "mask"});
    let error = expect_error(run_with("preprocess.crop_pad", &[("image", &image), ("mask", &moved)], given.clone()), "moved").to_string();
    let expected = "the mask's grid (size [4, 3, 2], origin [0.0, 0.0, 0.5], spacing [1.0, 1.0, 1.0]) differs from the image's (size [4, 3, 2], origin [0.0, 0.0, 0.0], spacing [1.0, 1.0, 1.0])";
    assert!(error.ends_with(expected), "{error}");
    let empty = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[4, 3, 2], vec![0u8; 24]).unwrap()).unwrap();
    let error = expect_error(run_with("preprocess.crop_pad", &[("image", &image), ("mask", &empty)], given), "empty").to_string();
    assert!(error.ends_with("the mask has no foreground voxel"), "{error}");
}
