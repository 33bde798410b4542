//! Immutable versions: an unchanged folder gives the same version, one changed byte a new one;
//! manifest hashes equal blake3 of the files' bytes computed here; `--copy` stores the files
//! in the version folder with the same hashes.

mod support;

use medas_dataset::store::{self, load, versions};
use medas_dataset::{import, register};
use medas_testkit::scratch_dir;
use support::*;

#[test]
fn unchanged_folder_keeps_its_version_and_a_changed_byte_makes_a_new_one() {
    let Some(s) = sources("versions") else { return };
    let root = scratch_dir("dataset-versions/nnunet");
    let data = scratch_dir("dataset-versions/data");
    nnunet_folder(s, &root);
    let first = register(&import(&root, None, Some("lesions")).unwrap().dataset, &data, false).unwrap();
    assert!(first.created);
    assert_eq!(first.manifest.version, 1);
    assert_eq!(first.folder, data.join("datasets/lesions/v1"));
    assert!(first.folder.join("manifest.json").is_file());
    let files: Vec<_> = first.manifest.files().collect();
    assert_eq!(files.len(), 9, "4 training channels, 2 labels, 2 test channels, dataset.json: {files:#?}");
    for entry in &files {
        assert_eq!(entry.blake3, blake3_of(&entry.path), "{}", entry.path.display());
        assert_eq!(entry.bytes, std::fs::metadata(&entry.path).unwrap().len());
        assert!(entry.path.starts_with(&root), "in place: {}", entry.path.display());
    }
    assert_eq!(first.manifest.cases[1].images[1].relative, "imagesTr/lung_001_0001.nii.gz");

    let again = register(&import(&root, None, Some("lesions")).unwrap().dataset, &data, false).unwrap();
    assert!(!again.created);
    assert_eq!(again.manifest, first.manifest);

    // Flip one byte in the middle of one image: a new version, differing in that file's hash only.
    let changed = root.join("imagesTr/brain_002_0001.nii.gz");
    let mut bytes = std::fs::read(&changed).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&changed, &bytes).unwrap();
    let second = register(&import(&root, None, Some("lesions")).unwrap().dataset, &data, false).unwrap();
    assert!(second.created);
    assert_eq!(second.manifest.version, 2);
    assert_eq!(versions(&data, "lesions").unwrap(), [1, 2]);
    let differing: Vec<_> = first.manifest.files().zip(second.manifest.files()).filter(|(a, b)| a.blake3 != b.blake3).map(|(_, b)| b.path.clone()).collect();
    assert_eq!(differing, std::slice::from_ref(&changed));
    assert_eq!(second.manifest.files().find(|f| f.path == changed).unwrap().blake3, blake3_of(&changed));
    // Both versions stay readable; the latest is the default.
    assert_eq!(load(&data, "lesions", None).unwrap().version, 2);
    assert_eq!(load(&data, "lesions", Some(1)).unwrap(), first.manifest);
    assert_eq!(store::list(&data).unwrap(), [("lesions".to_string(), vec![1, 2])]);
    let error = load(&data, "lesions", Some(7)).unwrap_err();
    assert_eq!(error.to_string(), "dataset \"lesions\" has no version v7 (versions: v1, v2)");
}

