//! NRRD (teem): `.nrrd` with attached voxels and `.nhdr` with a detached `data file` (one file,
//! a `LIST` or a `%d` pattern). Encodings raw, gzip, ascii/text and hex; bzip2 is refused with
//! a clear error.
//!
//! Geometry follows ITK's `NrrdImageIO` (checked against SimpleITK 2.5):
//! - axes whose `kinds` entry is not `domain`/`space`/`time` (or unknown) are *range* axes
//!   (`vector`, `RGB-color`, `list`, ...): at most one, and it becomes the trailing component
//!   axis wherever it is stored; without `kinds`, an axis whose space direction is `none` is the
//!   range axis (SimpleITK instead reads such a file as scalar with identity geometry);
//! - `space directions` give spacing (vector length, mm) and direction (unit vector); `space`
//!   RAS/LAS/scanner-xyz/... is converted to LPS (RAS negates x and y, LAS negates y;
//!   scanner-xyz and 3D-right-handed are taken as LPS, as ITK does); `space origin` is the
//!   position of voxel 0;
//! - without space information, `spacings` (or `axis mins`/`axis maxs`) give the spacing, the
//!   direction is the identity and the origin is the axis minimum (plus half a voxel for
//!   cell-centred axes, the default).
//!
//! Detached data files must lie inside the header's folder (see [`crate::raw::resolve_detached`]).

use crate::raw::{self, ByteOrder};
use crate::{IoError, Result};
use medas_image::{Geometry, Image, ScalarType, Voxels, with_voxels};
use std::path::Path;

mod write;

pub use write::{WriteOptions, write, write_with};

const FORMAT: &str = "nrrd";
const MAX_HEADER: usize = 1 << 20;
/// Most data files a file-name pattern may expand to (bounds what a hostile header can make us build).
const MAX_FILES: i64 = 100_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Encoding {
    Raw,
    Gzip,
    Text,
    Hex,
}

/// The parsed header fields MEDAS uses.
#[derive(Debug, Default)]
struct Header {
    fields: Vec<(String, String)>,
    /// Lines after `data file: LIST`.
    list: Vec<String>,
    /// Offset of the first data byte of an attached file.
    data_start: Option<usize>,
}

impl Header {
    fn get(&self, names: &[&str]) -> Option<&str> {
        self.fields.iter().find(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str())
    }
}

/// Everything needed to decode the voxels.
struct Layout {
    scalar: ScalarType,
    sizes: Vec<usize>,
    encoding: Encoding,
    order: ByteOrder,
    byte_skip: i64,
    line_skip: usize,
}

/// Reads a `.nrrd` or `.nhdr` file.
pub fn read(path: &Path) -> Result<Image> {
    let bytes = raw::read_file(path)?;
    let header = split_header(&bytes, path)?;
    let layout = layout(&header, path)?;
    let payload = match data_file_names(&header, &layout, path)? {
        None => {
            let start = header.data_start.unwrap_or(bytes.len());
            payload_bytes(&layout, bytes.get(start..).unwrap_or_default(), needed_bytes(&layout, path)?, path)?
        }
        Some(names) => detached_payload(&layout, &names, path)?,
    };
    build_image(&header, &layout, &payload, path)
}

/// Parses one in-memory `.nrrd` file with attached voxels; a header naming a separate
/// `data file` gives an error saying so.
pub fn read_bytes(bytes: &[u8], name: &Path) -> Result<Image> {
    let header = split_header(bytes, name)?;
    let layout = layout(&header, name)?;
    if header.get(&["data file", "datafile"]).is_some() {
        return Err(IoError::unsupported(
            name,
            FORMAT,
            "the voxels are in a separate data file; read the header from disk",
        ));
    }
    let start = header.data_start.unwrap_or(bytes.len());
    let payload = payload_bytes(&layout, bytes.get(start..).unwrap_or_default(), needed_bytes(&layout, name)?, name)?;
    build_image(&header, &layout, &payload, name)
}

