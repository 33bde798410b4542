//! MetaImage (ITK MetaIO): `.mha` (header and voxels in one file, `ElementDataFile = LOCAL`)
//! and `.mhd` (header) plus a separate `.raw`/`.zraw` data file, a `LIST` of slice files or a
//! `%d` file-name pattern.
//!
//! Geometry follows ITK's `MetaImageIO`: `Offset` (alias `Position`, `Origin`) is the LPS
//! position of voxel 0 in mm, `ElementSpacing` (fallback `ElementSize`) the spacing in mm, and
//! `TransformMatrix` (alias `Rotation`, `Orientation`) holds the direction cosines **one index
//! axis after another**, i.e. the row-major direction matrix transposed (checked against
//! SimpleITK 2.5 writing an oblique image). `AnatomicalOrientation` is informative only and
//! ignored, as ITK does. `ElementNumberOfChannels > 1` becomes a trailing component axis.
//!
//! Detached data files must lie inside the header's folder (see [`crate::raw::resolve_detached`]).

use crate::raw::{self, ByteOrder};
use crate::{IoError, Result};
use medas_image::{Geometry, Image, ScalarType};
use std::path::{Path, PathBuf};

const FORMAT: &str = "metaimage";

/// Largest header we parse; real headers are well under 4 KiB.
const MAX_HEADER: usize = 1 << 20;
/// Most data files a file-name pattern may expand to (bounds what a hostile header can make us build).
const MAX_FILES: i64 = 100_000;

/// Where the voxels of a MetaImage live.
#[derive(Debug, Clone, PartialEq)]
enum DataFile {
    /// Right after the header in the same file.
    Local,
    /// One separate file (relative to the header).
    Single(String),
    /// One file per slice (or per block of `ElementDataFile`'s sub-dimension).
    List(Vec<String>),
}

/// The parsed header fields that MEDAS uses.
#[derive(Debug, Clone)]
struct Header {
    size: Vec<usize>,
    spacing: Vec<f64>,
    origin: Vec<f64>,
    /// Row-major direction (already transposed from `TransformMatrix`).
    direction: Vec<f64>,
    scalar: ScalarType,
    channels: usize,
    order: ByteOrder,
    compressed: bool,
    compressed_size: Option<usize>,
    binary: bool,
    header_size: Option<i64>,
    data_file: DataFile,
    /// Byte offset of the first byte after the `ElementDataFile` line.
    data_start: usize,
}

/// Options for [`write_with`].
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Zlib-compress the voxels (`CompressedData = True`, `.zraw` for `.mhd`), like SimpleITK's
    /// `useCompression`. Default: true.
    pub compress: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self { compress: true }
    }
}

/// Reads a `.mha` or `.mhd` file (voxels from the file itself or from the data file(s) it names).
pub fn read(path: &Path) -> Result<Image> {
    if let Some(image) = read_local_raw(path)? {
        return Ok(image);
    }
    let bytes = raw::read_file(path)?;
    let header = parse_header(&bytes, path)?;
    let payload = match &header.data_file {
        DataFile::Local => local_payload(&header, &bytes, path)?,
        DataFile::Single(name) => {
            let data_path = raw::resolve_detached(path, FORMAT, name)?;
            let data = raw::read_file(&data_path)?;
            let needed = stored_bytes(&header, path)?;
            skip_header(&header, data, needed, &data_path)?
        }
        DataFile::List(names) => list_payload(&header, names, path)?,
    };
    decode(&header, payload, path)
}

