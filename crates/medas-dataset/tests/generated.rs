//! The importers that no generator writes directly (MSD, generic folder, DICOM study folders)
//! on folders rearranged from generated liver phantoms: every case is found, paired with its
//! label, and reads back as the phantom it came from (same voxels and grid).

use medas_dataset::{Layout, import};
use medas_testkit::scratch_dir;
use std::path::{Path, PathBuf};

/// Three 64³ liver phantoms in nnU-Net raw layout under `name` (one folder per test: tests
/// run in parallel); the (image, label) pairs by case id.
fn phantoms(name: &str) -> (PathBuf, Vec<(String, PathBuf, PathBuf)>) {
    let root = scratch_dir(&format!("dataset-generated/phantoms-{name}"));
    let _ = std::fs::remove_dir_all(&root);
    let options = medas_synth::GenerateOptions { cases: 3, seed: 11, size: Some(vec![64]), overwrite: false };
    medas_synth::generate(medas_synth::Kind::Liver, &options, &root, &|_, _| {}).unwrap();
    let pairs = (0..3)
        .map(|n| {
            let id = format!("liver_{n:03}");
            (id.clone(), root.join(format!("imagesTr/{id}_0000.nii.gz")), root.join(format!("labelsTr/{id}.nii.gz")))
        })
        .collect();
    (root, pairs)
}

fn copy(from: &Path, to: PathBuf) -> PathBuf {
    std::fs::create_dir_all(to.parent().unwrap()).unwrap();
    std::fs::copy(from, &to).unwrap();
    to
}

fn same_image(a: &Path, b: &Path) {
    let (a, b) = (medas_io::read(a).unwrap(), medas_io::read(b).unwrap());
    assert_eq!(a.size(), b.size());
    assert_eq!(a.geometry(), b.geometry());
    assert_eq!(a.voxels(), b.voxels());
}

#[test]
fn msd_and_generic_folders_of_generated_phantoms_import() {
    let (_, pairs) = phantoms("msd");
    let msd = scratch_dir("dataset-generated/msd");
    let _ = std::fs::remove_dir_all(&msd);
    let mut training = Vec::new();
    for (id, image, label) in &pairs {
        copy(image, msd.join(format!("imagesTr/{id}.nii.gz")));
        copy(label, msd.join(format!("labelsTr/{id}.nii.gz")));
        training.push(serde_json::json!({"image": format!("./imagesTr/{id}.nii.gz"), "label": format!("./labelsTr/{id}.nii.gz")}));
    }
    let json = serde_json::json!({"name": "Liver", "modality": {"0": "CT"}, "labels": {"0": "background", "1": "liver"},
        "numTraining": 3, "training": training, "test": []});
    std::fs::write(msd.join("dataset.json"), json.to_string()).unwrap();

    let generic = scratch_dir("dataset-generated/generic");
    let _ = std::fs::remove_dir_all(&generic);
    for (id, image, label) in &pairs {
        copy(image, generic.join(format!("images/{id}.nii.gz")));
        copy(label, generic.join(format!("labels/{id}.nii.gz")));
    }

    for (root, layout) in [(&msd, Layout::Msd), (&generic, Layout::Generic)] {
        let imported = import(root, None, None).unwrap();
        assert_eq!(imported.dataset.layout, layout);
        assert!(imported.unpaired.is_empty(), "{layout:?}: {:?}", imported.unpaired);
        let cases = &imported.dataset.cases;
        assert_eq!(cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["liver_000", "liver_001", "liver_002"], "{layout:?}");
        for (case, (_, image, label)) in cases.iter().zip(&pairs) {
            same_image(&case.images[0], image);
            same_image(case.label.as_deref().expect("paired label"), label);
        }
    }
}

#[test]
fn dicom_study_folders_of_generated_phantoms_import() {
    let (_, pairs) = phantoms("dicom");
    let root = scratch_dir("dataset-generated/dicom");
    let _ = std::fs::remove_dir_all(&root);
    for (id, image, _) in &pairs {
        let mut phantom = medas_io::read(image).unwrap();
        phantom.metadata.set_text("modality", "CT");
        phantom.metadata.set_text("series_description", "liver phantom");
        phantom.metadata.set_text("patient_id", &format!("patient-{id}"));
        medas_io::write(&phantom, root.join(id)).unwrap();
    }
    let imported = import(&root, None, None).unwrap();
    assert_eq!(imported.dataset.layout, Layout::Dicom);
    let cases = &imported.dataset.cases;
    assert_eq!(cases.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), ["liver_000", "liver_001", "liver_002"]);
    for (case, (_, image, _)) in cases.iter().zip(&pairs) {
        assert_eq!((case.row["modality"].as_str(), case.row["size"].as_str()), ("CT", "64x64x64"));
        assert_eq!(case.patient_id, Some(format!("patient-{}", case.id)), "patient id from (0010,0020)");
        // The series reads back as the phantom: int16 HU survive DICOM exactly, the grid to 1e-4 mm.
        let (series, phantom) = (medas_io::read(&case.images[0]).unwrap(), medas_io::read(image).unwrap());
        assert_eq!(series.size(), phantom.size());
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4);
        assert!(close(&series.geometry().spacing(), &phantom.geometry().spacing()) && close(&series.geometry().origin(), &phantom.geometry().origin()));
        assert_eq!(series.voxels(), phantom.voxels());
    }
}
