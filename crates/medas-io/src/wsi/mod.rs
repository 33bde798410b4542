//! Whole-slide images: Aperio SVS and tiled pyramidal TIFF, read in pure Rust on the `tiff`
//! crate (no OpenSlide C library in the build).
//!
//! Levels are the *tiled* image directories of the main IFD chain, largest first, as OpenSlide
//! sees them; stripped directories (Aperio's thumbnail, label and macro images) are skipped,
//! and so are SubIFD pyramids, which OpenSlide does not see either. Tiles may be JPEG (with
//! shared `JPEGTables`), deflate, LZW or uncompressed, with RGB, RGBA, YCbCr or grey samples.
//! JPEG tiles are decoded without colour conversion when the TIFF says RGB (Aperio's
//! "JPEG/RGB"; OpenSlide/libjpeg do the same) and converted from YCbCr (JFIF equations) when
//! the TIFF says YCbCr.

mod region;

use crate::{IoError, Result};
use medas_image::Image;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use tiff::decoder::{Decoder, Limits};
use tiff::tags::Tag;

const FORMAT: &str = "whole-slide";
/// Image directories we look at before giving up (a slide has a handful).
const MAX_DIRECTORIES: usize = 4096;

/// One resolution level of a slide.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Size in this level's pixels.
    pub width: u64,
    pub height: u64,
    /// Level-0 pixels per pixel of this level (1 for level 0), averaged over x and y as
    /// OpenSlide does.
    pub downsample: f64,
    /// Tile size in pixels.
    pub tile_width: u32,
    pub tile_height: u32,
}

/// An open whole-slide image. Cheap to keep: tiles are read from the file on demand.
#[derive(Debug, Clone)]
pub struct Slide {
    path: PathBuf,
    levels: Vec<Level>,
    /// Index of each level's image directory in the main IFD chain.
    directories: Vec<usize>,
    properties: BTreeMap<String, String>,
    mpp: Option<(f64, f64)>,
}

/// Reads a thumbnail of a slide whose longer side is at most `max_side` pixels.
pub fn read_thumbnail_image(path: &Path, max_side: usize) -> Result<Image> {
    Slide::open(path)?.thumbnail(max_side)
}

pub(crate) fn tiff_error(path: &Path, error: tiff::TiffError) -> IoError {
    match error {
        tiff::TiffError::UnsupportedError(e) => IoError::unsupported(path, FORMAT, e.to_string()),
        other => IoError::corrupt(path, FORMAT, other.to_string()),
    }
}

/// Opens the file as a TIFF decoder with limits that suit slides (large tile-offset arrays).
pub(crate) fn open_decoder(path: &Path) -> Result<Decoder<BufReader<File>>> {
    let file = File::open(path).map_err(|e| IoError::io(path, e))?;
    let mut limits = Limits::default();
    limits.ifd_value_size = 256 << 20;
    Ok(Decoder::new(BufReader::new(file))
        .map_err(|e| tiff_error(path, e))?
        .with_limits(limits))
}

