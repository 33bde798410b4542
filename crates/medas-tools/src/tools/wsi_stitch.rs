//! `pathology.stitch_tiles`: puts per-tile results back together, each tile where its
//! geometry says, into one image covering their union.

use crate::context::Context;
use crate::data::{Data, Inputs, NamedImage, Outputs, take_image_set};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamSpec, PortSpec, PortType, ToolSpec};
use medas_image::{Geometry, Image, Scalar, VoxelArray, Voxels, with_voxels};
use ndarray::{ArcArray, IxDyn};
use std::sync::Arc;

/// Largest stitched image, in values (voxels × components).
const MAX_VALUES: usize = 1 << 32;
/// How far (in voxels) a tile's origin may sit from the common grid.
const GRID_TOLERANCE: f64 = 1e-3;

pub struct StitchTiles(ToolSpec);

impl StitchTiles {
    fn new() -> StitchTiles {
        StitchTiles(
            ToolSpec::new(
                "pathology.stitch_tiles",
                Category::Pathology,
                "Stitch tiles",
                "Places every image of the set on one grid by its geometry (as pathology.tile_slide \
                 leaves them: origin = position × spacing) and returns the image covering their union, \
                 with the tiles' spacing, direction, voxel type and components, and the origin of the \
                 union's first voxel. The tiles must share voxel type, components, dimension, spacing \
                 and direction (they may have any spacing, e.g. after resizing), and lie on a common \
                 grid (origins whole voxels apart, within 1e-3 voxel). mean: where tiles overlap, the \
                 mean of their values (computed in float64 and rounded to the nearest integer for \
                 integer types), so identical overlaps come back unchanged. centre: the value of the \
                 tile whose centre is nearest (the first such tile on a tie), the rule for label maps \
                 (no mixed labels, no seams from tile borders). Voxels no tile covers get `fill`. Memory: \
                 the output plus, for mean, a float64 sum per value and a count per voxel of the union.",
            )
            .param(ParamSpec::choice("mode", "How overlapping tiles combine.", &["mean", "centre"]).default("mean"))
            .param(ParamSpec::float("fill", "The value of voxels no tile covers.").default(0.0))
            .input(PortSpec::new("tiles", PortType::ImageSet, "The tiles (any voxel type, placed by geometry)."))
            .output(PortSpec::new("image", PortType::Image, "The stitched image.")),
        )
    }

    fn failed(&self, message: impl Into<String>) -> ToolError {
        ToolError::Failed { tool: self.0.id.clone(), message: message.into() }
    }

    /// Checks that the tiles can share one grid; returns each tile's voxel offset from the first.
    fn offsets(&self, tiles: &[NamedImage]) -> Result<Vec<Vec<i64>>, ToolError> {
        let first = &tiles[0];
        let describe = |m: &NamedImage| format!("{} is {} x {}", m.name, m.image.scalar_type().name(), m.image.components());
        let geometry = first.image.geometry();
        let close = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0));
        tiles
            .iter()
            .map(|tile| {
                let (image, other) = (&tile.image, tile.image.geometry());
                if image.scalar_type() != first.image.scalar_type() || image.components() != first.image.components() {
                    return Err(self.failed(format!("tiles have different pixel types: {}, {}", describe(first), describe(tile))));
                }
                if image.dimension() != first.image.dimension() {
                    let message = format!("tiles have different dimensions: {} is {}-D, {} is {}-D", first.name, first.image.dimension(), tile.name, image.dimension());
                    return Err(self.failed(message));
                }
                if !close(other.direction(), geometry.direction()) {
                    return Err(self.failed(format!("tiles have different directions: {} and {}", first.name, tile.name)));
                }
                if !close(other.spacing(), geometry.spacing()) {
                    let message = format!("tiles have different spacings: {} has {:?}, {} has {:?}", first.name, geometry.spacing(), tile.name, other.spacing());
                    return Err(self.failed(message));
                }
                let index = geometry.point_to_index(other.origin());
                if index.iter().any(|i| (i - i.round()).abs() > GRID_TOLERANCE) {
                    return Err(self.failed(format!("{} is not on the grid of {}: its origin is at voxel {index:?}", tile.name, first.name)));
                }
                Ok(index.iter().map(|i| i.round() as i64).collect())
            })
            .collect()
    }
}

