//! Speed probe used by `scripts/bench-geometry`: runs the geometry tools on one image (lung1)
//! `repeats` times each through the checked runner and prints the best and median wall time per
//! case as JSON; `scripts/bench_geometry.py` times SimpleITK on the same cases and prints ratios.
//! The reference grids and the mask are made here the way the Python side makes them.
//!
//! usage: cargo bench -p medas-tools --bench geometry -- PATH [REPEATS [CASE]]

mod support;

use medas_image::{Geometry, Image, Voxels};
use medas_tools::{Data, Inputs};
use serde_json::json;

/// An empty uint8 image with the given grid, as the reference input.
fn grid(size: [usize; 3], spacing: [f64; 3], origin: [f64; 3], direction: Vec<f64>) -> Inputs {
    let geometry = Geometry::new(spacing.to_vec(), origin.to_vec(), direction).expect("a valid grid");
    let voxels = Voxels::from_fortran_vec(&size, vec![0u8; size.iter().product()]).expect("size matches");
    Inputs::from([("reference".to_string(), Data::Image(Image::new(voxels, geometry).expect("3-D")))])
}

/// A grid along the image's axes, 1.1 x 1.2 x 1.3 mm, origin moved.
fn aligned(_: &Image) -> Inputs {
    grid([300, 280, 170], [1.1, 1.2, 1.3], [-150.3, -300.7, -770.2], Geometry::identity(3).direction().to_vec())
}

/// A 1.5 mm grid turned 10 degrees about z, then 5 about x (Rz · Rx, as the Python side).
fn oblique(_: &Image) -> Inputs {
    let (cz, sz) = (10f64.to_radians().cos(), 10f64.to_radians().sin());
    let (cx, sx) = (5f64.to_radians().cos(), 5f64.to_radians().sin());
    let direction = vec![cz, -sz * cx, sz * sx, sz, cz * cx, -cz * sx, 0.0, sx, cx];
    grid([200, 190, 150], [1.5; 3], [-130.0, -340.0, -800.0], direction)
}

/// Bone (HU > 300) as a uint8 mask on the image's grid.
fn bone(image: &Image) -> Inputs {
    let values = image.voxels().as_array::<i16>().expect("lung1 is int16");
    let mask = values.mapv(|v| u8::from(v > 300));
    let mut mask = image.with_voxels(Voxels::U8(mask.into_shared())).expect("same shape");
    mask.metadata = Default::default();
    Inputs::from([("mask".to_string(), Data::Image(mask))])
}

/// The affine transform both sides apply (reference point to image point): 8 degrees about z,
/// x scaled by 1.05, centre (0, -180, -300) mm, then moved (4, -6, 3) mm; written as ITK text,
/// with the `aligned` reference grid.
fn affine(image: &Image) -> Inputs {
    let (c, s) = (8f64.to_radians().cos(), 8f64.to_radians().sin());
    let matrix = [1.05 * c, -s, 0.0, 1.05 * s, c, 0.0, 0.0, 0.0, 1.0];
    let text = format!(
        "#Insight Transform File V1.0\n#Transform 0\nTransform: AffineTransform_double_3_3\nParameters: {} 4 -6 3\nFixedParameters: 0 -180 -300\n",
        matrix.map(|v| v.to_string()).join(" ")
    );
    let path = std::env::temp_dir().join(format!("medas-bench-affine-{}.tfm", std::process::id()));
    std::fs::write(&path, text).expect("the temporary folder is writable");
    let mut inputs = aligned(image);
    inputs.insert("transform".to_string(), Data::File(path));
    inputs
}

fn main() {
    let none = support::no_inputs;
    let reference = |interpolator: &str| json!({"mode": "reference", "interpolator": interpolator});
    let cases: Vec<(support::Case, support::OtherInputs)> = vec![
        (("resample_reference_linear", "preprocess.resample", reference("linear")), aligned),
        (("resample_reference_nearest", "preprocess.resample", reference("nearest")), aligned),
        (("resample_reference_bspline", "preprocess.resample", reference("bspline")), aligned),
        (("resample_oblique_linear", "preprocess.resample", reference("linear")), oblique),
        (("resample_shape_linear", "preprocess.resample", json!({"mode": "shape", "size": [300, 300, 60]})), none),
        (("reorient_ras", "preprocess.reorient", json!({"orientation": "RAS"})), none),
        (("flip_01", "preprocess.flip", json!({"axes": [0, 1]})), none),
        (("crop_centre", "preprocess.crop_pad", json!({"size": [300, 600, 40], "pad_value": -1024})), none),
        (("crop_mask", "preprocess.crop_pad", json!({"mode": "mask", "margin": [5, 0, 2]})), bone),
        (("subvoxel_split", "preprocess.subvoxel_split", json!({})), none),
        (("resize_linear", "preprocess.resize", json!({"size": [256, 256, 96]})), none),
        (("rot90_01", "preprocess.rot90", json!({"k": 1, "axes": [0, 1]})), none),
        (("cast_float32", "preprocess.cast", json!({"type": "float32"})), none),
        (("threshold_upper", "preprocess.threshold", json!({"upper": -400})), none),
        (("apply_affine_linear", "preprocess.apply_transform", json!({"interpolator": "linear"})), affine),
        (("body_mask", "preprocess.body_mask", json!({})), none),
        (("lung_mask", "preprocess.lung_mask", json!({})), none),
        (("apply_affine_nearest", "preprocess.apply_transform", json!({"interpolator": "nearest"})), affine),
    ];
    support::main_derived("geometry PATH [REPEATS [CASE]]", "image", cases);
}
