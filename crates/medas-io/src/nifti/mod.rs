//! NIfTI-1 and NIfTI-2: `.nii`, `.nii.gz`, and `.hdr`/`.img` pairs (optionally gzipped),
//! either byte order, 2-D to 4-D, RGB/RGBA and vector (intent 1007) images.
//!
//! Geometry follows SimpleITK (see [`transform`] for which of sform/qform wins), with spacing
//! converted to millimetres and time steps to seconds from `xyzt_units`, as ITK does.
//! `scl_slope`/`scl_inter` are applied on read (output becomes `float32`, or `float64` for
//! 64-bit sources) unless they are 0/NaN or the identity, exactly as nibabel's `dataobj` and
//! SimpleITK do.

mod header;
mod transform;

pub use header::{Header, Version};

use crate::raw::{self, ByteOrder};
use crate::{IoError, Result};
use header::HeaderError;
use medas_image::{Image, ScalarType, Voxels, WindowPreset, keys};
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};

const FORMAT: &str = "nifti";
const INTENT_VECTOR: i32 = 1007;
const DT_RGB24: i16 = 128;
const DT_RGBA32: i16 = 2304;

/// Reads a NIfTI image from a `.nii`, `.nii.gz`, `.hdr`, `.img` (or gzipped pair) path.
pub fn read(path: &Path) -> Result<Image> {
    let (header_path, data_path) = pair_paths(path);
    let header_bytes = raw::read_file(&header_path)?;
    if data_path.is_none() {
        return read_bytes(&header_bytes, path);
    }
    let header = parse_header(&header_path, &header_bytes)?;
    let data_path = data_path.expect("checked above");
    let data_path = existing_data_file(&data_path)?;
    let data = raw::read_file(&data_path)?;
    let offset = header.vox_offset.max(0.0) as usize;
    decode(&header, &data_path, &data, offset)
}

/// Reads a single-file NIfTI (`.nii` or `.nii.gz`) held in memory; `name` is used in errors.
pub fn read_bytes(bytes: &[u8], name: &Path) -> Result<Image> {
    let header = parse_header(name, bytes)?;
    if !header.single_file {
        return Err(IoError::corrupt(name, FORMAT, "this is the header of a .hdr/.img pair; read the .hdr path"));
    }
    let offset = (header.vox_offset.max(0.0) as usize).max(header.version.header_size() + 4);
    decode(&header, name, bytes, offset)
}

/// Parses the header at the start of `bytes` (plain or gzip).
fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header> {
    let mut head = Vec::with_capacity(544);
    let source: Box<dyn Read + '_> =
        if raw::is_gzip(bytes) { Box::new(flate2::read::MultiGzDecoder::new(bytes)) } else { Box::new(bytes) };
    source
        .take(540)
        .read_to_end(&mut head)
        .map_err(|e| IoError::corrupt(path, FORMAT, format!("cannot read the header: {e}")))?;
    header::parse(&head).map_err(|e| match e {
        HeaderError::TooShort(n) => IoError::corrupt(path, FORMAT, format!("file is too short for a header ({n} bytes)")),
        HeaderError::NotNifti => IoError::corrupt(path, FORMAT, "sizeof_hdr is neither 348 nor 540"),
        HeaderError::Analyze => IoError::unsupported(path, FORMAT, "Analyze 7.5 header without NIfTI magic"),
    })
}

/// Shape, scalar type and number of components described by a header.
struct Layout {
    spatial: Vec<usize>,
    components: usize,
    scalar: ScalarType,
}

