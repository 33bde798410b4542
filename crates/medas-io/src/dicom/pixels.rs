//! Pixel data: stored samples (native or through a codec) → typed arrays, colour conversion,
//! palette expansion, MONOCHROME1 inversion and the modality rescale.

use super::header::{Frame, Header, Palette, PixelFormat};
use super::{FORMAT, Values};
use crate::{IoError, Result};
use dicom_core::{DicomValue, PrimitiveValue};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;
use medas_image::{Image, ScalarType, Voxels, keys};
use rayon::prelude::*;
use std::path::Path;

/// Decoded stored samples, interleaved, column fastest, then row, then frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Samples {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
}

const BIG_ENDIAN: &str = "1.2.840.10008.1.2.2";
const RLE: &str = "1.2.840.10008.1.2.5";
const JPEG_BASELINE: &str = "1.2.840.10008.1.2.4.50";
const JPEG_EXTENDED: &str = "1.2.840.10008.1.2.4.51";
const JPEG_2000: [&str; 2] = ["1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"];

/// Encapsulated transfer syntaxes this build decodes, with their names.
const CODECS: [(&str, &str); 10] = [
    ("1.2.840.10008.1.2.5", "RLE Lossless"),
    ("1.2.840.10008.1.2.4.50", "JPEG Baseline (Process 1)"),
    ("1.2.840.10008.1.2.4.51", "JPEG Extended (Process 2 & 4)"),
    ("1.2.840.10008.1.2.4.57", "JPEG Lossless, Non-Hierarchical (Process 14)"),
    ("1.2.840.10008.1.2.4.70", "JPEG Lossless, Non-Hierarchical, First-Order Prediction"),
    ("1.2.840.10008.1.2.4.80", "JPEG-LS Lossless"),
    ("1.2.840.10008.1.2.4.81", "JPEG-LS Lossy (Near-Lossless)"),
    ("1.2.840.10008.1.2.4.90", "JPEG 2000 (Lossless Only)"),
    ("1.2.840.10008.1.2.4.91", "JPEG 2000"),
    ("1.2.840.10008.1.2.1.98", "Encapsulated Uncompressed Explicit VR Little Endian"),
];

/// Most decoded bytes we accept per byte of compressed data (a hostile header must not make
/// us allocate far more than the file could hold).
const MAX_EXPANSION: usize = 4096;

/// Decodes the stored samples of every frame (no photometric change other than YBR → RGB).
/// `file` is the whole file, used to check that encapsulated pixel data is complete.
pub(crate) fn decode_stored(obj: &DefaultDicomObject, header: &Header, file: &[u8], name: &Path) -> Result<Samples> {
    let element = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| IoError::corrupt(name, FORMAT, "the file holds no pixel data"))?;
    let fmt = &header.pixel;
    match element.value() {
        DicomValue::Primitive(value) => {
            let bytes = native_bytes(value, header, name)?;
            let samples = typed(&bytes, fmt);
            let samples = if fmt.planar { interleave_planes(samples, fmt) } else { samples };
            Ok(to_rgb(samples, fmt))
        }
        DicomValue::PixelSequence(sequence) => {
            if !delimited(file) {
                return Err(IoError::corrupt(name, FORMAT, "encapsulated pixel data ends without its delimiter: the file is truncated"));
            }
            let fragments: Vec<&[u8]> = sequence.fragments().iter().map(|f| f.as_slice()).collect();
            if fragments.len() < fmt.frames {
                let what = format!("{} pixel data fragments for {} frames", fragments.len(), fmt.frames);
                return Err(IoError::corrupt(name, FORMAT, what));
            }
            let bytes = encapsulated_bytes(obj, &fragments, header, name)?;
            let samples = typed(&bytes, fmt);
            Ok(if header.transfer_syntax == RLE { to_rgb(samples, fmt) } else { samples })
        }
        DicomValue::Sequence(_) => Err(IoError::corrupt(name, FORMAT, "Pixel Data is a sequence")),
    }
}

