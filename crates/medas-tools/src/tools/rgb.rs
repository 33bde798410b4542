//! What the pathology tools share: an RGB image read pixel by pixel (channel values through a
//! per-channel function, tabulated for 8- and 16-bit images), and images built from per-pixel
//! results with the input's geometry.
//!
//! An RGB image has a trailing component axis of 3 (as medas-io reads PNG, JPEG and TIFF).
//! Pixels are visited in the order of the spatial axes, first axis fastest, which is the
//! memory order of every reader's interleaved buffer, so that order is read in place.

use crate::error::ToolError;
use medas_image::{Image, ScalarType, VoxelArray, Voxels};
use ndarray::{ArcArray, IxDyn};
use std::borrow::Cow;

/// The channel values of an RGB image, interleaved (R, G, B of pixel 0, then pixel 1, ...).
enum Values<'a> {
    /// 8- or 16-bit values, looked up in a table of the channel function's results.
    U8(Cow<'a, [u8]>, Vec<f64>),
    U16(Cow<'a, [u16]>, Vec<f64>),
    F32(Cow<'a, [f32]>),
    F64(Cow<'a, [f64]>),
}

/// An RGB image's pixels, each channel value `v` read as `channel(v * scale)`, where `scale`
/// maps the type's range onto [0, 1] as skimage's `img_as_float` does (1/255 for uint8,
/// 1/65535 for uint16, 1 for floats).
pub struct Pixels<'a, F> {
    values: Values<'a>,
    channel: F,
}

impl<F: Fn(f64) -> f64 + Sync> Pixels<'_, F> {
    /// Number of pixels.
    pub fn len(&self) -> usize {
        match &self.values {
            Values::U8(v, _) => v.len() / 3,
            Values::U16(v, _) => v.len() / 3,
            Values::F32(v) => v.len() / 3,
            Values::F64(v) => v.len() / 3,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The three channel values of pixel `k`, through the channel function.
    #[inline]
    pub fn get(&self, k: usize) -> [f64; 3] {
        let at = 3 * k;
        match &self.values {
            Values::U8(v, table) => [table[v[at] as usize], table[v[at + 1] as usize], table[v[at + 2] as usize]],
            Values::U16(v, table) => [table[v[at] as usize], table[v[at + 1] as usize], table[v[at + 2] as usize]],
            Values::F32(v) => [0, 1, 2].map(|c| (self.channel)(v[at + c] as f64)),
            Values::F64(v) => [0, 1, 2].map(|c| (self.channel)(v[at + c])),
        }
    }
}

/// An image checked to be RGB with a channel type the pathology tools read.
pub struct Rgb<'a> {
    image: &'a Image,
    tool: &'a str,
}

impl<'a> Rgb<'a> {
    /// `image` when it has 3 components per pixel of type uint8, uint16, float32 or float64;
    /// otherwise an error naming `tool`.
    pub fn of(image: &'a Image, tool: &'a str) -> Result<Rgb<'a>, ToolError> {
        let rgb = Rgb { image, tool };
        if image.components() != 3 {
            return Err(rgb.failed(format!("needs an RGB image (3 components per pixel), got {} component(s)", image.components())));
        }
        match image.scalar_type() {
            ScalarType::U8 | ScalarType::U16 | ScalarType::F32 | ScalarType::F64 => Ok(rgb),
            other => Err(rgb.failed(format!("reads uint8, uint16, float32 or float64 RGB images, got {}", other.name()))),
        }
    }

    /// `image` when it is an 8-bit RGB image (what the stain normalisers are defined on).
    pub fn of_u8(image: &'a Image, tool: &'a str) -> Result<Rgb<'a>, ToolError> {
        let rgb = Rgb::of(image, tool)?;
        match image.scalar_type() {
            ScalarType::U8 => Ok(rgb),
            other => Err(rgb.failed(format!("needs an 8-bit RGB image (uint8, 0 to 255), got {}", other.name()))),
        }
    }

    pub fn failed(&self, message: String) -> ToolError {
        ToolError::Failed { tool: self.tool.into(), message }
    }

    pub fn image(&self) -> &'a Image {
        self.image
    }

    /// The pixels, each channel value through `channel` (applied to the value scaled to [0, 1]).
    pub fn pixels<F: Fn(f64) -> f64 + Sync>(&self, channel: F) -> Pixels<'a, F> {
        let values = match self.image.voxels() {
            Voxels::U8(a) => Values::U8(interleaved(a), table(255, &channel)),
            Voxels::U16(a) => Values::U16(interleaved(a), table(65535, &channel)),
            Voxels::F32(a) => Values::F32(interleaved(a)),
            Voxels::F64(a) => Values::F64(interleaved(a)),
            _ => unreachable!("Rgb::of admits only these types"),
        };
        Pixels { values, channel }
    }

    /// An image on this image's grid from per-pixel values (`components` per pixel,
    /// interleaved, in pixel order), keeping geometry and metadata.
    pub fn image_from<T: VoxelArray>(&self, values: Vec<T>, components: usize) -> Result<Image, ToolError> {
        let spatial = self.image.size();
        let voxels = if components == 1 {
            Voxels::from_fortran_vec(spatial, values)
        } else {
            Voxels::from_interleaved_vec(spatial, components, values)
        };
        let failed = |e: medas_image::ImageError| self.failed(e.to_string());
        let mut image = Image::with_components(voxels.map_err(failed)?, components, self.image.geometry().clone()).map_err(failed)?;
        image.metadata = self.image.metadata.clone();
        Ok(image)
    }
}

