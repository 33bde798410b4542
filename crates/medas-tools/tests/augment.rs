//! Augmentation tools against independent references on lung1 (CT, cropped around the tumour
//! to 96 x 72 x 16 voxels so that the tests stay fast; the label gets a second class, bone,
//! so that label sets are checked with more than one value). The Python side re-implements
//! SplitMix64 (plain integers for the draws, numpy uint64 for per-voxel noise) and applies the
//! drawn parameters with numpy (flip, rot90, gamma, brightness/contrast, noise, bias field), so
//! both the draw and the transform are checked.

mod support;

use medas_image::Image;
use medas_testkit::{expect_error, file, image_voxels, max_mean_difference, python, scratch_dir};
use medas_tools::{Data, Outputs, ToolError};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const REFERENCES: &str = r#"
import json, sys
import numpy as np
import SimpleITK as sitk

image_path, label_path, out = sys.argv[1], sys.argv[2], sys.argv[3]
index, size = [170, 320, 26], [96, 72, 16]
img = sitk.RegionOfInterest(sitk.ReadImage(image_path), size, index)
lab = sitk.RegionOfInterest(sitk.ReadImage(label_path), size, index)
a = sitk.GetArrayFromImage(img)                     # numpy axes k, j, i
l = sitk.GetArrayFromImage(lab).astype(np.uint8)
l[(l == 0) & (a > 400)] = 2
lab = sitk.GetImageFromArray(l); lab.CopyInformation(img)
sitk.WriteImage(img, f"{out}/image.nrrd"); sitk.WriteImage(lab, f"{out}/label.nrrd")

M, G = (1 << 64) - 1, 0x9E3779B97F4A7C15
def mix(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)
class SplitMix64:
    def __init__(self, seed): self.state = seed
    def next(self):
        self.state = (self.state + G) & M
        return mix(self.state)
    def uniform(self): return (self.next() >> 11) * 2.0 ** -53
    def uniform_in(self, lo, hi): u = self.uniform(); return lo if lo == hi else lo + (hi - lo) * u

def write(array, like, name, spacing=None):
    image = sitk.GetImageFromArray(array)
    image.SetOrigin(like.GetOrigin()); image.SetDirection(like.GetDirection())
    image.SetSpacing(spacing or like.GetSpacing())
    sitk.WriteImage(image, f"{out}/{name}.nrrd")

ijk = lambda x: x.transpose(2, 1, 0)                # to and from axes i, j, k
draws = {}
for seed in range(6):
    rng = SplitMix64(seed)
    flips = [rng.uniform() < 0.5 for _ in range(3)]
    axes = [axis for axis, f in enumerate(flips) if f]
    draws[f"flip_{seed}"] = [int(f) for f in flips]
    for x, name in ((a, "image"), (l, "label")):
        write(ijk(np.flip(ijk(x), axes)), img, f"flip_{seed}_{name}")
for plane, (p, q) in (("ij", (0, 1)), ("ik", (0, 2)), ("jk", (1, 2))):
    for seed in range(8):
        rng = SplitMix64(seed)
        assert rng.uniform() < 1.0
        turns = min(int(rng.uniform() * 4), 3)
        draws[f"rot90_{plane}_{seed}"] = turns
        spacing = list(img.GetSpacing())
        if turns % 2: spacing[p], spacing[q] = spacing[q], spacing[p]
        for x, name in ((a, "image"), (l, "label")):
            write(ijk(np.rot90(ijk(x), turns, axes=(p, q)).copy()), img, f"rot90_{plane}_{seed}_{name}", spacing)

x = a.astype(np.float64)
rng = SplitMix64(5); gamma = rng.uniform_in(0.7, 1.5); draws["gamma"] = gamma
low, span = x.min(), x.max() - x.min() + 1e-7
write(((x - low) / span) ** gamma * span + low, img, "gamma")

rng = SplitMix64(9); b = rng.uniform_in(0.75, 1.25); c = rng.uniform_in(0.75, 1.25); draws["brightness_contrast"] = [b, c]
y = x * b
write(np.clip((y - y.mean()) * c + y.mean(), y.min(), y.max()), img, "brightness_contrast")

rng = SplitMix64(2); std = rng.uniform_in(10.0, 30.0); key = rng.next(); draws["noise"] = std
def nth(n):                                          # output n of SplitMix64(key), vectorised
    return np.uint64(key) + (n + np.uint64(1)) * np.uint64(G)
