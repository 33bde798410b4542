//! Body and lung masks on a real chest CT (pyradiomics lung1, 512x512x48, 0.59 x 0.59 x 5 mm)
//! against the same recipes written with scipy.ndimage on SimpleITK's array: the masks must be
//! identical voxel for voxel, and the volumes plausible for an adult chest.

use medas_image::{Image, ScalarType};
use medas_testkit::{expect_error, file, image_voxels, python, scratch_dir};
use medas_tools::{Data, Inputs, Outputs, Registry, ToolError, run_tool};
use ndarray::ArrayD;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;

/// The recipes with scipy, written as a reader of the tool descriptions would write them.
/// Results are saved in index order [i, j, k] as .npy.
const SCIPY: &str = r#"
import sys, numpy as np, SimpleITK as sitk
from scipy import ndimage as nd
ct_path, out = sys.argv[1], sys.argv[2]
image = sitk.ReadImage(ct_path)
ct = sitk.GetArrayFromImage(image)  # k, j, i
voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0

def largest(mask, count=1, min_voxels=0):
    labels, n = nd.label(mask)
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes, kind="stable")[:count]
    keep = [l + 1 for l in order if sizes[l] >= min_voxels]
    return np.isin(labels, keep)

def fill_slices(mask):
    return np.stack([nd.binary_fill_holes(s) for s in mask])

def body(t):
    return fill_slices(largest(ct > t))

def save(name, mask):
    np.save(f"{out}/{name}.npy", np.ascontiguousarray(mask.astype(np.uint8).transpose(2, 1, 0)))

b = body(-500.0)
save("body", b)
air = b & (ct < -320.0)
save("lungs", fill_slices(largest(air, 2, int(np.ceil(50.0 / voxel_ml)))))
save("lungs_1", fill_slices(largest(b & (ct < -400.0), 1, 0)))
save("body_minus_200", body(-200.0))
"#;

fn run(id: &str, image: &Image, given: Value) -> Result<Outputs, ToolError> {
    let tool = Registry::global().get(id)?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    run_tool(tool.as_ref(), Inputs::from([("image".to_string(), Data::Image(image.clone()))]), &given)
}

fn mask_and_volume(mut outputs: Outputs) -> (Image, f64) {
    let Some(Data::Image(mask)) = outputs.remove("mask") else { panic!("no mask") };
    let Some(Data::Scalar(volume)) = outputs.remove("volume_ml") else { panic!("no volume") };
    (mask, volume)
}

struct Fixture {
    ct: Image,
    dir: PathBuf,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let path = file("pyradiomics/lung1_image.nrrd")?;
            let dir = scratch_dir("anatomy");
            python(SCIPY, &[path.to_str().unwrap(), dir.to_str().unwrap()]);
            Some(Fixture { ct: medas_io::read(&path).expect("read lung1"), dir })
        })
        .as_ref()
}

fn scipy(fixture: &Fixture, name: &str) -> ArrayD<f64> {
    let image = medas_io::read(fixture.dir.join(format!("{name}.npy"))).unwrap_or_else(|e| panic!("{name}: {e}"));
    image_voxels(image.voxels())
}

/// Asserts the mask equals scipy's and keeps the CT's grid; returns its voxel count.
fn assert_same_as_scipy(ours: &Image, ct: &Image, theirs: &ArrayD<f64>, what: &str) -> f64 {
    assert_eq!(ours.scalar_type(), ScalarType::U8, "{what}");
    assert_eq!(ours.geometry(), ct.geometry(), "{what}: geometry kept");
    let ours = image_voxels(ours.voxels());
    assert_eq!(ours.shape(), theirs.shape(), "{what}: shape");
    let differing = ours.iter().zip(theirs.iter()).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "{what}: {differing} voxels differ from scipy");
    ours.sum()
}

fn voxel_ml(image: &Image) -> f64 {
    image.geometry().spacing().iter().product::<f64>() / 1000.0
}

