//! NumPy `.npy` and `.npz` files (own parser: C and Fortran order, both byte orders, every
//! integer and float dtype; `bool` reads as `uint8`, `float16` as `float32`).
//!
//! NumPy arrays carry no geometry, so a plain array is read with unit spacing, zero origin and
//! identity direction, and **its axes are kept as stored**: array axis 0 becomes index axis
//! `i`. Mind where the array came from: nibabel's `get_fdata()` is already in index order
//! (i, j, k), but SimpleITK's `GetArrayFromImage` is reversed (k, j, i) — transpose such an
//! array (`arr.T`) before saving it if you want MEDAS to see the image the right way round.
//! A `.npy` or `.npz` array always reads as a scalar image (an `(x, y, 3)` array is 3-D).
//!
//! MEDAS writes `.npy` in index order with `fortran_order: True` (the layout of the medical
//! formats, no reordering), and `.npz` with the key `image` plus `spacing` (mm), `origin` (mm,
//! LPS) and `direction` (row-major `n × n`) arrays; when those keys are present on read the
//! geometry is restored, and an `image` with one axis more than `spacing` is read as a
//! multi-component (e.g. RGB) image.

use crate::raw::{self, ByteOrder};
use crate::{IoError, Result};
use medas_image::{Geometry, Image, ScalarType, Voxels, with_voxels};
use std::io::{Cursor, Read, Write};
use std::path::Path;

const FORMAT: &str = "npy";

/// How the stored values map to MEDAS scalars.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stored {
    Plain(ScalarType),
    Bool,
    Half,
}

/// The header of one `.npy` array.
#[derive(Debug, Clone, PartialEq)]
struct NpyHeader {
    stored: Stored,
    order: ByteOrder,
    fortran: bool,
    shape: Vec<usize>,
    data_start: usize,
}

/// Reads a `.npy` file, or the `image` array (else the first array) of a `.npz` file.
pub fn read(path: &Path) -> Result<Image> {
    read_bytes(&raw::read_file(path)?, path)
}

/// Parses one in-memory `.npy` or `.npz` file (told apart by the zip magic `PK`).
pub fn read_bytes(bytes: &[u8], name: &Path) -> Result<Image> {
    if bytes.starts_with(b"PK") {
        read_npz(bytes, name, None)
    } else {
        let voxels = parse_npy(bytes, name)?;
        Image::from_voxels(voxels).map_err(|e| IoError::image(name, e))
    }
}

/// Reads the array stored under `key` (without `.npy`) in a `.npz` file, with the geometry
/// keys applied as in [`read`].
pub fn read_npz_key(path: &Path, key: &str) -> Result<Image> {
    read_npz(&raw::read_file(path)?, path, Some(key))
}

fn zip_error(path: &Path, e: zip::result::ZipError) -> IoError {
    IoError::corrupt(path, "npz", format!("zip archive: {e}"))
}

/// Reads one zip entry, bounded by its declared size and the deflate expansion limit.
fn entry_bytes<R: Read + std::io::Seek>(
    archive: &mut zip::ZipArchive<R>,
    index: usize,
    path: &Path,
) -> Result<Vec<u8>> {
    let entry = archive.by_index(index).map_err(|e| zip_error(path, e))?;
    let limit = entry.size().min(entry.compressed_size().saturating_mul(1032).saturating_add(1 << 16));
    let mut out = Vec::new();
    entry
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| IoError::corrupt(path, "npz", format!("cannot unpack an array: {e}")))?;
    Ok(out)
}

fn read_npz(bytes: &[u8], path: &Path, key: Option<&str>) -> Result<Image> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| zip_error(path, e))?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    let index_of = |key: &str| names.iter().position(|n| *n == format!("{key}.npy") || n == key);
    let index = match key {
        Some(key) => index_of(key)
            .ok_or_else(|| IoError::corrupt(path, "npz", format!("no array {key:?} (arrays: {names:?})")))?,
        None => index_of("image").unwrap_or(0),
    };
    if archive.is_empty() {
        return Err(IoError::corrupt(path, "npz", "the archive holds no arrays"));
    }
    let voxels = parse_npy(&entry_bytes(&mut archive, index, path)?, path)?;
    let mut geometry_part = |key: &str| -> Result<Option<Vec<f64>>> {
        match index_of(key) {
            Some(k) if k != index => {
                let v = parse_npy(&entry_bytes(&mut archive, k, path)?, path)?;
                // Logical (C) order: a (n, n) direction array iterates row by row.
                Ok(Some(v.cast::<f64>().iter().copied().collect()))
            }
            _ => Ok(None),
        }
    };
    let (spacing, origin, direction) =
        (geometry_part("spacing")?, geometry_part("origin")?, geometry_part("direction")?);
    let ndim = voxels.shape().len();
    let Some(spacing) = spacing else {
        return Image::from_voxels(voxels).map_err(|e| IoError::image(path, e));
    };
    let n = spacing.len();
    let components = match ndim.checked_sub(n) {
        Some(0) => 1,
        Some(1) => voxels.shape().last().copied().unwrap_or(1),
        _ => {
            return Err(IoError::corrupt(path, "npz", format!("spacing has {n} values for a {ndim}-axis image")));
        }
    };
    let identity = Geometry::identity(n.clamp(1, 4));
    let origin = origin.unwrap_or_else(|| vec![0.0; n]);
    let direction = direction.unwrap_or_else(|| identity.direction().to_vec());
    let geometry = Geometry::new(spacing, origin, direction).map_err(|e| IoError::image(path, e))?;
    Image::with_components(voxels, components, geometry).map_err(|e| IoError::image(path, e))
}

