//! What the medas-synth tests share: generating into a fresh folder, reading images back.

#![allow(dead_code)]

use medas_image::Image;
use medas_synth::{GenerateOptions, Kind, Summary, generate};
use std::path::{Path, PathBuf};

/// Generates `cases` of `kind` at `size` voxels per axis into a new temporary folder.
pub fn generated(kind: Kind, cases: usize, seed: u64, size: usize) -> (tempfile::TempDir, Summary) {
    let folder = tempfile::tempdir().expect("temporary folder");
    let options = GenerateOptions { cases, seed, size: Some(vec![size]), overwrite: false };
    let summary = generate(kind, &options, folder.path(), &|_, _| {}).expect("generation succeeds");
    (folder, summary)
}

pub fn read(folder: &Path, relative: impl AsRef<Path>) -> Image {
    medas_io::read(folder.join(relative)).expect("generated image reads back")
}

/// Every voxel as f64 (first axis fastest).
pub fn values(image: &Image) -> Vec<f64> {
    let array = image.voxels().cast::<f64>();
    // The transpose's logical order is the original's Fortran order.
    array.t().iter().cloned().collect()
}

/// All files under `folder` with their bytes, sorted by path.
pub fn tree(folder: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![folder.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.strip_prefix(folder).unwrap().to_path_buf(), std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

/// Linear index of (i, j, k) in a Fortran-ordered volume of `size`.
pub fn at(size: &[usize], i: usize, j: usize, k: usize) -> usize {
    i + size[0] * (j + size[1] * k)
}
