//! Annotation conversion on real data against scikit-image and numpy:
//! - polygons: the outlines of stardist's 2-D nuclei (mask2d.tif, 125 instances) traced with
//!   skimage.measure.find_contours, written as Aperio ImageScope XML in two layers, and filled
//!   back with skimage.draw.polygon(Y, X): our label image must equal skimage's exactly;
//! - spheres: findings in world mm on CT lung1 (the tumour's centroid and equivalent diameter
//!   from lung1_label by SimpleITK, one finding cut by the grid's edge, one outside, one of
//!   another series), painted with numpy from SimpleITK's index-to-point mapping;
//! - remapping vs skimage.segmentation.relabel_sequential and numpy, one-hot vs numpy.eye.

use medas_image::{Image, ScalarType};
use medas_testkit::{expect_error, file, image_voxels, python, scratch_dir};
use medas_tools::{Data, Inputs, Outputs, Registry, ToolError, run_tool};
use ndarray::ArrayD;
use serde_json::{Map, Value, json};
use std::path::PathBuf;
use std::sync::OnceLock;

const REFERENCES: &str = r#"
import sys, numpy as np, tifffile, SimpleITK as sitk
from skimage import measure, draw, segmentation
mask_path, ct_path, label_path, out = sys.argv[1:5]

def save(name, array_rc):  # (rows, cols[, ...]) -> index order [i = column, j = row]
    np.save(f"{out}/{name}.npy", np.ascontiguousarray(np.swapaxes(array_rc, 0, 1)))

# Polygons: the longest outline of every nucleus, at sub-pixel positions.
mask = tifffile.imread(mask_path)
h, w = mask.shape
polygons = []
for label in np.unique(mask)[1:]:
    padded = np.pad(mask == label, 1)
    contour = max(measure.find_contours(padded.astype(float), 0.5), key=len) - 1.0
    polygons.append(contour[:-1])  # find_contours closes the loop by repeating the first point
layers = [polygons[:60], polygons[60:]]
with open(f"{out}/nuclei.xml", "w") as f:
    f.write('<?xml version="1.0"?>\n<Annotations MicronsPerPixel="0.5">\n')
    region = 0
    for n, layer in enumerate(layers):
        f.write(f'<Annotation Id="{n + 1}"><Regions>\n')
        for contour in layer:
            region += 1
            vertices = "".join(f'<Vertex X="{float(c)!r}" Y="{float(r)!r}" Z="0"/>' for r, c in contour)
            f.write(f'<Region Id="{region}" Type="0"><Vertices>{vertices}</Vertices></Region>\n')
        f.write("</Regions></Annotation>\n")
    f.write("</Annotations>\n")
labels = np.zeros((h, w), np.int32); classes = np.zeros((h, w), np.uint16)
n = 0
for layer_number, layer in enumerate(layers, 1):
    for contour in layer:
        n += 1
        rr, cc = draw.polygon(contour[:, 0], contour[:, 1], shape=(h, w))
        labels[rr, cc] = n; classes[rr, cc] = layer_number
save("polygon_labels", labels); save("polygon_classes", classes)
agreement = [np.sum((labels == i + 1) & (mask == l)) / np.sum((labels == i + 1) | (mask == l))
             for i, l in enumerate(np.unique(mask)[1:])]
np.save(f"{out}/polygon_iou.npy", np.array(agreement))

# Remapping and one-hot on the nuclei labels.
save("sequential", segmentation.relabel_sequential(mask)[0].astype(np.int32))
table = {int(l): (i % 3) for i, l in enumerate(np.unique(mask)[1:40])}
save("remapped", np.vectorize(lambda v: table.get(int(v), 0))(mask).astype(np.int32))
with open(f"{out}/mapping.txt", "w") as f:
    f.write(", ".join(f"{a}:{b}" for a, b in table.items()))
small = segmentation.relabel_sequential(mask)[0][100:228, 100:196] % 5
save("one_hot_input", small.astype(np.uint8))
save("one_hot", np.eye(5, dtype=np.uint8)[small])