def mix_np(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))
unit = lambda bits: (bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53
n = np.arange(x.size, dtype=np.uint64).reshape(x.shape)   # C order of (k, j, i) = Fortran order of (i, j, k)
u1, u2 = unit(mix_np(nth(2 * n))), unit(mix_np(nth(2 * n + np.uint64(1))))
write(x + std * np.sqrt(-2.0 * np.log(1.0 - u1)) * np.cos(2.0 * np.pi * u2), img, "noise")

rng = SplitMix64(3)
terms = [(i, j, k) for i in range(4) for j in range(4 - i) for k in range(4 - i - j)]
coefficients = [rng.uniform_in(-0.5, 0.5) for _ in terms]
draws["bias_field"] = coefficients
u, v, w = (np.linspace(-1.0, 1.0, s) for s in size)
W, V, U = np.meshgrid(w, v, u, indexing="ij")
field = np.exp(sum(c * U ** i * V ** j * W ** k for c, (i, j, k) in zip(coefficients, terms)))
write(x * field, img, "bias_field")
from scipy import ndimage
rng = SplitMix64(4); sigma = rng.uniform_in(0.5, 1.5); draws["blur"] = sigma
sigmas = [sigma / s for s in img.GetSpacing()][::-1]
write(ndimage.gaussian_filter(x, sigmas, mode="nearest", truncate=4.0), img, "blur")

rng = SplitMix64(6); window = [40, 30, 8]
offsets = [min(int(rng.uniform() * (n - s + 1)), n - s) for n, s in zip(size, window)]
draws["crop"] = offsets
sitk.WriteImage(sitk.RegionOfInterest(img, window, offsets), f"{out}/crop_image.nrrd")
sitk.WriteImage(sitk.RegionOfInterest(lab, window, offsets), f"{out}/crop_label.nrrd")
rng = SplitMix64(8); alpha = rng.uniform_in(300.0, 600.0); sigma = rng.uniform_in(8.0, 12.0); key = rng.next()
draws["elastic"] = [alpha, sigma]
spacing, shape = img.GetSpacing(), x.shape                 # shape: k, j, i
grid = np.indices(shape).astype(np.float64)
coordinates = []                                          # per axis i, j, k: numpy axis 2 - a
for axis in range(3):
    n = np.arange(x.size, dtype=np.uint64).reshape(shape) + np.uint64(axis * x.size)
    noise = 2.0 * unit(mix_np(np.uint64(key) + (n + np.uint64(1)) * np.uint64(G))) - 1.0
    smooth = ndimage.gaussian_filter(noise, [sigma / s for s in spacing][::-1], mode="nearest", truncate=4.0)
    coordinates.append(grid[2 - axis] + smooth * alpha / spacing[axis])
inside = np.all([(c >= -0.5) & (c < shape[2 - a] - 0.5) for a, c in enumerate(coordinates)], axis=0)
ci, cj, ck = coordinates
linear = ndimage.map_coordinates(x, [ck, cj, ci], order=1, mode="nearest", prefilter=False)
write(np.where(inside, linear, 0.0), img, "elastic_image")
near = [np.clip(np.floor(c + 0.5).astype(np.int64), 0, shape[2 - a] - 1) for a, c in enumerate(coordinates)]
write(np.where(inside, l[near[2], near[1], near[0]], 0).astype(np.uint8), img, "elastic_label")
json.dump(draws, open(f"{out}/draws.json", "w"))
"#;

/// The cropped image, label and the folder of references (computed once per test binary).
fn references() -> Option<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let image = file("pyradiomics/lung1_image.nrrd")?;
    let label = file("pyradiomics/lung1_label.nrrd")?;
    let dir = DIR.get_or_init(|| {
        let dir = scratch_dir("tools-augment");
        python(REFERENCES, &[image.as_os_str(), label.as_os_str(), dir.as_os_str()]);
        dir
    });
    Some(dir.as_path())
}

fn read(path: &Path) -> Image {
    medas_io::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn draws(refs: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(refs.join("draws.json")).unwrap()).unwrap()
}

fn run(id: &str, image: &Image, label: Option<&Image>, given: Value) -> Result<Outputs, ToolError> {
    support::run_with(id, image, label.map(|label| ("label", label)), given)
}

use support::output_image;

