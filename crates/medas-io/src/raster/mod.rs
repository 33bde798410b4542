//! PNG, JPEG and TIFF images, and folders of PNG slices (a "PNG stack").
//!
//! Layout: a 2-D image has index `i` = column (x) and `j` = row (y); the voxel buffer is the
//! file's row-major pixel memory, so no copy or transpose is needed. Colour images carry a
//! trailing component axis (grey+alpha 2, RGB 3, RGBA 4). A multi-page TIFF whose pages all
//! share size and pixel type becomes a 3-D stack (`k` = page), as does a PNG folder.
//!
//! Spacing follows SimpleITK, the reader of record, so that geometry compares exactly:
//! - PNG: the `sCAL` chunk, whose values ITK writes and reads as millimetres. The `pHYs`
//!   chunk (dots per metre) is *not* used for reading, because SimpleITK ignores it and most
//!   `pHYs` chunks are a screen's 72 dpi, not a physical pixel size; our writer stores both.
//! - JPEG: the JFIF density (dots per inch → 25.4/d mm, dots per cm → 10/d mm).
//! - TIFF: `XResolution`/`YResolution` with `ResolutionUnit` inch (25.4/r mm) or centimetre
//!   (10/r mm); no unit or a zero resolution leaves unit spacing. Stack slices are 1 mm apart.
//!
//! Origin is zero and direction the identity: these formats store neither.

mod codec;
mod stack;
mod tiff_io;

use crate::{Format, IoError, ReadOptions, Result, WriteOptions};
use medas_image::{Geometry, Image, VoxelArray, Voxels};
use ndarray::{ArcArray, IxDyn};
use std::path::Path;

/// Reads a PNG, JPEG or TIFF file, or a folder of PNG slices, as an [`Image`].
pub fn read(path: &Path, options: &ReadOptions) -> Result<Image> {
    if path.is_dir() {
        return stack::read(path, options);
    }
    let bytes = std::fs::read(path).map_err(|e| IoError::io(path, e))?;
    read_bytes(&bytes, path)
}

/// Decodes a PNG, JPEG or TIFF file held in memory; `name` is only used in error messages.
/// The format is chosen from the first bytes. This is the entry point for fuzzing.
pub fn read_bytes(bytes: &[u8], name: &Path) -> Result<Image> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        codec::read_png(bytes, name)
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        codec::read_jpeg(bytes, name)
    } else if bytes.starts_with(b"II*\0")
        || bytes.starts_with(b"MM\0*")
        || bytes.starts_with(b"II+\0")
        || bytes.starts_with(b"MM\0+")
    {
        tiff_io::read(bytes, name)
    } else {
        Err(IoError::corrupt(
            name,
            "raster",
            "the first bytes are not those of a PNG, JPEG or TIFF file",
        ))
    }
}

/// Writes `image` as PNG, JPEG, TIFF or a folder of PNG slices (`format` says which).
///
/// - PNG: 2-D, u8 or u16, grey, grey+alpha, RGB or RGBA.
/// - JPEG: 2-D, u8 grey or RGB, quality 95 (lossy).
/// - TIFF: 2-D or 3-D (one page per slice), grey of any integer type, f32 or f64, and RGB/RGBA
///   u8 or u16; deflate-compressed.
/// - PNG stack: `path` is a folder; slice `k` goes to `slice_0000.png`, `slice_0001.png`, ...
///
/// Other pixel types give [`IoError::CannotWrite`] naming a cast or rescale that would fit.
pub fn write(image: &Image, path: &Path, format: Format, options: &WriteOptions) -> Result<()> {
    match format {
        Format::Png => codec::write_png(image, path),
        Format::Jpeg => codec::write_jpeg(image, path),
        Format::Tiff => tiff_io::write(image, path),
        Format::PngStack => stack::write(image, path, options),
        other => Err(IoError::cannot_write(
            path,
            "raster",
            format!("{} is not a raster format", other.name()),
        )),
    }
}

/// Most bytes a decoder may produce from a file of `file_len` bytes. Real compressors stay far
/// below a ratio of 4096:1 on image data (deflate tops out near 1032:1), so a larger claim
/// comes from a hostile or broken header and must not make us allocate.
pub(crate) fn decoded_limit(file_len: usize) -> u64 {
    (64 << 20) + 4096 * file_len as u64
}