fn layout(path: &Path, h: &Header) -> Result<Layout> {
    let ndim = h.dim[0];
    if !(1..=7).contains(&ndim) {
        return Err(IoError::corrupt(path, FORMAT, format!("dim[0] = {ndim} is not in 1..=7")));
    }
    let ndim = ndim as usize;
    let mut dims = Vec::with_capacity(ndim);
    for k in 1..=ndim {
        let n = h.dim[k];
        if n < 1 {
            return Err(IoError::corrupt(path, FORMAT, format!("dim[{k}] = {n} must be at least 1")));
        }
        dims.push(usize::try_from(n).map_err(|_| IoError::corrupt(path, FORMAT, "dimension too large"))?);
    }
    let (scalar, mut components) = datatype(path, h.datatype)?;
    let mut spatial: Vec<usize> = dims.iter().copied().take(4).collect();
    let extra = &dims[spatial.len()..];
    if h.intent_code == INTENT_VECTOR && ndim >= 5 && components == 1 {
        // Vector images store the components as dim[5], the slowest axis; a singleton time
        // axis in between is dropped so the array is [x, y, z, c].
        components = extra[0];
        if extra[1..].iter().any(|&n| n > 1) {
            return Err(IoError::unsupported(path, FORMAT, format!("vector image with dimensions {dims:?}")));
        }
        while spatial.len() > 3 && spatial.last() == Some(&1) {
            spatial.pop();
        }
    } else if extra.iter().any(|&n| n > 1) {
        return Err(IoError::unsupported(path, FORMAT, format!("{ndim}-D images (dimensions {dims:?})")));
    }
    // A single time point is a 3-D image, as SimpleITK reads it ([x, y, z, 1] -> [x, y, z]).
    while spatial.len() > 3 && spatial.last() == Some(&1) {
        spatial.pop();
    }
    Ok(Layout { spatial, components, scalar })
}

fn datatype(path: &Path, code: i16) -> Result<(ScalarType, usize)> {
    Ok(match code {
        2 => (ScalarType::U8, 1),
        4 => (ScalarType::I16, 1),
        8 => (ScalarType::I32, 1),
        16 => (ScalarType::F32, 1),
        64 => (ScalarType::F64, 1),
        256 => (ScalarType::I8, 1),
        512 => (ScalarType::U16, 1),
        768 => (ScalarType::U32, 1),
        1024 => (ScalarType::I64, 1),
        1280 => (ScalarType::U64, 1),
        DT_RGB24 => (ScalarType::U8, 3),
        DT_RGBA32 => (ScalarType::U8, 4),
        1 => return Err(IoError::unsupported(path, FORMAT, "1-bit (DT_BINARY) voxels")),
        32 | 1792 | 2048 => return Err(IoError::unsupported(path, FORMAT, "complex voxels")),
        1536 => return Err(IoError::unsupported(path, FORMAT, "128-bit float voxels")),
        other => return Err(IoError::corrupt(path, FORMAT, format!("unknown datatype code {other}"))),
    })
}

/// Decodes voxels starting at `offset` of `file` (plain or gzip) and builds the image.
fn decode(h: &Header, path: &Path, file: &[u8], offset: usize) -> Result<Image> {
    let layout = layout(path, h)?;
    let voxels = if raw::is_gzip(file) {
        let mut stream = flate2::read::MultiGzDecoder::new(file);
        std::io::copy(&mut (&mut stream).take(offset as u64), &mut std::io::sink())
            .map_err(|e| IoError::corrupt(path, FORMAT, format!("gzip stream is damaged: {e}")))?;
        let hint = file.len().saturating_mul(raw::MAX_DEFLATE_RATIO);
        let voxels = read_voxels(path, h, &layout, &mut stream, hint)?;
        // Read to the end so the gzip trailer (CRC, length) is checked: a damaged file is an
        // error even when the voxels happened to come out complete.
        std::io::copy(&mut stream, &mut std::io::sink())
            .map_err(|e| IoError::corrupt(path, FORMAT, format!("gzip stream is damaged: {e}")))?;
        voxels
    } else {
        let data = file.get(offset..).ok_or_else(|| {
            IoError::corrupt(path, FORMAT, format!("vox_offset {offset} is beyond the end of the file"))
        })?;
        read_voxels(path, h, &layout, &mut &data[..], data.len())?
    };
    let voxels = apply_scaling(h, voxels);
    let mut image = Image::with_components(voxels, layout.components, geometry(path, h, layout.spatial.len())?)
        .map_err(|e| IoError::image(path, e))?;
    fill_metadata(h, &mut image);
    Ok(image)
}