/// The drawn value of `parameter` in the tool's parameters table.
fn drawn(outputs: &Outputs, parameter: &str) -> f64 {
    let Some(Data::Table(table)) = outputs.get("parameters") else { panic!("no parameters table") };
    let Some(medas_tools::Column::Text(names)) = table.column("parameter") else { panic!("no parameter column") };
    let row = names.iter().position(|name| name == parameter).unwrap_or_else(|| panic!("no row {parameter}"));
    table.numbers("value").unwrap()[row]
}

/// Exact equality of voxels, type and grid (geometry to 1e-12).
fn assert_identical(ours: &Image, theirs: &Image, what: &str) {
    assert_eq!(ours.size(), theirs.size(), "{what}: size");
    assert_eq!(ours.scalar_type(), theirs.scalar_type(), "{what}: voxel type");
    assert!(ours.geometry().approx_eq(theirs.geometry(), 1e-12), "{what}: {:?} vs {:?}", ours.geometry(), theirs.geometry());
    assert_eq!(image_voxels(ours.voxels()), image_voxels(theirs.voxels()), "{what}: voxels");
}

#[test]
fn flips_match_numpy_with_the_same_draws_for_image_and_label() {
    let Some(refs) = references() else { return };
    let (image, label) = (read(&refs.join("image.nrrd")), read(&refs.join("label.nrrd")));
    let expected = draws(refs);
    for seed in 0..6 {
        let outputs = run("augment.flip", &image, Some(&label), json!({"seed": seed})).unwrap();
        let flips: Vec<f64> = ["flip_i", "flip_j", "flip_k"].iter().map(|p| drawn(&outputs, p)).collect();
        let want: Vec<f64> = expected[format!("flip_{seed}")].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        eprintln!("flip seed {seed}: {flips:?}");
        assert_eq!(flips, want, "seed {seed}: draws");
        for port in ["image", "label"] {
            assert_identical(&output_image(&outputs, port), &read(&refs.join(format!("flip_{seed}_{port}.nrrd"))), &format!("flip {seed} {port}"));
        }
        assert_eq!(output_image(&outputs, "image").geometry(), image.geometry(), "geometry kept exactly");
    }
}

#[test]
fn rot90_matches_numpy_in_every_plane_with_spacings_exchanged() {
    let Some(refs) = references() else { return };
    let (image, label) = (read(&refs.join("image.nrrd")), read(&refs.join("label.nrrd")));
    let expected = draws(refs);
    for plane in ["ij", "ik", "jk"] {
        for seed in 0..8 {
            let outputs = run("augment.rot90", &image, Some(&label), json!({"seed": seed, "plane": plane})).unwrap();
            let turns = drawn(&outputs, "turns");
            eprintln!("rot90 {plane} seed {seed}: {turns} turns");
            assert_eq!(turns, expected[format!("rot90_{plane}_{seed}")].as_f64().unwrap(), "{plane} {seed}: draw");
            for port in ["image", "label"] {
                let reference = read(&refs.join(format!("rot90_{plane}_{seed}_{port}.nrrd")));
                assert_identical(&output_image(&outputs, port), &reference, &format!("rot90 {plane} {seed} {port}"));
            }
        }
    }
}

/// Voxel count and centroid (in index space) of label value `value`.
fn label_count_and_centroid(label: &Image, value: f64) -> (usize, [f64; 3]) {
    let voxels = image_voxels(label.voxels());
    let (mut count, mut sum) = (0usize, [0.0; 3]);
    for (index, v) in voxels.indexed_iter() {
        if *v == value {
            count += 1;
            (0..3).for_each(|a| sum[a] += index[a] as f64);
        }
    }
    (count, sum.map(|s| s / count.max(1) as f64))
}

