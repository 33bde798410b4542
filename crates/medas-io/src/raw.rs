//! Raw voxel buffers: bytes ⇄ typed arrays with a given byte order, and (de)compression.
//! Shared by the formats that store a header plus a plain block of voxels
//! (NIfTI, MetaImage, NRRD, Analyze).

use crate::{IoError, Result};
use medas_image::{ScalarType, VoxelArray, Voxels, with_voxels};
use std::io::Read;
use std::path::Path;

/// Byte order of multi-byte values in a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "big") { ByteOrder::Big } else { ByteOrder::Little };
}

/// Number of elements in `shape` times `components`, or an error if it overflows.
pub fn element_count(path: &Path, format: &'static str, shape: &[usize], components: usize) -> Result<usize> {
    shape
        .iter()
        .try_fold(components.max(1), |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| IoError::corrupt(path, format, format!("image size {shape:?} overflows")))
}

/// Decodes `bytes` (exactly `count` elements of `scalar` in `order`) into voxels laid out with
/// the first axis fastest and components interleaved, i.e. the layout of every raw format.
pub fn decode(
    path: &Path,
    format: &'static str,
    bytes: &[u8],
    scalar: ScalarType,
    order: ByteOrder,
    spatial: &[usize],
    components: usize,
) -> Result<Voxels> {
    let count = element_count(path, format, spatial, components)?;
    let needed = count
        .checked_mul(scalar.size())
        .ok_or_else(|| IoError::corrupt(path, format, "image size overflows"))?;
    if bytes.len() < needed {
        return Err(IoError::corrupt(
            path,
            format,
            format!("voxel data is truncated: {} bytes present, {needed} needed", bytes.len()),
        ));
    }
    // The size was checked above, so the buffer is allocated once, at its final size.
    read_voxels(path, format, &mut &bytes[..needed], scalar, order, spatial, components, needed)
}

fn wrap<T: VoxelArray>(path: &Path, spatial: &[usize], components: usize, values: Vec<T>) -> Result<Voxels> {
    let result = if components > 1 {
        Voxels::from_interleaved_vec(spatial, components, values)
    } else {
        Voxels::from_fortran_vec(spatial, values)
    };
    result.map_err(|e| IoError::image(path, e))
}

/// Reads `spatial × components` voxels of `scalar` from `reader` straight into a typed buffer
/// (no intermediate byte copy), swapping bytes when the file order is not native.
///
/// `size_hint` bounds the first allocation (e.g. the file size, or 1032 × the compressed size
/// for deflate streams), so a header that lies about the image size cannot make us allocate
/// more than the data can fill: the buffer then grows only as data actually arrives.
pub fn read_voxels(
    path: &Path,
    format: &'static str,
    reader: &mut dyn Read,
    scalar: ScalarType,
    order: ByteOrder,
    spatial: &[usize],
    components: usize,
    size_hint: usize,
) -> Result<Voxels> {
    let count = element_count(path, format, spatial, components)?;
    macro_rules! typed {
        ($t:ty) => {{
            let values = read_typed::<$t>(path, format, reader, count, size_hint)?;
            let mut values = values;
            if order != ByteOrder::NATIVE && std::mem::size_of::<$t>() > 1 {
                swap_in_place(bytemuck::cast_slice_mut(&mut values), std::mem::size_of::<$t>());
            }
            wrap(path, spatial, components, values)
        }};
    }
    match scalar {
        ScalarType::U8 => typed!(u8),
        ScalarType::I8 => typed!(i8),
        ScalarType::U16 => typed!(u16),
        ScalarType::I16 => typed!(i16),
        ScalarType::U32 => typed!(u32),
        ScalarType::I32 => typed!(i32),
        ScalarType::U64 => typed!(u64),
        ScalarType::I64 => typed!(i64),
        ScalarType::F32 => typed!(f32),
        ScalarType::F64 => typed!(f64),
    }
}

fn read_typed<T: bytemuck::Pod + Default>(
    path: &Path,
    format: &'static str,
    reader: &mut dyn Read,
    count: usize,
    size_hint: usize,
) -> Result<Vec<T>> {
    let size = std::mem::size_of::<T>();
    let first = count.min(size_hint / size + 1);
    let mut values: Vec<T> = vec![T::default(); first];
    let mut filled = 0usize;
    loop {
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut values[filled..]);
        read_full(reader, bytes).map_err(|e| match e {
            Some(e) => IoError::corrupt(path, format, format!("cannot read voxel data: {e}")),
            None => IoError::corrupt(
                path,
                format,
                format!("voxel data is truncated: expected {} bytes", count.saturating_mul(size)),
            ),
        })?;
        filled = values.len();
        if filled == count {
            return Ok(values);
        }
        let next = count.min(filled.saturating_mul(2));
        values.resize(next, T::default());
    }
}