/// The union's origin: for an axis-aligned grid, each coordinate taken from a tile at the
/// union's edge on that axis (so it is exactly a tile's value); otherwise computed.
fn union_origin(tiles: &[NamedImage], offsets: &[Vec<i64>], low: &[i64]) -> Vec<f64> {
    let geometry = tiles[0].image.geometry();
    let n = geometry.dimension();
    let axis_aligned = (0..n).all(|r| (0..n).all(|c| r == c || geometry.direction_at(r, c) == 0.0));
    if !axis_aligned {
        return geometry.index_to_point(&low.iter().map(|&l| l as f64).collect::<Vec<_>>());
    }
    (0..n)
        .map(|a| {
            let edge = offsets.iter().position(|o| o[a] == low[a]).expect("the lowest offset is some tile's");
            tiles[edge].image.geometry().origin()[a]
        })
        .collect()
}

/// A tile's values with components fastest, then the first spatial axis, and so on.
fn interleaved<T: Scalar>(array: &ArcArray<T, IxDyn>, components: usize) -> Vec<T> {
    let axes = array.ndim();
    let spatial = if components > 1 { axes - 1 } else { axes };
    let mut order: Vec<usize> = (0..spatial).rev().collect();
    if components > 1 {
        order.push(axes - 1);
    }
    array.view().permuted_axes(order).iter().copied().collect()
}

/// Steps a spatial index through `size`, first axis fastest; false after the last.
fn advance(index: &mut [usize], size: &[usize]) -> bool {
    for (i, n) in index.iter_mut().zip(size) {
        *i += 1;
        if *i < *n {
            return true;
        }
        *i = 0;
    }
    false
}

struct Canvas<'a> {
    size: &'a [usize],
    components: usize,
}

impl Canvas<'_> {
    /// Calls `visit(tile voxel, canvas voxel, squared distance to the tile's centre)` for every
    /// voxel of a tile of `size` placed at `offset`.
    fn each(&self, size: &[usize], offset: &[usize], mut visit: impl FnMut(usize, usize, f64)) {
        let mut index = vec![0usize; size.len()];
        let mut tile_voxel = 0;
        loop {
            let (mut voxel, mut stride, mut distance) = (0, 1, 0.0);
            for a in 0..size.len() {
                voxel += (index[a] + offset[a]) * stride;
                stride *= self.size[a];
                distance += (index[a] as f64 - (size[a] as f64 - 1.0) / 2.0).powi(2);
            }
            visit(tile_voxel, voxel, distance);
            tile_voxel += 1;
            if !advance(&mut index, size) {
                break;
            }
        }
    }

    fn mean<T: Scalar>(&self, tiles: &[(Vec<T>, Vec<usize>, Vec<usize>)], fill: f64) -> Vec<T> {
        let voxels: usize = self.size.iter().product();
        let c = self.components;
        let (mut sums, mut counts) = (vec![0.0f64; voxels * c], vec![0u32; voxels]);
        for (values, size, offset) in tiles {
            self.each(size, offset, |from, to, _| {
                counts[to] += 1;
                (0..c).for_each(|k| sums[to * c + k] += values[from * c + k].to_f64());
            });
        }
        (0..voxels * c).map(|k| if counts[k / c] == 0 { T::from_f64(fill) } else { T::from_f64(sums[k] / counts[k / c] as f64) }).collect()
    }

    fn centre<T: Scalar>(&self, tiles: &[(Vec<T>, Vec<usize>, Vec<usize>)], fill: f64) -> Vec<T> {
        let voxels: usize = self.size.iter().product();
        let c = self.components;
        let (mut out, mut best) = (vec![T::from_f64(fill); voxels * c], vec![f64::INFINITY; voxels]);
        for (values, size, offset) in tiles {
            self.each(size, offset, |from, to, distance| {
                if distance < best[to] {
                    best[to] = distance;
                    out[to * c..(to + 1) * c].copy_from_slice(&values[from * c..(from + 1) * c]);
                }
            });
        }
        out
    }
}

