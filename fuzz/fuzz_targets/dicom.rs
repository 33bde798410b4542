#![no_main]
//! Any byte string given to the DICOM parser and pixel decoders must give an image or an
//! error: never a panic, an abort or a runaway allocation.
use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let _ = medas_io::dicom::read_bytes(data, Path::new("fuzz.dcm"));
});
