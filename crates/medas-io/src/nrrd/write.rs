//! NRRD writer: gzip (or raw) `.nrrd` with attached data, or `.nhdr` plus a data file.

use crate::Result;
use crate::raw::{self, ByteOrder};
use medas_image::{Image, ScalarType};
use std::path::Path;

/// Options for [`write_with`].
#[derive(Debug, Clone, Copy)]
pub struct WriteOptions {
    /// Gzip the voxels (`encoding: gzip`). Default: true.
    pub compress: bool,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self { compress: true }
    }
}

/// Writes a gzip NRRD in LPS space (`.nrrd`; a `.nhdr` path gets a detached `.raw.gz`/`.raw`).
pub fn write(image: &Image, path: &Path) -> Result<()> {
    write_with(image, path, &WriteOptions::default())
}

/// [`write`] with options.
pub fn write_with(image: &Image, path: &Path, options: &WriteOptions) -> Result<()> {
    let mut data = raw::encode(image.voxels(), image.components(), ByteOrder::Little);
    if options.compress {
        data = raw::gzip(&data);
    }
    let mut header = header_text(image, options.compress);
    let detached = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("nhdr"));
    if detached {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        let name = format!("{stem}.{}", if options.compress { "raw.gz" } else { "raw" });
        header.push_str(&format!("data file: {name}\n"));
        raw::write_file(path, header.as_bytes())?;
        return raw::write_file(&path.with_file_name(name), &data);
    }
    header.push('\n');
    let mut bytes = header.into_bytes();
    bytes.extend_from_slice(&data);
    raw::write_file(path, &bytes)
}

fn header_text(image: &Image, compress: bool) -> String {
    let g = image.geometry();
    let n = g.dimension();
    let vector =
        |v: &mut dyn Iterator<Item = f64>| format!("({})", v.map(|x| x.to_string()).collect::<Vec<_>>().join(","));
    let type_name = match image.scalar_type() {
        ScalarType::U8 => "uint8",
        ScalarType::I8 => "int8",
        ScalarType::U16 => "uint16",
        ScalarType::I16 => "int16",
        ScalarType::U32 => "uint32",
        ScalarType::I32 => "int32",
        ScalarType::U64 => "uint64",
        ScalarType::I64 => "int64",
        ScalarType::F32 => "float",
        ScalarType::F64 => "double",
    };
    let vector_axis = image.components() > 1;
    let mut sizes: Vec<String> = image.size().iter().map(usize::to_string).collect();
    let mut directions: Vec<String> =
        (0..n).map(|c| vector(&mut (0..n).map(|r| g.direction_at(r, c) * g.spacing()[c]))).collect();
    let mut kinds = vec!["domain".to_string(); n];
    if vector_axis {
        sizes.insert(0, image.components().to_string());
        directions.insert(0, "none".into());
        kinds.insert(0, "vector".into());
    }
    let mut h = format!("NRRD0004\n# written by MEDAS\ntype: {type_name}\ndimension: {}\n", sizes.len());
    if n == 3 {
        h += "space: left-posterior-superior\n";
    } else {
        h += &format!("space dimension: {n}\n");
    }
    h += &format!("sizes: {}\nspace directions: {}\n", sizes.join(" "), directions.join(" "));
    h += &format!("kinds: {}\nendian: little\n", kinds.join(" "));
    h += &format!("encoding: {}\n", if compress { "gzip" } else { "raw" });
    h += &format!("space origin: {}\n", vector(&mut g.origin().iter().copied()));
    h
}

