//! End-to-end tests of `medas dataset`: import (twice: the version is kept), list, show and
//! split on a folder built from real images (pyradiomics lung1/brain1 written as .nii.gz),
//! with `MEDAS_DATA` pointing at a scratch folder.

use medas_testkit::{file, scratch_dir};
use std::path::Path;
mod support;

use support::{fails, ok};

/// `images/{a,b,c,d}.nii.gz` from lung1 and brain1 with a `manifest.csv`; patient p1 has two.
fn classification_folder(root: &Path) -> bool {
    let Some(lung) = file("pyradiomics/lung1_image.nrrd") else { return false };
    let brain = lung.with_file_name("brain1_image.nrrd");
    std::fs::create_dir_all(root.join("images")).unwrap();
    for (name, source) in [("a", &lung), ("b", &brain), ("c", &brain), ("d", &lung)] {
        medas_io::write(&medas_io::read(source).unwrap(), root.join(format!("images/{name}.nii.gz"))).unwrap();
    }
    let rows = "path,label,patient_id,site\nimages/a.nii.gz,tumour,p1,x\nimages/b.nii.gz,healthy,p1,x\nimages/c.nii.gz,healthy,p2,y\nimages/d.nii.gz,tumour,p3,y\n";
    std::fs::write(root.join("manifest.csv"), rows).unwrap();
    true
}

#[test]
fn import_list_show_and_split_a_dataset() {
    let root = scratch_dir("cli-dataset/brains");
    let data = scratch_dir("cli-dataset/data");
    if !classification_folder(&root) {
        return;
    }
    let path = root.to_str().unwrap();
    let first = ok(&data, &["dataset", "import", path]);
    assert!(first.starts_with("brains@v1 (new version): 4 cases, layout csv, 5 files"), "{first}");
    let again = ok(&data, &["dataset", "import", path]);
    assert!(again.starts_with("brains@v1 (unchanged, existing version)"), "{again}");

    let listed = ok(&data, &["dataset", "list"]);
    let rows: Vec<Vec<&str>> = listed.lines().map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows, [vec!["dataset", "versions", "layout", "cases"], vec!["brains", "v1", "csv", "4"]], "{listed}");

    let shown = ok(&data, &["dataset", "show", "brains@v1"]);
    assert!(shown.contains("cases     4 (4 training, 0 test), 5 files"), "{shown}");
    let case_b: Vec<&str> = shown.lines().find(|l| l.starts_with("b ")).unwrap().split_whitespace().collect();
    assert_eq!(&case_b[..6], ["b", "training", "1", "-", "healthy", "p1"], "{shown}");
    let manifest: serde_json::Value = serde_json::from_str(&ok(&data, &["dataset", "show", "brains", "--json"])).unwrap();
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["cases"][0]["images"][0]["path"], root.join("images/a.nii.gz").to_str().unwrap());
    assert_eq!(manifest["cases"][0]["images"][0]["bytes"], std::fs::metadata(root.join("images/a.nii.gz")).unwrap().len());

    let split = ok(&data, &["dataset", "split", "brains", "--kind", "kfold", "--folds", "3", "--seed", "7", "--group-by-patient"]);
    let saved = data.join("datasets/brains/v1/splits/kfold3-seed7-patients.json");
    assert!(split.starts_with(&format!("split kfold3-seed7-patients of brains@v1: {}", saved.display())), "{split}");
    let contents = std::fs::read_to_string(&saved).unwrap();
    let json: serde_json::Value = serde_json::from_str(&contents).unwrap();
    let validation: Vec<Vec<String>> = json["folds"].as_array().unwrap().iter().map(|f| serde_json::from_value(f["validation"].clone()).unwrap()).collect();
    // Patient p1 (cases a and b) is validated in one fold, together.
    assert!(validation.iter().any(|v| v == &["a", "b"]), "{validation:?}");
    ok(&data, &["dataset", "split", "brains", "--kind", "kfold", "--folds", "3", "--seed", "7", "--group-by-patient"]);
    assert_eq!(std::fs::read_to_string(&saved).unwrap(), contents, "the same seed gives the same split");
    assert!(ok(&data, &["dataset", "show", "brains"]).contains("splits    kfold3-seed7-patients"));
    let holdout = ok(&data, &["dataset", "split", "brains", "--kind", "holdout", "--validation-fraction", "0.5", "--seed", "1", "--stratify"]);
    assert!(holdout.contains("holdout0.5-seed1-stratified"), "{holdout}");

    // The fingerprint: sizes over lung1 (512 x 512 x 48) and brain1 (256 x 256 x 25) twice each.
    let described = ok(&data, &["dataset", "show", "brains", "--fingerprint"]);
    let axis0: Vec<&str> = described.lines().find(|l| l.starts_with("0 ")).unwrap().split_whitespace().collect();
    assert_eq!(&axis0[..4], ["0", "256", "384", "512"], "{described}");
    assert!(described.contains("foreground intensity: - (no labelled cases)") && described.contains("anomalies: none"), "{described}");
    assert!(data.join("datasets/brains/v1/fingerprint.json").is_file());
    let print: serde_json::Value = serde_json::from_str(&ok(&data, &["dataset", "show", "brains", "--fingerprint", "--json"])).unwrap();
    assert_eq!(print["shape"][2]["median"], 36.5);

    // A changed file gives v2; v1 stays.
    std::fs::write(root.join("images/d.nii.gz"), b"changed").unwrap();
    assert!(ok(&data, &["dataset", "import", path]).starts_with("brains@v2 (new version)"));
    assert!(ok(&data, &["dataset", "list"]).contains("v1 v2"));
}