/// Splits the header into fields (keys lower-cased; `key:=value` pairs skipped) and finds the
/// blank line where attached data starts.
fn split_header(bytes: &[u8], path: &Path) -> Result<Header> {
    if !bytes.starts_with(b"NRRD000") {
        return Err(IoError::corrupt(path, FORMAT, "the file does not start with the NRRD000x magic"));
    }
    let mut header = Header::default();
    let mut pos = 0usize;
    let mut first = true;
    let mut in_list = false;
    while pos < bytes.len() {
        if pos > MAX_HEADER {
            return Err(IoError::corrupt(path, FORMAT, "header is longer than 1 MiB"));
        }
        let end = bytes[pos..].iter().position(|&b| b == b'\n').map_or(bytes.len(), |e| pos + e);
        let line = String::from_utf8_lossy(&bytes[pos..end]).trim_end_matches('\r').to_string();
        pos = (end + 1).min(bytes.len());
        if first {
            first = false;
            continue;
        }
        if line.trim().is_empty() {
            header.data_start = Some(pos);
            break;
        }
        if in_list {
            header.list.push(line.trim().to_string());
        } else if line.starts_with('#') || line.contains(":=") {
            continue;
        } else if let Some((key, value)) = line.split_once(": ") {
            let key = key.trim().to_ascii_lowercase();
            in_list = matches!(key.as_str(), "data file" | "datafile") && value.trim().starts_with("LIST");
            header.fields.push((key, value.trim().to_string()));
        } else {
            return Err(IoError::corrupt(path, FORMAT, format!("header line {line:?} is not `field: value`")));
        }
    }
    Ok(header)
}

/// All spellings of the NRRD `type` field.
fn parse_type(name: &str) -> Option<ScalarType> {
    Some(match name {
        "signed char" | "int8" | "int8_t" => ScalarType::I8,
        "uchar" | "unsigned char" | "uint8" | "uint8_t" => ScalarType::U8,
        "short" | "short int" | "signed short" | "signed short int" | "int16" | "int16_t" => ScalarType::I16,
        "ushort" | "unsigned short" | "unsigned short int" | "uint16" | "uint16_t" => ScalarType::U16,
        "int" | "signed int" | "int32" | "int32_t" => ScalarType::I32,
        "uint" | "unsigned int" | "uint32" | "uint32_t" => ScalarType::U32,
        "longlong"
        | "long long"
        | "long long int"
        | "signed long long"
        | "signed long long int"
        | "int64"
        | "int64_t" => ScalarType::I64,
        "ulonglong" | "unsigned long long" | "unsigned long long int" | "uint64" | "uint64_t" => ScalarType::U64,
        "float" => ScalarType::F32,
        "double" => ScalarType::F64,
        _ => return None,
    })
}