/// `channel(v / max)` for every integer value `v` in `0..=max`.
fn table(max: u32, channel: &impl Fn(f64) -> f64) -> Vec<f64> {
    let scale = 1.0 / max as f64;
    (0..=max).map(|v| channel(v as f64 * scale)).collect()
}

/// The values with the component axis fastest, then the spatial axes first axis fastest: in
/// place when the array is stored so (as the readers give it), copied otherwise.
fn interleaved<T: Copy>(array: &ArcArray<T, IxDyn>) -> Cow<'_, [T]> {
    let axes = array.ndim();
    // Axes as (last spatial, ..., first spatial, component): C order of that is pixel order.
    let order: Vec<usize> = (0..axes - 1).rev().chain([axes - 1]).collect();
    let view = array.view().permuted_axes(order);
    match view.to_slice() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(view.iter().copied().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_are_read_in_order_whatever_the_layout() {
        // 2x2 pixels: interleaved buffer, and the same pixels stored component-major (Fortran).
        let values: Vec<u8> = vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let interleaved = Voxels::from_interleaved_vec(&[2, 2], 3, values.clone()).unwrap();
        let planar: Vec<u8> = (0..3).flat_map(|c| (0..4).map(move |p| 3 * p + c)).map(|at| values[at]).collect();
        let fortran = Voxels::from_fortran_vec(&[2, 2, 3], planar).unwrap();
        for voxels in [interleaved, fortran] {
            let image = Image::with_components(voxels, 3, medas_image::Geometry::identity(2)).unwrap();
            let pixels = Rgb::of(&image, "t").unwrap().pixels(|v| v * 255.0);
            let read: Vec<[f64; 3]> = (0..pixels.len()).map(|k| pixels.get(k)).collect();
            assert_eq!(read[1], [4.0, 5.0, 6.0]);
            assert_eq!(read[3], [10.0, 11.0, 12.0]);
        }
    }

    #[test]
    fn grey_and_integer_images_are_refused() {
        let grey = Image::from_voxels(Voxels::from_fortran_vec(&[2, 2], vec![0u8; 4]).unwrap()).unwrap();
        let error = Rgb::of(&grey, "t").err().unwrap().to_string();
        assert!(error.contains("needs an RGB image (3 components per pixel), got 1 component(s)"), "{error}");
        let ints = Image::with_components(Voxels::from_fortran_vec(&[1, 1, 3], vec![0i16; 3]).unwrap(), 3, medas_image::Geometry::identity(2)).unwrap();
        assert!(Rgb::of(&ints, "t").err().unwrap().to_string().contains("got int16"));
    }
}