/// The common case of one `.mha` with uncompressed binary voxels, read without loading the
/// file whole: the header from the first bytes, then the voxels straight into their buffer.
/// `None` sends every other kind of file (and every header problem) down the general path.
fn read_local_raw(path: &Path) -> Result<Option<Image>> {
    use std::io::{Read, Seek, SeekFrom};
    const HEAD: u64 = 64 * 1024;
    let mut file = std::fs::File::open(path).map_err(|e| IoError::io(path, e))?;
    let mut head = Vec::new();
    (&mut file).take(HEAD).read_to_end(&mut head).map_err(|e| IoError::io(path, e))?;
    let Ok(header) = parse_header(&head, path) else { return Ok(None) };
    let simple = header.data_file == DataFile::Local && header.binary && !header.compressed && header.header_size.is_none();
    if !simple || header.data_start > head.len() {
        return Ok(None);
    }
    let length = file.metadata().map_err(|e| IoError::io(path, e))?.len();
    file.seek(SeekFrom::Start(header.data_start as u64)).map_err(|e| IoError::io(path, e))?;
    let hint = (length as usize).saturating_sub(header.data_start);
    let voxels = raw::read_voxels(path, FORMAT, &mut file, header.scalar, header.order, &header.size, header.channels, hint)?;
    let geometry =
        Geometry::new(header.spacing.clone(), header.origin.clone(), header.direction.clone()).map_err(|e| IoError::image(path, e))?;
    Image::with_components(voxels, header.channels, geometry).map(Some).map_err(|e| IoError::image(path, e))
}

/// Parses one in-memory `.mha` file. A header whose voxels are in a separate file gives an
/// error saying so (there is no folder to look in).
pub fn read_bytes(bytes: &[u8], name: &Path) -> Result<Image> {
    let header = parse_header(bytes, name)?;
    if header.data_file != DataFile::Local {
        return Err(IoError::unsupported(
            name,
            FORMAT,
            "the voxels are in a separate data file; read the header from disk",
        ));
    }
    let payload = local_payload(&header, bytes, name)?;
    decode(&header, payload, name)
}

/// Writes `.mha` (one file) or `.mhd` + `.zraw`/`.raw`, zlib-compressed (see [`WriteOptions`]).
pub fn write(image: &Image, path: &Path) -> Result<()> {
    write_with(image, path, &WriteOptions::default())
}

/// [`write`] with options.
pub fn write_with(image: &Image, path: &Path, options: &WriteOptions) -> Result<()> {
    let detached = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mhd"));
    if !options.compress && !detached {
        // One uncompressed file: header and voxels streamed, no copy of the volume in memory.
        let mut header = header_text(image, None)?;
        header.push_str("ElementDataFile = LOCAL\n");
        return raw::write_file_with(path, |out| {
            out.write_all(header.as_bytes())?;
            raw::write_encoded(out, image.voxels(), image.components(), ByteOrder::Little)
        });
    }
    let mut data = raw::encode(image.voxels(), image.components(), ByteOrder::Little);
    if options.compress {
        data = raw::zlib(&data);
    }
    let detached = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("mhd"));
    let data_name = if detached {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let name = format!("{stem}.{}", if options.compress { "zraw" } else { "raw" });
        Some(name)
    } else {
        None
    };
    let mut header = header_text(image, options.compress.then_some(data.len()))?;
    header.push_str(&format!("ElementDataFile = {}\n", data_name.as_deref().unwrap_or("LOCAL")));
    match data_name {
        Some(name) => {
            raw::write_file(path, header.as_bytes())?;
            raw::write_file(&path.with_file_name(name), &data)
        }
        None => {
            let mut bytes = header.into_bytes();
            bytes.extend_from_slice(&data);
            raw::write_file(path, &bytes)
        }
    }
}

fn header_text(image: &Image, compressed_size: Option<usize>) -> Result<String> {
    let g = image.geometry();
    let n = g.dimension();
    let join = |v: &mut dyn Iterator<Item = String>| v.collect::<Vec<_>>().join(" ");
    // TransformMatrix lists the direction of index axis 0 first, then axis 1, ...
    let matrix = join(&mut (0..n * n).map(|k| g.direction_at(k % n, k / n).to_string()));
    let mut h = String::from("ObjectType = Image\n");
    h += &format!("NDims = {n}\nBinaryData = True\nBinaryDataByteOrderMSB = False\n");
    match compressed_size {
        Some(size) => h += &format!("CompressedData = True\nCompressedDataSize = {size}\n"),
        None => h += "CompressedData = False\n",
    }
    h += &format!("TransformMatrix = {matrix}\n");
    h += &format!("Offset = {}\n", join(&mut g.origin().iter().map(f64::to_string)));
    h += &format!("CenterOfRotation = {}\n", vec!["0"; n].join(" "));
    h += &format!("ElementSpacing = {}\n", join(&mut g.spacing().iter().map(f64::to_string)));
    h += &format!("DimSize = {}\n", join(&mut image.size().iter().map(usize::to_string)));
    if image.components() > 1 {
        h += &format!("ElementNumberOfChannels = {}\n", image.components());
    }
    h += &format!("ElementType = {}\n", element_type_name(image.scalar_type()));
    Ok(h)
}

