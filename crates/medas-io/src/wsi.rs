//! Whole-slide images: placeholder until the WSI work lands.
use crate::{IoError, Result};
use medas_image::Image;
use std::path::Path;
pub fn read_thumbnail_image(path: &Path, _max_side: usize) -> Result<Image> { Err(IoError::unsupported(path, "whole-slide", "not yet implemented")) }
