//! Pre-processing tools against their references on lung1 (CT 512x512x48 int16, 0.57x0.57x5 mm):
//! window/level vs SimpleITK IntensityWindowing, resampling vs sitk.Resample, Otsu vs
//! skimage.filters.threshold_otsu. The references are computed once per test run by one Python
//! script in the reference venv and read back with medas-io (whose NRRD reader is itself tested
//! against SimpleITK).

use medas_image::Image;
use medas_testkit::{expect_error, file, image_voxels, max_mean_difference, python, scratch_dir};
use medas_tools::{CancelToken, Context, Data, Inputs, Params, Registry, ToolError, run_resolved, run_tool};
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const REFERENCES: &str = r#"
import json, sys
import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from skimage.filters import threshold_otsu

source, out = sys.argv[1], sys.argv[2]
img = sitk.ReadImage(source)
floats = sitk.Cast(img, sitk.sitkFloat32)

# Window/level: lung preset W1500 L-600, and W400 L40 onto [-1, 1].
sitk.WriteImage(sitk.IntensityWindowing(floats, -1350.0, 150.0, 0.0, 1.0), f"{out}/window_lung.nrrd")
sitk.WriteImage(sitk.IntensityWindowing(floats, -160.0, 240.0, -1.0, 1.0), f"{out}/window_custom.nrrd")

# Resampling to a spacing, as SimpleITK users write it.
def to_spacing(image, spacing, interpolator, pixel):
    size = [max(1, int(round(n * s / t))) for n, s, t in zip(image.GetSize(), image.GetSpacing(), spacing)]
    return sitk.Resample(image, size, sitk.Transform(), interpolator, image.GetOrigin(), spacing,
                         image.GetDirection(), 0.0, pixel)

interpolators = {"nearest": (sitk.sitkNearestNeighbor, sitk.sitkUnknown),
                 "linear": (sitk.sitkLinear, sitk.sitkFloat32),
                 "bspline": (sitk.sitkBSpline, sitk.sitkFloat32)}
for tag, spacing in (("1mm", (1.0, 1.0, 1.0)), ("2mm", (2.0, 2.0, 2.0))):
    for name, (interpolator, pixel) in interpolators.items():
        sitk.WriteImage(to_spacing(img, spacing, interpolator, pixel), f"{out}/resample_{name}_{tag}.nrrd")

# Anti-aliased 2 mm: Gaussian of sigma (new/old - 1)/2 voxels on axes that get coarser
# (scipy, edge values repeated), then linear. numpy axes are k, j, i.
array = sitk.GetArrayFromImage(img).astype(np.float32)
sigma = [max(0.0, (2.0 / s - 1.0) / 2.0) for s in img.GetSpacing()][::-1]
smooth = sitk.GetImageFromArray(ndimage.gaussian_filter(array, sigma, mode="nearest", truncate=4.0))
smooth.CopyInformation(img)
sitk.WriteImage(to_spacing(smooth, (2.0, 2.0, 2.0), sitk.sitkLinear, sitk.sitkFloat32), f"{out}/resample_antialias_2mm.nrrd")

# Otsu: float data with nbins bins (what the tool computes), and skimage's integer path.
result = {"int16": float(threshold_otsu(sitk.GetArrayViewFromImage(img)))}
for bins in (256, 64):
    t = threshold_otsu(array, nbins=bins)
    result[f"float_{bins}"] = float(t)
    mask = sitk.GetImageFromArray((array > t).astype(np.uint8))
    mask.CopyInformation(img)
    sitk.WriteImage(mask, f"{out}/otsu_mask_{bins}.nrrd")
json.dump(result, open(f"{out}/otsu.json", "w"))
"#;

/// lung1 and the folder of references computed from it (once per test binary).
fn lung1_and_references() -> Option<(PathBuf, &'static Path)> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let source = file("pyradiomics/lung1_image.nrrd")?;
    let dir = DIR.get_or_init(|| {
        let dir = scratch_dir("tools-preprocess");
        python(REFERENCES, &[source.as_os_str(), dir.as_os_str()]);
        dir
    });
    Some((source, dir.as_path()))
}

