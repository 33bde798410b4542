//! Each importer on a folder built here in its layout from real images (pyradiomics lung1 and
//! brain1 as .nii.gz and .mhd, the stardist nuclei tile with an Aperio XML made from its mask);
//! auto-detection; wrong layouts fail naming the first file that does not fit (exact text).

mod support;

use medas_dataset::{Layout, Subset, import};
use medas_testkit::{expect_error, scratch_dir};
use std::path::Path;
use support::*;

fn folder(name: &str) -> Option<(&'static Sources, std::path::PathBuf)> {
    let s = sources("importers")?;
    Some((s, scratch_dir(&format!("dataset-importers/{name}"))))
}

fn ids(imported: &medas_dataset::Imported) -> Vec<&str> {
    imported.dataset.cases.iter().map(|c| c.id.as_str()).collect()
}

#[test]
fn msd_folder_imports_training_pairs_and_test_images() {
    let Some((s, root)) = folder("msd") else { return };
    msd_folder(s, &root);
    let imported = import(&root, None, None).unwrap();
    let d = &imported.dataset;
    assert_eq!(d.layout, Layout::Msd);
    assert_eq!(d.name, "msd");
    assert_eq!(ids(&imported), ["lung1", "brain1", "brain2"]);
    assert_eq!(d.modality, ["CT"]);
    assert_eq!(d.label_names.iter().map(|l| (l.name.as_str(), l.values.clone())).collect::<Vec<_>>(), [("background", vec![0]), ("lesion", vec![1])]);
    assert_eq!(d.cases[0].images, [root.join("imagesTr/lung1.nii.gz")]);
    assert_eq!(d.cases[0].label.as_deref(), Some(root.join("labelsTr/lung1.nii.gz").as_path()));
    assert_eq!((d.cases[2].subset, d.cases[2].label.is_none()), (Subset::Test, true));
    assert_eq!(d.extra_files, [root.join("dataset.json")]);
    // The files are the real images: they read back with lung1's size.
    assert_eq!(medas_io::read(&d.cases[0].images[0]).unwrap().size(), medas_io::read(&s.lung_image).unwrap().size());

    std::fs::remove_file(root.join("labelsTr/brain1.nii.gz")).unwrap();
    let error = expect_error(import(&root, None, None), "missing MSD label");
    assert_eq!(error.to_string(), format!("{}: missing file, referenced by dataset.json training[1]", root.join("labelsTr/brain1.nii.gz").display()));
}

#[test]
fn nnunet_folder_groups_channels_and_pairs_labels() {
    let Some((s, root)) = folder("nnunet") else { return };
    nnunet_folder(s, &root);
    let imported = import(&root, None, Some("lesions")).unwrap();
    let d = &imported.dataset;
    assert_eq!((d.layout, d.name.as_str()), (Layout::Nnunet, "lesions"));
    assert_eq!(ids(&imported), ["brain_002", "lung_001", "brain_003"]);
    assert_eq!(d.modality, ["CT", "CT_copy"]);
    assert_eq!(d.label_names[2].name, "whole");
    assert_eq!(d.label_names[2].values, [1, 2]);
    let lung = &d.cases[1];
    assert_eq!(lung.images, [root.join("imagesTr/lung_001_0000.nii.gz"), root.join("imagesTr/lung_001_0001.nii.gz")]);
    assert_eq!(lung.label.as_deref(), Some(root.join("labelsTr/lung_001.nii.gz").as_path()));
    assert_eq!(d.cases[2].subset, Subset::Test);

    // A channel missing: the error names the case's first file and the channels it has.
    std::fs::remove_file(root.join("imagesTr/lung_001_0001.nii.gz")).unwrap();
    let error = expect_error(import(&root, None, None), "missing channel");
    assert_eq!(
        error.to_string(),
        format!("{}: case \"lung_001\" has channels [0] but dataset.json names 2 channel(s)", root.join("imagesTr/lung_001_0000.nii.gz").display())
    );
    // A file that is not {case}_{XXXX}.nii.gz is named.
    put(&root, "imagesTr/lung_001_1.nii.gz", &s.lung_image);
    let error = expect_error(import(&root, None, None), "badly named file");
    assert_eq!(
        error.to_string(),
        format!("{}: not a nnunet folder: file name is not {{case}}_{{XXXX}}.nii.gz (XXXX = 4-digit channel)", root.join("imagesTr/lung_001_1.nii.gz").display())
    );
}