fn stitch<T: VoxelArray>(tiles: &[NamedImage], offsets: &[Vec<usize>], size: &[usize], centre_wins: bool, fill: f64) -> Result<Voxels, medas_image::ImageError> {
    let components = tiles[0].image.components();
    let placed: Vec<(Vec<T>, Vec<usize>, Vec<usize>)> = tiles
        .iter()
        .zip(offsets)
        .map(|(tile, offset)| {
            let array = tile.image.voxels().as_array::<T>().expect("tiles share one voxel type");
            (interleaved(array, components), tile.image.size().to_vec(), offset.clone())
        })
        .collect();
    let canvas = Canvas { size, components };
    let values = if centre_wins { canvas.centre(&placed, fill) } else { canvas.mean(&placed, fill) };
    if components > 1 { Voxels::from_interleaved_vec(size, components, values) } else { Voxels::from_fortran_vec(size, values) }
}

impl Tool for StitchTiles {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let tiles = take_image_set(&mut inputs, id, "tiles")?;
        if tiles.is_empty() {
            return Err(self.failed("the image set is empty, so there is nothing to stitch"));
        }
        let offsets = self.offsets(&tiles)?;
        let n = tiles[0].image.dimension();
        let low: Vec<i64> = (0..n).map(|a| offsets.iter().map(|o| o[a]).min().expect("tiles")).collect();
        let high: Vec<i64> =
            (0..n).map(|a| tiles.iter().zip(&offsets).map(|(t, o)| o[a] + t.image.size()[a] as i64).max().expect("tiles")).collect();
        let size: Vec<usize> = low.iter().zip(&high).map(|(l, h)| (h - l) as usize).collect();
        let values = size.iter().try_fold(tiles[0].image.components(), |total, &s| total.checked_mul(s));
        if values.is_none_or(|v| v > MAX_VALUES) {
            return Err(self.failed(format!("the tiles' union is {size:?} voxels, too large to stitch (at most 2^32 values)")));
        }
        let from_low: Vec<Vec<usize>> = offsets.iter().map(|o| o.iter().zip(&low).map(|(o, l)| (o - l) as usize).collect()).collect();
        let centre_wins = params.text("mode")? == "centre";
        let fill = params.float("fill")?;
        context.check_cancelled(id)?;
        let fail = |e: medas_image::ImageError| self.failed(e.to_string());
        let voxels =
            with_voxels!(tiles[0].image.voxels(), a => stitch_typed(a, &tiles, &from_low, &size, centre_wins, fill).map_err(fail)?);
        let first = tiles[0].image.geometry();
        let geometry = Geometry::new(first.spacing().to_vec(), union_origin(&tiles, &offsets, &low), first.direction().to_vec()).map_err(fail)?;
        let mut image = Image::with_components(voxels, tiles[0].image.components(), geometry).map_err(fail)?;
        image.metadata = tiles[0].image.metadata.clone();
        Ok(Outputs::from([("image".to_string(), Data::Image(image))]))
    }
}

/// [`stitch`] for the voxel type of `_witness`.
fn stitch_typed<T: VoxelArray>(
    _witness: &ArcArray<T, IxDyn>,
    tiles: &[NamedImage],
    offsets: &[Vec<usize>],
    size: &[usize],
    centre_wins: bool,
    fill: f64,
) -> Result<Voxels, medas_image::ImageError> {
    stitch::<T>(tiles, offsets, size, centre_wins, fill)
}

inventory::submit! { ToolEntry { build: || Arc::new(StitchTiles::new()) } }

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interleaving_puts_components_first_then_axes_in_order() {
        let voxels = Voxels::from_interleaved_vec(&[2, 2], 2, (0..8u8).collect()).unwrap();
        assert_eq!(interleaved(voxels.as_array::<u8>().unwrap(), 2), (0..8u8).collect::<Vec<_>>());
        let scalar = Voxels::from_fortran_vec(&[3, 2], (0..6u8).collect()).unwrap();
        assert_eq!(interleaved(scalar.as_array::<u8>().unwrap(), 1), (0..6u8).collect::<Vec<_>>());
    }

    #[test]
    fn centre_rule_prefers_the_nearer_tile_centre() {
        let canvas = Canvas { size: &[4], components: 1 };
        let tiles = vec![(vec![1u8; 3], vec![3], vec![0]), (vec![2u8; 3], vec![3], vec![1])];
        // Voxel 1: centre of tile 1 (distance 0) vs edge of tile 2; voxel 2: the reverse.
        assert_eq!(canvas.centre(&tiles, 0.0), vec![1, 1, 2, 2]);
        assert_eq!(canvas.mean(&tiles, 9.0), vec![1, 2, 2, 2]);
    }
}