/// True when a Sequence Delimitation Item follows the last Pixel Data tag (encapsulated data
/// is always little endian). The parser accepts a file cut right after the last fragment.
fn delimited(file: &[u8]) -> bool {
    const PIXEL_DATA: [u8; 4] = [0xe0, 0x7f, 0x10, 0x00];
    const DELIMITER: [u8; 8] = [0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0];
    let start = file.windows(4).rposition(|w| w == PIXEL_DATA).unwrap_or(0);
    file[start..].windows(8).any(|w| w == DELIMITER)
}

/// Number of bytes the stored samples of all frames occupy.
/// Native YBR_FULL_422 holds two samples per pixel; codecs return three.
fn stored_size(fmt: &PixelFormat, native: bool, name: &Path) -> Result<usize> {
    let too_big = || IoError::corrupt(name, FORMAT, "the declared image size overflows");
    let subsampled = native && fmt.photometric == "YBR_FULL_422" && fmt.samples == 3;
    let samples = if subsampled { 2 } else { fmt.samples };
    let count = [fmt.rows, fmt.columns, fmt.frames, samples]
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(too_big)?;
    if fmt.bits_allocated == 1 {
        return Ok(count.div_ceil(8));
    }
    count.checked_mul(fmt.bits_allocated as usize / 8).ok_or_else(too_big)
}

/// Native pixel data as little-endian bytes of exactly the declared size (1-bit data unpacked
/// to one byte 0/1 per pixel).
fn native_bytes(value: &PrimitiveValue, header: &Header, name: &Path) -> Result<Vec<u8>> {
    let fmt = &header.pixel;
    let needed = stored_size(fmt, true, name)?;
    let raw = value.to_bytes();
    if raw.len() < needed {
        return Err(IoError::corrupt(
            name,
            FORMAT,
            format!("pixel data is truncated: {} bytes present, {needed} needed", raw.len()),
        ));
    }
    let mut bytes = raw[..needed].to_vec();
    if fmt.bits_allocated == 1 {
        let pixels = fmt.rows * fmt.columns * fmt.frames * fmt.samples;
        return Ok((0..pixels).map(|n| (bytes[n / 8] >> (n % 8)) & 1).collect());
    }
    if header.transfer_syntax == BIG_ENDIAN {
        let width = fmt.bits_allocated as usize / 8;
        match value {
            // Read as bytes: every sample is still big-endian.
            PrimitiveValue::U8(_) if width > 1 => bytes.chunks_exact_mut(width).for_each(|c| c.reverse()),
            // Read as 16-bit words: each word was swapped, the two halves of a 32-bit sample were not.
            PrimitiveValue::U16(_) | PrimitiveValue::I16(_) if width == 4 => {
                bytes.chunks_exact_mut(4).for_each(|c| {
                    c.swap(0, 2);
                    c.swap(1, 3);
                })
            }
            _ => {}
        }
    }
    Ok(bytes)
}

fn encapsulated_bytes(obj: &DefaultDicomObject, fragments: &[&[u8]], header: &Header, name: &Path) -> Result<Vec<u8>> {
    let compressed: usize = fragments.iter().map(|f| f.len()).sum();
    let uid = header.transfer_syntax.as_str();
    let Some((_, ts_name)) = CODECS.iter().find(|(u, _)| *u == uid) else {
        return Err(unsupported(name, uid, "no decoder for this transfer syntax"));
    };
    let fmt = &header.pixel;
    let needed = stored_size(fmt, false, name)?;
    if needed > compressed.saturating_mul(MAX_EXPANSION).max(1 << 20) {
        return Err(IoError::corrupt(
            name,
            FORMAT,
            format!("the header declares {needed} bytes of pixels for only {compressed} bytes of compressed data"),
        ));
    }
    if uid == RLE {
        return super::rle::decode(fragments, fmt, name);
    }
    if uid == JPEG_EXTENDED && fmt.bits_allocated > 8 {
        return Err(unsupported(name, uid, "12-bit JPEG Extended (the JPEG decoder reads 8-bit only)"));
    }
    if (uid == JPEG_BASELINE || uid == JPEG_EXTENDED)
        && fmt.samples == 3
        && fmt.bits_allocated == 8
        && let Some(frames) = frame_streams(fragments, fmt.frames)
    {
        return decode_colour_jpeg(&frames, fmt, needed, name);
    }
    if JPEG_2000.contains(&uid) {
        super::jpeg2000::check_frames(fragments, fmt, name)?;
    }
    let decoded = obj.decode_pixel_data().map_err(|e| {
        let message = e.to_string();
        if message.to_ascii_lowercase().contains("unsupported") {
            unsupported(name, uid, ts_name)
        } else {
            IoError::corrupt(name, FORMAT, format!("cannot decode {ts_name} pixel data: {message}"))
        }
    })?;
    let data = decoded.data();
    if data.len() < needed {
        return Err(IoError::corrupt(
            name,
            FORMAT,
            format!("decoded {ts_name} pixel data holds {} bytes, {needed} expected", data.len()),
        ));
    }
    Ok(data[..needed].to_vec())
}

