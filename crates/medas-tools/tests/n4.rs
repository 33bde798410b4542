//! N4 bias field correction on the MNI ICBM152 2009a T1 template multiplied by a known smooth
//! bias field, against the truth and beside SimpleITK's N4BiasFieldCorrectionImageFilter run on
//! the same input with the same shrink factor and iterations. One Python script (reference venv)
//! builds the biased image, the truth and the brain mask, and runs SimpleITK once per test run.

mod support;

use medas_image::{Image, ScalarType};
use medas_testkit::{expect_error, file, image_voxels, python, scratch_dir};
use medas_tools::{CancelToken, Context, Data, Inputs, Outputs, Params, Registry, ToolError, run_resolved};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// Shrink factor and iterations of both runs (modest, so that the test stays short).
const SHRINK: i64 = 4;
const ITERATIONS: [i64; 4] = [50, 50, 50, 50];

const REFERENCES: &str = r#"
import json, sys, time
import numpy as np
import SimpleITK as sitk

t1_path, gm_path, wm_path, out, shrink, iterations = sys.argv[1:7]
shrink, iterations = int(shrink), [int(n) for n in iterations.split(",")]
t1 = sitk.Cast(sitk.ReadImage(t1_path), sitk.sitkFloat32)
array = sitk.GetArrayFromImage(t1)  # numpy axes k, j, i
gm, wm = (sitk.GetArrayFromImage(sitk.ReadImage(p)) for p in (gm_path, wm_path))
# Brain mask: nilearn's GM + WM probability maps (same grid as the template) summed > 0.5.
mask = ((gm + wm) > 0.5).astype(np.uint8)
# The known bias: exp of a low-order polynomial of the normalised voxel position (-1..1 along
# each axis) plus one wide Gaussian bump, mean log 0 in the brain: about 0.67 to 1.37 there,
# the range of a strong 3 T receive field.
k, j, i = np.meshgrid(*[np.linspace(-1.0, 1.0, n) for n in array.shape], indexing="ij")
log_field = 2.0 * (0.12 * i - 0.10 * j + 0.08 * k + 0.06 * i * j - 0.05 * k * k
                   + 0.10 * np.exp(-((i - 0.3) ** 2 + (j + 0.2) ** 2 + k ** 2) / 0.5))
log_field -= log_field[mask > 0].mean()

def save(values, name):
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(t1)
    sitk.WriteImage(image, f"{out}/{name}")
    return image

biased = save((array * np.exp(log_field)).astype(np.float32), "biased.nrrd")
save(array, "template.nrrd")
save(np.exp(log_field).astype(np.float32), "truth_field.nrrd")
mask_image = save(mask, "mask.nrrd")

# SimpleITK's N4 as its documentation's example runs it: shrunk image and mask, then the log
# field evaluated on the full-resolution grid. Run on the biased and on the plain template.
def n4_log_field(image):
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations(iterations)
    corrector.Execute(sitk.Shrink(image, [shrink] * 3), sitk.Shrink(mask_image, [shrink] * 3))
    return sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(image))

start = time.perf_counter()
log_biased = n4_log_field(biased)
seconds = time.perf_counter() - start
log_template = n4_log_field(t1)
inside = mask > 0
r = lambda a: float(np.corrcoef(a[inside], log_field[inside])[0, 1])
json.dump({"raw": r(log_biased), "known": r(log_biased - log_template), "seconds": seconds}, open(f"{out}/simpleitk.json", "w"))
"#;

/// The folder with the biased template, truth, mask and SimpleITK's figures (once per run).
fn references() -> Option<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let template = |tissue: &str| file(&format!("nilearn/mni_icbm152_{tissue}_tal_nlin_sym_09a_converted.nii.gz"));
    let (t1, gm, wm) = (template("t1")?, template("gm")?, template("wm")?);
    let dir = DIR.get_or_init(|| {
        let dir = scratch_dir("tools-n4");
        let (shrink, iterations) = (SHRINK.to_string(), ITERATIONS.map(|n| n.to_string()).join(","));
        let args = [t1.as_os_str(), gm.as_os_str(), wm.as_os_str(), dir.as_os_str(), shrink.as_ref(), iterations.as_ref()];
        python(REFERENCES, &args);
        dir
    });
    Some(dir.as_path())
}

fn read(path: &Path) -> Image {
    medas_io::read(path).unwrap_or_else(|e| panic!("{e}"))
}

fn run_n4(image: &Image, mask: Option<&Image>, given: Value) -> Result<Outputs, ToolError> {
    support::run_with("preprocess.n4_bias_correction", image, mask.map(|mask| ("mask", mask)), given)
}

use support::output_image;