fn element_type_name(scalar: ScalarType) -> &'static str {
    match scalar {
        ScalarType::U8 => "MET_UCHAR",
        ScalarType::I8 => "MET_CHAR",
        ScalarType::U16 => "MET_USHORT",
        ScalarType::I16 => "MET_SHORT",
        ScalarType::U32 => "MET_UINT",
        ScalarType::I32 => "MET_INT",
        ScalarType::U64 => "MET_ULONG_LONG",
        ScalarType::I64 => "MET_LONG_LONG",
        ScalarType::F32 => "MET_FLOAT",
        ScalarType::F64 => "MET_DOUBLE",
    }
}

/// MetaIO element types (`MET_LONG` is 4 bytes in MetaIO, as SimpleITK reads it);
/// the `_ARRAY` forms are the same scalars with several channels.
fn parse_element_type(name: &str) -> Option<ScalarType> {
    let base = name.trim().strip_suffix("_ARRAY").unwrap_or(name.trim());
    Some(match base {
        "MET_CHAR" => ScalarType::I8,
        "MET_UCHAR" => ScalarType::U8,
        "MET_SHORT" => ScalarType::I16,
        "MET_USHORT" => ScalarType::U16,
        "MET_INT" | "MET_LONG" => ScalarType::I32,
        "MET_UINT" | "MET_ULONG" => ScalarType::U32,
        "MET_LONG_LONG" => ScalarType::I64,
        "MET_ULONG_LONG" => ScalarType::U64,
        "MET_FLOAT" => ScalarType::F32,
        "MET_DOUBLE" => ScalarType::F64,
        _ => return None,
    })
}

/// Raw header fields, in file order, up to and including `ElementDataFile`.
struct Fields {
    pairs: Vec<(String, String)>,
    data_start: usize,
    /// Lines after `ElementDataFile = LIST` (the slice file names).
    trailing: Vec<String>,
}

fn split_fields(bytes: &[u8], path: &Path) -> Result<Fields> {
    let mut pairs = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() && pos < MAX_HEADER {
        let end = bytes[pos..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |e| pos + e);
        let line = String::from_utf8_lossy(&bytes[pos..end]);
        pos = (end + 1).min(bytes.len());
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(IoError::corrupt(path, FORMAT, format!("header line {line:?} is not `Key = Value`")));
        };
        let (key, value) = (key.trim().to_string(), value.trim().to_string());
        let last = key.eq_ignore_ascii_case("ElementDataFile");
        pairs.push((key, value.clone()));
        if last {
            let trailing = if value.to_ascii_uppercase().starts_with("LIST") {
                String::from_utf8_lossy(&bytes[pos..]).split_whitespace().map(str::to_string).collect()
            } else {
                Vec::new()
            };
            return Ok(Fields { pairs, data_start: pos, trailing });
        }
    }
    Err(IoError::corrupt(path, FORMAT, "no `ElementDataFile` line in the header"))
}

impl Fields {
    /// The value of the first field named like one of `names` (case-insensitive).
    fn get(&self, names: &[&str]) -> Option<&str> {
        self.pairs.iter().find(|(k, _)| names.iter().any(|n| k.eq_ignore_ascii_case(n))).map(|(_, v)| v.as_str())
    }

