//! Real reference images (pyradiomics lung1/brain1, the stardist nuclei tile) written once per
//! test binary in the formats the layouts use, and helpers that lay them out as a layout would.
#![allow(dead_code)]

use medas_testkit::{file, scratch_dir};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The source files every layout is built from.
pub struct Sources {
    pub dir: PathBuf,
    pub lung_image: PathBuf,
    pub lung_label: PathBuf,
    pub brain_image: PathBuf,
    pub brain_label: PathBuf,
    /// lung1 as MetaImage (`lung1.mhd` + its data file), for LUNA16.
    pub lung_mhd: PathBuf,
    pub tile_image: PathBuf,
    pub tile_mask: PathBuf,
}

static SOURCES: OnceLock<Option<Sources>> = OnceLock::new();

/// The sources, converted on first use (`None` when the test data is missing and not required).
pub fn sources(binary: &str) -> Option<&'static Sources> {
    SOURCES.get_or_init(|| make_sources(binary)).as_ref()
}

fn make_sources(binary: &str) -> Option<Sources> {
    let lung_image = file("pyradiomics/lung1_image.nrrd")?;
    let dir = scratch_dir(&format!("dataset-sources-{binary}"));
    let convert = |from: &Path, to: &str| {
        let image = medas_io::read(from).unwrap_or_else(|e| panic!("{e}"));
        let out = dir.join(to);
        medas_io::write(&image, &out).unwrap_or_else(|e| panic!("{e}"));
        out
    };
    let pyradiomics = lung_image.parent().unwrap().to_path_buf();
    let stardist = file("stardist/img2d.tif")?.parent().unwrap().to_path_buf();
    Some(Sources {
        lung_image: convert(&lung_image, "lung1.nii.gz"),
        lung_label: convert(&pyradiomics.join("lung1_label.nrrd"), "lung1_label.nii.gz"),
        brain_image: convert(&pyradiomics.join("brain1_image.nrrd"), "brain1.nii.gz"),
        brain_label: convert(&pyradiomics.join("brain1_label.nrrd"), "brain1_label.nii.gz"),
        lung_mhd: convert(&lung_image, "lung1.mhd"),
        tile_image: stardist.join("img2d.tif"),
        tile_mask: stardist.join("mask2d.tif"),
        dir,
    })
}

/// Copies `from` to `root/relative`, making folders.
pub fn put(root: &Path, relative: &str, from: &Path) -> PathBuf {
    let to = root.join(relative);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, &to).unwrap_or_else(|e| panic!("copy {} -> {}: {e}", from.display(), to.display()));
    to
}

/// Writes text to `root/relative`, making folders.
pub fn write(root: &Path, relative: &str, text: &str) -> PathBuf {
    let to = root.join(relative);
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::write(&to, text).unwrap();
    to
}

/// An MSD folder: two training cases (lung1, brain1) and one test image.
pub fn msd_folder(s: &Sources, root: &Path) {
    put(root, "imagesTr/lung1.nii.gz", &s.lung_image);
    put(root, "labelsTr/lung1.nii.gz", &s.lung_label);
    put(root, "imagesTr/brain1.nii.gz", &s.brain_image);
    put(root, "labelsTr/brain1.nii.gz", &s.brain_label);
    put(root, "imagesTs/brain2.nii.gz", &s.brain_image);
    write(
        root,
        "dataset.json",
        r#"{"name": "Mixed", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "lesion"},
            "numTraining": 2, "training": [
              {"image": "./imagesTr/lung1.nii.gz", "label": "./labelsTr/lung1.nii.gz"},
              {"image": "./imagesTr/brain1.nii.gz", "label": "./labelsTr/brain1.nii.gz"}],
            "test": ["./imagesTs/brain2.nii.gz"]}"#,
    );
}

/// An nnU-Net v2 raw folder: two training cases with two channels each, one test case.
pub fn nnunet_folder(s: &Sources, root: &Path) {
    for (case, image, label) in [("lung_001", &s.lung_image, &s.lung_label), ("brain_002", &s.brain_image, &s.brain_label)] {
        put(root, &format!("imagesTr/{case}_0000.nii.gz"), image);
        put(root, &format!("imagesTr/{case}_0001.nii.gz"), image);
        put(root, &format!("labelsTr/{case}.nii.gz"), label);
    }
    put(root, "imagesTs/brain_003_0000.nii.gz", &s.brain_image);
    put(root, "imagesTs/brain_003_0001.nii.gz", &s.brain_image);
    write(
        root,
        "dataset.json",
        r#"{"channel_names": {"0": "CT", "1": "CT_copy"}, "labels": {"background": 0, "lesion": 1, "whole": [1, 2]},
            "numTraining": 2, "file_ending": ".nii.gz"}"#,
    );
}

/// A classification folder: `images/{case}.nii.gz` + `manifest.csv`; patient p1 has two scans.
pub fn csv_folder(s: &Sources, root: &Path) {
    put(root, "images/a.nii.gz", &s.lung_image);
    put(root, "images/b.nii.gz", &s.brain_image);
    put(root, "images/c.nii.gz", &s.brain_image);
    write(root, "manifest.csv", "path,label,patient_id,age\nimages/a.nii.gz,tumour,p1,61\nimages/b.nii.gz,healthy,p1,62\nimages/c.nii.gz,healthy,p2,70\n");
}