/// The compressed stream of each frame: one fragment per frame, or all fragments of a
/// single-frame image joined. `None` when frames span fragments in another way (then
/// dicom-pixeldata splits them with the offset table).
fn frame_streams(fragments: &[&[u8]], frames: usize) -> Option<Vec<Vec<u8>>> {
    if fragments.len() == frames {
        Some(fragments.iter().map(|f| f.to_vec()).collect())
    } else if frames == 1 {
        Some(vec![fragments.concat()])
    } else {
        None
    }
}

/// Whether the samples of a 3-component JPEG frame are YCbCr, decided as pydicom does (the
/// reference of record): the decoder returns the components untransformed, and pydicom converts
/// YBR → RGB itself when the Photometric Interpretation, corrected by the codestream, is YBR.
/// Components named 'R','G','B' (or 'r','g','b') mean RGB; a JFIF APP0 marker means YCbCr;
/// otherwise the header's Photometric Interpretation decides. (jpeg-decoder on its own would
/// also assume YCbCr for unmarked streams, wrong for DICOM RGB files written without markers.)
fn jpeg_is_ybr(stream: &[u8], photometric: &str) -> bool {
    let (mut jfif, mut ids) = (false, None);
    let mut at = 2; // after SOI
    while at + 4 <= stream.len() && stream[at] == 0xff {
        let marker = stream[at + 1];
        if marker == 0xff {
            at += 1; // fill byte
            continue;
        }
        if marker == 0xda || marker == 0xd9 {
            break; // start of scan or end of image: no more headers
        }
        let length = u16::from_be_bytes([stream[at + 2], stream[at + 3]]) as usize;
        let payload = stream.get(at + 4..at + 2 + length).unwrap_or(&[]);
        match marker {
            0xe0 if payload.starts_with(b"JFIF") => jfif = true,
            // Start of frame: precision, height, width, count, then (id, sampling, table) each.
            0xc0..=0xcf if marker != 0xc4 && marker != 0xc8 && marker != 0xcc && payload.len() >= 15 => {
                ids = Some([payload[6], payload[9], payload[12]]);
            }
            _ => {}
        }
        at += 2 + length.max(2);
    }
    if matches!(ids, Some([82, 71, 66] | [114, 103, 98])) {
        return false;
    }
    jfif || photometric == "YBR_FULL" || photometric == "YBR_FULL_422"
}