/// Checks `samples` values of `bytes_per_sample` against [`decoded_limit`].
pub(crate) fn check_decoded_size(
    path: &Path,
    format: &'static str,
    samples: u128,
    bytes_per_sample: usize,
    file_len: usize,
) -> Result<()> {
    let bytes = samples.saturating_mul(bytes_per_sample as u128);
    if bytes > decoded_limit(file_len) as u128 {
        return Err(IoError::corrupt(
            path,
            format,
            format!(
                "the header claims {bytes} bytes of pixels, too many for a {file_len}-byte file"
            ),
        ));
    }
    Ok(())
}

/// Wraps a row-major pixel buffer (components interleaved, then x, then y, then slice) as
/// voxels of shape `spatial ++ [components]` (no component axis for scalar images).
pub(crate) fn voxels_from<T: VoxelArray>(
    path: &Path,
    spatial: &[usize],
    components: usize,
    data: Vec<T>,
) -> Result<Voxels> {
    let voxels = if components > 1 {
        Voxels::from_interleaved_vec(spatial, components, data)
    } else {
        Voxels::from_fortran_vec(spatial, data)
    };
    voxels.map_err(|e| IoError::image(path, e))
}

/// An image with the given spacing (mm), zero origin and identity direction.
pub(crate) fn make_image(
    path: &Path,
    voxels: Voxels,
    components: usize,
    spacing: &[f64],
) -> Result<Image> {
    let n = spacing.len();
    let mut direction = vec![0.0; n * n];
    for d in 0..n {
        direction[d * n + d] = 1.0;
    }
    let geometry = Geometry::new(spacing.to_vec(), vec![0.0; n], direction)
        .map_err(|e| IoError::image(path, e))?;
    Image::with_components(voxels, components, geometry).map_err(|e| IoError::image(path, e))
}

/// The voxels in file order: components fastest, then `i`, then `j`, then `k`.
pub(crate) fn row_major<T: Copy>(array: &ArcArray<T, IxDyn>, spatial_dims: usize) -> Vec<T> {
    let mut order: Vec<usize> = (0..spatial_dims).rev().collect();
    order.extend(spatial_dims..array.ndim());
    let view = array.view().permuted_axes(IxDyn(&order));
    match view.as_slice() {
        Some(slice) => slice.to_vec(),
        None => view.iter().copied().collect(),
    }
}

/// Spacing in mm from a resolution in dots per `unit_mm` millimetres (25.4 for an inch).
pub(crate) fn spacing_from_density(density: f64, unit_mm: f64) -> Option<f64> {
    let spacing = unit_mm / density;
    (density > 0.0 && spacing.is_finite() && spacing > 0.0).then_some(spacing)
}

/// The error for a pixel type a writer cannot store, with a hint on what would fit.
pub(crate) fn cannot_store(
    path: &Path,
    format: &'static str,
    image: &Image,
    fits: &str,
) -> IoError {
    IoError::cannot_write(
        path,
        format,
        format!(
            "{}-D {} images are not supported; {format} stores {fits}. Cast or rescale the image first (e.g. `medas convert` after a rescale to uint8), or write TIFF/NIfTI instead",
            image.dimension(),
            image.pixel_type()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_major_reverses_spatial_axes_only() {
        let v = Voxels::from_interleaved_vec(&[2, 2], 3, (0u8..12).collect()).unwrap();
        let a = v.as_array::<u8>().unwrap();
        assert_eq!(row_major(a, 2), (0u8..12).collect::<Vec<_>>());
        let f = Voxels::from_fortran_vec(&[3, 2], (0u8..6).collect()).unwrap();
        assert_eq!(
            row_major(f.as_array::<u8>().unwrap(), 2),
            vec![0, 1, 2, 3, 4, 5]
        );
    }

    #[test]
    fn unknown_bytes_and_hostile_sizes_are_errors() {
        assert!(read_bytes(b"hello world", Path::new("x.png")).is_err());
        assert!(check_decoded_size(Path::new("x"), "png", 1 << 40, 1, 100).is_err());
        assert!(check_decoded_size(Path::new("x"), "png", 512 * 512, 2, 100).is_ok());
        assert_eq!(spacing_from_density(0.0, 25.4), None);
        assert!((spacing_from_density(254.0, 25.4).unwrap() - 0.1).abs() < 1e-12);
    }
}
