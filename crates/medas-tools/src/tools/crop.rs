//! `preprocess.crop_pad`: cropping and constant padding in index space (centred to a size, to
//! a mask's bounding box with a margin, or to a multiple of N), with the origin moved so that
//! every kept voxel keeps its physical position (as sitk.Crop and sitk.ConstantPad do).

use crate::context::Context;
use crate::data::{Inputs, Outputs, take_image};
use crate::error::ToolError;
use crate::params::Params;
use crate::registry::{Tool, ToolEntry};
use crate::spec::{Category, ParamKind, ParamSpec, PortSpec, PortType, ToolSpec};
use crate::tools::mask::{failed, foreground_runs};
use crate::tools::orient::{fortran_copy, output};
use crate::tools::resample::per_axis;
use medas_image::{Geometry, Image, Scalar, VoxelArray, with_voxels};
use ndarray::{ArcArray, Array, IxDyn, ShapeBuilder, Slice, Zip};
use serde_json::json;
use std::sync::Arc;

const MODES: [&str; 3] = ["centre", "mask", "multiple"];
const AT_LEAST_ONE: ParamKind = ParamKind::Int { min: Some(1), max: None };
const NOT_NEGATIVE: ParamKind = ParamKind::Int { min: Some(0), max: None };

/// A window of the index grid: output index `o` along axis `a` is input index `o + start[a]`;
/// negative starts and windows past the end pad.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub start: Vec<isize>,
    pub size: Vec<usize>,
}

impl Window {
    /// `size` centred on an axis of `len` voxels: the smaller half of the difference is removed
    /// (or added) before index 0, the larger after, as MONAI's CenterSpatialCrop and SpatialPad.
    pub fn centred(len: &[usize], size: &[usize]) -> Window {
        let start = len
            .iter()
            .zip(size)
            .map(|(&n, &m)| if n >= m { ((n - m) / 2) as isize } else { -(((m - n) / 2) as isize) })
            .collect();
        Window { start, size: size.to_vec() }
    }

    /// The geometry of the window: same spacing and direction, origin at the point of input
    /// index `start` (outside the input for padding).
    pub fn geometry(&self, geometry: &Geometry) -> Geometry {
        let first: Vec<f64> = self.start.iter().map(|&s| s as f64).collect();
        let origin = geometry.index_to_point(&first);
        Geometry::new(geometry.spacing().to_vec(), origin, geometry.direction().to_vec()).expect("only the origin moves")
    }

    /// The input image seen through the window, `pad` (converted to the voxel type, rounded
    /// and saturated) where it passes the input's edges. Metadata kept.
    pub fn apply(&self, image: &Image, pad: f64) -> Image {
        let voxels = with_voxels!(image.voxels(), a => VoxelArray::wrap(self.cut(a, pad)));
        let mut out = Image::with_components(voxels, image.components(), self.geometry(image.geometry()))
            .expect("the window keeps the dimension and the components");
        out.metadata = image.metadata.clone();
        out
    }

    fn cut<T: Scalar>(&self, array: &ArcArray<T, IxDyn>, pad: f64) -> ArcArray<T, IxDyn> {
        let shape = array.shape();
        // Per axis: the input range the window overlaps, and where it lands in the output.
        let overlap: Vec<(isize, isize)> = (0..shape.len())
            .map(|a| match (self.start.get(a), self.size.get(a)) {
                (Some(&s), Some(&m)) => {
                    let n = shape[a] as isize;
                    let low = s.clamp(0, n);
                    (low, (s + m as isize).clamp(low, n))
                }
                _ => (0, shape[a] as isize),
            })
            .collect();
        let input = array.slice_each_axis(|axis| {
            let (low, high) = overlap[axis.axis.index()];
            Slice::from(low..high)
        });
        let out_shape: Vec<usize> =
            (0..shape.len()).map(|a| self.size.get(a).copied().unwrap_or(shape[a])).collect();
        if input.shape() == out_shape.as_slice() {
            return fortran_copy(&input);
        }
        let mut out = Array::from_elem(IxDyn(&out_shape).f(), T::from_f64(pad));
        if input.is_empty() {
            return out.into_shared();
        }
        let mut target = out.slice_each_axis_mut(|axis| {
            let a = axis.axis.index();
            let (low, high) = overlap[a];
            let shift = self.start.get(a).copied().unwrap_or(0);
            Slice::from(low - shift..high - shift)
        });
        Zip::from(&mut target).and(&input).par_for_each(|o, &v| *o = v);
        out.into_shared()
    }
}