# Spheres on lung1.
ct = sitk.ReadImage(ct_path)
stats = sitk.LabelShapeStatisticsImageFilter(); stats.Execute(sitk.ReadImage(label_path))
tumour = stats.GetCentroid(1); diameter = 2 * stats.GetEquivalentSphericalRadius(1)
corner = ct.TransformIndexToPhysicalPoint((2, 3, 1))
findings = [("lung1", tumour, diameter), ("other", tumour, 80.0), ("lung1", corner, 30.0),
            ("lung1", (1e4, 0.0, 0.0), 10.0)]
with open(f"{out}/findings.csv", "w") as f:
    f.write("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
    for uid, (x, y, z), d in findings:
        f.write(f"{uid},{x!r},{y!r},{z!r},{d!r}\n")
size = ct.GetSize()
origin, spacing = np.array(ct.GetOrigin()), np.array(ct.GetSpacing())
direction = np.array(ct.GetDirection()).reshape(3, 3)
spheres = np.zeros(size, np.int32)   # index order i, j, k
centres = np.zeros(size, np.int32)
label = 0
for uid, centre, d in findings:
    if uid != "lung1":
        continue
    label += 1
    index = np.array(ct.TransformPhysicalPointToContinuousIndex(centre))
    reach = d / 2 / spacing
    lo = np.maximum(np.ceil(index - reach), 0).astype(int)
    hi = np.minimum(np.floor(index + reach), np.array(size) - 1).astype(int)
    if np.any(hi < lo):
        continue
    i, j, k = np.meshgrid(*[np.arange(a, b + 1) for a, b in zip(lo, hi)], indexing="ij")
    idx = np.stack([i, j, k], -1).astype(float)
    points = origin + (idx * spacing) @ direction.T
    inside = np.sqrt(((points - np.array(centre)) ** 2).sum(-1)) <= d / 2
    spheres[i[inside], j[inside], k[inside]] = label
    nearest = np.round(index).astype(int)
    if np.all(nearest >= 0) and np.all(nearest < np.array(size)):
        centres[tuple(nearest)] = label
np.save(f"{out}/spheres.npy", spheres); np.save(f"{out}/centres.npy", centres)
"#;

struct Fixture {
    dir: PathBuf,
    nuclei: Image,
    ct: Image,
}

fn fixture() -> Option<&'static Fixture> {
    static FIXTURE: OnceLock<Option<Fixture>> = OnceLock::new();
    FIXTURE
        .get_or_init(|| {
            let mask = file("stardist/mask2d.tif")?;
            let (ct, label) = (file("pyradiomics/lung1_image.nrrd")?, file("pyradiomics/lung1_label.nrrd")?);
            let dir = scratch_dir("annotations");
            let args = [mask.as_os_str(), ct.as_os_str(), label.as_os_str(), dir.as_os_str()];
            python(REFERENCES, &args);
            let read = |path: &std::path::Path| medas_io::read(path).unwrap_or_else(|e| panic!("{e}"));
            Some(Fixture { nuclei: read(&mask), ct: read(&ct), dir })
        })
        .as_ref()
}

fn reference(fixture: &Fixture, name: &str) -> ArrayD<f64> {
    let image = medas_io::read(fixture.dir.join(format!("{name}.npy"))).unwrap_or_else(|e| panic!("{name}: {e}"));
    image_voxels(image.voxels())
}

fn run(id: &str, inputs: Vec<(&str, &Image)>, given: Value) -> Result<Outputs, ToolError> {
    let tool = Registry::global().get(id)?;
    let given: Map<String, Value> = given.as_object().cloned().unwrap_or_default();
    let inputs: Inputs = inputs.into_iter().map(|(port, image)| (port.to_string(), Data::Image(image.clone()))).collect();
    run_tool(tool.as_ref(), inputs, &given)
}

fn image(outputs: &mut Outputs, port: &str) -> Image {
    match outputs.remove(port) {
        Some(Data::Image(image)) => image,
        other => panic!("output {port}: {other:?}"),
    }
}