fn layout(header: &Header, path: &Path) -> Result<Layout> {
    let corrupt = |what: String| IoError::corrupt(path, FORMAT, what);
    let type_name = header.get(&["type"]).ok_or_else(|| corrupt("no `type` field".into()))?;
    let scalar =
        parse_type(type_name).ok_or_else(|| IoError::unsupported(path, FORMAT, format!("type {type_name:?}")))?;
    let dimension: usize = header
        .get(&["dimension"])
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| corrupt("no valid `dimension` field".into()))?;
    let sizes: Vec<usize> = header
        .get(&["sizes"])
        .ok_or_else(|| corrupt("no `sizes` field".into()))?
        .split_whitespace()
        .map(|s| s.parse::<usize>().ok().filter(|&n| n > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| corrupt("`sizes` must be positive whole numbers".into()))?;
    if sizes.len() != dimension || !(1..=5).contains(&dimension) {
        return Err(IoError::unsupported(path, FORMAT, format!("dimension {dimension} with sizes {sizes:?}")));
    }
    let encoding = match header.get(&["encoding"]).unwrap_or("raw") {
        "raw" => Encoding::Raw,
        "gz" | "gzip" => Encoding::Gzip,
        "txt" | "text" | "ascii" => Encoding::Text,
        "hex" => Encoding::Hex,
        other => return Err(IoError::unsupported(path, FORMAT, format!("encoding {other:?} (use raw or gzip)"))),
    };
    let order = match header.get(&["endian"]) {
        Some("big") => ByteOrder::Big,
        Some("little") | None => ByteOrder::Little,
        Some(other) => return Err(corrupt(format!("endian {other:?}"))),
    };
    let number = |names: &[&str]| -> Result<Option<i64>> {
        header.get(names).map(|v| v.parse::<i64>().map_err(|_| corrupt(format!("{} = {v:?}", names[0])))).transpose()
    };
    let byte_skip = number(&["byte skip", "byteskip"])?.unwrap_or(0);
    let line_skip = number(&["line skip", "lineskip"])?.unwrap_or(0);
    if byte_skip < -1 || line_skip < 0 || (byte_skip == -1 && encoding != Encoding::Raw) {
        return Err(corrupt(format!("byte skip {byte_skip} / line skip {line_skip} not allowed here")));
    }
    Ok(Layout { scalar, sizes, encoding, order, byte_skip, line_skip: line_skip as usize })
}

fn needed_bytes(layout: &Layout, path: &Path) -> Result<usize> {
    raw::element_count(path, FORMAT, &layout.sizes, 1)?
        .checked_mul(layout.scalar.size())
        .ok_or_else(|| IoError::corrupt(path, FORMAT, "image size overflows"))
}

/// The detached data files, or `None` when the voxels follow the header.
fn data_file_names(header: &Header, layout: &Layout, path: &Path) -> Result<Option<Vec<String>>> {
    let Some(value) = header.get(&["data file", "datafile"]) else { return Ok(None) };
    if value.starts_with("LIST") {
        return Ok(Some(header.list.clone()));
    }
    let parts: Vec<&str> = value.split_whitespace().collect();
    if parts.len() >= 4 && parts[0].contains('%') {
        // Bounded numbers keep the arithmetic below free of overflow.
        let n = |s: &str| s.parse::<i64>().ok().filter(|v| v.unsigned_abs() <= 1_000_000_000);
        let (Some(min), Some(max), Some(step)) = (n(parts[1]), n(parts[2]), n(parts[3])) else {
            return Err(IoError::corrupt(path, FORMAT, format!("data file pattern {value:?} is malformed")));
        };
        let count = if step != 0 && (max - min) / step >= 0 { (max - min) / step + 1 } else { 0 };
        let slices = layout.sizes.last().copied().unwrap_or(1) as i64;
        if count < 1 || count > slices.saturating_mul(64).clamp(1, MAX_FILES) {
            return Err(IoError::corrupt(path, FORMAT, format!("data file pattern {value:?} names no usable files")));
        }
        let names =
            (0..count).map(|k| raw::expand_pattern(path, FORMAT, parts[0], min + k * step)).collect::<Result<_>>()?;
        return Ok(Some(names));
    }
    Ok(Some(vec![value.to_string()]))
}

fn detached_payload(layout: &Layout, names: &[String], path: &Path) -> Result<Vec<u8>> {
    let total = needed_bytes(layout, path)?;
    if names.is_empty() || total % names.len() != 0 {
        return Err(IoError::corrupt(path, FORMAT, format!("{} data files cannot split {total} bytes", names.len())));
    }
    let each = total / names.len();
    let mut out = Vec::new();
    for name in names {
        let file = raw::resolve_detached(path, FORMAT, name)?;
        let bytes = raw::read_file(&file)?;
        out.extend(payload_bytes(layout, &bytes, each, &file)?);
    }
    Ok(out)
}