#[test]
fn generic_folder_pairs_by_folder_and_by_suffix_and_reports_unpaired_files() {
    let Some((s, root)) = folder("generic") else { return };
    put(&root, "images/lung1.nii.gz", &s.lung_image);
    put(&root, "labels/lung1.nii.gz", &s.lung_label);
    put(&root, "flat/brain1_image.nii.gz", &s.brain_image);
    put(&root, "flat/brain1_seg.nii.gz", &s.brain_label);
    put(&root, "flat/brain2.nii.gz", &s.brain_image);
    put(&root, "flat/brain2_mask.nii.gz", &s.brain_label);
    put(&root, "flat/lonely.nii.gz", &s.brain_image);
    put(&root, "labels/orphan.nii.gz", &s.lung_label);
    put(&root, "second/images/brain3.nii.gz", &s.brain_image);
    put(&root, "second/labels/brain3_seg.nii.gz", &s.brain_label);
    write(&root, "notes.txt", "not an image");
    let imported = import(&root, None, None).unwrap();
    assert_eq!(imported.dataset.layout, Layout::Generic);
    assert_eq!(ids(&imported), ["lung1", "flat/brain1", "flat/brain2", "flat/lonely", "second/brain3"]);
    let case = |i: usize| &imported.dataset.cases[i];
    assert_eq!(case(0).label.as_deref(), Some(root.join("labels/lung1.nii.gz").as_path()));
    assert_eq!(case(1).label.as_deref(), Some(root.join("flat/brain1_seg.nii.gz").as_path()));
    assert_eq!(case(2).label.as_deref(), Some(root.join("flat/brain2_mask.nii.gz").as_path()));
    assert_eq!(case(3).label, None);
    assert_eq!(case(4).label.as_deref(), Some(root.join("second/labels/brain3_seg.nii.gz").as_path()));
    assert_eq!(imported.unpaired, [root.join("flat/lonely.nii.gz"), root.join("labels/orphan.nii.gz")]);
}

#[test]
fn csv_manifest_keeps_class_patient_and_other_columns() {
    let Some((s, root)) = folder("csv") else { return };
    csv_folder(s, &root);
    let imported = import(&root, None, None).unwrap();
    let d = &imported.dataset;
    assert_eq!(d.layout, Layout::Csv);
    assert_eq!(ids(&imported), ["a", "b", "c"]);
    assert_eq!(d.cases[1].class_label.as_deref(), Some("healthy"));
    assert_eq!(d.cases[1].patient_id.as_deref(), Some("p1"));
    assert_eq!(d.cases[1].row.iter().collect::<Vec<_>>(), [(&"age".to_string(), &"62".to_string())]);
    assert_eq!(d.cases[0].images, [root.join("images/a.nii.gz")]);

    write(&root, "manifest.csv", "path,label\nimages/a.nii.gz,tumour\n");
    let error = expect_error(import(&root, None, None), "column missing");
    assert_eq!(error.to_string(), format!("{}: not a csv folder: no column \"patient_id\" (columns: path, label)", root.join("manifest.csv").display()));
    write(&root, "manifest.csv", "path,label,patient_id\nimages/a.nii.gz,tumour,p1\nimages/zz.nii.gz,healthy,p2\n");
    let error = expect_error(import(&root, None, None), "file missing");
    assert_eq!(error.to_string(), format!("{}: missing file, referenced by manifest.csv line 3", root.join("images/zz.nii.gz").display()));
}