fn scalar(outputs: &mut Outputs, port: &str) -> f64 {
    match outputs.remove(port) {
        Some(Data::Scalar(value)) => value,
        other => panic!("output {port}: {other:?}"),
    }
}

/// Asserts equality voxel for voxel, naming how many differ.
fn assert_identical(ours: &Image, theirs: &ArrayD<f64>, what: &str) {
    let ours = image_voxels(ours.voxels());
    assert_eq!(ours.shape(), theirs.shape(), "{what}: shape");
    let differing = ours.iter().zip(theirs.iter()).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "{what}: {differing} voxels differ");
}

#[test]
fn imagescope_polygons_fill_as_skimage_draw_polygon() {
    let Some(fixture) = fixture() else { return };
    let xml = fixture.dir.join("nuclei.xml");
    let mut out = run("annotation.polygons_to_labels", vec![("like", &fixture.nuclei)], json!({"path": xml})).unwrap();
    assert_eq!(scalar(&mut out, "count"), 125.0);
    let labels = image(&mut out, "labels");
    assert_eq!(labels.scalar_type(), ScalarType::I32);
    assert_eq!(labels.geometry(), fixture.nuclei.geometry());
    assert_identical(&labels, &reference(fixture, "polygon_labels"), "labels vs skimage.draw.polygon");
    assert_identical(&image(&mut out, "classes"), &reference(fixture, "polygon_classes"), "layers");
    // The outlines describe the nuclei they were traced from.
    let iou = reference(fixture, "polygon_iou");
    let worst = iou.iter().fold(1.0f64, |m, &v| m.min(v));
    eprintln!("polygons vs the original nuclei: worst IoU {worst:.3}");
    assert!(worst > 0.5, "worst IoU {worst}");
    // Without a `like` image: the size given, spacing from MicronsPerPixel (0.5 um = 0.0005 mm).
    let size = fixture.nuclei.size();
    let mut out = run("annotation.polygons_to_labels", vec![], json!({"path": xml, "width": size[0], "height": size[1]})).unwrap();
    let labels = image(&mut out, "labels");
    assert_eq!(labels.geometry().spacing(), &[0.0005, 0.0005]);
    assert_identical(&labels, &reference(fixture, "polygon_labels"), "labels on a given grid");
}

#[test]
fn world_findings_become_spheres_as_numpy_paints_them() {
    let Some(fixture) = fixture() else { return };
    let csv = fixture.dir.join("findings.csv");
    let mut out = run("annotation.points_to_spheres", vec![("like", &fixture.ct)], json!({"path": csv, "series_uid": "lung1"})).unwrap();
    assert_eq!(scalar(&mut out, "count"), 3.0, "the other series' row is left out");
    let spheres = image(&mut out, "labels");
    assert_eq!(spheres.geometry(), fixture.ct.geometry());
    let theirs = reference(fixture, "spheres");
    assert_identical(&spheres, &theirs, "spheres");
    assert_identical(&image(&mut out, "centres"), &reference(fixture, "centres"), "centres");
    let tumour = theirs.iter().filter(|&&v| v == 1.0).count();
    let cut = theirs.iter().filter(|&&v| v == 2.0).count();
    eprintln!("lung1 findings: tumour sphere {tumour} voxels, edge sphere {cut} voxels");
    assert!(tumour > 500 && cut > 50, "{tumour} {cut}");
    // Without a series: every row (the other series' sphere covers the tumour's).
    let mut all = run("annotation.points_to_spheres", vec![("like", &fixture.ct)], json!({"path": csv})).unwrap();
    assert_eq!(scalar(&mut all, "count"), 4.0);
}