/// Decodes 8-bit 3-component JPEG baseline/extended frames into `needed` interleaved RGB
/// bytes: components as coded, then pydicom's YBR → RGB where [`jpeg_is_ybr`] says so.
fn decode_colour_jpeg(frames: &[Vec<u8>], fmt: &PixelFormat, needed: usize, name: &Path) -> Result<Vec<u8>> {
    let frame_size = fmt.rows * fmt.columns * 3;
    let decoded: Vec<Vec<u8>> = frames
        .par_iter()
        .take(fmt.frames)
        .map(|stream| {
            let mut decoder = jpeg_decoder::Decoder::new(stream.as_slice());
            // `RGB` interleaves the components untouched (`None` does not interleave them).
            decoder.set_color_transform(jpeg_decoder::ColorTransform::RGB);
            decoder.set_max_decoding_buffer_size(frame_size);
            let mut pixels = decoder
                .decode()
                .map_err(|e| IoError::corrupt(name, FORMAT, format!("cannot decode JPEG pixel data: {e}")))?;
            let info = decoder.info().map(|i| (i.width as usize, i.height as usize, i.pixel_format));
            if info != Some((fmt.columns, fmt.rows, jpeg_decoder::PixelFormat::RGB24)) || pixels.len() != frame_size {
                let what = format!("a JPEG frame is {info:?}, the header declares {}×{} RGB", fmt.columns, fmt.rows);
                return Err(IoError::corrupt(name, FORMAT, what));
            }
            if jpeg_is_ybr(stream, &fmt.photometric) {
                pixels.par_chunks_exact_mut(3).for_each(ybr_to_rgb);
            }
            Ok(pixels)
        })
        .collect::<Result<_>>()?;
    let data = decoded.concat();
    if data.len() != needed {
        let what = format!("decoded JPEG pixel data holds {} bytes, {needed} expected", data.len());
        return Err(IoError::corrupt(name, FORMAT, what));
    }
    Ok(data)
}

fn unsupported(name: &Path, uid: &str, what: &str) -> IoError {
    IoError::UnsupportedTransferSyntax { path: name.to_path_buf(), uid: uid.to_string(), name: what.to_string() }
}

/// Little-endian bytes → typed samples with the unused high bits masked (unsigned) or
/// sign-extended (signed), as pydicom does.
fn typed(bytes: &[u8], fmt: &PixelFormat) -> Samples {
    let unused = if fmt.bits_allocated == 1 { 0 } else { (fmt.bits_allocated - fmt.bits_stored) as u32 };
    macro_rules! convert {
        ($t:ty, $n:expr) => {
            bytes
                .par_chunks_exact($n)
                .map(|c| {
                    let mut b = [0u8; $n];
                    b.copy_from_slice(c);
                    let v = <$t>::from_le_bytes(b);
                    if unused > 0 { v.wrapping_shl(unused).wrapping_shr(unused) } else { v }
                })
                .collect()
        };
    }
    match (fmt.bits_allocated, fmt.signed) {
        (1 | 8, false) => Samples::U8(convert!(u8, 1)),
        (1 | 8, true) => Samples::I8(convert!(i8, 1)),
        (16, false) => Samples::U16(convert!(u16, 2)),
        (16, true) => Samples::I16(convert!(i16, 2)),
        (_, false) => Samples::U32(convert!(u32, 4)),
        (_, true) => Samples::I32(convert!(i32, 4)),
    }
}

macro_rules! map_samples {
    ($samples:expr, $v:ident => $body:expr) => {
        match $samples {
            Samples::U8($v) => Samples::U8($body),
            Samples::I8($v) => Samples::I8($body),
            Samples::U16($v) => Samples::U16($body),
            Samples::I16($v) => Samples::I16($body),
            Samples::U32($v) => Samples::U32($body),
            Samples::I32($v) => Samples::I32($body),
        }
    };
}

/// Planar configuration 1 (RRR…GGG…BBB per frame) → interleaved RGB.
fn interleave_planes(samples: Samples, fmt: &PixelFormat) -> Samples {
    let plane = fmt.rows * fmt.columns;
    fn go<T: Copy>(data: Vec<T>, plane: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(data.len());
        for frame in data.chunks_exact(plane * 3) {
            for p in 0..plane {
                out.extend([frame[p], frame[plane + p], frame[2 * plane + p]]);
            }
        }
        out
    }
    map_samples!(samples, v => go(v, plane))
}

/// YBR_FULL and (native) YBR_FULL_422 8-bit samples → RGB with pydicom's formula.
fn to_rgb(samples: Samples, fmt: &PixelFormat) -> Samples {
    let Samples::U8(mut data) = samples else { return samples };
    if fmt.samples != 3 {
        return Samples::U8(data);
    }
    if fmt.photometric == "YBR_FULL_422" && data.len() == fmt.rows * fmt.columns * fmt.frames * 2 {
        data = data.chunks_exact(4).flat_map(|c| [c[0], c[2], c[3], c[1], c[2], c[3]]).collect();
    }
    if fmt.photometric == "YBR_FULL" || fmt.photometric == "YBR_FULL_422" {
        data.par_chunks_exact_mut(3).for_each(ybr_to_rgb);
    }
    Samples::U8(data)
}

