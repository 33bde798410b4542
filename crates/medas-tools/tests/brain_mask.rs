//! preprocess.brain_mask on real data: a subject made from nilearn's MNI ICBM152 2009a T1
//! template (moved by a known affine transform: rotations of 14, -8 and 10 degrees, a 17 mm
//! shift, scales 1.08 / 0.94 / 1.06; resampled onto a 1.5 mm y-flipped grid; a smooth bias field
//! of about +-20% and 2% noise; scripts/bench_brain_mask.py makes it) is masked by our tool with
//! its defaults and by the same recipe in SimpleITK (ImageRegistrationMethod + Resample nearest).
//! Both masks are scored by Dice against the true mask (the template mask moved by the known
//! transform, nearest). The template mask is nilearn's load_mni152_brain_mask(resolution=1) rule.

mod support;

use medas_image::{Image, ScalarType};
use medas_testkit::{expect_error, file, python, scratch_dir};
use medas_tools::tools::brain_mask::template_brain_mask;
use medas_tools::{Data, Inputs};
use support::{read, run};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const TEMPLATE: &str = "nilearn/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz";

const REFERENCES: &str = r#"
import sys
nilearn, out, scripts = sys.argv[1:4]
sys.path.insert(0, scripts)
from bench_brain_mask import prepare
prepare(nilearn, out)
"#;

/// The scratch folder with the subject, the masks and SimpleITK's result (made once per binary).
fn references() -> Option<&'static Path> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let template = file(TEMPLATE)?;
    let dir = DIR.get_or_init(|| {
        let dir = scratch_dir("tools-brain-mask");
        let scripts = medas_testkit::repo_root().join("scripts");
        python(REFERENCES, &[template.parent().unwrap().as_os_str(), dir.as_os_str(), scripts.as_os_str()]);
        dir
    });
    Some(dir.as_path())
}



fn images(pairs: &[(&str, &Image)]) -> Inputs {
    pairs.iter().map(|(port, image)| (port.to_string(), Data::Image((*image).clone()))).collect()
}

fn flags(image: &Image) -> Vec<bool> {
    image.voxels().cast::<f64>().iter().map(|&v| v != 0.0).collect()
}

fn dice(a: &Image, b: &Image) -> f64 {
    let (a, b) = (flags(a), flags(b));
    let both = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
    2.0 * both as f64 / (a.iter().filter(|x| **x).count() + b.iter().filter(|x| **x).count()) as f64
}

#[test]
fn the_mask_of_a_moved_biased_noisy_template_matches_the_truth() {
    let Some(dir) = references() else { return };
    let subject = read(&dir.join("subject.nrrd"));
    // The template as a user gives it: nilearn's file itself, read by medas_io.
    let template = read(&file(TEMPLATE).unwrap());
    let template_mask = read(&dir.join("template_mask.nrrd"));
    let transform_path = dir.join("ours.tfm");
    let given = json!({"transform_path": transform_path.to_str().unwrap()});
    let start = std::time::Instant::now();
    let inputs = images(&[("image", &subject), ("template", &template), ("template_mask", &template_mask)]);
    let outputs = run("preprocess.brain_mask", inputs, given).unwrap();
    let seconds = start.elapsed().as_secs_f64();
    let Some(Data::Image(mask)) = outputs.get("mask") else { panic!("no mask output") };
    assert_eq!(mask.size(), subject.size());
    assert!(mask.geometry().approx_eq(subject.geometry(), 0.0), "the mask lies exactly on the subject's grid");
    assert_eq!(mask.scalar_type(), ScalarType::U8);
    assert!(mask.voxels().cast::<f64>().iter().all(|&v| v == 0.0 || v == 1.0), "0/1 values");
    assert!(matches!(outputs.get("transform"), Some(Data::File(path)) if *path == transform_path));
    let Some(Data::Image(registered)) = outputs.get("registered_image") else { panic!("no registered image") };
    assert!(registered.geometry().approx_eq(template.geometry(), 0.0), "the image moved onto the template's grid");
    let truth = read(&dir.join("truth_mask.nrrd"));
    let theirs = read(&dir.join("sitk_mask.nrrd"));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("sitk.json")).unwrap()).unwrap();
    let (ours, with_sitk) = (dice(mask, &truth), dice(mask, &theirs));
    eprintln!(
        "brain mask of {:?} voxels: Dice with the truth ours {ours:.4} (tolerance >= 0.95), SimpleITK's recipe {:.4}; \
         ours vs SimpleITK's {with_sitk:.4}; ours {seconds:.1} s (test build), SimpleITK {:.1} s",
        subject.size(),
        report["dice"].as_f64().unwrap(),
        report["seconds"].as_f64().unwrap()
    );
    assert!(ours >= 0.95, "Dice {ours} < 0.95");
}

