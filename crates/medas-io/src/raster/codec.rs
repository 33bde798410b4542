//! PNG and JPEG through the `image` crate, plus the few chunks/segments it does not expose
//! (PNG `sCAL`/`pHYs`, JPEG JFIF density) parsed and written here.

use super::{
    cannot_store, check_decoded_size, decoded_limit, make_image, row_major, spacing_from_density,
    voxels_from,
};
use crate::{IoError, Result};
use image::codecs::jpeg::{JpegEncoder, PixelDensity, PixelDensityUnit};
use image::codecs::png::PngEncoder;
use image::{
    DynamicImage, ExtendedColorType, ImageDecoder, ImageEncoder, ImageFormat, ImageReader,
};
use medas_image::{Image, ScalarType};
use std::io::Cursor;
use std::path::Path;

/// Decodes a PNG (8/16-bit grey, grey+alpha, RGB, RGBA; palette and low bit depths are
/// expanded to 8 bits, as libpng does for SimpleITK).
pub(super) fn read_png(bytes: &[u8], path: &Path) -> Result<Image> {
    let decoded = decode(bytes, path, ImageFormat::Png, "png")?;
    let spacing = png_scal_spacing(bytes).unwrap_or([1.0, 1.0]);
    to_image(decoded, path, "png", spacing)
}

/// Decodes a baseline or progressive JPEG (grey or colour, converted to RGB).
pub(super) fn read_jpeg(bytes: &[u8], path: &Path) -> Result<Image> {
    let decoded = decode(bytes, path, ImageFormat::Jpeg, "jpeg")?;
    let spacing = jfif_spacing(bytes).unwrap_or([1.0, 1.0]);
    to_image(decoded, path, "jpeg", spacing)
}

fn decode(
    bytes: &[u8],
    path: &Path,
    format: ImageFormat,
    name: &'static str,
) -> Result<DynamicImage> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(decoded_limit(bytes.len()));
    reader.limits(limits);
    let decoder = reader
        .into_decoder()
        .map_err(|e| IoError::corrupt(path, name, e.to_string()))?;
    let (w, h) = decoder.dimensions();
    let bytes_per_pixel = decoder.color_type().bytes_per_pixel() as usize;
    check_decoded_size(
        path,
        name,
        w as u128 * h as u128,
        bytes_per_pixel,
        bytes.len(),
    )?;
    DynamicImage::from_decoder(decoder).map_err(|e| IoError::corrupt(path, name, e.to_string()))
}

fn to_image(
    decoded: DynamicImage,
    path: &Path,
    name: &'static str,
    spacing: [f64; 2],
) -> Result<Image> {
    let spatial = [decoded.width() as usize, decoded.height() as usize];
    let (voxels, components) = match decoded {
        DynamicImage::ImageLuma8(b) => (voxels_from(path, &spatial, 1, b.into_raw())?, 1),
        DynamicImage::ImageLumaA8(b) => (voxels_from(path, &spatial, 2, b.into_raw())?, 2),
        DynamicImage::ImageRgb8(b) => (voxels_from(path, &spatial, 3, b.into_raw())?, 3),
        DynamicImage::ImageRgba8(b) => (voxels_from(path, &spatial, 4, b.into_raw())?, 4),
        DynamicImage::ImageLuma16(b) => (voxels_from(path, &spatial, 1, b.into_raw())?, 1),
        DynamicImage::ImageLumaA16(b) => (voxels_from(path, &spatial, 2, b.into_raw())?, 2),
        DynamicImage::ImageRgb16(b) => (voxels_from(path, &spatial, 3, b.into_raw())?, 3),
        DynamicImage::ImageRgba16(b) => (voxels_from(path, &spatial, 4, b.into_raw())?, 4),
        DynamicImage::ImageRgb32F(b) => (voxels_from(path, &spatial, 3, b.into_raw())?, 3),
        DynamicImage::ImageRgba32F(b) => (voxels_from(path, &spatial, 4, b.into_raw())?, 4),
        other => {
            return Err(IoError::unsupported(
                path,
                name,
                format!("pixel layout {:?}", other.color()),
            ));
        }
    };
    make_image(path, voxels, components, &spacing)
}

/// Spacing from a PNG `sCAL` chunk as ITK writes it: unit byte, then ASCII x, NUL, ASCII y,
/// whose values ITK takes as millimetres whatever the unit byte says.
fn png_scal_spacing(bytes: &[u8]) -> Option<[f64; 2]> {
    let data = png_chunk(bytes, b"sCAL")?;
    let text = std::str::from_utf8(data.get(1..)?).ok()?;
    let (x, y) = text.split_once('\0')?;
    let parse = |s: &str| {
        s.trim_end_matches('\0')
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v > 0.0)
    };
    Some([parse(x)?, parse(y)?])
}