fn read_voxels(path: &Path, h: &Header, layout: &Layout, reader: &mut dyn Read, hint: usize) -> Result<Voxels> {
    let interleaved = matches!(h.datatype, DT_RGB24 | DT_RGBA32);
    if interleaved || layout.components == 1 {
        return raw::read_voxels(path, FORMAT, reader, layout.scalar, h.order, &layout.spatial, layout.components, hint);
    }
    // Vector intent: components are the slowest axis, i.e. plain Fortran order of [x, y, z, c].
    let mut shape = layout.spatial.clone();
    shape.push(layout.components);
    raw::read_voxels(path, FORMAT, reader, layout.scalar, h.order, &shape, 1, hint)
}

/// Applies `scl_slope`/`scl_inter` when they are meaningful (NIfTI: slope 0 means none).
fn apply_scaling(h: &Header, voxels: Voxels) -> Voxels {
    let (slope, inter) = (h.scl_slope, h.scl_inter);
    let inter = if inter.is_finite() { inter } else { 0.0 };
    if !slope.is_finite() || slope == 0.0 || (slope == 1.0 && inter == 0.0) {
        return voxels;
    }
    let wide = matches!(voxels.scalar_type(), ScalarType::F64 | ScalarType::I64 | ScalarType::U64);
    if wide {
        let mut a = voxels.cast::<f64>().into_owned();
        par_map(&mut a, |v| v * slope + inter);
        Voxels::from(a)
    } else {
        let mut a = voxels.cast::<f32>().into_owned();
        // nibabel and ITK compute in float32 here; so do we, so values match bit for bit.
        let (s, i) = (slope as f32, inter as f32);
        par_map(&mut a, |v| v * s + i);
        Voxels::from(a)
    }
}

fn par_map<T: Copy + Send + Sync>(array: &mut ndarray::ArrayD<T>, f: impl Fn(T) -> T + Sync) {
    match array.as_slice_memory_order_mut() {
        Some(slice) => slice.par_iter_mut().for_each(|v| *v = f(*v)),
        None => array.mapv_inplace(f),
    }
}

fn geometry(path: &Path, h: &Header, dimension: usize) -> Result<medas_image::Geometry> {
    let space_scale = match h.xyzt_units & 0x07 {
        1 => 1000.0, // metres
        3 => 0.001,  // micrometres
        _ => 1.0,    // millimetres or unknown
    };
    let time_scale = match h.xyzt_units & 0x38 {
        16 => 1e-3, // milliseconds
        24 => 1e-6, // microseconds
        _ => 1.0,
    };
    let mut affine = transform::with_pixdim_spacing(&transform::chosen_affine(h), &h.pixdim);
    for row in affine.iter_mut() {
        for v in row.iter_mut() {
            *v *= space_scale;
        }
    }
    let extra = [h.pixdim[4] * time_scale];
    let full = transform::geometry_from_affine(&affine, dimension.max(3), &extra)
        .map_err(|e| IoError::corrupt(path, FORMAT, format!("unusable orientation: {e}")))?;
    Ok(if dimension < 3 { full.with_dimension(dimension) } else { full })
}

fn fill_metadata(h: &Header, image: &mut Image) {
    image.metadata.set(keys::SOURCE_FORMAT, FORMAT);
    image.metadata.set_text(keys::DESCRIPTION, &h.descrip);
    if h.cal_max.is_finite() && h.cal_min.is_finite() && h.cal_max > h.cal_min {
        let window = WindowPreset {
            center: (h.cal_max + h.cal_min) / 2.0,
            width: h.cal_max - h.cal_min,
            name: Some("cal_min/cal_max".into()),
        };
        image.metadata.set_windows(&[window]);
    }
    image.metadata.set("nifti_version", if h.version == Version::Nifti1 { 1 } else { 2 });
    image.metadata.set("nifti_qform_code", h.qform_code);
    image.metadata.set("nifti_sform_code", h.sform_code);
}