#[test]
fn labels_remap_sequentially_and_by_table_and_one_hot_encode() {
    let Some(fixture) = fixture() else { return };
    let mut out = run("annotation.remap_labels", vec![("labels", &fixture.nuclei)], json!({"sequential": true})).unwrap();
    assert_identical(&image(&mut out, "labels"), &reference(fixture, "sequential"), "relabel_sequential");
    let mapping = std::fs::read_to_string(fixture.dir.join("mapping.txt")).unwrap();
    let mut out = run("annotation.remap_labels", vec![("labels", &fixture.nuclei)], json!({"mapping": mapping, "unmapped": "zero"})).unwrap();
    assert_identical(&image(&mut out, "labels"), &reference(fixture, "remapped"), "table remap");
    let small = medas_io::read(fixture.dir.join("one_hot_input.npy")).unwrap();
    let mut out = run("annotation.one_hot", vec![("labels", &small)], json!({"classes": [0, 1, 2, 3, 4]})).unwrap();
    let encoded = image(&mut out, "image");
    assert_eq!((encoded.components(), encoded.scalar_type()), (5, ScalarType::U8));
    assert_identical(&encoded, &reference(fixture, "one_hot"), "one-hot");
    // By default one channel per label from 0 to the largest present.
    let largest = image_voxels(small.voxels()).iter().fold(0.0f64, |m, &v| m.max(v));
    let mut out = run("annotation.one_hot", vec![("labels", &small)], json!({})).unwrap();
    assert_eq!(image(&mut out, "image").components(), largest as usize + 1);
}

#[test]
fn annotation_tools_refuse_bad_input_clearly() {
    let Some(fixture) = fixture() else { return };
    let error = |id: &str, inputs: Vec<(&str, &Image)>, given: Value| expect_error(run(id, inputs, given), id).to_string();
    let dir = scratch_dir("annotations-bad");
    let broken = dir.join("broken.xml");
    std::fs::write(&broken, "<Annotations><Annotation>").unwrap();
    let e = error("annotation.polygons_to_labels", vec![("like", &fixture.nuclei)], json!({"path": broken}));
    assert!(e.contains("broken.xml: not valid XML"), "{e}");
    let e = error("annotation.polygons_to_labels", vec![], json!({"path": fixture.dir.join("nuclei.xml")}));
    assert!(e.contains("give a `like` image or both width and height (got 0 x 0)"), "{e}");
    let e = error("annotation.polygons_to_labels", vec![], json!({"path": dir.join("missing.xml"), "width": 4, "height": 4}));
    assert!(e.contains("cannot read") && e.contains("missing.xml"), "{e}");
    let bad_csv = dir.join("bad.csv");
    std::fs::write(&bad_csv, "seriesuid,coordX,coordY,coordZ\nx,1,2,3\n").unwrap();
    let e = error("annotation.points_to_spheres", vec![("like", &fixture.ct)], json!({"path": bad_csv}));
    assert!(e.contains("no \"diameter_mm\" column"), "{e}");
    let e = error("annotation.points_to_spheres", vec![("like", &fixture.nuclei)], json!({"path": fixture.dir.join("findings.csv")}));
    assert!(e.contains("the `like` image must be 3-D, it is 2-D"), "{e}");
    let e = error("annotation.remap_labels", vec![("labels", &fixture.nuclei)], json!({"mapping": "1:2, x"}));
    assert!(e.contains("parameter \"mapping\" holds \"x\"; write pairs of integers as \"from:to, from:to\""), "{e}");
    let e = error("annotation.remap_labels", vec![("labels", &fixture.nuclei)], json!({"mapping": "1:2, 1:3"}));
    assert!(e.contains("parameter \"mapping\" maps label 1 twice"), "{e}");
    let floats = fixture.nuclei.cast(ScalarType::F32);
    let e = error("annotation.one_hot", vec![("labels", &floats)], json!({}));
    assert!(e.contains("labels must be integers, this image holds float32"), "{e}");
    let large = Image::from_voxels(medas_image::Voxels::from_fortran_vec(&[2, 1], vec![0i32, 2000]).unwrap()).unwrap();
    let e = error("annotation.one_hot", vec![("labels", &large)], json!({}));
    assert!(e.contains("the largest label is 2000; give `classes` for labels outside 0..1024"), "{e}");
    let e = error("annotation.one_hot", vec![("labels", &fixture.nuclei)], json!({"classes": [0, 1, 0]}));
    assert!(e.contains("parameter \"classes\" lists a label twice"), "{e}");
}
