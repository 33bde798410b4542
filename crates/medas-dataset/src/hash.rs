//! Content hashes of files: blake3, streamed (a file is never read whole into memory) and
//! computed for many files in parallel.

use crate::{DatasetError, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// The blake3 hash (lowercase hex) and size in bytes of one file, read in chunks.
pub fn hash_file(path: &Path) -> Result<(String, u64)> {
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
