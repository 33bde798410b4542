//! Reading regions (tiles decoded in parallel) and area-averaged thumbnails.

use super::{FORMAT, Slide, open_decoder, tiff_error};
use crate::{IoError, Result};
use medas_image::{Geometry, Image, Voxels, keys};
use rayon::prelude::*;
use std::fs::File;
use std::io::BufReader;
use tiff::ColorType;
use tiff::decoder::{Decoder, DecodingResult};

/// Largest region one call may ask for (3 bytes per pixel: 3 GiB).
const MAX_REGION_PIXELS: u64 = 1 << 30;

/// A decoded tile: RGB, `width` × `height` pixels (the part inside the level).
struct Tile {
    x: u64,
    y: u64,
    width: usize,
    height: usize,
    rgb: Vec<u8>,
}

impl Slide {
    /// Reads `width` × `height` pixels of `level` whose top-left pixel is (`x`, `y`) in that
    /// level's pixel coordinates, as an RGB u8 image (index i = column, j = row).
    ///
    /// Pixels outside the slide are white (255, 255, 255). OpenSlide returns transparent
    /// pixels there instead; composited over white, as a viewer shows them, they agree.
    /// Geometry: spacing from [`Slide::spacing_mm`], origin at the region's top-left pixel in
    /// the same units, so regions of one slide share a physical frame.
    pub fn read_region(
        &self,
        level: usize,
        x: i64,
        y: i64,
        width: usize,
        height: usize,
    ) -> Result<Image> {
        let path = self.path();
        let info = *self.levels().get(level).ok_or_else(|| {
            IoError::unsupported(
                path,
                FORMAT,
                format!(
                    "level {level} does not exist (the slide has {})",
                    self.levels().len()
                ),
            )
        })?;
        let pixels = (width as u64).saturating_mul(height as u64);
        if pixels == 0 || pixels > MAX_REGION_PIXELS {
            return Err(IoError::unsupported(
                path,
                FORMAT,
                format!(
                    "region of {width} x {height} pixels (1 to 2^30 pixels may be read at once)"
                ),
            ));
        }
        let mut rgb = vec![255u8; width * height * 3];
        let (tw, th) = (info.tile_width as u64, info.tile_height as u64);
        let x0 = x.clamp(0, info.width as i64) as u64;
        let y0 = y.clamp(0, info.height as i64) as u64;
        let x1 = (x.saturating_add(width as i64)).clamp(0, info.width as i64) as u64;
        let y1 = (y.saturating_add(height as i64)).clamp(0, info.height as i64) as u64;
        if x1 > x0 && y1 > y0 {
            let wanted: Vec<(u64, u64)> = (y0 / th..=(y1 - 1) / th)
                .flat_map(|ty| (x0 / tw..=(x1 - 1) / tw).map(move |tx| (tx, ty)))
                .collect();
            let directory = self.directories[level];
            let tiles: Vec<Tile> = wanted
                .par_iter()
                .map_init(
                    || open_at(path, directory),
                    |decoder, &(tx, ty)| decode_tile(self, decoder, level, tx, ty),
                )
                .collect::<Result<_>>()?;
            for tile in &tiles {
                paste(tile, &mut rgb, x, y, width, height);
            }
        }
        let voxels = Voxels::from_interleaved_vec(&[width, height], 3, rgb)
            .map_err(|e| IoError::image(path, e))?;
        let spacing = self.spacing_mm(level);
        let geometry = Geometry::new(
            spacing.to_vec(),
            vec![x as f64 * spacing[0], y as f64 * spacing[1]],
            vec![1.0, 0.0, 0.0, 1.0],
        )
        .map_err(|e| IoError::image(path, e))?;
        let mut image =
            Image::with_components(voxels, 3, geometry).map_err(|e| IoError::image(path, e))?;
        image.metadata.set(keys::MODALITY, "SM");
        Ok(image)
    }