/// The data of the first chunk of type `kind` before the image data, if any.
fn png_chunk<'a>(bytes: &'a [u8], kind: &[u8; 4]) -> Option<&'a [u8]> {
    let mut at = 8usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as usize;
        let this = &bytes[at + 4..at + 8];
        let data = bytes.get(at + 8..at.checked_add(8)?.checked_add(len)?)?;
        if this == kind {
            return Some(data);
        }
        if this == b"IDAT" || this == b"IEND" {
            return None;
        }
        at = at.checked_add(12)?.checked_add(len)?;
    }
    None
}

/// Spacing from the JFIF APP0 density (units 1: dots per inch, 2: dots per cm).
fn jfif_spacing(bytes: &[u8]) -> Option<[f64; 2]> {
    let mut at = 2usize;
    while at + 4 <= bytes.len() && bytes[at] == 0xff {
        let marker = bytes[at + 1];
        let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        let data = bytes.get(at + 4..at + 2 + len)?;
        if marker == 0xe0 && data.len() >= 12 && data.starts_with(b"JFIF\0") {
            let unit_mm = match data[7] {
                1 => 25.4,
                2 => 10.0,
                _ => return None,
            };
            let x = u16::from_be_bytes([data[8], data[9]]) as f64;
            let y = u16::from_be_bytes([data[10], data[11]]) as f64;
            return Some([
                spacing_from_density(x, unit_mm)?,
                spacing_from_density(y, unit_mm)?,
            ]);
        }
        if marker == 0xda || !(0xe0..=0xfe).contains(&marker) && marker != 0xdb && marker != 0xc4 {
            return None; // past the application segments
        }
        at += 2 + len;
    }
    None
}

/// Checks a 2-D image and returns (width, height) as the encoders want them.
fn plane_size(image: &Image, path: &Path, format: &'static str) -> Result<(u32, u32)> {
    if image.dimension() != 2 {
        let hint = if format == "png" {
            " (write a 3-D image as a PNG stack folder or a TIFF)"
        } else {
            " (write a 3-D image as TIFF)"
        };
        return Err(IoError::cannot_write(
            path,
            format,
            format!(
                "{format} holds one 2-D image, this one is {}-D{hint}",
                image.dimension()
            ),
        ));
    }
    let size = image.size();
    let w = u32::try_from(size[0])
        .map_err(|_| IoError::cannot_write(path, format, "image too wide"))?;
    let h = u32::try_from(size[1])
        .map_err(|_| IoError::cannot_write(path, format, "image too tall"))?;
    Ok((w, h))
}

/// Encodes a 2-D u8/u16 image with 1–4 components as PNG bytes, with `sCAL` and `pHYs`.
pub(crate) fn encode_png(image: &Image, path: &Path) -> Result<Vec<u8>> {
    let (w, h) = plane_size(image, path, "png")?;
    let fits = "8- or 16-bit unsigned grey, grey+alpha, RGB or RGBA";
    let kind = |eight, sixteen| match image.scalar_type() {
        ScalarType::U8 => Ok(eight),
        ScalarType::U16 => Ok(sixteen),
        _ => Err(cannot_store(path, "png", image, fits)),
    };
    let color = match image.components() {
        1 => kind(ExtendedColorType::L8, ExtendedColorType::L16)?,
        2 => kind(ExtendedColorType::La8, ExtendedColorType::La16)?,
        3 => kind(ExtendedColorType::Rgb8, ExtendedColorType::Rgb16)?,
        4 => kind(ExtendedColorType::Rgba8, ExtendedColorType::Rgba16)?,
        _ => return Err(cannot_store(path, "png", image, fits)),
    };
    let raw: Vec<u8> = match image.scalar_type() {
        ScalarType::U8 => row_major(image.voxels().as_array::<u8>().expect("u8 checked"), 2),
        _ => row_major(image.voxels().as_array::<u16>().expect("u16 checked"), 2)
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect(),
    };
    let mut out = Vec::new();
    PngEncoder::new(&mut out)
        .write_image(&raw, w, h, color)
        .map_err(|e| IoError::cannot_write(path, "png", e.to_string()))?;
    Ok(insert_spacing_chunks(out, image.geometry().spacing()))
}

/// Writes a 2-D image as PNG.
pub(super) fn write_png(image: &Image, path: &Path) -> Result<()> {
    let bytes = encode_png(image, path)?;
    crate::raw::write_file(path, &bytes)
}