/// The bounding box of the foreground of `mask`, grown by `margin` voxels per axis and
/// clipped to the grid; `None` when the mask is empty.
pub fn bounding_box(mask: &Image, margin: &[usize], tool: &str) -> Result<Option<Window>, ToolError> {
    let runs = foreground_runs(mask, tool)?;
    let [_, n1, _] = runs.grid.dims;
    let (mut low, mut high) = ([usize::MAX; 3], [0usize; 3]);
    for line in 0..runs.grid.lines() {
        let line_runs = runs.of_line(line);
        let (Some(first), Some(last)) = (line_runs.first(), line_runs.last()) else { continue };
        let at = [first.0 as usize, line % n1.max(1), line / n1.max(1)];
        let end = [last.1 as usize - 1, at[1], at[2]];
        for a in 0..3 {
            low[a] = low[a].min(at[a]);
            high[a] = high[a].max(end[a]);
        }
    }
    if runs.is_empty() {
        return Ok(None);
    }
    let rank = runs.grid.rank;
    let size = mask.size();
    let start: Vec<usize> = (0..rank).map(|a| low[a].saturating_sub(margin[a])).collect();
    let end: Vec<usize> = (0..rank).map(|a| (high[a] + margin[a] + 1).min(size[a])).collect();
    let window = Window {
        start: start.iter().map(|&s| s as isize).collect(),
        size: start.iter().zip(&end).map(|(s, e)| e - s).collect(),
    };
    Ok(Some(window))
}

pub struct CropPad(ToolSpec);

impl CropPad {
    fn new() -> CropPad {
        CropPad(
            ToolSpec::new(
                "preprocess.crop_pad",
                Category::Preprocess,
                "Crop / pad",
                "Crops and pads in index space, without interpolation. mode centre: to `size` voxels per \
                 axis, centred (the smaller half of the difference is removed or added before index 0, \
                 the larger after, as MONAI's CenterSpatialCrop/SpatialPad). mode mask: to the bounding \
                 box of the non-zero voxels of the `mask` input (an integer image on exactly the image's \
                 grid), grown by `margin` voxels per axis and clipped to the image. mode multiple: pads \
                 each axis to the next multiple of `multiple` (centred, as above). Padding takes \
                 pad_value (converted to the voxel type). Spacing and direction are kept and the origin \
                 moves so that every kept voxel keeps its physical position, as sitk.Crop and \
                 sitk.ConstantPad set it. List parameters take one value per axis, or one for all.",
            )
            .param(ParamSpec::choice("mode", "What decides the new extent.", &MODES).default("centre"))
            .param(ParamSpec::list("size", "mode centre: voxels per axis (each >= 1).", AT_LEAST_ONE).range(1.0, 4.0).default(json!([256])))
            .param(ParamSpec::list("margin", "mode mask: voxels kept around the bounding box per axis.", NOT_NEGATIVE).range(1.0, 4.0).default(json!([0])))
            .param(ParamSpec::list("multiple", "mode multiple: each axis is padded to a multiple of this (>= 1).", AT_LEAST_ONE).range(1.0, 4.0).default(json!([16])))
            .param(ParamSpec::float("pad_value", "Value of padded voxels (e.g. -1024 for CT air).").default(0.0))
            .input(PortSpec::new("image", PortType::Image, "The image to crop or pad."))
            .input(PortSpec::new("mask", PortType::LabelImage, "mode mask: an integer mask on the image's grid.").optional())
            .output(PortSpec::new("image", PortType::Image, "The cropped or padded image.")),
        )
    }

