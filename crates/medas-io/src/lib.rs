//! Reading and writing medical images.
//!
//! [`read`] and [`write`] pick the format from the file's first bytes and its extension
//! (see [`detect`]); each format also has its own module with format-specific entry points
//! (DICOM series listing, whole-slide regions, ...). Every reader returns an
//! [`medas_image::Image`] whose geometry is in LPS millimetres, exactly as SimpleITK reports it.

mod detect;
pub mod dicom;
mod error;
pub mod metaimage;
pub mod nifti;
pub mod npy;
pub mod nrrd;
pub mod raster;
pub mod raw;
pub mod wsi;

pub use detect::{Format, detect, format_for_output};
pub use error::{IoError, Result};

use medas_image::Image;
use std::path::Path;

/// Reports progress of long work as `(done, total)` units (files, slices, ...).
pub type Progress<'a> = &'a (dyn Fn(usize, usize) + Sync);

/// Options for [`read_with`].
#[derive(Default, Clone, Copy)]
pub struct ReadOptions<'a> {
    /// For a DICOM folder holding several series: the SeriesInstanceUID to read.
    pub series_uid: Option<&'a str>,
    pub progress: Option<Progress<'a>>,
}

/// Options for [`write_with`].
#[derive(Default, Clone, Copy)]
pub struct WriteOptions<'a> {
    /// Format to write; by default chosen from the output path (see [`format_for_output`]).
    pub format: Option<Format>,
    pub progress: Option<Progress<'a>>,
}

/// Reads an image, choosing the reader by content and extension.
pub fn read(path: impl AsRef<Path>) -> Result<Image> {
    read_with(path.as_ref(), &ReadOptions::default())
}

/// [`read`] with options.
///
/// A whole-slide image is read as a thumbnail of at most 2048 pixels a side; use
/// [`wsi::Slide`] for levels and regions at full resolution.
pub fn read_with(path: &Path, options: &ReadOptions) -> Result<Image> {
    let format = detect(path)?;
    let mut image = match format {
        Format::Nifti => nifti::read(path),
        Format::Dicom | Format::DicomSeries => dicom::read(path, options),
        Format::MetaImage => metaimage::read(path),
        Format::Nrrd => nrrd::read(path),
        Format::Npy | Format::Npz => npy::read(path),
        Format::Png | Format::Jpeg | Format::Tiff | Format::PngStack => raster::read(path, options),
        Format::WholeSlide => wsi::read_thumbnail_image(path, WHOLE_SLIDE_THUMBNAIL),
    }?;
    image.metadata.set(medas_image::keys::SOURCE_FORMAT, format.name());
    Ok(image)
}

/// Longest side, in pixels, of the image [`read`] returns for a whole-slide file.
pub const WHOLE_SLIDE_THUMBNAIL: usize = 2048;

/// Writes an image, choosing the writer from the output path.
pub fn write(image: &Image, path: impl AsRef<Path>) -> Result<()> {
    write_with(image, path.as_ref(), &WriteOptions::default())
}

/// [`write`] with options.
pub fn write_with(image: &Image, path: &Path, options: &WriteOptions) -> Result<()> {
    let format = match options.format {
        Some(f) => f,
        None => format_for_output(path)?,
    };
    match format {
        Format::Nifti => nifti::write(image, path),
        Format::Dicom | Format::DicomSeries => dicom::write(image, path, format, options),
        Format::MetaImage => metaimage::write(image, path),
        Format::Nrrd => nrrd::write(image, path),
        Format::Npy | Format::Npz => npy::write(image, path),
        Format::Png | Format::Jpeg | Format::Tiff | Format::PngStack => raster::write(image, path, format, options),
        Format::WholeSlide => Err(IoError::cannot_write(path, "whole-slide", "writing pyramidal slides is not supported")),
    }
}