    /// The first `count` numbers of a field, `None` when it is absent.
    fn numbers(&self, names: &[&str], count: usize, path: &Path) -> Result<Option<Vec<f64>>> {
        let Some(text) = self.get(names) else { return Ok(None) };
        let corrupt = |what: String| IoError::corrupt(path, FORMAT, what);
        let values: Vec<f64> = text
            .split_whitespace()
            .map(|t| t.parse().ok())
            .collect::<Option<_>>()
            .ok_or_else(|| corrupt(format!("{} = {text:?} is not a list of numbers", names[0])))?;
        if values.len() < count {
            return Err(corrupt(format!("{} has {} values, {count} needed", names[0], values.len())));
        }
        Ok(Some(values[..count].to_vec()))
    }
}

/// Spacing, origin and row-major direction from the header (defaults: 1, 0, identity).
fn parse_geometry(fields: &Fields, n: usize, path: &Path) -> Result<(Vec<f64>, Vec<f64>, Vec<f64>)> {
    let spacing = match fields.numbers(&["ElementSpacing"], n, path)? {
        Some(v) => v,
        None => fields.numbers(&["ElementSize"], n, path)?.unwrap_or_else(|| vec![1.0; n]),
    };
    let origin = fields.numbers(&["Offset", "Position", "Origin"], n, path)?.unwrap_or_else(|| vec![0.0; n]);
    let direction = match fields.numbers(&["TransformMatrix", "Rotation", "Orientation"], n * n, path)? {
        // TransformMatrix lists axis 0's direction first: transpose into row-major.
        Some(m) => (0..n * n).map(|k| m[(k % n) * n + k / n]).collect(),
        None => Geometry::identity(n).direction().to_vec(),
    };
    Ok((spacing, origin, direction))
}

fn parse_header(bytes: &[u8], path: &Path) -> Result<Header> {
    let fields = split_fields(bytes, path)?;
    let get = |names: &[&str]| fields.get(names);
    let corrupt = |what: String| IoError::corrupt(path, FORMAT, what);
    let ndims: usize = get(&["NDims"])
        .ok_or_else(|| corrupt("no NDims".into()))?
        .parse()
        .map_err(|_| corrupt("NDims is not a number".into()))?;
    if !(1..=4).contains(&ndims) {
        return Err(IoError::unsupported(
            path,
            FORMAT,
            format!("NDims = {ndims} (MEDAS images have 1 to 4 dimensions)"),
        ));
    }
    let dims = fields.numbers(&["DimSize"], ndims, path)?.ok_or_else(|| corrupt("no DimSize".into()))?;
    if dims.iter().any(|&d| !(d >= 1.0 && d.fract() == 0.0 && d < 1e15)) {
        return Err(corrupt(format!("DimSize {dims:?} must be positive whole numbers")));
    }
    let (spacing, origin, direction) = parse_geometry(&fields, ndims, path)?;
    let type_name = get(&["ElementType"]).ok_or_else(|| corrupt("no ElementType".into()))?;
    let scalar = parse_element_type(type_name)
        .ok_or_else(|| IoError::unsupported(path, FORMAT, format!("ElementType {type_name}")))?;
    let channels =
        match get(&["ElementNumberOfChannels"]) {
            Some(t) => t.parse::<usize>().ok().filter(|c| (1..=1024).contains(c)).ok_or_else(|| {
                corrupt(format!("ElementNumberOfChannels = {t:?} must be a whole number from 1 to 1024"))
            })?,
            None => 1,
        };
    let flag = |names: &[&str]| get(names).map(|v| matches!(v.to_ascii_lowercase().as_str(), "true" | "t" | "1"));
    let msb = flag(&["BinaryDataByteOrderMSB", "ElementByteOrderMSB"]).unwrap_or(false);
    let header_size = match get(&["HeaderSize"]) {
        Some(t) => Some(t.parse::<i64>().map_err(|_| corrupt(format!("HeaderSize = {t:?}")))?),
        None => None,
    };
    let compressed_size = get(&["CompressedDataSize"]).and_then(|t| t.parse::<usize>().ok());
    let data_value = get(&["ElementDataFile"]).unwrap_or("LOCAL");
    let data_file = data_file(data_value, &fields.trailing, &dims, path)?;
    Ok(Header {
        size: dims.iter().map(|&d| d as usize).collect(),
        spacing,
        origin,
        direction,
        scalar,
        channels,
        order: if msb { ByteOrder::Big } else { ByteOrder::Little },
        compressed: flag(&["CompressedData"]).unwrap_or(false),
        compressed_size,
        binary: flag(&["BinaryData"]).unwrap_or(true),
        header_size,
        data_file,
        data_start: fields.data_start,
    })
}