fn read(path: &Path) -> Image {
    medas_io::read(path).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs tool `id` on `image` with parameters given as JSON (as a pipeline document holds them).
fn run(id: &str, image: &Image, given: Value) -> Result<medas_tools::Outputs, ToolError> {
    let tool = Registry::global().get(id).unwrap();
    let given: Map<String, Value> = given.as_object().unwrap().clone();
    run_tool(tool.as_ref(), Inputs::from([("image".to_string(), Data::Image(image.clone()))]), &given)
}

fn output_image(mut outputs: medas_tools::Outputs, port: &str) -> Image {
    match outputs.remove(port) {
        Some(Data::Image(image)) => image,
        other => panic!("output {port}: {other:?}"),
    }
}

fn assert_same_grid(ours: &Image, theirs: &Image, what: &str) {
    assert_eq!(ours.size(), theirs.size(), "{what}: size");
    assert!(ours.geometry().approx_eq(theirs.geometry(), 1e-9), "{what}: {:?} vs {:?}", ours.geometry(), theirs.geometry());
}

#[test]
fn window_level_matches_simpleitk_intensity_windowing() {
    let Some((source, refs)) = lung1_and_references() else { return };
    let image = read(&source);
    for (given, reference) in [
        (json!({"preset": "lung", "width": 1.0}), "window_lung.nrrd"),
        (json!({"width": "400", "level": 40, "output_min": -1, "output_max": 1}), "window_custom.nrrd"),
    ] {
        let ours = output_image(run("preprocess.window_level", &image, given).unwrap(), "image");
        let theirs = read(&refs.join(reference));
        assert_eq!(ours.scalar_type(), medas_image::ScalarType::F32);
        assert_same_grid(&ours, &theirs, reference);
        assert_eq!(ours.geometry(), image.geometry(), "geometry kept exactly");
        let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &image_voxels(theirs.voxels()));
        eprintln!("window/level {reference}: max |ours - SimpleITK| {max:e}, mean {mean:e}");
        assert!(max <= 1e-5, "{reference}: max difference {max}");
    }
}

/// Mean and max |ours - SimpleITK| of one resampling, after checking the grid.
fn resample_difference(image: &Image, refs: &Path, interpolator: &str, tag: &str, given: Value) -> (f64, f64) {
    let ours = output_image(run("preprocess.resample", image, given).unwrap(), "image");
    let theirs = read(&refs.join(format!("resample_{interpolator}_{tag}.nrrd")));
    assert_same_grid(&ours, &theirs, &format!("{interpolator} {tag}"));
    assert_eq!(ours.scalar_type(), theirs.scalar_type(), "{interpolator} {tag}: voxel type");
    assert_eq!(ours.metadata, image.metadata, "metadata kept");
    let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &image_voxels(theirs.voxels()));
    eprintln!("resample {interpolator} {tag} {:?}: max |ours - SimpleITK| {max:.3e}, mean {mean:.3e}", ours.size());
    (mean, max)
}

/// The issue's tolerance: mean |difference| at most 0.5 % of the intensity range. What each
/// interpolator actually reaches is asserted too (much tighter), so that a regression shows.
#[test]
fn resampling_matches_simpleitk_resample() {
    let Some((source, refs)) = lung1_and_references() else { return };
    let image = read(&source);
    let stats = image.voxels().stats();
    let tolerance = 0.005 * (stats.max - stats.min);
    for (tag, spacing) in [("1mm", json!([1.0])), ("2mm", json!("2, 2, 2"))] {
        for (interpolator, mean_bound, max_bound) in [("nearest", 0.0, 0.0), ("linear", 1e-4, 1e-3), ("bspline", 1e-3, 1e-2)] {
            let given = json!({"spacing": spacing, "interpolator": interpolator});
            let (mean, max) = resample_difference(&image, refs, interpolator, tag, given);
            assert!(mean <= tolerance, "{interpolator} {tag}: mean {mean} over 0.5 % of the range");
            assert!(mean <= mean_bound && max <= max_bound, "{interpolator} {tag}: mean {mean}, max {max}");
        }
    }
    let given = json!({"spacing": [2.0, 2.0, 2.0], "antialias": true});
    let (mean, max) = resample_difference(&image, refs, "antialias", "2mm", given);
    assert!(mean <= 1e-3 && max <= 1e-2, "antialias: mean {mean}, max {max}");
}

#[test]
fn otsu_matches_skimage_threshold_and_mask() {
    let Some((source, refs)) = lung1_and_references() else { return };
    let image = read(&source);
    let skimage: Value = serde_json::from_str(&std::fs::read_to_string(refs.join("otsu.json")).unwrap()).unwrap();
    let stats = image.voxels().stats();
    for bins in [256, 64] {
        let mut outputs = run("preprocess.otsu_threshold", &image, json!({"bins": bins})).unwrap();
        let Some(Data::Scalar(ours)) = outputs.remove("threshold") else { panic!("no threshold") };
        let theirs = skimage[format!("float_{bins}")].as_f64().unwrap();
        eprintln!("otsu {bins} bins: ours {ours}, skimage {theirs}");
        assert!((ours - theirs).abs() <= 1e-6 * theirs.abs(), "{bins} bins: ours {ours} vs skimage {theirs}");
        let mask = output_image(outputs, "mask");
        let reference = read(&refs.join(format!("otsu_mask_{bins}.nrrd")));
        assert_eq!(mask.scalar_type(), medas_image::ScalarType::U8);
        assert_same_grid(&mask, &reference, "mask");
        assert_eq!(image_voxels(mask.voxels()), image_voxels(reference.voxels()), "{bins} bins: masks differ");
        if bins == 256 {
            // skimage's own path for integer images: one bin per value; within one of our bins.
            let integer = skimage["int16"].as_f64().unwrap();
            let width = (stats.max - stats.min) / 256.0;
            eprintln!("otsu on int16: skimage {integer} (one bin per value), ours {ours}, bin width {width}");
            assert!((ours - integer).abs() <= width, "ours {ours} vs skimage's integer path {integer}");
        }
    }
    // inside = below is the complement.
    let below = output_image(run("preprocess.otsu_threshold", &image, json!({"inside": "below"})).unwrap(), "mask");
    let above = output_image(run("preprocess.otsu_threshold", &image, json!({})).unwrap(), "mask");
    let sum = image_voxels(below.voxels()) + image_voxels(above.voxels());
    assert!(sum.iter().all(|&v| v == 1.0));
}

