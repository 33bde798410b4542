//! DICOM: single files (including multi-frame and Enhanced CT/MR), series folders assembled
//! into 3-D volumes, and writing volumes back as series.
//!
//! What a read returns, and why (the readers of record are SimpleITK/GDCM for values and geometry,
//! pydicom for the decoded stored values):
//! - Always a 3-D image (`columns × rows × frames`; a single-frame file has one slice), as
//!   SimpleITK does, because every DICOM slice sits in 3-D patient space (LPS, mm).
//! - `spacing[0]` is the distance between columns (`PixelSpacing[1]`), `spacing[1]` between rows
//!   (`PixelSpacing[0]`); the slice spacing comes from the slice positions, else from
//!   `SpacingBetweenSlices` / `GridFrameOffsetVector`, else 1 mm. Missing geometry gives unit
//!   spacing, zero origin and identity direction, as SimpleITK does.
//! - Stored values go through Rescale Slope/Intercept. When slope and intercept are integers the
//!   output is the smallest integer type that holds every possible rescaled stored value
//!   (`u8, i8, u16, i16, u32, i32`, GDCM's rule: CT with `BitsStored = 16` and intercept −1024
//!   becomes `i32`, as in SimpleITK); otherwise `f32` (SimpleITK returns `f64`; the values agree
//!   to f32 precision). Modality LUT sequences are ignored, as SimpleITK does.
//! - MONOCHROME1 is inverted to MONOCHROME2 before rescaling, as SimpleITK/GDCM do: an unsigned
//!   stored value `v` becomes `2^BitsStored − 1 − v`, a signed one `−1 − v`. (pydicom's
//!   `pixel_array` does not invert; [`Values::Stored`] gives exactly what pydicom gives.)
//! - Colour comes out as RGB: YBR_FULL/YBR_FULL_422 are converted (pydicom's formula), palette
//!   colour is expanded through its LUT (8-bit data with 16-bit LUT entries gives `u8` = entry >> 8,
//!   as SimpleITK does; 16-bit data gives `u16` entries).
//! - Compressed transfer syntaxes are decoded by `dicom-pixeldata` (deflate, JPEG lossless,
//!   JPEG-LS through CharLS, JPEG 2000 through OpenJPEG), by our RLE decoder, and colour JPEG
//!   baseline/extended by `jpeg-decoder` with pydicom's choice of colour space (the codestream's
//!   component names and JFIF marker, else the Photometric Interpretation); 12-bit JPEG Extended
//!   and anything else is [`IoError::UnsupportedTransferSyntax`].

mod header;
mod jpeg2000;
mod lengths;
mod modality;
mod pixels;
mod rle;
mod series;
mod uid;
mod write;

pub use series::{SeriesInfo, list_series};

use crate::{Format, IoError, ReadOptions, Result, WriteOptions};
use dicom_object::{DefaultDicomObject, OpenFileOptions};
use medas_image::Image;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

pub(crate) const FORMAT: &str = "dicom";

/// Which voxel values a file read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Values {
    /// Modality values: MONOCHROME1 inverted, palette expanded to RGB, Rescale Slope/Intercept
    /// applied (HU for CT). What [`read`] returns.
    #[default]
    Modality,
    /// The stored values exactly as pydicom's `pixel_array` gives them: unused high bits
    /// masked (or sign-extended), YBR converted to RGB, no inversion, no palette, no rescale.
    Stored,
}

/// Reads a DICOM file, or the series in a folder (see [`ReadOptions::series_uid`]).
pub fn read(path: &Path, options: &ReadOptions) -> Result<Image> {
    if path.is_dir() {
        return series::read_folder(path, options);
    }
    let image = read_file(path, Values::Modality)?;
    if let Some(progress) = options.progress {
        progress(1, 1);
    }
    Ok(image)
}

/// Reads one DICOM file with the chosen kind of [`Values`].
pub fn read_file(path: &Path, values: Values) -> Result<Image> {
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    read_bytes_with(&bytes, path, values)
}