fn ybr_to_rgb(pixel: &mut [u8]) {
    // The float32 matrix of pydicom's `_convert_YBR_FULL_to_RGB`, applied in the same order.
    const M: [[f32; 3]; 3] =
        [[1.0, 1.0, 1.0], [0.0, -0.114 * 1.772 / 0.587, 1.772], [1.402, -0.299 * 1.402 / 0.587, 0.0]];
    let ybr = [pixel[0] as f32, pixel[1] as f32 - 128.0, pixel[2] as f32 - 128.0];
    for c in 0..3 {
        let v = ybr[0] * M[0][c] + ybr[1] * M[1][c] + ybr[2] * M[2][c];
        pixel[c] = (v + 0.5).floor().clamp(0.0, 255.0) as u8;
    }
}

/// Builds the image: stored samples as they are ([`Values::Stored`]) or modality values.
pub(crate) fn to_image(samples: Samples, header: &Header, values: Values, name: &Path) -> Result<Image> {
    let fmt = &header.pixel;
    let shape = [fmt.columns, fmt.rows, fmt.frames];
    let modality = values == Values::Modality;
    let (voxels, components) = match (&header.palette, modality) {
        (Some(palette), true) => (expand_palette(&samples, palette, fmt, &shape), 3),
        _ if fmt.samples == 3 => (wrap(samples, &shape, 3), 3),
        (_, true) => (rescale(&samples, header, &shape), 1),
        (_, false) => (wrap(samples, &shape, 1), 1),
    };
    let voxels = voxels.map_err(|e| IoError::image(name, e))?;
    let mut image =
        Image::with_components(voxels, components, header.geometry()).map_err(|e| IoError::image(name, e))?;
    image.metadata = header.metadata.clone();
    if modality && components == 1 && image.metadata.text(keys::MODALITY) == Some("CT") {
        image.metadata.set(keys::VALUE_UNIT, "HU");
    }
    image.metadata.set(keys::SOURCE_FORMAT, "dicom");
    Ok(image)
}

fn wrap(samples: Samples, shape: &[usize], components: usize) -> Result<Voxels, medas_image::ImageError> {
    macro_rules! go {
        ($v:expr) => {
            if components == 1 {
                Voxels::from_fortran_vec(shape, $v)
            } else {
                Voxels::from_interleaved_vec(shape, components, $v)
            }
        };
    }
    match samples {
        Samples::U8(v) => go!(v),
        Samples::I8(v) => go!(v),
        Samples::U16(v) => go!(v),
        Samples::I16(v) => go!(v),
        Samples::U32(v) => go!(v),
        Samples::I32(v) => go!(v),
    }
}

/// Range of values `bits_stored` bits can hold.
pub(crate) fn stored_range(fmt: &PixelFormat) -> (f64, f64) {
    let bits = fmt.bits_stored.clamp(1, 32) as i32;
    if fmt.signed { (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0) } else { (0.0, 2f64.powi(bits) - 1.0) }
}

/// Output type of the modality rescale (see the module documentation of `dicom`).
pub(crate) fn output_type(fmt: &PixelFormat, frames: &[Frame], stored: ScalarType) -> ScalarType {
    if frames.iter().all(|f| f.slope == 1.0 && f.intercept == 0.0) {
        return stored;
    }
    let integral = |x: f64| x.fract() == 0.0 && x.abs() < 2f64.powi(31);
    if !frames.iter().all(|f| integral(f.slope) && integral(f.intercept)) {
        return ScalarType::F32;
    }
    let (lo, hi) = stored_range(fmt);
    let (min, max) = frames.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(mn, mx), f| {
        let (a, b) = (lo * f.slope + f.intercept, hi * f.slope + f.intercept);
        (mn.min(a.min(b)), mx.max(a.max(b)))
    });
    let fits = |t: ScalarType| {
        let bits = (t.size() * 8) as i32;
        let (tlo, thi) =
            if t.is_signed() { (-(2f64.powi(bits - 1)), 2f64.powi(bits - 1) - 1.0) } else { (0.0, 2f64.powi(bits) - 1.0) };
        min >= tlo && max <= thi
    };
    [ScalarType::U8, ScalarType::I8, ScalarType::U16, ScalarType::I16, ScalarType::U32, ScalarType::I32]
        .into_iter()
        .find(|t| fits(*t))
        .unwrap_or(ScalarType::F32)
}