/// A LUNA16 folder: lung1 as one series in `subset0/` with two annotated nodules.
pub fn luna16_folder(s: &Sources, root: &Path) -> String {
    let uid = "1.3.6.1.4.1.14519.5.2.1.6279.6001.100225287222365663678666836860".to_string();
    let header = std::fs::read_to_string(&s.lung_mhd).unwrap();
    let data_name = header.lines().find_map(|l| l.strip_prefix("ElementDataFile = ")).unwrap().trim().to_string();
    let extension = Path::new(&data_name).extension().unwrap().to_string_lossy().into_owned();
    let new_data = format!("{uid}.{extension}");
    write(root, &format!("subset0/{uid}.mhd"), &header.replace(&data_name, &new_data));
    put(root, &format!("subset0/{new_data}"), &s.dir.join(&data_name));
    write(root, "annotations.csv", &format!("seriesuid,coordX,coordY,coordZ,diameter_mm\n{uid},-10.5,20.25,-100.0,8.5\n{uid},30.0,-5.0,-120.0,5.2\n1.2.3.absent,1,2,3,4\n"));
    write(root, "candidates.csv", &format!("seriesuid,coordX,coordY,coordZ,class\n{uid},-10.5,20.25,-100.0,1\n{uid},0,0,0,0\n"));
    uid
}

/// A MoNuSeg folder from the stardist tile: image, instance mask, and an Aperio ImageScope XML
/// with one polygon region per instance of the mask: its outline traced at sub-pixel positions
/// by skimage.measure.find_contours, as MoNuSeg's annotators' polygons follow nuclear borders.
pub fn monuseg_folder(s: &Sources, root: &Path) {
    put(root, "Tissue Images/tile.tif", &s.tile_image);
    put(root, "Masks/tile.tif", &s.tile_mask);
    let xml = root.join("Annotations/tile.xml");
    std::fs::create_dir_all(xml.parent().unwrap()).unwrap();
    medas_testkit::python(TRACE_OUTLINES, &[s.tile_mask.as_path(), xml.as_path()]);
    std::fs::copy(&xml, root.join("Annotations/orphan.xml")).unwrap();
}

/// Mask (tifffile) to Aperio XML: the longest outline of each instance, one Region each, in
/// label order; vertices X = column, Y = row.
const TRACE_OUTLINES: &str = r#"
import sys, numpy as np, tifffile
from skimage import measure
mask, out = tifffile.imread(sys.argv[1]), sys.argv[2]
regions = []
for label in np.unique(mask)[1:]:
    padded = np.pad(mask == label, 1).astype(float)
    outline = max(measure.find_contours(padded, 0.5), key=len)[:-1] - 1.0
    vertices = "".join(f'<Vertex X="{c:.3f}" Y="{r:.3f}"/>' for r, c in outline)
    regions.append(f'<Region Id="{int(label)}" Type="0"><Vertices>{vertices}</Vertices></Region>')
with open(out, "w") as f:
    f.write('<?xml version="1.0"?>\n<Annotations MicronsPerPixel="0.5"><Annotation Id="1"><Regions>\n')
    f.write("\n".join(regions))
    f.write("\n</Regions></Annotation></Annotations>\n")
"#;

/// blake3 of a file's bytes, computed here independently of the crate's streaming hasher.
pub fn blake3_of(path: &Path) -> String {
    blake3::hash(&std::fs::read(path).unwrap()).to_hex().to_string()
}

/// Writes `image` as a DICOM series with `modality` and `description` into `folder`, each
/// file name prefixed by `prefix` (so two series can share a folder).
fn dicom_series(image: &Path, modality: &str, description: &str, folder: &Path, prefix: &str) {
    let mut image = medas_io::read(image).unwrap();
    image.metadata.set_text("modality", modality);
    image.metadata.set_text("series_description", description);
    let scratch = folder.join(format!("tmp_series_{}", prefix.trim_end_matches('-')));
    medas_io::write(&image, &scratch).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(&scratch).unwrap() {
        let path = entry.unwrap().path();
        std::fs::rename(&path, folder.join(format!("{prefix}{}", path.file_name().unwrap().to_string_lossy()))).unwrap();
    }
    std::fs::remove_dir(&scratch).unwrap();
}

/// Two study folders: `study_a` holds lung1 as a CT series (48 slices) and brain1 as an MR
/// series (25 slices); `study_b/ct` holds brain1 as a CT series.
pub fn dicom_folder(root: &Path) {
    let pyradiomics = file("pyradiomics/lung1_image.nrrd").unwrap().parent().unwrap().to_path_buf();
    let (lung, brain) = (pyradiomics.join("lung1_image.nrrd"), pyradiomics.join("brain1_image.nrrd"));
    std::fs::create_dir_all(root.join("study_a")).unwrap();
    std::fs::create_dir_all(root.join("study_b/ct")).unwrap();
    dicom_series(&lung, "CT", "chest ct", &root.join("study_a"), "ct-");
    dicom_series(&brain, "MR", "T1 brain", &root.join("study_a"), "mr-");
    dicom_series(&brain, "CT", "head ct", &root.join("study_b/ct"), "");
}
