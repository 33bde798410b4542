//! Pixel data: stored samples (native or through a codec) → typed arrays, colour conversion,
//! palette expansion, MONOCHROME1 inversion and the modality rescale.

use super::header::{Header, PixelFormat};
use super::modality::{self, Stored, unused_bits, with_stored};
use super::{FORMAT, Values};
use crate::{IoError, Result};
use dicom_core::{DicomValue, PrimitiveValue};
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::PixelDecoder;
use medas_image::{Image, Voxels, keys};
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

macro_rules! samples_from {
    ($($t:ty => $variant:ident),*) => {$(
        impl From<Vec<$t>> for Samples {
            fn from(data: Vec<$t>) -> Samples {
                Samples::$variant(data)
            }
        }
    )*};
}
samples_from!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32);

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
    let unused = unused_bits(fmt);
    let convert = |bytes: &[u8]| with_stored!(fmt, T => {
        bytes.par_chunks_exact(T::WIDTH).map(|c| T::read_le(c, unused)).collect::<Vec<T>>().into()
    });
    convert(bytes)
}

/// Runs `$body` with `$v` bound to the vector inside whichever variant `$samples` is.
macro_rules! with_samples {
    ($samples:expr, $v:ident => $body:expr) => {
        match $samples {
            Samples::U8($v) => $body,
            Samples::I8($v) => $body,
            Samples::U16($v) => $body,
            Samples::I16($v) => $body,
            Samples::U32($v) => $body,
            Samples::I32($v) => $body,
        }
    };
}
pub(crate) use with_samples;

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
        (Some(palette), true) => (modality::expand_palette(&samples, palette, fmt, &shape), 3),
        _ if fmt.samples == 3 => (wrap(samples, &shape, 3), 3),
        (_, true) => (modality::rescale(&samples, header, &shape), 1),
        (_, false) => (wrap(samples, &shape, 1), 1),
    };
    finish(voxels.map_err(|e| IoError::image(name, e))?, components, header, modality, name)
}

/// The image of `voxels` with the header's geometry and metadata.
pub(crate) fn finish(voxels: Voxels, components: usize, header: &Header, modality: bool, name: &Path) -> Result<Image> {
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
    with_samples!(samples, v => go!(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dicom::modality::test_format as format;

    #[test]
    fn unused_bits_are_masked_or_sign_extended() {
        let bytes = [0xff, 0xf7]; // 0xf7ff: 12 stored bits 0x7ff, garbage above
        assert_eq!(typed(&bytes, &format(12, false)), Samples::U16(vec![0x07ff]));
        let bytes = [0x00, 0xf8, 0xff, 0x07]; // 12-bit signed 0x800 = -2048, 0x7ff = 2047
        assert_eq!(typed(&bytes, &format(12, true)), Samples::I16(vec![-2048, 2047]));
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
