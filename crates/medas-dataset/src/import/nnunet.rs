//! nnU-Net v2 raw: `dataset.json` with `channel_names`, `labels` (name → value, or a list of
//! values for region-based training), `numTraining`, `file_ending`;
//! `imagesTr/{case}_{XXXX}{ending}` (XXXX = channel), `labelsTr/{case}{ending}`, `imagesTs/`.

use super::{channel_names, dataset_json, empty_dataset, sorted_entries};
use crate::model::{Case, Imported, LabelName, Layout, Subset};
use crate::{DatasetError, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const LAYOUT: &str = "nnunet";

pub(super) fn fits(root: &Path) -> Result<(), String> {
    match dataset_json(root, LAYOUT) {
        Ok((_, map)) if map.contains_key("channel_names") && map.contains_key("file_ending") => Ok(()),
        Ok(_) => Err("dataset.json has no \"channel_names\" and \"file_ending\"".into()),
        Err(_) => Err("no dataset.json".into()),
    }
}

pub(super) fn import(root: &Path) -> Result<Imported> {
    let (json_path, map) = dataset_json(root, LAYOUT)?;
    let wrong = |reason: String| DatasetError::WrongLayout { path: json_path.clone(), layout: LAYOUT, reason };
    for key in ["channel_names", "labels", "file_ending"] {
        if !map.contains_key(key) {
            return Err(wrong(format!("no \"{key}\" key")));
        }
    }
    let ending = map["file_ending"].as_str().ok_or_else(|| wrong("\"file_ending\" is not text".into()))?;
    let mut dataset = empty_dataset(root, Layout::Nnunet);
    dataset.modality = channel_names(map.get("channel_names"));
    dataset.label_names = label_names(&map["labels"]).ok_or_else(|| wrong("\"labels\" must map names to values or lists of values".into()))?;
    dataset.extra_files.push(json_path.clone());
    let channels = dataset.modality.len();
    let training = cases_in(&root.join("imagesTr"), ending, channels)?;
    for mut case in training {
        let label = root.join("labelsTr").join(format!("{}{ending}", case.id));
        if !label.is_file() {
            return Err(DatasetError::MissingFile { path: label, by: case.images[0].display().to_string() });
        }
        case.label = Some(label);
        dataset.cases.push(case);
    }
    if let Some(expected) = map.get("numTraining").and_then(Value::as_u64)
        && expected as usize != dataset.cases.len()
    {
        return Err(DatasetError::bad_file(&json_path, format!("numTraining is {expected} but imagesTr holds {} cases", dataset.cases.len())));
    }
    let tests = root.join("imagesTs");
    if tests.is_dir() {
        for mut case in cases_in(&tests, ending, channels)? {
            case.subset = Subset::Test;
            dataset.cases.push(case);
        }
    }
    Ok(Imported { dataset, unpaired: Vec::new() })
}

/// Groups `{case}_{XXXX}{ending}` files into cases with channels 0..channels-1.
fn cases_in(folder: &Path, ending: &str, channels: usize) -> Result<Vec<Case>> {
    if !folder.is_dir() {
        return Err(DatasetError::WrongLayout { path: folder.to_path_buf(), layout: LAYOUT, reason: "folder missing".into() });
    }
    let mut by_case: BTreeMap<String, BTreeMap<usize, PathBuf>> = BTreeMap::new();
    for path in sorted_entries(folder)? {
        let Some((case, channel)) = split_name(&path, ending) else {
            let reason = format!("file name is not {{case}}_{{XXXX}}{ending} (XXXX = 4-digit channel)");
            return Err(DatasetError::WrongLayout { path, layout: LAYOUT, reason });
        };
        by_case.entry(case).or_default().insert(channel, path);
    }
    let mut cases = Vec::new();
    for (id, files) in by_case {
        let found: Vec<usize> = files.keys().copied().collect();
        if found != (0..channels).collect::<Vec<_>>() {
            let first = files.values().next().expect("a case has a file").clone();
            let message = format!("case {id:?} has channels {found:?} but dataset.json names {channels} channel(s)");
            return Err(DatasetError::bad_file(first, message));
        }
        cases.push(Case::new(id, files.into_values().collect()));
    }
    Ok(cases)
}

/// `liver_3_0000.nii.gz` → `("liver_3", 0)`.
fn split_name(path: &Path, ending: &str) -> Option<(String, usize)> {
    let name = path.file_name()?.to_str()?.strip_suffix(ending)?;
    let (case, channel) = name.rsplit_once('_')?;
    let valid = channel.len() == 4 && channel.bytes().all(|b| b.is_ascii_digit()) && !case.is_empty();
    valid.then(|| (case.to_string(), channel.parse().expect("four digits")))
}

/// `{"background": 0, "liver": 1, "tumour_region": [1, 2]}` → names sorted by value.
fn label_names(labels: &Value) -> Option<Vec<LabelName>> {
    let mut names = labels
        .as_object()?
        .iter()
        .map(|(name, value)| {
            let values = match value {
                Value::Array(list) => list.iter().map(Value::as_i64).collect::<Option<Vec<_>>>()?,
                single => vec![single.as_i64()?],
            };
            Some(LabelName { name: name.clone(), values })
        })
        .collect::<Option<Vec<_>>>()?;
    names.sort_by_key(|l| l.values.clone());
    Some(names)
}