#[test]
fn labels_keep_their_values_and_move_with_the_image() {
    let Some(refs) = references() else { return };
    let (image, label) = (read(&refs.join("image.nrrd")), read(&refs.join("label.nrrd")));
    let size = image.size().to_vec();
    let (count, centroid) = label_count_and_centroid(&label, 1.0);
    // Seed 5 flips axes i and k; the tumour's centroid must land at its mirror image there.
    let outputs = run("augment.flip", &image, Some(&label), json!({"seed": 5})).unwrap();
    let moved = output_image(&outputs, "label");
    let (moved_count, moved_centroid) = label_count_and_centroid(&moved, 1.0);
    assert_eq!(moved_count, count);
    for (a, axis) in ["flip_i", "flip_j", "flip_k"].iter().enumerate() {
        let want = if drawn(&outputs, axis) == 1.0 { (size[a] - 1) as f64 - centroid[a] } else { centroid[a] };
        assert!((moved_centroid[a] - want).abs() < 1e-9, "axis {a}: centroid {} vs {want}", moved_centroid[a]);
    }
    let values = |image: &Image| {
        let mut v: Vec<i64> = image_voxels(image.voxels()).iter().map(|x| *x as i64).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    assert_eq!(values(&moved), values(&label), "label values kept");
    assert_eq!(values(&label), vec![0, 1, 2]);
    // No label given: an all-zero label on the output grid.
    let outputs = run("augment.rot90", &image, None, json!({"seed": 2, "plane": "jk"})).unwrap();
    let zeros = output_image(&outputs, "label");
    assert_eq!(zeros.size(), output_image(&outputs, "image").size());
    assert_eq!(values(&zeros), vec![0]);
}

/// max |ours - reference| relative to the reference's range, after checking the grid.
fn relative_difference(ours: &Image, reference: &Image, what: &str) -> f64 {
    assert_eq!(ours.size(), reference.size(), "{what}: size");
    assert_eq!(ours.scalar_type(), medas_image::ScalarType::F32, "{what}: float32");
    let stats = reference.voxels().stats();
    let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &image_voxels(reference.voxels()));
    let relative = max / (stats.max - stats.min);
    eprintln!("{what}: max |ours - numpy| {max:.3e} ({relative:.2e} of the range), mean {mean:.3e}");
    relative
}

/// float32 output vs a float64 numpy reference: 1e-6 of the range covers float32 rounding.
const FLOAT32_TOLERANCE: f64 = 1e-6;

#[test]
fn intensity_augmentations_match_numpy_with_the_same_draws() {
    let Some(refs) = references() else { return };
    let image = read(&refs.join("image.nrrd"));
    let expected = draws(refs);
    let cases = [
        ("augment.gamma", json!({"seed": 5}), "gamma", vec![("gamma", expected["gamma"].as_f64().unwrap())]),
        ("augment.gaussian_noise", json!({"seed": 2, "std_min": 10, "std_max": 30}), "noise", vec![("std", expected["noise"].as_f64().unwrap())]),
        (
            "augment.brightness_contrast",
            json!({"seed": 9}),
            "brightness_contrast",
            vec![("brightness", expected["brightness_contrast"][0].as_f64().unwrap()), ("contrast", expected["brightness_contrast"][1].as_f64().unwrap())],
        ),
    ];
    for (id, given, reference, parameters) in cases {
        let outputs = run(id, &image, None, given).unwrap();
        for (name, want) in parameters {
            assert_eq!(drawn(&outputs, name), want, "{id}: drawn {name}");
        }
        let ours = output_image(&outputs, "image");
        assert_eq!(ours.geometry(), image.geometry(), "{id}: geometry kept exactly");
        let relative = relative_difference(&ours, &read(&refs.join(format!("{reference}.nrrd"))), id);
        assert!(relative <= FLOAT32_TOLERANCE, "{id}: {relative}");
    }
}

#[test]
fn blur_matches_scipy_gaussian_filter_with_the_drawn_sigma_in_mm() {
    let Some(refs) = references() else { return };
    let image = read(&refs.join("image.nrrd"));
    let outputs = run("augment.gaussian_blur", &image, None, json!({"seed": 4})).unwrap();
    assert_eq!(drawn(&outputs, "sigma"), draws(refs)["blur"].as_f64().unwrap(), "drawn sigma");
    // Weights are float32 (sums of ~20 terms): 1e-5 of the range.
    let relative = relative_difference(&output_image(&outputs, "image"), &read(&refs.join("blur.nrrd")), "gaussian blur");
    assert!(relative <= 1e-5, "{relative}");
}