/// Adds `sCAL` (ITK's spacing in mm) and `pHYs` (dots per metre) right after `IHDR`.
fn insert_spacing_chunks(png: Vec<u8>, spacing: &[f64]) -> Vec<u8> {
    let ihdr_end = 8 + 8 + 13 + 4;
    let mut scal = vec![1u8];
    scal.extend_from_slice(format!("{}\0{}", spacing[0], spacing[1]).as_bytes());
    let ppm = |s: f64| (1000.0 / s).round().clamp(1.0, u32::MAX as f64) as u32;
    let mut phys = Vec::with_capacity(9);
    phys.extend_from_slice(&ppm(spacing[0]).to_be_bytes());
    phys.extend_from_slice(&ppm(spacing[1]).to_be_bytes());
    phys.push(1);
    let mut out = Vec::with_capacity(png.len() + 64);
    out.extend_from_slice(&png[..ihdr_end]);
    for (kind, data) in [(b"sCAL", scal), (b"pHYs", phys)] {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(&data);
        out.extend_from_slice(kind);
        out.extend_from_slice(&data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    out.extend_from_slice(&png[ihdr_end..]);
    out
}

/// Writes a 2-D u8 grey or RGB image as JPEG (quality 95), with the spacing as JFIF density
/// in dots per cm when it fits the 16-bit field.
pub(super) fn write_jpeg(image: &Image, path: &Path) -> Result<()> {
    let (w, h) = plane_size(image, path, "jpeg")?;
    let color = match (image.scalar_type(), image.components()) {
        (ScalarType::U8, 1) => ExtendedColorType::L8,
        (ScalarType::U8, 3) => ExtendedColorType::Rgb8,
        _ => {
            return Err(cannot_store(
                path,
                "jpeg",
                image,
                "8-bit unsigned grey or RGB",
            ));
        }
    };
    let raw = row_major(image.voxels().as_array::<u8>().expect("u8 checked"), 2);
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 95);
    let spacing = image.geometry().spacing();
    let dpcm = |s: f64| 10.0 / s;
    let (x, y) = (dpcm(spacing[0]), dpcm(spacing[1]));
    let whole = |v: f64| v >= 1.0 && v <= u16::MAX as f64 && (v - v.round()).abs() < 1e-9;
    if whole(x) && whole(y) {
        encoder.set_pixel_density(PixelDensity {
            density: (x.round() as u16, y.round() as u16),
            unit: PixelDensityUnit::Centimeters,
        });
    } else {
        tracing::warn!(path = %path.display(), ?spacing, "spacing is not a whole number of dots per cm; JPEG stores an aspect ratio only");
        encoder.set_pixel_density(PixelDensity {
            density: (1, 1),
            unit: PixelDensityUnit::PixelAspectRatio,
        });
    }
    encoder
        .encode(&raw, w, h, color)
        .map_err(|e| IoError::cannot_write(path, "jpeg", e.to_string()))?;
    crate::raw::write_file(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use medas_image::Voxels;

    #[test]
    fn png_round_trip_keeps_spacing_and_16_bits() {
        let v = Voxels::from_fortran_vec(&[3, 2], vec![0u16, 1, 65535, 300, 4, 5]).unwrap();
        let image = make_image(Path::new("t.png"), v.clone(), 1, &[0.5, 0.25]).unwrap();
        let bytes = encode_png(&image, Path::new("t.png")).unwrap();
        let back = read_png(&bytes, Path::new("t.png")).unwrap();
        assert_eq!(back.voxels(), &v);
        assert_eq!(back.geometry().spacing(), &[0.5, 0.25]);
    }

    #[test]
    fn truncated_png_is_an_error() {
        let v = Voxels::from_fortran_vec(&[64, 64], vec![7u8; 4096]).unwrap();
        let image = make_image(Path::new("t.png"), v, 1, &[1.0, 1.0]).unwrap();
        let bytes = encode_png(&image, Path::new("t.png")).unwrap();
        for cut in [10, 40, bytes.len() / 2, bytes.len() - 5] {
            assert!(
                read_png(&bytes[..cut], Path::new("t.png")).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn float_png_is_refused_with_a_hint() {
        let v = Voxels::from_fortran_vec(&[2, 2], vec![0.5f32; 4]).unwrap();
        let image = make_image(Path::new("t.png"), v, 1, &[1.0, 1.0]).unwrap();
        let err = encode_png(&image, Path::new("t.png"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("float32") && err.contains("rescale"), "{err}");
    }
}
