//! `pathology.tile_slide`: cuts one level of a whole-slide image into a grid of patches, keeps
//! those on tissue, and returns them as an image set whose members keep their place in the
//! slide (origin = position × level spacing), with a table of their coordinates.

use crate::context::Context;
use crate::data::{Data, Inputs, NamedImage, Outputs};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::table::{Column, Table};
use crate::tools::bad_param;
use crate::tools::tissue::tissue_mask;
use medas_image::{Geometry, Image, Voxels};
use medas_io::wsi::Slide;
use rayon::prelude::*;
use std::path::PathBuf;
use std::sync::Arc;

/// Most pixels of the level the tissue mask is computed on (a larger one would be a
/// full-resolution read of the whole slide).
const MAX_MASK_PIXELS: u64 = 1 << 26;
/// Most tiles of one grid row read as one region (bounds the memory of a read).
const TILES_PER_READ: usize = 16;

/// The grid and filter settings, checked against the slide.
#[derive(Debug, Clone, Copy)]
pub struct Grid {
    pub level: usize,
    pub tile: u64,
    pub stride: u64,
    pub mask_level: usize,
    pub min_tissue: f64,
    pub max_tiles: usize,
}

/// One kept tile: its top-left pixel at the tiling level and its tissue fraction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TilePlace {
    pub x: u64,
    pub y: u64,
    pub tissue: f64,
}

pub struct TileSlide(ToolSpec);

impl TileSlide {
    fn new() -> TileSlide {
        TileSlide(
            ToolSpec::new(
                "pathology.tile_slide",
                Category::Pathology,
                "Tile a whole-slide image",
                "Cuts level `level` of an Aperio SVS or tiled pyramidal TIFF into square tiles of tile_size \
                 pixels at (x, y) = (i, j) × (tile_size - overlap), every tile wholly inside the level, in \
                 row-major order. The tissue mask is that of pathology.tissue_mask (Otsu's threshold of \
                 the grey level or saturation) computed on the whole of mask_level (-1: the smallest \
                 level). A tile's tissue fraction is the share of mask pixels whose centres fall inside \
                 the tile's footprint in level-0 coordinates ([x d, (x + tile_size) d) with d the level's \
                 downsample, mapped to the mask level by its downsample); when none does (a mask coarser \
                 than a tile), the value of the mask pixel under the tile's centre. Tiles with a \
                 fraction below min_tissue are dropped; max_tiles (0: all) keeps the first ones. Each \
                 tile is an RGB uint8 image equal to OpenSlide's read_region at that level, with spacing \
                 the level's pixel size in mm and origin (x, y) × spacing, so results computed on tiles \
                 can be put back in place by pathology.stitch_tiles.",
            )
            .param(ParamSpec::int("level", "The pyramid level tiled (0: full resolution).").range(0.0, 64.0).default(0))
            .param(ParamSpec::int("tile_size", "Tile width and height in pixels of the level.").range(1.0, 16384.0).default(512).unit("px"))
            .param(ParamSpec::int("overlap", "Pixels shared by neighbouring tiles (stride = tile_size - overlap).").range(0.0, 16384.0).default(0).unit("px"))
            .param(ParamSpec::float("min_tissue", "Smallest tissue fraction of a kept tile (0 keeps all).").range(0.0, 1.0).default(0.5).tunable())
            .param(ParamSpec::int("mask_level", "The level the tissue mask is computed on; -1: the smallest.").range(-1.0, 64.0).default(-1))
            .param(ParamSpec::choice("mask_method", "What the tissue mask thresholds.", &["grey", "saturation"]).default("grey"))
            .param(ParamSpec::int("max_tiles", "Keep at most this many tiles, the first in row-major order (0: all).").range(0.0, 1e9).default(0))
            .input(PortSpec::new("slide", PortType::File, "An Aperio SVS or tiled pyramidal TIFF."))
            .output(PortSpec::new("tiles", PortType::ImageSet, "The kept tiles (RGB uint8), named tile_NNNNN in grid order."))
            .output(PortSpec::new(
                "coordinates",
                PortType::Table,
                "One row per kept tile: name, x0 and y0 (level-0 pixels), x and y (level pixels), width, height, tissue_fraction.",
            ))
            .output(PortSpec::new("mask", PortType::LabelImage, "The tissue mask at mask_level (uint8 0/1).")),
        )
    }