/// For a path of a `.hdr`/`.img` pair: the header path and the data path.
/// For a single `.nii`(`.gz`): the path itself and `None`.
fn pair_paths(path: &Path) -> (PathBuf, Option<PathBuf>) {
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let (stem, gz) = match lower.strip_suffix(".gz") {
        Some(s) => (&name[..s.len()], ".gz"),
        None => (&name[..], ""),
    };
    let swap = |from_len: usize, ext: &str| path.with_file_name(format!("{}{ext}{gz}", &stem[..stem.len() - from_len]));
    let lower_stem = stem.to_ascii_lowercase();
    let upper = stem.ends_with("HDR") || stem.ends_with("IMG");
    let (hdr, img) = if upper { (".HDR", ".IMG") } else { (".hdr", ".img") };
    if lower_stem.ends_with(".hdr") {
        (path.to_path_buf(), Some(swap(4, img)))
    } else if lower_stem.ends_with(".img") {
        (swap(4, hdr), Some(path.to_path_buf()))
    } else {
        (path.to_path_buf(), None)
    }
}

/// The `.img` data file, also accepting it with or without `.gz`.
fn existing_data_file(data: &Path) -> Result<PathBuf> {
    if data.exists() {
        return Ok(data.to_path_buf());
    }
    let text = data.to_string_lossy();
    let alternative = match text.strip_suffix(".gz") {
        Some(plain) => PathBuf::from(plain),
        None => PathBuf::from(format!("{text}.gz")),
    };
    if alternative.exists() {
        return Ok(alternative);
    }
    Err(IoError::io(data, std::io::Error::new(std::io::ErrorKind::NotFound, "the .img data file of this pair is missing")))
}

/// Writes an image as NIfTI: `.nii`, `.nii.gz`, or a `.hdr`/`.img` pair (by extension).
/// NIfTI-2 is used only when a dimension exceeds NIfTI-1's 32767 limit.
pub fn write(image: &Image, path: &Path) -> Result<()> {
    let (header_path, data_path) = pair_paths(path);
    let mut h = header_for(image, path)?;
    h.single_file = data_path.is_none();
    if !h.single_file {
        h.vox_offset = 0.0;
    }
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    if data_path.is_none() && !gz {
        // One uncompressed file: header and voxels streamed, no copy of the volume in memory.
        let components = if matches!(h.datatype, DT_RGB24 | DT_RGBA32) { image.components() } else { 1 };
        return raw::write_file_with(&header_path, |out| {
            out.write_all(&header::serialize(&h))?;
            out.write_all(&[0u8; 4])?; // empty extension block
            raw::write_encoded(out, image.voxels(), components, ByteOrder::NATIVE)
        });
    }
    let body = encode_voxels(image, &h);
    match data_path {
        None => {
            let mut bytes = header::serialize(&h);
            bytes.extend_from_slice(&[0u8; 4]); // empty extension block
            bytes.extend_from_slice(&body);
            finish(&header_path, bytes)
        }
        Some(data_path) => {
            finish(&header_path, header::serialize(&h))?;
            finish(&data_path, body)
        }
    }
}

fn finish(path: &Path, bytes: Vec<u8>) -> Result<()> {
    let gz = path.to_string_lossy().to_ascii_lowercase().ends_with(".gz");
    raw::write_file(path, &if gz { raw::gzip(&bytes) } else { bytes })
}

