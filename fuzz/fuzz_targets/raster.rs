#![no_main]
//! PNG/JPEG/TIFF decoding: an image or an error, never a panic.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = medas_io::raster::read_bytes(data, Path::new("fuzz.tif"));
});