fn small_image(values: Vec<f32>) -> Image {
    Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[values.len(), 1, 1], values).unwrap()).unwrap()
}

#[test]
fn bad_parameters_are_refused_with_the_parameter_named() {
    let image = small_image(vec![1.0, 2.0, 3.0, 4.0]);
    let cases = [
        ("preprocess.window_level", json!({"width": 0}), "parameter \"width\" must be greater than 0 HU, got 0"),
        ("preprocess.window_level", json!({"width": -5}), "parameter \"width\" must be greater than 0 HU, got -5"),
        ("preprocess.window_level", json!({"output_min": 1, "output_max": 1}), "parameter \"output_max\" must be greater than output_min (1), got 1"),
        ("preprocess.window_level", json!({"preset": "heart"}), "parameter \"preset\" \"heart\" is not one of"),
        ("preprocess.resample", json!({"spacing": "0"}), "parameter \"spacing\" every spacing must be a positive number of mm, got 0"),
        ("preprocess.resample", json!({"spacing": [1, -1, 1]}), "parameter \"spacing\" item 1 -1 is outside the allowed range 0 to inf"),
        ("preprocess.resample", json!({"spacing": "1, 1"}), "parameter \"spacing\" holds 2 values; this 3-D image needs 1 or 3"),
        ("preprocess.resample", json!({"spacing": [1, 1, 1, 1]}), "parameter \"spacing\" holds 4 items, expected 1 to 3"),
        ("preprocess.resample", json!({"spacing": [1e-6]}), "more than 2147483648 values"),
        ("preprocess.resample", json!({"interpolator": "cubic"}), "\"cubic\" is not one of"),
        ("preprocess.otsu_threshold", json!({"bins": 1}), "parameter \"bins\" 1 is outside the allowed range 2 to 65536"),
    ];
    for (id, given, expected) in cases {
        let error = expect_error(run(id, &image, given.clone()), &format!("{id} {given}")).to_string();
        assert!(error.starts_with(id) && error.contains(expected), "{id} {given}: {error}");
    }
}

#[test]
fn otsu_refuses_images_without_two_values() {
    for (values, expected) in [
        (vec![7.0; 5], "every finite value of the image is 7, so it has no Otsu threshold"),
        (vec![f32::NAN, f32::INFINITY], "the image has no finite values"),
    ] {
        let error = expect_error(run("preprocess.otsu_threshold", &small_image(values), json!({})), "otsu").to_string();
        assert!(error.contains(expected), "{error}");
    }
    let empty = Image::from_voxels(medas_image::Voxels::from_fortran_vec::<f32>(&[0, 3], vec![]).unwrap()).unwrap();
    let error = expect_error(run("preprocess.otsu_threshold", &empty, json!({})), "otsu empty").to_string();
    assert!(error.contains("no finite values"), "{error}");
    let error = expect_error(run("preprocess.resample", &empty, json!({"spacing": "1"})), "resample empty").to_string();
    assert!(error.ends_with("preprocess.resample: the image has no voxels (size [0, 3])"), "{error}");
}

#[test]
fn resampling_stops_when_cancelled() {
    let image = small_image((0..64).map(|v| v as f32).collect());
    let tool = Registry::global().get("preprocess.resample").unwrap();
    let params = Params::resolve(tool.spec(), &Map::from_iter([("spacing".to_string(), json!("0.5"))])).unwrap();
    let cancel = CancelToken::new();
    cancel.cancel();
    let context = Context::new(&|_| {}, &|_| {}, &cancel, None);
    let inputs = Inputs::from([("image".to_string(), Data::Image(image))]);
    let error = run_resolved(tool.as_ref(), inputs, &params, &context).unwrap_err();
    assert!(matches!(error, ToolError::Cancelled { .. }), "{error}");
}