/// Parses the bytes of one `.npy` array into voxels with the stored axes.
fn parse_npy(bytes: &[u8], path: &Path) -> Result<Voxels> {
    let header = parse_header(bytes, path)?;
    let data = bytes.get(header.data_start..).unwrap_or_default();
    let scalar = match header.stored {
        Stored::Plain(s) => s,
        Stored::Bool => ScalarType::U8,
        Stored::Half => ScalarType::U16,
    };
    // A C-order array is the Fortran-order array of the reversed shape, with its axes reversed.
    let mut file_shape = header.shape.clone();
    if !header.fortran {
        file_shape.reverse();
    }
    let mut voxels = raw::decode(path, FORMAT, data, scalar, header.order, &file_shape, 1)?;
    if !header.fortran {
        voxels = with_voxels!(voxels, a => Voxels::from(a.reversed_axes()));
    }
    Ok(match header.stored {
        Stored::Bool => Voxels::from(voxels.cast::<u8>().mapv(|v| (v != 0) as u8)),
        Stored::Half => Voxels::from(voxels.cast::<u16>().mapv(half_to_f32)),
        Stored::Plain(_) => voxels,
    })
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<NpyHeader> {
    let corrupt = |what: &str| IoError::corrupt(path, FORMAT, what.to_string());
    if !bytes.starts_with(b"\x93NUMPY") || bytes.len() < 10 {
        return Err(corrupt("the file does not start with the \\x93NUMPY magic"));
    }
    let (length, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            let b = bytes.get(8..12).ok_or_else(|| corrupt("header is truncated"))?;
            (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize, 12)
        }
        v => return Err(IoError::unsupported(path, FORMAT, format!("format version {v}"))),
    };
    let text = bytes.get(start..start + length).ok_or_else(|| corrupt("header is truncated"))?;
    let text = String::from_utf8_lossy(text);
    let value_after = |key: &str| -> Result<&str> {
        let at = text.find(&format!("'{key}'")).ok_or_else(|| corrupt(&format!("header has no '{key}'")))?;
        let rest = &text[at + key.len() + 2..];
        Ok(rest.trim_start().strip_prefix(':').unwrap_or(rest).trim_start())
    };
    let descr = value_after("descr")?;
    let descr = descr
        .strip_prefix('\'')
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| IoError::unsupported(path, FORMAT, "structured dtype (only plain numeric arrays)"))?;
    let (stored, order) =
        parse_descr(descr).ok_or_else(|| IoError::unsupported(path, FORMAT, format!("dtype {descr:?}")))?;
    let fortran = value_after("fortran_order")?.starts_with("True");
    let shape_text = value_after("shape")?;
    let shape_text = shape_text
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| corrupt("shape is not a tuple"))?;
    let shape: Vec<usize> = shape_text
        .split(',')
        .map(|s| s.trim().trim_end_matches('L'))
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().ok())
        .collect::<Option<_>>()
        .ok_or_else(|| corrupt("shape holds something other than whole numbers"))?;
    if shape.len() > 32 {
        return Err(corrupt("more than 32 axes"));
    }
    Ok(NpyHeader { stored, order, fortran, shape, data_start: start + length })
}

/// Parses a dtype string such as `<f4`, `|u1`, `>i2`, `|b1`.
fn parse_descr(descr: &str) -> Option<(Stored, ByteOrder)> {
    let (order, code) = match descr.as_bytes().first()? {
        b'<' | b'|' => (ByteOrder::Little, &descr[1..]),
        b'>' => (ByteOrder::Big, &descr[1..]),
        b'=' => (ByteOrder::NATIVE, &descr[1..]),
        _ => (ByteOrder::NATIVE, descr),
    };
    let stored = match code {
        "b1" | "?" => Stored::Bool,
        "u1" => Stored::Plain(ScalarType::U8),
        "i1" => Stored::Plain(ScalarType::I8),
        "u2" => Stored::Plain(ScalarType::U16),
        "i2" => Stored::Plain(ScalarType::I16),
        "u4" => Stored::Plain(ScalarType::U32),
        "i4" => Stored::Plain(ScalarType::I32),
        "u8" => Stored::Plain(ScalarType::U64),
        "i8" => Stored::Plain(ScalarType::I64),
        "f2" => Stored::Half,
        "f4" => Stored::Plain(ScalarType::F32),
        "f8" => Stored::Plain(ScalarType::F64),
        _ => return None,
    };
    Some((stored, order))
}

