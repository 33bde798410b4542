//! Content hashes of files: blake3, streamed (a file is never read whole into memory) and
//! computed for many files in parallel. A folder (a DICOM series) hashes as the blake3 of the
//! lines `NAME\tHASH\n` of the files directly in it (hidden ones left out), sorted by name.

use crate::{DatasetError, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The blake3 hash (lowercase hex) and size in bytes of one file (read in chunks) or folder.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
    if path.is_dir() {
        return hash_folder(path);
    }
    let file = std::fs::File::open(path).map_err(DatasetError::io(path))?;
    let mut hasher = blake3::Hasher::new();
    let bytes = hasher.update_reader(file).map_err(DatasetError::io(path))?.count();
    Ok((hasher.finalize().to_hex().to_string(), bytes))
}

/// [`hash_file`] for every path, in parallel; results in the order of `paths`. The first
/// failure (in that order) is returned.
pub fn hash_files(paths: &[PathBuf]) -> Result<Vec<(String, u64)>> {
    paths.par_iter().map(|p| hash_file(p)).collect()
}

/// The files directly in a folder, hidden ones left out, sorted by name.
pub fn folder_files(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(DatasetError::io(folder))? {
        let entry = entry.map_err(DatasetError::io(folder))?;
        if !entry.file_name().to_string_lossy().starts_with('.') && entry.path().is_file() {
            files.push(entry.path());
        }
    }
    files.sort();
    Ok(files)
}

fn hash_folder(folder: &Path) -> Result<(String, u64)> {
    let files = folder_files(folder)?;
    let hashes = hash_files(&files)?;
    let mut listing = blake3::Hasher::new();
    for (file, (hash, _)) in files.iter().zip(&hashes) {
        let name = file.file_name().expect("a file has a name").to_string_lossy();
        listing.update(format!("{name}\t{hash}\n").as_bytes());
    }
    Ok((listing.finalize().to_hex().to_string(), hashes.iter().map(|(_, bytes)| bytes).sum()))
}
