//! Medical Segmentation Decathlon: `dataset.json` with `modality` (`{"0": "CT"}`), `labels`
//! (`{"0": "background", "1": "liver"}`), `training` (`[{"image": "./imagesTr/x.nii.gz",
//! "label": "./labelsTr/x.nii.gz"}]`) and `test` (paths). Channels stay in one 4-D file.

use super::{channel_names, dataset_json, empty_dataset, image_stem};
use crate::model::{Case, Imported, LabelName, Layout, Subset};
use crate::{DatasetError, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

const LAYOUT: &str = "msd";

pub(super) fn fits(root: &Path) -> Result<(), String> {
    match dataset_json(root, LAYOUT) {
        Ok((_, map)) if map.get("training").is_some_and(Value::is_array) => Ok(()),
        Ok(_) => Err("dataset.json has no \"training\" list".into()),
        Err(_) => Err("no dataset.json".into()),
    }
}

pub(super) fn import(root: &Path) -> Result<Imported> {
    let (json_path, map) = dataset_json(root, LAYOUT)?;
    let wrong = |reason: &str| DatasetError::WrongLayout { path: json_path.clone(), layout: LAYOUT, reason: reason.into() };
    let Some(Value::Array(training)) = map.get("training") else {
        return Err(wrong("no \"training\" list"));
    };
    let mut dataset = empty_dataset(root, Layout::Msd);
    dataset.modality = channel_names(map.get("modality"));
    dataset.label_names = label_names(&map).ok_or_else(|| wrong("\"labels\" must map values (\"0\") to names"))?;
    dataset.extra_files.push(json_path.clone());
    for (index, entry) in training.iter().enumerate() {
        let by = format!("dataset.json training[{index}]");
        let field = |key: &str| entry.get(key).and_then(Value::as_str).ok_or_else(|| wrong(&format!("training[{index}] has no \"{key}\" path")));
        let image = existing(root, field("image")?, &by)?;
        let mut case = Case::new(case_id(&image), vec![image]);
        case.label = Some(existing(root, field("label")?, &by)?);
        dataset.cases.push(case);
    }
    let test = map.get("test").and_then(Value::as_array).map_or(&[][..], Vec::as_slice);
    for (index, entry) in test.iter().enumerate() {
        let path = entry.as_str().ok_or_else(|| wrong(&format!("test[{index}] is not a path")))?;
        let image = existing(root, path, &format!("dataset.json test[{index}]"))?;
        let mut case = Case::new(case_id(&image), vec![image]);
        case.subset = Subset::Test;
        dataset.cases.push(case);
    }
    Ok(Imported { dataset, unpaired: Vec::new() })
}

/// `{"0": "background", "1": "liver"}` → names by value; `None` when a key is not a number.
fn label_names(map: &serde_json::Map<String, Value>) -> Option<Vec<LabelName>> {
    let Some(Value::Object(labels)) = map.get("labels") else { return Some(Vec::new()) };
    let mut names = labels
        .iter()
        .map(|(value, name)| Some(LabelName { name: name.as_str()?.to_string(), values: vec![value.parse().ok()?] }))
        .collect::<Option<Vec<_>>>()?;
    names.sort_by_key(|l| l.values.clone());
    Some(names)
}

/// `./imagesTr/x.nii.gz` under `root`, which must exist.
fn existing(root: &Path, relative: &str, by: &str) -> Result<PathBuf> {
    let path = root.join(relative.trim_start_matches("./"));
    if path.is_file() { Ok(path) } else { Err(DatasetError::MissingFile { path, by: by.to_string() }) }
}

fn case_id(image: &Path) -> String {
    image_stem(image).map_or_else(|| image.file_name().unwrap_or_default().to_string_lossy().into_owned(), |(stem, _)| stem)
}