/// Interprets `ElementDataFile`: `LOCAL`, `LIST [dim]` (names on the following lines), a
/// `printf`-style pattern `name%03d.raw min max step [dim]`, or a single file name.
fn data_file(value: &str, trailing: &[String], dims: &[f64], path: &Path) -> Result<DataFile> {
    if value.eq_ignore_ascii_case("LOCAL") {
        return Ok(DataFile::Local);
    }
    if value.to_ascii_uppercase().starts_with("LIST") {
        return Ok(DataFile::List(trailing.to_vec()));
    }
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.len() >= 4 && parts[0].contains('%') {
        // Bounded numbers keep the arithmetic below free of overflow.
        let number = |s: &str| s.parse::<i64>().ok().filter(|v| v.unsigned_abs() <= 1_000_000_000);
        let (Some(min), Some(max), Some(step)) = (number(parts[1]), number(parts[2]), number(parts[3])) else {
            return Err(IoError::corrupt(path, FORMAT, format!("ElementDataFile pattern {value:?} is malformed")));
        };
        // Never more files than voxels: bounds the list a hostile header can make us build.
        let voxels: f64 = dims.iter().product();
        let count = if step > 0 && max >= min { (max - min) / step + 1 } else { 0 };
        if count < 1 || count as f64 > voxels || count > MAX_FILES {
            return Err(IoError::corrupt(
                path,
                FORMAT,
                format!("ElementDataFile pattern {value:?} names no usable files"),
            ));
        }
        let names =
            (0..count).map(|k| raw::expand_pattern(path, FORMAT, parts[0], min + k * step)).collect::<Result<_>>()?;
        return Ok(DataFile::List(names));
    }
    Ok(DataFile::Single(value.to_string()))
}

/// Bytes stored on disk for the voxels: the compressed size if known, else the raw size.
fn stored_bytes(header: &Header, path: &Path) -> Result<Option<usize>> {
    if !header.binary {
        return Ok(None);
    }
    if header.compressed {
        return Ok(header.compressed_size);
    }
    Ok(Some(raw_bytes(header, path)?))
}

fn raw_bytes(header: &Header, path: &Path) -> Result<usize> {
    raw::element_count(path, FORMAT, &header.size, header.channels)?
        .checked_mul(header.scalar.size())
        .ok_or_else(|| IoError::corrupt(path, FORMAT, "image size overflows"))
}

/// Applies `HeaderSize` to a data file: skip that many bytes, or with -1 take the last bytes.
fn skip_header(header: &Header, mut data: Vec<u8>, needed: Option<usize>, path: &Path) -> Result<Vec<u8>> {
    let skip = match header.header_size {
        Some(-1) => match needed {
            Some(n) => data.len().checked_sub(n).ok_or_else(|| {
                IoError::corrupt(path, FORMAT, format!("data file has {} bytes, {n} needed", data.len()))
            })?,
            None => return Err(IoError::unsupported(path, FORMAT, "HeaderSize = -1 without a known data size")),
        },
        Some(n) if n > 0 => n as usize,
        _ => 0,
    };
    if skip > data.len() {
        return Err(IoError::corrupt(path, FORMAT, format!("HeaderSize {skip} is beyond the end of the data file")));
    }
    data.drain(..skip);
    Ok(data)
}