/// Turns the stored bytes of one data file into `needed` bytes of voxels in the file's byte
/// order (text encodings give native order).
fn payload_bytes(layout: &Layout, stored: &[u8], needed: usize, path: &Path) -> Result<Vec<u8>> {
    let mut data = stored;
    for _ in 0..layout.line_skip {
        let next = data.iter().position(|&b| b == b'\n').ok_or_else(|| {
            IoError::corrupt(path, FORMAT, format!("line skip {} is beyond the end of the data", layout.line_skip))
        })?;
        data = &data[next + 1..];
    }
    let skip = layout.byte_skip.max(0) as usize;
    let truncated = |have: usize| {
        IoError::corrupt(
            path,
            FORMAT,
            format!("voxel data is truncated: {have} bytes present, {} needed", needed.saturating_add(skip)),
        )
    };
    let bytes = match layout.encoding {
        Encoding::Raw => {
            let start = if layout.byte_skip == -1 {
                data.len().checked_sub(needed).ok_or_else(|| truncated(data.len()))?
            } else {
                skip
            };
            data.get(start..).ok_or_else(|| truncated(data.len()))?.to_vec()
        }
        Encoding::Gzip => {
            raw::check_inflatable(path, FORMAT, data.len(), needed.saturating_add(skip))?;
            let mut inflated = raw::gunzip(path, FORMAT, data, needed.saturating_add(skip))?;
            if inflated.len() < skip {
                return Err(truncated(inflated.len()));
            }
            inflated.drain(..skip);
            inflated
        }
        Encoding::Text => {
            let text = data.get(skip..).ok_or_else(|| truncated(data.len()))?;
            raw::text_values(path, FORMAT, text, layout.scalar, needed / layout.scalar.size())?
        }
        Encoding::Hex => {
            let mut decoded = hex_bytes(data, needed.saturating_add(skip), path)?;
            if decoded.len() < skip {
                return Err(truncated(decoded.len()));
            }
            decoded.drain(..skip);
            decoded
        }
    };
    if bytes.len() < needed {
        return Err(truncated(bytes.len()));
    }
    Ok(bytes)
}

fn hex_bytes(text: &[u8], needed: usize, path: &Path) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(needed.min(text.len() / 2 + 1));
    let mut high: Option<u8> = None;
    for &c in text {
        if c.is_ascii_whitespace() {
            continue;
        }
        let nibble = (c as char)
            .to_digit(16)
            .ok_or_else(|| IoError::corrupt(path, FORMAT, format!("{:?} in hex data", c as char)))?
            as u8;
        match high.take() {
            Some(h) => out.push(h << 4 | nibble),
            None => high = Some(nibble),
        }
        if out.len() == needed {
            break;
        }
    }
    Ok(out)
}

/// Whether a `kinds` entry describes an image (domain) axis rather than a per-voxel value axis.
fn is_domain_kind(kind: &str) -> bool {
    matches!(kind, "domain" | "space" | "time" | "???" | "none")
}

