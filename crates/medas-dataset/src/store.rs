//! Immutable dataset versions in the MEDAS data folder:
//! `{data}/datasets/{name}/v{N}/manifest.json` (+ `files/` when copied, `splits/`).
//!
//! A version is identified by its content key (file hashes, case structure, and where the data
//! lives); registering a dataset whose key matches an existing version returns that version,
//! anything else gives v{N+1}. Versions are written to a scratch folder and renamed into place.

use crate::hash::hash_files;
use crate::model::{Case, Dataset, LabelName, Layout, Subset};
use crate::{DatasetError, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Format version of `manifest.json`.
pub const MANIFEST_FORMAT: u32 = 1;

/// The MEDAS data folder: `$MEDAS_DATA`, else `$XDG_DATA_HOME/medas`, else `~/.local/share/medas`.
pub fn data_dir() -> PathBuf {
    data_dir_from(|key| std::env::var_os(key))
}

/// [`data_dir`] with the environment given as a lookup (empty values count as unset).
pub fn data_dir_from(lookup: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let env = |key: &str| lookup(key).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dir) = env("MEDAS_DATA") {
        return dir;
    }
    if let Some(dir) = env("XDG_DATA_HOME") {
        return dir.join("medas");
    }
    env("HOME").unwrap_or_else(|| PathBuf::from(".")).join(".local/share/medas")
}

/// One file of a version: where it is, its path relative to the imported folder, size, hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Absolute path (in the source folder, or in the version's `files/` when copied).
    pub path: PathBuf,
    /// Path relative to the imported folder (`imagesTr/liver_3.nii.gz`).
    pub relative: String,
    pub bytes: u64,
    /// blake3 of the contents, lowercase hex.
    pub blake3: String,
}

/// A case as stored: [`Case`] with every path replaced by its [`FileEntry`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ManifestCase {
    pub id: String,
    pub images: Vec<FileEntry>,
    pub label: Option<FileEntry>,
    pub annotation: Option<FileEntry>,
    pub class_label: Option<String>,
    pub patient_id: Option<String>,
    pub subset: Subset,
    pub row: BTreeMap<String, String>,
}

/// `manifest.json` of one dataset version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub medas_dataset: u32,
    pub name: String,
    pub version: u32,
    pub layout: Layout,
    /// The folder that was imported.
    pub source_root: PathBuf,
    /// Whether the files were copied into the version folder (else they stay in place).
    pub copied: bool,
    pub modality: Vec<String>,
    pub label_names: Vec<LabelName>,
    pub cases: Vec<ManifestCase>,
    pub extra_files: Vec<FileEntry>,
    /// blake3 of everything that defines the version (see [`Manifest::content_key`]).
    pub content_key: String,
}

impl Manifest {
    /// Hash of the manifest with the version number, the key itself and (for copied data) the
    /// absolute paths left out: equal keys mean the same data, the same cases, the same place.
    fn content_key(&self) -> String {
        let mut neutral = self.clone();
        neutral.version = 0;
        neutral.content_key.clear();
        if neutral.copied {
            neutral.source_root.clear();
            neutral.cases.iter_mut().flat_map(case_entries_mut).chain(neutral.extra_files.iter_mut()).for_each(|e| e.path.clear());
        }
        let json = serde_json::to_vec(&neutral).expect("manifest serialises");
        blake3::hash(&json).to_hex().to_string()
    }

    /// Every file entry: cases' files in order, then the extra files.
    pub fn files(&self) -> impl Iterator<Item = &FileEntry> {
        self.cases.iter().flat_map(|c| c.images.iter().chain(c.label.iter()).chain(c.annotation.iter())).chain(self.extra_files.iter())
    }

    /// Total size of the files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files().map(|f| f.bytes).sum()
    }
}

fn case_entries_mut(case: &mut ManifestCase) -> impl Iterator<Item = &mut FileEntry> {
    case.images.iter_mut().chain(case.label.iter_mut()).chain(case.annotation.iter_mut())
}

/// The outcome of [`register`]: the version's manifest and whether it was newly made.
#[derive(Clone, Debug)]
pub struct Registered {
    pub manifest: Manifest,
    pub created: bool,
    pub folder: PathBuf,
}