#[test]
fn dataset_errors_are_clear_and_exit_non_zero() {
    let root = scratch_dir("cli-dataset/errors");
    let data = scratch_dir("cli-dataset/errors-data");
    std::fs::write(root.join("manifest.csv"), "path,label,patient_id\n").unwrap();
    let message = fails(&data, &["dataset", "import", root.to_str().unwrap(), "--layout", "msd"]);
    assert_eq!(message, format!("error: {}: not a msd folder: file missing\n", root.join("dataset.json").display()));
    let message = fails(&data, &["dataset", "import", root.to_str().unwrap(), "--layout", "decathlon"]);
    assert!(message.contains("unknown layout \"decathlon\"; known layouts: msd, nnunet"), "{message}");
    let message = fails(&data, &["dataset", "show", "nope"]);
    assert_eq!(message, format!("error: dataset \"nope\" is not registered (data folder {})\n", data.display()));
    assert_eq!(ok(&data, &["dataset", "list"]), format!("no datasets in {}\n", data.display()));
}

/// `dataset generate --import` for every kind: the importer detects the layout the generator
/// wrote, and the fingerprint describes what was generated (every case, its grid, the labels
/// the generator names, no anomalies).
#[test]
fn generated_datasets_import_and_fingerprint() {
    let data = scratch_dir("cli-dataset/generated-data");
    // kind, layout the importer must detect, image shape (RGB tiles carry 3 components),
    // labels every case must contain
    let volume: &[u64] = &[64, 64, 64];
    let kinds: [(&str, &str, &[u64], &[i64]); 5] = [
        ("nuclei", "monuseg", &[64, 64, 3], &[1]),
        ("liver", "nnunet", volume, &[1]),
        ("chest-organs", "nnunet", volume, &[1, 2, 3, 4]),
        ("lung-nodules", "luna16", volume, &[]),
        ("brain-classes", "csv", volume, &[]),
    ];
    for (kind, layout, expected_shape, labels) in kinds {
        let out = scratch_dir(&format!("cli-dataset/generated/{kind}"));
        let _ = std::fs::remove_dir_all(&out);
        let text = ok(&data, &["dataset", "generate", kind, out.to_str().unwrap(), "--cases", "3", "--seed", "7", "--size", "64", "--import"]);
        let name = out.file_name().unwrap().to_str().unwrap();
        assert!(text.contains(&format!("registered {name}@v1: 3 cases, layout {layout}")), "{kind}: {text}");

        let shown = ok(&data, &["dataset", "show", name, "--fingerprint", "--json"]);
        let print: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(print["anomalies"], serde_json::json!([]), "{kind}: {shown}");
        let cases = print["cases"].as_array().unwrap();
        assert_eq!(cases.len(), 3, "{kind}");
        for case in cases {
            let shape: Vec<u64> = case["shape"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
            assert_eq!(shape, expected_shape, "{kind}");
            let found: Vec<i64> = case["labels"].as_object().unwrap().keys().map(|k| k.parse().unwrap()).collect();
            assert!(labels.iter().all(|l| found.contains(l)), "{kind}: labels {found:?}, expected at least {labels:?}");
        }
        if kind == "lung-nodules" {
            // The nodules of each scan, as the manifest counts them, against the generator's CSV.
            let manifest: serde_json::Value = serde_json::from_str(&ok(&data, &["dataset", "show", name, "--json"])).unwrap();
            let csv = std::fs::read_to_string(out.join("annotations.csv")).unwrap();
            for case in manifest["cases"].as_array().unwrap() {
                let id = case["id"].as_str().unwrap();
                let rows = csv.lines().filter(|l| l.starts_with(&format!("{id},"))).count();
                assert!(rows >= 1, "{id}: every generated scan has a nodule");
                assert_eq!(case["row"]["nodules"], rows.to_string(), "{id}");
            }
        }
        eprintln!("{kind}: layout {layout}, 3 cases, shape {expected_shape:?}, labels {labels:?}");
    }
}

#[test]
fn generate_refuses_unknown_kinds_and_bad_sizes() {
    let data = scratch_dir("cli-dataset/generate-errors-data");
    let out = scratch_dir("cli-dataset/generate-errors");
    let message = fails(&data, &["dataset", "generate", "kidney", out.to_str().unwrap()]);
    assert!(message.contains("unknown dataset kind `kidney`; the kinds are: nuclei, liver, chest-organs, lung-nodules, brain-classes"), "{message}");
    let message = fails(&data, &["dataset", "generate", "liver", out.to_str().unwrap(), "--size", "16"]);
    assert!(message.contains("16") && message.contains("64"), "names the size given and the smallest allowed: {message}");
}