#[test]
fn body_mask_matches_scipy_recipe() {
    let Some(fixture) = fixture() else { return };
    let (body, volume) = mask_and_volume(run("preprocess.body_mask", &fixture.ct, json!({})).unwrap());
    let voxels = assert_same_as_scipy(&body, &fixture.ct, &scipy(fixture, "body"), "body -500 HU");
    assert!((volume - voxels * voxel_ml(&fixture.ct)).abs() < 1e-6, "volume {volume} ml");
    // 48 slices of 5 mm: a 24 cm slab of an adult chest holds some 5-30 litres of body.
    eprintln!("lung1 body: {volume:.0} ml");
    assert!((5_000.0..30_000.0).contains(&volume), "body volume {volume} ml");
    let (tighter, _) = mask_and_volume(run("preprocess.body_mask", &fixture.ct, json!({"body_threshold": "-200"})).unwrap());
    assert_same_as_scipy(&tighter, &fixture.ct, &scipy(fixture, "body_minus_200"), "body -200 HU");
}

#[test]
fn lung_mask_matches_scipy_recipe_and_holds_two_plausible_lungs() {
    let Some(fixture) = fixture() else { return };
    let (lungs, volume) = mask_and_volume(run("preprocess.lung_mask", &fixture.ct, json!({})).unwrap());
    let voxels = assert_same_as_scipy(&lungs, &fixture.ct, &scipy(fixture, "lungs"), "lungs");
    assert!((volume - voxels * voxel_ml(&fixture.ct)).abs() < 1e-6);
    eprintln!("lung1 lungs: {volume:.0} ml");
    assert!((1_000.0..8_000.0).contains(&volume), "lung volume {volume} ml");
    // The lungs lie inside the body.
    let (body, _) = mask_and_volume(run("preprocess.body_mask", &fixture.ct, json!({})).unwrap());
    let outside = image_voxels(lungs.voxels()).iter().zip(image_voxels(body.voxels()).iter()).filter(|&(&l, &b)| l > b).count();
    assert_eq!(outside, 0, "lung voxels outside the body");
    let given = json!({"count": 1, "min_volume_ml": 0, "air_threshold": -400});
    let (one, _) = mask_and_volume(run("preprocess.lung_mask", &fixture.ct, given).unwrap());
    assert_same_as_scipy(&one, &fixture.ct, &scipy(fixture, "lungs_1"), "largest air region, -400 HU");
}

#[test]
fn anatomy_masks_refuse_what_they_cannot_use() {
    let Some(fixture) = fixture() else { return };
    let error = |id: &str, image: &Image, given: Value| expect_error(run(id, image, given), id).to_string();
    let e = error("preprocess.lung_mask", &fixture.ct, json!({"air_threshold": 900}));
    assert!(e.contains("parameter \"air_threshold\" must lie between -1100 HU and body_threshold + 1000 (500), got 900"), "{e}");
    let e = error("preprocess.lung_mask", &fixture.ct, json!({"min_volume_ml": 1e5}));
    assert!(e.contains("no air region inside the body is as large as min_volume_ml (100000 ml); the largest has"), "{e}");
    let e = error("preprocess.body_mask", &fixture.ct, json!({"body_threshold": 1e6}));
    assert!(e.contains("no voxel is above the body threshold 1000000"), "{e}");
    let e = error("preprocess.lung_mask", &fixture.ct, json!({"count": 0}));
    assert!(e.contains("\"count\" 0 is outside the allowed range 1 to 10"), "{e}");
    let slice = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[4, 4], vec![0i16; 16]).unwrap()).unwrap();
    let e = error("preprocess.body_mask", &slice, json!({}));
    assert!(e.contains("needs a 3-D image, this one is 2-D"), "{e}");
    let voxels = medas_image::Voxels::from_fortran_vec(&[2, 2, 2, 3], vec![0u8; 24]).unwrap();
    let rgb = Image::with_components(voxels, 3, medas_image::Geometry::identity(3)).unwrap();
    let e = error("preprocess.lung_mask", &rgb, json!({}));
    assert!(e.contains("this image has 3 components"), "{e}");
}