    /// A thumbnail whose longer side is `max_side` pixels (never larger than level 0), made
    /// from the smallest level at least that big by area averaging (each output pixel is the
    /// mean of the source pixels it covers, partial pixels weighted by their covered area).
    pub fn thumbnail(&self, max_side: usize) -> Result<Image> {
        let base = self.levels()[0];
        let longest = base.width.max(base.height) as f64;
        let scale = (max_side.max(1) as f64 / longest).min(1.0);
        let out_w = ((base.width as f64 * scale).round() as usize).max(1);
        let out_h = ((base.height as f64 * scale).round() as usize).max(1);
        let level = (0..self.levels().len())
            .rev()
            .find(|&l| {
                self.levels()[l].width as usize >= out_w
                    && self.levels()[l].height as usize >= out_h
            })
            .unwrap_or(0);
        let info = self.levels()[level];
        let (w, h) = (info.width as usize, info.height as usize);
        // Read the level in bands of rows so that memory stays bounded by the band and the
        // output, never the whole level (a single-level slide can be gigapixels).
        let mut shrinker = AreaAverage::new(w, h, out_w, out_h);
        let band_rows = (THUMBNAIL_BAND_PIXELS / w.max(1)).clamp(1, h);
        for y0 in (0..h).step_by(band_rows) {
            let rows = band_rows.min(h - y0);
            let band = self.read_region(level, 0, y0 as i64, w, rows)?;
            let rgb = band.voxels().as_array::<u8>().expect("regions are u8");
            shrinker.add_rows(y0, rgb.as_slice_memory_order().expect("regions are contiguous"));
        }
        let small = shrinker.finish();
        let voxels = Voxels::from_interleaved_vec(&[out_w, out_h], 3, small)
            .map_err(|e| IoError::image(self.path(), e))?;
        let s0 = self.spacing_mm(0);
        let spacing = vec![
            s0[0] * base.width as f64 / out_w as f64,
            s0[1] * base.height as f64 / out_h as f64,
        ];
        let geometry = Geometry::new(spacing, vec![0.0, 0.0], vec![1.0, 0.0, 0.0, 1.0])
            .map_err(|e| IoError::image(self.path(), e))?;
        let mut image = Image::with_components(voxels, 3, geometry)
            .map_err(|e| IoError::image(self.path(), e))?;
        image.metadata.set(keys::MODALITY, "SM");
        Ok(image)
    }
}

fn open_at(path: &std::path::Path, directory: usize) -> Result<Decoder<BufReader<File>>> {
    let mut decoder = open_decoder(path)?;
    decoder
        .seek_to_image(directory)
        .map_err(|e| tiff_error(path, e))?;
    Ok(decoder)
}