/// Hashes the dataset's files (in parallel) and stores it as a version of `dataset.name` under
/// `data`, unless an existing version has the same content key. With `copy`, files go into the
/// version's `files/` folder (by their relative paths) and the manifest points there.
pub fn register(dataset: &Dataset, data: &Path, copy: bool) -> Result<Registered> {
    check_name(&dataset.name)?;
    // Copied files' manifest paths must not depend on the working folder.
    let data = &std::path::absolute(data).map_err(DatasetError::io(data))?;
    let mut manifest = hashed_manifest(dataset, copy)?;
    manifest.content_key = manifest.content_key();
    let folder = dataset_folder(data, &dataset.name);
    for version in versions(data, &dataset.name)? {
        let existing = load(data, &dataset.name, Some(version))?;
        if existing.content_key == manifest.content_key {
            return Ok(Registered { manifest: existing, created: false, folder: version_folder(data, &dataset.name, version) });
        }
    }
    std::fs::create_dir_all(&folder).map_err(DatasetError::io(&folder))?;
    write_new_version(&folder, manifest)
}

/// Claims the next free `v{N}`: the version is assembled in a scratch folder and renamed into
/// place, so a reader never sees half a version; losing a race moves on to the next number.
fn write_new_version(folder: &Path, mut manifest: Manifest) -> Result<Registered> {
    static ATTEMPT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let scratch = folder.join(format!(".partial-{}-{attempt}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(DatasetError::io(&scratch))?;
    loop {
        let version = versions_in(folder)?.last().map_or(1, |v| v + 1);
        let target = folder.join(format!("v{version}"));
        manifest.version = version;
        if manifest.copied {
            copy_files(&mut manifest, &scratch, &target)?;
        }
        write_json(&scratch.join("manifest.json"), &manifest)?;
        match std::fs::rename(&scratch, &target) {
            Ok(()) => return Ok(Registered { manifest, created: true, folder: target }),
            Err(_) if target.exists() => continue,
            Err(e) => return Err(DatasetError::Io { path: target, source: e }),
        }
    }
}

/// Copies every file into `scratch/files/{relative}` and points the manifest at its final place
/// under `target`.
fn copy_files(manifest: &mut Manifest, scratch: &Path, target: &Path) -> Result<()> {
    let entries = manifest.cases.iter_mut().flat_map(case_entries_mut).chain(manifest.extra_files.iter_mut());
    for entry in entries {
        let relative = Path::new("files").join(&entry.relative);
        let destination = scratch.join(&relative);
        if !destination.exists() {
            copy_file_or_folder(&entry.path, &destination)?;
        }
        entry.path = target.join(relative);
    }
    Ok(())
}

/// Copies a file, or the files directly in a folder (a DICOM series), making folders.
fn copy_file_or_folder(from: &Path, to: &Path) -> Result<()> {
    let (sources, folder) = if from.is_dir() { (crate::hash::folder_files(from)?, to) } else { (vec![from.to_path_buf()], to.parent().unwrap_or(to)) };
    std::fs::create_dir_all(folder).map_err(DatasetError::io(folder))?;
    for source in sources {
        let destination = if from.is_dir() { to.join(source.file_name().expect("a file has a name")) } else { to.to_path_buf() };
        std::fs::copy(&source, &destination).map_err(DatasetError::io(&source))?;
    }
    Ok(())
}

/// The manifest of `dataset` with every file hashed; paths still point at the source.
fn hashed_manifest(dataset: &Dataset, copy: bool) -> Result<Manifest> {
    let paths: Vec<PathBuf> = dataset.cases.iter().flat_map(Case::files).chain(dataset.extra_files.iter()).cloned().collect();
    let hashes = hash_files(&paths)?;
    let mut entries = paths.iter().zip(hashes).map(|(path, (blake3, bytes))| FileEntry {
        path: path.clone(),
        relative: relative_name(&dataset.root, path),
        bytes,
        blake3,
    });
    let mut take = || entries.next().expect("one hash per file");
    let cases = dataset
        .cases
        .iter()
        .map(|case| ManifestCase {
            id: case.id.clone(),
            images: case.images.iter().map(|_| take()).collect(),
            label: case.label.as_ref().map(|_| take()),
            annotation: case.annotation.as_ref().map(|_| take()),
            class_label: case.class_label.clone(),
            patient_id: case.patient_id.clone(),
            subset: case.subset,
            row: case.row.clone(),
        })
        .collect();
    let extra_files = dataset.extra_files.iter().map(|_| take()).collect();
    Ok(Manifest {
        medas_dataset: MANIFEST_FORMAT,
        name: dataset.name.clone(),
        version: 0,
        layout: dataset.layout,
        source_root: dataset.root.clone(),
        copied: copy,
        modality: dataset.modality.clone(),
        label_names: dataset.label_names.clone(),
        cases,
        extra_files,
        content_key: String::new(),
    })
}

/// `path` relative to `root` with '/' separators; a file outside `root` (a CSV row pointing
/// elsewhere, `../x.nii.gz` included) is named `external/` + its full resolved path, so a copy
/// never lands outside the version's `files/`.
fn relative_name(root: &Path, path: &Path) -> String {
    let joined = |p: &Path| p.iter().map(|c| c.to_string_lossy()).collect::<Vec<_>>().join("/");
    match path.strip_prefix(root) {
        Ok(inside) if inside.components().all(|c| matches!(c, std::path::Component::Normal(_))) => joined(inside),
        _ => {
            let resolved = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
            format!("external/{}", joined(resolved.strip_prefix("/").unwrap_or(&resolved)))
        }
    }
}

/// Dataset names become folder names: keep them to a safe alphabet.
pub fn check_name(name: &str) -> Result<()> {
    let safe = !name.is_empty() && !name.starts_with('.') && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if safe { Ok(()) } else { Err(DatasetError::BadName { name: name.to_string() }) }
}

/// `{data}/datasets/{name}`.
pub fn dataset_folder(data: &Path, name: &str) -> PathBuf {
    data.join("datasets").join(name)
}

/// `{data}/datasets/{name}/v{version}`.
pub fn version_folder(data: &Path, name: &str, version: u32) -> PathBuf {
    dataset_folder(data, name).join(format!("v{version}"))
}

/// The versions of a dataset, ascending; empty when it is not registered.
pub fn versions(data: &Path, name: &str) -> Result<Vec<u32>> {
    check_name(name)?;
    versions_in(&dataset_folder(data, name))
}

fn versions_in(folder: &Path) -> Result<Vec<u32>> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Ok(Vec::new()) };
    let mut found: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("manifest.json").is_file())
        .filter_map(|e| e.file_name().to_str()?.strip_prefix('v')?.parse().ok())
        .collect();
    found.sort_unstable();
    Ok(found)
}