    fn grid(&self, slide: &Slide, params: &Params) -> Result<Grid, ToolError> {
        let id = &self.0.id;
        let count = slide.levels().len();
        let level_param = |name: &str, value: i64| {
            usize::try_from(value).ok().filter(|&l| l < count).ok_or_else(|| {
                bad_param(id, name, format!("{value} is not a level of this slide, which has {count} (0 to {})", count - 1))
            })
        };
        let level = level_param("level", params.int("level")?)?;
        let mask_level = match params.int("mask_level")? {
            -1 => count - 1,
            value => level_param("mask_level", value)?,
        };
        let tile = params.int("tile_size")?.max(1) as u64;
        let overlap = params.int("overlap")?.max(0) as u64;
        if overlap >= tile {
            return Err(bad_param(id, "overlap", format!("must be less than tile_size ({tile}), got {overlap}")));
        }
        let info = slide.levels()[level];
        if info.width < tile || info.height < tile {
            let message = format!("{tile} is larger than level {level} ({} x {} pixels)", info.width, info.height);
            return Err(bad_param(id, "tile_size", message));
        }
        let max_tiles = params.int("max_tiles")?.max(0) as usize;
        Ok(Grid { level, tile, stride: tile - overlap, mask_level, min_tissue: params.float("min_tissue")?, max_tiles })
    }

    /// Reads the tiles of one grid row, a few neighbours per region read.
    fn read_row(&self, slide: &Slide, grid: &Grid, row: &[(usize, TilePlace)]) -> Result<Vec<NamedImage>, ToolError> {
        let spacing = slide.spacing_mm(grid.level);
        let mut tiles = Vec::with_capacity(row.len());
        for run in row.chunks(TILES_PER_READ) {
            let (first, last) = (run[0].1, run[run.len() - 1].1);
            let width = (last.x + grid.tile - first.x) as usize;
            let band = slide.read_region(grid.level, first.x as i64, first.y as i64, width, grid.tile as usize)?;
            let pixels = band.voxels().as_array::<u8>().and_then(|a| a.as_slice_memory_order()).expect("regions are contiguous u8");
            for &(index, place) in run {
                let mut image = cut(pixels, width, (place.x - first.x) as usize, grid.tile as usize, [place.x, place.y], spacing)
                    .map_err(|e| ToolError::Failed { tool: self.0.id.clone(), message: e.to_string() })?;
                image.metadata = band.metadata.clone();
                tiles.push(NamedImage { name: tile_name(index), image });
            }
        }
        Ok(tiles)
    }
}

fn tile_name(index: usize) -> String {
    format!("tile_{index:05}")
}

/// The `tile` × `tile` square at column `x` of an interleaved RGB band `width` pixels wide,
/// placed at level pixel `at` with `spacing`.
fn cut(band: &[u8], width: usize, x: usize, tile: usize, at: [u64; 2], spacing: [f64; 2]) -> Result<Image, medas_image::ImageError> {
    let mut rgb = Vec::with_capacity(tile * tile * 3);
    for y in 0..tile {
        let start = (y * width + x) * 3;
        rgb.extend_from_slice(&band[start..start + tile * 3]);
    }
    let origin = vec![at[0] as f64 * spacing[0], at[1] as f64 * spacing[1]];
    let geometry = Geometry::new(spacing.to_vec(), origin, vec![1.0, 0.0, 0.0, 1.0])?;
    Image::with_components(Voxels::from_interleaved_vec(&[tile, tile], 3, rgb)?, 3, geometry)
}

/// Sums of a 0/1 mask over rectangles in constant time (a summed-area table).
pub struct MaskSums {
    width: usize,
    height: usize,
    sums: Vec<u64>,
}

impl MaskSums {
    /// `mask` holds `width` × `height` values, x fastest.
    pub fn new(mask: &[u8], width: usize, height: usize) -> MaskSums {
        let mut sums = vec![0u64; (width + 1) * (height + 1)];
        for y in 0..height {
            let mut row = 0u64;
            for x in 0..width {
                row += (mask[y * width + x] != 0) as u64;
                sums[(y + 1) * (width + 1) + x + 1] = sums[y * (width + 1) + x + 1] + row;
            }
        }
        MaskSums { width, height, sums }
    }

    fn sum(&self, x: [usize; 2], y: [usize; 2]) -> u64 {
        let at = |x: usize, y: usize| self.sums[y * (self.width + 1) + x];
        at(x[1], y[1]) + at(x[0], y[0]) - at(x[0], y[1]) - at(x[1], y[0])
    }

    /// The share of tissue among mask pixels whose centres lie in `[start, end)` (mask-pixel
    /// units) on both axes; the pixel under the centre when no centre does.
    pub fn fraction(&self, start: [f64; 2], end: [f64; 2]) -> f64 {
        let bounds = |a: usize, n: usize| {
            let first = ((start[a] - 0.5).ceil().max(0.0) as usize).min(n);
            let last = ((end[a] - 0.5).ceil().max(0.0) as usize).min(n);
            [first, last]
        };
        let (x, y) = (bounds(0, self.width), bounds(1, self.height));
        let count = (x[1] - x[0]) * (y[1] - y[0]);
        if count > 0 {
            return self.sum(x, y) as f64 / count as f64;
        }
        let centre = |a: usize, n: usize| (((start[a] + end[a]) / 2.0).floor().max(0.0) as usize).min(n - 1);
        let (cx, cy) = (centre(0, self.width), centre(1, self.height));
        self.sum([cx, cx + 1], [cy, cy + 1]) as f64
    }
}