fn decode_tile(
    slide: &Slide,
    decoder: &mut Result<Decoder<BufReader<File>>>,
    level: usize,
    tx: u64,
    ty: u64,
) -> Result<Tile> {
    let path = slide.path();
    let decoder = decoder
        .as_mut()
        .map_err(|e| IoError::corrupt(path, FORMAT, format!("cannot reopen the slide: {e}")))?;
    let info = slide.levels()[level];
    let (tw, th) = (info.tile_width as u64, info.tile_height as u64);
    let across = info.width.div_ceil(tw);
    let index = u32::try_from(ty * across + tx)
        .map_err(|_| IoError::corrupt(path, FORMAT, "too many tiles"))?;
    let color = decoder.colortype().map_err(|e| tiff_error(path, e))?;
    let samples = match color {
        ColorType::RGB(8) | ColorType::YCbCr(8) => 3,
        ColorType::RGBA(8) => 4,
        ColorType::Gray(8) => 1,
        other => {
            return Err(IoError::unsupported(
                path,
                FORMAT,
                format!("tile colour type {other:?} (8-bit RGB, RGBA, YCbCr or grey are read)"),
            ));
        }
    };
    let data = match decoder.read_chunk(index).map_err(|e| tiff_error(path, e))? {
        DecodingResult::U8(data) => data,
        _ => {
            return Err(IoError::unsupported(
                path,
                FORMAT,
                "tiles that are not 8-bit",
            ));
        }
    };
    let width = tw.min(info.width - tx * tw) as usize;
    let height = th.min(info.height - ty * th) as usize;
    // The decoder returns either the part inside the level or the whole padded tile.
    let stride = if data.len() == width * height * samples {
        width
    } else if data.len() == (tw * th) as usize * samples {
        tw as usize
    } else {
        return Err(IoError::corrupt(
            path,
            FORMAT,
            format!(
                "tile {index} decodes to {} bytes, expected {}",
                data.len(),
                width * height * samples
            ),
        ));
    };
    let mut rgb = Vec::with_capacity(width * height * 3);
    for row in 0..height {
        let line = &data[row * stride * samples..(row * stride + width) * samples];
        for px in line.chunks_exact(samples) {
            match color {
                ColorType::YCbCr(_) => rgb.extend_from_slice(&ycbcr_to_rgb(px[0], px[1], px[2])),
                ColorType::Gray(_) => rgb.extend_from_slice(&[px[0]; 3]),
                _ => rgb.extend_from_slice(&px[..3]),
            }
        }
    }
    Ok(Tile {
        x: tx * tw,
        y: ty * th,
        width,
        height,
        rgb,
    })
}

/// JFIF full-range YCbCr to RGB (ITU-R BT.601 coefficients), rounded and clamped.
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (y as f32, cb as f32 - 128.0, cr as f32 - 128.0);
    let clamp = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    [
        clamp(y + 1.402 * cr),
        clamp(y - 0.344_136 * cb - 0.714_136 * cr),
        clamp(y + 1.772 * cb),
    ]
}

/// Copies the part of `tile` that falls inside the region at (`x`, `y`) into `out`.
fn paste(tile: &Tile, out: &mut [u8], x: i64, y: i64, width: usize, height: usize) {
    let cols_from = (x - tile.x as i64).max(0) as usize; // first tile column inside the region
    let cols_to = ((x + width as i64) - tile.x as i64).clamp(0, tile.width as i64) as usize;
    let rows_from = (y - tile.y as i64).max(0) as usize;
    let rows_to = ((y + height as i64) - tile.y as i64).clamp(0, tile.height as i64) as usize;
    if cols_from >= cols_to {
        return;
    }
    for row in rows_from..rows_to {
        let out_row = (tile.y as i64 + row as i64 - y) as usize;
        let out_col = (tile.x as i64 + cols_from as i64 - x) as usize;
        let src = &tile.rgb[(row * tile.width + cols_from) * 3..(row * tile.width + cols_to) * 3];
        let at = (out_row * width + out_col) * 3;
        out[at..at + src.len()].copy_from_slice(src);
    }
}

/// For each output index, the source indices it covers and their weights (summing to 1).
fn coverage(source: usize, target: usize) -> Vec<Vec<(usize, f32)>> {
    let scale = source as f64 / target as f64;
    (0..target)
        .map(|o| {
            let (start, end) = (o as f64 * scale, (o + 1) as f64 * scale);
            let mut taps = Vec::new();
            let mut s = start.floor() as usize;
            while (s as f64) < end && s < source {
                let overlap = (end.min(s as f64 + 1.0) - start.max(s as f64)).max(0.0);
                if overlap > 0.0 {
                    taps.push((s, (overlap / scale) as f32));
                }
                s += 1;
            }
            taps
        })
        .collect()
}

/// Area-averages an interleaved RGB image to `out_w` × `out_h` (separable: rows, then columns).
/// Pixels per band when a thumbnail streams a level (48 MiB of RGB).
const THUMBNAIL_BAND_PIXELS: usize = 1 << 24;