#[test]
fn luna16_folder_counts_nodules_and_includes_the_data_files() {
    let Some((s, root)) = folder("luna16") else { return };
    let uid = luna16_folder(s, &root);
    let imported = import(&root, None, None).unwrap();
    let d = &imported.dataset;
    assert_eq!(d.layout, Layout::Luna16);
    assert_eq!(ids(&imported), [uid.as_str()]);
    let case = &d.cases[0];
    assert_eq!(case.class_label.as_deref(), Some("nodule"));
    assert_eq!(case.row["nodules"], "2");
    assert_eq!(case.row["positive_candidates"], "1");
    assert_eq!(case.row["subset"], "subset0");
    // The .mhd reads back as lung1, and its data file belongs to the dataset's content.
    assert_eq!(medas_io::read(&case.images[0]).unwrap().size(), medas_io::read(&s.lung_image).unwrap().size());
    assert!(d.extra_files.iter().any(|f| f.file_stem().unwrap().to_string_lossy() == uid), "{:?}", d.extra_files);

    write(&root, "annotations.csv", "uid,x,y,z,d\n");
    let error = expect_error(import(&root, Some(Layout::Luna16), None), "bad header");
    assert_eq!(
        error.to_string(),
        format!("{}: not a luna16 folder: header is \"uid,x,y,z,d\", expected seriesuid,coordX,coordY,coordZ,diameter_mm", root.join("annotations.csv").display())
    );
}

#[test]
fn monuseg_folder_pairs_tiles_with_xml_and_masks() {
    let Some((s, root)) = folder("monuseg") else { return };
    monuseg_folder(s, &root);
    let imported = import(&root, None, None).unwrap();
    let d = &imported.dataset;
    assert_eq!(d.layout, Layout::Monuseg);
    assert_eq!(ids(&imported), ["tile"]);
    assert_eq!(d.cases[0].annotation.as_deref(), Some(root.join("Annotations/tile.xml").as_path()));
    assert_eq!(d.cases[0].label.as_deref(), Some(root.join("Masks/tile.tif").as_path()));
    assert_eq!(imported.unpaired, [root.join("Annotations/orphan.xml")]);
    // The XML holds one traced outline per instance of the mask, each with many vertices.
    let xml = std::fs::read_to_string(root.join("Annotations/tile.xml")).unwrap();
    let mask = medas_io::read(&s.tile_mask).unwrap().voxels().cast::<f64>();
    let instances: std::collections::BTreeSet<u64> = mask.iter().filter(|&&v| v > 0.0).map(|&v| v as u64).collect();
    assert!(instances.len() > 100, "stardist's tile holds {} instances", instances.len());
    assert_eq!(xml.matches("<Region ").count(), instances.len());
    assert!(xml.matches("<Vertex ").count() > 10 * instances.len(), "outlines, not boxes");

    std::fs::remove_file(root.join("Annotations/tile.xml")).unwrap();
    let error = expect_error(import(&root, None, None), "xml missing");
    assert_eq!(error.to_string(), format!("{}: missing file, referenced by {}", root.join("Annotations/tile.xml").display(), root.join("Tissue Images/tile.tif").display()));
}

#[test]
fn a_forced_wrong_layout_names_the_first_file_that_does_not_fit() {
    let Some((s, root)) = folder("wrong") else { return };
    msd_folder(s, &root);
    let json = root.join("dataset.json").display().to_string();
    let cases: [(Layout, String); 5] = [
        (Layout::Nnunet, format!("{json}: not a nnunet folder: no \"channel_names\" key")),
        (Layout::Csv, format!("{}: not a csv folder: file missing", root.join("manifest.csv").display())),
        (Layout::Luna16, format!("{}: not a luna16 folder: file missing", root.join("annotations.csv").display())),
        (Layout::Monuseg, format!("{}: not a monuseg folder: folder missing", root.join("Tissue Images").display())),
        (Layout::Msd, String::new()),
    ];
    for (layout, expected) in cases {
        let result = import(&root, Some(layout), None);
        if expected.is_empty() {
            assert!(result.is_ok(), "the right layout imports");
        } else {
            assert_eq!(expect_error(result, layout.name()).to_string(), expected);
        }
    }
    let nnunet = scratch_dir("dataset-importers/wrong-msd");
    nnunet_folder(s, &nnunet);
    let error = expect_error(import(&nnunet, Some(Layout::Msd), None), "msd on nnunet");
    assert_eq!(error.to_string(), format!("{}: not a msd folder: no \"training\" list", nnunet.join("dataset.json").display()));
}

