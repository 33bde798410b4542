//! The mask tools on a real CT (pyradiomics lung1, 512x512x48) against scipy.ndimage.
//!
//! The lung mask (HU <= -400) is made by `preprocess.threshold` and checked against numpy on
//! SimpleITK's array; it is then written as `.npy` (index order [i, j, k]) and scipy runs on
//! exactly that array, writing its results as `.npy` for the comparisons below.

use medas_image::{Image, ScalarType};
use medas_testkit::{expect_error, file, image_voxels, python, scratch_dir};
use medas_tools::{Data, Inputs, Outputs, Registry, ToolError, run_tool};
use ndarray::ArrayD;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

const SCIPY: &str = r#"
import sys, numpy as np, SimpleITK as sitk
from scipy import ndimage as nd
ct_path, out = sys.argv[1], sys.argv[2]
spacing = [float(s) for s in sys.argv[3].split(",")]
m = np.load(out + "/mask.npy") != 0
ct = sitk.GetArrayFromImage(sitk.ReadImage(ct_path)).transpose(2, 1, 0)
np.save(out + "/threshold.npy", (ct <= -400).astype(np.uint8))
for c in (1, 2, 3):
    labels, n = nd.label(m, structure=nd.generate_binary_structure(3, c))
    np.save(out + f"/label_{c}.npy", labels.astype(np.int32))
sizes = np.bincount(nd.label(m)[0].ravel()); sizes[0] = 0
np.save(out + "/largest.npy", (nd.label(m)[0] == np.argmax(sizes)).astype(np.uint8))
np.save(out + "/fill.npy", nd.binary_fill_holes(m).astype(np.uint8))
np.save(out + "/fill_slices.npy", np.stack([nd.binary_fill_holes(m[:, :, k]) for k in range(m.shape[2])], axis=2).astype(np.uint8))
d = np.arange(-2, 3)
i, j, k = np.meshgrid(d, d, d, indexing="ij")
shapes = {"ball2": (i / 2.0) ** 2 + (j / 2.0) ** 2 + (k / 2.0) ** 2 <= 1, "box1": np.ones((3, 3, 3), bool)}
ops = {"dilate": nd.binary_dilation, "erode": nd.binary_erosion, "open": nd.binary_opening, "close": nd.binary_closing}
for s, structure in shapes.items():
    for o, op in ops.items():
        np.save(out + f"/{o}_{s}.npy", op(m, structure=structure).astype(np.uint8))
np.save(out + "/edt.npy", nd.distance_transform_edt(m, sampling=spacing))
grey = {"dilate": nd.grey_dilation, "erode": nd.grey_erosion, "open": nd.grey_opening, "close": nd.grey_closing}
for s, footprint in shapes.items():
    for o, op in grey.items():
        np.save(out + f"/grey_{o}_{s}.npy", op(ct, footprint=footprint))
np.save(out + "/signed_edt.npy", nd.distance_transform_edt(~m, sampling=spacing) - nd.distance_transform_edt(m, sampling=spacing))
"#;

/// Runs tool `id` on one image input and returns its outputs.
fn run(id: &str, port: &str, image: &Image, given: Value) -> Result<Outputs, ToolError> {
    let tool = Registry::global().get(id)?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    run_tool(tool.as_ref(), Inputs::from([(port.to_string(), Data::Image(image.clone()))]), &given)
}

fn image_out(outputs: &mut Outputs, port: &str) -> Image {
    match outputs.remove(port) {
        Some(Data::Image(image)) => image,
        other => panic!("output {port}: {other:?}"),
    }
}

/// The lung mask made by our threshold and the folder holding scipy's results on it.
struct Fixture {
    mask: Image,
    dir: PathBuf,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let ct_path = file("pyradiomics/lung1_image.nrrd")?;
            let ct = medas_io::read(&ct_path).expect("read lung1");
            let mask = image_out(&mut run("preprocess.threshold", "image", &ct, json!({"upper": "-400"})).unwrap(), "mask");
            let dir = scratch_dir("masks");
            medas_io::write(&mask, dir.join("mask.npy")).expect("write mask.npy");
            let spacing = ct.geometry().spacing().iter().map(f64::to_string).collect::<Vec<_>>().join(",");
            python(SCIPY, &[ct_path.to_str().unwrap(), dir.to_str().unwrap(), &spacing]);
            Some(Fixture { mask, dir })
        })
        .as_ref()
}

