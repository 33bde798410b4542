#![no_main]
//! NRRD header + attached data (`.nrrd`): an image or an error, never a panic.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = medas_io::nrrd::read_bytes(data, Path::new("fuzz.nrrd"));
});
