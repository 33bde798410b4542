//! TIFF through the `tiff` crate: pages of grey (any integer type, f16/f32/f64), grey+alpha,
//! RGB or RGBA samples. Equal pages make a 3-D stack; the writer writes one page per slice.

use super::{
    cannot_store, check_decoded_size, make_image, row_major, spacing_from_density, voxels_from,
};
use crate::{IoError, Result};
use medas_image::{Image, ScalarType, VoxelArray, Voxels};
use std::io::{Cursor, Seek, Write};
use std::path::Path;
use tiff::decoder::{Decoder, DecodingResult, Limits};
use tiff::encoder::colortype::{self, ColorType as EncodeColor};
use tiff::encoder::compression::DeflateLevel;
use tiff::encoder::{Compression, Rational, TiffEncoder, TiffValue};
use tiff::tags::Tag;
use tiff::{ColorType, TiffError};

const FORMAT: &str = "tiff";

/// What every page of a stack must share with the first.
#[derive(Debug, Clone, Copy, PartialEq)]
struct PageKind {
    width: u32,
    height: u32,
    color: ColorType,
}

/// Reads page 0, and every following page while they match it in size and pixel type.
pub(super) fn read(bytes: &[u8], path: &Path) -> Result<Image> {
    let tiff_err = |e: TiffError| tiff_error(path, e);
    let mut limits = Limits::default();
    limits.decoding_buffer_size = super::decoded_limit(bytes.len()).min(usize::MAX as u64) as usize;
    let mut decoder = Decoder::new(Cursor::new(bytes))
        .map_err(tiff_err)?
        .with_limits(limits);
    let first = page_kind(&mut decoder, path)?;
    let components = components_of(first.color, path)?;
    let spacing = resolution_spacing(&mut decoder);
    let page_samples = first.width as u128 * first.height as u128 * components as u128;
    let mut data = read_page(&mut decoder, path, bytes.len(), page_samples)?;
    let mut pages = 1usize;
    while decoder.more_images() {
        decoder.next_image().map_err(tiff_err)?;
        let kind = page_kind(&mut decoder, path)?;
        if kind != first {
            tracing::warn!(path = %path.display(), page = pages, "TIFF page differs in size or type from page 0; reading the first {pages} page(s) only");
            break;
        }
        let total = page_samples * (pages as u128 + 1);
        check_decoded_size(
            path,
            FORMAT,
            total,
            bits(first.color).div_ceil(8) as usize,
            bytes.len(),
        )?;
        let page = read_page(&mut decoder, path, bytes.len(), page_samples)?;
        data.append(page)
            .map_err(|what| IoError::corrupt(path, FORMAT, what))?;
        pages += 1;
    }
    let (w, h) = (first.width as usize, first.height as usize);
    let (spatial, spacing) = if pages > 1 {
        (vec![w, h, pages], vec![spacing[0], spacing[1], 1.0])
    } else {
        (vec![w, h], spacing.to_vec())
    };
    let voxels = data.into_voxels(path, &spatial, components)?;
    make_image(path, voxels, components, &spacing)
}

fn tiff_error(path: &Path, error: TiffError) -> IoError {
    match error {
        TiffError::UnsupportedError(e) => IoError::unsupported(path, FORMAT, e.to_string()),
        TiffError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            IoError::corrupt(path, FORMAT, "file ends early")
        }
        other => IoError::corrupt(path, FORMAT, other.to_string()),
    }
}

fn page_kind(decoder: &mut Decoder<Cursor<&[u8]>>, path: &Path) -> Result<PageKind> {
    let (width, height) = decoder.dimensions().map_err(|e| tiff_error(path, e))?;
    let color = decoder.colortype().map_err(|e| tiff_error(path, e))?;
    let planar = decoder
        .find_tag_unsigned::<u16>(Tag::PlanarConfiguration)
        .ok()
        .flatten()
        .unwrap_or(1);
    if planar == 2 && !matches!(color, ColorType::Gray(_)) {
        return Err(IoError::unsupported(
            path,
            FORMAT,
            "planar (band-separated) colour samples",
        ));
    }
    Ok(PageKind {
        width,
        height,
        color,
    })
}

fn bits(color: ColorType) -> u8 {
    match color {
        ColorType::Gray(b) | ColorType::GrayA(b) | ColorType::RGB(b) | ColorType::RGBA(b) => b,
        _ => 8,
    }
}

fn components_of(color: ColorType, path: &Path) -> Result<usize> {
    let components = match color {
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) => 2,
        ColorType::RGB(_) => 3,
        ColorType::RGBA(_) => 4,
        other => {
            return Err(IoError::unsupported(
                path,
                FORMAT,
                format!("colour type {other:?} (grey, grey+alpha, RGB and RGBA are read)"),
            ));
        }
    };
    if ![8, 16, 32, 64].contains(&bits(color)) {
        return Err(IoError::unsupported(
            path,
            FORMAT,
            format!(
                "{} bits per sample (8, 16, 32 and 64 are read)",
                bits(color)
            ),
        ));
    }
    Ok(components)
}