#[test]
fn copied_versions_hold_the_files_and_survive_the_source_changing() {
    let Some(s) = sources("versions") else { return };
    let root = scratch_dir("dataset-versions/csv");
    let data = scratch_dir("dataset-versions/data-copy");
    csv_folder(s, &root);
    let dataset = import(&root, None, None).unwrap().dataset;
    let stored = register(&dataset, &data, true).unwrap();
    assert!(stored.manifest.copied);
    for entry in stored.manifest.files() {
        assert_eq!(entry.path, stored.folder.join("files").join(&entry.relative));
        assert_eq!(entry.blake3, blake3_of(&entry.path));
    }
    assert_eq!(blake3_of(&stored.folder.join("files/images/a.nii.gz")), blake3_of(&root.join("images/a.nii.gz")));
    // Same content copied again: same version. In place instead: a new version (it points elsewhere).
    assert!(!register(&dataset, &data, true).unwrap().created);
    let in_place = register(&dataset, &data, false).unwrap();
    assert_eq!((in_place.created, in_place.manifest.version), (true, 2));
    // A CSV row pointing outside the folder is copied under files/external/, never beside files/.
    let outside = root.parent().unwrap().join("outside-csv.nii.gz");
    std::fs::copy(root.join("images/b.nii.gz"), &outside).unwrap();
    write(&root, "manifest.csv", "path,label,patient_id\n../outside-csv.nii.gz,x,p9\nimages/a.nii.gz,y,p1\n");
    let with_outside = register(&import(&root, None, None).unwrap().dataset, &data, true).unwrap();
    let entry = &with_outside.manifest.cases[0].images[0];
    assert_eq!(entry.relative, format!("external/{}", outside.canonicalize().unwrap().to_string_lossy().trim_start_matches('/')));
    assert!(entry.path.starts_with(with_outside.folder.join("files/external")) && entry.path.is_file(), "{}", entry.path.display());
    // The copy is independent of the source.
    std::fs::write(root.join("images/a.nii.gz"), b"overwritten").unwrap();
    let copy = load(&data, "csv", Some(1)).unwrap();
    assert_eq!(store::list(&data).unwrap(), [("csv".to_string(), vec![1, 2, 3])]);
    let a = copy.files().find(|f| f.relative == "images/a.nii.gz").unwrap();
    assert_eq!(a.blake3, blake3_of(&a.path));
}

#[test]
fn the_data_folder_follows_the_environment() {
    let env = |pairs: &'static [(&'static str, &'static str)]| move |key: &str| pairs.iter().find(|(k, _)| *k == key).map(|(_, v)| v.into());
    const ALL: [(&str, &str); 3] = [("MEDAS_DATA", "/d/medas"), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")];
    assert_eq!(store::data_dir_from(env(&ALL)), std::path::Path::new("/d/medas"));
    assert_eq!(store::data_dir_from(env(&[("MEDAS_DATA", ""), ("XDG_DATA_HOME", "/x"), ("HOME", "/h")])), std::path::Path::new("/x/medas"));
    assert_eq!(store::data_dir_from(env(&[("HOME", "/h")])), std::path::Path::new("/h/.local/share/medas"));
}

#[test]
fn splits_are_saved_with_the_version_and_never_change() {
    use medas_dataset::split::{self, SplitKind, SplitOptions};
    let Some(s) = sources("versions") else { return };
    let root = scratch_dir("dataset-versions/msd");
    let data = scratch_dir("dataset-versions/data-splits");
    msd_folder(s, &root);
    let stored = register(&import(&root, None, None).unwrap().dataset, &data, false).unwrap();
    let options = SplitOptions { kind: SplitKind::Kfold { folds: 2 }, seed: 3, stratify: false, group_by_patient: false };
    let made = split::split_manifest(&stored.manifest, &options.default_name(), options).unwrap();
    assert_eq!(made.name, "kfold2-seed3");
    // The MSD test image is not split; the two training cases are validated once each.
    let mut validated: Vec<&str> = made.folds.iter().flat_map(|f| f.validation.iter().map(String::as_str)).collect();
    validated.sort();
    assert_eq!(validated, ["brain1", "lung1"]);
    let path = split::save(&data, &made).unwrap();
    assert_eq!(path, data.join("datasets/msd/v1/splits/kfold2-seed3.json"));
    assert_eq!(split::save(&data, &made).unwrap(), path, "saving the same split again is a no-op");
    assert_eq!(split::list(&data, "msd", 1).unwrap(), ["kfold2-seed3"]);
    let mut other = made.clone();
    other.folds.reverse();
    let error = split::save(&data, &other).unwrap_err();
    assert_eq!(error.to_string(), format!("split \"kfold2-seed3\" of msd@v1 already exists with different contents ({})", path.display()));
    // Re-importing the unchanged folder finds the same version and its split.
    let again = register(&import(&root, None, None).unwrap().dataset, &data, false).unwrap();
    assert_eq!(again.folder, stored.folder);
    assert!(again.folder.join("splits/kfold2-seed3.json").is_file());
}