/// Area-averaging RGB shrink fed with bands of source rows: each band is reduced along x at
/// once and added into the output rows it covers, so only the output is kept in full.
struct AreaAverage {
    width: usize,
    out_w: usize,
    columns: Vec<Vec<(usize, f32)>>,
    /// For each source row, the output rows it contributes to and with which weight.
    rows_of_source: Vec<Vec<(usize, f32)>>,
    sums: Vec<f32>,
}

impl AreaAverage {
    fn new(w: usize, h: usize, out_w: usize, out_h: usize) -> Self {
        let mut rows_of_source = vec![Vec::new(); h];
        for (r, taps) in coverage(h, out_h).into_iter().enumerate() {
            for (s, weight) in taps {
                rows_of_source[s].push((r, weight));
            }
        }
        Self { width: w, out_w, columns: coverage(w, out_w), rows_of_source, sums: vec![0.0; out_w * out_h * 3] }
    }

    /// Adds source rows `y0..` (interleaved RGB, full width).
    fn add_rows(&mut self, y0: usize, rgb: &[u8]) {
        let line_len = self.width * 3;
        let columns = &self.columns;
        let narrow: Vec<f32> = rgb
            .par_chunks(line_len.max(1))
            .flat_map_iter(|line| {
                columns.iter().flat_map(move |taps| {
                    let mut acc = [0.0f32; 3];
                    for &(s, weight) in taps {
                        for c in 0..3 {
                            acc[c] += line[s * 3 + c] as f32 * weight;
                        }
                    }
                    acc
                })
            })
            .collect();
        let out_line = self.out_w * 3;
        for (k, source) in narrow.chunks(out_line).enumerate() {
            for &(r, weight) in &self.rows_of_source[y0 + k] {
                let target = &mut self.sums[r * out_line..(r + 1) * out_line];
                target.iter_mut().zip(source).for_each(|(t, s)| *t += s * weight);
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        self.sums.into_iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect()
    }
}

/// Area average of a whole RGB image (one band).
#[cfg(test)]
fn area_average(rgb: &[u8], w: usize, h: usize, out_w: usize, out_h: usize) -> Vec<u8> {
    let mut shrinker = AreaAverage::new(w, h, out_w, out_h);
    shrinker.add_rows(0, rgb);
    shrinker.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn area_average_of_blocks_is_their_mean() {
        // 4 x 2 RGB, halved in both directions -> 2 x 1, each the mean of a 2 x 2 block.
        let mut rgb = Vec::new();
        for v in [0u8, 10, 100, 200, 20, 30, 50, 51] {
            rgb.extend_from_slice(&[v, v, 255 - v]);
        }
        let out = area_average(&rgb, 4, 2, 2, 1);
        assert_eq!(out, vec![15, 15, 240, 100, 100, 155]);
        // Non-integer factor: weights still sum to one.
        for taps in coverage(7, 3) {
            assert!((taps.iter().map(|t| t.1).sum::<f32>() - 1.0).abs() < 1e-6);
        }
    }

    #[test]
    fn bands_give_the_same_thumbnail_as_one_pass() {
        let (w, h, out_w, out_h) = (37, 29, 8, 6);
        let rgb: Vec<u8> = (0..w * h * 3).map(|i| (i * 7919 % 251) as u8).collect();
        let whole = area_average(&rgb, w, h, out_w, out_h);
        let mut banded = AreaAverage::new(w, h, out_w, out_h);
        for (y0, y1) in [(0, 5), (5, 6), (6, 20), (20, 29)] {
            banded.add_rows(y0, &rgb[y0 * w * 3..y1 * w * 3]);
        }
        assert_eq!(banded.finish(), whole);
    }

    #[test]
    fn ycbcr_grey_and_primaries() {
        assert_eq!(ycbcr_to_rgb(128, 128, 128), [128, 128, 128]);
        assert_eq!(ycbcr_to_rgb(76, 85, 255), [254, 0, 0]);
    }
}