/// Parses one in-memory DICOM file (with or without the 128-byte preamble); `name` is used only
/// in error messages. Never panics on malformed input.
pub fn read_bytes(bytes: &[u8], name: &Path) -> Result<Image> {
    read_bytes_with(bytes, name, Values::Modality)
}

/// [`read_bytes`] with the chosen kind of [`Values`].
pub fn read_bytes_with(bytes: &[u8], name: &Path, values: Values) -> Result<Image> {
    guard(name, || {
        let object = parse(bytes, name, None)?;
        let header = header::Header::from_object(&object, name)?;
        let frames = pixels::decode_stored(&object, &header, bytes, name)?;
        let image = pixels::to_image(frames, &header, values, name)?;
        Ok(image)
    })
}

/// Writes `image` as a DICOM series folder ([`Format::DicomSeries`], one file per slice) or one
/// file ([`Format::Dicom`], multi-frame with per-frame positions when 3-D).
pub fn write(image: &Image, path: &Path, format: Format, options: &WriteOptions) -> Result<()> {
    write::write(image, path, format, options)
}

/// Parses DICOM bytes; `until` stops before that tag (used to read headers only).
pub(crate) fn parse(bytes: &[u8], name: &Path, until: Option<dicom_core::Tag>) -> Result<DefaultDicomObject> {
    parse_with_layout(bytes, name, until).map(|(object, _)| object)
}

/// [`parse`], also returning where the length walk found the native pixel data.
pub(crate) fn parse_with_layout(
    bytes: &[u8],
    name: &Path,
    until: Option<dicom_core::Tag>,
) -> Result<(DefaultDicomObject, lengths::Layout)> {
    if bytes.is_empty() {
        return Err(IoError::corrupt(name, FORMAT, "the file is empty"));
    }
    let mut options = OpenFileOptions::new();
    if let Some(tag) = until {
        options = options.read_until(tag);
    }
    // Every length is checked against the bytes left before dicom-rs sees the file, because
    // dicom-rs allocates a value's buffer from its declared length.
    let first = lengths::check(bytes, name).and_then(|layout| {
        let object = options.clone().from_reader(bytes).map_err(|e| IoError::corrupt(name, FORMAT, e.to_string()))?;
        Ok((object, layout))
    });
    match first {
        Ok(parsed) => Ok(parsed),
        // Some writers declare an explicit-VR syntax but encode the data set with implicit VR
        // (pydicom detects this and reads on); retry so, keeping the declared syntax for the
        // pixel data. The retry reads lengths as implicit ones: check them as such first.
        Err(error) => match lengths::check_as_implicit(bytes, name) {
            Ok(()) => {
                let object = options.transfer_syntax_index(ImplicitVr).from_reader(bytes).map_err(|_| error)?;
                Ok((object, lengths::Layout::default()))
            }
            Err(_) => Err(error),
        },
    }
}

/// A transfer syntax index that reads every data set as Implicit VR Little Endian.
struct ImplicitVr;

impl dicom_encoding::transfer_syntax::TransferSyntaxIndex for ImplicitVr {
    fn get(&self, _uid: &str) -> Option<&dicom_encoding::TransferSyntax> {
        static REGISTRY: dicom_transfer_syntax_registry::TransferSyntaxRegistry =
            dicom_transfer_syntax_registry::TransferSyntaxRegistry;
        REGISTRY.get(dicom_transfer_syntax_registry::entries::IMPLICIT_VR_LITTLE_ENDIAN.uid())
    }
}

/// Runs `work`, turning a panic inside the DICOM libraries into a [`IoError::Corrupt`]:
/// malformed files must give an error, never bring the caller down.
pub(crate) fn guard<T>(name: &Path, work: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(work)) {
        Ok(result) => result,
        Err(panic) => {
            let what = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown reason");
            Err(IoError::corrupt(name, FORMAT, format!("the decoder failed: {what}")))
        }
    }
}