fn local_payload(header: &Header, bytes: &[u8], path: &Path) -> Result<Vec<u8>> {
    // HeaderSize in a LOCAL file counts from the start of the file (MetaIO seeks from the start).
    let start = match header.header_size {
        Some(n) if n > 0 => n as usize,
        Some(-1) => {
            let needed = stored_bytes(header, path)?
                .ok_or_else(|| IoError::unsupported(path, FORMAT, "HeaderSize = -1 without a known data size"))?;
            bytes.len().checked_sub(needed).unwrap_or(bytes.len())
        }
        _ => header.data_start,
    };
    Ok(bytes.get(start..).unwrap_or_default().to_vec())
}

fn list_payload(header: &Header, names: &[String], path: &Path) -> Result<Vec<u8>> {
    if header.compressed {
        return Err(IoError::unsupported(path, FORMAT, "compressed data split over a LIST of files"));
    }
    if names.is_empty() {
        return Err(IoError::corrupt(path, FORMAT, "ElementDataFile = LIST names no files"));
    }
    let total = raw_bytes(header, path)?;
    if total % names.len() != 0 {
        return Err(IoError::corrupt(path, FORMAT, format!("{} files cannot split {total} bytes evenly", names.len())));
    }
    let each = total / names.len();
    let mut out = Vec::new();
    for name in names {
        let file = raw::resolve_detached(path, FORMAT, name)?;
        let data = skip_header(header, raw::read_file(&file)?, header.binary.then_some(each), &file)?;
        let part = data.get(..each).ok_or_else(|| {
            IoError::corrupt(&file, FORMAT, format!("slice file has {} bytes, {each} needed", data.len()))
        })?;
        out.extend_from_slice(part);
    }
    Ok(out)
}

fn decode(header: &Header, payload: Vec<u8>, path: &Path) -> Result<Image> {
    let needed = raw_bytes(header, path)?;
    let count = needed / header.scalar.size();
    let (bytes, order) = if !header.binary {
        (raw::text_values(path, FORMAT, &payload, header.scalar, count)?, ByteOrder::NATIVE)
    } else if header.compressed {
        let stream = match header.compressed_size {
            Some(n) => payload.get(..n).unwrap_or(&payload),
            None => &payload[..],
        };
        raw::check_inflatable(path, FORMAT, stream.len(), needed)?;
        let inflated = if raw::is_gzip(stream) {
            raw::gunzip(path, FORMAT, stream, needed)?
        } else {
            raw::zlib_inflate(path, FORMAT, stream, needed)?
        };
        (inflated, header.order)
    } else {
        (payload, header.order)
    };
    let voxels = raw::decode(path, FORMAT, &bytes, header.scalar, order, &header.size, header.channels)?;
    let geometry = Geometry::new(header.spacing.clone(), header.origin.clone(), header.direction.clone())
        .map_err(|e| IoError::image(path, e))?;
    Image::with_components(voxels, header.channels, geometry).map_err(|e| IoError::image(path, e))
}