fn reference(fixture: &Fixture, name: &str) -> ArrayD<f64> {
    let image = medas_io::read(fixture.dir.join(format!("{name}.npy"))).unwrap_or_else(|e| panic!("{name}: {e}"));
    image_voxels(image.voxels())
}

fn assert_identical(ours: &Image, theirs: &ArrayD<f64>, what: &str) {
    let ours = image_voxels(ours.voxels());
    assert_eq!(ours.shape(), theirs.shape(), "{what}: shape");
    let differing = ours.iter().zip(theirs.iter()).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "{what}: {differing} voxels differ from scipy");
}

#[test]
fn threshold_matches_numpy_on_simpleitk_array_and_keeps_geometry() {
    let Some(fixture) = fixture() else { return };
    assert_eq!(fixture.mask.scalar_type(), ScalarType::U8);
    assert_identical(&fixture.mask, &reference(fixture, "threshold"), "threshold HU <= -400");
    let ct = medas_io::read(file("pyradiomics/lung1_image.nrrd").unwrap()).unwrap();
    assert_eq!(fixture.mask.geometry(), ct.geometry());
    let foreground = image_voxels(fixture.mask.voxels()).iter().filter(|&&v| v == 1.0).count();
    assert!(foreground > 1_000_000, "the lung mask has {foreground} voxels");
    // inside/outside values and both bounds.
    let mut out = run("preprocess.threshold", "image", &ct, json!({"lower": [-400], "upper": [-400], "inside": 7, "outside": 3})).unwrap();
    let band = image_voxels(image_out(&mut out, "mask").voxels());
    let hu = image_voxels(ct.voxels());
    assert!(band.iter().zip(hu.iter()).all(|(&m, &v)| m == if v == -400.0 { 7.0 } else { 3.0 }));
}

/// Labels against scipy: the same partition (a bijection of labels), the same count, and the
/// same numbering, for 6-, 18- and 26-connectivity.
#[test]
fn connected_components_match_scipy_label() {
    let Some(fixture) = fixture() else { return };
    for (connectivity, structure) in [(6, 1), (18, 2), (26, 3)] {
        let mut out = run("preprocess.connected_components", "mask", &fixture.mask, json!({"connectivity": connectivity})).unwrap();
        let Some(Data::Scalar(count)) = out.remove("count") else { panic!("count") };
        let labels = image_out(&mut out, "labels");
        assert_eq!(labels.scalar_type(), ScalarType::I32);
        let theirs = reference(fixture, &format!("label_{structure}"));
        let ours = image_voxels(labels.voxels());
        let (mut forward, mut backward) = (HashMap::new(), HashMap::new());
        for (&a, &b) in ours.iter().zip(theirs.iter()) {
            assert_eq!(*forward.entry(a as i64).or_insert(b as i64), b as i64, "{connectivity}: label {a} maps to two scipy labels");
            assert_eq!(*backward.entry(b as i64).or_insert(a as i64), a as i64, "{connectivity}: scipy label {b} is split");
        }
        let scipy_count = theirs.iter().fold(0.0f64, |m, &v| m.max(v));
        assert_eq!(count, scipy_count, "{connectivity}-connectivity count");
        assert!(count > 10.0, "{connectivity}: only {count} regions");
        assert_identical(&labels, &theirs, &format!("{connectivity}-connectivity numbering"));
    }
}

#[test]
fn keep_largest_matches_bincount_argmax_of_scipy_labels() {
    let Some(fixture) = fixture() else { return };
    let mut out = run("preprocess.keep_largest_component", "mask", &fixture.mask, json!({})).unwrap();
    assert_identical(&image_out(&mut out, "mask"), &reference(fixture, "largest"), "largest component");
    // The two largest hold more than the largest alone.
    let mut two = run("preprocess.keep_largest_component", "mask", &fixture.mask, json!({"count": 2})).unwrap();
    let (one, two) = (reference(fixture, "largest").sum(), image_voxels(image_out(&mut two, "mask").voxels()).sum());
    assert!(two > one, "{two} vs {one}");
}