fn build_image(header: &Header, layout: &Layout, payload: &[u8], path: &Path) -> Result<Image> {
    let order = if layout.encoding == Encoding::Text { ByteOrder::NATIVE } else { layout.order };
    let voxels = raw::decode(path, FORMAT, payload, layout.scalar, order, &layout.sizes, 1)?;
    let dimension = layout.sizes.len();
    let kinds: Vec<String> =
        header.get(&["kinds"]).map(|k| k.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
    if !kinds.is_empty() && kinds.len() != dimension {
        return Err(IoError::corrupt(path, FORMAT, format!("{} kinds for {dimension} axes", kinds.len())));
    }
    // Without kinds, an axis whose space direction is `none` holds per-voxel values.
    let range: Vec<usize> = if kinds.is_empty() {
        let directions = header.get(&["space directions"]).unwrap_or_default();
        directions.split_whitespace().enumerate().filter(|(_, d)| *d == "none").map(|(k, _)| k).collect()
    } else {
        (0..kinds.len()).filter(|&k| !is_domain_kind(&kinds[k])).collect()
    };
    if range.len() > 1 {
        return Err(IoError::unsupported(
            path,
            FORMAT,
            format!("{} non-spatial axes (kinds {kinds:?}); at most one", range.len()),
        ));
    }
    let domain: Vec<usize> = (0..dimension).filter(|k| !range.contains(k)).collect();
    if !(1..=4).contains(&domain.len()) {
        return Err(IoError::unsupported(
            path,
            FORMAT,
            format!("{} spatial axes (MEDAS images have 1 to 4)", domain.len()),
        ));
    }
    let geometry = geometry(header, &layout.sizes, &domain, path)?;
    let (voxels, components) = match range.first() {
        Some(&r) => {
            let mut axes = domain.clone();
            axes.push(r);
            (with_voxels!(voxels, a => Voxels::from(a.permuted_axes(axes))), layout.sizes[r])
        }
        None => (voxels, 1),
    };
    Image::with_components(voxels, components, geometry).map_err(|e| IoError::image(path, e))
}

/// Parses `(x,y,z)` into numbers.
fn parse_vector(text: &str) -> Option<Vec<f64>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    inner.split(',').map(|v| v.trim().parse::<f64>().ok()).collect()
}

/// Space dimension and which axes to negate to reach LPS, by `space` name.
fn space_info(name: &str) -> Option<(usize, [bool; 2])> {
    Some(match name.to_ascii_lowercase().as_str() {
        "right-anterior-superior" | "ras" => (3, [true, true]),
        "left-anterior-superior" | "las" => (3, [false, true]),
        "left-posterior-superior" | "lps" | "scanner-xyz" | "3d-right-handed" | "3d-left-handed" => (3, [false, false]),
        "right-anterior-superior-time" | "rast" => (4, [true, true]),
        "left-anterior-superior-time" | "last" => (4, [false, true]),
        "left-posterior-superior-time"
        | "lpst"
        | "scanner-xyz-time"
        | "3d-right-handed-time"
        | "3d-left-handed-time" => (4, [false, false]),
        _ => return None,
    })
}

fn geometry(header: &Header, sizes: &[usize], domain: &[usize], path: &Path) -> Result<Geometry> {
    let corrupt = |what: String| IoError::corrupt(path, FORMAT, what);
    let n = domain.len();
    let space = match (header.get(&["space"]), header.get(&["space dimension"])) {
        (Some(name), _) => {
            Some(space_info(name).ok_or_else(|| IoError::unsupported(path, FORMAT, format!("space {name:?}")))?)
        }
        (None, Some(d)) => {
            Some((d.parse::<usize>().map_err(|_| corrupt(format!("space dimension {d:?}")))?, [false; 2]))
        }
        (None, None) => None,
    };
    let directions = header.get(&["space directions"]);
    let (Some((space_dim, flip)), Some(directions)) = (space, directions) else {
        return axis_geometry(header, sizes, domain, path);
    };
    if space_dim != n {
        return Err(IoError::unsupported(
            path,
            FORMAT,
            format!("{n} spatial axes in a {space_dim}-D space (SimpleITK refuses this too)"),
        ));
    }
    let vectors: Vec<&str> = directions.split_whitespace().collect();
    if vectors.len() != sizes.len() {
        return Err(corrupt(format!("{} space directions for {} axes", vectors.len(), sizes.len())));
    }
    let sign = |row: usize| if row < 2 && flip[row] { -1.0 } else { 1.0 };
    let mut spacing = vec![0.0; n];
    let mut direction = vec![0.0; n * n];
    for (column, &axis) in domain.iter().enumerate() {
        let v = parse_vector(vectors[axis]).filter(|v| v.len() == n).ok_or_else(|| {
            corrupt(format!("space direction {:?} of axis {axis} is not a {n}-vector", vectors[axis]))
        })?;
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        if !(norm > 0.0 && norm.is_finite()) {
            return Err(corrupt(format!("space direction of axis {axis} has length {norm}")));
        }
        spacing[column] = norm;
        for row in 0..n {
            direction[row * n + column] = sign(row) * v[row] / norm;
        }
    }
    let origin = match header.get(&["space origin"]) {
        Some(text) => parse_vector(text)
            .filter(|v| v.len() == n)
            .ok_or_else(|| corrupt(format!("space origin {text:?} is not a {n}-vector")))?
            .iter()
            .enumerate()
            .map(|(row, x)| sign(row) * x)
            .collect(),
        None => vec![0.0; n],
    };
    Geometry::new(spacing, origin, direction).map_err(|e| IoError::image(path, e))
}