impl Slide {
    /// Opens an Aperio SVS or tiled pyramidal TIFF and lists its levels.
    pub fn open(path: &Path) -> Result<Slide> {
        let mut decoder = open_decoder(path)?;
        let mut found: Vec<(usize, u64, u64, u32, u32)> = Vec::new();
        let mut description = None;
        let mut resolution = None;
        for index in 0..MAX_DIRECTORIES {
            let (w, h) = decoder.dimensions().map_err(|e| tiff_error(path, e))?;
            let tile_w = decoder
                .find_tag_unsigned::<u32>(Tag::TileWidth)
                .map_err(|e| tiff_error(path, e))?;
            let tile_h = decoder
                .find_tag_unsigned::<u32>(Tag::TileLength)
                .map_err(|e| tiff_error(path, e))?;
            if index == 0 {
                description = decoder
                    .find_tag(Tag::ImageDescription)
                    .ok()
                    .flatten()
                    .and_then(|v| v.into_string().ok());
                resolution = tiff_resolution_mpp(&mut decoder);
            }
            if let (Some(tw), Some(th)) = (tile_w, tile_h)
                && tw > 0
                && th > 0
                && w > 0
                && h > 0
            {
                found.push((index, w as u64, h as u64, tw, th));
            }
            if !decoder.more_images() {
                break;
            }
            decoder.next_image().map_err(|e| tiff_error(path, e))?;
        }
        if found.is_empty() {
            return Err(IoError::unsupported(
                path,
                FORMAT,
                "no tiled image directory (not a pyramidal slide)",
            ));
        }
        found.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)));
        let (w0, h0) = (found[0].1 as f64, found[0].2 as f64);
        let levels = found
            .iter()
            .map(|&(_, w, h, tw, th)| Level {
                width: w,
                height: h,
                downsample: (w0 / w as f64 + h0 / h as f64) / 2.0,
                tile_width: tw,
                tile_height: th,
            })
            .collect();
        let directories = found.iter().map(|f| f.0).collect();
        let properties = properties_from(description.as_deref());
        let mpp = aperio_mpp(&properties).or(resolution);
        Ok(Slide {
            path: path.to_path_buf(),
            levels,
            directories,
            properties,
            mpp,
        })
    }

    /// The resolution levels, largest (level 0) first.
    pub fn levels(&self) -> &[Level] {
        &self.levels
    }

    /// Key/value facts from the file: `tiff.ImageDescription`, and for Aperio every
    /// `key = value` of the description as `aperio.<key>` (e.g. `aperio.MPP`, `aperio.AppMag`).
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// Micrometres per level-0 pixel (x, y), from Aperio `MPP` or the TIFF resolution tags.
    pub fn microns_per_pixel(&self) -> Option<(f64, f64)> {
        self.mpp
    }

    /// Objective magnification the slide was scanned at (Aperio `AppMag`).
    pub fn objective_power(&self) -> Option<f64> {
        self.properties
            .get("aperio.AppMag")
            .and_then(|v| v.trim().parse().ok())
    }

    /// The file this slide was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Pixel spacing (mm) at `level`: microns per pixel × downsample / 1000, or, when the
    /// slide states no resolution, the downsample itself (level-0 pixels as the unit).
    pub fn spacing_mm(&self, level: usize) -> [f64; 2] {
        let d = self.levels.get(level).map_or(1.0, |l| l.downsample);
        match self.mpp {
            Some((x, y)) => [x * d / 1000.0, y * d / 1000.0],
            None => [d, d],
        }
    }
}

/// Parses the description: Aperio's `header|key = value|key = value...`.
fn properties_from(description: Option<&str>) -> BTreeMap<String, String> {
    let mut properties = BTreeMap::new();
    let Some(text) = description else {
        return properties;
    };
    properties.insert("tiff.ImageDescription".to_string(), text.to_string());
    if text.starts_with("Aperio") {
        for item in text.split('|').skip(1) {
            if let Some((key, value)) = item.split_once(" = ") {
                properties
                    .entry(format!("aperio.{}", key.trim()))
                    .or_insert_with(|| value.trim().to_string());
            }
        }
    }
    properties
}

fn aperio_mpp(properties: &BTreeMap<String, String>) -> Option<(f64, f64)> {
    let mpp: f64 = properties.get("aperio.MPP")?.trim().parse().ok()?;
    (mpp.is_finite() && mpp > 0.0).then_some((mpp, mpp))
}

/// Microns per pixel from XResolution/YResolution in pixels per cm or inch.
fn tiff_resolution_mpp(decoder: &mut Decoder<BufReader<File>>) -> Option<(f64, f64)> {
    let unit_um = match decoder
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()?
    {
        2 => 25_400.0,
        3 => 10_000.0,
        _ => return None,
    };
    let mut get = |tag| match decoder.find_tag(tag).ok().flatten()? {
        tiff::decoder::ifd::Value::Rational(n, d) if n > 0 && d > 0 => {
            Some(unit_um * d as f64 / n as f64)
        }
        _ => None,
    };
    Some((get(Tag::XResolution)?, get(Tag::YResolution)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aperio_description_becomes_properties() {
        let text = "Aperio Image Library v11.2.1 \r\n46000x32914 JPEG/RGB Q=30|AppMag = 20|MPP = 0.4990|Filename = CMU-1";
        let p = properties_from(Some(text));
        assert_eq!(p["aperio.AppMag"], "20");
        assert_eq!(aperio_mpp(&p), Some((0.499, 0.499)));
        assert_eq!(p["aperio.Filename"], "CMU-1");
        assert!(!properties_from(Some("ImageJ=1.5")).contains_key("aperio.MPP"));
    }
}
