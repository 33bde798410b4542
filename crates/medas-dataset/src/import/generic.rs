//! Generic folder: images and labels paired by name. A file is a label when it lies in a
//! `labels`/`labelsTr`/`masks`/`segmentations` folder (partner: the same stem in the sibling
//! `images`/`imagesTr` folder or beside that folder, a label suffix allowed) or when its stem ends in `_seg`, `_label`,
//! `_labels`, `_mask` or `_segmentation` (partner: the stem without it, or with `_image`/`_img`).
//! Images without a label become unlabelled cases; both they and labels without an image are
//! reported as unpaired.

use super::{detached_data_file, empty_dataset, files_under, image_stem};
use crate::model::{Case, Imported, Layout};
use crate::{DatasetError, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LABEL_FOLDERS: [&str; 5] = ["labels", "labelstr", "masks", "segmentations", "labelsts"];
const IMAGE_FOLDERS: [&str; 4] = ["images", "imagestr", "imagests", "imgs"];
const LABEL_SUFFIXES: [&str; 5] = ["_segmentation", "_labels", "_label", "_mask", "_seg"];
const IMAGE_SUFFIXES: [&str; 2] = ["_image", "_img"];

pub(super) fn fits(root: &Path) -> Result<(), String> {
    let files = files_under(root).map_err(|e| e.to_string())?;
    if files.iter().any(|f| image_stem(f).is_some()) { Ok(()) } else { Err("no image files".into()) }
}

/// Which side of a pair a file is, and the key its partner shares: (group folder, base name).
enum Role {
    Image(PathBuf, String),
    Label(PathBuf, String),
}

pub(super) fn import(root: &Path) -> Result<Imported> {
    let mut images: BTreeMap<(PathBuf, String), PathBuf> = BTreeMap::new();
    let mut labels: BTreeMap<(PathBuf, String), PathBuf> = BTreeMap::new();
    let mut dataset = empty_dataset(root, Layout::Generic);
    for file in files_under(root)? {
        let Some(role) = role(&file) else { continue };
        let (side, key) = match role {
            Role::Image(group, base) => (&mut images, (group, base)),
            Role::Label(group, base) => (&mut labels, (group, base)),
        };
        if let Some(first) = side.insert(key.clone(), file.clone()) {
            return Err(DatasetError::DuplicateCase { case: key.1, first, second: file });
        }
        dataset.extra_files.extend(detached_data_file(&file));
    }
    let mut unpaired = Vec::new();
    for ((group, base), image) in images {
        let mut case = Case::new(case_id(root, &group, &base), vec![image.clone()]);
        case.label = labels.remove(&(group, base));
        if case.label.is_none() {
            unpaired.push(image);
        }
        dataset.cases.push(case);
    }
    unpaired.extend(labels.into_values());
    unpaired.sort();
    Ok(Imported { dataset, unpaired })
}

fn role(file: &Path) -> Option<Role> {
    let (stem, _) = image_stem(file)?;
    let parent = file.parent()?.to_path_buf();
    let folder = parent.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    let grandparent = || parent.parent().map_or_else(|| parent.clone(), Path::to_path_buf);
    if LABEL_FOLDERS.contains(&folder.as_str()) {
        let base = strip_suffix(&stem, &LABEL_SUFFIXES).unwrap_or(stem);
        return Some(Role::Label(grandparent(), base));
    }
    let group = if IMAGE_FOLDERS.contains(&folder.as_str()) { grandparent() } else { parent };
    if let Some(base) = strip_suffix(&stem, &LABEL_SUFFIXES) {
        return Some(Role::Label(group, base));
    }
    let base = strip_suffix(&stem, &IMAGE_SUFFIXES).unwrap_or(stem);
    Some(Role::Image(group, base))
}

/// `stem` without the first of `suffixes` it ends in (case-insensitive), if any.
fn strip_suffix(stem: &str, suffixes: &[&str]) -> Option<String> {
    let lower = stem.to_ascii_lowercase();
    suffixes.iter().find(|s| lower.ends_with(*s) && lower.len() > s.len()).map(|s| stem[..stem.len() - s.len()].to_string())
}

/// The base name, prefixed by the group folder relative to the root when it is not the root.
fn case_id(root: &Path, group: &Path, base: &str) -> String {
    match group.strip_prefix(root) {
        Ok(inside) if !inside.as_os_str().is_empty() => format!("{}/{base}", inside.to_string_lossy()),
        _ => base.to_string(),
    }
}