/// Geometry from per-axis `spacings` / `axis mins` / `axis maxs` / `centers` (no space).
fn axis_geometry(header: &Header, sizes: &[usize], domain: &[usize], path: &Path) -> Result<Geometry> {
    let per_axis = |names: &[&str]| -> Vec<f64> {
        let values: Vec<f64> = header
            .get(names)
            .map(|t| t.split_whitespace().map(|v| v.parse().unwrap_or(f64::NAN)).collect())
            .unwrap_or_default();
        (0..sizes.len()).map(|k| values.get(k).copied().unwrap_or(f64::NAN)).collect()
    };
    let (spacings, mins, maxs) =
        (per_axis(&["spacings"]), per_axis(&["axis mins", "axismins"]), per_axis(&["axis maxs", "axismaxs"]));
    let centers: Vec<&str> =
        header.get(&["centers", "centerings"]).map(|c| c.split_whitespace().collect()).unwrap_or_default();
    let n = domain.len();
    let (mut spacing, mut origin) = (vec![1.0; n], vec![0.0; n]);
    for (column, &axis) in domain.iter().enumerate() {
        let node = centers.get(axis) == Some(&"node");
        let cells = if node { sizes[axis].saturating_sub(1).max(1) } else { sizes[axis] } as f64;
        let s = if spacings[axis].is_finite() {
            spacings[axis]
        } else if mins[axis].is_finite() && maxs[axis].is_finite() {
            (maxs[axis] - mins[axis]) / cells
        } else {
            1.0
        };
        spacing[column] = s.abs();
        if mins[axis].is_finite() {
            origin[column] = mins[axis] + if node { 0.0 } else { s / 2.0 };
        }
    }
    Geometry::new(spacing, origin, Geometry::identity(n).direction().to_vec()).map_err(|e| IoError::image(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nrrd(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = format!("NRRD0004\n{header}\n").into_bytes();
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn ras_becomes_lps() {
        let h = "type: uchar\ndimension: 2\nsizes: 2 1\nspace: RAS\nspace directions: (0.6,0.8) (-0.8,0.6)\n\
                 space origin: (1,2)\nencoding: raw\n";
        // A 2-D image in 3-D space is refused, like SimpleITK; use space dimension 2 instead.
        assert!(read_bytes(&nrrd(h, &[1, 2]), Path::new("t.nrrd")).is_err());
        let h = "type: uchar\ndimension: 3\nsizes: 2 1 1\nspace: RAS\nspace directions: (0.6,0.8,0) (-0.8,0.6,0) (0,0,2)\n\
                 space origin: (1,2,3)\nencoding: raw\n";
        let img = read_bytes(&nrrd(h, &[1, 2]), Path::new("t.nrrd")).unwrap();
        assert_eq!(img.geometry().origin(), &[-1.0, -2.0, 3.0]);
        assert_eq!(img.geometry().direction(), &[-0.6, 0.8, 0.0, -0.8, -0.6, 0.0, 0.0, 0.0, 1.0]);
        assert_eq!(img.geometry().spacing(), &[1.0, 1.0, 2.0]);
    }

    #[test]
    fn range_axis_becomes_components() {
        let h = "type: short\ndimension: 3\nsizes: 3 4 2\nkinds: domain list domain\nendian: big\nencoding: text\n";
        let text: String = (0..24).map(|v| format!("{v} ")).collect();
        let img = read_bytes(&nrrd(h, text.as_bytes()), Path::new("t.nrrd")).unwrap();
        assert_eq!((img.size(), img.components()), (&[3usize, 2][..], 4));
        let a = img.voxels().as_array::<i16>().unwrap();
        assert_eq!([a[[0, 0, 1]], a[[1, 1, 3]]], [3, 1 + 12 + 9]);
        // Without kinds, a `none` space direction marks the value axis.
        let h = "type: uchar\ndimension: 3\nsizes: 3 2 1\nspace dimension: 2\n\
                 space directions: none (2,0) (0,3)\nencoding: raw\n";
        let img = read_bytes(&nrrd(h, &[1, 2, 3, 4, 5, 6]), Path::new("t.nrrd")).unwrap();
        assert_eq!((img.size(), img.components(), img.geometry().spacing()), (&[2usize, 1][..], 3, &[2.0, 3.0][..]));
    }

    #[test]
    fn encodings_and_skips() {
        let h = "type: uint16\ndimension: 1\nsizes: 2\nendian: big\nencoding: hex\nbyte skip: 1\n";
        let img = read_bytes(&nrrd(h, b"ff 0102 0a0b"), Path::new("t.nrrd")).unwrap();
        assert_eq!(img.voxels().as_array::<u16>().unwrap().as_slice().unwrap(), &[0x0102, 0x0a0b]);
        let h = "type: uint8\ndimension: 1\nsizes: 2\nencoding: gzip\nbyte skip: 2\n";
        let img = read_bytes(&nrrd(h, &raw::gzip(&[9, 9, 4, 5])), Path::new("t.nrrd")).unwrap();
        assert_eq!(img.voxels().as_array::<u8>().unwrap().as_slice().unwrap(), &[4, 5]);
        let h = "type: uint8\ndimension: 1\nsizes: 2\nencoding: raw\nbyte skip: -1\nline skip: 1\n";
        let img = read_bytes(&nrrd(h, b"junk\nxyz\x04\x05"), Path::new("t.nrrd")).unwrap();
        assert_eq!(img.voxels().as_array::<u8>().unwrap().as_slice().unwrap(), &[4, 5]);
        let h = "type: uint8\ndimension: 1\nsizes: 2\nencoding: bzip2\n";
        assert!(matches!(read_bytes(&nrrd(h, &[0; 8]), Path::new("t.nrrd")), Err(IoError::Unsupported { .. })));
    }

    #[test]
    fn hostile_headers_are_errors() {
        let p = Path::new("t.nrrd");
        for h in [
            "type: double\ndimension: 3\nsizes: 100000 100000 100000\nencoding: raw\n",
            "type: double\ndimension: 3\nsizes: 4000 4000 4000\nencoding: gzip\n",
            "type: block\ndimension: 1\nsizes: 2\nencoding: raw\n",
            "type: uchar\ndimension: 2\nsizes: 2\nencoding: raw\n",
            "type: uchar\ndimension: 1\nsizes: 0\nencoding: raw\n",
            "type: uchar\ndimension: 1\nsizes: 2\nencoding: raw\nbyte skip: 9223372036854775807\n",
            "type: uchar\ndimension: 1\nsizes: 2\nencoding: gzip\nbyte skip: 9223372036854775807\n",
            "type: uchar\ndimension: 1\nsizes: 2\nencoding: raw\nline skip: 9223372036854775807\n",
            "type: uchar\ndimension: 1\nsizes: 2\ndata file: s%d.raw -9223372036854775808 9223372036854775807 1\n",
        ] {
            assert!(read_bytes(&nrrd(h, &raw::gzip(&[0; 16])), p).is_err(), "{h}");
        }
        assert!(read_bytes(b"NRRD0004\n\xff\xfe\n", p).is_err());
    }
}