/// Spacing (mm) from XResolution/YResolution and ResolutionUnit, as ITK reads it.
fn resolution_spacing(decoder: &mut Decoder<Cursor<&[u8]>>) -> [f64; 2] {
    let unit_mm = match decoder
        .find_tag_unsigned::<u16>(Tag::ResolutionUnit)
        .ok()
        .flatten()
    {
        Some(2) | None => 25.4,
        Some(3) => 10.0,
        _ => return [1.0, 1.0],
    };
    let mut get = |tag| decoder.find_tag(tag).ok().flatten().and_then(number);
    match (get(Tag::XResolution), get(Tag::YResolution)) {
        (Some(x), Some(y)) => match (
            spacing_from_density(x, unit_mm),
            spacing_from_density(y, unit_mm),
        ) {
            (Some(sx), Some(sy)) => [sx, sy],
            _ => [1.0, 1.0],
        },
        _ => [1.0, 1.0],
    }
}

/// A numeric tag value as f64 (resolutions are RATIONALs, which `Value::into_f64` refuses).
#[allow(deprecated)] // RationalBig is deprecated but may still come out of a BigTIFF
fn number(value: tiff::decoder::ifd::Value) -> Option<f64> {
    use tiff::decoder::ifd::Value as V;
    Some(match value {
        V::Rational(n, d) => n as f64 / d as f64,
        V::RationalBig(n, d) => n as f64 / d as f64,
        V::SRational(n, d) => n as f64 / d as f64,
        V::Float(v) => v as f64,
        V::Double(v) => v,
        V::List(list) => return list.into_iter().next().and_then(number),
        other => other.into_u64().ok()? as f64,
    })
}

fn read_page(
    decoder: &mut Decoder<Cursor<&[u8]>>,
    path: &Path,
    file_len: usize,
    samples: u128,
) -> Result<Samples> {
    let color = decoder.colortype().map_err(|e| tiff_error(path, e))?;
    check_decoded_size(
        path,
        FORMAT,
        samples,
        bits(color).div_ceil(8) as usize,
        file_len,
    )?;
    let result = decoder.read_image().map_err(|e| tiff_error(path, e))?;
    let page = Samples::from(result);
    if page.len() as u128 != samples {
        return Err(IoError::corrupt(
            path,
            FORMAT,
            format!("page decodes to {} samples, expected {samples}", page.len()),
        ));
    }
    Ok(page)
}

/// Decoded samples of one or more pages, in file order.
enum Samples {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

impl From<DecodingResult> for Samples {
    fn from(result: DecodingResult) -> Self {
        match result {
            DecodingResult::U8(v) => Samples::U8(v),
            DecodingResult::I8(v) => Samples::I8(v),
            DecodingResult::U16(v) => Samples::U16(v),
            DecodingResult::I16(v) => Samples::I16(v),
            DecodingResult::U32(v) => Samples::U32(v),
            DecodingResult::I32(v) => Samples::I32(v),
            DecodingResult::U64(v) => Samples::U64(v),
            DecodingResult::I64(v) => Samples::I64(v),
            DecodingResult::F16(v) => Samples::F32(v.into_iter().map(|h| h.to_f32()).collect()),
            DecodingResult::F32(v) => Samples::F32(v),
            DecodingResult::F64(v) => Samples::F64(v),
        }
    }
}

macro_rules! each_samples {
    ($value:expr, $v:ident => $body:expr) => {
        match $value {
            Samples::U8($v) => $body,
            Samples::I8($v) => $body,
            Samples::U16($v) => $body,
            Samples::I16($v) => $body,
            Samples::U32($v) => $body,
            Samples::I32($v) => $body,
            Samples::U64($v) => $body,
            Samples::I64($v) => $body,
            Samples::F32($v) => $body,
            Samples::F64($v) => $body,
        }
    };
}

impl Samples {
    fn len(&self) -> usize {
        each_samples!(self, v => v.len())
    }

    fn append(&mut self, other: Samples) -> std::result::Result<(), &'static str> {
        match (self, other) {
            (Samples::U8(a), Samples::U8(b)) => a.extend(b),
            (Samples::I8(a), Samples::I8(b)) => a.extend(b),
            (Samples::U16(a), Samples::U16(b)) => a.extend(b),
            (Samples::I16(a), Samples::I16(b)) => a.extend(b),
            (Samples::U32(a), Samples::U32(b)) => a.extend(b),
            (Samples::I32(a), Samples::I32(b)) => a.extend(b),
            (Samples::U64(a), Samples::U64(b)) => a.extend(b),
            (Samples::I64(a), Samples::I64(b)) => a.extend(b),
            (Samples::F32(a), Samples::F32(b)) => a.extend(b),
            (Samples::F64(a), Samples::F64(b)) => a.extend(b),
            _ => return Err("pages have different sample types"),
        }
        Ok(())
    }

    fn into_voxels(self, path: &Path, spatial: &[usize], components: usize) -> Result<Voxels> {
        each_samples!(self, v => voxels_from(path, spatial, components, v))
    }
}