/// IEEE 754 half precision to single precision (exact).
fn half_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exponent = ((bits >> 10) & 0x1f) as i32;
    let fraction = (bits & 0x3ff) as f32;
    sign * match exponent {
        0 => fraction * 2f32.powi(-24),
        31 if fraction == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + fraction / 1024.0) * 2f32.powi(e - 15),
    }
}

fn descr_of(scalar: ScalarType) -> &'static str {
    match scalar {
        ScalarType::U8 => "|u1",
        ScalarType::I8 => "|i1",
        ScalarType::U16 => "<u2",
        ScalarType::I16 => "<i2",
        ScalarType::U32 => "<u4",
        ScalarType::I32 => "<i4",
        ScalarType::U64 => "<u8",
        ScalarType::I64 => "<i8",
        ScalarType::F32 => "<f4",
        ScalarType::F64 => "<f8",
    }
}

/// A `.npy` file: version 1.0 header padded to 64 bytes, then `data`.
fn npy_bytes(descr: &str, fortran: bool, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    let tuple = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let order = if fortran { "True" } else { "False" };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {tuple}, }}");
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.extend_from_slice(data);
    out
}

fn image_npy(image: &Image) -> Vec<u8> {
    // Components (if any) are the last array axis; with `components = 1` encode keeps every
    // axis in place and writes the first one fastest, i.e. Fortran order.
    let data = raw::encode(image.voxels(), 1, ByteOrder::Little);
    npy_bytes(descr_of(image.scalar_type()), true, image.voxels().shape(), &data)
}

fn f64_npy(values: &[f64], shape: &[usize]) -> Vec<u8> {
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_bytes("<f8", false, shape, &data)
}

/// Writes `.npz` (image + geometry, see the module docs) or, for any other extension, `.npy`
/// (voxels only, index order, Fortran layout).
pub fn write(image: &Image, path: &Path) -> Result<()> {
    let npz = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("npz"));
    if !npz {
        return raw::write_file(path, &image_npy(image));
    }
    let g = image.geometry();
    let n = g.dimension();
    let entries = [
        ("image.npy", image_npy(image)),
        ("spacing.npy", f64_npy(g.spacing(), &[n])),
        ("origin.npy", f64_npy(g.origin(), &[n])),
        ("direction.npy", f64_npy(g.direction(), &[n, n])),
    ];
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(entries[0].1.len() >= u32::MAX as usize);
    let fail = |e: &dyn std::fmt::Display| IoError::cannot_write(path, "npz", e.to_string());
    for (name, bytes) in &entries {
        writer.start_file(*name, options).map_err(|e| fail(&e))?;
        writer.write_all(bytes).map_err(|e| fail(&e))?;
    }
    let bytes = writer.finish().map_err(|e| fail(&e))?.into_inner();
    raw::write_file(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_and_fortran_order() {
        let p = Path::new("t.npy");
        let c = npy_bytes("<i2", false, &[2, 3], &[0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0]);
        let a = parse_npy(&c, p).unwrap();
        assert_eq!(a.as_array::<i16>().unwrap()[[1, 0]], 3);
        let f = npy_bytes(">i2", true, &[2, 3], &[0, 0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5]);
        let b = parse_npy(&f, p).unwrap();
        assert_eq!(b.as_array::<i16>().unwrap()[[1, 0]], 1);
        assert_eq!(b.as_array::<i16>().unwrap()[[0, 1]], 2);
    }

    #[test]
    fn header_is_padded_and_parsed_back() {
        let bytes = npy_bytes("<f8", true, &[7], &[0; 56]);
        assert_eq!((bytes.len() - 56) % 64, 0);
        let h = parse_header(&bytes, Path::new("t.npy")).unwrap();
        assert_eq!((h.shape.as_slice(), h.fortran), (&[7usize][..], true));
    }

    #[test]
    fn half_floats() {
        assert_eq!(half_to_f32(0x3c00), 1.0);
        assert_eq!(half_to_f32(0xc000), -2.0);
        assert_eq!(half_to_f32(0x0001), 2f32.powi(-24));
        assert!(half_to_f32(0x7e00).is_nan());
    }

    #[test]
    fn bad_input_is_an_error() {
        let p = Path::new("t.npy");
        assert!(read_bytes(b"\x93NUMPY\x01\x00\xff\xff{'descr'", p).is_err());
        let complex = npy_bytes("<c8", false, &[1], &[0; 8]);
        assert!(matches!(read_bytes(&complex, p), Err(IoError::Unsupported { .. })));
        let huge = npy_bytes("<f8", false, &[1 << 40, 1 << 30], &[0; 8]);
        assert!(read_bytes(&huge, p).is_err());
        assert!(read_bytes(b"PK\x03\x04 not a zip", Path::new("t.npz")).is_err());
    }
}