/// The registered datasets with their versions, by name.
pub fn list(data: &Path) -> Result<Vec<(String, Vec<u32>)>> {
    let root = data.join("datasets");
    let Ok(entries) = std::fs::read_dir(&root) else { return Ok(Vec::new()) };
    let mut names: Vec<String> = entries.filter_map(|e| e.ok()?.file_name().into_string().ok()).filter(|n| check_name(n).is_ok()).collect();
    names.sort();
    let mut listed = Vec::new();
    for name in names {
        let found = versions(data, &name)?;
        if !found.is_empty() {
            listed.push((name, found));
        }
    }
    Ok(listed)
}

/// Reads a version's manifest; `None` means the latest version.
pub fn load(data: &Path, name: &str, version: Option<u32>) -> Result<Manifest> {
    let known = versions(data, name)?;
    let Some(&latest) = known.last() else {
        return Err(DatasetError::UnknownDataset { name: name.to_string(), data: data.to_path_buf() });
    };
    let version = version.unwrap_or(latest);
    if !known.contains(&version) {
        let known = known.iter().map(|v| format!("v{v}")).collect::<Vec<_>>().join(", ");
        return Err(DatasetError::UnknownVersion { name: name.to_string(), version, known });
    }
    read_json(&version_folder(data, name, version).join("manifest.json"))
}

/// Splits `NAME` or `NAME@vN` (also `NAME@N`) into name and version.
pub fn parse_reference(reference: &str) -> Result<(String, Option<u32>)> {
    let Some((name, version)) = reference.rsplit_once('@') else { return Ok((reference.to_string(), None)) };
    let number = version.strip_prefix('v').unwrap_or(version).parse().map_err(|_| DatasetError::BadName { name: reference.to_string() })?;
    Ok((name.to_string(), Some(number)))
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).map_err(DatasetError::io(path))?;
    serde_json::from_slice(&bytes).map_err(|source| DatasetError::Json { path: path.to_path_buf(), source })
}

/// Writes pretty JSON through a temporary file renamed into place.
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("serialisable") + "\n";
    let partial = path.with_extension(format!("partial-{}", std::process::id()));
    std::fs::write(&partial, text).map_err(DatasetError::io(&partial))?;
    std::fs::rename(&partial, path).map_err(DatasetError::io(path))
}
