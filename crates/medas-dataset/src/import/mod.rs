//! Importers: one module per layout, each turning a folder into a [`Dataset`]. With a layout
//! given, that importer runs and its errors name the first file that does not fit; without one,
//! each layout's cheap `fits` check is tried in [`Layout::ALL`] order and the error says why
//! each was passed over.

mod csv_manifest;
mod dicom;
mod generic;
mod luna16;
mod monuseg;
mod msd;
mod nnunet;

use crate::model::{Dataset, Imported, Layout};
pub use dicom::SeriesPick;
use crate::{DatasetError, Result};
use std::path::{Path, PathBuf};

/// Imports `root` in `layout` (or the detected one), naming the dataset `name` (default: the
/// folder's name, with characters outside `[A-Za-z0-9._-]` replaced by `_`).
pub fn import(root: &Path, layout: Option<Layout>, name: Option<&str>) -> Result<Imported> {
    import_with(root, layout, name, &SeriesPick::default())
}

/// [`import`], choosing the series of DICOM study folders by `pick`.
pub fn import_with(root: &Path, layout: Option<Layout>, name: Option<&str>, pick: &SeriesPick) -> Result<Imported> {
    let root = std::path::absolute(root).map_err(DatasetError::io(root))?;
    if !root.is_dir() {
        return Err(DatasetError::Io { path: root, source: std::io::Error::new(std::io::ErrorKind::NotFound, "not a folder") });
    }
    let layout = match layout {
        Some(layout) => layout,
        None => detect(&root)?,
    };
    let mut imported = match layout {
        Layout::Msd => msd::import(&root)?,
        Layout::Nnunet => nnunet::import(&root)?,
        Layout::Luna16 => luna16::import(&root)?,
        Layout::Monuseg => monuseg::import(&root)?,
        Layout::Csv => csv_manifest::import(&root)?,
        Layout::Dicom => dicom::import(&root, pick)?,
        Layout::Generic => generic::import(&root)?,
    };
    let dataset = &mut imported.dataset;
    if dataset.cases.is_empty() {
        return Err(DatasetError::NoCases { root, layout: layout.name() });
    }
    check_unique_ids(dataset)?;
    dataset.name = match name {
        Some(name) => name.to_string(),
        None => default_name(&root),
    };
    crate::store::check_name(&dataset.name)?;
    Ok(imported)
}

/// The first layout whose `fits` check passes, or an error with every layout's reason.
pub fn detect(root: &Path) -> Result<Layout> {
    let mut tried = Vec::new();
    for layout in Layout::ALL {
        let verdict = match layout {
            Layout::Msd => msd::fits(root),
            Layout::Nnunet => nnunet::fits(root),
            Layout::Luna16 => luna16::fits(root),
            Layout::Monuseg => monuseg::fits(root),
            Layout::Csv => csv_manifest::fits(root),
            Layout::Dicom => dicom::fits(root),
            Layout::Generic => generic::fits(root),
        };
        match verdict {
            Ok(()) => return Ok(layout),
            Err(reason) => tried.push(format!("{layout} ({reason})")),
        }
    }
    Err(DatasetError::NoLayout { root: root.to_path_buf(), tried: tried.join(", ") })
}

fn default_name(root: &Path) -> String {
    let folder = root.file_name().map_or("dataset".into(), |n| n.to_string_lossy().into_owned());
    let name: String = folder.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    name.trim_start_matches('.').to_string()
}

fn check_unique_ids(dataset: &Dataset) -> Result<()> {
    let mut seen = std::collections::HashMap::new();
    for case in &dataset.cases {
        let first_file = case.images.first().cloned().unwrap_or_default();
        if let Some(first) = seen.insert(case.id.clone(), first_file.clone()) {
            return Err(DatasetError::DuplicateCase { case: case.id.clone(), first, second: first_file });
        }
    }
    Ok(())
}