/// Fills `buffer` completely; `Err(None)` on a premature end of data.
fn read_full(reader: &mut dyn Read, mut buffer: &mut [u8]) -> std::result::Result<(), Option<std::io::Error>> {
    while !buffer.is_empty() {
        match reader.read(buffer) {
            Ok(0) => return Err(None),
            Ok(n) => buffer = &mut buffer[n..],
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Some(e)),
        }
    }
    Ok(())
}

fn swap_in_place(bytes: &mut [u8], size: usize) {
    use rayon::prelude::*;
    bytes.par_chunks_mut(size * 65536).for_each(|block| block.chunks_exact_mut(size).for_each(|c| c.reverse()));
}

/// Deflate cannot expand data more than about 1032:1; used to bound allocations.
pub const MAX_DEFLATE_RATIO: usize = 1032;

/// Scalars that can be written as raw bytes.
trait RawScalar: Copy {
    fn put(self, out: &mut Vec<u8>, swap: bool);
}

macro_rules! raw_scalar {
    ($($t:ty),*) => {$(
        impl RawScalar for $t {
            #[inline]
            fn put(self, out: &mut Vec<u8>, swap: bool) {
                let mut b = self.to_ne_bytes();
                if swap {
                    b.reverse();
                }
                out.extend_from_slice(&b);
            }
        }
    )*};
}
raw_scalar!(u8, i8, u16, i16, u32, i32, u64, i64, f32, f64);

/// Encodes voxels as raw bytes in `order`: first spatial axis fastest and, for a
/// multi-component image (trailing component axis), components interleaved.
pub fn encode(voxels: &Voxels, components: usize, order: ByteOrder) -> Vec<u8> {
    let mut out = Vec::with_capacity(voxels.len() * voxels.scalar_type().size());
    for_each_block(voxels, components, order, |block| out.extend_from_slice(block));
    out
}

/// The bytes [`encode`] would return, handed to `consume` in blocks of about 1 MiB, so that
/// a volume can be hashed or streamed without a second copy of it in memory.
pub fn for_each_block(voxels: &Voxels, components: usize, order: ByteOrder, mut consume: impl FnMut(&[u8])) {
    const BLOCK: usize = 1 << 20;
    let swap = order != ByteOrder::NATIVE;
    with_voxels!(voxels, a => {
        let mut axes: Vec<usize> = (0..a.ndim()).collect();
        if components > 1 {
            axes.rotate_right(1); // [x, y, z, c] -> [c, x, y, z]
        }
        // File order is Fortran order of the permuted array, i.e. C order of its reverse.
        let view = a.view().permuted_axes(axes).reversed_axes();
        let mut block = Vec::with_capacity(BLOCK + 8);
        let mut put = |v: &_| {
            RawScalar::put(*v, &mut block, swap);
            if block.len() >= BLOCK {
                consume(&block);
                block.clear();
            }
        };
        match view.as_slice() {
            // Already in file order and byte order: the memory itself, no copy.
            Some(slice) if !swap => {
                drop(put);
                bytemuck::cast_slice::<_, u8>(slice).chunks(BLOCK).for_each(&mut consume);
            }
            Some(slice) => slice.iter().for_each(&mut put),
            None => view.iter().for_each(&mut put),
        }
        if !block.is_empty() {
            consume(&block);
        }
    })
}

/// Writes the bytes [`encode`] would return to `out`, block by block.
pub fn write_encoded(out: &mut dyn std::io::Write, voxels: &Voxels, components: usize, order: ByteOrder) -> std::io::Result<()> {
    let mut result = Ok(());
    for_each_block(voxels, components, order, |block| {
        if result.is_ok() {
            result = out.write_all(block);
        }
    });
    result
}

/// Reads a whole file, naming it in the error.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| IoError::io(path, e))
}

/// True when `bytes` start with the gzip magic number.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Inflates a gzip stream (all members), refusing to produce more than `limit` bytes so a
/// hostile file cannot exhaust memory.
pub fn gunzip(path: &Path, format: &'static str, bytes: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len().saturating_mul(4).min(limit));
    flate2::read::MultiGzDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IoError::corrupt(path, format, format!("gzip stream is damaged: {e}")))?;
    if out.len() > limit {
        return Err(IoError::corrupt(path, format, format!("decompressed data exceeds {limit} bytes")));
    }
    Ok(out)
}

