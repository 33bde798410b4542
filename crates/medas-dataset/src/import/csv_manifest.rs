//! Classification table: `manifest.csv` with at least `path`, `label` and `patient_id` columns
//! (paths relative to the CSV's folder); other columns are kept as the case's row. The case id
//! is the `case_id` or `id` column when present, else the image's file stem.

use super::{detached_data_file, empty_dataset, image_stem};
use crate::model::{Case, Imported, Layout};
use crate::{DatasetError, Result};
use std::path::Path;

const LAYOUT: &str = "csv";
const REQUIRED: [&str; 3] = ["path", "label", "patient_id"];

pub(super) fn fits(root: &Path) -> Result<(), String> {
    if root.join("manifest.csv").is_file() { Ok(()) } else { Err("no manifest.csv".into()) }
}

pub(super) fn import(root: &Path) -> Result<Imported> {
    let csv_path = root.join("manifest.csv");
    if !csv_path.is_file() {
        return Err(DatasetError::WrongLayout { path: csv_path, layout: LAYOUT, reason: "file missing".into() });
    }
    let bad = |message: String| DatasetError::bad_file(&csv_path, message);
    let mut reader = csv::Reader::from_path(&csv_path).map_err(|e| bad(e.to_string()))?;
    let header: Vec<String> = reader.headers().map_err(|e| bad(e.to_string()))?.iter().map(|h| h.trim().to_string()).collect();
    if let Some(missing) = REQUIRED.iter().find(|r| !header.iter().any(|h| h == *r)) {
        let reason = format!("no column \"{missing}\" (columns: {})", header.join(", "));
        return Err(DatasetError::WrongLayout { path: csv_path.clone(), layout: LAYOUT, reason });
    }
    let mut dataset = empty_dataset(root, Layout::Csv);
    dataset.extra_files.push(csv_path.clone());
    for (index, record) in reader.records().enumerate() {
        let line = index + 2;
        let record = record.map_err(|e| bad(format!("line {line}: {e}")))?;
        let mut row: std::collections::BTreeMap<String, String> =
            header.iter().cloned().zip(record.iter().map(|v| v.trim().to_string())).collect();
        let image = root.join(row.remove("path").unwrap_or_default());
        if !image.is_file() {
            return Err(DatasetError::MissingFile { path: image, by: format!("manifest.csv line {line}") });
        }
        let stem = image_stem(&image).map_or_else(|| image.file_name().unwrap_or_default().to_string_lossy().into_owned(), |(s, _)| s);
        let id = row.remove("case_id").or_else(|| row.remove("id")).filter(|v| !v.is_empty()).unwrap_or(stem);
        dataset.extra_files.extend(detached_data_file(&image));
        let mut case = Case::new(id, vec![image]);
        case.class_label = row.remove("label").filter(|v| !v.is_empty());
        case.patient_id = row.remove("patient_id").filter(|v| !v.is_empty());
        case.row = row;
        dataset.cases.push(case);
    }
    Ok(Imported { dataset, unpaired: Vec::new() })
}