fn scalar_of(samples: &Samples) -> ScalarType {
    match samples {
        Samples::U8(_) => ScalarType::U8,
        Samples::I8(_) => ScalarType::I8,
        Samples::U16(_) => ScalarType::U16,
        Samples::I16(_) => ScalarType::I16,
        Samples::U32(_) => ScalarType::U32,
        Samples::I32(_) => ScalarType::I32,
    }
}

/// MONOCHROME1 inversion then Rescale Slope/Intercept per frame, into the output type.
fn rescale(samples: &Samples, header: &Header, shape: &[usize]) -> Result<Voxels, medas_image::ImageError> {
    let fmt = &header.pixel;
    let out = output_type(fmt, &header.frames, scalar_of(samples));
    let invert = (fmt.photometric == "MONOCHROME1").then(|| stored_range(fmt));
    let frame_len = fmt.rows * fmt.columns;
    macro_rules! go {
        ($v:expr) => {
            rescale_typed($v, frame_len, &header.frames, invert, out, shape)
        };
    }
    match samples {
        Samples::U8(v) => go!(v),
        Samples::I8(v) => go!(v),
        Samples::U16(v) => go!(v),
        Samples::I16(v) => go!(v),
        Samples::U32(v) => go!(v),
        Samples::I32(v) => go!(v),
    }
}

fn rescale_typed<T: Copy + Into<f64> + Sync>(
    data: &[T],
    frame_len: usize,
    frames: &[Frame],
    invert: Option<(f64, f64)>,
    out: ScalarType,
    shape: &[usize],
) -> Result<Voxels, medas_image::ImageError> {
    let value = |frame: usize, v: T| {
        let mut x: f64 = v.into();
        if let Some((lo, hi)) = invert {
            x = if lo < 0.0 { -1.0 - x } else { hi - x };
        }
        let f = frames.get(frame).copied().unwrap_or(Frame { position: None, slope: 1.0, intercept: 0.0 });
        x * f.slope + f.intercept
    };
    macro_rules! build {
        ($t:ty) => {{
            let values: Vec<$t> = data
                .par_chunks(frame_len.max(1))
                .enumerate()
                .flat_map_iter(|(k, chunk)| chunk.iter().map(move |&v| value(k, v) as $t))
                .collect();
            Voxels::from_fortran_vec(shape, values)
        }};
    }
    match out {
        ScalarType::U8 => build!(u8),
        ScalarType::I8 => build!(i8),
        ScalarType::U16 => build!(u16),
        ScalarType::I16 => build!(i16),
        ScalarType::U32 => build!(u32),
        ScalarType::I32 => build!(i32),
        ScalarType::F64 => build!(f64),
        _ => build!(f32),
    }
}