#[test]
fn fill_holes_matches_scipy_in_3d_and_slice_by_slice() {
    let Some(fixture) = fixture() else { return };
    let mut out = run("preprocess.fill_holes", "mask", &fixture.mask, json!({})).unwrap();
    let filled = image_out(&mut out, "mask");
    assert_identical(&filled, &reference(fixture, "fill"), "fill holes 3-D");
    let mut out = run("preprocess.fill_holes", "mask", &fixture.mask, json!({"slice_by_slice": true})).unwrap();
    let by_slice = image_out(&mut out, "mask");
    assert_identical(&by_slice, &reference(fixture, "fill_slices"), "fill holes per slice");
    let (a, b, m) = (image_voxels(filled.voxels()).sum(), image_voxels(by_slice.voxels()).sum(), image_voxels(fixture.mask.voxels()).sum());
    assert!(a > m && b > m, "filling added nothing: {m} {a} {b}");
}

#[test]
fn morphology_matches_scipy_with_ball_and_box() {
    let Some(fixture) = fixture() else { return };
    // A bare number is one radius for every axis.
    for (shape, radius, name) in [("ball", json!(2), "ball2"), ("box", json!([1]), "box1")] {
        for operation in ["dilate", "erode", "open", "close"] {
            let given = json!({"operation": operation, "shape": shape, "radius": radius});
            let mut out = run("preprocess.morphology", "mask", &fixture.mask, given).unwrap();
            assert_identical(&image_out(&mut out, "mask"), &reference(fixture, &format!("{operation}_{name}")), &format!("{operation} {name}"));
        }
    }
}

/// Grey-level morphology of the CT itself (int16 HU), ball and box, scipy's reflect border.
#[test]
fn grey_morphology_matches_scipy_with_ball_and_box() {
    let Some(fixture) = fixture() else { return };
    let ct = medas_io::read(file("pyradiomics/lung1_image.nrrd").unwrap()).unwrap();
    for (shape, radius, name) in [("ball", json!(2), "ball2"), ("box", json!([1]), "box1")] {
        for operation in ["dilate", "erode", "open", "close"] {
            let given = json!({"operation": operation, "shape": shape, "radius": radius});
            let result = image_out(&mut run("preprocess.grey_morphology", "image", &ct, given).unwrap(), "image");
            assert_eq!(result.scalar_type(), ScalarType::I16, "voxel type kept");
            assert_eq!(result.geometry(), ct.geometry());
            assert_identical(&result, &reference(fixture, &format!("grey_{operation}_{name}")), &format!("grey {operation} {name}"));
        }
    }
    let e = expect_error(run("preprocess.grey_morphology", "image", &ct, json!({"radius": [1, 2]})), "grey").to_string();
    assert!(e.contains("\"radius\" holds 2 values; give one for all axes or one per axis (3)"), "{e}");
}