#[test]
fn random_crop_matches_simpleitk_region_of_interest_for_image_and_label() {
    let Some(refs) = references() else { return };
    let (image, label) = (read(&refs.join("image.nrrd")), read(&refs.join("label.nrrd")));
    let outputs = run("augment.random_crop", &image, Some(&label), json!({"seed": 6, "size": [40, 30, 8]})).unwrap();
    let offsets: Vec<f64> = ["offset_i", "offset_j", "offset_k"].iter().map(|p| drawn(&outputs, p)).collect();
    let want: Vec<f64> = draws(refs)["crop"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    eprintln!("crop seed 6: offsets {offsets:?}");
    assert_eq!(offsets, want, "drawn offsets");
    for port in ["image", "label"] {
        assert_identical(&output_image(&outputs, port), &read(&refs.join(format!("crop_{port}.nrrd"))), &format!("crop {port}"));
    }
    let error = expect_error(run("augment.random_crop", &image, None, json!({"size": [97, 10, 10]})), "crop too large").to_string();
    assert_eq!(error, "augment.random_crop: parameter \"size\" must not exceed the image size [96, 72, 16] on any axis, got [97, 10, 10]");
}

#[test]
fn bias_field_matches_numpy_polynomial_with_the_same_coefficients() {
    let Some(refs) = references() else { return };
    let image = read(&refs.join("image.nrrd"));
    let outputs = run("augment.bias_field", &image, None, json!({"seed": 3})).unwrap();
    let Some(Data::Table(table)) = outputs.get("parameters") else { panic!("no table") };
    let want: Vec<f64> = draws(refs)["bias_field"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert_eq!(table.numbers("coefficient").unwrap(), want.as_slice(), "coefficients");
    let relative = relative_difference(&output_image(&outputs, "image"), &read(&refs.join("bias_field.nrrd")), "bias field");
    assert!(relative <= FLOAT32_TOLERANCE, "{relative}");
}

#[test]
fn the_same_seed_replays_and_another_seed_draws_anew() {
    let Some(refs) = references() else { return };
    let image = read(&refs.join("image.nrrd"));
    for id in ["augment.gaussian_noise", "augment.gamma", "augment.brightness_contrast", "augment.bias_field", "augment.affine", "augment.gaussian_blur", "augment.elastic"] {
        let out = |seed: u64| image_voxels(output_image(&run(id, &image, None, json!({"seed": seed})).unwrap(), "image").voxels());
        assert_eq!(out(11), out(11), "{id}: same seed");
        assert_ne!(out(11), out(12), "{id}: another seed");
    }
    let turns = |seed: u64| drawn(&run("augment.rot90", &image, None, json!({"seed": seed})).unwrap(), "turns") as u8;
    assert!((0..8).map(turns).collect::<std::collections::BTreeSet<_>>().len() > 1, "rot90 draws vary with the seed");
}

#[test]
fn bad_parameters_and_inputs_are_refused_with_clear_messages() {
    let Some(refs) = references() else { return };
    let (image, label) = (read(&refs.join("image.nrrd")), read(&refs.join("label.nrrd")));
    let cases = [
        ("augment.gaussian_noise", json!({"std_min": -1}), "augment.gaussian_noise: parameter \"std_min\" must be a finite number of at least 0, got -1"),
        ("augment.gamma", json!({"gamma_min": 2, "gamma_max": 1}), "augment.gamma: parameter \"gamma_min\" must be at most gamma_max (1), got 2"),
        ("augment.flip", json!({"probability_j": 1.5}), "augment.flip: parameter \"probability_j\" must be a probability in [0, 1], got 1.5"),
        ("augment.rot90", json!({"probability": -0.1}), "augment.rot90: parameter \"probability\" must be a probability in [0, 1], got -0.1"),
        ("augment.bias_field", json!({"coefficient_max": -0.5}), "augment.bias_field: parameter \"coefficient_max\" must be a finite number of at least 0, got -0.5"),
        ("augment.gaussian_blur", json!({"sigma_max": -2}), "augment.gaussian_blur: parameter \"sigma_max\" must be a finite number of at least 0, got -2"),
        ("augment.elastic", json!({"alpha_min": 5, "alpha_max": 1}), "augment.elastic: parameter \"alpha_min\" must be at most alpha_max (1), got 5"),
        ("augment.affine", json!({"scale_min": 0}), "augment.affine: parameter \"scale_min\" must be a finite number greater than 0, got 0"),
        ("augment.affine", json!({"rotation_max": 200}), "augment.affine: parameter \"rotation_max\" must be between 0 and 180 degrees, got 200"),
    ];
    for (id, given, message) in cases {
        assert_eq!(expect_error(run(id, &image, None, given), id).to_string(), message);
    }
    // A label turned by an odd number of quarter turns no longer lies on the image's grid.
    let odd = (0..16).map(|seed| run("augment.rot90", &label, None, json!({"seed": seed})).unwrap()).find(|o| drawn(o, "turns") % 2.0 == 1.0);
    let turned = output_image(&odd.expect("an odd draw among 16 seeds"), "image");
    let error = expect_error(run("augment.flip", &image, Some(&turned), json!({})), "mismatched grids").to_string();
    assert_eq!(error, "augment.flip: the label's grid (size [72, 96, 16]) is not the image's (size [96, 72, 16]) or its geometry differs");
}

/// SimpleITK's Resample of the cropped image and label through the drawn matrix `a`, centred
/// on the grid's centre (computed by SimpleITK itself), into `refs`.
const AFFINE_REFERENCE: &str = r#"
import sys
import SimpleITK as sitk
out, matrix = sys.argv[1], [float(v) for v in sys.argv[2:11]]
img, lab = sitk.ReadImage(f"{out}/image.nrrd"), sitk.ReadImage(f"{out}/label.nrrd")
transform = sitk.AffineTransform(3)
transform.SetMatrix(matrix)
transform.SetCenter(img.TransformContinuousIndexToPhysicalPoint([(n - 1) / 2 for n in img.GetSize()]))
sitk.WriteImage(sitk.Resample(img, img, transform, sitk.sitkLinear, 0.0, sitk.sitkFloat32), f"{out}/affine_image.nrrd")
sitk.WriteImage(sitk.Resample(lab, lab, transform, sitk.sitkNearestNeighbor, 0), f"{out}/affine_label.nrrd")
"#;

/// The fraction of voxels where |ours - theirs| exceeds `tolerance`, and the mean difference.
fn differing(ours: &Image, theirs: &Image, tolerance: f64) -> (f64, f64) {
    let (a, b) = (image_voxels(ours.voxels()), image_voxels(theirs.voxels()));
    assert_eq!(a.shape(), b.shape());
    let over = a.iter().zip(b.iter()).filter(|(x, y)| (*x - *y).abs() > tolerance).count();
    (over as f64 / a.len() as f64, max_mean_difference(&a, &b).1)
}

/// Rotation, scale and shear against SimpleITK's Resample with the same matrix and centre.
/// Both sample the same points; only points within rounding of a voxel border or of a
/// nearest-neighbour half-way point may decide differently, so at most 0.1 % of the voxels may
/// differ (image: by more than 1e-4 of the range), and the mean image difference stays below
/// 1e-3 of the range.
#[test]
fn affine_matches_simpleitk_resample_with_the_drawn_matrix() {
    let Some(refs) = references() else { return };
    let (image, label) = (read(&refs.join("image.nrrd")), read(&refs.join("label.nrrd")));
    let given = json!({"seed": 7, "rotation_max": 20, "scale_min": 0.9, "scale_max": 1.1, "shear_max": 0.1});
    let outputs = run("augment.affine", &image, Some(&label), given).unwrap();
    let matrix: Vec<String> = (0..9).map(|n| drawn(&outputs, &format!("matrix_{}{}", n / 3, n % 3)).to_string()).collect();
    eprintln!("affine seed 7: matrix {matrix:?}, scale {}", drawn(&outputs, "scale"));
    let mut args = vec![refs.as_os_str().to_owned()];
    args.extend(matrix.iter().map(std::ffi::OsString::from));
    python(AFFINE_REFERENCE, &args);
    let stats = image.voxels().stats();
    let range = stats.max - stats.min;
    let ours = output_image(&outputs, "image");
    assert_eq!(ours.geometry(), image.geometry(), "the input's grid");
    let (fraction, mean) = differing(&ours, &read(&refs.join("affine_image.nrrd")), 1e-4 * range);
    eprintln!("affine image: {:.4} % of voxels differ by more than 1e-4 of the range; mean |difference| {mean:.3e}", 100.0 * fraction);
    assert!(fraction <= 1e-3 && mean <= 1e-3 * range, "image: {fraction}, {mean}");
    assert!(fraction <= 1e-4, "reached on this case: no voxel differs; {fraction}");
    let ours = output_image(&outputs, "label");
    assert_eq!(ours.scalar_type(), label.scalar_type(), "label type kept");
    let (fraction, _) = differing(&ours, &read(&refs.join("affine_label.nrrd")), 0.0);
    eprintln!("affine label: {:.4} % of voxels differ from SimpleITK's nearest neighbour", 100.0 * fraction);
    assert!(fraction <= 1e-3, "label: {fraction}");
}

/// Elastic deformation against numpy/scipy: the same noise (SplitMix64), smoothed by
/// scipy.ndimage.gaussian_filter, sampled by map_coordinates (order 1, edge repeated) and by
/// rounding for the label. Our field is float32, so a few sample points may fall on the other
/// side of a border or half-way point: at most 0.1 % of the voxels may differ (image: by more
/// than 1e-3 of the range), and the mean image difference stays below 1e-4 of the range.
#[test]
fn elastic_matches_scipy_with_the_same_noise_field() {
    let Some(refs) = references() else { return };
    let (image, label) = (read(&refs.join("image.nrrd")), read(&refs.join("label.nrrd")));
    let given = json!({"seed": 8, "alpha_min": 300, "alpha_max": 600, "sigma_min": 8, "sigma_max": 12});
    let outputs = run("augment.elastic", &image, Some(&label), given).unwrap();
    let want = draws(refs)["elastic"].clone();
    assert_eq!(drawn(&outputs, "alpha"), want[0].as_f64().unwrap(), "alpha");
    assert_eq!(drawn(&outputs, "sigma"), want[1].as_f64().unwrap(), "sigma");
    let stats = image.voxels().stats();
    let range = stats.max - stats.min;
    let ours = output_image(&outputs, "image");
    assert_eq!(ours.geometry(), image.geometry(), "the input's grid");
    let (fraction, mean) = differing(&ours, &read(&refs.join("elastic_image.nrrd")), 1e-3 * range);
    eprintln!("elastic image: {:.4} % of voxels differ by more than 1e-3 of the range; mean |difference| {mean:.3e}", 100.0 * fraction);
    assert!(fraction <= 1e-3 && mean <= 1e-4 * range, "image: {fraction}, {mean}");
    let moved = output_image(&outputs, "label");
    let (fraction, _) = differing(&moved, &read(&refs.join("elastic_label.nrrd")), 0.0);
    eprintln!("elastic label: {:.4} % of voxels differ from numpy's nearest neighbour", 100.0 * fraction);
    assert!(fraction <= 1e-3, "label: {fraction}");
    let unchanged = differing(&ours, &image.cast(medas_image::ScalarType::F32), 1e-3 * range).0;
    assert!(unchanged > 0.1, "the deformation moves the content: only {unchanged} of the voxels changed");
}

/// Every tool on a small 2-D image with a label: no panic, the label's values kept, the image
/// on the expected grid (the z-only draws of the 2-D affine included).
#[test]
fn two_dimensional_images_are_augmented_too() {
    let values: Vec<f32> = (0..60).map(|n| (n * 7 % 23) as f32).collect();
    let image = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[10, 6], values).unwrap()).unwrap();
    let labels: Vec<u8> = (0..60).map(|n| u8::from(n % 10 > 4) + u8::from(n > 40)).collect();
    let label = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[10, 6], labels).unwrap()).unwrap();
    let geometric = [
        ("augment.flip", json!({"seed": 3})),
        ("augment.rot90", json!({"seed": 0})),
        ("augment.affine", json!({"seed": 1, "shear_max": 0.2})),
        ("augment.random_crop", json!({"seed": 2, "size": [4, 3]})),
        ("augment.elastic", json!({"seed": 5, "alpha_min": 10, "alpha_max": 20, "sigma_min": 1, "sigma_max": 2})),
    ];
    for (id, given) in geometric {
        let outputs = run(id, &image, Some(&label), given).unwrap();
        let (out, moved) = (output_image(&outputs, "image"), output_image(&outputs, "label"));
        assert_eq!(out.size(), moved.size(), "{id}: image and label on one grid");
        assert!(image_voxels(moved.voxels()).iter().all(|v| [0.0, 1.0, 2.0].contains(v)), "{id}: label values");
    }
    let outputs = run("augment.affine", &image, None, json!({"seed": 1})).unwrap();
    let rows = ["rotation_z", "scale", "shear_xy", "matrix_00", "matrix_11"];
    rows.iter().for_each(|row| _ = drawn(&outputs, row));
    for id in ["augment.gaussian_noise", "augment.gamma", "augment.brightness_contrast", "augment.bias_field", "augment.gaussian_blur"] {
        let out = output_image(&run(id, &image, None, json!({"seed": 4})).unwrap(), "image");
        assert_eq!(out.size(), image.size(), "{id}");
    }
}