#[test]
fn without_a_template_mask_the_mask_is_nilearns_threshold_rule() {
    let Some(dir) = references() else { return };
    let template = read(&file(TEMPLATE).unwrap());
    let ours = template_brain_mask(&template, 0.2).unwrap();
    let reference = read(&dir.join("template_mask.nrrd"));
    let differ = flags(&ours).iter().zip(flags(&reference)).filter(|(a, b)| **a != *b).count();
    eprintln!("template mask: {differ} voxels differ from nilearn's rule computed with numpy (tolerance 0)");
    assert_eq!(differ, 0);
    assert!(ours.geometry().approx_eq(template.geometry(), 0.0));
}

fn small(shape: &[usize], spacing: f64) -> Image {
    let values: Vec<f32> = (0..shape.iter().product::<usize>()).map(|v| (v % 7) as f32).collect();
    let image = Image::from_voxels(medas_image::Voxels::from_fortran_vec(shape, values).unwrap()).unwrap();
    let n = shape.len();
    let direction: Vec<f64> = (0..n * n).map(|k| if k % (n + 1) == 0 { 1.0 } else { 0.0 }).collect();
    let geometry = medas_image::Geometry::new(vec![spacing; n], vec![0.0; n], direction).unwrap();
    Image::new(image.voxels().clone(), geometry).unwrap()
}

#[test]
fn mismatched_inputs_and_bad_parameters_are_refused_clearly() {
    let (cube, coarse) = (small(&[8, 8, 8], 1.0), small(&[8, 8, 8], 2.0));
    let path = scratch_dir("tools-brain-mask-bad").join("t.tfm");
    let given = json!({"transform_path": path.to_str().unwrap()});
    let three = images(&[("image", &cube), ("template", &cube), ("template_mask", &coarse)]);
    let error = expect_error(run("preprocess.brain_mask", three, given.clone()), "mask grid").to_string();
    assert_eq!(
        error,
        "preprocess.brain_mask: input \"template_mask\" must lie on the template's grid (size [8, 8, 8], spacing [1.0, 1.0, 1.0], \
         origin [0.0, 0.0, 0.0]), got size [8, 8, 8], spacing [2.0, 2.0, 2.0], origin [0.0, 0.0, 0.0]"
    );
    let flat = small(&[8, 8], 1.0);
    let error = expect_error(run("preprocess.brain_mask", images(&[("image", &flat), ("template", &cube)]), given.clone()), "2-D").to_string();
    assert_eq!(error, "preprocess.brain_mask: input \"image\" must be a non-empty 3-D scalar image, got a 2-D image of size [8, 8]");
    let error = expect_error(run("preprocess.brain_mask", images(&[("image", &cube)]), given.clone()), "no template").to_string();
    assert_eq!(error, "preprocess.brain_mask: input \"template\" is not connected");
    let dark = small(&[8, 8, 8], 1.0).with_voxels(medas_image::Voxels::from_fortran_vec(&[8, 8, 8], vec![0.0f32; 512]).unwrap()).unwrap();
    let error = expect_error(run("preprocess.brain_mask", images(&[("image", &cube), ("template", &dark)]), given.clone()), "dark").to_string();
    assert_eq!(error, "preprocess.brain_mask: input \"template\" has no positive value: not a T1 template");
    let levels = json!({"shrink_factors": [4, 2, 1], "smoothing_sigmas": [2, 1], "transform_path": path.to_str().unwrap()});
    let error = expect_error(run("preprocess.brain_mask", images(&[("image", &cube), ("template", &cube)]), levels), "levels").to_string();
    assert_eq!(
        error,
        "preprocess.brain_mask: preprocess.register: parameter \"smoothing_sigmas\" holds 2 values but shrink_factors holds 3: one sigma per level"
    );
    let error = expect_error(run("preprocess.brain_mask", images(&[("image", &cube), ("template", &cube)]), json!({"dilation": -1})), "dilation");
    assert_eq!(error.to_string(), "preprocess.brain_mask: parameter \"dilation\" -1 is outside the allowed range 0 to 100");
}