/// Palette colour → RGB (u8 when the data or the LUT entries are 8-bit, like SimpleITK).
fn expand_palette(
    samples: &Samples,
    palette: &Palette,
    fmt: &PixelFormat,
    shape: &[usize],
) -> Result<Voxels, medas_image::ImageError> {
    let indices: Vec<i64> = match samples {
        Samples::U8(v) => v.iter().map(|&x| x as i64).collect(),
        Samples::I8(v) => v.iter().map(|&x| x as i64).collect(),
        Samples::U16(v) => v.iter().map(|&x| x as i64).collect(),
        Samples::I16(v) => v.iter().map(|&x| x as i64).collect(),
        Samples::U32(v) => v.iter().map(|&x| x as i64).collect(),
        Samples::I32(v) => v.iter().map(|&x| x as i64).collect(),
    };
    let last = palette.red.len().min(palette.green.len()).min(palette.blue.len()).saturating_sub(1) as i64;
    let entry = |v: i64| (v - palette.first).clamp(0, last) as usize;
    let eight = palette.bits == 8 || fmt.bits_allocated == 8;
    let shift = if palette.bits == 16 && eight { 8 } else { 0 };
    let rgb = |v: &i64| {
        let e = entry(*v);
        [palette.red[e] >> shift, palette.green[e] >> shift, palette.blue[e] >> shift]
    };
    if eight {
        let data: Vec<u8> = indices.par_iter().flat_map_iter(|v| rgb(v).map(|c| c as u8)).collect();
        Voxels::from_interleaved_vec(shape, 3, data)
    } else {
        let data: Vec<u16> = indices.par_iter().flat_map_iter(rgb).collect();
        Voxels::from_interleaved_vec(shape, 3, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format(bits_stored: u16, signed: bool) -> PixelFormat {
        PixelFormat {
            rows: 1,
            columns: 1,
            frames: 1,
            samples: 1,
            bits_allocated: 16,
            bits_stored,
            signed,
            photometric: "MONOCHROME2".into(),
            planar: false,
        }
    }

    fn frame(slope: f64, intercept: f64) -> Frame {
        Frame { position: None, slope, intercept }
    }

    #[test]
    fn rescale_type_follows_gdcm() {
        let ct = format(16, true);
        assert_eq!(output_type(&ct, &[frame(1.0, -1024.0)], ScalarType::I16), ScalarType::I32);
        assert_eq!(output_type(&format(12, false), &[frame(1.0, -1024.0)], ScalarType::U16), ScalarType::I16);
        assert_eq!(output_type(&format(12, false), &[frame(1.0, 0.0)], ScalarType::U16), ScalarType::U16);
        assert_eq!(output_type(&ct, &[frame(0.5, 0.0)], ScalarType::I16), ScalarType::F32);
    }

    #[test]
    fn unused_bits_are_masked_or_sign_extended() {
        let bytes = [0xff, 0xf7]; // 0xf7ff: 12 stored bits 0x7ff, garbage above
        assert_eq!(typed(&bytes, &format(12, false)), Samples::U16(vec![0x07ff]));
        let bytes = [0x00, 0xf8]; // 12-bit signed 0x800 = -2048
        assert_eq!(typed(&bytes, &format(12, true)), Samples::I16(vec![-2048]));
    }

    /// A JPEG header: SOI, optional APP0 JFIF, SOF0 with three components named `ids`, SOS.
    fn jpeg_header(jfif: bool, ids: [u8; 3]) -> Vec<u8> {
        let mut bytes = vec![0xff, 0xd8];
        if jfif {
            bytes.extend([0xff, 0xe0, 0, 16]);
            bytes.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        }
        bytes.extend([0xff, 0xc0, 0, 17, 8, 0, 1, 0, 1, 3]);
        for id in ids {
            bytes.extend([id, 0x11, 0]);
        }
        bytes.extend([0xff, 0xda, 0, 12]);
        bytes
    }

    #[test]
    fn jpeg_colour_space_follows_pydicom() {
        // Unmarked stream: the Photometric Interpretation decides (jpeg-decoder alone would say YCbCr).
        assert!(!jpeg_is_ybr(&jpeg_header(false, [0, 1, 2]), "RGB"));
        assert!(jpeg_is_ybr(&jpeg_header(false, [1, 2, 3]), "YBR_FULL_422"));
        // A JFIF marker means YCbCr whatever the header says; 'R','G','B' components mean RGB.
        assert!(jpeg_is_ybr(&jpeg_header(true, [1, 2, 3]), "RGB"));
        assert!(!jpeg_is_ybr(&jpeg_header(false, *b"RGB"), "YBR_FULL"));
        // Truncated or garbage streams do not panic.
        assert!(!jpeg_is_ybr(&[0xff, 0xd8, 0xff, 0xe0, 0xff], "RGB"));
        assert!(!jpeg_is_ybr(&[], "RGB"));
    }

    #[test]
    fn ybr_grey_stays_grey() {
        let mut pixel = [77u8, 128, 128];
        ybr_to_rgb(&mut pixel);
        assert_eq!(pixel, [77, 77, 77]);
    }
}