/// Inflates a zlib stream (MetaImage `CompressedData`), refusing output beyond `limit`.
pub fn zlib_inflate(path: &Path, format: &'static str, bytes: &[u8], limit: usize) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(limit.min(1 << 30));
    flate2::read::ZlibDecoder::new(bytes)
        .take(limit as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| IoError::corrupt(path, format, format!("zlib stream is damaged: {e}")))?;
    if out.len() > limit {
        return Err(IoError::corrupt(path, format, format!("decompressed data exceeds {limit} bytes")));
    }
    Ok(out)
}

/// Gzip-compresses `bytes` at a level that favours speed (files are written often).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(bytes.len() / 2), flate2::Compression::new(6));
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Zlib-compresses `bytes`.
pub fn zlib(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::with_capacity(bytes.len() / 2), flate2::Compression::new(6));
    enc.write_all(bytes).expect("writing to memory");
    enc.finish().expect("writing to memory")
}

/// Writes a file atomically (a temporary file in the same folder, then a rename), so a failed
/// write never leaves a half-written image where a good one was. Names the file in errors.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    write_file_with(path, |out| out.write_all(bytes))
}

/// [`write_file`] for contents produced piece by piece (no whole copy in memory): `produce`
/// writes into a buffered temporary file that is renamed into place once complete.
pub fn write_file_with(path: &Path, produce: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>) -> Result<()> {
    use std::io::Write;
    let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.partial-{}", std::process::id()));
    let result = std::fs::File::create(&temporary)
        .and_then(|file| {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, file);
            produce(&mut out)?;
            out.flush()
        })
        .and_then(|()| std::fs::rename(&temporary, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result.map_err(|e| IoError::io(path, e))
}

/// Resolves the data file `name` named in a detached header (MetaImage `ElementDataFile`,
/// NRRD `data file`) against the header's folder. Refuses absolute paths, `..` components and
/// symbolic links that lead outside that folder, so a header uploaded to a server cannot make
/// us read arbitrary files.
pub fn resolve_detached(header: &Path, format: &'static str, name: &str) -> Result<std::path::PathBuf> {
    use std::path::Component;
    let relative = Path::new(name);
    let escapes = name.is_empty()
        || relative.components().any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    let refuse = || {
        IoError::unsupported(header, format, format!("data file {name:?} is outside the header's folder (refused)"))
    };
    if escapes {
        return Err(refuse());
    }
    let folder = header.parent().unwrap_or(Path::new("."));
    let path = folder.join(relative);
    // A symbolic link inside the folder may still point elsewhere.
    if let (Ok(real_folder), Ok(real_path)) = (std::fs::canonicalize(folder), std::fs::canonicalize(&path))
        && !real_path.starts_with(&real_folder)
    {
        return Err(refuse());
    }
    Ok(path)
}

/// Parses whitespace- or comma-separated decimal numbers (text encodings of NRRD and MetaImage)
/// into exactly `count` values of `scalar`, returned as native-order bytes for [`decode`].
pub fn text_values(path: &Path, format: &'static str, text: &[u8], scalar: ScalarType, count: usize) -> Result<Vec<u8>> {
    let text = String::from_utf8_lossy(text);
    // Every value needs at least one character and one separator, so this bound is safe.
    let mut out = Vec::with_capacity(count.min(text.len() / 2 + 1).saturating_mul(scalar.size()));
    let mut tokens = text.split(|c: char| c.is_ascii_whitespace() || c == ',').filter(|t| !t.is_empty());
    for n in 0..count {
        let token = tokens.next().ok_or_else(|| {
            IoError::corrupt(path, format, format!("text data is truncated: {n} values present, {count} needed"))
        })?;
        let bad = || IoError::corrupt(path, format, format!("{token:?} is not a {scalar} value"));
        macro_rules! put {
            ($t:ty) => {{
                let v: $t = match token.parse::<$t>() {
                    Ok(v) => v,
                    // Integers written as "3.0" or "1e3" still count when they are whole numbers.
                    Err(_) => {
                        let f: f64 = token.parse().map_err(|_| bad())?;
                        if f.fract() != 0.0 || f < <$t>::MIN as f64 || f > <$t>::MAX as f64 {
                            return Err(bad());
                        }
                        f as $t
                    }
                };
                out.extend_from_slice(&v.to_ne_bytes());
            }};
        }
        match scalar {
            ScalarType::U8 => put!(u8),
            ScalarType::I8 => put!(i8),
            ScalarType::U16 => put!(u16),
            ScalarType::I16 => put!(i16),
            ScalarType::U32 => put!(u32),
            ScalarType::I32 => put!(i32),
            ScalarType::U64 => put!(u64),
            ScalarType::I64 => put!(i64),
            ScalarType::F32 => out.extend_from_slice(&token.parse::<f32>().map_err(|_| bad())?.to_ne_bytes()),
            ScalarType::F64 => out.extend_from_slice(&token.parse::<f64>().map_err(|_| bad())?.to_ne_bytes()),
        }
    }
    Ok(out)
}

/// Refuses a compressed block that cannot possibly inflate to `needed` bytes (deflate expands
/// at most ~1032:1), before any buffer of the claimed size is allocated.
pub fn check_inflatable(path: &Path, format: &'static str, compressed: usize, needed: usize) -> Result<()> {
    if needed / 1032 > compressed.saturating_add(64) {
        return Err(IoError::corrupt(
            path,
            format,
            format!("{compressed} compressed bytes cannot hold the {needed} bytes the header declares"),
        ));
    }
    Ok(())
}

/// Expands the single `%d`, `%Nd` or `%0Nd` in a detached-data file-name pattern (MetaImage
/// `ElementDataFile`, NRRD `data file`) with `number`.
pub fn expand_pattern(header: &Path, format: &'static str, pattern: &str, number: i64) -> Result<String> {
    let bad = || IoError::unsupported(header, format, format!("data file pattern {pattern:?} (only %d / %0Nd)"));
    let (head, rest) = pattern.split_once('%').ok_or_else(bad)?;
    let d = rest.find('d').ok_or_else(bad)?;
    let spec = &rest[..d];
    if spec.len() > 2 || !spec.chars().all(|c| c.is_ascii_digit()) {
        return Err(bad());
    }
    let width: usize = if spec.is_empty() { 0 } else { spec.parse().map_err(|_| bad())? };
    let digits = if spec.starts_with('0') { format!("{number:0width$}") } else { format!("{number:width$}") };
    Ok(format!("{head}{digits}{}", &rest[d + 1..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_endian_round_trip() {
        let p = Path::new("mem");
        let bytes = [0x01u8, 0x02, 0xff, 0xfe, 0x00, 0x10];
        let v = decode(p, "test", &bytes, ScalarType::I16, ByteOrder::Big, &[3], 1).unwrap();
        assert_eq!(v.as_array::<i16>().unwrap().as_slice().unwrap(), &[0x0102, -2, 0x0010]);
        assert_eq!(encode(&v, 1, ByteOrder::Big), bytes);
    }

    #[test]
    fn rgb_encode_interleaves() {
        let p = Path::new("mem");
        let bytes: Vec<u8> = (0..12).collect();
        let v = decode(p, "test", &bytes, ScalarType::U8, ByteOrder::Little, &[2, 2], 3).unwrap();
        assert_eq!(encode(&v, 3, ByteOrder::Little), bytes);
    }

    #[test]
    fn truncated_and_overflowing_sizes_are_errors() {
        let p = Path::new("mem");
        assert!(decode(p, "test", &[0; 5], ScalarType::U16, ByteOrder::Little, &[3], 1).is_err());
        assert!(decode(p, "test", &[0; 5], ScalarType::U16, ByteOrder::Little, &[usize::MAX, 3], 1).is_err());
    }

    #[test]
    fn read_voxels_grows_only_with_data() {
        let p = Path::new("mem");
        let bytes: Vec<u8> = [1i16, -2, 300].iter().flat_map(|v| v.to_be_bytes()).collect();
        let v = read_voxels(p, "t", &mut &bytes[..], ScalarType::I16, ByteOrder::Big, &[3], 1, 2).unwrap();
        assert_eq!(v.as_array::<i16>().unwrap().as_slice().unwrap(), &[1, -2, 300]);
        // A header claiming 2^40 voxels with 6 bytes of data: an error, not a 2 TB allocation.
        let err = read_voxels(p, "t", &mut &bytes[..], ScalarType::I16, ByteOrder::Big, &[1 << 40], 1, 6);
        assert!(err.is_err());
    }

    #[test]
    fn gunzip_respects_the_limit() {
        let p = Path::new("mem");
        let z = gzip(&[7u8; 1000]);
        assert_eq!(gunzip(p, "test", &z, 1000).unwrap().len(), 1000);
        assert!(gunzip(p, "test", &z, 999).is_err());
        assert!(gunzip(p, "test", &z[..z.len() / 2], 1000).is_err());
    }
}