/// Pearson correlation of `a` and `b` over the voxels where `mask` is non-zero.
fn correlation(a: &[f64], b: &[f64], mask: &[f64]) -> f64 {
    let pairs: Vec<(f64, f64)> = a.iter().zip(b).zip(mask).filter(|(_, m)| **m != 0.0).map(|(p, _)| (*p.0, *p.1)).collect();
    let n = pairs.len() as f64;
    let (ma, mb) = (pairs.iter().map(|p| p.0).sum::<f64>() / n, pairs.iter().map(|p| p.1).sum::<f64>() / n);
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in pairs {
        ab += (x - ma) * (y - mb);
        aa += (x - ma) * (x - ma);
        bb += (y - mb) * (y - mb);
    }
    ab / (aa * bb).sqrt()
}

/// The voxel values in Fortran order (axis 0 fastest), as the tools store them.
fn values(image: &Image) -> Vec<f64> {
    image_voxels(image.voxels()).reversed_axes().iter().copied().collect()
}

/// The log of the bias field tool N4 finds in `image` (within `mask`), in Fortran order.
fn log_field(image: &Image, mask: &Image) -> (Outputs, Vec<f64>) {
    let outputs = run_n4(image, Some(mask), json!({"shrink_factor": SHRINK, "iterations": ITERATIONS})).unwrap();
    let field = values(&output_image(&outputs, "bias_field")).iter().map(|f| f.ln()).collect();
    (outputs, field)
}

/// The issue's acceptance: the recovered field correlates >= 0.95 with the truth inside the
/// brain mask. N4's field is defined up to a constant factor, so log fields are correlated
/// (Pearson's r ignores the constant). The known field spans about 0.67 to 1.37 in the brain.
/// The raw field (N4 on the biased template) is held to 0.95 and to SimpleITK's raw r on the
/// same input less 0.02. The template is not flat itself (N4 finds a field of its own in it, r
/// about 0.2 with the truth), so the known part alone, N4's field on the biased template over
/// its field on the template, is held to 0.95 as well.
#[test]
fn recovers_a_known_bias_field_on_the_mni_template() {
    let Some(refs) = references() else { return };
    let [biased, template, truth, mask] = ["biased", "template", "truth_field", "mask"].map(|name| read(&refs.join(format!("{name}.nrrd"))));
    let simpleitk: Value = serde_json::from_str(&std::fs::read_to_string(refs.join("simpleitk.json")).unwrap()).unwrap();
    let start = std::time::Instant::now();
    let (outputs, log_biased) = log_field(&biased, &mask);
    let seconds = start.elapsed().as_secs_f64();
    let (corrected, field) = (output_image(&outputs, "image"), output_image(&outputs, "bias_field"));
    for image in [&corrected, &field] {
        assert_eq!(image.scalar_type(), ScalarType::F32);
        assert_eq!(image.size(), biased.size());
        assert_eq!(image.geometry(), biased.geometry(), "geometry kept exactly");
    }
    // corrected = input / field, in float32.
    for ((c, i), f) in values(&corrected).iter().zip(&values(&biased)).zip(&values(&field)) {
        assert!((c - i / f).abs() <= 1e-6 * (i / f).abs().max(1.0), "{c} vs {i} / {f}");
    }
    let (_, log_template) = log_field(&template, &mask);
    let log_truth: Vec<f64> = values(&truth).iter().map(|t| t.ln()).collect();
    let inside = values(&mask);
    let known: Vec<f64> = log_biased.iter().zip(&log_template).map(|(b, t)| b - t).collect();
    let (ours_known, ours_raw) = (correlation(&known, &log_truth, &inside), correlation(&log_biased, &log_truth, &inside));
    let figure = |key: &str| simpleitk[key].as_f64().unwrap();
    eprintln!(
        "N4 on the MNI template times a known field (shrink {SHRINK}, iterations {ITERATIONS:?}), r of log fields with the \
         truth in the brain mask: known part (biased / template) MEDAS {ours_known:.4}, SimpleITK {:.4}; raw field MEDAS \
         {ours_raw:.4}, SimpleITK {:.4}; one run MEDAS {seconds:.2} s, SimpleITK {:.2} s",
        figure("known"),
        figure("raw"),
        figure("seconds")
    );
    assert!(ours_raw >= 0.95, "raw field: r {ours_raw} below 0.95");
    assert!(ours_known >= 0.95, "known part: r {ours_known} below 0.95");
    assert!(ours_raw >= figure("raw") - 0.02, "raw field: r {ours_raw} vs SimpleITK {}", figure("raw"));
}

fn small_image(size: &[usize]) -> Image {
    let n = size.iter().product();
    let values: Vec<f32> = (0..n).map(|v| 1.0 + (v % 7) as f32).collect();
    Image::from_voxels(medas_image::Voxels::from_fortran_vec(size, values).unwrap()).unwrap()
}