/// The data file names a `.mhd` header refers to (for copying or deleting a MetaImage).
pub fn data_files(path: &Path) -> Result<Vec<PathBuf>> {
    let bytes = raw::read_file(path)?;
    let header = parse_header(&bytes, path)?;
    let names = match header.data_file {
        DataFile::Local => return Ok(Vec::new()),
        DataFile::Single(name) => vec![name],
        DataFile::List(names) => names,
    };
    names.iter().map(|n| raw::resolve_detached(path, FORMAT, n)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mha(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = header.as_bytes().to_vec();
        bytes.extend_from_slice(data);
        bytes
    }

    /// The streaming writer and the direct reader give what the general paths give.
    #[test]
    fn uncompressed_files_stream_out_and_read_straight_in() {
        let dir = tempfile::tempdir().unwrap();
        let values: Vec<i16> = (0..2 * 3 * 4 * 3).map(|v| v * 37 - 500).collect();
        let voxels = medas_image::Voxels::from_interleaved_vec(&[2, 3, 4], 3, values).unwrap();
        let geometry = Geometry::new(vec![0.5, 0.25, 3.0], vec![1.0, -2.0, 3.5], vec![0., 1., 0., -1., 0., 0., 0., 0., 1.]).unwrap();
        let image = Image::with_components(voxels, 3, geometry).unwrap();
        let path = dir.path().join("rgb.mha");
        write_with(&image, &path, &WriteOptions { compress: false }).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(read(&path).unwrap(), image, "direct read");
        assert_eq!(read_bytes(&bytes, &path).unwrap(), image, "general read of the same bytes");
        // A truncated file is an error on the direct path too, never a short image.
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        assert!(read(&path).is_err());
    }

    #[test]
    fn transform_matrix_is_axis_by_axis() {
        // Axis 0 points along +y, axis 1 along -x.
        let h = "NDims = 2\nDimSize = 2 1\nTransformMatrix = 0 1 -1 0\nOffset = 5 6\n\
                 ElementSpacing = 0.5 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n";
        let img = read_bytes(&mha(h, &[1, 2]), Path::new("t.mha")).unwrap();
        assert_eq!(img.geometry().direction(), &[0.0, -1.0, 1.0, 0.0]);
        assert_eq!(img.geometry().index_to_point(&[1.0, 0.0]), vec![5.0, 6.5]);
    }

    #[test]
    fn big_endian_and_text_data() {
        let h =
            "NDims = 1\nDimSize = 2\nElementType = MET_SHORT\nElementByteOrderMSB = True\nElementDataFile = LOCAL\n";
        let img = read_bytes(&mha(h, &[0x01, 0x02, 0xff, 0xfe]), Path::new("t.mha")).unwrap();
        assert_eq!(img.voxels().as_array::<i16>().unwrap().as_slice().unwrap(), &[0x0102, -2]);
        let h = "NDims = 1\nDimSize = 3\nBinaryData = False\nElementType = MET_FLOAT\nElementDataFile = LOCAL\n";
        let img = read_bytes(&mha(h, b"1.5 -2\n3e1\n"), Path::new("t.mha")).unwrap();
        assert_eq!(img.voxels().as_array::<f32>().unwrap().as_slice().unwrap(), &[1.5, -2.0, 30.0]);
    }

    #[test]
    fn patterns_expand() {
        let p = Path::new("t.mhd");
        assert_eq!(raw::expand_pattern(p, FORMAT, "s%03d.raw", 7).unwrap(), "s007.raw");
        assert_eq!(raw::expand_pattern(p, FORMAT, "s%d.raw", 12).unwrap(), "s12.raw");
        assert_eq!(raw::expand_pattern(p, FORMAT, "s%3d.raw", 12).unwrap(), "s 12.raw");
        assert!(raw::expand_pattern(p, FORMAT, "s%s.raw", 1).is_err());
    }

    #[test]
    fn hostile_headers_are_errors() {
        let p = Path::new("t.mha");
        let huge = "NDims = 3\nDimSize = 100000 100000 100000\nElementType = MET_DOUBLE\nElementDataFile = LOCAL\n";
        assert!(read_bytes(&mha(huge, &[0; 16]), p).is_err());
        let zhuge = "NDims = 3\nDimSize = 4000 4000 4000\nCompressedData = True\nElementType = MET_DOUBLE\nElementDataFile = LOCAL\n";
        assert!(read_bytes(&mha(zhuge, &raw::zlib(&[0; 64])), p).is_err());
        let bad = "NDims = 2\nDimSize = 2 2\nElementType = MET_STRING\nElementDataFile = LOCAL\n";
        assert!(matches!(read_bytes(&mha(bad, &[0; 4]), p), Err(IoError::Unsupported { .. })));
        assert!(
            read_bytes(b"NDims = 2\nDimSize = -1 2\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n", p).is_err()
        );
        assert!(read_bytes(b"\x00\xff garbage", p).is_err());
        let dims = [1e5, 1e5, 1e5];
        for pattern in ["s%d.raw -9223372036854775808 9223372036854775807 1", "s%d.raw 0 999999999 1", "s%d.raw 5 1 -1"]
        {
            assert!(data_file(pattern, &[], &dims, p).is_err(), "{pattern}");
        }
    }
}
