//! npy: placeholder until the MetaImage work lands.
use crate::{IoError, Result};
use medas_image::Image;
use std::path::Path;
pub fn read(path: &Path) -> Result<Image> { Err(IoError::unsupported(path, "npy", "not yet implemented")) }
pub fn write(_image: &Image, path: &Path) -> Result<()> { Err(IoError::unsupported(path, "npy", "not yet implemented")) }
