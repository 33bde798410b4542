//! DICOM: placeholder until the DICOM work lands.
use crate::{Format, IoError, ReadOptions, Result, WriteOptions};
use medas_image::Image;
use std::path::Path;
pub fn read(path: &Path, _options: &ReadOptions) -> Result<Image> { Err(IoError::unsupported(path, "dicom", "not yet implemented")) }
pub fn write(_image: &Image, path: &Path, _format: Format, _options: &WriteOptions) -> Result<()> { Err(IoError::unsupported(path, "dicom", "not yet implemented")) }
pub struct SeriesInfo { pub uid: String, pub modality: String, pub description: String, pub files: usize }
pub fn list_series(folder: &Path) -> Result<Vec<SeriesInfo>> { Err(IoError::unsupported(folder, "dicom", "not yet implemented")) }
