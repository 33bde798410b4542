#![no_main]
//! NumPy `.npy` parsing: an array or an error, never a panic.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = medas_io::npy::read_bytes(data, Path::new("fuzz.npy"));
});