fn header_for(image: &Image, path: &Path) -> Result<Header> {
    let size = image.size();
    let components = image.components();
    let (datatype, bitpix) = match (image.scalar_type(), components) {
        (ScalarType::U8, 3) => (DT_RGB24, 24),
        (ScalarType::U8, 4) => (DT_RGBA32, 32),
        (scalar, _) => (datatype_code(scalar), (scalar.size() * 8) as i16),
    };
    let vector = components > 1 && !matches!(datatype, DT_RGB24 | DT_RGBA32);
    let mut dim = [1i64; 8];
    dim[0] = if vector { 5 } else { size.len() as i64 };
    for (k, &n) in size.iter().enumerate() {
        dim[k + 1] = n as i64;
    }
    if vector {
        dim[5] = components as i64;
    }
    let version = if dim[1..].iter().any(|&n| n > i16::MAX as i64) { Version::Nifti2 } else { Version::Nifti1 };
    let geometry = image.geometry();
    let affine = transform::affine_from_geometry(geometry);
    let (quatern, qfac) = transform::quaternion_from_affine(&affine);
    let mut pixdim = [1.0f64; 8];
    pixdim[0] = qfac;
    for (k, s) in geometry.spacing().iter().enumerate() {
        pixdim[k + 1] = *s;
    }
    let window = image.metadata.windows().into_iter().next();
    let _ = path;
    Ok(Header {
        version,
        order: ByteOrder::NATIVE,
        dim,
        datatype,
        bitpix,
        pixdim,
        vox_offset: (version.header_size() + 4) as f64,
        scl_slope: 1.0,
        scl_inter: 0.0,
        cal_min: window.as_ref().map_or(0.0, |w| w.center - w.width / 2.0),
        cal_max: window.as_ref().map_or(0.0, |w| w.center + w.width / 2.0),
        toffset: 0.0,
        xyzt_units: 2 | 8, // millimetres, seconds
        intent_code: if vector { INTENT_VECTOR } else { 0 },
        descrip: image.metadata.text(keys::DESCRIPTION).unwrap_or("MEDAS").to_string(),
        qform_code: 1,
        sform_code: 1,
        quatern,
        qoffset: [affine[0][3], affine[1][3], affine[2][3]],
        srow: affine,
        single_file: true,
    })
}

fn datatype_code(scalar: ScalarType) -> i16 {
    match scalar {
        ScalarType::U8 => 2,
        ScalarType::I16 => 4,
        ScalarType::I32 => 8,
        ScalarType::F32 => 16,
        ScalarType::F64 => 64,
        ScalarType::I8 => 256,
        ScalarType::U16 => 512,
        ScalarType::U32 => 768,
        ScalarType::I64 => 1024,
        ScalarType::U64 => 1280,
    }
}

fn encode_voxels(image: &Image, h: &Header) -> Vec<u8> {
    if matches!(h.datatype, DT_RGB24 | DT_RGBA32) {
        raw::encode(image.voxels(), image.components(), ByteOrder::NATIVE)
    } else {
        // Scalars and vector intent: plain Fortran order (components slowest).
        raw::encode(image.voxels(), 1, ByteOrder::NATIVE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use medas_image::Geometry;

    #[test]
    fn pair_paths_are_found() {
        let (h, d) = pair_paths(Path::new("/x/brain.img.gz"));
        assert_eq!(h, Path::new("/x/brain.hdr.gz"));
        assert_eq!(d.unwrap(), Path::new("/x/brain.img.gz"));
        let (h, d) = pair_paths(Path::new("/x/brain.nii.gz"));
        assert_eq!((h.as_path(), d), (Path::new("/x/brain.nii.gz"), None));
    }

    #[test]
    fn in_memory_round_trip_keeps_voxels_and_geometry() {
        let data: Vec<i16> = (0..60).map(|v| v * 7 - 100).collect();
        let voxels = Voxels::from_fortran_vec(&[3, 4, 5], data).unwrap();
        let (s, c) = (25f64.to_radians().sin(), 25f64.to_radians().cos());
        let geometry = Geometry::new(vec![0.7, 0.8, 3.0], vec![12.0, -4.0, 99.0], vec![c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c])
            .unwrap();
        let image = Image::new(voxels, geometry).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for name in ["a.nii", "b.nii.gz", "c.hdr"] {
            let path = dir.path().join(name);
            write(&image, &path).unwrap();
            let back = read(&path).unwrap();
            assert_eq!(back.voxels(), image.voxels(), "{name}");
            assert!(back.geometry().approx_eq(image.geometry(), 1e-6), "{name}: {:?}", back.geometry());
        }
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error() {
        let voxels = Voxels::from_fortran_vec(&[4, 4, 4], vec![1.5f32; 64]).unwrap();
        let image = Image::from_voxels(voxels).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.nii.gz");
        write(&image, &path).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for cut in [10, bytes.len() / 2, bytes.len() - 5] {
            assert!(read_bytes(&bytes[..cut], &path).is_err(), "cut at {cut}");
        }
        assert!(read_bytes(&[0x5a; 1000], &path).is_err());
    }
}
