//! The dataset model: cases as an importer finds them, and the layouts it can find them in.
//! Plain data; importing, hashing and storing live in their own modules.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The folder layouts MEDAS imports (docs: /work/layouts.md, shared with `medas-synth`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// Medical Segmentation Decathlon: `dataset.json` with `training` image/label pairs.
    Msd,
    /// nnU-Net v2 raw: `dataset.json` with `channel_names`, `imagesTr/{case}_{XXXX}{ending}`.
    Nnunet,
    /// LUNA16: `subset*/{seriesuid}.mhd` with `annotations.csv` (and `candidates.csv`).
    Luna16,
    /// MoNuSeg: `Tissue Images/{name}.tif` with `Annotations/{name}.xml` (and `Masks/`).
    Monuseg,
    /// Classification table: `manifest.csv` with `path`, `label`, `patient_id` columns.
    Csv,
    /// Study folders of DICOM files; one series per folder, picked by modality/description.
    Dicom,
    /// Images and labels paired by file-name patterns.
    Generic,
}

impl Layout {
    /// Every layout, in the order auto-detection tries them (most specific first).
    pub const ALL: [Layout; 7] = [Layout::Msd, Layout::Nnunet, Layout::Luna16, Layout::Monuseg, Layout::Csv, Layout::Dicom, Layout::Generic];

    /// The name users type (`--layout nnunet`) and manifests store.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Msd => "msd",
            Layout::Nnunet => "nnunet",
            Layout::Luna16 => "luna16",
            Layout::Monuseg => "monuseg",
            Layout::Csv => "csv",
            Layout::Dicom => "dicom",
            Layout::Generic => "generic",
        }
    }

    /// The layout a user named, or an error listing the known names.
    pub fn parse(given: &str) -> crate::Result<Layout> {
        Layout::ALL.into_iter().find(|l| l.name().eq_ignore_ascii_case(given)).ok_or_else(|| crate::DatasetError::UnknownLayout {
            given: given.to_string(),
            known: Layout::ALL.map(Layout::name).join(", "),
        })
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether a case belongs to the part of the data with labels (training) or without (test),
/// as the layout declares it (MSD `test`, nnU-Net `imagesTs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Subset {
    #[default]
    Training,
    Test,
}

/// One case: the images of one subject/scan (one path per channel), with what is known about it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// Unique within the dataset (file stem, nnU-Net case id, series UID, ...).
    pub id: String,
    /// One image per channel (nnU-Net `_0000`, `_0001`, ...); MSD keeps channels in one 4-D file;
    /// a DICOM case's image is its series folder.
    pub images: Vec<PathBuf>,
    /// Label image (segmentation or instance mask), when the layout has one.
    pub label: Option<PathBuf>,
    /// Annotation file that is not an image (MoNuSeg Aperio XML).
    pub annotation: Option<PathBuf>,
    /// Class for classification datasets (CSV `label` column).
    pub class_label: Option<String>,
    /// Patient the case comes from; splits grouped by patient keep a patient in one fold.
    pub patient_id: Option<String>,
    pub subset: Subset,
    /// Further key/values from the layout's table (CSV columns, LUNA16 nodule counts).
    pub row: BTreeMap<String, String>,
}

impl Case {
    /// A training case with the given id and images and nothing else known yet.
    pub fn new(id: impl Into<String>, images: Vec<PathBuf>) -> Case {
        Case { id: id.into(), images, ..Case::default() }
    }

    /// Every file of the case: images, then label, then annotation.
    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.images.iter().chain(self.label.iter()).chain(self.annotation.iter())
    }
}

/// A label value (or, for nnU-Net region-based training, several values) and its name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelName {
    pub name: String,
    pub values: Vec<i64>,
}

/// A dataset as an importer found it: cases with absolute paths under `root`, not yet hashed
/// or stored (see [`crate::store`] for versions).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    pub name: String,
    pub layout: Layout,
    /// The imported folder (absolute).
    pub root: PathBuf,
    /// Modality per channel (`["CT"]`, `["T2", "ADC"]`); empty when the layout does not say.
    pub modality: Vec<String>,
    pub label_names: Vec<LabelName>,
    pub cases: Vec<Case>,
    /// Files that belong to the dataset but to no one case (`dataset.json`, LUNA16 CSVs).
    pub extra_files: Vec<PathBuf>,
}

/// What an import found: the dataset, and the files it could not place in a case.
#[derive(Clone, Debug)]
pub struct Imported {
    pub dataset: Dataset,
    /// Images or labels without a partner (generic layout), reported rather than dropped silently.
    pub unpaired: Vec<PathBuf>,
}