#[test]
fn distance_transform_matches_scipy_edt_with_spacing() {
    let Some(fixture) = fixture() else { return };
    let mut out = run("preprocess.distance_transform", "mask", &fixture.mask, json!({})).unwrap();
    let distance = image_out(&mut out, "distance");
    assert_eq!(distance.scalar_type(), ScalarType::F32);
    let ours = image_voxels(distance.voxels());
    let theirs = reference(fixture, "edt");
    let (max, mean) = medas_testkit::max_mean_difference(&ours, &theirs);
    let largest = theirs.iter().fold(0.0f64, |m, &v| m.max(v));
    eprintln!("EDT vs scipy: max abs diff {max:e} mm, mean {mean:e} mm, largest distance {largest} mm");
    assert!(largest > 10.0, "largest distance {largest}");
    assert!(max <= 1e-4, "max abs diff {max} mm");
    // Signed: edt(~mask) - edt(mask), positive outside.
    let mut out = run("preprocess.distance_transform", "mask", &fixture.mask, json!({"signed": true})).unwrap();
    let ours = image_voxels(image_out(&mut out, "distance").voxels());
    let theirs = reference(fixture, "signed_edt");
    let (max, mean) = medas_testkit::max_mean_difference(&ours, &theirs);
    let (lowest, highest) = theirs.iter().fold((0.0f64, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    eprintln!("signed EDT vs scipy: max abs diff {max:e} mm, mean {mean:e} mm, range {lowest} to {highest} mm");
    assert!(lowest < -10.0 && highest > 10.0, "range {lowest} to {highest}");
    assert!(max <= 1e-4, "signed: max abs diff {max} mm");
}

#[test]
fn bad_parameters_and_masks_are_refused_clearly() {
    let Some(fixture) = fixture() else { return };
    let mask = &fixture.mask;
    let error = |id: &str, port: &str, image: &Image, given: Value| expect_error(run(id, port, image, given), id).to_string();
    let e = error("preprocess.threshold", "image", mask, json!({"lower": 5, "upper": 1}));
    assert!(e.contains("parameter \"lower\" 5 is outside the allowed range -inf to upper (1)"), "{e}");
    let e = error("preprocess.connected_components", "mask", mask, json!({"connectivity": 8}));
    assert!(e.contains("\"connectivity\" \"8\" is not one of [\"6\", \"18\", \"26\"]"), "{e}");
    let e = error("preprocess.morphology", "mask", mask, json!({"radius": [-1]}));
    assert!(e.contains("parameter \"radius\" item 0 -1 is outside the allowed range 0 to 100"), "{e}");
    let e = error("preprocess.morphology", "mask", mask, json!({"radius": [1, 2]}));
    assert!(e.contains("\"radius\" holds 2 values; give one for all axes or one per axis (3)"), "{e}");
    let e = error("preprocess.morphology", "mask", mask, json!({"operation": "thicken"}));
    assert!(e.contains("\"thicken\" is not one of"), "{e}");
    let floats = mask.cast(ScalarType::F32);
    let e = error("preprocess.fill_holes", "mask", &floats, json!({}));
    assert!(e.contains("masks must be integer images"), "{e}");
    let empty = mask.with_voxels(medas_image::Voxels::from_fortran_vec(mask.size(), vec![0u8; mask.voxels().len()]).unwrap()).unwrap();
    let e = error("preprocess.keep_largest_component", "mask", &empty, json!({}));
    assert!(e.contains("no foreground voxel"), "{e}");
    let full = mask.with_voxels(medas_image::Voxels::from_fortran_vec(mask.size(), vec![1u8; mask.voxels().len()]).unwrap()).unwrap();
    let e = error("preprocess.distance_transform", "mask", &full, json!({}));
    assert!(e.contains("no background voxel"), "{e}");
    let e = error("preprocess.distance_transform", "mask", &empty, json!({"signed": true}));
    assert!(e.contains("the mask has no foreground voxel, so distances to the foreground are undefined"), "{e}");
    // An empty mask has no regions, and nothing to fill.
    let mut out = run("preprocess.connected_components", "mask", &empty, json!({})).unwrap();
    assert!(matches!(out.remove("count"), Some(Data::Scalar(c)) if c == 0.0));
}

/// 2-D masks: connectivity 4 and 8 (and 6 meaning 4), filling in the plane.
#[test]
fn two_dimensional_masks_use_four_and_eight_connectivity() {
    // 3x3 with a diagonal pair and a ring around nothing.
    let values = vec![1u8, 0, 0, 0, 1, 0, 0, 0, 0];
    let image = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[3, 3], values).unwrap()).unwrap();
    let count = |c: i64| match run("preprocess.connected_components", "mask", &image, json!({"connectivity": c})).unwrap().remove("count") {
        Some(Data::Scalar(n)) => n,
        other => panic!("{other:?}"),
    };
    assert_eq!((count(4), count(6), count(8), count(26)), (2.0, 2.0, 1.0, 1.0));
    let ring = vec![1u8, 1, 1, 1, 0, 1, 1, 1, 1];
    let ring = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[3, 3], ring).unwrap()).unwrap();
    let mut out = run("preprocess.fill_holes", "mask", &ring, json!({})).unwrap();
    assert_eq!(image_voxels(image_out(&mut out, "mask").voxels()).sum(), 9.0);
}
