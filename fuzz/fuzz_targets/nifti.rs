#![no_main]
//! Any byte string given to the NIfTI parser must give an image or an error, never a panic,
//! an abort or a runaway allocation. Tries the bytes both as given and gzip-wrapped is left to
//! the corpus (seed it with real .nii and .nii.gz files).
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = medas_io::nifti::read_bytes(data, Path::new("fuzz.nii"));
});