/// Image file extensions the importers recognise (longest first, so `.nii.gz` wins over `.gz`).
const IMAGE_EXTENSIONS: [&str; 13] =
    [".nii.gz", ".nii", ".nrrd", ".nhdr", ".mha", ".mhd", ".npy", ".npz", ".png", ".tif", ".tiff", ".jpg", ".jpeg"];

/// A file name split into stem and image extension (`("liver_3", ".nii.gz")`), when it is an image.
pub(crate) fn image_stem(path: &Path) -> Option<(String, &'static str)> {
    let name = path.file_name()?.to_str()?;
    let lower = name.to_ascii_lowercase();
    IMAGE_EXTENSIONS
        .iter()
        .find(|ext| lower.ends_with(*ext) && lower.len() > ext.len())
        .map(|ext| (name[..name.len() - ext.len()].to_string(), *ext))
}

/// The entries of a folder (files and folders, hidden ones skipped), sorted by name.
pub(crate) fn sorted_entries(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(folder).map_err(DatasetError::io(folder))?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(DatasetError::io(folder))?;
        if !entry.file_name().to_string_lossy().starts_with('.') {
            paths.push(entry.path());
        }
    }
    paths.sort();
    Ok(paths)
}

/// Every file under `folder`, recursively, sorted, hidden entries skipped.
pub(crate) fn files_under(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in sorted_entries(folder)? {
        if path.is_dir() {
            files.extend(files_under(&path)?);
        } else {
            files.push(path);
        }
    }
    Ok(files)
}

/// The data file a MetaImage (`.mhd`) or detached NRRD (`.nhdr`) header names, when it exists
/// beside the header: it is part of the dataset's content and must be hashed and copied too.
pub(crate) fn detached_data_file(header: &Path) -> Option<PathBuf> {
    let (_, ext) = image_stem(header)?;
    let key = match ext {
        ".mhd" => "ElementDataFile",
        ".nhdr" => "data file",
        _ => return None,
    };
    let text = std::fs::read_to_string(header).ok()?;
    let value = text.lines().find_map(|line| {
        let (k, v) = line.split_once(if ext == ".mhd" { '=' } else { ':' })?;
        (k.trim().eq_ignore_ascii_case(key)).then(|| v.trim().to_string())
    })?;
    let data = header.parent()?.join(value);
    data.is_file().then_some(data)
}

/// The JSON object in `root/dataset.json` (MSD and nnU-Net), or why `layout` cannot read it.
pub(crate) fn dataset_json(root: &Path, layout: &'static str) -> Result<(PathBuf, serde_json::Map<String, serde_json::Value>)> {
    let path = root.join("dataset.json");
    if !path.is_file() {
        return Err(DatasetError::WrongLayout { path, layout, reason: "file missing".into() });
    }
    match crate::store::read_json(&path)? {
        serde_json::Value::Object(map) => Ok((path, map)),
        _ => Err(DatasetError::WrongLayout { path, layout, reason: "not a JSON object".into() }),
    }
}

/// `{"0": "CT", "1": "ADC"}` in channel order (MSD `modality`, nnU-Net `channel_names`).
pub(crate) fn channel_names(value: Option<&serde_json::Value>) -> Vec<String> {
    let Some(serde_json::Value::Object(map)) = value else { return Vec::new() };
    let mut channels: Vec<(u64, String)> =
        map.iter().map(|(k, v)| (k.parse().unwrap_or(u64::MAX), v.as_str().map_or_else(|| v.to_string(), str::to_string))).collect();
    channels.sort();
    channels.into_iter().map(|(_, name)| name).collect()
}

/// An empty dataset of `layout` at `root`, for importers to fill.
pub(crate) fn empty_dataset(root: &Path, layout: Layout) -> Dataset {
    Dataset {
        name: String::new(),
        layout,
        root: root.to_path_buf(),
        modality: Vec::new(),
        label_names: Vec::new(),
        cases: Vec::new(),
        extra_files: Vec::new(),
    }
}