/// The grid positions of `grid` on `slide` and their tissue fractions, filtered.
pub fn plan_tiles(slide: &Slide, grid: &Grid, mask: &MaskSums) -> Vec<TilePlace> {
    let info = slide.levels()[grid.level];
    let (d, dm) = (info.downsample, slide.levels()[grid.mask_level].downsample);
    let (tile, stride) = (grid.tile, grid.stride);
    let positions = move |n: u64| (0..=(n - tile) / stride).map(move |k| k * stride);
    let mut kept = Vec::new();
    for y in positions(info.height) {
        for x in positions(info.width) {
            let footprint = |p: u64| [p as f64 * d / dm, (p + grid.tile) as f64 * d / dm];
            let (fx, fy) = (footprint(x), footprint(y));
            let tissue = mask.fraction([fx[0], fy[0]], [fx[1], fy[1]]);
            if tissue >= grid.min_tissue {
                kept.push(TilePlace { x, y, tissue });
                if kept.len() == grid.max_tiles {
                    return kept;
                }
            }
        }
    }
    kept
}

fn coordinates(places: &[TilePlace], grid: &Grid, downsample: f64) -> Result<Table, String> {
    let column = |f: &dyn Fn(&TilePlace) -> f64| places.iter().map(f).collect::<Vec<f64>>();
    let level0 = |p: u64| (p as f64 * downsample).round();
    let size = column(&|_| grid.tile as f64);
    Table::new()
        .with_column("name", Column::Text((0..places.len()).map(tile_name).collect()))?
        .with_numbers("x0", column(&|p| level0(p.x)))?
        .with_numbers("y0", column(&|p| level0(p.y)))?
        .with_numbers("x", column(&|p| p.x as f64))?
        .with_numbers("y", column(&|p| p.y as f64))?
        .with_numbers("width", size.clone())?
        .with_numbers("height", size)?
        .with_numbers("tissue_fraction", column(&|p| p.tissue))
}

impl Tool for TileSlide {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let path: PathBuf = match inputs.remove("slide") {
            Some(Data::File(path)) => path,
            _ => return Err(ToolError::MissingInput { tool: id.clone(), port: "slide".into() }),
        };
        let slide = Slide::open(&path)?;
        let grid = self.grid(&slide, params)?;
        let mask_info = slide.levels()[grid.mask_level];
        if mask_info.width * mask_info.height > MAX_MASK_PIXELS {
            let message = format!(
                "level {} ({} x {} pixels) is too large for the tissue mask (at most 2^26 pixels); choose a smaller level",
                grid.mask_level, mask_info.width, mask_info.height
            );
            return Err(bad_param(id, "mask_level", message));
        }
        let (mw, mh) = (mask_info.width as usize, mask_info.height as usize);
        let mask_source = slide.read_region(grid.mask_level, 0, 0, mw, mh)?;
        let (mask, _) = tissue_mask(&mask_source, params.text("mask_method")? == "saturation", 256, id)?;
        let mask_values = mask.voxels().as_array::<u8>().and_then(|a| a.as_slice_memory_order()).expect("masks are contiguous u8");
        let places = plan_tiles(&slide, &grid, &MaskSums::new(mask_values, mw, mh));
        context.progress(0.1);
        context.check_cancelled(id)?;
        let numbered: Vec<(usize, TilePlace)> = places.iter().copied().enumerate().collect();
        let rows: Vec<&[(usize, TilePlace)]> = numbered.chunk_by(|a, b| a.1.y == b.1.y).collect();
        let tiles: Vec<Vec<NamedImage>> = rows.par_iter().map(|row| self.read_row(&slide, &grid, row)).collect::<Result<_, _>>()?;
        let table = coordinates(&places, &grid, slide.levels()[grid.level].downsample).map_err(|message| ToolError::Failed { tool: id.clone(), message })?;
        Ok(Outputs::from([
            ("tiles".to_string(), Data::ImageSet(tiles.into_iter().flatten().collect())),
            ("coordinates".to_string(), Data::Table(table)),
            ("mask".to_string(), Data::Image(mask)),
        ]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(TileSlide::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_fractions_count_pixel_centres() {
        // 4 x 2 mask, tissue in the left half.
        let sums = MaskSums::new(&[1, 1, 0, 0, 1, 1, 0, 0], 4, 2);
        assert_eq!(sums.fraction([0.0, 0.0], [4.0, 2.0]), 0.5);
        assert_eq!(sums.fraction([0.0, 0.0], [2.0, 2.0]), 1.0);
        // Centres 1.5 and 2.5 lie in [1.2, 3.0): one tissue pixel of two per row.
        assert_eq!(sums.fraction([1.2, 0.0], [3.0, 2.0]), 0.5);
        // No centre inside [1.6, 1.9): the pixel under the centre (x 1) decides.
        assert_eq!(sums.fraction([1.6, 0.6], [1.9, 0.9]), 1.0);
        assert_eq!(sums.fraction([2.6, 0.6], [2.9, 0.9]), 0.0);
    }
}
