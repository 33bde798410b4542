//! LUNA16: `subset*/{seriesuid}.mhd` (+ `.raw`/`.zraw`), `annotations.csv`
//! (`seriesuid,coordX,coordY,coordZ,diameter_mm`, world mm) and optionally `candidates.csv`
//! (`seriesuid,coordX,coordY,coordZ,class`). A case per series; its row holds the subset and
//! the number of annotated nodules, and its class is `nodule` or `no_nodule` (for stratified
//! splits). Annotations for series not present (a partial download) are ignored.

use super::{detached_data_file, empty_dataset, image_stem, sorted_entries};
use crate::model::{Case, Imported, Layout};
use crate::{DatasetError, Result};
use std::collections::BTreeMap;
use std::path::Path;

const LAYOUT: &str = "luna16";
const ANNOTATIONS: [&str; 5] = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"];
const CANDIDATES: [&str; 5] = ["seriesuid", "coordX", "coordY", "coordZ", "class"];

pub(super) fn fits(root: &Path) -> Result<(), String> {
    if !root.join("annotations.csv").is_file() {
        return Err("no annotations.csv".into());
    }
    let subsets = subset_folders(root).map_err(|e| e.to_string())?;
    if subsets.is_empty() { Err("no subset* folders".into()) } else { Ok(()) }
}

fn subset_folders(root: &Path) -> Result<Vec<std::path::PathBuf>> {
    Ok(sorted_entries(root)?.into_iter().filter(|p| p.is_dir() && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("subset"))).collect())
}

pub(super) fn import(root: &Path) -> Result<Imported> {
    let annotations = root.join("annotations.csv");
    let nodules = count_by_series(&annotations, &ANNOTATIONS, None)?;
    let candidates_path = root.join("candidates.csv");
    let candidates = if candidates_path.is_file() { Some(count_by_series(&candidates_path, &CANDIDATES, Some("1"))?) } else { None };
    let mut dataset = empty_dataset(root, Layout::Luna16);
    dataset.modality = vec!["CT".into()];
    dataset.extra_files.push(annotations.clone());
    if candidates.is_some() {
        dataset.extra_files.push(candidates_path);
    }
    let subsets = subset_folders(root)?;
    if subsets.is_empty() {
        return Err(DatasetError::WrongLayout { path: root.join("subset0"), layout: LAYOUT, reason: "no subset* folders".into() });
    }
    for subset in subsets {
        for header in sorted_entries(&subset)? {
            if image_stem(&header).is_none_or(|(_, ext)| ext != ".mhd") {
                continue;
            }
            let data = detached_data_file(&header).ok_or_else(|| DatasetError::bad_file(&header, "its ElementDataFile is missing"))?;
            dataset.extra_files.push(data);
            let uid = image_stem(&header).expect("checked above").0;
            let count = nodules.get(&uid).copied().unwrap_or(0);
            let mut case = Case::new(uid.clone(), vec![header]);
            case.class_label = Some(if count > 0 { "nodule" } else { "no_nodule" }.into());
            case.row.insert("subset".into(), subset.file_name().unwrap_or_default().to_string_lossy().into_owned());
            case.row.insert("nodules".into(), count.to_string());
            if let Some(candidates) = &candidates {
                case.row.insert("positive_candidates".into(), candidates.get(&uid).copied().unwrap_or(0).to_string());
            }
            dataset.cases.push(case);
        }
    }
    Ok(Imported { dataset, unpaired: Vec::new() })
}

/// Rows per series UID in a LUNA16 CSV whose header must start with `columns`; with `class`,
/// only rows whose last column has that value count.
fn count_by_series(path: &Path, columns: &[&str], class: Option<&str>) -> Result<BTreeMap<String, usize>> {
    let bad = |message: String| DatasetError::bad_file(path, message);
    if !path.is_file() {
        return Err(DatasetError::WrongLayout { path: path.to_path_buf(), layout: LAYOUT, reason: "file missing".into() });
    }
    let mut reader = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let header: Vec<String> = reader.headers().map_err(|e| bad(e.to_string()))?.iter().map(str::to_string).collect();
    if header.len() < columns.len() || header.iter().zip(columns).any(|(h, c)| h.trim() != *c) {
        let reason = format!("header is {:?}, expected {}", header.join(","), columns.join(","));
        return Err(DatasetError::WrongLayout { path: path.to_path_buf(), layout: LAYOUT, reason });
    }
    let mut counts = BTreeMap::new();
    for (index, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(format!("line {}: {e}", index + 2)))?;
        if class.is_none_or(|c| record.get(columns.len() - 1).map(str::trim) == Some(c)) {
            *counts.entry(record[0].trim().to_string()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}
