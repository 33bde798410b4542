//! DICOM study folders: every folder (at any depth) that directly holds DICOM files is a case;
//! its series are listed through `medas_io` and one is picked by modality and description
//! (default: the largest image series, leaving out SEG, RTSTRUCT, SR, PR and KO objects). The
//! case's image is the folder; its content hash covers the folder's files (see `hash`).

use super::{empty_dataset, sorted_entries};
use crate::model::{Case, Imported, Layout};
use crate::{DatasetError, Result};
use medas_io::dicom::{SeriesInfo, list_series};
use std::io::Read;
use std::path::{Path, PathBuf};

const LAYOUT: &str = "dicom";
/// Modalities that are not image volumes.
const NOT_IMAGES: [&str; 5] = ["SEG", "RTSTRUCT", "SR", "PR", "KO"];

/// Which series of a study folder becomes the case's image.
#[derive(Clone, Debug, Default)]
pub struct SeriesPick {
    /// Only series of this modality (`CT`, `MR`; case-insensitive).
    pub modality: Option<String>,
    /// Only series whose description contains this text (case-insensitive).
    pub description: Option<String>,
}

impl SeriesPick {
    fn accepts(&self, series: &SeriesInfo) -> bool {
        let modality = series.modality.as_deref().unwrap_or("");
        let description = series.description.as_deref().unwrap_or("").to_lowercase();
        let modality_ok = match &self.modality {
            Some(wanted) => modality.eq_ignore_ascii_case(wanted),
            None => !NOT_IMAGES.contains(&modality),
        };
        modality_ok && self.description.as_ref().is_none_or(|d| description.contains(&d.to_lowercase()))
    }
}

pub(super) fn fits(root: &Path) -> Result<(), String> {
    match study_folders(root) {
        Ok(folders) if !folders.is_empty() => Ok(()),
        Ok(_) => Err("no folder holds DICOM files".into()),
        Err(e) => Err(e.to_string()),
    }
}

pub(super) fn import(root: &Path, pick: &SeriesPick) -> Result<Imported> {
    let folders = study_folders(root)?;
    if folders.is_empty() {
        return Err(DatasetError::WrongLayout { path: root.to_path_buf(), layout: LAYOUT, reason: "no folder holds DICOM files".into() });
    }
    let mut dataset = empty_dataset(root, Layout::Dicom);
    for folder in folders {
        let series = list_series(&folder).map_err(|e| DatasetError::bad_file(&folder, e.to_string()))?;
        // list_series sorts the largest first, so the first accepted is the largest.
        let Some(chosen) = series.iter().find(|s| pick.accepts(s)) else {
            let found: Vec<String> = series.iter().map(describe).collect();
            return Err(DatasetError::bad_file(&folder, format!("no series fits {pick:?}; found {}", found.join("; "))));
        };
        if let Some(modality) = &chosen.modality
            && !dataset.modality.contains(modality)
        {
            dataset.modality.push(modality.clone());
        }
        let id = folder.strip_prefix(root).ok().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("study"));
        let mut case = Case::new(id.to_string_lossy(), vec![folder.clone()]);
        case.patient_id = chosen.patient_id.clone();
        case.row.insert("series_instance_uid".into(), chosen.uid.clone());
        case.row.insert("modality".into(), chosen.modality.clone().unwrap_or_default());
        case.row.insert("series_description".into(), chosen.description.clone().unwrap_or_default());
        case.row.insert("size".into(), chosen.size.map(|n| n.to_string()).join("x"));
        case.row.insert("series_in_folder".into(), series.len().to_string());
        dataset.cases.push(case);
    }
    Ok(Imported { dataset, unpaired: Vec::new() })
}

fn describe(series: &SeriesInfo) -> String {
    format!("{} {:?} ({} files)", series.modality.as_deref().unwrap_or("?"), series.description.as_deref().unwrap_or(""), series.files)
}

/// Folders under `root` (and `root` itself) holding at least one DICOM file, sorted.
fn study_folders(root: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let entries = sorted_entries(root)?;
    if entries.iter().any(|p| p.is_file() && is_dicom(p)) {
        found.push(root.to_path_buf());
    }
    for folder in entries.iter().filter(|p| p.is_dir()) {
        found.extend(study_folders(folder)?);
    }
    Ok(found)
}

/// A DICOM Part 10 file: "DICM" after the 128-byte preamble.
fn is_dicom(path: &Path) -> bool {
    let mut head = [0u8; 132];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut head)).is_ok() && &head[128..] == b"DICM"
}
