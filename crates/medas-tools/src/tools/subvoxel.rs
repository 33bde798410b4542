//! `preprocess.subvoxel_split`: the paper's case 4, two images from one by taking two voxels
//! of every 2×2×2 box (the first and the last corner), each on its own grid of twice the spacing.

use crate::context::Context;
use crate::data::{Data, Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, PortSpec, PortType, ToolSpec};
use crate::tools::mask::failed;
use crate::tools::orient::fortran_copy;
use medas_image::{Geometry, Image, VoxelArray, with_voxels};
use ndarray::{ArcArray, IxDyn, Slice};
use std::sync::Arc;

/// The voxels `offset + 2 * o` for `o` in `0..len / 2` along every spatial axis (a component
/// axis kept whole), on a grid of twice the spacing whose origin is the point of index
/// `offset` in every axis. An odd last voxel is never taken, so both halves have one size.
pub fn every_other(image: &Image, offset: usize) -> Image {
    let n = image.dimension();
    let size: Vec<usize> = image.size().iter().map(|&len| len / 2).collect();
    let voxels = with_voxels!(image.voxels(), a => VoxelArray::wrap(take(a, n, offset, &size)));
    let old = image.geometry();
    let origin = old.index_to_point(&vec![offset as f64; n]);
    let spacing = old.spacing().iter().map(|s| 2.0 * s).collect();
    let geometry = Geometry::new(spacing, origin, old.direction().to_vec()).expect("doubling the spacing keeps it valid");
    let mut out = Image::with_components(voxels, image.components(), geometry).expect("same dimension and components");
    out.metadata = image.metadata.clone();
    out
}

fn take<T: Copy + Send + Sync>(array: &ArcArray<T, IxDyn>, spatial: usize, offset: usize, size: &[usize]) -> ArcArray<T, IxDyn> {
    let view = array.slice_each_axis(|axis| {
        let a = axis.axis.index();
        // The last taken index plus one: `offset + 2 * size` may pass the end of an even axis.
        let end = if size[a] == 0 { offset } else { offset + 2 * size[a] - 1 };
        if a < spatial { Slice::new(offset as isize, Some(end as isize), 2) } else { Slice::from(..) }
    });
    fortran_copy(&view)
}

pub struct SubvoxelSplit(ToolSpec);

impl SubvoxelSplit {
    fn new() -> SubvoxelSplit {
        SubvoxelSplit(
            ToolSpec::new(
                "preprocess.subvoxel_split",
                Category::Preprocess,
                "Sub-voxel split",
                "Makes two images from one by taking two voxels of every 2x2x2 box of the index grid \
                 (2x2 in 2-D; boxes start at index 0): `first` takes the box's voxel (0, 0, 0), i.e. \
                 array[0::2, 0::2, 0::2], `second` its opposite corner (1, 1, 1), array[1::2, 1::2, 1::2]. \
                 Each has floor(size/2) voxels per axis (on an odd axis the last voxel is left out, so \
                 both have one shape), twice the spacing, the same direction, and its origin at the \
                 physical position of the voxel it takes first (index (0, 0, 0), resp. (1, 1, 1)), so \
                 every taken voxel keeps its position. Values and voxel type are kept. Needs at least 2 \
                 voxels along every axis.",
            )
            .input(PortSpec::new("image", PortType::Image, "The image to split (2-D to 4-D)."))
            .output(PortSpec::new("first", PortType::Image, "Voxel (0, 0, 0) of every 2x2x2 box."))
            .output(PortSpec::new("second", PortType::Image, "Voxel (1, 1, 1) of every 2x2x2 box.")),
        )
    }
}

impl Tool for SubvoxelSplit {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, _params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        if image.size().iter().any(|&n| n < 2) {
            return Err(failed(id, format!("every axis needs at least 2 voxels to split, the image has {:?}", image.size())));
        }
        let (first, second) = rayon::join(|| every_other(&image, 0), || every_other(&image, 1));
        Ok(Outputs::from([("first".to_string(), Data::Image(first)), ("second".to_string(), Data::Image(second))]))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(SubvoxelSplit::new()) } }

#[cfg(test)]
mod tests {
    use super::*;
    use medas_image::Voxels;

    #[test]
    fn odd_axes_lose_their_last_voxel_in_both_halves() {
        let image = Image::from_voxels(Voxels::from_fortran_vec(&[5, 2], (0..10).collect::<Vec<i16>>()).unwrap()).unwrap();
        let (a, b) = (every_other(&image, 0), every_other(&image, 1));
        let values = |img: &Image| img.voxels().as_array::<i16>().unwrap().view().reversed_axes().iter().copied().collect::<Vec<_>>();
        assert_eq!((a.size(), values(&a)), (&[2usize, 1][..], vec![0, 2]));
        assert_eq!((b.size(), values(&b)), (&[2usize, 1][..], vec![6, 8]));
        assert_eq!((b.geometry().origin(), b.geometry().spacing()), (&[1.0, 1.0][..], &[2.0, 2.0][..]));
    }
}