#[test]
fn bad_parameters_and_masks_are_refused_with_exact_messages() {
    let image = small_image(&[16, 16, 8]);
    let id = "preprocess.n4_bias_correction";
    let cases = [
        (json!({"shrink_factor": 0}), "parameter \"shrink_factor\" must be at least 1, got 0"),
        (json!({"shrink_factor": 5}), "parameter \"shrink_factor\" 5 leaves fewer than 2 voxels along axis 2 (size 8)"),
        (json!({"control_points": 3}), "parameter \"control_points\" must be at least spline order + 1 = 4 per axis, got 3"),
        (json!({"control_points": [4, 5]}), "parameter \"control_points\" needs 1 or 3 values for a 3-D image, got 2"),
        (json!({"iterations": []}), "parameter \"iterations\" holds 0 items, expected 1 to 10"),
        (json!({"iterations": [10, 0]}), "parameter \"iterations\" item 1 0 is outside the allowed range 1 to inf"),
        (json!({"bias_field_fwhm": 0}), "parameter \"bias_field_fwhm\" 0 is outside the allowed range 0.000001 to 10"),
    ];
    for (given, expected) in cases {
        let error = expect_error(run_n4(&image, None, given.clone()), &format!("{given}")).to_string();
        assert_eq!(error, format!("{id}: {expected}"), "{given}");
    }
    let mask = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[16, 16, 7], vec![1u8; 16 * 16 * 7]).unwrap()).unwrap();
    let error = expect_error(run_n4(&image, Some(&mask), json!({})), "mask grid").to_string();
    let expected = "the mask's grid (size [16, 16, 7], spacing [1.0, 1.0, 1.0], origin [0.0, 0.0, 0.0]) differs from the \
                    image's (size [16, 16, 8], spacing [1.0, 1.0, 1.0], origin [0.0, 0.0, 0.0]); resample it onto the image first";
    assert_eq!(error, format!("{id}: {expected}"));
    let empty = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[16, 16, 8], vec![0u8; 16 * 16 * 8]).unwrap()).unwrap();
    let error = expect_error(run_n4(&image, Some(&empty), json!({})), "empty mask").to_string();
    assert_eq!(error, format!("{id}: no voxel of the (shrunk) mask has a positive value to fit"));
}

/// A 2-D image with a smooth multiplicative ramp over two tissue-like classes: the field comes
/// back as a ramp (in log, correlated with the truth), and an unbiased image gets a nearly flat field.
#[test]
fn a_two_dimensional_ramp_is_recovered() {
    let (n0, n1) = (96, 80);
    let truth: Vec<f64> = (0..n0 * n1).map(|v| 0.15 * ((v % n0) as f64 / (n0 - 1) as f64 - 0.5) * 2.0).collect();
    let classes: Vec<f64> = (0..n0 * n1).map(|v| if ((v % n0) / 8 + (v / n0) / 8) % 2 == 0 { 40.0 } else { 100.0 }).collect();
    let biased: Vec<f32> = classes.iter().zip(&truth).map(|(c, t)| (c * t.exp()) as f32).collect();
    let image = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[n0, n1], biased).unwrap()).unwrap();
    let outputs = run_n4(&image, None, json!({"shrink_factor": 2, "iterations": [50, 50, 50], "default_mask": "all"})).unwrap();
    let field = values(&output_image(&outputs, "bias_field"));
    let log_field: Vec<f64> = field.iter().map(|f| f.ln()).collect();
    let r = correlation(&log_field, &truth, &vec![1.0; n0 * n1]);
    eprintln!("2-D ramp: correlation of log fields {r:.4}");
    assert!(r >= 0.95, "2-D ramp: correlation {r}");
}

/// Progress rises to 1, each level logs its iterations and convergence, and a cancelled run
/// stops with `Cancelled`.
#[test]
fn progress_and_convergence_are_reported_and_cancel_stops_the_fit() {
    let image = small_image(&[24, 20, 12]);
    let tool = Registry::global().get("preprocess.n4_bias_correction").unwrap();
    let given = json!({"shrink_factor": 2, "iterations": [5, 5, 5], "default_mask": "all"});
    let params = Params::resolve(tool.spec(), given.as_object().unwrap()).unwrap();
    let (progress, lines) = (Mutex::new(Vec::new()), Mutex::new(Vec::new()));
    let (on_progress, on_log) = (|p: f64| progress.lock().unwrap().push(p), |l: &str| lines.lock().unwrap().push(l.to_string()));
    let cancel = CancelToken::new();
    let context = Context::new(&on_progress, &on_log, &cancel, None);
    let inputs = || Inputs::from([("image".to_string(), Data::Image(image.clone()))]);
    run_resolved(tool.as_ref(), inputs(), &params, &context).unwrap();
    let progress = progress.lock().unwrap().clone();
    assert!(progress.windows(2).all(|w| w[0] <= w[1]) && progress.last() == Some(&1.0), "{progress:?}");
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), 3, "{lines:?}");
    for (level, line) in lines.iter().enumerate() {
        assert!(line.starts_with(&format!("N4 level {}/3: ", level + 1)) && line.contains(" convergence "), "{line}");
    }
    cancel.cancel();
    let error = run_resolved(tool.as_ref(), inputs(), &params, &context).unwrap_err();
    assert!(matches!(error, ToolError::Cancelled { .. }), "{error}");
}