    fn window(&self, inputs: &mut Inputs, params: &Params, image: &Image) -> Result<Window, ToolError> {
        let id = &self.0.id;
        match params.text("mode")? {
            "mask" => {
                let mask = take_image(inputs, id, "mask")?;
                if mask.size() != image.size() || !mask.geometry().approx_eq(image.geometry(), 1e-6) {
                    let message = format!(
                        "the mask's grid (size {:?}, origin {:?}, spacing {:?}) differs from the image's (size {:?}, origin {:?}, spacing {:?})",
                        mask.size(), mask.geometry().origin(), mask.geometry().spacing(),
                        image.size(), image.geometry().origin(), image.geometry().spacing()
                    );
                    return Err(failed(id, message));
                }
                let margin = per_axis(id, params, "margin", image)?;
                bounding_box(&mask, &margin, id)?.ok_or_else(|| failed(id, "the mask has no foreground voxel"))
            }
            "multiple" => {
                let multiple = per_axis(id, params, "multiple", image)?;
                let size: Vec<usize> = image.size().iter().zip(&multiple).map(|(&n, &m)| n.div_ceil(m) * m).collect();
                Ok(Window::centred(image.size(), &size))
            }
            _ => Ok(Window::centred(image.size(), &per_axis(id, params, "size", image)?)),
        }
    }
}

impl Tool for CropPad {
    fn spec(&self) -> &ToolSpec {
        &self.0
    }

    fn run(&self, mut inputs: Inputs, params: &Params, _context: &Context) -> Result<Outputs, ToolError> {
        let id = &self.0.id;
        let image = take_image(&mut inputs, id, "image")?;
        let window = self.window(&mut inputs, params, &image)?;
        let values = window.size.iter().try_fold(image.components(), |n, &s| n.checked_mul(s));
        if values.is_none_or(|n| n > 1 << 31) {
            return Err(failed(id, format!("would make a {:?} image, more than 2147483648 values", window.size)));
        }
        Ok(output(window.apply(&image, params.float("pad_value")?)))
    }
}

inventory::submit! { ToolEntry { build: || Arc::new(CropPad::new()) } }

#[cfg(test)]
mod tests {
    use super::*;
    use medas_image::Voxels;

    #[test]
    fn centred_windows_put_the_smaller_half_first() {
        assert_eq!(Window::centred(&[10, 10, 4], &[7, 13, 4]).start, vec![1, -1, 0]);
        assert_eq!(Window::centred(&[1], &[4]).start, vec![-1]);
    }

    #[test]
    fn crop_and_pad_in_one_window() {
        let image = Image::from_voxels(Voxels::from_fortran_vec(&[4, 2], (1..=8).collect::<Vec<u8>>()).unwrap()).unwrap();
        let window = Window { start: vec![2, -1], size: vec![3, 3] };
        let out = window.apply(&image, 300.0);
        let values: Vec<u8> = out.voxels().as_array::<u8>().unwrap().view().reversed_axes().iter().copied().collect();
        // Rows j = -1 (pad), 0, 1; columns i = 2, 3, 4 (pad); 300 saturates to 255.
        assert_eq!(values, vec![255, 255, 255, 3, 4, 255, 7, 8, 255]);
        assert_eq!(out.geometry().origin(), &[2.0, -1.0]);
        let empty = Window { start: vec![9, 0], size: vec![2, 2] }.apply(&image, 0.0);
        assert!(empty.voxels().as_array::<u8>().unwrap().iter().all(|&v| v == 0));
    }

    #[test]
    fn bounding_box_with_margin_is_clipped() {
        let mut values = vec![0u8; 5 * 4 * 3];
        values[1 + 5 * 2 + 20] = 1; // (1, 2, 1): i + 5 j + 20 k
        values[3 + 5 * 2 + 20] = 7; // (3, 2, 1)
        let mask = Image::from_voxels(Voxels::from_fortran_vec(&[5, 4, 3], values).unwrap()).unwrap();
        let window = bounding_box(&mask, &[0, 1, 5], "t").unwrap().unwrap();
        assert_eq!(window, Window { start: vec![1, 1, 0], size: vec![3, 3, 3] });
    }
}
