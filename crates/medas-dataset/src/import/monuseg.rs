//! MoNuSeg: `Tissue Images/{name}.tif` (RGB H&E) with `Annotations/{name}.xml` (Aperio
//! ImageScope polygons), one XML per image, same stem; `Masks/{name}.tif` (instance labels), when
//! present, is the case's label image. XML files without an image are reported as unpaired.

use super::{empty_dataset, image_stem, sorted_entries};
use crate::model::{Case, Imported, Layout};
use crate::{DatasetError, Result};
use std::path::Path;

const LAYOUT: &str = "monuseg";

pub(super) fn fits(root: &Path) -> Result<(), String> {
    if root.join("Tissue Images").is_dir() { Ok(()) } else { Err("no \"Tissue Images\" folder".into()) }
}

pub(super) fn import(root: &Path) -> Result<Imported> {
    let tissue = root.join("Tissue Images");
    if !tissue.is_dir() {
        return Err(DatasetError::WrongLayout { path: tissue, layout: LAYOUT, reason: "folder missing".into() });
    }
    let mut dataset = empty_dataset(root, Layout::Monuseg);
    dataset.modality = vec!["H&E".into()];
    let mut stems = std::collections::BTreeSet::new();
    for image in sorted_entries(&tissue)? {
        let Some((stem, _)) = image_stem(&image) else {
            return Err(DatasetError::WrongLayout { path: image, layout: LAYOUT, reason: "not an image file".into() });
        };
        let xml = root.join("Annotations").join(format!("{stem}.xml"));
        if !xml.is_file() {
            return Err(DatasetError::MissingFile { path: xml, by: image.display().to_string() });
        }
        let mask = ["tif", "tiff", "png"].iter().map(|ext| root.join("Masks").join(format!("{stem}.{ext}"))).find(|m| m.is_file());
        stems.insert(stem.clone());
        let mut case = Case::new(stem, vec![image]);
        case.annotation = Some(xml);
        case.label = mask;
        dataset.cases.push(case);
    }
    let annotations = root.join("Annotations");
    let unpaired = if annotations.is_dir() {
        sorted_entries(&annotations)?.into_iter().filter(|p| p.file_stem().is_some_and(|s| !stems.contains(&*s.to_string_lossy()))).collect()
    } else {
        Vec::new()
    };
    Ok(Imported { dataset, unpaired })
}