#[test]
fn auto_detection_says_which_layouts_it_tried() {
    let root = scratch_dir("dataset-importers/nothing");
    std::fs::write(root.join("readme.txt"), "no images here").unwrap();
    let error = expect_error(import(&root, None, None), "no layout");
    assert_eq!(
        error.to_string(),
        format!(
            "{}: no layout fits this folder; tried msd (no dataset.json), nnunet (no dataset.json), luna16 (no annotations.csv), \
             monuseg (no \"Tissue Images\" folder), csv (no manifest.csv), dicom (no folder holds DICOM files), generic (no image files)",
            root.display()
        )
    );
    let error = expect_error(import(&root, Some(Layout::Csv), Some("../escape")), "bad name");
    assert!(matches!(error, medas_dataset::DatasetError::WrongLayout { .. }), "the layout is checked first");
    std::fs::write(root.join("scan.nrrd"), b"header only").unwrap();
    let error = expect_error(import(&root, None, Some("../escape")), "bad name");
    assert_eq!(error.to_string(), "bad dataset name \"../escape\": use letters, digits, '-', '_' or '.', not starting with '.'");
    let error = expect_error(Layout::parse("decathlon"), "unknown layout");
    assert_eq!(error.to_string(), "unknown layout \"decathlon\"; known layouts: msd, nnunet, luna16, monuseg, csv, dicom, generic");
    assert!(matches!(expect_error(import(Path::new("/nonexistent/folder"), None, None), "missing"), medas_dataset::DatasetError::Io { .. }));
}

#[test]
fn dicom_study_folders_pick_a_series_by_modality_and_description() {
    use medas_dataset::{SeriesPick, import_with};
    let Some((_, root)) = folder("dicom") else { return };
    dicom_folder(&root);
    let imported = import(&root, None, None).unwrap();
    let d = &imported.dataset;
    assert_eq!(d.layout, Layout::Dicom);
    assert_eq!(ids(&imported), ["study_a", "study_b/ct"]);
    assert_eq!(d.cases[0].images, [root.join("study_a")]);
    let row = |i: usize, key: &str| imported.dataset.cases[i].row[key].clone();
    // The largest image series by default: lung1's 48 CT slices.
    assert_eq!((row(0, "modality"), row(0, "series_description"), row(0, "size")), ("CT".into(), "chest ct".into(), "512x512x48".into()));
    assert_eq!(row(0, "series_in_folder"), "2");
    assert_eq!(d.modality, ["CT"]);
    // The series medas_io reads for that UID is lung1.
    let uid = row(0, "series_instance_uid");
    let options = medas_io::ReadOptions { series_uid: Some(&uid), progress: None };
    assert_eq!(medas_io::read_with(&root.join("study_a"), &options).unwrap().size(), [512, 512, 48]);

    let mr = SeriesPick { modality: Some("mr".into()), description: None };
    let error = expect_error(import_with(&root, None, None, &mr), "no MR in study_b");
    assert!(error.to_string().starts_with(&format!("{}: no series fits", root.join("study_b/ct").display())), "{error}");
    std::fs::remove_dir_all(root.join("study_b")).unwrap();
    let picked = import_with(&root, None, None, &SeriesPick { modality: None, description: Some("BRAIN".into()) }).unwrap();
    assert_eq!(picked.dataset.cases[0].row["size"], "256x256x25");
    assert_eq!(import_with(&root, None, None, &mr).unwrap().dataset.cases[0].row["modality"], "MR");

    // A series folder's hash is blake3 over "NAME\tHASH\n" of its files, sorted by name.
    let stored = medas_dataset::register(&picked.dataset, &scratch_dir("dataset-importers/dicom-data"), true).unwrap();
    let entry = &stored.manifest.cases[0].images[0];
    let mut names: Vec<_> = std::fs::read_dir(root.join("study_a")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    names.sort();
    let listing: String = names.iter().map(|p| format!("{}\t{}\n", p.file_name().unwrap().to_string_lossy(), blake3_of(p))).collect();
    assert_eq!(names.len(), 48 + 25);
    assert_eq!(entry.blake3, blake3::hash(listing.as_bytes()).to_hex().to_string());
    // Copied, the folder reads back as the same series.
    assert_eq!(entry.path, stored.folder.join("files/study_a"));
    assert_eq!(medas_io::read_with(&entry.path, &options).unwrap().size(), [512, 512, 48]);
}