/// Writes a 2-D image as one page or a 3-D image as one page per slice (deflate, with the
/// spacing as XResolution/YResolution in pixels per centimetre).
pub(super) fn write(image: &Image, path: &Path) -> Result<()> {
    if !(2..=3).contains(&image.dimension()) {
        return Err(cannot_store(
            path,
            FORMAT,
            image,
            "2-D images or 3-D stacks (one page per slice)",
        ));
    }
    let fits = "grey of any integer or float type, and RGB/RGBA of uint8 or uint16";
    let mut out = Cursor::new(Vec::new());
    let written = match (image.components(), image.scalar_type()) {
        (1, ScalarType::U8) => pages::<colortype::Gray8, u8, _>(image, &mut out),
        (1, ScalarType::I8) => pages::<colortype::GrayI8, i8, _>(image, &mut out),
        (1, ScalarType::U16) => pages::<colortype::Gray16, u16, _>(image, &mut out),
        (1, ScalarType::I16) => pages::<colortype::GrayI16, i16, _>(image, &mut out),
        (1, ScalarType::U32) => pages::<colortype::Gray32, u32, _>(image, &mut out),
        (1, ScalarType::I32) => pages::<colortype::GrayI32, i32, _>(image, &mut out),
        (1, ScalarType::U64) => pages::<colortype::Gray64, u64, _>(image, &mut out),
        (1, ScalarType::I64) => pages::<colortype::GrayI64, i64, _>(image, &mut out),
        (1, ScalarType::F32) => pages::<colortype::Gray32Float, f32, _>(image, &mut out),
        (1, ScalarType::F64) => pages::<colortype::Gray64Float, f64, _>(image, &mut out),
        (3, ScalarType::U8) => pages::<colortype::RGB8, u8, _>(image, &mut out),
        (3, ScalarType::U16) => pages::<colortype::RGB16, u16, _>(image, &mut out),
        (4, ScalarType::U8) => pages::<colortype::RGBA8, u8, _>(image, &mut out),
        (4, ScalarType::U16) => pages::<colortype::RGBA16, u16, _>(image, &mut out),
        _ => return Err(cannot_store(path, FORMAT, image, fits)),
    };
    written.map_err(|e| IoError::cannot_write(path, FORMAT, e.to_string()))?;
    crate::raw::write_file(path, &out.into_inner())
}

fn pages<C, T, W>(image: &Image, out: &mut W) -> std::result::Result<(), TiffError>
where
    C: EncodeColor<Inner = T>,
    T: VoxelArray + Copy,
    [T]: TiffValue,
    W: Write + Seek,
{
    let size = image.size();
    let too_big = |_| TiffError::LimitsExceeded;
    let (w, h) = (
        u32::try_from(size[0]).map_err(too_big)?,
        u32::try_from(size[1]).map_err(too_big)?,
    );
    let array = image
        .voxels()
        .as_array::<T>()
        .expect("type matched by the caller");
    let data = row_major(array, image.dimension());
    let page_len = size[0] * size[1] * image.components();
    let spacing = image.geometry().spacing();
    let mut encoder =
        TiffEncoder::new(out)?.with_compression(Compression::Deflate(DeflateLevel::Balanced));
    for page in data.chunks(page_len.max(1)) {
        let mut writer = encoder.new_image::<C>(w, h)?;
        writer.encoder().write_tag(Tag::ResolutionUnit, 3u16)?;
        writer
            .encoder()
            .write_tag(Tag::XResolution, per_cm(spacing[0]))?;
        writer
            .encoder()
            .write_tag(Tag::YResolution, per_cm(spacing[1]))?;
        writer.write_data(page)?;
    }
    Ok(())
}

/// Pixels per centimetre for a spacing in mm, as a rational with as many digits as fit.
fn per_cm(spacing_mm: f64) -> Rational {
    let value = 10.0 / spacing_mm;
    let mut d = 1_000_000u32;
    while d > 1 && value * d as f64 > u32::MAX as f64 {
        d /= 10;
    }
    Rational {
        n: (value * d as f64).round().clamp(1.0, u32::MAX as f64) as u32,
        d,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_round_trip_keeps_pages_and_spacing() {
        let v = Voxels::from_fortran_vec(&[3, 2, 4], (0..24).map(|x| x as f32 * 0.5).collect())
            .unwrap();
        let image = make_image(Path::new("t.tif"), v.clone(), 1, &[0.25, 0.5, 1.0]).unwrap();
        let file = tempfile::NamedTempFile::new().unwrap();
        write(&image, file.path()).unwrap();
        let bytes = std::fs::read(file.path()).unwrap();
        let back = read(&bytes, file.path()).unwrap();
        assert_eq!(back.voxels(), &v);
        assert_eq!(back.geometry().spacing(), &[0.25, 0.5, 1.0]);
        for cut in [8, 100, bytes.len() / 2] {
            assert!(read(&bytes[..cut], file.path()).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn rational_keeps_precision() {
        let r = per_cm(0.499);
        assert!((r.n as f64 / r.d as f64 - 10.0 / 0.499).abs() < 1e-6);
        let tiny = per_cm(1e-6);
        assert!(tiny.n > 0 && tiny.d >= 1);
    }
}
